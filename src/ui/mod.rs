//! The web UI: server-rendered pages (maud templates, which escape every value) for the
//! seed's two browser procedures and the daily views of a security team.
//!
//! - [`auth`]: sign in with an admin token, sign out.
//! - [`settings`]: Settings > Integrations (add, test, edit, rotate, delete) and each
//!   integration's delivery log.
//! - [`policies`]: Rules > Policies (modes in place, rule upload), Rule Modes, a rule's page.
//! - [`activity`]: Projects, Scans, Findings and triage.
//! - [`layout`]: the page shell and shared pieces.
//!
//! Every page needs a session (a random id in an HttpOnly, SameSite=Strict cookie, stored
//! hashed); every form carries the session's CSRF token, checked by [`Posted`] before any
//! handler runs. Forms work without JavaScript; `app.js` only shows Test results inline.

mod activity;
mod auth;
mod layout;
mod policies;
mod settings;
mod tokens;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::sessions::UiSession;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use subtle::ConstantTimeEq;

/// The session cookie's name over http.
pub const SESSION_COOKIE: &str = "scanhook_session";

/// Over https, the session cookie's name: with the `__Host-` prefix a browser keeps it only
/// if it is `Secure`, for path `/` and without a `Domain`, so neither a plain-http page nor
/// another host under the same domain can plant or widen it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-scanhook_session";

/// Whether this server is reached over https (its public URL says so).
pub fn https(st: &AppState) -> bool {
    st.config.public_url.starts_with("https://")
}

/// The session cookie's name on this server.
pub fn session_cookie_name(st: &AppState) -> &'static str {
    if https(st) {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// A `Set-Cookie` value for the session (an empty value with age 0 ends it).
pub fn session_cookie(st: &AppState, value: &str, max_age_secs: i64) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        session_cookie_name(st),
        if https(st) { "; Secure" } else { "" }
    )
}

pub fn router() -> Router<AppState> {
    ui_routes().layer(axum::middleware::from_fn(page_headers))
}

/// Headers on every UI answer: no framing, no inline script, no sniffing, no referrer
/// outside the site.
async fn page_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    r
}

fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/projects") }))
        .route("/login", get(auth::form).post(auth::sign_in))
        .route("/logout", post(auth::sign_out))
        .route("/static/app.css", get(layout::css))
        .route("/static/app.js", get(layout::js))
        .route("/static/favicon.svg", get(layout::icon))
        .route("/projects", get(activity::projects))
        .route("/scans", get(activity::scans))
        .route("/scans/{id}", get(activity::scan))
        .route("/findings", get(activity::findings))
        .route("/findings/{id}/triage", post(activity::triage))
        .route("/policies", get(policies::policies))
        .route("/policies/mode", post(policies::set_mode))
        .route("/policies/upload", post(policies::upload))
        .route("/policies/modes", get(policies::modes))
        .route(
            "/policies/modes/{mode}",
            get(policies::edit_mode).post(policies::save_mode),
        )
        .route("/rules/{rule_id}", get(policies::rule))
        .route("/settings/integrations", get(settings::list))
        .route("/settings/integrations/add", get(settings::choose))
        .route(
            "/settings/integrations/add/{kind}",
            get(settings::add_form).post(settings::add),
        )
        .route(
            "/settings/integrations/{id}",
            get(settings::edit_form).post(settings::edit),
        )
        .route(
            "/settings/integrations/{id}/enabled",
            post(settings::enable),
        )
        .route("/settings/integrations/{id}/rotate", post(settings::rotate))
        .route("/settings/integrations/{id}/reveal", post(settings::reveal))
        .route(
            "/settings/integrations/{id}/delete",
            get(settings::confirm_delete).post(settings::delete),
        )
        .route(
            "/settings/integrations/{id}/deliveries",
            get(settings::deliveries),
        )
        .route(
            "/settings/integrations/{id}/recover",
            post(settings::recover),
        )
        .route("/settings/tokens", get(tokens::list).post(tokens::create))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/deliveries/{id}", get(settings::delivery))
        .route("/deliveries/{id}/resend", post(settings::resend))
}

/// An error shown as an HTML page with its status.
#[derive(Debug)]
pub struct UiError(AppError);

pub type UiResult<T = Response> = Result<T, UiError>;

impl From<AppError> for UiError {
    fn from(e: AppError) -> Self {
        UiError(e)
    }
}

impl From<crate::domain::query::QueryError> for UiError {
    fn from(e: crate::domain::query::QueryError) -> Self {
        UiError(e.into())
    }
}

