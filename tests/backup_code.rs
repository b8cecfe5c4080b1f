//! The backup code: single use, rotated and mailed on every use, stored only as a hash,
//! and safe when the mail fails. The mail is queued by the operation and sent by a
//! delivery round (`deliver_due`), which retries a failed send and gives it up after
//! the policy's last try.

mod common;
use common::*;
use std::time::Duration;

use twofactor::mail::Delivery;
use twofactor::store::UserStore;
use twofactor::{
    AuthMethod, DeliveryPolicy, LoginOutcome, MailId, MailStatus, Role, SecondFactor, SecondFactorOutcome,
};

async fn backup_login(f: &Fixture, name: &str, code: &str) -> SecondFactorOutcome {
    let pending = f.pending(name).await;
    f.engine.finish_login(&pending, SecondFactor::BackupCode(code), None).await.unwrap()
}

#[tokio::test]
async fn the_backup_code_has_the_documented_shape() {
    let f = fixture();
    f.enrolled("alice").await;
    let code = f.backup_code("alice");
    assert_eq!(code.len(), 19);
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 4);
    for g in groups {
        assert_eq!(g.len(), 4);
        assert!(g.chars().all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)), "{code}");
    }
}

#[tokio::test]
async fn a_backup_code_works_once() {
    let f = fixture();
    f.enrolled("alice").await;
    let code = f.backup_code("alice");
    match backup_login(&f, "alice", &code).await {
        SecondFactorOutcome::Authenticated(a) => {
            assert_eq!(a.method, AuthMethod::PasswordAndBackupCode);
            let mail = a.backup_code_delivery.as_ref().and_then(Delivery::queued).expect("the replacement is queued");
            let report = f.deliver().await;
            assert_eq!(report.delivery_of(mail), Some(&Delivery::Sent), "{report:?}");
            let last = f.mailer.outbox().last().cloned().unwrap();
            assert_eq!((last.id, last.message.kind()), (mail, twofactor::mail::MessageKind::BackupCodeRotated));
        }
        other => panic!("{other:?}"),
    }
    let again = backup_login(&f, "alice", &code).await;
    assert!(matches!(again, SecondFactorOutcome::Denied { .. }), "{again:?}");
}

#[tokio::test]
async fn the_rotated_code_is_mailed_and_works() {
    let f = fixture();
    f.enrolled("alice").await;
    let first = f.backup_code("alice");
    let sent = f.mailer.outbox().len();
    assert!(is_authenticated(&backup_login(&f, "alice", &first).await));
    assert_eq!(f.mailer.outbox().len(), sent, "the login queues the replacement, it does not send it");
    assert_eq!(f.deliver().await.sent, 1);
    let outbox = f.mailer.outbox();
    assert_eq!(outbox.len(), sent + 1);
    assert_eq!(outbox.last().unwrap().message.kind(), twofactor::mail::MessageKind::BackupCodeRotated);
    let second = f.backup_code("alice");
    assert_ne!(first, second);
    assert!(is_authenticated(&backup_login(&f, "alice", &second).await));
    f.deliver().await;
    let third = f.backup_code("alice");
    assert_ne!(second, third);
}

#[tokio::test]
async fn input_is_case_insensitive_and_ignores_spaces_and_dashes() {
    let f = fixture();
    f.enrolled("alice").await;
    let code = f.backup_code("alice");
    let sloppy = code.to_lowercase().replace('-', " ");
    assert!(is_authenticated(&backup_login(&f, "alice", &sloppy).await));
}

#[tokio::test]
async fn the_code_is_stored_only_as_a_salted_hash() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let code = f.backup_code("alice");
    let rec = user_record(&f, id).await;
    let hashes = backup_hashes(&document_of(&rec));
    assert_eq!(hashes.len(), 1);
    let phc = &hashes[0];
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let canonical = code.replace('-', "");
    let json = rec.credentials.as_ref().unwrap().document.as_json();
    assert!(!phc.contains(&canonical) && !json.contains(&canonical) && !format!("{rec:?}").contains(&canonical));
}

