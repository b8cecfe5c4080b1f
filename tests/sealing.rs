//! Secrets sealed at rest (issue 3): TOTP keys are encrypted (XChaCha20-Poly1305)
//! under the application key with the account id as associated data; the store never
//! sees a plaintext key; keys rotate (the newest seals, all unseal, a secret is
//! re-sealed under the newest key when next used).

mod common;

use common::hashwork::{CountingOffload, fixture_on};
use common::*;
use data_encoding::BASE64;
use twofactor::store::MemoryStore;
use twofactor::{AppKey, Clock, Error, KeyRing, SecondFactor, UserId};

fn key(id: u32, byte: &str) -> AppKey {
    AppKey::from_hex(id, &byte.repeat(32)).unwrap()
}

fn ring(keys: &[(u32, &str)]) -> KeyRing {
    KeyRing::new(keys.iter().map(|(id, b)| key(*id, b)).collect()).unwrap()
}

/// Where the document keeps the sealed TOTP secret (base64), by second-factor state.
fn secret_pointer(doc: &serde_json::Value) -> &'static str {
    match doc.pointer("/second_factor/state").and_then(|s| s.as_str()) {
        Some("enabled") => "/second_factor/authenticators/0/secret",
        Some("enrolling") => "/second_factor/authenticator/secret",
        other => panic!("no secret in state {other:?}: {doc}"),
    }
}

/// The sealed TOTP secret in the stored document (enrolling or enabled).
async fn sealed(f: &Fixture, id: UserId) -> Vec<u8> {
    let (_, doc) = stored(f, id).await;
    let text = doc.pointer(secret_pointer(&doc)).and_then(|s| s.as_str()).expect("a sealed secret");
    BASE64.decode(text.as_bytes()).expect("base64")
}

/// Replaces the stored sealed secret of `id` (enrolling or enabled) with `sealed`.
async fn put_sealed(f: &Fixture, id: UserId, sealed: &[u8]) {
    overwrite(f, id, |doc| {
        let pointer = secret_pointer(doc);
        *doc.pointer_mut(pointer).expect("a sealed secret") = BASE64.encode(sealed).into();
    })
    .await;
}

/// The key id in a sealed secret's header (format version byte, then the id).
fn key_id(s: &[u8]) -> u32 {
    assert_eq!(s[0], 1, "seal format version");
    u32::from_be_bytes(s[1..5].try_into().unwrap())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn totp_secrets_are_sealed_at_rest() {
    let f = fixture();
    let id = f.user("sealed", twofactor::Role::User).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    let enrolling = sealed(&f, id).await;
    assert!(!contains(&enrolling, &secret), "an unconfirmed secret is sealed too");
    assert!(enrolling.len() >= secret.len() + 16, "ciphertext plus tag");
    f.engine.confirm_enrollment(id, &f.code(&secret)).await.unwrap();
    let enabled = sealed(&f, id).await;
    assert!(!contains(&enabled, &secret));
    let rec = user_record(&f, id).await;
    let document = &rec.credentials.as_ref().unwrap().document;
    let json = document.as_json();
    // The document's Debug shows only its length, not even the sealed secret.
    assert_eq!(format!("{document:?}"), format!("Document({} bytes)", document.len()));
    assert!(json.contains(&BASE64.encode(&enabled)), "the sealed secret is in the document");
    let b32 = started.secret_base32.expose();
    for plain in [b32.to_owned(), BASE64.encode(&secret), data_encoding::HEXLOWER.encode(&secret)] {
        assert!(!format!("{rec:?}").contains(&plain) && !json.contains(&plain), "{plain} stored in the clear");
    }
    assert!(!format!("{started:?}").contains(b32), "EnrollmentStarted's Debug is redacted");
}

/// The decision: a secret sealed for another account is a fault, `Err(Error::Unseal)`,
/// not a wrong code. The store was tampered with (or is corrupt); the application must
/// see that, nobody logs in, and nothing is counted or written.
#[tokio::test]
async fn a_sealed_secret_does_not_open_under_another_accounts_id() {
    let f = fixture();
    let (alice, alice_secret) = f.enrolled("alice-seal").await;
    let (bob, bob_secret) = f.enrolled("bob-seal").await;
    assert_eq!(stored(&f, bob).await.1["second_factor"]["state"], "enabled");
    put_sealed(&f, bob, &sealed(&f, alice).await).await;
    let before = stored(&f, bob).await;

    for secret in [&alice_secret, &bob_secret] {
        let pending = f.pending("bob-seal").await;
        let code = f.code(secret);
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await;
        assert!(matches!(out, Err(Error::Unseal)), "{out:?}");
    }
    assert_eq!(stored(&f, bob).await, before, "nothing written, nothing counted");
    let bob_logged_in = f
        .events
        .events()
        .iter()
        .any(|e| e.account == Some(bob) && matches!(e.kind, twofactor::events::EventKind::LoginSucceeded { .. }));
    assert!(!bob_logged_in);
    assert!(is_authenticated(&f.totp_login("alice-seal", &alice_secret).await), "alice's own login still works");
}

#[tokio::test]
async fn an_unconfirmed_secret_does_not_open_under_another_accounts_id() {
    let f = fixture();
    let alice = f.user("alice-enrolling", twofactor::Role::User).await;
    let bob = f.user("bob-enrolling", twofactor::Role::User).await;
    let started = f.engine.start_enrollment(alice).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    f.engine.start_enrollment(bob).await.unwrap();
    assert_eq!(stored(&f, bob).await.1["second_factor"]["state"], "enrolling");
    put_sealed(&f, bob, &sealed(&f, alice).await).await;
    let out = f.engine.confirm_enrollment(bob, &f.code(&secret)).await;
    assert!(matches!(out, Err(Error::Unseal)), "{out:?}");
}

#[tokio::test]
async fn a_tampered_sealed_secret_is_refused() {
    let f = fixture();
    let (id, secret) = f.enrolled("tampered").await;
    assert_eq!(stored(&f, id).await.1["second_factor"]["state"], "enabled");
    let mut tampered = sealed(&f, id).await;
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    put_sealed(&f, id, &tampered).await;
    let pending = f.pending("tampered").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), None).await;
    assert!(matches!(out, Err(Error::Unseal)), "{out:?}");
}

