//! Audit events: a typed, stable record of what happened, for the application's audit
//! log. No event carries a password, code, key or token.
//!
//! With the `serde` feature an [`Event`] serializes as one flat object: the time in
//! Unix seconds, the account id as a decimal string (or `null`), the stable name
//! ([`EventKind::name`]) under `"event"`, and the kind's own fields:
//!
//! ```json
//! {"at":1764498000,"account":"5468115731402263511","event":"second_factor.failed","factor":"totp","reason":"wrong_code"}
//! ```
//!
//! Names ([`EventKind::name`], [`Factor::as_str`], [`FailureClass::as_str`],
//! [`Role::as_str`](crate::Role::as_str)) and field names are stable; an event whose
//! name this version does not know does not deserialize.

use std::sync::{Arc, Mutex, PoisonError};

use crate::UserId;
use crate::account::Role;
use crate::mail::MessageKind;
use crate::plumbing::clock::Timestamp;

/// Which factor an event is about. Serializes as [`Factor::as_str`] (`"backup_code"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "snake_case"))]
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
///
/// With the `serde` feature a class serializes as its name ([`FailureClass::as_str`],
/// `"wrong_password"`), and [`BadInput`](FailureClass::BadInput) as an object under
/// its name: `{"bad_input":{"field":"code","problem":"malformed"}}` (serde's usual
/// form for an enum). A `field` deserializes only if it is one this version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
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
    /// An input was refused before anything was evaluated: a typo (a code with
    /// letters, an over-long password) or a tampered value. Nothing was counted.
    BadInput {
        /// Which input (`username`, `password`, `code`, `backup code`, `pending login`).
        field: &'static str,
        /// What was wrong with it.
        problem: InputProblem,
    },
}

/// What was wrong with an input refused unevaluated (see [`FailureClass::BadInput`]).
/// Serializes as [`InputProblem::as_str`] (`"too_long"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum InputProblem {
    /// Longer than its maximum.
    TooLong,
    /// Not of the expected form (a code with letters, a token that does not open).
    Malformed,
}

impl InputProblem {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            InputProblem::TooLong => "too_long",
            InputProblem::Malformed => "malformed",
        }
    }
}

impl FailureClass {
    /// The class of a refused input.
    pub(crate) fn bad_input(err: &crate::error::InputError) -> FailureClass {
        use crate::error::InputError;
        let (field, problem) = match err {
            InputError::TooLong { field, .. } => (*field, InputProblem::TooLong),
            InputError::TooShort { field, .. }
            | InputError::Malformed { field, .. }
            | InputError::ForbiddenCharacter { field, .. } => (*field, InputProblem::Malformed),
        };
        FailureClass::BadInput { field, problem }
    }
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
            FailureClass::BadInput { .. } => "bad_input",
        }
    }
}

