//! Where a full login's time goes (issue 17, goal 1): at 1, 2 and 4 concurrent clients
//! on a tokio multi-thread runtime with the default offload, each step's mean wall
//! time, each store call's, the hash job's own wall time on its thread, how often a
//! hashing thread was preempted, and the CPU each login costs by process: PostgreSQL's
//! processes, the hashing threads, and the rest of this process (tokio workers,
//! sqlx, the engine). A diagnostic beside `benches/scaling.rs`, which gives the
//! ratios; Linux only (it reads `/proc`).
//!
//! `TWOFACTOR_PG_DURABLE=1 scripts/with-services cargo bench --all-features --bench login_phases`
//! (`TWOFACTOR_PHASES_STORE=sqlite` or `memory` for another store;
//! `TWOFACTOR_PHASES_CLIENTS=2,4` for other client counts).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use twofactor::offload::{HashThreads, Job, JobFuture, Offload};
use twofactor::store::{BoxStore, Document, MemoryStore, PostgresStore, SqliteStore, Swap, UserRecord, UserStore};
use twofactor::totp::{TotpParams, generate};
use twofactor::{Clock, LoginOutcome, ManualClock, SecondFactor, SecondFactorOutcome, StoreError, Timestamp, UserId};

const LOGINS_PER_CLIENT: u64 = 150;

/// A running mean of durations.
#[derive(Default)]
struct Mean {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Mean {
    fn add(&self, d: Duration) {
        self.count.fetch_add(1, Relaxed);
        self.nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn since(&self, start: Instant) {
        self.add(start.elapsed());
    }

    /// (calls, mean µs), and starts over.
    fn take(&self) -> (u64, f64) {
        let (count, nanos) = (self.count.swap(0, Relaxed), self.nanos.swap(0, Relaxed));
        (count, if count == 0 { 0.0 } else { nanos as f64 / count as f64 / 1e3 })
    }
}

#[derive(Default)]
struct Timings {
    by_id: Mean,
    by_login: Mean,
    swap: Mean,
    hash_job: Mean,
    password_step: Mean,
    second_step: Mean,
}

/// A store that times its reads and swaps.
struct Timed {
    store: BoxStore,
    t: Arc<Timings>,
}

impl UserStore for Timed {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let start = Instant::now();
        let found = self.store.find_by_id(id).await;
        self.t.by_id.since(start);
        found
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let start = Instant::now();
        let found = self.store.find_by_login(login).await;
        self.t.by_login.since(start);
        found
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.store.insert_document(id, document).await
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        let start = Instant::now();
        let swapped = self.store.compare_and_swap(id, expected, document).await;
        self.t.swap.since(start);
        swapped
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.store.mail_due(now, limit).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.store.create_user(user).await
    }
}

/// The default offload, timing each job on its thread.
struct TimedOffload {
    threads: HashThreads,
    t: Arc<Timings>,
}

impl Offload for TimedOffload {
    fn run(&self, job: Job) -> JobFuture {
        let t = Arc::clone(&self.t);
        self.threads.run(Box::new(move || {
            let start = Instant::now();
            job();
            t.hash_job.since(start);
        }))
    }
}

/// The name and CPU time (user + system, in clock ticks) of a `/proc/.../stat` file.
fn stat(path: &std::path::Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let fields: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    Some((
        text[open + 1..close].to_owned(),
        fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
    ))
}

/// CPU ticks so far of PostgreSQL's processes, of this process's hashing threads, and
/// of its other threads; and the hashing threads' involuntary context switches.
fn cpu() -> [u64; 4] {
    let mut out = [0; 4];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Some((name, ticks)) = stat(&entry.path().join("stat")) {
            out[0] += if name.starts_with("postgres") { ticks } else { 0 };
        }
    }
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let Some((name, ticks)) = stat(&entry.path().join("stat")) else { continue };
        if name.starts_with("twofactor-hash") {
            out[1] += ticks;
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let preempted = status.lines().find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"));
            out[3] += preempted.and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
        } else {
            out[2] += ticks;
        }
    }
    out
}

async fn open(store: &str, dir: &std::path::Path) -> BoxStore {
    match store {
        "postgres" => {
            let url = std::env::var("TWOFACTOR_TEST_DATABASE_URL")
                .expect("TWOFACTOR_TEST_DATABASE_URL must point at PostgreSQL (use scripts/with-services)");
            BoxStore::new(PostgresStore::connect(&url).await.expect("connect to PostgreSQL"))
        }
        "sqlite" => BoxStore::new(SqliteStore::open(dir.join("phases.db")).await.expect("open SQLite")),
        _ => BoxStore::new(MemoryStore::new()),
    }
}

