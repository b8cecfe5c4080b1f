//! A [`UserStore`] in memory: for tests, examples and single-process prototypes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::UserId;
use crate::account::Role;
use crate::error::StoreError;
use crate::plumbing::clock::Timestamp;
use crate::store::{Document, ScanPage, StoredDocument, Swap, UserRecord, UserStore};

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<UserId, UserRecord>,
    by_login: HashMap<String, UserId>,
}

/// Users and their documents in a mutex-guarded map. Clones share the same data.
///
/// Besides the [`UserStore`] contract it lets a test or a prototype play the
/// application's part: add a user the crate knows nothing of yet
/// ([`add_user`](Self::add_user)) and change a user's email ([`set_email`](Self::set_email)).
///
/// ```
/// # tokio_test_block_on(async {
/// use twofactor::{Role, UserId};
/// use twofactor::store::{MemoryStore, UserStore};
/// let store = MemoryStore::new();
/// store.add_user(UserId::from(1_u64), "alice", "alice@example.test", Role::User)?;
/// let alice = store.find_by_login("alice").await?.expect("added");
/// assert_eq!(alice.id, UserId::from(1_u64));
/// assert!(alice.credentials.is_none(), "the crate has written nothing yet");
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

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a user without a credential document, as an application adds one to its
    /// own table.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id or login is taken.
    pub fn add_user(&self, id: UserId, login: &str, email: &str, role: Role) -> Result<(), StoreError> {
        self.insert(UserRecord::new(id, login, email, role))
    }

    /// Changes a user's email, as the application would; `false` if there is no such
    /// user.
    pub fn set_email(&self, id: UserId, email: &str) -> bool {
        self.lock().by_id.get_mut(&id).map(|u| u.email = email.to_owned()).is_some()
    }

    fn insert(&self, user: UserRecord) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.by_id.contains_key(&user.id) || t.by_login.contains_key(&user.login) {
            return Err(StoreError::Duplicate);
        }
        t.by_login.insert(user.login.clone(), user.id);
        t.by_id.insert(user.id, user);
        Ok(())
    }

    /// Writes `document` at `expected + 1` if the user's document is at `expected`
    /// (0: none).
    fn swap(&self, id: UserId, expected: u64, document: &Document) -> Swap {
        let mut t = self.lock();
        let Some(user) = t.by_id.get_mut(&id) else { return Swap::Conflict };
        let current = user.credentials.as_ref().map_or(0, |c| c.version);
        if current != expected {
            return Swap::Conflict;
        }
        let version = expected + 1;
        user.credentials = Some(StoredDocument { version, document: document.clone() });
        Swap::Swapped { version }
    }
}

impl UserStore for MemoryStore {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock().by_id.get(&id).cloned())
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let t = self.lock();
        Ok(t.by_login.get(login).and_then(|id| t.by_id.get(id)).cloned())
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        Ok(self.swap(id, 0, document))
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        // Version 0 is "no document": only an insert writes it.
        if expected == 0 {
            return Ok(Swap::Conflict);
        }
        Ok(self.swap(id, expected, document))
    }

    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        let limit = limit.max(1);
        let t = self.lock();
        let mut ids: Vec<&UserId> = t
            .by_id
            .iter()
            .filter(|(id, u)| u.credentials.is_some() && after.is_none_or(|a| id.as_str() > a))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        let more = ids.len() > limit;
        let users: Vec<UserRecord> = ids.into_iter().take(limit).filter_map(|id| t.by_id.get(id).cloned()).collect();
        let next = users.last().filter(|_| more).map(|u| u.id.to_string());
        Ok(ScanPage::new(users, next))
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        let t = self.lock();
        let mut due: Vec<(Timestamp, UserId)> = t
            .by_id
            .values()
            .filter_map(|u| {
                let at = u.credentials.as_ref()?.document.mail_due_at()?;
                (at <= now).then_some((at, u.id))
            })
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit.max(1)).map(|(_, id)| id).collect())
    }

    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        let mut t = self.lock();
        let current = t.by_id.get(&id).map(|u| u.credentials.as_ref().map_or(0, |c| c.version));
        if current != Some(expected) {
            return Ok(Swap::Conflict);
        }
        if let Some(user) = t.by_id.remove(&id) {
            t.by_login.remove(&user.login);
        }
        Ok(Swap::Swapped { version: 0 })
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.insert(user.clone().at_first_version())
    }
}
