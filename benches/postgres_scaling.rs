//! Scaling on a shared store: full logins per second (password step + TOTP step) at 1,
//! 2, 4 and 8 concurrent clients on a tokio multi-thread runtime with `TokioOffload`,
//! beside the Argon2-bound limit of the machine (bare OWASP verifies on one thread per
//! core). Target: ≥ 90% of that limit.
//!
//! The store is a `PostgresStore` at `TWOFACTOR_TEST_DATABASE_URL` (start one with
//! `scripts/with-services`).
//!
//! `scripts/with-services cargo bench --all-features --bench postgres_scaling -- --measurement-time 10`

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use twofactor::offload::TokioOffload;
use twofactor::{HashParams, ManualClock, PostgresStore, Timestamp, UserStore};

/// The store under test.
async fn store() -> PostgresStore {
    let url = std::env::var("TWOFACTOR_TEST_DATABASE_URL")
        .expect("TWOFACTOR_TEST_DATABASE_URL must point at a PostgreSQL database (use scripts/with-services)");
    PostgresStore::connect(&url).await.expect("connect to PostgreSQL")
}

struct Client {
    name: String,
    secret: Vec<u8>,
    last_step: tokio::sync::Mutex<u64>,
}

async fn setup<S: UserStore>(store: S, clients: usize) -> (Arc<BenchEngine<S>>, Arc<Ticker>, Arc<Vec<Client>>) {
    let clock = ManualClock::new(Timestamp(T0));
    let engine = engine(store, TokioOffload::new(), &clock);
    let run = format!("{:x}", std::process::id());
    let mut accounts = Vec::new();
    for c in 0..clients {
        let name = format!("scale-{run}-{c}");
        let (secret, step) = enrolled(&engine, &clock, &name).await;
        accounts.push(Client { name, secret, last_step: tokio::sync::Mutex::new(step) });
    }
    (Arc::new(engine), Arc::new(Ticker::new(clock)), Arc::new(accounts))
}

fn bench(c: &mut Criterion) {
    let cores = cores();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    let (engine, ticker, clients) = rt.block_on(async { setup(store().await, 8).await });
    let hash = phc(PASSWORD.as_bytes(), HashParams::OWASP);

    let mut g = c.benchmark_group("scaling");
    g.sample_size(10).throughput(Throughput::Elements(1));
    let bare = |iters: u64| {
        on_threads(cores, iters, |_, _| {
            let hash = &hash;
            async move { assert!(bare_verify(PASSWORD.as_bytes(), hash)) }
        })
    };
    let logins = |n: usize, iters: u64| {
        let start = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for client in 0..n {
                let share = iters / n as u64 + u64::from((client as u64) < iters % n as u64);
                let (engine, ticker, clients) = (engine.clone(), ticker.clone(), clients.clone());
                tasks.push(tokio::spawn(async move {
                    let me = &clients[client];
                    let mut last = me.last_step.lock().await;
                    for _ in 0..share {
                        full_login(&engine, &ticker, &me.name, &me.secret, &mut last).await;
                    }
                }));
            }
            for task in tasks {
                task.await.expect("client");
            }
        });
        start.elapsed()
    };
    g.bench_function(BenchmarkId::new("bare_argon2_limit", cores), |b| b.iter_custom(bare));
    for n in [1usize, 2, 4, 8] {
        g.bench_function(BenchmarkId::new("full_logins_clients", n), |b| b.iter_custom(|iters| logins(n, iters)));
    }
    g.finish();

    const BURST: u32 = 24;
    for n in [1usize, 2, 4, 8] {
        let (bare_op, login_op) = paired(5, || bare(BURST.into()) / BURST, || logins(n, BURST.into()) / BURST);
        println!(
            "scaling/paired clients {n} (5 alternating bursts of {BURST}): Argon2 limit on {cores} threads {:.1}/s, logins {:.1}/s, {:.1}% of the limit",
            1.0 / bare_op.as_secs_f64(),
            1.0 / login_op.as_secs_f64(),
            100.0 * bare_op.as_secs_f64() / login_op.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
