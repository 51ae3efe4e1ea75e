//! SARIF 2.1.0 (OASIS), read as far as findings need: `runs[].tool.driver` (name, rules),
//! `tool.extensions[].rules`, `artifacts`, `originalUriBaseIds`, `invocations` and
//! `results[]`. Everything else is ignored.

use super::body::{bounded, Body, Draft};
use super::identity::Basis;
use super::paths::{repo_path, roots};
use super::shallow::{elements, member, members, tree, Members};
use super::UploadError;
use crate::domain::text;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

type Object = Map<String, Value>;

pub(super) fn convert(doc: &Members, root: Option<&str>) -> Result<Vec<Body>, UploadError> {
    check_version(doc)?;
    let runs = match doc.get("runs").map(|r| elements(r)) {
        Some(Some(runs)) if !runs.is_empty() => runs,
        Some(Some(_)) => return Err(UploadError::new("runs", "no runs")),
        Some(None) => return Err(UploadError::new("runs", "must be an array")),
        None => return Err(UploadError::new("runs", "missing: a SARIF log has runs")),
    };
    let mut bodies: Vec<Body> = Vec::new();
    for (r, run) in runs.into_iter().enumerate() {
        let at = format!("runs[{r}]");
        let run = members(run).ok_or_else(|| UploadError::new(&at, "must be an object"))?;
        let tool = member(&run, "tool").unwrap_or(Value::Null);
        let name = tool_name(&tool, &at)?;
        let i = match bodies.iter().position(|b| b.tool == name) {
            Some(i) => i,
            None => {
                bodies.push(Body::new(name));
                bodies.len() - 1
            }
        };
        convert_run(&run, &tool, &at, root, &mut bodies[i])?;
    }
    Ok(bodies)
}

fn check_version(doc: &Members) -> Result<(), UploadError> {
    let schema = member(doc, "$schema");
    let schema = schema.as_ref().and_then(Value::as_str).unwrap_or("");
    match member(doc, "version") {
        Some(Value::String(v)) if v == "2.1.0" => Ok(()),
        Some(v) => Err(UploadError::new(
            "version",
            format!("SARIF {v} is not supported: upload SARIF 2.1.0"),
        )),
        None if schema.contains("2.1.0") => Ok(()),
        None => Err(UploadError::new(
            "version",
            "missing: not a SARIF 2.1.0 log (neither `version` nor `$schema` says 2.1.0)",
        )),
    }
}

/// The driver's name, lowercased, spaces as dashes; every Semgrep edition is `semgrep`.
fn tool_name(tool: &Value, at: &str) -> Result<String, UploadError> {
    let path = format!("{at}.tool.driver.name");
    let name = tool
        .get("driver")
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| UploadError::new(&path, "missing: every run names its tool"))?;
    let name = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase();
    if name.chars().count() > 100 || text::has_hidden(&name) || name.contains('/') {
        return Err(UploadError::new(
            &path,
            "must be at most 100 characters, without `/` or control characters",
        ));
    }
    Ok(if name.starts_with("semgrep") {
        "semgrep".to_string()
    } else {
        name
    })
}

/// What the results of one run are read against.
struct Run<'a> {
    /// The URI of each of `artifacts`, by index.
    artifact_uris: Vec<Option<String>>,
    /// `tool.driver.rules`, by index.
    driver_rules: Vec<&'a Object>,
    /// Every rule of the driver and the extensions, by id.
    rules: HashMap<&'a str, &'a Object>,
    /// Absolute directories stripped from absolute paths, longest first.
    roots: Vec<String>,
}

/// Reads the results of one run into `body`, one result at a time.
fn convert_run(
    run: &Members,
    tool: &Value,
    at: &str,
    root: Option<&str>,
    body: &mut Body,
) -> Result<(), UploadError> {
    let driver_rules: Vec<&Object> = rule_list(tool.get("driver"));
    let mut rules = HashMap::new();
    let extensions = tool.get("extensions").and_then(Value::as_array);
    let extension_rules = extensions
        .into_iter()
        .flatten()
        .flat_map(|e| rule_list(Some(e)));
    for rule in driver_rules.iter().copied().chain(extension_rules) {
        if let Some(id) = rule.get("id").and_then(Value::as_str) {
            rules.entry(id).or_insert(rule);
            let check_id = body.check_id(id);
            body.add_rule(&check_id);
        }
    }
    // What the roots are read from, alone: the rest of the run may be large.
    let bases: Object = ["originalUriBaseIds", "invocations"]
        .into_iter()
        .filter_map(|k| Some((k.to_string(), member(run, k)?)))
        .collect();
    let roots = roots(&bases, root);
    // An artifact may carry the file's whole contents: each is parsed alone, for its URI.
    let artifacts = run.get("artifacts").and_then(|a| elements(a));
    let artifact_uris: Vec<Option<String>> = artifacts
        .into_iter()
        .flatten()
        .map(|artifact| {
            let artifact = tree(artifact);
            let uri = artifact.get("location")?.get("uri")?.as_str()?;
            Some(uri.to_string())
        })
        .collect();
    for uri in artifact_uris.iter().flatten() {
        if let Some(path) = repo_path(uri, &roots) {
            body.add_searched(&path);
        }
    }
    let ctx = Run {
        artifact_uris,
        driver_rules,
        rules,
        roots,
    };
    let results = match run.get("results") {
        None => return Ok(()),
        Some(raw) if raw.get() == "null" => return Ok(()),
        Some(raw) => elements(raw)
            .ok_or_else(|| UploadError::new(format!("{at}.results"), "must be an array"))?,
    };
    let (mut unusable, mut first): (usize, Option<UploadError>) = (0, None);
    for (i, result) in results.iter().enumerate() {
        let at = format!("{at}.results[{i}]");
        let result = tree(result);
        let outcome = read_result(&ctx, body, &result, &at).and_then(|draft| match draft {
            Some(d) => body.push(d).map_err(|m| UploadError::new(&at, m)),
            None => Ok(()),
        });
        if outcome.is_err() || is_not_a_problem(&result) {
            body.skipped += 1;
        }
        if let Err(e) = outcome {
            unusable += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) if unusable * 2 > results.len() => Err(UploadError::new(
            e.path,
            format!(
                "{} (and {unusable} of the run's {} results cannot be placed)",
                e.message,
                results.len()
            ),
        )),
        _ => Ok(()),
    }
}

