//! The reference model's concurrent mode: two engines (two app servers) over one store,
//! one clock, one outbox and one key ring, their operations split at every await point
//! and interleaved by a deterministic scheduler.
//!
//! Each engine reaches the store and the mailer through a wrapper that pauses before
//! every call (`Gate`). The two engines' scripts are plain futures polled by hand with
//! a no-op waker (hashing runs inline), so a poll runs one engine from one store or
//! mail call to just before its next: a *step*. Which engine takes the next step is
//! the schedule's choice (a list of booleans drawn by proptest, or every possible list
//! in the exhaustive tests). Every store call is therefore an interleaving point: the
//! other engine can act between any read and the compare-and-swap that follows it.
//!
//! Checked after every step, against the stored document, the audit events and the
//! outbox:
//! - nothing is undone: an authenticator, a backup-code hash or a security stamp that
//!   left the document never comes back, an authenticator's newest used step and the
//!   retired step never go down, a consumed pending login stays consumed while it
//!   lives;
//! - the failure budget: no failure is counted on a record that was throttled or
//!   locked at the time, no factor is accepted then (no `login.succeeded`,
//!   `second_factor.verified` or `backup_code.used` from a step that began on a blocked
//!   record), failures grow by at most one per write, the second-factor count never
//!   passes the lock threshold and no pending login passes its attempts;
//! - the outbox: each message is sent at most once per claim that took it.
//!
//! And by the scripts, on every outcome:
//! - each backup code, each TOTP step of each authenticator (its confirming step
//!   included) and each pending login is accepted at most once;
//! - a reset (or turning 2FA off) is never undone: a backup code, an authenticator or a
//!   pending login known before it began never works in an operation that starts
//!   after it returned;
//! - a wrong factor is never accepted.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{PASSWORD, T0, email, fast_policy};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::Value;
use twofactor::events::MemorySink;
use twofactor::mail::{Mailer, MemoryMailer, Message};
use twofactor::offload::Inline;
use twofactor::store::{Document, MemoryStore, ScanPage, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, Engine, Error, KeyRing, LoginOutcome, MailError, MailId, ManualClock, NewAccount, Policy,
    Refusal, ResetOutcome, Role, SecondFactor, SecondFactorOutcome, StoreError, ThrottlePolicy, Timestamp, UserId,
};

// ---------------------------------------------------------------------------------
// The policy: a small budget, so that throttling and the lock happen within a run.

/// Failures before throttling starts.
const FREE_FAILURES: u32 = 2;
/// Second-factor failures that lock the second factor.
const DISABLE_AFTER: u32 = 3;
/// Wrong codes one pending login allows.
const MAX_CODE_ATTEMPTS: u32 = 3;
/// What the `Advance` operation moves the clock by: one TOTP step, one throttle delay.
const TICK: Duration = Duration::from_secs(30);

fn policy() -> Policy {
    fast_policy()
        .max_code_attempts(MAX_CODE_ATTEMPTS)
        .throttle(
            ThrottlePolicy::default()
                .free_failures(FREE_FAILURES)
                .base_delay(TICK)
                .max_delay(2 * TICK)
                .disable_after(DISABLE_AFTER),
        )
        .build()
        .expect("policy")
}

// ---------------------------------------------------------------------------------
// The gate: a pause before every store and mail call.

/// Where one engine is paused: the call it is about to make, if it is paused.
#[derive(Debug, Default)]
struct Gate {
    waiting: Mutex<Option<&'static str>>,
}

impl Gate {
    fn pause(&self, call: &'static str) -> Pause<'_> {
        Pause { gate: self, call, paused: false }
    }

    fn take(&self) -> Option<&'static str> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn is_waiting(&self) -> bool {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }
}

/// Pending once (recording the call it stands before), ready when polled again.
struct Pause<'a> {
    gate: &'a Gate,
    call: &'static str,
    paused: bool,
}

impl Future for Pause<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.paused {
            return Poll::Ready(());
        }
        self.paused = true;
        *self.gate.waiting.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.call);
        Poll::Pending
    }
}

/// The shared [`MemoryStore`] as one engine sees it: every call waits at the gate.
#[derive(Debug, Clone)]
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<Gate>,
    /// Compare-and-swaps that lost (both engines count into one).
    conflicts: Arc<AtomicUsize>,
    /// A broken store for the tests that check the checks: its compare-and-swap
    /// writes whatever version is stored (a lost update).
    blind: bool,
}

impl UserStore for GatedStore {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.gate.pause("find_by_id").await;
        self.inner.find_by_id(id).await
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.gate.pause("find_by_login").await;
        self.inner.find_by_login(login).await
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.gate.pause("insert_document").await;
        self.inner.insert_document(id, document).await
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        self.gate.pause("compare_and_swap").await;
        let stored = || async { Ok::<_, StoreError>(self.inner.find_by_id(id).await?.and_then(|u| u.credentials)) };
        let expected = if self.blind { stored().await?.map_or(expected, |c| c.version) } else { expected };
        let swap = self.inner.compare_and_swap(id, expected, document).await?;
        if swap == Swap::Conflict {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(swap)
    }

    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.gate.pause("scan").await;
        self.inner.scan(after, limit).await
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.gate.pause("mail_due").await;
        self.inner.mail_due(now, limit).await
    }

    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.gate.pause("forget").await;
        self.inner.forget(id, expected).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.gate.pause("create_user").await;
        self.inner.create_user(user).await
    }
}

/// The shared [`MemoryMailer`] as one engine sees it: every send waits at the gate.
#[derive(Debug, Clone)]
struct GatedMailer {
    inner: MemoryMailer,
    gate: Arc<Gate>,
}

impl Mailer for GatedMailer {
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        self.gate.pause("send").await;
        self.inner.send(id, message).await
    }
}

type GatedEngine = Engine<GatedStore, GatedMailer, ManualClock>;

/// The output of a future that completes on its first poll (the in-memory parts').
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory call did not complete at once"),
    }
}

// ---------------------------------------------------------------------------------
// Operations.

