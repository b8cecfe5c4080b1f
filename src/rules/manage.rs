//! Enrollment, backup-code reissue, administrator reset, password change and
//! remembered-location management, as pure transitions.

use crate::account::{Account, Authenticator, Enabled, Enrolling, ResetRecord, SealedSecret, Throttle, TwoFactor};
use crate::error::Refusal;
use crate::events::EventKind;
use crate::mail::{CodeReason, Delivery, Message};
use crate::outbox::MailId;
use crate::outcome::ResetOutcome;
use crate::plumbing::clock::Timestamp;
use crate::rules::{Effects, FreshCodes, Transition, recipient};

/// Starts (or restarts) an enrollment with a freshly sealed secret. Refused when 2FA is
/// already active: a further authenticator is added with
/// [`start_adding`](super::self_service::start_adding).
pub(crate) fn start_enrollment(
    account: &Account,
    enrolling: Enrolling,
    now: Timestamp,
) -> Result<Transition<()>, Refusal> {
    if matches!(account.two_factor, TwoFactor::Enabled(_)) {
        return Err(Refusal::TwoFactorActive);
    }
    let mut next = account.clone();
    next.two_factor = TwoFactor::Enrolling(enrolling);
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::EnrollmentStarted);
    Ok(Transition { next: Some(next), outcome: (), effects })
}

/// Activates 2FA after a correct code for `step`: that step counts as used, and the
/// first backup codes are stored and queued for mail (the outcome is their delivery).
pub(crate) fn confirm_enrollment(
    account: &Account,
    expected_secret: &SealedSecret,
    step: u64,
    codes: &FreshCodes,
    now: Timestamp,
) -> Result<Transition<Delivery>, Refusal> {
    let TwoFactor::Enrolling(enrolling) = &account.two_factor else {
        return Err(Refusal::NoEnrollment);
    };
    if &enrolling.secret != expected_secret {
        return Err(Refusal::EnrollmentChanged);
    }
    if step <= account.retired_totp_step {
        return Err(Refusal::StepUsedBeforeReset);
    }
    let mut next = account.clone();
    next.two_factor = TwoFactor::Enabled(Enabled {
        authenticators: vec![Authenticator::confirmed(enrolling, step, now)],
        adding: None,
        backup_codes: codes.hashes(),
        enabled_at: now,
    });
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::EnrollmentConfirmed);
    effects.event(now, account, EventKind::BackupCodeRotated);
    let delivery = codes.queue(&mut effects, account, CodeReason::Setup);
    Ok(Transition { next: Some(next), outcome: delivery, effects })
}

/// Replaces every backup code with fresh ones (the old ones are void at once); the
/// outcome is their mail's delivery.
pub(crate) fn reissue(account: &Account, codes: &FreshCodes, now: Timestamp) -> Result<Transition<Delivery>, Refusal> {
    let mut next = account.clone();
    let TwoFactor::Enabled(enabled) = &mut next.two_factor else {
        return Err(Refusal::TwoFactorNotActive);
    };
    enabled.backup_codes = codes.hashes();
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::BackupCodeRotated);
    let delivery = codes.queue(&mut effects, account, CodeReason::Reissued);
    Ok(Transition { next: Some(next), outcome: delivery, effects })
}

/// Removes the whole 2FA association: secret, backup codes, pending logins,
/// remembered locations and the failure budget; keeps the newest accepted TOTP step
/// (so no code from before the reset replays after it); rotates the security stamp;
/// records who did it and how the identity was checked; queues the notice under
/// `notice`.
pub(crate) fn reset(
    target: &Account,
    actor: &Account,
    identity_check: &str,
    new_stamp: u64,
    notice: MailId,
    now: Timestamp,
) -> Transition<ResetOutcome> {
    let mut next = target.clone();
    if let TwoFactor::Enabled(enabled) = &target.two_factor {
        next.retired_totp_step = next.retired_totp_step.max(enabled.newest_step());
    }
    next.two_factor = TwoFactor::Disabled;
    next.locations.clear();
    next.pending.clear();
    next.throttle = Throttle::default();
    next.security_stamp = new_stamp;
    next.last_reset = Some(ResetRecord {
        by: actor.id,
        by_username: actor.username.clone(),
        by_role: actor.role,
        identity_check: identity_check.to_owned(),
        at: now,
    });
    let mut effects = Effects::default();
    effects.event(
        now,
        target,
        EventKind::TwoFactorReset { by: actor.id, by_role: actor.role, identity_check: identity_check.to_owned() },
    );
    let message =
        Message::TwoFactorReset { to: recipient(target), by: actor.username.clone(), by_role: actor.role, at: now };
    let notice_delivery = effects.mail_as(notice, message);
    Transition { next: Some(next), outcome: ResetOutcome::Reset { notice_delivery }, effects }
}

/// Sets a new password hash, rotating the stamp: every pending login and remembered
/// location ends.
pub(crate) fn change_password(account: &Account, phc: String, new_stamp: u64, now: Timestamp) -> Transition<()> {
    let mut next = account.clone();
    next.password_hash = Some(phc);
    next.security_stamp = new_stamp;
    next.locations.clear();
    next.pending.clear();
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::PasswordChanged);
    Transition { next: Some(next), outcome: (), effects }
}

