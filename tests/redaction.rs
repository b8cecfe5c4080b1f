//! Nothing that holds a secret prints it in `Debug`.

mod common;
use common::*;
use twofactor::store::UserStore;
use twofactor::totp::TotpCode;
use twofactor::{
    AppKey, BackupCode, KeyRing, LoginOutcome, SecondFactor, SecondFactorOutcome, SecretBytes, SecretString,
};

#[test]
fn secret_wrappers_are_redacted() {
    let s = SecretString::from("hunter2hunter2");
    assert!(!format!("{s:?}").contains("hunter2"));
    let b = SecretBytes::new(b"rawkeybytes".to_vec());
    assert!(!format!("{b:?}").contains("rawkey"));
    let code = BackupCode::parse("K7QX-M2PD-9WRT-H4NB").unwrap();
    assert!(!format!("{code:?}").contains("K7QX"));
    let totp = TotpCode::parse("123456", 6).unwrap();
    assert!(!format!("{totp:?}").contains("123456"));
    let factors = [SecondFactor::Totp("123456"), SecondFactor::BackupCode("K7QX-M2PD-9WRT-H4NB")];
    let shown: Vec<String> = factors.iter().map(|f| format!("{f:?}")).collect();
    assert_eq!(shown, ["Totp(REDACTED)", "BackupCode(REDACTED)"], "which factor shows; its code does not");
    let key = AppKey::from_hex(1, &"5a".repeat(32)).unwrap();
    let ring = KeyRing::new(vec![key.clone()]).unwrap();
    for shown in [format!("{key:?}"), format!("{ring:?}")] {
        assert!(!shown.to_lowercase().contains("5a5a"), "{shown}");
    }
}

#[tokio::test]
async fn engine_values_are_redacted() {
    let f = fixture();
    let (id, secret) = f.enrolled("alice").await;
    let code = f.backup_code("alice");
    let canonical = code.replace('-', "");
    let b32 = data_encoding::BASE32_NOPAD.encode(&secret);

    let LoginOutcome::SecondFactorRequired(pending) = f.engine.begin_login("alice", PASSWORD, None).await.unwrap()
    else {
        panic!("pending")
    };
    let pending_dbg = format!("{pending:?}");
    assert!(!pending_dbg.contains(pending.token()), "{pending_dbg}");

    let out =
        f.engine.finish_login(pending.token(), SecondFactor::Totp(&f.code(&secret)), Some("phone")).await.unwrap();
    let SecondFactorOutcome::Authenticated(auth) = &out else { panic!("{out:?}") };
    let token = auth.remembered.as_ref().unwrap().token().to_owned();
    let out_dbg = format!("{out:?}");
    assert!(!out_dbg.contains(&token), "{out_dbg}");

    let record = f.store.find_by_id(id).await.unwrap().unwrap();
    let rec_dbg = format!("{record:?}");
    assert!(!rec_dbg.contains("argon2"), "no hash in Debug: {rec_dbg}");
    let json = record.credentials.as_ref().expect("a document").document.as_json();
    assert!(json.contains("$argon2id$"), "the document Debug hides does hold the hashes");

    let outbox_dbg = format!("{:?}", f.mailer.outbox());
    let engine_dbg = format!("{:?}", f.engine);
    let events_dbg = format!("{:?}", f.events.events());
    for shown in [&pending_dbg, &out_dbg, &rec_dbg, &outbox_dbg, &engine_dbg, &events_dbg] {
        for secret_text in [code.as_str(), canonical.as_str(), b32.as_str(), PASSWORD, token.as_str()] {
            assert!(!shown.contains(secret_text), "{secret_text} leaked into {shown}");
        }
    }

    // A backup-code login queues its replacement in the document, sealed: neither the
    // record's Debug, nor the document, nor the delivery round's report shows it.
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    let queued = f.store.find_by_id(id).await.unwrap().unwrap();
    assert!(!no_entries(&document_of(&queued), "/outbox"), "the replacement waits in the document");
    f.mailer.fail_next(1);
    let failed = f.deliver().await;
    assert_eq!(failed.retrying, 1, "{failed:?}");
    f.clock.advance(f.engine.policy().delivery().first_retry);
    let sent = f.deliver().await;
    assert_eq!(sent.sent, 1, "{sent:?}");
    let rotated = f.backup_code("alice");
    let rotated_canonical = rotated.replace('-', "");
    let queued_json = queued.credentials.as_ref().expect("a document").document.as_json().to_owned();
    let shown = [format!("{queued:?}"), queued_json, format!("{failed:?}"), format!("{sent:?}"), format!("{out:?}")];
    for shown in &shown {
        for secret_text in [rotated.as_str(), rotated_canonical.as_str()] {
            assert!(!shown.contains(secret_text), "{secret_text} leaked into {shown}");
        }
    }

    f.engine.reset(f.user("bob", twofactor::Role::Admin).await, id, "ok").await.unwrap();
    let started = f.engine.start_enrollment(id).await.unwrap();
    let shown = format!("{started:?}");
    assert!(!shown.contains(started.secret_base32.expose()) && !shown.contains("otpauth"), "{shown}");
    assert!(shown.starts_with("EnrollmentStarted { params: TotpParams {") && shown.ends_with(", .. }"), "{shown}");
}
