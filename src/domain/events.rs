//! The finding events beyond the seed's two: `finding_fixed`, `finding_reopened` and
//! `finding_triaged`. Each message is a JSON array of objects keyed by the event's name (as
//! `semgrep_finding` is); each object carries the `semgrep_finding` fields, then the
//! event's own. And the JSON Schema of every body scanhook sends, generated from the types
//! that serialise them.

use super::ci::MetadataKeys;
use super::event_kind::EventKind;
use super::filters::Subject;
use super::findings::{Severity, TriageState};
use super::mode::RuleMode;
use super::payload::{finding_object, FindingFacts, FindingItem, FindingObject, ScanBody};
use crate::clock::{iso, Micros};
use crate::ids::{FindingId, ProjectId};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A finding as stored, with what its events carry: read back for fixed findings,
/// triage changes, backfills and previews.
#[derive(Debug, Clone)]
pub struct StoredFinding {
    pub id: FindingId,
    pub project_id: ProjectId,
    pub identity: String,
    pub repository: String,
    pub git_ref: String,
    pub syntactic_id: String,
    pub rule_id: String,
    pub path: String,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
    pub message: String,
    /// As uploaded (a level; see [`Severity::from_level`]).
    pub severity: i64,
    pub index: i64,
    pub commit_date: Option<String>,
    pub mode: RuleMode,
    /// The rule metadata as stored (compact JSON), and parsed.
    pub metadata_raw: Box<RawValue>,
    pub metadata: Value,
    pub first_seen_scan_id: String,
    pub first_seen_at: Micros,
    pub triage_state: TriageState,
}

impl StoredFinding {
    /// What filters read, for an event of `kind`.
    pub fn subject(&self, kind: EventKind) -> Subject<'_> {
        Subject {
            event: kind,
            repository: &self.repository,
            git_ref: &self.git_ref,
            rule: &self.rule_id,
            path: &self.path,
            line: self.line,
            message: &self.message,
            severity: Severity::from_level(self.severity),
            mode: self.mode,
            metadata: &self.metadata,
        }
    }

    /// Calls `f` with the finding's payload facts.
    pub fn with_facts<R>(&self, f: impl FnOnce(&FindingFacts) -> R) -> R {
        // Stored metadata was parsed when it was written; keys it lacks are simply absent.
        let keys: MetadataKeys = serde_json::from_str(self.metadata_raw.get()).unwrap_or_default();
        f(&FindingFacts {
            syntactic_id: &self.syntactic_id,
            git_ref: &self.git_ref,
            first_seen_at: self.first_seen_at,
            first_seen_scan_id: &self.first_seen_scan_id,
            check_id: &self.rule_id,
            path: &self.path,
            line: self.line,
            column: self.column,
            end_line: self.end_line,
            end_column: self.end_column,
            message: &self.message,
            severity: self.severity,
            index: self.index,
            commit_date: self.commit_date.as_deref(),
            metadata: &self.metadata_raw,
            keys: &keys,
        })
    }
}

/// What a `finding_fixed` object adds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Fixed<'a> {
    /// The public id of the scan that closed it as fixed.
    pub fixed_in_scan_id: &'a str,
    /// When (ISO 8601, UTC).
    pub fixed_at: String,
}

/// What a `finding_reopened` object adds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reopened<'a> {
    /// The public id of the scan that found it again on the ref it was fixed on.
    pub reopened_in_scan_id: &'a str,
    /// When (ISO 8601, UTC).
    pub reopened_at: String,
}

/// What a `finding_triaged` object adds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Triaged<'a> {
    pub triage_state: TriageState,
    /// Why (for ignored: false_positive, acceptable_risk, no_time, …).
    #[schema(required = true)]
    pub triage_reason: Option<&'a str>,
    #[schema(required = true)]
    pub comment: Option<&'a str>,
    /// When (ISO 8601, UTC).
    pub triaged_at: String,
}

/// A finding's fields followed by an event's own.
#[derive(Debug, Serialize)]
struct WithEvent<'a, E: Serialize> {
    #[serde(flatten)]
    finding: FindingObject<'a>,
    #[serde(flatten)]
    event: E,
}

fn keyed<E: Serialize>(kind: EventKind, f: &FindingFacts, event: E) -> String {
    let object = WithEvent {
        finding: finding_object(f),
        event,
    };
    let body = serde_json::to_string(&object).expect("an event object always serialises");
    format!("{{\"{}\":{body}}}", kind.as_str())
}

/// `{"finding_fixed": {...}}`.
pub fn finding_fixed(f: &FindingFacts, scan_id: &str, at: Micros) -> String {
    keyed(
        EventKind::FindingFixed,
        f,
        Fixed {
            fixed_in_scan_id: scan_id,
            fixed_at: iso(at),
        },
    )
}

/// `{"finding_reopened": {...}}`.
pub fn finding_reopened(f: &FindingFacts, scan_id: &str, at: Micros) -> String {
    keyed(
        EventKind::FindingReopened,
        f,
        Reopened {
            reopened_in_scan_id: scan_id,
            reopened_at: iso(at),
        },
    )
}

