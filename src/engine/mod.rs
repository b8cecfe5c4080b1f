//! The async engine: a thin driver that reads the record, asks the pure core what to
//! do, writes by compare-and-swap (the mail the change causes queued in the same
//! write), then records events. Mail goes out from the delivery worker
//! ([`delivery`]).

mod admission;
mod delivery;
mod factor;
mod keys;
mod login;
mod lookup;
mod manage;
mod name_gate;
mod recent;
mod self_service;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::UserId;
use crate::account::{Account, Versioned};
use crate::crypto::keys::KeyRing;
use crate::document;
use crate::error::{Error, InternalError, Result};
use crate::events::{Event, EventKind, EventSink, NoopSink};
use crate::factors::password;
use crate::mail::Mailer;
use crate::plumbing::clock::{Clock, SystemClock};
use crate::plumbing::offload::Offload;
use crate::plumbing::semaphore::{Lane, Semaphore};
use crate::policy::Policy;
use crate::rules::{Effects, Transition};
use crate::store::{Swap, UserRecord, UserStore};

pub use keys::{KeyUsage, ResealProgress, ResealReport};
pub use login::{PasswordAttempt, PasswordCheck, SecondFactor};
pub use manage::{EnrollmentStarted, NewAccount};

/// How many times one call re-reads and re-applies after losing a compare-and-swap.
const MAX_SWAP_ATTEMPTS: usize = 256;

/// The two-factor login engine over a store, a mailer and a clock.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use twofactor::{Engine, KeyRing, LoginOutcome, NewAccount, Policy, Role};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
/// let policy = Policy::builder().danger_fast_hashing().build()?; // tests only
/// let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()?)
///     .policy(policy)
///     .build()?;
/// engine.create_account(NewAccount::new("alice", "alice@example.test", Role::User, "correct horse battery")).await?;
/// let outcome = engine.begin_login("alice", "correct horse battery", None).await?;
/// assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine<S, M, C = SystemClock> {
    store: S,
    mailer: M,
    clock: C,
    keys: KeyRing,
    policy: Policy,
    events: Arc<dyn EventSink>,
    offload: Arc<dyn Offload>,
    hash_limit: Semaphore,
    admission: admission::Admission,
    name_gate: name_gate::NameGate,
    /// The records pending logins were issued on, for their second steps (see `recent`).
    recent: recent::RecentRecords,
    dummy_hash: String,
    /// Wakes the [`DeliveryWorker`](crate::DeliveryWorker) when a write queued mail.
    #[cfg(feature = "tokio")]
    mail_queued: Arc<tokio::sync::Notify>,
}

impl<S, M, C> fmt::Debug for Engine<S, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Configures an [`Engine`].
pub struct EngineBuilder<S, M, C> {
    store: S,
    mailer: M,
    clock: C,
    keys: KeyRing,
    policy: Policy,
    events: Arc<dyn EventSink>,
    /// `None`: a [`HashThreads`](crate::plumbing::offload::HashThreads) pool made at `build`.
    offload: Option<Arc<dyn Offload>>,
    max_concurrent_hashes: usize,
    max_queued_logins: Option<usize>,
}

impl<S, M, C> fmt::Debug for EngineBuilder<S, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl<S: UserStore, M: Mailer> Engine<S, M, SystemClock> {
    /// Starts configuring an engine with the default [`Policy`], the system clock, no
    /// event sink and at most [`default_max_concurrent_hashes`] hashes at once. Hashing
    /// runs on threads of the engine's own, one per hashing slot
    /// ([`HashThreads`](crate::plumbing::offload::HashThreads)), whatever the async runtime; see
    /// [`crate::plumbing::offload`].
    pub fn builder(store: S, mailer: M, keys: KeyRing) -> EngineBuilder<S, M, SystemClock> {
        EngineBuilder {
            store,
            mailer,
            clock: SystemClock,
            keys,
            policy: Policy::default(),
            events: Arc::new(NoopSink),
            offload: None,
            max_concurrent_hashes: default_max_concurrent_hashes(),
            max_queued_logins: None,
        }
    }
}

