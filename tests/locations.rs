//! Remembered locations (issue 3): a token of at least 128 bits stored only as a hash;
//! password plus a valid token logs in without a code; tokens expire (30 days by
//! default), are bounded per account (oldest evicted), listed with label and last use,
//! revoked one by one; a reset or password change ends all of them and every pending
//! login through the security stamp; an optional new-location notice.

mod common;

use std::time::Duration;

use common::*;
use twofactor::events::{EventKind, Factor};
use twofactor::{
    AuthMethod, Clock, LocationPolicy, LoginOutcome, RememberToken, Role, SecondFactor, SecondFactorOutcome,
};

const DAY: u64 = 86_400;

/// Logs in with a TOTP code asking to remember the location as `label`.
async fn remember(f: &Fixture, name: &str, secret: &[u8], label: &str) -> RememberToken {
    let pending = f.pending(name).await;
    let code = f.code(secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), Some(label)).await.unwrap();
    f.clock.advance(Duration::from_secs(30));
    match out {
        SecondFactorOutcome::Authenticated(a) => a.remembered.expect("a remember token"),
        other => panic!("{other:?}"),
    }
}

async fn login_with(f: &Fixture, name: &str, token: &RememberToken) -> LoginOutcome {
    f.engine.begin_login(name, PASSWORD, Some(token.token())).await.unwrap()
}

fn skips_code(out: &LoginOutcome) -> bool {
    matches!(out, LoginOutcome::Authenticated(a) if a.method == AuthMethod::PasswordAndLocation)
}

fn asks_code(out: &LoginOutcome) -> bool {
    matches!(out, LoginOutcome::SecondFactorRequired(_))
}

#[tokio::test]
async fn the_token_has_at_least_128_secret_bits_and_is_stored_only_as_a_hash() {
    let f = fixture();
    let (id, secret) = f.enrolled("hash").await;
    let a = remember(&f, "hash", &secret, "Firefox on Linux").await;
    let b = remember(&f, "hash", &secret, "Firefox on Linux").await;
    assert_ne!(a.token(), b.token());
    let body = a.token().strip_prefix("loc2.").expect("token format");
    let bytes = data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).unwrap();
    assert_eq!(bytes.len(), 16 + 16, "public location id, secret");
    let token_secret = &bytes[16..];
    assert!(token_secret.len() * 8 >= 128);

    let (_, doc) = stored(&f, id).await;
    let locations = doc["locations"].as_array().expect("stored locations");
    let loc = locations.iter().find(|l| l["id"] == a.id()).expect("stored");
    let hex = |v: &serde_json::Value| data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap();
    let (loc_id, token_hash) = (hex(&loc["id"]), hex(&loc["token_hash"]));
    assert_eq!(&bytes[..16], &loc_id[..], "only the public id is stored as is");
    assert_ne!(&token_hash[..16], token_secret);
    assert!(!token_hash.windows(16).any(|w| w == token_secret), "the digest is not the secret");
    let rec = user_record(&f, id).await;
    let secret_hex = data_encoding::HEXLOWER.encode(token_secret);
    let dump = format!("{rec:?} {}", rec.credentials.as_ref().unwrap().document.as_json());
    assert!(!dump.contains(body) && !dump.contains(a.token()) && !dump.contains(&secret_hex));
    assert!(!format!("{a:?}").contains(body), "the token's Debug is redacted");
}

#[tokio::test]
async fn password_plus_a_valid_token_logs_in_without_a_code() {
    let f = fixture();
    let (id, secret) = f.enrolled("skip").await;
    let token = remember(&f, "skip", &secret, "laptop").await;
    assert!(
        f.events
            .events()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::LocationRemembered { location } if location == token.id()))
    );
    let out = login_with(&f, "skip", &token).await;
    assert!(skips_code(&out), "{out:?}");
    let last = f.events.events().pop().unwrap();
    assert_eq!((last.account, last.kind), (Some(id), EventKind::LoginSucceeded { factor: Factor::Location }));
    assert!(asks_code(&f.engine.begin_login("skip", PASSWORD, None).await.unwrap()), "no token, a code is due");
}

