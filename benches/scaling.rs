//! Scaling on a shared store: full logins per second (password step + TOTP step) at 1,
//! 2, 4 and 8 concurrent clients on a tokio multi-thread runtime, with the engine's
//! default offload (`HashThreads`, one thread per hashing slot;
//! `TWOFACTOR_SCALING_OFFLOAD=tokio` measures `TokioOffload` instead), beside the
//! Argon2-bound limit of the machine (OWASP Argon2id into reused memory on one thread
//! per core). The two are interleaved burst by burst and the figure is the median of
//! the per-round ratios. Target (issue 17): ≥ 90% of that limit on SQLite at 4 clients
//! and on PostgreSQL at 2, 4 and 8.
//!
//! Two stores, both durable: a `SqliteStore` file (WAL, `synchronous = FULL`) in a
//! temporary directory, and a `PostgresStore` at `TWOFACTOR_TEST_DATABASE_URL` (start
//! one with fsync on: `TWOFACTOR_PG_DURABLE=1 scripts/with-services …`).
//! `TWOFACTOR_SCALING_STORES=sqlite` (or `postgres`, or `memory` for `MemoryStore`)
//! runs some of them. The documents' size: see `common::engine`.
//!
//! `TWOFACTOR_PG_DURABLE=1 scripts/with-services cargo bench --all-features --bench scaling -- --measurement-time 2`

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use twofactor::offload::{HashThreads, TokioOffload};
use twofactor::store::{PostgresStore, SqliteStore, UserStore};
use twofactor::{HashParams, ManualClock, Timestamp};

/// The PostgreSQL store under test.
async fn postgres() -> PostgresStore {
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
    let engine = match std::env::var("TWOFACTOR_SCALING_OFFLOAD").as_deref() {
        Ok("tokio") => engine(store, TokioOffload::new(), &clock),
        _ => engine(store, HashThreads::new(cores()).expect("hash threads"), &clock),
    };
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
    let stores = std::env::var("TWOFACTOR_SCALING_STORES").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    if stores.contains("memory") {
        // Not a target: shows what the runtime and the offload cost without a store.
        run(c, &rt, "memory", twofactor::store::MemoryStore::new());
    }
    if stores.contains("sqlite") {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = rt.block_on(SqliteStore::open(dir.path().join("scaling.db"))).expect("open SQLite");
        run(c, &rt, "sqlite", store);
    }
    if stores.contains("postgres") {
        let store = rt.block_on(postgres());
        run(c, &rt, "postgres", store);
    }
}

fn run<S: UserStore + 'static>(c: &mut Criterion, rt: &tokio::runtime::Runtime, label: &str, store: S) {
    let cores = cores();
    let (engine, ticker, clients) = rt.block_on(async { setup(store, 8).await });
    let hash = phc(PASSWORD.as_bytes(), HashParams::OWASP);

    let mut g = c.benchmark_group(format!("scaling_{label}"));
    g.sample_size(10).throughput(Throughput::Elements(1));
    let bare = |iters: u64| {
        on_threads(cores, iters, |_, _| {
            let hash = &hash;
            async move { assert!(bare_verify_reused(PASSWORD.as_bytes(), hash)) }
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
    g.bench_function(BenchmarkId::new("argon2_reused_memory_limit", cores), |b| b.iter_custom(bare));
    for n in [1usize, 2, 4, 8] {
        g.bench_function(BenchmarkId::new("full_logins_clients", n), |b| b.iter_custom(|iters| logins(n, iters)));
    }
    g.finish();

    const BURST: u32 = 32;
    const ROUNDS: usize = 15;
    for n in [1usize, 2, 4, 8] {
        let load = load_average();
        let (ratio, bare_op, login_op) =
            paired_ratio(ROUNDS, || bare(BURST.into()) / BURST, || logins(n, BURST.into()) / BURST);
        println!(
            "scaling_{label}/paired clients {n} ({ROUNDS} rounds of {BURST}, load {load} → {}): Argon2 limit on {cores} threads {:.1}/s, logins {:.1}/s, {:.1}% of the limit (median of the per-round ratios)",
            load_average(),
            1.0 / bare_op.as_secs_f64(),
            1.0 / login_op.as_secs_f64(),
            100.0 * ratio
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
