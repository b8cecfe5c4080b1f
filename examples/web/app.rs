//! The application state, the routes, and the helpers every handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_sessions::SessionManagerLayer;
use tower_sessions::cookie::SameSite;
use twofactor::mail::Delivery;
use twofactor::{MailStatus, UserId};

use crate::html::{Nav, page};
use crate::parts::{DemoEngine, Mailbox};
use crate::session::{Ctx, Login, SESSION_COOKIE, SignedIn};
use crate::store::BoundedStore;
use crate::{account, admin, authenticators, enroll, mailbox, signin, stepup, verify};

/// Sessions idle longer than this are forgotten.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// How long a page waits for the delivery worker's try of a message it claimed first.
const WORKER_TRY_WAIT: Duration = Duration::from_secs(3);

/// Everything the handlers share.
pub struct App {
    /// The two-factor engine (shared with the background `DeliveryWorker`).
    pub engine: Arc<DemoEngine>,
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

    /// Delivers `user`'s due mail now and says how the message `queued` went, so the
    /// page after a *successful* operation can tell at once whether its mail went out
    /// (the request waits for the mail transport). Never call it after a failed
    /// attempt: a wrong password's or code's answer must not wait on mail, or its
    /// timing would tell which usernames exist. All other mail goes out from the
    /// background `DeliveryWorker` (see `main.rs`).
    ///
    /// The worker is woken by the same write that queued the message and may claim it
    /// first; then this waits (at most [`WORKER_TRY_WAIT`]) for the worker's try. A
    /// fault here is a mail problem, not the operation's: its change stands and the
    /// message stays queued.
    pub async fn deliver_now(&self, user: UserId, queued: &Delivery) -> MailNow {
        let Some(id) = queued.queued() else {
            return if queued.is_sent() { MailNow::Sent } else { MailNow::Lost };
        };
        let tried = match self.engine.deliver_queued(user).await {
            Ok(report) => report.delivery_of(id).cloned(),
            Err(e) => {
                eprintln!("error: delivering mail: {e}");
                None
            }
        };
        if tried == Some(Delivery::Sent) {
            return MailNow::Sent;
        }
        let deadline = Instant::now() + WORKER_TRY_WAIT;
        loop {
            match self.engine.mail_status(user, id).await {
                Ok(MailStatus::Delivered { .. }) => return MailNow::Sent,
                // Claimed by the worker (or another server): its try is under way.
                Ok(MailStatus::Queued { .. }) if tried.is_none() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Ok(MailStatus::Queued { .. }) => return MailNow::Delayed,
                // Given up, or replaced by a newer message.
                Ok(_) => return MailNow::Lost,
                Err(e) => {
                    eprintln!("error: reading a mail's status: {e}");
                    return MailNow::Delayed;
                }
            }
        }
    }
}

/// How a message delivered inline ([`App::deliver_now`]) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailNow {
    /// The mail transport accepted it.
    Sent,
    /// Not sent yet: it stays queued, and the delivery worker keeps trying.
    Delayed,
    /// It will not arrive: given up after its last try (or never queued).
    Lost,
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
        .route("/account/authenticators", post(authenticators::add))
        .route("/account/authenticators/new", get(authenticators::shown).post(authenticators::confirm))
        .route("/account/authenticators/remove", get(authenticators::remove_form).post(authenticators::remove))
        .route("/account/two-factor/off", get(stepup::disable_form).post(stepup::disable))
        .route("/account/email", get(stepup::email_form).post(stepup::change_email))
        .route("/account/step-up", post(stepup::step_up))
        .route("/admin", get(admin::form).post(admin::submit))
        .route("/admin/unlock", post(admin::unlock))
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
    use twofactor::mail::{BoxMailer, Mailer, MemoryMailer, Message};
    use twofactor::store::SqliteStore;
    use twofactor::totp::TotpParams;
    use twofactor::{ConfirmOutcome, Engine, KeyRing, MailError, MailId, NewAccount, Policy, Role};

    use super::*;

    /// A mail transport that is down.
    struct Down;

    impl Mailer for Down {
        async fn send(&self, _: MailId, _: &Message) -> std::result::Result<(), MailError> {
            Err(MailError::Unavailable("the mail server is down".to_owned()))
        }
    }

    /// An app over a fresh SQLite file and `mailer`, with alice enrolled (her first
    /// code delivered inline, with the answer); the folder goes when dropped.
    async fn app_with(mailer: BoxMailer, policy: Policy) -> (App, UserId, MailNow, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("twofactor.db")).await.unwrap();
        let engine = Engine::builder(store, mailer, KeyRing::ephemeral().unwrap()).policy(policy).build().unwrap();
        let app = App { engine: Arc::new(engine), mailbox: None, secure: false };
        let alice = NewAccount::new("alice", "alice@example.test", Role::User, "correct horse battery");
        let alice = app.engine.create_account(alice).await.unwrap();
        let started = app.engine.start_enrollment(alice).await.unwrap();
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let code = twofactor::totp::generate(&secret, &TotpParams::default(), now);
        let ConfirmOutcome::Confirmed { backup_code_delivery } =
            app.engine.confirm_enrollment(alice, code.expose()).await.unwrap()
        else {
            panic!("confirmed with the current code")
        };
        let first = app.deliver_now(alice, &backup_code_delivery).await;
        (app, alice, first, dir)
    }

    fn fast() -> twofactor::PolicyBuilder {
        Policy::builder().danger_fast_hashing()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_delivery_says_sent_even_when_the_worker_claims_the_mail_first() {
        let mailer = MemoryMailer::new();
        let (app, alice, first, _dir) = app_with(BoxMailer::new(mailer.clone()), fast().build().unwrap()).await;
        assert_eq!(first, MailNow::Sent);
        // The worker is woken by each write and races the page for the mail.
        let worker = twofactor::DeliveryWorker::spawn(Arc::clone(&app.engine), Duration::from_secs(5)).unwrap();
        for _ in 0..20 {
            let queued = app.engine.reissue_backup_code(alice).await.unwrap();
            assert_eq!(app.deliver_now(alice, &queued).await, MailNow::Sent);
        }
        worker.shutdown().await;
        assert_eq!(mailer.outbox().len(), 21, "each code sent once");
    }

    #[tokio::test]
    async fn a_transport_that_is_down_makes_the_mail_delayed_not_an_error() {
        let (app, alice, first, _dir) = app_with(BoxMailer::new(Down), fast().build().unwrap()).await;
        assert_eq!(first, MailNow::Delayed);
        let queued = app.engine.reissue_backup_code(alice).await.unwrap();
        assert_eq!(app.deliver_now(alice, &queued).await, MailNow::Delayed);
        let status = app.engine.mail_status(alice, queued.queued().unwrap()).await.unwrap();
        assert!(matches!(status, MailStatus::Queued { attempts: 1, .. }), "still queued: {status:?}");
    }

    #[tokio::test]
    async fn a_mail_given_up_is_lost() {
        let policy = fast().delivery(twofactor::DeliveryPolicy::default().max_attempts(1)).build().unwrap();
        let (_app, _alice, first, _dir) = app_with(BoxMailer::new(Down), policy).await;
        assert_eq!(first, MailNow::Lost);
    }

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
