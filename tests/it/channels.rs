//! Chat bodies as the platforms' own published libraries see them: every note rendered
//! through the public `scanhook::domain::channels` API, the Teams cards parsed and
//! validated by Microsoft's `adaptivecards` and the Discord embeds built by
//! `@discordjs/builders` (both in `tests/browser/channels.mjs`), the Slack bodies checked
//! here against Block Kit's limits and field types.

use scanhook::domain::channels::{
    render_chat, ChannelKind, Digest, FindingLine, Note, ScanFacts, TestNote, TriageNote,
};
use scanhook::domain::findings::{Severity, TriageState};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HOSTILE: &str = "<!channel> @everyone [x](http://evil) <http://evil|x> **b** `c`";

/// What the notes borrow.
struct Data {
    rules: Vec<String>,
    paths: Vec<String>,
    messages: Vec<String>,
    urls: Vec<String>,
    rule_urls: Vec<String>,
    long: String,
}

impl Data {
    fn new(n: usize) -> Data {
        Data {
            rules: (0..n)
                .map(|i| format!("python.lang.security.rule-{i}"))
                .collect(),
            paths: (0..n)
                .map(|i| format!("src/pkg_{i}/handlers/views.py"))
                .collect(),
            messages: (0..n)
                .map(|i| format!("Finding {i}: user input reaches eval(). ").repeat(12))
                .collect(),
            urls: (0..n)
                .map(|i| format!("https://scanhook.example.com/ui/findings/fnd_{i}"))
                .collect(),
            rule_urls: (0..n)
                .map(|i| format!("https://semgrep.dev/r/python.lang.security.rule-{i}"))
                .collect(),
            long: "é🔴\u{202e}<&>".repeat(3000),
        }
    }

    fn line(&self, i: usize) -> FindingLine<'_> {
        let severity = [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ][i % 4];
        FindingLine {
            rule: &self.rules[i],
            severity,
            path: &self.paths[i],
            line: i as i64 + 1,
            message: &self.messages[i],
            url: &self.urls[i],
            rule_url: &self.rule_urls[i],
        }
    }

    fn hostile(&self, i: usize) -> FindingLine<'_> {
        FindingLine {
            rule: HOSTILE,
            path: HOSTILE,
            message: HOSTILE,
            rule_url: "javascript:alert(1)",
            ..self.line(i)
        }
    }

    fn scan(&self) -> ScanFacts<'_> {
        ScanFacts {
            repository: "acme/api",
            git_ref: "refs/heads/main",
            commit: Some("4b1d2c3e5f60718293a4b5c6d7e8f90123456789"),
            commit_title: Some(HOSTILE),
            author: Some("Ada Lovelace"),
            pull_request_id: Some("3483"),
            pull_request_title: Some("Add the upload form"),
            exit_code: Some(1),
            url: "https://scanhook.example.com/ui/scans/scn_1",
        }
    }

    fn notes(&self) -> Vec<(&'static str, Note<'_>)> {
        let triage = |i: usize| TriageNote {
            repository: "acme/api",
            git_ref: "refs/heads/main",
            finding: if i == 0 {
                self.hostile(i)
            } else {
                self.line(i)
            },
            state: TriageState::SETTABLE[i % 5],
            reason: Some("false_positive"),
            comment: Some(if i == 0 {
                HOSTILE
            } else {
                "Reviewed with the team"
            }),
        };
        vec![
            (
                "few",
                Note::Digest(Digest {
                    scan: self.scan(),
                    new: vec![self.line(1), self.hostile(2), self.line(3)],
                    fixed: vec![self.line(4)],
                    reopened: vec![self.line(5)],
                }),
            ),
            (
                "many",
                Note::Digest(Digest {
                    scan: self.scan(),
                    new: (0..2000).map(|i| self.line(i)).collect(),
                    fixed: (2000..2040).map(|i| self.line(i)).collect(),
                    reopened: (2040..2060).map(|i| self.line(i)).collect(),
                }),
            ),
            (
                "nothing_new",
                Note::Digest(Digest {
                    scan: ScanFacts {
                        pull_request_id: None,
                        exit_code: Some(0),
                        ..self.scan()
                    },
                    new: vec![],
                    fixed: vec![self.line(7)],
                    reopened: vec![],
                }),
            ),
            (
                "long_text",
                Note::Digest(Digest {
                    scan: ScanFacts {
                        repository: &self.long,
                        git_ref: &self.long,
                        commit_title: Some(&self.long),
                        pull_request_id: None,
                        ..self.scan()
                    },
                    new: vec![FindingLine {
                        rule: &self.long,
                        path: &self.long,
                        message: &self.long,
                        ..self.line(0)
                    }],
                    fixed: vec![],
                    reopened: vec![],
                }),
            ),
            ("triage", Note::Triage((0..3).map(triage).collect())),
            ("triage_many", Note::Triage((0..40).map(triage).collect())),
            (
                "test",
                Note::Test(TestNote {
                    integration: "Security <!here> @everyone",
                    server_url: "https://scanhook.example.com",
                }),
            ),
        ]
    }
}

fn units(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.encode_utf16().count())
}

