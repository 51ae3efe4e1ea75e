//! The request bodies of the semgrep-ci protocol (`semgrep_output_v1.atd`), parsed at the
//! edge into typed values. Unknown fields are accepted and ignored: newer clients add them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::LazyLock;

/// `POST /api/cli/v2/scans`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateScan {
    pub scan_metadata: ScanMetadata,
    pub project_metadata: ProjectMetadata,
}

/// What the client says of the scan itself.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ScanMetadata {
    /// The client's id of this run: creating a scan again with it returns the same scan.
    pub unique_id: String,
    #[serde(default)]
    pub cli_version: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// What the client knows about the repository and the CI job; kept whole in the database
/// and read back to build the `semgrep_scan` object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProjectMetadata {
    /// The project, e.g. `acme/api`; created on its first scan.
    pub repository: String,
    #[serde(default)]
    pub scan_environment: Option<String>,
    #[serde(default)]
    pub repo_url: Option<String>,
    /// The scanned ref, e.g. `main` or `refs/pull/3483/merge`.
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub commit_title: Option<String>,
    #[serde(default)]
    pub commit_timestamp: Option<String>,
    #[serde(default)]
    pub commit_author_email: Option<String>,
    #[serde(default)]
    pub commit_author_name: Option<String>,
    #[serde(default)]
    pub commit_author_username: Option<String>,
    #[serde(default)]
    pub commit_author_image_url: Option<String>,
    #[serde(default)]
    pub ci_job_url: Option<String>,
    #[serde(default)]
    pub on: Option<String>,
    #[serde(default)]
    pub pull_request_author_username: Option<String>,
    #[serde(default)]
    pub pull_request_author_image_url: Option<String>,
    #[serde(default)]
    pub pull_request_id: Option<String>,
    #[serde(default)]
    pub pull_request_title: Option<String>,
    /// `false` for a diff-aware scan (only what the change introduces is uploaded).
    #[serde(default = "yes")]
    pub is_full_scan: bool,
}

fn yes() -> bool {
    true
}

/// Longest `scan_metadata.unique_id`, in bytes (as are the lengths below).
pub const MAX_UNIQUE_ID: usize = 200;
/// Longest repository name.
pub const MAX_REPOSITORY: usize = 512;
/// Longest ref name.
pub const MAX_REF: usize = 1024;
/// Longest of every other metadata string.
pub const MAX_METADATA_TEXT: usize = 4096;

impl CreateScan {
    /// Checks what serde cannot: lengths, and characters that would forge log lines or
    /// hide in what the UI shows. Repository and ref names hold no control or formatting
    /// character at all; free text (titles, author names) no NUL, no control character but
    /// tab and line breaks, no bidi override.
    pub fn check(&self) -> Result<(), String> {
        let uid = &self.scan_metadata.unique_id;
        if uid.trim().is_empty() || uid.len() > MAX_UNIQUE_ID || super::text::has_hidden(uid) {
            return Err(format!(
                "scan_metadata.unique_id must be 1 to {MAX_UNIQUE_ID} bytes (UTF-8) without control characters"
            ));
        }
        let m = &self.project_metadata;
        if m.repository.trim().is_empty()
            || m.repository.len() > MAX_REPOSITORY
            || super::text::has_hidden(&m.repository)
        {
            return Err(format!(
                "project_metadata.repository must be 1 to {MAX_REPOSITORY} bytes (UTF-8) without control or formatting characters"
            ));
        }
        if let Some(b) = &m.branch {
            if b.is_empty() || b.len() > MAX_REF || super::text::has_hidden(b) {
                return Err(format!(
                    "project_metadata.branch must be 1 to {MAX_REF} bytes (UTF-8) without control or formatting characters"
                ));
            }
        }
        let names = [
            ("scan_environment", &m.scan_environment),
            ("repo_url", &m.repo_url),
            ("commit", &m.commit),
            ("commit_timestamp", &m.commit_timestamp),
            ("ci_job_url", &m.ci_job_url),
            ("on", &m.on),
            ("pull_request_id", &m.pull_request_id),
            ("commit_author_image_url", &m.commit_author_image_url),
            (
                "pull_request_author_image_url",
                &m.pull_request_author_image_url,
            ),
        ];
        for (key, value) in names {
            if let Some(v) = value {
                if v.len() > MAX_METADATA_TEXT || super::text::has_hidden(v) {
                    return Err(format!(
                        "project_metadata.{key} must be at most {MAX_METADATA_TEXT} bytes (UTF-8) without control or formatting characters"
                    ));
                }
            }
        }
        let texts = [
            ("commit_title", &m.commit_title),
            ("commit_author_email", &m.commit_author_email),
            ("commit_author_name", &m.commit_author_name),
            ("commit_author_username", &m.commit_author_username),
            (
                "pull_request_author_username",
                &m.pull_request_author_username,
            ),
            ("pull_request_title", &m.pull_request_title),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                if v.len() > MAX_METADATA_TEXT || super::text::has_forbidden_in_text(v) {
                    return Err(format!(
                        "project_metadata.{key} must be at most {MAX_METADATA_TEXT} bytes (UTF-8) without NUL, control (but tab and line breaks) or bidi characters"
                    ));
                }
            }
        }
        if let Some(v) = &self.scan_metadata.cli_version {
            if v.len() > 200 || super::text::has_hidden(v) {
                return Err(
                    "scan_metadata.cli_version must be at most 200 bytes of plain text".into(),
                );
            }
        }
        Ok(())
    }
}

