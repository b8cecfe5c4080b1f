//! Races on one account: of 32 tasks submitting the same backup code (or the same TOTP
//! code, or the same pending login) at once, exactly one logs in — in each of 100
//! rounds.

mod common;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use twofactor::mail::MemoryMailer;
use twofactor::store::MemoryStore;
use twofactor::{Engine, LoginOutcome, ManualClock, Policy, SecondFactor, ThrottlePolicy};

const TASKS: usize = 32;
const ROUNDS: usize = 100;

/// Race losers count as failures; the budget is wide enough that throttling never
/// pre-empts the race (a success resets the count every round).
fn race_policy() -> Policy {
    fast_policy()
        .danger_relaxed_throttle(ThrottlePolicy::default().free_failures(100).disable_after(100))
        .build()
        .unwrap()
}

async fn race(
    engine: &Arc<Engine<MemoryStore, MemoryMailer, ManualClock>>,
    factor: impl Fn() -> (bool, String),
) -> usize {
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut handles = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let engine = Arc::clone(engine);
        let barrier = Arc::clone(&barrier);
        let (backup, code) = factor();
        handles.push(tokio::spawn(async move {
            let LoginOutcome::SecondFactorRequired(p) = engine.begin_login("alice", PASSWORD, None).await.unwrap()
            else {
                panic!("expected a pending login")
            };
            barrier.wait().await;
            let factor = if backup { SecondFactor::BackupCode(&code) } else { SecondFactor::Totp(&code) };
            is_authenticated(&engine.finish_login(p.token(), factor, None).await.unwrap())
        }));
    }
    winners(handles).await
}

/// How many of the racing tasks logged in.
async fn winners(handles: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut winners = 0;
    for h in handles {
        winners += usize::from(h.await.unwrap());
    }
    winners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_32_tasks_wins_one_backup_code_in_each_of_100_rounds() {
    let f = fixture_with(race_policy());
    f.enrolled("alice").await;
    let Fixture { engine, mailer, clock, .. } = f;
    let engine = Arc::new(engine);
    for round in 0..ROUNDS {
        let code = mailer.last_code_for(&email("alice")).unwrap();
        let winners = race(&engine, || (true, code.clone())).await;
        assert_eq!(winners, 1, "round {round}");
        // The one win queued one replacement code, which the next round uses.
        assert_eq!(delivered(&*engine).await.sent, 1, "round {round}");
        clock.advance(Duration::from_secs(1));
    }
}

/// Alice enrolled with TOTP on an engine shared by the racers: the engine, her TOTP
/// secret and the clock.
async fn alice_with_totp() -> (Arc<Engine<MemoryStore, MemoryMailer, ManualClock>>, Vec<u8>, ManualClock) {
    let f = fixture_with(race_policy());
    let (_, secret) = f.enrolled("alice").await;
    let clock = f.clock.clone();
    (Arc::new(f.engine), secret, clock)
}

/// The TOTP code for `secret` at the clock's time.
fn current_code(secret: &[u8], clock: &ManualClock) -> String {
    let now = twofactor::Clock::now(clock).0;
    twofactor::totp::generate(secret, &twofactor::totp::TotpParams::default(), now).expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_32_tasks_wins_one_totp_code_in_each_of_100_rounds() {
    let (engine, secret, clock) = alice_with_totp().await;
    for round in 0..ROUNDS {
        let code = current_code(&secret, &clock);
        let winners = race(&engine, || (false, code.clone())).await;
        assert_eq!(winners, 1, "round {round}");
        clock.advance(Duration::from_secs(30));
    }
}

/// One pending login presented by 32 tasks at once with the right code: exactly one
/// logs in. The first to arrive starts from the record its password step kept, the
/// others read the store; either way the pending login is used once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_32_tasks_wins_one_pending_login_in_each_of_100_rounds() {
    let (engine, secret, clock) = alice_with_totp().await;
    for round in 0..ROUNDS {
        clock.advance(Duration::from_secs(30));
        let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login("alice", PASSWORD, None).await.unwrap()
        else {
            panic!("expected a pending login")
        };
        let code = current_code(&secret, &clock);
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut handles = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let (engine, barrier) = (Arc::clone(&engine), Arc::clone(&barrier));
            let (token, code) = (pending.token().to_owned(), code.clone());
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                is_authenticated(&engine.finish_login(&token, SecondFactor::Totp(&code), None).await.unwrap())
            }));
        }
        assert_eq!(winners(handles).await, 1, "round {round}");
    }
}
