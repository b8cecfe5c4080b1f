//! The application-owned store of `examples/own_users.rs`: the conformance kit passes
//! on it, and the example's story runs.

#[path = "../examples/own_users.rs"]
#[allow(dead_code)]
mod own_users;

use std::collections::BTreeMap;
use std::time::Duration;

use own_users::{AppStore, app_database, sign_up};
use twofactor::events::{EventKind, MemorySink};
use twofactor::mail::MemoryMailer;
use twofactor::store::UserStore;
use twofactor::testkit::{Conformance, SEEDED_USERS};
use twofactor::totp::TotpParams;
use twofactor::{
    Engine, KeyRing, LoginOutcome, ManualClock, Policy, Role, SecondFactor, SecondFactorOutcome, Timestamp,
    TwoFactorState, UserId,
};

/// The store conformance kit passes on the application's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_store_conforms() {
    let report = Conformance::new()
        .run_seeded(|| async {
            let pool = app_database().await?;
            let mut ids = Vec::new();
            for i in 0..SEEDED_USERS {
                ids.push(sign_up(&pool, &format!("user{i}@example.test"), "User", false).await?);
            }
            Ok::<_, sqlx::Error>((AppStore::new(pool), ids))
        })
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(report.checks.len(), 14, "{report}");
    assert_eq!(report.checks.last(), Some(&"racing_forget_and_swaps_one_winner"), "{report}");
}

/// Logins are the application's: by email, in any case; ids are its integers.
#[tokio::test]
async fn login_and_ids_are_the_applications() -> Result<(), Box<dyn std::error::Error>> {
    let pool = app_database().await?;
    let id = sign_up(&pool, "Bob@Example.test", "Bob", true).await?;
    let store = AppStore::new(pool);
    let found = store.find_by_login("bob@example.TEST").await?.ok_or("bob")?;
    assert_eq!((found.id, found.role, found.login.as_str()), (id, Role::Admin, "Bob@Example.test"));
    assert!(found.credentials.is_none(), "the crate has written nothing yet");
    assert!(store.find_by_id(UserId::new("not-a-number")?).await?.is_none());
    Ok(())
}

