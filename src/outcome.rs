//! What the login ceremony returns. Wrong passwords and codes are outcomes here, not
//! errors.
//!
//! With the `serde` feature, [`AccountView`] and [`LocationInfo`] are `Serialize` and
//! `Deserialize` (for JSON APIs and templates). The tokens ([`PendingLogin`],
//! [`RememberToken`]) and [`Authenticated`], which carries one, deliberately are not:
//! hand the client [`PendingLogin::token`] or [`RememberToken::token`] itself, in an
//! HttpOnly cookie, never a serialized structure that could end up in a log.

use std::fmt;
use std::time::Duration;

use crate::UserId;
use crate::account::Role;
use crate::crypto::secret::SecretString;
use crate::events::Factor;
use crate::mail::Delivery;
use crate::plumbing::clock::Timestamp;

/// The answer to the password step ([`Engine::begin_login`](crate::Engine::begin_login)).
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// Logged in: no second factor needed (2FA off, or a remembered location).
    Authenticated(Authenticated),
    /// The password was right; now a code is needed. Keep the pending login (e.g. in
    /// an HttpOnly cookie) and pass it to
    /// [`Engine::finish_login`](crate::Engine::finish_login).
    SecondFactorRequired(PendingLogin),
    /// The password was right, but the policy requires 2FA and the account has none:
    /// let the user enroll and nothing else.
    EnrollmentRequired(Authenticated),
    /// Unknown user, wrong password, or throttled account: deliberately the same
    /// answer, after the same amount of hashing work.
    Denied,
    /// Not evaluated: the engine is saturated (more logins are waiting to be hashed
    /// than [`EngineBuilder::max_queued_logins`](crate::EngineBuilder::max_queued_logins)
    /// allows), as during a credential-stuffing flood. Ask the user to try again after
    /// `retry_after` (a web application answers `503 Service Unavailable` with a
    /// `Retry-After` header). Nothing was read or counted: the answer says nothing about
    /// the username. A caller presenting a valid remembered-location token is never
    /// shed; it is hashed ahead of everyone else.
    Busy {
        /// When trying again is worthwhile.
        retry_after: std::time::Duration,
    },
}

/// A login waiting for its second factor: an opaque, expiring, single-use token bound
/// to the account. It is sealed under the engine's [`KeyRing`](crate::KeyRing), so it
/// reveals nothing (not even the account) and cannot be altered: 123 characters for a
/// numeric user id, up to 198 for a 64-byte one (never over 256).
///
/// Never `Serialize` (a secret): store [`token`](Self::token) itself.
#[derive(Clone)]
pub struct PendingLogin {
    pub(crate) token: SecretString,
    pub(crate) expires_at: Timestamp,
    pub(crate) lifetime: Duration,
}

