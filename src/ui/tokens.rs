//! Settings › Tokens: every token of the deployment with its state and last use, a form
//! that makes one (the secret is shown once, in the answer to the POST), and Revoke.

use super::layout::{badge, csrf, form_error, maybe_when, page, when, Section};
use super::{done, parse_id, session_cookie, Posted, Session, UiResult};
use crate::clock;
use crate::domain::query::QueryPairs;
use crate::domain::tokens::{NewToken, Scope};
use crate::error::AppError;
use crate::ids::TokenId;
use crate::state::AppState;
use crate::store::sessions::UiSession;
use crate::store::tokens::Revoked;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};

/// A token just made, shown once.
struct Made {
    token: String,
    id: TokenId,
}

fn create_form(s: &UiSession) -> Markup {
    html! {
        form method="post" action="/settings/tokens" {
            (csrf(s))
            fieldset {
                legend { "Scope" }
                label.inline { input type="radio" name="scope" value="ci" checked; " CI: for " code { "semgrep ci" } " and uploads" }
                br;
                label.inline { input type="radio" name="scope" value="admin"; " Admin: the API, the CLI and this UI" }
            }
            label for="token-name" { "Name" }
            input #token-name type="text" name="name" maxlength="200" placeholder="e.g. GitHub Actions, acme/api";
            label for="expires" { "Expires in" }
            input #expires type="text" name="expires_in" placeholder="e.g. 90d (empty: until revoked)"
                aria-describedby="expires-hint";
            p.hint id="expires-hint" { "A duration: 30m, 12h, 90d. From 1 minute to 10 years." }
            label for="repos" { "Repositories (CI tokens)" }
            input #repos type="text" name="repos" placeholder="e.g. acme/api, acme/web-*"
                aria-describedby="repos-hint";
            p.hint id="repos-hint" { "Comma-separated globs; empty: every project. A CI token scans, and sees scans of, only these." }
            div.actions { button type="submit" { "Create token" } }
        }
    }
}

async fn tokens_page(
    st: &AppState,
    s: &UiSession,
    made: Option<&Made>,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> UiResult {
    let now = clock::now();
    let tokens = st.store.list_tokens(s.deployment.id).await?;
    let body = html! {
        @if let Some(m) = made {
            div.result.ok role="status" {
                p { strong { "Token " code { (m.id) } " created." } " Copy it now: it is not shown again." }
                p { code.secret #new-token { (m.token) } }
            }
        }
        (form_error(error))
        div.table-wrap { table {
            thead { tr { th { "Token" } th { "Name" } th { "Scope" } th { "Repositories" } th { "State" }
                th { "Created" } th { "Last used" } th { "Expires" } th { "" } } }
            tbody { @for t in &tokens {
                @let state = t.state(now);
                tr {
                    td { code { (t.public_id) } @if t.public_id == s.token { br; span.hint { "this session" } } }
                    td { (t.name) }
                    td { (t.scope) }
                    td { @match &t.repos { Some(r) => code { (r.join(", ")) }, None => span.hint { "all" } } }
                    td { (badge(state.as_str())) }
                    td { (when(t.created_at)) }
                    td { (maybe_when(t.last_used_at)) }
                    td { (maybe_when(t.expires_at)) }
                    td {
                        @if t.revoked_at.is_none() {
                            form method="post" action={ "/settings/tokens/" (t.public_id) "/revoke" } {
                                (csrf(s))
                                button.danger type="submit" aria-label={ "Revoke " (t.public_id) } { "Revoke" }
                            }
                        }
                    }
                }
            } }
        } }
        h2 { "Create a token" }
        (create_form(s))
    };
    let mut r = (status, page(s, "Tokens", Section::Tokens, notice, body)).into_response();
    if made.is_some() {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(r)
}

pub async fn list(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    tokens_page(&st, &s, None, None, q.one("done"), StatusCode::OK).await
}

/// Makes a token and shows it once, in this answer (never in a URL).
pub async fn create(State(st): State<AppState>, form: Posted) -> UiResult {
    let s = &form.session;
    let repos: Vec<String> = form
        .get("repos")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    let new = form
        .get("scope")
        .unwrap_or("ci")
        .parse::<Scope>()
        .and_then(|scope| {
            NewToken::new(
                scope,
                form.get("name"),
                form.get("expires_in"),
                (!repos.is_empty()).then_some(repos.as_slice()),
                clock::now(),
            )
        });
    let new = match new {
        Ok(n) => n,
        Err(e) => {
            return tokens_page(&st, s, None, Some(&e), None, StatusCode::BAD_REQUEST).await;
        }
    };
    let (token, row) = st.store.issue_token(s.deployment.id, &new).await?;
    tracing::info!(token.id = %row.public_id, scope = %row.scope, "token created in the web UI");
    let made = Made {
        token,
        id: row.public_id,
    };
    tokens_page(&st, s, Some(&made), None, None, StatusCode::CREATED).await
}

/// Revokes a token. Revoking this session's own token ends the session too.
pub async fn revoke(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let s = &form.session;
    let id: TokenId = parse_id(&id, "token")?;
    match st.store.revoke_token(s.deployment.id, &id).await? {
        Revoked::NoSuchToken => return Err(AppError::not_found("token").into()),
        Revoked::Now | Revoked::Already => {}
    }
    tracing::info!(token.id = %id, "token revoked in the web UI");
    if id == s.token {
        return Ok((
            [(header::SET_COOKIE, session_cookie(&st, "", 0))],
            Redirect::to("/login"),
        )
            .into_response());
    }
    Ok(done("/settings/tokens", "revoked"))
}
