//! The second step as a pure transition: a TOTP code or the backup code against a
//! pending login.

use crate::account::{Account, AuthenticatorId, SealedSecret, TwoFactor};
use crate::crypto::secret::SecretString;
use crate::crypto::token::{LocationToken, LoginClaims, location_id_text};
use crate::error::InputError;
use crate::events::{EventKind, Factor, FailureClass};
use crate::factors::totp::TotpVerification;
use crate::mail::{CodeReason, Message};
use crate::outcome::{AuthMethod, Authenticated, RememberToken, SecondFactorOutcome};
use crate::plumbing::clock::Timestamp;
use crate::policy::Policy;
use crate::rules::{Effects, FreshCodes, Transition, recipient, throttle};

use super::locations::remember;
use super::pending::{attempts_left, check_pending, mark_pending, prune_pending};

/// What the engine found when it checked the code against a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeVerdict {
    /// A TOTP code was checked against every active authenticator: `authenticator`
    /// is the one that accepted it, or (when none did) the one that matched a used
    /// step, if any.
    Totp { authenticator: Option<AuthenticatorId>, verification: TotpVerification },
    /// A backup code matched the stored hash with this PHC string.
    BackupMatched(String),
    /// A backup code matched nothing.
    BackupWrong,
}

impl CodeVerdict {
    /// The factor the verdict is about.
    pub(crate) fn factor(&self) -> Factor {
        match self {
            CodeVerdict::Totp { .. } => Factor::Totp,
            _ => Factor::BackupCode,
        }
    }
}

/// What the engine prepared for a successful second factor before the swap
/// (randomness, Argon2 and sealing stay out of the rules): a replacement code, a new
/// remembered location, a re-sealed secret.
pub(crate) struct Prepared {
    /// The replacement backup code, for a backup-code login.
    pub replacement: Option<FreshCodes>,
    /// A new remembered location, if the user asked for one.
    pub remember: Option<(LocationToken, String)>,
    /// The accepting authenticator's secret re-sealed under the newest key, when it was
    /// sealed under an older one.
    pub resealed: Option<SealedSecret>,
}

/// Applies a verdict about a fresh second factor to `next` (a copy of `account`, the
/// freshest record), re-checking that it still holds: the TOTP step is still unused
/// for its authenticator (and newer than any step before a reset), the backup code is
/// still stored. An accepted TOTP step becomes that authenticator's newest; an
/// accepted backup code is replaced by `prepared`'s, and the new one queued for mail.
/// Shared by the login's second step and every call that asks for a fresh factor
/// (step-up, turning 2FA off, removing an authenticator).
pub(crate) fn accept_factor(
    account: &Account,
    next: &mut Account,
    verdict: &CodeVerdict,
    prepared: &Prepared,
    now: Timestamp,
    effects: &mut Effects,
) -> Result<Factor, (Factor, FailureClass)> {
    let TwoFactor::Enabled(enabled) = &account.two_factor else {
        return Err((verdict.factor(), FailureClass::WrongCode));
    };
    match verdict {
        CodeVerdict::Totp { authenticator: Some(id), verification: TotpVerification::Accepted { step } } => {
            let fresh = enabled
                .authenticators
                .iter()
                .any(|a| a.id == *id && *step > a.last_used_step && *step > account.retired_totp_step);
            if !fresh {
                return Err((Factor::Totp, FailureClass::Replayed));
            }
            if let TwoFactor::Enabled(e) = &mut next.two_factor
                && let Some(a) = e.authenticators.iter_mut().find(|a| a.id == *id)
            {
                a.last_used_step = *step;
                a.last_used_at = now;
                if let Some(sealed) = &prepared.resealed {
                    a.secret = sealed.clone();
                }
            }
            Ok(Factor::Totp)
        }
        CodeVerdict::Totp {
            verification: TotpVerification::Accepted { .. } | TotpVerification::Replayed { .. },
            ..
        } => Err((Factor::Totp, FailureClass::Replayed)),
        CodeVerdict::Totp { .. } => Err((Factor::Totp, FailureClass::WrongCode)),
        CodeVerdict::BackupMatched(phc) => {
            let still_valid = enabled.backup_codes.iter().position(|c| &c.phc == phc && c.is_live(now));
            match (still_valid, &prepared.replacement) {
                (Some(i), Some(fresh)) => {
                    if let TwoFactor::Enabled(e) = &mut next.two_factor {
                        e.backup_codes.remove(i);
                        e.backup_codes.retain(|c| c.is_live(now));
                        e.backup_codes.extend(fresh.hashes());
                    }
                    effects.event(now, account, EventKind::BackupCodeUsed);
                    effects.event(now, account, EventKind::BackupCodeRotated);
                    fresh.queue(effects, account, CodeReason::Rotated);
                    Ok(Factor::BackupCode)
                }
                _ => Err((Factor::BackupCode, FailureClass::Replayed)),
            }
        }
        CodeVerdict::BackupWrong => Err((Factor::BackupCode, FailureClass::WrongCode)),
    }
}