impl ProjectMetadata {
    /// The scanned ref; scans without a branch (detached HEAD outside CI) share one.
    pub fn git_ref(&self) -> String {
        self.branch.clone().unwrap_or_else(|| "HEAD".to_string())
    }
}

/// `POST /api/agent/scans/{id}/results`, read in place: the findings' strings and metadata
/// borrow from the body (a string that holds escapes is the only copy), so an upload costs
/// little more memory than its own bytes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Results<'a> {
    #[serde(borrow)]
    pub findings: Vec<Finding<'a>>,
    #[serde(default, borrow)]
    pub ignores: Vec<Finding<'a>>,
    #[serde(default)]
    pub searched_paths: Vec<String>,
    #[serde(default)]
    pub renamed_paths: Vec<String>,
    #[serde(default)]
    pub skipped_paths: Vec<SkippedPath>,
    #[serde(default)]
    pub rule_ids: Vec<String>,
}

impl<'a> Results<'a> {
    /// Reads an upload in place.
    pub fn parse(body: &'a [u8]) -> serde_json::Result<Results<'a>> {
        serde_json::from_slice(body)
    }
}

/// A skipped path: a bare string from this client, an object `{path, …}` from others.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SkippedPath {
    Path(String),
    Object { path: String },
}

impl SkippedPath {
    pub fn path(&self) -> &str {
        match self {
            SkippedPath::Path(p) | SkippedPath::Object { path: p } => p,
        }
    }
}

/// One match of one rule, as uploaded. The rule metadata stays raw JSON: it is stored and
/// sent on, and scanhook reads only a few of its keys.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Finding<'a> {
    #[serde(borrow)]
    pub check_id: Cow<'a, str>,
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    pub severity: i64,
    pub index: i64,
    #[serde(default, borrow)]
    pub commit_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub syntactic_id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub match_based_id: Option<Cow<'a, str>>,
    /// The rule's metadata as served in the config (default `{}`).
    #[serde(default, borrow, rename = "metadata")]
    #[schema(value_type = Object)]
    pub raw_metadata: Option<&'a RawValue>,
    #[serde(default)]
    pub is_blocking: bool,
}

impl<'a> Finding<'a> {
    /// The rule metadata as uploaded; `{}` when there is none.
    pub fn metadata(&self) -> &'a RawValue {
        self.raw_metadata.unwrap_or_else(|| empty_object())
    }

    /// Identity inside a project: `match_based_id`, else `syntactic_id`.
    pub fn key(&self) -> &str {
        self.match_based_id
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.syntactic_id)
    }

    /// Checks what serde cannot: ids present, fields within sane sizes, and text that every
    /// backend can store and nobody misreads (no NUL or other C0 control, no bidi control;
    /// `message` may hold tabs and line breaks).
    pub fn check(&self, list: &str, i: usize) -> Result<(), String> {
        let at = |what: &str| format!("{list}[{i}]: {what}");
        if self.syntactic_id.is_empty() || self.syntactic_id.len() > 256 {
            return Err(at("`syntactic_id` must be 1 to 256 bytes"));
        }
        if self.match_based_id.as_ref().is_some_and(|m| m.len() > 512) {
            return Err(at("`match_based_id` is longer than 512 bytes"));
        }
        if self.check_id.is_empty() || self.check_id.len() > 512 {
            return Err(at("`check_id` must be 1 to 512 bytes"));
        }
        if self.path.is_empty() || self.path.len() > 4096 {
            return Err(at("`path` must be 1 to 4096 bytes"));
        }
        if self.message.len() > 65_536 {
            return Err(at("`message` is longer than 64 KiB"));
        }
        let texts = [
            ("check_id", Some(&self.check_id), false),
            ("path", Some(&self.path), false),
            ("message", Some(&self.message), true),
            ("syntactic_id", Some(&self.syntactic_id), false),
            ("match_based_id", self.match_based_id.as_ref(), false),
            ("commit_date", self.commit_date.as_ref(), false),
        ];
        for (field, value, line_breaks) in texts {
            let Some(c) =
                value.and_then(|v| super::text::first_forbidden_in_upload(v, line_breaks))
            else {
                continue;
            };
            let allowed = if line_breaks {
                "control characters (tab and line breaks are fine)"
            } else {
                "control characters"
            };
            return Err(at(&format!(
                "`{field}` holds U+{:04X}; remove {allowed} and bidi controls (U+202A–U+202E, U+2066–U+2069)",
                c as u32
            )));
        }
        if !self.metadata().get().starts_with('{') {
            return Err(at("`metadata` must be an object"));
        }
        let depth = nesting_depth(self.metadata().get());
        if depth > MAX_METADATA_DEPTH {
            return Err(at(&format!(
                "`metadata` is nested {depth} levels deep; at most {MAX_METADATA_DEPTH}"
            )));
        }
        Ok(())
    }
}

