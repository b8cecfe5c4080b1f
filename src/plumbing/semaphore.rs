//! A small runtime-agnostic async semaphore with two lanes (std `Mutex` + an ordered
//! map of wakers), used to bound how many Argon2 hashes run at once whatever the
//! [`Offload`](crate::plumbing::offload::Offload).
//!
//! Permits are handed over directly to the oldest waiter on release, priority lane
//! first: a [`Lane::Priority`] waiter (a login presenting a valid remembered-location
//! token) goes ahead of every [`Lane::Normal`] waiter, and within a lane the order is
//! first come, first served, so no waiter of a lane starves behind a later one. It is
//! cancellation-safe: a waiter dropped while queued leaves the queue, and a waiter
//! dropped after a permit was handed to it but before it saw it passes that permit
//! on, so no permit leaks and no wakeup is lost.
//!
//! # Why not a maintained crate
//!
//! Hand-written because of one property: a [`Lane::Priority`] waiter is served before
//! *every* queued [`Lane::Normal`] waiter. That is what keeps a user with a valid
//! remembered-location token logging in under a flood (issue 17): the availability part
//! of `benches/flood.rs` (BENCHMARKS.md §6, goal: the remembered user's p99 ≤ 3 × its
//! idle median; 2.82 × with this module, 27–29 × with a first-come-first-served queue),
//! pinned by `tests/availability.rs`
//! (`a_remembered_location_is_hashed_ahead_of_everyone_waiting`) and by
//! `the_priority_lane_goes_first_and_each_lane_keeps_its_order` below.
//!
//! - `tokio::sync::Semaphore` is fair: one FIFO queue, so nothing can overtake a waiter
//!   already queued. The smallest two-lane construction on it was tried (2026-11-30):
//!   a normal waiter first takes the single permit of a second tokio semaphore, so at
//!   most one normal waiter sits in the hashing queue, and a priority waiter joins that
//!   queue directly. That one normal waiter is still served first: with it,
//!   `tests/availability.rs` fails (the queued normal step is hashed before the
//!   remembered user), and a priority waiter waits for the second permit released
//!   instead of the first (with the default bound of 2, about 2/3 of a hash instead of
//!   1/3 on average). The flood bench shows it (`TWOFACTOR_FLOOD_SECONDS=20 cargo bench
//!   --features tokio --bench flood`, the two builds run alternately, load average
//!   3.0–5.2 on 2 cores): this module p99 2.90 × and 2.98 × the idle median (goal met),
//!   p50 20.5 and 20.9 ms; the tokio construction p99 3.09 × and 3.43 × (goal missed),
//!   p50 28.6 and 27.9 ms. An exact construction (a normal waiter that gets a permit
//!   while a priority waiter is counted hands it back and queues again) races between
//!   counting and queueing and must spin; it is no smaller than this module.
//! - `async-lock`'s `Semaphore` has no lanes and is not even FIFO: `acquire` loops on `try_acquire`, so a newcomer can take a released
//!   permit before the waiter it woke (smol-rs/async-lock#23, open). The per-name gate
//!   (`engine::name_gate`) relies on arrival order, so it could not use it either.
//! - The core is runtime-agnostic: tokio is an optional dependency and the default
//!   offload (`HashThreads`) needs no runtime. `tokio::sync` itself runs under any
//!   executor, but taking it would make tokio a required dependency, and a build
//!   without tokio would still need this module, since `async-lock` cannot stand in.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Which queue a waiter joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lane {
    /// Served before any normal waiter.
    Priority,
    /// Everyone else.
    Normal,
}

/// A counting semaphore. Clones share the same permits.
#[derive(Debug, Clone)]
pub(crate) struct Semaphore {
    inner: Arc<Mutex<State>>,
}

/// A waiter's place: its lane, then its arrival number.
type Place = (Lane, u64);

