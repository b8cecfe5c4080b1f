//! Outbound mail: the typed [`Message`]s the engine sends, the [`Mailer`] trait that
//! delivers them, and the default templates ([`DefaultRenderer`]).
//!
//! Mail is part of the security path: the backup code lives in the user's mailbox.
//! The engine writes each message into the user's document by the same
//! compare-and-swap as the change that causes it, and a worker delivers it from there
//! (the transactional outbox: see [`Engine::deliver_due`](crate::Engine::deliver_due)),
//! so a crash or a mail outage never leaves an old code valid, a new code unstored, or
//! a new code unmailed.

pub(crate) mod boxed;
mod file;
mod memory;
mod render;
#[cfg(feature = "smtp")]
mod smtp;
mod templates;

use std::fmt;
use std::future::Future;

pub use boxed::BoxMailer;
pub use file::FileOutbox;
pub use memory::{MemoryMailer, SentMail};
pub use render::{DefaultRenderer, Rendered, Renderer};
#[cfg(feature = "smtp")]
pub use smtp::{FailureKind, RetryPolicy, Security, SmtpConfig, SmtpConfigError, SmtpMailer};
pub use templates::escape::html_escape;

use crate::account::Role;
use crate::crypto::secret::SecretString;
use crate::error::MailError;
use crate::outbox::MailId;
use crate::plumbing::clock::Timestamp;

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The account's username.
    pub username: String,
    /// The account's email address.
    pub email: String,
}

/// Why a backup code is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeReason {
    /// 2FA was just set up.
    Setup,
    /// The previous code was used to log in; this replaces it.
    Rotated,
    /// The user asked for a fresh code (the previous one is void).
    Reissued,
}

/// A message the engine sends. Codes inside are [`SecretString`]s: `Debug` never shows
/// them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Message {
    /// A backup code (at setup, after a use, or on request).
    BackupCode {
        /// The account.
        to: Recipient,
        /// Why it is sent.
        reason: CodeReason,
        /// The code(s), in display form; the only place they ever exist in plaintext.
        codes: Vec<SecretString>,
        /// When they stop working, if the policy limits their life.
        expires_at: Option<Timestamp>,
    },
    /// An administrator (or support) reset the account's 2FA.
    TwoFactorReset {
        /// The account.
        to: Recipient,
        /// The actor's username.
        by: String,
        /// The actor's role.
        by_role: Role,
        /// When.
        at: Timestamp,
    },
    /// Too many failed attempts: the account is throttled.
    Throttled {
        /// The account.
        to: Recipient,
        /// Attempts are refused until then.
        until: Timestamp,
    },
    /// Too many failed attempts: the second factor is locked until an administrator
    /// resets it.
    SecondFactorLocked {
        /// The account.
        to: Recipient,
        /// When it locked.
        at: Timestamp,
    },
    /// A login from a location that was not remembered.
    NewLocation {
        /// The account.
        to: Recipient,
        /// The label the application gave the location.
        location: String,
        /// When.
        at: Timestamp,
    },
    /// The user added an authenticator.
    AuthenticatorAdded {
        /// The account.
        to: Recipient,
        /// The name the user gave it.
        name: String,
        /// When.
        at: Timestamp,
    },
    /// The user removed an authenticator.
    AuthenticatorRemoved {
        /// The account.
        to: Recipient,
        /// Its name.
        name: String,
        /// When.
        at: Timestamp,
    },
    /// The user turned two-factor authentication off.
    TwoFactorDisabled {
        /// The account.
        to: Recipient,
        /// When.
        at: Timestamp,
    },
    /// An administrator (or support) lifted a throttle or the second-factor lock.
    Unlocked {
        /// The account.
        to: Recipient,
        /// The actor's username.
        by: String,
        /// The actor's role.
        by_role: Role,
        /// When.
        at: Timestamp,
    },
}

impl Message {
    /// The recipient.
    pub fn recipient(&self) -> &Recipient {
        match self {
            Message::BackupCode { to, .. }
            | Message::TwoFactorReset { to, .. }
            | Message::Throttled { to, .. }
            | Message::SecondFactorLocked { to, .. }
            | Message::NewLocation { to, .. }
            | Message::AuthenticatorAdded { to, .. }
            | Message::AuthenticatorRemoved { to, .. }
            | Message::TwoFactorDisabled { to, .. }
            | Message::Unlocked { to, .. } => to,
        }
    }

