//! The pure core: every decision the engine makes, as functions of the current record,
//! a verdict about the input, and `now`. No I/O, no clock, no randomness (fresh codes
//! and tokens are made by the caller and passed in), so each rule is tested directly.
//!
//! The engine evaluates expensive checks (Argon2, HMAC) once against a snapshot, then
//! applies the verdict to the freshest record inside a compare-and-swap loop. Each
//! `apply_*` re-checks that the verdict still holds for the record it is given (the
//! TOTP step is still unused, the backup code is still stored, the pending login is
//! still open), which is what makes single use hold under races.

pub(crate) mod locations;
pub(crate) mod login;
pub(crate) mod manage;
pub(crate) mod password;
pub(crate) mod pending;
pub(crate) mod self_service;
pub(crate) mod throttle;

use crate::account::{Account, BackupCodeHash};
use crate::crypto::secret::SecretString;
use crate::events::{Event, EventKind};
use crate::mail::{CodeReason, Delivery, Message, MessageKind};
use crate::outbox::MailId;
use crate::plumbing::clock::Timestamp;

/// What must happen besides the write: mail to queue in the same write, events to
/// record after it commits.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// The messages the change causes; the engine moves them into the written
    /// document's outbox ([`crate::outbox`]) and lists them in `queued`.
    pub mails: Vec<Outgoing>,
    /// The queued messages' ids and kinds, in order, once written.
    pub queued: Vec<(MailId, MessageKind)>,
    pub events: Vec<Event>,
}

/// A message a transition queues; `id` is set when the rule named it in its outcome
/// (a code mail, see [`FreshCodes`]), otherwise the engine draws one.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub id: Option<MailId>,
    pub message: Message,
}

impl Effects {
    pub fn event(&mut self, at: Timestamp, account: &Account, kind: EventKind) {
        self.events.push(Event { at, account: Some(account.id), kind });
    }

    /// Queues `message` under an id the engine draws.
    pub fn mail(&mut self, message: Message) {
        self.mails.push(Outgoing { id: None, message });
    }

    /// Queues `message` under `id`, an id the engine drew before the swap, so the rule
    /// answers the final [`Delivery::Queued`] itself.
    pub fn mail_as(&mut self, id: MailId, message: Message) -> Delivery {
        self.mails.push(Outgoing { id: Some(id), message });
        Delivery::Queued(id)
    }

    /// The delivery of the code mail this transition queues, if it still queues one.
    pub fn code_delivery(&self) -> Option<Delivery> {
        self.mails.iter().find(|o| o.message.carries_code()).and_then(|o| o.id).map(Delivery::Queued)
    }
}

/// Fresh backup codes for one mail, made by the engine before the swap (randomness and
/// Argon2 stay out of the rules): each code as shown and as stored, and the id its mail
/// is queued under, so the rule that queues it answers the final
/// [`Delivery::Queued`] itself.
#[derive(Clone)]
pub(crate) struct FreshCodes {
    pub mail: MailId,
    pub codes: Vec<(SecretString, BackupCodeHash)>,
}

impl FreshCodes {
    /// The stored forms, for the record.
    pub fn hashes(&self) -> Vec<BackupCodeHash> {
        self.codes.iter().map(|(_, hash)| hash.clone()).collect()
    }

    /// Queues the codes' mail to `account` under [`mail`](Self::mail) and answers its
    /// delivery.
    pub fn queue(&self, effects: &mut Effects, account: &Account, reason: CodeReason) -> Delivery {
        let message = Message::BackupCode {
            to: recipient(account),
            reason,
            codes: self.codes.iter().map(|(shown, _)| shown.clone()).collect(),
            expires_at: self.codes.first().and_then(|(_, hash)| hash.expires_at),
        };
        effects.mail_as(self.mail, message)
    }
}

/// The result of a transition: the record to write (`None`: nothing changes), the
/// outcome for the caller, and the effects.
#[derive(Debug)]
pub(crate) struct Transition<T> {
    pub next: Option<Account>,
    pub outcome: T,
    pub effects: Effects,
}

impl<T> Transition<T> {
    pub fn unchanged(outcome: T, effects: Effects) -> Self {
        Transition { next: None, outcome, effects }
    }
}

pub(crate) fn recipient(account: &Account) -> crate::mail::Recipient {
    crate::mail::Recipient { username: account.username.clone(), email: account.email.clone() }
}
