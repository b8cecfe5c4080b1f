//! Accounts and passwords: creation, NIST SP 800-63B length rules, Argon2id at OWASP
//! strength by default, and re-hashing of weaker stored hashes at login.

mod common;
use common::*;
use twofactor::mail::MemoryMailer;
use twofactor::store::UserStore;
use twofactor::{Engine, Error, HashParams, InputError, KeyRing, LoginOutcome, NewAccount, Policy, Role};

#[test]
fn default_policy_hashes_passwords_at_owasp_strength() {
    let p = Policy::default();
    assert_eq!(p.password().hash, HashParams::new(19_456, 2, 1));
    assert_eq!(HashParams::OWASP, p.password().hash);
    assert!(!p.requires_two_factor());
    assert_eq!(p.backup_codes().count, 1);
    assert_eq!(p.backup_codes().lifetime, None);
}

#[test]
fn weaker_password_hashing_needs_the_danger_option() {
    let weak = HashParams::new(1024, 1, 1);
    assert!(Policy::builder().password_hash(weak).build().is_err());
    assert!(Policy::builder().danger_fast_hashing().password_hash(weak).build().is_ok());
}

#[tokio::test]
async fn creates_users_with_each_role() {
    let f = fixture();
    for (name, role) in [("u", Role::User), ("a", Role::Admin), ("s", Role::Support)] {
        let id = f.user(name, role).await;
        let view = f.engine.account(id).await.unwrap().unwrap();
        assert_eq!(
            (view.username.as_str(), view.role, view.two_factor),
            (name, role, twofactor::TwoFactorState::Disabled)
        );
        assert_eq!(view.email, email(name));
    }
}

#[tokio::test]
async fn stored_password_is_an_argon2id_phc_string() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let hash = stored_str(&f, id, "/password").await.expect("a password hash");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn username_must_be_unique() {
    let f = fixture();
    f.user("alice", Role::User).await;
    let again = f.engine.create_account(NewAccount::new("alice", "other@example.test", Role::User, PASSWORD)).await;
    assert!(matches!(again, Err(Error::UsernameTaken)), "{again:?}");
}

#[tokio::test]
async fn password_needs_eight_characters_counted_as_unicode_characters() {
    let f = fixture();
    let short = f.engine.create_account(NewAccount::new("a", "a@example.test", Role::User, "1234567")).await;
    assert!(matches!(short, Err(Error::InvalidInput(InputError::TooShort { min: 8, .. }))), "{short:?}");
    // Seven characters, fourteen bytes: still too short.
    let bytes = f.engine.create_account(NewAccount::new("b", "b@example.test", Role::User, "ééééééé")).await;
    assert!(matches!(bytes, Err(Error::InvalidInput(InputError::TooShort { .. }))), "{bytes:?}");
    // Eight characters with no composition at all is fine.
    f.engine.create_account(NewAccount::new("c", "c@example.test", Role::User, "ßßßßßßßß")).await.unwrap();
    f.engine.create_account(NewAccount::new("d", "d@example.test", Role::User, "password")).await.unwrap();
}

#[tokio::test]
async fn long_passphrases_are_accepted_and_never_truncated() {
    let f = fixture();
    let long: String = "correct horse battery staple ".repeat(8); // 232 characters
    f.engine.create_account(NewAccount::new("long", "l@example.test", Role::User, &long)).await.unwrap();
    assert!(matches!(f.engine.begin_login("long", &long, None).await.unwrap(), LoginOutcome::Authenticated(_)));
    // Differs only in the last character: a truncating hash would accept it.
    let mut almost = long.clone();
    almost.pop();
    almost.push('!');
    assert!(matches!(f.engine.begin_login("long", &almost, None).await.unwrap(), LoginOutcome::Denied));
    let too_long = "x".repeat(257);
    let r = f.engine.create_account(NewAccount::new("x", "x@example.test", Role::User, &too_long)).await;
    assert!(matches!(r, Err(Error::InvalidInput(InputError::TooLong { .. }))));
}

