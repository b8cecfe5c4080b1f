//! What the SQL stores promise beyond the conformance kit: the schema (one table,
//! `twofactor_users`, seven columns) and its migrations, applied once and safely in
//! parallel, including migration 3, which turns 0.1.0's schema-2 rows into credential
//! documents, and migration 4, which adds the indexed `mail_due` column that every
//! write of a document fills in the same statement; documents kept byte for byte; corrupt rows are errors, never panics, and
//! the table's CHECK refuses a version without its document; a fault changes nothing;
//! pools and processes sharing one SQLite file have exactly one winner per version; and
//! `scan` walks the users with a document in id order, resuming from a cursor that is
//! a value, not a position.

mod sql_support;
mod store_support;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sql_support::{LegacyAccount, enrolling_document, full_document, plain_document};
use store_support::temp_db;
use twofactor::mail::MemoryMailer;
use twofactor::store::{Document, SqliteStore, Swap, UserRecord, UserStore};
use twofactor::testkit::sample_document;
use twofactor::{Engine, Error, KeyRing, ManualClock, NewAccount, Policy, Role, StoreError, Timestamp, UserId};

/// The table's columns, in order.
const COLUMNS: [&str; 7] = ["id", "login", "email", "role", "version", "document", "mail_due"];
/// The stores' query for `mail_due` (as `src/store/sql/ops.rs` writes it), for the
/// query plans.
const MAIL_DUE_QUERY: &str = "SELECT id FROM twofactor_users \
     WHERE mail_due IS NOT NULL AND mail_due <= $1 ORDER BY mail_due, id LIMIT $2";
/// Schema 3's migrations, for databases as the previous version left them.
const SQLITE_0003: &str = include_str!("../src/store/sql/migrations/sqlite/0003_credential_documents.sql");
#[cfg(feature = "postgres")]
const POSTGRES_0003: &str = include_str!("../src/store/sql/migrations/postgres/0003_credential_documents.sql");

