//! What the hot path reads on every request, kept in memory between the writes that change
//! it: the rules of a deployment ([`Store::cached_rules`]), its integrations
//! ([`Store::cached_integrations`]) and who a bearer token is ([`Store::authenticate`]).
//! Scans are kept too, for what of them never changes ([`Store::scan_facts`]).
//!
//! Invalidation is generic rather than per statement: every `Store` function that writes
//! what a cache holds keeps a [`Changing`] guard, whose drop (after the write's commit, on
//! every path out of the function) moves the cache's generation on. A load that raced a
//! write is tagged with the generation from before it and is never served again. Another
//! node's writes are not seen here, so an entry is also trusted only for [`MAX_AGE`]: a
//! change made through another node (or by the CLI on the database) reaches this one's
//! requests within it (docs/DECISIONS.md).
//!
//! [`Store::cached_rules`]: super::Store::cached_rules
//! [`Store::authenticate`]: super::Store::authenticate
//! [`Store::cached_integrations`]: super::Store::cached_integrations
//! [`Store::scan_facts`]: super::Store::scan_facts

use super::rules::StoredRule;
use super::scans::Scan;
use super::tokens::KnownToken;
use super::Store;
use crate::domain::integration::Integration;
use crate::ids::{DeploymentId, ScanId, ScanKey};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an entry is trusted without a write through this process.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Scans kept for [`Store::scan_facts`], per cache: more than a node runs at once.
const SCANS_KEPT: usize = 1_024;

/// Scans whose metadata and ignored files take more than this are read from the database
/// at each step instead (a CI token could otherwise fill memory with 60 KiB metadata).
pub(crate) const SCAN_BYTES_KEPT: usize = 16 * 1024;

/// Stored rule metadata values' ids kept: more distinct values than a deployment's rules
/// have (about 130 bytes each).
const METADATA_IDS_KEPT: usize = 16_384;

/// The store's caches (shared by its clones).
#[derive(Debug)]
pub struct Caches {
    /// Every rule of a deployment with its memberships.
    pub rules: Generational<DeploymentId, Arc<Vec<StoredRule>>>,
    /// Tokens presented lately, by hash: found ones only, so made-up tokens fill nothing.
    pub tokens: Generational<String, Arc<KnownToken>>,
    /// Every integration of a deployment with its modes, secrets opened and filters
    /// compiled (each `/complete` routes to them).
    pub integrations: Generational<DeploymentId, Arc<Vec<Arc<Integration>>>>,
    /// Scans of this process's CI runs, by id and by `unique_id`, as created or first
    /// read: only what never changes after creation is read from them (the CI steps
    /// check a scan's state in their own write). Never invalidated; a full cache starts
    /// again empty. A run's steps are minutes apart, so these do not expire either.
    pub scans: Generational<(DeploymentId, ScanId), Arc<Scan>>,
    pub scans_by_unique_id: Generational<(DeploymentId, String), Arc<Scan>>,
    /// The row ids of stored rule metadata values, by hash. A value's row is never
    /// updated or deleted, so its id, once committed, stays right: kept after the
    /// completion that read or stored it commits, never invalidated.
    pub metadata_ids: Generational<(DeploymentId, String), i64>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            rules: Generational::new(1_000),
            tokens: Generational::new(10_000),
            integrations: Generational::new(1_000),
            scans: Generational::unchanging(SCANS_KEPT),
            scans_by_unique_id: Generational::unchanging(SCANS_KEPT),
            metadata_ids: Generational::unchanging(METADATA_IDS_KEPT),
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
        let load = || async { Ok(Arc::new(self.list_rules(deployment_id).await?)) };
        self.caches.rules.get_or_load(deployment_id, load).await
    }

    /// [`Store::list_integrations`], from memory unless integrations or the modes that
    /// notify them changed (see the module's comment).
    pub async fn cached_integrations(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Arc<Vec<Arc<Integration>>>> {
        let load = || async { Ok(Arc::new(self.shared_integrations(deployment_id).await?)) };
        self.caches
            .integrations
            .get_or_load(deployment_id, load)
            .await
    }

    /// The scan, by numeric id, as [`Store::scan`] reads it, kept in memory: **only what
    /// never changes after creation is current** (ids, project, ref, metadata, ignored
    /// files), not its status, results or counts. For the CI steps, which check the state
    /// in the write they make.
    pub async fn scan_facts(
        &self,
        deployment_id: DeploymentId,
        id: ScanId,
    ) -> anyhow::Result<Option<Arc<Scan>>> {
        let key = (deployment_id, id);
        if let Some(scan) = self.caches.scans.get(&key) {
            return Ok(Some(scan));
        }
        let scan = self.scan(deployment_id, &ScanKey::Numeric(id)).await?;
        Ok(scan.map(|s| self.keep_scan(s, None)))
    }

    /// [`Store::scan_facts`] by the client's `unique_id`.
    pub async fn scan_facts_by_unique_id(
        &self,
        deployment_id: DeploymentId,
        unique_id: &str,
    ) -> anyhow::Result<Option<Arc<Scan>>> {
        let key = (deployment_id, unique_id.to_string());
        if let Some(scan) = self.caches.scans_by_unique_id.get(&key) {
            return Ok(Some(scan));
        }
        let scan = self.scan_by_unique_id(deployment_id, unique_id).await?;
        Ok(scan.map(|s| self.keep_scan(s, None)))
    }

    /// Keeps a scan for [`Store::scan_facts`], unless its metadata (`meta_bytes` long as
    /// JSON, measured here if not given) and ignored files are larger than
    /// [`SCAN_BYTES_KEPT`]; the scan. What may be large and is not a fact (a completed
    /// scan's stats and `semgrep_scan` object) is left out.
    pub(crate) fn keep_scan(&self, scan: Scan, meta_bytes: Option<usize>) -> Arc<Scan> {
        let meta_bytes = meta_bytes
            .unwrap_or_else(|| serde_json::to_string(&scan.meta).map_or(usize::MAX, |m| m.len()));
        let ignored: usize = scan.ignored_files.iter().map(String::len).sum();
        let scan = Arc::new(Scan {
            stats: None,
            scan_payload: None,
            ..scan
        });
        if meta_bytes.saturating_add(ignored) > SCAN_BYTES_KEPT {
            return scan;
        }
        let c = &self.caches;
        c.scans.put(
            (scan.deployment_id, scan.id),
            c.scans.generation(),
            scan.clone(),
        );
        c.scans_by_unique_id.put(
            (scan.deployment_id, scan.unique_id.clone()),
            c.scans_by_unique_id.generation(),
            scan.clone(),
        );
        scan
    }

    /// The guard a function writing rules, policies or modes holds (see the module).
    pub(crate) fn rules_changing(&self) -> Changing<'_> {
        self.caches.rules.changing()
    }

    /// The guard a function writing integrations or the modes that notify them holds.
    pub(crate) fn integrations_changing(&self) -> Changing<'_> {
        self.caches.integrations.changing()
    }

    /// The guard a function writing tokens holds (see the module).
    pub(crate) fn tokens_changing(&self) -> Changing<'_> {
        self.caches.tokens.changing()
    }
}

