//! Every chat kind × every kind of note, snapshot-tested, each checked against its
//! platform's limits, and hostile text shown to stay text.

use super::*;
use crate::domain::channels::clip::units;
use serde_json::Value;

/// Test data lives as long as the test binary.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

const HOSTILE: &str = "<!channel> @everyone [x](http://evil) <http://evil|x>";

fn scan(hostile: bool) -> ScanFacts<'static> {
    ScanFacts {
        repository: "acme/api",
        git_ref: "refs/heads/main",
        commit: Some("4b1d2c3e5f60718293a4b5c6d7e8f90123456789"),
        commit_title: Some(if hostile {
            HOSTILE
        } else {
            "Parse the upload form"
        }),
        author: Some("Ada Lovelace"),
        pull_request_id: None,
        pull_request_title: None,
        exit_code: Some(1),
        url: "https://scanhook.example.com/ui/scans/scn_1",
    }
}

fn finding(i: usize, severity: Severity, hostile: bool) -> FindingLine<'static> {
    FindingLine {
        rule: if hostile {
            "<!channel>"
        } else {
            leak(format!("python.lang.security.rule-{i}"))
        },
        severity,
        path: leak(format!("src/module_{i}/views.py")),
        line: (i as i64) + 1,
        message: if hostile {
            leak(format!("{HOSTILE} and more"))
        } else {
            leak(format!("Finding number {i}: user input reaches a dangerous sink. ").repeat(8))
        },
        url: leak(format!("https://scanhook.example.com/ui/findings/fnd_{i}")),
        rule_url: if hostile {
            "javascript:alert(1)"
        } else {
            leak(format!(
                "https://semgrep.dev/r/python.lang.security.rule-{i}"
            ))
        },
    }
}

fn severity_of(i: usize) -> Severity {
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ][i % 4]
}

fn few() -> Note<'static> {
    Note::Digest(Digest {
        scan: scan(true),
        new: vec![
            finding(1, Severity::Medium, false),
            finding(2, Severity::Critical, true),
            finding(3, Severity::Low, false),
        ],
        fixed: vec![finding(4, Severity::High, false)],
        reopened: vec![],
    })
}

fn many() -> Note<'static> {
    let mut s = scan(false);
    s.pull_request_id = Some("3483");
    s.pull_request_title = Some("Add the upload form");
    Note::Digest(Digest {
        scan: s,
        new: (0..2000)
            .map(|i| finding(i, severity_of(i), false))
            .collect(),
        fixed: (2000..2030)
            .map(|i| finding(i, severity_of(i), false))
            .collect(),
        reopened: (2030..2050)
            .map(|i| finding(i, severity_of(i), false))
            .collect(),
    })
}

fn nothing_new() -> Note<'static> {
    Note::Digest(Digest {
        scan: ScanFacts {
            commit_title: None,
            author: None,
            exit_code: Some(0),
            ..scan(false)
        },
        new: vec![],
        fixed: vec![
            finding(7, Severity::High, false),
            finding(8, Severity::Low, false),
        ],
        reopened: vec![],
    })
}

fn triage() -> Note<'static> {
    let note = |i: usize, state, reason, comment, hostile| TriageNote {
        repository: "acme/api",
        git_ref: "refs/heads/main",
        finding: finding(i, severity_of(i), hostile),
        state,
        reason,
        comment,
    };
    Note::Triage(vec![
        note(
            1,
            TriageState::Ignored,
            Some("false_positive"),
            Some(HOSTILE),
            true,
        ),
        note(2, TriageState::Reviewing, None, None, false),
        note(
            3,
            TriageState::Fixing,
            None,
            Some("Fix in the next release"),
            false,
        ),
    ])
}

fn test_note() -> Note<'static> {
    Note::Test(TestNote {
        integration: "Security <!here> alerts",
        server_url: "https://scanhook.example.com",
    })
}

fn scenarios() -> Vec<(&'static str, Note<'static>)> {
    vec![
        ("few", few()),
        ("many", many()),
        ("nothing_new", nothing_new()),
        ("triage", triage()),
        ("test", test_note()),
    ]
}

const CHATS: [ChannelKind; 3] = [ChannelKind::Slack, ChannelKind::Teams, ChannelKind::Discord];

