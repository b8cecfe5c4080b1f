//! The backup code: single use, rotated and mailed on every use, stored only as a hash,
//! and safe when the mail fails.

mod common;
use common::*;
use twofactor::{AuthMethod, Delivery, LoginOutcome, Role, SecondFactor, SecondFactorOutcome, TwoFactor, UserStore};

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
            assert_eq!(a.backup_code_delivery, Some(Delivery::Sent));
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
    assert!(is_authenticated(&backup_login(&f, "alice", &first).await));
    let outbox = f.mailer.outbox();
    assert_eq!(outbox.last().unwrap().message.kind(), "backup_code.rotated");
    let second = f.backup_code("alice");
    assert_ne!(first, second);
    assert!(is_authenticated(&backup_login(&f, "alice", &second).await));
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
    let rec = f.store.find_by_id(id).await.unwrap().unwrap().record;
    let TwoFactor::Enabled(e) = &rec.two_factor else { panic!("enabled") };
    assert_eq!(e.backup_codes.len(), 1);
    let phc = &e.backup_codes[0].phc;
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let canonical = code.replace('-', "");
    assert!(!phc.contains(&canonical) && !format!("{rec:?}").contains(&canonical));
}

#[tokio::test]
async fn mail_failure_after_rotation_keeps_the_old_code_invalid_and_reissue_works() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let old = f.backup_code("alice");
    f.mailer.fail_next(1);
    match backup_login(&f, "alice", &old).await {
        SecondFactorOutcome::Authenticated(a) => {
            assert!(matches!(a.backup_code_delivery, Some(Delivery::Failed(_))), "{:?}", a.backup_code_delivery)
        }
        other => panic!("the login itself succeeds: {other:?}"),
    }
    assert_eq!(f.backup_code("alice"), old, "no new mail arrived");
    assert!(f.events.names().contains(&"backup_code.delivery_failed"));
    // The old code is void even though its replacement never arrived.
    assert!(matches!(backup_login(&f, "alice", &old).await, SecondFactorOutcome::Denied { .. }));
    // A replacement was stored (not lost): the account still holds one code.
    let rec = f.store.find_by_id(id).await.unwrap().unwrap().record;
    let TwoFactor::Enabled(e) = &rec.two_factor else { panic!("enabled") };
    assert_eq!(e.backup_codes.len(), 1);
    // The logged-in user asks for a fresh code.
    assert_eq!(f.engine.reissue_backup_code(id).await.unwrap(), Delivery::Sent);
    let fresh = f.backup_code("alice");
    assert_ne!(fresh, old);
    assert!(is_authenticated(&backup_login(&f, "alice", &fresh).await));
}

#[tokio::test]
async fn reissue_voids_the_previous_code() {
    let f = fixture();
    let (id, _) = f.enrolled("alice").await;
    let old = f.backup_code("alice");
    f.engine.reissue_backup_code(id).await.unwrap();
    assert_eq!(f.mailer.outbox().last().unwrap().message.kind(), "backup_code.reissued");
    assert!(matches!(backup_login(&f, "alice", &old).await, SecondFactorOutcome::Denied { .. }));
    assert!(is_authenticated(&backup_login(&f, "alice", &f.backup_code("alice")).await));
}

#[tokio::test]
async fn reissue_without_2fa_is_misuse() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    assert!(matches!(f.engine.reissue_backup_code(id).await, Err(twofactor::Error::Misuse(_))));
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
    let twofactor::Message::BackupCode { codes, .. } = &f.mailer.outbox()[0].message else { panic!("code mail") };
    let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    assert_eq!(codes.len(), 3);
    assert!(is_authenticated(&backup_login(&f, "alice", &codes[1]).await));
    assert!(is_authenticated(&backup_login(&f, "alice", &codes[2]).await));
    assert!(!is_authenticated(&backup_login(&f, "alice", &codes[1]).await));
    let rec = f.store.find_by_id(id).await.unwrap().unwrap().record;
    let TwoFactor::Enabled(e) = &rec.two_factor else { panic!("enabled") };
    assert_eq!(e.backup_codes.len(), 3);
}
