//! Artifact URIs made repository-relative paths (see the parent module's "Paths").

use serde_json::{Map, Value};

/// The absolute directories that results' absolute URIs are made relative to: the
/// `originalUriBaseIds` (`%SRCROOT%`), the invocations' working directories and the
/// uploader's `root`.
pub(super) fn roots(run: &Map<String, Value>, root: Option<&str>) -> Vec<String> {
    let bases = run
        .get("originalUriBaseIds")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values());
    let dirs = run
        .get("invocations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("workingDirectory"));
    let mut roots: Vec<String> = bases
        .chain(dirs)
        .filter_map(|l| l.get("uri").and_then(Value::as_str))
        .chain(root)
        .filter_map(without_scheme)
        .filter(|p| p.starts_with('/'))
        .map(|p| {
            let p = p.trim_end_matches('/');
            format!("{p}/")
        })
        .filter(|p| p != "/")
        .collect();
    roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
    roots
}

/// A URI percent-decoded, without `file://` (and its host, if any). `None` for other
/// schemes and for bytes that are not UTF-8.
fn without_scheme(uri: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(uri)
        .decode_utf8()
        .ok()?;
    let lower = decoded.get(..7).map(str::to_ascii_lowercase);
    if lower.as_deref() == Some("file://") {
        let rest = &decoded[7..];
        // `file://host/path`: the host is dropped.
        return Some(match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => String::new(),
        });
    }
    if let Some(rest) = decoded.strip_prefix("file:") {
        return Some(rest.to_string());
    }
    // `https://…`, `git://…`: not a file of the repository.
    let scheme = decoded.split_once("://").map(|(s, _)| s);
    if scheme.is_some_and(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    }) {
        return None;
    }
    Some(decoded.into_owned())
}

/// The repository-relative path of an artifact URI: decoded, without `file://`, the roots
/// or leading `./`. An absolute path outside every root stays absolute.
pub(super) fn repo_path(uri: &str, roots: &[String]) -> Option<String> {
    let full = without_scheme(uri)?;
    let mut p = full.as_str();
    if let Some(rest) = roots.iter().find_map(|r| p.strip_prefix(r.as_str())) {
        p = rest;
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    (!p.is_empty()).then(|| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_become_repository_paths() {
        let roots = vec!["/home/runner/work/api/api/".to_string()];
        let path = |uri: &str| repo_path(uri, &roots);
        assert_eq!(path("src/a.py").as_deref(), Some("src/a.py"));
        assert_eq!(path(".//./src/a.py").as_deref(), Some("src/a.py"));
        assert_eq!(path("src/a%20b%2Bc.py").as_deref(), Some("src/a b+c.py"));
        assert_eq!(
            path("file:///home/runner/work/api/api/src/a.py").as_deref(),
            Some("src/a.py")
        );
        assert_eq!(
            path("FILE://build-host/home/runner/work/api/api/b.py").as_deref(),
            Some("b.py"),
            "the host is dropped"
        );
        assert_eq!(path("file:/opt/x.py").as_deref(), Some("/opt/x.py"));
        assert_eq!(path("C:/src/x.py").as_deref(), Some("C:/src/x.py"));
        assert_eq!(path("https://example.com/x.py"), None);
        assert_eq!(path("src/%ff.py"), None, "not UTF-8");
        assert_eq!(path("file:///home/runner/work/api/api/"), None);
        assert_eq!(path("./"), None);
    }

    #[test]
    fn the_longest_root_wins() {
        let run = serde_json::json!({
            "originalUriBaseIds": {"SRCROOT": {"uri": "file:///w/"}},
            "invocations": [{"workingDirectory": {"uri": "file:///w/app"}}]
        });
        let roots = roots(run.as_object().unwrap(), Some("/"));
        assert_eq!(roots, ["/w/app/", "/w/"], "`/` alone is no root");
        assert_eq!(
            repo_path("file:///w/app/x.py", &roots).as_deref(),
            Some("x.py")
        );
    }
}
