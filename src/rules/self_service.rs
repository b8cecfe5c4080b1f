//! What a signed-in user does to their own second factor (add and remove
//! authenticators, turn 2FA off, prove a fresh factor before a sensitive action), and
//! an administrator's unlock, as pure transitions.

use crate::account::{
    Account, Authenticator, AuthenticatorId, Enrolling, ResetRecord, SealedSecret, Throttle, TwoFactor,
};
use crate::error::{InputError, Refusal};
use crate::events::{EventKind, Factor, FailureClass};
use crate::mail::Message;
use crate::outbox::MailId;
use crate::outcome::{AddAuthenticatorOutcome, StepUpOutcome, UnlockOutcome};
use crate::plumbing::clock::Timestamp;
use crate::policy::Policy;
use crate::rules::login::{CodeVerdict, Prepared, accept_factor};
use crate::rules::{Effects, Transition, recipient, throttle};

/// The most authenticators a user keeps.
pub(crate) const MAX_AUTHENTICATORS: usize = 10;

/// The hex form of an authenticator id.
pub(crate) fn authenticator_id_text(id: &AuthenticatorId) -> String {
    data_encoding::HEXLOWER.encode(id)
}

/// An authenticator id from its hex form.
pub(crate) fn parse_authenticator_id(text: &str) -> Option<AuthenticatorId> {
    let bytes = data_encoding::HEXLOWER.decode(text.as_bytes()).ok()?;
    AuthenticatorId::try_from(bytes).ok()
}

/// What a verified fresh factor lets happen: the action's change to the record, its
/// events and mail. `Sync`, so the engine's futures that hold one stay `Send` (an
/// application awaits them in a spawned task or a web handler).
pub(crate) type Action<'a> = &'a (dyn Fn(&Account, &mut Account, &mut Effects, Timestamp) + Sync);

/// Checks a fresh second factor of a signed-in user against the freshest record and,
/// when it is right, applies `action`. A blocked account evaluates nothing; a wrong
/// factor counts in the shared budget as a wrong code at login does (throttle and
/// second-factor lock alike); a right one is consumed as at login (its TOTP step
/// used, its backup code replaced and the new one queued) but clears nothing: only a
/// complete login clears the budget.
pub(crate) fn fresh_factor(
    account: &Account,
    verdict: &CodeVerdict,
    prepared: &Prepared,
    policy: &Policy,
    now: Timestamp,
    action: Action<'_>,
) -> Transition<StepUpOutcome> {
    if let Some(refused) = refused_while_throttled(account, verdict.factor(), now) {
        return refused;
    }
    let mut effects = Effects::default();
    let mut next = account.clone();
    match accept_factor(account, &mut next, verdict, prepared, now, &mut effects) {
        Ok(factor) => {
            // The budget is the login's: only a complete login clears it.
            effects.event(now, account, EventKind::SecondFactorVerified { factor });
            action(account, &mut next, &mut effects, now);
            // The replacement code's mail, unless the action dropped it.
            let outcome = StepUpOutcome::Verified { factor, backup_code_delivery: effects.code_delivery() };
            Transition { next: Some(next), outcome, effects }
        }
        Err((factor, reason)) => {
            effects.event(now, account, EventKind::SecondFactorFailed { factor, reason });
            throttle::record_failure(&mut next, &policy.throttle, now, throttle::Failed::SecondFactor, &mut effects);
            let outcome = match throttle::blocked(&next, now) {
                Some(Some(until)) => StepUpOutcome::Throttled { until },
                Some(None) => StepUpOutcome::Locked,
                None => StepUpOutcome::Denied,
            };
            Transition { next: Some(next), outcome, effects }
        }
    }
}

