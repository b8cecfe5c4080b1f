//! Audit events: a typed, stable record of what happened, for the application's audit
//! log. No event carries a password, code, key or token.

use std::sync::{Arc, Mutex, PoisonError};

use crate::account::{AccountId, Role};
use crate::clock::Timestamp;

/// Which factor an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Factor {
    /// The password.
    Password,
    /// An authenticator-app code.
    Totp,
    /// A backup code.
    BackupCode,
    /// A remembered location's token.
    Location,
}

impl Factor {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Totp => "totp",
            Factor::BackupCode => "backup_code",
            Factor::Location => "location",
        }
    }
}

/// Why a login step failed, as a class (the user-facing outcome does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureClass {
    /// No account has that username.
    UnknownUser,
    /// The password was wrong.
    WrongPassword,
    /// The account is throttled; the attempt was not evaluated.
    Throttled,
    /// The second factor is locked until an administrator reset.
    Locked,
    /// The code was wrong.
    WrongCode,
    /// The code was right but already used (a replay).
    Replayed,
    /// The pending login was expired, used, forged or exhausted.
    PendingInvalid,
}

impl FailureClass {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::UnknownUser => "unknown_user",
            FailureClass::WrongPassword => "wrong_password",
            FailureClass::Throttled => "throttled",
            FailureClass::Locked => "locked",
            FailureClass::WrongCode => "wrong_code",
            FailureClass::Replayed => "replayed",
            FailureClass::PendingInvalid => "pending_invalid",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// An account was created.
    AccountCreated,
    /// A login completed.
    LoginSucceeded {
        /// The last factor that completed it.
        factor: Factor,
    },
    /// A password step failed.
    LoginFailed {
        /// Why.
        reason: FailureClass,
    },
    /// A password step was answered [`LoginOutcome::Busy`](crate::LoginOutcome::Busy)
    /// without being evaluated: too many logins were already waiting to be hashed.
    /// Recorded without an account (the decision does not depend on one).
    LoginShed,
    /// A second-factor attempt failed.
    SecondFactorFailed {
        /// Which factor.
        factor: Factor,
        /// Why.
        reason: FailureClass,
    },
    /// A backup code was used to log in.
    BackupCodeUsed,
    /// New backup codes were stored (after a use, at setup or on request).
    BackupCodeRotated,
    /// Mailing a backup code failed; the user needs a reissue.
    BackupCodeDeliveryFailed,
    /// An enrollment secret was issued.
    EnrollmentStarted,
    /// 2FA became active.
    EnrollmentConfirmed,
    /// 2FA was reset by an administrator or support.
    TwoFactorReset {
        /// The actor.
        by: AccountId,
        /// The actor's role.
        by_role: Role,
        /// How the actor verified the user's identity.
        identity_check: String,
    },
    /// A reset was refused by the role rules.
    ResetDenied {
        /// The actor.
        by: AccountId,
    },
    /// The account was throttled.
    Throttled {
        /// Until when.
        until: Timestamp,
    },
    /// The second factor was locked after too many failures.
    SecondFactorLocked,
    /// A location was remembered.
    LocationRemembered {
        /// Its public id (hex).
        location: String,
    },
    /// A location was revoked.
    LocationRevoked {
        /// Its public id (hex).
        location: String,
    },
    /// The password was changed (every remembered location and pending login ended).
    PasswordChanged,
    /// A message that mattered could not be mailed.
    MailFailed {
        /// The message kind ([`Message::kind`](crate::mail::Message::kind)).
        kind: &'static str,
    },
}

impl EventKind {
    /// A stable dotted name, e.g. `login.succeeded`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AccountCreated => "account.created",
            EventKind::LoginSucceeded { .. } => "login.succeeded",
            EventKind::LoginFailed { .. } => "login.failed",
            EventKind::LoginShed => "login.shed",
            EventKind::SecondFactorFailed { .. } => "second_factor.failed",
            EventKind::BackupCodeUsed => "backup_code.used",
            EventKind::BackupCodeRotated => "backup_code.rotated",
            EventKind::BackupCodeDeliveryFailed => "backup_code.delivery_failed",
            EventKind::EnrollmentStarted => "enrollment.started",
            EventKind::EnrollmentConfirmed => "enrollment.confirmed",
            EventKind::TwoFactorReset { .. } => "two_factor.reset",
            EventKind::ResetDenied { .. } => "two_factor.reset_denied",
            EventKind::Throttled { .. } => "throttle.started",
            EventKind::SecondFactorLocked => "second_factor.locked",
            EventKind::LocationRemembered { .. } => "location.remembered",
            EventKind::LocationRevoked { .. } => "location.revoked",
            EventKind::PasswordChanged => "password.changed",
            EventKind::MailFailed { .. } => "mail.failed",
        }
    }
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// The account concerned, if known (an unknown username has none).
    pub account: Option<AccountId>,
    /// What.
    pub kind: EventKind,
}

/// Receives audit events. Synchronous and cheap: queue them if writing is slow.
pub trait EventSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &Event);
}

/// Drops every event (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl EventSink for NoopSink {
    fn record(&self, _event: &Event) {}
}

/// Keeps events in memory (tests). Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<Event>>>);

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The stable names of every event so far.
    pub fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.kind.name()).collect()
    }
}

impl EventSink for MemorySink {
    fn record(&self, event: &Event) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event.clone());
    }
}

/// Emits each event as a `tracing` event at INFO (target `twofactor::audit`).
#[cfg(feature = "tracing")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

#[cfg(feature = "tracing")]
impl EventSink for TracingSink {
    fn record(&self, event: &Event) {
        tracing::info!(
            target: "twofactor::audit",
            event = event.kind.name(),
            account = event.account.map(|a| a.0),
            at = event.at.0,
            detail = ?event.kind,
        );
    }
}

/// Sends each event to two sinks.
#[derive(Debug, Clone, Default)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: EventSink, B: EventSink> EventSink for Tee<A, B> {
    fn record(&self, event: &Event) {
        self.0.record(event);
        self.1.record(event);
    }
}
