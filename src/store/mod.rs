//! Storage: the [`UserStore`] trait and the in-memory [`MemoryStore`].
//!
//! The contract is deliberately small. A store keeps one versioned [`Account`] record
//! per user and replaces it only by compare-and-swap: [`UserStore::compare_and_swap`]
//! writes the new record if and only if the stored version is still the one the engine
//! read. Every single-use rule (a backup code, a TOTP step, a pending login, the
//! failure count) is enforced by the engine on top of that one atomic operation, so a
//! store holds no rules and is hard to get wrong.

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

use crate::account::{Account, AccountId, Versioned};
use crate::error::StoreError;

/// The result of a [`UserStore::compare_and_swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Swap {
    /// The record was replaced; it now has this version.
    Swapped {
        /// The new version (the expected version plus one).
        version: u64,
    },
    /// The stored version was not the expected one (or the record is gone); nothing
    /// was written.
    Conflict,
}

/// Where accounts live. Async and runtime-agnostic; used through generics.
///
/// # Contract
/// - [`insert`](Self::insert) stores a new record at version 1, or fails with
///   [`StoreError::Duplicate`] when the id or the username exists.
/// - [`compare_and_swap`](Self::compare_and_swap) is atomic with respect to every
///   other call, in every process sharing the store: of N concurrent swaps from the
///   same version, exactly one succeeds.
/// - A failed call changes nothing.
///
/// The `testkit` feature ships a conformance suite that checks all of this against any
/// implementation.
pub trait UserStore: Send + Sync {
    /// Stores a new account at version 1.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id or username is taken; a backend error.
    fn insert(&self, account: &Account) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads an account by id.
    ///
    /// # Errors
    /// A backend error.
    fn find_by_id(&self, id: AccountId) -> impl Future<Output = Result<Option<Versioned<Account>>, StoreError>> + Send;

    /// Reads an account by exact username.
    ///
    /// # Errors
    /// A backend error.
    fn find_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Account>>, StoreError>> + Send;

    /// Replaces the account whose id is `account.id`, if its stored version is
    /// `expected`. The username does not change through a swap.
    ///
    /// # Errors
    /// A backend error (then nothing was written).
    fn compare_and_swap(
        &self,
        expected: u64,
        account: &Account,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send;
}

impl<S: UserStore + ?Sized> UserStore for std::sync::Arc<S> {
    fn insert(&self, account: &Account) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert(account)
    }

    fn find_by_id(&self, id: AccountId) -> impl Future<Output = Result<Option<Versioned<Account>>, StoreError>> + Send {
        (**self).find_by_id(id)
    }

    fn find_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Account>>, StoreError>> + Send {
        (**self).find_by_username(username)
    }

    fn compare_and_swap(
        &self,
        expected: u64,
        account: &Account,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        (**self).compare_and_swap(expected, account)
    }
}
