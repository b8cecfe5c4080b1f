use super::*;
use crate::UserId;
use crate::account::{BackupCodeHash, Role};
use crate::crypto::secret::SecretString;
use crate::factors::totp::{TotpParams, TotpVerification};
use crate::mail::{Delivery, MessageKind};
use crate::rules::FreshCodes;
use crate::rules::login::tests::{PHONE, TABLET, account, authenticator, enabled};

const NOW: Timestamp = Timestamp(1000);

fn prepared() -> Prepared {
    let hash = BackupCodeHash { phc: "H2".into(), issued_at: NOW, expires_at: None };
    let replacement =
        FreshCodes { mail: crate::outbox::MailId([7; 16]), codes: vec![(SecretString::from("NEW"), hash)] };
    Prepared { replacement: Some(replacement), remember: None, resealed: None }
}

fn code(from: AuthenticatorId, step: u64) -> CodeVerdict {
    CodeVerdict::Totp { authenticator: Some(from), verification: TotpVerification::Accepted { step } }
}

fn wrong() -> CodeVerdict {
    CodeVerdict::Totp { authenticator: None, verification: TotpVerification::Rejected }
}

fn kinds(effects: &Effects) -> Vec<MessageKind> {
    effects.mails.iter().map(|o| o.message.kind()).collect()
}

#[test]
fn a_step_up_consumes_the_step_and_a_wrong_factor_counts_in_the_shared_budget() {
    let p = Policy::default();
    let a = enabled();
    let t = fresh_factor(&a, &code(PHONE, 11), &prepared(), &p, NOW, &no_action);
    assert!(t.outcome.is_verified());
    let next = t.next.expect("the step is recorded");
    // The same step again is a replay: denied, and counted.
    let again = fresh_factor(&next, &code(PHONE, 11), &prepared(), &p, NOW, &no_action);
    assert_eq!(again.outcome, StepUpOutcome::Denied);
    assert_eq!(again.next.expect("a failure is recorded").throttle.failures, 1);
    // Five wrong factors throttle, as at login.
    let mut a = enabled();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let t = fresh_factor(&a, &wrong(), &prepared(), &p, NOW, &no_action);
        outcomes.push(t.outcome.clone());
        a = t.next.expect("counted");
    }
    assert_eq!(outcomes[3], StepUpOutcome::Denied);
    assert!(matches!(outcomes[4], StepUpOutcome::Throttled { .. }), "{:?}", outcomes[4]);
    assert_eq!(a.throttle.second_factor_failures, 5);
}

#[test]
fn a_blocked_account_evaluates_nothing_not_even_a_right_code() {
    let p = Policy::default();
    let mut a = enabled();
    a.throttle.until = Some(Timestamp(NOW.0 + 60));
    let t = fresh_factor(&a, &code(PHONE, 11), &prepared(), &p, NOW, &no_action);
    assert_eq!(t.outcome, StepUpOutcome::Throttled { until: Timestamp(NOW.0 + 60) });
    assert!(t.next.is_none());
    a.throttle.second_factor_locked = true;
    let t = fresh_factor(&a, &code(PHONE, 11), &prepared(), &p, NOW, &disable(1234));
    assert_eq!(t.outcome, StepUpOutcome::Locked);
    assert!(t.next.is_none());
}

#[test]
fn a_backup_code_step_up_replaces_the_code_and_queues_it() {
    let p = Policy::default();
    let t = fresh_factor(&enabled(), &CodeVerdict::BackupMatched("H1".into()), &prepared(), &p, NOW, &no_action);
    assert!(t.outcome.is_verified());
    assert_eq!(kinds(&t.effects), [MessageKind::BackupCodeRotated]);
    // Turning 2FA off with the backup code mails the notice only: no code works now.
    let t = fresh_factor(&enabled(), &CodeVerdict::BackupMatched("H1".into()), &prepared(), &p, NOW, &disable(9));
    assert_eq!(kinds(&t.effects), [MessageKind::TwoFactorDisabled]);
}

