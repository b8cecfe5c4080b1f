//! What the SQL stores share: the schema migrations (and [`legacy`], which reads the
//! schema-2 rows once to migrate them), the statements and the operations over one
//! connection ([`sql_ops!`]), and the mapping of driver errors to [`StoreError`].
//!
//! A user is one row of `twofactor_users`: id, login, email, role, and the credential
//! document with its version and, in an indexed column written in the same statement,
//! when the document's earliest queued mail is due (`mail_due`, schema 4). The
//! operations are written once and instantiated per driver by a macro, because the two
//! backends differ only in how a transaction starts (SQLite's `BEGIN IMMEDIATE`,
//! PostgreSQL's advisory lock for migrations); the SQL is the same (`$N` placeholders
//! work on both).

pub(crate) mod legacy;
pub(crate) mod ops;

use crate::UserId;
use crate::error::StoreError;

/// A versioned schema migration, applied once in order and recorded in
/// `twofactor_schema_version`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// The schema version this migration leads to (1, 2, …).
    pub version: i64,
    /// The statements (idempotent: `CREATE … IF NOT EXISTS`).
    pub sql: &'static str,
}

/// SQLite's migrations.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("migrations/sqlite/0001_accounts.sql") },
    Migration { version: 2, sql: include_str!("migrations/sqlite/0002_throttle_and_replay.sql") },
    Migration { version: 3, sql: include_str!("migrations/sqlite/0003_credential_documents.sql") },
    Migration { version: 4, sql: include_str!("migrations/sqlite/0004_mail_due.sql") },
];

/// PostgreSQL's migrations.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("migrations/postgres/0001_accounts.sql") },
    Migration { version: 2, sql: include_str!("migrations/postgres/0002_throttle_and_replay.sql") },
    Migration { version: 3, sql: include_str!("migrations/postgres/0003_credential_documents.sql") },
    Migration { version: 4, sql: include_str!("migrations/postgres/0004_mail_due.sql") },
];

/// Implements [`UserStore`](crate::store::UserStore) for a SQL store over its inherent
/// `find`, `swap` (from version 0 for the first document), `scan_page`, `due_mail`
/// and `create`, which differ between the drivers only in how writers take turns.
macro_rules! user_store {
    ($store:ty) => {
        impl $crate::store::UserStore for $store {
            async fn find_by_id(&self, id: $crate::UserId) -> Result<Option<UserRecord>, StoreError> {
                self.find($crate::store::sql::Key::Id(id)).await
            }

            async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
                self.find($crate::store::sql::Key::Login(login)).await
            }

            async fn insert_document(&self, id: $crate::UserId, document: &Document) -> Result<Swap, StoreError> {
                self.swap(id, 0, document).await
            }

            async fn compare_and_swap(
                &self,
                id: $crate::UserId,
                expected: u64,
                document: &Document,
            ) -> Result<Swap, StoreError> {
                // Version 0 is "no document": only an insert writes it.
                if expected == 0 {
                    return Ok(Swap::Conflict);
                }
                self.swap(id, expected, document).await
            }

            async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
                self.scan_page(after, limit).await
            }

            async fn mail_due(
                &self,
                now: $crate::plumbing::clock::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::UserId>, StoreError> {
                self.due_mail(now, limit).await
            }

            async fn forget(&self, id: $crate::UserId, expected: u64) -> Result<Swap, StoreError> {
                self.forget_user(id, expected).await
            }

            async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
                self.create(user).await
            }
        }
    };
}
pub(crate) use user_store;

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    Id(UserId),
    Login(&'a str),
}

/// Maps a driver error: a unique violation is [`StoreError::Duplicate`], a value that
/// does not decode is [`StoreError::Corrupt`], anything else is a backend fault.
/// (sqlx's messages never contain bound values.)
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    if let Some(db) = err.as_database_error()
        && db.kind() == sqlx::error::ErrorKind::UniqueViolation
    {
        return StoreError::Duplicate;
    }
    match err {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StoreError::Corrupt(err.to_string())
        }
        other => StoreError::backend(other),
    }
}

/// The error for a database whose schema is newer than this crate knows.
pub(crate) fn schema_too_new(found: i64, known: i64) -> StoreError {
    StoreError::Backend(format!(
        "the database schema is at version {found}, newer than this version of twofactor supports ({known})"
    ))
}

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

    /// The two dialects' migrations are one schema: they may differ only in the name of
    /// the byte-string type and in comments.
    #[test]
    fn the_dialects_share_one_schema() {
        assert_eq!(SQLITE_MIGRATIONS.len(), POSTGRES_MIGRATIONS.len());
        let normal = |sql: &str| -> Vec<String> {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .map(|l| l.replace("BYTEA", "BLOB").split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        for (s, p) in SQLITE_MIGRATIONS.iter().zip(POSTGRES_MIGRATIONS) {
            assert_eq!(s.version, p.version);
            assert_eq!(normal(s.sql), normal(p.sql), "migration {} differs beyond BLOB/BYTEA", s.version);
        }
    }
}
