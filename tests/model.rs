//! A model test: random sequences of operations against a small reference model of the
//! rules, checking on every step:
//! - no login on an account with active 2FA completes without a second factor;
//! - each backup code, and each TOTP step of each authenticator, is accepted at most
//!   once, across resets, removals, turning 2FA off and forgetting too;
//! - after a reset, turning 2FA off or forgetting the user, no old factor (pending
//!   login, backup code, secret) works; a removed authenticator's codes never work;
//! - every outcome is the one the model predicts, and the engine lists the model's
//!   authenticators and 2FA state.
//!
//! The reference model's rules, one line each (`Model` holds the state they act on):
//! - a TOTP code logs in, proves a step-up, turns 2FA off or removes another
//!   authenticator iff its authenticator has not used that step or a later one and the
//!   step is newer than every step retired by a reset, a removal or turning 2FA off;
//! - an authenticator is added only while 2FA is on, by a code from it whose step is
//!   newer than every retired step; an unconfirmed one never logs in;
//! - an authenticator is removed only with a fresh factor from another one or the
//!   backup code, never the last one; its newest step is retired;
//! - turning 2FA off takes a fresh factor; every authenticator goes, their newest step
//!   (the one just used included) is retired, pending logins end for good;
//! - a step-up consumes its factor and changes nothing else: no pending login, no
//!   cleared budget;
//! - every wrong or used factor that is evaluated counts in the shared budget, a
//!   complete login (or a reset, or an unlock) clears it; an administrator's unlock
//!   lifts a budget with failures in it (`Unlocked`), finds nothing otherwise
//!   (`NotLocked`), and nobody unlocks themselves;
//! - forgetting a user removes them with their queued mail (a queued code is never
//!   sent); the name can then be taken by a new account, which inherits nothing.
//!
//! And between steps, the outbox: an operation queues its mail and sends none; a delivery
//! round sends each queued message exactly once (the model reads mail after it).

mod common;
use common::*;
use proptest::prelude::*;
use std::collections::HashSet;
use std::time::Duration;
use twofactor::mail::Delivery;
use twofactor::totp::TotpParams;
use twofactor::{
    AddAuthenticatorOutcome, ConfirmOutcome, Error, LoginOutcome, Policy, Refusal, Role, SecondFactor,
    SecondFactorOutcome, StepUpOutcome, ThrottlePolicy, TwoFactorState, UnlockOutcome, UserId,
};

/// A second factor offered to a step-up, to turn 2FA off or to remove an authenticator.
#[derive(Debug, Clone)]
enum Proof {
    /// The code of authenticator `i` (modulo how many there are).
    Totp(usize),
    /// The backup code last mailed.
    Backup,
    /// A backup code used (or voided) before.
    UsedBackup,
    /// A well-formed wrong TOTP code.
    Wrong,
    /// The code of the newest step an authenticator used.
    Replay,
}

#[derive(Debug, Clone)]
enum Op {
    Enroll,
    StartEnrollmentOnly,
    Password {
        right: bool,
    },
    /// At login, the code of authenticator `i` (modulo how many there are).
    TotpRight(usize),
    TotpWrong,
    TotpReplay,
    TotpOldSecret,
    BackupRight,
    BackupWrong,
    BackupUsed,
    OldPending,
    Reset,
    AddAuthenticator {
        right: bool,
    },
    RemoveAuthenticator {
        target: usize,
        proof: Proof,
    },
    Disable(Proof),
    StepUp(Proof),
    Unlock {
        by_admin: bool,
    },
    Forget,
    Advance(u64),
}

