//! What a chat channel is sent: a scan's digest, triage changes or the Test action's note,
//! rendered for Slack (Block Kit), Microsoft Teams (an Adaptive Card in a Workflows
//! envelope) or Discord (embeds), and user templates for the `template` kind.
//! - [`clip`]: user text cleaned, escaped per platform and clipped without splitting a
//!   character; links checked.
//! - [`slack`], [`teams`], [`discord`]: one renderer each, inside the platform's limits.
//! - [`template`]: sandboxed, fuel-bounded minijinja templates.
//!
//! Renderers are pure and never fail: a note of any size comes out inside the platform's
//! documented limits, the findings that did not fit counted in an "… and N more" that
//! links to the scan's page. Every string a repository, a rule or a CI client controls
//! (rule ids, paths, messages, commit titles, names) is escaped for the platform's markup,
//! so it can neither link nor mention anyone.

pub mod clip;
pub mod discord;
pub mod slack;
pub mod teams;
pub mod template;

#[cfg(test)]
mod tests;

use super::findings::{named_enum, Severity, TriageState};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How an integration's messages are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The signed JSON bodies of the webhook events, as they are.
    Webhook,
    /// A Slack incoming webhook: Block Kit.
    Slack,
    /// A Teams Workflows webhook: an Adaptive Card.
    Teams,
    /// A Discord webhook: embeds.
    Discord,
    /// A user template over the webhook body, signed like a webhook.
    Template,
}

named_enum!(ChannelKind, "channel kind", {
    Webhook => "webhook",
    Slack => "slack",
    Teams => "teams",
    Discord => "discord",
    Template => "template",
});

impl ChannelKind {
    /// A chat platform, sent notes rendered by [`render_chat`].
    pub fn is_chat(self) -> bool {
        matches!(
            self,
            ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Discord
        )
    }

    /// Its messages carry scanhook's signature headers (chat platforms ignore them).
    pub fn signs(self) -> bool {
        matches!(self, ChannelKind::Webhook | ChannelKind::Template)
    }
}

/// What a digest says about the scan.
#[derive(Debug, Clone)]
pub struct ScanFacts<'a> {
    pub repository: &'a str,
    pub git_ref: &'a str,
    pub commit: Option<&'a str>,
    pub commit_title: Option<&'a str>,
    pub author: Option<&'a str>,
    pub pull_request_id: Option<&'a str>,
    pub pull_request_title: Option<&'a str>,
    pub exit_code: Option<i64>,
    /// The scan's page in scanhook's UI: an absolute http(s) URL (anything else is shown
    /// without a link, see [`clip::link`]).
    pub url: &'a str,
}

/// One finding as a line of a note.
#[derive(Debug, Clone)]
pub struct FindingLine<'a> {
    pub rule: &'a str,
    pub severity: Severity,
    pub path: &'a str,
    pub line: i64,
    pub message: &'a str,
    /// The finding's page in scanhook's UI (an absolute http(s) URL).
    pub url: &'a str,
    /// The rule's page (empty or not http(s): the rule is shown without a link).
    pub rule_url: &'a str,
}

/// What one scan did: its new, fixed and reopened findings.
#[derive(Debug, Clone)]
pub struct Digest<'a> {
    pub scan: ScanFacts<'a>,
    pub new: Vec<FindingLine<'a>>,
    pub fixed: Vec<FindingLine<'a>>,
    pub reopened: Vec<FindingLine<'a>>,
}

/// One triage change.
#[derive(Debug, Clone)]
pub struct TriageNote<'a> {
    pub repository: &'a str,
    pub git_ref: &'a str,
    pub finding: FindingLine<'a>,
    pub state: TriageState,
    pub reason: Option<&'a str>,
    pub comment: Option<&'a str>,
}

/// The Test action's note.
#[derive(Debug, Clone)]
pub struct TestNote<'a> {
    /// The integration's name.
    pub integration: &'a str,
    pub server_url: &'a str,
}

/// Everything a chat channel is sent.
#[derive(Debug, Clone)]
pub enum Note<'a> {
    Digest(Digest<'a>),
    Triage(Vec<TriageNote<'a>>),
    Test(TestNote<'a>),
}

/// A message body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// The content type an integration of `kind` posts: its template's for `template`
/// (with one), JSON otherwise.
pub fn content_type(kind: ChannelKind, template: Option<&template::Template>) -> &str {
    match template {
        Some(t) if kind == ChannelKind::Template => t.content_type(),
        _ => "application/json",
    }
}

/// Renders a note for a chat kind (slack, teams, discord); `None` for the other kinds,
/// which send webhook bodies. Never fails: whatever the size, the output stays inside the
/// platform's documented limits (what did not fit is counted in "… and N more", linked to
/// the scan's page).
pub fn render_chat(kind: ChannelKind, note: &Note) -> Option<Rendered> {
    let body = match kind {
        ChannelKind::Slack => slack::render(note),
        ChannelKind::Teams => teams::render(note),
        ChannelKind::Discord => discord::render(note),
        ChannelKind::Webhook | ChannelKind::Template => return None,
    };
    Some(Rendered {
        content_type: "application/json",
        body,
    })
}

/// At most this many findings of each part of a digest are listed; chat is for a glance,
/// the scan's page has the rest.
pub const LISTED_NEW: usize = 10;
pub const LISTED_REOPENED: usize = 5;
pub const LISTED_FIXED: usize = 5;
/// At most this many triage changes are listed in one message.
pub const LISTED_TRIAGE: usize = 10;

/// A part of a digest, in the order it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    New,
    Reopened,
    Fixed,
}

impl Part {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Part::New => "New findings",
            Part::Reopened => "Reopened",
            Part::Fixed => "Fixed",
        }
    }

    fn cap(self) -> usize {
        match self {
            Part::New => LISTED_NEW,
            Part::Reopened => LISTED_REOPENED,
            Part::Fixed => LISTED_FIXED,
        }
    }

    /// Fixed findings are listed briefly: no severity, no message.
    pub(crate) fn brief(self) -> bool {
        self == Part::Fixed
    }
}

