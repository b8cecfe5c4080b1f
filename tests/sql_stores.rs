//! What the SQL stores promise beyond the conformance kit: migrations applied once and
//! safely in parallel, a fault changes nothing, corrupt rows are errors, the `u64`
//! columns are bit casts, and processes sharing one SQLite file lose no update.

mod store_support;

use std::sync::Arc;

use store_support::temp_db;
use twofactor::testkit::sample_account;
use twofactor::{Account, AccountId, SqliteStore, StoreError, Swap, UserStore};

/// Adds 1 to the account's failure count by read and compare-and-swap until it lands.
async fn increment<S: UserStore>(store: &S, id: AccountId) {
    loop {
        let current = store.find_by_id(id).await.expect("read").expect("exists");
        let mut next = current.record;
        next.throttle.failures += 1;
        if let Swap::Swapped { .. } = store.compare_and_swap(current.version, &next).await.expect("swap") {
            return;
        }
    }
}

fn counter(id: u64, name: &str) -> Account {
    let mut a = sample_account(AccountId(id), name);
    a.throttle.failures = 0;
    a
}

async fn schema_versions(pool: &sqlx::SqlitePool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM twofactor_schema_version ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("schema versions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_migrate_once() {
    let (_dir, path) = temp_db();
    let opens: Vec<_> = (0..8).map(|_| tokio::spawn(SqliteStore::open(path.clone()))).collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("task").expect("open"));
    }
    let again = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(schema_versions(again.pool()).await, vec![1, 2]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(again.pool()).await.unwrap();
    assert_eq!(mode, "wal");
}

/// A database at schema version 1 (as 0.1.0 left it: its migration and one locked,
/// enabled account written with its columns) opens under this version, migrates to
/// version 2 and keeps the account; the new counters start at zero.
#[tokio::test]
async fn a_version_1_database_migrates_and_keeps_its_accounts() {
    let (_dir, path) = temp_db();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(include_str!("../src/store/sql/migrations/sqlite/0001_accounts.sql")).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE twofactor_schema_version (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL); \
         INSERT INTO twofactor_schema_version VALUES (1, 0); \
         INSERT INTO twofactor_accounts (id, username, email, role, password_hash, security_stamp, version, \
           created_at, tf_state, totp_secret, totp_algorithm, totp_digits, totp_period, totp_last_used_step, \
           tf_enabled_at, throttle_failures, throttle_until, second_factor_locked, pending_marks) \
         VALUES (7, 'old', 'old@example.test', 'user', '$argon2id$x', 3, 12, 100, 'enabled', x'0102', 'SHA1', 6, \
           30, 59999, 200, 42, 900, 1, x'');",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteStore::open(&path).await.expect("a version 1 database opens");
    assert_eq!(schema_versions(store.pool()).await, vec![1, 2]);
    let found = store.find_by_username("old").await.unwrap().expect("the account survived");
    assert_eq!(found.version, 12);
    let a = found.record;
    assert_eq!((a.throttle.failures, a.throttle.until.map(|t| t.0)), (42, Some(900)));
    assert!(a.throttle.second_factor_locked, "a lock set by 0.1.0 stays");
    assert_eq!((a.throttle.second_factor_failures, a.retired_totp_step), (0, 0));
    let twofactor::TwoFactor::Enabled(enabled) = &a.two_factor else { panic!("2FA stays enabled") };
    assert_eq!(enabled.last_used_step, 59999);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    sqlx::query("INSERT INTO twofactor_schema_version (version, applied_at) VALUES (99, 0)")
        .execute(store.pool())
        .await
        .unwrap();
    let err = SqliteStore::open(&path).await.expect_err("a schema from a newer crate");
    assert!(matches!(&err, StoreError::Backend(m) if m.contains("version 99")), "{err}");
}

#[tokio::test]
async fn u64_values_are_stored_as_bit_cast_bigints() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let mut a = sample_account(AccountId(42), "casts");
    a.security_stamp = u64::MAX;
    store.insert(&a).await.unwrap();
    let (stamp, step): (i64, i64) =
        sqlx::query_as("SELECT security_stamp, totp_last_used_step FROM twofactor_accounts WHERE id = 42")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(stamp, -1);
    assert_eq!(step, (u64::MAX - 7) as i64);
    assert_eq!(store.find_by_id(AccountId(42)).await.unwrap().unwrap().record, a);
}

