//! Hashing memory (issue 17). Not a criterion benchmark: each scenario is one
//! measurement, run in a fresh child process of this binary so that its peak RSS
//! (`VmHWM`) is its own.
//!
//! 1. `rss_inline`, `rss_tokio`, `rss_threads`: at the default (OWASP) policy with
//!    `max_concurrent_hashes(2)`, on a 4-worker tokio runtime, create 300 accounts (all
//!    at once) and then change 50 passwords (all at once), with the `Inline` offload,
//!    with `TokioOffload` and with `HashThreads` (the default: one thread per slot).
//!    Prints the RSS before, the peak, bound × m_cost and the RSS afterwards, and
//!    PASS/FAIL for the two goals: peak ≤ bound × m_cost + 50 MiB, and the RSS
//!    afterwards within 50 MiB of the RSS before.
//! 2. `login_cost`: the engine's wrong-password `begin_login` (Inline offload, default
//!    bound) against a bare `Argon2::hash_password_into_with_memory` loop on reused
//!    memory, and against the same loop plus a wipe (zeroize) of the memory after each
//!    hash, with 1 and 2 clients, alternated round by round; prints the median of the
//!    per-round ratios.
//!
//! `cargo bench --all-features --bench memory` (append `-- rss` or `-- login` to run
//! only those scenarios).

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use common::*;
use twofactor::mail::MemoryMailer;
use twofactor::offload::{HashThreads, Inline, Offload, TokioOffload};
use twofactor::store::MemoryStore;
use twofactor::{Engine, HashParams, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, Timestamp};

/// Names the scenario a child process runs.
const SCENARIO_VAR: &str = "TWOFACTOR_MEMORY_SCENARIO";
const ACCOUNTS: usize = 300;
const CHANGES: usize = 50;
const BOUND: usize = 2;
const WORKERS: usize = 4;
const SLACK_MIB: f64 = 50.0;
/// Rounds of the login-cost comparison (`TWOFACTOR_MEMORY_ROUNDS=n` to change), and timed
/// operations per client per arm and round.
const ROUNDS: usize = 20;
const PER_ROUND: usize = 8;

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).expect("field")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    if let Ok(scenario) = std::env::var(SCENARIO_VAR) {
        match scenario.as_str() {
            "rss_inline" => rss_child(Inline),
            "rss_tokio" => rss_child(TokioOffload::new()),
            "rss_threads" => rss_child(HashThreads::new(BOUND).expect("hash threads")),
            other => panic!("unknown scenario {other}"),
        }
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    for (scenario, offload) in
        [("rss_inline", "Inline"), ("rss_tokio", "TokioOffload"), ("rss_threads", "HashThreads (default)")]
    {
        if wanted(scenario) {
            rss_parent(scenario, offload);
        }
    }
    if wanted("login_cost") {
        login_cost();
    }
}

/// Runs `scenario` in a child process and reports its figures against the goals.
fn rss_parent(scenario: &str, offload: &str) {
    let load = load_average();
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .env(SCENARIO_VAR, scenario)
        .output()
        .expect("run the scenario in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| -> u64 {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .flat_map(str::split_whitespace)
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {stdout}"))
    };
    let (start, built, peak, end) = (field("start_kib"), field("built_kib"), field("peak_kib"), field("end_kib"));
    let (secs, threads) = (field("millis") as f64 / 1e3, field("threads"));
    let bound_kib = BOUND as u64 * u64::from(HashParams::OWASP.m_cost);
    let peak_ok = mib(peak) <= mib(bound_kib) + SLACK_MIB;
    let end_ok = mib(end) <= mib(start) + SLACK_MIB;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "memory/{scenario}: {offload} offload, max_concurrent_hashes = {BOUND}, {WORKERS} workers, {ACCOUNTS} accounts created + {CHANGES} passwords changed in {secs:.1} s (load {load}, {threads} threads at the end)"
    );
    println!(
        "  RSS at start {:.1} MiB, after build {:.1} MiB, peak (VmHWM) {:.1} MiB, afterwards {:.1} MiB; bound × m_cost = {:.1} MiB",
        mib(start),
        mib(built),
        mib(peak),
        mib(end),
        mib(bound_kib)
    );
    println!(
        "  goal peak ≤ bound × m_cost + {SLACK_MIB} MiB = {:.1} MiB: {} (peak − start = {:.1} MiB)",
        mib(bound_kib) + SLACK_MIB,
        verdict(peak_ok),
        mib(peak) - mib(start)
    );
    println!(
        "  goal RSS afterwards ≤ start + {SLACK_MIB} MiB = {:.1} MiB: {} (afterwards − start = {:.1} MiB)",
        mib(start) + SLACK_MIB,
        verdict(end_ok),
        mib(end) - mib(start)
    );
}

