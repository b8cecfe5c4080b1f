//! The store operations over one connection, written once and instantiated per driver
//! by [`sql_ops!`]. Transactions are started and ended by the caller.

/// The columns of `twofactor_accounts` in bind order: `$1` id, `$2` username (insert)
/// or expected version (update), `$3`… the rest.
macro_rules! account_columns {
    () => {
        "id, username, email, role, password_hash, security_stamp, created_at, tf_state, totp_secret, \
         totp_algorithm, totp_digits, totp_period, totp_last_used_step, tf_started_at, tf_enabled_at, \
         throttle_failures, throttle_until, second_factor_locked, reset_by, reset_by_username, reset_by_role, \
         reset_identity_check, reset_at"
    };
}

/// `INSERT` of a new account at version 1.
pub(crate) const INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO twofactor_accounts (",
    account_columns!(),
    ", version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, 1)"
);

/// The compare-and-swap: every column but `id` and `username`, guarded by the version.
pub(crate) const SWAP_ACCOUNT: &str = "UPDATE twofactor_accounts SET email = $3, role = $4, password_hash = $5, \
     security_stamp = $6, created_at = $7, tf_state = $8, totp_secret = $9, totp_algorithm = $10, \
     totp_digits = $11, totp_period = $12, totp_last_used_step = $13, tf_started_at = $14, tf_enabled_at = $15, \
     throttle_failures = $16, throttle_until = $17, second_factor_locked = $18, reset_by = $19, \
     reset_by_username = $20, reset_by_role = $21, reset_identity_check = $22, reset_at = $23, \
     version = version + 1 WHERE id = $1 AND version = $2";

pub(crate) const SELECT_BY_ID: &str =
    concat!("SELECT ", account_columns!(), ", version FROM twofactor_accounts WHERE id = $1");
pub(crate) const SELECT_BY_USERNAME: &str =
    concat!("SELECT ", account_columns!(), ", version FROM twofactor_accounts WHERE username = $1");
pub(crate) const SELECT_VERSION: &str = "SELECT version FROM twofactor_accounts WHERE id = $1";
pub(crate) const SELECT_BACKUP_CODES: &str =
    "SELECT phc, issued_at, expires_at FROM twofactor_backup_codes WHERE account_id = $1 ORDER BY seq";
pub(crate) const SELECT_LOCATIONS: &str = "SELECT id, token_hash, label, created_at, last_used_at, expires_at \
     FROM twofactor_locations WHERE account_id = $1 ORDER BY seq";
pub(crate) const SELECT_PENDING: &str =
    "SELECT id, expires_at, failures, consumed FROM twofactor_pending_marks WHERE account_id = $1 ORDER BY seq";
pub(crate) const DELETE_CHILDREN: [&str; 3] = [
    "DELETE FROM twofactor_backup_codes WHERE account_id = $1",
    "DELETE FROM twofactor_locations WHERE account_id = $1",
    "DELETE FROM twofactor_pending_marks WHERE account_id = $1",
];
pub(crate) const INSERT_BACKUP_CODES: &str =
    "INSERT INTO twofactor_backup_codes (account_id, seq, phc, issued_at, expires_at) ";
pub(crate) const INSERT_LOCATIONS: &str =
    "INSERT INTO twofactor_locations (account_id, seq, id, token_hash, label, created_at, last_used_at, expires_at) ";
pub(crate) const INSERT_PENDING: &str =
    "INSERT INTO twofactor_pending_marks (account_id, seq, id, expires_at, failures, consumed) ";

pub(crate) const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS twofactor_schema_version \
     (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)";
pub(crate) const SELECT_SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM twofactor_schema_version";
pub(crate) const INSERT_SCHEMA_VERSION: &str =
    "INSERT INTO twofactor_schema_version (version, applied_at) VALUES ($1, $2)";

