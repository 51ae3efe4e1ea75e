//! Findings of other tools, uploaded as a file: SARIF 2.1.0 (bandit, ruff, checkov, ESLint,
//! CodeQL, `semgrep --sarif`, …) or `semgrep scan --json`, converted into the body that
//! [`Results::parse`](super::ci::Results::parse) reads, so that an upload goes through the
//! same lifecycle as a `semgrep ci` scan. Pure: bytes in, bodies out.
//!
//! [`convert`] yields one [`Converted`] per tool (SARIF runs of the same tool are merged,
//! since each becomes the scan of that tool and a second scan would close the first's
//! findings). Every finding's `check_id` is `<tool>.<ruleId>` (`bandit.B602`), so rules of
//! different tools never collide; Semgrep keeps its own rule ids.
//!
//! # Paths
//!
//! A finding's `path` is its first location's `artifactLocation.uri` (or that of the
//! `artifacts` entry its `index` names), percent-decoded, without `file://` and leading
//! `./`. An absolute path loses the longest directory it lies under among the run's
//! `originalUriBaseIds`, its invocations' `workingDirectory` and the `root` given to
//! [`convert_under`]; outside all of them it stays absolute. URIs of other schemes
//! (`https://…`) are not files of the repository: such results are skipped.
//!
//! `searched_paths` are the results' paths and the run's `artifacts`; `rule_ids` the
//! driver's and extensions' rules and every rule seen. A tool that lists no artifacts
//! (bandit, ruff) thus makes a finding fixed in a file left without findings close as
//! `removed`, not `fixed`.
//!
//! # Identity
//!
//! A finding's identity (`match_based_id`, and `syntactic_id` alike) must survive code
//! moving up or down, so **line numbers never enter it**. It is a SHA-256 over the tool, the
//! rule and, by the first basis that the result offers:
//!
//! 1. the tool's fingerprints (`fingerprints` and `partialFingerprints`, merged): Semgrep's
//!    `matchBasedId/v1` alone when present (it already covers the path); otherwise every
//!    entry sorted by key, plus the path (CodeQL's `primaryLocationLineHash`, for one, is a
//!    hash of the line's text only and would merge equal lines of different files).
//!    `semgrep --json`'s `extra.fingerprint` counts as a `matchBasedId/v1`, unless it is
//!    `requires login`;
//! 2. the path and the snippet (`region.snippet.text`, else `contextRegion.snippet.text`;
//!    `extra.lines` for `semgrep --json`) with whitespace runs collapsed to one space;
//! 3. the path and the message text.
//!
//! When several results of one upload share a basis (the same snippet twice in a file), the
//! second and later get an occurrence number hashed in, counted in the order the tool lists
//! them; the number is also the finding's `index`.
//!
//! # Severity
//!
//! | source, first that is present                          | level            |
//! |--------------------------------------------------------|------------------|
//! | `security-severity` (CVSS) of the result's or the rule's `properties`: ≥ 9.0 | 3 critical |
//! | … ≥ 7.0                                                 | 2 high           |
//! | … ≥ 4.0                                                 | 1 medium         |
//! | … below 4.0                                             | 0 low            |
//! | `level` of the result, else the rule's `defaultConfiguration.level`: `error` | 2 high |
//! | … `warning` (also SARIF's default when neither is set)  | 1 medium         |
//! | … `note`, `none`                                        | 0 low            |
//! | `semgrep --json` `extra.severity`: `CRITICAL`          | 3 critical       |
//! | … `ERROR`, `HIGH`                                       | 2 high           |
//! | … `WARNING`, `MEDIUM` (also when unknown)               | 1 medium         |
//! | … `INFO`, `LOW`, `INVENTORY`                            | 0 low            |
//! | … `EXPERIMENT`                                          | 4 experiment     |
//!
//! # Metadata
//!
//! A SARIF finding's `metadata` is `{tool, help, help_uri, tags, cwe, precision,
//! security-severity, properties}`: `cwe` holds the ids (`CWE-89`) read from tags such as
//! `CWE-89: SQL Injection` or `external/cwe/cwe-89`, `properties` the rule's properties as
//! the tool wrote them. A `semgrep --json` finding keeps Semgrep's rule metadata, with `tool`.
//!
//! # What is skipped
//!
//! Results that are not problems (`kind` `pass`, `notApplicable`, `informational`) and
//! results that cannot be placed (no location, no rule id, a path or rule id that an upload
//! may not hold) are skipped and counted; when more than half of a run's results cannot be
//! placed the upload is refused, since converting the rest would close the others' findings
//! as fixed. Suppressed results (SARIF `suppressions`, Semgrep's `is_ignored`) go to
//! `ignores`, where the lifecycle closes them as ignored.

mod body;
mod identity;
mod paths;
#[cfg(test)]
mod robustness;
mod sarif;
mod semgrep_json;
mod shallow;
#[cfg(test)]
mod tests;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// What an uploaded file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    /// SARIF 2.1.0.
    Sarif,
    /// The output of `semgrep scan --json`.
    SemgrepJson,
}