fn main() {
    let store = std::env::var("TWOFACTOR_PHASES_STORE").unwrap_or_else(|_| "postgres".to_owned());
    let clients: Vec<usize> = std::env::var("TWOFACTOR_PHASES_CLIENTS")
        .unwrap_or_else(|_| "1,2,4".to_owned())
        .split(',')
        .map(|n| n.trim().parse().expect("TWOFACTOR_PHASES_CLIENTS: numbers"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Arc::new(Timings::default());
    let clock = ManualClock::new(Timestamp(T0));
    let offload = TimedOffload { threads: HashThreads::new(cores()).expect("hash threads"), t: Arc::clone(&t) };
    let engine = rt.block_on(async {
        Arc::new(engine(Timed { store: open(&store, dir.path()).await, t: Arc::clone(&t) }, offload, &clock))
    });
    let ticker = Arc::new(Ticker::new(clock));
    let run = format!("{:x}", std::process::id());
    let max = clients.iter().copied().max().unwrap_or(1);
    let accounts: Vec<(String, Vec<u8>, Mutex<u64>)> = rt.block_on(async {
        let mut accounts = Vec::new();
        for c in 0..max {
            let name = format!("phases-{run}-{c}");
            let (secret, step) = enrolled(&engine, &ticker.clock, &name).await;
            accounts.push((name, secret, Mutex::new(step)));
        }
        accounts
    });
    let accounts = Arc::new(accounts);
    println!("{store}: {LOGINS_PER_CLIENT} full logins per client; times are means");
    for n in clients {
        let _ = (t.by_id.take(), t.by_login.take(), t.swap.take(), t.hash_job.take());
        let _ = (t.password_step.take(), t.second_step.take());
        let (load, before, start) = (load_average(), cpu(), Instant::now());
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..n {
                let (engine, ticker, accounts, t) = (engine.clone(), ticker.clone(), accounts.clone(), t.clone());
                tasks.push(tokio::spawn(async move {
                    let (name, secret, last_step) = &accounts[c];
                    let mut last = *last_step.lock().expect("step");
                    for _ in 0..LOGINS_PER_CLIENT {
                        ticker.fresh_after(last);
                        let started = Instant::now();
                        let outcome = engine.begin_login(name, PASSWORD, None).await.expect("begin");
                        let LoginOutcome::SecondFactorRequired(pending) = outcome else { panic!("{outcome:?}") };
                        t.password_step.since(started);
                        let now = ticker.clock.now().0;
                        let code = generate(secret, &TotpParams::default(), now);
                        let second = Instant::now();
                        let out = engine.finish_login(pending.token(), SecondFactor::Totp(code.expose()), None).await;
                        assert!(matches!(out, Ok(SecondFactorOutcome::Authenticated(_))), "{out:?}");
                        t.second_step.since(second);
                        last = TotpParams::default().step_at(now);
                    }
                    *last_step.lock().expect("step") = last;
                }));
            }
            for task in tasks {
                task.await.expect("client");
            }
        });
        let (elapsed, after) = (start.elapsed(), cpu());
        let logins = LOGINS_PER_CLIENT * n as u64;
        let ticks = 1000.0 / 100.0; // ms per clock tick (USER_HZ = 100 on Linux)
        let per_login = |i: usize| (after[i] - before[i]) as f64 * ticks / logins as f64;
        let show = |(count, mean): (u64, f64)| format!("{mean:.0} µs ×{count}");
        println!(
            "clients {n} (load {load}): {:.1} logins/s | password step {:.0} µs, second step {:.0} µs | \
             hash job {:.0} µs, hashing threads preempted {:.2}/login | by login {}, by id {}, swap {} | \
             CPU per login: PostgreSQL {:.2} ms, hashing threads {:.2} ms, rest of this process {:.2} ms",
            logins as f64 / elapsed.as_secs_f64(),
            t.password_step.take().1,
            t.second_step.take().1,
            t.hash_job.take().1,
            (after[3] - before[3]) as f64 / logins as f64,
            show(t.by_login.take()),
            show(t.by_id.take()),
            show(t.swap.take()),
            per_login(0),
            per_login(1),
            per_login(2),
        );
    }
}