/// A second factor, chosen when the operation runs.
#[derive(Debug, Clone, Copy)]
enum Factor {
    /// The newest authenticator's code for the current step.
    TotpNow,
    /// Its code for the previous step (inside the window).
    TotpPrev,
    /// The current code of the authenticator before the newest (one a reset or turning
    /// 2FA off removed), if there was one.
    TotpDead,
    /// A well-formed code no known authenticator shows.
    WrongTotp,
    /// The backup code mailed last.
    Backup,
    /// An older mailed backup code (index modulo how many).
    OldBackup(u8),
    /// A well-formed backup code nobody was sent.
    WrongBackup,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// The password step, then the second step with the factor.
    Login(Factor),
    /// The second step on an earlier pending login of either engine (index modulo how
    /// many): used, ended by a reset, or still open.
    OldPending(u8, Factor),
    WrongPassword,
    StepUp(Factor),
    Disable(Factor),
    Reissue,
    /// An administrator resets alice's 2FA.
    Reset,
    /// Starts and confirms an enrollment with a code for the current step.
    Enroll,
    /// A delivery round.
    Deliver,
    /// An administrator unlocks alice.
    Unlock,
    /// The clock moves on by [`TICK`].
    Advance,
}

fn factor() -> impl Strategy<Value = Factor> {
    prop_oneof![
        4 => Just(Factor::TotpNow),
        2 => Just(Factor::TotpPrev),
        1 => Just(Factor::TotpDead),
        2 => Just(Factor::WrongTotp),
        5 => Just(Factor::Backup),
        2 => any::<u8>().prop_map(Factor::OldBackup),
        1 => Just(Factor::WrongBackup),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => factor().prop_map(Op::Login),
        3 => (any::<u8>(), factor()).prop_map(|(i, f)| Op::OldPending(i, f)),
        3 => Just(Op::WrongPassword),
        4 => factor().prop_map(Op::StepUp),
        2 => factor().prop_map(Op::Disable),
        2 => Just(Op::Reissue),
        2 => Just(Op::Reset),
        3 => Just(Op::Enroll),
        6 => Just(Op::Deliver),
        1 => Just(Op::Unlock),
        3 => Just(Op::Advance),
    ]
}

// ---------------------------------------------------------------------------------
// What the scripts know and have seen.

/// Something a script learned (a secret, a mailed code, a pending login) and the step
/// at which it learned it.
#[derive(Debug, Clone)]
struct Known<T> {
    value: T,
    born: u64,
}

/// A reset or turning 2FA off: the step its call began and the step it returned.
#[derive(Debug, Clone, Copy)]
struct Wipe {
    what: &'static str,
    start: u64,
    end: u64,
}

/// What accepting a factor uses up.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// Authenticator `secret` (index into `World::secrets`) at `step`.
    Totp { secret: usize, step: u64 },
    /// Mailed code `World::codes[i]`.
    Code(usize),
    /// A wrong factor: never accepted.
    Wrong,
}

struct Resolved {
    code: String,
    backup: bool,
    item: Item,
}

impl Resolved {
    fn factor(&self) -> SecondFactor<'_> {
        if self.backup { SecondFactor::BackupCode(&self.code) } else { SecondFactor::Totp(&self.code) }
    }
}

#[derive(Debug, Default)]
struct World {
    /// Confirmed authenticator secrets, oldest first.
    secrets: Vec<Known<Vec<u8>>>,
    /// Backup codes mailed to alice, in the order they were first seen.
    codes: Vec<Known<String>>,
    /// How much of the mailer's outbox has been read for codes.
    read_mail: usize,
    /// Pending logins either engine was issued.
    pendings: Vec<Known<String>>,
    wipes: Vec<Wipe>,
    accepted_steps: HashSet<(usize, u64)>,
    accepted_codes: HashMap<String, u32>,
    accepted_pendings: HashSet<String>,
    /// One line per operation, for failure messages.
    log: Vec<String>,
    backup_wins: u64,
    totp_wins: u64,
    blocked_steps: u64,
}

/// What the per-step checks remember across steps.
#[derive(Debug, Default)]
struct Checker {
    dead_authenticators: HashSet<String>,
    dead_hashes: HashSet<String>,
    dead_stamps: HashSet<u64>,
    /// Claims (tries) of each queued message, from the documents' outbox attempts.
    claims: HashMap<String, u32>,
    /// Sends of each message, from the mailer.
    sends: HashMap<String, u32>,
}

/// What the steps of one run did.
#[derive(Debug, Default)]
struct Trace {
    /// The scheduler's choices at the steps where both engines were still running.
    decisions: Vec<bool>,
    /// The call each step made (engine, call), `None` for a step before the first call.
    calls: Vec<(usize, Option<&'static str>)>,
}

impl Trace {
    /// How often the engine taking a step changed while both were running.
    fn switches(&self) -> usize {
        self.decisions.windows(2).filter(|w| w[0] != w[1]).count()
    }

    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.calls.hash(&mut h);
        h.finish()
    }
}

fn code_for(secret: &[u8], step: u64) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), step * 30).expose().to_owned()
}

const ALICE: &str = "alice";
const SUCCESSES: [&str; 3] = ["login.succeeded", "second_factor.verified", "backup_code.used"];

// ---------------------------------------------------------------------------------
// The harness: two engines on one store.

struct Harness {
    store: MemoryStore,
    mailer: MemoryMailer,
    clock: ManualClock,
    engines: [GatedEngine; 2],
    gates: [Arc<Gate>; 2],
    sinks: [MemorySink; 2],
    conflicts: Arc<AtomicUsize>,
    alice: UserId,
    bob: UserId,
    /// Steps taken so far (the step running now, while a script runs).
    steps: Cell<u64>,
    /// Whether the per-step checks run (not while setting up).
    checking: Cell<bool>,
    world: RefCell<World>,
    checker: RefCell<Checker>,
}

/// Runs `fut` on its own to the end, through every pause of `gate`.
fn alone<F: Future>(gate: &Gate, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..10_000 {
        gate.take();
        if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return v;
        }
        assert!(gate.is_waiting(), "pending outside a store or mail call");
    }
    panic!("did not finish in 10000 steps");
}

impl Harness {
    /// Two engines; alice (enrolled, her setup code delivered, the clock one step on)
    /// and bob, an administrator.
    fn new() -> Harness {
        Harness::with_store(false)
    }

