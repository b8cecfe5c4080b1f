//! The two-step login: outcomes of the password step, TOTP codes with their window and
//! replay protection, and the pending login (expiring, single-use, bound to the account).

mod common;
use common::*;
use std::time::Duration;
use twofactor::events::{EventKind, FailureClass};
use twofactor::totp::TotpParams;
use twofactor::{AuthMethod, LoginOutcome, Policy, Role, SecondFactor, SecondFactorOutcome};

fn code_at(secret: &[u8], unix: u64) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), unix).expose().to_owned()
}

fn now(f: &Fixture) -> u64 {
    twofactor::Clock::now(&f.clock).0
}

#[tokio::test]
async fn password_only_account_is_authenticated_by_the_password() {
    let f = fixture();
    f.user("alice", Role::User).await;
    match f.engine.begin_login("alice", PASSWORD, None).await.unwrap() {
        LoginOutcome::Authenticated(a) => assert_eq!((a.username.as_str(), a.method), ("alice", AuthMethod::Password)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn policy_requiring_2fa_answers_enrollment_required() {
    let f = fixture_with(fast_policy().require_two_factor(true).build().unwrap());
    let id = f.user("alice", Role::User).await;
    match f.engine.begin_login("alice", PASSWORD, None).await.unwrap() {
        LoginOutcome::EnrollmentRequired(a) => assert_eq!(a.account, id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(f.engine.begin_login("alice", "wrong one!", None).await.unwrap(), LoginOutcome::Denied));
}

#[tokio::test]
async fn unknown_user_wrong_password_and_throttled_account_look_the_same() {
    let f = fixture();
    f.user("alice", Role::User).await;
    let unknown = f.engine.begin_login("nobody", PASSWORD, None).await.unwrap();
    let wrong = f.engine.begin_login("alice", "not the password", None).await.unwrap();
    for _ in 0..5 {
        f.engine.begin_login("alice", "not the password", None).await.unwrap();
    }
    let throttled = f.engine.begin_login("alice", PASSWORD, None).await.unwrap();
    for o in [&unknown, &wrong, &throttled] {
        assert!(matches!(o, LoginOutcome::Denied), "{o:?}");
    }
    assert_eq!(format!("{unknown:?}"), format!("{throttled:?}"));
}

#[tokio::test]
async fn a_2fa_account_needs_a_code_and_a_right_code_logs_in() {
    let f = fixture();
    let (id, secret) = f.enrolled("alice").await;
    match f.totp_login("alice", &secret).await {
        SecondFactorOutcome::Authenticated(a) => {
            assert_eq!((a.account, a.method), (id, AuthMethod::PasswordAndTotp));
            assert!(a.backup_code_delivery.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_code_is_denied_with_attempts_left() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let pending = f.pending("alice").await;
    let right = f.code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&wrong), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { attempts_left: 4 }), "{out:?}");
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&right), None).await.unwrap();
    assert!(is_authenticated(&out), "the same pending login still works: {out:?}");
}

#[tokio::test]
async fn the_previous_step_is_accepted_and_older_or_future_ones_are_not() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    f.clock.advance(Duration::from_secs(60)); // keep the confirmation step out of the window
    let t = now(&f);
    for (offset, ok) in [(-60i64, false), (30, false), (-30, true)] {
        let pending = f.pending("alice").await;
        let code = code_at(&secret, (t as i64 + offset) as u64);
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
        assert_eq!(is_authenticated(&out), ok, "offset {offset}: {out:?}");
    }
}

#[tokio::test]
async fn a_step_accepted_once_is_never_accepted_again() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let code = f.code(&secret);
    let p1 = f.pending("alice").await;
    assert!(is_authenticated(&f.engine.finish_login(&p1, SecondFactor::Totp(&code), None).await.unwrap()));
    let p2 = f.pending("alice").await;
    let out = f.engine.finish_login(&p2, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    // Nor the step before it, once a newer one was used.
    let older = code_at(&secret, now(&f) - 30);
    let out = f.engine.finish_login(&p2, SecondFactor::Totp(&older), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    f.clock.advance(Duration::from_secs(30));
    assert!(is_authenticated(&f.totp_login("alice", &secret).await));
}

#[tokio::test]
async fn codes_are_canonicalised_digits() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let code = f.code(&secret);
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    let pending = f.pending("alice").await;
    assert!(is_authenticated(&f.engine.finish_login(&pending, SecondFactor::Totp(&spaced), None).await.unwrap()));
    let pending = f.pending("alice").await;
    let r = f.engine.finish_login(&pending, SecondFactor::Totp("12345x"), None).await;
    assert!(matches!(r, Ok(SecondFactorOutcome::Denied { attempts_left: 5 })), "a typo is an outcome: {r:?}");
}

#[tokio::test]
async fn a_pending_login_expires_after_five_minutes() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let pending = f.pending("alice").await;
    f.clock.advance(Duration::from_secs(301));
    let code = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    // Still just under the limit works.
    let pending = f.pending("alice").await;
    f.clock.advance(Duration::from_secs(299));
    let code = f.code(&secret);
    assert!(is_authenticated(&f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap()));
}

