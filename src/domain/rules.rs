//! Rule files as users write them: YAML with a top-level `rules:` list. Each rule is kept
//! exactly as written (as JSON, key order preserved) after checking what every rule needs.

use serde_json::Value;
use std::collections::HashSet;

/// One rule that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    /// The whole rule, as written.
    pub body: Value,
}

/// Why a file or a rule was refused: names the file, the rule (when known) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub rule: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.rule, self.file.is_empty()) {
            (Some(rule), _) => write!(f, "{}: rule {rule:?}: {}", self.file, self.problem),
            (None, false) => write!(f, "{}: {}", self.file, self.problem),
            (None, true) => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for RuleError {}

const SEVERITIES: &[&str] = &[
    "INFO",
    "WARNING",
    "ERROR",
    "LOW",
    "MEDIUM",
    "HIGH",
    "CRITICAL",
    "INVENTORY",
    "EXPERIMENT",
];

/// Keys of which a search-mode rule needs one.
const SEARCH_KEYS: &[&str] = &[
    "pattern",
    "patterns",
    "pattern-either",
    "pattern-regex",
    "match",
];

/// Parses one file and validates every rule in it. Nothing is returned unless all pass.
pub fn parse_file(file: &str, content: &str) -> Result<Vec<Rule>, RuleError> {
    let err = |rule: Option<&str>, problem: String| RuleError {
        file: file.to_string(),
        rule: rule.map(str::to_string),
        problem,
    };
    let doc: Value =
        serde_yaml_ng::from_str(content).map_err(|e| err(None, format!("invalid YAML: {e}")))?;
    let rules = doc
        .get("rules")
        .and_then(Value::as_array)
        .ok_or_else(|| err(None, "expected a top-level `rules:` list".into()))?;
    if rules.is_empty() {
        return Err(err(None, "the `rules:` list is empty".into()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for (i, body) in rules.iter().enumerate() {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| err(None, format!("rule #{} has no `id` string", i + 1)))?;
        check_rule(body).map_err(|p| err(Some(id), p))?;
        if !seen.insert(id.to_string()) {
            return Err(err(Some(id), "the id appears twice in this file".into()));
        }
        out.push(Rule {
            id: id.to_string(),
            body: body.clone(),
        });
    }
    Ok(out)
}

/// Parses uploaded rule files `(name, content)`: every rule of every file valid and no id
/// in two files, or the first problem, naming the file and the rule.
pub fn parse_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Rule>, RuleError> {
    let mut all: Vec<Rule> = Vec::new();
    for (name, content) in files {
        for r in parse_file(name, content)? {
            if all.iter().any(|a| a.id == r.id) {
                return Err(RuleError {
                    file: name.to_string(),
                    rule: Some(r.id),
                    problem: "the id appears in more than one uploaded file".into(),
                });
            }
            all.push(r);
        }
    }
    if all.is_empty() {
        return Err(RuleError {
            file: String::new(),
            rule: None,
            problem: "the files hold no rules: a rule file is YAML with a top-level `rules:` list"
                .into(),
        });
    }
    Ok(all)
}

/// What every rule needs, whatever its mode.
fn check_rule(rule: &Value) -> Result<(), String> {
    let obj = rule.as_object().ok_or("a rule must be a mapping")?;
    let id = obj["id"].as_str().unwrap_or_default();
    if id.len() > 200 || id.chars().any(char::is_whitespace) || super::text::has_hidden(id) {
        return Err(
            "`id` must be at most 200 characters with no white space, control or formatting characters"
                .into(),
        );
    }
    let mode = match obj.get("mode") {
        None => "search",
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err("`mode` must be a string".into()),
    };
    // Extract-mode rules produce no findings of their own and have no message.
    if mode != "extract" {
        match obj.get("message") {
            Some(Value::String(m)) if !m.trim().is_empty() => {}
            _ => return Err("missing `message` (a non-empty string)".into()),
        }
        match obj.get("severity") {
            Some(Value::String(s)) if SEVERITIES.contains(&s.to_ascii_uppercase().as_str()) => {}
            Some(other) => {
                return Err(format!(
                    "`severity` {other} is not one of {}",
                    SEVERITIES.join(", ")
                ))
            }
            None => return Err("missing `severity`".into()),
        }
    }
    match obj.get("languages") {
        Some(Value::Array(l)) if !l.is_empty() && l.iter().all(Value::is_string) => {}
        _ => return Err("missing `languages` (a non-empty list of strings)".into()),
    }
    if let Some(m) = obj.get("metadata") {
        if !m.is_object() {
            return Err("`metadata` must be a mapping".into());
        }
    }
    let has = |k: &str| obj.contains_key(k);
    let ok = match mode {
        "search" => SEARCH_KEYS.iter().any(|k| has(k)),
        "taint" => (has("pattern-sources") && has("pattern-sinks")) || has("taint"),
        "join" => has("join"),
        "extract" => has("extract") && SEARCH_KEYS.iter().any(|k| has(k)),
        "steps" => has("steps"),
        other => return Err(format!("unknown `mode` {other:?}")),
    };
    if !ok {
        return Err(match mode {
            "taint" => {
                "a taint rule needs `pattern-sources` and `pattern-sinks` (or `taint`)".into()
            }
            "search" => format!("missing a pattern: one of {}", SEARCH_KEYS.join(", ")),
            other => format!("a {other}-mode rule is missing its `{other}` spec"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_rules_as_written() {
        let yaml = "rules:\n- id: a\n  languages: [python]\n  severity: ERROR\n  message: m\n  patterns:\n  - pattern: eval($X)\n  - metavariable-regex: {metavariable: $X, regex: x}\n  fix: safe($X)\n  options: {symbolic_propagation: true}\n  paths: {include: [src]}\n";
        let rules = parse_file("f.yml", yaml).unwrap();
        assert_eq!(rules[0].id, "a");
        assert_eq!(rules[0].body["fix"], "safe($X)");
        assert_eq!(rules[0].body["options"]["symbolic_propagation"], true);
        let keys: Vec<_> = rules[0].body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "languages",
                "severity",
                "message",
                "patterns",
                "fix",
                "options",
                "paths"
            ]
        );
    }

    #[test]
    fn taint_rules_pass() {
        let yaml = "rules:\n- id: t\n  mode: taint\n  languages: [python]\n  severity: WARNING\n  message: m\n  pattern-sources: [{pattern: source()}]\n  pattern-sinks: [{pattern: sink(...)}]\n";
        assert_eq!(parse_file("t.yml", yaml).unwrap().len(), 1);
    }

    #[test]
    fn several_files_share_no_id() {
        let a = "rules:\n- id: a\n  languages: [python]\n  severity: ERROR\n  message: m\n  pattern: x\n";
        assert_eq!(parse_files([("a.yml", a)]).unwrap().len(), 1);
        let e = parse_files([("a.yml", a), ("b.yml", a)]).unwrap_err();
        assert_eq!((e.file.as_str(), e.rule.as_deref()), ("b.yml", Some("a")));
        assert!(e.problem.contains("more than one"), "{e}");
    }

    #[test]
    fn errors_name_file_rule_and_problem() {
        let e = parse_file("x.yml", "rules: [").unwrap_err();
        assert_eq!(e.file, "x.yml");
        assert!(e.problem.starts_with("invalid YAML"));
        let e = parse_file(
            "y.yml",
            "rules:\n- id: nopat\n  languages: [python]\n  severity: ERROR\n  message: m\n",
        )
        .unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("nopat"));
        assert!(e.problem.contains("missing a pattern"), "{e}");
        let e = parse_file(
            "z.yml",
            "rules:\n- id: s\n  languages: [go]\n  severity: LOUD\n  message: m\n  pattern: x\n",
        )
        .unwrap_err();
        assert!(e.problem.contains("severity"), "{e}");
        let e = parse_file("w.yml", "rules:\n- languages: [go]\n").unwrap_err();
        assert!(e.problem.contains("no `id`"));
        assert!(parse_file("v.yml", "foo: 1").is_err());
    }
}
