//! What an integration receives, narrowed: a minimum severity, globs of repositories, refs,
//! rule ids and paths, and a CEL expression (the Common Expression Language) over the
//! finding. Every filter is optional; they AND across kinds, and the globs of one kind OR.
//! Rule modes still decide which findings are `semgrep_finding` notifications: filters only
//! narrow that, never widen it. `semgrep_scan` is filtered by repository and ref only.
//!
//! The expression sees one variable, `finding`: `event`, `rule`, `severity`, `mode`, `path`,
//! `line`, `message`, `repository`, `ref`, `cwe` and `owasp` (lists of ids such as
//! `CWE-89` / `A03:2021`), `confidence`, `category`, and `metadata` (the rule's metadata as
//! written). An expression that fails on a finding (a key it reads is missing, a type does
//! not match) does not send that finding; the failure is logged and counted.

use super::event_kind::EventKind;
use super::findings::Severity;
use super::globs::Globs;
use super::mode::RuleMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Longest expression.
pub const MAX_EXPRESSION: usize = 4096;

/// The filters as people write them, and as they are stored and shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Only findings at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Repository globs (`acme/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    /// Ref globs (`main`, `refs/heads/release-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// Rule id globs (`python.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Path globs (`app/**`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// A CEL expression over `finding`, e.g. `"CWE-89" in finding.cwe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

impl FilterSpec {
    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        *self == FilterSpec::default()
    }

    /// Compiles every filter, or says which one is wrong and why.
    pub fn compile(&self) -> Result<Filters, FilterError> {
        let globs = |field: &'static str, list: &[String]| -> Result<Option<Globs>, FilterError> {
            if list.is_empty() {
                return Ok(None);
            }
            Globs::new(list)
                .map(Some)
                .map_err(|message| FilterError { field, message })
        };
        if self.min_severity == Some(Severity::Experiment) {
            return Err(FilterError {
                field: "min_severity",
                message: "use low, medium, high or critical".into(),
            });
        }
        let expression = self
            .expression
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Expression::compile)
            .transpose()
            .map_err(|message| FilterError {
                field: "expression",
                message,
            })?;
        Ok(Filters {
            spec: self.clone(),
            broken: None,
            min_severity: self.min_severity,
            repos: globs("repos", &self.repos)?,
            refs: globs("refs", &self.refs)?,
            rules: globs("rules", &self.rules)?,
            paths: globs("paths", &self.paths)?,
            expression,
        })
    }
}

/// Which filter is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filters.{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FilterError {}

/// Compiled filters.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    spec: FilterSpec,
    /// Stored filters that no longer compile (after an upgrade): they admit nothing, and
    /// say why, rather than stopping every scan that would route through them.
    broken: Option<String>,
    min_severity: Option<Severity>,
    repos: Option<Globs>,
    refs: Option<Globs>,
    rules: Option<Globs>,
    paths: Option<Globs>,
    expression: Option<Expression>,
}

impl PartialEq for Filters {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// What a finding event is filtered on.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub event: EventKind,
    pub repository: &'a str,
    pub git_ref: &'a str,
    pub rule: &'a str,
    pub path: &'a str,
    pub line: i64,
    pub message: &'a str,
    pub severity: Severity,
    pub mode: RuleMode,
    /// The rule's metadata as written.
    pub metadata: &'a Value,
}

impl Filters {
    /// The filters as written.
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// Filters that admit nothing, because the stored ones did not compile.
    pub fn broken(spec: FilterSpec, why: String) -> Filters {
        Filters {
            spec,
            broken: Some(why),
            ..Filters::default()
        }
    }

    /// Whether a `semgrep_scan` of `repository` on `git_ref` passes (only those two apply).
    pub fn admits_scan(&self, repository: &str, git_ref: &str) -> bool {
        self.broken.is_none()
            && self.repos.as_ref().is_none_or(|g| g.matches(repository))
            && self.refs.as_ref().is_none_or(|g| g.matches(git_ref))
    }

    /// Whether a finding event passes; `Err` when the expression failed on it.
    pub fn admits(&self, s: &Subject) -> Result<bool, String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        // Experiment is no level: a minimum severity lets none of those through.
        let passes = self
            .min_severity
            .is_none_or(|min| s.severity != Severity::Experiment && s.severity >= min)
            && self.admits_scan(s.repository, s.git_ref)
            && self.rules.as_ref().is_none_or(|g| g.matches(s.rule))
            && self.paths.as_ref().is_none_or(|g| g.matches(s.path));
        match (&self.expression, passes) {
            (Some(e), true) => e.eval(s),
            (_, passes) => Ok(passes),
        }
    }
}