#[tokio::test]
async fn a_pending_login_is_single_use() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let pending = f.pending("alice").await;
    let code = f.code(&secret);
    assert!(is_authenticated(&f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap()));
    f.clock.advance(Duration::from_secs(30));
    let code = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
}

#[tokio::test]
async fn a_pending_login_is_bound_to_its_account_and_carries_no_password() {
    let f = fixture();
    let (_, alice_secret) = f.enrolled("alice").await;
    let (_, bob_secret) = f.enrolled("bob").await;
    let alice_pending = f.pending("alice").await;
    let raw = pending_body(&alice_pending);
    assert!(!raw.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()));
    assert!(!alice_pending.contains("alice"));
    // Bob's code does not complete Alice's login.
    let bob_code = f.code(&bob_secret);
    let out = f.engine.finish_login(&alice_pending, SecondFactor::Totp(&bob_code), None).await.unwrap();
    assert!(!is_authenticated(&out) || bob_code == f.code(&alice_secret), "{out:?}");
    // Changing any byte of the token kills it.
    let mut forged = raw.clone();
    forged[7] ^= 1;
    let forged = format!("pl2.{}", data_encoding::BASE64URL_NOPAD.encode(&forged));
    let out = f.engine.finish_login(&forged, SecondFactor::Totp(&f.code(&alice_secret)), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    let garbage = f.engine.finish_login("pl2.!!!", SecondFactor::Totp("123456"), None).await;
    assert!(matches!(garbage, Ok(SecondFactorOutcome::Expired)), "{garbage:?}");
}

/// The decoded body of a `pl2.` token.
fn pending_body(token: &str) -> Vec<u8> {
    let body = token.strip_prefix("pl2.").unwrap_or_else(|| panic!("a pl2. token: {token}"));
    data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).unwrap()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[tokio::test]
async fn a_pending_login_token_names_no_account_and_fits_in_128_characters() {
    let f = fixture();
    f.enrolled("alice").await;
    let (id, _) = f.enrolled("bob").await;
    let stamp = stored_number(&f, id, "/stamp").await;
    assert_ne!(stamp, 0, "a security stamp is stored");
    let n = id.as_u64().expect("a numeric id");
    let (a, b) = (f.pending("bob").await, f.pending("bob").await);
    for token in [&a, &b] {
        assert!(token.len() <= 128, "{} characters: {token}", token.len());
        let raw = pending_body(token);
        for needle in [n.to_be_bytes(), n.to_le_bytes(), stamp.to_be_bytes()] {
            assert!(!raw.windows(8).any(|w| w == needle), "{token} shows {needle:?}");
        }
        assert!(!token.contains("bob"));
    }
    // Two logins of one account: unrelated text after the format prefix (a chance
    // match of a few characters at most; the account id took the first 10 in 0.1.0).
    assert!(common_prefix(&a[4..], &b[4..]) < 4, "{a} {b}");
}

