//! Nothing stored by 0.1.0 is lost: databases written by the released 0.1.0 code
//! (`tests/fixtures/v0_1_0`, see its README and `manifest.json`) open under this
//! version, migrate to schema 4, and every account keeps what the manifest records and
//! does what it could do before: passwords, TOTP (with its replay state), backup codes
//! (valid, void, expired), remembered locations (0.1.0 `loc1.` tokens), the second-factor
//! lock and throttle, the reset record, and the usernames as 0.1.0 stored them.
//!
//! - SQLite: `library.sqlite` (a copy), opened by `SqliteStore::open`; the old tables
//!   are gone, the schema versions are 1, 2, 3, 4; opening it again changes nothing; two
//!   stores opening the same copy at once migrate it once.
//! - PostgreSQL (feature `postgres`; `TWOFACTOR_TEST_DATABASE_URL` must be set, the test
//!   fails without it): `library.postgres.sql` restored into a fresh database, the same
//!   checks, and the same migrated rows as SQLite.
//! - The CLI example on `cli.db` made by the 0.1.0 CLI: the 0.1.0 commands and flags,
//!   with 0.1.0's exit statuses and lines.
//!
//! The fixtures are never opened in place: every test works on copies.

mod store_support;
mod v010_support;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use twofactor::mail::MemoryMailer;
use twofactor::store::{SqliteStore, UserStore};
use twofactor::{Engine, LoginOutcome, ManualClock, Timestamp, UserId};
use v010_support::library::{Library, check_logins, code_at, key_ring_from_file, policy, totp_of};
use v010_support::manifest::{Account, SchemaRow, fixture, manifest};
use v010_support::records::check_account;

/// A user row of schema 3: id, login, email, role, version, document.
type UserRow = (String, String, String, String, i64, Option<String>);

const USER_ROWS: &str = "SELECT id, login, email, role, version, document FROM twofactor_users";
const SCHEMA_ROWS: &str = "SELECT version, applied_at FROM twofactor_schema_version ORDER BY version";
const LIBRARY_ACCOUNTS: usize = 11;

fn wall_clock() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()).expect("i64")
}

/// Copies the fixture `name` into `dir` (the fixture itself is never opened).
fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(fixture(name), &to).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    to
}

/// The schema-version rows after migration: 0.1.0's row 1 kept as it was, rows 2 to 4
/// added by this open (one transaction, one time), at the wall-clock time.
#[track_caller]
fn check_schema_rows(rows: &[(i64, i64)], before: &[SchemaRow], opened_at: i64) {
    assert_eq!(before.len(), 1, "0.1.0 wrote schema version 1 only");
    let versions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(versions, vec![1, 2, 3, 4], "twofactor_schema_version holds 1, 2, 3, 4, once each");
    assert_eq!(rows[0], (before[0].version, before[0].applied_at), "0.1.0's row is kept");
    assert_eq!((rows[1].1, rows[2].1), (rows[3].1, rows[3].1), "2, 3 and 4 applied by one migration");
    assert!((opened_at - 5..=wall_clock() + 5).contains(&rows[2].1), "applied_at is now: {rows:?}");
}

/// Every stored record (identity, version, document) against the manifest, then every
/// account through the engine.
async fn check_library<S: UserStore + Clone + 'static>(store: S) {
    let m = manifest();
    let started = Instant::now();
    for a in &m.accounts {
        check_account(&store, a).await;
    }
    // zoë three times: each spelling, byte for byte, is its own user.
    let zoes: Vec<&Account> = m.accounts.iter().filter(|a| a.key.starts_with("zoe")).collect();
    assert_eq!(zoes.len(), 3);
    for (name, key) in [("zo\u{eb}", "zoe_nfc"), ("zoe\u{308}", "zoe_nfd"), ("zoe\u{301}", "zoe_acute_nfd")] {
        let found = store.find_by_login(name).await.expect("store").unwrap_or_else(|| panic!("{key} by login"));
        assert_eq!(found.id, UserId::from(m.account(key).id), "{key} is found by the name as typed");
    }
    eprintln!("records checked in {:?}", started.elapsed());
    let started = Instant::now();
    let lib = Library::new(store, m);
    check_logins(&lib).await;
    eprintln!("logins checked in {:?}", started.elapsed());
}

