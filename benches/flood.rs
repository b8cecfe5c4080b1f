//! Flood: 500 concurrent login attempts (half unknown users, half wrong passwords) at
//! the default policy on a tokio multi-thread runtime with the default offload
//! (`HashThreads`; `TWOFACTOR_FLOOD_OFFLOAD=tokio` for `TokioOffload`), while an
//! unrelated task asks for a 10 ms timer tick over and over. Prints the peak RSS
//! (`VmHWM`), the bound `limit × m_cost + baseline`, how late the ticks were, and how
//! many attempts were evaluated (`Denied`) or shed (`Busy`).
//!
//! Then availability under attack (issue 17): attackers keep 20 × the hashing bound of
//! `begin_login` calls in flight (unknown users and wrong passwords) for
//! `TWOFACTOR_FLOOD_SECONDS` (default 60) while a real user with a remembered-location
//! token logs in over and over. Prints the real user's p50/p99 against its idle median
//! (goal: p99 ≤ 3×, every login authenticated) and how fast the attackers' `Busy`
//! answers came. Not a criterion benchmark: one flood is one measurement.
//!
//! `cargo bench --all-features --bench flood` (set `TWOFACTOR_FLOOD_LIMIT=n` to
//! change `max_concurrent_hashes`; default: the number of cores).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use twofactor::mail::MemoryMailer;
use twofactor::offload::TokioOffload;
use twofactor::store::MemoryStore;
use twofactor::totp::{TotpParams, generate};
use twofactor::{
    Clock, Engine, HashParams, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, SecondFactor,
    SecondFactorOutcome, Timestamp,
};

/// Logs the real user in with a TOTP code and asks to remember the location.
async fn remembered_token(engine: &BenchEngine<MemoryStore>, clock: &ManualClock, secret: &[u8]) -> String {
    let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login("real", PASSWORD, None).await.expect("login")
    else {
        panic!("a second factor is due");
    };
    let code = generate(secret, &TotpParams::default(), clock.now().0);
    let out = engine.finish_login(pending.token(), SecondFactor::Totp(code.expose()), Some("phone")).await;
    let Ok(SecondFactorOutcome::Authenticated(auth)) = out else { panic!("{out:?}") };
    auth.remembered.expect("remembered").token().to_owned()
}

const ATTEMPTS: usize = 500;
const ACCOUNTS: usize = 10;
const TICK: Duration = Duration::from_millis(10);

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).expect("field")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let limit = std::env::var("TWOFACTOR_FLOOD_LIMIT").ok().and_then(|v| v.parse().ok()).unwrap_or_else(cores);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    rt.block_on(async move {
        let clock = ManualClock::new(Timestamp(T0));
        let engine = Arc::new(flood_engine(limit, Policy::default(), &clock).await);
        let baseline_kib = status_kib("VmRSS:");
        let peak_before_kib = status_kib("VmHWM:");

        let done = Arc::new(AtomicBool::new(false));
        let pinger = {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut late = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    tokio::time::sleep(TICK).await;
                    late.push(start.elapsed().saturating_sub(TICK));
                }
                late
            })
        };
        let start = Instant::now();
        let mut attempts = Vec::with_capacity(ATTEMPTS);
        for i in 0..ATTEMPTS {
            let engine = Arc::clone(&engine);
            attempts.push(tokio::spawn(async move {
                let name = if i % 2 == 0 { format!("nobody{i}") } else { format!("user{}", i % ACCOUNTS) };
                let out = engine.begin_login(&name, "not the password", None).await.expect("login");
                match out {
                    LoginOutcome::Denied => false,
                    LoginOutcome::Busy { .. } => true,
                    other => panic!("{other:?}"),
                }
            }));
        }
        let mut shed = 0usize;
        for attempt in attempts {
            shed += usize::from(attempt.await.expect("attempt"));
        }
        let flood = start.elapsed();
        done.store(true, Ordering::Relaxed);
        let mut late = pinger.await.expect("pinger");
        late.sort();

        let peak_kib = status_kib("VmHWM:");
        let m_cost_kib = u64::from(HashParams::OWASP.m_cost);
        println!("flood: {ATTEMPTS} concurrent login attempts, max_concurrent_hashes = {limit}, cores = {}", cores());
        println!(
            "  time {:.2} s, {:.1} attempts/s; {} evaluated (Denied), {shed} shed (Busy)",
            flood.as_secs_f64(),
            ATTEMPTS as f64 / flood.as_secs_f64(),
            ATTEMPTS - shed
        );
        println!(
            "  peak RSS (VmHWM) {:.1} MiB (before the flood: RSS {:.1} MiB, VmHWM {:.1} MiB); bound limit × m_cost + baseline = {:.1} MiB",
            peak_kib as f64 / 1024.0,
            baseline_kib as f64 / 1024.0,
            peak_before_kib as f64 / 1024.0,
            (limit as u64 * m_cost_kib + baseline_kib) as f64 / 1024.0
        );
        println!(
            "  10 ms timer lateness over {} ticks: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            late.len(),
            percentile(&late, 0.5).as_secs_f64() * 1e3,
            percentile(&late, 0.99).as_secs_f64() * 1e3,
            late.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    });
    availability(limit);
}