/// A compiled CEL expression.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Parses `source` and tries it on sample findings: a syntax error, an unknown name or
    /// function, or a result that is not true or false is refused, with where it is.
    pub fn compile(source: &str) -> Result<Expression, String> {
        if source.len() > MAX_EXPRESSION {
            return Err(format!("at most {MAX_EXPRESSION} characters"));
        }
        if super::text::has_forbidden_in_text(source) {
            return Err("control or bidi characters have no place in an expression".into());
        }
        let program = cel::Program::compile(source).map_err(|e| {
            e.to_string()
                .replace("ERROR: <input>:", "line ")
                .replace('\n', " ")
        })?;
        let e = Expression {
            source: source.to_string(),
            program: Arc::new(program),
        };
        for sample in samples() {
            match e.run(&sample.subject()) {
                Ok(cel::Value::Bool(_)) => {}
                Ok(other) => {
                    return Err(format!(
                        "the expression must be true or false, not {}",
                        type_name(&other)
                    ))
                }
                Err(cel::ExecutionError::NoSuchKey(_)) => {} // data-dependent: fine
                Err(err) => return Err(format!("{err} (tried on a sample finding)")),
            }
        }
        Ok(e)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn run(&self, s: &Subject) -> Result<cel::Value, cel::ExecutionError> {
        let mut context = cel::Context::default();
        context.add_variable_from_value("finding", finding_value(s));
        self.program.execute(&context)
    }

    /// Whether the finding passes, or why the expression failed on it.
    pub fn eval(&self, s: &Subject) -> Result<bool, String> {
        match self.run(s) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the expression gave {}, not true or false",
                type_name(&other)
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn type_name(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::List(_) => "a list",
        cel::Value::Map(_) => "a map",
        cel::Value::Int(_) | cel::Value::UInt(_) | cel::Value::Float(_) => "a number",
        cel::Value::String(_) => "a string",
        cel::Value::Null => "null",
        _ => "a value",
    }
}

/// Ids in a metadata value as rule authors write them: `CWE-89: Improper Neutralization…`
/// gives `CWE-89`; `A03:2021 - Injection` gives `A03:2021`.
fn ids(v: Option<&Value>) -> Vec<String> {
    let texts: Vec<&str> = match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    texts
        .into_iter()
        .filter_map(|t| {
            let id = t.split([' ', ',']).next()?.trim_end_matches(':');
            (!id.is_empty()).then(|| id.to_string())
        })
        .collect()
}

/// The `finding` variable of an expression.
fn finding_value(s: &Subject) -> cel::Value {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(x)) => Value::String(x.clone()),
        Some(Value::Array(a)) => a.first().cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let value = serde_json::json!({
        "event": s.event.as_str(),
        "repository": s.repository,
        "ref": s.git_ref,
        "rule": s.rule,
        "path": s.path,
        "line": s.line,
        "message": s.message,
        "severity": s.severity.as_str(),
        "mode": s.mode.as_str(),
        "cwe": ids(s.metadata.get("cwe")),
        "owasp": ids(s.metadata.get("owasp")),
        "confidence": text(s.metadata.get("confidence")),
        "category": text(s.metadata.get("category")),
        "metadata": s.metadata,
    });
    json_to_cel(&value)
}

fn json_to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(f)) => cel::Value::Float(f),
            _ => cel::Value::Null,
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(json_to_cel).collect())),
        Value::Object(o) => {
            let map: std::collections::HashMap<String, cel::Value> =
                o.iter().map(|(k, v)| (k.clone(), json_to_cel(v))).collect();
            cel::Value::Map(map.into())
        }
    }
}

/// Findings an expression is tried on when it is saved.
struct Sample {
    metadata: Value,
}

impl Sample {
    fn subject(&self) -> Subject<'_> {
        Subject {
            event: EventKind::Finding,
            repository: "acme/api",
            git_ref: "main",
            rule: "python.lang.security.audit.eval-detected",
            path: "app/views.py",
            line: 12,
            message: "Detected the use of eval()",
            severity: Severity::High,
            mode: RuleMode::Block,
            metadata: &self.metadata,
        }
    }
}

