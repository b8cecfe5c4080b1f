//! The JSON form of the credential document (format 1).
//!
//! ```text
//! {"format":1,
//!  "password":"$argon2id$v=19$…",                      (absent: no password kept)
//!  "stamp":8127391, "created_at":1764500000,
//!  "second_factor":{"state":"enabled",
//!    "authenticators":[{"kind":"totp","secret":"<base64 sealed>","algorithm":"SHA1",
//!                       "digits":6,"period":30,"last_used_step":58816666,"added_at":1764500000}],
//!    "backup_codes":[{"hash":"$argon2id$…","issued_at":1764500000}],
//!    "enabled_at":1764500000},
//!  "throttle":{"failures":2,"until":1764500060},
//!  "locations":[{"id":"<32 hex>","token_hash":"<64 hex>","label":"Firefox on Linux",
//!                "created_at":…,"last_used_at":…,"expires_at":…}],
//!  "pending":[{"id":"<32 hex>","expires_at":…,"failures":1}],
//!  "last_reset":{"by":"42","by_login":"dave","by_role":"support","identity_check":"…","at":…},
//!  "retired_totp_step":58816600}
//! ```
//!
//! Times are Unix seconds. Every field but `format` may be absent and then takes its
//! default (zero, empty, off), and zero or empty values are not written, so a field
//! added by a later version never breaks an older document. Unknown fields are
//! ignored. `authenticators` is a list, each entry tagged with its `kind`, so a second
//! authenticator or another kind of factor fits without a new format; this version
//! keeps exactly one TOTP authenticator per user and refuses a document with more.

use data_encoding::{BASE64, HEXLOWER};
use serde::{Deserialize, Serialize};

use crate::UserId;
use crate::account::{
    Account, BackupCodeHash, Enabled, Enrolling, PendingMark, RememberedLocation, ResetRecord, Role, SealedSecret,
    Throttle, TwoFactor,
};
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::totp::{Algorithm, TotpParams};

/// The format this version writes and the newest it reads.
const FORMAT: u32 = 1;

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Serialize, Deserialize)]
struct Wire {
    format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default)]
    stamp: u64,
    #[serde(default)]
    created_at: u64,
    #[serde(default)]
    second_factor: SecondFactor,
    #[serde(default, skip_serializing_if = "is_zero")]
    throttle: WireThrottle,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_reset: Option<Reset>,
    #[serde(default, skip_serializing_if = "is_zero")]
    retired_totp_step: u64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "lowercase")]
