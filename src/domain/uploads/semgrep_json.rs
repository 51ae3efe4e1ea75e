//! The output of `semgrep scan --json` (the OSS CLI's `cli_output`): `results[]` with
//! `check_id`, `path`, `start` / `end` `{line, col}` and `extra` (`message`, `severity`,
//! `metadata`, `fingerprint`, `lines`, `is_ignored`), and `paths.scanned` / `paths.skipped`.
//! `errors` are the CLI's own and are not findings.

use super::body::{bounded, Body, Draft};
use super::identity::Basis;
use super::shallow::{elements, member, tree, Members};
use super::UploadError;
use crate::domain::findings::Severity;
use serde_json::{Map, Value};

// What Semgrep writes instead of code and fingerprints for a user who is not logged in.
use super::identity::REQUIRES_LOGIN;

pub(super) fn convert(doc: &Members) -> Result<Body, UploadError> {
    let results = match doc.get("results").map(|r| elements(r)) {
        Some(Some(r)) => r,
        Some(None) => return Err(UploadError::new("results", "must be an array")),
        None => {
            return Err(UploadError::new(
                "results",
                "missing: not the output of `semgrep scan --json`",
            ))
        }
    };
    let mut body = Body::new("semgrep".to_string());
    let paths = member(doc, "paths");
    let paths = paths.as_ref();
    let scanned = paths
        .and_then(|p| p.get("scanned"))
        .and_then(Value::as_array);
    for path in scanned.into_iter().flatten().filter_map(Value::as_str) {
        if let Some(p) = clean_path(path) {
            body.add_searched(&p);
        }
    }
    let skipped = paths
        .and_then(|p| p.get("skipped"))
        .and_then(Value::as_array);
    for entry in skipped.into_iter().flatten() {
        let path = entry.as_str().or_else(|| entry.get("path")?.as_str());
        if let Some(p) = path.and_then(clean_path) {
            body.add_skipped_path(Value::String(p));
        }
    }
    let (mut unusable, mut first): (usize, Option<UploadError>) = (0, None);
    for (i, result) in results.iter().enumerate() {
        let at = format!("results[{i}]");
        let outcome = read_result(&body, &tree(result), &at)
            .and_then(|d| body.push(d).map_err(|m| UploadError::new(&at, m)));
        if let Err(e) = outcome {
            body.skipped += 1;
            unusable += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) if unusable * 2 > results.len() => Err(UploadError::new(
            e.path,
            format!(
                "{} (and {unusable} of the {} results cannot be placed)",
                e.message,
                results.len()
            ),
        )),
        _ => Ok(body),
    }
}

/// Semgrep prints paths as it was given them: `./app.py` is `app.py`.
fn clean_path(path: &str) -> Option<String> {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    (!p.is_empty()).then(|| p.to_string())
}

fn read_result(body: &Body, result: &Value, at: &str) -> Result<Draft, UploadError> {
    let result = result
        .as_object()
        .ok_or_else(|| UploadError::new(at, "must be an object"))?;
    let string = |key: &str| {
        result
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| UploadError::new(format!("{at}.{key}"), "missing"))
    };
    let check_id = string("check_id")?.to_string();
    let path = clean_path(string("path")?)
        .ok_or_else(|| UploadError::new(format!("{at}.path"), "not a file path"))?;
    let position = |key: &str| -> Result<(i64, i64), UploadError> {
        let p = result
            .get(key)
            .ok_or_else(|| UploadError::new(format!("{at}.{key}"), "missing"))?;
        let number = |k: &str| p.get(k).and_then(Value::as_i64).unwrap_or(1).max(1);
        Ok((number("line"), number("col")))
    };
    let (line, column) = position("start")?;
    let (end_line, end_column) = position("end")?;
    let extra = result.get("extra").and_then(Value::as_object);
    let empty = Map::new();
    let extra = extra.unwrap_or(&empty);
    let text = |key: &str| {
        extra
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| *s != REQUIRES_LOGIN)
    };
    let message = text("message").unwrap_or(&check_id).to_string();
    let fingerprint = text("fingerprint")
        .filter(|f| !f.trim().is_empty())
        .map(|f| vec![("matchBasedId/v1".to_string(), f.to_string())])
        .unwrap_or_default();
    let basis = Basis::choose(fingerprint, text("lines"), &message);
    let severity = text("severity")
        .and_then(|s| Severity::parse_loose(s).ok())
        .map_or(1, Severity::level);
    let mut metadata = match extra.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for value in metadata.values_mut() {
        *value = bounded(value);
    }
    metadata
        .entry("tool")
        .or_insert_with(|| Value::String(body.tool.clone()));
    Ok(Draft {
        check_id,
        path,
        line,
        column,
        end_line: end_line.max(line),
        end_column,
        message,
        severity,
        basis,
        metadata: Value::Object(metadata),
        suppressed: extra.get("is_ignored") == Some(&Value::Bool(true)),
    })
}
