//! A [`UserStore`] in memory: for tests, examples and single-process prototypes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::account::{Account, AccountId, Versioned};
use crate::error::StoreError;
use crate::store::{Swap, UserStore};

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<AccountId, Versioned<Account>>,
    by_username: HashMap<String, AccountId>,
}

/// Accounts in a mutex-guarded map. Clones share the same data.
///
/// ```
/// # tokio_test_block_on(async {
/// use twofactor::{MemoryStore, UserStore, AccountId};
/// let store = MemoryStore::new();
/// assert!(store.find_by_id(AccountId(1)).await?.is_none());
/// # Ok::<(), twofactor::StoreError>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(f) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UserStore for MemoryStore {
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.by_id.contains_key(&account.id) || t.by_username.contains_key(&account.username) {
            return Err(StoreError::Duplicate);
        }
        t.by_username.insert(account.username.clone(), account.id);
        t.by_id.insert(account.id, Versioned { version: 1, record: account.clone() });
        Ok(())
    }

    async fn find_by_id(&self, id: AccountId) -> Result<Option<Versioned<Account>>, StoreError> {
        Ok(self.lock().by_id.get(&id).cloned())
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<Versioned<Account>>, StoreError> {
        let t = self.lock();
        Ok(t.by_username.get(username).and_then(|id| t.by_id.get(id)).cloned())
    }

    async fn compare_and_swap(&self, expected: u64, account: &Account) -> Result<Swap, StoreError> {
        let mut t = self.lock();
        match t.by_id.get_mut(&account.id) {
            Some(current) if current.version == expected => {
                let username = current.record.username.clone();
                current.version += 1;
                current.record = account.clone();
                current.record.username = username;
                Ok(Swap::Swapped { version: current.version })
            }
            _ => Ok(Swap::Conflict),
        }
    }
}
