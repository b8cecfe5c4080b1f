//! Available under attack (issue 17): when more password steps wait for a hash than
//! the engine allows, the rest are answered `Busy` at once, before anything is read;
//! a caller with a valid remembered-location token is never shed and is hashed ahead
//! of everyone waiting.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::*;
use twofactor::events::{EventKind, MemorySink};
use twofactor::mail::MemoryMailer;
use twofactor::offload::{Job, JobFuture, Offload};
use twofactor::store::MemoryStore;
use twofactor::{Engine, KeyRing, LoginOutcome, ManualClock, SecondFactor, SecondFactorOutcome};

/// Holds every job until the test releases it, so hashes stay "running" (holding their
/// permit and their ticket) for as long as the test wants.
#[derive(Clone, Default)]
struct HeldOffload {
    jobs: Arc<Mutex<VecDeque<HeldJob>>>,
}

/// A job and the signal that it has run.
type HeldJob = (Job, tokio::sync::oneshot::Sender<()>);

impl Offload for HeldOffload {
    fn run(&self, job: Job) -> JobFuture {
        let (done, finished) = tokio::sync::oneshot::channel();
        self.jobs.lock().unwrap().push_back((job, done));
        Box::pin(async move {
            let _ = finished.await;
        })
    }
}

impl HeldOffload {
    fn held(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// Runs the oldest held job.
    fn release_one(&self) {
        let (job, done) = self.jobs.lock().unwrap().pop_front().expect("a held job");
        job();
        let _ = done.send(());
    }
}

/// Lets spawned tasks run (current-thread runtime) until `ready` holds.
async fn until(mut ready: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

/// The answer, which must come without waiting for a hash (a guard against a hang,
/// not a timing assertion).
async fn at_once(login: impl std::future::Future<Output = twofactor::Result<LoginOutcome>>) -> LoginOutcome {
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), login).await;
    out.expect("the answer waited for a hash").unwrap()
}

struct Setup {
    store: MemoryStore,
    keys: KeyRing,
    clock: ManualClock,
    /// alice's remembered-location token.
    token: String,
}

/// alice with 2FA and a remembered location, made on an engine that hashes inline.
async fn setup() -> Setup {
    let keys = KeyRing::ephemeral().unwrap();
    let f = common::hashwork::fixture_on(
        MemoryStore::new(),
        keys.clone(),
        fast_policy().build().unwrap(),
        common::hashwork::CountingOffload::new(),
    );
    let (_, secret) = f.enrolled("alice").await;
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), Some("laptop")).await.unwrap();
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let token = auth.remembered.expect("a remembered location").token().to_owned();
    Setup { store: f.store.clone(), keys, clock: f.clock.clone(), token }
}

fn engine(
    s: &Setup,
    offload: impl Offload,
    queued: usize,
) -> (Arc<Engine<MemoryStore, MemoryMailer, ManualClock>>, MemorySink) {
    let events = MemorySink::new();
    let engine = Engine::builder(s.store.clone(), MemoryMailer::new(), s.keys.clone())
        .clock(s.clock.clone())
        .policy(fast_policy().build().unwrap())
        .events(events.clone())
        .offload(offload)
        .max_concurrent_hashes(1)
        .max_queued_logins(queued)
        .build()
        .unwrap();
    (Arc::new(engine), events)
}

fn login(
    engine: &Arc<Engine<MemoryStore, MemoryMailer, ManualClock>>,
    name: &'static str,
    password: &'static str,
    token: Option<String>,
) -> tokio::task::JoinHandle<LoginOutcome> {
    let engine = Arc::clone(engine);
    tokio::spawn(async move { engine.begin_login(name, password, token.as_deref()).await.unwrap() })
}

#[tokio::test]
async fn past_the_queue_bound_logins_are_busy_at_once_whoever_they_name() {
    let s = setup().await;
    let offload = HeldOffload::default();
    let (engine, events) = engine(&s, offload.clone(), 1);
    // One hashing (held) and one waiting: the bound of 1 + 1 is reached.
    let hashing = login(&engine, "mallory", "guess one", None);
    until(|| offload.held() == 1).await;
    let waiting = login(&engine, "trudy", "guess two", None);
    for _ in 0..20 {
        tokio::task::yield_now().await; // trudy takes the last ticket and waits for the permit
    }
    assert!(!waiting.is_finished());

    // Anyone else without a remembered location is answered at once, known or not.
    for (name, password) in [("eve", "guess three"), ("alice", PASSWORD), ("alice", "wrong")] {
        let out = at_once(engine.begin_login(name, password, None)).await;
        assert!(matches!(out, LoginOutcome::Busy { .. }), "{name}: {out:?}");
    }
    let out = at_once(engine.begin_login("alice", PASSWORD, Some("loc2.not-a-valid-token"))).await;
    assert!(matches!(out, LoginOutcome::Busy { .. }), "an invalid token is no priority: {out:?}");
    let shed = events.events().iter().filter(|e| matches!(e.kind, EventKind::LoginShed)).count();
    assert_eq!(shed, 4);
    assert!(events.events().iter().all(|e| e.account.is_none()), "shedding names no account");
    assert_eq!(offload.held(), 1, "nothing shed was hashed");

    // alice with her remembered location is never shed.
    let alice = login(&engine, "alice", PASSWORD, Some(s.token.clone()));
    for _ in 0..3 {
        until(|| offload.held() == 1).await;
        offload.release_one();
    }
    assert!(matches!(alice.await.unwrap(), LoginOutcome::Authenticated(_)));
    assert!(matches!(hashing.await.unwrap(), LoginOutcome::Denied));
    assert!(matches!(waiting.await.unwrap(), LoginOutcome::Denied));
}

#[tokio::test]
async fn a_remembered_location_is_hashed_ahead_of_everyone_waiting() {
    let s = setup().await;
    let offload = HeldOffload::default();
    let (engine, _) = engine(&s, offload.clone(), 8);
    let first = login(&engine, "bob", "guess", None);
    until(|| offload.held() == 1).await;
    let queued = [login(&engine, "carol", "guess", None), login(&engine, "dave", "guess", None)];
    for _ in 0..20 {
        tokio::task::yield_now().await; // carol and dave queue for the one permit
    }
    let alice = login(&engine, "alice", PASSWORD, Some(s.token.clone()));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(offload.held(), 1, "one permit: only bob's hash runs");

    offload.release_one(); // bob's hash: the permit goes to alice, who came last
    until(|| offload.held() == 1).await;
    offload.release_one();
    until(|| alice.is_finished()).await;
    assert!(queued.iter().all(|q| !q.is_finished()), "alice went ahead of carol and dave");
    assert!(matches!(alice.await.unwrap(), LoginOutcome::Authenticated(_)));
    until(|| first.is_finished()).await;
    for task in queued {
        until(|| offload.held() == 1 || task.is_finished()).await;
        if !task.is_finished() {
            offload.release_one();
        }
        assert!(matches!(task.await.unwrap(), LoginOutcome::Denied));
    }
}
