//! Shared set-up for the engine benchmarks: engines at the default (OWASP) policy,
//! enrolled accounts, full two-step logins with a manual clock that keeps every
//! account's next TOTP step fresh, and the bare Argon2 verify the engine is compared to.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use twofactor::mail::MemoryMailer;
use twofactor::offload::Offload;
use twofactor::store::UserStore;
use twofactor::totp::{TotpParams, generate};
use twofactor::{
    Clock, ConfirmOutcome, Engine, HashParams, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role,
    SecondFactor, SecondFactorOutcome, Timestamp,
};

pub const PASSWORD: &str = "correct horse battery staple";
pub const T0: u64 = 1_800_000_000;

pub type BenchEngine<S> = Engine<S, MemoryMailer, ManualClock>;

/// An engine at the default policy (OWASP Argon2id) over `store`, except for a wider
/// window: the shared manual clock moves about one TOTP step per round of logins (one
/// login per client), so other clients can move it two or more steps between a
/// client's code and its check (a wider window only tries a few more HMACs on a wrong
/// code).
///
/// The pending-login lifetime is the policy's default (5 minutes) unless
/// `TWOFACTOR_BENCH_PENDING_SECS` says otherwise. Each login leaves a used pending
/// mark in the account's document until that lifetime has passed on the manual clock,
/// and an account logs in once per 30-second step, so the default keeps about 10 marks
/// (a document of about 1.3 KB: an account that logged in every 30 seconds for 5
/// minutes). `TWOFACTOR_BENCH_PENDING_SECS=1800` keeps 60 (about 5 KB, near the
/// 64-mark cap): the worst case a document reaches.
pub fn engine<S: UserStore>(store: S, offload: impl Offload, clock: &ManualClock) -> BenchEngine<S> {
    let window = twofactor::totp::Window::new(twofactor::totp::Window::MAX, 1).expect("window");
    let mut policy = Policy::builder();
    if let Ok(secs) = std::env::var("TWOFACTOR_BENCH_PENDING_SECS") {
        policy = policy.pending_lifetime(Duration::from_secs(secs.parse().expect("TWOFACTOR_BENCH_PENDING_SECS")));
    }
    let policy = policy.danger_wide_window(window).build().expect("policy");
    Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(policy)
        .offload(offload)
        .build()
        .expect("engine")
}

pub fn email(name: &str) -> String {
    format!("{name}@example.test")
}

/// Creates `name` and confirms TOTP enrollment; returns the raw secret and the step
/// the confirming code used (the account's last used step).
pub async fn enrolled<S: UserStore>(engine: &BenchEngine<S>, clock: &ManualClock, name: &str) -> (Vec<u8>, u64) {
    let id = engine.create_account(NewAccount::new(name, &email(name), Role::User, PASSWORD)).await.expect("create");
    let started = engine.start_enrollment(id).await.expect("enroll");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let now = clock.now().0;
    let code = generate(&secret, &TotpParams::default(), now);
    let outcome = engine.confirm_enrollment(id, code.expose()).await.expect("confirm");
    assert!(matches!(outcome, ConfirmOutcome::Confirmed { .. }), "{outcome:?}");
    (secret, TotpParams::default().step_at(now))
}

/// Moves a shared manual clock forward just enough that an account's next TOTP step is
/// fresh: the clock advances about one step per round of logins, so a pending login
/// never expires and a code computed just before the second step is still in the window.
#[derive(Debug)]
pub struct Ticker {
    pub clock: ManualClock,
    lock: Mutex<()>,
}

impl Ticker {
    pub fn new(clock: ManualClock) -> Self {
        Ticker { clock, lock: Mutex::new(()) }
    }

    /// Ensures the current step is after `last_step`.
    pub fn fresh_after(&self, last_step: u64) {
        let _guard = self.lock.lock().expect("ticker");
        let period = u64::from(TotpParams::default().period);
        if self.clock.now().0 / period <= last_step {
            self.clock.set(Timestamp((last_step + 1) * period));
        }
    }
}

