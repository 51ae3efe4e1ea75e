//! The request edge that the JSON API (`http/`) and the web UI (`ui/`) share: query
//! strings as [`QueryPairs`], path parameters parsed into their types, and JSON bodies with
//! errors that say what is wrong and where. Every refusal is an [`AppError`] 4xx.

use crate::domain::query::QueryPairs;
use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Ok(QueryPairs::parse(parts.uri.query().unwrap_or_default()))
    }
}

/// Path parameters parsed into `T` (ids, modes). A value that does not parse names
/// nothing that exists: 404, naming the parameter.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(AppError::client(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("nothing is found at this path: {}", e.body_text()),
            )),
            Err(e) => Err(AppError::Internal(anyhow::anyhow!(
                "path parameters: {}",
                e.body_text()
            ))),
        }
    }
}

/// A JSON body parsed into `T`, or a 400/408/413/415 that says what is wrong and where. The
/// raw bytes come along for handlers that keep the body as sent.
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
            other => body_read_failed(&other)
                .unwrap_or_else(|| AppError::bad_request("unreadable_body", other.body_text())),
        })?;
        // serde reads a struct from an array of its fields too (`[null, null]`); every body
        // of the API is a JSON object, as documented.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(AppError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        let value = parse_json(&bytes)?;
        Ok(JsonBody(value, bytes))
    }
}

/// A request body that arrived more slowly than `min_body_rate_kib` allows (`serve`'s
/// body wrapper fails with it; the handler that reads the body answers 408).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body arrived more slowly than {kib_per_sec} KiB/s")]
pub struct BodyTooSlow {
    pub kib_per_sec: u64,
}

/// The answer to a body that failed to arrive in time, if that is why reading `e` failed:
/// it stalled longer than the body timeout, or trickled below the rate floor, both of which
/// `serve` puts around every request. The client is slow, not wrong: 408 rather than 400.
fn body_read_failed(e: &(dyn std::error::Error + 'static)) -> Option<AppError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return Some(AppError::client(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stopped arriving (body_read_timeout); send it again",
            ));
        }
        if let Some(slow) = err.downcast_ref::<BodyTooSlow>() {
            return Some(AppError::client(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body arrived too slowly: beyond body_read_timeout, the server waits for at least {} KiB/s (min_body_rate_kib); send it again over a faster link",
                    slow.kib_per_sec
                ),
            ));
        }
        next = err.source();
    }
    None
}

/// Parses JSON, naming the path of the offending value in the error.
///
/// A number written with a zero fraction (`3.0`) is an integer to JSON Schema, and so to
/// the OpenAPI document; serde refuses it for an integer field. A body that fails is read
/// once more with such numbers as integers, so only bodies that would be refused pay.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    match parse_json_tracked(bytes) {
        Err(
            e @ AppError::Client {
                code: "invalid_body",
                ..
            },
        ) => match whole_numbers_as_integers(bytes) {
            Some(rewritten) => parse_json_tracked(&rewritten),
            None => Err(e),
        },
        other => other,
    }
}

/// `bytes` with every whole number that has a fraction (`-714.0`) written as an integer,
/// or `None` when it holds none.
fn whole_numbers_as_integers(bytes: &[u8]) -> Option<Vec<u8>> {
    fn rewrite(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                let Some(f) = n.as_f64() else { return false };
                // Within ±2^53 every whole f64 is the integer it spells.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *v = serde_json::Value::from(f as i64);
                    true
                } else {
                    false
                }
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, i| rewrite(i) | changed),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, f| rewrite(f) | changed),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    rewrite(&mut value).then(|| serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// Parses JSON that borrows from `bytes` (uploads read in place), naming the path of the
/// offending value in the error.
pub fn parse_json_in<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AppError> {
    // Uploads are large and nearly always valid: parsed without tracking the path first
    // (the tracking is a tenth of a 10,000-finding `/results`), and again with it only to
    // say where a bad one went wrong; the same bytes fail at the same place.
    match serde_json::from_slice(bytes) {
        Ok(parsed) => Ok(parsed),
        Err(_) => parse_json_tracked(bytes),
    }
}

/// Parses JSON, tracking the path of each value to name the offending one in the error.
fn parse_json_tracked<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AppError> {
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

/// How many bytes of uploads the process holds at once: every upload reserves its size
/// before a byte of it is read, and waits a little for room, then is turned away with 503
/// and `Retry-After` (which `semgrep ci` honours).
#[derive(Debug)]
pub struct UploadBudget {
    /// Room, in KiB.
    room: tokio::sync::Semaphore,
    total_kib: usize,
    wait: std::time::Duration,
}

impl UploadBudget {
    pub fn new(total_bytes: usize, wait: std::time::Duration) -> UploadBudget {
        let total_kib = total_bytes.div_ceil(1024).max(1);
        UploadBudget {
            room: tokio::sync::Semaphore::new(total_kib),
            total_kib,
            wait,
        }
    }

    /// Reserves room for an upload of `bytes`; the room is freed when the permit drops.
    pub async fn reserve(
        &self,
        bytes: usize,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.wait, self.room.acquire_many(kib)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AppError::Unavailable {
                code: "uploads_busy",
                message: format!(
                    "the server holds as many uploads as it takes at once ({} MiB); retry shortly",
                    self.total_kib / 1024
                ),
                retry_after_secs: 5,
            }),
        }
    }
}

/// The body length a request declares (`Content-Length`), if it declares one that parses.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads a request body into one buffer of its declared length (no second copy while it
/// grows), refusing more than `limit` bytes with 413 and a body that stalls or arrives too
/// slowly (the limits `serve` puts around every request) with 408, both as JSON errors.
/// Every handler that takes a raw body reads it through here.
pub async fn read_body(
    body: axum::body::Body,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, AppError> {
    use http_body_util::BodyExt;
    let too_large = || {
        AppError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the {limit} bytes this endpoint accepts"),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(64 * 1024).min(limit));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            body_read_failed(&e)
                .unwrap_or_else(|| AppError::bad_request("unreadable_body", e.to_string()))
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Exit {
        exit_code: i64,
        ratio: f64,
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers() {
        let e: Exit = parse_json(br#"{"exit_code": -714.0, "ratio": 2.0}"#).unwrap();
        assert_eq!(
            e,
            Exit {
                exit_code: -714,
                ratio: 2.0
            }
        );
        let err = parse_json::<Exit>(br#"{"exit_code": 1.5, "ratio": 1}"#).unwrap_err();
        assert!(err.to_string().contains("exit_code"), "{err}");
        // Past 2^53 a float does not spell one integer: refused, not rounded.
        assert!(parse_json::<Exit>(br#"{"exit_code": 1e300, "ratio": 1}"#).is_err());
    }
}
