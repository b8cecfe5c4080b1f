//! The shared failure budget (issue 3): one budget across password, TOTP and backup
//! code; free first failures, then exponential backoff to a cap; a lock of the second
//! factor at 100 consecutive failures until an administrator reset; a success clears
//! it; the count lives in the store and is updated atomically; the throttle notice is
//! mailed once; a pending login allows at most N code attempts. Includes the
//! brute-force simulation and the race tests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::hashwork::{CountingOffload, fixture_counting, fixture_on};
use common::*;
use twofactor::events::{EventKind, Factor, FailureClass};
use twofactor::totp::{TotpParams, generate};
use twofactor::{
    Clock, KeyRing, LoginOutcome, Role, SecondFactor, SecondFactorOutcome, ThrottlePolicy, Timestamp, UserId,
};

const MINUTE: Duration = Duration::from_secs(60);

/// A 6-digit code that is not valid anywhere in the default window around now.
fn wrong_totp(f: &Fixture, secret: &[u8], seed: u64) -> String {
    let now = f.clock.now().0;
    let valid: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| generate(secret, &TotpParams::default(), *t).expose().to_owned())
        .collect();
    (seed..).map(|n| format!("{:06}", n % 1_000_000)).find(|c| !valid.contains(c)).expect("a wrong code")
}

/// A well-formed backup code that is (with probability 1 - 2^-80) not the account's.
fn wrong_backup(seed: u64) -> String {
    format!("{:016}", seed % 10_000_000_000_000_000)
}

async fn wrong_password(f: &Fixture, name: &str) {
    let out = f.engine.begin_login(name, "not the password", None).await.expect("login");
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
}

async fn failures(f: &Fixture, id: UserId) -> u32 {
    throttle_of(f, id).await.failures
}

/// The throttle notices mailed, once a delivery round has sent what was queued.
async fn throttled_mails(f: &Fixture) -> usize {
    f.deliver().await;
    f.mailer.outbox().iter().filter(|m| m.message.kind() == twofactor::mail::MessageKind::Throttled).count()
}

#[tokio::test]
async fn the_first_failures_are_free_then_the_account_is_throttled() {
    let f = fixture();
    let id = f.user("free", Role::User).await;
    for _ in 0..4 {
        wrong_password(&f, "free").await;
    }
    assert_eq!(throttle_of(&f, id).await.until, None, "four failures cost nothing");
    let out = f.engine.begin_login("free", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "{out:?}");

    for _ in 0..5 {
        wrong_password(&f, "free").await;
    }
    let until = throttle_of(&f, id).await.until;
    assert_eq!(until, Some(f.clock.now().plus(MINUTE)), "the fifth failure throttles for the base delay");
    let out = f.engine.begin_login("free", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "throttled: even the right password is refused: {out:?}");
    f.clock.advance(Duration::from_secs(59));
    assert!(matches!(f.engine.begin_login("free", PASSWORD, None).await.unwrap(), LoginOutcome::Denied));
    f.clock.advance(Duration::from_secs(1));
    let out = f.engine.begin_login("free", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "not a permanent lock: {out:?}");
}

#[tokio::test]
async fn backoff_doubles_up_to_the_cap() {
    let f = fixture();
    let id = f.user("backoff", Role::User).await;
    for _ in 0..4 {
        wrong_password(&f, "backoff").await;
    }
    let mut delays = vec![];
    for _ in 5..=12 {
        if let Some(until) = throttle_of(&f, id).await.until {
            f.clock.set(until);
        }
        wrong_password(&f, "backoff").await;
        let until = throttle_of(&f, id).await.until.expect("throttled");
        delays.push(until.since(f.clock.now()).as_secs());
    }
    assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
}

#[tokio::test]
async fn one_budget_counts_password_totp_and_backup_code_failures() {
    let f = fixture();
    let (id, secret) = f.enrolled("mixed").await;
    wrong_password(&f, "mixed").await;
    wrong_password(&f, "mixed").await;
    let pending = f.pending("mixed").await;
    let code = wrong_totp(&f, &secret, 1);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&wrong_backup(2)), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    assert_eq!(failures(&f, id).await, 4);
    let code = wrong_totp(&f, &secret, 3);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Locked { until: Some(_) }), "the fifth failure throttles: {out:?}");
    assert_eq!(failures(&f, id).await, 5);
}

