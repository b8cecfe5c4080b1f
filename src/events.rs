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

use crate::account::{AccountId, Role};
use crate::clock::Timestamp;

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
        by: AccountId,
        /// The actor's role.
        by_role: Role,
        /// How the actor verified the user's identity.
        identity_check: String,
    },
    /// A reset was refused by the role rules.
    #[cfg_attr(feature = "serde", serde(rename = "two_factor.reset_denied"))]
    ResetDenied {
        /// The actor.
        by: AccountId,
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
    /// A message that mattered could not be mailed.
    #[cfg_attr(feature = "serde", serde(rename = "mail.failed"))]
    MailFailed {
        /// The message kind ([`Message::kind`](crate::mail::Message::kind)).
        kind: &'static str,
    },
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
            EventKind::MailFailed { .. } => "mail.failed",
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
    pub account: Option<AccountId>,
    /// What.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: EventKind,
}

/// `Deserialize` for [`EventKind`], through a mirror whose `MailFailed::kind` is owned
/// (a derived impl would borrow the `&'static str` and so accept only `'static` input).
#[cfg(feature = "serde")]
mod de {
    use serde::Deserialize;

    use super::{EventKind, Factor, FailureClass, InputProblem};
    use crate::account::{AccountId, Role};
    use crate::clock::Timestamp;

    /// Every [`Message::kind`](crate::mail::Message::kind); keep in step with it.
    pub(super) const MAIL_KINDS: &[&str] = &[
        "backup_code.setup",
        "backup_code.rotated",
        "backup_code.reissued",
        "reset",
        "throttled",
        "second_factor_locked",
        "new_location",
    ];

    #[derive(Deserialize)]
    #[serde(tag = "event")]
    enum Mirror {
        #[serde(rename = "account.created")]
        AccountCreated,
        #[serde(rename = "login.succeeded")]
        LoginSucceeded { factor: Factor },
        #[serde(rename = "login.failed")]
        LoginFailed { reason: FailureClass },
        #[serde(rename = "login.shed")]
        LoginShed,
        #[serde(rename = "second_factor.failed")]
        SecondFactorFailed { factor: Factor, reason: FailureClass },
        #[serde(rename = "backup_code.used")]
        BackupCodeUsed,
        #[serde(rename = "backup_code.rotated")]
        BackupCodeRotated,
        #[serde(rename = "backup_code.delivery_failed")]
        BackupCodeDeliveryFailed,
        #[serde(rename = "enrollment.started")]
        EnrollmentStarted,
        #[serde(rename = "enrollment.confirmed")]
        EnrollmentConfirmed,
        #[serde(rename = "two_factor.reset")]
        TwoFactorReset { by: AccountId, by_role: Role, identity_check: String },
        #[serde(rename = "two_factor.reset_denied")]
        ResetDenied { by: AccountId },
        #[serde(rename = "throttle.started")]
        Throttled { until: Timestamp },
        #[serde(rename = "second_factor.locked")]
        SecondFactorLocked,
        #[serde(rename = "location.remembered")]
        LocationRemembered { location: String },
        #[serde(rename = "location.revoked")]
        LocationRevoked { location: String },
        #[serde(rename = "password.changed")]
        PasswordChanged,
        #[serde(rename = "mail.failed")]
        MailFailed { kind: String },
        #[serde(rename = "hashing.unoptimized")]
        HashingUnoptimized { millis: u64 },
    }

    /// Every `field` of an [`InputError`](crate::InputError); keep in step with them.
    const INPUT_FIELDS: &[&str] = &[
        "username",
        "password",
        "code",
        "backup code",
        "pending login",
        "location token",
        "location id",
        "location label",
        "email",
        "identity check",
        "issuer",
        "uri",
        "algorithm",
        "digits",
        "period",
        "secret",
        "key",
        "keys",
    ];

    fn known<E: serde::de::Error>(value: &str, list: &[&'static str], what: &'static str) -> Result<&'static str, E> {
        match list.iter().find(|k| **k == value) {
            Some(known) => Ok(known),
            None => Err(E::invalid_value(serde::de::Unexpected::Str(value), &what)),
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Class {
        UnknownUser,
        WrongPassword,
        Throttled,
        Locked,
        WrongCode,
        Replayed,
        PendingInvalid,
        BadInput { field: String, problem: InputProblem },
    }

    impl<'de> Deserialize<'de> for FailureClass {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Ok(match Class::deserialize(deserializer)? {
                Class::UnknownUser => FailureClass::UnknownUser,
                Class::WrongPassword => FailureClass::WrongPassword,
                Class::Throttled => FailureClass::Throttled,
                Class::Locked => FailureClass::Locked,
                Class::WrongCode => FailureClass::WrongCode,
                Class::Replayed => FailureClass::Replayed,
                Class::PendingInvalid => FailureClass::PendingInvalid,
                Class::BadInput { field, problem } => {
                    FailureClass::BadInput { field: known(&field, INPUT_FIELDS, "an input's name")?, problem }
                }
            })
        }
    }

    impl<'de> Deserialize<'de> for EventKind {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Ok(match Mirror::deserialize(deserializer)? {
                Mirror::AccountCreated => EventKind::AccountCreated,
                Mirror::LoginSucceeded { factor } => EventKind::LoginSucceeded { factor },
                Mirror::LoginFailed { reason } => EventKind::LoginFailed { reason },
                Mirror::LoginShed => EventKind::LoginShed,
                Mirror::SecondFactorFailed { factor, reason } => EventKind::SecondFactorFailed { factor, reason },
                Mirror::BackupCodeUsed => EventKind::BackupCodeUsed,
                Mirror::BackupCodeRotated => EventKind::BackupCodeRotated,
                Mirror::BackupCodeDeliveryFailed => EventKind::BackupCodeDeliveryFailed,
                Mirror::EnrollmentStarted => EventKind::EnrollmentStarted,
                Mirror::EnrollmentConfirmed => EventKind::EnrollmentConfirmed,
                Mirror::TwoFactorReset { by, by_role, identity_check } => {
                    EventKind::TwoFactorReset { by, by_role, identity_check }
                }
                Mirror::ResetDenied { by } => EventKind::ResetDenied { by },
                Mirror::Throttled { until } => EventKind::Throttled { until },
                Mirror::SecondFactorLocked => EventKind::SecondFactorLocked,
                Mirror::LocationRemembered { location } => EventKind::LocationRemembered { location },
                Mirror::LocationRevoked { location } => EventKind::LocationRevoked { location },
                Mirror::PasswordChanged => EventKind::PasswordChanged,
                Mirror::HashingUnoptimized { millis } => EventKind::HashingUnoptimized { millis },
                Mirror::MailFailed { kind } => {
                    EventKind::MailFailed { kind: known(&kind, MAIL_KINDS, "a message kind (`Message::kind`)")? }
                }
            })
        }
    }
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

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use super::*;
    use crate::mail::{CodeReason, Message, Recipient};

