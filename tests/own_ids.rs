//! The application owns its users and their ids: second-factor-only mode for a user the
//! crate keeps no password for, ids of every kind (numbers, long strings, UUIDs,
//! non-ASCII text) end to end, a credential document that holds none of the
//! application's identity data, and passwords imported from the system the
//! application moves from.

mod common;

use std::time::Duration;

use common::hashwork::{CountingOffload, fixture_counting};
use common::*;
use twofactor::events::{EventKind, Factor, FailureClass};
use twofactor::{AuthMethod, Clock, Error, LoginOutcome, Role, SecondFactor, SecondFactorOutcome, UserId};

/// The id of the user in second-factor-only mode: a UUID, as many applications use.
const UUID: &str = "7f3c9a2e-4b1d-4e8f-9c6a-2d5e8b1f0a37";

fn uuid() -> UserId {
    UserId::new(UUID).expect("a UUID is a user id")
}

/// Adds a user as the application does (no document, no password in the crate).
fn add(f: &Fixture, id: UserId, login: &str, role: Role) {
    f.store.add_user(id, login, &email(login), role).expect("added");
}

fn second_factor_pending(out: LoginOutcome) -> String {
    match out {
        LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
        other => panic!("expected a second factor, got {other:?}"),
    }
}

/// The `LoginFailed` reasons recorded after the first `skip` events.
fn login_failures(f: &Fixture, skip: usize) -> Vec<(Option<UserId>, FailureClass)> {
    f.events.events()[skip..]
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LoginFailed { reason } => Some((e.account, reason)),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------ second-factor-only mode

#[tokio::test]
async fn second_factor_only_before_and_after_enrollment() {
    let f = fixture();
    let id = uuid();
    add(&f, id, "sso-alice", Role::User);

    // The application checked the password (or its single sign-on); no 2FA yet.
    match f.engine.begin_second_factor(id, None).await.unwrap() {
        LoginOutcome::Authenticated(a) => {
            assert_eq!((a.account, a.username.as_str(), a.role), (id, "sso-alice", Role::User));
        }
        other => panic!("no 2FA enrolled yet: {other:?}"),
    }

    let secret = f.enroll(id).await;
    assert_eq!(f.mailer.outbox()[0].message.recipient().email, email("sso-alice"), "the setup code mail");
    let (_, doc) = stored(&f, id).await;
    assert_eq!(doc["second_factor"]["state"], "enabled", "{doc}");
    assert_eq!(doc.get("password"), None, "the crate keeps no password for this user: {doc}");

    let pending = second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), None).await.unwrap();
    match out {
        SecondFactorOutcome::Authenticated(a) => {
            assert_eq!((a.account, a.method), (id, AuthMethod::PasswordAndTotp));
        }
        other => panic!("the TOTP code logs in: {other:?}"),
    }
    assert!(
        f.events
            .events()
            .iter()
            .any(|e| e.account == Some(id) && e.kind == EventKind::LoginSucceeded { factor: Factor::Totp })
    );
}

#[tokio::test]
async fn second_factor_only_backup_code_works_once_and_is_mailed_again() {
    let f = fixture();
    let id = uuid();
    add(&f, id, "sso-bob", Role::User);
    f.enroll(id).await;
    let code = f.backup_code("sso-bob");

    let pending = second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    match f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap() {
        SecondFactorOutcome::Authenticated(a) => {
            assert_eq!((a.account, a.method), (id, AuthMethod::PasswordAndBackupCode));
            let mail = a.backup_code_delivery.as_ref().and_then(twofactor::mail::Delivery::queued).expect("queued");
            assert_eq!(f.deliver().await.delivery_of(mail), Some(&twofactor::mail::Delivery::Sent));
        }
        other => panic!("the backup code logs in: {other:?}"),
    }
    let last = f.mailer.outbox().last().unwrap().clone();
    assert_eq!(last.message.kind(), twofactor::mail::MessageKind::BackupCodeRotated);
    assert_eq!(last.message.recipient().email, email("sso-bob"));
    let rotated = f.backup_code("sso-bob");
    assert_ne!(rotated, code, "a new code was mailed");

    let pending = second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    let again = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(matches!(again, SecondFactorOutcome::Denied { .. }), "the used code is void: {again:?}");
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&rotated), None).await.unwrap();
    assert!(is_authenticated(&out), "the mailed replacement works: {out:?}");
}

