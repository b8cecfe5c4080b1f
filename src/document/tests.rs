//! The credential document's format: round trips, defaults, refusals, size.

use super::*;
use crate::UserId;
use crate::account::{LoginMark, RememberedLocation, Role, TwoFactor};
use crate::store::UserRecord;

use super::sample::sample_account;

fn user(json: &str) -> UserRecord {
    UserRecord::new(UserId::from(7_u64), "sample", "sample@example.test", Role::Admin)
        .with_document(3, Document::from_json(json))
}

fn read(json: &str) -> crate::Result<Account> {
    decode(user(json), Timestamp(0), || Ok(0)).map(|v| v.record)
}

#[test]
fn every_field_round_trips() -> crate::Result<()> {
    let a = sample_account(UserId::from(7_u64), "sample");
    let doc = encode(&a)?;
    let back = decode(user(doc.as_json()), Timestamp(0), || Ok(0))?;
    assert_eq!(back.version, 3);
    assert_eq!(back.record, a);
    Ok(())
}

#[test]
fn the_identity_comes_from_the_user_record_not_the_document() -> crate::Result<()> {
    let a = sample_account(UserId::from(7_u64), "sample");
    let doc = encode(&a)?;
    for needle in ["sample@example.test", "\"sample\"", "admin\"", "\"7\""] {
        assert!(!doc.as_json().contains(needle), "the document holds {needle}: {}", doc.as_json());
    }
    let moved = UserRecord::new(UserId::from(7_u64), "renamed", "new@example.test", Role::User).with_document(1, doc);
    let back = decode(moved, Timestamp(0), || Ok(0))?.record;
    assert_eq!((back.username.as_str(), back.email.as_str(), back.role), ("renamed", "new@example.test", Role::User));
    Ok(())
}

#[test]
fn a_user_without_a_document_is_new_at_version_0() -> crate::Result<()> {
    let fresh = UserRecord::new("u-1".parse::<UserId>().unwrap(), "bob", "bob@example.test", Role::User);
    let v = decode(fresh, Timestamp(1234), || Ok(99))?;
    assert_eq!(v.version, 0);
    assert_eq!(v.record.password_hash, None);
    assert_eq!(v.record.security_stamp, 99);
    assert_eq!(v.record.created_at, Timestamp(1234));
    assert!(matches!(v.record.two_factor, TwoFactor::Disabled));
    Ok(())
}