#[tokio::test]
async fn two_pools_on_one_file_see_each_others_swaps() {
    let (_dir, path) = temp_db();
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let account = sample_account(AccountId(7), "shared");
    a.insert(&account).await.unwrap();
    let seen = b.find_by_username("shared").await.unwrap().expect("b sees a's insert");
    assert_eq!(seen.version, 1);
    let mut changed = account.clone();
    changed.email = "new@example.test".to_owned();
    assert_eq!(b.compare_and_swap(1, &changed).await.unwrap(), Swap::Swapped { version: 2 });
    let seen = a.find_by_id(AccountId(7)).await.unwrap().unwrap();
    assert_eq!((seen.version, seen.record), (2, changed));
    assert_eq!(a.compare_and_swap(1, &account).await.unwrap(), Swap::Conflict);
    assert!(matches!(b.insert(&account).await, Err(StoreError::Duplicate)));
}

#[tokio::test]
async fn sqlite_fault_in_a_swap_changes_nothing() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let account = sample_account(AccountId(5), "faulty");
    store.insert(&account).await.unwrap();
    // The swap's last statement (inserting locations) fails after the guarded update
    // and the deletes have run: all of it must roll back.
    sqlx::raw_sql(
        "CREATE TRIGGER fail_locations BEFORE INSERT ON twofactor_locations BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let mut next = plain_email(&account);
    next.throttle.failures = 1;
    assert!(matches!(store.compare_and_swap(1, &next).await, Err(StoreError::Backend(_))));
    let other = sample_account(AccountId(6), "faulty-insert");
    assert!(matches!(store.insert(&other).await, Err(StoreError::Backend(_))));
    sqlx::raw_sql("DROP TRIGGER fail_locations").execute(store.pool()).await.unwrap();
    let stored = store.find_by_id(AccountId(5)).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.record), (1, account));
    assert!(store.find_by_id(AccountId(6)).await.unwrap().is_none(), "a failed insert left rows");
    assert!(store.find_by_username("faulty-insert").await.unwrap().is_none());
}

fn plain_email(a: &Account) -> Account {
    Account { email: "changed@example.test".to_owned(), ..a.clone() }
}

#[tokio::test]
async fn a_closed_pool_is_an_error() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let account = sample_account(AccountId(9), "closed");
    store.pool().close().await;
    assert!(matches!(store.insert(&account).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.find_by_id(AccountId(9)).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.compare_and_swap(1, &account).await, Err(StoreError::Backend(_))));
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let corruptions = [
        "UPDATE twofactor_accounts SET tf_state = 'bogus'",
        "UPDATE twofactor_accounts SET role = 'root'",
        "UPDATE twofactor_accounts SET totp_secret = NULL",
        "UPDATE twofactor_accounts SET totp_digits = 7",
        "UPDATE twofactor_accounts SET throttle_failures = -1",
        "UPDATE twofactor_accounts SET reset_by = NULL",
        "UPDATE twofactor_accounts SET email = x'00ff'",
        "UPDATE twofactor_locations SET token_hash = x'00'",
        "UPDATE twofactor_accounts SET pending_marks = x'00'",
        // One whole mark whose consumed flag is neither 0 nor 1.
        concat!(
            "UPDATE twofactor_accounts SET pending_marks = x'",
            "00000000000000000000000000000000",
            "0000000000000000",
            "00000000",
            "02'"
        ),
    ];
    for (i, corruption) in corruptions.iter().enumerate() {
        let id = AccountId(100 + i as u64);
        store.insert(&sample_account(id, &format!("corrupt-{i}"))).await.unwrap();
        let sql = format!(
            "{corruption} WHERE {} = {}",
            if corruption.contains("accounts") { "id" } else { "account_id" },
            id.0
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
        let found = store.find_by_id(id).await;
        assert!(matches!(found, Err(StoreError::Corrupt(_))), "{corruption}: {found:?}");
    }
}

