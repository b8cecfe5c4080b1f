//! One password step per login name at a time, in this process.
//!
//! The password step reads the record, checks the throttle, runs Argon2 and writes
//! the verdict. If two steps for one name overlap, both read the same unthrottled
//! record and both are evaluated, so a burst of concurrent guesses would get more
//! evaluations per throttle window than the budget allows (and a right password
//! checked while the burst throttles the account would still be accepted). Holding a
//! turn for the name from before the read until after the write makes the steps of
//! one engine strictly sequential: each reads what the previous one wrote.
//!
//! Every step takes a turn, for a known name or not, throttled or not, so the waiting
//! itself tells nothing about whether a name exists. Turns are handed out in arrival
//! order (the crate's FIFO [`Semaphore`], one permit per name); a map entry lives only
//! while some step holds or waits for that name, so the map is bounded by the
//! requests in flight.
//!
//! Across processes (several application servers on one database) each process has
//! its own gate; the compare-and-swap re-check in the core then bounds the guesses
//! evaluated per throttle window by the free failures plus one per further process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::plumbing::semaphore::{Permit, Semaphore};

/// Turns per login name.
#[derive(Debug, Default)]
pub(crate) struct NameGate {
    names: Mutex<HashMap<Box<str>, Slot>>,
}

#[derive(Debug)]
struct Slot {
    turn: Semaphore,
    /// Steps holding or waiting for this name's turn.
    users: usize,
}

/// A held turn; the next step for the name goes when it is dropped.
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    // Field order matters: the permit is released before the registration leaves.
    _permit: Permit,
    _registration: Registration<'a>,
}

/// Counts a step in its name's slot; removes the slot when the last one leaves (also
/// when a waiting step is cancelled).
#[derive(Debug)]
struct Registration<'a> {
    gate: &'a NameGate,
    name: Box<str>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut names = self.gate.lock();
        if let Some(slot) = names.get_mut(&self.name) {
            slot.users -= 1;
            if slot.users == 0 {
                names.remove(&self.name);
            }
        }
    }
}

impl NameGate {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Slot>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the turn of `name`.
    pub(crate) async fn turn(&self, name: &str) -> Turn<'_> {
        let turn = {
            let mut names = self.lock();
            let slot = names.entry(name.into()).or_insert_with(|| Slot { turn: Semaphore::new(1), users: 0 });
            slot.users += 1;
            slot.turn.clone()
        };
        let registration = Registration { gate: self, name: name.into() };
        let permit = turn.acquire().await;
        Turn { _permit: permit, _registration: registration }
    }

    /// Names with a step holding or waiting for their turn.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn one_turn_per_name_in_arrival_order_and_no_leftovers() {
        let gate = NameGate::default();
        let mut first = pin!(gate.turn("alice"));
        let Poll::Ready(held) = poll(first.as_mut()) else { panic!("a free name is granted at once") };
        let mut other = pin!(gate.turn("bob"));
        assert!(poll(other.as_mut()).is_ready(), "another name does not wait");
        let mut second = pin!(gate.turn("alice"));
        let mut third = pin!(gate.turn("alice"));
        assert!(poll(second.as_mut()).is_pending());
        assert!(poll(third.as_mut()).is_pending());
        drop(held);
        assert!(poll(third.as_mut()).is_pending(), "first come, first served");
        let Poll::Ready(second_turn) = poll(second.as_mut()) else { panic!("the next in line goes") };
        drop(second_turn);
        let Poll::Ready(third_turn) = poll(third.as_mut()) else { panic!("then the last") };
        drop(third_turn);
        assert_eq!(gate.len(), 0, "no slot outlives its steps");
    }

    #[test]
    fn a_cancelled_waiter_leaves_no_slot_and_passes_the_turn_on() {
        let gate = NameGate::default();
        let mut first = pin!(gate.turn("carol"));
        let Poll::Ready(held) = poll(first.as_mut()) else { panic!("granted") };
        {
            let mut waiting = Box::pin(gate.turn("carol"));
            assert!(poll(waiting.as_mut()).is_pending());
        } // cancelled while queued
        let mut later = pin!(gate.turn("carol"));
        assert!(poll(later.as_mut()).is_pending());
        drop(held);
        let Poll::Ready(turn) = poll(later.as_mut()) else { panic!("the turn reached the live waiter") };
        drop(turn);
        assert_eq!(gate.len(), 0);
    }
}
