//! The application-owned store of `examples/own_users.rs`: the conformance kit passes
//! on it, and the example's story runs.

#[path = "../examples/own_users.rs"]
#[allow(dead_code)]
mod own_users;

use own_users::{AppStore, app_database, sign_up};
use twofactor::testkit::{Conformance, SEEDED_USERS};
use twofactor::{Role, UserId, UserStore};

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
    assert_eq!(report.checks.len(), 9, "{report}");
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

/// The example's whole story runs (second-factor-only mode on the app's table).
#[test]
fn the_story_runs() {
    own_users::main().unwrap_or_else(|e| panic!("{e}"));
}
