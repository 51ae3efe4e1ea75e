//! Samples in the shapes bandit, ruff, checkov, ESLint's SARIF formatter and Semgrep emit
//! (`testdata/`), and hand-built documents for the identity, severity and error rules.

use super::sarif::cwe_ids;
use super::*;
use crate::domain::ci::Results;
use serde_json::{json, Value};

pub(super) const BANDIT: &str = include_str!("testdata/bandit.sarif");
pub(super) const RUFF: &str = include_str!("testdata/ruff.sarif");
pub(super) const CHECKOV: &str = include_str!("testdata/checkov.sarif");
pub(super) const ESLINT: &str = include_str!("testdata/eslint.sarif");
pub(super) const SEMGREP_SARIF: &str = include_str!("testdata/semgrep.sarif");
pub(super) const SEMGREP_JSON: &str = include_str!("testdata/semgrep.json");

/// The only tool of an upload, its body checked as `/results` checks it.
pub(super) fn only(bytes: &str, format: UploadFormat, root: Option<&str>) -> (Converted, Value) {
    let mut all = convert_under(bytes.as_bytes(), format, root).expect("converts");
    assert_eq!(all.len(), 1, "one tool");
    let c = all.remove(0);
    let results = Results::parse(&c.results_json).expect("Results::parse reads the body");
    results.check().expect("the body passes /results' checks");
    assert_eq!(results.findings.len(), c.findings);
    assert_eq!(results.ignores.len(), c.ignored);
    let body = serde_json::from_slice(&c.results_json).unwrap();
    (c, body)
}