#[tokio::test]
async fn the_throttle_notice_is_mailed_once_when_throttling_starts() {
    let f = fixture();
    let id = f.user("notice", Role::User).await;
    for _ in 0..4 {
        wrong_password(&f, "notice").await;
    }
    assert_eq!(throttled_mails(&f).await, 0);
    wrong_password(&f, "notice").await;
    assert_eq!(throttled_mails(&f).await, 1);
    for _ in 0..3 {
        f.clock.set(throttle_of(&f, id).await.until.expect("throttled"));
        wrong_password(&f, "notice").await;
    }
    assert_eq!(throttled_mails(&f).await, 1, "only when throttling starts");
    let started = f.events.events().iter().filter(|e| matches!(e.kind, EventKind::Throttled { .. })).count();
    assert_eq!(started, 4, "each throttling failure is an event");
}

#[tokio::test]
async fn the_second_factor_locks_at_100_consecutive_failures_until_an_admin_reset() {
    let f = fixture();
    let (id, secret) = f.enrolled("locked").await;
    let admin = f.user("locked-admin", Role::Admin).await;
    assert_eq!(f.engine.policy().throttle().disable_after, 100);
    for i in 0..99 {
        f.clock.advance(Duration::from_secs(3601));
        let pending = f.pending("locked").await;
        let code = wrong_totp(&f, &secret, i * 13);
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
        assert!(matches!(out, SecondFactorOutcome::Denied { .. } | SecondFactorOutcome::Locked { until: Some(_) }));
    }
    let t = throttle_of(&f, id).await;
    assert_eq!((t.failures, t.second_factor_failures), (99, 99));
    assert!(!t.second_factor_locked);
    f.clock.advance(Duration::from_secs(3601));
    let pending = f.pending("locked").await;
    let code = wrong_totp(&f, &secret, 7);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Locked { until: None }), "the 100th failure locks: {out:?}");
    assert!(f.engine.account(id).await.unwrap().unwrap().locked);
    assert!(f.events.names().contains(&"second_factor.locked"));
    f.deliver().await;
    assert!(f.mailer.outbox().iter().any(|m| m.message.kind() == twofactor::mail::MessageKind::SecondFactorLocked));

    f.clock.advance(Duration::from_secs(30));
    let right = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&right), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Locked { until: None }), "the right code is refused: {out:?}");
    f.clock.advance(Duration::from_secs(30 * 86_400));
    let out = f.engine.begin_login("locked", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "time alone does not unlock: {out:?}");
    assert_eq!(failures(&f, id).await, 100, "nothing more was evaluated");

    f.engine.reset(admin, id, "passport checked at the desk").await.unwrap();
    let t = throttle_of(&f, id).await;
    assert_eq!((t.failures, t.second_factor_failures), (0, 0));
    assert!(!t.second_factor_locked);
    let out = f.engine.begin_login("locked", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "after the reset the password works: {out:?}");
}

/// Issue 10, item 3: before the fix, 100 wrong passwords spaced past the throttle
/// delays (no password needed, about four days) locked the second factor, and the
/// owner was refused until an administrator reset. Password guesses only throttle.
#[tokio::test]
async fn wrong_passwords_alone_never_lock_the_owner_out() {
    let f = fixture();
    let (id, secret) = f.enrolled("owner").await;
    for _ in 0..150 {
        if let Some(until) = throttle_of(&f, id).await.until {
            f.clock.set(until);
        }
        wrong_password(&f, "owner").await;
    }
    let t = throttle_of(&f, id).await;
    assert_eq!((t.failures, t.second_factor_failures), (150, 0));
    assert!(!t.second_factor_locked, "150 wrong passwords do not lock");
    f.clock.advance(Duration::from_secs(7 * 86_400));
    let out = f.totp_login("owner", &secret).await;
    assert!(is_authenticated(&out), "a week later the owner gets in: {out:?}");
    assert_eq!(throttle_of(&f, id).await, Throttle::default(), "and the budget is clear");
    assert_eq!(stored(&f, id).await.1.get("throttle"), None, "a clear budget is left out of the document");
}

