//! The store operations over one connection, written once and instantiated per driver
//! by [`sql_ops!`]. Transactions are started and ended by the caller.

/// The columns of `twofactor_accounts` in bind order: `$1` id, `$2` username (insert)
/// or expected version (update), `$3`… the rest.
macro_rules! account_columns {
    () => {
        "id, username, email, role, password_hash, security_stamp, created_at, tf_state, totp_secret, \
         totp_algorithm, totp_digits, totp_period, totp_last_used_step, tf_started_at, tf_enabled_at, \
         throttle_failures, throttle_until, second_factor_locked, reset_by, reset_by_username, reset_by_role, \
         reset_identity_check, reset_at, pending_marks, second_factor_failures, retired_totp_step"
    };
}

/// `INSERT` of a new account at version 1.
pub(crate) const INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO twofactor_accounts (",
    account_columns!(),
    ", version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, 1)"
);

/// The compare-and-swap: every column but `id` and `username`, guarded by the version.
pub(crate) const SWAP_ACCOUNT: &str = "UPDATE twofactor_accounts SET email = $3, role = $4, password_hash = $5, \
     security_stamp = $6, created_at = $7, tf_state = $8, totp_secret = $9, totp_algorithm = $10, \
     totp_digits = $11, totp_period = $12, totp_last_used_step = $13, tf_started_at = $14, tf_enabled_at = $15, \
     throttle_failures = $16, throttle_until = $17, second_factor_locked = $18, reset_by = $19, \
     reset_by_username = $20, reset_by_role = $21, reset_identity_check = $22, reset_at = $23, pending_marks = $24, \
     second_factor_failures = $25, retired_totp_step = $26, version = version + 1 WHERE id = $1 AND version = $2";

/// Reads an account and all its child rows in ONE statement (so from one snapshot,
/// without a transaction). The CTE `wanted` selects the account by `$1`. Every branch
/// has the same shape: `kind` (0 account, 1 backup code, 2 location), `seq`, 15
/// integers, 9 texts, 2 byte strings and 1 boolean; the account branch comes first and
/// types every column, so the other branches' NULLs take its types.
macro_rules! select_account {
    ($wanted:literal) => {
        concat!(
            "WITH wanted AS (SELECT * FROM twofactor_accounts WHERE ",
            $wanted,
            ") \
             SELECT CAST(0 AS BIGINT) AS kind, CAST(0 AS BIGINT) AS seq, \
               id, security_stamp, version, created_at, totp_digits, totp_period, totp_last_used_step, \
               tf_started_at, tf_enabled_at, throttle_failures, throttle_until, reset_by, reset_at, \
               second_factor_failures, retired_totp_step, username, email, role, password_hash, tf_state, totp_algorithm, reset_by_username, reset_by_role, \
               reset_identity_check, totp_secret, pending_marks, second_factor_locked FROM wanted \
             UNION ALL SELECT CAST(1 AS BIGINT), c.seq, c.issued_at, c.expires_at, NULL, NULL, NULL, NULL, NULL, \
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.phc, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
               NULL FROM twofactor_backup_codes c JOIN wanted w ON c.account_id = w.id \
             UNION ALL SELECT CAST(2 AS BIGINT), l.seq, l.created_at, l.last_used_at, l.expires_at, NULL, NULL, \
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, l.label, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
               NULL, l.id, l.token_hash, NULL FROM twofactor_locations l JOIN wanted w ON l.account_id = w.id \
             ORDER BY 1, 2"
        )
    };
}
pub(crate) const SELECT_BY_ID: &str = select_account!("id = $1");
pub(crate) const SELECT_BY_USERNAME: &str = select_account!("username = $1");
pub(crate) const SELECT_VERSION: &str = "SELECT version FROM twofactor_accounts WHERE id = $1";
pub(crate) const DELETE_CHILDREN: [&str; 2] = [
    "DELETE FROM twofactor_backup_codes WHERE account_id = $1",
    "DELETE FROM twofactor_locations WHERE account_id = $1",
];
pub(crate) const INSERT_BACKUP_CODES: &str =
    "INSERT INTO twofactor_backup_codes (account_id, seq, phc, issued_at, expires_at) ";
