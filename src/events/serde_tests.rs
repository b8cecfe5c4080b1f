//! The serde forms of the events: every variant, its tag, and what is refused.

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
        EventKind::TwoFactorReset {
            by: UserId::from(1_u64 << 62),
            by_role: Role::Support,
            identity_check: "call".into(),
        },
        EventKind::ResetDenied { by: UserId::from(7_u64) },
        EventKind::Throttled { until: Timestamp(60) },
        EventKind::SecondFactorLocked,
        EventKind::LocationRemembered { location: "ab".into() },
        EventKind::LocationRevoked { location: "cd".into() },
        EventKind::PasswordChanged,
        EventKind::PasswordImported,
        EventKind::MailFailed { kind: MessageKind::TwoFactorReset },
        EventKind::MailDelivered { kind: MessageKind::BackupCodeRotated },
        EventKind::MailGaveUp { kind: MessageKind::Throttled, attempts: 10 },
        EventKind::AuthenticatorAdded { authenticator: "0102030405060708".to_owned() },
        EventKind::AuthenticatorRemoved { authenticator: "0102030405060708".to_owned() },
        EventKind::TwoFactorDisabled,
        EventKind::SecondFactorVerified { factor: Factor::BackupCode },
        EventKind::Unlocked { by: UserId::from(3_u64), by_role: Role::Support, reason: "called back".to_owned() },
        EventKind::UnlockDenied { by: UserId::from(3_u64) },
        EventKind::UserForgotten,
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
            | EventKind::PasswordImported
            | EventKind::MailFailed { .. }
            | EventKind::MailDelivered { .. }
            | EventKind::MailGaveUp { .. }
            | EventKind::AuthenticatorAdded { .. }
            | EventKind::AuthenticatorRemoved { .. }
            | EventKind::TwoFactorDisabled
            | EventKind::SecondFactorVerified { .. }
            | EventKind::Unlocked { .. }
            | EventKind::UnlockDenied { .. }
            | EventKind::UserForgotten
            | EventKind::HashingUnoptimized { .. } => {}
        }
    }
    all
}

#[test]
fn tag_is_the_stable_name_for_every_variant() {
    let all = every_kind();
    let names: std::collections::HashSet<_> = all.iter().map(EventKind::name).collect();
    assert_eq!(names.len(), 29, "every variant");
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
        Message::NewLocation { to: to.clone(), location: "x".into(), at: Timestamp(0) },
        Message::AuthenticatorAdded { to: to.clone(), name: "x".into(), at: Timestamp(0) },
        Message::AuthenticatorRemoved { to: to.clone(), name: "x".into(), at: Timestamp(0) },
        Message::TwoFactorDisabled { to: to.clone(), at: Timestamp(0) },
        Message::Unlocked { to, by: "b".into(), by_role: Role::Admin, at: Timestamp(0) },
    ];
    for m in &messages {
        // Listing every variant (and reason): a new one fails to compile here.
        match m {
            Message::BackupCode { reason: CodeReason::Setup | CodeReason::Rotated | CodeReason::Reissued, .. }
            | Message::TwoFactorReset { .. }
            | Message::Throttled { .. }
            | Message::SecondFactorLocked { .. }
            | Message::NewLocation { .. }
            | Message::AuthenticatorAdded { .. }
            | Message::AuthenticatorRemoved { .. }
            | Message::TwoFactorDisabled { .. }
            | Message::Unlocked { .. } => {}
        }
    }
    let kinds: std::collections::BTreeSet<MessageKind> = messages.iter().map(Message::kind).collect();
    assert_eq!(kinds.len(), messages.len(), "each message has a kind of its own");
    let names: std::collections::BTreeSet<&str> = kinds.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), kinds.len(), "each kind has a name of its own");
    for m in &messages {
        let kind = EventKind::MailFailed { kind: m.kind() };
        let json = serde_json::to_value(&kind).unwrap();
        assert_eq!(json["kind"], m.kind().as_str(), "the kind serializes as its stable name");
        assert_eq!(json["kind"], m.kind().to_string());
        assert_eq!(serde_json::from_value::<EventKind>(json.clone()).unwrap(), kind, "{json}");
    }
    let unknown = r#"{"event":"mail.failed","kind":"carrier_pigeon"}"#;
    assert!(serde_json::from_str::<EventKind>(unknown).is_err());
}
