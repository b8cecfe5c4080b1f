//! Store throughput: a read, and a read followed by a compare-and-swap (what one
//! login step costs the store), on a SQLite file in WAL mode and on PostgreSQL (when
//! `TWOFACTOR_TEST_DATABASE_URL` is set; otherwise a note is printed and it is skipped).
//!
//! `cargo bench --all-features --bench store_ops`, or under `scripts/with-services`
//! for PostgreSQL too.

#[path = "../tests/store_support/mod.rs"]
mod store_support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twofactor::{
    AccountId, Clock, Engine, KeyRing, ManualClock, MemoryMailer, NewAccount, Policy, Role, SqliteStore, Swap,
    Timestamp, TotpParams, UserStore,
};

/// Makes an account with confirmed 2FA (one backup code) through the engine, so the
/// record has the shape of a real one.
async fn enrolled_account<S: UserStore>(store: S) -> AccountId {
    let clock = ManualClock::new(Timestamp(1_800_000_000));
    let policy = Policy::builder().danger_fast_hashing().build().expect("policy");
    let engine = Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(policy)
        .build()
        .expect("engine");
    let id = engine
        .create_account(NewAccount::new("bench", "bench@example.test", Role::User, "correct horse battery"))
        .await
        .expect("create");
    let started = engine.start_enrollment(id).await.expect("enroll");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let code = twofactor::totp::generate(&secret, &TotpParams::default(), clock.now().0);
    engine.confirm_enrollment(id, code.expose()).await.expect("confirm");
    id
}

fn bench_store<S: UserStore + Clone>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: S) {
    let id = rt.block_on(enrolled_account(store.clone()));
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("read", |b| {
        b.iter(|| rt.block_on(async { store.find_by_id(id).await.expect("read").expect("exists") }))
    });
    group.bench_function("read+cas", |b| {
        b.iter(|| {
            rt.block_on(async {
                let current = store.find_by_id(id).await.expect("read").expect("exists");
                let mut next = current.record;
                next.throttle.failures = next.throttle.failures.wrapping_add(1) % 3;
                let swap = store.compare_and_swap(current.version, &next).await.expect("cas");
                assert!(matches!(swap, Swap::Swapped { .. }));
            })
        })
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (_dir, path) = store_support::temp_db();
    let sqlite = rt.block_on(SqliteStore::open(&path)).expect("sqlite");
    bench_store(c, &rt, "sqlite_file_wal", sqlite);

    #[cfg(feature = "postgres")]
    if std::env::var_os("TWOFACTOR_TEST_DATABASE_URL").is_some() {
        let pg = rt.block_on(async {
            twofactor::PostgresStore::connect(&store_support::pg_schema_url().await).await.expect("postgres")
        });
        bench_store(c, &rt, "postgres", pg);
    } else {
        eprintln!("note: TWOFACTOR_TEST_DATABASE_URL is not set; skipping the PostgreSQL benchmarks");
    }
    #[cfg(not(feature = "postgres"))]
    eprintln!("note: built without the `postgres` feature; skipping the PostgreSQL benchmarks");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = stores
}
criterion_main!(benches);
