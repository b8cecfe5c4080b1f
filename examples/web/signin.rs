//! The sign-in page (username and password) and signing out.

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use twofactor::{Authenticated, Error, LoginOutcome};

use crate::app::{App, Result, Shared, check_csrf, take_notice};
use crate::html::{csrf_field, esc, message};
use crate::session::{Ctx, LOCATION_COOKIE, SignedIn, cookie};

/// `/`: the account page when signed in, else the sign-in page.
pub async fn root(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let ctx = app.sessions.open(&headers);
    let to = if ctx.data.user.is_some() { "/account" } else { "/login" };
    app.redirect(ctx, to)
}

/// The sign-in form.
pub async fn form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let mut ctx = app.sessions.open(&headers);
    let notice = take_notice(&mut ctx);
    render(&app, ctx, "", &notice)
}

fn render(app: &App, ctx: Ctx, username: &str, msg: &str) -> Response {
    let body = format!(
        r#"<h1>Sign in</h1>{msg}
<form method="post" action="/login">{csrf}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{user}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button class="primary" type="submit">Sign in</button>
</form>"#,
        csrf = csrf_field(&ctx.data),
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
    let mut ctx = app.sessions.open(&headers);
    check_csrf(&ctx, &f.csrf)?;
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
            sign_in(&app, &mut ctx, auth);
            app.redirect(ctx, "/enroll")
        }
        LoginOutcome::SecondFactorRequired(pending) => {
            app.sessions.rotate(&mut ctx);
            ctx.data.user = None;
            ctx.data.pending = Some(twofactor::SecretString::from(pending.token()));
            app.redirect(ctx, "/verify")
        }
        _ => render(&app, ctx, &f.username, &message("error", "Wrong username or password.")),
    })
}

/// Completes a login: new session id, the user in the session, no pending login.
pub fn sign_in(app: &App, ctx: &mut Ctx, auth: Authenticated) {
    app.sessions.rotate(ctx);
    ctx.data.pending = None;
    ctx.data.enrollment = None;
    ctx.data.user = Some(SignedIn { id: auth.account, username: auth.username, role: auth.role });
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
