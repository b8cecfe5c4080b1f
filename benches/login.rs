//! Engine overhead: full logins (password step + TOTP step) on `MemoryStore` against a
//! bare Argon2id verify loop at the same parameters (OWASP) and the same thread count
//! (one per core). Two bare loops: argon2's `verify_password` (which allocates its
//! 19 MiB on every call) and Argon2 into reused memory (the real limit; issue 17's
//! denominator). Target: login throughput ≥ 95% of the reused-memory loop's, measured
//! in one run with the contenders interleaved.
//!
//! `cargo bench --all-features --bench login -- --measurement-time 10`

#[path = "common/mod.rs"]
mod common;

use std::sync::Mutex;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twofactor::offload::Inline;
use twofactor::store::MemoryStore;
use twofactor::{HashParams, ManualClock, Timestamp};

fn bench(c: &mut Criterion) {
    let threads = cores();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    let clock = ManualClock::new(Timestamp(T0));
    let ticker = Ticker::new(clock.clone());
    let engine = engine(MemoryStore::new(), Inline, &clock);
    // One account per thread, so each thread's replay state is its own.
    let accounts: Vec<(String, Vec<u8>, Mutex<u64>)> = (0..threads)
        .map(|t| {
            let name = format!("user{t}");
            let (secret, step) = rt.block_on(enrolled(&engine, &clock, &name));
            (name, secret, Mutex::new(step))
        })
        .collect();
    let hash = phc(PASSWORD.as_bytes(), HashParams::OWASP);

    let mut g = c.benchmark_group(format!("login_{threads}_threads"));
    g.sample_size(10).throughput(Throughput::Elements(1));
    let bare = |iters: u64| {
        on_threads(threads, iters, |_, _| {
            let hash = &hash;
            async move { assert!(bare_verify(PASSWORD.as_bytes(), hash)) }
        })
    };
    let logins = |iters: u64| {
        on_threads(threads, iters, |t, _| {
            let (engine, ticker, accounts) = (&engine, &ticker, &accounts);
            async move {
                let (name, secret, last) = &accounts[t];
                let mut last_step = *last.lock().expect("last");
                full_login(engine, ticker, name, secret, &mut last_step).await;
                *last.lock().expect("last") = last_step;
            }
        })
    };
    let reused = |iters: u64| {
        on_threads(threads, iters, |_, _| {
            let hash = &hash;
            async move { assert!(bare_verify_reused(PASSWORD.as_bytes(), hash)) }
        })
    };
    g.bench_function("bare_argon2_verify", |b| b.iter_custom(bare));
    g.bench_function("bare_argon2_reused_memory", |b| b.iter_custom(reused));
    g.bench_function("full_login_password_then_totp", |b| b.iter_custom(logins));
    g.finish();

    const BURST: u32 = 20;
    let (bare_op, login_op) = paired(9, || bare(BURST.into()) / BURST, || logins(BURST.into()) / BURST);
    println!(
        "login_{threads}_threads/paired (9 alternating bursts of {BURST}): bare {:.1}/s, full logins {:.1}/s, ratio {:.3}",
        1.0 / bare_op.as_secs_f64(),
        1.0 / login_op.as_secs_f64(),
        bare_op.as_secs_f64() / login_op.as_secs_f64()
    );
    let (reused_op, login_op) = paired(15, || reused(BURST.into()) / BURST, || logins(BURST.into()) / BURST);
    println!(
        "login_{threads}_threads/paired_reused (15 alternating bursts of {BURST}): reused-memory Argon2 {:.1}/s, \
         full logins {:.1}/s, ratio {:.3} (goal ≥ 0.95)",
        1.0 / reused_op.as_secs_f64(),
        1.0 / login_op.as_secs_f64(),
        reused_op.as_secs_f64() / login_op.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