    /// One value of every variant. The match makes adding a variant a compile error
    /// here until it is listed (and so tested).
    fn every_kind() -> Vec<EventKind> {
        let all = vec![
            EventKind::AccountCreated,
            EventKind::LoginSucceeded { factor: Factor::Location },
            EventKind::LoginFailed { reason: FailureClass::UnknownUser },
            EventKind::LoginFailed {
                reason: FailureClass::BadInput { field: "pending login", problem: InputProblem::Malformed },
            },
            EventKind::LoginShed,
            EventKind::SecondFactorFailed { factor: Factor::BackupCode, reason: FailureClass::Replayed },
            EventKind::BackupCodeUsed,
            EventKind::BackupCodeRotated,
            EventKind::BackupCodeDeliveryFailed,
            EventKind::EnrollmentStarted,
            EventKind::EnrollmentConfirmed,
            EventKind::TwoFactorReset { by: AccountId(1 << 62), by_role: Role::Support, identity_check: "call".into() },
            EventKind::ResetDenied { by: AccountId(7) },
            EventKind::Throttled { until: Timestamp(60) },
            EventKind::SecondFactorLocked,
            EventKind::LocationRemembered { location: "ab".into() },
            EventKind::LocationRevoked { location: "cd".into() },
            EventKind::PasswordChanged,
            EventKind::MailFailed { kind: "reset" },
            EventKind::HashingUnoptimized { millis: 900 },
        ];
        for kind in &all {
            match kind {
                EventKind::AccountCreated
                | EventKind::LoginSucceeded { .. }
                | EventKind::LoginFailed { .. }
                | EventKind::LoginShed
                | EventKind::SecondFactorFailed { .. }
                | EventKind::BackupCodeUsed
                | EventKind::BackupCodeRotated
                | EventKind::BackupCodeDeliveryFailed
                | EventKind::EnrollmentStarted
                | EventKind::EnrollmentConfirmed
                | EventKind::TwoFactorReset { .. }
                | EventKind::ResetDenied { .. }
                | EventKind::Throttled { .. }
                | EventKind::SecondFactorLocked
                | EventKind::LocationRemembered { .. }
                | EventKind::LocationRevoked { .. }
                | EventKind::PasswordChanged
                | EventKind::MailFailed { .. }
                | EventKind::HashingUnoptimized { .. } => {}
            }
        }
        all
    }

    #[test]
    fn tag_is_the_stable_name_for_every_variant() {
        let all = every_kind();
        let names: std::collections::HashSet<_> = all.iter().map(EventKind::name).collect();
        assert_eq!(names.len(), 19, "every variant");
        for kind in all {
            let json = serde_json::to_value(&kind).unwrap();
            assert_eq!(json["event"], kind.name(), "{json}");
            assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), kind);
        }
    }

    #[test]
    fn every_message_kind_deserializes() {
        let to = Recipient { username: "a".into(), email: "a@example.test".into() };
        let messages = [
            Message::BackupCode { to: to.clone(), reason: CodeReason::Setup, codes: vec![], expires_at: None },
            Message::BackupCode { to: to.clone(), reason: CodeReason::Rotated, codes: vec![], expires_at: None },
            Message::BackupCode { to: to.clone(), reason: CodeReason::Reissued, codes: vec![], expires_at: None },
            Message::TwoFactorReset { to: to.clone(), by: "b".into(), by_role: Role::Admin, at: Timestamp(0) },
            Message::Throttled { to: to.clone(), until: Timestamp(0) },
            Message::SecondFactorLocked { to: to.clone(), at: Timestamp(0) },
            Message::NewLocation { to, location: "x".into(), at: Timestamp(0) },
        ];
        for m in &messages {
            // Listing every variant (and reason): a new one fails to compile here.
            match m {
                Message::BackupCode {
                    reason: CodeReason::Setup | CodeReason::Rotated | CodeReason::Reissued, ..
                }
                | Message::TwoFactorReset { .. }
                | Message::Throttled { .. }
                | Message::SecondFactorLocked { .. }
                | Message::NewLocation { .. } => {}
            }
        }
        assert_eq!(messages.len(), de::MAIL_KINDS.len());
        for m in &messages {
            let kind = EventKind::MailFailed { kind: m.kind() };
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind, "{json}");
        }
        let unknown = r#"{"event":"mail.failed","kind":"carrier_pigeon"}"#;
        assert!(serde_json::from_str::<EventKind>(unknown).is_err());
    }
}
