//! Counting hash work: an [`Offload`] that counts every job it runs (each job is one
//! Argon2 verify or hash), optionally holding finished jobs at a barrier so concurrent
//! logins all evaluate against the same snapshot before any of them writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use twofactor::events::MemorySink;
use twofactor::mail::MemoryMailer;
use twofactor::offload::{Job, JobFuture, Offload};
use twofactor::store::MemoryStore;
use twofactor::{Engine, KeyRing, ManualClock, Policy, Timestamp};

use super::{Fixture, T0};

/// Runs jobs inline and counts them.
#[derive(Clone, Default)]
pub struct CountingOffload {
    jobs: Arc<AtomicUsize>,
    gate: Arc<OnceLock<Arc<tokio::sync::Barrier>>>,
}

impl CountingOffload {
    /// Counts jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, each finished job waits until `n` jobs have finished.
    pub fn arm_gate(&self, n: usize) {
        assert!(self.gate.set(Arc::new(tokio::sync::Barrier::new(n))).is_ok(), "gate armed twice");
    }

    /// Jobs run so far.
    pub fn jobs(&self) -> usize {
        self.jobs.load(Ordering::SeqCst)
    }
}

impl Offload for CountingOffload {
    fn run(&self, job: Job) -> JobFuture {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        job();
        let gate = self.gate.get().cloned();
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.wait().await;
            }
        })
    }
}

/// A fixture whose engine hashes through `offload`.
pub fn fixture_counting(policy: Policy, offload: CountingOffload) -> Fixture {
    fixture_on(MemoryStore::new(), KeyRing::ephemeral().expect("keys"), policy, offload)
}

/// A fixture over an existing store with the given keys (a second app server, or the
/// same one restarted with a rotated key ring).
pub fn fixture_on(store: MemoryStore, keys: KeyRing, policy: Policy, offload: CountingOffload) -> Fixture {
    let mailer = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(T0));
    let events = MemorySink::new();
    let engine = Engine::builder(store.clone(), mailer.clone(), keys)
        .clock(clock.clone())
        .policy(policy)
        .events(events.clone())
        .offload(offload)
        .build()
        .expect("engine");
    Fixture { engine, store, mailer, clock, events }
}
