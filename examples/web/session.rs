//! What a browser's session holds, on `tower-sessions`.
//!
//! `tower-sessions` keeps the session id in an HttpOnly, SameSite=Lax cookie, loads the
//! record lazily, and saves it only when a handler changed it: an anonymous page that
//! never writes stores nothing and sets no cookie (it only clears a cookie naming a
//! session the store does not hold). The demo's whole state lives under
//! one key as a [`Data`]; handlers take a [`Ctx`] (an extractor) and change it through
//! its methods, each of which writes the session straight back (a session left without
//! state is deleted rather than saved empty). The id is cycled (`Session::cycle_id`)
//! whenever the session gains privilege: password accepted, login completed,
//! enrollment confirmed by someone who had to enroll.
//!
//! CSRF: a synchronizer token (OWASP's recommended pattern for stateful apps). Every
//! stored session carries a random token of its own; every POST form carries it and
//! the handler compares it in constant time (`check_csrf`). That needs no crate beyond
//! `subtle`, which the library already uses. `axum_csrf` (an HMAC-signed token in a
//! cookie of its own, set by every page that renders a form) would add a crate, a key
//! and a second cookie for what the session already holds. The one form an anonymous
//! visitor posts, sign-in, has no session to hold a token (storing one per visitor
//! would let GETs fill the store), so it uses a double-submit cookie (see `signin`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_sessions::Session;
use tower_sessions::session_store::Error::Backend;
use twofactor::{Role, UserId};

use crate::app::AppError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tf_session";
/// The remembered-location cookie's name.
pub const LOCATION_COOKIE: &str = "tf_location";
/// The sign-in form's CSRF cookie (a double-submit token: see `signin`).
pub const LOGIN_CSRF_COOKIE: &str = "tf_login_csrf";
/// The session key the demo's [`Data`] is stored under.
const KEY: &str = "tf";

/// 32 random bytes, base64url: CSRF tokens, nonces, demo passwords.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator failing leaves no safe way to continue.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("system random generator failed: {e}"));
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// Whether `s` has the shape of a [`token`] (43 base64url characters).
pub fn is_token(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether two tokens are equal (constant-time).
pub fn same_token(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Someone who passed the password step (and whatever else their [`Login`] says).
#[derive(Clone, Serialize, Deserialize)]
pub struct SignedIn {
    /// The account.
    #[serde(with = "account_id")]
    pub id: UserId,
    /// Its username.
    pub username: String,
    /// Its role.
    #[serde(with = "role")]
    pub role: Role,
}

/// How far a session's owner has signed in.
#[derive(Clone, Default, Serialize, Deserialize)]
pub enum Login {
    /// Nobody yet (perhaps someone between the password and the code step).
    #[default]
    Anonymous,
    /// The password was right, but the policy requires 2FA and the account has none:
    /// only the enrollment pages and sign-out accept this session.
    MustEnroll(SignedIn),
    /// Signed in.
    Full(SignedIn),
}

/// An enrollment on screen but not yet confirmed (so a reload shows the same secret).
#[derive(Clone, Serialize, Deserialize)]
pub struct Shown {
    /// The `otpauth://` URI.
    pub uri: String,
    /// The secret, base32.
    pub secret: String,
}

/// A further authenticator on screen but not yet confirmed (so a reload shows the same
/// secret).
#[derive(Clone, Serialize, Deserialize)]
pub struct Adding {
    /// The name the user gave it.
    pub name: String,
    /// Its `otpauth://` URI and secret.
    pub shown: Shown,
}

/// What one browser's session holds. (tower-sessions keeps it as JSON: the pending
/// login and an unconfirmed secret are plain strings in the store, not zeroized on drop
/// as the engine's `SecretString`s are; they expire with the session.)
#[derive(Serialize, Deserialize)]
pub struct Data {
    /// The CSRF token every POST form of the session must carry.
    pub csrf: String,
    /// Who is signed in, and how far.
    pub login: Login,
    /// The pending login between the password and the code step.
    pub pending: Option<String>,
    /// An enrollment shown but not yet confirmed.
    pub enrollment: Option<Shown>,
    /// A further authenticator shown but not yet confirmed.
    #[serde(default)]
    pub adding: Option<Adding>,
    /// When (Unix seconds) the signed-in user last passed a step-up check: the
    /// sensitive actions accept one made within `stepup::FRESH_FOR` of it.
    #[serde(default)]
    pub stepped_up_at: Option<u64>,
    /// A one-time message for the next page.
    pub notice: Option<String>,
}

impl Data {
    fn new() -> Data {
        Data {
            csrf: token(),
            login: Login::Anonymous,
            pending: None,
            enrollment: None,
            adding: None,
            stepped_up_at: None,
            notice: None,
        }
    }

    /// Whether there is anything worth storing. The CSRF token alone is not.
    fn holds_state(&self) -> bool {
        !matches!(self.login, Login::Anonymous)
            || self.pending.is_some()
            || self.enrollment.is_some()
            || self.adding.is_some()
            || self.stepped_up_at.is_some()
            || self.notice.is_some()
    }
}

/// One request's session: the extractor every page handler takes.
pub struct Ctx {
    session: Session,
    /// The session's data, as loaded (change it through the methods below).
    pub data: Data,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Ctx, AppError> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| tower_sessions::session::Error::Store(Backend(why.to_owned())))?;
        let data = session.get::<Data>(KEY).await?.unwrap_or_else(Data::new);
        Ok(Ctx { session, data })
    }
}

