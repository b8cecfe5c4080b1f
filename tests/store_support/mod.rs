//! Store factories shared by the storage tests: SQLite files in temporary directories
//! and, under the `postgres` feature, a fresh PostgreSQL schema per store.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A temporary directory and a database path inside it (the file does not exist yet).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("accounts.db");
    (dir, path)
}

/// The server URL from `TWOFACTOR_TEST_DATABASE_URL`; panics when it is not set.
#[cfg(feature = "postgres")]
pub fn pg_url() -> String {
    std::env::var("TWOFACTOR_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TWOFACTOR_TEST_DATABASE_URL is not set: the `postgres` tests need a PostgreSQL server. \
             Run them as `scripts/with-services cargo test --all-features …` (see scripts/README.md)."
        )
    })
}

/// Creates a fresh schema and returns a URL whose connections use it (via
/// `search_path`), so every store made from it starts empty and tests run in parallel.
#[cfg(feature = "postgres")]
pub async fn pg_schema_url() -> String {
    use sqlx::Connection as _;
    let url = pg_url();
    let schema = unique("twofactor_test");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect to TWOFACTOR_TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.expect("schema");
    admin.close().await.expect("close");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}

/// Runs each generic body of the including file on MemoryStore, a SQLite file and
/// PostgreSQL (a fresh schema; the URL must be set under the `postgres` feature), as
/// `memory::<body>`, `sqlite::<body>` and `postgres::<body>`. A body gets an opener:
/// every store it opens is another connection to the same database (for MemoryStore,
/// a clone). The including file declares `mod store_support;`.
#[allow(unused_macros)]
macro_rules! on_every_store_opener {
    ($($body:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                let store = twofactor::store::MemoryStore::new();
                super::$body(async || store.clone()).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                let (_dir, path) = crate::store_support::temp_db();
                super::$body(async || twofactor::store::SqliteStore::open(&path).await.expect("open")).await;
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                let url = crate::store_support::pg_schema_url().await;
                super::$body(async || twofactor::store::PostgresStore::connect(&url).await.expect("connect")).await;
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_store_opener;
