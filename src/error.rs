//! Faults: the things that go wrong *around* a login, not a wrong password or code.
//!
//! A wrong password, a wrong code, an expired pending login or a throttled account
//! are ordinary outcomes (see [`crate::LoginOutcome`]); they never come back as an
//! [`Error`]. Nor does a failed mail: the engine reports it as a
//! [`Delivery`](crate::mail::Delivery) and an event. An `Err` means the store failed, the
//! input was malformed, the call does not fit the account's state ([`Refusal`]), or
//! something inside the crate failed ([`InternalError`]).
//!
//! No variant carries a secret: error messages are safe to log.

use std::fmt;

/// A fault reported by the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`UserStore`](crate::store::UserStore) failed. Nothing was changed by this call.
    #[error("store failure: {0}")]
    Store(#[from] StoreError),
    /// An input was rejected before anything was read or written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),
    /// The call does not fit the account's state (for example confirming an enrollment
    /// that was never started); the [`Refusal`] says how.
    #[error("misuse: {0}")]
    Misuse(#[from] Refusal),
    /// A username that already exists was used to create an account.
    #[error("the username is already taken")]
    UsernameTaken,
    /// No account has that id or username (only for administrative calls; login never
    /// reveals this).
    #[error("no such account")]
    NoSuchAccount,
    /// The account record changed concurrently too many times in a row; nothing was
    /// written by this call and it may be retried.
    #[error("too much contention on the account record; nothing was changed")]
    Contention,
    /// A sealed secret could not be opened: it was altered, or sealed for another
    /// user.
    #[error("a sealed secret could not be opened with the configured keys")]
    Unseal,
    /// A sealed secret names a key the [`KeyRing`](crate::KeyRing) does not hold: the
    /// key was removed, or lost, or the application runs with the wrong key file.
    /// Nothing was changed; put the key back (see README, "Keys").
    #[error("a secret is sealed under key {key_id}, which the key ring does not hold")]
    UnknownKey {
        /// The missing key's id.
        key_id: u32,
    },
    /// A key cannot be retired: documents still hold secrets sealed under it
    /// (re-seal them first with [`Engine::reseal`](crate::Engine::reseal)).
    #[error("key {key_id} still seals {documents} documents; re-seal them before retiring it")]
    KeyInUse {
        /// The key's id.
        key_id: u32,
        /// How many documents use it.
        documents: u64,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored value (hash, sealed blob, token) is corrupt.
    #[error("corrupt stored value: {0}")]
    Corrupt(&'static str),
    /// Something inside the crate or its runtime failed (hashing, sealing, the hashing
    /// threads); not caused by the call's input or the account's state. Nothing was
    /// changed by this call.
    #[error("internal failure: {0}")]
    Internal(#[from] InternalError),
}

/// Why a call does not fit the account's state ([`Error::Misuse`]). The `Display`
/// text is a sentence safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An enrollment was started while two-factor authentication is active (it needs a
    /// reset first).
    #[error("two-factor authentication is already active; reset it first")]
    TwoFactorActive,
    /// The call needs active two-factor authentication (reissuing backup codes).
    #[error("two-factor authentication is not active")]
    TwoFactorNotActive,
    /// An enrollment was confirmed, but none is waiting for confirmation.
    #[error("no enrollment is waiting for confirmation")]
    NoEnrollment,
    /// The enrollment was replaced (a new secret) while it was being confirmed.
    #[error("the enrollment changed while confirming; start again")]
    EnrollmentChanged,
    /// The confirming code's time step was already accepted before a reset, so it
    /// cannot confirm (a captured code does not replay).
    #[error("the confirming code's time step was already used before a reset")]
    StepUsedBeforeReset,
    /// A password hash was imported for a user the crate already keeps a password for
    /// (a migration run twice must not put back a password the user has changed since;
    /// [`Engine::change_password`](crate::Engine::change_password) replaces one).
    #[error("the user already has a password; an import does not replace it")]
    PasswordAlreadySet,
    /// The user tried to turn two-factor authentication off under a policy that
    /// requires it.
    #[error("the policy requires two-factor authentication; it cannot be turned off")]
    TwoFactorRequired,
    /// The user's last authenticator cannot be removed (turning 2FA off removes it).
    #[error("the last authenticator cannot be removed; turn two-factor authentication off instead")]
    LastAuthenticator,
    /// No authenticator of the user has this id (or none is being added).
    #[error("no such authenticator")]
    NoSuchAuthenticator,
    /// The user has as many authenticators as the crate keeps.
    #[error("too many authenticators; remove one first")]
    TooManyAuthenticators,
}

/// What failed inside the crate ([`Error::Internal`]). None of these depends on the
/// input: retrying may help, and a repeated one is worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InternalError {
    /// Argon2 failed to hash (or to encode its result).
    #[error("Argon2 hashing failed")]
    Hashing,
    /// Sealing a secret or a token failed.
    #[error("sealing failed")]
    Sealing,
    /// The [`Offload`](crate::plumbing::offload::Offload) finished without running the hashing
    /// job (it dropped the job, or the job panicked).
    #[error("the offloaded hashing job did not run")]
    OffloadedJobLost,
    /// The engine's default hashing threads could not be started.
    #[error("the hashing threads could not be started")]
    HashThreads,
    /// A background task was asked for outside a tokio runtime
    /// ([`DeliveryWorker::spawn`](crate::DeliveryWorker::spawn)).
    #[error("no tokio runtime to run the background task on")]
    NoRuntime,
}

/// A failure of a [`UserStore`](crate::store::UserStore) implementation.
///
/// The message must not contain secrets; stores only ever see hashes and sealed
/// blobs, so a driver error message is safe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key (username or id) already exists.
    #[error("duplicate key")]
    Duplicate,
    /// The backend failed (connection, I/O, constraint, …).
    #[error("backend: {0}")]
    Backend(String),
    /// A stored row or credential document could not be read.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store does not offer this operation (e.g. creating users, for a store over
    /// the application's own users table).
    #[error("unsupported by this store: {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps any displayable backend error.
    pub fn backend(err: impl fmt::Display) -> Self {
        StoreError::Backend(err.to_string())
    }
}

/// A failure of a [`Mailer`](crate::mail::Mailer) implementation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The transport is unreachable or timed out; the message was not accepted.
    #[error("mail transport unavailable: {0}")]
    Unavailable(String),
    /// The server refused the message permanently.
    #[error("mail rejected: {0}")]
    Rejected(String),
    /// The message could not be built (bad address, template failure, …).
    #[error("mail could not be built: {0}")]
    Build(String),
}