fn proof() -> impl Strategy<Value = Proof> {
    prop_oneof![
        4 => (0usize..3).prop_map(Proof::Totp),
        2 => Just(Proof::Backup),
        1 => Just(Proof::UsedBackup),
        1 => Just(Proof::Wrong),
        1 => Just(Proof::Replay),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Enroll),
        2 => Just(Op::StartEnrollmentOnly),
        16 => Just(Op::Password { right: true }),
        4 => Just(Op::Password { right: false }),
        8 => (0usize..3).prop_map(Op::TotpRight),
        4 => Just(Op::TotpWrong),
        6 => Just(Op::TotpReplay),
        4 => Just(Op::TotpOldSecret),
        6 => Just(Op::BackupRight),
        2 => Just(Op::BackupWrong),
        8 => Just(Op::BackupUsed),
        4 => Just(Op::OldPending),
        2 => Just(Op::Reset),
        8 => prop_oneof![3 => Just(true), 1 => Just(false)].prop_map(|right| Op::AddAuthenticator { right }),
        6 => ((0usize..3), proof()).prop_map(|(target, proof)| Op::RemoveAuthenticator { target, proof }),
        3 => proof().prop_map(Op::Disable),
        6 => proof().prop_map(Op::StepUp),
        2 => any::<bool>().prop_map(|by_admin| Op::Unlock { by_admin }),
        // Rare: it starts the user over.
        1 => Just(Op::Forget),
        6 => prop_oneof![Just(1u64), Just(30), Just(301)].prop_map(Op::Advance),
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

/// An active authenticator: its public id, its secret, the newest step it used.
struct Auth {
    id: String,
    secret: Vec<u8>,
    last: u64,
}

/// What the model expects of a factor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Accepted, from authenticator `i`.
    Totp(usize),
    /// The valid backup code: accepted.
    Backup,
    /// Refused (and counted).
    Denied,
}

struct Model {
    state: State,
    /// The secret being enrolled, while `Enrolling`.
    enrolling: Vec<u8>,
    /// The active authenticators, while `Enabled`, oldest first.
    auths: Vec<Auth>,
    /// Steps up to this one stay used for every authenticator.
    retired: u64,
    /// The shared budget's failures (this policy never throttles within a run).
    failures: u32,
    pending: Option<Pending>,
    /// Pending logins and secrets from before a reset, turning 2FA off or forgetting the
    /// user, and secrets of removed or never confirmed authenticators.
    dead_pendings: Vec<String>,
    dead_secrets: Vec<Vec<u8>>,
    /// Every (secret, step) and backup code ever accepted.
    accepted_steps: HashSet<(Vec<u8>, u64)>,
    accepted_codes: HashSet<String>,
    /// Backup codes used or voided.
    used_codes: Vec<String>,
}

impl Model {
    fn new() -> Model {
        Model {
            state: State::Disabled,
            enrolling: vec![],
            auths: vec![],
            retired: 0,
            failures: 0,
            pending: None,
            dead_pendings: vec![],
            dead_secrets: vec![],
            accepted_steps: HashSet::new(),
            accepted_codes: HashSet::new(),
            used_codes: vec![],
        }
    }

    /// Rule: authenticator `i` accepts its code for `step` iff it has not used that
    /// step or a later one and no reset, removal or turning off retired it.
    fn fresh(&self, i: usize, step: u64) -> bool {
        step > self.auths[i].last && step > self.retired
    }

    /// Authenticator `i` used `step`.
    fn use_step(&mut self, i: usize, step: u64) {
        let key = (self.auths[i].secret.clone(), step);
        assert!(self.accepted_steps.insert(key), "a TOTP step of one authenticator accepted twice");
        self.auths[i].last = step;
    }

    /// The valid backup code `code` was used.
    fn use_code(&mut self, code: &str) {
        assert!(self.accepted_codes.insert(code.to_owned()), "backup code accepted twice");
        self.used_codes.push(code.to_owned());
    }

    /// The factor `proof` stands for now (`None`: nothing to offer), whether it is a
    /// backup code, and what the model expects of it. `except`: the authenticator being
    /// removed, whose own code proves nothing.
    fn proof(&self, f: &Fixture, proof: &Proof, except: Option<usize>, t: u64) -> Option<(String, bool, Expect)> {
        let step = t / 30;
        match proof {
            Proof::Totp(i) => {
                let i = i % self.auths.len();
                let expect = if Some(i) != except && self.fresh(i, step) { Expect::Totp(i) } else { Expect::Denied };
                Some((code_at(&self.auths[i].secret, t), false, expect))
            }
            Proof::Backup => Some((f.backup_code("alice"), true, Expect::Backup)),
            Proof::UsedBackup => self.used_codes.last().map(|c| (c.clone(), true, Expect::Denied)),
            Proof::Wrong => Some((wrong(&self.auths[0].secret, t), false, Expect::Denied)),
            Proof::Replay => {
                let newest = self.auths.iter().max_by_key(|a| a.last)?;
                Some((code_at(&newest.secret, newest.last * 30), false, Expect::Denied))
            }
        }
    }