impl PendingLogin {
    /// The token to keep client-side (cookie or hidden field).
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// When it stops working.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// How long it works from when it was issued (the policy's pending-login
    /// lifetime): the `Max-Age` of a cookie set with it, with no clock to read. See
    /// [`RememberToken::max_age`].
    pub fn max_age(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// How the login was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Password only (the account has no active 2FA).
    Password,
    /// Password from a remembered location.
    PasswordAndLocation,
    /// Password and an authenticator code.
    PasswordAndTotp,
    /// Password and the backup code (which is now void and replaced).
    PasswordAndBackupCode,
}

/// A completed login (or, inside [`LoginOutcome::EnrollmentRequired`], a password-only
/// identification that permits enrollment and nothing else).
#[derive(Debug)]
#[non_exhaustive]
pub struct Authenticated {
    /// The account.
    pub account: UserId,
    /// Its username.
    pub username: String,
    /// Its role.
    pub role: Role,
    /// How.
    pub method: AuthMethod,
    /// A token that lets this location skip the code next time, when it was asked for.
    pub remembered: Option<RememberToken>,
    /// After a backup-code login: the replacement code's mail, queued in the same write
    /// ([`Delivery::Queued`]; see [`Engine::deliver_queued`](crate::Engine::deliver_queued)
    /// to send it at once).
    pub backup_code_delivery: Option<Delivery>,
}

/// A remembered-location token: keep it client-side (a long-lived HttpOnly cookie)
/// and pass it to the password step. It is a random handle (location id and secret, at
/// most 128 characters) that names no account.
///
/// Never `Serialize` (a secret): put [`token`](Self::token) itself in the cookie.
#[derive(Clone)]
pub struct RememberToken {
    pub(crate) token: SecretString,
    pub(crate) id: String,
    pub(crate) expires_at: Timestamp,
    pub(crate) lifetime: Duration,
}

impl RememberToken {
    /// The token.
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// The location's public id (for listing and revoking).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it stops working.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// How long it works from when it was issued (the policy's
    /// [`LocationPolicy::lifetime`](crate::LocationPolicy::lifetime)): the `Max-Age` of
    /// the cookie set with it, with no clock to read. (A cookie's `Expires` attribute
    /// is `SystemTime::from(token.expires_at())`.)
    ///
    /// ```
    /// use twofactor::RememberToken;
    ///
    /// fn location_cookie(token: &RememberToken) -> String {
    ///     let max_age = token.max_age().as_secs();
    ///     format!("loc={}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Lax", token.token())
    /// }
    /// ```
    pub fn max_age(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for RememberToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberToken")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The answer to the second step.
#[derive(Debug)]
#[non_exhaustive]
pub enum SecondFactorOutcome {
    /// Logged in.
    Authenticated(Authenticated),
    /// Wrong (or already used) code; this pending login allows `attempts_left` more.
    Denied {
        /// Attempts left on this pending login.
        attempts_left: u32,
    },
    /// No more attempts on this pending login. Either the account is throttled
    /// (`until` says until when; then start again with the password), this pending
    /// login used up its own attempts (`until: None`, the account itself may still be
    /// open: start again with the password), or the second factor is locked until an
    /// administrator reset (`until: None`; [`AccountView::locked`] tells).
    Locked {
        /// When the account's throttle ends, if it is throttled.
        until: Option<Timestamp>,
    },
    /// The pending login expired, was already used, or was ended by a reset or a
    /// password change: start again with the password.
    Expired,
}

/// The answer to [`Engine::confirm_enrollment`](crate::Engine::confirm_enrollment).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfirmOutcome {
    /// 2FA is active; the first backup code is queued for mail.
    Confirmed {
        /// The backup-code mail ([`Delivery::Queued`]).
        backup_code_delivery: Delivery,
    },
    /// The code was wrong; nothing changed, the enrollment is still pending.
    WrongCode,
}

/// The answer to [`Engine::reset`](crate::Engine::reset).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetOutcome {
    /// 2FA was removed; the notice to the user is queued in the same write.
    Reset {
        /// The notice mail ([`Delivery::Queued`]).
        notice_delivery: Delivery,
    },
    /// The role rules forbid it (an admin resets users; only support resets admins;
    /// nobody resets themselves or a peer).
    NotAllowed,
}

/// A remembered location, as listed to its owner.
///
/// With the `serde` feature:
/// `{"id":"9f86d081884c7d659a2feaa0c55ad015","label":"Firefox on Linux","created_at":1764498000,"last_used_at":1764500000,"expires_at":1767090000}`
/// (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LocationInfo {
    /// Public id, for [`Engine::revoke_location`](crate::Engine::revoke_location).
    pub id: String,
    /// The label the application gave.
    pub label: String,
    /// When it was remembered.
    pub created_at: Timestamp,
    /// When it last skipped the code.
    pub last_used_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Where an account's two-factor authentication stands ([`AccountView::two_factor`]):
/// `Disabled` → `Enrolling` (a secret issued, not yet confirmed) → `Enabled`, and back
/// to `Disabled` by a reset.
///
/// [`as_str`](Self::as_str) (also `Display`) is a stable name: `disabled`, `enrolling`
/// or `enabled`; with the `serde` feature the state serializes as that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TwoFactorState {
    /// No second factor: the password alone logs in.
    Disabled,
    /// An enrollment was started; login ignores it until it is confirmed.
    Enrolling,
    /// Active: login asks for a code.
    Enabled,
}

