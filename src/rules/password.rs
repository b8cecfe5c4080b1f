//! The password step: what a right password decides, and what a right or wrong one
//! writes.

use crate::account::{Account, TwoFactor};
use crate::crypto::token::{LocationToken, LoginClaims};
use crate::events::{EventKind, Factor, FailureClass};
use crate::outcome::{AuthMethod, Authenticated};
use crate::plumbing::clock::Timestamp;
use crate::policy::Policy;
use crate::rules::locations::valid_location;
use crate::rules::pending::issue_pending;
use crate::rules::{Effects, Transition, throttle};

/// The refusal of a first factor while the account is throttled or locked, decided
/// before the password is looked at: its event, or `None` when the account takes
/// attempts. Every password step checks it on its snapshot and again on the record it
/// writes.
pub(crate) fn refused_while_throttled(account: &Account, now: Timestamp) -> Option<Effects> {
    throttle::blocked(account, now)?;
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::LoginFailed { reason: throttle::refusal(account) });
    Some(effects)
}

/// What a right first factor leads to, decided on the freshest record.
#[derive(Debug)]
pub(crate) enum RightPassword {
    /// Logged in: no code needed, or a remembered location.
    Authenticated(Authenticated),
    /// Logged in, but the policy requires enrolling first.
    EnrollmentRequired(Authenticated),
    /// A code is needed: the claims of the pending login (the engine seals them).
    SecondFactor(LoginClaims),
    /// Throttled since the engine's snapshot: refused like any attempt while throttled.
    Denied,
}

/// The password the engine verified was changed before its write: the verdict is
/// about a hash that is gone.
#[derive(Debug)]
pub(crate) struct PasswordChanged;

/// What the engine verified before the swap, for [`apply_right_password`]. No
/// `Debug`: it holds password hashes.
#[derive(Clone, Copy)]
pub(crate) struct FirstFactor<'a> {
    /// The password hash the crate verified (`None`: the application checked it).
    pub verified_hash: Option<&'a str>,
    /// A stronger hash of the same password, when the stored one is outdated.
    pub rehash: Option<&'a str>,
    /// The remembered-location token the client sent, if it parsed.
    pub location: Option<&'a LocationToken>,
    /// A fresh random id for the pending login, used if a code is needed.
    pub pending_id: [u8; 16],
}

/// The step after a right first factor (the crate's password check, or the
/// application's), on the freshest record: refused if the account was throttled
/// meanwhile; otherwise clears the failures of a complete login, uses a remembered
/// location, stores a re-hash, and answers authenticated, enrollment required or a
/// pending login.
///
/// # Errors
/// [`PasswordChanged`] when the record's hash is no longer the one verified.
pub(crate) fn apply_right_password(
    account: &Account,
    first: FirstFactor<'_>,
    policy: &Policy,
    now: Timestamp,
) -> Result<Transition<RightPassword>, PasswordChanged> {
    if first.verified_hash.is_some_and(|verified| account.password_hash.as_deref() != Some(verified)) {
        return Err(PasswordChanged);
    }
    if let Some(refused) = refused_while_throttled(account, now) {
        return Ok(Transition::unchanged(RightPassword::Denied, refused));
    }
    let mut effects = Effects::default();
    let location = first.location.and_then(|t| valid_location(account, t, now));
    let step = password_step(account, policy, location.is_some());
    let next = apply_password_success(account, step, first.rehash, location, now);
    let authenticated = |method| Authenticated {
        account: account.id,
        username: account.username.clone(),
        role: account.role,
        method,
        remembered: None,
        backup_code_delivery: None,
    };
    let outcome = match step {
        PasswordStep::Authenticated { via_location: true } => {
            effects.event(now, account, EventKind::LoginSucceeded { factor: Factor::Location });
            RightPassword::Authenticated(authenticated(AuthMethod::PasswordAndLocation))
        }
        PasswordStep::Authenticated { via_location: false } => {
            effects.event(now, account, EventKind::LoginSucceeded { factor: Factor::Password });
            RightPassword::Authenticated(authenticated(AuthMethod::Password))
        }
        PasswordStep::EnrollmentRequired => RightPassword::EnrollmentRequired(authenticated(AuthMethod::Password)),
        PasswordStep::SecondFactor => {
            RightPassword::SecondFactor(issue_pending(account, first.pending_id, now, policy))
        }
    };
    Ok(Transition { next, outcome, effects })
}

/// What the password step decided after verifying the password against a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordStep {
    /// Log in now.
    Authenticated { via_location: bool },
    /// Ask for a code.
    SecondFactor,
    /// Ask to enroll.
    EnrollmentRequired,
}

/// Decides the password step for a right password.
pub(crate) fn password_step(account: &Account, policy: &Policy, location_ok: bool) -> PasswordStep {
    match &account.two_factor {
        TwoFactor::Enabled(_) if location_ok => PasswordStep::Authenticated { via_location: true },
        TwoFactor::Enabled(_) => PasswordStep::SecondFactor,
        TwoFactor::Disabled | TwoFactor::Enrolling(_) if policy.require_two_factor => PasswordStep::EnrollmentRequired,
        TwoFactor::Disabled | TwoFactor::Enrolling(_) => PasswordStep::Authenticated { via_location: false },
    }
}

/// The write after a right password, if one is needed: a re-hash, clearing the failure
/// count after a complete login, touching a remembered location (at most hourly).
pub(crate) fn apply_password_success(
    account: &Account,
    step: PasswordStep,
    rehash: Option<&str>,
    location: Option<usize>,
    now: Timestamp,
) -> Option<Account> {
    let mut next = account.clone();
    let mut changed = false;
    if let Some(phc) = rehash {
        next.password_hash = Some(phc.to_owned());
        changed = true;
    }
    if matches!(step, PasswordStep::Authenticated { .. }) {
        changed |= throttle::record_success(&mut next);
    }
    if let Some(loc) = location.and_then(|i| next.locations.get_mut(i))
        && now.since(loc.last_used_at).as_secs() >= 3600
    {
        loc.last_used_at = now;
        changed = true;
    }
    changed.then_some(next)
}

/// Counts a failed password against the budget. If a concurrent failure throttled the
/// account after the engine's snapshot, the attempt is refused like any attempt while
/// throttled: not counted, its result discarded (otherwise concurrent requests would
/// each get a guess evaluated per throttle window).
pub(crate) fn apply_password_failure(account: &Account, policy: &Policy, now: Timestamp) -> Transition<()> {
    if let Some(refused) = refused_while_throttled(account, now) {
        return Transition::unchanged((), refused);
    }
    let mut effects = Effects::default();
    let mut next = account.clone();
    effects.event(now, account, EventKind::LoginFailed { reason: FailureClass::WrongPassword });
    throttle::record_failure(&mut next, &policy.throttle, now, throttle::Failed::Password, &mut effects);
    Transition { next: Some(next), outcome: (), effects }
}
