//! Bearer-token auth: who is calling, and whether they may.

use crate::error::AppError;
use crate::state::AppState;
use crate::store::deployments::Deployment;
use crate::store::tokens::Scope;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// A request authenticated by a bearer token of any scope.
#[derive(Debug, Clone)]
pub struct Auth {
    pub deployment: Deployment,
    pub scope: Scope,
}

/// A request authenticated by an admin token.
#[derive(Debug, Clone)]
pub struct Admin(pub Deployment);

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AppError::unauthorized("missing `Authorization: Bearer <token>` header")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        match state.store.authenticate(token).await? {
            Some((deployment, scope)) => Ok(Auth { deployment, scope }),
            None => Err(AppError::unauthorized(
                "invalid token: create one with `scanhook token create`",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        match auth.scope {
            Scope::Admin => Ok(Admin(auth.deployment)),
            Scope::Ci => Err(AppError::forbidden(
                "this endpoint needs an admin token; this one has the ci scope",
            )),
        }
    }
}
