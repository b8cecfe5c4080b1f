//! The transactional outbox: mail the engine decides on waits in the user's own
//! credential document until a worker has delivered it.
//!
//! Every message (a backup code issued or rotated, a reset notice, a throttle or lock
//! notice, a new-location notice) is written by the same compare-and-swap as the state
//! change that causes it. So a crash can lose neither: after a backup-code login the
//! old code is void and the new one is stored *and* queued, in one write, or neither
//! happened. A backup code waits sealed under the [`KeyRing`](crate::KeyRing) (bound
//! to the user and the mail) and is erased when the mail is delivered.
//!
//! No request waits on mail, and none sends it: the answer time of a wrong password
//! does not depend on whether a notice went out, so it tells an attacker nothing about
//! which usernames exist. The mail goes out from
//! [`Engine::deliver_due`](crate::Engine::deliver_due), which a worker calls
//! ([`DeliveryWorker`] with the `tokio` feature, or the application's own job runner),
//! or from [`Engine::deliver_queued`](crate::Engine::deliver_queued) for one user,
//! which an application may call right after an operation to tell its user at once
//! whether the mail went out.
//!
//! Delivery is at least once. The worker first claims a due message by
//! compare-and-swap (so of several servers sharing one database, one sends it at a
//! time), sends it, then marks it delivered by compare-and-swap. A crash between the
//! send and the mark sends it again once the claim expires
//! ([`DeliveryPolicy::lease`]), with the same Message-ID ([`MailId`]), so the
//! duplicate is recognisable. A failed send is retried with exponential backoff and
//! given up after [`DeliveryPolicy::max_attempts`], with a
//! [`MailGaveUp`](crate::events::EventKind::MailGaveUp) event.

pub(crate) mod rules;
#[cfg(feature = "tokio")]
mod worker;

use std::fmt;
use std::time::Duration;

use data_encoding::HEXLOWER;

#[cfg(feature = "tokio")]
pub use worker::DeliveryWorker;

use crate::account::{Role, SealedSecret};
use crate::error::InputError;
use crate::mail::{CodeReason, MessageKind};
use crate::plumbing::clock::Timestamp;

/// How many settled messages (delivered or given up) a document remembers, newest
/// kept, for [`Engine::mail_status`](crate::Engine::mail_status).
pub(crate) const SETTLED_KEPT: usize = 8;

/// The id of a queued message: 128 random bits, shown as 32 lowercase hex digits.
/// It stays the same across retries, and the shipped mailers put it in the
/// Message-ID header (`<id@sender-domain>`), so a message sent twice (after a crash
/// between the send and its record) is recognisable as one.
///
/// ```
/// use twofactor::MailId;
/// let id = MailId::parse("00112233445566778899aabbccddeeff")?;
/// assert_eq!(id.to_string(), "00112233445566778899aabbccddeeff");
/// assert!(MailId::parse("not hex").is_err());
/// # Ok::<(), twofactor::InputError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailId(pub(crate) [u8; 16]);

impl MailId {
    /// A fresh random id.
    pub(crate) fn random() -> crate::Result<MailId> {
        crate::crypto::random::bytes::<16>().map(MailId)
    }

    /// Parses the 32-hex-digit form.
    ///
    /// # Errors
    /// [`InputError::Malformed`] (field `mail id`) for anything else.
    pub fn parse(text: &str) -> Result<MailId, InputError> {
        let bytes = HEXLOWER
            .decode(text.as_bytes())
            .map_err(|_| InputError::malformed("mail id", "not 32 lowercase hex digits"))?;
        <[u8; 16]>::try_from(bytes)
            .map(MailId)
            .map_err(|_| InputError::malformed("mail id", "not 32 lowercase hex digits"))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for MailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for MailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MailId({self})")
    }
}

/// Where a queued message stands ([`Engine::mail_status`](crate::Engine::mail_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailStatus {
    /// Waiting: not yet sent, or sent and failed and waiting for its next try.
    Queued {
        /// Tries so far (0: not tried yet).
        attempts: u32,
        /// When the next try is due.
        next_attempt_at: Timestamp,
    },
    /// The transport accepted it.
    Delivered {
        /// When.
        at: Timestamp,
    },
    /// Every try failed; it was given up (and a backup code in it erased).
    GaveUp {
        /// When.
        at: Timestamp,
        /// How many tries failed.
        attempts: u32,
    },
    /// The document knows no such message: never queued for this user, settled long
    /// enough ago to be forgotten (a document remembers its 8 newest), or dropped
    /// unsent: a backup code made void by a newer one (or by a reset) before it went
    /// out, or the oldest notice of a queue at its bound of 32 messages.
    Unknown,
}

/// How queued mail is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryPolicy {
    /// Tries before a message is given up (default 10; at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed try; each further failure doubles it
    /// (default 30 s).
    pub first_retry: Duration,
    /// The longest wait between tries (default 1 hour).
    pub max_retry: Duration,
    /// How long a worker's claim on a message lasts: another worker sends it again
    /// only after this, if the first neither recorded it delivered nor failed (it
    /// crashed). Longer than the slowest send, retries inside the mailer included
    /// (default 5 minutes).
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            max_attempts: 10,
            first_retry: Duration::from_secs(30),
            max_retry: Duration::from_secs(3600),
            lease: Duration::from_secs(300),
        }
    }
}