fn samples() -> [Sample; 2] {
    [
        Sample {
            metadata: serde_json::json!({
                "cwe": ["CWE-95: Improper Neutralization of Directives in Dynamically Evaluated Code"],
                "owasp": ["A03:2021 - Injection"],
                "confidence": "HIGH", "category": "security", "likelihood": "MEDIUM",
                "impact": "HIGH", "technology": ["python"], "references": ["https://example.com"],
                "subcategory": ["audit"], "semgrep.policy": {"id": 1, "name": "Rule Board", "slug": "rule-board-block"},
            }),
        },
        Sample {
            metadata: serde_json::json!({}),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(meta: &'a Value, path: &'a str, severity: Severity) -> Subject<'a> {
        Subject {
            event: EventKind::Finding,
            repository: "acme/api",
            git_ref: "refs/heads/main",
            rule: "python.sqli",
            path,
            line: 3,
            message: "m",
            severity,
            mode: RuleMode::Monitor,
            metadata: meta,
        }
    }

    #[test]
    fn globs_and_severity_and_across_or_within() {
        let f = FilterSpec {
            min_severity: Some(Severity::High),
            paths: vec!["app/**".into(), "lib/*.py".into()],
            refs: vec!["refs/heads/main".into()],
            ..FilterSpec::default()
        }
        .compile()
        .unwrap();
        let meta = serde_json::json!({});
        assert_eq!(
            f.admits(&subject(&meta, "app/x/y.py", Severity::High)),
            Ok(true)
        );
        assert_eq!(
            f.admits(&subject(&meta, "lib/z.py", Severity::Critical)),
            Ok(true)
        );
        assert_eq!(
            f.admits(&subject(&meta, "app/y.py", Severity::Medium)),
            Ok(false)
        );
        assert_eq!(
            f.admits(&subject(&meta, "tests/y.py", Severity::High)),
            Ok(false)
        );
        assert_eq!(
            f.admits(&subject(&meta, "app/y.py", Severity::Experiment)),
            Ok(false),
            "no level"
        );
        let experiment = FilterSpec {
            min_severity: Some(Severity::Experiment),
            ..FilterSpec::default()
        };
        assert_eq!(experiment.compile().unwrap_err().field, "min_severity");
        assert!(f.admits_scan("any/repo", "refs/heads/main"));
        assert!(!f.admits_scan("any/repo", "refs/pull/1/merge"));
        assert!(FilterSpec::default()
            .compile()
            .unwrap()
            .admits(&subject(&meta, "x", Severity::Low))
            .unwrap());
    }

    #[test]
    fn expressions_read_the_finding() {
        let spec = |e: &str| FilterSpec {
            expression: Some(e.into()),
            ..FilterSpec::default()
        };
        let f = spec(r#""CWE-89" in finding.cwe || finding.metadata.confidence == "HIGH""#)
            .compile()
            .unwrap();
        let sqli = serde_json::json!({"cwe": ["CWE-89: SQL Injection"], "confidence": "LOW"});
        let sure = serde_json::json!({"cwe": "CWE-79: XSS", "confidence": "HIGH"});
        let neither = serde_json::json!({"cwe": ["CWE-79"], "confidence": "LOW"});
        assert_eq!(f.admits(&subject(&sqli, "a.py", Severity::Low)), Ok(true));
        assert_eq!(f.admits(&subject(&sure, "a.py", Severity::Low)), Ok(true));
        assert_eq!(
            f.admits(&subject(&neither, "a.py", Severity::Low)),
            Ok(false)
        );
        // A key the finding lacks: the expression fails on it, and it is not sent.
        let none = serde_json::json!({});
        let e = f
            .admits(&subject(&none, "a.py", Severity::Low))
            .unwrap_err();
        assert!(e.contains("confidence"), "{e}");
        let f = spec(r#"finding.mode == "monitor" && finding.path.startsWith("a")"#)
            .compile()
            .unwrap();
        assert_eq!(f.admits(&subject(&none, "a.py", Severity::Low)), Ok(true));
    }

    #[test]
    fn bad_expressions_are_refused_with_where() {
        for (e, says) in [
            ("finding.cwe.contains(", "line 1"),
            ("finding.severity", "true or false"),
            ("nosuch == 1", "nosuch"),
            ("finding.rule.frobnicate()", "frobnicate"),
        ] {
            let err = FilterSpec {
                expression: Some(e.into()),
                ..FilterSpec::default()
            }
            .compile()
            .unwrap_err();
            assert_eq!(err.field, "expression");
            assert!(err.message.contains(says), "{e}: {}", err.message);
        }
        let err = FilterSpec {
            paths: vec!["app/[".into()],
            ..FilterSpec::default()
        }
        .compile()
        .unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("filters.paths"));
    }

    #[test]
    fn ids_are_read_as_authors_write_them() {
        let v = serde_json::json!(["CWE-89: SQL", "CWE-79"]);
        assert_eq!(ids(Some(&v)), ["CWE-89", "CWE-79"]);
        let v = serde_json::json!("A03:2021 - Injection");
        assert_eq!(ids(Some(&v)), ["A03:2021"]);
        assert!(ids(None).is_empty());
    }
}
