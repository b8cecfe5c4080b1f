#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// On docs.rs, mark each feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod account;
pub mod backup_code;
pub mod clock;
mod document;
mod engine;
pub mod error;
pub mod events;
mod keys;
pub mod mail;
pub mod offload;
pub mod otpauth;
mod outbox;
pub mod outcome;
mod password;
pub mod policy;
mod random;
mod rules;
pub mod secret;
mod semaphore;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod token;
pub mod totp;
mod user_id;
mod username;

pub use account::Role;
pub use backup_code::BackupCode;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use engine::{
    Engine, EngineBuilder, NewAccount, PasswordAttempt, PasswordCheck, QUEUED_LOGINS_PER_HASH, SecondFactor,
    default_max_concurrent_hashes,
};
pub use engine::{EnrollmentStarted, KeyUsage, ResealProgress, ResealReport};
pub use error::{Error, InputError, InternalError, MailError, Refusal, Result, StoreError};
pub use events::{Event, EventKind, EventSink, MemorySink, NoopSink};
pub use keys::{AppKey, KeyError, KeyRing};
pub use mail::{BoxMailer, Delivery, Either, Mailer, MemoryMailer, Message, MessageKind};
#[cfg(feature = "tokio")]
pub use outbox::DeliveryWorker;
pub use outbox::{DeliveryPolicy, DeliveryReport, MailId, MailStatus};
pub use outcome::{
    AccountView, AddAuthenticatorOutcome, AuthMethod, Authenticated, AuthenticatorInfo, ConfirmOutcome, LocationInfo,
    LoginOutcome, PendingLogin, RememberToken, ResetOutcome, SecondFactorOutcome, StepUpOutcome, TwoFactorState,
    UnlockOutcome,
};
pub use policy::{BackupCodePolicy, HashParams, LocationPolicy, PasswordPolicy, Policy, PolicyBuilder, ThrottlePolicy};
pub use secret::{SecretBytes, SecretString};
/// The sqlx the SQL stores are built on, for building a pool of one's own
/// (`SqliteStore::from_pool`, `PostgresStore::from_pool`) without a second copy.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{BoxStore, Document, MemoryStore, ScanPage, StoredDocument, Swap, UserRecord, UserStore};
pub use totp::{Algorithm, TotpCode, TotpParams, TotpVerification, Window};
pub use user_id::{InvalidUserId, MAX_USER_ID_LEN, UserId};
