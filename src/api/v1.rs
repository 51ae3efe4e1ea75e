//! The platform-compatible v1 API (deployments, projects, findings, triage, scans) and
//! scanhook's per-scan views, in the shapes of Semgrep's public v1 API where one exists.

use crate::clock::iso;
use crate::domain::findings::{Change, Severity, Status, TriageState};
use crate::domain::lifecycle::State;
use crate::domain::mode::RuleMode;
use crate::domain::scan::ScanStatus;
use crate::ids::{DeploymentId, FindingId, ProjectId, PublicScanId, ScanId};
use crate::store::findings::{FindingRow, ProjectRow};
use crate::store::scans::Scan;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// `GET /api/v1/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentList {
    /// The token's deployment (a token belongs to one).
    pub deployments: Vec<DeploymentOut>,
}

/// A deployment (tenant).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentOut {
    pub id: DeploymentId,
    pub name: String,
    pub slug: String,
    pub findings: Link,
}

/// Where a list is read.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Link {
    pub url: String,
}

/// `GET /api/v1/deployments/{deployment}/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectOut>,
}

/// A project (repository), created on its first scan.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectOut {
    pub id: ProjectId,
    pub name: String,
    /// The repository URL `semgrep ci` reported.
    pub url: Option<String>,
    /// Always empty.
    pub tags: Vec<String>,
    pub created_at: String,
    pub latest_scan_at: Option<String>,
}

impl From<&ProjectRow> for ProjectOut {
    fn from(p: &ProjectRow) -> Self {
        ProjectOut {
            id: p.id,
            name: p.name.clone(),
            url: p.repo_url.clone(),
            tags: vec![],
            created_at: iso(p.created_at),
            latest_scan_at: p.last_scan_at.map(iso),
        }
    }
}

/// A list of findings.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FindingList {
    pub findings: Vec<FindingOut>,
}

/// A finding's state as the platform names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformState {
    /// Open.
    Unresolved,
    /// Suppressed by a `nosemgrep` comment.
    Muted,
    Fixed,
    Removed,
}

impl From<State> for PlatformState {
    fn from(s: State) -> Self {
        match s {
            State::Open => PlatformState::Unresolved,
            State::Ignored => PlatformState::Muted,
            State::Fixed => PlatformState::Fixed,
            State::Removed => PlatformState::Removed,
        }
    }
}

/// A finding on one ref, in the shape of the platform's `SastFinding`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FindingOut {
    pub id: FindingId,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The scan that first detected the identity in the project.
    pub first_seen_scan_id: Option<PublicScanId>,
    pub syntactic_id: String,
    pub match_based_id: Option<String>,
    pub state: PlatformState,
    pub triage_state: TriageState,
    /// What a person sees: the state, or the triage state of an open finding.
    pub status: Status,
    pub triage_reason: Option<String>,
    pub triage_comment: Option<String>,
    pub triaged_at: Option<String>,
    pub created_at: String,
    /// When it was last opened (a regression is relevant again from then).
    pub relevant_since: String,
    pub state_updated_at: String,
    pub severity: Severity,
    pub confidence: Option<String>,
    pub categories: Vec<Value>,
    pub mode: RuleMode,
    pub repository: RepositoryRef,
    pub location: Location,
    pub rule: RuleInfo,
    pub rule_name: String,
    pub rule_message: String,
    pub sourcing_policy: Option<Value>,
    /// What the scan did to it, in a per-scan listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_change: Option<ScanChange>,
}

/// A finding's repository.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepositoryRef {
    pub name: String,
    pub url: Option<String>,
}

/// Where a finding is.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub file_path: String,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
}

/// The rule of a finding, with the metadata the platform shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleInfo {
    pub name: String,
    pub message: String,
    pub category: Option<Value>,
    pub confidence: Option<Value>,
    pub cwe_names: Vec<Value>,
    pub owasp_names: Vec<Value>,
    pub subcategories: Vec<Value>,
    pub vulnerability_classes: Vec<Value>,
}

/// What a scan did to a finding.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanChange {
    pub change: Change,
    /// Whether the scan notified it.
    pub notify: bool,
}

impl From<&FindingRow> for FindingOut {
    fn from(f: &FindingRow) -> Self {
        let meta = &f.metadata;
        let list = |k: &str| match meta.get(k) {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            _ => vec![],
        };
        let key = |k: &str| meta.get(k).filter(|v| !v.is_null()).cloned();
        FindingOut {
            id: f.id,
            git_ref: f.git_ref.clone(),
            first_seen_scan_id: f.first_seen_scan_id.clone(),
            syntactic_id: f.syntactic_id.clone(),
            match_based_id: f.match_based_id.clone(),
            state: f.state.into(),
            triage_state: f.triage_state,
            status: f.status,
            triage_reason: f.triage_reason.clone(),
            triage_comment: f.triage_comment.clone(),
            triaged_at: f.triaged_at.map(iso),
            created_at: iso(f.created_at),
            relevant_since: iso(f.relevant_since),
            state_updated_at: iso(f.state_updated_at),
            severity: f.severity,
            confidence: meta
                .get("confidence")
                .and_then(Value::as_str)
                .map(str::to_lowercase),
            categories: list("category"),
            mode: f.mode,
            repository: RepositoryRef {
                name: f.project.clone(),
                url: f.repo_url.clone(),
            },
            location: Location {
                file_path: f.path.clone(),
                line: f.line,
                column: f.column,
                end_line: f.end_line,
                end_column: f.end_column,
            },
            rule: RuleInfo {
                name: f.rule_id.clone(),
                message: f.message.clone(),
                category: key("category"),
                confidence: key("confidence"),
                cwe_names: list("cwe"),
                owasp_names: list("owasp"),
                subcategories: list("subcategory"),
                vulnerability_classes: list("vulnerability_class"),
            },
            rule_name: f.rule_id.clone(),
            rule_message: f.message.clone(),
            sourcing_policy: key("semgrep.policy"),
            scan_change: f.change.map(|change| ScanChange {
                change,
                notify: f.notify,
            }),
        }
    }
}