/// Block Kit's limits and field types for the blocks scanhook sends.
fn check_slack(name: &str, v: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut must = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("slack {name}: {what}"));
        }
    };
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    must(top == ["text", "blocks"], format!("top-level keys {top:?}"));
    must(
        v["text"].is_string() && units(&v["text"]) > 0,
        "no fallback text".into(),
    );
    let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
    must(
        !blocks.is_empty() && blocks.len() <= 50,
        format!("{} blocks", blocks.len()),
    );
    let text_object = |t: &Value, plain_only: bool, max: usize| -> Result<(), String> {
        let n = units(&t["text"]);
        match t["type"].as_str() {
            Some("plain_text") => {
                let keys_ok = t
                    .as_object()
                    .unwrap()
                    .keys()
                    .all(|k| ["type", "text", "emoji"].contains(&k.as_str()));
                if !keys_ok || !t["emoji"].is_boolean() && !t["emoji"].is_null() {
                    return Err(format!("plain_text fields {t}"));
                }
            }
            Some("mrkdwn") if !plain_only => {
                let keys_ok = t
                    .as_object()
                    .unwrap()
                    .keys()
                    .all(|k| ["type", "text", "verbatim"].contains(&k.as_str()));
                // Verbatim: Slack must not link-ify or parse mentions out of user text.
                if !keys_ok || t["verbatim"] != true {
                    return Err(format!("mrkdwn fields {t}"));
                }
            }
            other => return Err(format!("text type {other:?}")),
        }
        if n == 0 || n > max {
            return Err(format!("text of {n} characters (1 to {max})"));
        }
        Ok(())
    };
    for (i, b) in blocks.iter().enumerate() {
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        let r = match b["type"].as_str() {
            Some("header") if keys == ["type", "text"] => text_object(&b["text"], true, 150),
            Some("section") if keys == ["type", "text"] => text_object(&b["text"], false, 3000),
            Some("divider") if keys == ["type"] => Ok(()),
            Some("context") if keys == ["type", "elements"] => {
                let e = b["elements"].as_array().unwrap();
                if e.is_empty() || e.len() > 10 {
                    Err(format!("{} context elements", e.len()))
                } else {
                    e.iter().try_for_each(|t| text_object(t, false, 3000))
                }
            }
            Some("actions") if keys == ["type", "elements"] => {
                let e = b["elements"].as_array().unwrap();
                if e.is_empty() || e.len() > 25 {
                    Err(format!("{} action elements", e.len()))
                } else {
                    e.iter().try_for_each(|button| {
                        let url = button["url"].as_str().unwrap_or_default();
                        if button["type"] != "button"
                            || url.len() > 3000
                            || !(url.starts_with("https://") || url.starts_with("http://"))
                        {
                            return Err(format!("button {button}"));
                        }
                        text_object(&button["text"], true, 75)
                    })
                }
            }
            _ => Err(format!("unexpected block {b}")),
        };
        must(
            r.is_ok(),
            format!("block {i}: {}", r.err().unwrap_or_default()),
        );
    }
    let body = v.to_string();
    for hostile in ["<!channel>", "<!here>", "<http://evil"] {
        must(!body.contains(hostile), format!("unescaped {hostile}"));
    }
    bad
}

fn browser_dir() -> PathBuf {
    let dir = Path::new(ROOT).join("tests/browser");
    for package in ["adaptivecards", "@discordjs/builders"] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "tests/browser/node_modules/{package} is missing: run ./scripts/test, which runs \
             npm ci there (or npm ci --prefix tests/browser)"
        );
    }
    dir
}

/// Runs the validator over `bodies`; its exit status and what it printed.
fn validate(bodies: &Value) -> (bool, String) {
    let dir = browser_dir();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(bodies).unwrap()).unwrap();
    let out = std::process::Command::new("node")
        .arg(dir.join("channels.mjs"))
        .arg(file.path())
        .current_dir(&dir)
        .output()
        .expect("node runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[test]
fn every_note_passes_the_platforms_own_validators() {
    let data = Data::new(2100);
    let notes = data.notes();
    let mut bodies = json!({"teams": [], "discord": []});
    let mut problems = Vec::new();
    for (name, note) in &notes {
        for kind in [ChannelKind::Slack, ChannelKind::Teams, ChannelKind::Discord] {
            let r = render_chat(kind, note).expect("chat kinds render");
            assert_eq!(r.content_type, "application/json");
            let v: Value = serde_json::from_str(&r.body).expect("bodies are JSON");
            match kind {
                ChannelKind::Slack => problems.extend(check_slack(name, &v)),
                ChannelKind::Teams => {
                    assert!(
                        r.body.len() < 28_000,
                        "teams {name}: {} bytes",
                        r.body.len()
                    );
                    bodies["teams"].as_array_mut().unwrap().push(v);
                }
                _ => bodies["discord"].as_array_mut().unwrap().push(v),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let (ok, printed) = validate(&bodies);
    assert!(
        ok,
        "the platforms' validators refused scanhook's bodies:\n{printed}"
    );
    let counts: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        counts,
        json!({"teams": notes.len(), "discord": notes.len()})
    );
}

#[test]
fn the_validators_refuse_what_the_platforms_refuse() {
    // Guards the guard: bodies each platform would refuse must fail the script.
    let bodies = json!({
        "teams": [{"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {"type": "AdaptiveCard", "version": "1.5", "body": [
                {"type": "TextBlock", "text": "ok", "colour": "red"},
                {"type": "Marquee", "text": "x"},
            ]},
        }]}],
        "discord": [{
            "content": "x",
            "embeds": [{"title": "t".repeat(257)}],
            "allowed_mentions": {"parse": ["everyone"]},
        }],
    });
    let (ok, printed) = validate(&bodies);
    assert!(!ok, "accepted:\n{printed}");
    for expected in [
        "card.body[0].colour",
        "Unknown element type \"Marquee\"",
        "allowed_mentions.parse must be []",
        "expected.length <= 256",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
    let mut slack = json!({"text": "x", "blocks": [
        {"type": "header", "text": {"type": "mrkdwn", "text": "x", "verbatim": true}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001), "verbatim": true}},
    ]});
    assert_eq!(check_slack("bad", &slack).len(), 2);
    slack["blocks"] = Value::Array(vec![json!({"type": "divider"}); 51]);
    assert_eq!(check_slack("bad", &slack).len(), 1);
}
