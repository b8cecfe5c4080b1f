//! Flood: 500 concurrent login attempts (half unknown users, half wrong passwords) at
//! the default policy on a tokio multi-thread runtime with `TokioOffload`, while an
//! unrelated task asks for a 10 ms timer tick over and over. Prints the peak RSS
//! (`VmHWM`), the bound `limit × m_cost + baseline`, and how late the ticks were.
//! Not a criterion benchmark: one flood is one measurement.
//!
//! `cargo bench --all-features --bench flood` (set `TWOFACTOR_FLOOD_LIMIT=n` to
//! change `max_concurrent_hashes`; default: the number of cores).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use twofactor::offload::TokioOffload;
use twofactor::{
    Engine, HashParams, KeyRing, LoginOutcome, ManualClock, MemoryMailer, MemoryStore, NewAccount, Policy, Role,
    Timestamp,
};

const ATTEMPTS: usize = 500;
const ACCOUNTS: usize = 10;
const TICK: Duration = Duration::from_millis(10);

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).expect("field")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let limit = std::env::var("TWOFACTOR_FLOOD_LIMIT").ok().and_then(|v| v.parse().ok()).unwrap_or_else(cores);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    rt.block_on(async move {
        let clock = ManualClock::new(Timestamp(T0));
        let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .clock(clock)
            .policy(Policy::default())
            .offload(TokioOffload::new())
            .max_concurrent_hashes(limit)
            .build()
            .expect("engine");
        for a in 0..ACCOUNTS {
            let name = format!("user{a}");
            engine.create_account(NewAccount::new(&name, &email(&name), Role::User, PASSWORD)).await.expect("create");
        }
        let engine = Arc::new(engine);
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
                assert!(matches!(out, LoginOutcome::Denied));
            }));
        }
        for attempt in attempts {
            attempt.await.expect("attempt");
        }
        let flood = start.elapsed();
        done.store(true, Ordering::Relaxed);
        let mut late = pinger.await.expect("pinger");
        late.sort();

        let peak_kib = status_kib("VmHWM:");
        let m_cost_kib = u64::from(HashParams::OWASP.m_cost);
        println!("flood: {ATTEMPTS} concurrent login attempts, max_concurrent_hashes = {limit}, cores = {}", cores());
        println!(
            "  time {:.2} s, {:.1} attempts/s",
            flood.as_secs_f64(),
            ATTEMPTS as f64 / flood.as_secs_f64()
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
}