    /// Applies an accepted factor (`expect` is not `Denied`).
    fn accept(&mut self, expect: Expect, code: &str, step: u64) {
        match expect {
            Expect::Totp(i) => self.use_step(i, step),
            Expect::Backup => self.use_code(code),
            Expect::Denied => unreachable!(),
        }
    }

    /// Everything of the 2FA association goes dead (a reset, turning off, forgetting).
    fn bury(&mut self, f: &Fixture) {
        if let Some(p) = self.pending.take() {
            self.dead_pendings.push(p.token);
        }
        if self.state == State::Enabled
            && let Some(code) = f.mailer.last_code_for(&email("alice"))
        {
            self.used_codes.push(code); // void now, whether used or not
        }
        self.dead_secrets.extend(self.auths.drain(..).map(|a| a.secret));
        if self.state == State::Enrolling {
            self.dead_secrets.push(std::mem::take(&mut self.enrolling));
        }
        self.state = State::Disabled;
    }
}

const MAX_ATTEMPTS: u32 = 10;

fn policy() -> Policy {
    fast_policy()
        .max_code_attempts(MAX_ATTEMPTS)
        .danger_relaxed_throttle(ThrottlePolicy::default().free_failures(100).disable_after(100))
        .build()
        .unwrap()
}

fn now(f: &Fixture) -> u64 {
    twofactor::Clock::now(&f.clock).0
}

fn code_at(secret: &[u8], t: u64) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), t).expose().to_owned()
}

/// A well-formed code that `secret` does not show at `t`.
fn wrong(secret: &[u8], t: u64) -> String {
    format!("{:06}", (code_at(secret, t).parse::<u32>().unwrap() + 1) % 1_000_000)
}

fn factor(code: &str, backup: bool) -> SecondFactor<'_> {
    if backup { SecondFactor::BackupCode(code) } else { SecondFactor::Totp(code) }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(result: twofactor::Result<T>, refusal: Refusal) {
    match result {
        Err(Error::Misuse(r)) if r == refusal => {}
        other => panic!("expected Misuse({refusal:?}), got {other:?}"),
    }
}

