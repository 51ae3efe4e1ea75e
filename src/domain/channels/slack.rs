//! Slack: `{"text": fallback, "blocks": [...]}` in Block Kit, inside its limits (at most 50
//! blocks, a section's text at most 3,000 characters, a header's 150 of plain text). User
//! text is mrkdwn-escaped (`&`, `<`, `>`) and every mrkdwn text is `verbatim`, so Slack
//! neither turns it into links nor parses mentions out of it.

use super::clip::{escape_clip, link, one_line, slack_escape};
use super::{
    commit_line, counts_line, headline, more_text, severities_line, severity_label, state_label,
    test_headline, triage_details, triage_headline, Digest, FindingLine, Listing, Note, TestNote,
    TriageNote, LISTED_TRIAGE,
};
use serde::Serialize;

/// Slack's limits (Block Kit reference).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const MAX_BUTTON_TEXT: usize = 75;
/// The fallback text shown in notifications; Slack allows far more, a glance needs less.
const MAX_FALLBACK: usize = 300;

#[derive(Debug, Serialize)]
struct Message {
    text: String,
    blocks: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Header { text: Text },
    Section { text: Text },
    Context { elements: Vec<Text> },
    Divider,
    Actions { elements: Vec<Button> },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Text {
    PlainText { text: String, emoji: bool },
    Mrkdwn { text: String, verbatim: bool },
}

#[derive(Debug, Serialize)]
struct Button {
    #[serde(rename = "type")]
    kind: &'static str,
    text: Text,
    url: String,
}

/// Escaped user text, at most `max` characters.
fn esc(s: &str, max: usize) -> String {
    escape_clip(&one_line(s), max, slack_escape)
}

fn mrkdwn(text: String) -> Text {
    Text::Mrkdwn {
        text,
        verbatim: true,
    }
}

fn header(text: &str) -> Block {
    Block::Header {
        text: Text::PlainText {
            text: super::clip::clip(&one_line(text), MAX_HEADER_TEXT),
            emoji: false,
        },
    }
}

/// `<url|label>`, or the label alone when the URL is not a link.
fn linked(url: &str, label: String) -> String {
    match link(url) {
        Some(u) => format!("<{u}|{label}>"),
        None => label,
    }
}

/// The rule (linked to its page) and `path:line` (linked to the finding's page).
fn rule_and_place(f: &FindingLine) -> (String, String) {
    let rule = linked(f.rule_url, esc(f.rule, 200));
    let place = linked(f.url, esc(&format!("{}:{}", f.path, f.line), 300));
    (rule, place)
}

fn finding_text(f: &FindingLine, brief: bool) -> String {
    let (rule, place) = rule_and_place(f);
    if brief {
        return format!("• {rule} · {place}");
    }
    format!(
        "*{}* · {rule} · {place}\n{}",
        severity_label(f.severity),
        esc(f.message, 600)
    )
}

/// Sections of at most [`MAX_SECTION_TEXT`] characters holding `items` one per paragraph.
fn pack(items: impl IntoIterator<Item = String>, blocks: &mut Vec<Block>) {
    let mut text = String::new();
    for item in items {
        let sep = if text.is_empty() { "" } else { "\n\n" };
        if super::clip::units(&text) + sep.len() + super::clip::units(&item) > MAX_SECTION_TEXT
            && !text.is_empty()
        {
            blocks.push(section(std::mem::take(&mut text)));
            text = item;
        } else {
            text.push_str(sep);
            text.push_str(&item);
        }
    }
    if !text.is_empty() {
        blocks.push(section(text));
    }
}

fn section(text: String) -> Block {
    Block::Section {
        text: mrkdwn(within_section(text)),
    }
}

/// Every item is built well within the limit; this only guards against a mistake in that
/// arithmetic (a cut here could end inside a link, which Slack then shows as text).
fn within_section(text: String) -> String {
    if super::clip::units(&text) <= MAX_SECTION_TEXT {
        text
    } else {
        super::clip::clip(&text, MAX_SECTION_TEXT)
    }
}

fn button(label: &str, url: &str) -> Option<Block> {
    let url = link(url)?;
    Some(Block::Actions {
        elements: vec![Button {
            kind: "button",
            text: Text::PlainText {
                text: super::clip::clip(label, MAX_BUTTON_TEXT),
                emoji: false,
            },
            url,
        }],
    })
}

fn digest(d: &Digest) -> Message {
    let head = headline(&d.scan);
    let mut blocks = vec![header(&head)];
    if let Some(c) = commit_line(&d.scan) {
        blocks.push(Block::Context {
            elements: vec![mrkdwn(esc(&c, 1000))],
        });
    }
    blocks.push(section(format!(
        "*{}*\n{}",
        counts_line(d),
        severities_line(d)
    )));
    let listing = Listing::of(d);
    let mut shown = 0;
    for (part, lines) in &listing.parts {
        blocks.push(Block::Divider);
        let mut items = vec![format!("*{}*", part.title())];
        items.extend(lines.iter().map(|f| finding_text(f, part.brief())));
        shown += lines.len();
        pack(items, &mut blocks);
    }
    if shown < listing.total {
        let more = more_text(listing.total - shown, "findings");
        blocks.push(Block::Context {
            elements: vec![mrkdwn(linked(d.scan.url, more))],
        });
    }
    blocks.extend(button("Open the scan in scanhook", d.scan.url));
    let text = esc(&format!("{head}: {}", counts_line(d)), MAX_FALLBACK);
    Message { text, blocks }
}

fn triage(notes: &[TriageNote]) -> Message {
    let head = triage_headline(notes.len());
    let mut blocks = vec![header(&head)];
    let items = notes.iter().take(LISTED_TRIAGE).map(|t| {
        let (rule, place) = rule_and_place(&t.finding);
        let mut text = format!(
            "*{}* · {rule} · {place}\n{} · {}",
            state_label(t.state),
            esc(t.repository, 200),
            esc(t.git_ref, 200)
        );
        if let Some(details) = triage_details(t) {
            text.push('\n');
            text.push_str(&esc(&details, 700));
        }
        text
    });
    pack(items, &mut blocks);
    if notes.len() > LISTED_TRIAGE {
        let more = more_text(notes.len() - LISTED_TRIAGE, "triage changes");
        blocks.push(Block::Context {
            elements: vec![mrkdwn(esc(&more, 200))],
        });
    }
    Message {
        text: esc(&head, MAX_FALLBACK),
        blocks,
    }
}

fn test(t: &TestNote) -> Message {
    let head = test_headline(t);
    let server = linked(t.server_url, esc(t.server_url, 500));
    let mut blocks = vec![
        header("scanhook test message"),
        section(format!(
            "{}: this channel will receive scanhook's notifications from {server}.",
            esc(&head, 300)
        )),
    ];
    blocks.extend(button("Open scanhook", t.server_url));
    Message {
        text: esc(&head, MAX_FALLBACK),
        blocks,
    }
}

/// The Block Kit JSON of a note.
pub fn render(note: &Note) -> String {
    let message = match note {
        Note::Digest(d) => digest(d),
        Note::Triage(t) => triage(t),
        Note::Test(t) => test(t),
    };
    debug_assert!(message.blocks.len() <= MAX_BLOCKS);
    serde_json::to_string(&message).expect("a Slack message always serialises")
}