#[tokio::test]
async fn bad_usernames_and_emails_are_clear_errors() {
    let f = fixture();
    // `a,b@b.test` passed 0.1.0's check but no mail composer can address it.
    for (name, mail) in
        [("", "a@b.test"), (" pad", "a@b.test"), ("ok", "no-at-sign"), ("ok", "two@@b.test"), ("ok", "a,b@b.test")]
    {
        let r = f.engine.create_account(NewAccount::new(name, mail, Role::User, PASSWORD)).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{name:?} {mail:?}: {r:?}");
    }
    // Each part of the shape check, including what a quoted name could slip past the
    // mail composer: a space, a control character, an angle bracket, a second `@`.
    let shapeless = "must look like name@domain";
    let undeliverable = "is not a deliverable address";
    for (mail, reason) in [
        ("no-at-sign", shapeless),
        ("@b.test", shapeless),
        ("a@", shapeless),
        ("\"a@b\"@b.test", shapeless),
        ("\"a b\"@b.test", shapeless),
        ("\"a\u{7}\"@b.test", shapeless),
        ("\"a<\"@b.test", shapeless),
        ("\"a>\"@b.test", shapeless),
        ("a,b@b.test", undeliverable),
    ] {
        let r = f.engine.create_account(NewAccount::new("ok", mail, Role::User, PASSWORD)).await;
        let Err(Error::InvalidInput(InputError::Malformed { field: "email", reason: said, .. })) = r else {
            panic!("{mail:?}: {r:?}");
        };
        assert_eq!(said, reason, "{mail:?}");
    }
    let long = "n".repeat(65);
    let r = f.engine.create_account(NewAccount::new(&long, "a@b.test", Role::User, PASSWORD)).await;
    assert!(matches!(r, Err(Error::InvalidInput(InputError::TooLong { .. }))));
    assert!(f.store.is_empty(), "nothing was stored");
    let quoted = f.engine.create_account(NewAccount::new("quoted", "\"a.b\"@b.test", Role::User, PASSWORD)).await;
    assert!(quoted.is_ok(), "a quoted name without those is an address: {quoted:?}");
}

#[tokio::test]
async fn login_rehashes_a_password_stored_with_weaker_parameters() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let before = stored_str(&f, id, "/password").await.expect("a password hash");
    assert!(before.contains("m=8,t=1,p=1"));
    let stronger = Policy::builder().danger_fast_hashing().password_hash(HashParams::new(64, 2, 1)).build().unwrap();
    let engine = Engine::builder(f.store.clone(), MemoryMailer::new(), KeyRing::ephemeral().unwrap())
        .policy(stronger)
        .build()
        .unwrap();
    // A wrong password does not rehash.
    assert!(matches!(engine.begin_login("alice", "wrong password", None).await.unwrap(), LoginOutcome::Denied));
    assert_eq!(stored_str(&f, id, "/password").await.as_deref(), Some(before.as_str()));
    assert!(matches!(engine.begin_login("alice", PASSWORD, None).await.unwrap(), LoginOutcome::Authenticated(_)));
    let after = stored_str(&f, id, "/password").await.expect("a password hash");
    assert!(after.contains("m=64,t=2,p=1"), "{after}");
    assert!(matches!(engine.begin_login("alice", PASSWORD, None).await.unwrap(), LoginOutcome::Authenticated(_)));
}

/// `josé` with the precomposed `é` (NFC) and with `e` + U+0301 (NFD).
const NFC_JOSE: &str = "jos\u{E9}";
const NFD_JOSE: &str = "jose\u{301}";

/// Stores an account under `name` exactly as given, as 0.1.0 could have (it neither
/// normalized names nor refused invisible characters), with password [`PASSWORD`].
async fn legacy_account(f: &Fixture, name: &str, id: u64) -> twofactor::UserId {
    let template = f.user(&format!("template-{id}"), Role::User).await;
    let id = twofactor::UserId::from(id);
    insert_raw_user(f, template, name, id).await;
    id
}

#[tokio::test]
async fn invisible_look_alikes_of_a_name_are_refused_naming_the_code_point() {
    let f = fixture();
    f.user("admin", Role::User).await;
    for (name, code_point) in
        [("admin\u{200B}", 0x200B), ("ad\u{2060}min", 0x2060), ("ad\u{AD}min", 0xAD), ("\u{202E}nimda", 0x202E)]
    {
        let r = f.engine.create_account(NewAccount::new(name, "a@example.test", Role::User, PASSWORD)).await;
        match r {
            Err(Error::InvalidInput(e @ InputError::ForbiddenCharacter { field: "username", character, .. })) => {
                assert_eq!(u32::from(character), code_point, "{name:?}");
                let message = e.to_string();
                assert!(message.contains(&format!("(U+{code_point:04X})")), "{message}");
                assert!(message.contains("invisible or formatting character"), "{message}");
                assert!(!message.contains(character), "the message names the character, never hides it");
            }
            other => panic!("{name:?}: expected ForbiddenCharacter, got {other:?}"),
        }
    }
    assert_eq!(f.store.len(), 1, "only admin was stored");
}