async fn run(ops: Vec<Op>) {
    let f = fixture_with(policy());
    let bob = f.user("bob", Role::Admin).await;
    let mut alice = f.user("alice", Role::User).await;
    let mut m = Model::new();
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
                if m.state == State::Enrolling {
                    m.dead_secrets.push(std::mem::take(&mut m.enrolling)); // replaced, never confirmed
                }
                let started = f.engine.start_enrollment(alice).await.unwrap();
                m.enrolling = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
                m.state = State::Enrolling;
                if matches!(op, Op::Enroll) {
                    let out = f.engine.confirm_enrollment(alice, &code_at(&m.enrolling, t)).await.unwrap();
                    // Steps retired by a reset, a removal or turning 2FA off stay used,
                    // so a code for one of them does not confirm.
                    if step > m.retired {
                        assert!(matches!(out, ConfirmOutcome::Confirmed { .. }), "{out:?}");
                        m.state = State::Enabled;
                        let id = f.engine.authenticators(alice).await.unwrap()[0].id.clone();
                        m.auths = vec![Auth { id, secret: std::mem::take(&mut m.enrolling), last: 0 }];
                        m.use_step(0, step);
                    } else {
                        assert!(matches!(out, ConfirmOutcome::WrongCode), "a retired step: {out:?}");
                    }
                }
            }
            Op::Password { right } => {
                let pw = if right { PASSWORD } else { "wrong password" };
                let out = f.engine.begin_login("alice", pw, None).await.unwrap();
                match (&out, right, &m.state) {
                    (LoginOutcome::Denied, false, _) => m.failures += 1,
                    (LoginOutcome::Authenticated(_), true, State::Disabled | State::Enrolling) => m.failures = 0,
                    (LoginOutcome::SecondFactorRequired(p), true, State::Enabled) => {
                        m.pending =
                            Some(Pending { token: p.token().to_owned(), expires: t + 300, failures: 0, used: false });
                    }
                    _ => panic!("password step {right} in {:?}: {out:?}", m.state),
                }
            }
            Op::TotpRight(_)
            | Op::TotpWrong
            | Op::TotpReplay
            | Op::TotpOldSecret
            | Op::BackupRight
            | Op::BackupWrong
            | Op::BackupUsed => {
                let Some(p) = m.pending.as_ref() else { continue };
                let live: Vec<String> =
                    m.auths.iter().flat_map(|a| [code_at(&a.secret, t), code_at(&a.secret, t - 30)]).collect();
                let (factor_code, backup, accepts) = match &op {
                    Op::TotpRight(i) => {
                        let i = i % m.auths.len();
                        (code_at(&m.auths[i].secret, t), false, m.fresh(i, step).then_some(Expect::Totp(i)))
                    }
                    Op::TotpWrong => (wrong(&m.auths[0].secret, t), false, None),
                    Op::TotpReplay => {
                        let newest = m.auths.iter().max_by_key(|a| a.last).unwrap();
                        (code_at(&newest.secret, newest.last * 30), false, None)
                    }
                    // A dead secret, on a live pending login (skipped in the
                    // one-in-a-million step where it shows a live code).
                    Op::TotpOldSecret => match m.dead_secrets.last() {
                        Some(old) if !live.contains(&code_at(old, t)) => (code_at(old, t), false, None),
                        _ => continue,
                    },
                    Op::BackupRight => (f.backup_code("alice"), true, Some(Expect::Backup)),
                    Op::BackupWrong => ("AAAA-AAAA-AAAA-AAAA".to_owned(), true, None),
                    _ => match m.used_codes.last() {
                        Some(c) => (c.clone(), true, None),
                        None => continue,
                    },
                };
                let out = f.engine.finish_login(&p.token, factor(&factor_code, backup), None).await.unwrap();
                let open = !p.used && p.expires > t && p.failures < MAX_ATTEMPTS;
                let model_accepts = if open { accepts } else { None };
                if is_authenticated(&out) {
                    let Some(expect) = model_accepts else { panic!("{op:?} accepted; model says no ({out:?})") };
                    m.accept(expect, &factor_code, step);
                    m.failures = 0;
                    m.pending.as_mut().unwrap().used = true;
                } else {
                    assert!(model_accepts.is_none(), "{op:?} refused; model says yes ({out:?})");
                    let p = m.pending.as_mut().unwrap();
                    match out {
                        SecondFactorOutcome::Denied { .. } => {
                            assert!(open, "{out:?} on a closed pending login");
                            p.failures += 1;
                            m.failures += 1;
                        }
                        // The attempt that uses up the pending login, or any after it.
                        SecondFactorOutcome::Locked { until: None } => {
                            assert!(!p.used && p.expires > t && p.failures + 1 >= MAX_ATTEMPTS, "{out:?}");
                            if open {
                                m.failures += 1;
                            }
                            p.failures += 1;
                        }
                        SecondFactorOutcome::Expired => assert!(p.used || p.expires <= t, "{out:?}"),
                        other => panic!("{other:?}"),
                    }
                }
            }
            Op::OldPending => {
                let current_code = f.mailer.last_code_for(&email("alice"));
                let mut codes: Vec<(String, bool)> = m.auths.iter().map(|a| (code_at(&a.secret, t), false)).collect();
                codes.extend(current_code.map(|c| (c, true)));
                codes.extend(m.dead_secrets.iter().map(|s| (code_at(s, t), false)));
                codes.extend(m.used_codes.iter().map(|c| (c.clone(), true)));
                for token in &m.dead_pendings {
                    // Not even today's factors revive a pending login from before a reset,
                    // turning 2FA off or forgetting the user.
                    for (code, backup) in &codes {
                        let out = f.engine.finish_login(token, factor(code, *backup), None).await.unwrap();
                        assert!(matches!(out, SecondFactorOutcome::Expired), "a dead pending login: {out:?}");
                    }
                }
            }
            Op::Reset => {
                f.engine.reset(bob, alice, "model test").await.unwrap();
                // Rule: the authenticators' newest step is retired; the budget clears.
                m.retired = m.retired.max(m.auths.iter().map(|a| a.last).max().unwrap_or(0));
                m.failures = 0;
                m.bury(&f);
            }
            Op::AddAuthenticator { right } => {
                if m.state != State::Enabled {
                    refused(f.engine.add_authenticator(alice, "Tablet").await, Refusal::TwoFactorNotActive);
                    continue;
                }
                if m.auths.len() >= 10 {
                    refused(f.engine.add_authenticator(alice, "Tablet").await, Refusal::TooManyAuthenticators);
                    continue;
                }
                let started = f.engine.add_authenticator(alice, &format!("Device {}", m.auths.len())).await.unwrap();
                let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
                let code = if right { code_at(&secret, t) } else { wrong(&secret, t) };
                let out = f.engine.confirm_authenticator(alice, &code).await.unwrap();
                // Rule: confirmed by a right code from it whose step is not retired.
                if right && step > m.retired {
                    let AddAuthenticatorOutcome::Added { id, notice_delivery: Delivery::Queued(_) } = out else {
                        panic!("a right code did not add the authenticator: {out:?}")
                    };
                    m.auths.push(Auth { id, secret, last: 0 });
                    m.use_step(m.auths.len() - 1, step);
                } else {
                    assert_eq!(out, AddAuthenticatorOutcome::WrongCode);
                    m.dead_secrets.push(secret); // the next addition replaces it
                }
            }
            Op::RemoveAuthenticator { target, proof } => {
                if m.state != State::Enabled {
                    let out = f.engine.remove_authenticator(alice, "0000000000000000", SecondFactor::Totp("123456"));
                    refused(out.await, Refusal::TwoFactorNotActive);
                    continue;
                }
                let target = target % m.auths.len();
                let id = m.auths[target].id.clone();
                if m.auths.len() < 2 {
                    let out = f.engine.remove_authenticator(alice, &id, SecondFactor::Totp("123456")).await;
                    refused(out, Refusal::LastAuthenticator);
                    continue;
                }
                let Some((code, backup, expect)) = m.proof(&f, &proof, Some(target), t) else { continue };
                let out = f.engine.remove_authenticator(alice, &id, factor(&code, backup)).await.unwrap();
                if expect == Expect::Denied {
                    assert_eq!(out, StepUpOutcome::Denied, "{proof:?}");
                    m.failures += 1;
                } else {
                    assert!(out.is_verified(), "{proof:?}: {out:?}");
                    m.accept(expect, &code, step);
                    // Rule: the removed one's newest step is retired.
                    let removed = m.auths.remove(target);
                    m.retired = m.retired.max(removed.last);
                    m.dead_secrets.push(removed.secret);
                }
            }
            Op::Disable(proof) => {
                if m.state != State::Enabled {
                    refused(
                        f.engine.disable_two_factor(alice, SecondFactor::Totp("123456")).await,
                        Refusal::TwoFactorNotActive,
                    );
                    continue;
                }
                let Some((code, backup, expect)) = m.proof(&f, &proof, None, t) else { continue };
                let out = f.engine.disable_two_factor(alice, factor(&code, backup)).await.unwrap();
                if expect == Expect::Denied {
                    assert_eq!(out, StepUpOutcome::Denied, "{proof:?}");
                    m.failures += 1;
                } else {
                    assert!(out.is_verified(), "{proof:?}: {out:?}");
                    m.accept(expect, &code, step);
                    // Rule: every authenticator's newest step, the one just used
                    // included, is retired; the rest goes as at a reset (but the budget
                    // stays).
                    m.retired = m.retired.max(m.auths.iter().map(|a| a.last).max().unwrap_or(0));
                    m.bury(&f);
                }
            }
            Op::StepUp(proof) => {
                if m.state != State::Enabled {
                    refused(f.engine.step_up(alice, SecondFactor::Totp("123456")).await, Refusal::TwoFactorNotActive);
                    continue;
                }
                let Some((code, backup, expect)) = m.proof(&f, &proof, None, t) else { continue };
                let out = f.engine.step_up(alice, factor(&code, backup)).await.unwrap();
                match (expect, &out) {
                    (Expect::Denied, StepUpOutcome::Denied) => m.failures += 1,
                    (Expect::Totp(_), StepUpOutcome::Verified { backup_code_delivery: None, .. })
                    | (
                        Expect::Backup,
                        StepUpOutcome::Verified { backup_code_delivery: Some(Delivery::Queued(_)), .. },
                    ) => {
                        m.accept(expect, &code, step);
                    }
                    _ => panic!("{proof:?}: the model expects {expect:?}, got {out:?}"),
                }
            }
            Op::Unlock { by_admin } => {
                let actor = if by_admin { bob } else { alice };
                let out = f.engine.unlock(actor, alice, "model test").await.unwrap();
                match (by_admin, m.failures > 0, &out) {
                    (false, _, UnlockOutcome::NotAllowed) | (true, false, UnlockOutcome::NotLocked) => {}
                    (true, true, UnlockOutcome::Unlocked { .. }) => m.failures = 0,
                    _ => panic!("unlock by admin {by_admin} with {} failures: {out:?}", m.failures),
                }
            }
            Op::Forget => {
                if m.state == State::Enabled {
                    // Mail waiting in the document when it goes: never sent.
                    f.engine.reissue_backup_code(alice).await.unwrap();
                }
                assert!(f.engine.forget_user(alice).await.unwrap());
                assert!(!f.engine.forget_user(alice).await.unwrap(), "forgotten twice");
                let report = f.engine.deliver_due(usize::MAX).await.unwrap();
                assert_eq!((report.sent, f.mailer.outbox().len()), (0, mailed), "a forgotten user's mail was sent");
                let out = f.engine.begin_login("alice", PASSWORD, None).await.unwrap();
                assert!(matches!(out, LoginOutcome::Denied), "a forgotten user logged in: {out:?}");
                m.bury(&f);
                // The name is free: a new account takes it, with nothing of the old one.
                let old = alice;
                alice = f.user("alice", Role::User).await;
                assert_ne!(alice, old);
                m.retired = 0;
                m.failures = 0;
            }
            Op::Advance(secs) => f.clock.advance(Duration::from_secs(secs)),
        }
        check_state(&f, alice, &m).await;
    }
    deliver_queued_mail(&f, alice, mailed).await;
}

