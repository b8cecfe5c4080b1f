//! The store conformance kit (`twofactor::testkit`) against every shipped store:
//! `MemoryStore`, `SqliteStore` on a file and in memory, and `PostgresStore`.

mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use store_support::temp_db;
use twofactor::testkit::{DEFAULT_TASKS, run_conformance};
use twofactor::{MemoryStore, SqliteStore, StoreError};

const CHECKS: usize = 9;

fn passed(report: Result<twofactor::testkit::Report, twofactor::testkit::Failure>) {
    let report = report.unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(report.checks.len(), CHECKS, "{report}");
    assert_eq!(report.tasks, DEFAULT_TASKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    passed(run_conformance(|| async { Ok::<_, StoreError>(MemoryStore::new()) }).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_conforms() {
    let (dir, _) = temp_db();
    let n = AtomicUsize::new(0);
    passed(
        run_conformance(|| {
            let path = dir.path().join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
            async move { SqliteStore::open(path).await }
        })
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_store_conforms() {
    passed(run_conformance(|| SqliteStore::connect("sqlite::memory:")).await);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    passed(
        run_conformance(|| async {
            let url = store_support::pg_schema_url().await;
            twofactor::PostgresStore::connect(&url).await
        })
        .await,
    );
}

/// The kit must catch a broken store: one whose swap ignores the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_a_store_without_compare() {
    #[derive(Clone, Default)]
    struct Blind(MemoryStore);
    impl twofactor::UserStore for Blind {
        async fn insert(&self, a: &twofactor::Account) -> Result<(), StoreError> {
            self.0.insert(a).await
        }
        async fn find_by_id(
            &self,
            id: twofactor::AccountId,
        ) -> Result<Option<twofactor::Versioned<twofactor::Account>>, StoreError> {
            self.0.find_by_id(id).await
        }
        async fn find_by_username(
            &self,
            name: &str,
        ) -> Result<Option<twofactor::Versioned<twofactor::Account>>, StoreError> {
            self.0.find_by_username(name).await
        }
        async fn compare_and_swap(&self, _: u64, a: &twofactor::Account) -> Result<twofactor::Swap, StoreError> {
            let Some(current) = self.0.find_by_id(a.id).await? else { return Ok(twofactor::Swap::Conflict) };
            self.0.compare_and_swap(current.version, a).await
        }
    }
    let failure = run_conformance(|| async { Ok::<_, StoreError>(Blind::default()) }).await.expect_err("must fail");
    assert_eq!(failure.check, "stale_version_conflicts", "{failure}");
}

/// The race check must catch a store that is right one call at a time but checks, then
/// writes: a pause between its username check and its write lets racing inserts all
/// pass the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_a_check_then_insert_store() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use twofactor::{Account, AccountId, Swap, UserStore, Versioned};

    /// Rows by id in a `MemoryStore` (under their id as name), usernames in a map of
    /// its own that `insert` checks and fills in two steps.
    #[derive(Clone, Default)]
    struct CheckThenInsert {
        rows: MemoryStore,
        names: Arc<Mutex<HashMap<String, AccountId>>>,
    }
    impl CheckThenInsert {
        fn named(&self, v: Option<Versioned<Account>>) -> Option<Versioned<Account>> {
            v.map(|mut v| {
                let names = self.names.lock().unwrap();
                v.record.username = names.iter().find(|(_, id)| **id == v.record.id).map(|(n, _)| n.clone()).unwrap();
                v
            })
        }
        fn row(a: &Account) -> Account {
            Account { username: a.id.to_string(), ..a.clone() }
        }
    }
    impl UserStore for CheckThenInsert {
        async fn insert(&self, a: &Account) -> Result<(), StoreError> {
            if self.names.lock().unwrap().contains_key(&a.username) {
                return Err(StoreError::Duplicate);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.rows.insert(&Self::row(a)).await?;
            self.names.lock().unwrap().insert(a.username.clone(), a.id);
            Ok(())
        }
        async fn find_by_id(&self, id: AccountId) -> Result<Option<Versioned<Account>>, StoreError> {
            Ok(self.named(self.rows.find_by_id(id).await?))
        }
        async fn find_by_username(&self, name: &str) -> Result<Option<Versioned<Account>>, StoreError> {
            let id = self.names.lock().unwrap().get(name).copied();
            match id {
                Some(id) => self.find_by_id(id).await,
                None => Ok(None),
            }
        }
        async fn compare_and_swap(&self, expected: u64, a: &Account) -> Result<Swap, StoreError> {
            self.rows.compare_and_swap(expected, &Self::row(a)).await
        }
    }
    let failure =
        run_conformance(|| async { Ok::<_, StoreError>(CheckThenInsert::default()) }).await.expect_err("must fail");
    assert_eq!(failure.check, "racing_inserts_one_winner", "{failure}");
}
