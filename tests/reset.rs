//! Administrator reset: the role rules, what a reset removes, the record of who did it
//! and how, and the notice mail.

mod common;
use common::*;
use twofactor::mail::{Delivery, MessageKind};
use twofactor::{Error, LoginOutcome, MailStatus, ResetOutcome, Role, SecondFactor, SecondFactorOutcome};

#[tokio::test]
async fn the_role_rules() {
    let f = fixture();
    let user = f.user("user", Role::User).await;
    let user2 = f.user("user2", Role::User).await;
    let admin = f.user("admin", Role::Admin).await;
    let admin2 = f.user("admin2", Role::Admin).await;
    let support = f.user("support", Role::Support).await;
    let support2 = f.user("support2", Role::Support).await;
    let cases = [
        (admin, user, true),
        (support, admin, true),
        (support, user, true),
        (admin, admin2, false),
        (admin, admin, false),
        (admin, support, false),
        (user, user2, false),
        (user, admin, false),
        (user, user, false),
        (support, support2, false),
    ];
    for (actor, target, allowed) in cases {
        let out = f.engine.reset(actor, target, "checked a photo ID").await.unwrap();
        assert_eq!(matches!(out, ResetOutcome::Reset { .. }), allowed, "{actor:?} -> {target:?}: {out:?}");
        if !allowed {
            assert_eq!(out, ResetOutcome::NotAllowed);
        }
    }
    assert!(f.events.names().contains(&"two_factor.reset_denied"));
}