#[tokio::test]
async fn a_token_works_only_for_its_account_and_with_the_right_password() {
    let f = fixture();
    let (_, alice) = f.enrolled("alice-loc").await;
    let (_, bob) = f.enrolled("bob-loc").await;
    let alice_token = remember(&f, "alice-loc", &alice, "alice laptop").await;
    remember(&f, "bob-loc", &bob, "bob laptop").await;
    assert!(asks_code(&login_with(&f, "bob-loc", &alice_token).await), "another account's token is ignored");
    let out = f.engine.begin_login("alice-loc", "wrong password", Some(alice_token.token())).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    let out = f.engine.begin_login("alice-loc", PASSWORD, Some("loc1.garbage")).await.unwrap();
    assert!(asks_code(&out), "a malformed token is ignored: {out:?}");
    let body = alice_token.token().strip_prefix("loc2.").unwrap();
    let mut bytes = data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).unwrap();
    bytes[30] ^= 1; // one bit of the secret part
    let forged = format!("loc2.{}", data_encoding::BASE64URL_NOPAD.encode(&bytes));
    let out = f.engine.begin_login("alice-loc", PASSWORD, Some(&forged)).await.unwrap();
    assert!(asks_code(&out), "an altered token is ignored: {out:?}");
}

/// The decoded body of a `loc2.` token: location id (16) | secret (16).
fn location_body(token: &RememberToken) -> Vec<u8> {
    let body = token.token().strip_prefix("loc2.").unwrap_or_else(|| panic!("a loc2. token: {}", token.token()));
    data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).unwrap()
}

/// The same location's token in 0.1.0's layout: account id (8) | location id | secret.
fn loc1(account: twofactor::UserId, token: &RememberToken) -> String {
    let mut bytes = account.as_u64().expect("a numeric id, as 0.1.0's were").to_be_bytes().to_vec();
    bytes.extend_from_slice(&location_body(token));
    format!("loc1.{}", data_encoding::BASE64URL_NOPAD.encode(&bytes))
}

#[tokio::test]
async fn a_location_token_names_no_account_and_fits_in_128_characters() {
    let f = fixture();
    f.enrolled("first-loc").await;
    let (id, secret) = f.enrolled("named").await;
    let a = remember(&f, "named", &secret, "a").await;
    let b = remember(&f, "named", &secret, "b").await;
    for t in [&a, &b] {
        assert!(t.token().len() <= 128, "{} characters", t.token().len());
        let raw = location_body(t);
        assert_eq!(raw.len(), 32, "location id and secret, nothing else");
        let n = id.as_u64().expect("a numeric id");
        for needle in [n.to_be_bytes(), n.to_le_bytes()] {
            assert!(!raw.windows(8).any(|w| w == needle), "{} shows {needle:?}", t.token());
        }
    }
    // Two tokens of one account: unrelated text after the format prefix (a chance match
    // of a few characters at most; the account id took the first 10 in 0.1.0).
    let common = a.token().bytes().zip(b.token().bytes()).skip(5).take_while(|(x, y)| x == y).count();
    assert!(common < 4, "{} {}", a.token(), b.token());
}

#[tokio::test]
async fn an_altered_or_malformed_location_token_is_ignored() {
    let f = fixture();
    let (_, secret) = f.enrolled("altered").await;
    let (bob, bob_secret) = f.enrolled("altered-bob").await;
    let token = remember(&f, "altered", &secret, "laptop").await;
    let bob_token = remember(&f, "altered-bob", &bob_secret, "bob's").await;
    let text = token.token();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut candidates = vec![];
    for i in 0..text.len() {
        let original = text.as_bytes()[i];
        let other = alphabet[(alphabet.iter().position(|&c| c == original).unwrap_or(0) + 1) % alphabet.len()];
        let mut bytes = text.as_bytes().to_vec();
        bytes[i] = other;
        candidates.push(String::from_utf8(bytes).unwrap());
    }
    candidates.extend(
        [
            "",
            "loc2.",
            "loc2.!!!",
            &text[..text.len() - 1],
            &format!("{text}A"),
            &text.replacen("loc2.", "loc1.", 1),
            &text.replacen("loc2.", "pl2.", 1),
            bob_token.token(),
            &loc1(bob, &token),
            &"A".repeat(300),
        ]
        .map(str::to_owned),
    );
    for candidate in &candidates {
        let out = f.engine.begin_login("altered", PASSWORD, Some(candidate)).await;
        assert!(matches!(out, Ok(LoginOutcome::SecondFactorRequired(_))), "{candidate}: {out:?}");
    }
    assert!(skips_code(&login_with(&f, "altered", &token).await), "the real one still works");
}

