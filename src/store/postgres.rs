//! [`PostgresStore`]: accounts in PostgreSQL, shared by many app servers.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::account::{Account, AccountId, Versioned};
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::store::sql::rows::to_sql;
use crate::store::sql::{Key, POSTGRES_MIGRATIONS, store_error};
use crate::store::{Swap, UserStore};

mod ops {
    crate::store::sql::ops::sql_ops!(sqlx::Postgres);
}

/// The advisory lock key that serializes migrations across processes ("twofacto").
const MIGRATION_LOCK: i64 = 0x7477_6f66_6163_746f;
/// The pool size [`PostgresStore::connect`] uses.
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accounts in PostgreSQL (see the README for the tables), on sqlx.
///
/// Every write is one transaction whose `UPDATE … WHERE id = $1 AND version = $2`
/// takes the row lock: of N concurrent swaps from one version, on any number of app
/// servers, exactly one succeeds and the others see a conflict. A record is read with
/// one statement, so from one snapshot.
/// Clones share the pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), twofactor::StoreError> {
/// let store = twofactor::PostgresStore::connect("postgres://app@db.internal/app").await?;
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
        ops::finish(tx, migrated, |_| true).await?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool (for the application's own queries and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn find(&self, key: Key<'_>) -> Result<Option<Versioned<Account>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        ops::find(&mut conn, key).await
    }
}

impl UserStore for PostgresStore {
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let inserted = ops::insert(&mut tx, account).await;
        ops::finish(tx, inserted, |_| true).await
    }

    async fn find_by_id(&self, id: AccountId) -> Result<Option<Versioned<Account>>, StoreError> {
        self.find(Key::Id(id)).await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<Versioned<Account>>, StoreError> {
        self.find(Key::Username(username)).await
    }

    async fn compare_and_swap(&self, expected: u64, account: &Account) -> Result<Swap, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        // Versions only grow: a stale expectation is a conflict without a transaction
        // or a row lock. The write below is guarded by the version anyway.
        if ops::current_version(&mut conn, to_sql(account.id.0)).await? != Some(expected) {
            return Ok(Swap::Conflict);
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(store_error)?;
        let swapped = ops::swap(&mut tx, expected, account).await;
        ops::finish(tx, swapped, |swap| matches!(swap, Swap::Swapped { .. })).await
    }
}
