//! Sending the engine's mail: waiting for the transport ([`deliver`]), or not
//! ([`send_detached`]) for the notices a failed attempt triggers.
//!
//! A failed attempt must not wait on mail: if the fifth wrong password for a real
//! account waited for the "throttled" notice (hundreds of milliseconds over SMTP,
//! seconds with retries) while an unknown username never does, the answer time would
//! tell an attacker which usernames exist. So such notices are handed off: a send that
//! completes when first polled (the memory and file mailers) is done at once; one that
//! would wait (SMTP) goes on in a task of its own on the tokio runtime the engine runs
//! on (the `tokio` feature; the `sqlite` and `postgres` features turn it on). Without
//! a tokio runtime it is awaited in place, as before.
//!
//! A notice handed off this way is lost if the process stops before it is sent; it
//! is a notice, not a credential (backup codes are always sent by [`deliver`]).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use crate::UserId;
use crate::clock::Timestamp;
use crate::error::MailError;
use crate::events::{Event, EventKind, EventSink};
use crate::mail::{Delivery, Mailer, Message};

/// Sends `message` and waits for the transport; a failure is recorded as events
/// (and, for a message that carries a backup code, as a failed code delivery).
pub(super) async fn deliver<M: Mailer + ?Sized>(
    mailer: &M,
    events: &dyn EventSink,
    account: UserId,
    at: Timestamp,
    message: &Message,
) -> Delivery {
    match mailer.send(message).await {
        Ok(()) => Delivery::Sent,
        Err(err) => {
            let account = Some(account);
            if message.carries_code() {
                events.record(&Event { at, account, kind: EventKind::BackupCodeDeliveryFailed });
            }
            events.record(&Event { at, account, kind: EventKind::MailFailed { kind: message.kind() } });
            Delivery::Failed(err.to_string())
        }
    }
}

/// A [`Mailer`] that sends a message it owns, for a send that may outlive the request.
/// `Mailer` is not object-safe (its `send` returns `impl Future`); the engine keeps
/// its mailer behind this trait as well, made once in
/// [`EngineBuilder::build`](crate::EngineBuilder::build), so that generic code using an
/// engine needs no `'static` bound.
pub(super) trait OwnedMailer: Send + Sync {
    /// Sends `message`; the future owns everything it needs.
    fn send_owned(&self, message: Message) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send>>;
}

impl<M: Mailer + 'static> OwnedMailer for Arc<M> {
    fn send_owned(&self, message: Message) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send>> {
        let mailer = Arc::clone(self);
        Box::pin(async move { mailer.send(&message).await })
    }
}

/// Sends `message` without waiting for a transport that would block: see the module
/// documentation. A failure is recorded as a [`EventKind::MailFailed`] event.
pub(super) async fn send_detached(
    mailer: Arc<dyn OwnedMailer>,
    events: Arc<dyn EventSink>,
    account: UserId,
    at: Timestamp,
    message: Message,
) {
    let kind = message.kind();
    let sending = mailer.send_owned(message);
    let mut send = Box::pin(async move {
        if sending.await.is_err() {
            events.record(&Event { at, account: Some(account), kind: EventKind::MailFailed { kind } });
        }
    });
    if poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx).is_ready())).await {
        return;
    }
    #[cfg(feature = "tokio")]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        drop(runtime.spawn(send));
        return;
    }
    send.await;
}
