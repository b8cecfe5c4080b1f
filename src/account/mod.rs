//! The account as the engine works on it: the application's identity of a user (id,
//! login name, email, role, read from the store at every call) and everything the
//! crate keeps for that user, the credential state, which a store persists as one
//! opaque [`Document`](crate::store::Document) (see [`crate::document`]).
//!
//! The state holds no plaintext secret: the password and backup codes are password
//! hashes, the TOTP key is sealed ([`SealedSecret`]), remembered-location tokens are
//! SHA-256 digests. Only [`Role`] is public; the rest is the crate's own.

pub(crate) mod user_id;
pub(crate) mod username;

use std::fmt;

use crate::UserId;
use crate::factors::totp::TotpParams;
use crate::outbox::{QueuedMail, SettledMail};
use crate::outcome::TwoFactorState;
use crate::plumbing::clock::Timestamp;

/// What an account may do to others. See [`Role::may_reset`].
///
/// It serializes (serde) as its stable name ([`Role::as_str`]:
/// `"user"`, `"admin"`, `"support"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
/// Written into the credential document as base64 (see [`crate::document`]); never
/// shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SealedSecret(pub Vec<u8>);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// The account's two-factor state: `Disabled` → `Enrolling` → `Enabled`, and back to
/// `Disabled` by an administrator's reset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum TwoFactor {
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
    /// Every TOTP secret the state holds: the one being enrolled, or each
    /// authenticator's and the one being added.
    pub(crate) fn secrets(&self) -> Vec<&SealedSecret> {
        match self {
            TwoFactor::Disabled => Vec::new(),
            TwoFactor::Enrolling(e) => vec![&e.secret],
            TwoFactor::Enabled(e) => {
                e.authenticators.iter().map(|a| &a.secret).chain(e.adding.as_ref().map(|a| &a.secret)).collect()
            }
        }
    }

    /// [`TwoFactor::secrets`], to change them.
    pub(crate) fn secrets_mut(&mut self) -> Vec<&mut SealedSecret> {
        match self {
            TwoFactor::Disabled => Vec::new(),
            TwoFactor::Enrolling(e) => vec![&mut e.secret],
            TwoFactor::Enabled(e) => e
                .authenticators
                .iter_mut()
                .map(|a| &mut a.secret)
                .chain(e.adding.as_mut().map(|a| &mut a.secret))
                .collect(),
        }
    }

    /// The state, without its data.
    pub fn state(&self) -> TwoFactorState {
        match self {
            TwoFactor::Disabled => TwoFactorState::Disabled,
            TwoFactor::Enrolling(_) => TwoFactorState::Enrolling,
            TwoFactor::Enabled(_) => TwoFactorState::Enabled,
        }
    }
}

/// An authenticator waiting for its confirming code: the first (2FA `Enrolling`), or
/// a further one while 2FA is on ([`Enabled::adding`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enrolling {
    /// The id it will have once confirmed.
    pub(crate) id: AuthenticatorId,
    /// The name the user gave it (e.g. "Tablet").
    pub(crate) name: String,
    /// The issued TOTP key, sealed.
    pub(crate) secret: SealedSecret,
    /// The code parameters shown in the `otpauth://` URI.
    pub(crate) params: TotpParams,
    /// When the secret was issued.
    pub(crate) started_at: Timestamp,
}

/// The name an authenticator gets when none was given (and that of the only
/// authenticator of a document or 0.1.0 account from before names).
pub(crate) const DEFAULT_AUTHENTICATOR_NAME: &str = "Authenticator app";

/// The public id of an authenticator: 8 random bytes, shown as 16 hex digits.
pub(crate) type AuthenticatorId = [u8; 8];