/// `POST /api/v1/deployments/{deployment}/triage`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriageIn {
    /// Only `sast`.
    #[serde(default)]
    #[schema(pattern = "^sast$")]
    pub issue_type: Option<String>,
    /// 1 to 10,000 finding ids; triage applies to each one's identity on every ref.
    #[schema(min_items = 1, max_items = 10_000)]
    pub issue_ids: Vec<FindingId>,
    /// One of ignored, reviewing, fixing, reopened, provisionally_ignored (a finding is
    /// untriaged until it is triaged, never triaged back to it).
    #[schema(value_type = String, pattern = "^(ignored|reviewing|fixing|reopened|provisionally_ignored)$")]
    pub new_triage_state: TriageState,
    /// Why (for ignored: false_positive, acceptable_risk, no_time, …).
    #[serde(default)]
    pub new_triage_reason: Option<String>,
    #[serde(default)]
    pub new_note: Option<String>,
}

/// What triage did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriageOut {
    pub succeeded: Vec<TriagedIds>,
    pub failed: Vec<TriageFailure>,
}

/// Finding ids that were triaged.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriagedIds {
    pub issue_ids: Vec<FindingId>,
}

/// Finding ids that were not, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriageFailure {
    pub issue_ids: Vec<FindingId>,
    pub error: String,
}

/// A scan in the shape of the platform's scan object, plus scanhook's counts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanOut {
    pub id: ScanId,
    pub public_id: PublicScanId,
    pub deployment_id: DeploymentId,
    pub repository_id: ProjectId,
    pub repository: String,
    pub branch: String,
    /// The scanner: `semgrep` for `semgrep ci`, else the tool of an upload.
    pub tool: String,
    pub is_full_scan: bool,
    pub status: ScanStatus,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub exit_code: Option<i64>,
    /// Always `["sast"]`.
    pub enabled_products: Vec<String>,
    pub cli_version: Option<String>,
    /// The statistics `/complete` sent.
    pub stats: Option<Value>,
    pub counts: ScanCounts,
    /// The `project_metadata` `semgrep ci` sent.
    pub meta: crate::domain::ci::ProjectMetadata,
}

/// What a scan found and changed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanCounts {
    /// Findings uploaded.
    pub findings: i64,
    /// Findings it opened (new, regressions, reopened, from another ref).
    pub opened: i64,
    pub fixed: i64,
    /// Findings it notified as `semgrep_finding`.
    pub notified: i64,
    /// Findings it opened of rules in Block mode, not triaged as ignored, not already
    /// known on another ref.
    pub blocking: i64,
}

impl From<&Scan> for ScanOut {
    fn from(s: &Scan) -> Self {
        ScanOut {
            id: s.id,
            public_id: s.public_id.clone(),
            deployment_id: s.deployment_id,
            repository_id: s.project_id,
            repository: s.project.clone(),
            branch: s.git_ref.clone(),
            tool: s.tool.clone(),
            is_full_scan: s.is_full_scan,
            status: s.status,
            started_at: iso(s.started_at),
            completed_at: s.completed_at.map(iso),
            exit_code: s.exit_code,
            enabled_products: vec!["sast".into()],
            cli_version: s.cli_version.clone(),
            stats: s.stats.clone(),
            counts: ScanCounts {
                findings: s.n_findings,
                opened: s.n_opened,
                fixed: s.n_fixed,
                notified: s.n_notified,
                blocking: s.n_blocking,
            },
            meta: s.meta.clone(),
        }
    }
}

/// `GET /api/v1/deployments/{deployment}/scan/{scan_id}/webhooks`: the objects the scan
/// produced, exactly as stored (null while the scan runs).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanWebhooks {
    /// `{"semgrep_scan": {...}}`.
    #[schema(value_type = Option<Object>)]
    pub semgrep_scan: Option<Box<RawValue>>,
    /// The array of `{"semgrep_finding": {...}}` objects the scan notified.
    #[schema(value_type = Option<Vec<Object>>)]
    pub semgrep_finding: Option<Box<RawValue>>,
}

/// `POST /api/v1/deployments/{deployment}/scans/search`. Every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchIn {
    #[serde(default)]
    pub repository_id: Option<ProjectId>,
    /// The project's name, e.g. `acme/api`.
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub is_full_scan: Option<bool>,
    /// Scans started since: epoch seconds (a number) or RFC 3339 (a string).
    #[serde(default)]
    pub since: Option<Value>,
    /// `SCAN_STATUS_RUNNING`, `_COMPLETED`, `_ERROR`, `_NEVER_FINISHED` (or scanhook's names).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// The `cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A page of scans, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanList {
    pub scans: Vec<ScanOut>,
    /// Pass it back for the next page; null on the last.
    pub cursor: Option<String>,
}