    /// The kind of message; [`MessageKind::as_str`] is its stable name
    /// (`backup_code.setup`, `reset`, …).
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::BackupCode { reason: CodeReason::Setup, .. } => MessageKind::BackupCodeSetup,
            Message::BackupCode { reason: CodeReason::Rotated, .. } => MessageKind::BackupCodeRotated,
            Message::BackupCode { reason: CodeReason::Reissued, .. } => MessageKind::BackupCodeReissued,
            Message::TwoFactorReset { .. } => MessageKind::TwoFactorReset,
            Message::Throttled { .. } => MessageKind::Throttled,
            Message::SecondFactorLocked { .. } => MessageKind::SecondFactorLocked,
            Message::NewLocation { .. } => MessageKind::NewLocation,
            Message::AuthenticatorAdded { .. } => MessageKind::AuthenticatorAdded,
            Message::AuthenticatorRemoved { .. } => MessageKind::AuthenticatorRemoved,
            Message::TwoFactorDisabled { .. } => MessageKind::TwoFactorDisabled,
            Message::Unlocked { .. } => MessageKind::Unlocked,
        }
    }

    /// Whether the message carries a backup code.
    pub fn carries_code(&self) -> bool {
        self.kind().carries_code()
    }
}

/// The kind of a [`Message`] ([`Message::kind`]): its variant, and for a backup code
/// why it is sent. [`as_str`](Self::as_str) (also `Display`) is a stable name; with the
/// `serde` feature the kind serializes as that name (`"backup_code.setup"`), as in the
/// [`MailFailed`](crate::events::EventKind::MailFailed) event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum MessageKind {
    /// A backup code at setup ([`CodeReason::Setup`]): `backup_code.setup`.
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.setup"))]
    BackupCodeSetup,
    /// A backup code replacing a used one ([`CodeReason::Rotated`]):
    /// `backup_code.rotated`.
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.rotated"))]
    BackupCodeRotated,
    /// A backup code the user asked for ([`CodeReason::Reissued`]):
    /// `backup_code.reissued`.
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.reissued"))]
    BackupCodeReissued,
    /// [`Message::TwoFactorReset`]: `reset`.
    #[cfg_attr(feature = "serde", serde(rename = "reset"))]
    TwoFactorReset,
    /// [`Message::Throttled`]: `throttled`.
    #[cfg_attr(feature = "serde", serde(rename = "throttled"))]
    Throttled,
    /// [`Message::SecondFactorLocked`]: `second_factor_locked`.
    #[cfg_attr(feature = "serde", serde(rename = "second_factor_locked"))]
    SecondFactorLocked,
    /// [`Message::NewLocation`]: `new_location`.
    #[cfg_attr(feature = "serde", serde(rename = "new_location"))]
    NewLocation,
    /// [`Message::AuthenticatorAdded`]: `authenticator.added`.
    #[cfg_attr(feature = "serde", serde(rename = "authenticator.added"))]
    AuthenticatorAdded,
    /// [`Message::AuthenticatorRemoved`]: `authenticator.removed`.
    #[cfg_attr(feature = "serde", serde(rename = "authenticator.removed"))]
    AuthenticatorRemoved,
    /// [`Message::TwoFactorDisabled`]: `two_factor.disabled`.
    #[cfg_attr(feature = "serde", serde(rename = "two_factor.disabled"))]
    TwoFactorDisabled,
    /// [`Message::Unlocked`]: `unlocked`.
    #[cfg_attr(feature = "serde", serde(rename = "unlocked"))]
    Unlocked,
}

