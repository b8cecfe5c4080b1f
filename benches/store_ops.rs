//! Store throughput: a read by id and by login, and a read by login followed by a
//! compare-and-swap of the user's credential document (what one login step costs the
//! store; the document is a real one, with confirmed 2FA and a backup code), on a
//! SQLite file in WAL mode and on PostgreSQL (when `TWOFACTOR_TEST_DATABASE_URL` is
//! set; otherwise a note is printed and it is skipped).
//!
//! `cargo bench --all-features --bench store_ops`, or under `scripts/with-services`
//! for PostgreSQL too.

#[path = "../tests/store_support/mod.rs"]
mod store_support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twofactor::mail::MemoryMailer;
use twofactor::store::{Document, SqliteStore, Swap, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{Clock, Engine, KeyRing, ManualClock, NewAccount, Policy, Role, Timestamp, UserId};

/// Makes an account with confirmed 2FA (one backup code) through the engine, so the
/// document has the shape of a real one.
async fn enrolled_account<S: UserStore>(store: S) -> UserId {
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

/// The enrolled account's document, and the same document with one failed login
/// counted: the two states a login step swaps between.
async fn two_documents<S: UserStore>(store: &S, id: UserId) -> [Document; 2] {
    let user = store.find_by_id(id).await.expect("read").expect("exists");
    let document = user.credentials.expect("the engine wrote a document").document;
    let mut failed: serde_json::Value = serde_json::from_str(document.as_json()).expect("JSON");
    failed["throttle"] = serde_json::json!({ "failures": 1 });
    [document, Document::from_json(failed.to_string())]
}

fn bench_store<S: UserStore + Clone>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: S) {
    let id = rt.block_on(enrolled_account(store.clone()));
    let documents = rt.block_on(two_documents(&store, id));
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("read", |b| {
        b.iter(|| rt.block_on(async { store.find_by_id(id).await.expect("read").expect("exists") }))
    });
    group.bench_function("read_by_login", |b| {
        b.iter(|| rt.block_on(async { store.find_by_login("bench").await.expect("read").expect("exists") }))
    });
    // What a login step costs the store: read the user by login, swap its document.
    let mut turn = 0_usize;
    group.bench_function("read+cas", |b| {
        b.iter(|| {
            turn += 1;
            rt.block_on(async {
                let current = store.find_by_login("bench").await.expect("read").expect("exists");
                let version = current.credentials.expect("a document").version;
                let swap = store.compare_and_swap(id, version, &documents[turn % 2]).await.expect("cas");
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
            twofactor::store::PostgresStore::connect(&store_support::pg_schema_url().await).await.expect("postgres")
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