#[test]
fn turning_2fa_off_removes_every_authenticator_and_keeps_the_newest_step_used() {
    let p = Policy::default();
    let t = fresh_factor(&enabled(), &code(PHONE, 11), &prepared(), &p, NOW, &disable(1234));
    let next = t.next.expect("written");
    assert_eq!(next.two_factor, TwoFactor::Disabled);
    assert_eq!(next.retired_totp_step, 20, "the tablet's newest step");
    assert_eq!(next.security_stamp, 1234, "pending logins from before end for good");
    assert_eq!(kinds(&t.effects), [MessageKind::TwoFactorDisabled]);
    // The step that turns 2FA off, when it is the newest, stays used too.
    let t = fresh_factor(&enabled(), &code(PHONE, 21), &prepared(), &p, NOW, &disable(1234));
    assert_eq!(t.next.expect("written").retired_totp_step, 21, "the step just used");
    // A wrong factor turns nothing off.
    let t = fresh_factor(&enabled(), &wrong(), &prepared(), &p, NOW, &disable(1234));
    assert!(matches!(t.next.expect("counted").two_factor, TwoFactor::Enabled(_)));
}

#[test]
fn removing_an_authenticator_keeps_the_others_and_never_the_last() {
    let p = Policy::default();
    let a = enabled();
    assert_eq!(check_removable(&a, &PHONE), Ok(()));
    assert_eq!(check_removable(&a, &[9; 8]), Err(Refusal::NoSuchAuthenticator));
    assert_eq!(check_removable(&account(), &PHONE), Err(Refusal::TwoFactorNotActive));
    let t = fresh_factor(&a, &code(TABLET, 21), &prepared(), &p, NOW, &remove(PHONE));
    let next = t.next.expect("written");
    let TwoFactor::Enabled(e) = &next.two_factor else { panic!("2FA stays on") };
    assert_eq!(e.authenticators.iter().map(|a| a.id).collect::<Vec<_>>(), [TABLET]);
    assert_eq!(kinds(&t.effects), [MessageKind::AuthenticatorRemoved]);
    assert_eq!(check_removable(&next, &TABLET), Err(Refusal::LastAuthenticator));
    // Applied to a record whose other authenticator went meanwhile, it removes nothing.
    let t = fresh_factor(&next, &CodeVerdict::BackupMatched("H1".into()), &prepared(), &p, NOW, &remove(TABLET));
    let TwoFactor::Enabled(e) = &t.next.expect("the code is consumed").two_factor else { panic!("on") };
    assert_eq!(e.authenticators.len(), 1);
}

#[test]
fn an_added_authenticator_is_confirmed_by_its_own_code_and_mailed() {
    let a = enabled();
    let adding = Enrolling {
        id: [3; 8],
        name: "Laptop".into(),
        secret: SealedSecret(vec![3]),
        params: TotpParams::default(),
        started_at: NOW,
    };
    assert_eq!(start_adding(&account(), adding.clone(), NOW).err(), Some(Refusal::TwoFactorNotActive));
    let next = start_adding(&a, adding, NOW).expect("2FA is on").next.expect("written");
    assert_eq!(
        confirm_adding(&next, &SealedSecret(vec![4]), 5, MailId([5; 16]), NOW).err(),
        Some(Refusal::EnrollmentChanged)
    );
    let t = confirm_adding(&next, &SealedSecret(vec![3]), 5, MailId([5; 16]), NOW).expect("confirmed");
    let notice_delivery = Delivery::Queued(MailId([5; 16]));
    assert_eq!(t.outcome, AddAuthenticatorOutcome::Added { id: "0303030303030303".into(), notice_delivery });
    let TwoFactor::Enabled(e) = &t.next.expect("written").two_factor else { panic!("on") };
    assert_eq!(e.authenticators.len(), 3);
    assert_eq!(e.authenticators[2].last_used_step, 5, "its confirming step is used");
    assert!(e.adding.is_none());
    assert_eq!(kinds(&t.effects), [MessageKind::AuthenticatorAdded]);
    assert_eq!(confirm_adding(&a, &SealedSecret(vec![3]), 5, MailId([5; 16]), NOW).err(), Some(Refusal::NoEnrollment));
}