/// `{"finding_triaged": {...}}`.
pub fn finding_triaged(
    f: &FindingFacts,
    state: TriageState,
    reason: Option<&str>,
    comment: Option<&str>,
    at: Micros,
) -> String {
    keyed(
        EventKind::FindingTriaged,
        f,
        Triaged {
            triage_state: state,
            triage_reason: reason,
            comment,
            triaged_at: iso(at),
        },
    )
}

/// The events whose bodies have a schema: every event type (and the Test notification).
pub const BODIES: [EventKind; 6] = [
    EventKind::Scan,
    EventKind::Finding,
    EventKind::FindingFixed,
    EventKind::FindingReopened,
    EventKind::FindingTriaged,
    EventKind::Test,
];

/// The JSON Schema (draft 2020-12) of the body of `kind`'s messages.
pub fn schema(kind: EventKind) -> Value {
    let mut defs = serde_json::Map::new();
    let mut def = |name: &str, schema: RefOr<Schema>| {
        defs.insert(
            name.to_string(),
            serde_json::to_value(schema).expect("schemas serialise"),
        );
    };
    def("FindingObject", FindingObject::schema());
    def("TriageState", TriageState::schema());
    let item = |key: &str, extra: Option<&str>| {
        // Nothing beyond the finding's fields and the event's own.
        let fields = match extra {
            Some(e) => json!({
                "allOf": [{"$ref": "#/$defs/FindingObject"}, {"$ref": format!("#/$defs/{e}")}],
                "unevaluatedProperties": false,
            }),
            None => json!({"$ref": "#/$defs/FindingObject", "unevaluatedProperties": false}),
        };
        json!({
            "type": "object",
            "required": [key],
            "additionalProperties": false,
            "properties": {key: fields},
        })
    };
    let (title, body) = match kind {
        EventKind::Scan => {
            def("ScanObject", super::payload::ScanObject::schema());
            let body = serde_json::to_value(ScanBody::schema()).expect("schemas serialise");
            ("semgrep_scan", body)
        }
        EventKind::Finding => {
            let _ = FindingItem::name();
            (
                "semgrep_finding",
                json!({"type": "array", "items": item("semgrep_finding", None)}),
            )
        }
        EventKind::FindingFixed => {
            def("Fixed", Fixed::schema());
            (
                "finding_fixed",
                json!({"type": "array", "items": item("finding_fixed", Some("Fixed"))}),
            )
        }
        EventKind::FindingReopened => {
            def("Reopened", Reopened::schema());
            (
                "finding_reopened",
                json!({"type": "array", "items": item("finding_reopened", Some("Reopened"))}),
            )
        }
        EventKind::FindingTriaged => {
            def("Triaged", Triaged::schema());
            (
                "finding_triaged",
                json!({"type": "array", "items": item("finding_triaged", Some("Triaged"))}),
            )
        }
        EventKind::Test => (
            "test",
            json!({"type": "array", "items": {
                "type": "object", "required": ["text", "username"],
                "properties": {"text": {"type": "string"}, "username": {"type": "string"}},
            }}),
        ),
    };
    let mut doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:scanhook:schema:{title}"),
        "title": format!("The body of a scanhook `{title}` message"),
    });
    if let (Value::Object(d), Value::Object(b)) = (&mut doc, body) {
        d.extend(b);
    }
    // utoipa's references point into an OpenAPI document's components; here they are $defs.
    let mut text = serde_json::to_string(&doc).expect("schemas serialise");
    text = text.replace("#/components/schemas/", "#/$defs/");
    let mut doc: Value = serde_json::from_str(&text).expect("still JSON");
    if !defs.is_empty() {
        let defs_text = serde_json::to_string(&defs)
            .expect("schemas serialise")
            .replace("#/components/schemas/", "#/$defs/");
        doc["$defs"] = serde_json::from_str(&defs_text).expect("still JSON");
    }
    doc
}

/// The schema as the pretty JSON that is served and committed.
pub fn schema_json(kind: EventKind) -> String {
    let mut text = serde_json::to_string_pretty(&schema(kind)).expect("schemas serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ci::MetadataKeys;
    use serde_json::value::RawValue;

    #[test]
    fn event_objects_carry_the_finding_then_their_own_fields() {
        let meta = RawValue::from_string(r#"{"cwe":"CWE-1"}"#.into()).unwrap();
        let keys: MetadataKeys = serde_json::from_str(meta.get()).unwrap();
        let facts = crate::domain::payload::tests::sample_facts(&meta, &keys);
        let v: Value = serde_json::from_str(&finding_fixed(&facts, "scan12345678", 0)).unwrap();
        let o = v["finding_fixed"].as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(&keys[..23], crate::domain::payload::FINDING_FIELDS);
        assert_eq!(&keys[23..], ["fixed_in_scan_id", "fixed_at"]);
        let v: Value = serde_json::from_str(&finding_triaged(
            &facts,
            TriageState::Ignored,
            Some("false_positive"),
            None,
            0,
        ))
        .unwrap();
        assert_eq!(v["finding_triaged"]["triage_state"], "ignored");
        assert_eq!(v["finding_triaged"]["comment"], Value::Null);
        for kind in BODIES {
            let s = schema(kind);
            assert!(s["$schema"].is_string(), "{kind}");
            assert!(!s.to_string().contains("#/components/"), "{kind}");
        }
    }
}