#[tokio::test]
async fn a_0_1_0_location_token_still_skips_the_code_for_its_own_account() {
    let f = fixture();
    let (id, secret) = f.enrolled("legacy").await;
    let (bob, bob_secret) = f.enrolled("legacy-bob").await;
    let token = remember(&f, "legacy", &secret, "old laptop").await;
    // The stored digest is the one 0.1.0 stored for that secret, so 0.1.0's token for the
    // same location is the same id and secret behind the account id.
    let old = loc1(id, &token);
    let out = f.engine.begin_login("legacy", PASSWORD, Some(&old)).await.unwrap();
    assert!(skips_code(&out), "{out:?}");
    assert!(asks_code(&f.engine.begin_login("legacy", PASSWORD, Some(&loc1(bob, &token))).await.unwrap()));
    remember(&f, "legacy-bob", &bob_secret, "bob's").await;
    assert!(asks_code(&f.engine.begin_login("legacy-bob", PASSWORD, Some(&old)).await.unwrap()));
}

#[tokio::test]
async fn tokens_expire_after_30_days() {
    let f = fixture();
    assert_eq!(f.engine.policy().locations().lifetime, Duration::from_secs(30 * DAY));
    let (id, secret) = f.enrolled("expiry").await;
    let token = remember(&f, "expiry", &secret, "desktop").await;
    assert_eq!(token.expires_at(), f.clock.now().plus(Duration::from_secs(30 * DAY - 30)));
    f.clock.set(twofactor::Timestamp(token.expires_at().0 - 1));
    assert!(skips_code(&login_with(&f, "expiry", &token).await), "valid until the last second");
    f.clock.advance(Duration::from_secs(1));
    assert!(asks_code(&login_with(&f, "expiry", &token).await), "expired after 30 days");
    assert!(f.engine.remembered_locations(id).await.unwrap().is_empty(), "expired locations are not listed");
}

#[tokio::test]
async fn locations_are_bounded_per_account_and_the_oldest_is_evicted() {
    let policy = fast_policy().locations(LocationPolicy::default().max_per_account(3));
    let f = fixture_with(policy.build().unwrap());
    let (id, secret) = f.enrolled("bounded").await;
    let mut tokens = vec![];
    for label in ["one", "two", "three", "four"] {
        tokens.push(remember(&f, "bounded", &secret, label).await);
    }
    let labels: Vec<String> = f.engine.remembered_locations(id).await.unwrap().into_iter().map(|l| l.label).collect();
    assert_eq!(labels, ["two", "three", "four"]);
    assert!(asks_code(&login_with(&f, "bounded", &tokens[0]).await), "the oldest was evicted");
    for t in &tokens[1..] {
        assert!(skips_code(&login_with(&f, "bounded", t).await));
    }
}

#[tokio::test]
async fn locations_are_listed_with_label_and_last_use() {
    let f = fixture();
    let (id, secret) = f.enrolled("listed").await;
    let created = f.clock.now();
    let token = remember(&f, "listed", &secret, "Safari on iPhone").await;
    let list = f.engine.remembered_locations(id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].id.as_str(), list[0].label.as_str()), (token.id(), "Safari on iPhone"));
    assert_eq!((list[0].created_at, list[0].last_used_at), (created, created));
    f.clock.advance(Duration::from_secs(2 * 3600));
    assert!(skips_code(&login_with(&f, "listed", &token).await));
    let list = f.engine.remembered_locations(id).await.unwrap();
    assert_eq!(list[0].last_used_at, f.clock.now(), "last use is recorded");
    assert_eq!(list[0].created_at, created);
}

#[tokio::test]
async fn locations_are_revoked_one_by_one() {
    let f = fixture();
    let (id, secret) = f.enrolled("revoke").await;
    let first = remember(&f, "revoke", &secret, "first").await;
    let second = remember(&f, "revoke", &secret, "second").await;
    assert!(f.engine.revoke_location(id, first.id()).await.unwrap());
    assert!(asks_code(&login_with(&f, "revoke", &first).await), "the revoked one asks for a code");
    assert!(skips_code(&login_with(&f, "revoke", &second).await), "the other still works");
    assert!(!f.engine.revoke_location(id, first.id()).await.unwrap(), "already gone");
    let other = f.user("revoke-other", Role::User).await;
    assert!(!f.engine.revoke_location(other, second.id()).await.unwrap(), "not another account's");
    assert!(skips_code(&login_with(&f, "revoke", &second).await));
    let revoked = f.events.events().into_iter().filter(|e| matches!(e.kind, EventKind::LocationRevoked { .. })).count();
    assert_eq!(revoked, 1);
}

