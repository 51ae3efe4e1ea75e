//! The folder tree is the architecture: no top-level module imports from a module that
//! imports it (directly or around a longer circle). Read from the sources, so a new import
//! that closes a circle fails here with the circle named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of the crate: `src/x.rs` or `src/x/`.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![path.clone()]
        } else {
            continue;
        };
        out.insert(name, files);
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level modules a source text names through `crate::…`, including grouped
/// imports (`use crate::{a::X, b}`).
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    out.insert(head);
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !head.is_empty() {
                out.insert(head);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut graph = BTreeMap::new();
    for (name, files) in &mods {
        let mut deps = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            for dep in named(&text) {
                if dep != *name && mods.contains_key(&dep) {
                    deps.insert(dep);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in &graph[at] {
        if next == start {
            let mut c = path.clone();
            c.push(start.to_string());
            return Some(c);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = circle(graph, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_one_that_imports_it() {
    let graph = graph();
    assert!(graph.contains_key("http") && graph.contains_key("ui"));
    assert!(
        graph["http"].contains("store"),
        "the reader sees imports: {graph:?}"
    );
    let mut circles = Vec::new();
    for name in graph.keys() {
        let mut path = vec![name.clone()];
        if let Some(c) = circle(&graph, name, name, &mut path, &mut BTreeSet::new()) {
            circles.push(c.join(" → "));
        }
    }
    assert!(
        circles.is_empty(),
        "circles between top-level modules:\n{}\n\nimports: {graph:#?}",
        circles.join("\n")
    );
    // The JSON API and the UI are siblings: neither reaches into the other.
    assert!(!graph["ui"].contains("http"), "ui imports http");
    assert!(!graph["http"].contains("ui"), "http imports ui");
    // The pure core stays pure.
    for dep in &graph["domain"] {
        assert!(
            ["clock", "ids"].contains(&dep.as_str()),
            "domain imports {dep}"
        );
    }
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let text = "use crate::{clock::now, ids};\nfn f() { crate::store::x(); }";
    let got: Vec<String> = named(text).into_iter().collect();
    assert_eq!(got, ["clock", "ids", "store"]);
}