/// What happened.
///
/// With the `serde` feature it serializes internally tagged: an object whose `"event"`
/// is [`EventKind::name`], next to the variant's fields, e.g.
/// `{"event":"login.failed","reason":"wrong_password"}` or `{"event":"account.created"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(tag = "event"))]
#[non_exhaustive]
pub enum EventKind {
    /// An account was created.
    #[cfg_attr(feature = "serde", serde(rename = "account.created"))]
    AccountCreated,
    /// A login completed.
    #[cfg_attr(feature = "serde", serde(rename = "login.succeeded"))]
    LoginSucceeded {
        /// The last factor that completed it.
        factor: Factor,
    },
    /// A password step failed.
    #[cfg_attr(feature = "serde", serde(rename = "login.failed"))]
    LoginFailed {
        /// Why.
        reason: FailureClass,
    },
    /// A password step was answered [`LoginOutcome::Busy`](crate::LoginOutcome::Busy)
    /// without being evaluated: too many logins were already waiting to be hashed.
    /// Recorded without an account (the decision does not depend on one).
    #[cfg_attr(feature = "serde", serde(rename = "login.shed"))]
    LoginShed,
    /// A second-factor attempt failed.
    #[cfg_attr(feature = "serde", serde(rename = "second_factor.failed"))]
    SecondFactorFailed {
        /// Which factor.
        factor: Factor,
        /// Why.
        reason: FailureClass,
    },
    /// A backup code was used to log in.
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.used"))]
    BackupCodeUsed,
    /// New backup codes were stored (after a use, at setup or on request).
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.rotated"))]
    BackupCodeRotated,
    /// Mailing a backup code failed; the user needs a reissue.
    #[cfg_attr(feature = "serde", serde(rename = "backup_code.delivery_failed"))]
    BackupCodeDeliveryFailed,
    /// An enrollment secret was issued.
    #[cfg_attr(feature = "serde", serde(rename = "enrollment.started"))]
    EnrollmentStarted,
    /// 2FA became active.
    #[cfg_attr(feature = "serde", serde(rename = "enrollment.confirmed"))]
    EnrollmentConfirmed,
    /// 2FA was reset by an administrator or support.
    #[cfg_attr(feature = "serde", serde(rename = "two_factor.reset"))]
    TwoFactorReset {
        /// The actor.
        by: UserId,
        /// The actor's role.
        by_role: Role,
        /// How the actor verified the user's identity.
        identity_check: String,
    },
    /// A reset was refused by the role rules.
    #[cfg_attr(feature = "serde", serde(rename = "two_factor.reset_denied"))]
    ResetDenied {
        /// The actor.
        by: UserId,
    },
    /// The account was throttled.
    #[cfg_attr(feature = "serde", serde(rename = "throttle.started"))]
    Throttled {
        /// Until when.
        until: Timestamp,
    },
    /// The second factor was locked after too many failures.
    #[cfg_attr(feature = "serde", serde(rename = "second_factor.locked"))]
    SecondFactorLocked,
    /// A location was remembered.
    #[cfg_attr(feature = "serde", serde(rename = "location.remembered"))]
    LocationRemembered {
        /// Its public id (hex).
        location: String,
    },
    /// A location was revoked.
    #[cfg_attr(feature = "serde", serde(rename = "location.revoked"))]
    LocationRevoked {
        /// Its public id (hex).
        location: String,
    },
    /// The password was changed (every remembered location and pending login ended).
    #[cfg_attr(feature = "serde", serde(rename = "password.changed"))]
    PasswordChanged,
    /// A password hash from another system was imported
    /// ([`Engine::import_password_hash`](crate::Engine::import_password_hash)); the
    /// next right password replaces it with Argon2id.
    #[cfg_attr(feature = "serde", serde(rename = "password.imported"))]
    PasswordImported,
    /// A try to send a queued message failed (it is retried, or given up after its
    /// last try: [`EventKind::MailGaveUp`]).
    #[cfg_attr(feature = "serde", serde(rename = "mail.failed"))]
    MailFailed {
        /// The message kind ([`Message::kind`](crate::mail::Message::kind)); it
        /// serializes as its stable name ([`MessageKind::as_str`]).
        kind: MessageKind,
    },
    /// A queued message was handed to the mail transport
    /// ([`Engine::deliver_due`](crate::Engine::deliver_due)).
    #[cfg_attr(feature = "serde", serde(rename = "mail.delivered"))]
    MailDelivered {
        /// The message kind.
        kind: MessageKind,
    },
    /// A queued message failed its last try and was given up (a backup code in it is
    /// erased; the user needs a reissue).
    #[cfg_attr(feature = "serde", serde(rename = "mail.gave_up"))]
    MailGaveUp {
        /// The message kind.
        kind: MessageKind,
        /// How many tries failed.
        attempts: u32,
    },
    /// The user added an authenticator (its confirming code was right).
    #[cfg_attr(feature = "serde", serde(rename = "authenticator.added"))]
    AuthenticatorAdded {
        /// Its public id (16 hex digits).
        authenticator: String,
    },
    /// The user removed an authenticator.
    #[cfg_attr(feature = "serde", serde(rename = "authenticator.removed"))]
    AuthenticatorRemoved {
        /// Its public id (16 hex digits).
        authenticator: String,
    },
    /// The user turned two-factor authentication off.
    #[cfg_attr(feature = "serde", serde(rename = "two_factor.disabled"))]
    TwoFactorDisabled,
    /// A signed-in user proved a fresh second factor
    /// ([`Engine::step_up`](crate::Engine::step_up), or before turning 2FA off or
    /// removing an authenticator).
    #[cfg_attr(feature = "serde", serde(rename = "second_factor.verified"))]
    SecondFactorVerified {
        /// Which factor.
        factor: Factor,
    },
    /// An administrator (or support) lifted the account's throttle or second-factor
    /// lock.
    #[cfg_attr(feature = "serde", serde(rename = "throttle.unlocked"))]
    Unlocked {
        /// The actor.
        by: UserId,
        /// The actor's role.
        by_role: Role,
        /// Why (free text from the actor).
        reason: String,
    },
    /// An unlock was refused by the role rules.
    #[cfg_attr(feature = "serde", serde(rename = "throttle.unlock_denied"))]
    UnlockDenied {
        /// The actor.
        by: UserId,
    },
    /// Everything the crate held for the user was removed
    /// ([`Engine::forget_user`](crate::Engine::forget_user)).
    #[cfg_attr(feature = "serde", serde(rename = "user.forgotten"))]
    UserForgotten,
    /// Recorded once, when the engine is built: a debug build hashed far slower than
    /// Argon2 runs optimized (over 2 µs per KiB and pass, where optimized code takes
    /// well under 1 µs), so Argon2 was probably compiled without optimizations and
    /// every login will take about a second. Add `[profile.dev.package.argon2]
    /// opt-level = 3` (and the same for `blake2`) to the application's `Cargo.toml`.
    #[cfg_attr(feature = "serde", serde(rename = "hashing.unoptimized"))]
    HashingUnoptimized {
        /// How long the engine's first hash took, in milliseconds.
        millis: u64,
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
            EventKind::PasswordImported => "password.imported",
            EventKind::MailFailed { .. } => "mail.failed",
            EventKind::MailDelivered { .. } => "mail.delivered",
            EventKind::MailGaveUp { .. } => "mail.gave_up",
            EventKind::AuthenticatorAdded { .. } => "authenticator.added",
            EventKind::AuthenticatorRemoved { .. } => "authenticator.removed",
            EventKind::TwoFactorDisabled => "two_factor.disabled",
            EventKind::SecondFactorVerified { .. } => "second_factor.verified",
            EventKind::Unlocked { .. } => "throttle.unlocked",
            EventKind::UnlockDenied { .. } => "throttle.unlock_denied",
            EventKind::UserForgotten => "user.forgotten",
            EventKind::HashingUnoptimized { .. } => "hashing.unoptimized",
        }
    }
}

/// An audit event.
///
/// With the `serde` feature it serializes as one flat object (see the
/// [module documentation](self)):
/// `{"at":1764498000,"account":"5468115731402263511","event":"login.succeeded","factor":"totp"}`;
/// `"account"` is `null` when no account is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// The account concerned, if known (an unknown username has none).
    pub account: Option<UserId>,
    /// What.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: EventKind,
}

#[cfg(feature = "serde")]
mod de;

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
            account = event.account.as_ref().map(|a| a.as_str()),
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

#[cfg(all(test, feature = "serde"))]
mod serde_tests;
