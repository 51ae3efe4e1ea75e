//! Lists of globs as people write them for repositories, refs, rule ids and paths
//! (`acme/*`, `refs/heads/main`, `app/**`): `*` stays inside one `/`-separated segment,
//! `**` crosses segments, `?` is one character, `{a,b}` either. A list matches when any of
//! its globs does; an empty list is refused where it would mean nothing.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::fmt;

/// Most globs in one list.
pub const MAX_GLOBS: usize = 100;
/// Longest glob.
pub const MAX_GLOB_LEN: usize = 500;

/// A compiled list of globs, kept with its source text.
#[derive(Clone)]
pub struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl fmt::Debug for Globs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Globs").field(&self.patterns).finish()
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Globs {
    /// Compiles globs, or says which one is wrong and why.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Globs, String> {
        if patterns.is_empty() {
            return Err("give at least one glob".into());
        }
        if patterns.len() > MAX_GLOBS {
            return Err(format!("at most {MAX_GLOBS} globs"));
        }
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() || p.len() > MAX_GLOB_LEN || super::text::has_hidden(p) {
                return Err(format!(
                    "{p:?} is not a glob: 1 to {MAX_GLOB_LEN} characters, no control characters"
                ));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("{p:?} is not a glob: {}", e.kind()))?;
            builder.add(glob);
            kept.push(p.to_string());
        }
        let set = builder
            .build()
            .map_err(|e| format!("the globs do not compile: {e}"))?;
        Ok(Globs {
            patterns: kept,
            set,
        })
    }

    /// Splits `a,b` and compiles the parts.
    pub fn parse_list(s: &str) -> Result<Globs, String> {
        let parts: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        Globs::new(&parts)
    }

    pub fn matches(&self, candidate: &str) -> bool {
        self.set.is_match(candidate)
    }

    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_in_a_segment_double_stars_cross() {
        let g = Globs::new(&["acme/*", "tools/**"]).unwrap();
        assert!(g.matches("acme/api"));
        assert!(!g.matches("acme/api/sub"));
        assert!(!g.matches("other/api"));
        assert!(g.matches("tools/a/b"));
        let refs = Globs::parse_list("refs/heads/main, refs/heads/release-*").unwrap();
        assert!(refs.matches("refs/heads/release-2"));
        assert!(!refs.matches("refs/pull/3/merge"));
        assert_eq!(refs.patterns().len(), 2);
    }

    #[test]
    fn bad_globs_are_named() {
        let e = Globs::new(&["acme/[a"]).unwrap_err();
        assert!(e.contains("acme/[a"), "{e}");
        assert!(Globs::new::<&str>(&[]).is_err());
        assert!(Globs::new(&["a\nb"]).is_err());
        assert!(Globs::parse_list(" , ").is_err());
    }
}