#[tokio::test]
async fn reset_removes_everything_and_old_factors_stop_working() {
    let f = fixture();
    let (alice, secret) = f.enrolled("alice").await;
    let bob = f.user("bob", Role::Admin).await;
    let old_code = f.backup_code("alice");
    let pending = f.pending("alice").await;
    // A remembered location, too.
    let p2 = f.pending("alice").await;
    let SecondFactorOutcome::Authenticated(auth) =
        f.engine.finish_login(&p2, SecondFactor::Totp(&f.code(&secret)), Some("laptop")).await.unwrap()
    else {
        panic!("login")
    };
    let remember = auth.remembered.unwrap();
    f.clock.advance(std::time::Duration::from_secs(30));

    let out = f.engine.reset(bob, alice, "called her back on the number on file").await.unwrap();
    let ResetOutcome::Reset { notice_delivery: Delivery::Queued(notice) } = out else { panic!("{out:?}") };
    assert_eq!(f.deliver().await.delivery_of(notice), Some(&Delivery::Sent));

    let (_, rec) = stored(&f, alice).await;
    assert_eq!(rec["second_factor"], serde_json::json!({ "state": "disabled" }), "{rec}");
    assert!(no_entries(&rec, "/locations") && no_entries(&rec, "/pending"), "{rec}");
    let reset = &rec["last_reset"];
    assert_eq!(reset["by"], bob.as_str(), "{rec}");
    assert_eq!((reset["by_login"].as_str(), reset["by_role"].as_str()), (Some("bob"), Some("admin")), "{rec}");
    assert_eq!(reset["identity_check"], "called her back on the number on file");

    // The pending login from before the reset is dead, with any code.
    let code = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&old_code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    // The password alone logs in now; no code is asked for or accepted.
    match f.engine.begin_login("alice", PASSWORD, Some(remember.token())).await.unwrap() {
        LoginOutcome::Authenticated(a) => assert_eq!(a.method, twofactor::AuthMethod::Password),
        other => panic!("{other:?}"),
    }
    // Setting up again issues a new secret; the old secret's codes do not confirm it.
    let started = f.engine.start_enrollment(alice).await.unwrap();
    let new_secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    assert_ne!(new_secret, secret);
    // Move to a time step where the two secrets' codes differ (they collide one time in
    // a million), so every check below is unconditional.
    let distinct_step = |f: &Fixture| {
        while f.code(&secret) == f.code(&new_secret) {
            f.clock.advance(std::time::Duration::from_secs(30));
        }
    };
    distinct_step(&f);
    let r = f.engine.confirm_enrollment(alice, &f.code(&secret)).await.unwrap();
    assert!(matches!(r, twofactor::ConfirmOutcome::WrongCode));
    let r = f.engine.confirm_enrollment(alice, &f.code(&new_secret)).await.unwrap();
    assert!(matches!(r, twofactor::ConfirmOutcome::Confirmed { .. }));

    // With 2FA active again, on fresh pending logins: the remembered location skips
    // nothing, and neither the old backup code nor the old secret's code logs in.
    f.clock.advance(std::time::Duration::from_secs(30));
    distinct_step(&f);
    let out = f.engine.begin_login("alice", PASSWORD, Some(remember.token())).await.unwrap();
    assert!(matches!(out, LoginOutcome::SecondFactorRequired(_)), "{out:?}");
    let p = f.pending("alice").await;
    let out = f.engine.finish_login(&p, SecondFactor::BackupCode(&old_code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    let out = f.engine.finish_login(&p, SecondFactor::Totp(&f.code(&secret)), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    // The same pending login still takes the new secret's code: the refusals above
    // were about the factors, not the login.
    let out = f.engine.finish_login(&p, SecondFactor::Totp(&f.code(&new_secret)), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
}

#[tokio::test]
async fn reset_mails_the_user_who_did_it() {
    let f = fixture();
    let (alice, _) = f.enrolled("alice").await;
    let bob = f.user("bob", Role::Admin).await;
    let mailed = f.mailer.outbox().len();
    let out = f.engine.reset(bob, alice, "in person").await.unwrap();
    let ResetOutcome::Reset { notice_delivery: Delivery::Queued(notice) } = out else { panic!("{out:?}") };
    assert_eq!(f.mailer.outbox().len(), mailed, "the reset queues the notice, it does not send it");
    assert!(matches!(f.engine.mail_status(alice, notice).await.unwrap(), MailStatus::Queued { attempts: 0, .. }));
    let report = f.deliver().await;
    assert_eq!(report.delivery_of(notice), Some(&Delivery::Sent), "{report:?}");
    assert!(matches!(f.engine.mail_status(alice, notice).await.unwrap(), MailStatus::Delivered { .. }));
    let mail = f.mailer.outbox().last().unwrap().clone();
    assert_eq!(mail.id, notice);
    assert_eq!(mail.message.kind(), twofactor::mail::MessageKind::TwoFactorReset);
    assert_eq!(mail.message.recipient().email, email("alice"));
    assert!(mail.rendered.text.contains("bob"), "{}", mail.rendered.text);
    assert!(f.events.names().contains(&"two_factor.reset"));
}

/// A backup code still waiting in the outbox when the second factor is reset is void:
/// the reset drops its mail, and only the notice goes out.
#[tokio::test]
async fn a_reset_drops_a_backup_code_mail_still_queued() {
    let f = fixture();
    let (alice, _) = f.enrolled("alice").await;
    let bob = f.user("bob", Role::Admin).await;
    let reissued = f.engine.reissue_backup_code(alice).await.unwrap().queued().expect("queued");
    let out = f.engine.reset(bob, alice, "in person").await.unwrap();
    let ResetOutcome::Reset { notice_delivery: Delivery::Queued(notice) } = out else { panic!("{out:?}") };
    assert_eq!(f.engine.mail_status(alice, reissued).await.unwrap(), MailStatus::Unknown, "dropped");
    let report = f.deliver().await;
    let kinds: Vec<_> = report.messages.iter().map(|(id, kind, _)| (*id, *kind)).collect();
    assert_eq!(kinds, [(notice, MessageKind::TwoFactorReset)], "{report:?}");
    assert_eq!(f.mailer.outbox().last().map(|m| m.message.kind()), Some(MessageKind::TwoFactorReset));
    assert!(!f.mailer.outbox().iter().any(|m| m.id == reissued), "the void code was never mailed");
}

#[tokio::test]
async fn support_resets_an_administrator() {
    let f = fixture();
    // An enrolled administrator (the role is the application's: the user is created
    // with it), a peer administrator and support.
    let (admin, _) = f.enrolled_as("admin", Role::Admin).await;
    let support = f.user("support", Role::Support).await;
    let peer = f.user("peer", Role::Admin).await;
    assert_eq!(f.engine.reset(peer, admin, "peer says so").await.unwrap(), ResetOutcome::NotAllowed);
    assert!(matches!(f.engine.reset(support, admin, "vendor verified").await.unwrap(), ResetOutcome::Reset { .. }));
}

#[tokio::test]
async fn the_identity_check_is_required_and_bounded() {
    let f = fixture();
    let alice = f.user("alice", Role::User).await;
    let bob = f.user("bob", Role::Admin).await;
    assert!(matches!(f.engine.reset(bob, alice, "   ").await, Err(Error::InvalidInput(_))));
    assert!(matches!(f.engine.reset(bob, alice, &"x".repeat(501)).await, Err(Error::InvalidInput(_))));
    assert!(matches!(f.engine.reset(bob, twofactor::UserId::from(12345_u64), "x").await, Err(Error::NoSuchAccount)));
}

/// Issue 10, item 6: a TOTP code captured at step S worked again after an administrator
/// reset and a re-enrollment with the same secret (imported) inside the window. The
/// newest accepted step now survives the reset and bounds confirmation and login.
#[tokio::test]
async fn a_code_used_before_a_reset_does_not_replay_after_it() {
    let f = fixture();
    let (alice, secret) = f.enrolled("alice").await;
    let admin = f.user("admin", Role::Admin).await;
    let captured = f.code(&secret);
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&captured), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");

    f.engine.reset(admin, alice, "video call with the manager").await.unwrap();
    let uri = format!("otpauth://totp/Acme:alice?secret={}&issuer=Acme", data_encoding::BASE32_NOPAD.encode(&secret));
    f.engine.import_enrollment(alice, &uri).await.unwrap();
    let out = f.engine.confirm_enrollment(alice, &captured).await.unwrap();
    assert!(matches!(out, twofactor::ConfirmOutcome::WrongCode), "the captured code does not confirm: {out:?}");

    f.clock.advance(std::time::Duration::from_secs(30));
    let fresh = f.code(&secret);
    let out = f.engine.confirm_enrollment(alice, &fresh).await.unwrap();
    assert!(matches!(out, twofactor::ConfirmOutcome::Confirmed { .. }), "a fresh code does: {out:?}");
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&captured), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "nor does it log in: {out:?}");
    let retired = stored_number(&f, alice, "/retired_totp_step").await;
    assert_eq!(retired, twofactor::Clock::now(&f.clock).0 / 30 - 1);
}