/// Values by key, each with the generation it was loaded at; at most `capacity` of them.
#[derive(Debug)]
pub struct Generational<K, V> {
    generation: AtomicU64,
    entries: Mutex<HashMap<K, Entry<V>>>,
    capacity: usize,
    /// How long an entry is trusted ([`MAX_AGE`]; `None` for values that never change).
    max_age: Option<Duration>,
}

#[derive(Debug)]
struct Entry<V> {
    generation: u64,
    loaded: Instant,
    value: V,
}

/// Held by a function that writes what the cache holds; invalidates on drop.
#[must_use = "the cache is invalidated when the guard is dropped, after the write"]
pub struct Changing<'a>(&'a AtomicU64);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl<K: Hash + Eq, V: Clone> Generational<K, V> {
    pub fn new(capacity: usize) -> Self {
        Generational {
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            capacity,
            max_age: Some(MAX_AGE),
        }
    }

    /// For values that never change once stored: their entries do not expire.
    pub fn unchanging(capacity: usize) -> Self {
        Generational {
            max_age: None,
            ..Generational::new(capacity)
        }
    }

    /// Invalidates every entry once the guard is dropped.
    pub fn changing(&self) -> Changing<'_> {
        Changing(&self.generation)
    }

    /// The generation a load about to start is tagged with.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The value, if it was loaded in this generation less than [`MAX_AGE`] ago (any time
    /// ago for an [`unchanging`](Generational::unchanging) cache).
    pub fn get(&self, key: &K) -> Option<V> {
        let generation = self.generation();
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|e| {
                e.generation == generation && self.max_age.is_none_or(|m| e.loaded.elapsed() < m)
            })
            .map(|e| e.value.clone())
    }

    /// The value from memory, else from `load` (kept unless a write raced it).
    pub async fn get_or_load<F, Fut>(&self, key: K, load: F) -> anyhow::Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<V>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let generation = self.generation();
        let value = load().await?;
        self.put(key, generation, value.clone());
        Ok(value)
    }

    /// Keeps a value loaded at `generation`. A full cache starts again empty: reloading
    /// what is still wanted costs one read each.
    pub fn put(&self, key: K, generation: u64, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.clear();
            }
            let entry = Entry {
                generation,
                loaded: Instant::now(),
                value,
            };
            entries.insert(key, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_invalidates_what_was_loaded_before_it() {
        let cache: Generational<&str, u32> = Generational::new(8);
        let before = cache.generation();
        cache.put("a", before, 1);
        assert_eq!(cache.get(&"a"), Some(1));
        drop(cache.changing());
        assert_eq!(cache.get(&"a"), None, "the write moved the generation on");
        // A load that started before the write is never served.
        cache.put("a", before, 1);
        assert_eq!(cache.get(&"a"), None);
        cache.put("a", cache.generation(), 2);
        assert_eq!(cache.get(&"a"), Some(2));
    }

    #[test]
    fn entries_expire_unless_the_values_never_change() {
        let aged = |cache: &Generational<u32, u32>| {
            let mut entries = cache.entries.lock().unwrap();
            let e = entries.get_mut(&1).unwrap();
            e.loaded = Instant::now().checked_sub(2 * MAX_AGE).unwrap();
        };
        let changing: Generational<u32, u32> = Generational::new(8);
        let unchanging: Generational<u32, u32> = Generational::unchanging(8);
        for cache in [&changing, &unchanging] {
            cache.put(1, cache.generation(), 1);
            aged(cache);
        }
        assert_eq!(changing.get(&1), None, "older than MAX_AGE");
        assert_eq!(unchanging.get(&1), Some(1));
        drop(unchanging.changing());
        assert_eq!(unchanging.get(&1), None, "a write still invalidates");
    }

    #[test]
    fn a_full_cache_starts_again() {
        let cache: Generational<u32, u32> = Generational::new(2);
        let g = cache.generation();
        cache.put(1, g, 1);
        cache.put(2, g, 2);
        cache.put(2, g, 20);
        assert_eq!((cache.get(&1), cache.get(&2)), (Some(1), Some(20)));
        cache.put(3, g, 3);
        assert_eq!(
            (cache.get(&1), cache.get(&2), cache.get(&3)),
            (None, None, Some(3))
        );
    }
}
