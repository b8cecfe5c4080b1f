//! Stores that wrap a `MemoryStore` and leave some of the trait's optional methods at
//! their defaults, for the tests of those defaults and of the conformance kit.
#![allow(dead_code)]

use twofactor::store::{Document, MemoryStore, ScanPage, Swap, UserRecord, UserStore};
use twofactor::{StoreError, Timestamp, UserId};

/// A store over "the application's own users table": the four document methods,
/// `mail_due`, `forget` and `scan`, forwarded to a `MemoryStore` the test fills with `add_user`; `create_user`
/// is left at the trait's default (`Unsupported`).
#[derive(Clone, Default)]
pub struct AppUsers(pub MemoryStore);

/// A `MemoryStore` with every method but `scan` (the trait's default, `Unsupported`).
#[derive(Clone, Default)]
pub struct NoScan(pub MemoryStore);

/// Forwards the four document methods, `mail_due` and `forget` of `$store` to its `MemoryStore`.
macro_rules! document_methods {
    () => {
        async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
            self.0.find_by_id(id).await
        }
        async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
            self.0.find_by_login(login).await
        }
        async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
            self.0.insert_document(id, document).await
        }
        async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
            self.0.compare_and_swap(id, expected, document).await
        }
        async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
            self.0.mail_due(now, limit).await
        }
        async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
            self.0.forget(id, expected).await
        }
    };
}

impl UserStore for AppUsers {
    document_methods!();
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.0.scan(after, limit).await
    }
}

impl UserStore for NoScan {
    document_methods!();
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.0.create_user(user).await
    }
}
