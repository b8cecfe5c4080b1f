//! A model test: random sequences of operations against a small reference model of the
//! seed's rules, checking three invariants on every step:
//! - no login on an account with active 2FA completes without a second factor;
//! - each backup code and each TOTP step is accepted at most once, across resets too;
//! - after a reset no old factor (pending login, backup code, secret) works.
//!
//! And between steps, the outbox: an operation queues its mail and sends none; a delivery
//! round sends each queued message exactly once (the model reads mail after it).

mod common;
use common::*;
use proptest::prelude::*;
use std::collections::HashSet;
use std::time::Duration;
use twofactor::{
    ConfirmOutcome, LoginOutcome, Policy, Role, SecondFactor, SecondFactorOutcome, ThrottlePolicy, TotpParams,
};

#[derive(Debug, Clone)]
enum Op {
    Enroll,
    StartEnrollmentOnly,
    Password { right: bool },
    TotpRight,
    TotpWrong,
    TotpReplay,
    TotpOldSecret,
    BackupRight,
    BackupWrong,
    BackupUsed,
    OldPending,
    Reset,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Enroll),
        1 => Just(Op::StartEnrollmentOnly),
        8 => Just(Op::Password { right: true }),
        2 => Just(Op::Password { right: false }),
        3 => Just(Op::TotpRight),
        2 => Just(Op::TotpWrong),
        3 => Just(Op::TotpReplay),
        2 => Just(Op::TotpOldSecret),
        3 => Just(Op::BackupRight),
        1 => Just(Op::BackupWrong),
        4 => Just(Op::BackupUsed),
        2 => Just(Op::OldPending),
        1 => Just(Op::Reset),
        3 => prop_oneof![Just(1u64), Just(30), Just(301)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, PartialEq)]
enum State {
    Disabled,
    Enrolling,
    Enabled,
}

struct Pending {
    token: String,
    expires: u64,
    failures: u32,
    used: bool,
}

struct Model {
    state: State,
    secret: Vec<u8>,
    pending: Option<Pending>,
    /// Pending logins and secrets from before a reset.
    dead_pendings: Vec<String>,
    dead_secrets: Vec<Vec<u8>>,
    accepted_steps: HashSet<u64>,
    accepted_codes: HashSet<String>,
    used_codes: Vec<String>,
}

const MAX_ATTEMPTS: u32 = 10;

fn policy() -> Policy {
    fast_policy()
        .max_code_attempts(MAX_ATTEMPTS)
        .danger_relaxed_throttle(ThrottlePolicy { free_failures: 100, disable_after: 100, ..ThrottlePolicy::default() })
        .build()
        .unwrap()
}

fn now(f: &Fixture) -> u64 {
    twofactor::Clock::now(&f.clock).0
}

fn code_at(secret: &[u8], t: u64) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), t).expose().to_owned()
}