/// A confirmed authenticator (an app on one device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticator {
    /// Its public id, to list and remove it.
    pub(crate) id: AuthenticatorId,
    /// The name the user gave it.
    pub(crate) name: String,
    /// The TOTP key, sealed.
    pub(crate) secret: SealedSecret,
    /// The code parameters.
    pub(crate) params: TotpParams,
    /// The newest TOTP time step accepted from it (confirmation included). A code of
    /// this authenticator for this step or an older one is never accepted again.
    pub(crate) last_used_step: u64,
    /// When it was confirmed.
    pub(crate) added_at: Timestamp,
    /// When a code from it was last accepted (its confirmation included).
    pub(crate) last_used_at: Timestamp,
}

impl Authenticator {
    /// The authenticator an enrollment becomes once `step` confirmed it at `now`.
    pub(crate) fn confirmed(enrolling: &Enrolling, step: u64, now: Timestamp) -> Authenticator {
        Authenticator {
            id: enrolling.id,
            name: enrolling.name.clone(),
            secret: enrolling.secret.clone(),
            params: enrolling.params,
            last_used_step: step,
            added_at: now,
            last_used_at: now,
        }
    }
}

/// Active two-factor authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enabled {
    /// The confirmed authenticators, oldest first; never empty (removing the last one
    /// is turning 2FA off). A code from any of them logs in; each keeps its own replay
    /// state.
    pub(crate) authenticators: Vec<Authenticator>,
    /// A further authenticator being added, until its confirming code.
    pub(crate) adding: Option<Enrolling>,
    /// The valid backup codes, hashed.
    pub(crate) backup_codes: Vec<BackupCodeHash>,
    /// When 2FA was confirmed.
    pub(crate) enabled_at: Timestamp,
}

impl Enabled {
    /// The newest TOTP step accepted from any authenticator.
    pub(crate) fn newest_step(&self) -> u64 {
        self.authenticators.iter().map(|a| a.last_used_step).max().unwrap_or(0)
    }
}

/// A backup code as stored: an Argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BackupCodeHash {
    /// The PHC string (salted hash) of the canonical code.
    pub(crate) phc: String,
    /// When it was issued.
    pub(crate) issued_at: Timestamp,
    /// When it stops working, if the policy limits its life.
    pub(crate) expires_at: Option<Timestamp>,
}

impl BackupCodeHash {
    /// Whether it still works at `now` (not past its expiry, if it has one).
    pub(crate) fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
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
pub(crate) struct Throttle {
    /// Consecutive failures across password, TOTP and backup code: they set the
    /// throttle delays.
    pub(crate) failures: u32,
    /// No attempt is evaluated before this time.
    pub(crate) until: Option<Timestamp>,
    /// Consecutive wrong second factors (TOTP or backup code entered after a right
    /// password). Only these count towards the permanent lock: wrong passwords alone
    /// throttle but never lock the account.
    pub(crate) second_factor_failures: u32,
    /// The second factor is disabled after too many second-factor failures, until an
    /// admin reset.
    pub(crate) second_factor_locked: bool,
}

/// A location (device) whose login needs no code while its token is valid.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RememberedLocation {
    /// Public identifier (16 random bytes), used to list and revoke it.
    pub(crate) id: [u8; 16],
    /// SHA-256 of the security stamp and the token's secret part.
    pub(crate) token_hash: [u8; 32],
    /// The label the application gave (e.g. "Firefox on Linux").
    pub(crate) label: String,
    /// When it was remembered.
    pub(crate) created_at: Timestamp,
    /// When it was last used to skip the code.
    pub(crate) last_used_at: Timestamp,
    /// When it stops working.
    pub(crate) expires_at: Timestamp,
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
pub(crate) struct LoginMark {
    /// The pending login's random id.
    pub(crate) id: [u8; 16],
    /// When the pending login expires (the mark can be dropped then).
    pub(crate) expires_at: Timestamp,
    /// Wrong codes entered against it.
    pub(crate) failures: u32,
    /// Whether it was used for a successful login.
    pub(crate) consumed: bool,
}

/// Who reset the account's 2FA, when, and how they verified the user's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResetRecord {
    /// The actor's account.
    pub(crate) by: UserId,
    /// The actor's username at the time.
    pub(crate) by_username: String,
    /// The actor's role at the time.
    pub(crate) by_role: Role,
    /// How the identity was verified (free text from the actor).
    pub(crate) identity_check: String,
    /// When.
    pub(crate) at: Timestamp,
}

