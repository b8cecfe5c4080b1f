//! Accounts and passwords: creation, NIST SP 800-63B length rules, Argon2id at OWASP
//! strength by default, and re-hashing of weaker stored hashes at login.

mod common;
use common::*;
use twofactor::{
    Engine, Error, HashParams, InputError, KeyRing, LoginOutcome, MemoryMailer, NewAccount, Policy, Role, UserStore,
};

#[test]
fn default_policy_hashes_passwords_at_owasp_strength() {
    let p = Policy::default();
    assert_eq!(p.password().hash, HashParams { m_cost: 19_456, t_cost: 2, p_cost: 1 });
    assert_eq!(HashParams::OWASP, p.password().hash);
    assert!(!p.requires_two_factor());
    assert_eq!(p.backup_codes().count, 1);
    assert_eq!(p.backup_codes().lifetime, None);
}

#[test]
fn weaker_password_hashing_needs_the_danger_option() {
    let weak = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
    assert!(Policy::builder().password_hash(weak).build().is_err());
    assert!(Policy::builder().danger_fast_hashing().password_hash(weak).build().is_ok());
}

#[tokio::test]
async fn creates_users_with_each_role() {
    let f = fixture();
    for (name, role) in [("u", Role::User), ("a", Role::Admin), ("s", Role::Support)] {
        let id = f.user(name, role).await;
        let view = f.engine.account(id).await.unwrap().unwrap();
        assert_eq!((view.username.as_str(), view.role, view.two_factor), (name, role, "disabled"));
        assert_eq!(view.email, email(name));
    }
}

#[tokio::test]
async fn stored_password_is_an_argon2id_phc_string() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let rec = f.store.find_by_id(id).await.unwrap().unwrap().record;
    assert!(rec.password_hash.starts_with("$argon2id$v=19$"), "{}", rec.password_hash);
    assert!(!rec.password_hash.contains(PASSWORD));
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
    for (name, mail) in [("", "a@b.test"), (" pad", "a@b.test"), ("ok", "no-at-sign"), ("ok", "two@@b.test")] {
        let r = f.engine.create_account(NewAccount::new(name, mail, Role::User, PASSWORD)).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{name:?} {mail:?}: {r:?}");
    }
    let long = "n".repeat(65);
    let r = f.engine.create_account(NewAccount::new(&long, "a@b.test", Role::User, PASSWORD)).await;
    assert!(matches!(r, Err(Error::InvalidInput(InputError::TooLong { .. }))));
    assert!(f.store.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn login_rehashes_a_password_stored_with_weaker_parameters() {
    let f = fixture();
    let id = f.user("alice", Role::User).await;
    let before = f.store.find_by_id(id).await.unwrap().unwrap().record.password_hash;
    assert!(before.contains("m=8,t=1,p=1"));
    let stronger = Policy::builder()
        .danger_fast_hashing()
        .password_hash(HashParams { m_cost: 64, t_cost: 2, p_cost: 1 })
        .build()
        .unwrap();
    let engine = Engine::builder(f.store.clone(), MemoryMailer::new(), KeyRing::ephemeral().unwrap())
        .policy(stronger)
        .build()
        .unwrap();
    // A wrong password does not rehash.
    assert!(matches!(engine.begin_login("alice", "wrong password", None).await.unwrap(), LoginOutcome::Denied));
    assert_eq!(f.store.find_by_id(id).await.unwrap().unwrap().record.password_hash, before);
    assert!(matches!(engine.begin_login("alice", PASSWORD, None).await.unwrap(), LoginOutcome::Authenticated(_)));
    let after = f.store.find_by_id(id).await.unwrap().unwrap().record.password_hash;
    assert!(after.contains("m=64,t=2,p=1"), "{after}");
    assert!(matches!(engine.begin_login("alice", PASSWORD, None).await.unwrap(), LoginOutcome::Authenticated(_)));
}
