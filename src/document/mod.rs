//! The credential document: everything the crate keeps for one user, as one opaque,
//! versioned JSON text that a [`UserStore`](crate::store::UserStore) persists without reading.
//!
//! The format is private to the crate and versioned by its `"format"` field (see
//! [`wire`]). Fields added later are optional with a default, so a document written
//! before them still reads; a document of a newer format than this version knows is
//! refused as [`StoreError::Corrupt`] rather than half understood.

mod mail_wire;
#[cfg(any(test, feature = "testkit"))]
pub(crate) mod sample;
mod wire;

use std::fmt;

use zeroize::Zeroize;

use crate::account::{Account, Versioned};
use crate::error::StoreError;
use crate::plumbing::clock::Timestamp;
use crate::store::UserRecord;

/// What a store keeps for a user on the crate's behalf: one JSON text, written and
/// read only by the engine.
///
/// A store persists it as it is (a `TEXT`, `JSON` or `JSONB` column, a file, a
/// key-value entry) next to a version number, and never looks inside. It holds no
/// plaintext secret (password and backup codes are hashed, the TOTP key is sealed
/// under the [`KeyRing`](crate::KeyRing)), but it is what an attacker would try to
/// steal or alter: keep it with the care of a password hash column. `Debug` shows only
/// its length, and its text is wiped when it is dropped.
///
/// ```
/// use twofactor::store::Document;
/// let doc = Document::from_json(r#"{"format":1}"#);
/// assert_eq!(doc.as_json(), r#"{"format":1}"#);
/// assert_eq!(format!("{doc:?}"), "Document(12 bytes)");
/// ```
#[derive(Clone)]
pub struct Document {
    json: String,
    /// [`Document::mail_due_at`], worked out once: set by the engine when it encodes
    /// the document, read from the text on first use otherwise.
    due: std::sync::OnceLock<Option<Timestamp>>,
}

impl PartialEq for Document {
    fn eq(&self, other: &Document) -> bool {
        self.json == other.json
    }
}

impl Eq for Document {}

impl Document {
    /// A document as the store read it back. Nothing is checked here: the engine
    /// checks the text when it reads the user, and reports a text it cannot read as
    /// [`StoreError::Corrupt`].
    pub fn from_json(json: impl Into<String>) -> Document {
        Document { json: json.into(), due: std::sync::OnceLock::new() }
    }

    /// When the earliest mail waiting in this document's outbox is due (`None`: no
    /// mail waits). A store keeps it next to the document, in a column it can index,
    /// each time it writes the document, and answers
    /// [`UserStore::mail_due`](crate::store::UserStore::mail_due) from it. A text that is not
    /// a document has no mail due.
    ///
    /// ```
    /// use twofactor::Timestamp;
    /// use twofactor::store::Document;
    /// assert_eq!(Document::from_json(r#"{"format":1}"#).mail_due_at(), None);
    /// let waiting = Document::from_json(r#"{"format":1,"outbox":[{"due":1800000060},{"due":1800000000}]}"#);
    /// assert_eq!(waiting.mail_due_at(), Some(Timestamp(1_800_000_000)));
    /// ```
    pub fn mail_due_at(&self) -> Option<Timestamp> {
        *self.due.get_or_init(|| wire::mail_due_at(&self.json))
    }

    /// The text to store.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the text is empty (never the case for a document the engine wrote).
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({} bytes)", self.json.len())
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        self.json.zeroize();
    }
}

/// The document for `account`'s credential state (its identity is not written).
pub(crate) fn encode(account: &Account) -> Result<Document, StoreError> {
    let doc = Document::from_json(wire::encode(account)?);
    let _ = doc.due.set(crate::outbox::due_at(&account.outbox));
    Ok(doc)
}

/// The account that `user` and its document describe: the identity from the user
/// record (read from the application's store at every call, never written), the
/// credential state from the document. A user without a document is one the crate
/// knows nothing about yet: no password, 2FA off, a new security stamp, at version 0
/// (the first write inserts the document).
///
/// # Errors
/// [`StoreError::Corrupt`] for a document this version cannot read (or one stored at
/// version 0, which no insert writes); an error of `new_stamp`.
pub(crate) fn decode(
    user: UserRecord,
    now: Timestamp,
    new_stamp: impl FnOnce() -> crate::Result<u64>,
) -> crate::Result<Versioned<Account>> {
    let UserRecord { id, login, email, role, credentials, .. } = user;
    match credentials {
        Some(stored) if stored.version == 0 => {
            Err(StoreError::Corrupt("a credential document at version 0".to_owned()).into())
        }
        Some(stored) => {
            let blank = Account::new(id, login, email, role, 0, Timestamp(0));
            Ok(Versioned { version: stored.version, record: wire::decode(stored.document.as_json(), blank)? })
        }
        None => Ok(Versioned { version: 0, record: Account::new(id, login, email, role, new_stamp()?, now) }),
    }
}

#[cfg(test)]
mod tests;
