//! The application state, the routes, and the helpers every handler shares.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::html::{Nav, page};
use crate::parts::{DemoEngine, Mailbox};
use crate::session::{Ctx, Login, Sessions, SignedIn};
use crate::{account, admin, enroll, mailbox, signin, verify};

/// Everything the handlers share.
pub struct App {
    /// The two-factor engine.
    pub engine: DemoEngine,
    /// The sessions.
    pub sessions: Sessions,
    /// The demo mailbox, when enabled.
    pub mailbox: Option<Mailbox>,
}

/// The state handlers receive.
pub type Shared = Arc<App>;

impl App {
    /// The app over these sessions; `show_mailbox` in development.
    pub fn new(engine: DemoEngine, mailbox: Mailbox, sessions: Sessions, show_mailbox: bool) -> App {
        App { engine, sessions, mailbox: show_mailbox.then_some(mailbox) }
    }

    /// Renders a page and stores the session.
    pub fn page(&self, ctx: Ctx, title: &str, body: &str, script: Option<&str>) -> Response {
        self.page_sized(ctx, title, body, script, false)
    }

    /// Like [`page`](Self::page), on a wider card.
    pub fn page_sized(&self, ctx: Ctx, title: &str, body: &str, script: Option<&str>, wide: bool) -> Response {
        let nav = Nav { session: &ctx.data, mailbox: self.mailbox.is_some() };
        let response = page(&nav, title, body, script, wide);
        self.sessions.finish(ctx, response)
    }

    /// Redirects (303) and stores the session.
    pub fn redirect(&self, ctx: Ctx, to: &'static str) -> Response {
        self.sessions.finish(ctx, redirect(to))
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
    /// An engine fault (store, mail transport, misuse).
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
    if ctx.data.csrf_ok(given) { Ok(()) } else { Err(AppError::Csrf) }
}

/// The fully signed-in user; else a redirect to the enrollment page (for someone who
/// must enroll first) or to the sign-in page.
pub fn signed_in(app: &App, ctx: Ctx) -> Result<(SignedIn, Ctx)> {
    match ctx.data.login.clone() {
        Login::Full(user) => Ok((user, ctx)),
        Login::MustEnroll(_) => Err(AppError::Respond(Box::new(app.redirect(ctx, "/enroll")))),
        Login::Anonymous => Err(AppError::Respond(Box::new(app.redirect(ctx, "/login")))),
    }
}

/// For the enrollment pages only: the signed-in user, or one who must enroll before
/// anything else (`true`); else a redirect to the sign-in page.
pub fn enrolling(app: &App, ctx: Ctx) -> Result<(SignedIn, bool, Ctx)> {
    match ctx.data.login.clone() {
        Login::Full(user) => Ok((user, false, ctx)),
        Login::MustEnroll(user) => Ok((user, true, ctx)),
        Login::Anonymous => Err(AppError::Respond(Box::new(app.redirect(ctx, "/login")))),
    }
}

/// Takes the one-time notice of the session, rendered as an info box.
pub fn take_notice(ctx: &mut Ctx) -> String {
    ctx.data.notice.take().map_or(String::new(), |n| crate::html::message("info", &n))
}

/// The routes.
pub fn router(app: Shared) -> Router {
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
}
