//! Discord: `{"content": …, "embeds": [...], "allowed_mentions": {"parse": []}}`, inside
//! Discord's limits (content 2,000 characters; at most 10 embeds; a title 256, a
//! description 4,096, a footer 2,048; at most 25 fields; 6,000 characters across all
//! embeds). `allowed_mentions.parse` is empty, so nothing pings anyone, and user text is
//! markdown-escaped, so it neither formats, links nor shows as a mention.

use super::clip::{discord_escape, escape_clip, link, one_line, units};
use super::{
    commit_line, counts_line, headline, more_text, rank, severities_line, severity_label,
    state_label, test_headline, triage_details, triage_headline, worst, Digest, FindingLine,
    Listing, Note, TestNote, TriageNote, LISTED_TRIAGE,
};
use crate::domain::findings::Severity;
use serde::Serialize;

/// Discord's limits (the embed object's documented limits).
pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
pub const MAX_EMBEDS_TOTAL: usize = 6000;
/// What the listing may fill across embeds: room is left for the "… and N more" line (its
/// text and a link of at most `clip::MAX_URL` characters).
const LISTING_BUDGET: usize = MAX_EMBEDS_TOTAL - 150 - super::clip::MAX_URL;

#[derive(Debug, Serialize)]
struct Message {
    content: String,
    embeds: Vec<Embed>,
    allowed_mentions: AllowedMentions,
}

#[derive(Debug, Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

#[derive(Debug, Default, Serialize)]
struct Embed {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<u32>,
}

impl Embed {
    /// What Discord counts towards the 6,000 characters of a message's embeds.
    fn length(&self) -> usize {
        self.title.as_deref().map_or(0, units) + self.description.as_deref().map_or(0, units)
    }
}

/// Escaped user text, at most `max` characters.
fn esc(s: &str, max: usize) -> String {
    escape_clip(&one_line(s), max, discord_escape)
}

/// `[label](url)`, or the label alone when the URL is not a link.
fn linked(url: &str, label: String) -> String {
    match link(url) {
        Some(u) => format!("[{label}]({u})"),
        None => label,
    }
}

fn color(s: Option<Severity>) -> u32 {
    match s.map(rank) {
        Some(4) => 0xB0_1C_2E,
        Some(3) => 0xE0_6C_00,
        Some(2) => 0xD4_A0_00,
        Some(1) => 0x2F_6F_DB,
        _ => 0x2E_A0_43,
    }
}

fn finding_text(f: &FindingLine, brief: bool) -> String {
    let rule = linked(f.rule_url, esc(f.rule, 150));
    let place = linked(f.url, esc(&format!("{}:{}", f.path, f.line), 200));
    if brief {
        return format!("• {rule} · {place}");
    }
    format!(
        "**{}** · {rule} · {place}\n{}",
        severity_label(f.severity),
        esc(f.message, 200)
    )
}

/// Adds `lines` as embeds titled `title`, one line per paragraph, while the embeds' total
/// stays within `budget`; returns how many lines it added.
fn add_lines(
    embeds: &mut Vec<Embed>,
    title: &str,
    colour: u32,
    lines: impl IntoIterator<Item = String>,
    budget: usize,
) -> usize {
    let mut added = 0;
    let mut total: usize = embeds.iter().map(Embed::length).sum();
    let mut current: Option<Embed> = None;
    for line in lines {
        let n = units(&line);
        let room_here = current
            .as_ref()
            .is_some_and(|e| e.description.as_deref().map_or(0, units) + 2 + n <= MAX_DESCRIPTION);
        let cost = if room_here { n + 2 } else { n + units(title) };
        // A new embed: the ones so far, the current one, this one, and one kept back for
        // the "… and N more" line.
        let embeds_after = embeds.len() + usize::from(current.is_some()) + 1;
        if total + cost > budget || (!room_here && embeds_after + 1 > MAX_EMBEDS) {
            break;
        }
        if room_here {
            let d = current.as_mut().and_then(|e| e.description.as_mut());
            if let Some(d) = d {
                d.push_str("\n\n");
                d.push_str(&line);
            }
        } else {
            embeds.extend(current.take());
            current = Some(Embed {
                title: Some(title.into()),
                description: Some(line),
                color: Some(colour),
                ..Embed::default()
            });
        }
        total += cost;
        added += 1;
    }
    embeds.extend(current);
    added
}