impl MessageKind {
    /// The stable name (`backup_code.setup`, `reset`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::BackupCodeSetup => "backup_code.setup",
            MessageKind::BackupCodeRotated => "backup_code.rotated",
            MessageKind::BackupCodeReissued => "backup_code.reissued",
            MessageKind::TwoFactorReset => "reset",
            MessageKind::Throttled => "throttled",
            MessageKind::SecondFactorLocked => "second_factor_locked",
            MessageKind::NewLocation => "new_location",
            MessageKind::AuthenticatorAdded => "authenticator.added",
            MessageKind::AuthenticatorRemoved => "authenticator.removed",
            MessageKind::TwoFactorDisabled => "two_factor.disabled",
            MessageKind::Unlocked => "unlocked",
        }
    }
}

impl MessageKind {
    /// Every kind, in declaration order.
    pub(crate) const ALL: [MessageKind; 11] = [
        MessageKind::BackupCodeSetup,
        MessageKind::BackupCodeRotated,
        MessageKind::BackupCodeReissued,
        MessageKind::TwoFactorReset,
        MessageKind::Throttled,
        MessageKind::SecondFactorLocked,
        MessageKind::NewLocation,
        MessageKind::AuthenticatorAdded,
        MessageKind::AuthenticatorRemoved,
        MessageKind::TwoFactorDisabled,
        MessageKind::Unlocked,
    ];

    /// Whether messages of this kind carry a backup code.
    pub fn carries_code(self) -> bool {
        matches!(self, MessageKind::BackupCodeSetup | MessageKind::BackupCodeRotated | MessageKind::BackupCodeReissued)
    }

    /// The kind whose stable name is `name`.
    pub(crate) fn from_name(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Delivers messages. Async and runtime-agnostic; used through generics.
///
/// An implementation renders the message (usually with a [`Renderer`]) and hands it to
/// a transport. It must not log the rendered body: it holds a backup code.
///
/// The engine calls it from its delivery worker, never inside a request (see
/// [`crate::Engine::deliver_due`]). `id` names the message and stays the same when a
/// failed or interrupted send is tried again: put it in the Message-ID header (as the
/// shipped mailers do, `<id@sender-domain>`) so that a message sent twice is
/// recognisable as one.
pub trait Mailer: Send + Sync {
    /// Sends one message.
    ///
    /// # Errors
    /// [`MailError`] when the transport did not accept the message.
    fn send(&self, id: MailId, message: &Message) -> impl Future<Output = Result<(), MailError>> + Send;
}

impl<M: Mailer + ?Sized> Mailer for std::sync::Arc<M> {
    fn send(&self, id: MailId, message: &Message) -> impl Future<Output = Result<(), MailError>> + Send {
        (**self).send(id, message)
    }
}

/// Where a message that mattered stands.
///
/// The engine's operations answer [`Delivery::Queued`]: the message was written with
/// the change that caused it and waits for the delivery worker (see
/// [`Engine::deliver_due`](crate::Engine::deliver_due)). A delivery round
/// ([`DeliveryReport`](crate::DeliveryReport)) answers `Sent`, `Failed` or `GaveUp` for
/// each message it tried; [`Engine::mail_status`](crate::Engine::mail_status) tells later.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Written to the outbox with the change that caused it; the delivery worker sends
    /// it.
    Queued(MailId),
    /// The transport accepted it.
    Sent,
    /// The transport failed; the message waits for its next try.
    Failed(String),
    /// The transport failed the message's last try; it was given up (and a backup code
    /// in it erased). For a backup code: the account change stands (the old code is
    /// void, the new one stored), so the user should ask for a fresh code with
    /// [`Engine::reissue_backup_code`](crate::Engine::reissue_backup_code).
    GaveUp(String),
}

impl Delivery {
    /// Whether the message was sent.
    pub fn is_sent(&self) -> bool {
        matches!(self, Delivery::Sent)
    }

    /// The queued message's id, for [`Engine::mail_status`](crate::Engine::mail_status)
    /// or [`DeliveryReport::delivery_of`](crate::DeliveryReport::delivery_of).
    pub fn queued(&self) -> Option<MailId> {
        match self {
            Delivery::Queued(id) => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delivery::Queued(id) => write!(f, "queued as {id}"),
            Delivery::Sent => f.write_str("sent"),
            Delivery::Failed(why) => write!(f, "failed: {why}"),
            Delivery::GaveUp(why) => write!(f, "given up: {why}"),
        }
    }
}