/// A counter document, `{"format":1,"n":…}`.
fn counter(n: u64) -> Document {
    Document::from_json(format!(r#"{{"format":1,"n":{n}}}"#))
}

fn count_of(doc: &Document) -> u64 {
    let value: Value = serde_json::from_str(doc.as_json()).expect("a counter document");
    value["n"].as_u64().expect("a count")
}

/// A document with mail queued, due at each of `due` (none: an empty outbox).
fn mail_at(due: &[u64]) -> Document {
    let entries: Vec<String> = due.iter().map(|t| format!(r#"{{"due":{t}}}"#)).collect();
    Document::from_json(format!(r#"{{"format":1,"outbox":[{}]}}"#, entries.join(",")))
}

fn user(id: u64, login: &str) -> UserRecord {
    UserRecord::new(UserId::from(id), login, format!("{login}@example.test"), Role::User)
}

/// The user's document and version, as the store reads them.
async fn stored<S: UserStore>(store: &S, id: UserId) -> Option<(u64, Document)> {
    let user = store.find_by_id(id).await.expect("read").expect("the user exists");
    user.credentials.map(|c| (c.version, c.document))
}

/// Adds 1 to the counter by read and compare-and-swap until it lands; the version the
/// winning swap wrote.
async fn increment<S: UserStore>(store: &S, id: UserId) -> u64 {
    loop {
        let (version, doc) = stored(store, id).await.expect("a counter");
        if let Swap::Swapped { version } =
            store.compare_and_swap(id, version, &counter(count_of(&doc) + 1)).await.expect("swap")
        {
            return version;
        }
    }
}

fn fast_engine<S: UserStore>(store: S) -> Engine<S, MemoryMailer, ManualClock> {
    Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
        .clock(ManualClock::new(Timestamp(1_750_000_000)))
        .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
        .build()
        .expect("engine")
}

async fn schema_versions(pool: &sqlx::SqlitePool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM twofactor_schema_version ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("schema versions")
}

async fn sqlite_tables(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(pool)
        .await
        .expect("tables")
}

/// A plain pool on the file, without the store's settings (as another program or a
/// person with the `sqlite3` shell would open it).
async fn raw_pool(path: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.expect("raw pool")
}

/// Every row of `twofactor_users`: id, login, email, role, version, document.
type Row = (String, String, String, String, i64, Option<String>);

async fn sqlite_rows(pool: &sqlx::SqlitePool) -> Vec<Row> {
    sqlx::query_as("SELECT id, login, email, role, version, document FROM twofactor_users ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("rows")
}

/// Every row's id and `mail_due`, in id order.
async fn sqlite_mail_due(pool: &sqlx::SqlitePool) -> Vec<(String, Option<i64>)> {
    sqlx::query_as("SELECT id, mail_due FROM twofactor_users ORDER BY id").fetch_all(pool).await.expect("mail_due")
}

fn parse(document: &str) -> Value {
    serde_json::from_str(document).expect("the document is JSON")
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
    assert_eq!(schema_versions(again.pool()).await, vec![1, 2, 3, 4]);
    assert_eq!(sqlite_tables(again.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(again.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    // A committed swap survives a power loss, and foreign keys stay on.
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(again.pool()).await.unwrap();
    assert_eq!(synchronous, 2, "synchronous = FULL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(again.pool()).await.unwrap();
    assert_eq!(foreign_keys, 1);
}

/// The table holds exactly id, login, email, role, version, document and mail_due; id
/// is the primary key and login is unique.
#[tokio::test]
async fn the_table_has_exactly_the_seven_columns() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    let columns: Vec<(String, String, i64, i64)> =
        sqlx::query_as(r#"SELECT name, type, "notnull", pk FROM pragma_table_info('twofactor_users') ORDER BY cid"#)
            .fetch_all(store.pool())
            .await
            .unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, COLUMNS);
    let shape: Vec<(&str, &str, bool, bool)> =
        columns.iter().map(|(n, t, notnull, pk)| (n.as_str(), t.as_str(), *notnull == 1, *pk == 1)).collect();
    assert_eq!(
        shape,
        [
            ("id", "TEXT", true, true),
            ("login", "TEXT", true, false),
            ("email", "TEXT", true, false),
            ("role", "TEXT", true, false),
            ("version", "BIGINT", true, false),
            ("document", "TEXT", false, false),
            ("mail_due", "BIGINT", false, false),
        ]
    );
    let unique_login: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_index_list('twofactor_users') AS l \
         JOIN pragma_index_info(l.name) AS i WHERE l.\"unique\" = 1 AND i.name = 'login'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(unique_login, 1, "login is unique");
}

/// A full document (and a large, non-ASCII one) reads back byte for byte, by id and
/// by login, and the row holds exactly that text.
async fn documents_round_trip<S: UserStore>(store: &S, rows: impl AsyncFn() -> Vec<Row>) {
    let full = sample_document();
    let alice = user(42, "alice").with_document(1, full.clone());
    store.create_user(&alice).await.unwrap();
    let found = store.find_by_id(UserId::from(42_u64)).await.unwrap().expect("alice");
    assert_eq!(found, alice);
    assert_eq!(found.credentials.as_ref().map(|c| c.document.as_json()), Some(full.as_json()));
    assert_eq!(store.find_by_login("alice").await.unwrap().as_ref(), Some(&found));

    let big = Document::from_json(format!(
        r#"{{"format":1,"pad":"{}","quote":"\" ' \\ ; DROP TABLE twofactor_users; --","nul":"\u0000"}}"#,
        "Zoë 📱 ".repeat(20_000)
    ));
    assert_eq!(store.compare_and_swap(found.id, 1, &big).await.unwrap(), Swap::Swapped { version: 2 });
    assert_eq!(stored(store, found.id).await, Some((2, big.clone())));
    assert_eq!(store.compare_and_swap(found.id, 2, &full).await.unwrap(), Swap::Swapped { version: 3 });

    // A user the crate has written nothing for: version 0, no document (NULL).
    let bob = UserRecord::new(UserId::new("bob-ü").unwrap(), "Bob Ü", "bob@example.test", Role::Support);
    store.create_user(&bob).await.unwrap();
    assert_eq!(store.find_by_login("Bob Ü").await.unwrap(), Some(bob.clone()));

    let rows = rows().await;
    assert_eq!(
        rows,
        vec![
            ("42".into(), "alice".into(), "alice@example.test".into(), "user".into(), 3, Some(full.as_json().into())),
            ("bob-ü".into(), "Bob Ü".into(), "bob@example.test".into(), "support".into(), 0, None),
        ]
    );
}

#[tokio::test]
async fn sqlite_documents_round_trip_byte_for_byte() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    documents_round_trip(&store, async || sqlite_rows(store.pool()).await).await;
    let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
    documents_round_trip(&memory, async || sqlite_rows(memory.pool()).await).await;
}

#[tokio::test]
async fn a_taken_login_or_id_is_a_duplicate() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    duplicates(&store).await;
}

/// `create_user` with a taken login or id is `StoreError::Duplicate` and writes
/// nothing; the engine reports the taken login as `UsernameTaken`.
async fn duplicates<S: UserStore + Clone>(store: &S) {
    let first = user(1, "alice").with_document(1, counter(1));
    store.create_user(&first).await.unwrap();
    for taken in [user(2, "alice"), user(1, "alice2"), user(1, "alice").with_document(1, counter(2))] {
        let err = store.create_user(&taken).await.expect_err("taken");
        assert!(matches!(err, StoreError::Duplicate), "{err}");
    }
    assert!(store.find_by_id(UserId::from(2_u64)).await.unwrap().is_none());
    assert!(store.find_by_login("alice2").await.unwrap().is_none());
    assert_eq!(store.find_by_login("alice").await.unwrap(), Some(first));
    let engine = fast_engine(store.clone());
    let taken = engine.create_account(NewAccount::new("alice", "x@example.test", Role::User, "a long password")).await;
    assert!(matches!(taken, Err(Error::UsernameTaken)), "{taken:?}");
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
    // Nothing was touched: the table is still there, with the same versions.
    assert_eq!(schema_versions(store.pool()).await, vec![1, 2, 3, 4, 99]);
}

#[tokio::test]
async fn two_pools_on_one_file_see_each_others_swaps() {
    let (_dir, path) = temp_db();
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let shared = user(7, "shared");
    a.create_user(&shared).await.unwrap();
    let seen = b.find_by_login("shared").await.unwrap().expect("b sees a's user");
    assert_eq!(seen, shared);
    assert_eq!(b.insert_document(shared.id, &counter(1)).await.unwrap(), Swap::Swapped { version: 1 });
    assert_eq!(a.insert_document(shared.id, &counter(9)).await.unwrap(), Swap::Conflict);
    assert_eq!(a.compare_and_swap(shared.id, 1, &counter(2)).await.unwrap(), Swap::Swapped { version: 2 });
    assert_eq!(stored(&b, shared.id).await, Some((2, counter(2))));
    assert_eq!(b.compare_and_swap(shared.id, 1, &counter(3)).await.unwrap(), Swap::Conflict);
    assert!(matches!(b.create_user(&shared).await, Err(StoreError::Duplicate)));
}

/// Several pools race swaps from one version, round after round: each round has
/// exactly one winner, at the next version, and its document is the one stored.
async fn race_rounds<S: UserStore + 'static>(stores: Vec<Arc<S>>, id: UserId, rounds: u64, tasks_per_store: usize) {
    let racers = stores.len() * tasks_per_store;
    for round in 1..=rounds {
        let barrier = Arc::new(tokio::sync::Barrier::new(racers));
        let handles: Vec<_> = (0..racers)
            .map(|r| {
                let (store, barrier) = (Arc::clone(&stores[r % stores.len()]), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mine = counter(round * 1000 + r as u64);
                    match store.compare_and_swap(id, round, &mine).await.expect("swap") {
                        Swap::Swapped { version } => Some((version, mine)),
                        _ => None,
                    }
                })
            })
            .collect();
        let mut winners = Vec::new();
        for h in handles {
            winners.extend(h.await.expect("task"));
        }
        let [(version, doc)] = winners.as_slice() else {
            panic!("round {round}: {} of {racers} swaps from version {round} won", winners.len())
        };
        assert_eq!(*version, round + 1);
        for store in &stores {
            assert_eq!(stored(&**store, id).await, Some((round + 1, doc.clone())));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pools_on_one_file_race_swaps_with_one_winner_per_version() {
    let (_dir, path) = temp_db();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(SqliteStore::open(&path).await.unwrap()));
    }
    let racer = user(11, "racer");
    stores[0].create_user(&racer).await.unwrap();
    assert_eq!(stores[3].insert_document(racer.id, &counter(0)).await.unwrap(), Swap::Swapped { version: 1 });
    race_rounds(stores, racer.id, 25, 4).await;
}

/// A fault in the middle of a write (an `AFTER` trigger that aborts, so the row was
/// already changed when the statement failed) changes nothing, for a swap, a first
/// insert and a creation.
#[tokio::test]
async fn sqlite_faults_change_nothing() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    faults_change_nothing(&store, async |on| {
        let sql = if on {
            "CREATE TRIGGER fail_update AFTER UPDATE ON twofactor_users BEGIN SELECT RAISE(ABORT, 'injected'); END; \
             CREATE TRIGGER fail_insert AFTER INSERT ON twofactor_users BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        } else {
            "DROP TRIGGER fail_update; DROP TRIGGER fail_insert;"
        };
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
    })
    .await;
}

async fn faults_change_nothing<S: UserStore>(store: &S, faults: impl AsyncFn(bool)) {
    let full = sample_document();
    let written = user(5, "faulty").with_document(1, full.clone());
    store.create_user(&written).await.unwrap();
    let bare = user(6, "bare");
    store.create_user(&bare).await.unwrap();

    faults(true).await;
    let err = store.compare_and_swap(written.id, 1, &counter(1)).await.expect_err("the swap fails");
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    let err = store.insert_document(bare.id, &counter(1)).await.expect_err("the insert fails");
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    let err = store.create_user(&user(8, "faulty-create")).await.expect_err("the creation fails");
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    faults(false).await;

    assert_eq!(store.find_by_id(written.id).await.unwrap(), Some(written.clone()));
    assert_eq!(store.find_by_id(bare.id).await.unwrap(), Some(bare.clone()));
    assert!(store.find_by_id(UserId::from(8_u64)).await.unwrap().is_none(), "a failed creation left a row");
    assert!(store.find_by_login("faulty-create").await.unwrap().is_none());
    // And the store works again from the same versions.
    assert_eq!(store.compare_and_swap(written.id, 1, &counter(1)).await.unwrap(), Swap::Swapped { version: 2 });
    assert_eq!(store.insert_document(bare.id, &counter(1)).await.unwrap(), Swap::Swapped { version: 1 });
}

#[tokio::test]
async fn a_closed_pool_is_an_error() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.pool().close().await;
    let id = UserId::from(9_u64);
    assert!(matches!(store.create_user(&user(9, "closed")).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.find_by_id(id).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.find_by_login("closed").await, Err(StoreError::Backend(_))));
    assert!(matches!(store.insert_document(id, &counter(1)).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.compare_and_swap(id, 1, &counter(1)).await, Err(StoreError::Backend(_))));
    assert!(matches!(store.scan(None, 10).await, Err(StoreError::Backend(_))));
}

/// Row corruptions a SQL client can write despite the schema; each must read as
/// `StoreError::Corrupt`.
const SQLITE_CORRUPTIONS: [&str; 8] = [
    "UPDATE twofactor_users SET role = 'root'",
    "UPDATE twofactor_users SET role = 'Admin'",
    "UPDATE twofactor_users SET id = ''",
    "UPDATE twofactor_users SET id = 'tab\there'",
    "UPDATE twofactor_users SET version = -3",
    "UPDATE twofactor_users SET email = x'00ff'",
    "UPDATE twofactor_users SET document = x'00ff'",
    "UPDATE twofactor_users SET version = 'three'",
];

/// Corrupt rows are errors, never panics: the store's reads answer `Corrupt`, and a
/// document that is not a credential document (not JSON, a newer format, the wrong
/// shape) is `Corrupt` from the engine; writes to such a user fail or conflict without
/// touching it.
#[tokio::test]
async fn sqlite_corrupt_rows_are_errors_not_panics() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    for (i, corruption) in SQLITE_CORRUPTIONS.iter().enumerate() {
        let login = format!("corrupt-{i}");
        let u = user(100 + i as u64, &login).with_document(3, sample_document());
        store.create_user(&u).await.unwrap();
        let sql = format!("{corruption} WHERE login = '{login}'");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
        let by_login = store.find_by_login(&login).await;
        assert!(matches!(by_login, Err(StoreError::Corrupt(_))), "{corruption}: {by_login:?}");
        if !corruption.contains("SET id") {
            let by_id = store.find_by_id(u.id).await;
            assert!(matches!(by_id, Err(StoreError::Corrupt(_))), "{corruption}: {by_id:?}");
        }
    }
    scan_reports_corrupt_rows(&store).await;
    engine_reports_corrupt_documents(&store).await;
}

/// A walk over corrupt rows is an error too, at the store and through the engine.
async fn scan_reports_corrupt_rows<S: UserStore + Clone>(store: &S) {
    let scanned = store.scan(None, 1000).await;
    assert!(matches!(scanned, Err(StoreError::Corrupt(_))), "{scanned:?}");
    let usage = fast_engine(store.clone()).key_usage().await;
    assert!(matches!(usage, Err(Error::Store(StoreError::Corrupt(_)))), "{usage:?}");
}

/// Documents the store keeps faithfully but the engine cannot read.
async fn engine_reports_corrupt_documents<S: UserStore + Clone>(store: &S) {
    let engine = fast_engine(store.clone());
    let bad = [
        "not json at all",
        "",
        r#"{"format":1,"second_factor":{"state":"enabled","authenticators":[]}}"#,
        r#"{"format":2,"password":"x"}"#,
        r#"{"format":1,"stamp":-1}"#,
        r#"["format",1]"#,
    ];
    for (i, text) in bad.iter().enumerate() {
        let login = format!("bad-document-{i}");
        let id = engine
            .create_account(NewAccount::new(&login, "b@example.test", Role::User, "a long password"))
            .await
            .expect("create");
        let (version, _) = stored(store, id).await.expect("a document");
        let swapped = store.compare_and_swap(id, version, &Document::from_json(*text)).await.unwrap();
        assert_eq!(swapped, Swap::Swapped { version: version + 1 });
        assert_eq!(stored(store, id).await, Some((version + 1, Document::from_json(*text))), "kept as written");
        let view = engine.account(id).await;
        assert!(matches!(view, Err(Error::Store(StoreError::Corrupt(_)))), "{text:?}: {view:?}");
        let login_attempt = engine.begin_login(&login, "a long password", None).await;
        assert!(matches!(login_attempt, Err(Error::Store(StoreError::Corrupt(_)))), "{text:?}: {login_attempt:?}");
        assert_eq!(stored(store, id).await.map(|(v, _)| v), Some(version + 1), "a failed read wrote nothing");
    }
}

/// The CHECK constraint refuses a version without its document and a document at
/// version 0; with the constraint switched off, such a row reads as `Corrupt`.
#[tokio::test]
async fn sqlite_version_and_document_must_agree() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_user(&user(1, "written").with_document(1, counter(1))).await.unwrap();
    store.create_user(&user(2, "bare")).await.unwrap();
    let refused = [
        "UPDATE twofactor_users SET document = NULL WHERE id = '1'",
        "UPDATE twofactor_users SET version = 0 WHERE id = '1'",
        "UPDATE twofactor_users SET document = '{}' WHERE id = '2'",
        "UPDATE twofactor_users SET version = 1 WHERE id = '2'",
        "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES ('3', 'c', 'c', 'user', 0, '{}')",
        "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES ('4', 'd', 'd', 'user', 2, NULL)",
    ];
    for sql in refused {
        let err = sqlx::query(sql).execute(store.pool()).await.expect_err(sql);
        assert!(err.to_string().contains("CHECK"), "{sql}: {err}");
    }
    assert_eq!(stored(&store, UserId::from(1_u64)).await, Some((1, counter(1))));
    assert_eq!(stored(&store, UserId::from(2_u64)).await, None);
    assert_eq!(sqlite_rows(store.pool()).await.len(), 2);

    // Written anyway, past the constraint: an error on read.
    let mut conn =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::raw_sql(
        "PRAGMA ignore_check_constraints = ON; \
         UPDATE twofactor_users SET document = NULL WHERE id = '1'; \
         UPDATE twofactor_users SET document = '{}' WHERE id = '2';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for id in [1_u64, 2] {
        let found = store.find_by_id(UserId::from(id)).await;
        assert!(matches!(found, Err(StoreError::Corrupt(_))), "{id}: {found:?}");
    }
}

/// Walks the whole store in pages of `limit` from `after`: the users, and how many
/// pages it took.
async fn walk<S: UserStore>(store: &S, mut after: Option<String>, limit: usize) -> (Vec<UserRecord>, usize) {
    let (mut users, mut pages) = (Vec::new(), 0);
    loop {
        let page = store.scan(after.as_deref(), limit).await.expect("scan");
        pages += 1;
        assert!(page.users.len() <= limit.max(1), "{} users for a limit of {limit}", page.users.len());
        assert!(!page.users.is_empty() || (pages == 1 && page.next.is_none()), "an empty page in the middle");
        users.extend(page.users);
        match page.next {
            Some(next) => after = Some(next),
            None => return (users, pages),
        }
    }
}

fn ids_of(users: &[UserRecord]) -> Vec<String> {
    users.iter().map(|u| u.id.to_string()).collect()
}

/// `scan` walks the users with a document in the table's id order (text: "10" before
/// "9"), each once with what `find_by_id` reads, and skips users without one (also a
/// row the application inserted itself at version 0); a limit of 0 reads as 1, and no
/// walk ends on an empty page. The cursor is the last id, a value: a walk resumes past
/// rows deleted or added meanwhile (the cursor row itself included). `sql` runs a
/// statement on the table, `ordered` lists the ids with a document as the database
/// sorts them.
async fn scan_walks_in_id_order<S: UserStore>(
    store: &S,
    sql: impl AsyncFn(&str),
    ordered: impl AsyncFn() -> Vec<String>,
) {
    let with_document = ["9", "10", "1", "100", "abc", "Zoë", "zz", "2"];
    for (i, id) in with_document.iter().enumerate() {
        let u = UserRecord::new(UserId::new(id).unwrap(), format!("scan-{i}"), "s@example.test", Role::User)
            .with_document(1 + i as u64, counter(i as u64));
        store.create_user(&u).await.unwrap();
    }
    store.create_user(&user(5, "no-document")).await.unwrap();
    sql("INSERT INTO twofactor_users (id, login, email, role, version) VALUES ('50', 'app-row', 'a@example.test', 'user', 0)")
        .await;

    let expected = ordered().await;
    let mut sorted = expected.clone();
    sorted.sort();
    let mut given: Vec<String> = with_document.iter().map(|s| s.to_string()).collect();
    given.sort();
    assert_eq!(sorted, given, "exactly the users with a document");
    for limit in [0, 1, 3, 7, 8, 100] {
        let (users, pages) = walk(store, None, limit).await;
        assert_eq!(ids_of(&users), expected, "pages of {limit}");
        assert_eq!(pages, expected.len().div_ceil(limit.max(1)), "pages of {limit}");
        for u in &users {
            assert_eq!(Some(u), store.find_by_id(u.id).await.unwrap().as_ref(), "scan reads what find_by_id reads");
        }
    }

    let first = store.scan(None, 3).await.unwrap();
    assert_eq!(ids_of(&first.users), expected[..3]);
    let cursor = first.next.expect("more pages");
    assert_eq!(cursor, expected[2], "the cursor is the page's last id");
    for gone in [&expected[2], &expected[3]] {
        sql(&format!("DELETE FROM twofactor_users WHERE id = '{gone}'")).await;
    }
    sql("INSERT INTO twofactor_users (id, login, email, role, version, document) \
         VALUES ('zzz', 'late', 'l@example.test', 'user', 1, '{\"format\":1,\"n\":99}')")
    .await;
    let (rest, _) = walk(store, Some(cursor), 2).await;
    let mut want = expected[4..].to_vec();
    want.push("zzz".to_owned());
    assert_eq!(ids_of(&rest), want);
}

#[tokio::test]
async fn sqlite_scan_walks_in_id_order() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    let sql = async |statement: &str| {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(store.pool()).await.expect(statement);
    };
    let ordered = async || {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM twofactor_users WHERE document IS NOT NULL ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        // SQLite compares text byte by byte.
        let mut bytewise = ids.clone();
        bytewise.sort();
        assert_eq!(ids, bytewise);
        ids
    };
    scan_walks_in_id_order(&store, sql, ordered).await;
}

const TASKS_PER_PROCESS: u32 = 4;
const INCREMENTS_PER_TASK: u32 = 50;
const COUNTER_ID: u64 = 77;

/// Runs this process's share of the increments; the versions its swaps won.
async fn run_increments(store: Arc<SqliteStore>) -> Vec<u64> {
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut won = Vec::new();
                for _ in 0..INCREMENTS_PER_TASK {
                    won.push(increment(&*store, UserId::from(COUNTER_ID)).await);
                }
                won
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.expect("task"));
    }
    won
}

