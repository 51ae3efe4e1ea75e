//! The two webhook objects, exactly the seed's field sets with the seed's JSON types.
//! A value scanhook does not know is `null`, or `""` where the seed shows `""`. The finding
//! events (`domain::events`) carry the same finding fields.

use super::ci::MetadataKeys;
use super::ci::ProjectMetadata;
use crate::clock::{iso, Micros};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Everything a `semgrep_scan` object is built from.
#[derive(Debug, Clone)]
pub struct ScanFacts<'a> {
    pub public_id: &'a str,
    pub deployment_id: i64,
    pub started_at: Micros,
    pub completed_at: Option<Micros>,
    pub exit_code: Option<i64>,
    pub meta: &'a ProjectMetadata,
    /// The project's ignore globs handed to the client in `engine_params`.
    pub ignored_files: &'a [String],
}

/// The seed's `semgrep_scan` object, field for field in the seed's order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScanObject<'a> {
    pub deployment_id: i64,
    pub started_at: String,
    #[schema(required = true)]
    pub completed_at: Option<String>,
    #[schema(required = true)]
    pub exit_code: Option<i64>,
    pub repository: &'a str,
    #[schema(required = true)]
    pub ci_job_url: Option<&'a str>,
    pub environment: &'a str,
    #[schema(required = true)]
    pub commit: Option<&'a str>,
    pub commit_committer_email: &'a str,
    pub commit_timestamp: &'a str,
    #[schema(required = true)]
    pub commit_author_email: Option<&'a str>,
    #[schema(required = true)]
    pub commit_author_name: Option<&'a str>,
    #[schema(required = true)]
    pub commit_author_username: Option<&'a str>,
    #[schema(required = true)]
    pub commit_author_image_url: Option<&'a str>,
    pub commit_authored_timestamp: &'a str,
    /// The first line of the commit message.
    #[schema(required = true)]
    pub commit_title: Option<String>,
    pub config: &'a str,
    #[schema(required = true)]
    pub on: Option<&'a str>,
    #[schema(required = true)]
    pub branch: Option<&'a str>,
    pub pull_request_timestamp: &'a str,
    #[schema(required = true)]
    pub pull_request_author_username: Option<&'a str>,
    #[schema(required = true)]
    pub pull_request_author_image_url: Option<&'a str>,
    #[schema(required = true)]
    pub pull_request_id: Option<&'a str>,
    #[schema(required = true)]
    pub pull_request_title: Option<&'a str>,
    /// The project's ignore globs handed to the client.
    pub ignored_files: &'a [String],
    /// The scan's public id.
    pub id: &'a str,
}

/// `{"semgrep_scan": {...}}`: the body of a scan's message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScanBody<'a> {
    pub semgrep_scan: ScanObject<'a>,
}

/// The `semgrep_scan` object of a scan.
pub fn scan_object<'a>(s: &'a ScanFacts) -> ScanBody<'a> {
    let m = s.meta;
    ScanBody {
        semgrep_scan: ScanObject {
            deployment_id: s.deployment_id,
            started_at: iso(s.started_at),
            completed_at: s.completed_at.map(iso),
            exit_code: s.exit_code,
            repository: &m.repository,
            ci_job_url: m.ci_job_url.as_deref(),
            environment: m.scan_environment.as_deref().unwrap_or_default(),
            commit: m.commit.as_deref(),
            commit_committer_email: "",
            commit_timestamp: m.commit_timestamp.as_deref().unwrap_or_default(),
            commit_author_email: m.commit_author_email.as_deref(),
            commit_author_name: m.commit_author_name.as_deref(),
            commit_author_username: m.commit_author_username.as_deref(),
            commit_author_image_url: m.commit_author_image_url.as_deref(),
            commit_authored_timestamp: "",
            commit_title: m.commit_title.as_deref().map(first_line),
            config: "",
            on: m.on.as_deref(),
            branch: m.branch.as_deref(),
            pull_request_timestamp: "",
            pull_request_author_username: m.pull_request_author_username.as_deref(),
            pull_request_author_image_url: m.pull_request_author_image_url.as_deref(),
            pull_request_id: m.pull_request_id.as_deref(),
            pull_request_title: m.pull_request_title.as_deref(),
            ignored_files: s.ignored_files,
            id: s.public_id,
        },
    }
}

/// `{"semgrep_scan": {...}}` as a JSON value.
pub fn semgrep_scan(s: &ScanFacts) -> Value {
    serde_json::to_value(scan_object(s)).expect("a scan object always serialises")
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// Everything a `semgrep_finding` object is built from.
#[derive(Debug, Clone)]
pub struct FindingFacts<'a> {
    pub syntactic_id: &'a str,
    pub git_ref: &'a str,
    pub first_seen_at: Micros,
    pub first_seen_scan_id: &'a str,
    pub check_id: &'a str,
    pub path: &'a str,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
    pub message: &'a str,
    pub severity: i64,
    pub index: i64,
    pub commit_date: Option<&'a str>,
    /// The rule metadata as compact JSON, and the keys read from it.
    pub metadata: &'a RawValue,
    pub keys: &'a MetadataKeys<'a>,
}

