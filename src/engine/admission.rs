//! Load shedding for the password step: how many logins may wait for a hash.
//!
//! Each password step costs one Argon2 hash, and at most
//! [`max_concurrent_hashes`](crate::EngineBuilder::max_concurrent_hashes) run at once.
//! Without a bound on the waiting line, a flood of attempts queues without end and a
//! real user waits behind all of it. So a step in the normal lane first takes a
//! ticket: at most `max_concurrent_hashes + max_queued_logins` are out at once, and a
//! step that finds none free is answered [`LoginOutcome::Busy`] at once. The decision
//! is taken before the store is read (or, for a caller whose remembered-location token
//! turned out invalid, from the same count alone), so it says nothing about whether
//! the user exists.
//!
//! A step whose caller presents a valid remembered-location token takes no ticket: it
//! is never shed, and it is hashed in the semaphore's priority lane, ahead of every
//! queued normal step.
//!
//! [`LoginOutcome::Busy`]: crate::LoginOutcome::Busy

use std::sync::atomic::{AtomicUsize, Ordering};

/// The tickets of the normal lane.
#[derive(Debug)]
pub(crate) struct Admission {
    out: AtomicUsize,
    limit: usize,
}

/// A ticket; returned when dropped.
#[derive(Debug)]
pub(crate) struct Ticket<'a>(&'a Admission);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.out.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// At most `limit` tickets out at once (at least 1).
    pub(crate) fn new(limit: usize) -> Self {
        Admission { out: AtomicUsize::new(0), limit: limit.max(1) }
    }

    /// A ticket, or `None` when all are out.
    pub(crate) fn try_admit(&self) -> Option<Ticket<'_>> {
        self.out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.limit).then_some(n + 1))
            .ok()
            .map(|_| Ticket(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_is_out_and_returned_tickets_come_back() {
        let admission = Admission::new(2);
        let a = admission.try_admit();
        let b = admission.try_admit();
        assert!(a.is_some() && b.is_some());
        assert!(admission.try_admit().is_none(), "the third is shed");
        drop(a);
        assert!(admission.try_admit().is_some(), "a returned ticket is free again");
        drop(b);
        assert_eq!(admission.out.load(Ordering::Acquire), 0);
    }
}
