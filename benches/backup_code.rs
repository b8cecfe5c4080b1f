//! Backup-code verification cost against one password verify at the default policy:
//! the Argon2id verify of a stored backup code (2 MiB, t=1), the whole accepted
//! backup-code step of the engine (verify, hash of the replacement code, CAS write,
//! mail), and one OWASP password verify.
//!
//! `cargo bench --all-features --bench backup_code -- --measurement-time 5`

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use twofactor::offload::Inline;
use twofactor::store::MemoryStore;
use twofactor::{HashParams, LoginOutcome, ManualClock, SecondFactor, SecondFactorOutcome, Timestamp};

const CODE: &str = "K7QXM2PD9WRTH4NB";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    let clock = ManualClock::new(Timestamp(T0));
    let engine = engine(MemoryStore::new(), Inline, &clock);
    rt.block_on(enrolled(&engine, &clock, "alice"));
    let password_hash = phc(PASSWORD.as_bytes(), HashParams::OWASP);
    let code_hash = phc(CODE.as_bytes(), HashParams::BACKUP_CODE);

    let mut g = c.benchmark_group("backup_code");
    g.sample_size(10);
    g.bench_function("password_verify_owasp", |b| b.iter(|| assert!(bare_verify(PASSWORD.as_bytes(), &password_hash))));
    g.bench_function("backup_code_verify", |b| b.iter(|| assert!(bare_verify(CODE.as_bytes(), &code_hash))));
    g.bench_function("engine_backup_code_step", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Untimed: a pending login, and the code last mailed to alice.
                let pending = match rt.block_on(engine.begin_login("alice", PASSWORD, None)).expect("begin") {
                    LoginOutcome::SecondFactorRequired(p) => p,
                    other => panic!("expected a second factor, got {other:?}"),
                };
                let code = engine.mailer().last_code_for(&email("alice")).expect("a mailed code");
                let start = Instant::now();
                let out = rt
                    .block_on(engine.finish_login(pending.token(), SecondFactor::BackupCode(&code), None))
                    .expect("finish");
                total += start.elapsed();
                assert!(matches!(out, SecondFactorOutcome::Authenticated(_)), "{out:?}");
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