#[tokio::test]
async fn second_factor_only_remembered_location_skips_the_code() {
    let f = fixture();
    let id = uuid();
    add(&f, id, "sso-carol", Role::User);
    let secret = f.enroll(id).await;

    let pending = second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), Some("Firefox on Linux")).await;
    let SecondFactorOutcome::Authenticated(auth) = out.unwrap() else { panic!("logged in") };
    let token = auth.remembered.expect("a remember token");
    f.clock.advance(Duration::from_secs(3600));

    match f.engine.begin_second_factor(id, Some(token.token())).await.unwrap() {
        LoginOutcome::Authenticated(a) => {
            assert_eq!((a.account, a.method), (id, AuthMethod::PasswordAndLocation));
        }
        other => panic!("the remembered location skips the code: {other:?}"),
    }
    let last = f.events.events().pop().unwrap();
    assert_eq!((last.account, last.kind), (Some(id), EventKind::LoginSucceeded { factor: Factor::Location }));
    assert_eq!(f.engine.remembered_locations(id).await.unwrap()[0].last_used_at, f.clock.now());
    // Without the token (or with someone else's), the code is due.
    second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    second_factor_pending(f.engine.begin_second_factor(id, Some("loc2.AAAA")).await.unwrap());
}

#[tokio::test]
async fn application_password_failures_throttle_but_never_lock_the_second_factor() {
    let f = fixture();
    let id = uuid();
    add(&f, id, "sso-dave", Role::User);
    let secret = f.enroll(id).await;
    let threshold = f.engine.policy().throttle().free_failures;
    let disable_after = f.engine.policy().throttle().disable_after;

    let before = f.events.events().len();
    for _ in 0..threshold {
        f.engine.record_password_failure(id).await.unwrap();
    }
    let t = throttle_of(&f, id).await;
    assert_eq!(t.failures, threshold);
    assert_eq!(t.until, Some(f.clock.now().plus(f.engine.policy().throttle().base_delay)), "{t:?}");
    let wrong: Vec<_> = login_failures(&f, before);
    assert_eq!(wrong, vec![(Some(id), FailureClass::WrongPassword); threshold as usize]);
    assert!(f.events.events()[before..].iter().any(|e| matches!(e.kind, EventKind::Throttled { .. })));
    f.deliver().await;
    assert_eq!(
        f.mailer.outbox().iter().filter(|m| m.message.kind() == twofactor::mail::MessageKind::Throttled).count(),
        1
    );

    let before = f.events.events().len();
    let out = f.engine.begin_second_factor(id, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "throttled: {out:?}");
    assert_eq!(login_failures(&f, before), [(Some(id), FailureClass::Throttled)], "the event says why");

    // Far more application-reported failures than lock a second factor, each past its
    // throttle window so it counts: the second factor stays usable.
    for _ in 0..disable_after + 10 {
        if let Some(until) = throttle_of(&f, id).await.until {
            f.clock.set(until);
        }
        f.engine.record_password_failure(id).await.unwrap();
    }
    let t = throttle_of(&f, id).await;
    assert_eq!(t.failures, threshold + disable_after + 10, "each one past its window counted");
    assert_eq!((t.second_factor_failures, t.second_factor_locked), (0, false), "{t:?}");
    let (_, doc) = stored(&f, id).await;
    assert!(doc.pointer("/throttle/locked").is_none_or(|l| l == false), "{doc}");
    assert!(!f.engine.account(id).await.unwrap().unwrap().locked);
    assert!(!f.events.names().contains(&"second_factor.locked"));

    f.clock.set(t.until.expect("throttled"));
    let pending = second_factor_pending(f.engine.begin_second_factor(id, None).await.unwrap());
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), None).await.unwrap();
    assert!(is_authenticated(&out), "after the window the owner gets in: {out:?}");
    assert_eq!(throttle_of(&f, id).await, Throttle::default(), "and the budget is clear");
}

