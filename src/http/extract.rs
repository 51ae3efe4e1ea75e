//! Bearer-token auth: who is calling, and whether they may.

use crate::domain::globs::Globs;
use crate::domain::tokens::Scope;
use crate::error::AppError;
use crate::ids::TokenId;
use crate::state::AppState;
use crate::store::deployments::Deployment;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// A request authenticated by a bearer token of any scope.
#[derive(Debug, Clone)]
pub struct Auth {
    pub deployment: Deployment,
    pub scope: Scope,
    pub token: TokenId,
    /// The projects a CI token may reach (`None`: every project of its deployment).
    pub repos: Option<Globs>,
}

impl Auth {
    /// Whether this token may reach the project (repository) `name`.
    pub fn reaches(&self, name: &str) -> bool {
        self.repos.as_ref().is_none_or(|g| g.matches(name))
    }
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
            Some(a) => Ok(Auth {
                deployment: a.deployment,
                scope: a.scope,
                token: a.token,
                repos: a.repos,
            }),
            None => Err(AppError::unauthorized(
                "invalid, expired or revoked token: create one with `scanhook token create`",
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