/// Keeps a password hash imported from another system (checked by the caller) for an
/// account the crate keeps no password for yet; refused when it does, so a migration
/// run twice cannot put back a password the user has changed since. Nothing else
/// changes: an import sets a user up, it ends no session.
pub(crate) fn import_password(account: &Account, hash: String, now: Timestamp) -> Result<Transition<()>, Refusal> {
    if account.password_hash.is_some() {
        return Err(Refusal::PasswordAlreadySet);
    }
    let mut next = account.clone();
    next.password_hash = Some(hash);
    let mut effects = Effects::default();
    effects.event(now, account, EventKind::PasswordImported);
    Ok(Transition { next: Some(next), outcome: (), effects })
}

/// Revokes one remembered location. The outcome says whether it existed.
pub(crate) fn revoke_location(account: &Account, id: &[u8; 16], now: Timestamp) -> Transition<bool> {
    let mut effects = Effects::default();
    let Some(i) = account.locations.iter().position(|l| &l.id == id) else {
        return Transition::unchanged(false, effects);
    };
    let mut next = account.clone();
    next.locations.remove(i);
    effects.event(now, account, EventKind::LocationRevoked { location: crate::crypto::token::location_id_text(id) });
    Transition { next: Some(next), outcome: true, effects }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;
    use crate::account::Role;
    use crate::factors::totp::TotpParams;
    use crate::rules::login::tests::{account, enabled};

    #[test]
    fn reset_removes_everything_and_rotates_the_stamp() {
        let mut a = enabled();
        a.throttle.failures = 7;
        let mut admin = account();
        admin.id = UserId::from(2_u64);
        admin.username = "bob".into();
        admin.role = Role::Admin;
        let t = reset(&a, &admin, "video call", 1234, MailId([5; 16]), Timestamp(50));
        let next = t.next.expect("a reset writes");
        assert_eq!(next.two_factor, TwoFactor::Disabled);
        assert_eq!(next.security_stamp, 1234);
        assert_eq!(next.throttle, Throttle::default());
        let rec = next.last_reset.as_ref().map(|r| (r.by, r.identity_check.as_str()));
        assert_eq!(rec, Some((UserId::from(2_u64), "video call")));
        assert_eq!(next.retired_totp_step, 20, "the newest step of any authenticator stays used");
        assert_eq!(t.effects.mails.len(), 1);
        assert_eq!(t.outcome, ResetOutcome::Reset { notice_delivery: Delivery::Queued(MailId([5; 16])) });
    }

    #[test]
    fn enrollment_cannot_restart_over_active_2fa() {
        let a = enabled();
        let enrolling = Enrolling {
            id: [3; 8],
            name: "Phone".into(),
            secret: SealedSecret(vec![2]),
            params: TotpParams::default(),
            started_at: Timestamp(1),
        };
        let started = start_enrollment(&a, enrolling, Timestamp(1));
        assert_eq!(started.err(), Some(Refusal::TwoFactorActive));
        let none = FreshCodes { mail: crate::outbox::MailId([0; 16]), codes: vec![] };
        let confirmed = confirm_enrollment(&a, &SealedSecret(vec![]), 11, &none, Timestamp(1));
        assert_eq!(confirmed.err(), Some(Refusal::NoEnrollment));
        assert_eq!(reissue(&account(), &none, Timestamp(1)).err(), Some(Refusal::TwoFactorNotActive));
    }

    #[test]
    fn a_confirmation_needs_the_same_enrollment_and_a_step_after_any_reset() -> Result<(), Refusal> {
        let mut a = account();
        let secret = SealedSecret(vec![2]);
        a.two_factor = TwoFactor::Enrolling(Enrolling {
            id: [3; 8],
            name: "Phone".into(),
            secret: secret.clone(),
            params: TotpParams::default(),
            started_at: Timestamp(1),
        });
        a.retired_totp_step = 10;
        let codes = FreshCodes { mail: crate::outbox::MailId([4; 16]), codes: vec![] };
        let other = SealedSecret(vec![9]);
        assert_eq!(confirm_enrollment(&a, &other, 11, &codes, Timestamp(1)).err(), Some(Refusal::EnrollmentChanged));
        let retired = confirm_enrollment(&a, &secret, 10, &codes, Timestamp(1)).err();
        assert_eq!(retired, Some(Refusal::StepUsedBeforeReset));
        let t = confirm_enrollment(&a, &secret, 11, &codes, Timestamp(1))?;
        assert_eq!(t.outcome, crate::mail::Delivery::Queued(codes.mail));
        assert!(matches!(t.next.map(|n| n.two_factor), Some(TwoFactor::Enabled(_))));
        Ok(())
    }

    #[test]
    fn revoking_removes_only_the_location_named() {
        let mut a = enabled();
        for (n, label) in ["laptop", "phone"].into_iter().enumerate() {
            a.locations.push(crate::account::RememberedLocation {
                id: [u8::try_from(n).unwrap_or(0); 16],
                token_hash: [0; 32],
                label: label.into(),
                created_at: Timestamp(0),
                last_used_at: Timestamp(0),
                expires_at: Timestamp(10_000),
            });
        }
        let t = revoke_location(&a, &[1; 16], Timestamp(5));
        assert!(t.outcome);
        let left: Vec<_> = t.next.iter().flat_map(|n| n.locations.iter().map(|l| l.label.clone())).collect();
        assert_eq!(left, ["laptop"]);
        let missing = revoke_location(&a, &[7; 16], Timestamp(5));
        assert!(!missing.outcome && missing.next.is_none());
    }
}