/// One full login (password step, then the TOTP step). `last_step` is the account's
/// last accepted TOTP step, updated here.
pub async fn full_login<S: UserStore>(
    engine: &BenchEngine<S>,
    ticker: &Ticker,
    name: &str,
    secret: &[u8],
    last_step: &mut u64,
) {
    ticker.fresh_after(*last_step);
    let pending = match engine.begin_login(name, PASSWORD, None).await.expect("begin") {
        LoginOutcome::SecondFactorRequired(p) => p,
        other => panic!("expected a second factor, got {other:?}"),
    };
    let now = ticker.clock.now().0;
    let code = generate(secret, &TotpParams::default(), now);
    let out = engine.finish_login(pending.token(), SecondFactor::Totp(code.expose()), None).await.expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Authenticated(_)), "{out:?}");
    *last_step = TotpParams::default().step_at(now);
}

/// A PHC string for `secret` at `params`, as the engine stores it.
pub fn phc(secret: &[u8], params: HashParams) -> String {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None).expect("params");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon.hash_password_with_salt(secret, b"0123456789abcdef").expect("hash").to_string()
}

/// The bare Argon2id verify the engine's password step is measured against (the same
/// calls the engine makes: parse the PHC string, verify).
pub fn bare_verify(secret: &[u8], phc: &str) -> bool {
    let parsed = PasswordHash::new(phc).expect("phc");
    let params = Params::try_from(&parsed).expect("params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).verify_password(secret, &parsed).is_ok()
}

thread_local! {
    /// One thread's reused Argon2 working memory, for [`bare_verify_reused`].
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The real limit of a password step: parse the PHC string, run Argon2id into working
/// memory that this thread reuses (no allocation, no wipe), compare. The issue-17
/// denominator.
pub fn bare_verify_reused(secret: &[u8], phc: &str) -> bool {
    let parsed = PasswordHash::new(phc).expect("phc");
    let params = Params::try_from(&parsed).expect("params");
    let expected = parsed.hash.expect("hash");
    let mut out = [0u8; 32];
    let out = &mut out[..expected.len()];
    let salt = parsed.salt.expect("salt");
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), argon2::Block::default());
        }
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(secret, &salt, out, &mut memory[..params.block_count()])
            .expect("argon2");
    });
    out == expected.as_bytes()
}

/// Runs `iters` calls of `work(thread, i)` spread over `threads` OS threads, each with
/// its own current-thread runtime; returns the wall time.
pub fn on_threads<F, Fut>(threads: usize, iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
                rt.block_on(async {
                    for i in 0..share {
                        work(t, i).await;
                    }
                });
            });
        }
    });
    start.elapsed()
}

/// The number of CPUs this process may use.
pub fn cores() -> usize {
    twofactor::default_max_concurrent_hashes()
}

/// Alternates short bursts of two workloads, `rounds` times, the order swapped every
/// round; each call returns the time per operation of one burst. Returns the median of
/// the per-round ratios `a / b` (how much of `a`'s rate `b` reaches) and the median
/// time per operation of each: a ratio taken within one round sees one load, so drift
/// between rounds cancels.
pub fn paired_ratio(
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> (f64, Duration, Duration) {
    let (mut xs, mut ys, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        xs.push(x);
        ys.push(y);
    }
    ratios.sort_by(f64::total_cmp);
    xs.sort();
    ys.sort();
    (ratios[rounds / 2], xs[rounds / 2], ys[rounds / 2])
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), or nothing where there
/// are none.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Alternates short bursts of two workloads (`a`, then `b`, `rounds` times); each call
/// returns the time per operation of one burst. Returns the median per-operation time
/// of each. On a shared machine, load drifts between two criterion runs made one after
/// the other; alternating bursts puts both workloads under the same load.
pub fn paired(rounds: usize, mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration) -> (Duration, Duration) {
    let (mut xs, mut ys) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        xs.push(a());
        ys.push(b());
    }
    xs.sort();
    ys.sort();
    (xs[rounds / 2], ys[rounds / 2])
}
