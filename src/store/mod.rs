//! Storage: the [`UserStore`] trait, the in-memory [`MemoryStore`] and the SQL stores.
//!
//! The application owns its users: their ids, login names, emails and roles live in
//! its own tables, and the crate reads them at every call and never writes them. What
//! the crate owns for a user is one opaque [`Document`] (password hash, 2FA state,
//! backup codes, remembered locations, throttle, reset record), which the store keeps
//! next to the user under a version number and replaces only by compare-and-swap:
//! [`UserStore::compare_and_swap`] writes the new document if and only if the stored
//! version is still the one the engine read. Every single-use rule (a backup code, a
//! TOTP step, a pending login, the failure count) is enforced by the engine on top of
//! that one atomic operation, so a store holds no rules, knows nothing of 2FA and is
//! hard to get wrong. README's "Adding 2FA to an existing application" and
//! `examples/own_users.rs` implement it over an application's own `users` table.

mod boxed;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;

pub use boxed::BoxStore;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::UserId;
use crate::account::Role;
pub use crate::document::Document;
use crate::error::StoreError;
use crate::plumbing::clock::Timestamp;

/// A user as the store reads it: the application's identity of the user and, when
/// the crate has written one, the credential document with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecord {
    /// The application's id of the user.
    pub id: UserId,
    /// The name the user logs in with, as the application stores it.
    pub login: String,
    /// Where the crate's mail to the user goes (read at every call, so a changed email
    /// takes effect at once).
    pub email: String,
    /// What the user may do to others (see [`Role::may_reset`]).
    pub role: Role,
    /// The crate's document and its version, or `None` when the crate has written
    /// nothing for this user yet.
    pub credentials: Option<StoredDocument>,
}

impl UserRecord {
    /// A user the crate has written nothing for yet.
    pub fn new(id: UserId, login: impl Into<String>, email: impl Into<String>, role: Role) -> UserRecord {
        UserRecord { id, login: login.into(), email: email.into(), role, credentials: None }
    }

    /// The record as [`UserStore::create_user`] stores it: its document, if any, at
    /// version 1.
    pub(crate) fn at_first_version(mut self) -> UserRecord {
        if let Some(stored) = &mut self.credentials {
            stored.version = 1;
        }
        self
    }

    /// The same user with the credential document the store holds at `version`.
    #[must_use]
    pub fn with_document(mut self, version: u64, document: Document) -> UserRecord {
        self.credentials = Some(StoredDocument { version, document });
        self
    }
}

/// A credential document and the version the store holds it at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredDocument {
    /// 1 when inserted; each successful swap adds 1.
    pub version: u64,
    /// The document.
    pub document: Document,
}

/// One page of a walk over every user that has a document ([`UserStore::scan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanPage {
    /// The users of this page, each with its document.
    pub users: Vec<UserRecord>,
    /// Where the next page starts (pass it as `after`); `None` when the walk is done.
    pub next: Option<String>,
}

impl ScanPage {
    /// A page of `users`, followed by the page after `next`.
    pub fn new(users: Vec<UserRecord>, next: Option<String>) -> ScanPage {
        ScanPage { users, next }
    }
}

/// The result of a [`UserStore::compare_and_swap`] or [`UserStore::insert_document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Swap {
    /// The document was written; it now has this version.
    Swapped {
        /// The new version (the expected version plus one; 1 after an insert).
        version: u64,
    },
    /// The stored version was not the expected one (or the user is gone, or, for an
    /// insert, a document exists already); nothing was written.
    Conflict,
}

/// Where users and their credential documents live. Async and runtime-agnostic; used
/// through generics.
///
/// # Contract
/// - [`find_by_id`](Self::find_by_id) and [`find_by_login`](Self::find_by_login)
///   read the user and its document (with its version) from one consistent state.
/// - [`insert_document`](Self::insert_document) writes a user's first document at
///   version 1, only if the user has none; [`compare_and_swap`](Self::compare_and_swap)
///   replaces it only if its version is the expected one, and adds 1. Both are atomic
///   with respect to every other call, in every process sharing the store: of N
///   concurrent writes from the same version, exactly one succeeds.
/// - A failed call changes nothing. The store never writes the login, email or role.
///
/// The `testkit` feature ships a conformance suite that checks all of this against any
/// implementation.
pub trait UserStore: Send + Sync {
    /// Reads a user by id.
    ///
    /// # Errors
    /// A backend error.
    fn find_by_id(&self, id: UserId) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// Reads a user by the name they log in with. The crate asks for what a person
    /// typed in Unicode NFC and, when that differs, as typed (0.1.0 stored names
    /// unnormalized). The shipped stores compare exactly; an application whose login
    /// is case-insensitive, or by email, looks up accordingly.
    ///
    /// # Errors
    /// A backend error.
    fn find_by_login(&self, login: &str) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// Writes the first credential document of user `id` at version 1.
    /// [`Swap::Conflict`] when the user has a document already or does not exist.
    ///
    /// # Errors
    /// A backend error (then nothing was written).
    fn insert_document(&self, id: UserId, document: &Document)
    -> impl Future<Output = Result<Swap, StoreError>> + Send;