const TASKS_PER_PROCESS: u32 = 4;
const INCREMENTS_PER_TASK: u32 = 50;
const COUNTER_ID: AccountId = AccountId(77);

async fn run_increments(store: Arc<SqliteStore>) {
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..INCREMENTS_PER_TASK {
                    increment(&*store, COUNTER_ID).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// Three OS processes (this test and two copies of it, started with
/// `TWOFACTOR_CHILD_DB` set, which then only do their share of the increments) swap one
/// record in one SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_sharing_one_file_lose_no_update() {
    if let Ok(path) = std::env::var("TWOFACTOR_CHILD_DB") {
        let store = Arc::new(SqliteStore::open(path).await.expect("open"));
        run_increments(store).await;
        return;
    }
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    store.insert(&counter(COUNTER_ID.0, "counter")).await.unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["processes_sharing_one_file_lose_no_update", "--exact", "--test-threads", "1", "--quiet"])
                .env("TWOFACTOR_CHILD_DB", &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn a child process")
        })
        .collect();
    run_increments(Arc::clone(&store)).await;
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "a child process failed: {status}");
    }
    let total = 3 * TASKS_PER_PROCESS * INCREMENTS_PER_TASK;
    let stored = store.find_by_id(COUNTER_ID).await.unwrap().unwrap();
    assert_eq!(stored.record.throttle.failures, total);
    assert_eq!(stored.version, 1 + u64::from(total));
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use twofactor::PostgresStore;

    async fn store() -> PostgresStore {
        PostgresStore::connect(&store_support::pg_schema_url().await).await.expect("connect")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_connects_migrate_once() {
        let url = store_support::pg_schema_url().await;
        let connects: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(&url).await })
            })
            .collect();
        for c in connects {
            c.await.expect("task").expect("connect");
        }
        let store = PostgresStore::connect(&url).await.unwrap();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM twofactor_schema_version").fetch_all(store.pool()).await.unwrap();
        assert_eq!(versions, vec![1, 2]);
    }

    #[tokio::test]
    async fn postgres_fault_in_a_swap_changes_nothing() {
        let store = store().await;
        let account = sample_account(AccountId(5), "faulty");
        store.insert(&account).await.unwrap();
        sqlx::raw_sql(
            "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$; \
             CREATE TRIGGER fail_locations BEFORE INSERT ON twofactor_locations FOR EACH ROW EXECUTE FUNCTION fail_insert();",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let next = plain_email(&account);
        assert!(matches!(store.compare_and_swap(1, &next).await, Err(StoreError::Backend(_))));
        let other = sample_account(AccountId(6), "faulty-insert");
        assert!(matches!(store.insert(&other).await, Err(StoreError::Backend(_))));
        sqlx::raw_sql("DROP TRIGGER fail_locations ON twofactor_locations").execute(store.pool()).await.unwrap();
        let stored = store.find_by_id(AccountId(5)).await.unwrap().unwrap();
        assert_eq!((stored.version, stored.record), (1, account));
        assert!(store.find_by_id(AccountId(6)).await.unwrap().is_none(), "a failed insert left rows");
    }

    #[tokio::test]
    async fn postgres_closed_pool_and_dropped_table_are_errors() {
        let store = store().await;
        let account = sample_account(AccountId(9), "closed");
        store.insert(&account).await.unwrap();
        sqlx::raw_sql("DROP TABLE twofactor_locations").execute(store.pool()).await.unwrap();
        assert!(matches!(store.compare_and_swap(1, &account).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.find_by_id(AccountId(9)).await, Err(StoreError::Backend(_))));
        store.pool().close().await;
        assert!(matches!(store.find_by_id(AccountId(9)).await, Err(StoreError::Backend(_))));
    }

    #[tokio::test]
    async fn postgres_corrupt_rows_are_errors() {
        let store = store().await;
        store.insert(&sample_account(AccountId(3), "corrupt")).await.unwrap();
        sqlx::query("UPDATE twofactor_accounts SET tf_state = 'bogus'").execute(store.pool()).await.unwrap();
        assert!(matches!(store.find_by_id(AccountId(3)).await, Err(StoreError::Corrupt(_))));
    }
}
