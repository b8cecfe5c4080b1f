//! Schema 2's account rows (0.1.0's layout and the two columns migration 2 added),
//! read once by migration 3 and turned into credential documents. Nothing else reads
//! or writes these rows any more.
//!
//! Every integer column is a signed 64-bit `BIGINT`. The record's `u64` values
//! (ids, the security stamp, TOTP steps, timestamps) are stored by two's-complement
//! bit cast (`u64 as i64`, read back with `i64 as u64`): values below 2^63 appear as
//! themselves, larger ones as negative numbers, and every value round-trips exactly.

use crate::UserId;
use crate::account::{
    Account, Authenticator, BackupCodeHash, DEFAULT_AUTHENTICATOR_NAME, Enabled, Enrolling, LoginMark,
    RememberedLocation, ResetRecord, Role, SealedSecret, Throttle, TwoFactor,
};
use crate::error::StoreError;
use crate::factors::totp::{Algorithm, TotpParams};
use crate::plumbing::clock::Timestamp;

/// A `u64` as the `BIGINT` that stores it (bit cast, lossless).
pub(crate) fn to_sql(value: u64) -> i64 {
    value as i64
}

/// A stored `BIGINT` back to the `u64` it holds (bit cast, lossless).
pub(crate) fn from_sql(value: i64) -> u64 {
    value as u64
}

fn at(v: i64) -> Timestamp {
    Timestamp(from_sql(v))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn small<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| corrupt(what))
}

fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(bytes).map_err(|_| corrupt(what))
}

/// One row of `twofactor_accounts` (without `version`, which the store handles).
pub(crate) struct AccountRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub security_stamp: i64,
    pub created_at: i64,
    pub tf_state: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_algorithm: Option<String>,
    pub totp_digits: Option<i64>,
    pub totp_period: Option<i64>,
    pub totp_last_used_step: Option<i64>,
    pub tf_started_at: Option<i64>,
    pub tf_enabled_at: Option<i64>,
    pub throttle_failures: i64,
    pub throttle_until: Option<i64>,
    pub second_factor_locked: bool,
    pub reset_by: Option<i64>,
    pub reset_by_username: Option<String>,
    pub reset_by_role: Option<String>,
    pub reset_identity_check: Option<String>,
    pub reset_at: Option<i64>,
    pub pending_marks: Vec<u8>,
    pub second_factor_failures: i64,
    pub retired_totp_step: i64,
}

/// One row of `twofactor_backup_codes`.
pub(crate) struct BackupCodeRow {
    pub phc: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
}