#[test]
fn a_user_keeps_at_most_ten_authenticators() {
    let mut a = enabled();
    if let TwoFactor::Enabled(e) = &mut a.two_factor {
        e.authenticators = (0..MAX_AUTHENTICATORS as u8).map(|i| authenticator([i; 8], 1)).collect();
    }
    let adding = Enrolling {
        id: [99; 8],
        name: "One more".into(),
        secret: SealedSecret(vec![]),
        params: TotpParams::default(),
        started_at: NOW,
    };
    assert_eq!(start_adding(&a, adding, NOW).err(), Some(Refusal::TooManyAuthenticators));
}

#[test]
fn an_unlock_lifts_throttle_and_lock_keeps_2fa_and_records_who_and_why() {
    let mut a = enabled();
    let mut admin = account();
    admin.id = UserId::from(2_u64);
    admin.username = "bob".into();
    admin.role = Role::Admin;
    let t = unlock(&a, &admin, "called back", MailId([6; 16]), NOW);
    assert!(t.outcome == UnlockOutcome::NotLocked && t.next.is_none(), "nothing to lift");
    a.throttle = Throttle {
        failures: 100,
        until: Some(Timestamp(5000)),
        second_factor_failures: 100,
        second_factor_locked: true,
    };
    let t = unlock(&a, &admin, "called back", MailId([6; 16]), NOW);
    assert_eq!(t.outcome, UnlockOutcome::Unlocked { notice_delivery: Delivery::Queued(MailId([6; 16])) });
    let next = t.next.expect("written");
    assert_eq!(next.throttle, Throttle::default());
    assert_eq!(next.two_factor, a.two_factor, "2FA untouched");
    let rec = next.last_unlock.as_ref().map(|r| (r.by, r.identity_check.as_str()));
    assert_eq!(rec, Some((UserId::from(2_u64), "called back")));
    assert_eq!(kinds(&t.effects), [MessageKind::Unlocked]);
    assert!(t.effects.events.iter().any(|e| e.kind.name() == "throttle.unlocked"));
}

#[test]
fn a_fresh_factor_is_admitted_only_while_the_account_takes_attempts_and_for_a_code() {
    let mut a = enabled();
    let typo = || Err::<(), _>(crate::error::InputError::malformed("code", "digits only"));
    assert_eq!(admit_fresh_factor(&a, Factor::Totp, Ok(7), NOW).ok(), Some(7));
    let refused = admit_fresh_factor(&a, Factor::Totp, typo(), NOW).err();
    assert!(matches!(refused.as_deref(), Some(Transition { outcome: StepUpOutcome::Denied, next: None, .. })));
    a.throttle.until = Some(Timestamp(NOW.0 + 60));
    let refused = admit_fresh_factor(&a, Factor::BackupCode, Ok(7), NOW).err();
    let until = Timestamp(NOW.0 + 60);
    assert!(
        matches!(refused.as_deref(), Some(Transition { outcome: StepUpOutcome::Throttled { until: u }, .. }) if *u == until)
    );
    a.throttle.second_factor_locked = true;
    a.throttle.until = None;
    let refused = admit_fresh_factor(&a, Factor::Totp, Ok(7), NOW).err();
    assert!(matches!(refused.as_deref(), Some(Transition { outcome: StepUpOutcome::Locked, .. })));
}

#[test]
fn an_authenticator_id_reads_back_from_its_hex_and_nothing_else_does() {
    let id: AuthenticatorId = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    assert_eq!(authenticator_id_text(&id), "0123456789abcdef");
    assert_eq!(parse_authenticator_id("0123456789abcdef"), Some(id));
    for bad in ["", "0123", "0123456789abcdef00", "0123456789ABCDEF", "zz23456789abcdef"] {
        assert_eq!(parse_authenticator_id(bad), None, "{bad:?}");
    }
}
