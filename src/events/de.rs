//! `Deserialize` for [`EventKind`] and [`FailureClass`], through mirrors whose strings
//! are owned (a derived impl would borrow the `&'static str` fields and so accept only
//! `'static` input), mapped back onto the fixed lists of allowed names.

use serde::Deserialize;

use super::{EventKind, Factor, FailureClass, InputProblem};
use crate::UserId;
use crate::account::Role;
use crate::mail::MessageKind;
use crate::plumbing::clock::Timestamp;

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
    TwoFactorReset { by: UserId, by_role: Role, identity_check: String },
    #[serde(rename = "two_factor.reset_denied")]
    ResetDenied { by: UserId },
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
    #[serde(rename = "password.imported")]
    PasswordImported,
    #[serde(rename = "mail.failed")]
    MailFailed { kind: MessageKind },
    #[serde(rename = "mail.delivered")]
    MailDelivered { kind: MessageKind },
    #[serde(rename = "mail.gave_up")]
    MailGaveUp { kind: MessageKind, attempts: u32 },
    #[serde(rename = "authenticator.added")]
    AuthenticatorAdded { authenticator: String },
    #[serde(rename = "authenticator.removed")]
    AuthenticatorRemoved { authenticator: String },
    #[serde(rename = "two_factor.disabled")]
    TwoFactorDisabled,
    #[serde(rename = "second_factor.verified")]
    SecondFactorVerified { factor: Factor },
    #[serde(rename = "throttle.unlocked")]
    Unlocked { by: UserId, by_role: Role, reason: String },
    #[serde(rename = "throttle.unlock_denied")]
    UnlockDenied { by: UserId },
    #[serde(rename = "user.forgotten")]
    UserForgotten,
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
            Mirror::PasswordImported => EventKind::PasswordImported,
            Mirror::HashingUnoptimized { millis } => EventKind::HashingUnoptimized { millis },
            Mirror::MailFailed { kind } => EventKind::MailFailed { kind },
            Mirror::MailDelivered { kind } => EventKind::MailDelivered { kind },
            Mirror::MailGaveUp { kind, attempts } => EventKind::MailGaveUp { kind, attempts },
            Mirror::AuthenticatorAdded { authenticator } => EventKind::AuthenticatorAdded { authenticator },
            Mirror::AuthenticatorRemoved { authenticator } => EventKind::AuthenticatorRemoved { authenticator },
            Mirror::TwoFactorDisabled => EventKind::TwoFactorDisabled,
            Mirror::SecondFactorVerified { factor } => EventKind::SecondFactorVerified { factor },
            Mirror::Unlocked { by, by_role, reason } => EventKind::Unlocked { by, by_role, reason },
            Mirror::UnlockDenied { by } => EventKind::UnlockDenied { by },
            Mirror::UserForgotten => EventKind::UserForgotten,
        })
    }
}
