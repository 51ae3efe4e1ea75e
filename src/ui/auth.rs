//! Signing in with an admin token and signing out.

use super::layout::{bare, form_error};
use super::{cookie, local_path, session_cookie, session_cookie_name, Posted, UiResult};
use crate::domain::client::limit_key;
use crate::domain::query::QueryPairs;
use crate::edge::{declared_length, read_body};
use crate::ids;
use crate::state::AppState;
use crate::store::sessions::SESSION_LIFETIME_MICROS;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// The double-submit cookie that guards the sign-in form itself.
const LOGIN_COOKIE: &str = "scanhook_login";

fn secure(st: &AppState) -> &'static str {
    if super::https(st) {
        "; Secure"
    } else {
        ""
    }
}

fn login_page(st: &AppState, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let nonce = ids::random_base62(32);
    let body = html! {
        (form_error(error))
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(nonce);
            input type="hidden" name="next" value=(next);
            label for="token" { "Admin token" }
            input #token type="password" name="token" autocomplete="current-password" required
                aria-describedby="token-hint" autofocus;
            p.hint id="token-hint" {
                "The admin token that " code { "scanhook serve" } " printed on its first start, or one made with "
                code { "scanhook token create --scope admin" } "."
            }
            div.actions { button type="submit" { "Sign in" } }
        }
    };
    let cookie = format!(
        "{LOGIN_COOKIE}={nonce}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(st)
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(bare("Sign in", body).into_string()),
    )
        .into_response()
}

pub async fn form(State(st): State<AppState>, q: QueryPairs) -> Response {
    let next = local_path(q.one("next"), "/projects");
    login_page(&st, &next, None, StatusCode::OK)
}

/// Largest sign-in form: a token, a CSRF nonce and a path to return to (at most 2 KiB).
pub const MAX_SIGN_IN_FORM: usize = 16 * 1024;

/// Signs in with an admin token. Failed attempts are throttled per client address (an IPv6
/// client per /64; behind a `trusted_proxies` proxy, the address it forwarded for): after
/// [`crate::state::SIGN_IN_FAILURES`] within the window, 429 until the oldest ages out.
pub async fn sign_in(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    body: Body,
) -> UiResult {
    // Read before anything is known of the client, so held to the house limits: a body
    // too large, stalled or too slow gets the JSON 413/408 every endpoint answers.
    let body = match read_body(body, declared_length(&parts.headers), MAX_SIGN_IN_FORM).await {
        Ok(body) => body,
        Err(e) => return Ok(e.into_response()),
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    };
    let next = local_path(Some(field("next")), "/projects");
    let expected = cookie(&parts, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(field("csrf").as_bytes())) {
        return Ok(login_page(
            &st,
            &next,
            Some("The sign-in form expired (CSRF check). Enter the token again."),
            StatusCode::FORBIDDEN,
        ));
    }
    // Behind a trusted reverse proxy, the address it says it served; an IPv6 client by
    // its /64, which it picks addresses from at will.
    let client = st.config.trusted_proxies.client(
        peer.ip(),
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let key = limit_key(client);
    let now = crate::clock::now();
    if let Err(wait) = st.sign_ins.check(&key, now) {
        let mut r = login_page(
            &st,
            &next,
            Some(&format!(
                "Too many failed sign-ins from this address. Try again in {} s.",
                wait.as_secs().max(1)
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&wait.as_secs().max(1).to_string())
                .map_err(anyhow::Error::from)?,
        );
        return Ok(r);
    }
    let token = field("token");
    if token.is_empty() {
        return Ok(login_page(
            &st,
            &next,
            Some("Enter an admin token."),
            StatusCode::BAD_REQUEST,
        ));
    }
    let Some((id, session)) = st.store.open_session(token).await? else {
        st.sign_ins.failed(&key, now);
        tracing::warn!(%client, peer = %peer.ip(), "web UI sign-in refused: not an admin token");
        return Ok(login_page(
            &st,
            &next,
            Some("That is not an admin token of this server. CI tokens cannot sign in."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    st.sign_ins.succeeded(&key);
    tracing::info!(deployment = %session.deployment.slug, token.id = %session.token, "web UI session opened");
    let session_cookie = session_cookie(&st, &id, SESSION_LIFETIME_MICROS / 1_000_000);
    let clear_login = format!("{LOGIN_COOKIE}=; Path=/login; Max-Age=0");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    for c in [session_cookie, clear_login] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(anyhow::Error::from)?,
        );
    }
    Ok(response)
}

/// Ends the session; the form's CSRF token was checked by [`Posted`].
pub async fn sign_out(State(st): State<AppState>, parts: Parts, _form: Posted) -> UiResult {
    if let Some(id) = cookie(&parts, session_cookie_name(&st)) {
        st.store.close_session(id).await?;
    }
    Ok((
        [(header::SET_COOKIE, session_cookie(&st, "", 0))],
        Redirect::to("/login"),
    )
        .into_response())
}