pub(super) fn keys(c: &Converted) -> Vec<String> {
    let results = Results::parse(&c.results_json).unwrap();
    results
        .findings
        .iter()
        .map(|f| f.key().to_string())
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn bandit() {
    let (c, body) = only(BANDIT, UploadFormat::Sarif, None);
    assert_eq!((c.tool.as_str(), c.findings, c.skipped), ("bandit", 2, 0));
    let f = &body["findings"];
    assert_eq!(f[0]["check_id"], "bandit.B602");
    assert_eq!(f[0]["path"], "app/run.py");
    assert_eq!(
        [
            &f[0]["line"],
            &f[0]["column"],
            &f[0]["end_line"],
            &f[0]["end_column"]
        ],
        [12, 5, 12, 37]
    );
    assert_eq!(f[0]["severity"], 2, "level error");
    assert_eq!(f[0]["commit_date"], Value::Null);
    assert_eq!(f[0]["metadata"]["tool"], "bandit");
    assert_eq!(f[0]["metadata"]["cwe"], json!(["CWE-78"]));
    assert_eq!(f[0]["metadata"]["precision"], "high");
    assert!(f[0]["metadata"]["help_uri"]
        .as_str()
        .unwrap()
        .contains("b602"));
    assert_eq!(f[1]["path"], "app/settings.py", "leading ./ dropped");
    assert_eq!(f[1]["severity"], 0, "level note");
    assert_eq!(f[1]["message"], "Possible hardcoded password: 'hunter2'");
    assert_eq!(strings(&body["rule_ids"]), ["bandit.B602", "bandit.B105"]);
    assert_eq!(
        strings(&body["searched_paths"]),
        ["app/run.py", "app/settings.py"]
    );
    assert_eq!(body["ignores"], json!([]));
    assert_eq!(body["skipped_paths"], json!([]));
    assert_eq!(f[0]["syntactic_id"], f[0]["match_based_id"]);
}

#[test]
fn ruff_paths_are_absolute_unless_a_root_is_given() {
    let (_, body) = only(RUFF, UploadFormat::Sarif, None);
    assert_eq!(
        body["findings"][0]["path"],
        "/home/runner/work/api/api/src/api/util.py"
    );
    let (c, body) = only(
        RUFF,
        UploadFormat::Sarif,
        Some("/home/runner/work/api/api/"),
    );
    assert_eq!(c.tool, "ruff");
    let f = &body["findings"];
    assert_eq!(f[0]["path"], "src/api/util.py");
    assert_eq!(f[1]["path"], "src/api/my module.py", "percent-decoded");
    assert_eq!(f[0]["check_id"], "ruff.F401");
    assert!(f[0]["metadata"]["help"].as_str().unwrap().len() > 10);
    assert_eq!(f[0]["metadata"]["properties"]["kind"], "Pyflakes");
    assert_eq!(
        strings(&body["rule_ids"]),
        ["ruff.F401", "ruff.E722", "ruff.S101"],
        "rules run without findings are listed too"
    );
    let root_as_uri = Some("file:///home/runner/work/api/api");
    let (_, again) = only(RUFF, UploadFormat::Sarif, root_as_uri);
    assert_eq!(again["findings"][0]["path"], "src/api/util.py");
}

#[test]
fn checkov_rules_on_one_block_stay_apart() {
    let (c, body) = only(CHECKOV, UploadFormat::Sarif, None);
    assert_eq!((c.tool.as_str(), c.findings), ("checkov", 2));
    let f = &body["findings"];
    assert_eq!(f[0]["check_id"], "checkov.CKV_AWS_20");
    assert_eq!(f[0]["path"], "infra/s3.tf");
    assert_eq!(
        [
            &f[0]["line"],
            &f[0]["column"],
            &f[0]["end_line"],
            &f[0]["end_column"]
        ],
        [1, 1, 4, 1],
        "columns default to 1"
    );
    assert_eq!(f[0]["severity"], 2);
    let k = keys(&c);
    assert_ne!(k[0], k[1], "same snippet, different rules");
}

#[test]
fn eslint_artifacts_by_index_and_searched() {
    let root = Some("/home/runner/work/web/web");
    let (c, body) = only(ESLINT, UploadFormat::Sarif, root);
    assert_eq!((c.tool.as_str(), c.findings), ("eslint", 2));
    let f = &body["findings"];
    assert_eq!(f[0]["check_id"], "eslint.no-unused-vars");
    assert_eq!(f[0]["severity"], 1, "warning");
    assert_eq!(f[1]["path"], "src/index.js", "uri read from artifacts[0]");
    assert_eq!(f[1]["severity"], 2, "error");
    assert_eq!(f[1]["metadata"]["properties"]["category"], "Best Practices");
    assert_eq!(
        strings(&body["searched_paths"]),
        ["src/index.js", "src/clean.js"]
    );
}

#[test]
fn semgrep_sarif() {
    let (c, body) = only(SEMGREP_SARIF, UploadFormat::Sarif, None);
    assert_eq!(
        (c.tool.as_str(), c.findings, c.ignored, c.skipped),
        ("semgrep", 1, 1, 0)
    );
    let f = &body["findings"][0];
    assert_eq!(
        f["check_id"], "python.lang.security.audit.formatted-sql-query.formatted-sql-query",
        "Semgrep keeps its rule ids"
    );
    assert_eq!(f["path"], "app/views.py");
    assert_eq!(
        f["severity"], 2,
        "security-severity 7.5 beats level warning"
    );
    assert_eq!(f["metadata"]["security-severity"], "7.5");
    assert_eq!(f["metadata"]["cwe"], json!(["CWE-89"]));
    assert_eq!(f["metadata"]["precision"], "very-high");
    assert_eq!(
        body["ignores"][0]["check_id"], "python.lang.security.audit.eval-detected.eval-detected",
        "a suppressed result goes to ignores"
    );
}

#[test]
fn semgrep_json() {
    let (c, body) = only(SEMGREP_JSON, UploadFormat::SemgrepJson, None);
    assert_eq!(
        (c.tool.as_str(), c.findings, c.ignored, c.skipped),
        ("semgrep", 2, 1, 0)
    );
    let f = &body["findings"];
    assert_eq!(f[0]["path"], "app/views.py");
    assert_eq!(
        [
            &f[0]["line"],
            &f[0]["column"],
            &f[0]["end_line"],
            &f[0]["end_column"]
        ],
        [30, 5, 30, 15]
    );
    assert_eq!(f[0]["severity"], 1, "WARNING");
    assert_eq!(f[1]["severity"], 2, "ERROR");
    assert_eq!(f[0]["metadata"]["category"], "security");
    assert_eq!(f[0]["metadata"]["tool"], "semgrep");
    assert!(f[0]["metadata"]["cwe"][0]
        .as_str()
        .unwrap()
        .starts_with("CWE-95:"));
    assert_eq!(body["ignores"][0]["path"], "app/legacy.py");
    assert_eq!(body["skipped_paths"], json!(["vendor/big.min.js"]));
    assert_eq!(
        strings(&body["searched_paths"]),
        ["app/views.py", "app/legacy.py", "app/broken.py"]
    );
}

#[test]
fn semgrep_json_fingerprint_is_the_identity() {
    let doc = |line: i64, lines: &str, fingerprint: &str| {
        json!({"results": [{
            "check_id": "r", "path": "a.py",
            "start": {"line": line, "col": 1}, "end": {"line": line, "col": 9},
            "extra": {"message": "m", "severity": "CRITICAL", "lines": lines, "fingerprint": fingerprint}
        }]})
        .to_string()
    };
    let key = |s: String| keys(&only(&s, UploadFormat::SemgrepJson, None).0)[0].clone();
    assert_eq!(key(doc(1, "a", "fp_0")), key(doc(9, "b", "fp_0")));
    assert_ne!(key(doc(1, "a", "fp_0")), key(doc(1, "a", "fp_1")));
    let login = "requires login";
    assert_eq!(
        key(doc(1, "eval(x)", login)),
        key(doc(4, "  eval(x)", login))
    );
    assert_ne!(key(doc(1, "eval(x)", login)), key(doc(1, "eval(y)", login)));
    let (_, body) = only(&doc(1, "a", "fp_0"), UploadFormat::SemgrepJson, None);
    assert_eq!(body["findings"][0]["severity"], 3);
}

/// A SARIF log of one `demo` run from results (a rule `R1` is declared).
pub(super) fn sarif(results: Value) -> String {
    json!({
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "Demo Tool", "rules": [
                {"id": "R1", "defaultConfiguration": {"level": "error"}}
            ]}},
            "results": results
        }]
    })
    .to_string()
}