    /// The same, over a store that loses updates when `blind` (see [`GatedStore`]).
    fn with_store(blind: bool) -> Harness {
        let store = MemoryStore::new();
        let mailer = MemoryMailer::new();
        let clock = ManualClock::new(Timestamp(T0));
        let keys = KeyRing::ephemeral().expect("keys");
        let conflicts = Arc::new(AtomicUsize::new(0));
        let gates = [Arc::new(Gate::default()), Arc::new(Gate::default())];
        let sinks = [MemorySink::new(), MemorySink::new()];
        let engines = [0, 1].map(|i| {
            let gate = Arc::clone(&gates[i]);
            let conflicts = Arc::clone(&conflicts);
            let gated = GatedStore { inner: store.clone(), gate: Arc::clone(&gate), conflicts, blind };
            Engine::builder(gated, GatedMailer { inner: mailer.clone(), gate }, keys.clone())
                .clock(clock.clone())
                .policy(policy())
                .events(sinks[i].clone())
                .offload(Inline)
                .max_concurrent_hashes(1)
                .build()
                .expect("engine")
        });
        let (e, gate) = (&engines[0], &gates[0]);
        let (alice_mail, bob_mail) = (email(ALICE), email("bob"));
        let alice = NewAccount::new(ALICE, &alice_mail, Role::User, PASSWORD);
        let alice = alone(gate, e.create_account(alice)).expect("alice");
        let bob = NewAccount::new("bob", &bob_mail, Role::Admin, PASSWORD);
        let bob = alone(gate, e.create_account(bob)).expect("bob");
        let started = alone(gate, e.start_enrollment(alice)).expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let step = T0 / 30;
        let confirmed = alone(gate, e.confirm_enrollment(alice, &code_for(&secret, step))).expect("confirm");
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
        alone(gate, e.deliver_due(10)).expect("deliver");
        clock.advance(TICK);
        let h = Harness {
            store,
            mailer,
            clock,
            engines,
            gates,
            sinks,
            conflicts,
            alice,
            bob,
            steps: Cell::new(0),
            checking: Cell::new(false),
            world: RefCell::default(),
            checker: RefCell::default(),
        };
        {
            let mut w = h.world.borrow_mut();
            w.secrets.push(Known { value: secret, born: 0 });
            w.accepted_steps.insert((0, step));
        }
        h.refresh_codes();
        assert_eq!(h.world.borrow().codes.len(), 1, "the setup code was mailed");
        {
            // The setup's messages were each claimed once and sent once.
            let mut c = h.checker.borrow_mut();
            for m in h.mailer.outbox() {
                *c.claims.entry(m.id.to_string()).or_default() += 1;
                *c.sends.entry(m.id.to_string()).or_default() += 1;
            }
        }
        h.checking.set(true);
        h
    }

    fn now(&self) -> u64 {
        Clock::now(&self.clock).0
    }

    fn step(&self) -> u64 {
        self.steps.get()
    }