impl TwoFactorState {
    /// The stable name: `disabled`, `enrolling` or `enabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TwoFactorState::Disabled => "disabled",
            TwoFactorState::Enrolling => "enrolling",
            TwoFactorState::Enabled => "enabled",
        }
    }
}

impl fmt::Display for TwoFactorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an application may show about an account.
///
/// With the `serde` feature:
/// `{"id":"5468115731402263511","username":"alice","email":"alice@example.test","role":"user","two_factor":"enabled","backup_codes":1,"remembered_locations":0,"locked":false}`
/// (the id is a string, see [`UserId`]; `two_factor` is [`TwoFactorState::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AccountView {
    /// Id.
    pub id: UserId,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether 2FA is disabled, enrolling or enabled.
    pub two_factor: TwoFactorState,
    /// How many backup codes are valid.
    pub backup_codes: usize,
    /// How many locations are remembered.
    pub remembered_locations: usize,
    /// Whether the second factor is locked after too many failures.
    pub locked: bool,
}

/// The answer to the calls that ask a signed-in user for a fresh second factor:
/// [`Engine::step_up`](crate::Engine::step_up),
/// [`Engine::disable_two_factor`](crate::Engine::disable_two_factor) and
/// [`Engine::remove_authenticator`](crate::Engine::remove_authenticator).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepUpOutcome {
    /// The factor was right, and the action (if any) is done. A TOTP step counts as
    /// used; a backup code works once, and its replacement is queued for mail.
    Verified {
        /// Which factor.
        factor: Factor,
        /// After a backup code: its replacement's mail ([`Delivery::Queued`]).
        backup_code_delivery: Option<Delivery>,
    },
    /// Wrong, replayed, or not a code at all: counted in the account's shared failure
    /// budget as a wrong code at login is (a typo that is not a code counts nothing).
    Denied,
    /// The account is throttled after failures: nothing was evaluated. Try again after
    /// `until`.
    Throttled {
        /// When attempts are evaluated again.
        until: Timestamp,
    },
    /// The second factor is locked after too many failures until an administrator
    /// unlocks ([`Engine::unlock`](crate::Engine::unlock)) or resets it.
    Locked,
}

impl StepUpOutcome {
    /// Whether the factor was right (and the action done).
    pub fn is_verified(&self) -> bool {
        matches!(self, StepUpOutcome::Verified { .. })
    }
}

/// An authenticator, as listed to its owner ([`Engine::authenticators`](crate::Engine::authenticators)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AuthenticatorInfo {
    /// Its public id (16 hex digits), for
    /// [`Engine::remove_authenticator`](crate::Engine::remove_authenticator).
    pub id: String,
    /// The name the user gave it.
    pub name: String,
    /// When it was added.
    pub added_at: Timestamp,
    /// When a code from it was last accepted (its confirming code included); `None`
    /// when unknown (an authenticator from before this was recorded).
    pub last_used_at: Option<Timestamp>,
}

/// The answer to [`Engine::confirm_authenticator`](crate::Engine::confirm_authenticator).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddAuthenticatorOutcome {
    /// The authenticator was added; its codes log in from now on. The user is mailed.
    Added {
        /// Its public id.
        id: String,
        /// The notice's mail ([`Delivery::Queued`]).
        notice_delivery: Delivery,
    },
    /// The code was wrong; nothing changed, the authenticator is still being added.
    WrongCode,
}

/// The answer to [`Engine::unlock`](crate::Engine::unlock).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnlockOutcome {
    /// The failure budget was cleared, and with it a throttle or the second-factor lock;
    /// the user is mailed.
    Unlocked {
        /// The notice's mail ([`Delivery::Queued`]).
        notice_delivery: Delivery,
    },
    /// The budget held no failure: nothing changed.
    NotLocked,
    /// The role rules forbid it (as for a reset: an admin unlocks users; only support
    /// unlocks admins; nobody unlocks themselves or a peer).
    NotAllowed,
}