/// A backup-code login whose replacement mail fails: the login itself succeeds and
/// says the replacement is queued; the delivery round reports the failure.
async fn login_with_failing_replacement(f: &Fixture, code: &str) -> MailId {
    match backup_login(f, "alice", code).await {
        SecondFactorOutcome::Authenticated(a) => {
            a.backup_code_delivery.as_ref().and_then(Delivery::queued).expect("the replacement is queued")
        }
        other => panic!("the login itself succeeds: {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_replacement_mail_is_retried_after_the_backoff_with_the_same_id_and_code() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let old = f.backup_code("alice");
    f.mailer.fail_next(1);
    let mail = login_with_failing_replacement(&f, &old).await;
    let report = f.deliver().await;
    assert!(matches!(report.delivery_of(mail), Some(Delivery::Failed(_))), "{report:?}");
    assert_eq!((report.sent, report.retrying, report.gave_up), (0, 1, 0), "{report:?}");
    assert!(f.events.names().contains(&"mail.failed"));
    assert!(!f.events.names().contains(&"backup_code.delivery_failed"), "not given up after one try");
    assert_eq!(f.backup_code("alice"), old, "no new mail arrived");
    let first_retry = DeliveryPolicy::default().first_retry;
    let MailStatus::Queued { attempts: 1, next_attempt_at } = f.engine.mail_status(id, mail).await.unwrap() else {
        panic!("still queued after one failed try")
    };
    assert_eq!(next_attempt_at, twofactor::Clock::now(&f.clock).plus(first_retry));
    // The old code is void even though its replacement has not arrived.
    assert!(matches!(backup_login(&f, "alice", &old).await, SecondFactorOutcome::Denied { .. }));

    // Not due before the backoff ends; sent once it does, with the same id.
    f.clock.advance(first_retry - Duration::from_secs(1));
    assert_eq!(f.deliver().await.messages.len(), 0, "the retry waits for its backoff");
    f.clock.advance(Duration::from_secs(1));
    let report = f.deliver().await;
    assert_eq!(report.delivery_of(mail), Some(&Delivery::Sent), "{report:?}");
    let last = f.mailer.outbox().last().cloned().unwrap();
    assert_eq!((last.id, last.message.kind()), (mail, twofactor::mail::MessageKind::BackupCodeRotated));
    assert!(matches!(f.engine.mail_status(id, mail).await.unwrap(), MailStatus::Delivered { .. }));
    let rotated = f.backup_code("alice");
    assert_ne!(rotated, old);
    assert!(is_authenticated(&backup_login(&f, "alice", &rotated).await), "the retried code is the stored one");
}

#[tokio::test]
async fn mail_given_up_after_rotation_keeps_the_old_code_invalid_and_reissue_works() {
    let delivery = DeliveryPolicy::default().max_attempts(2);
    let f = fixture_with(fast_policy().delivery(delivery).build().unwrap());
    let (id, _) = f.enrolled("alice").await;
    let old = f.backup_code("alice");
    let stored_hashes = |rec: twofactor::store::UserRecord| backup_hashes(&document_of(&rec));
    let before = stored_hashes(f.store.find_by_id(id).await.unwrap().unwrap());
    f.mailer.fail_next(2);
    let mail = login_with_failing_replacement(&f, &old).await;
    let report = f.deliver().await;
    assert!(matches!(report.delivery_of(mail), Some(Delivery::Failed(_))), "{report:?}");
    f.clock.advance(delivery.retry_after(1));
    let report = f.deliver().await;
    assert!(matches!(report.delivery_of(mail), Some(Delivery::GaveUp(_))), "{report:?}");
    assert_eq!((report.sent, report.retrying, report.gave_up), (0, 0, 1), "{report:?}");
    assert_eq!(f.backup_code("alice"), old, "no new mail arrived");
    let names = f.events.names();
    assert_eq!(names.iter().filter(|n| **n == "mail.failed").count(), 2, "{names:?}");
    assert!(names.contains(&"mail.gave_up") && names.contains(&"backup_code.delivery_failed"), "{names:?}");
    assert!(matches!(f.engine.mail_status(id, mail).await.unwrap(), MailStatus::GaveUp { attempts: 2, .. }));
    f.clock.advance(delivery.max_retry);
    assert_eq!(f.deliver().await.messages.len(), 0, "a given-up message is not tried again");
    // The old code is void even though its replacement never arrived.
    assert!(matches!(backup_login(&f, "alice", &old).await, SecondFactorOutcome::Denied { .. }));
    // A replacement was stored (not lost): one code, and not the old one.
    let after = stored_hashes(f.store.find_by_id(id).await.unwrap().unwrap());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the stored code was replaced");
    // The logged-in user asks for a fresh code.
    let reissued = f.engine.reissue_backup_code(id).await.unwrap().queued().expect("the fresh code is queued");
    assert_eq!(f.deliver().await.delivery_of(reissued), Some(&Delivery::Sent));
    let fresh = f.backup_code("alice");
    assert_ne!(fresh, old);
    assert!(is_authenticated(&backup_login(&f, "alice", &fresh).await));
}

#[tokio::test]
async fn reissue_voids_the_previous_code() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let old = f.backup_code("alice");
    let mail = f.engine.reissue_backup_code(id).await.unwrap().queued().expect("queued");
    f.deliver().await;
    let last = f.mailer.outbox().last().cloned().unwrap();
    assert_eq!((last.id, last.message.kind()), (mail, twofactor::mail::MessageKind::BackupCodeReissued));
    assert!(matches!(backup_login(&f, "alice", &old).await, SecondFactorOutcome::Denied { .. }));
    assert!(is_authenticated(&backup_login(&f, "alice", &f.backup_code("alice")).await));
}

#[tokio::test]
async fn reissue_without_2fa_is_misuse() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let refused = f.engine.reissue_backup_code(id).await;
    assert!(matches!(refused, Err(twofactor::Error::Misuse(twofactor::Refusal::TwoFactorNotActive))), "{refused:?}");
}