/// Three OS processes (this test and two copies of it, started with
/// `TWOFACTOR_CHILD_DB` set, which then only do their share of the increments and
/// write the versions they won to `TWOFACTOR_CHILD_OUT`) swap one document in one
/// SQLite file: no update is lost, and every version was won by exactly one swap in
/// exactly one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_sharing_one_file_lose_no_update() {
    if let (Ok(path), Ok(out)) = (std::env::var("TWOFACTOR_CHILD_DB"), std::env::var("TWOFACTOR_CHILD_OUT")) {
        let store = Arc::new(SqliteStore::open(path).await.expect("open"));
        std::fs::write(format!("{out}.ready"), b"").expect("ready");
        let won = run_increments(store).await;
        let lines: String = won.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(&out, lines).expect("write the won versions");
        return;
    }
    let (dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    store.create_user(&user(COUNTER_ID, "counter").with_document(1, counter(0))).await.unwrap();
    let outs: Vec<_> = (0..2).map(|i| dir.path().join(format!("child-{i}.txt"))).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["processes_sharing_one_file_lose_no_update", "--exact", "--test-threads", "1", "--quiet"])
                .env("TWOFACTOR_CHILD_DB", &path)
                .env("TWOFACTOR_CHILD_OUT", out)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn a child process")
        })
        .collect();
    // Start once both children have opened the file, so all three race.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !outs.iter().all(|o| o.with_extension("txt.ready").exists()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut won = run_increments(Arc::clone(&store)).await;
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "a child process failed: {status}");
    }
    for out in &outs {
        let text = std::fs::read_to_string(out).expect("a child's won versions");
        won.extend(text.lines().map(|l| l.parse::<u64>().expect("a version")));
    }
    let total = 3 * TASKS_PER_PROCESS * INCREMENTS_PER_TASK;
    won.sort_unstable();
    let every_version: Vec<u64> = (2..=1 + u64::from(total)).collect();
    assert_eq!(won, every_version, "each version won by exactly one swap");
    let (version, doc) = stored(&*store, UserId::from(COUNTER_ID)).await.unwrap();
    assert_eq!((version, count_of(&doc)), (1 + u64::from(total), u64::from(total)));
}