// ------------------------------------------------------------------------ SQLite

async fn sqlite_tables(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(pool)
        .await
        .expect("tables")
}

async fn sqlite_schema_rows(pool: &sqlx::SqlitePool) -> Vec<(i64, i64)> {
    sqlx::query_as(SCHEMA_ROWS).fetch_all(pool).await.expect("schema rows")
}

async fn sqlite_users(pool: &sqlx::SqlitePool) -> Vec<UserRow> {
    let mut rows: Vec<UserRow> = sqlx::query_as(USER_ROWS).fetch_all(pool).await.expect("user rows");
    rows.sort();
    rows
}

/// Everything in the file that a migration could change: the schema (tables, indexes),
/// the schema versions and the users.
async fn sqlite_snapshot(pool: &sqlx::SqlitePool) -> (Vec<(String, Option<String>)>, Vec<(i64, i64)>, Vec<UserRow>) {
    let schema = sqlx::query_as("SELECT name, sql FROM sqlite_master ORDER BY type, name")
        .fetch_all(pool)
        .await
        .expect("sqlite_master");
    (schema, sqlite_schema_rows(pool).await, sqlite_users(pool).await)
}

/// The copy as 0.1.0 left it, read-only: schema version 1 and its three tables.
async fn check_sqlite_is_0_1_0(path: &Path, rows: &[SchemaRow], accounts: usize) {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open the copy read-only");
    let tables = sqlite_tables(&pool).await;
    assert_eq!(
        tables,
        ["twofactor_accounts", "twofactor_backup_codes", "twofactor_locations", "twofactor_schema_version"],
        "the fixture is a 0.1.0 database"
    );
    let versions = sqlite_schema_rows(&pool).await;
    let want: Vec<(i64, i64)> = rows.iter().map(|r| (r.version, r.applied_at)).collect();
    assert_eq!(versions, want, "the fixture's schema rows are the manifest's");
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM twofactor_accounts").fetch_one(&pool).await.expect("count");
    assert_eq!(count as usize, accounts);
    pool.close().await;
}

/// After migration: only `twofactor_users` and the schema versions are left.
async fn check_sqlite_migrated(store: &SqliteStore, before: &[SchemaRow], opened_at: i64, accounts: usize) {
    let pool = store.pool();
    assert_eq!(sqlite_tables(pool).await, ["twofactor_schema_version", "twofactor_users"], "the 0.1.0 tables are gone");
    check_schema_rows(&sqlite_schema_rows(pool).await, before, opened_at);
    let users = sqlite_users(pool).await;
    assert_eq!(users.len(), accounts, "one user row per 0.1.0 account");
    assert!(users.iter().all(|u| u.4 > 0 && u.5.is_some()), "every user has a document");
}

/// A copy of `library.sqlite` migrated by one `SqliteStore::open`.
async fn migrated_library_copy(dir: &Path) -> (SqliteStore, i64) {
    let path = copy_fixture(dir, "library.sqlite");
    let opened_at = wall_clock();
    let store = SqliteStore::open(&path).await.expect("the 0.1.0 database opens and migrates");
    (store, opened_at)
}

/// The library accounts in SQLite: migrated on open, every record and every account
/// as the manifest says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_library_from_0_1_0_keeps_every_account() {
    let m = manifest();
    assert_eq!(m.format, 1);
    assert_eq!(m.accounts.len(), LIBRARY_ACCOUNTS);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = copy_fixture(dir.path(), "library.sqlite");
    check_sqlite_is_0_1_0(&path, &m.databases.schema_version_rows_sqlite, LIBRARY_ACCOUNTS).await;

    let opened_at = wall_clock();
    let started = Instant::now();
    let store = SqliteStore::open(&path).await.expect("the 0.1.0 database opens and migrates");
    eprintln!("SQLite migration: {:?}", started.elapsed());
    check_sqlite_migrated(&store, &m.databases.schema_version_rows_sqlite, opened_at, LIBRARY_ACCOUNTS).await;
    check_library(store).await;
}