/// Whether a hash that took `elapsed` at `params` looks like Argon2 compiled without
/// optimizations: a debug build of this crate (where an application forgot to optimize
/// its dependencies), real parameters (at least 1 MiB × pass, so fixed costs do not
/// dominate), and over 2 µs per KiB and pass. Optimized Argon2 takes about 0.3–0.5 µs
/// there, unoptimized 15–30 µs, so the line sits far from both.
fn looks_unoptimized(elapsed: std::time::Duration, params: &crate::policy::HashParams) -> bool {
    let work = u128::from(params.m_cost) * u128::from(params.t_cost);
    cfg!(debug_assertions) && work >= 1024 && elapsed.as_nanos() > work * 2000
}

/// The default number of password steps that may wait for a hash, per hashing slot
/// (see [`EngineBuilder::max_queued_logins`]).
pub const QUEUED_LOGINS_PER_HASH: usize = 32;

/// The default bound on concurrent hashes: the number of CPUs the process may use
/// (`std::thread::available_parallelism`), or 1 when that is unknown.
pub fn default_max_concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl<S: UserStore, M: Mailer, C: Clock> EngineBuilder<S, M, C> {
    /// Uses another clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> EngineBuilder<S, M, C2> {
        EngineBuilder {
            store: self.store,
            mailer: self.mailer,
            clock,
            keys: self.keys,
            policy: self.policy,
            events: self.events,
            offload: self.offload,
            max_concurrent_hashes: self.max_concurrent_hashes,
            max_queued_logins: self.max_queued_logins,
        }
    }

    /// Uses another policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sends audit events to `sink`.
    pub fn events(mut self, sink: impl EventSink + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// Runs hashing through `offload` (see [`crate::plumbing::offload`]).
    pub fn offload(mut self, offload: impl Offload) -> Self {
        self.offload = Some(Arc::new(offload));
        self
    }

    /// Runs at most `n` Argon2 hashes at once (at least 1), whatever the offload: the
    /// others wait, in arrival order, without holding a thread. Hashing memory then
    /// stays at or below `n` × the largest `m_cost` in use (19 MiB at the OWASP
    /// defaults). Default: [`default_max_concurrent_hashes`].
    pub fn max_concurrent_hashes(mut self, n: usize) -> Self {
        self.max_concurrent_hashes = n.max(1);
        self
    }

    /// Lets at most `n` password steps wait for a hash beyond the ones hashing; a
    /// further step is answered [`LoginOutcome::Busy`](crate::LoginOutcome::Busy) at
    /// once, without reading the store (see that variant). Callers presenting a valid
    /// remembered-location token are never shed and are hashed first. Default:
    /// [`QUEUED_LOGINS_PER_HASH`] × `max_concurrent_hashes`, about half a second of
    /// waiting at the OWASP parameters.
    pub fn max_queued_logins(mut self, n: usize) -> Self {
        self.max_queued_logins = Some(n);
        self
    }
}