/// The child: builds an engine at the default policy with `offload` and the bound,
/// creates the accounts and changes the passwords, all requests in flight at once.
fn rss_child(offload: impl Offload) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_all().build().expect("rt");
    rt.block_on(async move {
        let start_kib = status_kib("VmRSS:");
        let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .clock(ManualClock::new(Timestamp(T0)))
            .policy(Policy::default())
            .offload(offload)
            .max_concurrent_hashes(BOUND)
            .build()
            .expect("engine");
        let engine = Arc::new(engine);
        let built_kib = status_kib("VmRSS:");
        let began = Instant::now();
        let creations: Vec<_> = (0..ACCOUNTS)
            .map(|i| {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move {
                    let name = format!("user{i}");
                    let password = format!("{PASSWORD} {i}");
                    engine.create_account(NewAccount::new(&name, &email(&name), Role::User, &password)).await
                })
            })
            .collect();
        let mut ids = Vec::with_capacity(ACCOUNTS);
        for task in creations {
            ids.push(task.await.expect("join").expect("create"));
        }
        let changes: Vec<_> = ids
            .iter()
            .take(CHANGES)
            .enumerate()
            .map(|(i, &id)| {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move { engine.change_password(id, &format!("{PASSWORD} changed {i}")).await })
            })
            .collect();
        for task in changes {
            task.await.expect("join").expect("change password");
        }
        let millis = began.elapsed().as_millis();
        let end_kib = status_kib("VmRSS:");
        let peak_kib = status_kib("VmHWM:");
        println!(
            "RESULT start_kib={start_kib} built_kib={built_kib} peak_kib={peak_kib} end_kib={end_kib} millis={millis} threads={}",
            thread_count()
        );
        drop(engine);
    });
}

fn thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()).unwrap_or(0)
}

/// The three workloads compared, per client.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Arm {
    /// `hash_password_into_with_memory` on the client's own reused memory.
    Bare,
    /// The same, then a zeroize of the memory (what a wipe after every hash costs).
    BareWiped,
    /// The engine's wrong-password `begin_login` (full path: read, Argon2 verify, CAS of
    /// the failure count), with an untimed right login after every 4 failures so the
    /// throttle never starts.
    Engine,
}