    /// Replaces user `id`'s document, if its stored version is `expected`.
    ///
    /// # Errors
    /// A backend error (then nothing was written).
    fn compare_and_swap(
        &self,
        id: UserId,
        expected: u64,
        document: &Document,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send;

    /// Walks the users that have a document, a page at a time (`limit` of at least 1;
    /// 0 counts as 1), for the operations that
    /// visit every document (key usage, bulk re-seal: see [`crate::KeyRing`]). Returns
    /// at most `limit` users after the cursor `after` (`None`: from the start) in an
    /// order of the store's choosing that stays the same, and the cursor of the next
    /// page (any text the store can resume from, typically the last id). A user present
    /// for the whole walk is visited exactly once; users without a document are skipped.
    /// The default answers [`StoreError::Unsupported`]; the conformance kit requires a
    /// real one.
    ///
    /// # Errors
    /// A backend error; [`StoreError::Unsupported`] by default.
    fn scan(&self, after: Option<&str>, limit: usize) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        let _ = (after, limit);
        std::future::ready(Err(StoreError::Unsupported("this store cannot walk its documents")))
    }

    /// The users whose document holds mail due at or before `now`, most overdue first,
    /// at most `limit` of them (0 counts as 1): the delivery worker's query
    /// ([`Engine::deliver_due`](crate::Engine::deliver_due)). A store keeps each
    /// document's [`Document::mail_due_at`] next to it whenever it writes the document
    /// (the SQL stores in an indexed column) and answers from that; a user whose
    /// document has no mail waiting (`None`) is never returned.
    ///
    /// # Errors
    /// A backend error.
    fn mail_due(&self, now: Timestamp, limit: usize) -> impl Future<Output = Result<Vec<UserId>, StoreError>> + Send;

    /// Removes everything the store keeps for user `id` on the crate's behalf, if its
    /// document is still at version `expected` (0: none): the document, and with it
    /// any mail queued in it; a store that keeps the users itself (the shipped ones)
    /// removes the user. A store over the application's own users table clears the
    /// document columns (the application deletes its user itself). Backs
    /// [`Engine::forget_user`](crate::Engine::forget_user), for account deletion and
    /// data-protection requests. [`Swap::Swapped`] (with version 0) when removed;
    /// [`Swap::Conflict`] when the version moved on or the user is gone. The default
    /// answers [`StoreError::Unsupported`]; the conformance kit requires a real one.
    ///
    /// # Errors
    /// A backend error (then nothing was removed); [`StoreError::Unsupported`] by
    /// default.
    fn forget(&self, id: UserId, expected: u64) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        let _ = (id, expected);
        std::future::ready(Err(StoreError::Unsupported("this store cannot forget users")))
    }

    /// Creates a user with its first document (at version 1), for stores that keep
    /// the users themselves (the shipped stores) and so back
    /// [`Engine::create_account`](crate::Engine::create_account). A store over the
    /// application's own users table leaves the default, which answers
    /// [`StoreError::Unsupported`]: the application creates its users, then gives the
    /// crate their password ([`Engine::change_password`](crate::Engine::change_password)
    /// or [`Engine::import_password_hash`](crate::Engine::import_password_hash)).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id or login is taken; a backend error.
    fn create_user(&self, user: &UserRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = user;
        std::future::ready(Err(StoreError::Unsupported("this store does not create users")))
    }
}

impl<S: UserStore + ?Sized> UserStore for std::sync::Arc<S> {
    fn find_by_id(&self, id: UserId) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send {
        (**self).find_by_id(id)
    }

    fn find_by_login(&self, login: &str) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send {
        (**self).find_by_login(login)
    }

    fn insert_document(
        &self,
        id: UserId,
        document: &Document,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).insert_document(id, document)
    }

    fn compare_and_swap(
        &self,
        id: UserId,
        expected: u64,
        document: &Document,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).compare_and_swap(id, expected, document)
    }

    fn create_user(&self, user: &UserRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_user(user)
    }

    fn scan(&self, after: Option<&str>, limit: usize) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        (**self).scan(after, limit)
    }

    fn mail_due(&self, now: Timestamp, limit: usize) -> impl Future<Output = Result<Vec<UserId>, StoreError>> + Send {
        (**self).mail_due(now, limit)
    }

    fn forget(&self, id: UserId, expected: u64) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).forget(id, expected)
    }
}
