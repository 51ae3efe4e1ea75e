//! The `/results` body of one tool, built finding by finding: identities made unique,
//! every finding checked as the endpoint would check it, then serialized.

use super::identity::{self, Basis};
use super::Converted;
use crate::domain::ci::{self, Finding};
use crate::domain::text;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Longest message kept, in bytes (what `/results` accepts).
const MAX_MESSAGE: usize = 65_536;
/// Deepest rule properties kept whole; deeper ones are replaced (`/results` refuses
/// metadata nested past 64).
const MAX_PROPERTIES_DEPTH: usize = 32;

/// A result read from the upload, before it has an identity.
pub(super) struct Draft {
    pub check_id: String,
    pub path: String,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
    pub message: String,
    pub severity: i64,
    pub basis: Basis,
    pub metadata: Value,
    /// Suppressed by the tool (goes to `ignores`).
    pub suppressed: bool,
}

struct Item {
    check_id: String,
    path: String,
    lines: [i64; 4],
    message: String,
    severity: i64,
    index: i64,
    id: String,
    /// Into [`Metadata`]: the findings of one rule mostly share theirs.
    metadata: usize,
}

/// Every distinct metadata value of the body, held once.
#[derive(Default)]
struct Metadata {
    values: Vec<Box<RawValue>>,
    by_text: HashMap<String, usize>,
}

impl Metadata {
    /// The index of `raw`, added when new.
    fn intern(&mut self, raw: Box<RawValue>) -> usize {
        if let Some(&i) = self.by_text.get(raw.get()) {
            return i;
        }
        self.by_text
            .insert(raw.get().to_string(), self.values.len());
        self.values.push(raw);
        self.values.len() - 1
    }

    fn finding<'a>(&'a self, item: &'a Item) -> Finding<'a> {
        let [line, column, end_line, end_column] = item.lines;
        Finding {
            check_id: Cow::Borrowed(&item.check_id),
            path: Cow::Borrowed(&item.path),
            line,
            column,
            end_line,
            end_column,
            message: Cow::Borrowed(&item.message),
            severity: item.severity,
            index: item.index,
            commit_date: None,
            syntactic_id: Cow::Borrowed(&item.id),
            match_based_id: Some(Cow::Borrowed(&item.id)),
            raw_metadata: Some(&self.values[item.metadata]),
            is_blocking: false,
        }
    }
}

/// An ordered set of strings.
#[derive(Default)]
struct Listed {
    items: Vec<String>,
    seen: HashSet<String>,
}

impl Listed {
    fn add(&mut self, s: &str) {
        if !self.seen.contains(s) {
            self.seen.insert(s.to_string());
            self.items.push(s.to_string());
        }
    }
}

/// The body of one tool's scan, growing.
pub(super) struct Body {
    pub tool: String,
    findings: Vec<Item>,
    ignores: Vec<Item>,
    metadata: Metadata,
    rule_ids: Listed,
    searched: Listed,
    skipped_paths: Vec<Value>,
    occurrences: HashMap<String, i64>,
    pub skipped: usize,
}

impl Body {
    pub fn new(tool: String) -> Body {
        Body {
            tool,
            findings: Vec::new(),
            ignores: Vec::new(),
            metadata: Metadata::default(),
            rule_ids: Listed::default(),
            searched: Listed::default(),
            skipped_paths: Vec::new(),
            occurrences: HashMap::new(),
            skipped: 0,
        }
    }

    /// The `check_id` of a rule of this tool: Semgrep's ids stay as they are.
    pub fn check_id(&self, rule_id: &str) -> String {
        if self.tool == "semgrep" {
            rule_id.to_string()
        } else {
            format!("{}.{rule_id}", self.tool)
        }
    }

    /// Lists a rule as run (its findings close as fixed when gone). Ids that no finding
    /// could hold are left out.
    pub fn add_rule(&mut self, check_id: &str) {
        if !check_id.is_empty()
            && check_id.len() <= 512
            && text::first_forbidden_in_upload(check_id, false).is_none()
        {
            self.rule_ids.add(check_id);
        }
    }

    /// Lists a path as searched.
    pub fn add_searched(&mut self, path: &str) {
        if path.len() <= 4096 && text::first_forbidden_in_upload(path, false).is_none() {
            self.searched.add(path);
        }
    }

    /// Lists a path the tool skipped (its open findings stay open).
    pub fn add_skipped_path(&mut self, entry: Value) {
        self.skipped_paths.push(entry);
    }