/// Admits a fresh factor on the engine's snapshot, before any code is checked:
/// `parsed` back when the account takes attempts and the input is a code. Otherwise the
/// answer, with its event: `Throttled` or `Locked`, or, for input that is not a code at
/// all, `Denied`, counting nothing (a typo guessed nothing).
pub(crate) fn admit_fresh_factor<P>(
    account: &Account,
    factor: Factor,
    parsed: Result<P, InputError>,
    now: Timestamp,
) -> Result<P, Box<Transition<StepUpOutcome>>> {
    if let Some(refused) = refused_while_throttled(account, factor, now) {
        return Err(Box::new(refused));
    }
    parsed.map_err(|bad| {
        let mut effects = Effects::default();
        effects.event(now, account, EventKind::SecondFactorFailed { factor, reason: FailureClass::bad_input(&bad) });
        Box::new(Transition::unchanged(StepUpOutcome::Denied, effects))
    })
}

/// `Throttled` or `Locked` with its event while the account takes no attempts.
fn refused_while_throttled(account: &Account, factor: Factor, now: Timestamp) -> Option<Transition<StepUpOutcome>> {
    let blocked = throttle::blocked(account, now)?;
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::SecondFactorFailed { factor, reason: throttle::refusal(account) });
    let outcome = match blocked {
        Some(until) => StepUpOutcome::Throttled { until },
        None => StepUpOutcome::Locked,
    };
    Some(Transition::unchanged(outcome, effects))
}

/// A step-up check changes nothing beyond consuming the factor.
pub(crate) fn no_action(_: &Account, _: &mut Account, _: &mut Effects, _: Timestamp) {}

/// Turns 2FA off: every authenticator, the backup codes, pending logins and
/// remembered locations go, and the security stamp rotates to `stamp`, so no pending
/// login from before comes back when 2FA is turned on again; the newest step stays used
/// (as after a reset), the one the fresh factor just used included; the user is mailed.
pub(crate) fn disable(stamp: u64) -> impl Fn(&Account, &mut Account, &mut Effects, Timestamp) {
    move |account, next, effects, now| {
        // `next`, not `account`: it holds the step the fresh factor just used.
        if let TwoFactor::Enabled(e) = &next.two_factor {
            next.retired_totp_step = next.retired_totp_step.max(e.newest_step());
        }
        next.two_factor = TwoFactor::Disabled;
        next.pending.clear();
        next.locations.clear();
        next.security_stamp = stamp;
        // A backup code that proved the factor was replaced; with 2FA off the
        // replacement works nowhere, so it is not mailed.
        effects.mails.retain(|o| !o.message.carries_code());
        effects.event(now, account, EventKind::TwoFactorDisabled);
        effects.mail(Message::TwoFactorDisabled { to: recipient(account), at: now });
    }
}

/// Removes authenticator `id` (the engine checked that the fresh factor came from
/// another one, or from the backup code); its newest step stays used.
pub(crate) fn remove(id: AuthenticatorId) -> impl Fn(&Account, &mut Account, &mut Effects, Timestamp) {
    move |account, next, effects, now| {
        let TwoFactor::Enabled(e) = &mut next.two_factor else { return };
        let Some(i) = e.authenticators.iter().position(|a| a.id == id) else { return };
        if e.authenticators.len() < 2 {
            return;
        }
        let removed = e.authenticators.remove(i);
        next.retired_totp_step = next.retired_totp_step.max(removed.last_used_step);
        effects.event(now, account, EventKind::AuthenticatorRemoved { authenticator: authenticator_id_text(&id) });
        effects.mail(Message::AuthenticatorRemoved { to: recipient(account), name: removed.name, at: now });
    }
}

/// Whether `id` can be removed from `account` now (2FA on, the authenticator there,
/// another one left).
pub(crate) fn check_removable(account: &Account, id: &AuthenticatorId) -> Result<(), Refusal> {
    let TwoFactor::Enabled(e) = &account.two_factor else {
        return Err(Refusal::TwoFactorNotActive);
    };
    if !e.authenticators.iter().any(|a| a.id == *id) {
        return Err(Refusal::NoSuchAuthenticator);
    }
    if e.authenticators.len() < 2 {
        return Err(Refusal::LastAuthenticator);
    }
    Ok(())
}

