//! Choosing a store at run time: the type-erased [`BoxStore`]. The allocation-free
//! alternative for two known stores is [`Either`](crate::mail::Either), which
//! implements [`UserStore`] too; see [`crate::mail::BoxMailer`] for how they compare.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::UserId;
use crate::error::StoreError;
use crate::mail::boxed::Either;
use crate::plumbing::clock::Timestamp;
use crate::store::{Document, ScanPage, Swap, UserRecord, UserStore};

/// A boxed store future.
type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The object-safe twin of [`UserStore`], implemented for every store. One method per
/// method of [`UserStore`], so an implementation's own versions are always the ones
/// called.
trait DynStore: Send + Sync {
    /// [`UserStore::find_by_id`], boxed.
    fn find_by_id_boxed(&self, id: UserId) -> StoreFuture<'_, Option<UserRecord>>;
    /// [`UserStore::find_by_login`], boxed.
    fn find_by_login_boxed<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<UserRecord>>;
    /// [`UserStore::insert_document`], boxed.
    fn insert_document_boxed<'a>(&'a self, id: UserId, document: &'a Document) -> StoreFuture<'a, Swap>;
    /// [`UserStore::compare_and_swap`], boxed.
    fn compare_and_swap_boxed<'a>(&'a self, id: UserId, expected: u64, document: &'a Document)
    -> StoreFuture<'a, Swap>;
    /// [`UserStore::create_user`], boxed.
    fn create_user_boxed<'a>(&'a self, user: &'a UserRecord) -> StoreFuture<'a, ()>;
    /// [`UserStore::scan`], boxed.
    fn scan_boxed<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, ScanPage>;
    /// [`UserStore::mail_due`], boxed.
    fn mail_due_boxed(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, Vec<UserId>>;
    /// [`UserStore::forget`], boxed.
    fn forget_boxed(&self, id: UserId, expected: u64) -> StoreFuture<'_, Swap>;
}

impl<S: UserStore> DynStore for S {
    fn find_by_id_boxed(&self, id: UserId) -> StoreFuture<'_, Option<UserRecord>> {
        Box::pin(self.find_by_id(id))
    }

    fn find_by_login_boxed<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<UserRecord>> {
        Box::pin(self.find_by_login(login))
    }

    fn insert_document_boxed<'a>(&'a self, id: UserId, document: &'a Document) -> StoreFuture<'a, Swap> {
        Box::pin(self.insert_document(id, document))
    }

    fn compare_and_swap_boxed<'a>(
        &'a self,
        id: UserId,
        expected: u64,
        document: &'a Document,
    ) -> StoreFuture<'a, Swap> {
        Box::pin(self.compare_and_swap(id, expected, document))
    }

    fn create_user_boxed<'a>(&'a self, user: &'a UserRecord) -> StoreFuture<'a, ()> {
        Box::pin(self.create_user(user))
    }

    fn scan_boxed<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, ScanPage> {
        Box::pin(self.scan(after, limit))
    }

    fn mail_due_boxed(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, Vec<UserId>> {
        Box::pin(self.mail_due(now, limit))
    }

    fn forget_boxed(&self, id: UserId, expected: u64) -> StoreFuture<'_, Swap> {
        Box::pin(self.forget(id, expected))
    }
}

/// A type-erased [`UserStore`]: any store, chosen at run time, behind one type.
///
/// `Engine<BoxStore, M, C>` is one engine type whatever store the configuration
/// picked. Each call boxes the inner store's future (one allocation per call, a few
/// per login; an Argon2 hash or a database round trip costs far more); construction
/// allocates once. Cloning is cheap and shares the one inner store (as an [`Arc`]
/// would). For exactly two known choices, [`Either`] avoids the allocation.
///
/// ```
/// use twofactor::store::BoxStore;
/// use twofactor::{Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
///
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // From the configuration: a database in production, memory in tests.
/// let database_url: Option<&str> = None;
/// let store = match database_url {
///     Some(url) => BoxStore::new(twofactor::store::SqliteStore::connect(url).await?),
///     None => BoxStore::new(MemoryStore::new()),
/// };
/// // One engine type, whichever store was picked.
/// let engine: Engine<BoxStore, MemoryMailer> = Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral()?)
///     .policy(Policy::builder().danger_fast_hashing().build()?)
///     .build()?;
/// # drop(engine);
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct BoxStore {
    inner: Arc<dyn DynStore>,
    /// The wrapped type's name, for `Debug`.
    type_name: &'static str,
}

impl BoxStore {
    /// Wraps `store`.
    pub fn new(store: impl UserStore + 'static) -> Self {
        BoxStore { type_name: std::any::type_name_of_val(&store), inner: Arc::new(store) }
    }
}

impl fmt::Debug for BoxStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxStore").field(&format_args!("{}", self.type_name)).finish()
    }
}

// `async fn`s rather than returning the boxed futures: a boxed future joins the
// method's borrows into one lifetime, which the trait's signatures cannot name.
impl UserStore for BoxStore {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_id_boxed(id).await
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_login_boxed(login).await
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.inner.insert_document_boxed(id, document).await
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        self.inner.compare_and_swap_boxed(id, expected, document).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.inner.create_user_boxed(user).await
    }

    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.inner.scan_boxed(after, limit).await
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.inner.mail_due_boxed(now, limit).await
    }

    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.inner.forget_boxed(id, expected).await
    }
}

/// Picks the side's method.
macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Either::Left($s) => $call.await,
            Either::Right($s) => $call.await,
        }
    };
}

impl<L: UserStore, R: UserStore> UserStore for Either<L, R> {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        either!(self, s => s.find_by_id(id))
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        either!(self, s => s.find_by_login(login))
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        either!(self, s => s.insert_document(id, document))
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        either!(self, s => s.compare_and_swap(id, expected, document))
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        either!(self, s => s.create_user(user))
    }

    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        either!(self, s => s.scan(after, limit))
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        either!(self, s => s.mail_due(now, limit))
    }

    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        either!(self, s => s.forget(id, expected))
    }
}