/// Admits a second step on the engine's snapshot, before any code is checked: `parsed`
/// back when the pending login is usable and the input is a code. Otherwise the
/// answer, with its event: the pending login's problem (expired, used, ended by a
/// stamp rotation, locked), or, for input that is not a code at all (letters, a wrong
/// length), `Denied` with the attempts left, counting nothing (a typo guessed nothing).
pub(crate) fn admit_second_step<P>(
    account: &Account,
    claims: &LoginClaims,
    factor: Factor,
    parsed: Result<P, InputError>,
    policy: &Policy,
    now: Timestamp,
) -> Result<P, Box<Transition<SecondFactorOutcome>>> {
    let mut effects = Effects::default();
    if let Err(problem) = check_pending(account, claims, policy, now) {
        effects.event(now, account, EventKind::SecondFactorFailed { factor, reason: FailureClass::PendingInvalid });
        return Err(Box::new(Transition::unchanged(problem.into(), effects)));
    }
    parsed.map_err(|bad| {
        effects.event(now, account, EventKind::SecondFactorFailed { factor, reason: FailureClass::bad_input(&bad) });
        let attempts_left = attempts_left(account, claims, policy);
        Box::new(Transition::unchanged(SecondFactorOutcome::Denied { attempts_left }, effects))
    })
}

/// Applies a second-step verdict to the freshest record.
pub(crate) fn apply_second_step(
    account: &Account,
    claims: &LoginClaims,
    verdict: &CodeVerdict,
    prepared: &Prepared,
    policy: &Policy,
    now: Timestamp,
) -> Transition<SecondFactorOutcome> {
    let mut effects = Effects::default();
    if let Err(problem) = check_pending(account, claims, policy, now) {
        effects.event(
            now,
            account,
            EventKind::SecondFactorFailed { factor: verdict.factor(), reason: FailureClass::PendingInvalid },
        );
        return Transition::unchanged(problem.into(), effects);
    }
    if !matches!(account.two_factor, TwoFactor::Enabled(_)) {
        return Transition::unchanged(SecondFactorOutcome::Expired, effects);
    }
    let mut next = account.clone();
    prune_pending(&mut next, now);
    let accepted = accept_factor(account, &mut next, verdict, prepared, now, &mut effects);
    match accepted {
        Ok(factor) => {
            throttle::record_success(&mut next);
            mark_pending(&mut next, claims, |m| m.consumed = true);
            if let Some((token, label)) = &prepared.remember {
                remember(&mut next, token, label, policy, now, &mut effects);
            }
            if policy.locations.notify_new_location {
                let location = prepared.remember.as_ref().map_or("an unremembered device", |(_, l)| l.as_str());
                effects.mail(Message::NewLocation { to: recipient(account), location: location.to_owned(), at: now });
            }
            effects.event(now, account, EventKind::LoginSucceeded { factor });
            let method = match factor {
                Factor::BackupCode => AuthMethod::PasswordAndBackupCode,
                _ => AuthMethod::PasswordAndTotp,
            };
            let authenticated = Authenticated {
                account: account.id,
                username: account.username.clone(),
                role: account.role,
                method,
                remembered: prepared.remember.as_ref().map(|(token, _)| remember_token(token, policy, now)),
                backup_code_delivery: effects.code_delivery(),
            };
            Transition { next: Some(next), outcome: SecondFactorOutcome::Authenticated(authenticated), effects }
        }
        Err((factor, reason)) => {
            effects.event(now, account, EventKind::SecondFactorFailed { factor, reason });
            throttle::record_failure(&mut next, &policy.throttle, now, throttle::Failed::SecondFactor, &mut effects);
            let failures = mark_pending(&mut next, claims, |m| m.failures = m.failures.saturating_add(1));
            let attempts_left = policy.max_code_attempts.saturating_sub(failures);
            let outcome = match throttle::blocked(&next, now) {
                Some(until) => SecondFactorOutcome::Locked { until },
                None if attempts_left == 0 => SecondFactorOutcome::Locked { until: None },
                None => SecondFactorOutcome::Denied { attempts_left },
            };
            Transition { next: Some(next), outcome, effects }
        }
    }
}

