//! What the semgrep-ci endpoints answer (`shared/reference/semgrep-ci-protocol.md`). The
//! request bodies are `domain::ci`'s, parsed at the edge.

use crate::ids::{DeploymentId, ScanId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/cli/v2/scans`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanCreated {
    pub info: ScanInfo,
}

/// The scan as the client needs it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanInfo {
    /// The numeric id the client puts in `/api/agent/scans/{id}/…`.
    pub id: ScanId,
    /// Always `["sast"]`.
    pub enabled_products: Vec<String>,
    pub deployment_id: DeploymentId,
    /// The deployment's slug.
    pub deployment_name: String,
}

/// `GET /api/cli/v2/scans/{unique_id}/config`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanConfig {
    /// Always `success`.
    pub status: String,
    pub config: ConfigBody,
    pub engine_params: EngineParams,
}

/// The rules to run and the findings triaged as ignored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigBody {
    pub rules: RuleSet,
    pub triage_ignored_syntactic_ids: Vec<String>,
    pub triage_ignored_match_based_ids: Vec<String>,
}

/// A rule file as the client reads it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleSet {
    /// Each rule as written, with `dev.semgrep.actions`, `semgrep.policy` and `semgrep.url`
    /// set in its metadata.
    pub rules: Vec<Value>,
}

/// Engine settings.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineParams {
    /// The project's ignore globs.
    pub ignored_files: Vec<String>,
    /// The same per product, as an ATD association list: `[["sast", [globs…]]]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub product_ignored_files: Vec<(String, Vec<String>)>,
}

/// `POST /api/agent/scans/{scan_id}/results`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultsAccepted {
    /// Always empty: a refused upload is a 4xx.
    pub errors: Vec<Value>,
    /// The scan's public id.
    pub task_id: String,
}

/// `GET /api/agent/deployments/current`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrentDeployment {
    pub deployment: DeploymentInfo,
}

/// The token's deployment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentInfo {
    pub id: DeploymentId,
    /// The slug (the client shows it as the organisation name).
    pub name: String,
    pub slug: String,
    pub display_name: String,
}