/// Deepest nesting of a finding's metadata. Everything that `/results` accepts, `/complete`
/// must be able to read back, and JSON readers stop at a depth (serde_json at 128).
pub const MAX_METADATA_DEPTH: usize = 64;

/// How deeply arrays and objects nest in a JSON text (brackets inside strings do not count).
pub fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `{}`, the metadata of a finding that has none.
pub fn empty_object() -> &'static RawValue {
    static EMPTY: LazyLock<Box<RawValue>> =
        LazyLock::new(|| RawValue::from_string("{}".to_string()).expect("{} is JSON"));
    &EMPTY
}

/// The metadata keys scanhook reads, borrowed from the raw JSON.
#[derive(Debug, Default, Deserialize)]
pub struct MetadataKeys<'a> {
    #[serde(rename = "dev.semgrep.actions", default)]
    pub actions: Option<Vec<String>>,
    #[serde(rename = "semgrep.policy", default)]
    pub policy: Option<PolicyKeys>,
    #[serde(default, borrow)]
    pub category: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub cwe: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub license: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub owasp: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub references: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub source: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub technology: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub vulnerability: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyKeys {
    #[serde(default)]
    pub slug: Option<String>,
}

impl Results<'_> {
    /// Validates every finding; the first problem is reported.
    pub fn check(&self) -> Result<(), String> {
        for (i, f) in self.findings.iter().enumerate() {
            f.check("findings", i)?;
        }
        for (i, f) in self.ignores.iter().enumerate() {
            f.check("ignores", i)?;
        }
        Ok(())
    }
}

/// `POST /api/agent/scans/{id}/complete`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Complete {
    pub exit_code: i64,
    /// Scan statistics, kept as sent.
    #[serde(default)]
    pub stats: Value,
}

/// Deepest nesting of `/complete`'s `stats` (real ones nest three or four levels). They
/// are stored and read back into every `semgrep_scan` object, whose readers stop at a
/// depth of their own.
pub const MAX_STATS_DEPTH: usize = 32;

impl Complete {
    /// `Err(depth)` when `stats` nests deeper than [`MAX_STATS_DEPTH`].
    pub fn check(&self) -> Result<(), usize> {
        match value_depth(&self.stats) {
            d if d > MAX_STATS_DEPTH => Err(d),
            _ => Ok(()),
        }
    }
}

/// How deeply arrays and objects nest in `v` (a scalar: 0, `{}`: 1). Recursion is bounded
/// by serde_json's own depth limit on what it parsed.
pub fn value_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The reply to `/complete`. A retried `/complete` gets the reply of the first.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CompleteReply {
    pub success: bool,
    /// Set when a rule was switched to Block while the scan ran: the client fails the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_block_override: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_block_reason: Option<String>,
    /// The findings of such rules that the client did not block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_blocking_match_based_ids: Option<Vec<String>>,
}

impl CompleteReply {
    /// `{"success": true}`, or the late-Block override naming the findings to block.
    pub fn new(override_ids: Vec<String>) -> CompleteReply {
        if override_ids.is_empty() {
            return CompleteReply {
                success: true,
                app_block_override: None,
                app_block_reason: None,
                app_blocking_match_based_ids: None,
            };
        }
        CompleteReply {
            success: true,
            app_block_override: Some(true),
            app_block_reason: Some("a rule was switched to Block mode while this scan ran".into()),
            app_blocking_match_based_ids: Some(override_ids),
        }
    }
}

/// `POST /api/agent/scans/{id}/error`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ScanError {
    pub exit_code: i64,
    #[serde(default)]
    pub stderr: String,
}

impl ScanError {
    /// The client's stderr is kept as sent (colour codes and all) but for NUL, which
    /// PostgreSQL cannot store in text.
    pub fn check(&self) -> Result<(), String> {
        if self.stderr.contains('\0') {
            return Err(
                "`stderr` holds U+0000 (NUL), which cannot be stored: remove it or send the text escaped"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings() {
        assert_eq!(nesting_depth("{}"), 1);
        assert_eq!(nesting_depth(r#"{"a":[{"b":"[[[{{{"}]}"#), 3);
        assert_eq!(nesting_depth(r#"{"a":"\"[[["}"#), 1);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(nesting_depth(&deep), 200);
    }

    #[test]
    fn stats_nest_at_most_32_deep() {
        let nested = |levels: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..levels {
                v = serde_json::json!({"k": [v]});
            }
            v
        };
        assert_eq!(value_depth(&serde_json::json!(null)), 0);
        assert_eq!(value_depth(&serde_json::json!({"a": 1, "b": [[]]})), 3);
        assert_eq!(value_depth(&nested(16)), 32);
        let ok = Complete {
            exit_code: 0,
            stats: nested(16),
        };
        assert_eq!(ok.check(), Ok(()));
        let deep = Complete {
            exit_code: 0,
            stats: serde_json::json!([nested(16)]),
        };
        assert_eq!(deep.check(), Err(33));
    }
}
