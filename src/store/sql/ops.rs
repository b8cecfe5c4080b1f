//! The store operations over one connection, written once and instantiated per driver
//! by [`sql_ops!`]. Each live operation is one statement on `twofactor_users`, so it
//! is atomic without a transaction; the migrations run in the caller's transaction.

use crate::plumbing::clock::Timestamp;
use crate::store::Document;

/// The columns a user is read with.
macro_rules! user_columns {
    () => {
        "SELECT id, login, email, role, version, document FROM twofactor_users WHERE "
    };
}
pub(crate) const SELECT_BY_ID: &str = concat!(user_columns!(), "id = $1");
pub(crate) const SELECT_BY_LOGIN: &str = concat!(user_columns!(), "login = $1");
/// A page of the walk over users with a document, in id order after `$1`.
pub(crate) const SCAN: &str = concat!(user_columns!(), "document IS NOT NULL AND id > $1 ORDER BY id LIMIT $2");
/// The compare-and-swap (also the first insert, from version 0): one guarded update,
/// which writes the document's due mail time with it.
pub(crate) const SWAP_DOCUMENT: &str = "UPDATE twofactor_users SET document = $3, mail_due = $4, \
     version = version + 1 WHERE id = $1 AND version = $2";
/// Forgetting a user: the whole row (the shipped stores keep the users), if its
/// version is still `$2`.
pub(crate) const DELETE_USER: &str = "DELETE FROM twofactor_users WHERE id = $1 AND version = $2";
pub(crate) const INSERT_USER: &str = "INSERT INTO twofactor_users (id, login, email, role, version, document, \
     mail_due) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Schema 3's insert, for migration 3's conversion: `mail_due` comes with migration 4
/// (and a converted document queues no mail).
pub(crate) const INSERT_USER_SCHEMA_3: &str =
    "INSERT INTO twofactor_users (id, login, email, role, version, document) VALUES ($1, $2, $3, $4, $5, $6)";
/// The users with mail due by `$1`, most overdue first, at most `$2` (through the
/// partial index on `(mail_due, id)`).
pub(crate) const SELECT_MAIL_DUE: &str = "SELECT id FROM twofactor_users \
     WHERE mail_due IS NOT NULL AND mail_due <= $1 ORDER BY mail_due, id LIMIT $2";

pub(crate) const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS twofactor_schema_version \
     (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)";
pub(crate) const SELECT_SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM twofactor_schema_version";
pub(crate) const INSERT_SCHEMA_VERSION: &str =
    "INSERT INTO twofactor_schema_version (version, applied_at) VALUES ($1, $2)";

/// Schema 2's tables, read by migration 3 a page of accounts at a time.
pub(crate) const LEGACY_PAGE: i64 = 500;
pub(crate) const LEGACY_ACCOUNTS: &str = "SELECT id, username, email, role, password_hash, security_stamp, \
     created_at, tf_state, totp_secret, totp_algorithm, totp_digits, totp_period, totp_last_used_step, \
     tf_started_at, tf_enabled_at, throttle_failures, throttle_until, second_factor_locked, reset_by, \
     reset_by_username, reset_by_role, reset_identity_check, reset_at, pending_marks, second_factor_failures, \
     retired_totp_step, version FROM twofactor_accounts WHERE id >= $1 ORDER BY id LIMIT $2";
pub(crate) const LEGACY_BACKUP_CODES: &str = "SELECT account_id, phc, issued_at, expires_at \
     FROM twofactor_backup_codes WHERE account_id >= $1 AND account_id <= $2 ORDER BY account_id, seq";
pub(crate) const LEGACY_LOCATIONS: &str = "SELECT account_id, id, token_hash, label, created_at, last_used_at, \
     expires_at FROM twofactor_locations WHERE account_id >= $1 AND account_id <= $2 ORDER BY account_id, seq";
pub(crate) const DROP_LEGACY: [&str; 3] =
    ["DROP TABLE twofactor_backup_codes", "DROP TABLE twofactor_locations", "DROP TABLE twofactor_accounts"];