/// The key operations walk the application's table through its `scan`: in integer id
/// order across page boundaries (10 after 9, not after 1), skipping the users the crate
/// never wrote for; a new key re-seals every secret, the old key retires, and the
/// users log in under the new ring.
#[tokio::test]
async fn key_operations_walk_the_applications_table() -> Result<(), Box<dyn std::error::Error>> {
    let pool = app_database().await?;
    let store = AppStore::new(pool.clone());
    let clock = ManualClock::new(Timestamp(1_800_000_000));
    let engine = |keys: &KeyRing| {
        Engine::builder(store.clone(), MemoryMailer::new(), keys.clone())
            .clock(clock.clone())
            .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
            .build()
            .expect("engine")
    };
    let old_ring = KeyRing::ephemeral()?;
    let old = engine(&old_ring);
    let (mut written, mut enrolled) = (Vec::new(), Vec::new());
    for i in 0..12_u8 {
        let id = sign_up(&pool, &format!("user{i}@example.test"), "User", false).await?;
        match i % 4 {
            // Never seen by the crate: no document.
            3 => {}
            // A document without a secret.
            2 => {
                old.record_password_failure(id).await?;
                written.push(id);
            }
            _ => {
                let secret = [i + 1; 20];
                let uri = format!(
                    "otpauth://totp/Acme:user{i}?secret={}&issuer=Acme",
                    data_encoding::BASE32_NOPAD.encode(&secret)
                );
                old.import_enrollment(id, &uri).await?;
                let code = twofactor::totp::generate(&secret, &TotpParams::default(), clock_now(&clock));
                old.confirm_enrollment(id, code.expose()).await?;
                written.push(id);
                enrolled.push((id, secret));
            }
        }
    }
    let as_numbers = |ids: &[UserId]| ids.iter().map(|id| id.as_u64().expect("an integer id")).collect::<Vec<_>>();
    let (mut walked, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store.scan(after.as_deref(), 2).await?;
        assert!(page.users.len() <= 2);
        assert!(page.users.iter().all(|u| u.credentials.is_some()));
        walked.extend(page.users.iter().map(|u| u.id));
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(as_numbers(&walked), as_numbers(&written), "every written user once, in id order");
    assert!(pages >= 5, "{pages} pages of 2 for {} users", written.len());

    let usage = old.key_usage().await?;
    assert_eq!((usage.documents, usage.without_secret), (9, 3));
    assert_eq!(usage.by_key, BTreeMap::from([(1, 6)]));

    let new_ring = old_ring.with_new_key()?;
    let new = engine(&new_ring);
    let report = new.reseal(None, |_| {}).await?;
    assert_eq!((report.scanned, report.resealed, report.already_current, report.without_secret), (9, 6, 0, 3));
    assert_eq!(new.key_usage().await?.by_key, BTreeMap::from([(2, 6)]));
    let retired = new.retire_key(1).await?;
    assert_eq!(retired.ids(), [2]);

    clock.advance(Duration::from_secs(30));
    let newest = engine(&retired);
    for (id, secret) in &enrolled {
        let LoginOutcome::SecondFactorRequired(pending) = newest.begin_second_factor(*id, None).await? else {
            panic!("{id}: expected the second step");
        };
        let code = twofactor::totp::generate(secret, &TotpParams::default(), clock_now(&clock));
        let done = newest.finish_login(pending.token(), SecondFactor::Totp(code.expose()), None).await?;
        assert!(matches!(done, SecondFactorOutcome::Authenticated(_)), "{id}: {done:?}");
    }
    Ok(())
}

/// Forgetting a user on the application's table clears the crate's columns (the
/// document with the mail queued in it, its due time, the version back to 0) and
/// keeps the application's row: the queued backup code is never sent, the event names
/// the user and nothing else, and the user, now without a document, signs in without a
/// second factor and can enroll from scratch.
#[tokio::test]
async fn forgetting_a_user_clears_the_crates_columns_and_keeps_the_applications_row()
-> Result<(), Box<dyn std::error::Error>> {
    let pool = app_database().await?;
    let alice = sign_up(&pool, "alice@example.test", "Alice", false).await?;
    let bob = sign_up(&pool, "bob@example.test", "Bob", false).await?;
    let store = AppStore::new(pool.clone());
    let (mailer, events, clock) = (MemoryMailer::new(), MemorySink::new(), ManualClock::new(Timestamp(1_800_000_000)));
    let engine = Engine::builder(store.clone(), mailer.clone(), KeyRing::ephemeral()?)
        .clock(clock.clone())
        .policy(Policy::builder().danger_fast_hashing().build()?)
        .events(events.clone())
        .build()?;
    for id in [alice, bob] {
        let started = engine.start_enrollment(id).await?;
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes())?;
        let code = twofactor::totp::generate(&secret, &TotpParams::default(), clock_now(&clock));
        engine.confirm_enrollment(id, code.expose()).await?;
    }
    // Both setup codes wait in the documents.
    assert_eq!(store.mail_due(Timestamp(u64::MAX / 2), 10).await?.len(), 2);

    assert!(engine.forget_user(alice).await?);
    let row: (i64, Option<String>, Option<i64>, String) = sqlx::query_as(
        "SELECT twofactor_version, twofactor_document, twofactor_mail_due, display_name FROM users WHERE id = ?",
    )
    .bind(alice.as_u64().map(|n| n as i64))
    .fetch_one(&pool)
    .await?;
    assert_eq!(row, (0, None, None, "Alice".to_owned()), "the crate's columns cleared, the row kept");
    assert!(store.find_by_id(alice).await?.ok_or("alice's row")?.credentials.is_none());
    let forgotten: Vec<_> = events.events().into_iter().filter(|e| e.kind.name() == "user.forgotten").collect();
    assert_eq!(forgotten.len(), 1);
    assert_eq!((forgotten[0].account, &forgotten[0].kind), (Some(alice), &EventKind::UserForgotten));

    let report = engine.deliver_due(100).await?;
    assert_eq!(report.sent, 1, "only bob's code: {report:?}");
    let sent: Vec<String> = mailer.outbox().iter().map(|m| m.message.recipient().email.clone()).collect();
    assert_eq!(sent, ["bob@example.test"], "alice's queued code was forgotten with her document");

    // Without a document she has no second factor; she can enroll again from scratch.
    let LoginOutcome::Authenticated(_) = engine.begin_second_factor(alice, None).await? else {
        panic!("a user without a document signs in without a second factor");
    };
    assert_eq!(engine.account(alice).await?.ok_or("alice")?.two_factor, TwoFactorState::Disabled);
    engine.start_enrollment(alice).await?;
    let again = store.find_by_id(alice).await?.ok_or("alice's row")?.credentials.ok_or("a new document")?;
    assert_eq!(again.version, 1, "the version started over");
    // Bob is untouched.
    assert_eq!(engine.account(bob).await?.ok_or("bob")?.two_factor, TwoFactorState::Enabled);
    Ok(())
}

fn clock_now(clock: &ManualClock) -> u64 {
    twofactor::Clock::now(clock).0
}

/// The example's whole story runs (second-factor-only mode on the app's table).
#[test]
fn the_story_runs() {
    own_users::main().unwrap_or_else(|e| panic!("{e}"));
}
