//! Choosing a mailer (or a store) at run time: the type-erased [`BoxMailer`] and the
//! two-way [`Either`].
//!
//! [`Mailer`] returns `impl Future` from its method, which keeps it free of
//! `async-trait` but makes `dyn Mailer` impossible (E0038). These two types are the
//! dyn-compatible path:
//!
//! - [`BoxMailer`] wraps any mailer behind a private object-safe trait. Simplest, and
//!   open to any number of choices (a `Vec<BoxMailer>`, a plug-in registry, …). Each
//!   send allocates one boxed future.
//! - [`Either`] holds one of two known mailers and dispatches with a `match`: no
//!   allocation, no dynamic call, but the types of both sides appear in the signature.
//!
//! Both costs are negligible next to what a login already does (an Argon2 hash takes
//! tens of milliseconds; one small allocation takes nanoseconds), so pick whichever
//! reads better. The store side is [`BoxStore`](crate::store::BoxStore), and
//! [`Either`] is a [`UserStore`](crate::store::UserStore) too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::MailError;
use crate::mail::{Mailer, Message};
use crate::outbox::MailId;

/// The future a [`BoxMailer`] returns.
type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// The object-safe twin of [`Mailer`], implemented for every mailer.
trait DynMailer: Send + Sync {
    /// [`Mailer::send`], with the future boxed.
    fn send_boxed<'a>(&'a self, id: MailId, message: &'a Message) -> SendFuture<'a>;
}

impl<M: Mailer> DynMailer for M {
    fn send_boxed<'a>(&'a self, id: MailId, message: &'a Message) -> SendFuture<'a> {
        Box::pin(self.send(id, message))
    }
}

/// A type-erased [`Mailer`]: any mailer, chosen at run time, behind one type.
///
/// [`Mailer::send`] returns `impl Future`, so `dyn Mailer` is not possible (E0038);
/// `BoxMailer` is the dyn-compatible stand-in. `Engine<S, BoxMailer, C>` is one engine
/// type whatever mailer the configuration picked. Each send boxes the inner mailer's
/// future: one small allocation per message, nanoseconds next to the tens of
/// milliseconds of a login's Argon2 hash. Construction allocates once. Cloning is cheap and shares the one inner mailer (as an
/// [`Arc`] would). For exactly two known choices, [`Either`] avoids the allocation.
///
/// ```
/// use std::path::PathBuf;
///
/// use twofactor::mail::{BoxMailer, FileOutbox};
/// use twofactor::{Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // From the configuration: in development, mail goes to files to open in a mail
/// // client; in tests it stays in memory. (In production: an `SmtpMailer`, feature
/// // `smtp`.)
/// let mail_dir: Option<PathBuf> = None;
/// let mailer = match mail_dir {
///     Some(dir) => BoxMailer::new(FileOutbox::new(dir)?),
///     None => BoxMailer::new(MemoryMailer::new()),
/// };
/// // One engine type, whichever mailer was picked.
/// let engine: Engine<MemoryStore, BoxMailer> = Engine::builder(MemoryStore::new(), mailer, KeyRing::ephemeral()?)
///     .policy(Policy::builder().danger_fast_hashing().build()?)
///     .build()?;
/// # drop(engine);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BoxMailer {
    inner: Arc<dyn DynMailer>,
    /// The wrapped type's name, for `Debug`.
    type_name: &'static str,
}

impl BoxMailer {
    /// Wraps `mailer`.
    pub fn new(mailer: impl Mailer + 'static) -> Self {
        BoxMailer { type_name: std::any::type_name_of_val(&mailer), inner: Arc::new(mailer) }
    }
}

impl fmt::Debug for BoxMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxMailer").field(&format_args!("{}", self.type_name)).finish()
    }
}

impl Mailer for BoxMailer {
    // An `async fn` rather than returning the boxed future: that future joins both
    // borrows into one lifetime, which the trait's signature cannot name.
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        self.inner.send_boxed(id, message).await
    }
}

/// One of two parts, chosen at run time: a [`Mailer`] when both sides are mailers and a
/// [`UserStore`](crate::store::UserStore) when both sides are stores.
///
/// Every call is a `match` on the variant and goes straight to that side: no allocation
/// and no dynamic call, unlike [`BoxMailer`] and [`BoxStore`](crate::store::BoxStore).
/// The price is in the types: both sides appear in the engine's type, and a third
/// choice needs a nested `Either`. Nest them, or use the boxed types, for more.
///
/// ```
/// use std::path::PathBuf;
///
/// use twofactor::Either;
/// use twofactor::mail::FileOutbox;
/// use twofactor::{Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mail_dir: Option<PathBuf> = None; // from the configuration
/// let mailer: Either<FileOutbox, MemoryMailer> = match mail_dir {
///     Some(dir) => Either::Left(FileOutbox::new(dir)?),
///     None => Either::Right(MemoryMailer::new()),
/// };
/// let engine: Engine<MemoryStore, Either<FileOutbox, MemoryMailer>> =
///     Engine::builder(MemoryStore::new(), mailer, KeyRing::ephemeral()?)
///         .policy(Policy::builder().danger_fast_hashing().build()?)
///         .build()?;
/// # drop(engine);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Either<L, R> {
    /// The first choice.
    Left(L),
    /// The second choice.
    Right(R),
}

impl<L: Mailer, R: Mailer> Mailer for Either<L, R> {
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        match self {
            Either::Left(left) => left.send(id, message).await,
            Either::Right(right) => right.send(id, message).await,
        }
    }
}