/// A time as the `mail_due` column holds it: Unix seconds, saturating at `i64::MAX`
/// (which no clock reaches), so the column orders as the times do.
pub(crate) fn seconds(at: Timestamp) -> i64 {
    i64::try_from(at.0).unwrap_or(i64::MAX)
}

/// The `mail_due` value for `document`: when its earliest queued mail is due, `NULL`
/// when none waits.
pub(crate) fn mail_due_of(document: &Document) -> Option<i64> {
    document.mail_due_at().map(seconds)
}

/// Defines, for the driver `$db`, the functions `find`, `scan`, `due_mail`, `swap`,
/// `create`, `migrate` and `finish` over a `&mut` connection (a transaction derefs
/// to one).
macro_rules! sql_ops {
    ($db:ty) => {
        use sqlx::{Row as _, query, query_scalar};
        use $crate::UserId;
        use $crate::account::Role;
        use $crate::error::StoreError;
        use $crate::plumbing::clock::Timestamp;
        use $crate::store::sql::legacy::{self, AccountRow, BackupCodeRow, LocationRow, Rows};
        use $crate::store::sql::ops::*;
        use $crate::store::sql::{Key, Migration, schema_too_new, store_error};
        use $crate::store::{Document, ScanPage, Swap, UserRecord};

        type Conn = <$db as sqlx::Database>::Connection;

        /// Decodes a row of [`SELECT_BY_ID`] / [`SELECT_BY_LOGIN`].
        fn decode(row: &<$db as sqlx::Database>::Row) -> Result<UserRecord, StoreError> {
            let get = |e: sqlx::Error| store_error(e);
            let id: String = row.try_get(0).map_err(get)?;
            let id = UserId::new(&id).map_err(|e| StoreError::Corrupt(format!("user id: {e}")))?;
            let role: String = row.try_get(3).map_err(get)?;
            let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt("role".to_owned()))?;
            let user = UserRecord::new(
                id,
                row.try_get::<String, _>(1).map_err(get)?,
                row.try_get::<String, _>(2).map_err(get)?,
                role,
            );
            let version: i64 = row.try_get(4).map_err(get)?;
            let document: Option<String> = row.try_get(5).map_err(get)?;
            Ok(match (u64::try_from(version), document) {
                (Ok(0), None) => user,
                (Ok(version), Some(json)) if version > 0 => user.with_document(version, Document::from_json(json)),
                _ => return Err(StoreError::Corrupt("version and document disagree".to_owned())),
            })
        }

        /// Reads a user and its document, in one statement.
        pub(crate) async fn find(conn: &mut Conn, key: Key<'_>) -> Result<Option<UserRecord>, StoreError> {
            let found = match key {
                Key::Id(id) => query(SELECT_BY_ID).bind(id.as_str()).fetch_optional(&mut *conn).await,
                Key::Login(login) => query(SELECT_BY_LOGIN).bind(login).fetch_optional(&mut *conn).await,
            }
            .map_err(store_error)?;
            found.as_ref().map(decode).transpose()
        }

        /// A page of users with a document after the cursor (the last id of the page
        /// before; every id sorts after the empty text).
        pub(crate) async fn scan(conn: &mut Conn, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
            let limit = limit.max(1);
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows =
                query(SCAN).bind(after.unwrap_or("")).bind(fetch).fetch_all(&mut *conn).await.map_err(store_error)?;
            let more = rows.len() > limit;
            let users = rows.iter().take(limit).map(decode).collect::<Result<Vec<_>, _>>()?;
            let next = users.last().filter(|_| more).map(|u| u.id.to_string());
            Ok(ScanPage::new(users, next))
        }

        /// The users with mail due by `now`, most overdue first (ties in id order), at
        /// most `limit` (0 counts as 1).
        pub(crate) async fn due_mail(conn: &mut Conn, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
            let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
            let ids: Vec<String> = query_scalar(SELECT_MAIL_DUE)
                .bind(seconds(now))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?;
            ids.iter().map(|id| UserId::new(id).map_err(|e| StoreError::Corrupt(format!("user id: {e}")))).collect()
        }

        /// Writes `document` (and when its mail is due) over version `expected` (0:
        /// the first document), in one guarded statement.
        pub(crate) async fn swap(
            conn: &mut Conn,
            id: UserId,
            expected: u64,
            document: &Document,
        ) -> Result<Swap, StoreError> {
            // A stored version is a non-negative BIGINT: one above i64::MAX is never the
            // stored one, so the swap is a plain conflict (as on any other store).
            let Ok(expected_sql) = i64::try_from(expected) else { return Ok(Swap::Conflict) };
            let done = query(SWAP_DOCUMENT)
                .bind(id.as_str())
                .bind(expected_sql)
                .bind(document.as_json())
                .bind(mail_due_of(document))
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
            Ok(if done.rows_affected() == 1 { Swap::Swapped { version: expected + 1 } } else { Swap::Conflict })
        }

        /// Deletes the user's row if its version is still `expected`.
        pub(crate) async fn forget(conn: &mut Conn, id: UserId, expected: u64) -> Result<Swap, StoreError> {
            let Ok(expected_sql) = i64::try_from(expected) else { return Ok(Swap::Conflict) };
            let done = query(DELETE_USER)
                .bind(id.as_str())
                .bind(expected_sql)
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
            Ok(if done.rows_affected() == 1 { Swap::Swapped { version: 0 } } else { Swap::Conflict })
        }

        /// Inserts a user, with its document at the record's version (and when its
        /// mail is due) if it has one.
        pub(crate) async fn create(conn: &mut Conn, user: &UserRecord) -> Result<(), StoreError> {
            insert_user(conn, user, true).await
        }

        /// Inserts a user; `mail_due` is written only from schema 4 on (migration 3
        /// inserts before the column exists).
        async fn insert_user(conn: &mut Conn, user: &UserRecord, with_mail_due: bool) -> Result<(), StoreError> {
            let document = user.credentials.as_ref().map(|c| &c.document);
            let version = user.credentials.as_ref().map_or(0, |c| c.version);
            let version = i64::try_from(version).map_err(|_| StoreError::Corrupt("version overflow".to_owned()))?;
            let statement = query(if with_mail_due { INSERT_USER } else { INSERT_USER_SCHEMA_3 })
                .bind(user.id.as_str())
                .bind(user.login.as_str())
                .bind(user.email.as_str())
                .bind(user.role.as_str())
                .bind(version)
                .bind(document.map(Document::as_json));
            let statement = if with_mail_due { statement.bind(document.and_then(mail_due_of)) } else { statement };
            statement.execute(&mut *conn).await.map_err(store_error)?;
            Ok(())
        }

        /// Ends a write transaction: commits when the work succeeded, rolls back
        /// otherwise (after a failure the work's error is the one that matters, and
        /// dropping the connection rolls back anyway).
        pub(crate) async fn finish<T>(
            tx: sqlx::Transaction<'_, $db>,
            work: Result<T, StoreError>,
        ) -> Result<T, StoreError> {
            match work {
                Ok(value) => tx.commit().await.map(|()| value).map_err(store_error),
                Err(err) => {
                    let _ = tx.rollback().await;
                    Err(err)
                }
            }
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
                if m.version == 3 {
                    convert_schema_2(conn).await?;
                }
                query(INSERT_SCHEMA_VERSION)
                    .bind(m.version)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(store_error)?;
            }
            Ok(())
        }

        /// Migration 3's data step: every schema-2 account becomes a user row with
        /// its credential document (same id as decimal text, same version), then the
        /// old tables go. A row that does not decode stops the migration, naming the
        /// account id, and the caller's transaction keeps the old tables untouched.
        async fn convert_schema_2(conn: &mut Conn) -> Result<(), StoreError> {
            // The smallest id of the next page. Ids are bit casts of `u64`s, so every
            // `i64` is one, down to `i64::MIN` itself.
            let mut from = i64::MIN;
            loop {
                let accounts = query(LEGACY_ACCOUNTS)
                    .bind(from)
                    .bind(LEGACY_PAGE)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(store_error)?;
                let (Some(first), Some(last)) = (accounts.first(), accounts.last()) else { break };
                let (low, high): (i64, i64) =
                    (first.try_get(0).map_err(store_error)?, last.try_get(0).map_err(store_error)?);
                let codes =
                    query(LEGACY_BACKUP_CODES).bind(low).bind(high).fetch_all(&mut *conn).await.map_err(store_error)?;
                let locations =
                    query(LEGACY_LOCATIONS).bind(low).bind(high).fetch_all(&mut *conn).await.map_err(store_error)?;
                for row in &accounts {
                    let id: i64 = row.try_get(0).map_err(store_error)?;
                    // A value that does not decode names its account, as one that
                    // decodes to no record does.
                    let named = |e: StoreError| match e {
                        StoreError::Corrupt(_) => {
                            StoreError::Corrupt(format!("schema-2 account {}: {e}", legacy::from_sql(id)))
                        }
                        other => other,
                    };
                    let account = legacy_row(row).map_err(|e| named(store_error(e)))?;
                    let version: i64 = row.try_get(26).map_err(|e| named(store_error(e)))?;
                    let rows = Rows {
                        backup_codes: codes
                            .iter()
                            .filter(|c| c.try_get::<i64, _>(0).ok() == Some(id))
                            .map(|c| {
                                Ok(BackupCodeRow {
                                    phc: c.try_get(1)?,
                                    issued_at: c.try_get(2)?,
                                    expires_at: c.try_get(3)?,
                                })
                            })
                            .collect::<Result<_, sqlx::Error>>()
                            .map_err(|e| named(store_error(e)))?,
                        locations: locations
                            .iter()
                            .filter(|l| l.try_get::<i64, _>(0).ok() == Some(id))
                            .map(|l| {
                                Ok(LocationRow {
                                    id: l.try_get(1)?,
                                    token_hash: l.try_get(2)?,
                                    label: l.try_get(3)?,
                                    created_at: l.try_get(4)?,
                                    last_used_at: l.try_get(5)?,
                                    expires_at: l.try_get(6)?,
                                })
                            })
                            .collect::<Result<_, sqlx::Error>>()
                            .map_err(|e| named(store_error(e)))?,
                        account,
                    };
                    let record = legacy::decode(rows).map_err(named)?;
                    let document = $crate::document::encode(&record)?;
                    let user = UserRecord::new(record.id, record.username.clone(), record.email.clone(), record.role)
                        .with_document(legacy::from_sql(version.max(1)), document);
                    insert_user(conn, &user, false).await?;
                }
                if accounts.len() < LEGACY_PAGE as usize || high == i64::MAX {
                    break;
                }
                from = high + 1;
            }
            for drop in DROP_LEGACY {
                query(drop).execute(&mut *conn).await.map_err(store_error)?;
            }
            Ok(())
        }

        /// One schema-2 account row (of [`LEGACY_ACCOUNTS`]).
        fn legacy_row(row: &<$db as sqlx::Database>::Row) -> Result<AccountRow, sqlx::Error> {
            Ok(AccountRow {
                id: row.try_get(0)?,
                username: row.try_get(1)?,
                email: row.try_get(2)?,
                role: row.try_get(3)?,
                password_hash: row.try_get(4)?,
                security_stamp: row.try_get(5)?,
                created_at: row.try_get(6)?,
                tf_state: row.try_get(7)?,
                totp_secret: row.try_get(8)?,
                totp_algorithm: row.try_get(9)?,
                totp_digits: row.try_get(10)?,
                totp_period: row.try_get(11)?,
                totp_last_used_step: row.try_get(12)?,
                tf_started_at: row.try_get(13)?,
                tf_enabled_at: row.try_get(14)?,
                throttle_failures: row.try_get(15)?,
                throttle_until: row.try_get(16)?,
                second_factor_locked: row.try_get(17)?,
                reset_by: row.try_get(18)?,
                reset_by_username: row.try_get(19)?,
                reset_by_role: row.try_get(20)?,
                reset_identity_check: row.try_get(21)?,
                reset_at: row.try_get(22)?,
                pending_marks: row.try_get(23)?,
                second_factor_failures: row.try_get(24)?,
                retired_totp_step: row.try_get(25)?,
            })
        }
    };
}
pub(crate) use sql_ops;