pub(crate) const INSERT_LOCATIONS: &str =
    "INSERT INTO twofactor_locations (account_id, seq, id, token_hash, label, created_at, last_used_at, expires_at) ";

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
        use $crate::store::sql::rows::{self, AccountRow, BackupCodeRow, LocationRow, Rows};
        use $crate::store::sql::{Key, Migration, schema_too_new, store_error};

        type Conn = <$db as sqlx::Database>::Connection;
        type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>;

        /// Binds `$3`…`$26` (every account column but `id` and `username`).
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
                .bind(r.pending_marks.clone())
                .bind(r.second_factor_failures)
                .bind(r.retired_totp_step)
        }

        /// Decodes the rows of [`SELECT_BY_ID`] / [`SELECT_BY_USERNAME`].
        fn decode_rows(found: &[<$db as sqlx::Database>::Row]) -> Result<Option<(Rows, i64)>, sqlx::Error> {
            let mut account = None;
            let (mut backup_codes, mut locations) = (Vec::new(), Vec::new());
            for row in found {
                // Columns: 0 kind, 1 seq, 2..=16 integers, 17..=25 texts, 26..=27 bytes, 28 boolean.
                let int = |i: usize| row.try_get::<Option<i64>, _>(1 + i);
                let req = |i: usize| row.try_get::<i64, _>(1 + i);
                let text = |i: usize| row.try_get::<Option<String>, _>(16 + i);
                let req_text = |i: usize| row.try_get::<String, _>(16 + i);
                let bytes = |i: usize| row.try_get::<Option<Vec<u8>>, _>(25 + i);
                let req_bytes = |i: usize| row.try_get::<Vec<u8>, _>(25 + i);
                match row.try_get::<i64, _>(0)? {
                    0 => {
                        account = Some((
                            AccountRow {
                                id: req(1)?,
                                security_stamp: req(2)?,
                                created_at: req(4)?,
                                totp_digits: int(5)?,
                                totp_period: int(6)?,
                                totp_last_used_step: int(7)?,
                                tf_started_at: int(8)?,
                                tf_enabled_at: int(9)?,
                                throttle_failures: req(10)?,
                                throttle_until: int(11)?,
                                reset_by: int(12)?,
                                reset_at: int(13)?,
                                second_factor_failures: req(14)?,
                                retired_totp_step: req(15)?,
                                username: req_text(1)?,
                                email: req_text(2)?,
                                role: req_text(3)?,
                                password_hash: req_text(4)?,
                                tf_state: req_text(5)?,
                                totp_algorithm: text(6)?,
                                reset_by_username: text(7)?,
                                reset_by_role: text(8)?,
                                reset_identity_check: text(9)?,
                                totp_secret: bytes(1)?,
                                pending_marks: req_bytes(2)?,
                                second_factor_locked: row.try_get(28)?,
                            },
                            req(3)?,
                        ))
                    }
                    1 => {
                        backup_codes.push(BackupCodeRow { issued_at: req(1)?, expires_at: int(2)?, phc: req_text(1)? })
                    }
                    _ => locations.push(LocationRow {
                        created_at: req(1)?,
                        last_used_at: req(2)?,
                        expires_at: req(3)?,
                        label: req_text(1)?,
                        id: req_bytes(1)?,
                        token_hash: req_bytes(2)?,
                    }),
                }
            }
            Ok(account.map(|(account, version)| (Rows { account, backup_codes, locations }, version)))
        }

        /// Reads an account and its child rows, in one statement.
        pub(crate) async fn find(conn: &mut Conn, key: Key<'_>) -> Result<Option<Versioned<Account>>, StoreError> {
            let found = match key {
                Key::Id(id) => query(SELECT_BY_ID).bind(rows::to_sql(id.0)).fetch_all(&mut *conn).await,
                Key::Username(name) => query(SELECT_BY_USERNAME).bind(name).fetch_all(&mut *conn).await,
            }
            .map_err(store_error)?;
            let Some((rows, version)) = decode_rows(&found).map_err(store_error)? else { return Ok(None) };
            let record = rows::decode(rows)?;
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

        /// Ends a write transaction: commits when the work succeeded and `keep` accepts
        /// its value, rolls back otherwise (a failed rollback is reported only when the
        /// work itself succeeded; after a failure, the work's error is the one that
        /// matters and dropping the connection rolls back anyway).
        pub(crate) async fn finish<T>(
            tx: sqlx::Transaction<'_, $db>,
            work: Result<T, StoreError>,
            keep: impl FnOnce(&T) -> bool,
        ) -> Result<T, StoreError> {
            match work {
                Ok(value) if keep(&value) => tx.commit().await.map(|()| value).map_err(store_error),
                Ok(value) => tx.rollback().await.map(|()| value).map_err(store_error),
                Err(err) => {
                    let _ = tx.rollback().await;
                    Err(err)
                }
            }
        }

        /// The stored version of an account, if it exists.
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