#[tokio::test]
async fn a_user_without_a_password_in_the_crate_is_denied_at_begin_login_like_an_unknown_name() {
    let offload = CountingOffload::new();
    let f = fixture_counting(fast_policy().build().unwrap(), offload.clone());
    let fresh = uuid();
    add(&f, fresh, "sso-erin", Role::User);
    // And one the crate has a document for (enrolled in second-factor-only mode).
    let enrolled = UserId::new("0b8e4f7a-1c2d-4e3f-8a9b-5c6d7e8f9a0b").unwrap();
    add(&f, enrolled, "sso-frank", Role::User);
    f.enroll(enrolled).await;
    let enrolled_before = stored(&f, enrolled).await;

    let attempt = |name: &'static str, password: &'static str| {
        let (f, offload) = (&f, &offload);
        async move {
            let (events, jobs) = (f.events.events().len(), offload.jobs());
            let out = f.engine.begin_login(name, password, None).await.unwrap();
            let last = f.events.events()[events..].to_vec();
            (out, offload.jobs() - jobs, last)
        }
    };
    let (unknown, unknown_jobs, unknown_events) = attempt("nobody-at-all", PASSWORD).await;
    assert!(matches!(unknown, LoginOutcome::Denied));
    for (name, password) in [("sso-erin", PASSWORD), ("sso-erin", "anything else"), ("sso-frank", PASSWORD)] {
        let (out, jobs, events) = attempt(name, password).await;
        assert!(matches!(out, LoginOutcome::Denied), "{name}: {out:?}");
        assert_eq!(jobs, unknown_jobs, "{name}: the same hash work as an unknown name");
        assert_eq!(
            events.iter().map(|e| (e.account, e.kind.clone())).collect::<Vec<_>>(),
            unknown_events.iter().map(|e| (e.account, e.kind.clone())).collect::<Vec<_>>(),
            "{name}: the same events as an unknown name"
        );
    }
    assert_eq!(
        unknown_events.iter().map(|e| (e.account, e.kind.clone())).collect::<Vec<_>>(),
        [(None, EventKind::LoginFailed { reason: FailureClass::UnknownUser })]
    );
    // Nothing was written: no document for the fresh user, the other's unchanged.
    assert_eq!(user_record(&f, fresh).await.credentials, None, "version 0: no document");
    assert_eq!(stored(&f, enrolled).await, enrolled_before);
}

// ------------------------------------------------------------ the document and ids

/// Every object key in `value`, at any depth.
fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// Every string value in `value`, at any depth.
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Asserts that the document of `id` names none of the user's identity data.
async fn assert_no_identity(f: &Fixture, id: UserId, login: &str, mail: &str) {
    let rec = user_record(f, id).await;
    let json = rec.credentials.as_ref().expect("a document").document.as_json().to_owned();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut found = vec![];
    keys(&doc, &mut found);
    for key in ["login", "username", "email", "role"] {
        assert!(!found.iter().any(|k| k == key), "key {key:?} in the document: {json}");
    }
    for key in ["id", "user", "account"] {
        assert!(doc.get(key).is_none(), "the document names its user: {json}");
    }
    assert!(!json.contains(id.as_str()), "the id {id} is in the document: {json}");
    assert!(!json.contains(login), "the login {login:?} is in the document: {json}");
    assert!(!json.contains(mail), "the email {mail:?} is in the document: {json}");
    let mut values = vec![];
    strings(&doc, &mut values);
    for role in ["user", "admin", "support"] {
        assert!(!values.iter().any(|v| v == role), "a role {role:?} in the document: {json}");
    }
}

