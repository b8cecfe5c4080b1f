//! A small runtime-agnostic async semaphore (std `Mutex` + a FIFO of wakers), used to
//! bound how many Argon2 hashes run at once whatever the [`Offload`](crate::offload::Offload).
//!
//! Permits are handed over directly to the oldest waiter on release (FIFO, so no
//! waiter starves). It is cancellation-safe: a waiter dropped while queued leaves the
//! queue, and a waiter dropped after a permit was handed to it but before it saw it
//! passes that permit on, so no permit leaks and no wakeup is lost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A counting semaphore. Clones share the same permits.
#[derive(Debug, Clone)]
pub(crate) struct Semaphore {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// Free permits. Invariant: when `available > 0`, every queued waiter has been granted.
    available: usize,
    /// Waiters in arrival order; ids increase from front to back. The first `granted`
    /// entries hold a permit handed over to them but not yet collected.
    queue: VecDeque<Entry>,
    granted: usize,
    next_id: u64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    waker: Waker,
}

impl State {
    fn position(&self, id: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&id, |e| e.id).ok()
    }

    /// Returns one permit: hands it to the oldest waiter not yet granted (whose waker
    /// is returned, to be woken outside the lock), or adds it to the free count.
    fn release(&mut self) -> Option<Waker> {
        match self.queue.get(self.granted) {
            Some(entry) => {
                let waker = entry.waker.clone();
                self.granted += 1;
                Some(waker)
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
        let state = State { available: permits.max(1), queue: VecDeque::new(), granted: 0, next_id: 0 };
        Semaphore { inner: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a permit. The permit is returned when the [`Permit`] is dropped.
    pub(crate) fn acquire(&self) -> Acquire {
        Acquire { semaphore: self.clone(), id: None }
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

/// The future returned by [`Semaphore::acquire`].
#[derive(Debug)]
pub(crate) struct Acquire {
    semaphore: Semaphore,
    /// Our queue id while we wait (`None` before queueing and after collecting).
    id: Option<u64>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        let mut state = this.semaphore.lock();
        match this.id {
            None => {
                if state.available > 0 {
                    state.available -= 1;
                } else {
                    let id = state.next_id;
                    state.next_id += 1;
                    state.queue.push_back(Entry { id, waker: cx.waker().clone() });
                    this.id = Some(id);
                    return Poll::Pending;
                }
            }
            Some(id) => match state.position(id) {
                Some(pos) if pos < state.granted => {
                    state.queue.remove(pos);
                    state.granted -= 1;
                    this.id = None;
                }
                Some(pos) => {
                    if let Some(entry) = state.queue.get_mut(pos)
                        && !entry.waker.will_wake(cx.waker())
                    {
                        entry.waker = cx.waker().clone();
                    }
                    return Poll::Pending;
                }
                // Unreachable by construction (entries leave only here or on drop);
                // waiting again is the safe answer.
                None => {
                    this.id = None;
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
        let Some(id) = self.id.take() else { return };
        let mut state = self.semaphore.lock();
        let Some(pos) = state.position(id) else { return };
        state.queue.remove(pos);
        if pos < state.granted {
            // A permit was handed to us but never collected: pass it on.
            state.granted -= 1;
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
}