fn render(kind: ChannelKind, note: &Note) -> (Rendered, Value) {
    let r = render_chat(kind, note).expect("a chat kind renders");
    let v = serde_json::from_str(&r.body).expect("the body is JSON");
    (r, v)
}

fn text_units(v: &Value) -> usize {
    v.as_str().map_or(0, units)
}

fn check_slack(v: &Value) {
    let blocks = v["blocks"].as_array().unwrap();
    assert!(
        !blocks.is_empty() && blocks.len() <= slack::MAX_BLOCKS,
        "{} blocks",
        blocks.len()
    );
    assert!(text_units(&v["text"]) > 0 && text_units(&v["text"]) <= 3000);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(text_units(&b["text"]["text"]) <= slack::MAX_HEADER_TEXT);
            }
            "section" => {
                assert_eq!(b["text"]["type"], "mrkdwn");
                assert_eq!(b["text"]["verbatim"], true);
                let n = text_units(&b["text"]["text"]);
                assert!(n > 0 && n <= slack::MAX_SECTION_TEXT, "section of {n}");
            }
            "context" => {
                let elements = b["elements"].as_array().unwrap();
                assert!(elements.len() <= slack::MAX_CONTEXT_ELEMENTS);
                for e in elements {
                    assert!(text_units(&e["text"]) <= 3000);
                }
            }
            "actions" => {
                for e in b["elements"].as_array().unwrap() {
                    assert!(text_units(&e["text"]["text"]) <= slack::MAX_BUTTON_TEXT);
                    assert!(text_units(&e["url"]) <= 3000);
                }
            }
            "divider" => {}
            other => panic!("unexpected block {other}"),
        }
    }
}