    /// Panics with `msg` and what happened so far.
    #[track_caller]
    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let log = self.world.try_borrow().map(|w| w.log.join("\n")).unwrap_or_default();
        panic!("{msg}\n-- operations (step, engine, operation, outcome):\n{log}")
    }

    fn log(&self, who: usize, op: &Op, outcome: impl std::fmt::Debug) {
        let line = format!("{:>4} {who} {op:?} -> {outcome:?}", self.step());
        self.world.borrow_mut().log.push(line);
    }

    fn alice_doc(&self) -> (u64, Value) {
        let user = ready(self.store.find_by_id(self.alice)).expect("store").expect("alice exists");
        let stored = user.credentials.expect("a credential document");
        (stored.version, serde_json::from_str(stored.document.as_json()).expect("the document is JSON"))
    }

    /// Learns the backup codes mailed to alice since the last look.
    fn refresh_codes(&self) {
        let outbox = self.mailer.outbox();
        let step = self.step();
        let mut w = self.world.borrow_mut();
        let alice = email(ALICE);
        for mail in &outbox[w.read_mail..] {
            if let Message::BackupCode { to, codes, .. } = &mail.message
                && to.email == alice
            {
                for code in codes {
                    let value = code.expose().to_owned();
                    if !w.codes.iter().any(|c| c.value == value) {
                        w.codes.push(Known { value, born: step });
                    }
                }
            }
        }
        w.read_mail = outbox.len();
    }

    // -----------------------------------------------------------------------------
    // The scheduler.

    /// Runs one step of engine `who`: from the call it is paused before (if any) to its
    /// next pause or its end, then checks the step. Returns whether the script ended.
    fn take_step(&self, who: usize, fut: Pin<&mut dyn Future<Output = ()>>, trace: &mut Trace) -> bool {
        let before = self.checking.get().then(|| self.observe(who));
        self.steps.set(self.steps.get() + 1);
        let call = self.gates[who].take();
        let done = fut.poll(&mut Context::from_waker(Waker::noop())).is_ready();
        if !done && !self.gates[who].is_waiting() {
            self.fail(format!("engine {who} waited outside a store or mail call"));
        }
        if let Some(before) = before {
            self.check_step(who, before);
        }
        trace.calls.push((who, call));
        done
    }

    /// Runs the two scripts, `choose(i)` picking the engine of the `i`-th step taken
    /// while both are running (`false`: engine 0).
    fn drive(&self, scripts: [&[Op]; 2], choose: &mut dyn FnMut(usize) -> bool) -> Trace {
        let a = std::pin::pin!(self.script(0, scripts[0]));
        let b = std::pin::pin!(self.script(1, scripts[1]));
        let mut futs: [Pin<&mut dyn Future<Output = ()>>; 2] = [a, b];
        let mut done = [false; 2];
        let mut trace = Trace::default();
        for who in 0..2 {
            done[who] = self.take_step(who, futs[who].as_mut(), &mut trace);
        }
        while !(done[0] && done[1]) {
            let who = match done {
                [true, _] => 1,
                [_, true] => 0,
                _ => {
                    let pick = choose(trace.decisions.len());
                    trace.decisions.push(pick);
                    usize::from(pick)
                }
            };
            done[who] = self.take_step(who, futs[who].as_mut(), &mut trace);
            if trace.calls.len() > 20_000 {
                self.fail("the engines did not finish in 20000 steps");
            }
        }
        trace
    }

    /// Runs `ops` on engine 0 alone, step by step, with the checks.
    fn prelude(&self, ops: &[Op]) {
        let mut fut = std::pin::pin!(self.script(0, ops));
        let mut trace = Trace::default();
        while !self.take_step(0, fut.as_mut(), &mut trace) {}
    }

    // -----------------------------------------------------------------------------
    // The per-step checks.

    fn observe(&self, who: usize) -> Before {
        let (version, doc) = self.alice_doc();
        Before {
            version,
            doc,
            now: self.now(),
            events: self.sinks[who].events().len(),
            mails: self.mailer.outbox().len(),
        }
    }

    fn check_step(&self, who: usize, before: Before) {
        let (version, doc) = self.alice_doc();
        let step = self.step();
        if blocked(&before.doc, before.now) {
            self.world.borrow_mut().blocked_steps += 1;
            let events = self.sinks[who].events();
            if let Some(e) = events[before.events..].iter().find(|e| SUCCESSES.contains(&e.kind.name())) {
                self.fail(format!(
                    "step {step}: engine {who} accepted a factor while the account was blocked: {:?}\n{}",
                    e.kind, before.doc
                ));
            }
        }
        if version != before.version {
            if version != before.version + 1 {
                self.fail(format!("step {step}: version {} -> {version} in one step", before.version));
            }
            self.check_write(step, &before.doc, &doc, before.now);
        }
        let outbox = self.mailer.outbox();
        let mut c = self.checker.borrow_mut();
        for mail in &outbox[before.mails..] {
            let id = mail.id.to_string();
            let sent = c.sends.entry(id.clone()).or_default();
            *sent += 1;
            let sent = *sent;
            let claims = c.claims.get(&id).copied().unwrap_or(0);
            if sent > claims {
                drop(c);
                self.fail(format!("step {step}: message {id} sent {sent} times on {claims} claims"));
            }
        }
    }

    /// One write to alice's document, from `prev` to `cur`, at clock `now`.
    fn check_write(&self, step: u64, prev: &Value, cur: &Value, now: u64) {
        let mut c = self.checker.borrow_mut();
        let mut problems = Vec::new();
        // Nothing that left comes back.
        let (prev_ids, cur_ids) = (authenticator_ids(prev), authenticator_ids(cur));
        c.dead_authenticators.extend(prev_ids.difference(&cur_ids).cloned());
        problems.extend(
            cur_ids
                .iter()
                .filter(|id| c.dead_authenticators.contains(*id))
                .map(|id| format!("authenticator {id} came back")),
        );
        let (prev_hashes, cur_hashes) = (backup_hashes(prev), backup_hashes(cur));
        c.dead_hashes.extend(prev_hashes.difference(&cur_hashes).cloned());
        if cur_hashes.iter().any(|h| c.dead_hashes.contains(h)) {
            problems.push("a removed backup code came back".to_owned());
        }
        let (prev_stamp, cur_stamp) = (number(prev, "/stamp"), number(cur, "/stamp"));
        if prev_stamp != cur_stamp {
            c.dead_stamps.insert(prev_stamp);
        }
        if c.dead_stamps.contains(&cur_stamp) {
            problems.push(format!("security stamp {cur_stamp} came back"));
        }
        let (prev_used, cur_used) = (last_used(prev), last_used(cur));
        for (id, step) in &cur_used {
            if prev_used.get(id).is_some_and(|p| step < p) {
                problems.push(format!("authenticator {id}'s newest used step went back"));
            }
        }
        if number(cur, "/retired_totp_step") < number(prev, "/retired_totp_step") {
            problems.push("the retired step went back".to_owned());
        }
        let prev_marks = marks(prev);
        let cur_marks = marks(cur);
        if prev_stamp == cur_stamp {
            for (id, m) in &prev_marks {
                if m.consumed && m.expires_at > now && !cur_marks.get(id).is_some_and(|c| c.consumed) {
                    problems.push(format!("consumed pending login {id} opened again"));
                }
            }
        }
        // The budget.
        let (pf, psf) = (number(prev, "/throttle/failures"), number(prev, "/throttle/second_factor_failures"));
        let (cf, csf) = (number(cur, "/throttle/failures"), number(cur, "/throttle/second_factor_failures"));
        if cf > pf + 1 || csf > psf + 1 {
            problems.push(format!("failures {pf}/{psf} -> {cf}/{csf} in one write"));
        }
        if csf > u64::from(DISABLE_AFTER) {
            problems.push(format!("{csf} second-factor failures counted; the lock comes at {DISABLE_AFTER}"));
        }
        if let Some((id, m)) = cur_marks.iter().find(|(_, m)| m.failures > u64::from(MAX_CODE_ATTEMPTS)) {
            problems.push(format!("pending login {id} took {} wrong codes", m.failures));
        }
        if blocked(prev, now) {
            if cf > pf || csf > psf {
                problems.push(format!("a failure counted while blocked: {pf}/{psf} -> {cf}/{csf}"));
            }
            if cur_used.iter().any(|(id, s)| prev_used.get(id).is_some_and(|p| s > p)) {
                problems.push("a TOTP step accepted while blocked".to_owned());
            }
            if cur_marks.iter().any(|(id, m)| m.consumed && !prev_marks.get(id).is_some_and(|p| p.consumed)) {
                problems.push("a pending login completed while blocked".to_owned());
            }
        }
        // Claims of queued messages.
        let prev_out = outbox_attempts(prev);
        for (id, attempts) in outbox_attempts(cur) {
            let before = prev_out.get(&id).copied().unwrap_or(0);
            if attempts > before {
                *c.claims.entry(id).or_default() += attempts - before;
            }
        }
        drop(c);
        if !problems.is_empty() {
            self.fail(format!("step {step}: {}\nbefore: {prev}\nafter:  {cur}", problems.join("; ")));
        }
    }

    // -----------------------------------------------------------------------------
    // The scripts.

    async fn script(&self, who: usize, ops: &[Op]) {
        for op in ops {
            self.run(who, op).await;
        }
    }

    /// The factor `f` stands for now, or `None` when there is nothing to offer (or the
    /// one-in-a-million code another known authenticator shows nearby as well).
    fn resolve(&self, f: Factor) -> Option<Resolved> {
        self.refresh_codes();
        let w = self.world.borrow();
        let step = self.now() / 30;
        let newest = w.secrets.len() - 1;
        let totp = |secret: usize, at: u64| {
            let code = code_for(&w.secrets[secret].value, at);
            unambiguous(&w, &code, Some((secret, at)), step).then_some(Resolved {
                code,
                backup: false,
                item: Item::Totp { secret, step: at },
            })
        };
        match f {
            Factor::TotpNow => totp(newest, step),
            Factor::TotpPrev => totp(newest, step - 1),
            Factor::TotpDead => totp(newest.checked_sub(1)?, step),
            Factor::WrongTotp => {
                let right: u32 = code_for(&w.secrets[newest].value, step).parse().expect("digits");
                let code = format!("{:06}", (right + 1) % 1_000_000);
                unambiguous(&w, &code, None, step).then_some(Resolved { code, backup: false, item: Item::Wrong })
            }
            Factor::Backup => {
                let i = w.codes.len().checked_sub(1)?;
                Some(Resolved { code: w.codes[i].value.clone(), backup: true, item: Item::Code(i) })
            }
            Factor::OldBackup(k) => {
                let older = w.codes.len().checked_sub(1).filter(|n| *n > 0)?;
                let i = usize::from(k) % older;
                Some(Resolved { code: w.codes[i].value.clone(), backup: true, item: Item::Code(i) })
            }
            Factor::WrongBackup => {
                Some(Resolved { code: "AAAA-AAAA-AAAA-AAAA".to_owned(), backup: true, item: Item::Wrong })
            }
        }
    }

    /// Fails if something learned at step `born` worked in an operation that began at
    /// step `start`, after a reset or turning 2FA off that began after `born` had
    /// returned.
    fn not_wiped(&self, what: &str, born: u64, start: u64) {
        let wipe = self.world.borrow().wipes.iter().find(|w| born <= w.start && start >= w.end).copied();
        if let Some(w) = wipe {
            self.fail(format!(
                "{what} (known at step {born}) worked at step {start}, after the {} of steps {}..{}",
                w.what, w.start, w.end
            ));
        }
    }

    /// Records an accepted factor (the operation began at step `start`).
    fn accepted(&self, r: &Resolved, start: u64) {
        let born = match r.item {
            Item::Wrong => self.fail(format!("a wrong factor ({}) was accepted", r.code)),
            Item::Totp { secret, step } => {
                let mut w = self.world.borrow_mut();
                w.totp_wins += 1;
                if !w.accepted_steps.insert((secret, step)) {
                    drop(w);
                    self.fail(format!("TOTP step {step} of authenticator #{secret} accepted twice"));
                }
                w.secrets[secret].born
            }
            Item::Code(i) => {
                let mut w = self.world.borrow_mut();
                w.backup_wins += 1;
                let code = w.codes[i].value.clone();
                let uses = w.accepted_codes.entry(code.clone()).or_default();
                *uses += 1;
                if *uses > 1 {
                    drop(w);
                    self.fail(format!("backup code {code} accepted twice"));
                }
                w.codes[i].born
            }
        };
        self.not_wiped("a factor", born, start);
    }

    /// The second step on pending login `token` (issued at step `born`).
    async fn second_step(&self, who: usize, op: &Op, token: &str, born: u64, f: Factor) {
        let Some(r) = self.resolve(f) else {
            return self.log(who, op, "skipped");
        };
        let start = self.step();
        let out = self.engines[who].finish_login(token, r.factor(), None).await;
        let out = out.unwrap_or_else(|e| self.fail(format!("{op:?}: {e}")));
        if let SecondFactorOutcome::Authenticated(_) = &out {
            if !self.world.borrow_mut().accepted_pendings.insert(token.to_owned()) {
                self.fail("a pending login completed twice");
            }
            self.not_wiped("a pending login", born, start);
            self.accepted(&r, start);
        }
        self.log(who, op, out);
    }

    async fn run(&self, who: usize, op: &Op) {
        let e = &self.engines[who];
        let (alice, bob) = (self.alice, self.bob);
        let start = self.step();
        self.refresh_codes();
        match *op {
            Op::Login(f) => match e.begin_login(ALICE, PASSWORD, None).await {
                Ok(LoginOutcome::SecondFactorRequired(p)) => {
                    let token = p.token().to_owned();
                    let born = self.step();
                    self.world.borrow_mut().pendings.push(Known { value: token.clone(), born });
                    self.second_step(who, op, &token, born, f).await;
                }
                Ok(out @ (LoginOutcome::Authenticated(_) | LoginOutcome::Denied)) => self.log(who, op, out),
                other => self.fail(format!("{op:?}: {other:?}")),
            },
            Op::OldPending(i, f) => {
                let pending = {
                    let w = self.world.borrow();
                    (!w.pendings.is_empty()).then(|| w.pendings[usize::from(i) % w.pendings.len()].clone())
                };
                match pending {
                    Some(p) => self.second_step(who, op, &p.value, p.born, f).await,
                    None => self.log(who, op, "skipped"),
                }
            }
            Op::WrongPassword => match e.begin_login(ALICE, "wrong password", None).await {
                Ok(out @ LoginOutcome::Denied) => self.log(who, op, out),
                other => self.fail(format!("{op:?}: {other:?}")),
            },
            Op::StepUp(f) | Op::Disable(f) => {
                let Some(r) = self.resolve(f) else {
                    return self.log(who, op, "skipped");
                };
                let disable = matches!(op, Op::Disable(_));
                let out = if disable {
                    e.disable_two_factor(alice, r.factor()).await
                } else {
                    e.step_up(alice, r.factor()).await
                };
                match out {
                    Ok(out) if out.is_verified() => {
                        self.accepted(&r, start);
                        if disable {
                            let wipe = Wipe { what: "turning off", start, end: self.step() };
                            self.world.borrow_mut().wipes.push(wipe);
                        }
                        self.log(who, op, out);
                    }
                    Ok(out) => self.log(who, op, out),
                    Err(Error::Misuse(r @ Refusal::TwoFactorNotActive)) => self.log(who, op, r),
                    Err(other) => self.fail(format!("{op:?}: {other}")),
                }
            }
            Op::Reissue => match e.reissue_backup_code(alice).await {
                Ok(out) => self.log(who, op, out),
                Err(Error::Misuse(r @ Refusal::TwoFactorNotActive)) => self.log(who, op, r),
                Err(other) => self.fail(format!("{op:?}: {other}")),
            },
            Op::Reset => match e.reset(bob, alice, "called back on the known number").await {
                Ok(out @ ResetOutcome::Reset { .. }) => {
                    self.world.borrow_mut().wipes.push(Wipe { what: "reset", start, end: self.step() });
                    self.log(who, op, out);
                }
                other => self.fail(format!("{op:?}: {other:?}")),
            },
            Op::Enroll => {
                let started = match e.start_enrollment(alice).await {
                    Ok(started) => started,
                    Err(Error::Misuse(r @ Refusal::TwoFactorActive)) => return self.log(who, op, r),
                    Err(other) => self.fail(format!("{op:?}: {other}")),
                };
                let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
                let step = self.now() / 30;
                match e.confirm_enrollment(alice, &code_for(&secret, step)).await {
                    Ok(out @ ConfirmOutcome::Confirmed { .. }) => {
                        let mut w = self.world.borrow_mut();
                        w.secrets.push(Known { value: secret, born: self.step() });
                        let i = w.secrets.len() - 1;
                        w.accepted_steps.insert((i, step));
                        drop(w);
                        self.log(who, op, out);
                    }
                    Ok(out @ ConfirmOutcome::WrongCode) => self.log(who, op, out),
                    Err(Error::Misuse(r)) => self.log(who, op, r),
                    other => self.fail(format!("{op:?}: {other:?}")),
                }
            }
            Op::Deliver => {
                let report = e.deliver_due(10).await.unwrap_or_else(|err| self.fail(format!("{op:?}: {err}")));
                self.refresh_codes();
                self.log(who, op, (report.sent, report.retrying, report.gave_up));
            }
            Op::Unlock => match e.unlock(bob, alice, "called back on the known number").await {
                Ok(out) => self.log(who, op, out),
                Err(other) => self.fail(format!("{op:?}: {other}")),
            },
            Op::Advance => {
                self.clock.advance(TICK);
                self.log(who, op, self.now());
            }
        }
    }
}