#[tokio::test]
async fn every_altered_or_malformed_pending_token_is_expired_never_an_error() {
    let f = fixture();
    let (id, secret) = f.enrolled("alice").await;
    let pending = f.pending("alice").await;
    let code = f.code(&secret);
    let before = stored(&f, id).await;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut altered = vec![];
    for i in 0..pending.len() {
        let original = pending.as_bytes()[i];
        let other = alphabet[(alphabet.iter().position(|&c| c == original).unwrap_or(0) + 1) % alphabet.len()];
        let mut bytes = pending.clone().into_bytes();
        bytes[i] = other;
        altered.push(String::from_utf8(bytes).unwrap());
    }
    // The 0.1.0 layout: account id | pending id | issued | expires | HMAC tag.
    let mut v1 = id.as_u64().expect("a numeric id").to_be_bytes().to_vec();
    v1.extend_from_slice(&[0; 16 + 8 + 8 + 32]);
    let v1 = format!("pl1.{}", data_encoding::BASE64URL_NOPAD.encode(&v1));
    let malformed = [
        "",
        "pl2.",
        "pl2.!!!",
        "pl1.!!!",
        v1.as_str(),
        &pending[..pending.len() - 1],
        &format!("{pending}A"),
        &format!("{pending}AAAA"),
        &pending.replacen("pl2.", "pl3.", 1),
        &pending.replacen("pl2.", "loc2.", 1),
        &"A".repeat(256),
    ];
    for token in altered.iter().map(String::as_str).chain(malformed) {
        let out = f.engine.finish_login(token, SecondFactor::Totp(&code), None).await;
        assert!(matches!(out, Ok(SecondFactorOutcome::Expired)), "{token}: {out:?}");
        let last = f.events.events().pop().unwrap();
        assert!(
            matches!(last.kind, EventKind::SecondFactorFailed { reason: FailureClass::PendingInvalid, .. }),
            "{last:?}"
        );
    }
    assert_eq!(stored(&f, id).await, before, "nothing was written");
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(is_authenticated(&out), "the real one still works: {out:?}");
}

#[tokio::test]
async fn a_pending_login_from_another_engine_key_is_rejected() {
    let f = fixture();
    let (_, secret) = f.enrolled("alice").await;
    let other = twofactor::Engine::builder(f.store.clone(), f.mailer.clone(), twofactor::KeyRing::ephemeral().unwrap())
        .clock(f.clock.clone())
        .policy(fast_policy().build().unwrap())
        .build()
        .unwrap();
    let LoginOutcome::SecondFactorRequired(p) = other.begin_login("alice", PASSWORD, None).await.unwrap() else {
        panic!("expected a pending login")
    };
    let out = f.engine.finish_login(p.token(), SecondFactor::Totp(&f.code(&secret)), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
}

#[test]
fn nist_preset_requires_2fa() {
    assert!(Policy::nist_aal2().requires_two_factor());
}

/// Stores an account under `name` exactly as given, as 0.1.0 could have (it neither
/// normalized names nor refused invisible characters), with password [`PASSWORD`].
async fn legacy_account(f: &Fixture, name: &str, id: u64) -> twofactor::UserId {
    let template = f.user(&format!("template-{id}"), Role::User).await;
    let id = twofactor::UserId::from(id);
    insert_raw_user(f, template, name, id).await;
    id
}

#[tokio::test]
async fn login_accepts_any_canonically_equivalent_spelling_of_the_name() {
    let f = fixture();
    let id = f.user("jos\u{E9}", Role::User).await; // NFC
    for typed in ["jos\u{E9}", "jose\u{301}"] {
        match f.engine.begin_login(typed, PASSWORD, None).await.unwrap() {
            LoginOutcome::Authenticated(a) => {
                assert_eq!((a.account, a.username.as_str()), (id, "jos\u{E9}"), "{typed:?}")
            }
            other => panic!("{typed:?}: {other:?}"),
        }
    }
    // A name 0.1.0 stored in NFD still logs in with the same keystrokes.
    let legacy = legacy_account(&f, "rene\u{301}", 2001).await;
    match f.engine.begin_login("rene\u{301}", PASSWORD, None).await.unwrap() {
        LoginOutcome::Authenticated(a) => assert_eq!(a.account, legacy),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_login_name_with_an_invisible_character_is_an_unknown_user() {
    let offload = common::hashwork::CountingOffload::new();
    let f = common::hashwork::fixture_counting(fast_policy().build().unwrap(), offload.clone());
    // Even where a 0.1.0 database holds such a name with the right password.
    for (i, name) in ["admin\u{200B}", "ad\u{2060}min", "ad\u{AD}min", "\u{202E}nimda"].into_iter().enumerate() {
        let id = legacy_account(&f, name, 3000 + i as u64).await;
        let before = offload.jobs();
        let out = f.engine.begin_login(name, PASSWORD, None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Denied), "{name:?}: {out:?}");
        assert_eq!(offload.jobs() - before, 1, "{name:?}: the unknown user's dummy verify, no more");
        let last = f.events.events().pop().unwrap();
        assert_eq!(
            last.kind,
            twofactor::events::EventKind::LoginFailed { reason: twofactor::events::FailureClass::UnknownUser },
            "{name:?}"
        );
        assert_eq!(last.account, None, "{name:?}: not attributed to the account");
        assert_eq!(stored(&f, id).await.0, 1, "{name:?}: the account's failure count is untouched");
    }
}
