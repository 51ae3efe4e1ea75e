//! A scan's lifecycle state: running → completed | error | abandoned.

use super::findings::named_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A scan's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// Created; `/complete` or `/error` not received yet.
    Running,
    Completed,
    /// `semgrep ci` reported an error (`/error`).
    Error,
    /// No `/complete` or `/error` within the abandon timeout.
    Abandoned,
}

named_enum!(ScanStatus, "scan status", {
    Running => "running",
    Completed => "completed",
    Error => "error",
    Abandoned => "abandoned",
});

impl ScanStatus {
    /// Reads a status as the platform's scan search takes it (`SCAN_STATUS_COMPLETED`,
    /// `SCAN_STATUS_NEVER_FINISHED`, …) or by scanhook's names.
    pub fn parse_platform(s: &str) -> Result<ScanStatus, String> {
        Ok(
            match s.trim_start_matches("SCAN_STATUS_").to_ascii_lowercase().as_str() {
                "running" | "pending" => ScanStatus::Running,
                "completed" => ScanStatus::Completed,
                "error" => ScanStatus::Error,
                "never_finished" | "abandoned" => ScanStatus::Abandoned,
                _ => {
                    return Err(format!(
                        "unknown scan status {s:?}: use SCAN_STATUS_RUNNING, _COMPLETED, _ERROR or _NEVER_FINISHED"
                    ))
                }
            },
        )
    }
}