enum SecondFactor {
    #[default]
    Disabled,
    Enrolling {
        authenticator: Authenticator,
        started_at: u64,
    },
    Enabled {
        authenticators: Vec<Authenticator>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        backup_codes: Vec<BackupCode>,
        enabled_at: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Authenticator {
    Totp {
        secret: String,
        algorithm: String,
        digits: u8,
        period: u32,
        #[serde(default, skip_serializing_if = "is_zero")]
        last_used_step: u64,
        #[serde(default)]
        added_at: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct BackupCode {
    hash: String,
    issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

#[derive(Serialize, Deserialize, Default, PartialEq)]
struct WireThrottle {
    #[serde(default, skip_serializing_if = "is_zero")]
    failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    second_factor_failures: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    locked: bool,
}

#[derive(Serialize, Deserialize)]
struct Location {
    id: String,
    token_hash: String,
    label: String,
    created_at: u64,
    last_used_at: u64,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    id: String,
    expires_at: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    failures: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    consumed: bool,
}

#[derive(Serialize, Deserialize)]
struct Reset {
    by: UserId,
    by_login: String,
    by_role: Role,
    identity_check: String,
    at: u64,
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// Where and what kind of JSON error, without serde_json's message (which may quote
/// a stored value).
fn json_error(e: &serde_json::Error) -> StoreError {
    corrupt(format!("credential document: {:?} error at line {} column {}", e.classify(), e.line(), e.column()))
}

fn hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], StoreError> {
    let bytes = HEXLOWER.decode(text.as_bytes()).map_err(|_| corrupt(format!("{what}: not lowercase hex")))?;
    <[u8; N]>::try_from(bytes).map_err(|_| corrupt(format!("{what}: wrong length")))
}

fn totp(secret: &SealedSecret, params: TotpParams, last_used_step: u64, added_at: Timestamp) -> Authenticator {
    Authenticator::Totp {
        secret: BASE64.encode(&secret.0),
        algorithm: params.algorithm.as_str().to_owned(),
        digits: params.digits,
        period: params.period,
        last_used_step,
        added_at: added_at.0,
    }
}

/// The sealed secret, its parameters and its newest step.
fn from_totp(a: Authenticator) -> Result<(SealedSecret, TotpParams, u64), StoreError> {
    let Authenticator::Totp { secret, algorithm, digits, period, last_used_step, .. } = a;
    let sealed = BASE64.decode(secret.as_bytes()).map_err(|_| corrupt("authenticator secret: not base64"))?;
    let algorithm = Algorithm::parse(&algorithm).ok_or_else(|| corrupt("authenticator algorithm"))?;
    let params = TotpParams::new(algorithm, digits, period).map_err(|_| corrupt("authenticator parameters"))?;
    Ok((SealedSecret(sealed), params, last_used_step))
}

/// The JSON text of `a`'s credential state.
pub(super) fn encode(a: &Account) -> Result<String, StoreError> {
    let second_factor = match &a.two_factor {
        TwoFactor::Disabled => SecondFactor::Disabled,
        TwoFactor::Enrolling(e) => SecondFactor::Enrolling {
            authenticator: totp(&e.secret, e.params, 0, e.started_at),
            started_at: e.started_at.0,
        },
        TwoFactor::Enabled(e) => SecondFactor::Enabled {
            authenticators: vec![totp(&e.secret, e.params, e.last_used_step, e.enabled_at)],
            backup_codes: e
                .backup_codes
                .iter()
                .map(|c| BackupCode {
                    hash: c.phc.clone(),
                    issued_at: c.issued_at.0,
                    expires_at: c.expires_at.map(|t| t.0),
                })
                .collect(),
            enabled_at: e.enabled_at.0,
        },
    };
    let t = &a.throttle;
    let wire = Wire {
        format: FORMAT,
        password: a.password_hash.clone(),
        stamp: a.security_stamp,
        created_at: a.created_at.0,
        second_factor,
        throttle: WireThrottle {
            failures: t.failures,
            until: t.until.map(|u| u.0),
            second_factor_failures: t.second_factor_failures,
            locked: t.second_factor_locked,
        },
        locations: a
            .locations
            .iter()
            .map(|l| Location {
                id: HEXLOWER.encode(&l.id),
                token_hash: HEXLOWER.encode(&l.token_hash),
                label: l.label.clone(),
                created_at: l.created_at.0,
                last_used_at: l.last_used_at.0,
                expires_at: l.expires_at.0,
            })
            .collect(),
        pending: a
            .pending
            .iter()
            .map(|p| Pending {
                id: HEXLOWER.encode(&p.id),
                expires_at: p.expires_at.0,
                failures: p.failures,
                consumed: p.consumed,
            })
            .collect(),
        last_reset: a.last_reset.as_ref().map(|r| Reset {
            by: r.by,
            by_login: r.by_username.clone(),
            by_role: r.by_role,
            identity_check: r.identity_check.clone(),
            at: r.at.0,
        }),
        retired_totp_step: a.retired_totp_step,
    };
    serde_json::to_string(&wire).map_err(|e| json_error(&e))
}

/// Reads `json` into `blank`'s credential state (its identity is kept).
pub(super) fn decode(json: &str, mut a: Account) -> Result<Account, StoreError> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    // The format first, so a newer document is named as such, not as a shape error.
    let format: Format = serde_json::from_str(json).map_err(|e| json_error(&e))?;
    if format.format != FORMAT {
        return Err(corrupt(format!(
            "credential document format {} (this version of twofactor reads format {FORMAT})",
            format.format
        )));
    }
    let w: Wire = serde_json::from_str(json).map_err(|e| json_error(&e))?;
    a.password_hash = w.password;
    a.security_stamp = w.stamp;
    a.created_at = Timestamp(w.created_at);
    a.two_factor = match w.second_factor {
        SecondFactor::Disabled => TwoFactor::Disabled,
        SecondFactor::Enrolling { authenticator, started_at } => {
            let (secret, params, _) = from_totp(authenticator)?;
            TwoFactor::Enrolling(Enrolling { secret, params, started_at: Timestamp(started_at) })
        }
        SecondFactor::Enabled { mut authenticators, backup_codes, enabled_at } => {
            if authenticators.len() != 1 {
                return Err(corrupt(format!(
                    "{} authenticators (this version of twofactor keeps exactly one)",
                    authenticators.len()
                )));
            }
            let (secret, params, last_used_step) = from_totp(authenticators.remove(0))?;
            TwoFactor::Enabled(Enabled {
                secret,
                params,
                last_used_step,
                backup_codes: backup_codes
                    .into_iter()
                    .map(|c| BackupCodeHash {
                        phc: c.hash,
                        issued_at: Timestamp(c.issued_at),
                        expires_at: c.expires_at.map(Timestamp),
                    })
                    .collect(),
                enabled_at: Timestamp(enabled_at),
            })
        }
    };
    a.throttle = Throttle {
        failures: w.throttle.failures,
        until: w.throttle.until.map(Timestamp),
        second_factor_failures: w.throttle.second_factor_failures,
        second_factor_locked: w.throttle.locked,
    };
    a.locations = w
        .locations
        .into_iter()
        .map(|l| {
            Ok(RememberedLocation {
                id: hex(&l.id, "location id")?,
                token_hash: hex(&l.token_hash, "location token hash")?,
                label: l.label,
                created_at: Timestamp(l.created_at),
                last_used_at: Timestamp(l.last_used_at),
                expires_at: Timestamp(l.expires_at),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    a.pending = w
        .pending
        .into_iter()
        .map(|p| {
            Ok(PendingMark {
                id: hex(&p.id, "pending login id")?,
                expires_at: Timestamp(p.expires_at),
                failures: p.failures,
                consumed: p.consumed,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    a.last_reset = w.last_reset.map(|r| ResetRecord {
        by: r.by,
        by_username: r.by_login,
        by_role: r.by_role,
        identity_check: r.identity_check,
        at: Timestamp(r.at),
    });
    a.retired_totp_step = w.retired_totp_step;
    Ok(a)
}
