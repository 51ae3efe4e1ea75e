//! Sample contexts, one per event, whose bodies are made by the same functions that make
//! the real webhook bodies, so a template checked against them sees the real shapes.

use crate::domain::ci::{MetadataKeys, ProjectMetadata};
use crate::domain::event_kind::EventKind;
use crate::domain::events::{finding_fixed, finding_reopened, finding_triaged, BODIES};
use crate::domain::findings::TriageState;
use crate::domain::payload::{self, FindingFacts};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The `scanhook_url` of the samples.
pub const SAMPLE_SCANHOOK_URL: &str = "https://scanhook.example.com";

/// 2026-01-15T10:00:00Z, in microseconds.
const AT: i64 = 1_768_471_200_000_000;
const SCAN_ID: &str = "scn_sample0001";

/// The context of a `semgrep_scan` message: what [`Template::compile`](super::Template::compile)
/// renders first and the UI shows as the example.
pub fn sample_context() -> Value {
    context(EventKind::Scan)
}

/// One context per event type (and the Test notification), in [`BODIES`] order.
pub fn sample_contexts() -> Vec<Value> {
    BODIES.iter().map(|kind| context(*kind)).collect()
}

fn context(kind: EventKind) -> Value {
    super::message_context(kind, body(kind), SAMPLE_SCANHOOK_URL)
}

fn body(kind: EventKind) -> Value {
    let metadata = RawValue::from_string(
        r#"{"cwe":["CWE-95: Eval Injection"],"category":"security","source":"https://semgrep.dev/r/python.lang.security.audit.eval-detected"}"#
            .to_string(),
    )
    .expect("the sample metadata is JSON");
    let keys: MetadataKeys =
        serde_json::from_str(metadata.get()).expect("the sample metadata has the known keys");
    let facts = FindingFacts {
        syntactic_id: "0f6c7a7f3b0e4d5a",
        git_ref: "refs/heads/main",
        first_seen_at: AT,
        first_seen_scan_id: SCAN_ID,
        check_id: "python.lang.security.audit.eval-detected",
        path: "app/views.py",
        line: 42,
        column: 5,
        end_line: 42,
        end_column: 31,
        message: "Detected the use of eval() on user input.",
        severity: 2,
        index: 0,
        commit_date: Some("2026-01-15T09:58:00+00:00"),
        metadata: &metadata,
        keys: &keys,
    };
    let array = |item: String| -> Value {
        let item: Value = serde_json::from_str(&item).expect("event objects are JSON");
        Value::Array(vec![item])
    };
    match kind {
        EventKind::Scan => {
            let meta = ProjectMetadata {
                repository: "acme/api".into(),
                branch: Some("refs/heads/main".into()),
                commit: Some("4b1d2c3e5f60718293a4b5c6d7e8f90123456789".into()),
                commit_title: Some("Parse the upload form".into()),
                commit_author_name: Some("Ada Lovelace".into()),
                ci_job_url: Some("https://ci.example.com/acme/api/jobs/1".into()),
                on: Some("push".into()),
                ..ProjectMetadata::default()
            };
            payload::semgrep_scan(&payload::ScanFacts {
                public_id: SCAN_ID,
                deployment_id: 1,
                started_at: AT,
                completed_at: Some(AT + 60_000_000),
                exit_code: Some(1),
                meta: &meta,
                ignored_files: &[],
            })
        }
        EventKind::Finding => array(payload::semgrep_finding(&facts)),
        EventKind::FindingFixed => array(finding_fixed(&facts, SCAN_ID, AT)),
        EventKind::FindingReopened => array(finding_reopened(&facts, SCAN_ID, AT)),
        EventKind::FindingTriaged => array(finding_triaged(
            &facts,
            TriageState::Ignored,
            Some("false_positive"),
            Some("Only reachable from the admin shell."),
            AT,
        )),
        // The Test action's body (`delivery::test_notification::TEST_BODY`).
        EventKind::Test => json!([{"text": "Test Notification", "username": "Semgrep"}]),
    }
}
