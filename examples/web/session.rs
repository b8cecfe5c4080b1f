//! Server-side sessions in memory, keyed by a random id in an HttpOnly cookie, each
//! with its own CSRF token. A session is stored only once it holds state (a pending
//! login, a signed-in user, an enrollment on screen, a notice): anonymous pages, the
//! sign-in form included, store nothing. The store is bounded (see [`Store`]). The id
//! is rotated whenever the session gains privilege (password accepted, login
//! completed, enrollment confirmed).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use twofactor::{AccountId, EnrollmentStarted, Role, SecretString};

use crate::store::Store;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tf_session";
/// The remembered-location cookie's name.
pub const LOCATION_COOKIE: &str = "tf_location";
/// The sign-in form's CSRF cookie (a double-submit token: see `signin`).
pub const LOGIN_CSRF_COOKIE: &str = "tf_login_csrf";
/// Sessions idle longer than this are forgotten.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// 32 random bytes, base64url: session ids, CSRF tokens, nonces, demo passwords.
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
#[derive(Clone)]
pub struct SignedIn {
    /// The account.
    pub id: AccountId,
    /// Its username.
    pub username: String,
    /// Its role.
    pub role: Role,
}

/// How far a session's owner has signed in.
#[derive(Clone, Default)]
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

/// What one browser's session holds.
#[derive(Clone)]
pub struct Session {
    /// The CSRF token every POST form of a session must carry.
    pub csrf: String,
    /// Who is signed in, and how far.
    pub login: Login,
    /// The pending login between the password and the code step.
    pub pending: Option<SecretString>,
    /// An enrollment shown but not yet confirmed (so a reload shows the same secret).
    pub enrollment: Option<EnrollmentStarted>,
    /// A one-time message for the next page.
    pub notice: Option<String>,
}

impl Session {
    fn new() -> Session {
        Session { csrf: token(), login: Login::Anonymous, pending: None, enrollment: None, notice: None }
    }

    /// Whether `given` is this session's CSRF token (constant-time).
    pub fn csrf_ok(&self, given: &str) -> bool {
        same_token(&self.csrf, given)
    }

    /// Whether there is anything worth storing. The CSRF token alone is not: the one
    /// form an anonymous visitor gets, sign-in, carries a double-submit token instead.
    fn holds_state(&self) -> bool {
        !matches!(self.login, Login::Anonymous)
            || self.pending.is_some()
            || self.enrollment.is_some()
            || self.notice.is_some()
    }
}

/// One request's view of its session.
pub struct Ctx {
    /// The stored session this request loaded; `None` for a session not stored yet (or
    /// just rotated), which gets a fresh id when [`Sessions::finish`] stores it.
    id: Option<String>,
    /// The session's data (written back by [`Sessions::finish`]).
    pub data: Session,
}

/// All sessions: at most a configured number, each forgotten after 30 idle minutes.
pub struct Sessions {
    store: Mutex<Store<Session>>,
    secure: bool,
}

impl Sessions {
    /// No sessions; at most `max` at once (the least recently used is evicted first);
    /// `secure` marks cookies `Secure` (serve over HTTPS then).
    pub fn new(secure: bool, max: usize) -> Sessions {
        Sessions { store: Mutex::new(Store::new(max, IDLE)), secure }
    }

    fn store(&self) -> MutexGuard<'_, Store<Session>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request's session, or a fresh one (not stored unless it gains state).
    pub fn open(&self, headers: &HeaderMap) -> Ctx {
        if let Some(id) = cookie(headers, SESSION_COOKIE)
            && let Some(data) = self.store().get(&id, Instant::now())
        {
            return Ctx { id: Some(id), data };
        }
        Ctx { id: None, data: Session::new() }
    }

    /// Gives the session a new id (and CSRF token); the old id stops working.
    pub fn rotate(&self, ctx: &mut Ctx) {
        if let Some(id) = ctx.id.take() {
            self.store().remove(&id);
        }
        ctx.data.csrf = token();
    }

    /// Ends the session: a fresh, empty one replaces it.
    pub fn end(&self, ctx: &mut Ctx) {
        self.rotate(ctx);
        ctx.data = Session::new();
    }