/// An engine on `MemoryStore` with `ACCOUNTS` users, hashing on the default offload
/// (or tokio's blocking pool, see the top).
async fn flood_engine(limit: usize, policy: Policy, clock: &ManualClock) -> BenchEngine<MemoryStore> {
    let builder = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(policy)
        .max_concurrent_hashes(limit);
    let builder = match std::env::var("TWOFACTOR_FLOOD_OFFLOAD").as_deref() {
        Ok("tokio") => builder.offload(TokioOffload::new()),
        _ => builder,
    };
    let engine = builder.build().expect("engine");
    for a in 0..ACCOUNTS {
        let name = format!("user{a}");
        engine.create_account(NewAccount::new(&name, &email(&name), Role::User, PASSWORD)).await.expect("create");
    }
    engine
}

/// Milliseconds, for printing.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A real user with a remembered location during a flood of 20 × `limit` attempts.
fn availability(limit: usize) {
    let seconds = std::env::var("TWOFACTOR_FLOOD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let attackers = 20 * limit;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    rt.block_on(async move {
        let clock = ManualClock::new(Timestamp(T0));
        let policy = Policy::builder().pending_lifetime(Duration::from_secs(1800)).build().expect("policy");
        let engine = flood_engine(limit, policy, &clock).await;
        let (secret, _) = enrolled(&engine, &clock, "real").await;
        clock.set(Timestamp(clock.now().0 + 30));
        let token = remembered_token(&engine, &clock, &secret).await;
        let engine = Arc::new(engine);

        let real_login = |engine: Arc<BenchEngine<MemoryStore>>, token: String| async move {
            let start = Instant::now();
            let out = engine.begin_login("real", PASSWORD, Some(&token)).await.expect("login");
            assert!(matches!(out, LoginOutcome::Authenticated(_)), "the real user got {out:?}");
            start.elapsed()
        };
        let mut idle = Vec::new();
        for _ in 0..30 {
            idle.push(real_login(Arc::clone(&engine), token.clone()).await);
        }
        idle.sort();

        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut flood = Vec::with_capacity(attackers);
        for i in 0..attackers {
            let engine = Arc::clone(&engine);
            flood.push(tokio::spawn(async move {
                let (mut denied, mut busy) = (0usize, Vec::new());
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    let name = if (i + n).is_multiple_of(2) { format!("nobody{i}-{n}") } else { format!("user{}", n % ACCOUNTS) };
                    let start = Instant::now();
                    match engine.begin_login(&name, "not the password", None).await.expect("login") {
                        LoginOutcome::Denied => denied += 1,
                        LoginOutcome::Busy { .. } => {
                            busy.push(start.elapsed());
                            // A client told to retry later comes back soon, keeping the flood up.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                (denied, busy)
            }));
        }
        let mut real = Vec::new();
        while Instant::now() < deadline {
            real.push(real_login(Arc::clone(&engine), token.clone()).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut denied, mut busy) = (0usize, Vec::new());
        for task in flood {
            let (d, b) = task.await.expect("attacker");
            denied += d;
            busy.extend(b);
        }
        real.sort();
        busy.sort();
        let idle_median = percentile(&idle, 0.5);
        let p99 = percentile(&real, 0.99);
        println!(
            "availability: {attackers} attackers in flight for {seconds} s (max_concurrent_hashes = {limit}), load {}",
            load_average()
        );
        println!(
            "  real user (remembered location): {} logins, all authenticated; idle median {:.1} ms; under flood p50 {:.1} ms, p99 {:.1} ms = {:.2}× idle (goal ≤ 3×: {})",
            real.len(),
            ms(idle_median),
            ms(percentile(&real, 0.5)),
            ms(p99),
            p99.as_secs_f64() / idle_median.as_secs_f64(),
            match (real.is_empty(), p99 <= idle_median * 3) {
                (true, _) => "no data",
                (false, true) => "met",
                (false, false) => "NOT met",
            }
        );
        println!(
            "  attackers: {denied} evaluated (Denied), {} shed (Busy) answered in p50 {:.3} ms, p99 {:.3} ms",
            busy.len(),
            ms(percentile(&busy, 0.5)),
            ms(percentile(&busy, 0.99))
        );
    });
}
