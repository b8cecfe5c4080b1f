//! Server-side sessions in memory, keyed by a random id in an HttpOnly cookie, each
//! with its own CSRF token. The id is rotated whenever the session gains privilege
//! (password accepted, login completed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use twofactor::{AccountId, EnrollmentStarted, Role, SecretString};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tf_session";
/// The remembered-location cookie's name.
pub const LOCATION_COOKIE: &str = "tf_location";
/// Sessions idle longer than this are forgotten.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// 32 random bytes, base64url: session ids, CSRF tokens, nonces, demo passwords.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator failing leaves no safe way to continue.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("system random generator failed: {e}"));
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// Someone who passed the password step (and the code step, unless `enrollment_only`).
#[derive(Clone)]
pub struct SignedIn {
    /// The account.
    pub id: AccountId,
    /// Its username.
    pub username: String,
    /// Its role.
    pub role: Role,
}

/// What one browser's session holds.
#[derive(Clone)]
pub struct Session {
    /// The CSRF token every POST form must carry.
    pub csrf: String,
    /// The signed-in user.
    pub user: Option<SignedIn>,
    /// The pending login between the password and the code step.
    pub pending: Option<SecretString>,
    /// An enrollment shown but not yet confirmed (so a reload shows the same secret).
    pub enrollment: Option<EnrollmentStarted>,
    /// A one-time message for the next page.
    pub notice: Option<String>,
    seen: Instant,
}

impl Session {
    fn new() -> Session {
        Session { csrf: token(), user: None, pending: None, enrollment: None, notice: None, seen: Instant::now() }
    }

    /// Whether `given` is this session's CSRF token (constant-time).
    pub fn csrf_ok(&self, given: &str) -> bool {
        self.csrf.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// One request's view of its session.
pub struct Ctx {
    /// The session id.
    id: String,
    /// The session's data (written back by [`Sessions::finish`]).
    pub data: Session,
    set_cookie: bool,
}

/// All sessions.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    secure: bool,
}

impl Sessions {
    /// No sessions; `secure` marks cookies `Secure` (serve over HTTPS then).
    pub fn new(secure: bool) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), secure }
    }

    /// The request's session, or a fresh one.
    pub fn open(&self, headers: &HeaderMap) -> Ctx {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.seen.elapsed() < IDLE);
        if let Some(id) = cookie(headers, SESSION_COOKIE)
            && let Some(data) = map.get(&id)
        {
            return Ctx { data: data.clone(), id, set_cookie: false };
        }
        Ctx { id: token(), data: Session::new(), set_cookie: true }
    }

    /// Gives the session a new id (and CSRF token); the old id stops working.
    pub fn rotate(&self, ctx: &mut Ctx) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&ctx.id);
        ctx.id = token();
        ctx.data.csrf = token();
        ctx.set_cookie = true;
    }

    /// Ends the session: a fresh, empty one replaces it.
    pub fn end(&self, ctx: &mut Ctx) {
        self.rotate(ctx);
        ctx.data = Session::new();
    }

    /// Stores the session and attaches its cookie when it is new. A session that a
    /// concurrent request rotated or ended meanwhile stays gone: writing it back would
    /// undo a logout or revive the id a login retired.
    pub fn finish(&self, mut ctx: Ctx, response: impl IntoResponse) -> Response {
        ctx.data.seen = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if ctx.set_cookie || map.contains_key(&ctx.id) {
            map.insert(ctx.id.clone(), ctx.data);
        }
        drop(map);
        let mut response = response.into_response();
        if ctx.set_cookie {
            let value = self.cookie(SESSION_COOKIE, &ctx.id, None);
            response.headers_mut().append(SET_COOKIE, value);
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