/// One row of `twofactor_locations`.
pub(crate) struct LocationRow {
    pub id: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// The packed size of a pending mark: id (16 bytes), `expires_at` (`u64`, big-endian),
/// `failures` (`u32`, big-endian), `consumed` (0 or 1).
pub(crate) const PENDING_MARK_LEN: usize = 16 + 8 + 4 + 1;

fn unpack_pending(packed: &[u8]) -> Result<Vec<LoginMark>, StoreError> {
    let chunks = packed.chunks_exact(PENDING_MARK_LEN);
    if !chunks.remainder().is_empty() {
        return Err(corrupt("pending_marks length"));
    }
    chunks
        .map(|c| {
            let (id, rest) = c.split_at(16);
            let (expires, rest) = rest.split_at(8);
            let (failures, consumed) = rest.split_at(4);
            Ok(LoginMark {
                id: fixed(id.to_vec(), "pending mark id")?,
                expires_at: Timestamp(u64::from_be_bytes(fixed(expires.to_vec(), "pending mark expiry")?)),
                failures: u32::from_be_bytes(fixed(failures.to_vec(), "pending mark failures")?),
                consumed: match consumed {
                    [0] => false,
                    [1] => true,
                    _ => return Err(corrupt("pending mark consumed flag")),
                },
            })
        })
        .collect()
}

/// An account as rows: its own row and its child rows, each list in record order
/// (the `seq` column is the index in the list).
pub(crate) struct Rows {
    pub account: AccountRow,
    pub backup_codes: Vec<BackupCodeRow>,
    pub locations: Vec<LocationRow>,
}

/// Rebuilds a record from rows; a value that no record can hold is
/// [`StoreError::Corrupt`].
pub(crate) fn decode(rows: Rows) -> Result<Account, StoreError> {
    let Rows { account: r, backup_codes, locations } = rows;
    let role = |s: &str, what| Role::parse(s).ok_or_else(|| corrupt(what));
    let params = || -> Result<TotpParams, StoreError> {
        let algorithm =
            r.totp_algorithm.as_deref().and_then(Algorithm::parse).ok_or_else(|| corrupt("totp_algorithm"))?;
        let digits = small(r.totp_digits.ok_or_else(|| corrupt("totp_digits"))?, "totp_digits")?;
        let period = small(r.totp_period.ok_or_else(|| corrupt("totp_period"))?, "totp_period")?;
        TotpParams::new(algorithm, digits, period).map_err(|_| corrupt("totp parameters"))
    };
    let secret = || r.totp_secret.clone().map(SealedSecret).ok_or_else(|| corrupt("totp_secret"));
    let two_factor = match r.tf_state.as_str() {
        "disabled" => {
            if !backup_codes.is_empty() {
                return Err(corrupt("backup codes without enabled 2FA"));
            }
            TwoFactor::Disabled
        }
        "enrolling" => {
            if !backup_codes.is_empty() {
                return Err(corrupt("backup codes without enabled 2FA"));
            }
            TwoFactor::Enrolling(Enrolling {
                id: [0; 8],
                name: DEFAULT_AUTHENTICATOR_NAME.to_owned(),
                secret: secret()?,
                params: params()?,
                started_at: at(r.tf_started_at.ok_or_else(|| corrupt("tf_started_at"))?),
            })
        }
        "enabled" => TwoFactor::Enabled(Enabled {
            authenticators: vec![Authenticator {
                id: [0; 8],
                name: DEFAULT_AUTHENTICATOR_NAME.to_owned(),
                secret: secret()?,
                params: params()?,
                last_used_step: from_sql(r.totp_last_used_step.ok_or_else(|| corrupt("totp_last_used_step"))?),
                added_at: at(r.tf_enabled_at.ok_or_else(|| corrupt("tf_enabled_at"))?),
                last_used_at: Timestamp(0),
            }],
            adding: None,
            backup_codes: backup_codes
                .into_iter()
                .map(|c| BackupCodeHash { phc: c.phc, issued_at: at(c.issued_at), expires_at: c.expires_at.map(at) })
                .collect(),
            enabled_at: at(r.tf_enabled_at.ok_or_else(|| corrupt("tf_enabled_at"))?),
        }),
        _ => return Err(corrupt("tf_state")),
    };
    let last_reset = match (r.reset_by, r.reset_by_username, r.reset_by_role, r.reset_identity_check, r.reset_at) {
        (None, None, None, None, None) => None,
        (Some(by), Some(by_username), Some(by_role), Some(identity_check), Some(when)) => Some(ResetRecord {
            by: UserId::from(from_sql(by)),
            by_username,
            by_role: role(&by_role, "reset_by_role")?,
            identity_check,
            at: at(when),
        }),
        _ => return Err(corrupt("reset columns partly null")),
    };
    Ok(Account {
        id: UserId::from(from_sql(r.id)),
        role: role(&r.role, "role")?,
        username: r.username,
        email: r.email,
        password_hash: Some(r.password_hash),
        security_stamp: from_sql(r.security_stamp),
        created_at: at(r.created_at),
        two_factor,
        throttle: Throttle {
            failures: small(r.throttle_failures, "throttle_failures")?,
            until: r.throttle_until.map(at),
            second_factor_failures: small(r.second_factor_failures, "second_factor_failures")?,
            second_factor_locked: r.second_factor_locked,
        },
        locations: locations
            .into_iter()
            .map(|l| {
                Ok(RememberedLocation {
                    id: fixed(l.id, "location id")?,
                    token_hash: fixed(l.token_hash, "location token_hash")?,
                    label: l.label,
                    created_at: at(l.created_at),
                    last_used_at: at(l.last_used_at),
                    expires_at: at(l.expires_at),
                })
            })
            .collect::<Result<_, StoreError>>()?,
        pending: unpack_pending(&r.pending_marks)?,
        last_reset,
        retired_totp_step: from_sql(r.retired_totp_step),
        last_unlock: None,
        outbox: Vec::new(),
        settled_mail: Vec::new(),
    })
}
