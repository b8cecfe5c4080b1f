#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// On docs.rs, mark each feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Builder-style setters for a `#[non_exhaustive]` configuration struct whose fields
/// stay public to read: `ThrottlePolicy::default().free_failures(20)`. Setters take
/// values as given; the [`PolicyBuilder`] (or the constructor that takes the struct)
/// checks them.
macro_rules! setters {
    ($ty:ty { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                #[must_use]
                pub const fn $field(mut self, $field: $t) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

// The tree, by role (README "The shape"): `engine` is the async driver, `rules` the
// pure decisions, `account` and `document` the record and its stored form, `factors`
// what a user proves, `crypto` what seals and signs, `outbox`, `mail` and `store` the
// application's parts, `plumbing` the clock and where Argon2 runs.
mod account;
mod crypto;
mod document;
mod engine;
mod error;
pub mod events;
mod factors;
pub mod mail;
mod outbox;
mod outcome;
mod plumbing;
mod policy;
mod rules;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

// Each public item has one path: the items below at the root, the rest in the public
// modules that group them (`events`, `mail`, `store`, `offload`, `otpauth`, `totp`,
// `testkit`). `tests/public_api.txt` lists them all.
pub use account::Role;
pub use account::user_id::{InvalidUserId, MAX_USER_ID_LEN, UserId};
pub use crypto::keys::{AppKey, KeyError, KeyRing};
pub use crypto::secret::{SecretBytes, SecretString};
pub use engine::{
    Engine, EngineBuilder, EnrollmentStarted, KeyUsage, NewAccount, PasswordAttempt, PasswordCheck,
    QUEUED_LOGINS_PER_HASH, ResealProgress, ResealReport, SecondFactor, default_max_concurrent_hashes,
};
pub use error::{Error, InputError, InternalError, MailError, Refusal, Result, StoreError};
pub use factors::backup_code::BackupCode;
pub use factors::{otpauth, totp};
pub use mail::boxed::Either;
#[cfg(feature = "tokio")]
pub use outbox::DeliveryWorker;
pub use outbox::{DeliveryPolicy, DeliveryReport, MailId, MailStatus};
pub use outcome::{
    AccountView, AddAuthenticatorOutcome, AuthMethod, Authenticated, AuthenticatorInfo, ConfirmOutcome, LocationInfo,
    LoginOutcome, PendingLogin, RememberToken, ResetOutcome, SecondFactorOutcome, StepUpOutcome, TwoFactorState,
    UnlockOutcome,
};
pub use plumbing::clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use plumbing::offload;
pub use policy::{BackupCodePolicy, HashParams, LocationPolicy, PasswordPolicy, Policy, PolicyBuilder, ThrottlePolicy};
/// The sqlx the SQL stores are built on, for building a pool of one's own
/// (`SqliteStore::from_pool`, `PostgresStore::from_pool`) without a second copy.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;
