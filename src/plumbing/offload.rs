//! Where hashing runs. Argon2 takes tens of milliseconds of CPU and ~19 MiB per call;
//! it must not run on an async executor's thread. The engine hands every hash to an
//! [`Offload`]. By default it is a [`HashThreads`] pool of its own, one thread per
//! hashing slot, whatever the runtime; [`Inline`] runs a hash where it is (fine for
//! tests and CLIs), and with the `tokio` feature `TokioOffload` runs it on tokio's
//! blocking pool.
//!
//! Whatever the offload, the engine runs at most
//! [`EngineBuilder::max_concurrent_hashes`](crate::EngineBuilder::max_concurrent_hashes)
//! jobs at once (default: the number of CPUs); the others wait asynchronously before
//! they are handed to the offload, so at most that many hashes hold Argon2 memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use futures_channel::oneshot;

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

/// Runs each job on one of a fixed set of threads of its own (`twofactor-hash-N`): the
/// engine's default, with one thread per hashing slot
/// ([`max_concurrent_hashes`](crate::EngineBuilder::max_concurrent_hashes)). It needs
/// no async runtime, and a job keeps running to completion when the awaiting future is
/// dropped. The threads end when the pool is dropped (with the engine).
///
/// Why its own threads rather than tokio's blocking pool: with as many threads as
/// slots, the hashing CPUs go from one hash straight to the next. Measured with 4 and 8
/// concurrent clients on 2 cores (`benches/scaling.rs`), full logins reach 98–99 % of
/// bare Argon2 on reused memory this way, against 86–88 % through `spawn_blocking`. A
/// crate for so small a pool (a channel and `n` threads) would add more than it saves;
/// the completion signal is `futures-channel`'s oneshot.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::offload::HashThreads;
/// use twofactor::{Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
/// let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()?)
///     .policy(Policy::builder().danger_fast_hashing().build()?) // tests only
///     .offload(HashThreads::new(4)?) // the default, with as many threads as slots
///     .max_concurrent_hashes(4)
///     .build()?;
/// # let _ = engine;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HashThreads {
    jobs: mpsc::Sender<(Job, oneshot::Sender<()>)>,
}

impl HashThreads {
    /// Starts `threads` threads (at least one).
    ///
    /// # Errors
    /// The operating system's error when a thread cannot be started.
    pub fn new(threads: usize) -> std::io::Result<HashThreads> {
        let (jobs, queue) = mpsc::channel::<(Job, oneshot::Sender<()>)>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new().name(format!("twofactor-hash-{i}")).spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((job, done)) = next else { return }; // the pool was dropped
                    // A panicking job surfaces as a missing result in the engine; the
                    // thread lives on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    let _ = done.send(());
                }
            })?;
        }
        Ok(HashThreads { jobs })
    }
}

impl Offload for HashThreads {
    fn run(&self, job: Job) -> JobFuture {
        let (done, finished) = oneshot::channel();
        if let Err(mpsc::SendError((job, _))) = self.jobs.send((job, done)) {
            // Unreachable while the pool lives (its threads only stop when it drops);
            // running the job here keeps the contract.
            return Inline.run(job);
        }
        Box::pin(async move {
            let _ = finished.await;
        })
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
/// use twofactor::{Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
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
