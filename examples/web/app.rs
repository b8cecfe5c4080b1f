//! The application state, the routes, and the helpers every handler shares.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_sessions::SessionManagerLayer;
use tower_sessions::cookie::SameSite;

use crate::html::{Nav, page};
use crate::parts::{DemoEngine, Mailbox};
use crate::session::{Ctx, Login, SESSION_COOKIE, SignedIn};
use crate::store::BoundedStore;
use crate::{account, admin, enroll, mailbox, signin, verify};

/// Sessions idle longer than this are forgotten.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// Everything the handlers share.
pub struct App {
    /// The two-factor engine.
    pub engine: DemoEngine,
    /// The demo mailbox, when enabled.
    pub mailbox: Option<Mailbox>,
    /// Whether cookies are marked `Secure`.
    pub secure: bool,
}

/// The state handlers receive.
pub type Shared = Arc<App>;

impl App {
    /// Renders a page for this session.
    pub fn page(&self, ctx: &Ctx, title: &str, body: &str, script: Option<&str>) -> Response {
        self.page_sized(ctx, title, body, script, false)
    }

    /// Like [`page`](Self::page), on a wider card.
    pub fn page_sized(&self, ctx: &Ctx, title: &str, body: &str, script: Option<&str>, wide: bool) -> Response {
        page(&Nav { session: &ctx.data, mailbox: self.mailbox.is_some() }, title, body, script, wide)
    }

    /// A `Set-Cookie` value (for the cookies other than the session's): HttpOnly,
    /// SameSite=Lax, Path=/, Secure when configured, and a Max-Age when given (else a
    /// browser-session cookie).
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

/// A 303 redirect.
pub fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

/// What a handler can fail with.
pub enum AppError {
    /// A POST without this session's CSRF token.
    Csrf,
    /// The session could not be read or written.
    Session(tower_sessions::session::Error),
    /// An engine fault (store, misuse, internal failure).
    Engine(twofactor::Error),
    /// Answer with this instead (e.g. a redirect to the sign-in page).
    Respond(Box<Response>),
    /// The engine shed the login under load: 503 with `Retry-After`.
    Busy(std::time::Duration),
}

impl From<twofactor::Error> for AppError {
    fn from(e: twofactor::Error) -> Self {
        AppError::Engine(e)
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Session(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Respond(response) => *response,
            AppError::Csrf => (StatusCode::FORBIDDEN, "This form has expired. Go back, reload the page and try again.")
                .into_response(),
            AppError::Busy(retry_after) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, retry_after.as_secs().max(1).to_string())],
                "We are very busy right now. Please try again in a moment.",
            )
                .into_response(),
            AppError::Session(e) => {
                // Only the kind: a (de)serialization error may quote session data, which
                // holds a pending-login token or an enrollment secret.
                use tower_sessions::session::Error as SessionError;
                use tower_sessions::session_store::Error as StoreError;
                let kind = match &e {
                    SessionError::SerdeJson(_) => "the session data did not (de)serialize",
                    SessionError::Store(StoreError::Backend(_)) => "the session store failed",
                    SessionError::Store(_) => "the session store could not encode or decode a session",
                };
                eprintln!("session error: {kind}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again.")
                    .into_response()
            }
            AppError::Engine(e) => {
                // Engine errors carry no secrets by design.
                eprintln!("error: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again.")
                    .into_response()
            }
        }
    }
}

/// Handler result.
pub type Result<T = Response, E = AppError> = std::result::Result<T, E>;

/// Fails unless the form carried the session's CSRF token.
pub fn check_csrf(ctx: &Ctx, given: &str) -> Result<()> {
    if ctx.csrf_ok(given) { Ok(()) } else { Err(AppError::Csrf) }
}

/// The fully signed-in user; else a redirect to the enrollment page (for someone who
/// must enroll first) or to the sign-in page.
pub fn signed_in(ctx: &Ctx) -> Result<SignedIn> {
    match &ctx.data.login {
        Login::Full(user) => Ok(user.clone()),
        Login::MustEnroll(_) => Err(AppError::Respond(Box::new(redirect("/enroll")))),
        Login::Anonymous => Err(AppError::Respond(Box::new(redirect("/login")))),
    }
}

/// For the enrollment pages only: the signed-in user, or one who must enroll before
/// anything else (`true`); else a redirect to the sign-in page.
pub fn enrolling(ctx: &Ctx) -> Result<(SignedIn, bool)> {
    match &ctx.data.login {
        Login::Full(user) => Ok((user.clone(), false)),
        Login::MustEnroll(user) => Ok((user.clone(), true)),
        Login::Anonymous => Err(AppError::Respond(Box::new(redirect("/login")))),
    }
}

/// The routes, under sessions kept in a [`BoundedStore`] of at most `max_sessions`.
pub fn router(app: Shared, max_sessions: usize) -> Router {
    let secure = app.secure;
    Router::new()
        .route("/", get(signin::root))
        .route("/login", get(signin::form).post(signin::submit))
        .route("/logout", post(signin::logout))
        .route("/verify", get(verify::form).post(verify::submit))
        .route("/enroll", get(enroll::form).post(enroll::submit))
        .route("/account", get(account::show))
        .route("/account/backup-code", post(account::reissue))
        .route("/account/locations/revoke", post(account::revoke))
        .route("/admin", get(admin::form).post(admin::submit))
        .route("/mailbox", get(mailbox::show))
        .with_state(app)
        .layer(
            SessionManagerLayer::new(BoundedStore::new(max_sessions, IDLE))
                .with_name(SESSION_COOKIE)
                .with_same_site(SameSite::Lax)
                .with_secure(secure)
                .with_http_only(true)
                .with_path("/"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shed_login_is_503_with_retry_after() {
        let response = AppError::Busy(Duration::from_millis(300)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = response.headers().get(axum::http::header::RETRY_AFTER).expect("Retry-After");
        assert_eq!(retry, "1", "whole seconds, at least one");
        let response = AppError::Busy(Duration::from_secs(7)).into_response();
        assert_eq!(response.headers().get(axum::http::header::RETRY_AFTER).unwrap(), "7");
    }
}