    /// Adds a finding; `Err` says why `/results` would refuse it (the caller counts it as
    /// unusable).
    pub fn push(&mut self, d: Draft) -> Result<(), String> {
        let base = identity::basis_hash(&self.tool, &d.check_id, &d.path, &d.basis);
        let n = self.occurrences.entry(base.clone()).or_insert(0);
        let (index, id) = match *n {
            0 => (0, base),
            k => (k, identity::occurrence(&base, k)),
        };
        let metadata =
            serde_json::value::to_raw_value(&d.metadata).map_err(|e| format!("metadata: {e}"))?;
        let metadata = self.metadata.intern(metadata);
        let item = Item {
            check_id: d.check_id,
            path: d.path,
            lines: [d.line, d.column, d.end_line, d.end_column],
            message: clean_message(&d.message),
            severity: d.severity,
            index,
            id,
            metadata,
        };
        self.metadata
            .finding(&item)
            .check("results", 0)
            .map_err(|e| e.trim_start_matches("results[0]: ").to_string())?;
        *n += 1;
        self.rule_ids.add(&item.check_id);
        self.searched.add(&item.path);
        if d.suppressed {
            self.ignores.push(item);
        } else {
            self.findings.push(item);
        }
        Ok(())
    }

    /// The rules that reported findings (suppressed ones too), each with the metadata of
    /// its first finding, in the order the tool listed them.
    pub fn reported_rules(&self) -> Vec<(&str, &RawValue)> {
        let mut seen = HashSet::new();
        self.findings
            .iter()
            .chain(&self.ignores)
            .filter(|item| seen.insert(item.check_id.as_str()))
            .map(|item| {
                let metadata = &*self.metadata.values[item.metadata];
                (item.check_id.as_str(), metadata)
            })
            .collect()
    }

    /// Adds `extra(check_id)`'s keys to the metadata of every finding of that rule (the
    /// mode the rule board gives it). Each distinct metadata value of a rule is merged
    /// once.
    pub fn annotate(&mut self, extra: &dyn Fn(&str) -> Option<Map<String, Value>>) {
        // (rule, metadata as read) → the metadata with the rule's keys.
        let mut merged: HashMap<(String, usize), usize> = HashMap::new();
        let metadata = &mut self.metadata;
        for item in self.findings.iter_mut().chain(self.ignores.iter_mut()) {
            let key = (item.check_id.clone(), item.metadata);
            if let Some(&done) = merged.get(&key) {
                item.metadata = done;
                continue;
            }
            let Some(keys) = extra(&item.check_id) else {
                continue;
            };
            let mut meta: Map<String, Value> =
                serde_json::from_str(metadata.values[item.metadata].get()).unwrap_or_default();
            meta.extend(keys);
            // A map of JSON values serializes.
            let Ok(raw) = serde_json::value::to_raw_value(&meta) else {
                continue;
            };
            item.metadata = metadata.intern(raw);
            merged.insert(key, item.metadata);
        }
    }

    pub fn finish(self) -> Converted {
        #[derive(Serialize)]
        struct Out<'a> {
            findings: Vec<Finding<'a>>,
            ignores: Vec<Finding<'a>>,
            searched_paths: &'a [String],
            renamed_paths: [&'a str; 0],
            skipped_paths: &'a [Value],
            rule_ids: &'a [String],
        }
        let out = Out {
            findings: self
                .findings
                .iter()
                .map(|i| self.metadata.finding(i))
                .collect(),
            ignores: self
                .ignores
                .iter()
                .map(|i| self.metadata.finding(i))
                .collect(),
            searched_paths: &self.searched.items,
            renamed_paths: [],
            skipped_paths: &self.skipped_paths,
            rule_ids: &self.rule_ids.items,
        };
        // Strings, numbers and already-valid raw JSON: serializing cannot fail.
        let results_json = serde_json::to_vec(&out).unwrap_or_default();
        Converted {
            tool: self.tool.clone(),
            results_json,
            findings: self.findings.len(),
            ignored: self.ignores.len(),
            skipped: self.skipped,
        }
    }
}

/// Tool messages may hold terminal colour codes and other controls that `/results` refuses:
/// they become U+FFFD, and a message past 64 KiB is cut at a character boundary.
fn clean_message(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| {
            let forbidden =
                (c <= '\u{1F}' && !matches!(c, '\t' | '\n' | '\r')) || text::is_bidi_control(c);
            if forbidden {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Rule properties as the tool wrote them, unless they nest too deeply to be stored.
pub(super) fn bounded(v: &Value) -> Value {
    if ci::value_depth(v) > MAX_PROPERTIES_DEPTH {
        Value::String("(left out: nested too deeply)".into())
    } else {
        v.clone()
    }
}