#[tokio::test]
async fn a_backup_code_completes_only_a_pending_login() {
    let f = fixture();
    f.enrolled("alice").await;
    let code = f.backup_code("alice");
    // The password step alone never accepts the backup code in place of the password.
    assert!(matches!(f.engine.begin_login("alice", &code, None).await.unwrap(), LoginOutcome::Denied));
}

#[tokio::test]
async fn several_codes_per_account_are_opt_in_and_each_is_replaced_singly() {
    let f = fixture_with(fast_policy().backup_code_count(3).build().unwrap());
    let (id, _) = f.enrolled("alice").await;
    let twofactor::mail::Message::BackupCode { codes, .. } = &f.mailer.outbox()[0].message else { panic!("code mail") };
    let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    assert_eq!(codes.len(), 3);
    assert!(is_authenticated(&backup_login(&f, "alice", &codes[1]).await));
    assert!(is_authenticated(&backup_login(&f, "alice", &codes[2]).await));
    assert!(!is_authenticated(&backup_login(&f, "alice", &codes[1]).await));
    let (_, doc) = stored(&f, id).await;
    assert_eq!(backup_hashes(&doc).len(), 3);
}

#[tokio::test]
async fn a_code_with_a_limited_life_is_refused_after_it() {
    let day = std::time::Duration::from_secs(24 * 3600);
    let f = fixture_with(fast_policy().backup_code_lifetime(Some(day)).build().unwrap());
    f.enrolled("alice").await; // moves the clock 30 s past issue
    let code = f.backup_code("alice");
    f.clock.advance(day - std::time::Duration::from_secs(31));
    assert!(is_authenticated(&backup_login(&f, "alice", &code).await), "still valid just before 24 h");
    f.deliver().await;
    let rotated = f.backup_code("alice");
    f.clock.advance(day);
    let out = backup_login(&f, "alice", &rotated).await;
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "expired at 24 h: {out:?}");
}