/// A malformed input, rejected before any state was read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The input is longer than its maximum.
    #[error("{field} is too long (at most {max} characters)")]
    TooLong {
        /// Which input.
        field: &'static str,
        /// The maximum length in characters.
        max: usize,
    },
    /// The input is shorter than its minimum.
    #[error("{field} is too short (at least {min} characters)")]
    TooShort {
        /// Which input.
        field: &'static str,
        /// The minimum length in characters.
        min: usize,
    },
    /// The input does not have the expected form.
    #[error("{field} is malformed: {reason}")]
    Malformed {
        /// Which input.
        field: &'static str,
        /// What is wrong, without echoing the input.
        reason: &'static str,
    },
    /// The input contains a character it may not hold. The message names the character
    /// by its code point (`U+200B`), never by the character itself, so an invisible or
    /// formatting character cannot hide in the message.
    #[error("{field} {reason} (U+{code_point:04X})", code_point = u32::from(*character))]
    ForbiddenCharacter {
        /// Which input.
        field: &'static str,
        /// What kind of character, as a phrase ("contains an invisible or formatting
        /// character").
        reason: &'static str,
        /// The first offending character.
        character: char,
    },
}

impl InputError {
    pub(crate) fn malformed(field: &'static str, reason: &'static str) -> Self {
        InputError::Malformed { field, reason }
    }
}

/// Checks a text input against its maximum length in Unicode characters.
pub(crate) fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), InputError> {
    // A cheap byte bound first, so a huge input is never scanned.
    if value.len() > max.saturating_mul(4) || value.chars().count() > max {
        return Err(InputError::TooLong { field, max });
    }
    Ok(())
}

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
