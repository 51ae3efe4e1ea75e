//! scanhook's own management API: rules, policies, rule modes and tokens.

use super::extract::Admin;
use crate::api::admin::{
    AddRulesIn, CreateTokenIn, ModeSet, PolicyList, PolicyOut, RuleList, RuleOut, RulesAdded,
    SetModeIn, TokenCreated, TokenList, TokenOut, TokenRevoked,
};
use crate::api::{AdminRefusals, Conflict, Refusals};
use crate::clock;
use crate::domain::mode::RuleMode;
use crate::domain::rules;
use crate::domain::tokens::NewToken;
use crate::edge::{JsonBody, Path};
use crate::error::{AppError, AppResult};
use crate::ids::TokenId;
use crate::state::AppState;
use crate::store::rules::ModeChangeError;
use crate::store::tokens::Revoked;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, add_rules))
        .routes(routes!(get_rule))
        .routes(routes!(set_mode))
        .routes(routes!(list_policies))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A rule mode as a request names it, or a 400 `invalid_mode`.
fn parse_mode(s: Option<&str>) -> AppResult<RuleMode> {
    s.map_or(Ok(RuleMode::Monitor), |m| {
        m.parse()
            .map_err(|e: String| AppError::bad_request("invalid_mode", e))
    })
}

/// Load rule files (YAML as written) into a policy; all or nothing.
#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", security(("bearer" = [])),
    request_body = AddRulesIn,
    responses((status = 201, description = "Stored", body = RulesAdded), Refusals, AdminRefusals))]
async fn add_rules(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<AddRulesIn>,
) -> AppResult<(StatusCode, Json<RulesAdded>)> {
    let mode = parse_mode(body.mode.as_deref())?;
    if body.files.is_empty() {
        return Err(AppError::bad_request(
            "invalid_body",
            "files must list at least one rule file",
        ));
    }
    if let Some(p) = body.policy.as_deref() {
        crate::domain::text::check_name(p)
            .map_err(|e| AppError::bad_request("invalid_body", format!("policy: {e}")))?;
        if crate::ids::slugify(p).is_empty() {
            return Err(AppError::bad_request(
                "invalid_body",
                "policy needs letters or digits",
            ));
        }
    }
    let all = rules::parse_files(
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
        Json(RulesAdded {
            policy,
            mode,
            rules: all.into_iter().map(|r| r.id).collect(),
        }),
    ))
}

/// Rules with their effective mode and policies.
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "Every rule, by id", body = RuleList), Refusals, AdminRefusals))]
async fn list_rules(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<RuleList>> {
    let rules = st.store.list_rules(d.id).await?;
    Ok(Json(RuleList {
        rules: rules.iter().map(RuleOut::from).collect(),
    }))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/rules/{rule_id}", tag = "rules", security(("bearer" = [])),
    params(("rule_id" = String, Path, description = "The rule's id")),
    responses((status = 200, description = "The rule", body = RuleOut), Refusals, AdminRefusals))]
async fn get_rule(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(rule_id): Path<String>,
) -> AppResult<Json<RuleOut>> {
    let rules = st.store.list_rules(d.id).await?;
    let r = rules
        .iter()
        .find(|r| r.rule_id == rule_id)
        .ok_or_else(|| AppError::not_found("rule"))?;
    Ok(Json(RuleOut::from(r)))
}

/// Change a rule's mode in a policy.
#[utoipa::path(put, path = "/api/v1/rules/{rule_id}/mode", tag = "rules", security(("bearer" = [])),
    request_body = SetModeIn,
    params(("rule_id" = String, Path, description = "The rule's id")),
    responses((status = 200, description = "The rule's new mode", body = ModeSet), Conflict, Refusals, AdminRefusals))]
async fn set_mode(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(rule_id): Path<String>,
    JsonBody(body, _): JsonBody<SetModeIn>,
) -> AppResult<Json<ModeSet>> {
    let mode = parse_mode(Some(&body.mode))?;
    let policy = st
        .store
        .set_rule_mode(d.id, &rule_id, body.policy.as_deref(), mode)
        .await
        .map_err(mode_change_error)?;
    tracing::info!(rule = %rule_id, policy = %policy.slug, %mode, "rule mode changed");
    Ok(Json(ModeSet {
        rule_id,
        policy,
        mode,
    }))
}

/// What a refused mode change answers.
fn mode_change_error(e: ModeChangeError) -> AppError {
    match e {
        ModeChangeError::NoRule(_) => AppError::not_found("rule"),
        ModeChangeError::NoPolicy(_) | ModeChangeError::NotInPolicy(..) => {
            AppError::client(StatusCode::NOT_FOUND, "not_in_policy", e.to_string())
        }
        ModeChangeError::Ambiguous(..) => AppError::conflict("ambiguous_policy", e.to_string()),
        ModeChangeError::Db(e) => AppError::Internal(e),
    }
}

/// Policies with their rules and modes.
#[utoipa::path(get, path = "/api/v1/policies", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "Every policy, oldest first", body = PolicyList), Refusals, AdminRefusals))]
async fn list_policies(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<PolicyList>> {
    let policies = st.store.list_policies(d.id).await?;
    Ok(Json(PolicyList {
        policies: policies.iter().map(PolicyOut::from).collect(),
    }))
}

/// Create a token (shown once; the server keeps its hash).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateTokenIn,
    responses((status = 201, description = "The token, in this answer only", body = TokenCreated), Refusals, AdminRefusals))]
async fn create_token(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<CreateTokenIn>,
) -> AppResult<(StatusCode, Json<TokenCreated>)> {
    let new = NewToken::new(
        body.scope,
        body.name.as_deref(),
        body.expires_in.as_deref(),
        body.repos.as_deref(),
        clock::now(),
    )
    .map_err(|e| AppError::bad_request("invalid_body", e))?;
    let (token, row) = st.store.issue_token(d.id, &new).await?;
    tracing::info!(token.id = %row.public_id, scope = %row.scope, "token created");
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id: row.public_id,
            scope: row.scope,
            deployment: d.slug,
            name: row.name,
            expires_at: row.expires_at.map(clock::iso),
            repos: row.repos,
        }),
    ))
}

/// The deployment's tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, description = "Every token, with its state", body = TokenList), Refusals, AdminRefusals))]
async fn list_tokens(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<TokenList>> {
    let now = clock::now();
    let tokens = st.store.list_tokens(d.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(|t| TokenOut::new(t, now)).collect(),
    }))
}

/// Revoke a token: its next request gets 401 and its web UI sessions end now.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = TokenId, Path, description = "The token's id (not its secret)")),
    responses((status = 200, description = "Revoked", body = TokenRevoked), Refusals, AdminRefusals))]
async fn revoke_token(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<TokenId>,
) -> AppResult<Json<TokenRevoked>> {
    let already = match st.store.revoke_token(d.id, &id).await? {
        Revoked::Now => false,
        Revoked::Already => true,
        Revoked::NoSuchToken => return Err(AppError::not_found("token")),
    };
    tracing::info!(token.id = %id, "token revoked");
    Ok(Json(TokenRevoked {
        revoked: id,
        already,
    }))
}