    /// Stores the session if it holds state (forgets it if not), and attaches the
    /// cookie of a newly stored one. A session that a concurrent request rotated or
    /// ended meanwhile stays gone: writing it back would undo a logout or revive the id
    /// a login retired.
    pub fn finish(&self, ctx: Ctx, response: impl IntoResponse) -> Response {
        let keep = ctx.data.holds_state();
        let new_id = (ctx.id.is_none() && keep).then(token);
        let mut store = self.store();
        let now = Instant::now();
        match (ctx.id, &new_id) {
            (Some(id), _) if keep => {
                store.update(&id, ctx.data, now);
            }
            (Some(id), _) => store.remove(&id),
            (None, Some(id)) => store.insert(id.clone(), ctx.data, now),
            (None, None) => {}
        }
        drop(store);
        let mut response = response.into_response();
        if let Some(id) = new_id {
            response.headers_mut().append(SET_COOKIE, self.cookie(SESSION_COOKIE, &id, None));
        }
        response
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when configured,
    /// and a Max-Age when given (else a browser-session cookie).
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&pair).unwrap());
        headers
    }

    fn count(sessions: &Sessions) -> usize {
        sessions.store().len()
    }

    #[test]
    fn requests_without_state_store_nothing() {
        let sessions = Sessions::new(false, 10);
        let forged = with_cookie(&HeaderValue::from_static("tf_session=forged"));
        for headers in [HeaderMap::new(), forged] {
            for _ in 0..1000 {
                let response = sessions.finish(sessions.open(&headers), "page");
                assert!(response.headers().get(SET_COOKIE).is_none(), "no cookie for a session not stored");
            }
        }
        assert_eq!(count(&sessions), 0, "1000 anonymous requests left no session behind");
    }

    #[test]
    fn a_session_is_stored_with_state_and_forgotten_without() {
        let sessions = Sessions::new(false, 10);
        let mut ctx = sessions.open(&HeaderMap::new());
        ctx.data.pending = Some(SecretString::from("pending-login"));
        let response = sessions.finish(ctx, "verify");
        assert_eq!(count(&sessions), 1, "a pending login is state");
        let headers = with_cookie(response.headers().get(SET_COOKIE).expect("a new session's cookie"));
        let mut ctx = sessions.open(&headers);
        assert!(ctx.data.pending.is_some(), "the cookie finds the session");
        ctx.data.pending = None;
        let response = sessions.finish(ctx, "sign-in");
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert_eq!(count(&sessions), 0, "a session that lost its state is removed");
    }

    #[test]
    fn a_rotated_or_ended_session_stays_gone() {
        let sessions = Sessions::new(false, 10);
        let mut ctx = sessions.open(&HeaderMap::new());
        ctx.data.notice = Some("hello".into());
        let old = with_cookie(sessions.finish(ctx, "").headers().get(SET_COOKIE).unwrap());
        let slow = sessions.open(&old);
        let mut ending = sessions.open(&old);
        sessions.end(&mut ending);
        ending.data.notice = Some("You are signed out.".into());
        let new = sessions.finish(ending, "");
        assert_ne!(with_cookie(new.headers().get(SET_COOKIE).unwrap()), old, "a new id");
        let _ = sessions.finish(slow, "");
        assert!(sessions.open(&old).id.is_none(), "a concurrent request did not revive the ended id");
        assert_eq!(count(&sessions), 1, "only the new session is stored");
    }

    #[test]
    fn the_cap_holds() {
        let sessions = Sessions::new(false, 3);
        let cookies: Vec<HeaderMap> = (0..5)
            .map(|i| {
                let mut ctx = sessions.open(&HeaderMap::new());
                ctx.data.notice = Some(format!("session {i}"));
                with_cookie(sessions.finish(ctx, "").headers().get(SET_COOKIE).unwrap())
            })
            .collect();
        assert_eq!(count(&sessions), 3);
        let live: Vec<bool> = cookies.iter().map(|c| sessions.open(c).id.is_some()).collect();
        assert_eq!(live, [false, false, true, true, true], "the oldest were evicted");
    }
}