impl<S: UserStore, M: Mailer, C: Clock> EngineBuilder<S, M, C> {
    /// Builds the engine. This hashes one random password with the policy's
    /// parameters, so that logins for unknown users cost the same as wrong passwords.
    ///
    /// # Errors
    /// [`Error::Random`]; [`Error::InvalidInput`] for Argon2 parameters out of bounds
    /// (field `password_hash`); [`Error::Internal`] ([`InternalError::HashThreads`])
    /// when the default hashing threads cannot be started.
    pub fn build(self) -> Result<Engine<S, M, C>> {
        let offload: Arc<dyn Offload> = match self.offload {
            Some(offload) => offload,
            None => Arc::new(
                crate::plumbing::offload::HashThreads::new(self.max_concurrent_hashes)
                    .map_err(|_| InternalError::HashThreads)?,
            ),
        };
        let dummy_secret = crate::crypto::random::bytes::<16>()?;
        let started = std::time::Instant::now();
        let dummy_hash = password::hash(&dummy_secret, &self.policy.password.hash)?;
        let took = started.elapsed();
        if looks_unoptimized(took, &self.policy.password.hash) {
            let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            let kind = EventKind::HashingUnoptimized { millis };
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "twofactor",
                millis,
                "Argon2 looks unoptimized (a debug build?): every login will be slow; \
                 add `[profile.dev.package.argon2] opt-level = 3` to your Cargo.toml"
            );
            self.events.record(&Event { at: self.clock.now(), account: None, kind });
        }
        Ok(Engine {
            store: self.store,
            mailer: self.mailer,
            clock: self.clock,
            keys: self.keys,
            policy: self.policy,
            events: self.events,
            offload,
            hash_limit: Semaphore::new(self.max_concurrent_hashes),
            admission: admission::Admission::new(
                self.max_concurrent_hashes
                    + self.max_queued_logins.unwrap_or(QUEUED_LOGINS_PER_HASH * self.max_concurrent_hashes),
            ),
            name_gate: name_gate::NameGate::default(),
            recent: recent::RecentRecords::default(),
            dummy_hash,
            #[cfg(feature = "tokio")]
            mail_queued: Arc::new(tokio::sync::Notify::new()),
        })
    }
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The mailer.
    pub fn mailer(&self) -> &M {
        &self.mailer
    }

    /// Runs Argon2 (or other CPU-bound work) through the offload hook, under the
    /// concurrent-hash bound.
    ///
    /// The permit moves into the job and is released when the job has run, not when
    /// this future ends: if the caller drops the future while an offload such as
    /// `TokioOffload` still runs the job, the hash still counts against the bound.
    async fn run_hashing<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        self.run_hashing_in(Lane::Normal, f).await
    }

    /// [`run_hashing`](Self::run_hashing) in a lane of the hashing semaphore.
    async fn run_hashing_in<T: Send + 'static>(&self, lane: Lane, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = self.hash_limit.acquire_in(lane).await;
        let slot = Arc::new(Mutex::new(None));
        let out = Arc::clone(&slot);
        self.offload
            .run(Box::new(move || {
                let value = f();
                drop(permit);
                *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            }))
            .await;
        let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        value.ok_or(Error::Internal(InternalError::OffloadedJobLost))
    }

    async fn load(&self, id: UserId) -> Result<Versioned<Account>> {
        let user = self.store.find_by_id(id).await?.ok_or(Error::NoSuchAccount)?;
        self.account_of(user)
    }

    /// The account a user record describes (see [`document::decode`]).
    fn account_of(&self, user: UserRecord) -> Result<Versioned<Account>> {
        document::decode(user, self.clock.now(), crate::crypto::random::u64)
    }

    /// Writes `next` in place of the document at `expected` (0: insert the first one).
    async fn write(&self, expected: u64, next: &Account) -> Result<Swap> {
        let doc = document::encode(next)?;
        Ok(if expected == 0 {
            self.store.insert_document(next.id, &doc).await?
        } else {
            self.store.compare_and_swap(next.id, expected, &doc).await?
        })
    }

    /// Applies `f` to the freshest record until its write wins the compare-and-swap.
    /// `f` must be cheap and pure: it runs again after every lost race. The mail the
    /// transition causes is queued in the same write ([`crate::outbox`]).
    async fn transact<T>(
        &self,
        current: Versioned<Account>,
        f: impl FnMut(&Account) -> Result<Transition<T>>,
    ) -> Result<Transition<T>> {
        Ok(self.transact_settled(current, f).await?.0)
    }

    /// [`transact`](Self::transact), also returning the record as the store now holds
    /// it: the one written, or, when nothing was written, the one decided on.
    async fn transact_settled<T>(
        &self,
        mut current: Versioned<Account>,
        mut f: impl FnMut(&Account) -> Result<Transition<T>>,
    ) -> Result<(Transition<T>, Versioned<Account>)> {
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let mut transition = f(&current.record)?;
            match self.commit(&current, &mut transition).await? {
                None => return Ok((transition, current)),
                Some(Swap::Swapped { version }) => {
                    let record = transition.next.clone().unwrap_or(current.record);
                    return Ok((transition, Versioned { version, record }));
                }
                Some(Swap::Conflict) => current = self.load(current.record.id).await?,
            }
        }
        Err(Error::Contention)
    }

    /// One try at writing what `transition` decided over `current`, the mail it causes
    /// queued in the same write: `None` when it writes nothing.
    async fn commit<T>(&self, current: &Versioned<Account>, transition: &mut Transition<T>) -> Result<Option<Swap>> {
        if !transition.effects.mails.is_empty() {
            let next = transition.next.get_or_insert_with(|| current.record.clone());
            transition.effects.queued = self.enqueue(next, &transition.effects.mails)?;
        }
        match &transition.next {
            Some(next) => Ok(Some(self.write(current.version, next).await?)),
            None => Ok(None),
        }
    }

    /// After a committed write: records its events and, when it queued mail, wakes the
    /// delivery worker. Nothing here waits on mail.
    fn dispatch(&self, effects: &Effects) {
        for event in &effects.events {
            self.events.record(event);
        }
        #[cfg(feature = "tokio")]
        if !effects.queued.is_empty() {
            self.mail_queued.notify_one();
        }
    }

    /// Resolves when a write has queued mail since the last call (a wake-up that
    /// finds no waiter is kept for the next).
    #[cfg(feature = "tokio")]
    pub(crate) async fn mail_queued(&self) {
        self.mail_queued.notified().await;
    }

    /// Records an event about what the engine saw before any rule ran on a record:
    /// input refused unread, an unknown user, a shed password step, a token that does
    /// not open, an account created or forgotten, a role that may not act. Every event
    /// about a decision on a record comes from its rule, through [`Effects`].
    fn record(&self, account: Option<UserId>, kind: EventKind) {
        self.events.record(&Event { at: self.clock.now(), account, kind });
    }
}