// ---------------------------------------------------------------- migration 3

/// The schema-2 accounts of the migration tests: enabled 2FA with everything, an id
/// above 2^63 (stored negative), the smallest stored id, and an enrollment.
fn legacy_accounts() -> Vec<LegacyAccount> {
    vec![
        LegacyAccount::full(7, "alice"),
        LegacyAccount { role: "support".to_owned(), ..LegacyAccount::plain(-5, "bob") },
        LegacyAccount::plain(i64::MIN, "min"),
        LegacyAccount::enrolling(9, "carol"),
    ]
}

/// What the migrated rows must be: (id, login, email, role, version, document).
fn migrated_rows() -> Vec<(String, String, String, String, i64, Value)> {
    let row = |id: &str, login: &str, role: &str, version: i64, doc: Value| {
        (id.to_owned(), login.to_owned(), format!("{login}@example.test"), role.to_owned(), version, doc)
    };
    let mut rows = vec![
        row("7", "alice", "admin", 12, full_document()),
        row("18446744073709551611", "bob", "support", 1, plain_document("bob")),
        row("9223372036854775808", "min", "user", 1, plain_document("min")),
        row("9", "carol", "user", 3, enrolling_document("carol")),
    ];
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn parsed(rows: Vec<Row>) -> Vec<(String, String, String, String, i64, Value)> {
    rows.into_iter()
        .map(|(id, login, email, role, version, doc)| {
            (id, login, email, role, version, parse(doc.as_deref().expect("a migrated user has a document")))
        })
        .collect()
}

/// What the engine sees of the migrated enabled account.
async fn engine_reads_the_migrated_account<S: UserStore>(store: S) {
    let engine = fast_engine(store);
    let view = engine.account(UserId::from(7_u64)).await.unwrap().expect("alice");
    assert_eq!(
        (view.username.as_str(), view.role, view.two_factor),
        ("alice", Role::Admin, twofactor::TwoFactorState::Enabled)
    );
    assert_eq!((view.backup_codes, view.remembered_locations, view.locked), (2, 2, true));
    let view = engine.account(UserId::from(9_u64)).await.unwrap().expect("carol");
    assert_eq!(view.two_factor, twofactor::TwoFactorState::Enrolling);
    let view = engine.account_by_username("bob").await.unwrap().expect("bob");
    assert_eq!((view.id.as_str(), view.two_factor), ("18446744073709551611", twofactor::TwoFactorState::Disabled));
}

async fn sqlite_schema_2(path: &Path, accounts: &[LegacyAccount]) {
    let pool = raw_pool(path).await;
    schema_2_database!(pool, [sql_support::SQLITE_0001, sql_support::SQLITE_0002], accounts);
    pool.close().await;
}

/// 0.1.0's schema 2 becomes schema 3 when the store opens it: one user row per
/// account (id as decimal text, login, email, role and version kept), its document
/// carrying every field, and the old tables gone.
#[tokio::test]
async fn sqlite_schema_2_migrates_to_credential_documents() {
    let (_dir, path) = temp_db();
    sqlite_schema_2(&path, &legacy_accounts()).await;

    let store = SqliteStore::open(&path).await.expect("a schema-2 database opens");
    assert_eq!(schema_versions(store.pool()).await, vec![1, 2, 3, 4]);
    assert_eq!(sqlite_tables(store.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
    assert_eq!(parsed(sqlite_rows(store.pool()).await), migrated_rows());
    assert!(sqlite_mail_due(store.pool()).await.iter().all(|(_, due)| due.is_none()), "0.1.0 queued no mail");
    let alice = store.find_by_login("alice").await.unwrap().expect("alice");
    assert_eq!((alice.id, alice.credentials.map(|c| c.version)), (UserId::from(7_u64), Some(12)));
    engine_reads_the_migrated_account(store.clone()).await;

    // Opening it again migrates nothing more.
    drop(store);
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(schema_versions(again.pool()).await, vec![1, 2, 3, 4]);
    assert_eq!(parsed(sqlite_rows(again.pool()).await), migrated_rows());
}

/// A schema-2 row that no record can hold stops the migration: opening fails with an
/// error naming the account, and the transaction leaves the old tables as they were.
/// Once the row is repaired, the database opens.
#[tokio::test]
async fn sqlite_a_corrupt_schema_2_row_stops_the_migration() {
    let (_dir, path) = temp_db();
    let bad = LegacyAccount { tf_state: "bogus".to_owned(), ..LegacyAccount::full(13, "broken") };
    let mut accounts = legacy_accounts();
    accounts.push(bad);
    sqlite_schema_2(&path, &accounts).await;

    let err = SqliteStore::open(&path).await.expect_err("a corrupt row");
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("account 13") && m.contains("tf_state")), "{err}");

    let pool = raw_pool(&path).await;
    assert_eq!(schema_versions(&pool).await, vec![1, 2]);
    assert_eq!(
        sqlite_tables(&pool).await,
        ["twofactor_accounts", "twofactor_backup_codes", "twofactor_locations", "twofactor_schema_version"]
    );
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM twofactor_accounts), (SELECT COUNT(*) FROM twofactor_backup_codes), \
         (SELECT COUNT(*) FROM twofactor_locations)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (5, 4, 4));

    sqlx::query("UPDATE twofactor_accounts SET tf_state = 'enabled' WHERE id = 13").execute(&pool).await.unwrap();
    pool.close().await;
    let store = SqliteStore::open(&path).await.expect("the repaired database opens");
    let rows = parsed(sqlite_rows(store.pool()).await);
    assert_eq!(rows.len(), 5);
    let broken = rows.iter().find(|r| r.0 == "13").expect("the repaired account");
    assert_eq!(broken.5, full_document(), "the repaired account migrated in full");
}

