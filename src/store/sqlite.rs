//! [`SqliteStore`]: users and their credential documents in a SQLite file, the
//! embedded default.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::UserId;
use crate::error::StoreError;
use crate::plumbing::clock::{Clock, SystemClock, Timestamp};
use crate::store::sql::legacy::to_sql;
use crate::store::sql::{Key, SQLITE_MIGRATIONS, store_error};
use crate::store::{Document, ScanPage, Swap, UserRecord};

mod ops {
    crate::store::sql::ops::sql_ops!(sqlx::Sqlite);
}

/// How long a connection waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The pool size for a database file.
const MAX_CONNECTIONS: u32 = 8;
/// Starts a write transaction that takes the database's write lock at once, so
/// concurrent writers wait for each other (up to the busy timeout) instead of failing
/// when a read lock would have to be upgraded.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Users and their credential documents in a SQLite database, on sqlx: one table,
/// `twofactor_users` (id, login, email, role, version, document, and `mail_due`:
/// when the document's earliest queued mail is due, indexed for
/// [`UserStore::mail_due`](crate::store::UserStore::mail_due) and written in the same
/// statement as the document), for applications without a users table of their own
/// (see the README for the columns). A database written by 0.1.0 is migrated when it
/// is opened, in one transaction.
///
/// The database runs in WAL mode with `synchronous = FULL` (a committed swap survives
/// a power loss), a 5 s busy timeout and foreign keys on. Every write is one
/// statement, a version-guarded `UPDATE` or an `INSERT`, so several processes can
/// share one file: their writers take turns, and of N concurrent swaps from one
/// version exactly one succeeds. A user is read with one statement. Clones share the
/// pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::StoreError> {
/// let store = twofactor::store::SqliteStore::open("accounts.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serializes this process's writers, so they queue here rather than in SQLite's
    /// sleeping busy handler (other processes still wait in SQLite).
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path` and applies the
    /// migrations.
    ///
    /// # Errors
    /// The file cannot be opened or created, or a migration failed.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::with_options(options, false).await
    }

    /// Connects with a sqlx SQLite URL (`sqlite://accounts.db?mode=rwc`, or
    /// `sqlite::memory:` for a private in-memory database) and applies the migrations.
    /// An in-memory database lives as long as the store's single connection.
    ///
    /// # Errors
    /// A malformed URL, a database that cannot be opened, or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(store_error)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::with_options(options, in_memory).await
    }

    /// Uses the application's pool and applies the migrations, as
    /// `PostgresStore::from_pool` does. The pool's connect
    /// options are the application's: for the durability [`open`](Self::open) gives,
    /// use WAL with `synchronous = FULL` and keep foreign keys on (sqlx's default).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
    /// let options = SqliteConnectOptions::new()
    ///     .filename("app.db")
    ///     .create_if_missing(true)
    ///     .journal_mode(SqliteJournalMode::Wal)
    ///     .synchronous(SqliteSynchronous::Full);
    /// let pool = SqlitePool::connect_with(options).await?;
    /// let store = twofactor::store::SqliteStore::from_pool(pool).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A failed migration.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        let store = SqliteStore { pool, writer: Arc::new(tokio::sync::Mutex::new(())) };
        store.migrate().await?;
        Ok(store)
    }

    async fn with_options(options: SqliteConnectOptions, in_memory: bool) -> Result<Self, StoreError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = if in_memory {
            // One connection that never closes: the database lives in it.
            SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        }
        // A connection to a local file does not go stale; pinging it on every acquire
        // only costs a round trip through the driver's worker thread.
        .test_before_acquire(false);
        Self::from_pool(connect_when_not_busy(pool, options).await?).await
    }

    /// The connection pool (for the application's own queries and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(store_error)?;
        let now = to_sql(SystemClock.now().0);
        let migrated = ops::migrate(&mut tx, SQLITE_MIGRATIONS, now).await;
        ops::finish(tx, migrated).await
    }

    async fn find(&self, key: Key<'_>) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::find(&mut conn, key).await
    }

    async fn swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        let _writer = self.writer.lock().await;
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::swap(&mut conn, id, expected, document).await
    }

    async fn scan_page(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::scan(&mut conn, after, limit).await
    }

    async fn due_mail(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::due_mail(&mut conn, now, limit).await
    }

    async fn forget_user(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        let _writer = self.writer.lock().await;
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::forget(&mut conn, id, expected).await
    }

    async fn create(&self, user: &UserRecord) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::create(&mut conn, &user.clone().at_first_version()).await
    }
}

/// Connects, retrying while another connection holds the lock that switching a new
/// file to WAL needs: SQLite answers that with `SQLITE_BUSY` at once, without its busy
/// handler, when several processes (or pools) open a fresh file together.
async fn connect_when_not_busy(
    pool: SqlitePoolOptions,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(err) => return Err(store_error(err)),
        }
    }
}

/// `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6), primary or extended.
fn is_busy(err: &sqlx::Error) -> bool {
    let code = err.as_database_error().and_then(|e| e.code()).and_then(|c| c.parse::<i32>().ok());
    code.is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

crate::store::sql::user_store!(SqliteStore);