impl Ctx {
    /// Whether `given` is this session's CSRF token (constant-time).
    pub fn csrf_ok(&self, given: &str) -> bool {
        same_token(&self.data.csrf, given)
    }

    /// Changes the data and writes the session back.
    pub async fn set(&mut self, change: impl FnOnce(&mut Data)) -> Result<(), AppError> {
        change(&mut self.data);
        if self.data.holds_state() {
            self.session.insert(KEY, &self.data).await?;
        } else {
            // Nothing worth keeping: delete the session instead of storing it empty.
            self.session.flush().await?;
        }
        Ok(())
    }

    /// Moves the session to `login` under a new id and CSRF token, dropping any pending
    /// login, enrollment, authenticator being added or step-up of the old state. The old
    /// id stops working at once.
    pub async fn promote(&mut self, login: Login) -> Result<(), AppError> {
        self.session.cycle_id().await?;
        self.set(|d| {
            d.csrf = token();
            d.pending = None;
            d.enrollment = None;
            d.adding = None;
            d.stepped_up_at = None;
            d.login = login;
        })
        .await
    }

    /// Ends the session (deleted from the store); `notice` goes to the next page, in a
    /// new session under a new id.
    pub async fn end(&mut self, notice: Option<&str>) -> Result<(), AppError> {
        self.session.flush().await?;
        self.data = Data::new();
        match notice {
            Some(text) => self.set(|d| d.notice = Some(text.to_owned())).await,
            None => Ok(()),
        }
    }

    /// Takes the one-time notice, rendered as an info box (empty without one).
    pub async fn take_notice(&mut self) -> Result<String, AppError> {
        if self.data.notice.is_none() {
            return Ok(String::new());
        }
        let mut notice = None;
        self.set(|d| notice = d.notice.take()).await?;
        Ok(notice.map_or(String::new(), |n| crate::html::message("info", &n)))
    }
}

/// The id as its text (the library's own serde impls need its `serde` feature, which
/// the demo does not require).
mod account_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use twofactor::UserId;

    pub fn serialize<S: Serializer>(id: &UserId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(id.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
        let text = String::deserialize(d)?;
        UserId::new(&text).map_err(|e| D::Error::custom(format!("user id: {e}")))
    }
}

mod role {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use twofactor::Role;

    pub fn serialize<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let name = String::deserialize(d)?;
        Role::parse(&name).ok_or_else(|| D::Error::custom(format!("unknown role {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_round_trips_through_the_session_record() {
        let user = SignedIn { id: UserId::from(42_u64), username: "alice".into(), role: Role::Admin };
        let mut data = Data::new();
        assert!(!data.holds_state(), "a CSRF token alone is not worth storing");
        data.login = Login::MustEnroll(user);
        assert!(data.holds_state());
        let value = serde_json::to_value(&data).unwrap();
        let back: Data = serde_json::from_value(value).unwrap();
        let Login::MustEnroll(user) = back.login else { panic!("the login state survives") };
        assert_eq!((user.id, user.username.as_str(), user.role), (UserId::from(42_u64), "alice", Role::Admin));
        assert!(same_token(&back.csrf, &data.csrf) && is_token(&back.csrf));
    }

    #[test]
    fn a_record_from_before_the_self_service_fields_still_reads() {
        let mut value = serde_json::to_value(Data::new()).unwrap();
        let fields = value.as_object_mut().unwrap();
        fields.remove("adding");
        fields.remove("stepped_up_at");
        let back: Data = serde_json::from_value(value).unwrap();
        assert!(back.adding.is_none() && back.stepped_up_at.is_none());
    }

    #[test]
    fn any_user_id_round_trips_as_its_text() {
        for id in ["42", "6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55", "auth0|5f7c8ec7c33c6c004bbafe82"] {
            let user = SignedIn { id: UserId::new(id).unwrap(), username: "bob".into(), role: Role::User };
            let value = serde_json::to_value(&user).unwrap();
            assert_eq!(value["id"], id);
            let back: SignedIn = serde_json::from_value(value).unwrap();
            assert_eq!(back.id.as_str(), id);
        }
        let bad = serde_json::json!({"id": "", "username": "bob", "role": "user"});
        assert!(serde_json::from_value::<SignedIn>(bad).is_err(), "an empty id is refused");
    }
}