/// A mailer that, while sending, looks at the store: the account change must already
/// be committed (the used code void, its replacement stored) before any mail leaves,
/// and then it fails the send.
struct CheckingMailer {
    store: twofactor::store::MemoryStore,
    id: std::sync::OnceLock<twofactor::UserId>,
    void_code: std::sync::Mutex<Option<String>>,
    /// Each checked send: the message id and the code it carried.
    seen: std::sync::Mutex<Vec<(MailId, String)>>,
}

impl twofactor::mail::Mailer for CheckingMailer {
    async fn send(&self, mail: MailId, message: &twofactor::mail::Message) -> Result<(), twofactor::MailError> {
        if let (Some(id), twofactor::mail::Message::BackupCode { codes, .. }) = (self.id.get(), message) {
            let rec = self.store.find_by_id(*id).await.unwrap().unwrap();
            // Enabled before the mail (`backup_hashes` checks it).
            let hashes = backup_hashes(&document_of(&rec));
            let used = self.void_code.lock().unwrap().clone().expect("the used code");
            assert_eq!(hashes.len(), 1);
            let stored = &hashes[0];
            assert!(!argon2_matches(&used, stored), "the used code is still stored while its replacement is mailed");
            assert!(argon2_matches(codes[0].expose(), stored), "the mailed code is not the stored one");
            self.seen.lock().unwrap().push((mail, codes[0].expose().to_owned()));
            return Err(twofactor::MailError::Unavailable("checked, then failed".to_owned()));
        }
        Ok(())
    }
}

/// Whether a backup code (display form) matches a stored PHC hash.
fn argon2_matches(code: &str, phc: &str) -> bool {
    use argon2::{PasswordHash, PasswordVerifier};
    let canonical = code.replace('-', "");
    argon2::Argon2::default().verify_password(canonical.as_bytes(), &PasswordHash::new(phc).unwrap()).is_ok()
}

#[tokio::test]
async fn the_store_change_commits_before_the_mail_and_a_waiting_code_is_kept_only_sealed() {
    let store = twofactor::store::MemoryStore::new();
    let mailer = std::sync::Arc::new(CheckingMailer {
        store: store.clone(),
        id: std::sync::OnceLock::new(),
        void_code: std::sync::Mutex::new(None),
        seen: std::sync::Mutex::new(vec![]),
    });
    let setup = fixture(); // for its clock and a MemoryMailer-backed enrollment
    let engine = twofactor::Engine::builder(
        store.clone(),
        std::sync::Arc::clone(&mailer),
        twofactor::KeyRing::ephemeral().unwrap(),
    )
    .clock(setup.clock.clone())
    .policy(fast_policy().build().unwrap())
    .build()
    .unwrap();
    let id = engine
        .create_account(twofactor::NewAccount::new("alice", "alice@example.test", twofactor::Role::User, PASSWORD))
        .await
        .unwrap();
    let started = engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    // The setup mail goes through unchecked (no id yet); capture its code from a
    // reissue instead, which the checking mailer sees.
    engine.confirm_enrollment(id, &setup.code(&secret)).await.unwrap();
    assert_eq!(delivered(&engine).await.sent, 1, "the setup mail");
    mailer.id.set(id).unwrap();
    *mailer.void_code.lock().unwrap() = Some("0000-0000-0000-0000".to_owned());
    let reissued = engine.reissue_backup_code(id).await.unwrap().queued().expect("queued");
    assert!(mailer.seen.lock().unwrap().is_empty(), "the reissue only queues its mail");
    let report = delivered(&engine).await;
    assert!(matches!(report.delivery_of(reissued), Some(twofactor::mail::Delivery::Failed(_))), "{report:?}");
    let (seen_id, undelivered) = mailer.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen_id, reissued);

    // Log in with the undelivered code (the user never got it, but it is valid): the
    // mailer checks the old one is void and the new one stored before the send.
    *mailer.void_code.lock().unwrap() = Some(undelivered.clone());
    let LoginOutcome::SecondFactorRequired(p) = engine.begin_login("alice", PASSWORD, None).await.unwrap() else {
        panic!("pending")
    };
    let out = engine.finish_login(p.token(), SecondFactor::BackupCode(&undelivered), None).await.unwrap();
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let rotated = auth.backup_code_delivery.as_ref().and_then(Delivery::queued).expect("the replacement is queued");
    let report = delivered(&engine).await;
    assert!(matches!(report.delivery_of(rotated), Some(twofactor::mail::Delivery::Failed(_))), "{report:?}");
    let (seen_id, lost) = mailer.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen_id, rotated);
    assert_ne!(lost, undelivered);

    // Both wait for their retry: the reissued mail's code is void now, so only the
    // rotated one is tried again, with the same id and the same code.
    setup.clock.advance(DeliveryPolicy::default().max_retry);
    let report = delivered(&engine).await;
    assert_eq!(report.messages.iter().map(|(m, _, _)| *m).collect::<Vec<_>>(), [rotated], "{report:?}");
    assert_eq!(mailer.seen.lock().unwrap().last().cloned().unwrap(), (rotated, lost.clone()));
    assert_eq!(mailer.seen.lock().unwrap().len(), 3);

    // Neither code is kept in plaintext anywhere in the record, though one waits for
    // its next try: it waits sealed.
    let rec = store.find_by_id(id).await.unwrap().unwrap();
    assert!(matches!(engine.mail_status(id, rotated).await.unwrap(), MailStatus::Queued { attempts: 2, .. }));
    let hashes = backup_hashes(&document_of(&rec));
    let json = rec.credentials.as_ref().unwrap().document.as_json();
    for code in [&undelivered, &lost] {
        let canonical = code.replace('-', "");
        assert!(!format!("{rec:?}").contains(&canonical));
        assert!(!json.contains(&canonical) && !json.contains(code.as_str()));
        assert!(hashes.iter().all(|h| !h.contains(&canonical)));
    }
}