#[test]
fn missing_fields_take_their_defaults_and_unknown_fields_are_ignored() -> crate::Result<()> {
    let a = read(r#"{"format":1}"#)?;
    assert_eq!(a.password_hash, None);
    assert!(matches!(a.two_factor, TwoFactor::Disabled));
    assert_eq!(a.throttle, Default::default());
    assert!(a.locations.is_empty() && a.pending.is_empty() && a.last_reset.is_none());
    let b = read(r#"{"format":1,"password":"$argon2id$x","a_later_field":{"x":[1,2]},"stamp":5}"#)?;
    assert_eq!((b.password_hash.as_deref(), b.security_stamp), (Some("$argon2id$x"), 5));
    Ok(())
}

#[test]
fn defaults_are_not_written() -> crate::Result<()> {
    let fresh = decode(UserRecord::new(UserId::from(1_u64), "a", "a@x.test", Role::User), Timestamp(5), || Ok(6))?;
    let doc = encode(&fresh.record)?;
    assert_eq!(doc.as_json(), r#"{"format":1,"stamp":6,"created_at":5,"second_factor":{"state":"disabled"}}"#);
    Ok(())
}

#[test]
fn unreadable_documents_are_corrupt_and_quote_nothing() {
    let cases = [
        ("", "empty"),
        ("not json", "junk"),
        (r#"{"format":2}"#, "a newer format"),
        (r#"{"stamp":1}"#, "no format"),
        (r#"{"format":1,"stamp":"$argon2id$secret-looking"}"#, "a wrong type"),
        (
            r#"{"format":1,"locations":[{"id":"zz","token_hash":"00","label":"","created_at":0,"last_used_at":0,"expires_at":0}]}"#,
            "bad hex",
        ),
        (r#"{"format":1,"pending":[{"id":"0011","expires_at":0}]}"#, "a short id"),
        (r#"{"format":1,"second_factor":{"state":"enabled","authenticators":[],"enabled_at":0}}"#, "no authenticator"),
        (
            r#"{"format":1,"second_factor":{"state":"enabled","authenticators":[{"kind":"totp","secret":"AAAA","algorithm":"SHA1","digits":6,"period":30},{"kind":"totp","secret":"AAAA","algorithm":"SHA1","digits":6,"period":30}],"enabled_at":0}}"#,
            "two authenticators",
        ),
        (
            r#"{"format":1,"second_factor":{"state":"enabled","authenticators":[{"kind":"passkey"}],"enabled_at":0}}"#,
            "an unknown kind",
        ),
        (
            r#"{"format":1,"second_factor":{"state":"enrolling","authenticator":{"kind":"totp","secret":"AAAA","algorithm":"MD5","digits":6,"period":30},"started_at":0}}"#,
            "a bad algorithm",
        ),
        (
            r#"{"format":1,"second_factor":{"state":"enrolling","authenticator":{"kind":"totp","secret":"AAAA","algorithm":"SHA1","digits":7,"period":30},"started_at":0}}"#,
            "bad digits",
        ),
        (
            r#"{"format":1,"second_factor":{"state":"enrolling","authenticator":{"kind":"totp","secret":"!!","algorithm":"SHA1","digits":6,"period":30},"started_at":0}}"#,
            "bad base64",
        ),
        (
            r#"{"format":1,"outbox":[{"id":"00112233445566778899aabbccddeeff","kind":"postcard","due":0}]}"#,
            "a mail kind",
        ),
        (
            r#"{"format":1,"outbox":[{"id":"00112233445566778899aabbccddeeff","kind":"backup_code.setup","due":0}]}"#,
            "a code mail without codes",
        ),
        (r#"{"format":1,"outbox":[{"id":"0011","kind":"throttled","until":1,"due":0}]}"#, "a short mail id"),
        (r#"{"format":1,"outbox":[{"id":"00112233445566778899aabbccddeeff","kind":"throttled","due":0}]}"#, "no until"),
    ];
    for (json, what) in cases {
        match read(json) {
            Err(crate::Error::Store(StoreError::Corrupt(msg))) => {
                assert!(!msg.contains("secret-looking"), "{what}: the message quotes the value: {msg}");
            }
            other => panic!("{what}: expected a corrupt-record error, got {other:?}"),
        }
    }
    let newer = read(r#"{"format":2}"#).map(|_| ()).unwrap_err().to_string();
    assert!(newer.contains("format 2"), "{newer}");
    let zero =
        decode(user(r#"{"format":1}"#).with_document(0, Document::from_json(r#"{"format":1}"#)), Timestamp(0), || {
            Ok(0)
        });
    assert!(zero.is_err(), "a document at version 0");
}

/// The size the issue asks to report: a user with 2FA, 10 remembered locations and 64
/// pending marks. `cargo test --lib document_size -- --nocapture` prints it.
#[test]
fn document_size_with_2fa_10_locations_and_64_pending_marks() -> crate::Result<()> {
    let mut a = sample_account(UserId::from(5468115731402263511_u64), "alice");
    a.last_reset = None;
    a.throttle = Default::default();
    a.outbox.clear();
    a.settled_mail.clear();
    let location = |i: u8| RememberedLocation {
        id: [i; 16],
        token_hash: [i; 32],
        label: "Firefox on Linux".to_owned(),
        created_at: Timestamp(1_764_500_000),
        last_used_at: Timestamp(1_764_500_000),
        expires_at: Timestamp(1_767_092_000),
    };
    a.locations = (0..10).map(location).collect();
    a.pending = (0..64)
        .map(|i| LoginMark {
            id: [i; 16],
            expires_at: Timestamp(1_764_500_300),
            failures: u32::from(i % 2),
            consumed: i % 3 == 0,
        })
        .collect();
    if let TwoFactor::Enabled(e) = &mut a.two_factor {
        e.authenticators.truncate(1);
        e.authenticators[0].secret.0 = vec![0x5a; 4 + 24 + 20 + 16]; // key id, nonce, 160-bit secret, tag
        e.adding = None;
        e.backup_codes.truncate(1);
        e.backup_codes[0].phc =
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .to_owned();
    }
    let doc = encode(&a)?;
    println!("credential document with 2FA, 10 locations, 64 pending marks: {} bytes", doc.len());
    assert!(doc.len() < 8 * 1024, "{} bytes", doc.len());
    assert_eq!(decode(user(doc.as_json()), Timestamp(0), || Ok(0))?.record.pending.len(), 64);
    Ok(())
}

#[test]
fn the_mail_due_time_is_the_earliest_queued_message_and_survives_a_read_back() -> crate::Result<()> {
    let mut a = sample_account(UserId::from(7_u64), "sample");
    assert_eq!(encode(&a)?.mail_due_at(), Some(Timestamp(i64::MAX as u64)));
    a.outbox[1].due = Timestamp(1_800_000_000);
    let doc = encode(&a)?;
    assert_eq!(doc.mail_due_at(), Some(Timestamp(1_800_000_000)));
    // A store reads the text back: the same answer from the text alone.
    assert_eq!(Document::from_json(doc.as_json()).mail_due_at(), Some(Timestamp(1_800_000_000)));
    a.outbox.clear();
    assert_eq!(Document::from_json(encode(&a)?.as_json()).mail_due_at(), None);
    assert_eq!(Document::from_json("not json").mail_due_at(), None);
    Ok(())
}

#[test]
fn debug_shows_only_the_length() {
    let doc = Document::from_json(r#"{"format":1,"password":"$argon2id$hash"}"#);
    assert_eq!(format!("{doc:?}"), "Document(40 bytes)");
}
