//! The password step: what a right password decides, and what a right or wrong one
//! writes.

use crate::account::{Account, TwoFactor};
use crate::clock::Timestamp;
use crate::events::{EventKind, FailureClass};
use crate::policy::Policy;
use crate::rules::{Effects, Transition, throttle};

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
    let mut fx = Effects::default();
    if throttle::blocked(account, now).is_some() {
        fx.event(now, account, EventKind::LoginFailed { reason: throttle::refusal(account) });
        return Transition::unchanged((), fx);
    }
    let mut next = account.clone();
    fx.event(now, account, EventKind::LoginFailed { reason: FailureClass::WrongPassword });
    throttle::record_failure(&mut next, &policy.throttle, now, throttle::Failed::Password, &mut fx);
    Transition { next: Some(next), outcome: (), effects: fx }
}