#[derive(Debug)]
struct State {
    /// Free permits. Invariant: when `available > 0`, every queued waiter has been granted.
    available: usize,
    /// Waiters in service order (priority lane first, then arrival).
    queue: BTreeMap<Place, Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    waker: Waker,
    /// A permit was handed to this waiter; it has not collected it yet.
    granted: bool,
}

impl State {
    /// Returns one permit: hands it to the first waiter not yet granted (whose waker
    /// is returned, to be woken outside the lock), or adds it to the free count.
    fn release(&mut self) -> Option<Waker> {
        match self.queue.values_mut().find(|w| !w.granted) {
            Some(waiter) => {
                waiter.granted = true;
                Some(waiter.waker.clone())
            }
            None => {
                self.available += 1;
                None
            }
        }
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits (at least one).
    pub(crate) fn new(permits: usize) -> Self {
        let state = State { available: permits.max(1), queue: BTreeMap::new(), next_id: 0 };
        Semaphore { inner: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a permit in the normal lane. The permit is returned when the
    /// [`Permit`] is dropped.
    pub(crate) fn acquire(&self) -> Acquire {
        self.acquire_in(Lane::Normal)
    }

    /// Waits for a permit in `lane`.
    pub(crate) fn acquire_in(&self, lane: Lane) -> Acquire {
        Acquire { semaphore: self.clone(), lane, place: None }
    }

    /// Free permits right now (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.lock().available
    }

    fn release(&self) {
        let waker = self.lock().release();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// An owned permit; dropping it releases the permit.
#[derive(Debug)]
pub(crate) struct Permit {
    semaphore: Semaphore,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

/// The future returned by [`Semaphore::acquire`] and [`Semaphore::acquire_in`].
#[derive(Debug)]
pub(crate) struct Acquire {
    semaphore: Semaphore,
    lane: Lane,
    /// Our place while we wait (`None` before queueing and after collecting).
    place: Option<Place>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        let mut state = this.semaphore.lock();
        match this.place {
            None => {
                if state.available > 0 {
                    // Free permits mean nobody waits (the invariant), so taking one
                    // directly jumps no queue.
                    state.available -= 1;
                } else {
                    let place = (this.lane, state.next_id);
                    state.next_id += 1;
                    state.queue.insert(place, Waiter { waker: cx.waker().clone(), granted: false });
                    this.place = Some(place);
                    return Poll::Pending;
                }
            }
            Some(place) => match state.queue.get_mut(&place) {
                Some(waiter) if waiter.granted => {
                    state.queue.remove(&place);
                    this.place = None;
                }
                Some(waiter) => {
                    if !waiter.waker.will_wake(cx.waker()) {
                        waiter.waker = cx.waker().clone();
                    }
                    return Poll::Pending;
                }
                // Unreachable by construction (entries leave only here or on drop);
                // waiting again is the safe answer.
                None => {
                    this.place = None;
                    drop(state);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            },
        }
        drop(state);
        Poll::Ready(Permit { semaphore: this.semaphore.clone() })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Some(place) = self.place.take() else { return };
        let mut state = self.semaphore.lock();
        let Some(waiter) = state.queue.remove(&place) else { return };
        if waiter.granted {
            // A permit was handed to us but never collected: pass it on.
            let waker = state.release();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(fut: &mut Acquire, waker: &Arc<CountingWaker>) -> Poll<Permit> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn grants_up_to_the_limit_then_waits() {
        let sem = Semaphore::new(2);
        let w = Arc::new(CountingWaker::default());
        let (mut a, mut b, mut c) = (sem.acquire(), sem.acquire(), sem.acquire());
        let pa = poll(&mut a, &w);
        let pb = poll(&mut b, &w);
        assert!(pa.is_ready() && pb.is_ready());
        assert!(poll(&mut c, &w).is_pending());
        assert_eq!(sem.available(), 0);
        drop(pa);
        assert_eq!(w.0.load(Ordering::SeqCst), 1, "the waiter is woken");
        let pc = poll(&mut c, &w);
        assert!(pc.is_ready());
        assert_eq!(sem.available(), 0, "the permit went to the waiter, not the pool");
        drop((pb, pc));
        assert_eq!(sem.available(), 2);
    }

    #[test]
    fn zero_permits_means_one() {
        let sem = Semaphore::new(0);
        let w = Arc::new(CountingWaker::default());
        assert!(poll(&mut sem.acquire(), &w).is_ready());
    }

    #[test]
    fn waiters_are_served_in_order() {
        let sem = Semaphore::new(1);
        let w1 = Arc::new(CountingWaker::default());
        let w2 = Arc::new(CountingWaker::default());
        let mut first = sem.acquire();
        let held = poll(&mut first, &w1);
        let (mut a, mut b) = (sem.acquire(), sem.acquire());
        assert!(poll(&mut a, &w1).is_pending());
        assert!(poll(&mut b, &w2).is_pending());
        drop(held);
        assert!(poll(&mut b, &w2).is_pending(), "b arrived later");
        let pa = poll(&mut a, &w1);
        assert!(pa.is_ready());
        drop(pa);
        assert_eq!(w2.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut b, &w2).is_ready());
    }

    #[test]
    fn dropping_a_queued_waiter_leaks_nothing() {
        let sem = Semaphore::new(1);
        let w = Arc::new(CountingWaker::default());
        let mut first = sem.acquire();
        let held = poll(&mut first, &w);
        let mut queued = sem.acquire();
        assert!(poll(&mut queued, &w).is_pending());
        drop(queued);
        drop(held);
        assert_eq!(sem.available(), 1);
    }

    #[test]
    fn a_granted_but_dropped_waiter_passes_the_permit_on() {
        let sem = Semaphore::new(1);
        let w1 = Arc::new(CountingWaker::default());
        let w2 = Arc::new(CountingWaker::default());
        let mut first = sem.acquire();
        let held = poll(&mut first, &w1);
        let (mut a, mut b) = (sem.acquire(), sem.acquire());
        assert!(poll(&mut a, &w1).is_pending());
        assert!(poll(&mut b, &w2).is_pending());
        drop(held); // the permit is handed to `a` ...
        drop(a); // ... which is cancelled before collecting it: `b` must get it.
        assert_eq!(w2.0.load(Ordering::SeqCst), 1, "no lost wakeup");
        let pb = poll(&mut b, &w2);
        assert!(pb.is_ready());
        drop(pb);
        assert_eq!(sem.available(), 1, "no leaked permit");
    }

    #[test]
    fn the_bound_holds_under_threads() {
        let sem = Semaphore::new(3);
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
                    for _ in 0..200 {
                        let permit = rt.block_on(sem.acquire());
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                });
            }
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak {peak}");
        assert_eq!(sem.available(), 3);
    }

    #[test]
    fn the_priority_lane_goes_first_and_each_lane_keeps_its_order() {
        let sem = Semaphore::new(1);
        let w = Arc::new(CountingWaker::default());
        let mut first = sem.acquire();
        let Poll::Ready(mut held) = poll(&mut first, &w) else { panic!("a free permit") };
        let mut waiters = vec![
            ("n1", sem.acquire()),
            ("p1", sem.acquire_in(Lane::Priority)),
            ("n2", sem.acquire()),
            ("p2", sem.acquire_in(Lane::Priority)),
        ];
        for (_, waiting) in &mut waiters {
            assert!(poll(waiting, &w).is_pending());
        }
        let mut order = Vec::new();
        while !waiters.is_empty() {
            drop(held);
            let mut served = None;
            for (i, (_, waiting)) in waiters.iter_mut().enumerate() {
                if let Poll::Ready(permit) = poll(waiting, &w) {
                    served = Some((i, permit));
                    break;
                }
            }
            let (i, permit) = served.expect("each release serves one waiter");
            order.push(waiters.remove(i).0);
            held = permit;
        }
        drop(held);
        assert_eq!(order, ["p1", "p2", "n1", "n2"]);
        assert_eq!(sem.available(), 1);
    }
}