#[cfg(test)]
mod unoptimized_tests {
    use std::time::Duration;

    use super::looks_unoptimized;
    use crate::policy::HashParams;

    #[test]
    fn only_a_slow_hash_at_real_parameters_looks_unoptimized() {
        let owasp = HashParams::OWASP; // 19 MiB, 2 passes
        assert!(!looks_unoptimized(Duration::from_millis(15), &owasp), "optimized speed");
        assert!(!looks_unoptimized(Duration::from_millis(60), &owasp), "a slow machine, optimized");
        assert!(looks_unoptimized(Duration::from_millis(800), &owasp), "unoptimized speed");
        let tiny = HashParams { m_cost: 8, t_cost: 1, p_cost: 1 };
        assert!(!looks_unoptimized(Duration::from_millis(5), &tiny), "fixed costs dominate tiny parameters");
    }

    #[test]
    fn the_line_is_two_microseconds_per_kib_and_pass_in_a_debug_build() {
        let params = HashParams::new(1024, 1, 1); // the least work the check looks at
        let line = Duration::from_nanos(1024 * 2000);
        assert!(!looks_unoptimized(line, &params), "on the line");
        assert_eq!(looks_unoptimized(line + Duration::from_nanos(1), &params), cfg!(debug_assertions), "past it");
    }
}

#[cfg(test)]
mod builder_tests {
    use super::*;
    use crate::mail::MemoryMailer;
    use crate::store::MemoryStore;

    type TestEngine = Engine<MemoryStore, MemoryMailer, SystemClock>;

    fn builder() -> EngineBuilder<MemoryStore, MemoryMailer, SystemClock> {
        let policy = Policy::builder().issuer("Builder Test Co").danger_fast_hashing().build().expect("policy");
        Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys")).policy(policy)
    }

    /// How many password steps the engine admits at once.
    fn admitted(engine: &TestEngine) -> usize {
        let tickets: Vec<_> = std::iter::from_fn(|| engine.admission.try_admit()).take(10_000).collect();
        tickets.len()
    }

    #[test]
    fn the_engine_keeps_the_policy_it_was_built_with() {
        let built = builder();
        let policy = built.policy.clone();
        let engine = built.build().expect("engine");
        assert_eq!(engine.policy(), &policy);
        assert_eq!(engine.policy().issuer(), "Builder Test Co");
    }

    #[test]
    fn debug_shows_the_policy_and_nothing_else() {
        let built = builder();
        let shown = format!("{built:?}");
        assert!(shown.starts_with("EngineBuilder { policy: Policy {"), "{shown}");
        assert!(shown.ends_with(", .. }"), "{shown}");
        let engine = built.build().expect("engine");
        let shown = format!("{engine:?}");
        assert!(shown.starts_with("Engine { policy: Policy {") && shown.contains("Builder Test Co"), "{shown}");
        assert!(shown.ends_with(", .. }"), "{shown}");
    }

