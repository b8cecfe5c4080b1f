//! The background delivery worker on tokio.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::{Error, InternalError};
use crate::mail::Mailer;
use crate::plumbing::clock::Clock;
use crate::store::UserStore;

/// How many users one delivery round serves before the worker looks for more.
const USERS_PER_ROUND: usize = 100;

/// Delivers queued mail in the background: a tokio task that calls
/// [`Engine::deliver_due`] whenever a write queued mail (the engine wakes it) and at
/// least every `poll_every` (for retries that fall due, and for mail other servers
/// queued), until [`shutdown`](Self::shutdown).
///
/// Run one per server: any number may share one database (each message is claimed by
/// one worker at a time). A round that fails (the database is down) is tried again at
/// the next tick; nothing is lost, since the mail stays queued in the documents.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use twofactor::{DeliveryWorker, Engine, KeyRing, Policy};
/// use twofactor::mail::MemoryMailer;
/// use twofactor::store::MemoryStore;
/// let engine = Arc::new(
///     Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()? /* tests only */)
///         .policy(Policy::builder().danger_fast_hashing().build()?)
///         .build()?,
/// );
/// let worker = DeliveryWorker::spawn(Arc::clone(&engine), Duration::from_secs(5))?;
/// // … serve requests …
/// worker.shutdown().await; // finishes the round in progress, then stops
/// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DeliveryWorker {
    /// Starts the worker on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Internal`] ([`InternalError::NoRuntime`]) outside a tokio runtime.
    pub fn spawn<S, M, C>(engine: Arc<Engine<S, M, C>>, poll_every: Duration) -> Result<DeliveryWorker, Error>
    where
        S: UserStore + 'static,
        M: Mailer + 'static,
        C: Clock + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| InternalError::NoRuntime)?;
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(engine, poll_every, stopped));
        Ok(DeliveryWorker { stop, task })
    }

    /// Stops the worker: the round in progress finishes (so no message is left
    /// claimed mid-send), then the task ends. Mail still queued waits for the next
    /// start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // A task that panicked or was cancelled has stopped too.
        let _ = self.task.await;
    }
}

async fn run<S, M, C>(engine: Arc<Engine<S, M, C>>, poll_every: Duration, mut stopped: watch::Receiver<bool>)
where
    S: UserStore,
    M: Mailer,
    C: Clock,
{
    while !*stopped.borrow() {
        let more = match engine.deliver_due(USERS_PER_ROUND).await {
            // A full round: more may be due at once.
            Ok(report) => report.users as usize >= USERS_PER_ROUND,
            Err(err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "twofactor", error = %err, "mail delivery round failed; retrying at the next tick");
                drop(err);
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = stopped.changed() => {}
            () = engine.mail_queued() => {}
            () = tokio::time::sleep(poll_every) => {}
        }
    }
}
