//! `POST /api/v1/uploads`: another scanner's findings (SARIF 2.1.0, `semgrep scan --json`)
//! as scans of this platform.

use super::v1::{FindingOut, ScanOut};
use serde::{Deserialize, Serialize};

/// What an upload did: one scan per tool the file held.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadOut {
    pub scans: Vec<UploadedScan>,
    /// Findings the upload opened of rules in Block mode, all tools together: more than
    /// none fails the build (`scanhook upload` exits 1).
    pub blocking: i64,
}

/// The scan of one tool.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadedScan {
    /// The scanner, lowercased (`bandit`, `ruff`, `checkov`, `eslint`, `semgrep`).
    pub tool: String,
    /// Suppressed results (closed as ignored).
    pub ignored: i64,
    /// Results left out: not problems, or without a place in the repository.
    pub skipped: i64,
    pub scan: ScanOut,
    /// The page of the scan in the web UI.
    pub url: String,
    /// What the scan changed, finding by finding (with `changes=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<FindingOut>>,
}
