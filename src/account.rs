//! The account record: the one value a [`UserStore`](crate::UserStore) keeps per user,
//! and the account's two-factor state machine ([`TwoFactor`]).
//!
//! The record holds no plaintext secret: the password and backup codes are Argon2id
//! PHC strings, the TOTP key is sealed ([`SealedSecret`]), remembered-location tokens
//! are SHA-256 digests. A store persists it field by field and swaps it atomically.

use std::fmt;

use crate::clock::Timestamp;
use crate::totp::TotpParams;

/// An account's identifier, chosen at random by the engine (below 2^63, so it fits a
/// signed 64-bit column).
///
/// With the `serde` feature it serializes as a decimal string, e.g.
/// `"5468115731402263511"`, the same text as its `Display`: random ids are almost all
/// above 2^53, which a JSON number read by JavaScript (or any reader parsing numbers
/// as doubles) would silently round. It deserializes only from such a string (ASCII
/// digits of a value that fits a `u64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Digits;
        impl serde::de::Visitor<'_> for Digits {
            type Value = AccountId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an account id as a string of decimal digits")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AccountId, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(serde::de::Unexpected::Str(v), &self));
                }
                v.parse().map(AccountId).map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Digits)
    }
}

/// What an account may do to others. See [`Role::may_reset`].
///
/// With the `serde` feature it serializes as its stable name ([`Role::as_str`]:
/// `"user"`, `"admin"`, `"support"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Role {
    /// An ordinary user.
    #[default]
    User,
    /// An administrator: resets the 2FA of users.
    Admin,
    /// The vendor's support: resets the 2FA of administrators (and users).
    Support,
}

impl Role {
    /// The stable lowercase name (`user`, `admin`, `support`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Support => "support",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "support" => Some(Role::Support),
            _ => None,
        }
    }

    /// Whether an actor with this role may reset the 2FA of an account with role
    /// `target`: an admin resets users; only support resets an admin; nobody resets a
    /// peer of their own role, and a plain user resets no one.
    ///
    /// ```
    /// use twofactor::Role;
    /// assert!(Role::Admin.may_reset(Role::User));
    /// assert!(!Role::Admin.may_reset(Role::Admin));
    /// assert!(Role::Support.may_reset(Role::Admin));
    /// assert!(!Role::User.may_reset(Role::User));
    /// ```
    pub fn may_reset(self, target: Role) -> bool {
        matches!((self, target), (Role::Admin, Role::User) | (Role::Support, Role::User) | (Role::Support, Role::Admin))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TOTP key encrypted under the application's [`KeyRing`](crate::KeyRing), bound to
/// the account id. Stores keep it as opaque bytes.
///
/// Deliberately not `Serialize` or `Deserialize`, even with the `serde` feature (nor is
/// any secret, token or the [`Account`] record that holds it): a store writes its bytes
/// field by field.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// The account's two-factor state: `Disabled` → `Enrolling` → `Enabled`, and back to
/// `Disabled` by an administrator's reset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TwoFactor {
    /// No second factor. Login needs the password alone (unless the policy requires
    /// 2FA, then login answers `EnrollmentRequired`).
    #[default]
    Disabled,
    /// A secret was issued but not confirmed by a correct code. Login ignores it.
    Enrolling(Enrolling),
    /// Active: login from an unremembered location needs a code.
    Enabled(Enabled),
}

impl TwoFactor {
    /// The state's name: `disabled`, `enrolling` or `enabled`.
    pub fn name(&self) -> &'static str {
        match self {
            TwoFactor::Disabled => "disabled",
            TwoFactor::Enrolling(_) => "enrolling",
            TwoFactor::Enabled(_) => "enabled",
        }
    }
}

/// An enrollment waiting for its confirming code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolling {
    /// The issued TOTP key, sealed.
    pub secret: SealedSecret,
    /// The code parameters shown in the `otpauth://` URI.
    pub params: TotpParams,
    /// When the secret was issued.
    pub started_at: Timestamp,
}

/// Active two-factor authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    /// The TOTP key, sealed.
    pub secret: SealedSecret,
    /// The code parameters.
    pub params: TotpParams,
    /// The newest TOTP time step accepted (confirmation included). A code for this
    /// step or an older one is never accepted again.
    pub last_used_step: u64,
    /// The valid backup codes, hashed. Empty after a failed delivery until reissued.
    pub backup_codes: Vec<BackupCodeHash>,
    /// When 2FA was confirmed.
    pub enabled_at: Timestamp,
}