/// A schema-2 value of the wrong SQL type stops the migration the same way, naming
/// the account.
#[tokio::test]
async fn sqlite_a_mistyped_schema_2_value_stops_the_migration() {
    for corruption in [
        "UPDATE twofactor_accounts SET email = x'00ff' WHERE id = 13",
        "UPDATE twofactor_accounts SET pending_marks = x'00' WHERE id = 13",
        "UPDATE twofactor_backup_codes SET phc = x'00ff' WHERE account_id = 13",
        "UPDATE twofactor_locations SET token_hash = x'00' WHERE account_id = 13",
        "UPDATE twofactor_accounts SET role = 'root' WHERE id = 13",
        "UPDATE twofactor_accounts SET totp_digits = 7 WHERE id = 13",
        "UPDATE twofactor_accounts SET reset_by = NULL WHERE id = 13",
        "UPDATE twofactor_accounts SET throttle_failures = -1 WHERE id = 13",
    ] {
        let (_dir, path) = temp_db();
        let mut accounts = legacy_accounts();
        accounts.push(LegacyAccount::full(13, "broken"));
        sqlite_schema_2(&path, &accounts).await;
        let pool = raw_pool(&path).await;
        sqlx::query(corruption).execute(&pool).await.unwrap();
        pool.close().await;
        let err = SqliteStore::open(&path).await.expect_err(corruption);
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("account 13")), "{corruption}: {err}");
        let pool = raw_pool(&path).await;
        assert_eq!(schema_versions(&pool).await, vec![1, 2], "{corruption}");
        let accounts: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM twofactor_accounts").fetch_one(&pool).await.unwrap();
        assert_eq!(accounts, 5, "{corruption}");
    }
}

/// Many accounts migrate a page at a time; every account keeps its own child rows
/// across page boundaries, whatever the sign of its stored id.
#[tokio::test]
async fn sqlite_many_accounts_migrate_page_by_page() {
    let (_dir, path) = temp_db();
    let accounts = many_accounts();
    sqlite_schema_2(&path, &accounts).await;
    let store = SqliteStore::open(&path).await.expect("open");
    check_many_migrated(&accounts, parsed(sqlite_rows(store.pool()).await));
}

/// 1201 enabled accounts, half with negative stored ids, each with its own backup code
/// and location.
fn many_accounts() -> Vec<LegacyAccount> {
    (0..1201_i64)
        .map(|k| {
            let id = if k % 2 == 0 { k * 7_919 } else { -k * 104_729 };
            let mut a = LegacyAccount::full(id, &format!("user-{k}"));
            a.backup_codes =
                vec![sql_support::LegacyCode { phc: format!("code-{id}"), issued_at: k, expires_at: None }];
            a.locations.truncate(1);
            a.locations[0].label = format!("location-{id}");
            a
        })
        .collect()
}

fn check_many_migrated(accounts: &[LegacyAccount], rows: Vec<(String, String, String, String, i64, Value)>) {
    assert_eq!(rows.len(), accounts.len());
    let by_id: std::collections::HashMap<&str, &(String, String, String, String, i64, Value)> =
        rows.iter().map(|r| (r.0.as_str(), r)).collect();
    for a in accounts {
        let (_, login, _, _, version, doc) = by_id.get(a.user_id().as_str()).copied().expect("migrated");
        assert_eq!((login.as_str(), *version), (a.username.as_str(), 12));
        let codes = doc["second_factor"]["backup_codes"].as_array().expect("codes");
        assert_eq!(codes.len(), 1, "{}", a.id);
        assert_eq!(codes[0]["hash"], format!("code-{}", a.id));
        let locations = doc["locations"].as_array().expect("locations");
        assert_eq!(locations.len(), 1, "{}", a.id);
        assert_eq!(locations[0]["label"], format!("location-{}", a.id));
    }
}