/// The findings of a digest a renderer may list, most severe first in each part (ties
/// keep the caller's order), and how many there are in all.
pub(crate) struct Listing<'d, 'a> {
    pub parts: Vec<(Part, Vec<&'d FindingLine<'a>>)>,
    pub total: usize,
}

impl<'d, 'a> Listing<'d, 'a> {
    pub(crate) fn of(d: &'d Digest<'a>) -> Self {
        let mut parts = Vec::new();
        for (part, lines) in [
            (Part::New, &d.new),
            (Part::Reopened, &d.reopened),
            (Part::Fixed, &d.fixed),
        ] {
            if lines.is_empty() {
                continue;
            }
            let mut sorted: Vec<&FindingLine> = lines.iter().collect();
            sorted.sort_by_key(|f| std::cmp::Reverse(rank(f.severity)));
            sorted.truncate(part.cap());
            parts.push((part, sorted));
        }
        Listing {
            parts,
            total: d.new.len() + d.reopened.len() + d.fixed.len(),
        }
    }
}

/// Most severe first; experiments are not severities and go last.
pub(crate) fn rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 4,
        Severity::High => 3,
        Severity::Medium => 2,
        Severity::Low => 1,
        Severity::Experiment => 0,
    }
}

/// A severity as a chat line shows it: a coloured mark and its name.
pub(crate) fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "🔴 Critical",
        Severity::High => "🟠 High",
        Severity::Medium => "🟡 Medium",
        Severity::Low => "🔵 Low",
        Severity::Experiment => "⚪ Experiment",
    }
}

/// `<repository> · <ref>`, or `<repository> · PR #id: title` for a pull request.
pub(crate) fn headline(scan: &ScanFacts) -> String {
    let repo = clip::one_line(scan.repository);
    match scan.pull_request_id {
        Some(id) => {
            let title = scan
                .pull_request_title
                .map(clip::one_line)
                .filter(|t| !t.is_empty());
            match title {
                Some(t) => format!("{repo} · PR #{}: {t}", clip::one_line(id)),
                None => format!("{repo} · PR #{}", clip::one_line(id)),
            }
        }
        None => format!("{repo} · {}", clip::one_line(scan.git_ref)),
    }
}

/// The commit line: short hash, title and author, what is known of them.
pub(crate) fn commit_line(scan: &ScanFacts) -> Option<String> {
    let mut bits = Vec::new();
    if let Some(c) = scan.commit.map(clip::one_line).filter(|c| !c.is_empty()) {
        bits.push(c.chars().take(8).collect::<String>());
    }
    if let Some(t) = scan
        .commit_title
        .map(clip::one_line)
        .filter(|t| !t.is_empty())
    {
        bits.push(t);
    }
    if let Some(a) = scan.author.map(clip::one_line).filter(|a| !a.is_empty()) {
        bits.push(format!("by {a}"));
    }
    if let Some(code) = scan.exit_code.filter(|c| *c != 0) {
        bits.push(format!("exit code {code}"));
    }
    (!bits.is_empty()).then(|| bits.join(" · "))
}

/// `N new · N fixed · N reopened`.
pub(crate) fn counts_line(d: &Digest) -> String {
    format!(
        "{} new · {} fixed · {} reopened",
        d.new.len(),
        d.fixed.len(),
        d.reopened.len()
    )
}

/// The new findings by severity, or "No new findings".
pub(crate) fn severities_line(d: &Digest) -> String {
    if d.new.is_empty() {
        return "No new findings".into();
    }
    let count = |s: Severity| d.new.iter().filter(|f| f.severity == s).count();
    let mut line = format!(
        "New by severity: critical {} · high {} · medium {} · low {}",
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    );
    let experiments = count(Severity::Experiment);
    if experiments > 0 {
        line.push_str(&format!(" · experiment {experiments}"));
    }
    line
}

/// The most severe new finding's severity (a colour for the message).
pub(crate) fn worst(d: &Digest) -> Option<Severity> {
    d.new.iter().map(|f| f.severity).max_by_key(|s| rank(*s))
}

/// "… and N more" (the caller adds the link).
pub(crate) fn more_text(n: usize, what: &str) -> String {
    format!("… and {n} more {what}")
}

/// `Triage: 1 change` / `Triage: N changes`.
pub(crate) fn triage_headline(n: usize) -> String {
    match n {
        1 => "Triage: 1 change".into(),
        n => format!("Triage: {n} changes"),
    }
}

/// The reason and comment of a triage change, what is given of them.
pub(crate) fn triage_details(t: &TriageNote) -> Option<String> {
    let mut bits = Vec::new();
    if let Some(r) = t.reason.map(clip::one_line).filter(|r| !r.is_empty()) {
        bits.push(format!("reason: {}", clip::clip(&r, 200)));
    }
    if let Some(c) = t.comment.map(clip::one_line).filter(|c| !c.is_empty()) {
        bits.push(format!("comment: {}", clip::clip(&c, 300)));
    }
    (!bits.is_empty()).then(|| bits.join(" · "))
}

/// A triage state as people read it.
pub(crate) fn state_label(s: TriageState) -> String {
    let name = s.as_str().replace('_', " ");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name,
    }
}

/// The first line of a test note.
pub(crate) fn test_headline(t: &TestNote) -> String {
    format!(
        "scanhook test message for {}",
        clip::clip(&clip::one_line(t.integration), 200)
    )
}