/// The engine lists the model's authenticators and 2FA state.
async fn check_state(f: &Fixture, alice: UserId, m: &Model) {
    let ids: Vec<String> = f.engine.authenticators(alice).await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, m.auths.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), "the authenticators");
    let state = f.engine.account(alice).await.unwrap().unwrap().two_factor;
    let expected = match m.state {
        State::Disabled => TwoFactorState::Disabled,
        State::Enrolling => TwoFactorState::Enrolling,
        State::Enabled => TwoFactorState::Enabled,
    };
    assert_eq!(state, expected);
}

/// The outbox rule, checked between operations: an operation queues its mail and sends
/// none; one delivery round then sends every queued message exactly once (each under its
/// own id), leaves nothing queued, and a second round finds nothing. Returns the number
/// of mails sent so far. (The model reads mail only after this, as the story does.)
async fn deliver_queued_mail(f: &Fixture, alice: UserId, mailed: usize) -> usize {
    assert_eq!(f.mailer.outbox().len(), mailed, "an operation sent mail instead of queuing it");
    let report = f.engine.deliver_due(usize::MAX).await.unwrap();
    let outbox = f.mailer.outbox();
    assert_eq!((report.sent as usize, report.retrying + report.gave_up), (outbox.len() - mailed, 0), "{report:?}");
    assert_eq!(outbox.iter().map(|m| m.id).collect::<HashSet<_>>().len(), outbox.len(), "a message sent twice");
    assert!(no_entries(&stored(f, alice).await.1, "/outbox"), "a queued message was not delivered");
    assert_eq!(f.engine.deliver_due(usize::MAX).await.unwrap().sent, 0, "a delivered message was sent again");
    outbox.len()
}

