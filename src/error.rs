//! The one error type of the HTTP surface. Client errors carry a status, a stable machine
//! code and a message that says what to fix; everything else is an opaque 500 that is
//! logged once, here, with its whole cause chain.

use crate::domain::query::QueryError;
use crate::domain::rules::RuleError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// An error as the HTTP layer reports it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is wrong; the client can fix it.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The server cannot take the request now; the client should retry after a while.
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// Anything else: storage failures, bugs.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, code, message)
    }

    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<QueryError> for AppError {
    fn from(e: QueryError) -> Self {
        Self::bad_request("invalid_query", e.0)
    }
}

impl From<RuleError> for AppError {
    fn from(e: RuleError) -> Self {
        Self::bad_request("invalid_rule", e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Client {
                status,
                code,
                message,
            } => error_response(status, code, &message),
            AppError::Unavailable {
                code,
                message,
                retry_after_secs,
            } => {
                let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, code, &message);
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after_secs),
                );
                r
            }
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error; the server log has the cause",
                )
            }
        }
    }
}

/// The JSON shape of every error scanhook answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine code, e.g. `invalid_body`, `not_found`, `unauthorized`.
    pub code: String,
    /// What to fix, in words.
    pub message: String,
}

/// The answer of every error: `{"error": {"code", "message"}}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
        },
    };
    (status, Json(body)).into_response()
}

/// Result alias for handlers.
pub type AppResult<T> = Result<T, AppError>;