    #[test]
    fn the_default_hashing_bound_is_the_cpus_the_process_may_use() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(default_max_concurrent_hashes(), cpus);
    }

    #[test]
    fn the_queue_holds_the_hashing_slots_and_32_steps_per_slot_unless_set() {
        let engine = builder().max_concurrent_hashes(3).build().expect("engine");
        assert_eq!(admitted(&engine), 3 + 3 * QUEUED_LOGINS_PER_HASH);
        let engine = builder().max_concurrent_hashes(3).max_queued_logins(5).build().expect("engine");
        assert_eq!(admitted(&engine), 3 + 5);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn the_delivery_worker_is_woken_only_by_a_write_that_queued_mail() {
        use crate::mail::MessageKind;
        use crate::outbox::MailId;
        use std::time::Duration;

        let engine = builder().build().expect("engine");
        let wait = Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, engine.mail_queued()).await.is_err(), "nothing queued yet");
        engine.dispatch(&Effects::default());
        assert!(tokio::time::timeout(wait, engine.mail_queued()).await.is_err(), "a write without mail");
        let queued =
            Effects { queued: vec![(MailId::random().expect("id"), MessageKind::Throttled)], ..Effects::default() };
        engine.dispatch(&queued);
        assert!(tokio::time::timeout(wait, engine.mail_queued()).await.is_ok(), "a write that queued mail");
    }
}

#[cfg(test)]
#[cfg(feature = "tokio")]
mod hash_limit_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;
    use crate::mail::MemoryMailer;
    use crate::plumbing::clock::ManualClock;
    use crate::plumbing::offload::TokioOffload;
    use crate::store::MemoryStore;

    fn engine(limit: usize, offload: impl Offload) -> Engine<MemoryStore, MemoryMailer, ManualClock> {
        Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .clock(ManualClock::default())
            .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
            .offload(offload)
            .max_concurrent_hashes(limit)
            .build()
            .expect("engine")
    }

    async fn peak_concurrency(engine: Arc<Engine<MemoryStore, MemoryMailer, ManualClock>>) -> usize {
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (engine, inside, peak) = (Arc::clone(&engine), Arc::clone(&inside), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                engine
                    .run_hashing(move || {
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("job ran");
        }
        peak.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_bound_holds_for_inline_hashing() {
        let peak = peak_concurrency(Arc::new(engine(1, crate::plumbing::offload::Inline))).await;
        assert_eq!(peak, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bound_holds_on_the_blocking_pool() {
        let engine = Arc::new(engine(2, TokioOffload::new()));
        let peak = peak_concurrency(Arc::clone(&engine)).await;
        assert!((1..=2).contains(&peak), "peak {peak}");
        assert_eq!(engine.hash_limit.available(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_keeps_the_permit_until_the_job_ends() {
        let engine = Arc::new(engine(1, TokioOffload::new()));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let first = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                engine
                    .run_hashing(move || {
                        started_tx.send(()).expect("started");
                        release_rx.recv().expect("release");
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv()).await.expect("join").expect("job started");
        first.abort(); // the caller goes away while its job runs on the blocking pool
        assert!(first.await.expect_err("aborted").is_cancelled());
        assert_eq!(engine.hash_limit.available(), 0, "the running job still holds the permit");
        let second = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move { engine.run_hashing(|| 7).await })
        };
        release_tx.send(()).expect("release");
        assert_eq!(second.await.expect("join").expect("ran"), 7);
        assert_eq!(engine.hash_limit.available(), 1, "no permit leaked");
    }

    #[test]
    fn tokio_offload_outside_a_runtime_runs_inline() {
        let engine = engine(1, TokioOffload::new());
        let out = futures_block_on(engine.run_hashing(|| 42));
        assert_eq!(out.expect("ran"), 42);
    }

    fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
        // A current-thread runtime without entering it for `run`: poll once by hand.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("an inline job completes on the first poll"),
        }
    }
}