struct Before {
    version: u64,
    doc: Value,
    now: u64,
    events: usize,
    mails: usize,
}

/// Whether `code` is shown by no known authenticator near `step` but the one it was made
/// for (`own`: authenticator and step).
fn unambiguous(w: &World, code: &str, own: Option<(usize, u64)>, step: u64) -> bool {
    w.secrets
        .iter()
        .enumerate()
        .all(|(j, s)| (step - 3..=step + 3).all(|at| own == Some((j, at)) || code_for(&s.value, at) != code))
}

// ---------------------------------------------------------------------------------
// Reading the stored document (its format: src/document/wire.rs).

fn number(doc: &Value, pointer: &str) -> u64 {
    doc.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn list<'a>(doc: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    doc.pointer(pointer).and_then(Value::as_array).into_iter().flatten()
}

/// Whether attempts are refused unevaluated at `now` (throttled, or locked with 2FA on).
fn blocked(doc: &Value, now: u64) -> bool {
    let enabled = doc.pointer("/second_factor/state").and_then(Value::as_str) == Some("enabled");
    let locked = doc.pointer("/throttle/locked").and_then(Value::as_bool).unwrap_or(false);
    (enabled && locked) || number(doc, "/throttle/until") > now
}

/// Every authenticator id in the document: active, being enrolled, being added.
fn authenticator_ids(doc: &Value) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> =
        list(doc, "/second_factor/authenticators").filter_map(|a| a["id"].as_str().map(str::to_owned)).collect();
    for pointer in ["/second_factor/authenticator/id", "/second_factor/adding/id"] {
        ids.extend(doc.pointer(pointer).and_then(Value::as_str).map(str::to_owned));
    }
    ids
}