/// Opening a migrated file again changes nothing: same schema, same version rows (no
/// new ones, same times), same users, byte for byte.
#[tokio::test]
async fn sqlite_reopening_a_migrated_library_changes_nothing() {
    let m = manifest();
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, opened_at) = migrated_library_copy(dir.path()).await;
    let first = sqlite_snapshot(store.pool()).await;
    store.pool().close().await;
    drop(store);

    let again = SqliteStore::open(dir.path().join("library.sqlite")).await.expect("reopen");
    let second = sqlite_snapshot(again.pool()).await;
    assert_eq!(first, second, "a second open changes nothing");
    check_sqlite_migrated(&again, &m.databases.schema_version_rows_sqlite, opened_at, LIBRARY_ACCOUNTS).await;
    for a in &m.accounts {
        check_account(&again, a).await;
    }
}

/// Two stores opening the same 0.1.0 file at once: both succeed, the file is
/// migrated once (one row per schema version), into the same rows as a lone open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_opens_of_a_0_1_0_library_migrate_once() {
    let m = manifest();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = copy_fixture(dir.path(), "library.sqlite");
    let opened_at = wall_clock();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let opens: Vec<_> = (0..2)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                SqliteStore::open(path).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("task").expect("both concurrent opens succeed"));
    }
    for store in &stores {
        check_sqlite_migrated(store, &m.databases.schema_version_rows_sqlite, opened_at, LIBRARY_ACCOUNTS).await;
    }
    let alone = tempfile::tempdir().expect("temp dir");
    let (lone, _) = migrated_library_copy(alone.path()).await;
    assert_eq!(
        sqlite_users(stores[0].pool()).await,
        sqlite_users(lone.pool()).await,
        "the same rows as a migration by one store"
    );
    for a in &m.accounts {
        check_account(&stores[1], a).await;
    }
}

/// zoë typed decomposed (`zoe` + U+0308) logged in under 0.1.0 with exactly those
/// keystrokes, and an administrator found her account by them. Both must still work:
/// her login is stored as she typed it, and the lookup promises to find a name 0.1.0
/// stored unnormalized. Her password must not count as a failure against the other
/// zoë (stored in NFC) either, and the NFC zoë typed in NFC stays herself.
#[tokio::test]
async fn zoe_nfd_logs_in_with_the_name_as_she_typed_it() {
    let m = manifest();
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = migrated_library_copy(dir.path()).await;
    let nfd = m.account("zoe_nfd");
    let nfc = m.account("zoe_nfc");
    assert_eq!(nfd.username.as_bytes(), b"zoe\xcc\x88");
    assert_eq!(nfc.username.as_bytes(), b"zo\xc3\xab");
    let lib = Library::new(store, manifest());
    lib.at(m.times.fixture_now);
    let engine = lib.engine(&nfd.policy);
    let mut problems = Vec::new();

    let found = engine.account_by_username(&nfd.username).await.expect("lookup").map(|v| v.id);
    if found != Some(UserId::from(nfd.id)) {
        problems.push(format!("account_by_username(\"zoe\\u{{308}}\") is {found:?}, not the NFD zoë {}", nfd.id_text));
    }
    let outcome = lib.login(nfd, &nfd.password, None).await;
    if !matches!(&outcome, LoginOutcome::Authenticated(a) if a.account == UserId::from(nfd.id)) {
        problems.push(format!("her own name and password answer {outcome:?}"));
    }
    let failures = v010_support::records::num(&lib.doc(nfc).await, "/throttle/failures");
    if failures != 0 {
        problems.push(format!("the NFC zoë {} was charged {failures} failure(s) for it", nfc.id_text));
    }
    let outcome = lib.login(nfc, &nfc.password, None).await;
    if !matches!(&outcome, LoginOutcome::Authenticated(a) if a.account == UserId::from(nfc.id)) {
        problems.push(format!("the NFC zoë with her name and password answers {outcome:?}"));
    }
    assert!(problems.is_empty(), "zoë (NFD, stored by 0.1.0 as typed): {}", problems.join("; "));
}