impl DeliveryPolicy {
    /// Sets [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets [`first_retry`](Self::first_retry) and [`max_retry`](Self::max_retry).
    #[must_use]
    pub fn retry(mut self, first: Duration, max: Duration) -> Self {
        self.first_retry = first;
        self.max_retry = max;
        self
    }

    /// Sets [`lease`](Self::lease).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The wait after the `failures`-th failed try (1 = the first):
    /// `first_retry × 2^(failures − 1)`, at most `max_retry`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twofactor::DeliveryPolicy;
    /// let p = DeliveryPolicy::default();
    /// assert_eq!(p.retry_after(1), Duration::from_secs(30));
    /// assert_eq!(p.retry_after(3), Duration::from_secs(120));
    /// assert_eq!(p.retry_after(30), Duration::from_secs(3600));
    /// ```
    pub fn retry_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first_retry.saturating_mul(1 << doublings).min(self.max_retry)
    }
}

/// What one delivery round did ([`Engine::deliver_due`](crate::Engine::deliver_due),
/// [`Engine::deliver_queued`](crate::Engine::deliver_queued)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// Each message this round tried, in order, and how it went: [`Delivery::Sent`],
    /// [`Delivery::Failed`] (it waits for its next try) or [`Delivery::GaveUp`].
    ///
    /// [`Delivery::Sent`]: crate::mail::Delivery::Sent
    /// [`Delivery::Failed`]: crate::mail::Delivery::Failed
    /// [`Delivery::GaveUp`]: crate::mail::Delivery::GaveUp
    pub messages: Vec<(MailId, MessageKind, crate::mail::Delivery)>,
    /// Messages sent.
    pub sent: u32,
    /// Messages that failed and wait for another try.
    pub retrying: u32,
    /// Messages that failed their last try and were given up.
    pub gave_up: u32,
    /// Users whose due mail this round looked at.
    pub users: u32,
    /// Users skipped because their document could not be read (their mail stays
    /// queued).
    pub skipped: u32,
}

impl DeliveryReport {
    /// How this round's try of message `id` went, if it tried it.
    pub fn delivery_of(&self, id: MailId) -> Option<&crate::mail::Delivery> {
        self.messages.iter().find(|(m, _, _)| *m == id).map(|(_, _, d)| d)
    }

    /// Adds `other`'s messages and counts to this report (for a caller that runs
    /// several rounds).
    pub fn absorb(&mut self, other: DeliveryReport) {
        self.messages.extend(other.messages);
        self.sent += other.sent;
        self.retrying += other.retrying;
        self.gave_up += other.gave_up;
        self.users += other.users;
        self.skipped += other.skipped;
    }
}

/// A message waiting in a user's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedMail {
    pub(crate) id: MailId,
    pub(crate) payload: Payload,
    /// Tries claimed so far.
    pub(crate) attempts: u32,
    /// When it is next due: its first try, its next retry, or the end of a claim.
    pub(crate) due: Timestamp,
}

/// What a queued message says; its recipient is the user, read at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    BackupCode { reason: CodeReason, codes: Vec<SealedSecret>, expires_at: Option<Timestamp> },
    TwoFactorReset { by: String, by_role: Role, at: Timestamp },
    Throttled { until: Timestamp },
    SecondFactorLocked { at: Timestamp },
    NewLocation { location: String, at: Timestamp },
    AuthenticatorAdded { name: String, at: Timestamp },
    AuthenticatorRemoved { name: String, at: Timestamp },
    TwoFactorDisabled { at: Timestamp },
    Unlocked { by: String, by_role: Role, at: Timestamp },
}

impl Payload {
    pub(crate) fn kind(&self) -> MessageKind {
        match self {
            Payload::BackupCode { reason: CodeReason::Setup, .. } => MessageKind::BackupCodeSetup,
            Payload::BackupCode { reason: CodeReason::Rotated, .. } => MessageKind::BackupCodeRotated,
            Payload::BackupCode { .. } => MessageKind::BackupCodeReissued,
            Payload::TwoFactorReset { .. } => MessageKind::TwoFactorReset,
            Payload::Throttled { .. } => MessageKind::Throttled,
            Payload::SecondFactorLocked { .. } => MessageKind::SecondFactorLocked,
            Payload::NewLocation { .. } => MessageKind::NewLocation,
            Payload::AuthenticatorAdded { .. } => MessageKind::AuthenticatorAdded,
            Payload::AuthenticatorRemoved { .. } => MessageKind::AuthenticatorRemoved,
            Payload::TwoFactorDisabled { .. } => MessageKind::TwoFactorDisabled,
            Payload::Unlocked { .. } => MessageKind::Unlocked,
        }
    }
}

/// A message that left the queue: delivered, or given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SettledMail {
    pub(crate) id: MailId,
    pub(crate) kind: MessageKind,
    pub(crate) delivered: bool,
    pub(crate) at: Timestamp,
    pub(crate) attempts: u32,
}

/// When the earliest of `queue` is due (`None`: nothing waits).
pub(crate) fn due_at(queue: &[QueuedMail]) -> Option<Timestamp> {
    queue.iter().map(|m| m.due).min()
}
