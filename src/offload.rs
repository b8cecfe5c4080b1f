//! Where hashing runs. Argon2 takes tens of milliseconds of CPU and ~19 MiB per call;
//! it must not run on an async executor's thread. The engine hands every hash to an
//! [`Offload`]: [`Inline`] runs it where it is (fine for tests and CLIs), and with the
//! `tokio` feature `TokioOffload` runs it on tokio's blocking pool.
//!
//! Whatever the offload, the engine runs at most
//! [`EngineBuilder::max_concurrent_hashes`](crate::EngineBuilder::max_concurrent_hashes)
//! jobs at once (default: the number of CPUs); the others wait asynchronously before
//! they are handed to the offload, so at most that many hashes hold Argon2 memory.

use std::future::Future;
use std::pin::Pin;

/// A unit of blocking work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A future that completes when the job has run.
pub type JobFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs blocking jobs (password and code hashing) away from the async executor.
///
/// This is the hook for runtimes other than tokio (async-std, smol, a thread pool of
/// your own). Contract: run the job exactly once, on a thread where blocking is
/// allowed, and complete the returned future after it has run. The job should run to
/// completion even when the returned future is dropped early: the job owns the
/// engine's concurrency permit and releases it when it finishes. The engine bounds
/// concurrency itself, so an implementation need not.
///
/// For example, on a thread per job:
///
/// ```
/// use twofactor::offload::{Job, JobFuture, Offload};
/// /// Runs each job on a fresh OS thread (illustration only).
/// struct ThreadPerJob;
/// impl Offload for ThreadPerJob {
///     fn run(&self, job: Job) -> JobFuture {
///         let handle = std::thread::spawn(job);
///         Box::pin(async move { let _ = handle.join(); })
///     }
/// }
/// ```
pub trait Offload: Send + Sync + 'static {
    /// Runs `job`; the returned future completes when it has run.
    fn run(&self, job: Job) -> JobFuture;
}

/// Runs each job on the calling thread, immediately.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Offload for Inline {
    fn run(&self, job: Job) -> JobFuture {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// Runs each job on tokio's blocking pool (`spawn_blocking`), so hashing never
/// occupies an async worker thread. A job keeps running to completion when the
/// awaiting future is dropped, and releases the engine's concurrency permit then.
///
/// [`TokioOffload::new`] uses the runtime current at each call (and runs the job
/// inline when called outside any tokio runtime, rather than panicking);
/// [`TokioOffload::with_handle`] pins a runtime.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().build()?.block_on(async {
/// use twofactor::offload::TokioOffload;
/// use twofactor::{Engine, KeyRing, MemoryMailer, MemoryStore, Policy};
/// let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()?)
///     .policy(Policy::builder().danger_fast_hashing().build()?) // tests only
///     .offload(TokioOffload::new())
///     .max_concurrent_hashes(4)
///     .build()?;
/// # let _ = engine;
/// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Default)]
pub struct TokioOffload {
    handle: Option<tokio::runtime::Handle>,
}

#[cfg(feature = "tokio")]
impl TokioOffload {
    /// Uses the tokio runtime current when each job is run.
    pub fn new() -> Self {
        TokioOffload { handle: None }
    }

    /// Always uses the runtime behind `handle`.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        TokioOffload { handle: Some(handle) }
    }
}

#[cfg(feature = "tokio")]
impl Offload for TokioOffload {
    fn run(&self, job: Job) -> JobFuture {
        let handle = match &self.handle {
            Some(handle) => handle.clone(),
            None => match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle,
                Err(_) => return Inline.run(job),
            },
        };
        let task = handle.spawn_blocking(job);
        // A panicking job surfaces as a missing result in the engine, not a panic here.
        Box::pin(async move {
            let _ = task.await;
        })
    }
}
