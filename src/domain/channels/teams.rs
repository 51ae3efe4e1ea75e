//! Microsoft Teams: an Adaptive Card 1.5 in the envelope a Teams Workflows webhook takes
//! (`{"type": "message", "attachments": [{"contentType": …, "content": card}]}`), the
//! whole body under Teams' 28 KB card limit. Teams renders markdown in `TextBlock`s and
//! facts, so user text only ever goes in `TextRun`s (of `RichTextBlock`s), which Adaptive
//! Cards render as plain text; links are `selectAction`s, never markdown.

use super::clip::{clip, link, one_line};
use super::{
    commit_line, counts_line, headline, more_text, severities_line, severity_label, state_label,
    test_headline, triage_details, triage_headline, Digest, FindingLine, Listing, Note, TestNote,
    TriageNote, LISTED_TRIAGE,
};
use serde::Serialize;

/// Teams refuses cards over 28 KB; the body is kept under this many bytes.
pub const MAX_BODY_BYTES: usize = 28_000;
/// What the listing may fill: room is left for the "… and N more" line and the actions.
const LISTING_BUDGET: usize = 24_000;

#[derive(Debug, Serialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: &'static str,
    attachments: [Attachment; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    content_type: &'static str,
    content_url: Option<String>,
    content: Card,
}

