//! A fully populated account, for the document's and the conformance kit's tests.

use crate::UserId;
use crate::account::{
    Account, BackupCodeHash, Enabled, PendingMark, RememberedLocation, ResetRecord, Role, SealedSecret, Throttle,
    TwoFactor,
};
use crate::clock::Timestamp;
use crate::totp::{Algorithm, TotpParams};

/// A fully populated record: enabled 2FA with three backup codes (one expiring), two
/// remembered locations, three pending marks, a throttle, a reset record, and `u64`
/// values near 2^64 for the stamp, the TOTP step and some times. Id and username are
/// as given.
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
            secret: SealedSecret((0..=255).collect()),
            params: TotpParams { algorithm: Algorithm::Sha512, digits: 8, period: 60 },
            last_used_step: big - 7,
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
            PendingMark { id: [3; 16], expires_at: Timestamp(big - 3), failures: 2, consumed: false },
            PendingMark { id: [4; 16], expires_at: Timestamp(5), failures: 0, consumed: true },
            PendingMark { id: [2; 16], expires_at: Timestamp(6), failures: u32::MAX, consumed: false },
        ],
        last_reset: Some(ResetRecord {
            by: UserId::from(i64::MAX as u64),
            by_username: "support-1".to_owned(),
            by_role: Role::Support,
            identity_check: "video call; photo ID 'x' \"y\" ; DROP TABLE".to_owned(),
            at: Timestamp(big - 4),
        }),
        retired_totp_step: big - 5,
    }
}
