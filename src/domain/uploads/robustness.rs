//! Large and broken input: a 100,000-result log converts; no input makes the reader
//! panic, and whatever it converts `/results` accepts.

use super::tests::{keys, only, sarif, BANDIT, CHECKOV, ESLINT, RUFF, SEMGREP_JSON, SEMGREP_SARIF};
use super::*;
use crate::domain::ci::Results;
use proptest::prelude::*;
use serde_json::{json, Value};

#[test]
fn a_hundred_thousand_results() {
    let results: Vec<Value> = (0..100_000)
        .map(|i| {
            json!({
                "ruleId": format!("R{}", i % 50),
                "level": "warning",
                "message": {"text": "m"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": format!("src/f{}.py", i % 1000)},
                    "region": {"startLine": i % 400 + 1, "snippet": {"text": format!("call({i})")}}
                }}]
            })
        })
        .collect();
    let doc = sarif(Value::Array(results));
    let (c, body) = only(&doc, UploadFormat::Sarif, None);
    assert_eq!((c.findings, c.skipped), (100_000, 0));
    assert_eq!(body["searched_paths"].as_array().unwrap().len(), 1000);
    assert_eq!(body["rule_ids"].as_array().unwrap().len(), 50);
    let k = keys(&c);
    assert_eq!(
        k.iter().collect::<std::collections::HashSet<_>>().len(),
        100_000
    );
}

fn samples() -> Vec<(&'static str, UploadFormat)> {
    vec![
        (BANDIT, UploadFormat::Sarif),
        (RUFF, UploadFormat::Sarif),
        (CHECKOV, UploadFormat::Sarif),
        (ESLINT, UploadFormat::Sarif),
        (SEMGREP_SARIF, UploadFormat::Sarif),
        (SEMGREP_JSON, UploadFormat::SemgrepJson),
    ]
}

/// Whatever comes out passes the checks of `/results`.
fn converts_or_refuses(bytes: &[u8], format: UploadFormat) {
    if let Ok(all) = convert(bytes, format) {
        for c in all {
            let results = Results::parse(&c.results_json).expect("a readable body");
            results.check().expect("a body /results accepts");
        }
    }
    let _ = UploadFormat::detect(bytes);
}

#[test]
fn cut_and_corrupted_samples_never_panic() {
    for (sample, format) in samples() {
        let bytes = sample.as_bytes();
        for cut in (0..bytes.len()).step_by(7) {
            converts_or_refuses(&bytes[..cut], format);
            let mut corrupted = bytes.to_vec();
            corrupted[cut] = b"0\"{}[],:-"[cut % 9];
            converts_or_refuses(&corrupted, format);
        }
    }
}

/// Replaces the `n`th node (depth first) of `v` with `with`.
fn replace_nth(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().any(|i| replace_nth(i, n, with)),
        Value::Object(map) => map.values_mut().any(|i| replace_nth(i, n, with)),
        _ => false,
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("file:///%ff%00")),
        Just(json!("2.1.0")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_node_replaced_never_panics(
        sample in 0usize..6,
        node in 0usize..400,
        with in any_json(),
    ) {
        let (text, format) = samples()[sample];
        let mut doc: Value = serde_json::from_str(text).unwrap();
        let mut n = node;
        replace_nth(&mut doc, &mut n, &with);
        converts_or_refuses(doc.to_string().as_bytes(), format);
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        converts_or_refuses(&bytes, UploadFormat::Sarif);
        converts_or_refuses(&bytes, UploadFormat::SemgrepJson);
    }
}