/// The account record a [`UserStore`](crate::store::UserStore) keeps.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// Identifier.
    pub(crate) id: UserId,
    /// Unique login name, compared exactly and so case-sensitively (`Alice` and `alice`
    /// are two accounts, as in 0.1.0, whose databases may hold both). The engine stores
    /// new names in Unicode Normalization Form C, free of invisible and formatting
    /// characters (see [`NewAccount::username`](crate::NewAccount::username)); a record
    /// written by 0.1.0 may hold a name as it was typed.
    pub(crate) username: String,
    /// Where mail goes.
    pub(crate) email: String,
    /// What the account may do.
    pub(crate) role: Role,
    /// The password hash: an Argon2id PHC string, or a hash imported from another
    /// system until the next right password replaces it. `None` when the application
    /// checks passwords itself (second-factor-only mode, or no password set yet).
    pub(crate) password_hash: Option<String>,
    /// Rotated by a reset or a password change; ends every pending login and
    /// remembered location issued before.
    pub(crate) security_stamp: u64,
    /// When the account was created.
    pub(crate) created_at: Timestamp,
    /// The two-factor state machine.
    pub(crate) two_factor: TwoFactor,
    /// The shared failure budget.
    pub(crate) throttle: Throttle,
    /// Remembered locations, oldest first.
    pub(crate) locations: Vec<RememberedLocation>,
    /// Marks of pending logins that failed or were used.
    pub(crate) pending: Vec<LoginMark>,
    /// The latest administrator reset.
    pub(crate) last_reset: Option<ResetRecord>,
    /// The latest administrator unlock (`identity_check` holds the reason given).
    pub(crate) last_unlock: Option<ResetRecord>,
    /// The newest TOTP step accepted under an enrollment that a reset removed (0 when
    /// none). No code for this step or an older one is accepted again, neither to
    /// confirm a new enrollment nor to log in, so a code captured before a reset cannot
    /// be replayed after it (even when the same secret is imported again).
    pub(crate) retired_totp_step: u64,
    /// Mail waiting to be delivered, written with the change that caused it (see
    /// [`crate::outbox`]).
    pub(crate) outbox: Vec<QueuedMail>,
    /// The newest messages that left the outbox, delivered or given up.
    pub(crate) settled_mail: Vec<SettledMail>,
}

impl Account {
    /// An account the crate keeps nothing for yet: no password, 2FA off, nothing
    /// remembered, under `stamp`, created `now`.
    pub(crate) fn new(id: UserId, username: String, email: String, role: Role, stamp: u64, now: Timestamp) -> Account {
        Account {
            id,
            username,
            email,
            role,
            password_hash: None,
            security_stamp: stamp,
            created_at: now,
            two_factor: TwoFactor::Disabled,
            throttle: Throttle::default(),
            locations: Vec::new(),
            pending: Vec::new(),
            last_reset: None,
            last_unlock: None,
            retired_totp_step: 0,
            outbox: Vec::new(),
            settled_mail: Vec::new(),
        }
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("two_factor", &self.two_factor.state().as_str())
            .field("throttle", &self.throttle)
            .field("locations", &self.locations.len())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

/// A record and the version of its credential document in the store. Every write
/// names the version it replaces
/// ([`UserStore::compare_and_swap`](crate::store::UserStore::compare_and_swap)); version 0
/// means the store holds no document for the user yet, so the first write inserts one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versioned<T> {
    /// 0 before the first write; 1 after the insert; each successful swap adds 1.
    pub(crate) version: u64,
    /// The record.
    pub(crate) record: T,
}
