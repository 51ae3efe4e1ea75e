//! Routing: which integration is sent which events, as one pure function. A scan outcome,
//! a triage change or a backfill becomes a list of events; [`route`] turns the events and
//! the deployment's integrations into the outbox to queue.
//!
//! - `semgrep_scan` goes to every enabled integration subscribed to it whose repository and
//!   ref filters pass.
//! - `semgrep_finding` goes to an integration subscribed to it when the finding's rule mode
//!   notifies the integration (the seed's mechanism) and its filters pass.
//! - `finding_fixed`, `finding_reopened` and `finding_triaged` go to integrations
//!   subscribed to them whose filters pass; rule modes do not gate them (a filter on
//!   `finding.mode` does, where wanted).
//!
//! Finding events are sent as JSON arrays of at most [`FINDINGS_PER_MESSAGE`] objects.
//! Integrations that select the same events of a kind share those arrays' bodies.

use super::channels::template::message_context;
use super::channels::{render_chat, ChannelKind, Digest, FindingLine, Note, ScanFacts, TriageNote};
use super::event_kind::EventKind;
use super::filters::{Filters, Subject};
use super::findings::TriageState;
use super::integration::Integration;
use super::mode::RuleMode;
use super::outbox::{NewMessage, Outbox, FINDINGS_PER_MESSAGE};
use super::payload::{self, FindingFacts};
use crate::ids::IntegrationId;
use serde_json::Value;
use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

/// A `semgrep_scan` to route.
#[derive(Debug, Clone)]
pub struct ScanEvent<'a> {
    pub repository: &'a str,
    pub git_ref: &'a str,
    /// `{"semgrep_scan": …}`.
    pub object: String,
}

/// One finding event to route: what filters read, and the object it adds to an array.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// `subject.event` is the event's kind.
    pub subject: Subject<'a>,
    /// `{"<kind>": …}`.
    pub object: EventObject<'a>,
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        self.subject.event
    }
}

/// The object an event adds to an array: written already, or a `semgrep_finding` written
/// each time a body takes it. A scan of 100,000 new findings would otherwise hold all their
/// objects at once, besides the bodies made of them.
#[derive(Debug, Clone)]
pub enum EventObject<'a> {
    Json(String),
    Finding(FindingFacts<'a>),
}

impl EventObject<'_> {
    /// The object's JSON.
    pub fn json(&self) -> Cow<'_, str> {
        match self {
            EventObject::Json(json) => Cow::Borrowed(json),
            EventObject::Finding(facts) => Cow::Owned(payload::semgrep_finding(facts)),
        }
    }
}

impl From<String> for EventObject<'_> {
    fn from(json: String) -> Self {
        EventObject::Json(json)
    }
}

/// An integration's expression failed on events: those were not sent to it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterFailure {
    pub integration: IntegrationId,
    pub kind: EventKind,
    /// How many events it failed on.
    pub count: usize,
    /// The first failure, with the rule and path of its finding.
    pub first: String,
}

/// The events of one kind that reach one integration, by index into the routed events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub integration_id: i64,
    pub kind: EventKind,
    pub events: Vec<usize>,
}

/// What [`route`] decided.
#[derive(Debug, Default)]
pub struct Routed {
    pub outbox: Outbox,
    /// Which events reach which integration (none listed for an integration that gets none).
    pub selections: Vec<Selection>,
    pub failures: Vec<FilterFailure>,
}

impl Routed {
    /// How many finding events reach `integration_id` (of any kind).
    pub fn events_for(&self, integration_id: i64) -> usize {
        self.selections
            .iter()
            .filter(|s| s.integration_id == integration_id)
            .map(|s| s.events.len())
            .sum()
    }
}

/// Whether `i` is sent `e`, or why its expression failed on it.
pub fn admits(i: &Integration, e: &Event) -> Result<bool, String> {
    let kind = e.kind();
    if !i.enabled || !i.receives(kind) {
        return Ok(false);
    }
    if kind == EventKind::Finding && !i.modes.contains(&e.subject.mode) {
        return Ok(false);
    }
    i.filters.admits(&e.subject)
}

