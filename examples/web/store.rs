//! A bounded session store for `tower-sessions`.
//!
//! tower-sessions' own `MemoryStore` is an unbounded map: anyone who can complete the
//! password step could grow it without limit. This store holds at most `max` sessions,
//! drops the least recently used one to make room, and forgets a session idle for
//! `idle`. Every entry is indexed by when it was last used, so expiry and eviction take
//! the oldest first and no call scans the whole map.
//!
//! (`tower-sessions-moka-store` bounds its cache too, but moka's TinyLFU admission may
//! turn away a brand-new session in favour of busy ones, its eviction runs lazily, and
//! it is a large dependency for about a hundred lines.)
//!
//! `save` only replaces a session that is still there: a request that loaded a session
//! before a concurrent sign-out or login deleted (or cycled) its id cannot bring the old
//! id back by saving late.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Result;

/// Where an entry sits in the age index: when it was last used, then a counter that
/// keeps two uses at the same instant apart.
type Age = (Instant, u64);

struct Entry<V> {
    value: V,
    age: Age,
}

/// At most `max` entries; one not used for `idle` is gone.
pub struct Lru<V> {
    entries: HashMap<Id, Entry<V>>,
    by_age: BTreeMap<Age, Id>,
    uses: u64,
    idle: Duration,
    max: usize,
}

impl<V: Clone> Lru<V> {
    /// An empty map of at most `max` entries (at least one) that live `idle` past their
    /// last use.
    pub fn new(max: usize, idle: Duration) -> Lru<V> {
        Lru { entries: HashMap::new(), by_age: BTreeMap::new(), uses: 0, idle, max: max.max(1) }
    }

    /// The entry's value (marking it used), unless it is missing or idle too long.
    pub fn get(&mut self, id: &Id, now: Instant) -> Option<V> {
        self.sweep(now);
        let age = self.next_age(now);
        let entry = self.entries.get_mut(id)?;
        self.by_age.remove(&entry.age);
        self.by_age.insert(age, *id);
        entry.age = age;
        Some(entry.value.clone())
    }

    /// Adds an entry unless the id is taken (`false`), evicting the least recently used
    /// ones beyond the cap.
    pub fn insert(&mut self, id: Id, value: V, now: Instant) -> bool {
        self.sweep(now);
        if self.entries.contains_key(&id) {
            return false;
        }
        let age = self.next_age(now);
        self.by_age.insert(age, id);
        self.entries.insert(id, Entry { value, age });
        while self.entries.len() > self.max {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        true
    }

    /// Replaces an entry that is still there and marks it used; one removed, evicted or
    /// expired meanwhile stays gone. Whether it was there.
    pub fn update(&mut self, id: &Id, value: V, now: Instant) -> bool {
        self.sweep(now);
        let age = self.next_age(now);
        let Some(entry) = self.entries.get_mut(id) else { return false };
        self.by_age.remove(&entry.age);
        self.by_age.insert(age, *id);
        *entry = Entry { value, age };
        true
    }

    /// Removes an entry.
    pub fn remove(&mut self, id: &Id) {
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
        self.uses += 1;
        (now, self.uses)
    }
}

/// The sessions: a [`Lru`] of tower-sessions records behind a lock.
#[derive(Clone)]
pub struct BoundedStore(Arc<Mutex<Lru<Record>>>);

impl BoundedStore {
    /// At most `max` sessions, each forgotten after `idle` without a request.
    pub fn new(max: usize, idle: Duration) -> BoundedStore {
        BoundedStore(Arc::new(Mutex::new(Lru::new(max, idle))))
    }

    fn lock(&self) -> MutexGuard<'_, Lru<Record>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for BoundedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedStore").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl SessionStore for BoundedStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let mut lru = self.lock();
        while !lru.insert(record.id, record.clone(), Instant::now()) {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.lock().update(&record.id, record.clone(), Instant::now());
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        Ok(self.lock().get(id, Instant::now()))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.lock().remove(id);
        Ok(())
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
        let mut lru = Lru::new(10, IDLE);
        assert!(lru.insert(Id(1), 1, t0));
        assert!(lru.insert(Id(2), 2, at(t0, 30)));
        assert_eq!(lru.get(&Id(2), at(t0, 50)), Some(2), "a read is a use");
        assert_eq!(lru.get(&Id(1), at(t0, 60)), None, "gone once idle");
        assert_eq!(lru.len(), 1, "the expired entry was swept, the younger one kept");
        assert_eq!(lru.get(&Id(2), at(t0, 109)), Some(2), "idle counts from the last use");
        assert!(lru.update(&Id(2), 3, at(t0, 150)), "a write is a use");
        assert_eq!(lru.get(&Id(2), at(t0, 209)), Some(3));
        assert_eq!(lru.get(&Id(9), at(t0, 300)), None);
        assert_eq!(lru.len(), 0, "any call sweeps");
    }

    #[test]
    fn the_cap_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let mut lru = Lru::new(3, IDLE);
        for i in 0..3 {
            lru.insert(Id(i), i, at(t0, i as u64));
        }
        assert_eq!(lru.get(&Id(0), at(t0, 3)), Some(0), "reading 0 makes it the most recently used");
        lru.insert(Id(3), 3, at(t0, 4));
        assert_eq!(lru.len(), 3, "the cap holds");
        assert_eq!(lru.get(&Id(1), at(t0, 5)), None, "1, the least recently used, was evicted");
        for i in [0, 2, 3] {
            assert!(lru.get(&Id(i), at(t0, 5)).is_some(), "{i} kept");
        }
        for i in 100..1100 {
            lru.insert(Id(i), i, at(t0, 6));
        }
        assert_eq!(lru.len(), 3, "the cap holds under a flood");
        assert_eq!(lru.by_age.len(), 3, "the age index matches the entries");
    }

    #[test]
    fn an_update_never_revives_a_removed_entry_and_ids_are_never_shared() {
        let t0 = Instant::now();
        let mut lru = Lru::new(3, IDLE);
        lru.insert(Id(1), 1, t0);
        assert!(!lru.insert(Id(1), 2, t0), "a taken id is refused");
        lru.remove(&Id(1));
        assert!(!lru.update(&Id(1), 2, t0), "removed: not written back");
        lru.insert(Id(2), 1, t0);
        assert!(!lru.update(&Id(2), 2, at(t0, 60)), "expired: not written back");
        assert_eq!(lru.len(), 0);
        assert!(lru.by_age.is_empty());
    }

    #[tokio::test]
    async fn the_session_store_cycles_without_reviving_the_old_id() {
        let store = BoundedStore::new(2, IDLE);
        let mut record = Record { id: Id(7), data: Default::default(), expiry_date: far_future() };
        store.create(&mut record).await.unwrap();
        let mut clash = Record { id: Id(7), ..record.clone() };
        store.create(&mut clash).await.unwrap();
        assert_ne!(clash.id, Id(7), "a colliding id is replaced, never shared");
        assert!(store.load(&Id(7)).await.unwrap().is_some());
        store.delete(&Id(7)).await.unwrap();
        store.save(&record).await.unwrap();
        assert!(store.load(&Id(7)).await.unwrap().is_none(), "a late save does not revive a deleted id");
    }

    fn far_future() -> tower_sessions::cookie::time::OffsetDateTime {
        tower_sessions::cookie::time::OffsetDateTime::now_utc() + tower_sessions::cookie::time::Duration::days(1)
    }
}