fn rule_list(component: Option<&Value>) -> Vec<&Object> {
    component
        .and_then(|c| c.get("rules"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect()
}

fn is_not_a_problem(result: &Value) -> bool {
    matches!(
        result.get("kind").and_then(Value::as_str),
        Some("pass" | "notApplicable" | "informational")
    )
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    let v = v?;
    v.get("text")
        .or_else(|| v.get("markdown"))
        .and_then(Value::as_str)
}

/// One result, or `None` for one that reports no problem.
fn read_result(
    ctx: &Run,
    body: &Body,
    result: &Value,
    at: &str,
) -> Result<Option<Draft>, UploadError> {
    if is_not_a_problem(result) {
        return Ok(None);
    }
    let result = result
        .as_object()
        .ok_or_else(|| UploadError::new(at, "must be an object"))?;
    let (rule_id, rule) = rule_of(ctx, result)
        .ok_or_else(|| UploadError::new(format!("{at}.ruleId"), "missing: no rule id"))?;
    let check_id = body.check_id(rule_id);

    let locations = match result.get("locations") {
        Some(Value::Array(l)) if !l.is_empty() => l,
        _ => return Err(UploadError::new(format!("{at}.locations"), "no location")),
    };
    let physical = locations[0]
        .get("physicalLocation")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            UploadError::new(
                format!("{at}.locations[0].physicalLocation"),
                "missing: the result names no file",
            )
        })?;
    let artifact = physical.get("artifactLocation");
    let uri = artifact
        .and_then(|a| a.get("uri"))
        .and_then(Value::as_str)
        .or_else(|| {
            let index = artifact?.get("index")?.as_u64()?;
            let uri = ctx.artifact_uris.get(usize::try_from(index).ok()?)?;
            uri.as_deref()
        });
    let uri_at = format!("{at}.locations[0].physicalLocation.artifactLocation.uri");
    let uri = uri.ok_or_else(|| UploadError::new(&uri_at, "missing"))?;
    let path = repo_path(uri, &ctx.roots)
        .ok_or_else(|| UploadError::new(&uri_at, format!("{uri:?} is not a file path")))?;

    let region = physical.get("region");
    let number = |key: &str| region.and_then(|r| r.get(key)).and_then(Value::as_i64);
    let line = number("startLine").unwrap_or(1).max(1);
    let column = number("startColumn").unwrap_or(1).max(1);
    let end_line = number("endLine").unwrap_or(line).max(line);
    let end_column = number("endColumn").unwrap_or(column).max(1);
    let snippet = text_of(region.and_then(|r| r.get("snippet"))).or_else(|| {
        let context = physical.get("contextRegion");
        text_of(context.and_then(|r| r.get("snippet")))
    });

    let message = message(result, rule).unwrap_or_else(|| rule_id.to_string());
    let basis = Basis::choose(fingerprints(result), snippet, &message);
    let (severity, security_severity) = severity(result, rule);
    let metadata = metadata(&body.tool, rule, result, security_severity);
    let suppressed = result
        .get("suppressions")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|s| {
                matches!(
                    s.get("status").and_then(Value::as_str),
                    None | Some("accepted")
                )
            })
        });
    Ok(Some(Draft {
        check_id,
        path,
        line,
        column,
        end_line,
        end_column,
        message,
        severity,
        basis,
        metadata,
        suppressed,
    }))
}

