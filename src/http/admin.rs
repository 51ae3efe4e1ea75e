//! scanhook's own management API: rules, policies, rule modes and tokens.

use super::extract::{Admin, JsonBody};
use crate::app::AppState;
use crate::domain::mode::{self, RuleMode};
use crate::domain::rules;
use crate::error::{AppError, AppResult};
use crate::store::rules::{ModeChangeError, StoredRule};
use crate::store::tokens::Scope;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rules", get(list_rules).post(add_rules))
        .route("/api/v1/rules/{rule_id}", get(get_rule))
        .route("/api/v1/rules/{rule_id}/mode", put(set_mode))
        .route("/api/v1/policies", get(list_policies))
        .route("/api/v1/tokens", post(create_token))
}

#[derive(Deserialize)]
struct RuleFile {
    name: String,
    content: String,
}

#[derive(Deserialize)]
struct AddRules {
    files: Vec<RuleFile>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

fn parse_mode(s: Option<&str>) -> AppResult<RuleMode> {
    s.map_or(Ok(RuleMode::Monitor), |m| {
        m.parse()
            .map_err(|e: String| AppError::bad_request("invalid_mode", e))
    })
}

/// Parses uploaded rule files `(name, content)`: every rule of every file valid, no id in
/// two files, or a 400 that names the file and the rule.
pub fn parse_rule_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> AppResult<Vec<rules::Rule>> {
    let mut all: Vec<rules::Rule> = Vec::new();
    for (name, content) in files {
        let parsed = rules::parse_file(name, content)
            .map_err(|e| AppError::bad_request("invalid_rule", e.to_string()))?;
        for r in parsed {
            if all.iter().any(|a| a.id == r.id) {
                return Err(AppError::bad_request(
                    "invalid_rule",
                    format!(
                        "{name}: rule {:?}: the id appears in more than one uploaded file",
                        r.id
                    ),
                ));
            }
            all.push(r);
        }
    }
    if all.is_empty() {
        return Err(AppError::bad_request(
            "invalid_rule",
            "the files hold no rules: a rule file is YAML with a top-level `rules:` list",
        ));
    }
    Ok(all)
}

/// Validates every rule of every file first; stores all of them or none.
async fn add_rules(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<AddRules>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let mode = parse_mode(body.mode.as_deref())?;
    if body.files.is_empty() {
        return Err(AppError::bad_request(
            "invalid_body",
            "files must list at least one rule file",
        ));
    }
    if body
        .policy
        .as_deref()
        .is_some_and(|p| crate::ids::slugify(p).is_empty())
    {
        return Err(AppError::bad_request(
            "invalid_body",
            "policy needs letters or digits",
        ));
    }
    let all = parse_rule_files(
        body.files
            .iter()
            .map(|f| (f.name.as_str(), f.content.as_str())),
    )?;
    let policy = st
        .store
        .add_rules(d.id, body.policy.as_deref(), mode, &all)
        .await?;
    tracing::info!(rules = all.len(), policy = %policy.slug, %mode, "rules stored");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "policy": policy,
            "mode": mode,
            "rules": all.iter().map(|r| &r.id).collect::<Vec<_>>(),
        })),
    ))
}

fn rule_json(r: &StoredRule) -> Value {
    let decided = mode::effective(&r.memberships);
    json!({
        "rule_id": r.rule_id,
        "mode": decided.map(|m| m.mode),
        "policy": decided.map(|m| &m.policy),
        "policies": r.memberships.iter().map(|m| json!({
            "id": m.policy.id, "name": m.policy.name, "slug": m.policy.slug, "mode": m.mode,
        })).collect::<Vec<_>>(),
        "rule": r.body,
    })
}

async fn list_rules(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<Value>> {
    let rules = st.store.list_rules(d.id).await?;
    Ok(Json(
        json!({"rules": rules.iter().map(rule_json).collect::<Vec<_>>()}),
    ))
}

async fn get_rule(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(rule_id): Path<String>,
) -> AppResult<Json<Value>> {
    let rules = st.store.list_rules(d.id).await?;
    let r = rules
        .iter()
        .find(|r| r.rule_id == rule_id)
        .ok_or_else(|| AppError::not_found("rule"))?;
    Ok(Json(rule_json(r)))
}

#[derive(Deserialize)]
struct SetMode {
    mode: String,
    #[serde(default)]
    policy: Option<String>,
}

async fn set_mode(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(rule_id): Path<String>,
    JsonBody(body, _): JsonBody<SetMode>,
) -> AppResult<Json<Value>> {
    let mode = parse_mode(Some(&body.mode))?;
    let policy = st
        .store
        .set_rule_mode(d.id, &rule_id, body.policy.as_deref(), mode)
        .await
        .map_err(|e| match e {
            ModeChangeError::NoRule(_) => AppError::not_found("rule"),
            ModeChangeError::NoPolicy(_) | ModeChangeError::NotInPolicy(..) => {
                AppError::client(StatusCode::NOT_FOUND, "not_in_policy", e.to_string())
            }
            ModeChangeError::Ambiguous(..) => AppError::conflict("ambiguous_policy", e.to_string()),
            ModeChangeError::Db(e) => AppError::Internal(e),
        })?;
    tracing::info!(rule = %rule_id, policy = %policy.slug, %mode, "rule mode changed");
    Ok(Json(
        json!({"rule_id": rule_id, "policy": policy, "mode": mode}),
    ))
}

async fn list_policies(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<Value>> {
    let policies: Vec<Value> = st
        .store
        .list_policies(d.id)
        .await?
        .iter()
        .map(|p| {
            let rules: Vec<Value> = p
                .rules
                .iter()
                .map(|(id, m)| json!({"rule_id": id, "mode": m}))
                .collect();
            json!({
                "id": p.policy.id, "name": p.policy.name, "slug": p.policy.slug,
                "is_default": p.is_default, "rules": rules,
            })
        })
        .collect();
    Ok(Json(json!({ "policies": policies })))
}

#[derive(Deserialize)]
struct CreateToken {
    scope: Scope,
}

/// The token is in this response only; the server keeps its hash.
async fn create_token(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<CreateToken>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let token = st.store.create_token(d.id, body.scope).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "scope": body.scope, "deployment": d.slug})),
    ))
}