#[tokio::test]
async fn the_document_never_holds_the_login_email_or_role() {
    let f = fixture();
    // Created by the crate (create_account) and by the application (add_user).
    let created = f.user("zelda-created", Role::Admin).await;
    let added = UserId::new("auth0|5f7c8ec7c33c6c004bbafe82").unwrap();
    f.store.add_user(added, "zelda-added", "zelda.added@corp.example", Role::Support).unwrap();
    f.engine.change_password(added, PASSWORD).await.unwrap();
    for (id, login, mail) in
        [(created, "zelda-created", email("zelda-created")), (added, "zelda-added", "zelda.added@corp.example".into())]
    {
        assert_no_identity(&f, id, login, &mail).await;
        // Through the whole life of the credentials: wrong passwords, enrollment,
        // logins with a code, a remembered location and a backup code.
        let out = f.engine.begin_login(login, "not the password", None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Denied));
        let secret = f.enroll(id).await;
        assert_no_identity(&f, id, login, &mail).await;
        let pending = second_factor_pending(f.engine.begin_login(login, PASSWORD, None).await.unwrap());
        assert_no_identity(&f, id, login, &mail).await;
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), Some("laptop")).await;
        assert!(is_authenticated(&out.unwrap()));
        let code = f.mailer.last_code_for(&mail).expect("a code mail");
        let pending = second_factor_pending(f.engine.begin_login(login, PASSWORD, None).await.unwrap());
        let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
        assert!(is_authenticated(&out), "{out:?}");
        // Its replacement waits in the document, addressed to nobody: the address is
        // read when it is delivered.
        assert!(!no_entries(&stored(&f, id).await.1, "/outbox"), "the replacement is queued");
        assert_no_identity(&f, id, login, &mail).await;
        f.deliver().await;
        assert_eq!(f.mailer.outbox().last().map(|m| m.message.recipient().email.clone()), Some(mail.clone()));
        assert_no_identity(&f, id, login, &mail).await;
    }
}

/// Ids of every kind: the largest number, 64 bytes of ASCII, 64 bytes of two-byte
/// characters, a UUID, and non-ASCII text.
fn ids_of_every_kind() -> Vec<UserId> {
    let long = "auth0|".to_owned() + &"x9".repeat(29);
    assert_eq!(long.len(), 64);
    let wide = "ü".repeat(32);
    assert_eq!(wide.len(), 64);
    vec![
        UserId::from(u64::MAX),
        UserId::new(&long).unwrap(),
        UserId::new(&wide).unwrap(),
        UserId::new(UUID).unwrap(),
        UserId::new("üser-1").unwrap(),
    ]
}

#[tokio::test]
async fn ids_of_every_kind_work_end_to_end() {
    let f = fixture();
    let ids = ids_of_every_kind();
    assert_eq!(ids[0].as_str(), "18446744073709551615");
    for (i, &id) in ids.iter().enumerate() {
        let login = format!("user-{i}");
        add(&f, id, &login, Role::User);
        f.engine.change_password(id, PASSWORD).await.unwrap();
        assert_eq!(stored(&f, id).await.0, 1, "{id:?}: change_password created the document");
        match f.engine.begin_login(&login, PASSWORD, None).await.unwrap() {
            LoginOutcome::Authenticated(a) => assert_eq!(a.account, id),
            other => panic!("{id:?}: {other:?}"),
        }
        assert_eq!(f.engine.account(id).await.unwrap().map(|v| v.id), Some(id));
        assert_eq!(f.engine.account_by_username(&login).await.unwrap().map(|v| v.id), Some(id));

        let secret = f.enroll(id).await;
        let pending = second_factor_pending(f.engine.begin_login(&login, PASSWORD, None).await.unwrap());
        assert!(pending.len() <= 256, "{id:?}: a pending token of {} characters", pending.len());
        assert!(!pending.contains(id.as_str()), "{id:?}: the token shows the id");
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), Some("desk")).await.unwrap();
        let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{id:?}: {out:?}") };
        assert_eq!((auth.account, auth.method), (id, AuthMethod::PasswordAndTotp));
        let token = auth.remembered.expect("a remember token");
        match f.engine.begin_login(&login, PASSWORD, Some(token.token())).await.unwrap() {
            LoginOutcome::Authenticated(a) => assert_eq!((a.account, a.method), (id, AuthMethod::PasswordAndLocation)),
            other => panic!("{id:?}: {other:?}"),
        }
        f.clock.advance(Duration::from_secs(30));
    }
    // Each id's events are its own.
    for &id in &ids {
        let created = f.events.events().iter().filter(|e| e.account == Some(id)).count();
        assert!(created > 0, "{id:?}");
    }
}

