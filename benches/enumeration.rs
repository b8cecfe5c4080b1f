//! No user enumeration by timing: the median time of a login for an unknown user
//! against one with a wrong password, at the default hash parameters (OWASP Argon2id).
//! Target: ratio unknown / wrong within 0.9–1.1.
//!
//! Then the same with a 300 ms mailer, at the failure that triggers the "throttled"
//! notice (the 5th): the answer must not wait on that mail (paired medians and ratio
//! printed as `enumeration/slow_mailer`).
//!
//! `cargo bench --all-features --bench enumeration -- --measurement-time 10`, then the
//! medians are in `target/criterion/enumeration/*/new/estimates.json`.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use twofactor::offload::Inline;
use twofactor::{
    Engine, KeyRing, LoginOutcome, MailError, Mailer, ManualClock, MemoryStore, Message, NewAccount, Policy, Role,
    Timestamp,
};

/// Consecutive failures that stay below the throttle (default: the 5th throttles), so
/// every measured wrong-password login takes the full path, CAS write included.
const FREE_FAILURES: u64 = 4;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    let clock = ManualClock::new(Timestamp(T0));
    let engine = engine(MemoryStore::new(), Inline, &clock);
    rt.block_on(engine.create_account(NewAccount::new("alice", &email("alice"), Role::User, PASSWORD)))
        .expect("create");

    let mut g = c.benchmark_group("enumeration");
    g.sample_size(20);
    g.bench_function("unknown_user", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let out = rt.block_on(engine.begin_login("mallory", "wrong password!", None)).expect("login");
                total += start.elapsed();
                assert!(matches!(out, LoginOutcome::Denied));
            }
            total
        })
    });
    let mut failures = 0u64; // consecutive, across criterion's calls
    g.bench_function("wrong_password", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let out = rt.block_on(engine.begin_login("alice", "wrong password!", None)).expect("login");
                total += start.elapsed();
                assert!(matches!(out, LoginOutcome::Denied));
                failures += 1;
                if failures == FREE_FAILURES {
                    failures = 0;
                    // Untimed: a success clears the failure count before throttling starts.
                    let ok = rt.block_on(engine.begin_login("alice", PASSWORD, None)).expect("login");
                    assert!(matches!(ok, LoginOutcome::Authenticated(_)), "{ok:?}");
                }
            }
            total
        })
    });
    g.finish();
    paired_check(&rt, &engine);
    slow_mailer_check();
}

/// A transport that takes 300 ms per message (an SMTP server far away, or retrying).
struct SlowMailer;

impl Mailer for SlowMailer {
    async fn send(&self, _: &Message) -> Result<(), MailError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

/// Unknown user against the 5th wrong password of a fresh account (the failure that
/// queues the "throttled" notice), alternating, with a 300 ms mailer.
fn slow_mailer_check() {
    const PAIRS: usize = 30;
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
    let engine = Engine::builder(MemoryStore::new(), SlowMailer, KeyRing::ephemeral().expect("keys"))
        .clock(ManualClock::new(Timestamp(T0)))
        .policy(Policy::default())
        .offload(Inline)
        .build()
        .expect("engine");
    let (mut unknown, mut fifth) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    for i in 0..PAIRS {
        let name = format!("user{i}");
        rt.block_on(engine.create_account(NewAccount::new(&name, &email(&name), Role::User, PASSWORD)))
            .expect("create");
        for _ in 0..FREE_FAILURES {
            rt.block_on(engine.begin_login(&name, "wrong password!", None)).expect("login");
        }
        let start = Instant::now();
        rt.block_on(engine.begin_login("mallory", "wrong password!", None)).expect("login");
        unknown.push(start.elapsed());
        let start = Instant::now();
        let out = rt.block_on(engine.begin_login(&name, "wrong password!", None)).expect("login");
        fifth.push(start.elapsed());
        assert!(matches!(out, LoginOutcome::Denied));
    }
    unknown.sort();
    fifth.sort();
    let (u, w) = (unknown[PAIRS / 2], fifth[PAIRS / 2]);
    println!(
        "enumeration/slow_mailer ({PAIRS} alternating pairs, 300 ms mailer): median unknown_user {:.2} ms, \
         fifth_failure {:.2} ms, ratio {:.3}",
        u.as_secs_f64() * 1e3,
        w.as_secs_f64() * 1e3,
        u.as_secs_f64() / w.as_secs_f64()
    );
}

/// On a shared machine the two criterion runs above see different load. This check
/// alternates the two paths attempt by attempt, so both see the same load, and prints
/// the medians and their ratio.
fn paired_check<S: twofactor::UserStore>(rt: &tokio::runtime::Runtime, engine: &BenchEngine<S>) {
    const PAIRS: usize = 60;
    let (mut unknown, mut wrong) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    for i in 0..PAIRS {
        let start = Instant::now();
        rt.block_on(engine.begin_login("mallory", "wrong password!", None)).expect("login");
        unknown.push(start.elapsed());
        let start = Instant::now();
        rt.block_on(engine.begin_login("alice", "wrong password!", None)).expect("login");
        wrong.push(start.elapsed());
        if ((i + 1) as u64).is_multiple_of(FREE_FAILURES) {
            rt.block_on(engine.begin_login("alice", PASSWORD, None)).expect("login");
        }
    }
    unknown.sort();
    wrong.sort();
    let (u, w) = (unknown[PAIRS / 2], wrong[PAIRS / 2]);
    println!(
        "enumeration/paired ({PAIRS} alternating pairs): median unknown_user {:.2} ms, wrong_password {:.2} ms, ratio {:.3}",
        u.as_secs_f64() * 1e3,
        w.as_secs_f64() * 1e3,
        u.as_secs_f64() / w.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
