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
use twofactor::{Authenticated, LoginOutcome};

use crate::app::{App, AppError, Result, Shared, check_csrf, redirect};
use crate::html::{esc, message};
use crate::session::{Ctx, LOCATION_COOKIE, LOGIN_CSRF_COOKIE, Login, SignedIn, is_token, same_token, token};

/// `/`: the account page when signed in, the enrollment page when that comes first,
/// else the sign-in page.
pub async fn root(ctx: Ctx) -> Response {
    redirect(match ctx.data.login {
        Login::Full(_) => "/account",
        Login::MustEnroll(_) => "/enroll",
        Login::Anonymous => "/login",
    })
}

/// The sign-in form (with a new CSRF cookie unless the browser has one).
pub async fn form(State(app): State<Shared>, mut ctx: Ctx, headers: HeaderMap) -> Result {
    let notice = ctx.take_notice().await?;
    let (csrf, fresh) = match cookie(&headers, LOGIN_CSRF_COOKIE) {
        Some(csrf) if is_token(&csrf) => (csrf, false),
        _ => (token(), true),
    };
    let mut response = render(&app, &ctx, &csrf, "", &notice);
    if fresh {
        response.headers_mut().append(SET_COOKIE, app.cookie(LOGIN_CSRF_COOKIE, &csrf, None));
    }
    Ok(response)
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let pairs = headers.get_all(axum::http::header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    pairs
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether the form's token matches the browser's sign-in CSRF cookie.
fn login_csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|csrf| is_token(&csrf) && same_token(&csrf, given))
}

fn render(app: &App, ctx: &Ctx, csrf: &str, username: &str, msg: &str) -> Response {
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
pub async fn submit(State(app): State<Shared>, mut ctx: Ctx, headers: HeaderMap, Form(f): Form<SignInForm>) -> Result {
    if !login_csrf_ok(&headers, &f.csrf) {
        return Err(AppError::Csrf);
    }
    let remembered = cookie(&headers, LOCATION_COOKIE);
    // A typo is an outcome (`Denied`), never an `Err`: an error here is a fault.
    let outcome = app.engine.begin_login(&f.username, &f.password, remembered.as_deref()).await?;
    Ok(match outcome {
        LoginOutcome::Authenticated(auth) => {
            ctx.promote(Login::Full(signed(auth))).await?;
            redirect("/account")
        }
        LoginOutcome::EnrollmentRequired(auth) => {
            // The password alone, under a policy that requires 2FA: enrollment only.
            ctx.promote(Login::MustEnroll(signed(auth))).await?;
            redirect("/enroll")
        }
        LoginOutcome::SecondFactorRequired(pending) => {
            ctx.promote(Login::Anonymous).await?;
            ctx.set(|d| d.pending = Some(pending.token().to_owned())).await?;
            redirect("/verify")
        }
        LoginOutcome::Busy { retry_after } => return Err(AppError::Busy(retry_after)),
        _ => render(&app, &ctx, &f.csrf, &f.username, &message("error", "Wrong username or password.")),
    })
}

/// Who an engine outcome says signed in.
pub fn signed(auth: Authenticated) -> SignedIn {
    SignedIn { id: auth.account, username: auth.username, role: auth.role }
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Ends the session.
pub async fn logout(mut ctx: Ctx, Form(f): Form<CsrfOnly>) -> Result {
    check_csrf(&ctx, &f.csrf)?;
    ctx.end(Some("You are signed out.")).await?;
    Ok(redirect("/login"))
}
