//! A bounded map from session id to session that forgets idle entries. Every entry is
//! indexed by when it was last written, so expiry and eviction take the oldest entries
//! first: no call scans the whole map.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Where an entry sits in the age index: when it was last written, then a counter that
/// keeps two writes at the same instant apart.
type Age = (Instant, u64);

struct Entry<V> {
    value: V,
    age: Age,
}

/// At most `max` entries; one not written for `idle` is gone. When a new entry would
/// exceed `max`, the least recently written one is evicted.
pub struct Store<V> {
    entries: HashMap<String, Entry<V>>,
    by_age: BTreeMap<Age, String>,
    writes: u64,
    idle: Duration,
    max: usize,
}

impl<V: Clone> Store<V> {
    /// An empty store of at most `max` entries (at least one) that live `idle` past
    /// their last write.
    pub fn new(max: usize, idle: Duration) -> Store<V> {
        Store { entries: HashMap::new(), by_age: BTreeMap::new(), writes: 0, idle, max: max.max(1) }
    }

    /// The entry's value, unless it is missing or has been idle too long.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<V> {
        self.sweep(now);
        self.entries.get(id).map(|e| e.value.clone())
    }

    /// Adds (or replaces) an entry, evicting the least recently written ones beyond the cap.
    pub fn insert(&mut self, id: String, value: V, now: Instant) {
        self.sweep(now);
        self.remove(&id);
        let age = self.next_age(now);
        self.by_age.insert(age, id.clone());
        self.entries.insert(id, Entry { value, age });
        while self.entries.len() > self.max {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            self.entries.remove(&oldest);
        }
    }

    /// Replaces an entry that is still there and marks it recently written; an entry
    /// removed, evicted or expired meanwhile stays gone. Whether it was there.
    pub fn update(&mut self, id: &str, value: V, now: Instant) -> bool {
        self.sweep(now);
        let age = self.next_age(now);
        let Some(entry) = self.entries.get_mut(id) else { return false };
        self.by_age.remove(&entry.age);
        self.by_age.insert(age, id.to_owned());
        *entry = Entry { value, age };
        true
    }

    /// Removes an entry.
    pub fn remove(&mut self, id: &str) {
        if let Some(entry) = self.entries.remove(id) {
            self.by_age.remove(&entry.age);
        }
    }

    /// How many entries are held (expired ones count until the next sweep).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries idle for `idle` or longer: the oldest first, stopping at the
    /// first live one.
    fn sweep(&mut self, now: Instant) {
        while let Some(entry) = self.by_age.first_entry() {
            if now.saturating_duration_since(entry.key().0) < self.idle {
                break;
            }
            let id = entry.remove();
            self.entries.remove(&id);
        }
    }

    fn next_age(&mut self, now: Instant) -> Age {
        self.writes += 1;
        (now, self.writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn idle_entries_expire_and_are_swept_by_the_next_call() {
        let t0 = Instant::now();
        let mut store = Store::new(10, IDLE);
        store.insert("a".into(), 1, t0);
        store.insert("b".into(), 2, at(t0, 30));
        assert_eq!(store.get("a", at(t0, 59)), Some(1), "live until idle has passed");
        assert_eq!(store.get("a", at(t0, 60)), None, "gone once idle");
        assert_eq!(store.len(), 1, "the expired entry was swept, the younger one kept");
        assert_eq!(store.get("b", at(t0, 60)), Some(2));
        assert!(store.update("b", 3, at(t0, 80)), "a write refreshes an entry");
        assert_eq!(store.get("b", at(t0, 130)), Some(3), "idle counts from the last write");
        assert_eq!(store.get("zzz", at(t0, 140)), None);
        assert_eq!(store.len(), 0, "any call sweeps");
    }

    #[test]
    fn the_cap_evicts_the_least_recently_written() {
        let t0 = Instant::now();
        let mut store = Store::new(3, IDLE);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            store.insert(id.into(), i, at(t0, i as u64));
        }
        assert!(store.update("a", 10, at(t0, 3)), "a is now the most recently written");
        store.insert("d".into(), 4, at(t0, 4));
        assert_eq!(store.len(), 3, "the cap holds");
        assert_eq!(store.get("b", at(t0, 5)), None, "b, the least recently written, was evicted");
        for id in ["a", "c", "d"] {
            assert!(store.get(id, at(t0, 5)).is_some(), "{id} kept");
        }
        for i in 0..1000 {
            store.insert(format!("flood-{i}"), i, at(t0, 6));
        }
        assert_eq!(store.len(), 3, "the cap holds under a flood");
        assert_eq!(store.by_age.len(), 3, "the age index matches the entries");
    }

    #[test]
    fn an_update_never_revives_a_removed_entry() {
        let t0 = Instant::now();
        let mut store = Store::new(3, IDLE);
        store.insert("a".into(), 1, t0);
        store.remove("a");
        assert!(!store.update("a", 2, t0), "removed: not written back");
        store.insert("b".into(), 1, t0);
        assert!(!store.update("b", 2, at(t0, 60)), "expired: not written back");
        assert_eq!(store.len(), 0);
        assert!(store.by_age.is_empty());
    }
}