#[tokio::test]
async fn a_secret_sealed_for_one_id_does_not_open_for_a_similar_one() {
    // Ids that differ only in their text (a number and its zero-padded or UUID-like
    // cousin) bind their sealed secrets apart.
    let f = fixture();
    let (a, b) = (UserId::from(42_u64), UserId::new("042").unwrap());
    add(&f, a, "num-a", Role::User);
    add(&f, b, "num-b", Role::User);
    for id in [a, b] {
        f.engine.change_password(id, PASSWORD).await.unwrap();
    }
    let secret_a = f.enroll(a).await;
    f.enroll(b).await;
    let sealed_a = stored(&f, a).await.1["second_factor"]["authenticators"][0]["secret"].clone();
    overwrite(&f, b, |doc| doc["second_factor"]["authenticators"][0]["secret"] = sealed_a).await;
    let pending = second_factor_pending(f.engine.begin_login("num-b", PASSWORD, None).await.unwrap());
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret_a)), None).await;
    assert!(matches!(out, Err(Error::Unseal)), "{out:?}");
}

// ------------------------------------------------------------ imported password hashes

/// A row of tests/vectors/imported_hashes.tsv: (tool, format, password, hash).
fn vector(tool: &str, format: &str, password: &str, hash_prefix: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/imported_hashes.tsv");
    let text = std::fs::read_to_string(path).expect("tests/vectors/imported_hashes.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|c| c.len() == 4 && c[0] == tool && c[1] == format && c[2] == password && c[3].starts_with(hash_prefix))
        .map(|c| c[3].to_owned())
        .unwrap_or_else(|| panic!("no {tool} {format} vector for {password:?} in {path}"))
}

#[tokio::test]
async fn imported_django_and_bcrypt_hashes_log_in_and_are_rehashed_to_argon2id() {
    let django = vector("django", "django-pbkdf2-sha256", PASSWORD, "pbkdf2_sha256$");
    let bcrypt = vector("bcrypt", "bcrypt", PASSWORD, "$2b$");
    let f = fixture();
    for (i, hash) in [django, bcrypt].into_iter().enumerate() {
        let id = UserId::new(&format!("imported-{i}")).unwrap();
        let login = format!("migrated-{i}");
        add(&f, id, &login, Role::User);
        let before = f.events.events().len();
        f.engine.import_password_hash(id, &hash).await.unwrap();
        let imported: Vec<_> = f.events.events()[before..].iter().map(|e| (e.account, e.kind.clone())).collect();
        assert_eq!(imported, [(Some(id), EventKind::PasswordImported)], "{hash}");
        assert_eq!(f.events.names()[before], "password.imported");
        assert_eq!(stored_str(&f, id, "/password").await.as_deref(), Some(hash.as_str()), "stored as imported");

        // A wrong password neither logs in nor re-hashes.
        let out = f.engine.begin_login(&login, "not the password", None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Denied), "{hash}: {out:?}");
        assert_eq!(stored_str(&f, id, "/password").await.as_deref(), Some(hash.as_str()));

        let out = f.engine.begin_login(&login, PASSWORD, None).await.unwrap();
        assert!(matches!(&out, LoginOutcome::Authenticated(a) if a.account == id), "{hash}: {out:?}");
        let rehashed = stored_str(&f, id, "/password").await.expect("a password");
        assert!(rehashed.starts_with("$argon2id$"), "{hash}: re-hashed to {rehashed}");
        assert_ne!(rehashed, hash);

        let out = f.engine.begin_login(&login, PASSWORD, None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Authenticated(_)), "{hash}: the password works after the re-hash: {out:?}");
        let out = f.engine.begin_login(&login, "not the password", None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Denied), "{hash}: a wrong one still does not: {out:?}");
        assert_eq!(stored_str(&f, id, "/password").await, Some(rehashed), "re-hashed once");
    }
}