impl UploadFormat {
    /// Tells the formats apart for an `auto` upload: a SARIF log has `runs` (or at least
    /// a `$schema` or `version`, and is then refused for what it lacks), Semgrep's output
    /// has `results` at the top.
    pub fn detect(bytes: &[u8]) -> Result<UploadFormat, UploadError> {
        #[derive(Deserialize)]
        struct Top {
            #[serde(rename = "$schema")]
            schema: Option<IgnoredAny>,
            version: Option<IgnoredAny>,
            runs: Option<IgnoredAny>,
            results: Option<IgnoredAny>,
        }
        an_object(bytes)?;
        let top: Top = serde_json::from_slice(bytes).map_err(not_json)?;
        // Semgrep's output has a `version` too (its own): `results` decides first.
        if top.runs.is_some() {
            Ok(UploadFormat::Sarif)
        } else if top.results.is_some() {
            Ok(UploadFormat::SemgrepJson)
        } else if top.schema.is_some() || top.version.is_some() {
            Ok(UploadFormat::Sarif)
        } else {
            Err(UploadError::new(
                "",
                "neither SARIF (no `runs`) nor `semgrep scan --json` output (no `results`)",
            ))
        }
    }
}

/// Why an upload cannot be converted, and where in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    /// A JSON path such as `runs[0].results[3].locations`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl UploadError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> UploadError {
        UploadError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for UploadError {}

/// Refuses a document that is not a JSON object. serde reads a struct or a map from an
/// array too, so this is told apart first.
fn an_object(bytes: &[u8]) -> Result<(), UploadError> {
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        return Ok(());
    }
    let e = serde_json::from_slice::<IgnoredAny>(bytes).err();
    Err(e.map_or_else(not_an_object, not_json))
}

fn not_json(e: serde_json::Error) -> UploadError {
    if e.is_data() {
        return not_an_object();
    }
    UploadError::new("", format!("not JSON: {e}"))
}

fn not_an_object() -> UploadError {
    UploadError::new("", "the document is not a JSON object")
}

/// The scan of one tool, ready for the lifecycle.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The tool, lowercased (`bandit`, `checkov`, `eslint`, `semgrep`).
    pub tool: String,
    /// A body that [`Results::parse`](super::ci::Results::parse) accepts and
    /// [`Results::check`](super::ci::Results::check) passes.
    pub results_json: Vec<u8>,
    /// Findings in the body's `findings`.
    pub findings: usize,
    /// Suppressed results, in the body's `ignores`.
    pub ignored: usize,
    /// Results left out (see the module documentation).
    pub skipped: usize,
}

/// Converts an uploaded file: one [`Converted`] per tool, in the order the tools appear.
pub fn convert(bytes: &[u8], format: UploadFormat) -> Result<Vec<Converted>, UploadError> {
    convert_under(bytes, format, None)
}

/// One tool's findings read from an upload, before the rule board has given their rules a
/// mode ([`ToolScan::finish`]).
pub struct ToolScan {
    body: body::Body,
}

impl ToolScan {
    /// The tool, lowercased.
    pub fn tool(&self) -> &str {
        &self.body.tool
    }

    /// The rules that reported findings, each with the metadata of its first finding.
    pub fn reported_rules(&self) -> Vec<(&str, &RawValue)> {
        self.body.reported_rules()
    }

    /// The `/results` body, with `extra(check_id)`'s keys added to each finding's
    /// metadata (`dev.semgrep.actions`, `semgrep.policy`: what a rule's mode is carried
    /// by, as in a `semgrep ci` upload).
    pub fn finish(mut self, extra: &dyn Fn(&str) -> Option<Map<String, Value>>) -> Converted {
        self.body.annotate(extra);
        self.body.finish()
    }
}

/// Reads an uploaded file into one [`ToolScan`] per tool, in the order the tools appear;
/// `root` as for [`convert_under`].
pub fn read_under(
    bytes: &[u8],
    format: UploadFormat,
    root: Option<&str>,
) -> Result<Vec<ToolScan>, UploadError> {
    an_object(bytes)?;
    let doc: shallow::Members = serde_json::from_slice(bytes).map_err(not_json)?;
    let bodies = match format {
        UploadFormat::Sarif => sarif::convert(&doc, root)?,
        UploadFormat::SemgrepJson => vec![semgrep_json::convert(&doc)?],
    };
    Ok(bodies.into_iter().map(|body| ToolScan { body }).collect())
}

/// [`convert`], with the absolute directory the tool ran in (`$GITHUB_WORKSPACE`, say):
/// tools that write absolute `file://` URIs without a base (ESLint's formatter, ruff) get
/// repository-relative paths, and so identities that do not depend on the runner.
pub fn convert_under(
    bytes: &[u8],
    format: UploadFormat,
    root: Option<&str>,
) -> Result<Vec<Converted>, UploadError> {
    let scans = read_under(bytes, format, root)?;
    Ok(scans.into_iter().map(|s| s.finish(&|_| None)).collect())
}