/// A database at schema version 1 (0.1.0 before migration 2: its migration and one
/// locked, enabled account written with its columns) opens under this version,
/// migrates through 2, 3 and 4 and keeps the account; migration 2's counters start at
/// zero, so the document leaves them out.
#[tokio::test]
async fn sqlite_a_version_1_database_migrates_and_keeps_its_accounts() {
    let (_dir, path) = temp_db();
    let pool = raw_pool(&path).await;
    sqlx::raw_sql(sql_support::SQLITE_0001).execute(&pool).await.unwrap();
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
    assert_eq!(schema_versions(store.pool()).await, vec![1, 2, 3, 4]);
    let found = store.find_by_login("old").await.unwrap().expect("the account survived");
    let stored = found.credentials.expect("a document");
    assert_eq!(stored.version, 12);
    let doc = parse(stored.document.as_json());
    assert_eq!(doc["throttle"], serde_json::json!({"failures": 42, "until": 900, "locked": true}));
    assert!(doc.get("retired_totp_step").is_none(), "0: left out");
    assert_eq!(doc["second_factor"]["authenticators"][0]["last_used_step"], 59999);
    assert_eq!(doc["second_factor"]["authenticators"][0]["secret"], "AQI=");
    assert_eq!(doc["stamp"], 3);
}

// ---------------------------------------------------------------- migration 4: mail_due

/// Every statement that writes a document writes its `mail_due` with it (creation with
/// a document, the first insert, a swap), NULL when no mail waits; a refused write
/// changes nothing; and `mail_due` answers from the column: due by `now` only, most
/// overdue first, ties in id order, a limit of 0 as 1, and a due time past `i64::MAX`
/// kept as the greatest one. `column` lists each row's id and `mail_due`.
async fn mail_due_is_written_with_the_document<S: UserStore>(
    store: &S,
    column: impl AsyncFn() -> Vec<(String, Option<i64>)>,
) {
    let due = async |now: u64, limit: usize| -> Vec<String> {
        store.mail_due(Timestamp(now), limit).await.expect("mail_due").iter().map(|id| id.to_string()).collect()
    };
    store.create_user(&user(1, "queued").with_document(1, mail_at(&[100, 50]))).await.unwrap();
    store.create_user(&user(2, "bare")).await.unwrap();
    store.create_user(&user(3, "quiet").with_document(1, counter(1))).await.unwrap();
    assert_eq!(column().await, [("1".into(), Some(50)), ("2".into(), None), ("3".into(), None)]);
    assert_eq!(due(49, 10).await, Vec::<String>::new(), "nothing is due before 50");
    assert_eq!(due(50, 10).await, ["1"], "mail due exactly now is due");

    let (bare, quiet, queued) = (UserId::from(2_u64), UserId::from(3_u64), UserId::from(1_u64));
    assert_eq!(store.insert_document(bare, &mail_at(&[70])).await.unwrap(), Swap::Swapped { version: 1 });
    assert_eq!(store.compare_and_swap(queued, 1, &mail_at(&[])).await.unwrap(), Swap::Swapped { version: 2 });
    assert_eq!(store.compare_and_swap(quiet, 5, &mail_at(&[10])).await.unwrap(), Swap::Conflict);
    assert_eq!(store.insert_document(queued, &mail_at(&[10])).await.unwrap(), Swap::Conflict);
    assert_eq!(column().await, [("1".into(), None), ("2".into(), Some(70)), ("3".into(), None)]);
    assert_eq!(due(100, 10).await, ["2"]);

    // Beyond i64::MAX: saturated, the greatest time there is.
    assert_eq!(store.compare_and_swap(quiet, 1, &mail_at(&[u64::MAX])).await.unwrap(), Swap::Swapped { version: 2 });
    assert_eq!(column().await[2], ("3".into(), Some(i64::MAX)));
    assert_eq!(due(i64::MAX as u64 - 1, 10).await, ["2"]);
    assert_eq!(due(u64::MAX, 10).await, ["2", "3"]);
    // A tie is answered in id order (text: "0" before "2"); 0 asks for one.
    store.create_user(&user(0, "tied").with_document(4, mail_at(&[70]))).await.unwrap();
    assert_eq!(due(100, 10).await, ["0", "2"]);
    assert_eq!(due(u64::MAX, 0).await, ["0"]);
    assert_eq!(due(u64::MAX, 2).await, ["0", "2"]);
}

