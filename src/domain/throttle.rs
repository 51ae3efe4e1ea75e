//! A throttle of failed attempts per key (the web UI's sign-in, per client address): at
//! most `limit` failures within `window`; beyond that the key waits until its oldest
//! failure in the window ages out. Bounded in memory: it remembers at most `capacity` keys.
//! When full it forgets keys with no failure in the window first, then the unlocked key
//! whose last failure is oldest; a locked key goes last, so that filling the table from
//! many addresses does not unlock one. Time is passed in, so tests drive it.

use crate::clock::Micros;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// Failed attempts per key.
#[derive(Debug)]
pub struct Throttle<K> {
    limit: usize,
    window: Micros,
    capacity: usize,
    failures: Mutex<HashMap<K, VecDeque<Micros>>>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(limit: usize, window: Duration, capacity: usize) -> Throttle<K> {
        Throttle {
            limit: limit.max(1),
            window: window.as_micros() as Micros,
            capacity: capacity.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has used up its failures: how long until it may try again.
    pub fn check(&self, key: &K, now: Micros) -> Result<(), Duration> {
        let mut all = self.failures.lock().expect("throttle lock");
        let Some(times) = all.get_mut(key) else {
            return Ok(());
        };
        while times.front().is_some_and(|t| *t <= now - self.window) {
            times.pop_front();
        }
        if times.len() < self.limit {
            return Ok(());
        }
        let oldest = *times.front().expect("at the limit, so not empty");
        let wait = (oldest + self.window - now).max(1_000_000);
        Err(Duration::from_micros(wait as u64))
    }

    /// Records a failed attempt of `key`.
    pub fn failed(&self, key: &K, now: Micros) {
        let mut all = self.failures.lock().expect("throttle lock");
        if !all.contains_key(key) && all.len() >= self.capacity {
            let cutoff = now - self.window;
            all.retain(|_, times| times.back().is_some_and(|t| *t > cutoff));
            if all.len() >= self.capacity {
                // Still full of live keys: forget the unlocked one whose last failure is
                // oldest. Only when every key is locked, the one that unlocks soonest (its
                // oldest failure is the oldest): it had least of its wait left.
                let limit = self.limit;
                let unlocked = all
                    .iter()
                    .filter(|(_, times)| times.iter().filter(|t| **t > cutoff).count() < limit)
                    .min_by_key(|(_, times)| times.back().copied().unwrap_or(Micros::MIN))
                    .map(|(k, _)| k.clone());
                let victim = unlocked.or_else(|| {
                    all.iter()
                        .min_by_key(|(_, times)| times.front().copied().unwrap_or(Micros::MIN))
                        .map(|(k, _)| k.clone())
                });
                if let Some(k) = victim {
                    all.remove(&k);
                }
            }
        }
        let times = all.entry(key.clone()).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    /// A success forgets the key's failures.
    pub fn succeeded(&self, key: &K) {
        self.failures.lock().expect("throttle lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Micros = 1_000_000;

    #[test]
    fn limits_failures_per_window() {
        let t = Throttle::new(3, Duration::from_secs(60), 100);
        for i in 0..3 {
            assert!(t.check(&"a", i * SEC).is_ok());
            t.failed(&"a", i * SEC);
        }
        let wait = t.check(&"a", 3 * SEC).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(57),
            "until the first failure is a minute old"
        );
        assert!(t.check(&"b", 3 * SEC).is_ok(), "keys are separate");
        assert!(
            t.check(&"a", 60 * SEC).is_ok(),
            "the first failure aged out"
        );
        t.succeeded(&"a");
        assert!(t.check(&"a", 4 * SEC).is_ok(), "a success forgets");
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(2, Duration::from_secs(60), 3);
        for k in 0..10 {
            t.failed(&k, k as Micros);
        }
        assert!(t.failures.lock().unwrap().len() <= 3);
        assert!(
            t.failures.lock().unwrap().contains_key(&9),
            "the newest is kept"
        );
    }

    #[test]
    fn a_full_table_forgets_unlocked_keys_before_locked_ones() {
        let t = Throttle::new(2, Duration::from_secs(600), 3);
        // The oldest key is locked out…
        t.failed(&"locked", 0);
        t.failed(&"locked", SEC);
        assert!(t.check(&"locked", 2 * SEC).is_err());
        // …and others fill the table, each with one failure, newer than the lock.
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            t.failed(k, (10 + i as Micros) * SEC);
        }
        let all = t.failures.lock().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.contains_key(&"locked"), "flooding does not unlock it");
        assert!(all.contains_key(&"e") && all.contains_key(&"d"), "{all:?}");
        drop(all);
        assert!(t.check(&"locked", 20 * SEC).is_err());

        // When every key is locked, the one that unlocks soonest goes.
        let t = Throttle::new(1, Duration::from_secs(600), 2);
        t.failed(&"first", 0);
        t.failed(&"second", SEC);
        t.failed(&"third", 2 * SEC);
        let all = t.failures.lock().unwrap();
        assert!(!all.contains_key(&"first") && all.contains_key(&"second"));
    }
}
