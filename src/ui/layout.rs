//! The page shell (header, navigation, notices) and the small pieces every page uses.

use crate::clock::{iso, Micros};
use crate::store::sessions::UiSession;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
const ICON: &str = include_str!("assets/favicon.svg");

pub async fn css() -> Response {
    static_asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    static_asset("text/javascript; charset=utf-8", JS)
}

pub async fn icon() -> Response {
    static_asset("image/svg+xml", ICON)
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The top-level sections, for the navigation's current marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Projects,
    Scans,
    Findings,
    Policies,
    RuleModes,
    Integrations,
    Tokens,
}

const NAV: &[(Section, &str, &str)] = &[
    (Section::Projects, "/projects", "Projects"),
    (Section::Scans, "/scans", "Scans"),
    (Section::Findings, "/findings", "Findings"),
    (Section::Policies, "/policies", "Rules › Policies"),
    (Section::RuleModes, "/policies/modes", "Rule Modes"),
    (
        Section::Integrations,
        "/settings/integrations",
        "Settings › Integrations",
    ),
    (Section::Tokens, "/settings/tokens", "Settings › Tokens"),
];

/// The text of a notice code put in the URL by a redirect after a successful form.
fn notice(code: &str) -> Option<String> {
    let (code, n) = match code.split_once('-') {
        Some((c, n)) => (c, n.parse::<u64>().ok()),
        None => (code, None),
    };
    Some(match (code, n) {
        ("saved", _) => "Saved.".into(),
        ("created", _) => "Integration saved. It receives scans now; choose which rule modes notify it under Rule Modes.".into(),
        ("deleted", _) => "Integration deleted.".into(),
        ("rotated", _) => "A new signing secret is in use; the previous one keeps signing beside it for 24 hours.".into(),
        ("enabled", _) => "Integration enabled.".into(),
        ("disabled", _) => "Integration disabled: nothing is sent to it until it is enabled again.".into(),
        ("resent", _) => "Queued again; it is sent with the same webhook-id.".into(),
        ("recovered", Some(n)) => format!("{n} failed message(s) queued again."),
        ("uploaded", Some(n)) => format!("{n} rule(s) stored."),
        ("mode", _) => "Rule mode changed; the next scan uses it.".into(),
        ("notify", _) => "Notifications saved.".into(),
        ("ignored", _) => "Finding ignored.".into(),
        ("reopened", _) => "Finding reopened.".into(),
        ("revoked", _) => "Token revoked: its next request is refused, its sessions have ended.".into(),
        _ => return None,
    })
}

/// The document head; signed-in pages also load the (optional) script.
fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · scanhook" }
            link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/static/app.css";
            @if script { script src="/static/app.js" defer {} }
        }
    }
}

/// A whole page for a signed-in user.
pub fn page(
    s: &UiSession,
    title: &str,
    current: Section,
    done: Option<&str>,
    body: Markup,
) -> Response {
    let notice = done.and_then(notice);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/projects" { "scanhook" }
                    span.deployment { (s.deployment.name) }
                    form.signout method="post" action="/logout" {
                        (csrf(s))
                        button.link type="submit" { "Sign out" }
                    }
                }
                nav aria-label="Main" {
                    ul {
                        @for (section, href, label) in NAV {
                            li {
                                @if *section == current {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(text) = notice {
                        p.notice role="status" { (text) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page outside a session: sign-in and errors.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body {
                main.narrow id="main" {
                    p.brand { "scanhook" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let title = status.canonical_reason().unwrap_or("Error");
    Html(
        bare(
            title,
            html! {
                p.error role="alert" { (message) }
                p { a href="/projects" { "Back to scanhook" } }
            },
        )
        .into_string(),
    )
}

/// `v` encoded for a query string or a path segment.
pub fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The hidden CSRF field every form carries.
pub fn csrf(s: &UiSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A time, readable and machine-readable.
pub fn when(micros: Micros) -> Markup {
    let full = iso(micros);
    let shown = format!("{} UTC", full[..19].replace('T', " "));
    html! { time datetime=(full) { (shown) } }
}

pub fn maybe_when(micros: Option<Micros>) -> Markup {
    match micros {
        Some(m) => when(m),
        None => html! { "—" },
    }
}

/// A status word with its colour class (the word itself carries the meaning).
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "delivered" | "completed" | "enabled" | "fixed" => "ok",
        "failed" | "error" | "disabled" | "abandoned" | "block" => "bad",
        "pending" | "delivering" | "running" | "comment" | "reviewing" | "fixing" => "warn",
        _ => "plain",
    };
    html! { span class={ "badge " (class) } { (word) } }
}

/// What to do when a page has nothing to show.
pub fn empty(message: &str, next: Markup) -> Markup {
    html! {
        div.empty {
            p { strong { (message) } }
            (next)
        }
    }
}

/// The command that points `semgrep ci` at this server.
pub fn semgrep_command(public_url: &str) -> Markup {
    html! {
        p { "Run " code { "semgrep ci" } " in a repository with a CI token ("
            code { "scanhook token create --scope ci" } "):" }
        pre.cmd { code {
            "SEMGREP_APP_URL=" (public_url) " \\\n"
            "SEMGREP_APP_TOKEN=<ci token> \\\n"
            "SEMGREP_FAIL_OPEN_URL=" (public_url) " \\\n"
            "semgrep ci --oss-only --metrics=off"
        } }
    }
}

/// An error shown above the form it belongs to.
pub fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" id="form-error" { (m) }
        }
    }
}