fn more(embeds: &mut Vec<Embed>, n: usize, what: &str, url: &str) {
    embeds.push(Embed {
        description: Some(linked(url, esc(&more_text(n, what), 100))),
        ..Embed::default()
    });
}

fn digest(d: &Digest) -> Message {
    let head = headline(&d.scan);
    let mut description = Vec::new();
    if let Some(c) = commit_line(&d.scan) {
        description.push(esc(&c, 500));
    }
    description.push(format!("**{}**", counts_line(d)));
    description.push(severities_line(d));
    let mut embeds = vec![Embed {
        title: Some(esc(&head, MAX_TITLE)),
        url: link(d.scan.url),
        description: Some(description.join("\n")),
        color: Some(color(worst(d))),
    }];
    let listing = Listing::of(d);
    let mut shown = 0;
    for (part, lines) in &listing.parts {
        let colour = match part {
            super::Part::Fixed => color(None),
            _ => color(lines.first().map(|f| f.severity)),
        };
        let texts: Vec<String> = lines
            .iter()
            .map(|f| finding_text(f, part.brief()))
            .collect();
        let added = add_lines(&mut embeds, part.title(), colour, texts, LISTING_BUDGET);
        shown += added;
        if added < lines.len() {
            break;
        }
    }
    if shown < listing.total {
        more(&mut embeds, listing.total - shown, "findings", d.scan.url);
    }
    Message {
        content: esc(&format!("{head}: {}", counts_line(d)), 300),
        embeds,
        allowed_mentions: AllowedMentions { parse: [] },
    }
}

fn triage(notes: &[TriageNote]) -> Message {
    let head = triage_headline(notes.len());
    let mut embeds = Vec::new();
    let lines = notes.iter().take(LISTED_TRIAGE).map(|t| {
        let f = &t.finding;
        let rule = linked(f.rule_url, esc(f.rule, 150));
        let place = linked(f.url, esc(&format!("{}:{}", f.path, f.line), 200));
        let mut text = format!(
            "**{}** · {rule} · {place}\n{} · {}",
            state_label(t.state),
            esc(t.repository, 150),
            esc(t.git_ref, 150)
        );
        if let Some(details) = triage_details(t) {
            text.push('\n');
            text.push_str(&esc(&details, 600));
        }
        text
    });
    let shown = add_lines(&mut embeds, &head, color(None), lines, LISTING_BUDGET);
    if shown < notes.len() {
        embeds.push(Embed {
            description: Some(esc(&more_text(notes.len() - shown, "triage changes"), 100)),
            ..Embed::default()
        });
    }
    Message {
        content: esc(&head, 300),
        embeds,
        allowed_mentions: AllowedMentions { parse: [] },
    }
}

fn test(t: &TestNote) -> Message {
    let head = test_headline(t);
    let server = linked(t.server_url, esc(t.server_url, 500));
    Message {
        content: esc(&head, 300),
        embeds: vec![Embed {
            title: Some("scanhook test message".into()),
            url: link(t.server_url),
            description: Some(format!(
                "{}: this channel will receive scanhook's notifications from {server}.",
                esc(&head, 300)
            )),
            color: Some(color(None)),
        }],
        allowed_mentions: AllowedMentions { parse: [] },
    }
}

/// The Discord webhook body of a note.
pub fn render(note: &Note) -> String {
    let message = match note {
        Note::Digest(d) => digest(d),
        Note::Triage(t) => triage(t),
        Note::Test(t) => test(t),
    };
    debug_assert!(message.embeds.len() <= MAX_EMBEDS);
    debug_assert!(message.embeds.iter().map(Embed::length).sum::<usize>() <= MAX_EMBEDS_TOTAL);
    serde_json::to_string(&message).expect("a Discord message always serialises")
}