/// Defines, for the driver `$db`, the functions `find`, `insert`, `swap`,
/// `current_version` and `migrate` over a `&mut` connection (a transaction derefs to
/// one).
macro_rules! sql_ops {
    ($db:ty) => {
        use sqlx::{Row as _, query, query_scalar};
        use $crate::account::{Account, Versioned};
        use $crate::error::StoreError;
        use $crate::store::Swap;
        use $crate::store::sql::ops::*;
        use $crate::store::sql::rows::{self, AccountRow, BackupCodeRow, LocationRow, PendingRow, Rows};
        use $crate::store::sql::{Key, Migration, schema_too_new, store_error};

        type Conn = <$db as sqlx::Database>::Connection;
        type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>;

        /// Binds `$3`… (every account column but `id` and `username`).
        fn bind_fields<'q>(q: Query<'q>, r: &AccountRow) -> Query<'q> {
            q.bind(r.email.clone())
                .bind(r.role.clone())
                .bind(r.password_hash.clone())
                .bind(r.security_stamp)
                .bind(r.created_at)
                .bind(r.tf_state.clone())
                .bind(r.totp_secret.clone())
                .bind(r.totp_algorithm.clone())
                .bind(r.totp_digits)
                .bind(r.totp_period)
                .bind(r.totp_last_used_step)
                .bind(r.tf_started_at)
                .bind(r.tf_enabled_at)
                .bind(r.throttle_failures)
                .bind(r.throttle_until)
                .bind(r.second_factor_locked)
                .bind(r.reset_by)
                .bind(r.reset_by_username.clone())
                .bind(r.reset_by_role.clone())
                .bind(r.reset_identity_check.clone())
                .bind(r.reset_at)
        }

        fn account_row(row: &<$db as sqlx::Database>::Row) -> Result<(AccountRow, i64), sqlx::Error> {
            Ok((
                AccountRow {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    email: row.try_get("email")?,
                    role: row.try_get("role")?,
                    password_hash: row.try_get("password_hash")?,
                    security_stamp: row.try_get("security_stamp")?,
                    created_at: row.try_get("created_at")?,
                    tf_state: row.try_get("tf_state")?,
                    totp_secret: row.try_get("totp_secret")?,
                    totp_algorithm: row.try_get("totp_algorithm")?,
                    totp_digits: row.try_get("totp_digits")?,
                    totp_period: row.try_get("totp_period")?,
                    totp_last_used_step: row.try_get("totp_last_used_step")?,
                    tf_started_at: row.try_get("tf_started_at")?,
                    tf_enabled_at: row.try_get("tf_enabled_at")?,
                    throttle_failures: row.try_get("throttle_failures")?,
                    throttle_until: row.try_get("throttle_until")?,
                    second_factor_locked: row.try_get("second_factor_locked")?,
                    reset_by: row.try_get("reset_by")?,
                    reset_by_username: row.try_get("reset_by_username")?,
                    reset_by_role: row.try_get("reset_by_role")?,
                    reset_identity_check: row.try_get("reset_identity_check")?,
                    reset_at: row.try_get("reset_at")?,
                },
                row.try_get("version")?,
            ))
        }

        /// Reads an account and its child rows. Run it in a transaction so that the
        /// rows come from one snapshot.
        pub(crate) async fn find(conn: &mut Conn, key: Key<'_>) -> Result<Option<Versioned<Account>>, StoreError> {
            let row = match key {
                Key::Id(id) => query(SELECT_BY_ID).bind(rows::to_sql(id.0)).fetch_optional(&mut *conn).await,
                Key::Username(name) => query(SELECT_BY_USERNAME).bind(name).fetch_optional(&mut *conn).await,
            }
            .map_err(store_error)?;
            let Some(row) = row else { return Ok(None) };
            let (account, version) = account_row(&row).map_err(store_error)?;
            let id = account.id;
            let backup_codes = query(SELECT_BACKUP_CODES)
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?
                .iter()
                .map(|r| {
                    Ok(BackupCodeRow {
                        phc: r.try_get("phc")?,
                        issued_at: r.try_get("issued_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(store_error)?;
            let locations = query(SELECT_LOCATIONS)
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?
                .iter()
                .map(|r| {
                    Ok(LocationRow {
                        id: r.try_get("id")?,
                        token_hash: r.try_get("token_hash")?,
                        label: r.try_get("label")?,
                        created_at: r.try_get("created_at")?,
                        last_used_at: r.try_get("last_used_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(store_error)?;
            let pending = query(SELECT_PENDING)
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?
                .iter()
                .map(|r| {
                    Ok(PendingRow {
                        id: r.try_get("id")?,
                        expires_at: r.try_get("expires_at")?,
                        failures: r.try_get("failures")?,
                        consumed: r.try_get("consumed")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(store_error)?;
            let record = rows::decode(Rows { account, backup_codes, locations, pending })?;
            Ok(Some(Versioned { version: rows::from_sql(version), record }))
        }

        /// Inserts the child rows of an account (whose old child rows are gone).
        async fn insert_children(conn: &mut Conn, r: &Rows) -> Result<(), StoreError> {
            let id = r.account.id;
            if !r.backup_codes.is_empty() {
                let mut b = sqlx::QueryBuilder::<$db>::new(INSERT_BACKUP_CODES);
                b.push_values(r.backup_codes.iter().zip(0i64..), |mut v, (c, seq)| {
                    v.push_bind(id)
                        .push_bind(seq)
                        .push_bind(c.phc.clone())
                        .push_bind(c.issued_at)
                        .push_bind(c.expires_at);
                });
                b.build().execute(&mut *conn).await.map_err(store_error)?;
            }
            if !r.locations.is_empty() {
                let mut b = sqlx::QueryBuilder::<$db>::new(INSERT_LOCATIONS);
                b.push_values(r.locations.iter().zip(0i64..), |mut v, (l, seq)| {
                    v.push_bind(id)
                        .push_bind(seq)
                        .push_bind(l.id.clone())
                        .push_bind(l.token_hash.clone())
                        .push_bind(l.label.clone())
                        .push_bind(l.created_at)
                        .push_bind(l.last_used_at)
                        .push_bind(l.expires_at);
                });
                b.build().execute(&mut *conn).await.map_err(store_error)?;
            }
            if !r.pending.is_empty() {
                let mut b = sqlx::QueryBuilder::<$db>::new(INSERT_PENDING);
                b.push_values(r.pending.iter().zip(0i64..), |mut v, (p, seq)| {
                    v.push_bind(id)
                        .push_bind(seq)
                        .push_bind(p.id.clone())
                        .push_bind(p.expires_at)
                        .push_bind(p.failures)
                        .push_bind(p.consumed);
                });
                b.build().execute(&mut *conn).await.map_err(store_error)?;
            }
            Ok(())
        }

        /// Inserts a new account at version 1 (a taken id or username is
        /// [`StoreError::Duplicate`]). The caller commits.
        pub(crate) async fn insert(conn: &mut Conn, account: &Account) -> Result<(), StoreError> {
            let r = rows::encode(account);
            let q = query(INSERT_ACCOUNT).bind(r.account.id).bind(r.account.username.clone());
            bind_fields(q, &r.account).execute(&mut *conn).await.map_err(store_error)?;
            insert_children(conn, &r).await
        }

        /// The guarded update and the child rows. On [`Swap::Conflict`] nothing was
        /// written; the caller commits a [`Swap::Swapped`] and rolls back otherwise.
        pub(crate) async fn swap(conn: &mut Conn, expected: u64, account: &Account) -> Result<Swap, StoreError> {
            let r = rows::encode(account);
            let q = query(SWAP_ACCOUNT).bind(r.account.id).bind(rows::to_sql(expected));
            let done = bind_fields(q, &r.account).execute(&mut *conn).await.map_err(store_error)?;
            if done.rows_affected() != 1 {
                return Ok(Swap::Conflict);
            }
            for delete in DELETE_CHILDREN {
                query(delete).bind(r.account.id).execute(&mut *conn).await.map_err(store_error)?;
            }
            insert_children(conn, &r).await?;
            let version = expected.checked_add(1).ok_or_else(|| StoreError::Corrupt("version overflow".to_owned()))?;
            Ok(Swap::Swapped { version })
        }

        /// The stored version of an account, if it exists.
        #[allow(dead_code, reason = "only the SQLite store pre-checks versions")]
        pub(crate) async fn current_version(conn: &mut Conn, id: i64) -> Result<Option<u64>, StoreError> {
            let v: Option<i64> =
                query_scalar(SELECT_VERSION).bind(id).fetch_optional(&mut *conn).await.map_err(store_error)?;
            Ok(v.map(rows::from_sql))
        }

        /// Applies the migrations newer than the recorded schema version. Run it in a
        /// transaction that excludes other migrators; the caller commits.
        pub(crate) async fn migrate(conn: &mut Conn, migrations: &[Migration], now: i64) -> Result<(), StoreError> {
            query(CREATE_SCHEMA_VERSION).execute(&mut *conn).await.map_err(store_error)?;
            let current: i64 = query_scalar(SELECT_SCHEMA_VERSION).fetch_one(&mut *conn).await.map_err(store_error)?;
            let known = migrations.last().map_or(0, |m| m.version);
            if current > known {
                return Err(schema_too_new(current, known));
            }
            for m in migrations.iter().filter(|m| m.version > current) {
                sqlx::raw_sql(m.sql).execute(&mut *conn).await.map_err(store_error)?;
                query(INSERT_SCHEMA_VERSION)
                    .bind(m.version)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(store_error)?;
            }
            Ok(())
        }
    };
}
pub(crate) use sql_ops;