#[tokio::test]
async fn key_rotation_reseals_under_the_newest_key_on_next_use() {
    let store = MemoryStore::new();
    let policy = || fast_policy().build().unwrap();
    let old = fixture_on(store.clone(), ring(&[(1, "11")]), policy(), CountingOffload::new());
    let (alice, alice_secret) = old.enrolled("alice-rot").await;
    let (carol, carol_secret) = old.enrolled("carol-rot").await;
    let before = sealed(&old, alice).await;
    assert_eq!(key_id(&before), 1);

    // Only the new key: a secret sealed under key 1 cannot be opened.
    let only_new = fixture_on(store.clone(), ring(&[(2, "22")]), policy(), CountingOffload::new());
    only_new.clock.set(old.clock.now());
    let pending = only_new.pending("carol-rot").await;
    let out = only_new.engine.finish_login(&pending, SecondFactor::Totp(&only_new.code(&carol_secret)), None).await;
    assert!(matches!(out, Err(Error::UnknownKey { key_id: 1 })), "{out:?}");

    // Both keys, newest last: the login works and re-seals under key 2.
    let rotated = fixture_on(store.clone(), ring(&[(1, "11"), (2, "22")]), policy(), CountingOffload::new());
    rotated.clock.set(old.clock.now());
    let out = rotated.totp_login("alice-rot", &alice_secret).await;
    assert!(is_authenticated(&out), "{out:?}");
    let after = sealed(&rotated, alice).await;
    assert_eq!(key_id(&after), 2, "re-sealed under the newest key");
    assert_ne!(after, before);
    assert_eq!(key_id(&sealed(&rotated, carol).await), 1, "an unused secret keeps its seal until used");

    // Key 1 can now be retired for alice.
    only_new.clock.set(rotated.clock.now());
    only_new.clock.advance(std::time::Duration::from_secs(30));
    let out = only_new.totp_login("alice-rot", &alice_secret).await;
    assert!(is_authenticated(&out), "{out:?}");
}

#[test]
fn a_key_ring_needs_keys_with_unique_ids() {
    assert!(KeyRing::new(vec![]).is_err());
    assert!(KeyRing::new(vec![key(1, "11"), key(1, "22")]).is_err());
    assert_eq!(ring(&[(1, "11"), (7, "22")]).current().id(), 7, "the last key seals");
    assert!(!format!("{:?}", key(3, "ab")).contains("ab"), "AppKey's Debug shows only the id");
}
