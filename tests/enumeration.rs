//! No user enumeration (issue 3): unknown user, wrong password, throttled and locked
//! accounts give the same outcome after the same Argon2 work. Hash work is counted
//! with a counting [`Offload`](twofactor::offload::Offload): every job is one Argon2
//! verify.

mod common;

use common::hashwork::{CountingOffload, fixture_counting};
use common::*;
use twofactor::events::{EventKind, FailureClass};
use twofactor::{LoginOutcome, Role};

/// Runs one password step and returns (was it `Denied`, Argon2 jobs it ran).
async fn attempt(f: &Fixture, offload: &CountingOffload, user: &str, password: &str) -> (bool, usize) {
    let before = offload.jobs();
    let out = f.engine.begin_login(user, password, None).await.expect("login");
    (matches!(out, LoginOutcome::Denied), offload.jobs() - before)
}

async fn setup() -> (Fixture, CountingOffload) {
    let offload = CountingOffload::new();
    let f = fixture_counting(fast_policy().build().unwrap(), offload.clone());
    f.user("plain", Role::User).await;
    f.enrolled("twofa").await;
    f.user("throttled", Role::User).await;
    for _ in 0..5 {
        f.engine.begin_login("throttled", "wrong password", None).await.unwrap();
    }
    let (locked, _) = f.enrolled("locked").await;
    overwrite(&f, locked, |doc| doc["throttle"]["locked"] = true.into()).await;
    (f, offload)
}

#[tokio::test]
async fn unknown_user_wrong_password_and_throttled_give_the_same_outcome_and_hash_work() {
    let (f, offload) = setup().await;
    let cases = [
        ("unknown user", attempt(&f, &offload, "nobody", PASSWORD).await),
        ("wrong password", attempt(&f, &offload, "plain", "wrong password").await),
        ("wrong password, 2FA on", attempt(&f, &offload, "twofa", "wrong password").await),
        ("throttled, right password", attempt(&f, &offload, "throttled", PASSWORD).await),
        ("throttled, wrong password", attempt(&f, &offload, "throttled", "wrong password").await),
        ("locked, right password", attempt(&f, &offload, "locked", PASSWORD).await),
    ];
    for (case, (denied, jobs)) in cases {
        assert!(denied, "{case}: the answer is Denied");
        assert_eq!(jobs, 1, "{case}: exactly one Argon2 verify");
    }
    let reasons: Vec<FailureClass> = f
        .events
        .events()
        .iter()
        .rev()
        .take(6)
        .filter_map(|e| match e.kind {
            EventKind::LoginFailed { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            FailureClass::Locked,
            FailureClass::Throttled,
            FailureClass::Throttled,
            FailureClass::WrongPassword,
            FailureClass::WrongPassword,
            FailureClass::UnknownUser,
        ],
        "the audit log tells the cases apart; the caller cannot"
    );
}

#[tokio::test]
async fn the_unknown_user_path_does_a_dummy_verify() {
    let (f, offload) = setup().await;
    let (denied, jobs) = attempt(&f, &offload, "no-such-user", "any password at all").await;
    assert!(denied);
    assert_eq!(jobs, 1, "the same hash work as a wrong password");
    let last = f.events.events().pop().unwrap();
    assert_eq!(last.kind, EventKind::LoginFailed { reason: FailureClass::UnknownUser });
    assert_eq!(last.account, None);
    assert_eq!(f.store.len(), 4, "nothing was created for the unknown name");
}

#[tokio::test]
async fn over_long_input_is_refused_alike_for_known_and_unknown_users() {
    let (f, offload) = setup().await;
    let long = "x".repeat(5000);
    for user in ["plain", "nobody"] {
        let before = offload.jobs();
        let out = f.engine.begin_login(user, &long, None).await;
        assert!(matches!(out, Ok(LoginOutcome::Denied)), "{user}: {out:?}");
        assert_eq!(offload.jobs(), before, "{user}: refused before any hashing");
        let last = f.events.events().pop().unwrap();
        let bad = FailureClass::BadInput { field: "password", problem: twofactor::events::InputProblem::TooLong };
        assert_eq!((last.kind, last.account), (EventKind::LoginFailed { reason: bad }, None), "{user}: no account");
    }
    let out = f.engine.begin_login(&"u".repeat(65), PASSWORD, None).await;
    assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");
}

/// The fifth wrong password for a real account starts a throttle and queues its notice;
/// an unknown name queues nothing. Neither request sends mail, so its answer time
/// cannot depend on a mail transport: the mailer is untouched until a delivery round
/// (set to fail its next send, it still holds that failure for the round's first
/// try), and the notice arrives after the rounds, to the real account only.
#[tokio::test]
async fn no_password_step_sends_mail_and_the_throttle_notice_arrives_after_the_round() {
    let offload = CountingOffload::new();
    let f = fixture_counting(fast_policy().build().unwrap(), offload.clone());
    let victim = f.user("victim", Role::User).await;
    f.mailer.fail_next(1);
    for _ in 0..5 {
        for user in ["victim", "ghost"] {
            assert_eq!(attempt(&f, &offload, user, "wrong password").await, (true, 1), "{user}");
        }
    }
    let started: Vec<_> = f
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Throttled { .. }))
        .map(|e| e.account)
        .collect();
    assert_eq!(started, [Some(victim)], "the fifth failure throttled the real account");
    assert!(f.mailer.outbox().is_empty(), "no request sent mail");

    let first = f.deliver().await;
    assert_eq!((first.sent, first.retrying), (0, 1), "the round's try met the held failure: {first:?}");
    assert!(f.mailer.outbox().is_empty());
    f.clock.advance(f.engine.policy().delivery().first_retry);
    let second = f.deliver().await;
    assert_eq!(second.sent, 1, "{second:?}");
    let mails = f.mailer.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].message.kind(), twofactor::mail::MessageKind::Throttled);
    assert_eq!(mails[0].message.recipient().email, email("victim"));
    assert_eq!(first.messages[0].0, mails[0].id, "one message, tried twice under one id");
}