fn result(line: i64, snippet: Option<&str>) -> Value {
    let mut region = json!({"startLine": line, "startColumn": 3});
    if let Some(s) = snippet {
        region["snippet"] = json!({"text": s});
    }
    json!({
        "ruleId": "R1",
        "message": {"text": "bad call"},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "src/a.py"},
            "region": region
        }}]
    })
}

fn key_of(results: Value) -> Vec<String> {
    keys(&only(&sarif(results), UploadFormat::Sarif, None).0)
}

#[test]
fn identity_survives_moved_code_but_not_changed_code() {
    let at_10 = key_of(json!([result(10, Some("os.system(cmd)"))]));
    let at_13 = key_of(json!([result(13, Some("os.system(cmd)"))]));
    assert_eq!(at_10, at_13, "moved down 3 lines");
    let reindented = key_of(json!([result(13, Some("    os.system( cmd)\n"))]));
    let collapsed = key_of(json!([result(13, Some("os.system( cmd)"))]));
    assert_eq!(reindented, collapsed, "whitespace collapsed");
    let other = key_of(json!([result(10, Some("os.system(other)"))]));
    assert_ne!(at_10, other, "a different snippet");

    // Without a snippet, the message stands in; still no line numbers.
    assert_eq!(
        key_of(json!([result(1, None)])),
        key_of(json!([result(50, None)]))
    );
    let mut worded = result(1, None);
    worded["message"]["text"] = json!("another call");
    assert_ne!(key_of(json!([result(1, None)])), key_of(json!([worded])));

    // Fingerprints: moved and re-snippeted, the same; other fingerprints, not.
    let fingerprinted = |line: i64, snippet: &str, hash: &str| {
        let mut r = result(line, Some(snippet));
        r["partialFingerprints"] = json!({"primaryLocationLineHash": hash, "other": "x"});
        r
    };
    assert_eq!(
        key_of(json!([fingerprinted(1, "a", "h:1")])),
        key_of(json!([fingerprinted(9, "b", "h:1")]))
    );
    assert_ne!(
        key_of(json!([fingerprinted(1, "a", "h:1")])),
        key_of(json!([fingerprinted(1, "a", "h:2")]))
    );
    let mut semgrep = fingerprinted(1, "a", "h:1");
    semgrep["fingerprints"] = json!({"matchBasedId/v1": "abc"});
    let mut semgrep_other = fingerprinted(1, "a", "h:2");
    semgrep_other["fingerprints"] = json!({"matchBasedId/v1": "abc"});
    assert_eq!(
        key_of(json!([semgrep])),
        key_of(json!([semgrep_other])),
        "matchBasedId/v1 alone"
    );
}

#[test]
fn repeats_in_a_file_are_numbered() {
    let same = json!([result(3, Some("eval(x)")), result(8, Some("eval(x)"))]);
    let (c, body) = only(&sarif(same), UploadFormat::Sarif, None);
    let k = keys(&c);
    assert_ne!(k[0], k[1]);
    assert_eq!(
        [&body["findings"][0]["index"], &body["findings"][1]["index"]],
        [0, 1]
    );
    // The first keeps the identity it has alone.
    assert_eq!(k[0], key_of(json!([result(3, Some("eval(x)"))]))[0]);
}