/// `mail_due` is a column of its own, filled with every document written (see
/// [`mail_due_is_written_with_the_document`]), and the stores' query for it runs on the
/// partial index over `(mail_due, id)`, in its order: no scan of the table, no sort.
#[tokio::test]
async fn sqlite_mail_due_is_indexed_and_written_with_the_document() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    mail_due_is_written_with_the_document(&store, async || sqlite_mail_due(store.pool()).await).await;

    let indexes: Vec<(String, i64, i64)> =
        sqlx::query_as(r#"SELECT name, "unique", partial FROM pragma_index_list('twofactor_users') ORDER BY name"#)
            .fetch_all(store.pool())
            .await
            .unwrap();
    let mail_due_index = indexes.iter().find(|i| i.0 == "twofactor_users_mail_due").expect("the mail_due index");
    assert_eq!((mail_due_index.1, mail_due_index.2), (0, 1), "a partial index, not unique: {indexes:?}");
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_index_info('twofactor_users_mail_due') ORDER BY seqno")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(columns, ["mail_due", "id"]);

    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {MAIL_DUE_QUERY}")))
        .bind(1_800_000_000_i64)
        .bind(100_i64)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
        .collect();
    assert!(plan.iter().any(|step| step.contains("USING COVERING INDEX twofactor_users_mail_due")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "no sort step: {plan:?}");
}

/// A database as the previous version left it (schema 3: its migrations applied and
/// recorded, a user with a document and one without) migrates to schema 4 when the
/// store opens it, once: the rows are kept, their `mail_due` is NULL (the previous
/// version queued no mail), and from then on writes fill it.
async fn schema_3_migrated<S: UserStore>(store: &S, column: impl AsyncFn() -> Vec<(String, Option<i64>)>) {
    let written = store.find_by_id(UserId::from(7_u64)).await.unwrap().expect("the written user");
    assert_eq!(written, user(7, "old").with_document(2, counter(41)));
    let bare = store.find_by_login("bare").await.unwrap().expect("the bare user");
    assert_eq!(bare, user(8, "bare"));
    assert_eq!(column().await, [("7".into(), None), ("8".into(), None)]);
    assert!(store.mail_due(Timestamp(u64::MAX), 10).await.unwrap().is_empty());

    assert_eq!(store.compare_and_swap(written.id, 2, &mail_at(&[5])).await.unwrap(), Swap::Swapped { version: 3 });
    assert_eq!(store.insert_document(bare.id, &mail_at(&[3])).await.unwrap(), Swap::Swapped { version: 1 });
    assert_eq!(column().await, [("7".into(), Some(5)), ("8".into(), Some(3))]);
    assert_eq!(store.mail_due(Timestamp(10), 10).await.unwrap(), [bare.id, written.id]);
}

/// The rows of the schema-3 database: a user at version 2 and one without a document.
const SCHEMA_3_ROWS: &str = "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES \
     ('7', 'old', 'old@example.test', 'user', 2, '{\"format\":1,\"n\":41}'), \
     ('8', 'bare', 'bare@example.test', 'user', 0, NULL)";

/// Schema 3 as the previous version recorded it: migrations 1 to 3, at 1.7e9 + version.
const SCHEMA_3_VERSIONS: &str = "INSERT INTO twofactor_schema_version (version, applied_at) VALUES \
     (1, 1700000001), (2, 1700000002), (3, 1700000003)";

#[tokio::test]
async fn sqlite_a_schema_3_database_migrates_to_4() {
    let (_dir, path) = temp_db();
    let pool = raw_pool(&path).await;
    for sql in [SQLITE_0003, sql_support::CREATE_SCHEMA_VERSION, SCHEMA_3_VERSIONS, SCHEMA_3_ROWS] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
    }
    pool.close().await;

    let store = SqliteStore::open(&path).await.expect("a schema-3 database opens");
    assert_eq!(schema_versions(store.pool()).await, vec![1, 2, 3, 4]);
    assert_eq!(sqlite_tables(store.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
    schema_3_migrated(&store, async || sqlite_mail_due(store.pool()).await).await;
    drop(store);
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(schema_versions(again.pool()).await, vec![1, 2, 3, 4], "migrated once");
    let applied: Vec<i64> = sqlx::query_scalar("SELECT applied_at FROM twofactor_schema_version ORDER BY version")
        .fetch_all(again.pool())
        .await
        .unwrap();
    assert_eq!(applied[..3], [1_700_000_001, 1_700_000_002, 1_700_000_003], "the recorded versions are kept");
    assert_eq!(sqlite_mail_due(again.pool()).await, [("7".into(), Some(5)), ("8".into(), Some(3))]);
}

// ---------------------------------------------------------------- PostgreSQL

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use twofactor::store::PostgresStore;

    async fn store() -> PostgresStore {
        PostgresStore::connect(&store_support::pg_schema_url().await).await.expect("connect")
    }

    async fn rows(pool: &sqlx::PgPool) -> Vec<Row> {
        sqlx::query_as("SELECT id, login, email, role, version, document FROM twofactor_users ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("rows")
    }

    async fn pg_mail_due(pool: &sqlx::PgPool) -> Vec<(String, Option<i64>)> {
        sqlx::query_as("SELECT id, mail_due FROM twofactor_users ORDER BY id").fetch_all(pool).await.expect("mail_due")
    }

    async fn tables(pool: &sqlx::PgPool) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             ORDER BY table_name",
        )
        .fetch_all(pool)
        .await
        .expect("tables")
    }

    async fn versions(pool: &sqlx::PgPool) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM twofactor_schema_version ORDER BY version")
            .fetch_all(pool)
            .await
            .expect("versions")
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
        assert_eq!(versions(store.pool()).await, vec![1, 2, 3, 4]);
        assert_eq!(tables(store.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
    }

    #[tokio::test]
    async fn postgres_the_table_has_exactly_the_seven_columns() {
        let store = store().await;
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'twofactor_users' ORDER BY ordinal_position",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let shape: Vec<(&str, &str, &str)> =
            columns.iter().map(|(n, t, null)| (n.as_str(), t.as_str(), null.as_str())).collect();
        assert_eq!(
            shape,
            [
                ("id", "text", "NO"),
                ("login", "text", "NO"),
                ("email", "text", "NO"),
                ("role", "text", "NO"),
                ("version", "bigint", "NO"),
                ("document", "text", "YES"),
                ("mail_due", "bigint", "YES"),
            ]
        );
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT tc.constraint_type::text, kcu.column_name::text FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name \
               AND tc.table_schema = kcu.table_schema \
             WHERE tc.table_schema = current_schema() AND tc.table_name = 'twofactor_users' \
             ORDER BY tc.constraint_type, kcu.column_name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(keys, [("PRIMARY KEY".to_owned(), "id".to_owned()), ("UNIQUE".to_owned(), "login".to_owned())]);
    }

    #[tokio::test]
    async fn postgres_documents_round_trip_byte_for_byte() {
        let store = store().await;
        documents_round_trip(&store, async || rows(store.pool()).await).await;
    }

    #[tokio::test]
    async fn postgres_a_taken_login_or_id_is_a_duplicate() {
        duplicates(&store().await).await;
    }

    #[tokio::test]
    async fn postgres_a_newer_schema_is_refused() {
        let url = store_support::pg_schema_url().await;
        let store = PostgresStore::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO twofactor_schema_version (version, applied_at) VALUES (99, 0)")
            .execute(store.pool())
            .await
            .unwrap();
        let err = PostgresStore::connect(&url).await.expect_err("a schema from a newer crate");
        assert!(matches!(&err, StoreError::Backend(m) if m.contains("version 99")), "{err}");
        assert_eq!(versions(store.pool()).await, vec![1, 2, 3, 4, 99]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_pools_race_swaps_with_one_winner_per_version() {
        let url = store_support::pg_schema_url().await;
        let mut stores = Vec::new();
        for _ in 0..3 {
            stores.push(Arc::new(PostgresStore::connect(&url).await.unwrap()));
        }
        let racer = user(11, "racer");
        stores[0].create_user(&racer.clone().with_document(1, counter(0))).await.unwrap();
        race_rounds(stores, racer.id, 15, 4).await;
    }

    #[tokio::test]
    async fn postgres_faults_change_nothing() {
        let store = store().await;
        faults_change_nothing(&store, async |on| {
            let sql = if on {
                "CREATE FUNCTION fail_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$; \
                 CREATE TRIGGER fail_write AFTER INSERT OR UPDATE ON twofactor_users FOR EACH ROW EXECUTE FUNCTION fail_write();"
            } else {
                "DROP TRIGGER fail_write ON twofactor_users; DROP FUNCTION fail_write();"
            };
            sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn postgres_scan_walks_in_id_order() {
        let store = store().await;
        let sql = async |statement: &str| {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(store.pool()).await.expect(statement);
        };
        let ordered = async || -> Vec<String> {
            sqlx::query_scalar("SELECT id FROM twofactor_users WHERE document IS NOT NULL ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap()
        };
        scan_walks_in_id_order(&store, sql, ordered).await;
    }

    #[tokio::test]
    async fn postgres_closed_pool_and_dropped_table_are_errors() {
        let store = store().await;
        let closed = user(9, "closed").with_document(1, counter(1));
        store.create_user(&closed).await.unwrap();
        sqlx::raw_sql("DROP TABLE twofactor_users").execute(store.pool()).await.unwrap();
        assert!(matches!(store.compare_and_swap(closed.id, 1, &counter(2)).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.find_by_id(closed.id).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.create_user(&user(10, "x")).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.scan(None, 10).await, Err(StoreError::Backend(_))));
        store.pool().close().await;
        assert!(matches!(store.scan(None, 10).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.find_by_id(closed.id).await, Err(StoreError::Backend(_))));
        assert!(matches!(store.find_by_login("closed").await, Err(StoreError::Backend(_))));
        assert!(matches!(store.insert_document(closed.id, &counter(1)).await, Err(StoreError::Backend(_))));
    }

    #[tokio::test]
    async fn postgres_corrupt_rows_are_errors_not_panics() {
        let store = store().await;
        let corruptions = [
            "UPDATE twofactor_users SET role = 'root'",
            "UPDATE twofactor_users SET id = ''",
            "UPDATE twofactor_users SET id = E'tab\\there'",
            "UPDATE twofactor_users SET version = -3",
        ];
        for (i, corruption) in corruptions.iter().enumerate() {
            let login = format!("corrupt-{i}");
            let u = user(100 + i as u64, &login).with_document(3, sample_document());
            store.create_user(&u).await.unwrap();
            let sql = format!("{corruption} WHERE login = '{login}'");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
            let found = store.find_by_login(&login).await;
            assert!(matches!(found, Err(StoreError::Corrupt(_))), "{corruption}: {found:?}");
        }
        scan_reports_corrupt_rows(&store).await;
        engine_reports_corrupt_documents(&store).await;
    }

    #[tokio::test]
    async fn postgres_version_and_document_must_agree() {
        let store = store().await;
        store.create_user(&user(1, "written").with_document(1, counter(1))).await.unwrap();
        store.create_user(&user(2, "bare")).await.unwrap();
        let refused = [
            "UPDATE twofactor_users SET document = NULL WHERE id = '1'",
            "UPDATE twofactor_users SET version = 0 WHERE id = '1'",
            "UPDATE twofactor_users SET document = '{}' WHERE id = '2'",
            "UPDATE twofactor_users SET version = 1 WHERE id = '2'",
            "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES ('3', 'c', 'c', 'user', 0, '{}')",
            "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES ('4', 'd', 'd', 'user', 2, NULL)",
        ];
        for sql in refused {
            let err = sqlx::query(sql).execute(store.pool()).await.expect_err(sql);
            let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("23514"), "{sql}: a check violation, got {err}");
        }
        assert_eq!(stored(&store, UserId::from(1_u64)).await, Some((1, counter(1))));
        assert_eq!(stored(&store, UserId::from(2_u64)).await, None);
        assert_eq!(rows(store.pool()).await.len(), 2);

        // Written anyway, with the constraint dropped: an error on read.
        let check: String = sqlx::query_scalar(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'twofactor_users'::regclass AND contype = 'c'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let sql = format!(
            "ALTER TABLE twofactor_users DROP CONSTRAINT \"{check}\"; \
             UPDATE twofactor_users SET document = NULL WHERE id = '1'; \
             UPDATE twofactor_users SET document = '{{}}' WHERE id = '2';"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
        for id in [1_u64, 2] {
            let found = store.find_by_id(UserId::from(id)).await;
            assert!(matches!(found, Err(StoreError::Corrupt(_))), "{id}: {found:?}");
        }
    }

    async fn pg_schema_2(url: &str, accounts: &[LegacyAccount]) {
        let pool = sqlx::PgPool::connect(url).await.expect("pool");
        schema_2_database!(pool, [sql_support::POSTGRES_0001, sql_support::POSTGRES_0002], accounts);
        pool.close().await;
    }

    #[tokio::test]
    async fn postgres_schema_2_migrates_to_credential_documents() {
        let url = store_support::pg_schema_url().await;
        pg_schema_2(&url, &legacy_accounts()).await;
        let store = PostgresStore::connect(&url).await.expect("a schema-2 database opens");
        assert_eq!(versions(store.pool()).await, vec![1, 2, 3, 4]);
        assert_eq!(tables(store.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
        assert_eq!(parsed(rows(store.pool()).await), migrated_rows());
        assert!(pg_mail_due(store.pool()).await.iter().all(|(_, due)| due.is_none()), "0.1.0 queued no mail");
        engine_reads_the_migrated_account(store.clone()).await;
        let again = PostgresStore::connect(&url).await.unwrap();
        assert_eq!(versions(again.pool()).await, vec![1, 2, 3, 4]);
        assert_eq!(parsed(rows(again.pool()).await), migrated_rows());
    }

    #[tokio::test]
    async fn postgres_a_corrupt_schema_2_row_stops_the_migration() {
        let url = store_support::pg_schema_url().await;
        let mut accounts = legacy_accounts();
        accounts.push(LegacyAccount { tf_state: "bogus".to_owned(), ..LegacyAccount::full(13, "broken") });
        pg_schema_2(&url, &accounts).await;

        let err = PostgresStore::connect(&url).await.expect_err("a corrupt row");
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("account 13") && m.contains("tf_state")), "{err}");

        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        assert_eq!(versions(&pool).await, vec![1, 2]);
        assert_eq!(
            tables(&pool).await,
            ["twofactor_accounts", "twofactor_backup_codes", "twofactor_locations", "twofactor_schema_version"]
        );
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM twofactor_accounts), (SELECT COUNT(*) FROM twofactor_backup_codes), \
             (SELECT COUNT(*) FROM twofactor_locations)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(counts, (5, 4, 4));
        sqlx::query("UPDATE twofactor_accounts SET tf_state = 'enabled' WHERE id = 13").execute(&pool).await.unwrap();
        pool.close().await;
        let store = PostgresStore::connect(&url).await.expect("the repaired database opens");
        let rows = parsed(rows(store.pool()).await);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows.iter().find(|r| r.0 == "13").map(|r| &r.5), Some(&full_document()));
    }

    #[tokio::test]
    async fn postgres_many_accounts_migrate_page_by_page() {
        let url = store_support::pg_schema_url().await;
        let accounts = many_accounts();
        pg_schema_2(&url, &accounts).await;
        let store = PostgresStore::connect(&url).await.expect("open");
        check_many_migrated(&accounts, parsed(rows(store.pool()).await));
    }

    #[tokio::test]
    async fn postgres_mail_due_is_indexed_and_written_with_the_document() {
        let store = store().await;
        mail_due_is_written_with_the_document(&store, async || pg_mail_due(store.pool()).await).await;

        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = 'twofactor_users' AND indexdef LIKE '%mail_due%'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let [(name, definition)] = indexes.as_slice() else { panic!("one index covers mail_due: {indexes:?}") };
        assert_eq!(name, "twofactor_users_mail_due");
        assert!(definition.contains("(mail_due, id) WHERE (mail_due IS NOT NULL)"), "{definition}");

        // With the other ways priced out (this table is far too small for the planner
        // to prefer the index on its own), the query runs on the index, bound
        // parameters and all, in its order: no sort step.
        let mut tx = store.pool().begin().await.unwrap();
        for off in
            ["SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_sort = off"]
        {
            sqlx::query(off).execute(&mut *tx).await.unwrap();
        }
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {MAIL_DUE_QUERY}")))
            .bind(1_800_000_000_i64)
            .bind(100_i64)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("twofactor_users_mail_due")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("Sort")), "no sort step: {plan:?}");
        tx.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn postgres_a_schema_3_database_migrates_to_4() {
        let url = store_support::pg_schema_url().await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for sql in [POSTGRES_0003, sql_support::CREATE_SCHEMA_VERSION, SCHEMA_3_VERSIONS, SCHEMA_3_ROWS] {
            sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
        }
        pool.close().await;

        let store = PostgresStore::connect(&url).await.expect("a schema-3 database opens");
        assert_eq!(versions(store.pool()).await, vec![1, 2, 3, 4]);
        assert_eq!(tables(store.pool()).await, ["twofactor_schema_version", "twofactor_users"]);
        schema_3_migrated(&store, async || pg_mail_due(store.pool()).await).await;
        let again = PostgresStore::connect(&url).await.unwrap();
        assert_eq!(versions(again.pool()).await, vec![1, 2, 3, 4], "migrated once");
        assert_eq!(pg_mail_due(again.pool()).await, [("7".into(), Some(5)), ("8".into(), Some(3))]);
    }
}