#[tokio::test]
async fn a_new_location_notice_is_mailed_only_when_the_policy_asks() {
    let policy = fast_policy().locations(LocationPolicy::default().notify_new_location(true));
    let f = fixture_with(policy.build().unwrap());
    let (_, secret) = f.enrolled("notified").await;
    let notices = |f: &Fixture| {
        f.mailer.outbox().into_iter().filter(|m| m.message.kind() == twofactor::mail::MessageKind::NewLocation).count()
    };
    let token = remember(&f, "notified", &secret, "Chrome on Windows").await;
    assert_eq!(notices(&f), 0, "queued by the login, not sent by it");
    f.deliver().await;
    assert_eq!(notices(&f), 1);
    assert!(f.mailer.outbox().last().unwrap().rendered.text.contains("Chrome on Windows"));
    assert!(skips_code(&login_with(&f, "notified", &token).await));
    assert!(f.deliver().await.messages.is_empty(), "nothing queued");
    assert_eq!(notices(&f), 1, "a remembered location is not new");

    let quiet = fixture();
    let (_, secret) = quiet.enrolled("quiet").await;
    remember(&quiet, "quiet", &secret, "somewhere").await;
    quiet.deliver().await;
    assert_eq!(notices(&quiet), 0, "off by default");
}

#[tokio::test]
async fn a_password_change_ends_every_remembered_location_and_pending_login() {
    let f = fixture();
    let (id, secret) = f.enrolled("changer").await;
    let tokens = [remember(&f, "changer", &secret, "a").await, remember(&f, "changer", &secret, "b").await];
    let pending = [f.pending("changer").await, f.pending("changer").await];
    let new_password = "a brand new passphrase";
    f.engine.change_password(id, new_password).await.unwrap();
    for t in &tokens {
        let out = f.engine.begin_login("changer", new_password, Some(t.token())).await.unwrap();
        assert!(asks_code(&out), "{out:?}");
    }
    let code = f.code(&secret);
    for p in &pending {
        let out = f.engine.finish_login(p, SecondFactor::Totp(&code), None).await.unwrap();
        assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    }
    assert!(f.engine.remembered_locations(id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reset_ends_every_remembered_location_and_pending_login() {
    let f = fixture();
    let (id, secret) = f.enrolled("resetme").await;
    let admin = f.user("resetme-admin", Role::Admin).await;
    let tokens = [remember(&f, "resetme", &secret, "a").await, remember(&f, "resetme", &secret, "b").await];
    let pending = [f.pending("resetme").await, f.pending("resetme").await];
    f.engine.reset(admin, id, "called back on the number on file").await.unwrap();
    assert!(f.engine.remembered_locations(id).await.unwrap().is_empty());
    // Set 2FA up again: the old tokens and pending logins must stay dead.
    let started = f.engine.start_enrollment(id).await.unwrap();
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
    f.engine.confirm_enrollment(id, &f.code(&secret)).await.unwrap();
    f.clock.advance(Duration::from_secs(30));
    for t in &tokens {
        assert!(asks_code(&login_with(&f, "resetme", t).await));
    }
    let code = f.code(&secret);
    for p in &pending {
        let out = f.engine.finish_login(p, SecondFactor::Totp(&code), None).await.unwrap();
        assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    }
}

#[tokio::test]
async fn the_security_stamp_alone_voids_old_tokens() {
    let f = fixture();
    let (id, secret) = f.enrolled("stamp").await;
    let token = remember(&f, "stamp", &secret, "kept").await;
    let old_locations = stored(&f, id).await.1["locations"].clone();
    assert_eq!(old_locations.as_array().map(Vec::len), Some(1), "{old_locations}");
    f.engine.change_password(id, PASSWORD).await.unwrap();
    // Put the old entries back (a restored backup, say): the rotated stamp still voids them.
    overwrite(&f, id, |doc| doc["locations"] = old_locations).await;
    assert!(asks_code(&login_with(&f, "stamp", &token).await));
}
