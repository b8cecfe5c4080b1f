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

use crate::account::Account;
use crate::clock::Timestamp;
use crate::events::{Event, EventKind};
use crate::mail::{Message, MessageKind};
use crate::outbox::MailId;

/// What must happen besides the write: mail to queue in the same write, events to
/// record after it commits.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// The messages the change causes; the engine moves them into the written
    /// document's outbox ([`crate::outbox`]) and lists them in `queued`.
    pub mails: Vec<Message>,
    /// The queued messages' ids and kinds, in order, once written.
    pub queued: Vec<(MailId, MessageKind)>,
    pub events: Vec<Event>,
}

impl Effects {
    pub fn event(&mut self, at: Timestamp, account: &Account, kind: EventKind) {
        self.events.push(Event { at, account: Some(account.id), kind });
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