/// Sequences run on every test run besides the random ones: each walks one of the
/// self-service rules the random search reaches only now and then.
#[test]
fn known_sequences_match_the_reference_model() {
    use Op::*;
    let sequences = [
        // A pending login from before 2FA was turned off stays dead after enrolling again.
        vec![Enroll, Advance(30), Password { right: true }, Disable(Proof::Totp(0)), Advance(30), Enroll, OldPending],
        // The step that turned 2FA off confirms no new enrollment.
        vec![Enroll, Advance(30), Disable(Proof::Totp(0)), Enroll, Advance(30), Enroll],
        // Two authenticators: each logs in at the same step, one is removed with the
        // other's code, its codes die, the budget is unlocked, the user forgotten.
        vec![
            Enroll,
            Advance(30),
            AddAuthenticator { right: true },
            Advance(30),
            Password { right: true },
            TotpRight(1),
            Password { right: true },
            TotpRight(0),
            Password { right: true },
            TotpRight(0),
            Advance(30),
            RemoveAuthenticator { target: 0, proof: Proof::Totp(0) },
            RemoveAuthenticator { target: 0, proof: Proof::Totp(1) },
            Password { right: true },
            TotpOldSecret,
            StepUp(Proof::Backup),
            StepUp(Proof::UsedBackup),
            Unlock { by_admin: false },
            Unlock { by_admin: true },
            Unlock { by_admin: true },
            Forget,
            OldPending,
            Enroll,
        ],
    ];
    for ops in sequences {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}