/// The application owns the email: an address changed there (here `MemoryStore::set_email`,
/// behind the engine's back) is where the very next mail goes, never the old one.
#[tokio::test]
async fn an_email_changed_in_the_application_is_where_the_next_mail_goes() {
    let f = fixture();
    let (id, _) = f.enrolled("mover").await;
    let old = email("mover");
    let new = "mover.new@elsewhere.test";
    let code = f.backup_code("mover");
    let version = stored(&f, id).await.0;
    assert!(f.store.set_email(id, new));
    assert_eq!(stored(&f, id).await.0, version, "the email is not in the crate's document");
    assert_eq!(f.engine.account(id).await.unwrap().unwrap().email, new);
    let sent_before = f.mailer.outbox().len();

    // A backup-code login: its replacement goes to the new address.
    let mail = match backup_login(&f, "mover", &code).await {
        SecondFactorOutcome::Authenticated(a) => a.backup_code_delivery.as_ref().and_then(Delivery::queued),
        other => panic!("{other:?}"),
    };
    assert_eq!(f.deliver().await.delivery_of(mail.expect("queued")), Some(&Delivery::Sent));
    let rotated = f.mailer.last_code_for(new).expect("the replacement went to the new address");
    assert_eq!(f.mailer.last_code_for(&old), Some(code.clone()), "nothing more went to the old address");
    assert!(is_authenticated(&backup_login(&f, "mover", &rotated).await), "the code at the new address works");
    assert_eq!(f.deliver().await.sent, 1, "its replacement");

    // A reissue too.
    let mail = f.engine.reissue_backup_code(id).await.unwrap().queued().expect("queued");
    assert_eq!(f.deliver().await.delivery_of(mail), Some(&Delivery::Sent));
    let reissued = f.mailer.last_code_for(new).expect("the reissued code went to the new address");
    assert_ne!(reissued, rotated);
    assert_eq!(f.mailer.outbox().last().unwrap().message.kind(), twofactor::mail::MessageKind::BackupCodeReissued);

    let after: Vec<String> =
        f.mailer.outbox()[sent_before..].iter().map(|m| m.message.recipient().email.clone()).collect();
    assert!(after.len() >= 3, "{after:?}");
    assert!(after.iter().all(|to| to == new), "every mail since the change went to {new}: {after:?}");
}