/// The result's rule id and, when the run describes it, the rule: by `ruleIndex` /
/// `rule.index` into the driver's rules, else by id (a hierarchical `parent/child` id
/// falls back to its parent).
fn rule_of<'a>(ctx: &Run<'a>, result: &'a Object) -> Option<(&'a str, Option<&'a Object>)> {
    let reference = result.get("rule");
    let index = result
        .get("ruleIndex")
        .or_else(|| reference.and_then(|r| r.get("index")))
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok());
    let in_extension = reference.is_some_and(|r| r.get("toolComponent").is_some());
    let by_index = index
        .filter(|_| !in_extension)
        .and_then(|i| ctx.driver_rules.get(i).copied());
    let id = result
        .get("ruleId")
        .or_else(|| reference.and_then(|r| r.get("id")))
        .and_then(Value::as_str)
        .or_else(|| by_index.and_then(|r| r.get("id")).and_then(Value::as_str))
        .filter(|id| !id.trim().is_empty())?;
    let rule = by_index
        .filter(|r| r.get("id").and_then(Value::as_str) == Some(id))
        .or_else(|| ctx.rules.get(id).copied())
        .or_else(|| {
            let (parent, _) = id.split_once('/')?;
            ctx.rules.get(parent).copied()
        });
    Some((id, rule))
}

/// `message.text`, else the rule's message string `message.id` with its `{0}` … filled in.
fn message(result: &Object, rule: Option<&Object>) -> Option<String> {
    let m = result.get("message");
    if let Some(t) = text_of(m) {
        return Some(t.to_string());
    }
    let id = m.and_then(|m| m.get("id")).and_then(Value::as_str);
    let template = id.and_then(|id| {
        let strings = rule?.get("messageStrings")?;
        text_of(strings.get(id))
    });
    let arguments = m.and_then(|m| m.get("arguments")).and_then(Value::as_array);
    if let Some(template) = template {
        let mut out = template.to_string();
        for (i, a) in arguments.into_iter().flatten().enumerate().take(100) {
            out = out.replace(&format!("{{{i}}}"), a.as_str().unwrap_or(""));
        }
        return Some(out);
    }
    let rule = rule?;
    text_of(rule.get("shortDescription"))
        .or_else(|| text_of(rule.get("fullDescription")))
        .map(str::to_string)
}

fn fingerprints(result: &Object) -> Vec<(String, String)> {
    ["fingerprints", "partialFingerprints"]
        .iter()
        .filter_map(|k| result.get(*k).and_then(Value::as_object))
        .flatten()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The level and the `security-severity` it came from, if any (see the module table).
fn severity(result: &Object, rule: Option<&Object>) -> (i64, Option<String>) {
    let rule_properties = rule.and_then(|r| r.get("properties"));
    let score = [result.get("properties"), rule_properties]
        .into_iter()
        .flatten()
        .find_map(|p| match p.get("security-severity")? {
            Value::String(s) => Some((s.trim().parse::<f64>().ok()?, s.clone())),
            Value::Number(n) => Some((n.as_f64()?, n.to_string())),
            _ => None,
        })
        .filter(|(score, _)| score.is_finite());
    if let Some((score, text)) = score {
        let level = match score {
            s if s >= 9.0 => 3,
            s if s >= 7.0 => 2,
            s if s >= 4.0 => 1,
            _ => 0,
        };
        return (level, Some(text));
    }
    let default = rule
        .and_then(|r| r.get("defaultConfiguration"))
        .and_then(|c| c.get("level"));
    let level = result
        .get("level")
        .or(default)
        .and_then(Value::as_str)
        .unwrap_or("warning");
    let level = match level {
        "error" => 2,
        "note" | "none" => 0,
        _ => 1,
    };
    (level, None)
}

fn metadata(
    tool: &str,
    rule: Option<&Object>,
    result: &Object,
    security_severity: Option<String>,
) -> Value {
    let rule_properties = rule.and_then(|r| r.get("properties"));
    let mut tags: Vec<&str> = Vec::new();
    for properties in [rule_properties, result.get("properties")]
        .into_iter()
        .flatten()
    {
        let listed = properties.get("tags").and_then(Value::as_array);
        for tag in listed.into_iter().flatten().filter_map(Value::as_str) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    let cwe = cwe_ids(&tags);
    let help = rule.and_then(|r| {
        text_of(r.get("help"))
            .or_else(|| text_of(r.get("fullDescription")))
            .or_else(|| text_of(r.get("shortDescription")))
    });
    let help_uri = rule.and_then(|r| r.get("helpUri")).and_then(Value::as_str);
    let precision = rule_properties
        .and_then(|p| p.get("precision"))
        .and_then(Value::as_str);
    json!({
        "tool": tool,
        "help": help,
        "help_uri": help_uri,
        "tags": tags,
        "cwe": cwe,
        "precision": precision,
        "security-severity": security_severity,
        "properties": rule_properties.map(bounded).unwrap_or_else(|| json!({})),
    })
}

/// `CWE-89` for tags such as `CWE-89`, `CWE-89: SQL Injection`, `external/cwe/cwe-89`.
pub(super) fn cwe_ids(tags: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for tag in tags {
        let lower = tag.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(i) = rest.find("cwe") {
            rest = &rest[i + 3..];
            let after = rest.strip_prefix(['-', '_', ':']).unwrap_or(rest);
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && digits.len() <= 6 {
                let id = format!("CWE-{}", digits.trim_start_matches('0'));
                if id != "CWE-" && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    ids
}