fn login_cost() {
    let rounds: usize = std::env::var("TWOFACTOR_MEMORY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(ROUNDS);
    let clock = ManualClock::new(Timestamp(T0));
    let engine = engine(MemoryStore::new(), Inline, &clock);
    let setup = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    let clients_max = 2;
    for c in 0..clients_max {
        let name = format!("client{c}");
        setup
            .block_on(engine.create_account(NewAccount::new(&name, &email(&name), Role::User, PASSWORD)))
            .expect("create");
    }
    let params = HashParams::OWASP;
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(params.m_cost, params.t_cost, params.p_cost, None).expect("params"),
    );
    let blocks = argon.params().block_count();
    let mut memories: Vec<Vec<Block>> = (0..clients_max).map(|_| vec![Block::default(); blocks]).collect();
    let failures: Vec<std::sync::Mutex<u32>> = (0..clients_max).map(|_| std::sync::Mutex::new(0)).collect();

    for clients in 1..=clients_max {
        let load = load_average();
        // One burst: every client runs `PER_ROUND` timed operations of `arm` on its own
        // thread; returns the mean time per operation over all clients.
        let mut burst = |arm: Arm| -> Duration {
            let total: Duration = std::thread::scope(|s| {
                let handles: Vec<_> = memories
                    .iter_mut()
                    .zip(&failures)
                    .take(clients)
                    .enumerate()
                    .map(|(c, (memory, failures))| {
                        let (engine, argon) = (&engine, &argon);
                        s.spawn(move || {
                            let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
                            let name = format!("client{c}");
                            let mut out = [0u8; 32];
                            let mut total = Duration::ZERO;
                            for _ in 0..PER_ROUND {
                                match arm {
                                    Arm::Bare | Arm::BareWiped => {
                                        let start = Instant::now();
                                        argon
                                            .hash_password_into_with_memory(
                                                b"not the password",
                                                b"0123456789abcdef",
                                                &mut out,
                                                &mut memory[..],
                                            )
                                            .expect("hash");
                                        if arm == Arm::BareWiped {
                                            memory.iter_mut().for_each(zeroize::Zeroize::zeroize);
                                        }
                                        total += start.elapsed();
                                    }
                                    Arm::Engine => {
                                        let mut failed = failures.lock().expect("failures");
                                        if *failed == 4 {
                                            let out = rt.block_on(engine.begin_login(&name, PASSWORD, None));
                                            assert!(
                                                matches!(
                                                    out,
                                                    Ok(LoginOutcome::Authenticated(_)
                                                        | LoginOutcome::EnrollmentRequired(_))
                                                ),
                                                "{out:?}"
                                            );
                                            *failed = 0;
                                        }
                                        let start = Instant::now();
                                        let out = rt.block_on(engine.begin_login(&name, "not the password", None));
                                        total += start.elapsed();
                                        assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");
                                        *failed += 1;
                                    }
                                }
                            }
                            total
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("client")).sum()
            });
            total / (clients * PER_ROUND) as u32
        };
        let (mut engine_ratios, mut wiped_ratios) = (Vec::new(), Vec::new());
        let (mut bare_times, mut engine_times) = (Vec::new(), Vec::new());
        burst(Arm::Engine); // warm-up: the engine's pool, page faults
        for round in 0..rounds {
            // Alternate the order so neither arm always follows the other.
            let mut times = [Duration::ZERO; 3];
            let order = if round % 2 == 0 {
                [Arm::Bare, Arm::BareWiped, Arm::Engine]
            } else {
                [Arm::Engine, Arm::BareWiped, Arm::Bare]
            };
            for arm in order {
                let i = match arm {
                    Arm::Bare => 0,
                    Arm::BareWiped => 1,
                    Arm::Engine => 2,
                };
                times[i] = burst(arm);
            }
            engine_ratios.push(times[2].as_secs_f64() / times[0].as_secs_f64());
            wiped_ratios.push(times[1].as_secs_f64() / times[0].as_secs_f64());
            bare_times.push(times[0]);
            engine_times.push(times[2]);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        bare_times.sort();
        engine_times.sort();
        println!(
            "memory/login_cost, {clients} client(s), engine bound {} (load {load} at start, {} at end): {rounds} rounds of {PER_ROUND} per client",
            cores(),
            load_average()
        );
        println!(
            "  medians per operation: bare Argon2 on reused memory {:.2} ms, engine wrong-password login {:.2} ms",
            bare_times[rounds / 2].as_secs_f64() * 1e3,
            engine_times[rounds / 2].as_secs_f64() * 1e3
        );
        println!(
            "  median of paired ratios: engine / bare {:.3}; (bare + wipe after each hash) / bare {:.3}",
            median(&mut engine_ratios),
            median(&mut wiped_ratios)
        );
    }
}
