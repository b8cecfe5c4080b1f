//! A fully populated account, for the document's and the conformance kit's tests.

use crate::UserId;
use crate::account::{
    Account, Authenticator, BackupCodeHash, Enabled, Enrolling, LoginMark, RememberedLocation, ResetRecord, Role,
    SealedSecret, Throttle, TwoFactor,
};
use crate::factors::totp::{Algorithm, TotpParams};
use crate::mail::{CodeReason, MessageKind};
use crate::outbox::{MailId, Payload, QueuedMail, SettledMail};
use crate::plumbing::clock::Timestamp;

/// A fully populated record: enabled 2FA with two authenticators and one being added,
/// three backup codes (one expiring), two
/// remembered locations, three pending marks, a throttle, a reset record, and `u64`
/// values near 2^64 for the stamp, the TOTP step and some times, three queued mails and
/// two settled ones. Id and username are as given.
pub(crate) fn sample_account(id: UserId, username: &str) -> Account {
    let big = u64::MAX;
    Account {
        id,
        username: username.to_owned(),
        email: format!("{username}@example.test"),
        role: Role::Admin,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned()),
        security_stamp: big - 1,
        created_at: Timestamp(1_800_000_000),
        two_factor: TwoFactor::Enabled(Enabled {
            authenticators: vec![
                Authenticator {
                    id: [0; 8],
                    name: "Phone — ünïcödé \"quoted\"".to_owned(),
                    secret: SealedSecret((0..=255).collect()),
                    params: TotpParams { algorithm: Algorithm::Sha512, digits: 8, period: 60 },
                    last_used_step: big - 7,
                    added_at: Timestamp(1_800_000_100),
                    last_used_at: Timestamp(big - 8),
                },
                Authenticator {
                    id: [0xff; 8],
                    name: String::new(),
                    secret: SealedSecret(vec![7; 64]),
                    params: TotpParams::default(),
                    last_used_step: 0,
                    added_at: Timestamp(0),
                    last_used_at: Timestamp(0),
                },
            ],
            adding: Some(Enrolling {
                id: [0x5a; 8],
                name: "Tablet".to_owned(),
                secret: SealedSecret(vec![9; 64]),
                params: TotpParams { algorithm: Algorithm::Sha256, digits: 6, period: 30 },
                started_at: Timestamp(1_800_000_200),
            }),
            backup_codes: vec![
                BackupCodeHash { phc: "$argon2id$code-1".to_owned(), issued_at: Timestamp(10), expires_at: None },
                BackupCodeHash {
                    phc: "$argon2id$code-2".to_owned(),
                    issued_at: Timestamp(20),
                    expires_at: Some(Timestamp(big)),
                },
                BackupCodeHash {
                    phc: "$argon2id$code-3".to_owned(),
                    issued_at: Timestamp(i64::MAX as u64 + 1),
                    expires_at: Some(Timestamp(30)),
                },
            ],
            enabled_at: Timestamp(1_800_000_100),
        }),
        throttle: Throttle {
            failures: u32::MAX,
            until: Some(Timestamp(big - 2)),
            second_factor_failures: u32::MAX - 1,
            second_factor_locked: true,
        },
        locations: vec![
            RememberedLocation {
                id: [7; 16],
                token_hash: [0xfe; 32],
                label: "Firefox on Linux — ünïcödé".to_owned(),
                created_at: Timestamp(100),
                last_used_at: Timestamp(200),
                expires_at: Timestamp(big),
            },
            RememberedLocation {
                id: [0; 16],
                token_hash: [1; 32],
                label: String::new(),
                created_at: Timestamp(0),
                last_used_at: Timestamp(0),
                expires_at: Timestamp(1),
            },
        ],
        pending: vec![
            LoginMark { id: [3; 16], expires_at: Timestamp(big - 3), failures: 2, consumed: false },
            LoginMark { id: [4; 16], expires_at: Timestamp(5), failures: 0, consumed: true },
            LoginMark { id: [2; 16], expires_at: Timestamp(6), failures: u32::MAX, consumed: false },
        ],
        last_reset: Some(ResetRecord {
            by: UserId::from(i64::MAX as u64),
            by_username: "support-1".to_owned(),
            by_role: Role::Support,
            identity_check: "video call; photo ID 'x' \"y\" ; DROP TABLE".to_owned(),
            at: Timestamp(big - 4),
        }),
        last_unlock: Some(ResetRecord {
            by: UserId::from(8_u64),
            by_username: "support-2".to_owned(),
            by_role: Role::Support,
            identity_check: "called back on the known number".to_owned(),
            at: Timestamp(big - 6),
        }),
        retired_totp_step: big - 5,
        // Due far in the future (at the largest time a SQL BIGINT holds), so no
        // delivery round ever picks the sample's mail.
        outbox: vec![
            QueuedMail {
                id: MailId([9; 16]),
                payload: Payload::BackupCode {
                    reason: CodeReason::Rotated,
                    codes: vec![SealedSecret(vec![1; 61]), SealedSecret(vec![2; 61])],
                    expires_at: Some(Timestamp(big)),
                },
                attempts: 3,
                due: Timestamp(i64::MAX as u64),
            },
            QueuedMail {
                id: MailId([8; 16]),
                payload: Payload::TwoFactorReset {
                    by: "support-1".to_owned(),
                    by_role: Role::Support,
                    at: Timestamp(41),
                },
                attempts: 0,
                due: Timestamp(i64::MAX as u64),
            },
            QueuedMail {
                id: MailId([7; 16]),
                payload: Payload::NewLocation { location: "Safari — ünïcödé".to_owned(), at: Timestamp(42) },
                attempts: u32::MAX,
                due: Timestamp(i64::MAX as u64),
            },
        ],
        settled_mail: vec![
            SettledMail {
                id: MailId([6; 16]),
                kind: MessageKind::Throttled,
                delivered: true,
                at: Timestamp(50),
                attempts: 1,
            },
            SettledMail {
                id: MailId([5; 16]),
                kind: MessageKind::BackupCodeSetup,
                delivered: false,
                at: Timestamp(big),
                attempts: 10,
            },
        ],
    }
}
