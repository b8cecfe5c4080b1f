//! Where hashing runs. Argon2 takes tens of milliseconds of CPU and ~19 MiB per call;
//! it must not run on an async executor's thread. The engine hands every hash to an
//! [`Offload`]: [`Inline`] runs it where it is (fine for tests and CLIs), and with the
//! `tokio` feature `TokioOffload` runs it on tokio's blocking pool, a bounded number at
//! a time.

use std::future::Future;
use std::pin::Pin;

/// A unit of blocking work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A future that completes when the job has run.
pub type JobFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs blocking jobs (password and code hashing) away from the async executor.
///
/// Implement it to use another runtime's blocking pool:
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