#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let f = fixture();
    let (id, secret) = f.enrolled("resets").await;
    wrong_password(&f, "resets").await;
    wrong_password(&f, "resets").await;
    let pending = f.pending("resets").await;
    let code = wrong_totp(&f, &secret, 11);
    f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert_eq!(failures(&f, id).await, 3);
    let code = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    let t = throttle_of(&f, id).await;
    assert_eq!((t.failures, t.until), (0, None));
    for _ in 0..4 {
        wrong_password(&f, "resets").await;
    }
    assert_eq!(throttle_of(&f, id).await.until, None, "the budget starts over");
}

#[tokio::test]
async fn a_right_password_alone_does_not_reset_the_count_when_a_code_is_due() {
    let f = fixture();
    let (id, secret) = f.enrolled("halfway").await;
    for _ in 0..4 {
        wrong_password(&f, "halfway").await;
    }
    let pending = f.pending("halfway").await;
    assert_eq!(failures(&f, id).await, 4, "the password step is not a complete login");
    let code = wrong_totp(&f, &secret, 5);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Locked { until: Some(_) }), "{out:?}");
}

#[tokio::test]
async fn a_pending_login_allows_at_most_n_code_attempts() {
    let throttle = ThrottlePolicy::default().free_failures(20);
    let f = fixture_with(fast_policy().max_code_attempts(3).danger_relaxed_throttle(throttle).build().unwrap());
    let (id, secret) = f.enrolled("attempts").await;
    let pending = f.pending("attempts").await;
    let mut outcomes = vec![];
    for seed in 0..3 {
        let code = wrong_totp(&f, &secret, seed * 10);
        outcomes.push(f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap());
    }
    assert!(matches!(outcomes[0], SecondFactorOutcome::Denied { attempts_left: 2 }), "{outcomes:?}");
    assert!(matches!(outcomes[1], SecondFactorOutcome::Denied { attempts_left: 1 }), "{outcomes:?}");
    assert!(matches!(outcomes[2], SecondFactorOutcome::Locked { .. }), "{outcomes:?}");
    let right = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&right), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Locked { .. }), "the exhausted pending login is dead: {out:?}");
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&f.backup_code("attempts")), None).await;
    assert!(matches!(out, Ok(SecondFactorOutcome::Locked { .. })), "also for the backup code: {out:?}");
    assert_eq!(failures(&f, id).await, 3, "attempts past the limit are not evaluated");
    let out = f.totp_login("attempts", &secret).await;
    assert!(is_authenticated(&out), "a new pending login works: {out:?}");
}

#[tokio::test]
async fn the_count_lives_in_the_store_shared_by_every_app_server() {
    let a = fixture();
    let b = fixture_on(
        a.store.clone(),
        KeyRing::ephemeral().unwrap(),
        fast_policy().build().unwrap(),
        CountingOffload::new(),
    );
    let id = a.user("shared", Role::User).await;
    b.clock.set(a.clock.now());
    for i in 0..4 {
        wrong_password(if i % 2 == 0 { &a } else { &b }, "shared").await;
    }
    wrong_password(&b, "shared").await;
    assert_eq!(failures(&a, id).await, 5);
    let out = a.engine.begin_login("shared", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "server A sees the throttle server B set: {out:?}");
}

/// Evaluated guesses (the engine checked them and counted a failure) and refused ones
/// (not evaluated), from the audit events.
fn classify(events: &[twofactor::events::Event]) -> (usize, usize, usize) {
    let (mut password, mut code, mut refused) = (0, 0, 0);
    for e in events {
        match &e.kind {
            EventKind::LoginFailed { reason: FailureClass::WrongPassword } => password += 1,
            EventKind::SecondFactorFailed { reason: FailureClass::WrongCode | FailureClass::Replayed, .. } => code += 1,
            EventKind::LoginFailed { reason: FailureClass::Throttled | FailureClass::Locked }
            | EventKind::SecondFactorFailed {
                reason: FailureClass::PendingInvalid | FailureClass::Throttled, ..
            } => {
                refused += 1;
            }
            _ => {}
        }
    }
    (password, code, refused)
}

