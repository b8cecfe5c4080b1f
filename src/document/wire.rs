//! The JSON form of the credential document (format 1).
//!
//! ```text
//! {"format":1,
//!  "password":"$argon2id$v=19$…",                      (absent: no password kept)
//!  "stamp":8127391, "created_at":1764500000,
//!  "second_factor":{"state":"enabled",
//!    "authenticators":[{"kind":"totp","id":"<16 hex>","name":"Phone","secret":"<base64 sealed>",
//!                       "algorithm":"SHA1","digits":6,"period":30,"last_used_step":58816666,
//!                       "added_at":1764500000,"last_used_at":1764500000}, …],
//!    "adding":{"kind":"totp","id":…,"name":"Tablet",…,"added_at":…},  (a further one, unconfirmed)
//!    "backup_codes":[{"hash":"$argon2id$…","issued_at":1764500000}],
//!    "enabled_at":1764500000},
//!  "throttle":{"failures":2,"until":1764500060},
//!  "locations":[{"id":"<32 hex>","token_hash":"<64 hex>","label":"Firefox on Linux",
//!                "created_at":…,"last_used_at":…,"expires_at":…}],
//!  "pending":[{"id":"<32 hex>","expires_at":…,"failures":1}],
//!  "last_reset":{"by":"42","by_login":"dave","by_role":"support","identity_check":"…","at":…},
//!  "last_unlock":{…as last_reset, "identity_check" holding the reason…},
//!  "retired_totp_step":58816600,
//!  "outbox":[…], "settled_mail":[…]}                   (see mail_wire)
//! ```
//!
//! Times are Unix seconds. Every field but `format` may be absent and then takes its
//! default (zero, empty, off), and zero or empty values are not written, so a field
//! added by a later version never breaks an older document. Unknown fields are
//! ignored. `authenticators` is a list, each entry tagged with its `kind`, so another
//! kind of factor fits without a new format. A version before several authenticators
//! refuses a document with more than one (the user then logs in on upgraded servers
//! only).

use data_encoding::{BASE64, HEXLOWER};
use serde::{Deserialize, Serialize};

use crate::UserId;
use crate::account::{
    self, Account, BackupCodeHash, DEFAULT_AUTHENTICATOR_NAME, Enabled, Enrolling, LoginMark, RememberedLocation,
    ResetRecord, Role, SealedSecret, Throttle, TwoFactor,
};
use crate::error::StoreError;
use crate::factors::totp::{Algorithm, TotpParams};
use crate::plumbing::clock::Timestamp;

use super::mail_wire::{self, WireMail, WireSettled};
pub(super) use mail_wire::mail_due_at;

/// The format this version writes and the newest it reads.
const FORMAT: u32 = 1;

pub(super) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_unlock: Option<Reset>,
    #[serde(default, skip_serializing_if = "is_zero")]
    retired_totp_step: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outbox: Vec<WireMail>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    settled_mail: Vec<WireSettled>,
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
        /// A further authenticator waiting for its confirming code (`added_at` is when
        /// it was issued).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding: Option<Authenticator>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        backup_codes: Vec<BackupCode>,
        enabled_at: u64,
    },
}