#[test]
fn severity_table() {
    let with = |security: Option<Value>, level: Option<&str>| {
        let mut r = result(1, Some("x"));
        if let Some(s) = security {
            r["properties"] = json!({"security-severity": s});
        }
        if let Some(l) = level {
            r["level"] = json!(l);
        }
        let (_, body) = only(&sarif(json!([r])), UploadFormat::Sarif, None);
        body["findings"][0]["severity"].as_i64().unwrap()
    };
    assert_eq!(with(Some(json!("9.8")), Some("note")), 3);
    assert_eq!(with(Some(json!(9.0)), None), 3);
    assert_eq!(with(Some(json!("7.0")), None), 2);
    assert_eq!(with(Some(json!("6.9")), None), 1);
    assert_eq!(with(Some(json!("4.0")), None), 1);
    assert_eq!(with(Some(json!("3.9")), Some("error")), 0);
    assert_eq!(with(Some(json!("high")), Some("note")), 0, "not a score");
    assert_eq!(with(None, None), 2, "the rule's default level, error");
    assert_eq!(with(None, Some("warning")), 1, "the result's level wins");
    assert_eq!(with(None, Some("note")), 0);
    assert_eq!(with(None, Some("none")), 0);
    let undeclared = json!([{"ruleId": "R9", "message": {"text": "m"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a"}}}]}]);
    let (_, body) = only(&sarif(undeclared), UploadFormat::Sarif, None);
    assert_eq!(
        body["findings"][0]["severity"], 1,
        "SARIF's default: warning"
    );
    assert_eq!(body["findings"][0]["check_id"], "demo-tool.R9");
}

#[test]
fn cwe_ids_from_tags() {
    let tags = [
        "CWE-89: SQL Injection",
        "external/cwe/cwe-078",
        "cwe-89",
        "security",
        "CWE",
        "owasp-a03",
    ];
    assert_eq!(cwe_ids(&tags), ["CWE-89", "CWE-78"]);
}

#[test]
fn runs_of_one_tool_merge_and_other_tools_stay_apart() {
    let mut doc: Value = serde_json::from_str(BANDIT).unwrap();
    let semgrep: Value = serde_json::from_str(SEMGREP_SARIF).unwrap();
    let bandit_run = doc["runs"][0].clone();
    doc["runs"] = json!([bandit_run.clone(), semgrep["runs"][0], bandit_run]);
    let all = convert(doc.to_string().as_bytes(), UploadFormat::Sarif).unwrap();
    let tools: Vec<_> = all.iter().map(|c| (c.tool.as_str(), c.findings)).collect();
    assert_eq!(tools, [("bandit", 4), ("semgrep", 1)]);
    let k = keys(&all[0]);
    assert_eq!(k.len(), 4);
    assert_eq!(
        k.iter().collect::<std::collections::HashSet<_>>().len(),
        4,
        "repeats numbered across runs"
    );
}

#[test]
fn detect_tells_the_formats_apart() {
    for s in [BANDIT, RUFF, CHECKOV, ESLINT, SEMGREP_SARIF] {
        assert_eq!(UploadFormat::detect(s.as_bytes()), Ok(UploadFormat::Sarif));
    }
    assert_eq!(
        UploadFormat::detect(SEMGREP_JSON.as_bytes()),
        Ok(UploadFormat::SemgrepJson)
    );
    assert!(UploadFormat::detect(b"[1]").is_err());
    assert!(UploadFormat::detect(br#"{"findings": []}"#).is_err());
    assert!(UploadFormat::detect(b"\xff").is_err());
}

fn error(doc: &str, format: UploadFormat) -> UploadError {
    convert(doc.as_bytes(), format).expect_err("refused")
}

#[test]
fn bad_input_names_the_place() {
    let e = error("not json", UploadFormat::Sarif);
    assert!(
        e.path.is_empty() && e.message.starts_with("not JSON"),
        "{e}"
    );
    assert_eq!(error("[]", UploadFormat::Sarif).path, "");
    let e = error(r#"{"version": "2.0.0", "runs": []}"#, UploadFormat::Sarif);
    assert_eq!(e.path, "version");
    assert_eq!(
        error(r#"{"runs": []}"#, UploadFormat::Sarif).path,
        "version"
    );
    let e = error(r#"{"version": "2.1.0", "runs": []}"#, UploadFormat::Sarif);
    assert_eq!(e.to_string(), "runs: no runs");
    let e = error(r#"{"version": "2.1.0", "runs": [{}]}"#, UploadFormat::Sarif);
    assert_eq!(e.path, "runs[0].tool.driver.name");
    let e = error(&sarif(json!({})), UploadFormat::Sarif);
    assert_eq!(e.path, "runs[0].results");
    assert!(error(SEMGREP_JSON, UploadFormat::Sarif).path == "version");
    assert_eq!(error(BANDIT, UploadFormat::SemgrepJson).path, "results");

    let unplaced = json!({"ruleId": "R1", "message": {"text": "m"}});
    let e = error(
        &sarif(json!([result(1, None), unplaced, unplaced])),
        UploadFormat::Sarif,
    );
    assert_eq!(e.path, "runs[0].results[1].locations");
    assert!(e.message.contains("2 of the run's 3 results"), "{e}");
    let no_rule = json!({"message": {"text": "m"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a"}}}]});
    assert_eq!(
        error(&sarif(json!([no_rule])), UploadFormat::Sarif).path,
        "runs[0].results[0].ruleId"
    );
    let remote = json!({"ruleId": "R1", "message": {"text": "m"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "https://example.com/a.py"}}}]});
    let e = error(&sarif(json!([remote])), UploadFormat::Sarif);
    assert_eq!(
        e.path,
        "runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri"
    );
    let e = error(
        r#"{"results": [{"check_id": "r", "path": "a"}]}"#,
        UploadFormat::SemgrepJson,
    );
    assert_eq!(e.path, "results[0].start");
}

#[test]
fn a_few_unusable_results_are_skipped_and_counted() {
    let unplaced = json!({"ruleId": "R1", "message": {"text": "m"}});
    let passed = json!({"ruleId": "R1", "kind": "pass", "message": {"text": "ok"}});
    let control = {
        let mut r = result(1, Some("y"));
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = json!("a\u{7}b");
        r
    };
    let mut colour = result(2, Some("z"));
    colour["message"]["text"] = json!("\u{1b}[31mred\u{1b}[0m\tand\n\u{202e}");
    let doc = sarif(json!([
        result(1, Some("x")),
        unplaced,
        passed,
        control,
        colour
    ]));
    let (c, body) = only(&doc, UploadFormat::Sarif, None);
    assert_eq!((c.findings, c.skipped), (2, 3));
    assert_eq!(
        body["findings"][1]["message"],
        "\u{fffd}[31mred\u{fffd}[0m\tand\n\u{fffd}"
    );
    let empty = sarif(json!([]));
    let (c, _) = only(&empty, UploadFormat::Sarif, None);
    assert_eq!((c.findings, c.skipped), (0, 0), "a clean scan");
}

#[test]
fn the_lifecycle_keeps_moved_findings_open_and_fixes_gone_ones() {
    use crate::domain::lifecycle::{decide, Known, Opened, Prior, State};
    use std::collections::HashMap;
    let scan = |results: Value| {
        let mut doc: Value = serde_json::from_str(&sarif(results)).unwrap();
        doc["runs"][0]["artifacts"] = json!([
            {"location": {"uri": "src/a.py"}},
            {"location": {"uri": "src/b.py"}}
        ]);
        only(&doc.to_string(), UploadFormat::Sarif, None).0
    };
    let mut in_b = result(4, Some("eval(x)"));
    in_b["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = json!("src/b.py");
    let first = scan(json!([result(10, Some("os.system(cmd)")), in_b]));
    let first = Results::parse(&first.results_json).unwrap();
    let prior: HashMap<String, Prior> = first
        .findings
        .iter()
        .map(|f| {
            let p = Prior {
                state: State::Open,
                path: f.path.to_string(),
                rule_id: f.check_id.to_string(),
            };
            (f.key().to_string(), p)
        })
        .collect();

    let second = scan(json!([result(13, Some("os.system(cmd)"))]));
    let second = Results::parse(&second.results_json).unwrap();
    let decision = decide(&second, &prior, &HashMap::<String, Known>::new());
    assert_eq!(decision.open.len(), 1);
    assert_eq!(decision.open[0].how, Opened::StillOpen, "moved, not new");
    assert!(!decision.open[0].notify);
    let b = first.findings[1].key().to_string();
    assert_eq!(decision.closed, [(b, State::Fixed)]);
}