#[tokio::test]
async fn a_username_with_a_colon_is_refused_so_no_account_is_stuck_unable_to_enroll() {
    // Under a policy that requires 2FA, a name the otpauth label cannot hold would leave
    // the account at EnrollmentRequired for ever.
    let f = fixture_with(fast_policy().require_two_factor(true).build().unwrap());
    for name in ["corp:alice", ":alice", "alice:"] {
        let r = f.engine.create_account(NewAccount::new(name, "a@example.test", Role::User, PASSWORD)).await;
        match r {
            Err(Error::InvalidInput(e @ InputError::Malformed { field: "username", .. })) => {
                assert!(e.to_string().contains("must not contain ':'"), "{e}");
            }
            other => panic!("{name:?}: expected Malformed, got {other:?}"),
        }
    }
    assert!(f.store.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn nfc_and_nfd_spellings_are_one_account() {
    for (first, second) in [(NFC_JOSE, NFD_JOSE), (NFD_JOSE, NFC_JOSE)] {
        let f = fixture();
        let id = f.engine.create_account(NewAccount::new(first, "j@example.test", Role::User, PASSWORD)).await.unwrap();
        assert_eq!(user_record(&f, id).await.login, NFC_JOSE, "stored in NFC, whatever was typed");
        let again = f.engine.create_account(NewAccount::new(second, "k@example.test", Role::User, PASSWORD)).await;
        assert!(matches!(again, Err(Error::UsernameTaken)), "{first:?} then {second:?}: {again:?}");
        for typed in [NFC_JOSE, NFD_JOSE] {
            let found = f.engine.account_by_username(typed).await.unwrap().map(|v| v.id);
            assert_eq!(found, Some(id), "looked up as {typed:?}");
        }
    }
}

#[tokio::test]
async fn usernames_stay_case_sensitive() {
    let f = fixture();
    let upper =
        f.engine.create_account(NewAccount::new("Alice", "a1@example.test", Role::User, PASSWORD)).await.unwrap();
    let lower =
        f.engine.create_account(NewAccount::new("alice", "a2@example.test", Role::User, PASSWORD)).await.unwrap();
    assert_ne!(upper, lower);
    assert_eq!(f.engine.account_by_username("Alice").await.unwrap().map(|v| v.id), Some(upper));
    assert_eq!(f.engine.account_by_username("ALICE").await.unwrap(), None);
}

#[tokio::test]
async fn account_by_username_never_matches_an_invisible_name_but_finds_a_0_1_0_spelling() {
    let f = fixture();
    let invisible = legacy_account(&f, "admin\u{200B}", 1001).await;
    let decomposed = legacy_account(&f, "rene\u{301}", 1002).await;
    assert!(f.store.find_by_id(invisible).await.unwrap().is_some());
    assert_eq!(
        f.engine.account_by_username("admin\u{200B}").await.unwrap(),
        None,
        "an invisible name names no account"
    );
    assert_eq!(
        f.engine.account_by_username("rene\u{301}").await.unwrap().map(|v| v.id),
        Some(decomposed),
        "a name 0.1.0 stored unnormalized is still found as typed"
    );
}

/// New ids are random and below 2^63 (positive in a signed 64-bit column): 64 of them,
/// where ids over the whole `u64` range would all fall below it once in 2^64 runs.
#[tokio::test]
async fn new_ids_are_distinct_and_below_two_to_the_63() {
    let f = fixture();
    let mut ids = std::collections::BTreeSet::new();
    for n in 0..64 {
        let id = f.user(&format!("user{n}"), Role::User).await;
        let number: u64 = id.to_string().parse().expect("a numeric id");
        assert!(number < 1 << 63, "{number}");
        ids.insert(number);
    }
    assert_eq!(ids.len(), 64);
}

/// What an administrator's view shows of an account as it goes from no 2FA to 2FA on.
#[tokio::test]
async fn the_account_view_counts_the_backup_codes_once_two_factor_is_on() {
    let f = fixture_with(fast_policy().backup_code_count(3).build().expect("policy"));
    let id = f.user("alice", Role::User).await;
    let view = f.engine.account(id).await.expect("view").expect("an account");
    assert_eq!((view.username.as_str(), view.backup_codes, view.locked), ("alice", 0, false));
    f.enroll(id).await;
    let view = f.engine.account(id).await.expect("view").expect("an account");
    assert_eq!(view.backup_codes, 3);
}
