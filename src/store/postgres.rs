//! [`PostgresStore`]: accounts in PostgreSQL, shared by many app servers.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::UserId;
use crate::error::StoreError;
use crate::plumbing::clock::{Clock, SystemClock, Timestamp};
use crate::store::sql::legacy::to_sql;
use crate::store::sql::{Key, POSTGRES_MIGRATIONS, store_error};
use crate::store::{Document, ScanPage, Swap, UserRecord};

mod ops {
    crate::store::sql::ops::sql_ops!(sqlx::Postgres);
}

/// The advisory lock key that serializes migrations across processes ("twofacto").
const MIGRATION_LOCK: i64 = 0x7477_6f66_6163_746f;
/// The pool size [`PostgresStore::connect`] uses.
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Users and their credential documents in PostgreSQL, on sqlx: one table,
/// `twofactor_users` (id, login, email, role, version, document, and `mail_due`:
/// when the document's earliest queued mail is due, indexed for
/// [`UserStore::mail_due`](crate::store::UserStore::mail_due) and written in the same
/// statement as the document), for applications without a users table of their own
/// (see the README for the columns). A database written by 0.1.0 is migrated when it
/// is opened, in one transaction.
///
/// Every write is one statement; a swap's `UPDATE … WHERE id = $1 AND version = $2`
/// takes the row lock: of N concurrent swaps from one version, on any number of app
/// servers, exactly one succeeds and the others see a conflict. A user is read with
/// one statement.
/// Clones share the pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::StoreError> {
/// let store = twofactor::store::PostgresStore::connect("postgres://app@db.internal/app").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool of up to 16 connections and applies the migrations. The pool
    /// does not ping a connection before each use (that would double the round trips);
    /// a connection the server dropped fails one call with a backend error and is
    /// discarded. Use [`from_pool`](Self::from_pool) for other settings.
    ///
    /// # Errors
    /// A malformed URL, an unreachable server, or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(store_error)?;
        Self::from_pool(pool).await
    }

    /// Uses the application's pool (its size, TLS, `search_path` …) and applies the
    /// migrations. Several processes may do this at once: an advisory lock makes them
    /// take turns.
    ///
    /// # Errors
    /// A failed migration.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await.map_err(store_error)?;
        let now = to_sql(SystemClock.now().0);
        let migrated = async {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            ops::migrate(&mut tx, POSTGRES_MIGRATIONS, now).await
        }
        .await;
        ops::finish(tx, migrated).await?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool (for the application's own queries and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn find(&self, key: Key<'_>) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::find(&mut conn, key).await
    }

    async fn swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
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
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::forget(&mut conn, id, expected).await
    }

    async fn create(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::create(&mut conn, &user.clone().at_first_version()).await
    }
}

crate::store::sql::user_store!(PostgresStore);