/// Whether `i` is sent the scan.
pub fn admits_scan(i: &Integration, s: &ScanEvent) -> bool {
    i.enabled && i.receives(EventKind::Scan) && i.filters.admits_scan(s.repository, s.git_ref)
}

/// Where chat messages link to: pages of scanhook's UI under its public URL.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `--public-url`, without a trailing slash.
    pub base: String,
}

impl Links {
    pub fn new(base: &str) -> Links {
        Links {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// A scan's page.
    pub fn scan(&self, public_id: &str) -> String {
        format!("{}/scans/{}", self.base, enc(public_id))
    }

    /// A rule's page.
    pub fn rule(&self, rule: &str) -> String {
        format!("{}/rules/{}", self.base, enc(rule))
    }

    /// The findings of a rule on a ref of a repository (the list, any status).
    pub fn findings(&self, repository: &str, git_ref: &str, rule: &str) -> String {
        format!(
            "{}/findings?status=any&repos={}&ref={}&rules={}",
            self.base,
            enc(repository),
            enc(git_ref),
            enc(rule)
        )
    }
}

/// What a link's path segment or query value keeps as it is: RFC 3986's unreserved.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The events of each kind that reach `i`, by index; failures of its expression recorded.
fn select(
    i: &Integration,
    events: &[Event],
    failures: &mut Vec<FilterFailure>,
) -> Vec<(EventKind, Vec<usize>)> {
    let mut out = Vec::new();
    for kind in EventKind::SUBSCRIBABLE {
        if kind == EventKind::Scan || !i.receives(kind) {
            continue;
        }
        let mut chosen = Vec::new();
        let mut failure: Option<FilterFailure> = None;
        for (n, e) in events.iter().enumerate().filter(|(_, e)| e.kind() == kind) {
            match admits(i, e) {
                Ok(true) => chosen.push(n),
                Ok(false) => {}
                Err(why) => match &mut failure {
                    Some(f) => f.count += 1,
                    None => {
                        failure = Some(FilterFailure {
                            integration: i.public_id.clone(),
                            kind,
                            count: 1,
                            first: format!(
                                "{why} (rule {}, {}:{})",
                                e.subject.rule, e.subject.path, e.subject.line
                            ),
                        })
                    }
                },
            }
        }
        failures.extend(failure);
        if !chosen.is_empty() {
            out.push((kind, chosen));
        }
    }
    out
}

/// The messages to queue for a scan (if any) and finding events: per integration, the
/// scan first, then its arrays in the order of [`EventKind::SUBSCRIBABLE`]. Webhook
/// integrations get the seed's bodies; template integrations the same messages through
/// their template; chat integrations one digest per scan (or one note per triage) in their
/// platform's format, linking to `links`.
pub fn route<I: Borrow<Integration>>(
    integrations: &[I],
    scan: Option<&ScanEvent>,
    events: &[Event],
    links: &Links,
) -> Routed {
    let mut out = Routed::default();
    let mut scan_payload: Option<usize> = None;
    // (kind, selected events) → the payloads of their arrays.
    let mut arrays: HashMap<(EventKind, Vec<usize>), Vec<usize>> = HashMap::new();
    for i in integrations
        .iter()
        .map(Borrow::borrow)
        .filter(|i| i.enabled)
    {
        let scan_admitted = scan.filter(|s| admits_scan(i, s));
        let selected = select(i, events, &mut out.failures);
        match i.kind {
            ChannelKind::Webhook => {
                if let Some(s) = scan_admitted {
                    let payload = *scan_payload.get_or_insert_with(|| {
                        out.outbox.payloads.push(s.object.clone());
                        out.outbox.payloads.len() - 1
                    });
                    out.outbox.messages.push(NewMessage {
                        integration_id: i.id,
                        kind: EventKind::Scan,
                        payload,
                    });
                }
                for (kind, chosen) in &selected {
                    let key = (*kind, chosen.clone());
                    let payloads = match arrays.get(&key) {
                        Some(p) => p.clone(),
                        None => {
                            let mut payloads = Vec::new();
                            for body in arrays_of(events, chosen) {
                                payloads.push(out.outbox.payloads.len());
                                out.outbox.payloads.push(body);
                            }
                            arrays.insert(key, payloads.clone());
                            payloads
                        }
                    };
                    out.outbox
                        .messages
                        .extend(payloads.into_iter().map(|payload| NewMessage {
                            integration_id: i.id,
                            kind: *kind,
                            payload,
                        }));
                }
            }
            ChannelKind::Template => {
                let mut bodies: Vec<(EventKind, String)> = Vec::new();
                if let Some(s) = scan_admitted {
                    bodies.push((EventKind::Scan, s.object.clone()));
                }
                for (kind, chosen) in &selected {
                    bodies.extend(arrays_of(events, chosen).into_iter().map(|b| (*kind, b)));
                }
                for (kind, body) in bodies {
                    match render_template(i, kind, &body, links) {
                        Ok(rendered) => {
                            out.outbox.payloads.push(rendered);
                            out.outbox.messages.push(NewMessage {
                                integration_id: i.id,
                                kind,
                                payload: out.outbox.payloads.len() - 1,
                            });
                        }
                        Err(why) => out.failures.push(FilterFailure {
                            integration: i.public_id.clone(),
                            kind,
                            count: 1,
                            first: format!("the template failed: {why}"),
                        }),
                    }
                }
            }
            kind => {
                if let Some((note_kind, body)) = chat_message(
                    kind,
                    scan_admitted.or(scan.filter(|_| !selected.is_empty())),
                    events,
                    &selected,
                    links,
                ) {
                    out.outbox.payloads.push(body);
                    out.outbox.messages.push(NewMessage {
                        integration_id: i.id,
                        kind: note_kind,
                        payload: out.outbox.payloads.len() - 1,
                    });
                }
            }
        }
        out.selections
            .extend(selected.into_iter().map(|(kind, events)| Selection {
                integration_id: i.id,
                kind,
                events,
            }));
    }
    out
}

/// The JSON arrays of the chosen events, at most [`FINDINGS_PER_MESSAGE`] each.
fn arrays_of(events: &[Event], chosen: &[usize]) -> Vec<String> {
    chosen
        .chunks(FINDINGS_PER_MESSAGE)
        .map(|chunk| {
            let mut array = String::from("[");
            for (at, &n) in chunk.iter().enumerate() {
                if at > 0 {
                    array.push(',');
                }
                array.push_str(&events[n].object.json());
            }
            array.push(']');
            array
        })
        .collect()
}

/// A message body through an integration's template.
fn render_template(
    i: &Integration,
    kind: EventKind,
    body: &str,
    links: &Links,
) -> Result<String, String> {
    let Some(template) = &i.template else {
        return Err("its stored template no longer compiles".into());
    };
    let body: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    template
        .render(&message_context(kind, body, &links.base))
        .map(|o| o.body)
        .map_err(|e| e.to_string())
}

/// A chat integration's message: a digest of the scan, or (without a scan) a note of the
/// triage changes. `None` when there is nothing to say.
fn chat_message(
    kind: ChannelKind,
    scan: Option<&ScanEvent>,
    events: &[Event],
    selected: &[(EventKind, Vec<usize>)],
    links: &Links,
) -> Option<(EventKind, String)> {
    // The selected events in order, each with its kind and its two links.
    let chosen: Vec<(EventKind, usize)> = selected
        .iter()
        .flat_map(|(k, c)| c.iter().map(move |&n| (*k, n)))
        .collect();
    let urls: Vec<(String, String)> = chosen
        .iter()
        .map(|&(_, n)| {
            let s = &events[n].subject;
            (
                links.findings(s.repository, s.git_ref, s.rule),
                links.rule(s.rule),
            )
        })
        .collect();
    let line = |at: usize| -> FindingLine<'_> {
        let s = &events[chosen[at].1].subject;
        FindingLine {
            rule: s.rule,
            severity: s.severity,
            path: s.path,
            line: s.line,
            message: s.message,
            url: &urls[at].0,
            rule_url: &urls[at].1,
        }
    };
    let picked = &chosen;
    let of_kind = |k: EventKind| (0..picked.len()).filter(move |&at| picked[at].0 == k);
    let lines = |k: EventKind| -> Vec<FindingLine<'_>> { of_kind(k).map(line).collect() };
    if let Some(s) = scan {
        let summary: Value = serde_json::from_str(&s.object).unwrap_or(Value::Null);
        let o = &summary["semgrep_scan"];
        let text = |k: &str| o[k].as_str().filter(|v| !v.is_empty());
        let scan_url = links.scan(text("id").unwrap_or_default());
        let note = Note::Digest(Digest {
            scan: ScanFacts {
                repository: s.repository,
                git_ref: s.git_ref,
                commit: text("commit"),
                commit_title: text("commit_title"),
                author: text("commit_author_name").or(text("commit_author_username")),
                pull_request_id: text("pull_request_id"),
                pull_request_title: text("pull_request_title"),
                exit_code: o["exit_code"].as_i64(),
                url: &scan_url,
            },
            new: lines(EventKind::Finding),
            fixed: lines(EventKind::FindingFixed),
            reopened: lines(EventKind::FindingReopened),
        });
        return render_chat(kind, &note).map(|r| (EventKind::Scan, r.body));
    }
    // Only triage objects are read back: what the state, reason and comment became.
    let triaged: Vec<(usize, Value)> = of_kind(EventKind::FindingTriaged)
        .map(|at| {
            let v: Value =
                serde_json::from_str(&events[chosen[at].1].object.json()).unwrap_or(Value::Null);
            (at, v[EventKind::FindingTriaged.as_str()].clone())
        })
        .collect();
    if triaged.is_empty() {
        return None;
    }
    let notes: Vec<TriageNote> = triaged
        .iter()
        .map(|(at, o)| {
            let s = &events[chosen[*at].1].subject;
            TriageNote {
                repository: s.repository,
                git_ref: s.git_ref,
                finding: line(*at),
                state: o["triage_state"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(TriageState::Untriaged),
                reason: o["triage_reason"].as_str(),
                comment: o["comment"].as_str(),
            }
        })
        .collect();
    render_chat(kind, &Note::Triage(notes)).map(|r| (EventKind::FindingTriaged, r.body))
}

/// How far back a preview of filters looks: findings first seen in this many days.
pub const PREVIEW_DAYS: i64 = 30;

/// What filters would have sent of a set of findings (each as a `semgrep_finding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preview {
    /// Findings looked at.
    pub recent: usize,
    /// Passed by the filters.
    pub matching: usize,
    /// Of those, in a rule mode that notifies (every mode counts without `modes`).
    pub notified: usize,
    /// The expression failed on these (they would not be sent).
    pub failed: usize,
}

/// Counts what `filters` pass of `subjects`, and of those what `modes` notify.
pub fn preview(subjects: &[Subject], filters: &Filters, modes: Option<&[RuleMode]>) -> Preview {
    let mut p = Preview {
        recent: subjects.len(),
        ..Preview::default()
    };
    for s in subjects {
        match filters.admits(s) {
            Ok(true) => {
                p.matching += 1;
                if modes.is_none_or(|m| m.contains(&s.mode)) {
                    p.notified += 1;
                }
            }
            Ok(false) => {}
            Err(_) => p.failed += 1,
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filters::FilterSpec;
    use crate::domain::findings::Severity;
    use crate::domain::integration::SigningSecret;
    use crate::domain::webhook::WebhookUrl;
    use crate::ids::DeploymentId;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn integration(
        id: i64,
        modes: &[RuleMode],
        events: &[EventKind],
        filters: FilterSpec,
    ) -> Integration {
        Integration {
            id,
            public_id: IntegrationId::generate(),
            deployment_id: DeploymentId(1),
            name: format!("integration {id}"),
            kind: ChannelKind::Webhook,
            template: None,
            url: WebhookUrl::parse("https://hooks.example.com/").unwrap(),
            enabled: true,
            disabled_reason: None,
            secret: SigningSecret::new("whsec_x".into()),
            old_secret: None,
            old_secret_until: None,
            failing_since: None,
            modes: modes.to_vec(),
            events: events.to_vec(),
            filters: filters.compile().unwrap(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn event<'a>(
        kind: EventKind,
        mode: RuleMode,
        path: &'a str,
        severity: Severity,
        meta: &'a Value,
        n: usize,
    ) -> Event<'a> {
        Event {
            subject: Subject {
                event: kind,
                repository: "acme/api",
                git_ref: "refs/heads/main",
                rule: "r",
                path,
                line: n as i64,
                message: "m",
                severity,
                mode,
                metadata: meta,
            },
            object: format!("{{\"{kind}\":{n}}}").into(),
        }
    }

    fn scan() -> ScanEvent<'static> {
        ScanEvent {
            repository: "acme/api",
            git_ref: "refs/heads/main",
            object: "{\"semgrep_scan\":{}}".into(),
        }
    }

    #[test]
    fn links_encode_what_they_carry() {
        let l = Links::new("https://scanhook.example/");
        assert_eq!(
            l.rule("java.lang/x y"),
            "https://scanhook.example/rules/java.lang%2Fx%20y"
        );
        assert_eq!(
            l.findings("acme/api", "refs/heads/main", "r&s"),
            "https://scanhook.example/findings?status=any&repos=acme%2Fapi&ref=refs%2Fheads%2Fmain&rules=r%26s"
        );
    }

    #[test]
    fn chat_kinds_get_one_digest_per_scan_and_templates_each_body() {
        use crate::domain::channels::template::Template;
        let meta = json!({});
        let events: Vec<Event> = (0..600)
            .map(|n| {
                event(
                    EventKind::Finding,
                    RuleMode::Monitor,
                    "a.py",
                    Severity::High,
                    &meta,
                    n,
                )
            })
            .collect();
        let mut slack = integration(
            1,
            &[RuleMode::Monitor],
            &EventKind::DEFAULT,
            FilterSpec::default(),
        );
        slack.kind = ChannelKind::Slack;
        let mut quiet = integration(
            2,
            &[RuleMode::Monitor],
            &[EventKind::FindingFixed],
            FilterSpec::default(),
        );
        quiet.kind = ChannelKind::Discord;
        let mut templated = integration(
            3,
            &[RuleMode::Monitor],
            &EventKind::DEFAULT,
            FilterSpec::default(),
        );
        templated.kind = ChannelKind::Template;
        templated.template = Some(std::sync::Arc::new(
            Template::compile("{{ event }}:{{ body | length }}", "text/plain").unwrap(),
        ));
        let links = Links::new("https://scanhook.example/");
        let routed = route(&[slack, quiet, templated], Some(&scan()), &events, &links);
        let of = |id: i64| -> Vec<(EventKind, &str)> {
            routed
                .outbox
                .messages
                .iter()
                .filter(|m| m.integration_id == id)
                .map(|m| (m.kind, routed.outbox.payloads[m.payload].as_str()))
                .collect()
        };
        let digest = of(1);
        assert_eq!(digest.len(), 1, "one digest for 600 findings");
        assert_eq!(digest[0].0, EventKind::Scan);
        assert!(digest[0].1.contains("600 new"), "{}", digest[0].1);
        assert!(
            digest[0].1.contains("https://scanhook.example/rules/r"),
            "{}",
            digest[0].1
        );
        assert!(
            of(2).is_empty(),
            "nothing it subscribes to happened: no digest"
        );
        let bodies: Vec<&str> = of(3).iter().map(|&(_, b)| b).collect();
        assert_eq!(
            bodies,
            [
                "semgrep_scan:1",
                "semgrep_finding:500",
                "semgrep_finding:100"
            ]
        );
        assert_eq!(routed.events_for(1), 600);
    }

    #[test]
    fn the_seeds_default_is_the_old_routing() {
        use RuleMode::{Block, Comment, Monitor};
        let d = &EventKind::DEFAULT;
        let none = FilterSpec::default;
        let mut integrations = vec![
            integration(1, &[Block, Monitor], d, none()),
            integration(2, &[Monitor, Block], d, none()),
            integration(3, &[Block], d, none()),
            integration(4, &[Block, Monitor], d, none()),
        ];
        integrations[3].enabled = false;
        let meta = json!({});
        let mut events = vec![event(
            EventKind::Finding,
            Comment,
            "c",
            Severity::Low,
            &meta,
            0,
        )];
        for n in 0..FINDINGS_PER_MESSAGE + 1 {
            events.push(event(
                EventKind::Finding,
                Block,
                "b",
                Severity::Low,
                &meta,
                n + 1,
            ));
        }
        events.push(event(
            EventKind::Finding,
            Monitor,
            "m",
            Severity::Low,
            &meta,
            999,
        ));
        let out = route(&integrations, Some(&scan()), &events, &Links::default()).outbox;
        let of = |id: i64| -> Vec<(EventKind, usize)> {
            out.messages
                .iter()
                .filter(|m| m.integration_id == id)
                .map(|m| (m.kind, m.payload))
                .collect()
        };
        assert!(of(4).is_empty(), "disabled: nothing");
        assert_eq!(
            of(1),
            of(2),
            "the same modes in another order: the same payloads"
        );
        assert_eq!(
            of(1).len(),
            3,
            "a scan object and two arrays (502 findings)"
        );
        assert_eq!(
            of(3).len(),
            3,
            "a scan object and two arrays (501 findings)"
        );
        assert_eq!(of(1)[0], (EventKind::Scan, 0));
        assert_eq!(
            of(3)[0],
            (EventKind::Scan, 0),
            "one scan object for everyone"
        );
        assert_ne!(of(1)[1].1, of(3)[1].1);
        assert_eq!(out.payloads.len(), 5);
        let array = |p: usize| serde_json::from_str::<Vec<Value>>(&out.payloads[p]).unwrap();
        let sizes: Vec<usize> = of(1)[1..].iter().map(|&(_, p)| array(p).len()).collect();
        assert_eq!(sizes, [FINDINGS_PER_MESSAGE, 2]);
        let sizes: Vec<usize> = of(3)[1..].iter().map(|&(_, p)| array(p).len()).collect();
        assert_eq!(sizes, [FINDINGS_PER_MESSAGE, 1]);
        assert!(
            !out.payloads.iter().any(|p| p.contains(":0}")),
            "Comment notifies none"
        );
    }

    #[test]
    fn an_expression_that_fails_on_a_finding_does_not_send_it_and_says_so() {
        let meta_with = json!({"confidence": "HIGH"});
        let meta_without = json!({});
        let i = integration(
            1,
            &[RuleMode::Monitor],
            &[EventKind::Finding],
            FilterSpec {
                expression: Some("finding.metadata.confidence == \"HIGH\"".into()),
                ..FilterSpec::default()
            },
        );
        let events = [
            event(
                EventKind::Finding,
                RuleMode::Monitor,
                "a.py",
                Severity::Low,
                &meta_with,
                0,
            ),
            event(
                EventKind::Finding,
                RuleMode::Monitor,
                "b.py",
                Severity::Low,
                &meta_without,
                1,
            ),
            event(
                EventKind::Finding,
                RuleMode::Monitor,
                "c.py",
                Severity::Low,
                &meta_without,
                2,
            ),
        ];
        let routed = route(&[i], Some(&scan()), &events, &Links::default());
        assert_eq!(routed.selections[0].events, [0]);
        assert_eq!(routed.failures.len(), 1);
        assert_eq!(routed.failures[0].count, 2);
        assert!(
            routed.failures[0].first.contains("b.py:1"),
            "{}",
            routed.failures[0].first
        );
        assert_eq!(
            routed.outbox.messages.len(),
            1,
            "one array; no scan object, not subscribed"
        );
    }

    fn arb_spec() -> impl Strategy<Value = FilterSpec> {
        (
            prop::option::of(prop::sample::select(vec![
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ])),
            prop::sample::subsequence(vec!["app/**".to_string(), "lib/*".to_string()], 0..=2),
            prop::sample::subsequence(
                vec![
                    "refs/heads/main".to_string(),
                    "refs/pull/*".to_string(),
                    "refs/pull/**".to_string(),
                ],
                0..=2,
            ),
            prop::sample::subsequence(vec!["acme/*".to_string(), "other/x".to_string()], 0..=2),
            prop::option::of(prop::sample::select(vec![
                "finding.line % 2 == 0".to_string(),
                "finding.metadata.confidence == \"HIGH\"".to_string(),
            ])),
        )
            .prop_map(
                |(min_severity, paths, refs, repos, expression)| FilterSpec {
                    min_severity,
                    paths,
                    refs,
                    repos,
                    expression,
                    ..FilterSpec::default()
                },
            )
    }

    #[derive(Debug, Clone)]
    struct E {
        kind: EventKind,
        mode: RuleMode,
        path: &'static str,
        git_ref: &'static str,
        repository: &'static str,
        severity: Severity,
        line: i64,
        confident: Option<bool>,
    }

    fn arb_event() -> impl Strategy<Value = E> {
        (
            prop::sample::select(EventKind::SUBSCRIBABLE[1..].to_vec()),
            prop::sample::select(vec![RuleMode::Monitor, RuleMode::Comment, RuleMode::Block]),
            prop::sample::select(vec!["app/x.py", "lib/y.py", "tests/z.py"]),
            prop::sample::select(vec!["refs/heads/main", "refs/pull/3/merge", "dev"]),
            prop::sample::select(vec!["acme/api", "other/x", "third/y"]),
            prop::sample::select(vec![
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ]),
            0i64..6,
            prop::option::of(any::<bool>()),
        )
            .prop_map(
                |(kind, mode, path, git_ref, repository, severity, line, confident)| E {
                    kind,
                    mode,
                    path,
                    git_ref,
                    repository,
                    severity,
                    line,
                    confident,
                },
            )
    }

    /// One glob as documented: `*` inside a segment, `**` across segments.
    fn glob(pattern: &str, s: &str) -> bool {
        globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .unwrap()
            .compile_matcher()
            .is_match(s)
    }

    /// The reference: the rule of the issue, written out plainly.
    fn should_receive(i: &(Vec<RuleMode>, Vec<EventKind>, FilterSpec, bool), e: &E) -> bool {
        let (modes, events, spec, enabled) = i;
        let globs = |list: &[String], s: &str| list.is_empty() || list.iter().any(|g| glob(g, s));
        *enabled
            && events.contains(&e.kind)
            && (e.kind != EventKind::Finding || modes.contains(&e.mode))
            && spec.min_severity.is_none_or(|m| e.severity >= m)
            && globs(&spec.paths, e.path)
            && globs(&spec.refs, e.git_ref)
            && globs(&spec.repos, e.repository)
            && match spec.expression.as_deref() {
                None => true,
                Some(x) if x.contains("line") => e.line % 2 == 0,
                Some(_) => e.confident == Some(true),
            }
    }

    proptest! {
        #[test]
        fn every_event_reaches_exactly_the_integrations_that_match_it(
            specs in prop::collection::vec(
                (
                    prop::sample::subsequence(vec![RuleMode::Monitor, RuleMode::Comment, RuleMode::Block], 0..=3),
                    prop::sample::subsequence(EventKind::SUBSCRIBABLE.to_vec(), 1..=5),
                    arb_spec(),
                    prop::bool::weighted(0.85),
                ),
                0..6,
            ),
            raw in prop::collection::vec(arb_event(), 0..40),
        ) {
            let integrations: Vec<Integration> = specs
                .iter()
                .enumerate()
                .map(|(n, (modes, events, spec, enabled))| {
                    let mut i = integration(n as i64 + 1, modes, events, spec.clone());
                    i.enabled = *enabled;
                    i
                })
                .collect();
            let metas: Vec<Value> = raw
                .iter()
                .map(|e| match e.confident {
                    Some(true) => json!({"confidence": "HIGH"}),
                    Some(false) => json!({"confidence": "LOW"}),
                    None => json!({}),
                })
                .collect();
            let events: Vec<Event> = raw
                .iter()
                .zip(&metas)
                .enumerate()
                .map(|(n, (e, meta))| Event {
                    subject: Subject {
                        event: e.kind,
                        repository: e.repository,
                        git_ref: e.git_ref,
                        rule: "r",
                        path: e.path,
                        line: e.line,
                        message: "m",
                        severity: e.severity,
                        mode: e.mode,
                        metadata: meta,
                    },
                    object: format!("{{\"{}\":{n}}}", e.kind).into(),
                })
                .collect();
            let scan = ScanEvent { repository: "acme/api", git_ref: "refs/pull/3/merge", object: "{\"semgrep_scan\":{}}".into() };
            let routed = route(&integrations, Some(&scan), &events, &Links::default());
            for (n, i) in integrations.iter().enumerate() {
                // What the messages carry, read back from the bodies.
                let mut got: Vec<(EventKind, usize)> = Vec::new();
                let mut scans = 0;
                for m in routed.outbox.messages.iter().filter(|m| m.integration_id == i.id) {
                    let body: Value = serde_json::from_str(&routed.outbox.payloads[m.payload]).unwrap();
                    if m.kind == EventKind::Scan {
                        scans += 1;
                        continue;
                    }
                    let items = body.as_array().unwrap();
                    prop_assert!(items.len() <= FINDINGS_PER_MESSAGE);
                    for item in items {
                        let index = item[m.kind.as_str()].as_u64().unwrap() as usize;
                        prop_assert_eq!(events[index].kind(), m.kind);
                        got.push((m.kind, index));
                    }
                }
                let mut want: Vec<(EventKind, usize)> = raw
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| should_receive(&specs[n], e))
                    .map(|(k, e)| (e.kind, k))
                    .collect();
                got.sort_by_key(|&(k, x)| (k.as_str(), x));
                want.sort_by_key(|&(k, x)| (k.as_str(), x));
                prop_assert_eq!(&got, &want, "integration {}", n + 1);
                let scan_wanted = specs[n].3
                    && specs[n].1.contains(&EventKind::Scan)
                    && {
                        let s = &specs[n].2;
                        let g = |l: &[String], v: &str| l.is_empty() || l.iter().any(|p| glob(p, v));
                        g(&s.repos, scan.repository) && g(&s.refs, scan.git_ref)
                    };
                prop_assert_eq!(scans, usize::from(scan_wanted));
                prop_assert_eq!(routed.events_for(i.id), want.len());
            }
            // Every failure is of an expression reading a key a finding lacks.
            for f in &routed.failures {
                prop_assert!(f.first.contains("confidence"), "{}", f.first);
            }
        }
    }
}