/// A migration run twice must not put back a password the user changed since: an
/// import never replaces a password the crate keeps, and changes nothing then.
#[tokio::test]
async fn an_import_never_replaces_a_password_the_crate_keeps() {
    let f = fixture();
    let id = f.user("has-password", Role::User).await;
    let before = stored(&f, id).await;
    let bcrypt = vector("htpasswd", "bcrypt", "p@ss:w$rd with spaces", "$2y$");
    let r = f.engine.import_password_hash(id, &bcrypt).await;
    assert!(matches!(r, Err(Error::Misuse(twofactor::Refusal::PasswordAlreadySet))), "{r:?}");
    assert_eq!(stored(&f, id).await, before, "nothing changed");
    let out = f.engine.begin_login("has-password", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "the kept password still works: {out:?}");
    let out = f.engine.begin_login("has-password", "p@ss:w$rd with spaces", None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    // Imported once, then changed by the user: a second run of the import is refused.
    let fresh = uuid();
    add(&f, fresh, "migrated", Role::User);
    f.engine.import_password_hash(fresh, &bcrypt).await.unwrap();
    f.engine.change_password(fresh, "a brand new password").await.unwrap();
    assert!(f.engine.import_password_hash(fresh, &bcrypt).await.is_err(), "the old password is not put back");
    let out = f.engine.begin_login("migrated", "p@ss:w$rd with spaces", None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
}

#[tokio::test]
async fn a_junk_hash_is_invalid_input_and_changes_nothing() {
    let f = fixture();
    let fresh = uuid();
    add(&f, fresh, "junk-fresh", Role::User);
    let kept = f.user("junk-kept", Role::User).await;
    let kept_before = stored(&f, kept).await;
    let django = vector("django", "django-pbkdf2-sha256", PASSWORD, "pbkdf2_sha256$");
    let junk = [
        "".to_owned(),
        "not a hash".to_owned(),
        PASSWORD.to_owned(),
        "$2b$04$short".to_owned(),
        "pbkdf2_sha256$1000$salt".to_owned(),
        django.replacen("pbkdf2_sha256$1000$", "pbkdf2_sha256$x$", 1),
        django.replacen("pbkdf2_sha256", "pbkdf2_md5", 1),
        "$argon2id$v=19$m=8,t=1,p=1$bm90IGJhc2U2NA!!$AAAA".to_owned(),
        "x".repeat(4096),
    ];
    let events = f.events.events().len();
    for hash in &junk {
        for id in [fresh, kept] {
            let r = f.engine.import_password_hash(id, hash).await;
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{hash:?}: {r:?}");
            if let Err(e) = r {
                let shown = e.to_string();
                assert!(hash.len() < 8 || !shown.contains(hash.as_str()), "the error quotes the hash: {shown}");
            }
        }
    }
    assert_eq!(user_record(&f, fresh).await.credentials, None, "no document was written");
    assert_eq!(stored(&f, kept).await, kept_before, "the kept password is untouched");
    assert!(!f.events.names()[events..].contains(&"password.imported"));
    let out = f.engine.begin_login("junk-kept", PASSWORD, None).await.unwrap();
    assert!(matches!(out, LoginOutcome::Authenticated(_)), "{out:?}");
    let r = f.engine.import_password_hash(UserId::new("nobody").unwrap(), &django).await;
    assert!(matches!(r, Err(Error::NoSuchAccount)), "{r:?}");
}
