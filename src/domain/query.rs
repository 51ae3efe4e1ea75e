//! A query string as `(key, value)` pairs, with typed readers that name the key in their
//! error. Pure: the HTTP edge fills it, the filters of `domain/` read it.

use std::fmt;

/// Why a query value was refused: the key and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// A query string as `(key, value)` pairs, keeping repeated keys.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// Parses `a=1&b=2&a=3`.
    pub fn parse(query: &str) -> QueryPairs {
        QueryPairs(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Every value of `key` (also `key[]`), comma-separated values split.
    pub fn list(&self, key: &str) -> Vec<String> {
        let bracket = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == bracket)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The last value of `key`.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key`, unless it is empty.
    pub fn given(&self, key: &str) -> Option<&str> {
        self.one(key).filter(|v| !v.trim().is_empty())
    }

    /// An integer parameter, or an error that names it.
    pub fn int(&self, key: &str) -> Result<Option<i64>, QueryError> {
        self.given(key)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| QueryError(format!("`{key}` must be an integer, got {v:?}")))
            })
            .transpose()
    }

    /// An integer parameter within `range`, or an error that names it and the range.
    pub fn int_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, QueryError> {
        let out_of_range = || {
            QueryError(format!(
                "`{key}` must be an integer from {} to {}",
                range.start(),
                range.end()
            ))
        };
        match self.given(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(out_of_range()),
            },
        }
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, QueryError> {
        self.given(key)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(QueryError(format!(
                    "`{key}` must be true or false, got {other:?}"
                ))),
            })
            .transpose()
    }

    /// A parameter parsed with `FromStr`, its error prefixed with the key.
    pub fn parsed<T: std::str::FromStr<Err = String>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, QueryError> {
        self.given(key)
            .map(|v| v.parse().map_err(|e| QueryError(format!("`{key}`: {e}"))))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ints_and_ranges() {
        let q = QueryPairs::parse("a=1,2&a[]=3&n=7&big=92233720368547759&b=yes&e=");
        assert_eq!(q.list("a"), ["1", "2", "3"]);
        assert_eq!(q.int("n"), Ok(Some(7)));
        assert!(q.int("b").is_err());
        assert_eq!(q.int_in("n", 0..=10), Ok(Some(7)));
        let e = q.int_in("big", 0..=1_000_000).unwrap_err();
        assert!(e.0.contains("`big`") && e.0.contains("1000000"), "{e}");
        assert!(q.bool("b").is_err());
        assert_eq!(q.given("e"), None);
        // An empty value is no value, for every reader.
        assert_eq!(q.int("e"), Ok(None));
        assert_eq!(q.int_in("e", 1..=2), Ok(None));
        assert_eq!(q.bool("e"), Ok(None));
        assert_eq!(q.one("e"), Some(""));
    }
}