/// An authenticator. `id` (16 hex digits) and `name` came with several authenticators;
/// a document written before them has one authenticator, read as id
/// `0000000000000000` named "Authenticator app".
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Authenticator {
    Totp {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        secret: String,
        algorithm: String,
        digits: u8,
        period: u32,
        #[serde(default, skip_serializing_if = "is_zero")]
        last_used_step: u64,
        #[serde(default)]
        added_at: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        last_used_at: u64,
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

pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
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

fn totp(a: &account::Authenticator) -> Authenticator {
    Authenticator::Totp {
        id: HEXLOWER.encode(&a.id),
        name: Some(a.name.clone()),
        secret: BASE64.encode(&a.secret.0),
        algorithm: a.params.algorithm.as_str().to_owned(),
        digits: a.params.digits,
        period: a.params.period,
        last_used_step: a.last_used_step,
        added_at: a.added_at.0,
        last_used_at: a.last_used_at.0,
    }
}

/// An authenticator being enrolled or added, written as one (its `added_at` is when it
/// was issued).
fn enrolling_totp(e: &Enrolling) -> Authenticator {
    let unconfirmed =
        account::Authenticator { last_used_at: Timestamp(0), ..account::Authenticator::confirmed(e, 0, e.started_at) };
    totp(&unconfirmed)
}

fn from_totp(a: Authenticator) -> Result<account::Authenticator, StoreError> {
    let Authenticator::Totp { id, name, secret, algorithm, digits, period, last_used_step, added_at, last_used_at } = a;
    let sealed = BASE64.decode(secret.as_bytes()).map_err(|_| corrupt("authenticator secret: not base64"))?;
    let algorithm = Algorithm::parse(&algorithm).ok_or_else(|| corrupt("authenticator algorithm"))?;
    let params = TotpParams::new(algorithm, digits, period).map_err(|_| corrupt("authenticator parameters"))?;
    Ok(account::Authenticator {
        id: if id.is_empty() { [0; 8] } else { hex(&id, "authenticator id")? },
        name: name.unwrap_or_else(|| DEFAULT_AUTHENTICATOR_NAME.to_owned()),
        secret: SealedSecret(sealed),
        params,
        last_used_step,
        added_at: Timestamp(added_at),
        last_used_at: Timestamp(last_used_at),
    })
}

fn from_enrolling(a: Authenticator) -> Result<Enrolling, StoreError> {
    let a = from_totp(a)?;
    Ok(Enrolling { id: a.id, name: a.name, secret: a.secret, params: a.params, started_at: a.added_at })
}

fn reset(r: &ResetRecord) -> Reset {
    Reset {
        by: r.by,
        by_login: r.by_username.clone(),
        by_role: r.by_role,
        identity_check: r.identity_check.clone(),
        at: r.at.0,
    }
}

fn from_reset(r: Reset) -> ResetRecord {
    ResetRecord {
        by: r.by,
        by_username: r.by_login,
        by_role: r.by_role,
        identity_check: r.identity_check,
        at: Timestamp(r.at),
    }
}

/// The JSON text of `a`'s credential state.
pub(super) fn encode(a: &Account) -> Result<String, StoreError> {
    let second_factor = match &a.two_factor {
        TwoFactor::Disabled => SecondFactor::Disabled,
        TwoFactor::Enrolling(e) => {
            SecondFactor::Enrolling { authenticator: enrolling_totp(e), started_at: e.started_at.0 }
        }
        TwoFactor::Enabled(e) => SecondFactor::Enabled {
            authenticators: e.authenticators.iter().map(totp).collect(),
            adding: e.adding.as_ref().map(enrolling_totp),
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
        last_reset: a.last_reset.as_ref().map(reset),
        last_unlock: a.last_unlock.as_ref().map(reset),
        retired_totp_step: a.retired_totp_step,
        outbox: a.outbox.iter().map(mail_wire::encode_mail).collect(),
        settled_mail: a.settled_mail.iter().map(mail_wire::encode_settled).collect(),
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
            let mut enrolling = from_enrolling(authenticator)?;
            enrolling.started_at = Timestamp(started_at);
            TwoFactor::Enrolling(enrolling)
        }
        SecondFactor::Enabled { authenticators, adding, backup_codes, enabled_at } => {
            if authenticators.is_empty() {
                return Err(corrupt("2FA on without an authenticator"));
            }
            let authenticators = authenticators.into_iter().map(from_totp).collect::<Result<Vec<_>, _>>()?;
            let ids: std::collections::BTreeSet<_> = authenticators.iter().map(|a| a.id).collect();
            if ids.len() != authenticators.len() {
                return Err(corrupt("two authenticators with one id"));
            }
            TwoFactor::Enabled(Enabled {
                authenticators,
                adding: adding.map(from_enrolling).transpose()?,
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
            Ok(LoginMark {
                id: hex(&p.id, "pending login id")?,
                expires_at: Timestamp(p.expires_at),
                failures: p.failures,
                consumed: p.consumed,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    a.last_reset = w.last_reset.map(from_reset);
    a.last_unlock = w.last_unlock.map(from_reset);
    a.retired_totp_step = w.retired_totp_step;
    a.outbox = w.outbox.into_iter().map(mail_wire::decode_mail).collect::<Result<_, _>>()?;
    a.settled_mail = w.settled_mail.into_iter().map(mail_wire::decode_settled).collect::<Result<_, _>>()?;
    Ok(a)
}