/// Starts adding a further authenticator (replacing one being added). 2FA must be on.
pub(crate) fn start_adding(account: &Account, adding: Enrolling, now: Timestamp) -> Result<Transition<()>, Refusal> {
    let TwoFactor::Enabled(e) = &account.two_factor else {
        return Err(Refusal::TwoFactorNotActive);
    };
    if e.authenticators.len() >= MAX_AUTHENTICATORS {
        return Err(Refusal::TooManyAuthenticators);
    }
    let mut next = account.clone();
    if let TwoFactor::Enabled(e) = &mut next.two_factor {
        e.adding = Some(adding);
    }
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::EnrollmentStarted);
    Ok(Transition { next: Some(next), outcome: (), effects })
}

/// Confirms the authenticator being added with a right code for `step` (that step
/// counts as used for it): it logs in from now on, and the user is mailed (under
/// `notice`).
pub(crate) fn confirm_adding(
    account: &Account,
    expected_secret: &SealedSecret,
    step: u64,
    notice: MailId,
    now: Timestamp,
) -> Result<Transition<AddAuthenticatorOutcome>, Refusal> {
    let TwoFactor::Enabled(e) = &account.two_factor else {
        return Err(Refusal::TwoFactorNotActive);
    };
    let Some(adding) = &e.adding else {
        return Err(Refusal::NoEnrollment);
    };
    if &adding.secret != expected_secret {
        return Err(Refusal::EnrollmentChanged);
    }
    if step <= account.retired_totp_step {
        return Err(Refusal::StepUsedBeforeReset);
    }
    if e.authenticators.len() >= MAX_AUTHENTICATORS {
        return Err(Refusal::TooManyAuthenticators);
    }
    let added = Authenticator::confirmed(adding, step, now);
    let mut next = account.clone();
    if let TwoFactor::Enabled(e) = &mut next.two_factor {
        e.adding = None;
        e.authenticators.push(added.clone());
    }
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::AuthenticatorAdded { authenticator: authenticator_id_text(&added.id) });
    let notice_delivery =
        effects.mail_as(notice, Message::AuthenticatorAdded { to: recipient(account), name: added.name, at: now });
    let outcome = AddAuthenticatorOutcome::Added { id: authenticator_id_text(&added.id), notice_delivery };
    Ok(Transition { next: Some(next), outcome, effects })
}

/// An administrator's unlock: clears the failure budget, and with it a throttle or the
/// second-factor lock (2FA stays as it is), records who and why, and mails the user.
/// No write when the budget holds no failure ([`UnlockOutcome::NotLocked`]); the
/// notice is queued under `notice`.
pub(crate) fn unlock(
    target: &Account,
    actor: &Account,
    reason: &str,
    notice: MailId,
    now: Timestamp,
) -> Transition<UnlockOutcome> {
    if target.throttle == Throttle::default() {
        return Transition::unchanged(UnlockOutcome::NotLocked, Effects::default());
    }
    let mut next = target.clone();
    next.throttle = Throttle::default();
    next.last_unlock = Some(ResetRecord {
        by: actor.id,
        by_username: actor.username.clone(),
        by_role: actor.role,
        identity_check: reason.to_owned(),
        at: now,
    });
    let mut effects = Effects::default();
    effects.event(now, target, EventKind::Unlocked { by: actor.id, by_role: actor.role, reason: reason.to_owned() });
    let message = Message::Unlocked { to: recipient(target), by: actor.username.clone(), by_role: actor.role, at: now };
    let notice_delivery = effects.mail_as(notice, message);
    Transition { next: Some(next), outcome: UnlockOutcome::Unlocked { notice_delivery }, effects }
}

#[cfg(test)]
mod tests;