async fn run(ops: Vec<Op>) {
    let f = fixture_with(policy());
    let bob = f.user("bob", Role::Admin).await;
    let alice = f.user("alice", Role::User).await;
    let mut m = Model {
        state: State::Disabled,
        secret: vec![],
        pending: None,
        dead_pendings: vec![],
        dead_secrets: vec![],
        accepted_steps: HashSet::new(),
        accepted_codes: HashSet::new(),
        used_codes: vec![],
    };
    let mut mailed = 0;
    for op in ops {
        mailed = deliver_queued_mail(&f, alice, mailed).await;
        let t = now(&f);
        let step = t / 30;
        match op {
            Op::Enroll | Op::StartEnrollmentOnly => {
                if m.state == State::Enabled {
                    assert!(f.engine.start_enrollment(alice).await.is_err());
                    continue;
                }
                let started = f.engine.start_enrollment(alice).await.unwrap();
                m.secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
                m.state = State::Enrolling;
                if matches!(op, Op::Enroll) {
                    let out = f.engine.confirm_enrollment(alice, &code_at(&m.secret, t)).await.unwrap();
                    // Every step accepted so far belonged to an enrollment a reset removed;
                    // those steps stay used, so a code for one of them does not confirm.
                    if m.accepted_steps.iter().all(|s| step > *s) {
                        assert!(matches!(out, ConfirmOutcome::Confirmed { .. }), "{out:?}");
                        m.state = State::Enabled;
                        m.accepted_steps.insert(step);
                    } else {
                        assert!(matches!(out, ConfirmOutcome::WrongCode), "a step used before a reset: {out:?}");
                    }
                }
            }
            Op::Password { right } => {
                let pw = if right { PASSWORD } else { "wrong password" };
                let out = f.engine.begin_login("alice", pw, None).await.unwrap();
                match (&out, right, &m.state) {
                    (LoginOutcome::Denied, false, _) => {}
                    (LoginOutcome::Authenticated(_), true, State::Disabled | State::Enrolling) => {}
                    (LoginOutcome::SecondFactorRequired(p), true, State::Enabled) => {
                        m.pending =
                            Some(Pending { token: p.token().to_owned(), expires: t + 300, failures: 0, used: false });
                    }
                    _ => panic!("password step {right} in {:?}: {out:?}", m.state),
                }
            }
            Op::TotpRight
            | Op::TotpWrong
            | Op::TotpReplay
            | Op::TotpOldSecret
            | Op::BackupRight
            | Op::BackupWrong
            | Op::BackupUsed => {
                let Some(p) = m.pending.as_mut() else { continue };
                let right_code = code_at(&m.secret, t);
                let (factor_code, backup) = match op {
                    Op::TotpRight => (right_code.clone(), false),
                    Op::TotpWrong => (format!("{:06}", (right_code.parse::<u32>().unwrap() + 1) % 1_000_000), false),
                    Op::TotpReplay => match m.accepted_steps.iter().max() {
                        Some(s) => (code_at(&m.secret, s * 30), false),
                        None => continue,
                    },
                    // A secret from before a reset, on a live pending login (skipped in
                    // the one-in-a-million step where it shows today's code).
                    Op::TotpOldSecret => match m.dead_secrets.last() {
                        Some(old) if code_at(old, t) != right_code => (code_at(old, t), false),
                        _ => continue,
                    },
                    Op::BackupRight => (f.backup_code("alice"), true),
                    Op::BackupWrong => ("AAAA-AAAA-AAAA-AAAA".to_owned(), true),
                    _ => match m.used_codes.last() {
                        Some(c) => (c.clone(), true),
                        None => continue,
                    },
                };
                let factor =
                    if backup { SecondFactor::BackupCode(&factor_code) } else { SecondFactor::Totp(&factor_code) };
                let out = f.engine.finish_login(&p.token, factor, None).await.unwrap();
                let open = !p.used && p.expires > t && p.failures < MAX_ATTEMPTS;
                let model_accepts = open
                    && match op {
                        Op::TotpRight => !m.accepted_steps.contains(&step),
                        Op::BackupRight => true,
                        _ => false,
                    };
                if is_authenticated(&out) {
                    assert!(model_accepts, "{op:?} accepted; model says no ({out:?})");
                    p.used = true;
                    if backup {
                        assert!(m.accepted_codes.insert(factor_code.clone()), "backup code accepted twice");
                        m.used_codes.push(factor_code);
                    } else {
                        assert!(m.accepted_steps.insert(step), "TOTP step accepted twice");
                    }
                } else {
                    assert!(!model_accepts, "{op:?} refused; model says yes ({out:?})");
                    match out {
                        SecondFactorOutcome::Denied { .. } => {
                            assert!(open, "{out:?} on a closed pending login");
                            p.failures += 1;
                        }
                        // The attempt that uses up the pending login, or any after it.
                        SecondFactorOutcome::Locked { until: None } => {
                            assert!(!p.used && p.expires > t && p.failures + 1 >= MAX_ATTEMPTS, "{out:?}");
                            p.failures += 1;
                        }
                        SecondFactorOutcome::Expired => assert!(p.used || p.expires <= t, "{out:?}"),
                        other => panic!("{other:?}"),
                    }
                }
            }
            Op::OldPending => {
                let current_code = f.mailer.last_code_for(&email("alice"));
                for token in &m.dead_pendings {
                    // Not even today's factors revive a pending login from before a reset.
                    let out =
                        f.engine.finish_login(token, SecondFactor::Totp(&code_at(&m.secret, t)), None).await.unwrap();
                    assert!(!is_authenticated(&out), "a pending login from before a reset worked");
                    if let Some(code) = &current_code {
                        let out = f.engine.finish_login(token, SecondFactor::BackupCode(code), None).await.unwrap();
                        assert!(!is_authenticated(&out), "a pending login from before a reset worked");
                    }
                    for secret in &m.dead_secrets {
                        let out =
                            f.engine.finish_login(token, SecondFactor::Totp(&code_at(secret, t)), None).await.unwrap();
                        assert!(!is_authenticated(&out), "a pending login from before a reset worked");
                    }
                    for code in &m.used_codes {
                        let out = f.engine.finish_login(token, SecondFactor::BackupCode(code), None).await.unwrap();
                        assert!(!is_authenticated(&out));
                    }
                }
            }
            Op::Reset => {
                f.engine.reset(bob, alice, "model test").await.unwrap();
                if let Some(p) = m.pending.take() {
                    m.dead_pendings.push(p.token);
                }
                if m.state != State::Disabled {
                    m.dead_secrets.push(std::mem::take(&mut m.secret));
                }
                if let Some(code) = f.mailer.last_code_for(&email("alice")) {
                    m.used_codes.push(code); // void now, whether used or not
                }
                m.state = State::Disabled;
            }
            Op::Advance(secs) => f.clock.advance(Duration::from_secs(secs)),
        }
    }
    deliver_queued_mail(&f, alice, mailed).await;
}

/// The outbox rule, checked between operations: an operation queues its mail and sends
/// none; one delivery round then sends every queued message exactly once (each under its
/// own id), leaves nothing queued, and a second round finds nothing. Returns the number
/// of mails sent so far. (The model reads mail only after this, as the story does.)
async fn deliver_queued_mail(f: &Fixture, alice: twofactor::UserId, mailed: usize) -> usize {
    assert_eq!(f.mailer.outbox().len(), mailed, "an operation sent mail instead of queuing it");
    let report = f.engine.deliver_due(usize::MAX).await.unwrap();
    let outbox = f.mailer.outbox();
    assert_eq!((report.sent as usize, report.retrying + report.gave_up), (outbox.len() - mailed, 0), "{report:?}");
    assert_eq!(outbox.iter().map(|m| m.id).collect::<HashSet<_>>().len(), outbox.len(), "a message sent twice");
    assert!(no_entries(&stored(f, alice).await.1, "/outbox"), "a queued message was not delivered");
    assert_eq!(f.engine.deliver_due(usize::MAX).await.unwrap().sent, 0, "a delivered message was sent again");
    outbox.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}
