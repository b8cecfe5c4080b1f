//! Choosing a store at run time: the type-erased [`BoxStore`]. The allocation-free
//! alternative for two known stores is [`Either`](crate::mail::Either), which
//! implements [`UserStore`] too; see [`crate::mail::BoxMailer`] for how they compare.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::account::{Account, AccountId, Versioned};
use crate::error::StoreError;
use crate::mail::Either;
use crate::store::{Swap, UserStore};

/// A boxed store future.
type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The object-safe twin of [`UserStore`], implemented for every store. One method per
/// method of [`UserStore`], so an implementation's own versions are always the ones
/// called.
trait DynStore: Send + Sync {
    /// [`UserStore::insert`], boxed.
    fn insert_boxed<'a>(&'a self, account: &'a Account) -> StoreFuture<'a, ()>;
    /// [`UserStore::find_by_id`], boxed.
    fn find_by_id_boxed(&self, id: AccountId) -> StoreFuture<'_, Option<Versioned<Account>>>;
    /// [`UserStore::find_by_username`], boxed.
    fn find_by_username_boxed<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<Versioned<Account>>>;
    /// [`UserStore::compare_and_swap`], boxed.
    fn compare_and_swap_boxed<'a>(&'a self, expected: u64, account: &'a Account) -> StoreFuture<'a, Swap>;
}

impl<S: UserStore> DynStore for S {
    fn insert_boxed<'a>(&'a self, account: &'a Account) -> StoreFuture<'a, ()> {
        Box::pin(self.insert(account))
    }

    fn find_by_id_boxed(&self, id: AccountId) -> StoreFuture<'_, Option<Versioned<Account>>> {
        Box::pin(self.find_by_id(id))
    }

    fn find_by_username_boxed<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<Versioned<Account>>> {
        Box::pin(self.find_by_username(username))
    }

    fn compare_and_swap_boxed<'a>(&'a self, expected: u64, account: &'a Account) -> StoreFuture<'a, Swap> {
        Box::pin(self.compare_and_swap(expected, account))
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
/// use twofactor::{Engine, KeyRing, MemoryMailer, MemoryStore, Policy};
///
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // From the configuration: a database in production, memory in tests.
/// let database_url: Option<&str> = None;
/// let store = match database_url {
///     Some(url) => BoxStore::new(twofactor::SqliteStore::connect(url).await?),
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
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        self.inner.insert_boxed(account).await
    }

    async fn find_by_id(&self, id: AccountId) -> Result<Option<Versioned<Account>>, StoreError> {
        self.inner.find_by_id_boxed(id).await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<Versioned<Account>>, StoreError> {
        self.inner.find_by_username_boxed(username).await
    }

    async fn compare_and_swap(&self, expected: u64, account: &Account) -> Result<Swap, StoreError> {
        self.inner.compare_and_swap_boxed(expected, account).await
    }
}

impl<L: UserStore, R: UserStore> UserStore for Either<L, R> {
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        match self {
            Either::Left(left) => left.insert(account).await,
            Either::Right(right) => right.insert(account).await,
        }
    }

    async fn find_by_id(&self, id: AccountId) -> Result<Option<Versioned<Account>>, StoreError> {
        match self {
            Either::Left(left) => left.find_by_id(id).await,
            Either::Right(right) => right.find_by_id(id).await,
        }
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<Versioned<Account>>, StoreError> {
        match self {
            Either::Left(left) => left.find_by_username(username).await,
            Either::Right(right) => right.find_by_username(username).await,
        }
    }

    async fn compare_and_swap(&self, expected: u64, account: &Account) -> Result<Swap, StoreError> {
        match self {
            Either::Left(left) => left.compare_and_swap(expected, account).await,
            Either::Right(right) => right.compare_and_swap(expected, account).await,
        }
    }
}
