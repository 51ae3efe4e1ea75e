//! API tokens as values: what a token may do (its scope and, for CI tokens, which
//! repositories), and the checks a new token's settings pass before it is made.

use super::findings::named_enum;
use super::globs::Globs;
use crate::clock::{parse_duration, Micros};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// What `semgrep ci` needs: the CI protocol endpoints only (and, with repository globs,
    /// only for matching projects).
    Ci,
    /// Everything in its deployment.
    Admin,
}

named_enum!(Scope, "token scope", {
    Ci => "ci",
    Admin => "admin",
});

/// The longest a token may be made to last.
const MAX_LIFETIME_SECS: u64 = 10 * 366 * 86_400;

/// A token to make, checked.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub scope: Scope,
    pub name: String,
    pub expires_at: Option<Micros>,
    /// For CI tokens: the repositories it may scan (`None`: every project).
    pub repos: Option<Globs>,
}

impl NewToken {
    /// Checks what a person asked for: a name (a default from the scope when empty), a
    /// lifetime like `90d` from `now`, repository globs only for CI tokens.
    pub fn new(
        scope: Scope,
        name: Option<&str>,
        expires_in: Option<&str>,
        repos: Option<&[String]>,
        now: Micros,
    ) -> Result<NewToken, String> {
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => super::text::check_name(n).map_err(|e| format!("name: {e}"))?,
            None => match scope {
                Scope::Admin => "admin token",
                Scope::Ci => "ci token",
            },
        }
        .to_string();
        let expires_at = expires_in
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| -> Result<Micros, String> {
                let d = parse_duration(e).map_err(|e| format!("expires_in: {e}"))?;
                if d.as_secs() < 60 || d.as_secs() > MAX_LIFETIME_SECS {
                    return Err("expires_in must be from 1 minute to 10 years (e.g. 90d)".into());
                }
                Ok(now + d.as_micros() as Micros)
            })
            .transpose()?;
        let repos = match repos {
            None => None,
            Some([]) => None,
            Some(r) => {
                if scope == Scope::Admin {
                    return Err(
                        "repos: only CI tokens have a project scope; an admin token reaches every project"
                            .into(),
                    );
                }
                Some(Globs::new(r).map_err(|e| format!("repos: {e}"))?)
            }
        };
        Ok(NewToken {
            scope,
            name,
            expires_at,
            repos,
        })
    }
}

/// Whether a token can still be used at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

named_enum!(TokenState, "token state", {
    Active => "active",
    Expired => "expired",
    Revoked => "revoked",
});

impl TokenState {
    pub fn at(now: Micros, expires_at: Option<Micros>, revoked_at: Option<Micros>) -> TokenState {
        if revoked_at.is_some() {
            TokenState::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_checked() {
        let t = NewToken::new(
            Scope::Ci,
            Some(" deploy "),
            Some("90d"),
            Some(&["acme/*".into()]),
            0,
        )
        .unwrap();
        assert_eq!(t.name, "deploy");
        assert_eq!(t.expires_at, Some(90 * 86_400 * 1_000_000));
        assert!(t.repos.unwrap().matches("acme/api"));
        let t = NewToken::new(Scope::Admin, None, None, None, 0).unwrap();
        assert_eq!((t.name.as_str(), t.expires_at), ("admin token", None));
        for (scope, expires, repos) in [
            (Scope::Admin, None, Some(vec!["acme/*".to_string()])),
            (Scope::Ci, Some("soon"), None),
            (Scope::Ci, Some("10s"), None),
            (Scope::Ci, Some("20y"), None),
            (Scope::Ci, None, Some(vec!["acme/[".to_string()])),
        ] {
            assert!(
                NewToken::new(scope, None, expires, repos.as_deref(), 0).is_err(),
                "{scope} {expires:?} {repos:?}"
            );
        }
    }

    #[test]
    fn states() {
        assert_eq!(TokenState::at(10, None, None), TokenState::Active);
        assert_eq!(TokenState::at(10, Some(11), None), TokenState::Active);
        assert_eq!(TokenState::at(10, Some(10), None), TokenState::Expired);
        assert_eq!(TokenState::at(10, None, Some(5)), TokenState::Revoked);
    }
}