/// What the client keeps of a new remembered location.
fn remember_token(token: &LocationToken, policy: &Policy, now: Timestamp) -> RememberToken {
    RememberToken {
        token: SecretString::new(token.encode()),
        id: location_id_text(&token.id),
        expires_at: now.plus(policy.locations.lifetime),
        lifetime: policy.locations.lifetime,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::UserId;
    use crate::account::{Authenticator, BackupCodeHash, Enabled, Role, Throttle};
    use crate::events::Event;
    use crate::factors::totp::TotpParams;
    use crate::rules::locations::*;
    use crate::rules::password::*;
    use crate::rules::pending::*;

    pub(crate) fn account() -> Account {
        Account {
            id: UserId::from(1_u64),
            username: "alice".into(),
            email: "alice@example.test".into(),
            role: Role::User,
            password_hash: Some(String::new()),
            security_stamp: 99,
            created_at: Timestamp(0),
            two_factor: TwoFactor::Disabled,
            throttle: Throttle::default(),
            locations: vec![],
            pending: vec![],
            last_reset: None,
            last_unlock: None,
            retired_totp_step: 0,
            outbox: vec![],
            settled_mail: vec![],
        }
    }

    pub(crate) fn enabled() -> Account {
        let mut a = account();
        a.two_factor = TwoFactor::Enabled(Enabled {
            authenticators: vec![authenticator(PHONE, 10), authenticator(TABLET, 20)],
            adding: None,
            backup_codes: vec![BackupCodeHash { phc: "H1".into(), issued_at: Timestamp(0), expires_at: None }],
            enabled_at: Timestamp(0),
        });
        a
    }

    pub(crate) const PHONE: AuthenticatorId = [1; 8];
    pub(crate) const TABLET: AuthenticatorId = [2; 8];

    pub(crate) fn authenticator(id: AuthenticatorId, last_used_step: u64) -> Authenticator {
        Authenticator {
            id,
            name: format!("device {}", id[0]),
            secret: SealedSecret(vec![id[0]]),
            params: TotpParams::default(),
            last_used_step,
            added_at: Timestamp(0),
            last_used_at: Timestamp(0),
        }
    }

    fn prepared() -> Prepared {
        let hash = BackupCodeHash { phc: "H2".into(), issued_at: Timestamp(5), expires_at: None };
        let replacement =
            FreshCodes { mail: crate::outbox::MailId([7; 16]), codes: vec![(SecretString::from("NEW"), hash)] };
        Prepared { replacement: Some(replacement), remember: None, resealed: None }
    }

    #[test]
    fn unconfirmed_enrollment_does_not_ask_for_a_code() {
        let mut a = account();
        a.two_factor = TwoFactor::Enrolling(crate::account::Enrolling {
            id: PHONE,
            name: "Phone".into(),
            secret: SealedSecret(vec![]),
            params: TotpParams::default(),
            started_at: Timestamp(0),
        });
        let p = Policy::default();
        assert_eq!(password_step(&a, &p, false), PasswordStep::Authenticated { via_location: false });
        let strict = Policy::nist_aal2();
        assert_eq!(password_step(&a, &strict, false), PasswordStep::EnrollmentRequired);
    }

    /// Runs the second step with fresh prepared.
    fn step(
        a: &Account,
        claims: &LoginClaims,
        verdict: CodeVerdict,
        p: &Policy,
        now: Timestamp,
    ) -> Transition<SecondFactorOutcome> {
        apply_second_step(a, claims, &verdict, &prepared(), p, now)
    }

    /// The phone accepted `step`.
    fn totp(step: u64) -> CodeVerdict {
        CodeVerdict::Totp { authenticator: Some(PHONE), verification: TotpVerification::Accepted { step } }
    }

    fn rejected() -> CodeVerdict {
        CodeVerdict::Totp { authenticator: None, verification: TotpVerification::Rejected }
    }

    #[test]
    fn each_authenticator_keeps_its_own_replay_state() -> Result<(), crate::Error> {
        let p = Policy::default();
        let a = enabled(); // phone at step 10, tablet at step 20
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);
        // Step 15 is fresh for the phone, though the tablet has used a later step.
        let t = step(&a, &claims, totp(15), &p, now);
        let after = t.next.ok_or(crate::Error::Corrupt("no write"))?;
        assert!(matches!(t.outcome, SecondFactorOutcome::Authenticated(_)));
        let TwoFactor::Enabled(e) = &after.two_factor else { return Err(crate::Error::Corrupt("state")) };
        assert_eq!(e.authenticators.iter().map(|a| a.last_used_step).collect::<Vec<_>>(), [15, 20]);
        assert_eq!(e.authenticators[0].last_used_at, now);
        // The tablet's step 20 is used: a replay, even though the phone never used it.
        let tablet =
            |step| CodeVerdict::Totp { authenticator: Some(TABLET), verification: TotpVerification::Accepted { step } };
        let claims = issue_pending(&after, [2; 16], now, &p);
        assert!(matches!(step(&after, &claims, tablet(20), &p, now).outcome, SecondFactorOutcome::Denied { .. }));
        assert!(matches!(step(&after, &claims, tablet(21), &p, now).outcome, SecondFactorOutcome::Authenticated(_)));
        // An authenticator removed meanwhile accepts nothing.
        let mut removed = after.clone();
        if let TwoFactor::Enabled(e) = &mut removed.two_factor {
            e.authenticators.retain(|a| a.id != TABLET);
        }
        assert!(matches!(step(&removed, &claims, tablet(21), &p, now).outcome, SecondFactorOutcome::Denied { .. }));
        Ok(())
    }

    #[test]
    fn second_step_rules() -> Result<(), crate::Error> {
        let p = Policy::default();
        let a = enabled();
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);

        // A step not newer than the last accepted one is a replay.
        let t = step(&a, &claims, totp(10), &p, now);
        assert!(matches!(t.outcome, SecondFactorOutcome::Denied { attempts_left: 4 }));

        // A newer step logs in and consumes the pending login.
        let t = step(&a, &claims, totp(11), &p, now);
        assert!(matches!(t.outcome, SecondFactorOutcome::Authenticated(_)));
        let after = t.next.ok_or(crate::Error::Corrupt("no write"))?;
        let again = step(&after, &claims, totp(12), &p, now);
        assert!(matches!(again.outcome, SecondFactorOutcome::Expired), "single use");

        // The backup code is replaced in the same write and its mail queued.
        let t = step(&a, &claims, CodeVerdict::BackupMatched("H1".into()), &p, now);
        let after = t.next.ok_or(crate::Error::Corrupt("no write"))?;
        let TwoFactor::Enabled(e) = &after.two_factor else { return Err(crate::Error::Corrupt("state")) };
        assert_eq!(e.backup_codes.iter().map(|c| c.phc.as_str()).collect::<Vec<_>>(), ["H2"]);
        assert_eq!(t.effects.mails.len(), 1);

        // The same (now removed) code against the new record is refused.
        let claims2 = issue_pending(&after, [2; 16], now, &p);
        let t = step(&after, &claims2, CodeVerdict::BackupMatched("H1".into()), &p, now);
        assert!(matches!(t.outcome, SecondFactorOutcome::Denied { .. }));

        // Expiry.
        let t = step(&a, &claims, totp(11), &p, Timestamp(now.0 + 301));
        assert!(matches!(t.outcome, SecondFactorOutcome::Expired));

        // A stamp rotation ends it.
        let mut rotated = a.clone();
        rotated.security_stamp += 1;
        let t = step(&rotated, &claims, totp(11), &p, now);
        assert!(matches!(t.outcome, SecondFactorOutcome::Expired));
        Ok(())
    }

    #[test]
    fn a_consumed_pending_login_stays_consumed_however_many_marks_follow() -> Result<(), crate::Error> {
        let p = Policy::default();
        let mut a = enabled();
        let now = Timestamp(1000);
        let used = issue_pending(&a, [0; 16], now, &p);
        a = step(&a, &used, totp(11), &p, now).next.ok_or(crate::Error::Corrupt("no write"))?;
        // Fill the marks past the bound: consumed ones (later steps) and open ones.
        for i in 1..=(2 * MAX_PENDING_MARKS as u8) {
            let claims = issue_pending(&a, [i; 16], now, &p);
            let verdict = if i % 2 == 0 { totp(11 + u64::from(i)) } else { rejected() };
            if let Some(next) = step(&a, &claims, verdict, &p, now).next {
                a = next;
            }
            a.throttle = Default::default(); // keep the budget out of the way
        }
        assert!(a.pending.iter().filter(|m| !m.consumed).count() < MAX_PENDING_MARKS, "open marks are bounded");
        let again = step(&a, &used, totp(500), &p, now);
        assert!(matches!(again.outcome, SecondFactorOutcome::Expired), "{:?}", again.outcome);
        Ok(())
    }

    #[test]
    fn pending_login_allows_limited_attempts() -> Result<(), crate::Error> {
        let p = Policy::builder().max_code_attempts(3).build()?;
        let mut a = enabled();
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);
        let mut outcomes = vec![];
        for _ in 0..4 {
            let t = step(&a, &claims, rejected(), &p, now);
            if let Some(n) = t.next {
                a = n;
            }
            outcomes.push(format!("{:?}", t.outcome));
        }
        assert_eq!(outcomes[0], "Denied { attempts_left: 2 }");
        assert_eq!(outcomes[1], "Denied { attempts_left: 1 }");
        assert_eq!(outcomes[2], "Locked { until: None }");
        assert_eq!(outcomes[3], "Locked { until: None }");
        assert_eq!(a.throttle.failures, 3, "the fourth attempt was not evaluated");
        Ok(())
    }

    fn first(verified: Option<&str>) -> FirstFactor<'_> {
        FirstFactor { verified_hash: verified, rehash: None, location: None, pending_id: [9; 16] }
    }

    #[test]
    fn a_right_password_decides_on_the_freshest_record() -> Result<(), crate::Error> {
        let p = Policy::default();
        let now = Timestamp(1000);
        // 2FA on: a pending login bound to this record's stamp, with the engine's id.
        let a = enabled();
        let t = apply_right_password(&a, first(Some("")), &p, now).map_err(|_| crate::Error::Contention)?;
        let RightPassword::SecondFactor(claims) = t.outcome else { return Err(crate::Error::Corrupt("outcome")) };
        assert_eq!((claims.id, claims.stamp, claims.account), ([9; 16], a.security_stamp, a.id));
        assert_eq!(claims.expires_at, now.plus(p.pending_lifetime));
        assert!(t.next.is_none() && t.effects.events.is_empty(), "nothing to write or record yet");
        // No 2FA: logged in with the password, and the failures of the budget cleared.
        let mut plain = account();
        plain.throttle.failures = 2;
        let t = apply_right_password(&plain, first(None), &p, now).map_err(|_| crate::Error::Contention)?;
        let RightPassword::Authenticated(auth) = &t.outcome else { return Err(crate::Error::Corrupt("outcome")) };
        assert_eq!(auth.method, AuthMethod::Password);
        assert_eq!(t.next.map(|n| n.throttle.failures), Some(0));
        let kinds: Vec<_> = t.effects.events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(kinds, [EventKind::LoginSucceeded { factor: Factor::Password }]);
        // A policy that requires 2FA: enroll first.
        let strict = Policy::nist_aal2();
        let t = apply_right_password(&plain, first(None), &strict, now).map_err(|_| crate::Error::Contention)?;
        assert!(matches!(t.outcome, RightPassword::EnrollmentRequired(_)));
        Ok(())
    }

    #[test]
    fn a_right_password_is_refused_when_throttled_or_changed_meanwhile() -> Result<(), crate::Error> {
        let p = Policy::default();
        let now = Timestamp(1000);
        let mut a = enabled();
        a.throttle.until = Some(Timestamp(now.0 + 60));
        let t = apply_right_password(&a, first(None), &p, now).map_err(|_| crate::Error::Contention)?;
        assert!(matches!(t.outcome, RightPassword::Denied));
        assert!(t.next.is_none(), "a refusal writes nothing");
        assert!(matches!(t.effects.events[..], [Event { kind: EventKind::LoginFailed { .. }, .. }]));
        assert!(
            apply_right_password(&enabled(), first(Some("another hash")), &p, now).is_err(),
            "verified a hash that is gone"
        );
        Ok(())
    }

    #[test]
    fn a_second_step_is_admitted_only_for_a_usable_pending_login_and_a_code() -> Result<(), crate::Error> {
        let p = Policy::default();
        let a = enabled();
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);
        let typo = || Err::<(), _>(InputError::malformed("code", "digits only"));
        assert_eq!(admit_second_step(&a, &claims, Factor::Totp, Ok(7), &p, now).ok(), Some(7));
        // Not a code: denied with every attempt left, nothing written, the typo recorded.
        let refused = admit_second_step(&a, &claims, Factor::Totp, typo(), &p, now).err();
        let refused = refused.ok_or(crate::Error::Corrupt("admitted a typo"))?;
        assert!(
            matches!(refused.outcome, SecondFactorOutcome::Denied { attempts_left } if attempts_left == p.max_code_attempts)
        );
        assert!(refused.next.is_none());
        let reason = |t: &Transition<SecondFactorOutcome>| match &t.effects.events[..] {
            [Event { kind: EventKind::SecondFactorFailed { reason, .. }, .. }] => Some(*reason),
            _ => None,
        };
        assert!(matches!(reason(&refused), Some(FailureClass::BadInput { .. })));
        // An unusable pending login answers its problem before the input is looked at.
        let late = Timestamp(now.0 + 301);
        let refused = admit_second_step(&a, &claims, Factor::Totp, typo(), &p, late).err();
        let refused = refused.ok_or(crate::Error::Corrupt("admitted an expired login"))?;
        assert!(matches!(refused.outcome, SecondFactorOutcome::Expired));
        assert_eq!(reason(&refused), Some(FailureClass::PendingInvalid));
        Ok(())
    }

    #[test]
    fn a_location_works_until_its_expiry_and_is_dropped_at_it() -> Result<(), crate::Error> {
        let p = Policy::default();
        let mut a = enabled();
        let now = Timestamp(1000);
        let laptop = LocationToken::generate()?;
        remember(&mut a, &laptop, "laptop", &p, now, &mut Effects::default());
        let expiry = now.plus(p.locations.lifetime);
        assert_eq!(valid_location(&a, &laptop, Timestamp(expiry.0 - 1)), Some(0));
        assert_eq!(valid_location(&a, &laptop, expiry), None, "over at its expiry");
        // Remembering more drops what has expired and keeps what has not.
        remember(&mut a, &LocationToken::generate()?, "phone", &p, Timestamp(expiry.0 - 1), &mut Effects::default());
        remember(&mut a, &LocationToken::generate()?, "tablet", &p, expiry, &mut Effects::default());
        let labels: Vec<_> = a.locations.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["phone", "tablet"]);
        Ok(())
    }

    #[test]
    fn a_step_up_to_the_one_retired_by_a_reset_stays_used() {
        let p = Policy::default();
        let mut a = enabled(); // the phone last used step 10
        a.retired_totp_step = 15;
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);
        assert!(matches!(step(&a, &claims, totp(15), &p, now).outcome, SecondFactorOutcome::Denied { .. }));
        assert!(matches!(step(&a, &claims, totp(16), &p, now).outcome, SecondFactorOutcome::Authenticated(_)));
    }

    #[test]
    fn the_second_step_names_its_factor_and_method() -> Result<(), crate::Error> {
        let p = Policy::default();
        let a = enabled();
        let now = Timestamp(1000);
        let claims = issue_pending(&a, [1; 16], now, &p);
        let failed_factor = |t: &Transition<SecondFactorOutcome>| {
            t.effects.events.iter().find_map(|e| match e.kind {
                EventKind::SecondFactorFailed { factor, .. } => Some(factor),
                _ => None,
            })
        };
        assert_eq!(failed_factor(&step(&a, &claims, rejected(), &p, now)), Some(Factor::Totp));
        let late = claims.expires_at;
        assert_eq!(failed_factor(&step(&a, &claims, totp(11), &p, late)), Some(Factor::Totp), "an expired login");
        let backup = CodeVerdict::BackupMatched("H1".into());
        assert_eq!(failed_factor(&step(&a, &claims, backup, &p, late)), Some(Factor::BackupCode));
        assert_eq!(failed_factor(&step(&a, &claims, CodeVerdict::BackupWrong, &p, now)), Some(Factor::BackupCode));
        let SecondFactorOutcome::Authenticated(by_code) = step(&a, &claims, totp(11), &p, now).outcome else {
            return Err(crate::Error::Corrupt("not authenticated"));
        };
        assert_eq!((by_code.method, by_code.backup_code_delivery), (AuthMethod::PasswordAndTotp, None));
        let backup = step(&a, &claims, CodeVerdict::BackupMatched("H1".into()), &p, now).outcome;
        let SecondFactorOutcome::Authenticated(by_backup) = backup else {
            return Err(crate::Error::Corrupt("not authenticated"));
        };
        assert_eq!(by_backup.method, AuthMethod::PasswordAndBackupCode);
        let queued = Some(crate::mail::Delivery::Queued(crate::outbox::MailId([7; 16])));
        assert_eq!(by_backup.backup_code_delivery, queued, "the replacement's mail, named by the rule");
        Ok(())
    }

    #[test]
    fn a_remembered_location_skips_the_code_and_is_touched_at_most_hourly() -> Result<(), crate::Error> {
        let p = Policy::default();
        let mut a = enabled();
        assert_eq!(password_step(&a, &p, true), PasswordStep::Authenticated { via_location: true });
        assert_eq!(password_step(&a, &p, false), PasswordStep::SecondFactor);
        let now = Timestamp(10_000);
        remember(&mut a, &LocationToken::generate()?, "laptop", &p, Timestamp(now.0 - 3600), &mut Effects::default());
        let step = PasswordStep::Authenticated { via_location: true };
        let touched = apply_password_success(&a, step, None, Some(0), now);
        assert_eq!(touched.map(|n| n.locations[0].last_used_at), Some(now), "an hour on: touched");
        let soon = apply_password_success(&a, step, None, Some(0), Timestamp(now.0 - 1));
        assert!(soon.is_none(), "within the hour: nothing to write");
        Ok(())
    }

    #[test]
    fn a_location_is_found_by_its_handle_and_a_0_1_0_token_only_for_its_account() -> Result<(), crate::Error> {
        let mut a = enabled();
        let now = Timestamp(1000);
        let token = LocationToken::generate()?;
        remember(&mut a, &token, "laptop", &Policy::default(), now, &mut Effects::default());
        assert_eq!(valid_location(&a, &token, now), Some(0));
        let legacy = |account| LocationToken { legacy_account: Some(account), ..token.clone() };
        assert_eq!(valid_location(&a, &legacy(a.id), now), Some(0), "a 0.1.0 token of this account");
        assert_eq!(valid_location(&a, &legacy(crate::UserId::from(2_u64)), now), None, "another account's");
        let mut other_secret = token.clone();
        other_secret.secret[0] ^= 1;
        assert_eq!(valid_location(&a, &other_secret, now), None);
        let mut rotated = a.clone();
        rotated.security_stamp += 1;
        assert_eq!(valid_location(&rotated, &token, now), None, "a stamp rotation ends it");
        Ok(())
    }
}
