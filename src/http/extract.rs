//! Extractors that parse at the edge: bearer-token auth, JSON bodies with errors that
//! say where the problem is, and query strings with repeated keys.

use crate::app::AppState;
use crate::error::AppError;
use crate::store::deployments::Deployment;
use crate::store::tokens::Scope;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

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

/// A JSON body parsed into `T`, or a 400/413/415 that says what is wrong and where.
pub struct JsonBody<T>(pub T, pub Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let json_content = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/json") || ct.ends_with("+json"));
        if !json_content {
            return Err(AppError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                AppError::client(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this endpoint accepts",
                )
            }
            other => AppError::bad_request("unreadable_body", other.body_text()),
        })?;
        let value = parse_json(&bytes)?;
        Ok(JsonBody(value, bytes))
    }
}

/// Parses JSON, naming the path of the offending value in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            AppError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else if path == "." {
            AppError::bad_request("invalid_body", inner.to_string())
        } else {
            AppError::bad_request("invalid_body", format!("{path}: {inner}"))
        }
    })
}

/// A query string as `(key, value)` pairs, keeping repeated keys.
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let q = parts.uri.query().unwrap_or_default();
        Ok(QueryPairs(
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl QueryPairs {
    /// Every value of `key` (also `key[]`), comma-separated values split.
    pub fn list(&self, key: &str) -> Vec<String> {
        let bracket = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == bracket)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The last value of `key`.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter, or a 400 that names it.
    pub fn int(&self, key: &str) -> Result<Option<i64>, AppError> {
        self.one(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    AppError::bad_request(
                        "invalid_query",
                        format!("`{key}` must be an integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, AppError> {
        self.one(key)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(AppError::bad_request(
                    "invalid_query",
                    format!("`{key}` must be true or false, got {other:?}"),
                )),
            })
            .transpose()
    }
}
