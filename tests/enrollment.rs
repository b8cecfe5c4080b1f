//! Enrollment: a 160-bit secret, the Key Uri Format, confirmation by one correct code,
//! and the first backup code by mail.

mod common;
use common::*;
use twofactor::mail::Message;
use twofactor::store::UserStore;
use twofactor::totp::TotpParams;
use twofactor::{ConfirmOutcome, Error, LoginOutcome, Policy, Role, SecondFactor, SecondFactorOutcome};

#[tokio::test]
async fn enrollment_issues_a_160_bit_secret_and_an_otpauth_uri() {
    let f = fixture();
    let id = f.user("alice smith", Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    assert_eq!(secret.len(), 20, "160 bits");
    let uri = started.uri.expose();
    assert_eq!(uri, format!("otpauth://totp/Acme:alice%20smith?secret={}&issuer=Acme", started.secret_base32.expose()));
    let parsed = twofactor::otpauth::parse_otpauth_uri(uri).unwrap();
    assert_eq!(parsed.secret.expose(), secret.as_slice());
    // A second enrollment issues a different secret.
    let again = f.engine.start_enrollment(id).await.unwrap();
    assert_ne!(again.secret_base32.expose(), started.secret_base32.expose());
}

#[tokio::test]
async fn a_colon_in_the_account_name_is_a_clear_error() {
    // An otpauth label cannot hold ':', so such a name could never enroll: it is
    // refused when the account is created.
    let f = fixture();
    let r = f.engine.create_account(twofactor::NewAccount::new("a:b", "ab@example.test", Role::User, PASSWORD)).await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    assert!(Policy::builder().issuer("Ac:me").build().is_err());
}

#[tokio::test]
async fn unconfirmed_enrollment_is_ignored_at_login() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    f.engine.start_enrollment(id).await.unwrap();
    let out = f.engine.begin_login("alice", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "no code asked for: {out:?}");
    assert_eq!(f.engine.account(id).await.unwrap().unwrap().two_factor, twofactor::TwoFactorState::Enrolling);
    assert!(f.deliver().await.messages.is_empty(), "no backup code queued before confirmation");
    assert!(f.mailer.outbox().is_empty(), "no backup code before confirmation");
}

#[tokio::test]
async fn a_wrong_confirmation_code_changes_nothing() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let before = f.store.find_by_id(id).await.unwrap().unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    let right = f.code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(matches!(f.engine.confirm_enrollment(id, &wrong).await.unwrap(), ConfirmOutcome::WrongCode));
    assert_eq!(f.store.find_by_id(id).await.unwrap().unwrap(), before);
    let malformed = f.engine.confirm_enrollment(id, "12ab56").await;
    assert!(matches!(malformed, Err(Error::InvalidInput(_))));
    assert!(matches!(f.engine.confirm_enrollment(id, &right).await.unwrap(), ConfirmOutcome::Confirmed { .. }));
}

#[tokio::test]
async fn confirming_activates_2fa_and_mails_the_first_backup_code() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    let confirmed = f.engine.confirm_enrollment(id, &f.code(&secret)).await.unwrap();
    let ConfirmOutcome::Confirmed { backup_code_delivery } = confirmed else { panic!("{confirmed:?}") };
    let mail = backup_code_delivery.queued().expect("the first backup code is queued");
    let (_, doc) = stored(&f, id).await;
    assert_eq!(doc.pointer("/second_factor/state").and_then(|s| s.as_str()), Some("enabled"), "{doc}");
    assert!(f.mailer.outbox().is_empty(), "queued with the confirmation, not sent by it");
    assert_eq!(f.deliver().await.delivery_of(mail), Some(&twofactor::mail::Delivery::Sent));
    let outbox = f.mailer.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].id, mail);
    assert_eq!(outbox[0].message.kind(), twofactor::mail::MessageKind::BackupCodeSetup);
    assert_eq!(outbox[0].message.recipient().email, email("alice"));
    let code = f.backup_code("alice");
    assert!(outbox[0].rendered.text.lines().any(|l| l == code), "code on a line of its own");
    assert!(matches!(
        f.engine.begin_login("alice", PASSWORD, None).await.unwrap(),
        LoginOutcome::SecondFactorRequired(_)
    ));
}

#[tokio::test]
async fn the_confirmation_code_cannot_be_replayed_at_login() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    let code = f.code(&secret);
    f.engine.confirm_enrollment(id, &code).await.unwrap();
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    // Even 15 s later, within the same step.
    f.clock.advance(std::time::Duration::from_secs(15));
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(!is_authenticated(&out));
}

#[tokio::test]
async fn enrollment_over_active_2fa_is_refused() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let started = f.engine.start_enrollment(id).await;
    assert!(matches!(started, Err(Error::Misuse(twofactor::Refusal::TwoFactorActive))), "{started:?}");
    let confirmed = f.engine.confirm_enrollment(id, "123456").await;
    assert!(matches!(confirmed, Err(Error::Misuse(twofactor::Refusal::NoEnrollment))), "{confirmed:?}");
}

#[tokio::test]
async fn sha256_with_eight_digits_is_opt_in_and_works_end_to_end() {
    let params = TotpParams::new(twofactor::totp::Algorithm::Sha256, 8, 30).unwrap();
    let f = fixture_with(fast_policy().totp(params).build().unwrap());
    let id = f.user("alice", Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    assert!(started.uri.expose().contains("algorithm=SHA256"));
    assert!(started.uri.expose().contains("digits=8"));
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    let now = twofactor::Clock::now(&f.clock).0;
    let code = twofactor::totp::generate(&secret, &params, now);
    assert_eq!(code.expose().len(), 8);
    f.engine.confirm_enrollment(id, code.expose()).await.unwrap();
    f.clock.advance(std::time::Duration::from_secs(30));
    let code = twofactor::totp::generate(&secret, &params, twofactor::Clock::now(&f.clock).0);
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(code.expose()), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
}

#[tokio::test]
async fn the_setup_mail_is_a_typed_message() {
    let f = fixture();
    f.enrolled("alice").await;
    let outbox = f.mailer.outbox();
    assert!(matches!(&outbox[0].message, Message::BackupCode { codes, .. } if codes.len() == 1));
}

#[tokio::test]
async fn imported_secrets_need_128_bits_unless_a_danger_option_allows_80() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let params = TotpParams::default();
    let short = twofactor::otpauth::otpauth_uri("Old", "alice", &[7u8; 10], &params).unwrap();
    let r = f.engine.import_enrollment(id, short.expose()).await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    assert_eq!(f.engine.account(id).await.unwrap().unwrap().two_factor, twofactor::TwoFactorState::Disabled);

    let secret = [9u8; 16];
    let ok = twofactor::otpauth::otpauth_uri("Old", "alice", &secret, &params).unwrap();
    f.engine.import_enrollment(id, ok.expose()).await.unwrap();
    assert_eq!(f.engine.account(id).await.unwrap().unwrap().two_factor, twofactor::TwoFactorState::Enrolling);
    let out = f.engine.confirm_enrollment(id, &f.code(&secret)).await.unwrap();
    assert!(matches!(out, ConfirmOutcome::Confirmed { .. }));

    let lax = fixture_with(fast_policy().danger_short_imported_secrets().build().unwrap());
    let id = lax.user("bob", Role::User).await;
    lax.engine.import_enrollment(id, short.expose()).await.unwrap();
    assert!(matches!(
        lax.engine.import_enrollment(id, "otpauth://hotp/x?secret=AAAA").await,
        Err(Error::InvalidInput(_))
    ));
}