#[derive(Debug, Serialize)]
struct Card {
    #[serde(rename = "$schema")]
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
    body: Vec<Element>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<Action>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum Element {
    /// Only for scanhook's own words: Teams reads markdown in it.
    TextBlock {
        text: String,
        wrap: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        weight: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        separator: Option<bool>,
    },
    RichTextBlock {
        inlines: Vec<TextRun>,
        #[serde(skip_serializing_if = "Option::is_none")]
        spacing: Option<&'static str>,
    },
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct TextRun {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_subtle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    font_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    select_action: Option<Action>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum Action {
    #[serde(rename = "Action.OpenUrl")]
    OpenUrl { title: String, url: String },
}

fn run(text: String) -> TextRun {
    TextRun {
        kind: "TextRun",
        text,
        ..TextRun::default()
    }
}

/// A run that opens `url` when clicked (plain when `url` is not a link).
fn linked_run(text: String, url: &str) -> TextRun {
    let select_action = link(url).map(|url| Action::OpenUrl {
        title: clip(&text, 100),
        url,
    });
    TextRun {
        select_action,
        ..run(text)
    }
}

fn rich(inlines: Vec<TextRun>) -> Element {
    Element::RichTextBlock {
        inlines,
        spacing: None,
    }
}

fn ours(text: impl Into<String>, bold: bool, separator: bool) -> Element {
    Element::TextBlock {
        text: text.into(),
        wrap: true,
        weight: bold.then_some("Bolder"),
        separator: separator.then_some(true),
    }
}

fn title_run(text: &str) -> TextRun {
    TextRun {
        weight: Some("Bolder"),
        size: Some("Large"),
        ..run(clip(&one_line(text), 300))
    }
}

fn subtle(text: String) -> Element {
    rich(vec![TextRun {
        is_subtle: Some(true),
        ..run(text)
    }])
}

fn finding(f: &FindingLine, brief: bool) -> Vec<Element> {
    let mut line = Vec::new();
    if !brief {
        line.push(TextRun {
            weight: Some("Bolder"),
            color: matches!(
                f.severity,
                crate::domain::findings::Severity::Critical
                    | crate::domain::findings::Severity::High
            )
            .then_some("Attention"),
            ..run(severity_label(f.severity).into())
        });
        line.push(run("  ".into()));
    }
    line.push(TextRun {
        font_type: Some("Monospace"),
        ..linked_run(clip(&one_line(f.rule), 200), f.rule_url)
    });
    line.push(run(" · ".into()));
    line.push(linked_run(
        clip(&one_line(&format!("{}:{}", f.path, f.line)), 300),
        f.url,
    ));
    let mut out = vec![rich(line)];
    if !brief {
        out.push(Element::RichTextBlock {
            inlines: vec![TextRun {
                is_subtle: Some(true),
                ..run(clip(&one_line(f.message), 300))
            }],
            spacing: Some("None"),
        });
    }
    out
}

fn size(elements: &[Element]) -> usize {
    serde_json::to_string(elements).map_or(usize::MAX, |s| s.len())
}

fn open(title: &str, url: &str) -> Vec<Action> {
    link(url)
        .map(|url| Action::OpenUrl {
            title: title.into(),
            url,
        })
        .into_iter()
        .collect()
}

fn digest(d: &Digest) -> Card {
    let mut body = vec![rich(vec![title_run(&headline(&d.scan))])];
    if let Some(c) = commit_line(&d.scan) {
        body.push(subtle(clip(&c, 1000)));
    }
    body.push(ours(counts_line(d), true, false));
    body.push(ours(severities_line(d), false, false));
    let listing = Listing::of(d);
    let mut used = size(&body);
    let mut shown = 0;
    'parts: for (part, lines) in &listing.parts {
        let title = ours(part.title(), true, true);
        let mut pending = Some(title);
        for f in lines {
            let elements = finding(f, part.brief());
            let cost = size(&elements)
                + pending
                    .as_ref()
                    .map_or(0, |t| size(std::slice::from_ref(t)));
            if used + cost > LISTING_BUDGET {
                break 'parts;
            }
            body.extend(pending.take());
            body.extend(elements);
            used += cost;
            shown += 1;
        }
    }
    if shown < listing.total {
        let more = more_text(listing.total - shown, "findings");
        body.push(rich(vec![linked_run(more, d.scan.url)]));
    }
    card(body, open("Open the scan in scanhook", d.scan.url))
}

fn triage(notes: &[TriageNote]) -> Card {
    let mut body = vec![rich(vec![title_run(&triage_headline(notes.len()))])];
    let mut used = size(&body);
    let mut shown = 0;
    for t in notes.iter().take(LISTED_TRIAGE) {
        let mut elements = vec![rich(vec![TextRun {
            weight: Some("Bolder"),
            ..run(state_label(t.state))
        }])];
        elements.extend(finding(&t.finding, true));
        let mut context = format!(
            "{} · {}",
            clip(&one_line(t.repository), 200),
            clip(&one_line(t.git_ref), 200)
        );
        if let Some(details) = triage_details(t) {
            context.push_str(" · ");
            context.push_str(&details);
        }
        elements.push(subtle(context));
        let cost = size(&elements);
        if used + cost > LISTING_BUDGET {
            break;
        }
        body.extend(elements);
        used += cost;
        shown += 1;
    }
    if shown < notes.len() {
        body.push(subtle(more_text(notes.len() - shown, "triage changes")));
    }
    card(body, Vec::new())
}

fn test(t: &TestNote) -> Card {
    let body = vec![
        rich(vec![title_run("scanhook test message")]),
        rich(vec![
            run(format!(
                "{}: this channel will receive scanhook's notifications from ",
                test_headline(t)
            )),
            linked_run(clip(&one_line(t.server_url), 500), t.server_url),
            run(".".into()),
        ]),
    ];
    card(body, open("Open scanhook", t.server_url))
}

fn card(body: Vec<Element>, actions: Vec<Action>) -> Card {
    Card {
        schema: "http://adaptivecards.io/schemas/adaptive-card.json",
        kind: "AdaptiveCard",
        version: "1.5",
        body,
        actions,
    }
}

/// The Teams Workflows body of a note.
pub fn render(note: &Note) -> String {
    let card = match note {
        Note::Digest(d) => digest(d),
        Note::Triage(t) => triage(t),
        Note::Test(t) => test(t),
    };
    let envelope = Envelope {
        kind: "message",
        attachments: [Attachment {
            content_type: "application/vnd.microsoft.card.adaptive",
            content_url: None,
            content: card,
        }],
    };
    let body = serde_json::to_string(&envelope).expect("a Teams card always serialises");
    debug_assert!(body.len() < MAX_BODY_BYTES);
    body
}