/// The brute-force simulation. An attacker who knows the password makes 10,000 wrong
/// guesses (a third each: passwords, TOTP codes, backup codes) against one account,
/// one every 67 s (so guesses of every kind land at the end of throttle windows), for
/// about a week of simulated time.
///
/// The bounds: the engine evaluates at most `ThrottlePolicy::guess_bound()` =
/// `disable_after` = 100 second-factor guesses per account before its second factor
/// locks, and at most `password_guess_bound(elapsed)` guesses of every kind over the
/// elapsed time (the throttle windows); wrong passwords never lock.
#[tokio::test]
async fn brute_force_10000_guesses_over_simulated_days_stay_within_the_bound() {
    let offload = CountingOffload::new();
    let f = fixture_counting(fast_policy().build().unwrap(), offload.clone());
    let (id, secret) = f.enrolled("victim").await;
    let bound = f.engine.policy().throttle().guess_bound();
    assert_eq!(bound, 100, "the stated bound: guess_bound() = disable_after = 100");
    let rate_bound = |elapsed: Duration| f.engine.policy().throttle().password_guess_bound(elapsed);

    let jobs_before = offload.jobs();
    let events_before = f.events.events().len();
    let start = f.clock.now();
    let mut password_steps = 0usize; // each costs exactly one Argon2 job (real or dummy)
    let mut pending: Option<String> = None;
    for i in 0..10_000u64 {
        f.clock.advance(Duration::from_secs(67));
        if i % 3 == 0 {
            password_steps += 1;
            let out = f.engine.begin_login("victim", &format!("guess number {i}"), None).await.unwrap();
            assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
            continue;
        }
        if pending.is_none() {
            password_steps += 1;
            match f.engine.begin_login("victim", PASSWORD, None).await.unwrap() {
                LoginOutcome::SecondFactorRequired(p) => pending = Some(p.token().to_owned()),
                LoginOutcome::Denied => continue, // throttled: no code can even be tried
                other => panic!("{other:?}"),
            }
        }
        let token = pending.clone().unwrap();
        let (totp, backup) = (wrong_totp(&f, &secret, i * 7919), wrong_backup(i * 104_729));
        let factor = if i % 3 == 1 { SecondFactor::Totp(&totp) } else { SecondFactor::BackupCode(&backup) };
        match f.engine.finish_login(&token, factor, None).await.unwrap() {
            SecondFactorOutcome::Denied { .. } => {}
            SecondFactorOutcome::Locked { .. } | SecondFactorOutcome::Expired => pending = None,
            other => panic!("a wrong guess logged in: {other:?}"),
        }
    }
    let days = f.clock.now().since(start).as_secs() / 86_400;
    let events = &f.events.events()[events_before..];
    let (password, code, refused) = classify(events);
    let evaluated = password + code;
    let backup_evaluated = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::SecondFactorFailed { factor: Factor::BackupCode, reason: FailureClass::WrongCode }
            )
        })
        .count();
    let argon2 = offload.jobs() - jobs_before;
    eprintln!(
        "brute force: 10000 guesses over {days} days; evaluated {evaluated} ({password} passwords, {code} codes), \
         refused {refused}; Argon2 jobs {argon2} = {password_steps} password steps + {backup_evaluated} backup codes"
    );
    assert!(days >= 6, "the simulation spans days");
    assert!(code <= bound as usize, "evaluated {code} second factors, over the bound {bound}");
    let elapsed = f.clock.now().since(start);
    let rate = rate_bound(elapsed);
    eprintln!("brute force: {evaluated} evaluated within the throttle's bound of {rate} for the elapsed time");
    assert!(evaluated as u64 <= rate, "evaluated {evaluated} guesses, over the throttle's bound {rate}");
    assert_eq!(argon2, password_steps + backup_evaluated, "Argon2 ran only for password steps and evaluated codes");
    let t = throttle_of(&f, id).await;
    assert_eq!(t.failures as usize, evaluated, "every evaluated guess was counted");
    assert_eq!(t.second_factor_failures as usize, code, "only second factors count towards the lock");
    assert_eq!(t.second_factor_locked, code >= bound as usize, "locked exactly when codes used the budget");
    assert!(password > 0 && code > 0 && backup_evaluated > 0, "all three kinds were evaluated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttle_counting_stays_exact_when_32_tasks_fail_at_once() {
    // A budget large enough that throttling never pre-empts an evaluation here.
    let throttle = ThrottlePolicy::default().free_failures(40);
    let f = Arc::new(fixture_with(fast_policy().danger_relaxed_throttle(throttle).build().unwrap()));
    let (id, secret) = f.enrolled("racer").await;
    let mut pendings = vec![];
    for _ in 0..32 {
        pendings.push(f.pending("racer").await);
    }
    let code = wrong_totp(&f, &secret, 123);
    let before = f.events.events().len();
    let start = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pending) in pendings.into_iter().enumerate() {
        let (f, start, code) = (Arc::clone(&f), Arc::clone(&start), code.clone());
        tasks.spawn(async move {
            start.wait().await;
            match i % 3 {
                0 => wrong_password(&f, "racer").await,
                1 => {
                    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
                    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
                }
                _ => {
                    let code = wrong_backup(i as u64);
                    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
                    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(failures(&f, id).await, 32, "no failure lost or counted twice");
    let (password, code, refused) = classify(&f.events.events()[before..]);
    assert_eq!((password + code, refused), (32, 0));
}

/// Issue 10, item 1, as reported: one engine, one hash at a time, the default offload,
/// the default policy, 40 concurrent password steps for an account with no earlier
/// failures, the right password 31st. Before the fix every step read the record before
/// any failure was written, all 40 were hashed, and the 31st answered `Authenticated`
/// (or `SecondFactorRequired` with 2FA: the password confirmed while throttled).
/// Now the steps for one name run in turn: exactly the free failures are evaluated,
/// every later step is refused like any throttled attempt, the right password too.
#[tokio::test]
async fn a_burst_of_concurrent_guesses_cannot_confirm_the_password_once_throttled() {
    for with_2fa in [false, true] {
        let f = fixture();
        let engine = Arc::new(
            twofactor::Engine::builder(f.store.clone(), f.mailer.clone(), KeyRing::ephemeral().unwrap())
                .clock(f.clock.clone())
                .policy(fast_policy().build().unwrap())
                .events(f.events.clone())
                .max_concurrent_hashes(1)
                .max_queued_logins(64) // the burst is about the throttle, not about shedding
                .build()
                .unwrap(),
        );
        let id = if with_2fa { f.enrolled("burst").await.0 } else { f.user("burst", Role::User).await };
        let before = f.events.events().len();
        // A current-thread runtime: the tasks reach the engine in the order spawned.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let engine = Arc::clone(&engine);
                let password = if i == 30 { PASSWORD.to_owned() } else { format!("wrong guess {i}") };
                tokio::spawn(async move { engine.begin_login("burst", &password, None).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        assert!(matches!(outcomes[30], LoginOutcome::Denied), "2FA {with_2fa}: the 31st: {:?}", outcomes[30]);
        assert!(outcomes.iter().all(|o| matches!(o, LoginOutcome::Denied)));
        let (password, _, refused) = classify(&f.events.events()[before..]);
        let free = fast_policy().build().unwrap().throttle().free_failures as usize;
        assert_eq!((password, refused), (free, 40 - free), "2FA {with_2fa}: only the free failures were evaluated");
        assert_eq!(failures(&f, id).await as usize, free);
    }
}

/// The same rule across app servers: 32 engines over one store, each verifying one
/// wrong password against the same unthrottled snapshot (the offload holds every
/// verified job until all 32 have run). Only the failure that commits first may count;
/// once it throttles the account, the other results must be discarded, not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_from_many_servers_cannot_outrun_the_throttle() {
    let offload = CountingOffload::new();
    let keys = KeyRing::ephemeral().unwrap();
    let first =
        fixture_on(twofactor::store::MemoryStore::new(), keys.clone(), fast_policy().build().unwrap(), offload.clone());
    let id = first.user("burst", Role::User).await;
    for _ in 0..4 {
        wrong_password(&first, "burst").await;
    }
    let servers: Vec<_> = (0..32)
        .map(|_| {
            Arc::new(fixture_on(first.store.clone(), keys.clone(), fast_policy().build().unwrap(), offload.clone()))
        })
        .collect();
    offload.arm_gate(32);
    let mut tasks = tokio::task::JoinSet::new();
    for server in &servers {
        let server = Arc::clone(server);
        tasks.spawn(async move { wrong_password(&server, "burst").await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let events: Vec<_> = servers.iter().flat_map(|s| s.events.events()).collect();
    let (password, _, refused) = classify(&events);
    assert_eq!(failures(&first, id).await, 5, "only the failure that reached the threshold counted");
    assert_eq!((password, refused), (1, 31));
    // Every server runs a delivery round: the one notice queued is mailed by one of them.
    let mut mailed = 0;
    for server in &servers {
        mailed += throttled_mails(server).await;
    }
    assert_eq!(mailed, 1);
    assert!(throttle_of(&first, id).await.until > Some(Timestamp(T0)));
}

/// Two app servers. Current-thread runtime: the gate's last arrival (the wrong password
/// on server B) runs on to its write before the held task (the right password on
/// server A) resumes, so the order is fixed.
#[tokio::test]
async fn a_right_password_checked_before_a_concurrent_throttle_is_refused_after_it() {
    let offload = CountingOffload::new();
    let keys = KeyRing::ephemeral().unwrap();
    let a = Arc::new(fixture_on(
        twofactor::store::MemoryStore::new(),
        keys.clone(),
        fast_policy().build().unwrap(),
        offload.clone(),
    ));
    let b = fixture_on(a.store.clone(), keys, fast_policy().build().unwrap(), offload.clone());
    let id = a.user("late", Role::User).await;
    for _ in 0..4 {
        wrong_password(&a, "late").await;
    }
    offload.arm_gate(2);
    let jobs = offload.jobs();
    let right = {
        let a = Arc::clone(&a);
        tokio::spawn(async move { a.engine.begin_login("late", PASSWORD, None).await.unwrap() })
    };
    while offload.jobs() == jobs {
        tokio::task::yield_now().await; // until the right password has been verified
    }
    wrong_password(&b, "late").await; // the fifth failure throttles the account
    let out = right.await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    assert_eq!(failures(&a, id).await, 5, "the refused login neither counted nor cleared the failures");
}

/// A mailer whose sends wait until the test lets them through, and that counts the
/// sends begun.
#[derive(Clone)]
struct HeldMailer {
    open: Arc<tokio::sync::Semaphore>,
    begun: Arc<std::sync::atomic::AtomicUsize>,
    sent: Arc<std::sync::Mutex<Vec<twofactor::mail::MessageKind>>>,
}

impl twofactor::mail::Mailer for HeldMailer {
    fn send(
        &self,
        _id: twofactor::MailId,
        message: &twofactor::mail::Message,
    ) -> impl std::future::Future<Output = Result<(), twofactor::MailError>> + Send {
        self.begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (open, sent, kind) = (Arc::clone(&self.open), Arc::clone(&self.sent), message.kind());
        async move {
            open.acquire().await.expect("open").forget();
            sent.lock().unwrap().push(kind);
            Ok(())
        }
    }
}

/// Issue 10, item 2: the fifth wrong password for a real account used to wait for the
/// "throttled" notice (with a slow mailer, hundreds of milliseconds an unknown username
/// never waits). Now no request sends mail at all: the answer comes back with the
/// mailer untouched (not one send begun, then or afterwards), and the notice goes out
/// in the next delivery round.
#[tokio::test]
async fn a_failed_attempt_never_sends_mail_and_its_notice_goes_out_in_the_delivery_round() {
    let mailer = HeldMailer {
        open: Arc::new(tokio::sync::Semaphore::new(0)),
        begun: Default::default(),
        sent: Default::default(),
    };
    let clock = twofactor::ManualClock::new(Timestamp(T0));
    let store = twofactor::store::MemoryStore::new();
    let engine = twofactor::Engine::builder(store.clone(), mailer.clone(), KeyRing::ephemeral().unwrap())
        .clock(clock)
        .policy(fast_policy().build().unwrap())
        .build()
        .unwrap();
    let id = engine
        .create_account(twofactor::NewAccount::new("held", "held@example.test", Role::User, PASSWORD))
        .await
        .unwrap();
    // A guard against a hang, not a timing assertion: the answer must not need the mail.
    let answer = |password: &'static str| {
        let engine = &engine;
        async move {
            tokio::time::timeout(Duration::from_secs(20), engine.begin_login("held", password, None))
                .await
                .expect("the answer waited on the held mail")
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert!(matches!(answer("not the password").await, LoginOutcome::Denied));
    }
    let begun = || mailer.begun.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(begun(), 0, "the request sent no mail");
    // Nor does anything send it behind the request's back.
    for _ in 0..20 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(begun(), 0, "no mail went out without a delivery round");
    let record = twofactor::store::UserStore::find_by_id(&store, id).await.unwrap().unwrap();
    let queued = document_of(&record)["outbox"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<_> = queued.iter().map(|m| m["kind"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds, ["throttled"], "the notice waits in the document");

    mailer.open.add_permits(1);
    let report = tokio::time::timeout(Duration::from_secs(20), engine.deliver_due(10)).await.expect("delivered");
    let report = report.unwrap();
    assert_eq!((report.sent, report.messages.len()), (1, 1), "{report:?}");
    assert_eq!(report.messages[0].1, twofactor::mail::MessageKind::Throttled);
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        [twofactor::mail::MessageKind::Throttled],
        "the notice went out in the round"
    );
    assert_eq!(begun(), 1);
}

/// Runs `record_password_failure` for `id` from 32 tasks at once (on a multi-threaded
/// runtime, released together by a barrier); returns the `LoginFailed` reasons recorded.
async fn record_32_failures_at_once(f: &Arc<Fixture>, id: UserId) -> Vec<FailureClass> {
    let before = f.events.events().len();
    let start = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (f, start) = (Arc::clone(f), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            f.engine.record_password_failure(id).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    f.events.events()[before..]
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LoginFailed { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

/// Second-factor-only mode: the application's own wrong passwords, reported by 32
/// concurrent `record_password_failure` calls, lose no count. Under the default policy
/// the budget lets `free_failures` (5) through: the fifth throttles the account (the
/// clock stands still), and a failure reported while throttled is refused unevaluated,
/// exactly like a wrong password at `begin_login`, so the stored count is exactly 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_application_reported_failures_stop_exactly_at_the_threshold() {
    let f = Arc::new(fixture());
    let id = UserId::new("7f3c9a2e-4b1d-4e8f-9c6a-2d5e8b1f0a37").unwrap();
    f.store.add_user(id, "racer-sso", &email("racer-sso"), Role::User).unwrap();
    f.enroll(id).await;
    let free = f.engine.policy().throttle().free_failures;
    assert_eq!(free, 5);

    let reasons = record_32_failures_at_once(&f, id).await;
    assert_eq!(stored_number(&f, id, "/throttle/failures").await, u64::from(free), "exactly the threshold");
    let counted = reasons.iter().filter(|r| **r == FailureClass::WrongPassword).count();
    let refused = reasons.iter().filter(|r| **r == FailureClass::Throttled).count();
    assert_eq!((counted, refused), (free as usize, 32 - free as usize), "{reasons:?}");
    let t = throttle_of(&f, id).await;
    assert_eq!(t.until, Some(f.clock.now().plus(MINUTE)), "throttled once, for the base delay: {t:?}");
    assert_eq!((t.second_factor_failures, t.second_factor_locked), (0, false));
    assert_eq!(throttled_mails(&f).await, 1, "one notice");
}

/// The same race below the threshold: every one of the 32 failures is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_application_reported_failures_below_the_threshold_all_count() {
    let throttle = ThrottlePolicy::default().free_failures(40);
    let f = Arc::new(fixture_with(fast_policy().danger_relaxed_throttle(throttle).build().unwrap()));
    let id = UserId::new("racer-below-threshold").unwrap();
    f.store.add_user(id, "racer-below", &email("racer-below"), Role::User).unwrap();
    f.engine.change_password(id, PASSWORD).await.unwrap();

    let reasons = record_32_failures_at_once(&f, id).await;
    assert_eq!(stored_number(&f, id, "/throttle/failures").await, 32, "no failure lost or counted twice");
    assert_eq!(reasons, vec![FailureClass::WrongPassword; 32]);
    assert_eq!(throttle_of(&f, id).await.until, None, "below the threshold: not throttled");
    assert_eq!(stored(&f, id).await.0, 1 + 32, "one write per failure");
}
