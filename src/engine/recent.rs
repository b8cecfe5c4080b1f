//! The record each pending login was issued on, kept so that its second step can start
//! from it instead of reading the store again.
//!
//! A full login reads the user's document twice: at the password step, and again at
//! the second step, which then writes it by compare-and-swap. When both steps reach
//! the same engine, the second read usually returns what the first one saw. So the
//! password step leaves the record it decided on here, under the pending login's
//! random id, and the second step takes it: one store round trip fewer per login.
//!
//! Why a stale entry is safe: an answer given from a kept record is always written
//! over the kept version, at the first try. If the document changed in between (a
//! reset, another login's failure, a new backup code) that write meets a conflict, and
//! the whole step, code check included, is done again on a fresh read. An answer that
//! writes nothing (a pending login found expired or used) is never given from a kept
//! record either: the engine reads afresh and decides again. An entry is taken at most
//! once, and entries past their pending login's expiry are never used.
//!
//! What is kept is the decoded record, with its TOTP keys still sealed and its
//! password and backup-code hashes: nothing a store read does not already hold in
//! memory. An entry lives until it is taken, until its pending login has expired (the
//! next call drops it), or until [`CAPACITY`] newer ones have replaced it: under more
//! concurrent pending logins than that, the oldest are dropped and their second steps
//! read the store, as they would without it.
//!
//! A fixed ring of `Option`s and a linear search, rather than a cache crate: each entry
//! is written once and taken once, so there is no recency to track, and a search of
//! [`CAPACITY`] 16-byte ids costs well under a microsecond beside a store round trip.

use std::sync::{Mutex, PoisonError};

use crate::UserId;
use crate::account::{Account, Versioned};
use crate::plumbing::clock::Timestamp;

/// How many pending logins' records are kept at most.
pub(crate) const CAPACITY: usize = 256;

/// The kept records, in a ring: a new entry replaces the oldest. No `Debug`: nothing
/// here is for printing (the records and the pending logins' ids).
#[derive(Default)]
pub(crate) struct RecentRecords {
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    slots: Vec<Option<Entry>>,
    next: usize,
}

struct Entry {
    pending: [u8; 16],
    expires_at: Timestamp,
    snapshot: Versioned<Account>,
}

impl RecentRecords {
    /// Keeps `snapshot`, the record as stored when pending login `pending` (valid until
    /// `expires_at`) was issued at `now`.
    pub(crate) fn keep(&self, pending: [u8; 16], expires_at: Timestamp, snapshot: Versioned<Account>, now: Timestamp) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.drop_expired(now);
        let at = ring.next;
        let entry = Some(Entry { pending, expires_at, snapshot });
        if at < ring.slots.len() {
            ring.slots[at] = entry;
        } else {
            ring.slots.push(entry);
        }
        ring.next = (at + 1) % CAPACITY;
    }

    /// Takes the record kept for pending login `pending` of user `account`, if it is
    /// there and the pending login has not expired by `now`.
    pub(crate) fn take(&self, pending: &[u8; 16], account: UserId, now: Timestamp) -> Option<Versioned<Account>> {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.drop_expired(now);
        let slot = ring.slots.iter_mut().find(|slot| slot.as_ref().is_some_and(|e| e.pending == *pending))?;
        let entry = slot.take()?;
        (entry.snapshot.record.id == account).then_some(entry.snapshot)
    }
}

impl Ring {
    /// Empties the slots whose pending login has expired by `now`.
    fn drop_expired(&mut self, now: Timestamp) {
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|e| e.expires_at <= now) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::login::tests::account;

    fn snapshot(version: u64) -> Versioned<Account> {
        Versioned { version, record: account() }
    }

    #[test]
    fn an_entry_is_taken_once_by_its_pending_login_and_its_user() {
        let recent = RecentRecords::default();
        let id = account().id;
        recent.keep([1; 16], Timestamp(100), snapshot(7), Timestamp(0));
        recent.keep([2; 16], Timestamp(100), snapshot(8), Timestamp(0));
        assert_eq!(recent.take(&[3; 16], id, Timestamp(50)), None, "no entry for another pending login");
        assert_eq!(recent.take(&[1; 16], id, Timestamp(50)).map(|s| s.version), Some(7));
        assert_eq!(recent.take(&[1; 16], id, Timestamp(50)), None, "taken once");
        assert_eq!(recent.take(&[2; 16], UserId::from(2_u64), Timestamp(50)), None, "another user's id is refused");
        assert_eq!(recent.take(&[2; 16], id, Timestamp(50)), None, "and the entry is gone with it");
    }

    #[test]
    fn an_expired_pending_login_gets_nothing() {
        let recent = RecentRecords::default();
        recent.keep([1; 16], Timestamp(100), snapshot(7), Timestamp(0));
        assert_eq!(recent.take(&[1; 16], account().id, Timestamp(100)), None);
    }

    #[test]
    fn expired_entries_are_dropped_by_the_next_call() {
        let recent = RecentRecords::default();
        recent.keep([1; 16], Timestamp(100), snapshot(7), Timestamp(0));
        recent.keep([2; 16], Timestamp(200), snapshot(8), Timestamp(0));
        recent.keep([3; 16], Timestamp(300), snapshot(9), Timestamp(150));
        let held: Vec<_> = recent.ring.lock().unwrap().slots.iter().flatten().map(|e| e.pending[0]).collect();
        assert_eq!(held, [2, 3], "the one expired at 100 is gone");
        assert_eq!(recent.take(&[9; 16], account().id, Timestamp(250)), None);
        let held: Vec<_> = recent.ring.lock().unwrap().slots.iter().flatten().map(|e| e.pending[0]).collect();
        assert_eq!(held, [3], "a take drops them too");
    }

    #[test]
    fn the_ring_holds_at_most_its_capacity_and_drops_the_oldest() {
        let recent = RecentRecords::default();
        let id = account().id;
        let pending = |i: usize| {
            let mut p = [0; 16];
            p[..8].copy_from_slice(&(i as u64).to_be_bytes());
            p
        };
        for i in 0..=CAPACITY {
            recent.keep(pending(i), Timestamp(100), snapshot(i as u64), Timestamp(0));
        }
        assert_eq!(recent.ring.lock().unwrap().slots.len(), CAPACITY);
        assert_eq!(recent.take(&pending(0), id, Timestamp(1)), None, "the oldest was replaced");
        assert_eq!(recent.take(&pending(1), id, Timestamp(1)).map(|s| s.version), Some(1));
        assert_eq!(recent.take(&pending(CAPACITY), id, Timestamp(1)).map(|s| s.version), Some(CAPACITY as u64));
    }
}
