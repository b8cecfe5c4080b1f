//! The sign-in page (username and password) and signing out.
//!
//! The sign-in form's CSRF token is a double-submit token: the same random value in an
//! HttpOnly, SameSite=Lax cookie and in the form, compared on submit. So showing the
//! form stores no session (an anonymous visitor could otherwise fill the session store
//! with GETs), while a cross-site POST, which carries no SameSite=Lax cookie, is refused.

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use axum::response::Response;
use serde::Deserialize;
use twofactor::{Authenticated, Error, LoginOutcome};

use crate::app::{App, AppError, Result, Shared, check_csrf, take_notice};
use crate::html::{esc, message};
use crate::session::{Ctx, LOCATION_COOKIE, LOGIN_CSRF_COOKIE, Login, SignedIn, cookie, is_token, same_token, token};

/// `/`: the account page when signed in, the enrollment page when that comes first,
/// else the sign-in page.
pub async fn root(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let ctx = app.sessions.open(&headers);
    let to = match ctx.data.login {
        Login::Full(_) => "/account",
        Login::MustEnroll(_) => "/enroll",
        Login::Anonymous => "/login",
    };
    app.redirect(ctx, to)
}

/// The sign-in form (with a new CSRF cookie unless the browser has one).
pub async fn form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let mut ctx = app.sessions.open(&headers);
    let notice = take_notice(&mut ctx);
    let (csrf, fresh) = match cookie(&headers, LOGIN_CSRF_COOKIE) {
        Some(csrf) if is_token(&csrf) => (csrf, false),
        _ => (token(), true),
    };
    let mut response = render(&app, ctx, &csrf, "", &notice);
    if fresh {
        response.headers_mut().append(SET_COOKIE, app.sessions.cookie(LOGIN_CSRF_COOKIE, &csrf, None));
    }
    response
}

/// Whether the form's token matches the browser's sign-in CSRF cookie.
fn login_csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|csrf| is_token(&csrf) && same_token(&csrf, given))
}

fn render(app: &App, ctx: Ctx, csrf: &str, username: &str, msg: &str) -> Response {
    let body = format!(
        r#"<h1>Sign in</h1>{msg}
<form method="post" action="/login"><input type="hidden" name="csrf" value="{csrf}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{user}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button class="primary" type="submit">Sign in</button>
</form>"#,
        csrf = esc(csrf),
        user = esc(username),
    );
    app.page(ctx, "Sign in", &body, None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    username: String,
    password: String,
}

/// The password step.
pub async fn submit(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<SignInForm>) -> Result {
    if !login_csrf_ok(&headers, &f.csrf) {
        return Err(AppError::Csrf);
    }
    let mut ctx = app.sessions.open(&headers);
    let remembered = cookie(&headers, LOCATION_COOKIE);
    let outcome = match app.engine.begin_login(&f.username, &f.password, remembered.as_deref()).await {
        Err(Error::InvalidInput(_)) => LoginOutcome::Denied,
        other => other?,
    };
    Ok(match outcome {
        LoginOutcome::Authenticated(auth) => {
            sign_in(&app, &mut ctx, auth);
            app.redirect(ctx, "/account")
        }
        LoginOutcome::EnrollmentRequired(auth) => {
            // The password alone, under a policy that requires 2FA: enrollment only.
            promote(&app, &mut ctx, Login::MustEnroll(signed(auth)));
            app.redirect(ctx, "/enroll")
        }
        LoginOutcome::SecondFactorRequired(pending) => {
            promote(&app, &mut ctx, Login::Anonymous);
            ctx.data.pending = Some(twofactor::SecretString::from(pending.token()));
            app.redirect(ctx, "/verify")
        }
        LoginOutcome::Busy { retry_after } => return Err(AppError::Busy(retry_after)),
        _ => render(&app, ctx, &f.csrf, &f.username, &message("error", "Wrong username or password.")),
    })
}

/// Completes a login: new session id, the user fully signed in, no pending login.
pub fn sign_in(app: &App, ctx: &mut Ctx, auth: Authenticated) {
    promote(app, ctx, Login::Full(signed(auth)));
}

/// Moves the session to `login` under a new id, dropping any pending login or
/// enrollment of the old state.
pub fn promote(app: &App, ctx: &mut Ctx, login: Login) {
    app.sessions.rotate(ctx);
    ctx.data.pending = None;
    ctx.data.enrollment = None;
    ctx.data.login = login;
}

fn signed(auth: Authenticated) -> SignedIn {
    SignedIn { id: auth.account, username: auth.username, role: auth.role }
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Ends the session.
pub async fn logout(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Result {
    let mut ctx = app.sessions.open(&headers);
    check_csrf(&ctx, &f.csrf)?;
    app.sessions.end(&mut ctx);
    ctx.data.notice = Some("You are signed out.".to_owned());
    Ok(app.redirect(ctx, "/login"))
}