fn check_teams(r: &Rendered, v: &Value) {
    assert!(
        r.body.len() < teams::MAX_BODY_BYTES,
        "{} bytes",
        r.body.len()
    );
    assert_eq!(v["type"], "message");
    let a = &v["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(a["contentUrl"], Value::Null);
    assert_eq!(a["content"]["type"], "AdaptiveCard");
    assert_eq!(a["content"]["version"], "1.5");
}

fn check_discord(v: &Value) {
    assert!(text_units(&v["content"]) <= discord::MAX_CONTENT);
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    let embeds = v["embeds"].as_array().unwrap();
    assert!(
        embeds.len() <= discord::MAX_EMBEDS,
        "{} embeds",
        embeds.len()
    );
    let mut total = 0;
    for e in embeds {
        let title = text_units(&e["title"]);
        let description = text_units(&e["description"]);
        assert!(title <= discord::MAX_TITLE && description <= discord::MAX_DESCRIPTION);
        let fields = e["fields"].as_array().map_or(0, Vec::len);
        assert!(fields <= discord::MAX_FIELDS);
        assert!(text_units(&e["footer"]["text"]) <= discord::MAX_FOOTER);
        total += title + description + text_units(&e["footer"]["text"]);
    }
    assert!(
        total <= discord::MAX_EMBEDS_TOTAL,
        "{total} characters in embeds"
    );
}

#[test]
fn every_kind_renders_every_note_inside_its_limits() {
    for kind in CHATS {
        for (name, note) in scenarios() {
            let (r, v) = render(kind, &note);
            assert_eq!(r.content_type, "application/json");
            match kind {
                ChannelKind::Slack => check_slack(&v),
                ChannelKind::Teams => check_teams(&r, &v),
                ChannelKind::Discord => check_discord(&v),
                _ => unreachable!(),
            }
            insta::assert_json_snapshot!(format!("{kind}_{name}"), v);
        }
    }
}

#[test]
fn non_chat_kinds_render_nothing() {
    for kind in [ChannelKind::Webhook, ChannelKind::Template] {
        assert!(!kind.is_chat() && kind.signs());
        assert_eq!(render_chat(kind, &test_note()), None);
    }
    for kind in CHATS {
        assert!(kind.is_chat() && !kind.signs());
        assert_eq!(kind.as_str().parse::<ChannelKind>(), Ok(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn a_large_digest_lists_the_most_severe_and_counts_the_rest() {
    for kind in CHATS {
        let (r, _) = render(kind, &many());
        let listed = r.body.matches("ui/findings/fnd_").count();
        assert!(listed > 0, "{kind}: nothing listed");
        // Each listed finding links once; the rest are counted.
        let more = format!("… and {} more findings", 2050 - listed);
        assert!(r.body.contains(&more), "{kind}: no {more:?}");
        assert!(
            r.body.contains("2000 new · 30 fixed · 20 reopened"),
            "{kind}"
        );
        assert!(
            r.body
                .contains("critical 500 · high 500 · medium 500 · low 500"),
            "{kind}"
        );
        // The first new finding listed is a critical one (index 3 is the first).
        let first = r.body.find("fnd_").unwrap() + 4;
        let id: String = r.body[first..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(id, "3", "{kind}");
    }
}

#[test]
fn nothing_new_says_so() {
    for kind in CHATS {
        let (r, _) = render(kind, &nothing_new());
        assert!(r.body.contains("No new findings"), "{kind}");
        assert!(!r.body.contains("more findings"), "{kind}");
    }
}

/// Every string of a JSON value, with the path of keys that leads to it.
fn strings<'v>(v: &'v Value, path: &str, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, path, out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| strings(x, &format!("{path}/{k}"), out)),
        _ => {}
    }
}

#[test]
fn hostile_text_neither_links_nor_mentions() {
    for note in [few(), triage(), test_note()] {
        let (_, slack) = render(ChannelKind::Slack, &note);
        let mut all = Vec::new();
        strings(&slack, "", &mut all);
        for (path, s) in all {
            for bad in ["<!channel>", "<!here>", "<http://evil", "javascript:"] {
                assert!(!s.contains(bad), "slack {path}: {s}");
            }
        }
        let body = slack.to_string();
        assert!(body.contains("&lt;!"), "the hostile text is shown, escaped");

        let (_, discord) = render(ChannelKind::Discord, &note);
        assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
        let mut all = Vec::new();
        strings(&discord, "", &mut all);
        for (path, s) in all {
            // Escaped, the hostile text shows as it is written, and does nothing.
            for bad in [
                "[x](http://evil)",
                "<http://evil|x>",
                "<!channel>",
                "http://evil",
            ] {
                assert!(!s.contains(bad), "discord {path}: {s}");
            }
            // Every @ is escaped (`\@`), so none renders as a mention.
            let unescaped = s.match_indices('@').any(|(i, _)| !s[..i].ends_with('\\'));
            assert!(!unescaped, "discord {path}: {s}");
        }

        let (_, teams) = render(ChannelKind::Teams, &note);
        let mut all = Vec::new();
        strings(&teams, "", &mut all);
        for (path, s) in &all {
            assert!(!s.contains("javascript:"), "teams {path}: {s}");
        }
        // User text sits only in TextRuns, which Teams renders without markdown.
        let body = &teams["attachments"][0]["content"]["body"];
        for e in body.as_array().unwrap() {
            if e["type"] == "TextBlock" {
                let t = e["text"].as_str().unwrap();
                assert!(
                    !t.contains('<') && !t.contains('[') && !t.contains('@'),
                    "{t}"
                );
            }
        }
        let runs = all
            .iter()
            .filter(|(p, s)| p.ends_with("/inlines/text") && s.contains("<!"));
        assert!(runs.count() > 0, "the hostile text is shown in a TextRun");
    }
}

#[test]
fn long_user_text_is_clipped_by_characters() {
    let long = leak("é🔴".repeat(5000));
    let note = Note::Digest(Digest {
        scan: ScanFacts {
            repository: long,
            commit_title: Some(long),
            ..scan(false)
        },
        new: vec![FindingLine {
            rule: long,
            path: long,
            message: long,
            ..finding(1, Severity::High, false)
        }],
        fixed: vec![],
        reopened: vec![],
    });
    for kind in CHATS {
        let (r, v) = render(kind, &note);
        match kind {
            ChannelKind::Slack => check_slack(&v),
            ChannelKind::Teams => check_teams(&r, &v),
            _ => check_discord(&v),
        }
        assert!(r.body.contains('…'), "{kind}");
    }
}