fn backup_hashes(doc: &Value) -> BTreeSet<String> {
    list(doc, "/second_factor/backup_codes").filter_map(|c| c["hash"].as_str().map(str::to_owned)).collect()
}

fn last_used(doc: &Value) -> BTreeMap<String, u64> {
    list(doc, "/second_factor/authenticators")
        .map(|a| (a["id"].as_str().unwrap_or_default().to_owned(), a["last_used_step"].as_u64().unwrap_or(0)))
        .collect()
}

struct Mark {
    expires_at: u64,
    failures: u64,
    consumed: bool,
}

fn marks(doc: &Value) -> BTreeMap<String, Mark> {
    list(doc, "/pending")
        .map(|m| {
            let mark = Mark {
                expires_at: m["expires_at"].as_u64().unwrap_or(0),
                failures: m["failures"].as_u64().unwrap_or(0),
                consumed: m["consumed"].as_bool().unwrap_or(false),
            };
            (m["id"].as_str().unwrap_or_default().to_owned(), mark)
        })
        .collect()
}

fn outbox_attempts(doc: &Value) -> BTreeMap<String, u32> {
    list(doc, "/outbox")
        .map(|m| {
            let attempts = u32::try_from(m["attempts"].as_u64().unwrap_or(0)).expect("a count");
            (m["id"].as_str().unwrap_or_default().to_owned(), attempts)
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Exhaustive interleavings of small scripts.

/// Runs `scripts` after `prelude` (on engine 0 alone) in every interleaving of their
/// steps, calling `check` after each; returns how many there were.
fn every_interleaving(prelude: &[Op], scripts: [&[Op]; 2], check: impl FnMut(&Harness, &Trace)) -> usize {
    every_interleaving_on(Harness::new, prelude, scripts, check)
}

fn every_interleaving_on(
    harness: fn() -> Harness,
    prelude: &[Op],
    scripts: [&[Op]; 2],
    mut check: impl FnMut(&Harness, &Trace),
) -> usize {
    let mut todo: Vec<Vec<bool>> = vec![vec![]];
    let mut runs = 0;
    while let Some(prefix) = todo.pop() {
        let h = harness();
        h.prelude(prelude);
        let trace = h.drive(scripts, &mut |i| prefix.get(i).copied().unwrap_or(false));
        // Every choice past the prefix was "engine 0": branch on each.
        for i in prefix.len()..trace.decisions.len() {
            let mut next = trace.decisions[..i].to_vec();
            next.push(true);
            todo.push(next);
        }
        check(&h, &trace);
        runs += 1;
        assert!(runs < 100_000, "too many interleavings");
    }
    runs
}

fn wins(h: &Harness) -> (u64, u64) {
    let w = h.world.borrow();
    (w.backup_wins, w.totp_wins)
}

/// The classic race: both engines hold a pending login and the same mailed backup
/// code. In every interleaving exactly one logs in, and in those where both read the
/// same version (each second step starts from the record its password step read), the
/// loser's compare-and-swap conflicts and its retry refuses the code.
#[test]
fn one_backup_code_two_engines_exactly_one_wins_in_every_interleaving() {
    let mut both_read_first = 0;
    let script = [Op::Login(Factor::Backup)];
    let runs = every_interleaving(&[], [&script, &script], |h, trace| {
        assert_eq!(wins(h), (1, 0), "{trace:?}\n{}", h.world.borrow().log.join("\n"));
        // Both read the document before either swapped: the race the swap settles.
        let calls: Vec<_> = trace.calls.iter().filter_map(|(who, call)| call.map(|c| (*who, c))).collect();
        let first_swap = calls.iter().position(|(_, c)| *c == "compare_and_swap").expect("a swap");
        let reads = calls[..first_swap].iter().filter(|(_, c)| matches!(*c, "find_by_id" | "find_by_login")).count();
        if reads == 2 {
            both_read_first += 1;
            assert!(h.conflicts.load(Ordering::Relaxed) > 0, "the loser's swap conflicted: {trace:?}");
        }
    });
    assert!(both_read_first > 0, "no interleaving read the same version twice ({runs} runs)");
    eprintln!("backup-code race: {runs} interleavings, {both_read_first} with both reads before a swap");
}

/// The same with one TOTP code for one step.
#[test]
fn one_totp_step_two_engines_exactly_one_wins_in_every_interleaving() {
    let script = [Op::Login(Factor::TotpNow)];
    let runs = every_interleaving(&[], [&script, &script], |h, trace| {
        assert_eq!(wins(h), (0, 1), "{trace:?}\n{}", h.world.borrow().log.join("\n"));
    });
    assert!(runs > 1, "interleavings were explored: {runs}");
    eprintln!("TOTP race: {runs} interleavings");
}

/// An administrator's reset racing a backup-code login: whichever commits first, the
/// reset stands at the end: 2FA off, no authenticator, no backup code, no code mail
/// left queued, and afterwards neither the code, nor its replacement (if the login
/// won), nor a pending login from before works.
#[test]
fn a_reset_racing_a_backup_code_login_is_never_undone() {
    let login = [Op::Login(Factor::Backup)];
    let reset = [Op::Reset];
    let mut won = 0;
    let runs = every_interleaving(&[], [&login, &reset], |h, trace| {
        let (_, doc) = h.alice_doc();
        let log = || h.world.borrow().log.join("\n");
        let state = doc.pointer("/second_factor/state").and_then(Value::as_str);
        assert!(state.is_none_or(|s| s == "disabled"), "{doc}\n{log}", log = log());
        assert!(backup_hashes(&doc).is_empty() && authenticator_ids(&doc).is_empty(), "{doc}");
        assert!(list(&doc, "/outbox").all(|m| m["kind"].as_str().is_some_and(|k| !k.starts_with("backup_code"))));
        let raced = wins(h).0;
        won += raced;
        // Afterwards every code and pending login known before is dead (the scripts
        // check each outcome against the reset: `not_wiped`).
        let after = [
            Op::Deliver,
            Op::Login(Factor::Backup),
            Op::OldPending(0, Factor::Backup),
            Op::StepUp(Factor::Backup),
            Op::StepUp(Factor::OldBackup(0)),
            Op::Login(Factor::TotpNow),
        ];
        h.drive([&after, &[]], &mut |_| false);
        assert_eq!(wins(h).0, raced, "a backup code worked after the reset: {trace:?}");
    });
    assert!(won > 0, "no interleaving let the login commit before the reset");
    eprintln!("reset vs backup-code login: {runs} interleavings, the login won in {won}");
}

/// One failure short of throttling, both engines submit a wrong code: exactly one is
/// counted (it throttles the account), the other is refused unevaluated, in every
/// interleaving; the same with wrong passwords.
#[test]
fn the_last_free_failure_is_counted_once_in_every_interleaving() {
    for (name, wrong) in [("wrong code", Op::Login(Factor::WrongTotp)), ("wrong password", Op::WrongPassword)] {
        let prelude = vec![wrong; FREE_FAILURES as usize - 1];
        let runs = every_interleaving(&prelude, [&[wrong], &[wrong]], |h, trace| {
            let (_, doc) = h.alice_doc();
            assert_eq!(number(&doc, "/throttle/failures"), u64::from(FREE_FAILURES), "{name}: {trace:?}\n{doc}");
            assert!(blocked(&doc, h.now()), "{name}: throttled at the end");
        });
        assert!(runs > 1, "interleavings were explored: {runs}");
        eprintln!("last free failure, {name}: {runs} interleavings");
    }
}

/// One wrong code short of the lock (the throttle over), a wrong code on one engine
/// races the right code on the other: in every interleaving exactly one of them
/// counts. Either the wrong code locks the second factor and the right one is refused
/// unevaluated, or the right one logs in first, clears the budget, and the wrong one
/// is the first failure of a fresh budget.
#[test]
fn the_lock_races_a_right_code_and_exactly_one_counts_in_every_interleaving() {
    let mut prelude = vec![Op::Login(Factor::WrongTotp); DISABLE_AFTER as usize - 1];
    prelude.push(Op::Advance); // the throttle of the free failures ends
    let mut locked_runs = 0;
    let runs =
        every_interleaving(&prelude, [&[Op::Login(Factor::WrongTotp)], &[Op::Login(Factor::TotpNow)]], |h, trace| {
            let (_, doc) = h.alice_doc();
            let locked = doc.pointer("/throttle/locked").and_then(Value::as_bool).unwrap_or(false);
            let logged_in = wins(h).1 == 1;
            assert!(locked != logged_in, "locked {locked}, logged in {logged_in}: {trace:?}\n{doc}");
            let failures = number(&doc, "/throttle/second_factor_failures");
            assert_eq!(failures, if locked { u64::from(DISABLE_AFTER) } else { 1 }, "{doc}");
            locked_runs += u64::from(locked);
        });
    assert!(locked_runs > 0 && locked_runs < runs as u64, "both orders happen: {locked_runs} of {runs} locked");
    eprintln!("the lock vs a right code: {runs} interleavings, {locked_runs} locked");
}

/// Two delivery rounds at once after a backup-code login: the rotated code is mailed
/// exactly once, whoever claims it.
#[test]
fn two_delivery_rounds_send_a_code_once_in_every_interleaving() {
    let prelude = [Op::Login(Factor::Backup)];
    let runs = every_interleaving(&prelude, [&[Op::Deliver], &[Op::Deliver]], |h, trace| {
        let codes = h.mailer.outbox().iter().filter(|m| matches!(m.message, Message::BackupCode { .. })).count();
        assert_eq!(codes, 2, "the setup code and its one replacement: {trace:?}");
    });
    assert!(runs > 1, "interleavings were explored: {runs}");
    eprintln!("two delivery rounds: {runs} interleavings");
}

/// A right factor given to a step-up (or to turning 2FA off) whose check read the
/// record before an administrator's reset, and whose write comes after it, should find
/// 2FA off and count nothing, as the login's second step does in the same race
/// (`Expired`, nothing written) and as the step-up does when it reads after the reset
/// (`TwoFactorNotActive`). It once answered `Denied` and counted a failure into the
/// budget the reset had just cleared, in 3 of the 10 interleavings for each factor
/// (the step-up's read before the reset's write, its own write after); the engine now
/// re-checks 2FA and the security stamp on the record it writes.
#[test]
fn a_right_step_up_racing_a_reset_counts_no_failure() {
    for factor in [Factor::TotpNow, Factor::Backup] {
        for action in [Op::StepUp(factor), Op::Disable(factor)] {
            every_interleaving(&[], [&[action], &[Op::Reset]], |h, trace| {
                let (_, doc) = h.alice_doc();
                let log = h.world.borrow().log.join("\n");
                assert!(doc.get("throttle").is_none(), "a failure counted after the reset: {doc}\n{log}\n{trace:?}");
            });
        }
    }
}

/// The checks bite: over a store whose compare-and-swap loses updates, the classic
/// race lets both engines in with one backup code, and the scripts see it.
#[test]
#[should_panic(expected = "accepted twice")]
fn the_checks_catch_a_backup_code_accepted_twice_by_a_lost_update() {
    let script = [Op::Login(Factor::Backup)];
    every_interleaving_on(|| Harness::with_store(true), &[], [&script, &script], |_, _| {});
}

/// The checks bite: over the same broken store, a backup-code login that read before
/// a reset writes the old authenticators back over it, and the per-step checks see it.
#[test]
#[should_panic(expected = "came back")]
fn the_checks_catch_a_reset_undone_by_a_lost_update() {
    every_interleaving_on(|| Harness::with_store(true), &[], [&[Op::Login(Factor::Backup)], &[Op::Reset]], |_, _| {});
}

// ---------------------------------------------------------------------------------
// Random scripts, random interleavings.

/// Proptest cases in one run (the `PROPTEST_CASES` environment variable overrides it).
const CASES: u32 = 768;

#[derive(Debug, Default)]
struct Stats {
    runs: u64,
    steps: u64,
    decisions: u64,
    switches: u64,
    conflicts: u64,
    /// Runs in which some compare-and-swap lost.
    raced: u64,
    traces: HashSet<u64>,
    backup_wins: u64,
    totp_wins: u64,
    wipes: u64,
    blocked_steps: u64,
    throttles: u64,
    locks: u64,
}

fn scenario() -> impl Strategy<Value = ([Vec<Op>; 2], Vec<bool>)> {
    let script = || proptest::collection::vec(op(), 1..10);
    ((script(), script()).prop_map(|(a, b)| [a, b]), proptest::collection::vec(any::<bool>(), 0..96))
}

/// Runs two random scripts in a random interleaving: the schedule's booleans pick the
/// engine of each step while both run, cycling (an empty schedule alternates).
fn interleaved(scripts: &[Vec<Op>; 2], schedule: &[bool], stats: &RefCell<Stats>) {
    let h = Harness::new();
    let trace = h.drive([&scripts[0], &scripts[1]], &mut |i| {
        if schedule.is_empty() { i % 2 == 1 } else { schedule[i % schedule.len()] }
    });
    let w = h.world.borrow();
    let mut s = stats.borrow_mut();
    s.runs += 1;
    s.steps += trace.calls.len() as u64;
    s.decisions += trace.decisions.len() as u64;
    s.switches += trace.switches() as u64;
    let conflicts = h.conflicts.load(Ordering::Relaxed) as u64;
    s.conflicts += conflicts;
    s.raced += u64::from(conflicts > 0);
    s.traces.insert(trace.fingerprint());
    s.backup_wins += w.backup_wins;
    s.totp_wins += w.totp_wins;
    s.wipes += w.wipes.len() as u64;
    s.blocked_steps += w.blocked_steps;
    for sink in &h.sinks {
        for e in sink.events() {
            s.throttles += u64::from(e.kind.name() == "throttle.started");
            s.locks += u64::from(e.kind.name() == "second_factor.locked");
        }
    }
}

/// Random scripts of up to nine operations per engine, in a random interleaving,
/// checked after every step (see the module's documentation). A failure prints the
/// minimal scripts and schedule; `interleaved` replays them as a named test.
#[test]
fn two_engines_interleaved_keep_every_invariant() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let stats = RefCell::new(Stats::default());
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&scenario(), |(scripts, schedule)| {
        interleaved(&scripts, &schedule, &stats);
        Ok(())
    });
    let s = stats.into_inner();
    eprintln!(
        "{cases} cases, {} runs in {:.1?}: {} distinct interleavings ({} steps, {} scheduling choices, {} switches \
         between engines); {} lost compare-and-swaps in {} runs; {} backup-code and {} TOTP acceptances, {} resets \
         or turn-offs, {} throttles, {} locks, {} steps on a blocked account",
        s.runs,
        started.elapsed(),
        s.traces.len(),
        s.steps,
        s.decisions,
        s.switches,
        s.conflicts,
        s.raced,
        s.backup_wins,
        s.totp_wins,
        s.wipes,
        s.throttles,
        s.locks,
        s.blocked_steps,
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The search reached what it is about (the lock is rarer: the fixed test above
    // races it).
    for (what, n) in [
        ("lost compare-and-swaps", s.conflicts),
        ("backup-code acceptances", s.backup_wins),
        ("TOTP acceptances", s.totp_wins),
        ("resets", s.wipes),
        ("blocked steps", s.blocked_steps),
    ] {
        assert!(cases < 256 || n > 0, "no {what} in {cases} cases");
    }
}