/// 0.1.0 kept no time of an authenticator's last use: a migrated one is listed as
/// never used (not as used in 1970) until it logs in.
#[tokio::test]
async fn a_migrated_authenticator_has_no_last_use_until_it_logs_in() {
    let m = manifest();
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = migrated_library_copy(dir.path()).await;
    let lib = Library::new(store, manifest());
    lib.at(m.times.fixture_now);
    let enabled: Vec<_> = m.accounts.iter().filter(|a| a.two_factor.state == "enabled").collect();
    assert!(!enabled.is_empty(), "the library has accounts with 2FA on");
    for a in enabled {
        let listed = lib.engine(&a.policy).authenticators(UserId::from(a.id)).await.expect("list");
        assert_eq!(listed.len(), 1, "{}", a.key);
        assert_eq!(listed[0].last_used_at, None, "{}", a.key);
    }
}

/// Paging through the old rows (500 accounts a page) and the ids at the edges of the
/// `BIGINT` bit cast: a copy of the library with 1189 more accounts spread over the
/// whole id range, bob at `i64::MIN` (id 2^63), dave at `i64::MAX` (2^63 - 1) and frank
/// at -1 (`u64::MAX`). Every account comes across, the library ones with their child
/// rows (backup codes, locations) wherever their page boundaries fall.
#[tokio::test]
async fn sqlite_migration_pages_through_many_accounts_and_edge_ids() {
    let m = manifest();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = copy_fixture(dir.path(), "library.sqlite");
    let fillers = 1189_i64;
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("open the copy");
        let edges = [("bob", i64::MIN), ("dave", i64::MAX), ("frank", -1)];
        for (name, id) in edges {
            let done = sqlx::query("UPDATE twofactor_accounts SET id = $1 WHERE username = $2")
                .bind(id)
                .bind(name)
                .execute(&pool)
                .await
                .expect("move an id to the edge");
            assert_eq!(done.rows_affected(), 1);
        }
        // Fillers: copies of bob's row at ids (k - 594) * 1.5e16, k = 0..=1188.
        let done = sqlx::query(
            "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < $1 - 1) \
             INSERT INTO twofactor_accounts (id, username, email, role, password_hash, security_stamp, version, \
             created_at, tf_state, throttle_failures, second_factor_locked, pending_marks) \
             SELECT (k - 594) * 15000000000000000, 'filler' || k, 'filler' || k || '@example.test', 'user', \
             password_hash, security_stamp, 1, created_at, 'disabled', 0, FALSE, X'' \
             FROM n, twofactor_accounts WHERE username = 'bob'",
        )
        .bind(fillers)
        .execute(&pool)
        .await
        .expect("filler accounts");
        assert_eq!(done.rows_affected() as i64, fillers);
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.expect("migrate");
    let users = sqlite_users(store.pool()).await;
    assert_eq!(users.len() as i64, LIBRARY_ACCOUNTS as i64 + fillers, "every account came across");
    for a in &m.accounts {
        let moved = match a.key.as_str() {
            "bob" => Some(1_u64 << 63),
            "dave" => Some((1_u64 << 63) - 1),
            "frank" => Some(u64::MAX),
            _ => None,
        };
        match moved {
            None => check_account(&store, a).await,
            Some(id) => {
                let (user, version, doc) = v010_support::records::stored(&store, UserId::from(id)).await;
                assert_eq!(user.id.as_u64(), Some(id));
                assert_eq!(user.login, a.username, "{}", a.key);
                assert_eq!(version, a.stored.version);
                v010_support::records::check_document(&a.key, &a.stored, &doc);
            }
        }
    }
    let bob = m.account("bob");
    for k in [0_i64, 499, 500, 594, 1000, fillers - 1] {
        let id = UserId::from(((k - 594) * 15_000_000_000_000_000) as u64);
        let (user, version, doc) = v010_support::records::stored(&store, id).await;
        assert_eq!((user.login.as_str(), version), (format!("filler{k}").as_str(), 1));
        assert_eq!(v010_support::records::text(&doc, "/password"), bob.stored.password_hash);
    }
}