/// A backup code as stored: an Argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCodeHash {
    /// The PHC string (salted hash) of the canonical code.
    pub phc: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops working, if the policy limits its life.
    pub expires_at: Option<Timestamp>,
}

impl fmt::Debug for BackupCodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupCodeHash")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The shared failure budget of an account (see [`ThrottlePolicy`](crate::ThrottlePolicy)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Consecutive failures across password, TOTP and backup code: they set the
    /// throttle delays.
    pub failures: u32,
    /// No attempt is evaluated before this time.
    pub until: Option<Timestamp>,
    /// Consecutive wrong second factors (TOTP or backup code entered after a right
    /// password). Only these count towards the permanent lock: wrong passwords alone
    /// throttle but never lock the account.
    pub second_factor_failures: u32,
    /// The second factor is disabled after too many second-factor failures, until an
    /// admin reset.
    pub second_factor_locked: bool,
}

/// A location (device) whose login needs no code while its token is valid.
#[derive(Clone, PartialEq, Eq)]
pub struct RememberedLocation {
    /// Public identifier (16 random bytes), used to list and revoke it.
    pub id: [u8; 16],
    /// SHA-256 of the security stamp and the token's secret part.
    pub token_hash: [u8; 32],
    /// The label the application gave (e.g. "Firefox on Linux").
    pub label: String,
    /// When it was remembered.
    pub created_at: Timestamp,
    /// When it was last used to skip the code.
    pub last_used_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

impl fmt::Debug for RememberedLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberedLocation")
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the account remembers of a pending login it issued: written only when the
/// pending login fails a code or is used, so the password step needs no write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMark {
    /// The pending login's random id.
    pub id: [u8; 16],
    /// When the pending login expires (the mark can be dropped then).
    pub expires_at: Timestamp,
    /// Wrong codes entered against it.
    pub failures: u32,
    /// Whether it was used for a successful login.
    pub consumed: bool,
}

/// Who reset the account's 2FA, when, and how they verified the user's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRecord {
    /// The actor's account.
    pub by: AccountId,
    /// The actor's username at the time.
    pub by_username: String,
    /// The actor's role at the time.
    pub by_role: Role,
    /// How the identity was verified (free text from the actor).
    pub identity_check: String,
    /// When.
    pub at: Timestamp,
}

/// The account record a [`UserStore`](crate::UserStore) keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Identifier.
    pub id: AccountId,
    /// Unique login name, compared exactly and so case-sensitively (`Alice` and `alice`
    /// are two accounts, as in 0.1.0, whose databases may hold both). The engine stores
    /// new names in Unicode Normalization Form C, free of invisible and formatting
    /// characters (see [`NewAccount::username`](crate::NewAccount::username)); a record
    /// written by 0.1.0 may hold a name as it was typed.
    pub username: String,
    /// Where mail goes.
    pub email: String,
    /// What the account may do.
    pub role: Role,
    /// Argon2id PHC string of the password.
    pub password_hash: String,
    /// Rotated by a reset or a password change; ends every pending login and
    /// remembered location issued before.
    pub security_stamp: u64,
    /// When the account was created.
    pub created_at: Timestamp,
    /// The two-factor state machine.
    pub two_factor: TwoFactor,
    /// The shared failure budget.
    pub throttle: Throttle,
    /// Remembered locations, oldest first.
    pub locations: Vec<RememberedLocation>,
    /// Marks of pending logins that failed or were used.
    pub pending: Vec<PendingMark>,
    /// The latest administrator reset.
    pub last_reset: Option<ResetRecord>,
    /// The newest TOTP step accepted under an enrollment that a reset removed (0 when
    /// none). No code for this step or an older one is accepted again, neither to
    /// confirm a new enrollment nor to log in, so a code captured before a reset cannot
    /// be replayed after it (even when the same secret is imported again).
    pub retired_totp_step: u64,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("two_factor", &self.two_factor.name())
            .field("throttle", &self.throttle)
            .field("locations", &self.locations.len())
            .finish_non_exhaustive()
    }
}

/// A record and the version the store holds it at. Every write names the version it
/// replaces ([`UserStore::compare_and_swap`](crate::UserStore::compare_and_swap)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// Starts at 1 on insert; each successful swap adds 1.
    pub version: u64,
    /// The record.
    pub record: T,
}
