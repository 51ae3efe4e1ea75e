//! The deployment's rules, kept in memory between rule changes: every `semgrep ci` run
//! reads them twice (`/config` serves them, `/complete` takes the Block rules from them),
//! and they change only when someone edits rules or modes.
//!
//! Invalidation is generic rather than per statement: every `Store` function that writes
//! `rules`, `policies` or `policy_rules` holds a [`Changing`] guard, whose drop (after the
//! write's commit, on every path out of the function) moves the generation on. A load
//! that raced a write is tagged with the generation from before it and is never served
//! again. Another node's writes are not seen here, so an entry is also trusted only for
//! [`MAX_AGE`]: a change made through another node reaches this one's scans within it
//! (docs/DECISIONS.md).

use super::rules::StoredRule;
use super::Store;
use crate::ids::DeploymentId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cached list is trusted without a write through this process.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Rules per deployment, with the generation they were loaded at.
#[derive(Debug, Default)]
pub struct RulesCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<DeploymentId, Entry>>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    loaded: Instant,
    rules: Arc<Vec<StoredRule>>,
}

/// Held by a function that writes rules, policies or modes; invalidates on drop.
#[must_use = "the cache is invalidated when the guard is dropped, after the write"]
pub struct Changing<'a>(&'a RulesCache);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl RulesCache {
    /// Invalidates every entry once the guard is dropped.
    pub fn changing(&self) -> Changing<'_> {
        Changing(self)
    }

    fn get(&self, deployment: DeploymentId) -> Option<Arc<Vec<StoredRule>>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let entries = self.entries.lock().ok()?;
        entries
            .get(&deployment)
            .filter(|e| e.generation == generation && e.loaded.elapsed() < MAX_AGE)
            .map(|e| e.rules.clone())
    }

    fn put(&self, deployment: DeploymentId, generation: u64, rules: Arc<Vec<StoredRule>>) {
        if let Ok(mut entries) = self.entries.lock() {
            let entry = Entry {
                generation,
                loaded: Instant::now(),
                rules,
            };
            entries.insert(deployment, entry);
        }
    }
}

impl Store {
    /// Every rule of the deployment with its memberships, as [`Store::list_rules`] reads
    /// them, from memory unless rules changed (see the module's comment).
    pub async fn cached_rules(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Arc<Vec<StoredRule>>> {
        let cache = &self.rules_cache;
        if let Some(rules) = cache.get(deployment_id) {
            return Ok(rules);
        }
        let generation = cache.generation.load(Ordering::SeqCst);
        let rules = Arc::new(self.list_rules(deployment_id).await?);
        cache.put(deployment_id, generation, rules.clone());
        Ok(rules)
    }

    /// The guard a function writing rules, policies or modes holds (see the module).
    pub(crate) fn rules_changing(&self) -> Changing<'_> {
        self.rules_cache.changing()
    }
}