// -------------------------------------------------------------------- PostgreSQL

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::Connection as _;
    use twofactor::store::PostgresStore;

    use super::*;

    /// A fresh database on the test server, named `tf_v010_…`.
    struct TempDatabase {
        server_url: String,
        name: String,
        url: String,
    }

    impl TempDatabase {
        async fn create() -> TempDatabase {
            let server_url = store_support::pg_url();
            let name = store_support::unique("tf_v010");
            let mut admin =
                sqlx::PgConnection::connect(&server_url).await.expect("connect to TWOFACTOR_TEST_DATABASE_URL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("CREATE DATABASE");
            admin.close().await.expect("close");
            let url = with_database(&server_url, &name);
            TempDatabase { server_url, name, url }
        }

        async fn drop_it(self) {
            let mut admin = sqlx::PgConnection::connect(&self.server_url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut admin)
                .await
                .expect("DROP DATABASE");
            admin.close().await.expect("close");
        }
    }

    /// `postgres://…/DB?query` with the database replaced by `name`.
    fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let authority_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[authority_end..].find('/') {
            Some(slash) => &base[..authority_end + slash],
            None => base,
        };
        match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        }
    }

    /// Runs a plain `pg_dump` file as psql would: SQL through `raw_sql`, each
    /// `COPY … FROM stdin;` block through the COPY protocol, psql meta-commands
    /// (`\connect`, `\restrict`, …) skipped.
    async fn restore(url: &str, dump: &str) {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to the new database");
        let mut sql = String::new();
        let mut lines = dump.lines();
        let mut copied = 0;
        while let Some(line) = lines.next() {
            if line.starts_with("COPY ") && line.ends_with("FROM stdin;") {
                run(&mut conn, &mut sql).await;
                let mut data = String::new();
                for row in lines.by_ref() {
                    if row == "\\." {
                        break;
                    }
                    data.push_str(row);
                    data.push('\n');
                }
                let mut copy = conn.copy_in_raw(line).await.expect("COPY FROM STDIN");
                copy.send(data.into_bytes()).await.expect("COPY data");
                copied += copy.finish().await.expect("COPY finish");
            } else if line.starts_with('\\') {
                // A psql meta-command: nothing for the server.
            } else {
                sql.push_str(line);
                sql.push('\n');
            }
        }
        run(&mut conn, &mut sql).await;
        assert!(copied > 0, "the dump holds rows");
        conn.close().await.expect("close");
    }

    async fn run(conn: &mut sqlx::PgConnection, sql: &mut String) {
        if !sql.trim().is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(std::mem::take(sql))).execute(&mut *conn).await.expect("dump SQL");
        }
        sql.clear();
    }

    async fn tables(pool: &sqlx::PgPool) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .expect("tables")
    }

    async fn schema_rows(pool: &sqlx::PgPool) -> Vec<(i64, i64)> {
        sqlx::query_as(SCHEMA_ROWS).fetch_all(pool).await.expect("schema rows")
    }

    async fn users(pool: &sqlx::PgPool) -> Vec<UserRow> {
        let mut rows: Vec<UserRow> = sqlx::query_as(USER_ROWS).fetch_all(pool).await.expect("user rows");
        rows.sort();
        rows
    }

    /// The library accounts in PostgreSQL: the dump restored into a fresh database,
    /// migrated by two stores connecting at once, and checked like SQLite's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_library_from_0_1_0_keeps_every_account() {
        let db = TempDatabase::create().await;
        let url = db.url.clone();
        let checks = tokio::spawn(async move { postgres_checks(&url).await });
        let result = checks.await;
        db.drop_it().await;
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn postgres_checks(url: &str) {
        let m = manifest();
        assert!(m.databases.identical_records);
        let dump = std::fs::read_to_string(fixture("library.postgres.sql")).expect("read the dump");
        let started = Instant::now();
        restore(url, &dump).await;
        eprintln!("PostgreSQL restore: {:?}", started.elapsed());

        // As 0.1.0 left it.
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        assert_eq!(
            tables(&pool).await,
            ["twofactor_accounts", "twofactor_backup_codes", "twofactor_locations", "twofactor_schema_version"]
        );
        let before = &m.databases.schema_version_rows_postgres;
        let want: Vec<(i64, i64)> = before.iter().map(|r| (r.version, r.applied_at)).collect();
        assert_eq!(schema_rows(&pool).await, want);
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM twofactor_accounts").fetch_one(&pool).await.expect("count");
        assert_eq!(count as usize, LIBRARY_ACCOUNTS);
        pool.close().await;

        // Two stores connect at once: both succeed, one migrates.
        let opened_at = wall_clock();
        let started = Instant::now();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let connects: Vec<_> = (0..2)
            .map(|_| {
                let (url, barrier) = (url.to_owned(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    PostgresStore::connect(&url).await
                })
            })
            .collect();
        let mut stores = Vec::new();
        for c in connects {
            stores.push(c.await.expect("task").expect("both concurrent connects succeed"));
        }
        eprintln!("PostgreSQL migration (two concurrent connects): {:?}", started.elapsed());
        let store = stores.pop().expect("a store");
        let pool = store.pool();
        assert_eq!(tables(pool).await, ["twofactor_schema_version", "twofactor_users"], "the 0.1.0 tables are gone");
        check_schema_rows(&schema_rows(pool).await, before, opened_at);
        let migrated = users(pool).await;
        assert_eq!(migrated.len(), LIBRARY_ACCOUNTS);

        // The same records as 0.1.0's SQLite file, so the same rows after migration.
        let dir = tempfile::tempdir().expect("temp dir");
        let (sqlite, _) = migrated_library_copy(dir.path()).await;
        assert_eq!(migrated, sqlite_users(sqlite.pool()).await, "PostgreSQL and SQLite migrate to the same rows");

        // Connecting again changes nothing.
        let versions = schema_rows(pool).await;
        let again = PostgresStore::connect(url).await.expect("reconnect");
        assert_eq!(schema_rows(again.pool()).await, versions, "no new schema rows");
        assert_eq!(users(again.pool()).await, migrated, "no changed rows");
        again.pool().close().await;
        for s in stores {
            s.pool().close().await;
        }

        check_library(store.clone()).await;
        store.pool().close().await;
    }

    #[test]
    fn database_urls_are_rewritten() {
        assert_eq!(with_database("postgres://u@h:5/db", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5/db?sslmode=off", "x"), "postgres://u@h:5/x?sslmode=off");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}

// --------------------------------------------------------------------------- CLI

/// The `cli` example, built from the current sources with this test's features and
/// profile into this test's target folder (cargo releases its lock while tests run).
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/PROFILE/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let bin = profile_dir.join("examples").join(format!("cli{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let features: Vec<&str> = [
            ("sqlite", cfg!(feature = "sqlite")),
            ("postgres", cfg!(feature = "postgres")),
            ("smtp", cfg!(feature = "smtp")),
            ("tokio", cfg!(feature = "tokio")),
            ("tracing", cfg!(feature = "tracing")),
            ("serde", cfg!(feature = "serde")),
            ("testkit", cfg!(feature = "testkit")),
            ("browser-tests", cfg!(feature = "browser-tests")),
        ]
        .into_iter()
        .filter_map(|(f, on)| on.then_some(f))
        .collect();
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--example", "cli", "--no-default-features", "--features"])
            .arg(features.join(","))
            .arg("--target-dir")
            .arg(target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
        let status = cmd.status().expect("run cargo build --example cli");
        assert!(status.success(), "cargo build --example cli failed");
    }
    assert!(bin.exists(), "the cli example is not built at {}: run `cargo build --example cli`", bin.display());
    bin
}

/// One invocation: exit status, stdout, stderr.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Cli {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Cli {
    /// `cli --db DIR/cli.db --outbox DIR/outbox ARGS` at `now`, `stdin` fed.
    fn run(&self, args: &[&str], stdin: &str, now: u64) -> Run {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let db = self.dir.path().join("cli.db");
        let outbox = self.dir.path().join("outbox");
        let mut child = Command::new(&self.bin)
            .arg("--db")
            .arg(&db)
            .arg("--outbox")
            .arg(&outbox)
            .args(args)
            .env("TWOFACTOR_CLI_NOW", now.to_string())
            .env_remove("TWOFACTOR_CLI_SMTP_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the cli");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        Run {
            code: out.status.code().expect("exited normally"),
            stdout: String::from_utf8(out.stdout).expect("utf-8"),
            stderr: String::from_utf8(out.stderr).expect("utf-8"),
        }
    }

    /// Succeeds with exactly these stdout lines and nothing on stderr.
    #[track_caller]
    fn ok(&self, args: &[&str], stdin: &str, now: u64, lines: &[&str]) -> Run {
        let run = self.run(args, stdin, now);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{args:?}: {run:?}");
        let got: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(got, lines, "{args:?}");
        run
    }

    /// Refused (exit 1) with exactly this stderr line and nothing on stdout.
    #[track_caller]
    fn refused(&self, args: &[&str], stdin: &str, now: u64, line: &str) {
        let run = self.run(args, stdin, now);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{args:?}: {run:?}");
        assert_eq!(run.stderr, format!("{line}\n"), "{args:?}");
    }

    fn backup_codes_mailed(&self) -> Vec<String> {
        let dir = self.dir.path().join("outbox");
        let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
            Err(_) => return Vec::new(),
        };
        names.sort();
        names
            .iter()
            .flat_map(|p| {
                let mail = std::fs::read_to_string(p).expect("read mail");
                mail.lines()
                    .filter(|l| l.len() == 19 && twofactor::BackupCode::parse(l).is_ok())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The 0.1.0 CLI's database, used by this version's CLI with 0.1.0's commands and
/// flags: the same exit statuses and lines as 0.1.0 printed (its `login` printed
/// "logged in as NAME (HOW)", "; a new backup code was mailed" after a backup code,
/// and "remember-token: TOKEN"; refusals are one "refused: …" line, exit 1).
#[tokio::test]
async fn cli_keeps_working_on_a_0_1_0_cli_database() {
    let m = manifest();
    let c = &m.cli;
    let alice = c.account("alice");
    let bob = c.account("bob");
    let now = c.times.fixture_now;
    assert!(c.times.login_at < now && c.times.confirmed_at < now);

    // The records, on a copy of their own (the CLI below migrates its copy itself).
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = copy_fixture(dir.path(), &c.database);
        check_sqlite_is_0_1_0(&path, &c.schema_version_rows, c.accounts.len()).await;
        let opened_at = wall_clock();
        let store = SqliteStore::open(&path).await.expect("open");
        check_sqlite_migrated(&store, &c.schema_version_rows, opened_at, c.accounts.len()).await;
        for a in &c.accounts {
            check_account(&store, a).await;
        }
        // And with the CLI's key and policy, alice's sealed secret opens.
        let keys = key_ring_from_file(&c.key_file, c.app_key.id, &c.app_key.hex);
        let clock = ManualClock::new(Timestamp(now));
        let engine = Engine::builder(store.clone(), MemoryMailer::new(), keys)
            .clock(clock)
            .policy(policy("default"))
            .build()
            .expect("engine");
        assert!(matches!(
            engine.begin_login(&alice.username, &alice.password, Some(&alice.locations[0].token)).await,
            Ok(LoginOutcome::Authenticated(_))
        ));
        store.pool().close().await;
    }

    let started = Instant::now();
    let cli = Cli { bin: cli_binary(), dir: tempfile::tempdir().expect("temp dir") };
    eprintln!("cli example built in {:?}", started.elapsed());
    let started = Instant::now();
    copy_fixture(cli.dir.path(), &c.database);
    copy_fixture(cli.dir.path(), &c.key_file);
    let (secret, params) = totp_of(
        alice.two_factor.secret_base32.as_deref().expect("secret"),
        alice.two_factor.params.as_ref().expect("params"),
    );
    let pw = format!("{}\n", alice.password);
    let bob_pw = format!("{}\n", bob.password);
    let device = alice.locations[0].token.as_str();
    assert!(device.starts_with("loc1."));
    let second_factor = "refused: alice needs a second factor: pass --code CODE or --backup-code CODE";
    let wrong_code = "refused: wrong code (4 attempts left on this login)";

    // The first invocation migrates the file. The password alone is not enough.
    cli.refused(&["login", "alice"], &pw, now, second_factor);
    // A wrong password.
    cli.refused(
        &["login", "alice"],
        "not alice's password\n",
        now,
        "refused: wrong username or password, or too many failed attempts",
    );
    // The location 0.1.0 remembered (`login alice --code CODE --remember`) skips the code.
    cli.ok(
        &["login", "alice", "--device", device],
        &pw,
        now,
        &["logged in as alice (password from a remembered location)"],
    );
    // The step 0.1.0's login used stays used.
    let last = alice.stored.two_factor.last_used_step.expect("last used step");
    let period = u64::from(params.period);
    let replay = code_at(&secret, &params, last * period);
    cli.refused(&["login", "alice", "--code", &replay], &pw, (last + 1) * period, wrong_code);
    // A fresh code works once.
    let code = code_at(&secret, &params, now);
    cli.ok(&["login", "alice", "--code", &code], &pw, now, &["logged in as alice (password and authenticator code)"]);
    cli.refused(&["login", "alice", "--code", &code], &pw, now, wrong_code);
    // The backup code 0.1.0 mailed works once; its replacement is mailed and works.
    let backup = &alice.backup_codes[0].code;
    cli.ok(
        &["login", "alice", "--backup-code", backup],
        &pw,
        now,
        &["logged in as alice (password and backup code); a new backup code was mailed"],
    );
    cli.refused(&["login", "alice", "--backup-code", backup], &pw, now, wrong_code);
    let mailed = cli.backup_codes_mailed();
    assert_eq!(mailed.len(), 1, "one replacement code mailed");
    assert_ne!(&mailed[0], backup);
    cli.ok(
        &["login", "alice", "--backup-code", &mailed[0]],
        &pw,
        now,
        &["logged in as alice (password and backup code); a new backup code was mailed"],
    );
    // bob: password only.
    cli.ok(&["login", "bob"], &bob_pw, now, &["logged in as bob (password)"]);
    cli.refused(
        &["login", "bob"],
        "not bob's password\n",
        now,
        "refused: wrong username or password, or too many failed attempts",
    );
    // bob sets up 2FA with the 0.1.0 commands; alice's location is not his.
    let enroll = cli.run(&["enroll", "bob"], "", now);
    assert_eq!(enroll.code, 0, "{enroll:?}");
    let uri = enroll.stdout.lines().next().expect("the otpauth URI line");
    let bob_totp = twofactor::otpauth::parse_otpauth_uri(uri).expect("an otpauth URI");
    let confirm = generate(&bob_totp, now);
    cli.ok(
        &["confirm", "bob", &confirm],
        "",
        now,
        &["two-factor authentication is on for bob; the backup code was mailed"],
    );
    cli.refused(
        &["login", "bob", "--device", device],
        &bob_pw,
        now + 30,
        "refused: bob needs a second factor: pass --code CODE or --backup-code CODE",
    );
    // A new remembered location: the lines 0.1.0 printed, with a current token.
    let later = now + 30;
    let run = cli.run(&["login", "alice", "--code", &code_at(&secret, &params, later), "--remember"], &pw, later);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert_eq!(lines[0], "logged in as alice (password and authenticator code)");
    let token = lines[1].strip_prefix("remember-token: ").expect("a remember-token line");
    cli.ok(
        &["login", "alice", "--device", token],
        &pw,
        later,
        &["logged in as alice (password from a remembered location)"],
    );
    // bob (admin) resets alice; then her password alone logs her in.
    cli.ok(
        &["reset", "alice", "--by", "bob", "--verified-by", "video call, photo ID"],
        "",
        later,
        &["two-factor authentication for alice was reset by bob; alice was told by mail"],
    );
    cli.ok(&["login", "alice"], &pw, later, &["logged in as alice (password)"]);
    eprintln!("cli invocations: {:?}", started.elapsed());
}

fn generate(uri: &twofactor::otpauth::OtpauthUri, at: u64) -> String {
    twofactor::totp::generate(uri.secret.expose(), &uri.params, at).expose().to_owned()
}
