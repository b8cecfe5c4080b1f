//! The outbox's part of the document's JSON (see [`crate::outbox`]):
//!
//! ```text
//!  "outbox":[{"id":"<32 hex>","kind":"backup_code.rotated","attempts":1,"due":…,
//!             "codes":["<base64 sealed>"],"expires_at":…}],
//!  "settled_mail":[{"id":"<32 hex>","kind":"throttled","delivered":true,"at":…,"attempts":1}]
//! ```
//!
//! A message's fields beyond `id`, `kind`, `attempts` and `due` are those of
//! its kind (`codes` and `expires_at`; `by`, `by_role` and `at`; `until`; `at`;
//! `location` and `at`; `name` and `at`). Codes are sealed under the key ring, bound to the user and the
//! mail id.

use data_encoding::{BASE64, HEXLOWER};
use serde::{Deserialize, Serialize};

use super::wire::{corrupt, is_zero};
use crate::account::{Role, SealedSecret};
use crate::error::StoreError;
use crate::mail::{CodeReason, MessageKind};
use crate::outbox::{MailId, Payload, QueuedMail, SettledMail};
use crate::plumbing::clock::Timestamp;

#[derive(Serialize, Deserialize)]
pub(super) struct WireMail {
    id: String,
    kind: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    attempts: u32,
    due: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by_role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WireSettled {
    id: String,
    kind: String,
    delivered: bool,
    at: u64,
    #[serde(default)]
    attempts: u32,
}

fn mail_id(text: &str) -> Result<MailId, StoreError> {
    MailId::parse(text).map_err(|_| corrupt("mail id"))
}

fn kind(name: &str) -> Result<MessageKind, StoreError> {
    MessageKind::from_name(name).ok_or_else(|| corrupt("mail kind"))
}

pub(super) fn encode_mail(m: &QueuedMail) -> WireMail {
    let mut w = WireMail {
        id: m.id.to_string(),
        kind: m.payload.kind().as_str().to_owned(),
        attempts: m.attempts,
        due: m.due.0,
        codes: Vec::new(),
        expires_at: None,
        by: None,
        by_role: None,
        at: None,
        until: None,
        location: None,
        name: None,
    };
    match &m.payload {
        Payload::BackupCode { codes, expires_at, .. } => {
            w.codes = codes.iter().map(|c| BASE64.encode(&c.0)).collect();
            w.expires_at = expires_at.map(|t| t.0);
        }
        Payload::TwoFactorReset { by, by_role, at } => {
            w.by = Some(by.clone());
            w.by_role = Some(*by_role);
            w.at = Some(at.0);
        }
        Payload::Throttled { until } => w.until = Some(until.0),
        Payload::SecondFactorLocked { at } => w.at = Some(at.0),
        Payload::NewLocation { location, at } => {
            w.location = Some(location.clone());
            w.at = Some(at.0);
        }
        Payload::AuthenticatorAdded { name, at } | Payload::AuthenticatorRemoved { name, at } => {
            w.name = Some(name.clone());
            w.at = Some(at.0);
        }
        Payload::TwoFactorDisabled { at } => w.at = Some(at.0),
        Payload::Unlocked { by, by_role, at } => {
            w.by = Some(by.clone());
            w.by_role = Some(*by_role);
            w.at = Some(at.0);
        }
    }
    w
}

pub(super) fn decode_mail(w: WireMail) -> Result<QueuedMail, StoreError> {
    let missing = |field: &str| corrupt(format!("mail: no {field}"));
    let at = || w.at.map(Timestamp).ok_or_else(|| missing("at"));
    let code_reason = |reason| -> Result<Payload, StoreError> {
        let codes = w
            .codes
            .iter()
            .map(|c| BASE64.decode(c.as_bytes()).map(SealedSecret).map_err(|_| corrupt("mail code: not base64")))
            .collect::<Result<Vec<_>, _>>()?;
        if codes.is_empty() {
            return Err(missing("codes"));
        }
        Ok(Payload::BackupCode { reason, codes, expires_at: w.expires_at.map(Timestamp) })
    };
    let payload = match kind(&w.kind)? {
        MessageKind::BackupCodeSetup => code_reason(CodeReason::Setup)?,
        MessageKind::BackupCodeRotated => code_reason(CodeReason::Rotated)?,
        MessageKind::BackupCodeReissued => code_reason(CodeReason::Reissued)?,
        MessageKind::TwoFactorReset => Payload::TwoFactorReset {
            by: w.by.clone().ok_or_else(|| missing("by"))?,
            by_role: w.by_role.ok_or_else(|| missing("by_role"))?,
            at: at()?,
        },
        MessageKind::Throttled => Payload::Throttled { until: w.until.map(Timestamp).ok_or_else(|| missing("until"))? },
        MessageKind::SecondFactorLocked => Payload::SecondFactorLocked { at: at()? },
        MessageKind::NewLocation => {
            Payload::NewLocation { location: w.location.clone().ok_or_else(|| missing("location"))?, at: at()? }
        }
        MessageKind::AuthenticatorAdded => {
            Payload::AuthenticatorAdded { name: w.name.clone().ok_or_else(|| missing("name"))?, at: at()? }
        }
        MessageKind::AuthenticatorRemoved => {
            Payload::AuthenticatorRemoved { name: w.name.clone().ok_or_else(|| missing("name"))?, at: at()? }
        }
        MessageKind::TwoFactorDisabled => Payload::TwoFactorDisabled { at: at()? },
        MessageKind::Unlocked => Payload::Unlocked {
            by: w.by.clone().ok_or_else(|| missing("by"))?,
            by_role: w.by_role.ok_or_else(|| missing("by_role"))?,
            at: at()?,
        },
    };
    Ok(QueuedMail { id: mail_id(&w.id)?, payload, attempts: w.attempts, due: Timestamp(w.due) })
}

pub(super) fn encode_settled(m: &SettledMail) -> WireSettled {
    WireSettled {
        id: HEXLOWER.encode(m.id.as_bytes()),
        kind: m.kind.as_str().to_owned(),
        delivered: m.delivered,
        at: m.at.0,
        attempts: m.attempts,
    }
}

pub(super) fn decode_settled(w: WireSettled) -> Result<SettledMail, StoreError> {
    Ok(SettledMail {
        id: mail_id(&w.id)?,
        kind: kind(&w.kind)?,
        delivered: w.delivered,
        at: Timestamp(w.at),
        attempts: w.attempts,
    })
}

/// The earliest `due` of the outbox in `json`, read without the rest of the document
/// (`None` when nothing waits, or the text is not a document).
pub(super) fn mail_due_at(json: &str) -> Option<Timestamp> {
    #[derive(Deserialize)]
    struct Due {
        due: u64,
    }
    #[derive(Deserialize)]
    struct Outbox {
        #[serde(default)]
        outbox: Vec<Due>,
    }
    let outbox: Outbox = serde_json::from_str(json).ok()?;
    outbox.outbox.iter().map(|d| Timestamp(d.due)).min()
}
