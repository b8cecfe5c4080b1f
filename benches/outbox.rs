//! Draining the outbox (issue 13, item 5): 1,000 users, each with one queued message
//! (the backup code their enrollment mailed, sealed under the key ring), delivered by
//! one `Engine::deliver_due(1000)` on a SQLite file (WAL, `synchronous = FULL`): per
//! message, the due query's share, a read, a claim by compare-and-swap, the code
//! unsealed, the send, a read, and the settling compare-and-swap.
//!
//! Mailers: `MemoryMailer` (renders the default templates, keeps the mail in memory:
//! the outbox's own cost) and `FileOutbox` (composes the RFC 5322 mail and writes one
//! file per message, as the CLI does).
//!
//! The database with the 1,000 queued messages is built once; every measured drain
//! starts from a fresh copy of it (made, with the engine, outside the timing).
//!
//! `cargo bench --bench outbox --features sqlite` (criterion prints the time to drain
//! all 1,000, and the throughput in messages per second).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use twofactor::mail::{DefaultRenderer, FileOutbox};
use twofactor::mail::{Mailer, MemoryMailer};
use twofactor::store::SqliteStore;
use twofactor::totp::{TotpParams, generate};
use twofactor::{ConfirmOutcome, Engine, KeyRing, ManualClock, NewAccount, Policy, Role, Timestamp};

const USERS: usize = 1_000;
const T0: u64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery staple";

fn policy() -> Policy {
    // Hashing is not what is measured (a drain hashes nothing); it only speeds up the
    // one-off set-up.
    Policy::builder().issuer("Acme").danger_fast_hashing().build().expect("policy")
}

/// The database with 1,000 queued messages, and the key ring they are sealed under.
struct Template {
    dir: tempfile::TempDir,
    db: PathBuf,
    keys: KeyRing,
    copies: AtomicUsize,
}

impl Template {
    fn build(rt: &tokio::runtime::Runtime) -> Template {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("template.db");
        let keys = KeyRing::ephemeral().expect("keys");
        rt.block_on(async {
            let store = SqliteStore::open(&db).await.expect("open");
            let clock = ManualClock::new(Timestamp(T0));
            let engine = Engine::builder(store.clone(), MemoryMailer::new(), keys.clone())
                .clock(clock)
                .policy(policy())
                .build()
                .expect("engine");
            for i in 0..USERS {
                let name = format!("user{i:04}");
                let email = format!("{name}@example.test");
                let id =
                    engine.create_account(NewAccount::new(&name, &email, Role::User, PASSWORD)).await.expect("create");
                let started = engine.start_enrollment(id).await.expect("enroll");
                let secret =
                    data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
                let code = generate(&secret, &TotpParams::default(), T0);
                let outcome = engine.confirm_enrollment(id, code.expose()).await.expect("confirm");
                assert!(matches!(outcome, ConfirmOutcome::Confirmed { .. }), "{outcome:?}");
            }
            drop(engine);
            // Closing the last connection checkpoints the WAL into the file.
            store.pool().close().await;
        });
        Template { dir, db, keys, copies: AtomicUsize::new(0) }
    }

    /// A fresh copy of the database (its WAL too, if one was left).
    fn copy(&self) -> PathBuf {
        let n = self.copies.fetch_add(1, Ordering::Relaxed);
        let copy = self.dir.path().join(format!("drain-{n}.db"));
        std::fs::copy(&self.db, &copy).expect("copy the database");
        for suffix in ["-wal", "-shm"] {
            let from = with_suffix(&self.db, suffix);
            if from.exists() {
                std::fs::copy(&from, with_suffix(&copy, suffix)).expect("copy the WAL");
            }
        }
        copy
    }

    /// An engine over a fresh copy, its clock at the time the messages were queued.
    fn engine<M: Mailer>(&self, rt: &tokio::runtime::Runtime, mailer: M) -> Engine<SqliteStore, M, ManualClock> {
        let store = rt.block_on(SqliteStore::open(self.copy())).expect("open the copy");
        Engine::builder(store, mailer, self.keys.clone())
            .clock(ManualClock::new(Timestamp(T0)))
            .policy(policy())
            .build()
            .expect("engine")
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Drains every queued message; all must be sent.
fn drain<M: Mailer>(rt: &tokio::runtime::Runtime, engine: &Engine<SqliteStore, M, ManualClock>) {
    let report = rt.block_on(engine.deliver_due(USERS)).expect("deliver");
    assert_eq!((report.sent, report.users), (USERS as u32, USERS as u32), "{report:?}");
}

fn file_outbox(dir: &Path) -> FileOutbox {
    FileOutbox::new(dir)
        .expect("outbox")
        .with_renderer(DefaultRenderer::for_policy(&policy()).with_support("security@example.test"))
        .with_from("Acme Security <no-reply@example.test>")
        .expect("from")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let template = Template::build(&rt);

    // Once, untimed: a drain sends exactly one message per user, and leaves nothing due.
    let mailer = MemoryMailer::new();
    let engine = template.engine(&rt, mailer.clone());
    drain(&rt, &engine);
    assert_eq!(mailer.outbox().len(), USERS);
    assert!(rt.block_on(engine.deliver_due(USERS)).expect("deliver").messages.is_empty());
    drop(engine);

    let mut g = c.benchmark_group("outbox_drain_1000");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(USERS as u64));
    g.bench_function("sqlite/memory_mailer", |b| {
        b.iter_batched(
            || template.engine(&rt, MemoryMailer::new()),
            |engine| {
                drain(&rt, &engine);
                engine // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });
    let outboxes = tempfile::tempdir().expect("temp dir");
    let runs = AtomicUsize::new(0);
    g.bench_function("sqlite/file_outbox", |b| {
        b.iter_batched(
            || {
                let dir = outboxes.path().join(format!("run-{}", runs.fetch_add(1, Ordering::Relaxed)));
                (template.engine(&rt, file_outbox(&dir)), dir)
            },
            |(engine, dir)| {
                drain(&rt, &engine);
                (engine, dir)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let written = std::fs::read_dir(outboxes.path().join("run-0")).expect("an outbox").count();
    assert_eq!(written, USERS, "one file per message");
}

criterion_group!(benches, bench);
criterion_main!(benches);
