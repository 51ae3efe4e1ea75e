//! The JSON API. One module per area, each with its own router; every operation is
//! annotated for the OpenAPI document, which is generated from them ([`openapi`]):
//! - [`ci`]: the endpoints the real `semgrep ci` client calls.
//! - [`v1`]: the read API compatible with Semgrep's public v1 API, plus per-scan views.
//! - [`admin`]: rules, policies and tokens (scanhook's own API).
//! - [`integrations`]: integrations, rule-mode notifications, the delivery log.
//! - [`uploads`]: SARIF and `semgrep scan --json` files as scans.
//! - [`ops`]: health, readiness, metrics and this document.
//! - [`extract`]: bearer-token auth.

pub mod admin;
pub mod ci;
pub mod extract;
pub mod integrations;
pub mod ops;
pub mod uploads;
pub mod v1;

use crate::error::error_response;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Largest body accepted by every endpoint but `/results`.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Refuses a request whose declared `Content-Length` is over `limit` before reading any of
/// its body, so the client gets the 413 instead of a reset connection mid-upload. Bodies
/// without a length are still capped while they are read (`DefaultBodyLimit`).
pub fn declared_length_limit(
    limit: usize,
) -> impl Fn(Request, Next) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone {
    move |req: Request, next: Next| {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        Box::pin(async move {
            match declared {
                Some(n) if n > limit => error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    &format!("the request body ({n} bytes) is larger than the {limit} bytes this endpoint accepts"),
                ),
                _ => next.run(req).await,
            }
        })
    }
}

/// The document's head: what the API is, its tags and its one security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "scanhook API",
        description = "Self-hosted findings hub for semgrep ci. Errors are always \
            {\"error\": {\"code\", \"message\"}}. Tokens: `ci` scope for the semgrep-ci \
            endpoints, `admin` for everything. Webhooks carry webhook-id, webhook-timestamp, \
            webhook-signature (Standard Webhooks), X-Semgrep-Signature-256 and \
            X-Scanhook-Event (the event type: semgrep_scan, semgrep_finding, finding_fixed, \
            finding_reopened, finding_triaged; or test). Each body's JSON Schema: \
            GET /api/v1/schemas/{event}."
    ),
    tags(
        (name = "semgrep-ci", description = "What the real semgrep ci client calls"),
        (name = "v1", description = "Compatible subset of Semgrep's public v1 API"),
        (name = "rules", description = "Rules, policies and rule modes"),
        (name = "tokens", description = "API tokens"),
        (name = "integrations", description = "Webhook targets and which rule modes notify them"),
        (name = "deliveries", description = "The delivery log"),
        (name = "uploads", description = "Other scanners' findings: SARIF 2.1.0 and `semgrep scan --json` files"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
    modifiers(&BearerScheme)
)]
struct Head;

/// Adds the `bearer` security scheme the operations name.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route, with the operations the OpenAPI document is generated from.
/// `results_limit` is the largest `/results` body.
pub fn router(results_limit: usize) -> OpenApiRouter<AppState> {
    let mut head = Head::openapi();
    head.info.version = env!("CARGO_PKG_VERSION").to_string();
    OpenApiRouter::with_openapi(head)
        .merge(ops::router())
        .merge(ci::router(results_limit))
        .merge(uploads::router(results_limit))
        .merge(
            v1::router()
                .merge(admin::router())
                .merge(integrations::router())
                .layer(axum::middleware::from_fn(declared_length_limit(MAX_BODY))),
        )
}

/// The OpenAPI document, as served at `/api/openapi.json` and committed as `openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router(MAX_BODY).split_for_parts().1
}

/// The document as the pretty-printed JSON that is served and committed.
pub fn openapi_json() -> String {
    document_json(openapi())
}

/// A generated document as the pretty-printed JSON that is served and committed.
pub fn document_json(doc: utoipa::openapi::OpenApi) -> String {
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    allow_empty_query_values(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// Marks every optional query parameter `allowEmptyValue`: the API and the UI read query
/// strings alike (`domain::query`), and an empty value (`?integration=`, what a form's
/// blank field sends) means the parameter is not given. utoipa has no attribute for it
/// (the keyword is deprecated in OpenAPI 3.1, yet it is still the one that says this).
fn allow_empty_query_values(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for op in operations {
        let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
            continue;
        };
        for param in params.iter_mut().filter_map(|p| p.as_object_mut()) {
            let optional_query = param.get("in").and_then(|v| v.as_str()) == Some("query")
                && param.get("required").and_then(|v| v.as_bool()) != Some(true);
            if optional_query {
                param.insert("allowEmptyValue".into(), serde_json::Value::Bool(true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::event_kind::EventKind;
    use crate::domain::findings::{Change, TriageState};
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&super::openapi_json()).unwrap()
    }

    /// The patterns written out in the annotations name exactly what the server accepts.
    #[test]
    fn spelled_out_patterns_match_the_types() {
        let doc = doc();
        let params = doc["paths"]["/api/v1/deployments/{deployment}/scan/{scan_id}/findings"]
            ["get"]["parameters"]
            .as_array()
            .unwrap();
        let change = params.iter().find(|p| p["name"] == "change").unwrap();
        let names: Vec<&str> = ["all", "opened", "notified"]
            .into_iter()
            .chain(Change::ALL.iter().map(|c| c.as_str()))
            .collect();
        let expected = format!("^({})$", names.join("|"));
        assert_eq!(change["schema"]["pattern"], expected.as_str());

        let triage = &doc["components"]["schemas"]["TriageIn"]["properties"]["new_triage_state"];
        let states: Vec<&str> = TriageState::ALL
            .iter()
            .filter(|t| **t != TriageState::Untriaged)
            .map(|t| t.as_str())
            .collect();
        let pattern = triage["pattern"].as_str().unwrap();
        let mut listed: Vec<&str> = pattern[2..pattern.len() - 2].split('|').collect();
        listed.sort_unstable();
        let mut states = states;
        states.sort_unstable();
        assert_eq!(listed, states);

        let event = &doc["paths"]["/api/v1/schemas/{event}"]["get"]["parameters"][0];
        let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        let expected = format!("^({})(\\.json)?$", kinds.join("|"));
        assert_eq!(event["schema"]["pattern"], expected.as_str());
    }

    #[test]
    fn optional_query_parameters_allow_empty_values() {
        let doc = doc();
        let params = doc["paths"]["/api/v1/deliveries"]["get"]["parameters"]
            .as_array()
            .unwrap();
        assert!(
            params.iter().all(|p| p["allowEmptyValue"] == true),
            "{params:?}"
        );
        let path_params = doc["paths"]["/api/v1/deliveries/{msg_id}"]["get"]["parameters"]
            .as_array()
            .unwrap();
        assert!(path_params
            .iter()
            .all(|p| p.get("allowEmptyValue").is_none()));
    }
}