impl From<anyhow::Error> for UiError {
    fn from(e: anyhow::Error) -> Self {
        UiError(AppError::Internal(e))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            AppError::Client {
                status, message, ..
            } => (status, message),
            AppError::Unavailable { message, .. } => (StatusCode::SERVICE_UNAVAILABLE, message),
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the server; its log has the cause.".to_string(),
                )
            }
        };
        (status, layout::error_page(status, &message)).into_response()
    }
}

/// The value of cookie `name` in the request.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in request. Without a live session, a page request is sent to sign in (and
/// back afterwards); anything else is refused with 401.
pub struct Session(pub UiSession);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let found = match cookie(parts, session_cookie_name(st)) {
            Some(id) => st
                .store
                .session(id)
                .await
                .map_err(|e| UiError::from(e).into_response())?,
            None => None,
        };
        match found {
            Some(s) => Ok(Session(s)),
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish();
                Err(Redirect::to(&format!("/login?{q}")).into_response())
            }
            None => Err(UiError(AppError::unauthorized(
                "You are not signed in, or your session has ended. Sign in again, then repeat the action.",
            ))
            .into_response()),
        }
    }
}

/// A submitted form of a signed-in session whose CSRF token matched: URL-encoded fields, or
/// multipart fields and files.
pub struct Posted {
    pub session: UiSession,
    pub fields: Vec<(String, String)>,
    /// `(field, file name, content)` of uploaded files.
    pub files: Vec<(String, String, String)>,
}

impl Posted {
    /// The last value of a field, trimmed; empty counts as missing.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn bad_form(message: impl Into<String>) -> Response {
    UiError(AppError::bad_request("invalid_form", message)).into_response()
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Session(session) = Session::from_request_parts(&mut parts, st).await?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let req = Request::from_parts(parts, body);
        let mut fields = Vec::new();
        let mut files = Vec::new();
        if content_type.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, st)
                .await
                .map_err(|e| bad_form(format!("unreadable form: {}", e.body_text())))?;
            while let Some(field) = mp
                .next_field()
                .await
                .map_err(|e| bad_form(format!("unreadable form: {}", e.body_text())))?
            {
                let name = field.name().unwrap_or_default().to_string();
                let file_name = field.file_name().map(str::to_string);
                let text = field.text().await.map_err(|e| {
                    bad_form(format!("unreadable form field {name:?}: {}", e.body_text()))
                })?;
                match file_name {
                    Some(f) if !f.is_empty() => files.push((name, f, text)),
                    Some(_) => {} // a file input left empty
                    None => fields.push((name, text)),
                }
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = Bytes::from_request(req, st)
                .await
                .map_err(|e| bad_form(format!("unreadable form: {}", e.body_text())))?;
            fields = url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        } else {
            return Err(UiError(AppError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "submit this form from the scanhook page",
            ))
            .into_response());
        }
        let sent = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(UiError(AppError::forbidden(
                "This form's security token is missing or out of date (CSRF check). Reload the page and submit it again.",
            ))
            .into_response());
        }
        Ok(Posted {
            session,
            fields,
            files,
        })
    }
}

/// An id from a path, or the not-found page of `what`: a value that does not parse names
/// nothing that exists. (Pages parse their ids after the session is checked, so that a
/// signed-out visitor is sent to sign in whatever the path holds.)
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, UiError> {
    raw.parse().map_err(|_| UiError(AppError::not_found(what)))
}

/// A same-origin path to return to, or `fallback`. Only an absolute path of this site is
/// taken: it starts with one `/` (not `//host`, not `/\\host`) and holds no control
/// character, white space or backslash anywhere — browsers drop tabs and newlines from
/// URLs, so `/\t/evil.example/` would become `//evil.example/` — and no `%` escape of one.
pub fn local_path(candidate: Option<&str>, fallback: &str) -> String {
    match candidate {
        Some(p) if is_local_path(p) => p.into(),
        _ => fallback.into(),
    }
}

fn is_local_path(p: &str) -> bool {
    let lower = p.to_ascii_lowercase();
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 2048
        && !p
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && !["%09", "%0a", "%0d", "%5c", "%00", "%2f%2f"]
            .iter()
            .any(|escaped| lower.contains(escaped))
        && !lower.starts_with("/%2f")
}

/// A redirect after a successful POST, with a notice code the next page turns into text.
pub fn done(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}done={notice}")).into_response()
}