/// The seed's `semgrep_finding` fields, in the seed's order. Metadata-derived fields are
/// copied as the rule author wrote them (string or list), `null` when absent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FindingObject<'a> {
    /// The finding's `syntactic_id`.
    pub id: &'a str,
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    /// When the identity was first seen in the project (ISO 8601, UTC).
    pub start_date: String,
    /// The rule id.
    pub check_id: &'a str,
    pub path: &'a str,
    pub line: i64,
    pub column: i64,
    pub message: &'a str,
    /// The CLI's severity number: 0 (info, low) to 3 (critical).
    pub severity: i64,
    pub index: i64,
    pub end_line: i64,
    pub end_column: i64,
    #[schema(required = true)]
    pub commit_date: Option<&'a str>,
    /// The public id of the scan that first detected the identity in the project.
    pub first_seen_scan_id: &'a str,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub category: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub cwe: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub license: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub owasp: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub references: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub source: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub technology: Option<&'a RawValue>,
    #[schema(value_type = serde_json::Value)]
    #[schema(required = true)]
    pub vulnerability: Option<&'a RawValue>,
    /// The rule's metadata, the platform's keys included.
    #[schema(value_type = Object)]
    pub metadata: &'a RawValue,
}

/// One element of a `semgrep_finding` message: `{"semgrep_finding": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FindingItem<'a> {
    pub semgrep_finding: FindingObject<'a>,
}

/// `{"semgrep_finding": {...}}` as compact JSON: one element of the array a scan sends.
pub fn semgrep_finding(f: &FindingFacts) -> String {
    serde_json::to_string(&FindingItem {
        semgrep_finding: finding_object(f),
    })
    .expect("a finding object always serialises")
}

/// The seed's fields of a finding.
pub fn finding_object<'a>(f: &'a FindingFacts) -> FindingObject<'a> {
    let k = f.keys;
    FindingObject {
        id: f.syntactic_id,
        git_ref: f.git_ref,
        start_date: iso(f.first_seen_at),
        check_id: f.check_id,
        path: f.path,
        line: f.line,
        column: f.column,
        message: f.message,
        severity: f.severity,
        index: f.index,
        end_line: f.end_line,
        end_column: f.end_column,
        commit_date: f.commit_date,
        first_seen_scan_id: f.first_seen_scan_id,
        category: k.category,
        cwe: k.cwe,
        license: k.license,
        owasp: k.owasp,
        references: k.references,
        source: k.source,
        technology: k.technology,
        vulnerability: k.vulnerability,
        metadata: f.metadata,
    }
}

/// The field names of the seed's objects, in the seed's order (for tests and docs).
pub const SCAN_FIELDS: [&str; 26] = [
    "deployment_id",
    "started_at",
    "completed_at",
    "exit_code",
    "repository",
    "ci_job_url",
    "environment",
    "commit",
    "commit_committer_email",
    "commit_timestamp",
    "commit_author_email",
    "commit_author_name",
    "commit_author_username",
    "commit_author_image_url",
    "commit_authored_timestamp",
    "commit_title",
    "config",
    "on",
    "branch",
    "pull_request_timestamp",
    "pull_request_author_username",
    "pull_request_author_image_url",
    "pull_request_id",
    "pull_request_title",
    "ignored_files",
    "id",
];

/// The field names of the seed's `semgrep_finding`, in the seed's order.
pub const FINDING_FIELDS: [&str; 23] = [
    "id",
    "ref",
    "start_date",
    "check_id",
    "path",
    "line",
    "column",
    "message",
    "severity",
    "index",
    "end_line",
    "end_column",
    "commit_date",
    "first_seen_scan_id",
    "category",
    "cwe",
    "license",
    "owasp",
    "references",
    "source",
    "technology",
    "vulnerability",
    "metadata",
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finding's facts for tests, with this metadata.
    pub(crate) fn sample_facts<'a>(meta: &'a RawValue, keys: &'a MetadataKeys) -> FindingFacts<'a> {
        FindingFacts {
            syntactic_id: "s",
            git_ref: "main",
            first_seen_at: 0,
            first_seen_scan_id: "abc",
            check_id: "r",
            path: "p",
            line: 1,
            column: 2,
            end_line: 3,
            end_column: 4,
            message: "m",
            severity: 2,
            index: 0,
            commit_date: None,
            metadata: meta,
            keys,
        }
    }

    #[test]
    fn scan_object_has_exactly_the_seed_keys_in_order() {
        let meta = ProjectMetadata {
            repository: "acme/api".into(),
            commit_title: Some("fix: thing\n\nbody".into()),
            ..Default::default()
        };
        let v = semgrep_scan(&ScanFacts {
            public_id: "xnkPGY8VL20o",
            deployment_id: 1,
            started_at: 0,
            completed_at: None,
            exit_code: None,
            meta: &meta,
            ignored_files: &[],
        });
        let keys: Vec<&str> = v["semgrep_scan"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, SCAN_FIELDS);
        assert_eq!(v["semgrep_scan"]["commit_title"], "fix: thing");
        assert_eq!(v["semgrep_scan"]["environment"], "");
        assert_eq!(v["semgrep_scan"]["commit"], Value::Null);
    }

    #[test]
    fn finding_object_copies_metadata_as_written() {
        let meta = RawValue::from_string(r#"{"cwe":"CWE-1","owasp":["A1","A2"]}"#.into()).unwrap();
        let keys: MetadataKeys = serde_json::from_str(meta.get()).unwrap();
        let text = semgrep_finding(&sample_facts(&meta, &keys));
        assert!(!text.contains(": "), "compact JSON: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let f = &v["semgrep_finding"];
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, FINDING_FIELDS);
        assert_eq!(f["cwe"], "CWE-1");
        assert_eq!(f["owasp"], serde_json::json!(["A1", "A2"]));
        assert_eq!(f["license"], Value::Null);
        assert_eq!(f["metadata"]["cwe"], "CWE-1");
        assert_eq!(f["start_date"], "1970-01-01T00:00:00.000000+00:00");
    }
}
