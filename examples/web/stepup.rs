//! What needs a fresh second factor from a user who is already signed in: turning 2FA
//! off, and changing the email behind a step-up prompt.
//!
//! The step-up (`Engine::step_up`) checks a code from any authenticator, or the backup
//! code, under the login's rules (single use, the shared failure budget), and starts no
//! new session: the session only notes when it passed ([`FRESH_FOR`] keeps it good for
//! five minutes), and the email form takes a change only while that is fresh. An
//! account without 2FA has no code to give: its step-up asks for the password instead.
//!
//! The demo keeps its users in `SqliteStore`'s own table, so the new address goes there
//! (`parts::set_email`); the engine reads the email at every call, so the next mail
//! goes to it. An application with a users table of its own updates that instead.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::response::Response;
use serde::Deserialize;
use twofactor::{AccountView, Error, LoginOutcome, Refusal, SecondFactor, StepUpOutcome, TwoFactorState};

use crate::app::{App, AppError, MailNow, Result, Shared, check_csrf, redirect, signed_in};
use crate::html::{csrf_field, esc, message, when};
use crate::session::{Ctx, SignedIn};

/// How long a passed step-up lets the sensitive actions through.
pub const FRESH_FOR: u64 = 5 * 60;

/// Now, in Unix seconds.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether the session passed a step-up within [`FRESH_FOR`].
pub fn is_fresh(ctx: &Ctx) -> bool {
    ctx.data.stepped_up_at.is_some_and(|at| now().saturating_sub(at) < FRESH_FOR)
}

/// What the user typed in a "code from your authenticator app, or your backup code"
/// field: up to 8 digits (spaces ignored) is an authenticator code, anything else a
/// backup code.
pub enum Fresh {
    /// An authenticator code, without spaces.
    Totp(String),
    /// A backup code, trimmed.
    Backup(String),
}

impl Fresh {
    /// Reads the field.
    pub fn read(input: &str) -> Fresh {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.is_empty() && digits.len() <= 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Fresh::Totp(digits)
        } else {
            Fresh::Backup(input.trim().to_owned())
        }
    }

    /// The engine's form of it.
    pub fn factor(&self) -> SecondFactor<'_> {
        match self {
            Fresh::Totp(code) => SecondFactor::Totp(code),
            Fresh::Backup(code) => SecondFactor::BackupCode(code),
        }
    }
}

/// The field a fresh-factor form asks with (`id="code"`, `name="code"`).
pub fn code_field(label: &str) -> String {
    format!(
        r#"<label for="code">{label}</label>
<input type="text" id="code" name="code" autocomplete="one-time-code" maxlength="40" required autofocus>
<p class="muted">A 6-digit code, or a backup code (XXXX-XXXX-XXXX-XXXX). Each works once.</p>"#,
        label = esc(label),
    )
}

/// What to tell a user whose fresh factor was not accepted (`wrong` for a wrong code).
pub fn refused(outcome: &StepUpOutcome, wrong: &str) -> String {
    match outcome {
        StepUpOutcome::Throttled { until } => {
            format!("Too many wrong codes. Please try again after {}.", when(*until))
        }
        StepUpOutcome::Locked => {
            "Too many wrong codes: your second factor is locked. Ask your administrator to unlock it.".to_owned()
        }
        _ => wrong.to_owned(),
    }
}

/// What to add after a backup code was used and its replacement mailed inline.
pub fn new_code_text(mail: MailNow) -> &'static str {
    match mail {
        MailNow::Sent => "We emailed you a new backup code; the one you used no longer works.",
        MailNow::Delayed => "The email with your new backup code is delayed; we keep trying.",
        MailNow::Lost => "We could not email your new backup code: ask for a new one below.",
    }
}

/// Sends the replacement of a backup code a fresh factor used, and says how it went.
pub async fn new_code_sent(app: &App, user: &SignedIn, outcome: &StepUpOutcome) -> Option<&'static str> {
    match outcome {
        StepUpOutcome::Verified { backup_code_delivery: Some(queued), .. } => {
            Some(new_code_text(app.deliver_now(user.id, queued).await))
        }
        _ => None,
    }
}

/// The signed-in user's account, or the sign-in page when it is gone.
async fn view(app: &App, ctx: &mut Ctx, user: &SignedIn) -> Result<AccountView> {
    match app.engine.account(user.id).await? {
        Some(view) => Ok(view),
        None => {
            ctx.end(None).await?;
            Err(AppError::Respond(Box::new(redirect("/login"))))
        }
    }
}

// ---- Turning two-factor authentication off ----

const REQUIRED: &str = "Two-factor authentication is required for every account here, so it cannot be turned off.";

/// The page that turns 2FA off, asking for a fresh code.
pub async fn disable_form(State(app): State<Shared>, mut ctx: Ctx) -> Result {
    let user = signed_in(&ctx)?;
    if view(&app, &mut ctx, &user).await?.two_factor != TwoFactorState::Enabled {
        return Ok(redirect("/account"));
    }
    Ok(render_disable(&app, &ctx, ""))
}

fn render_disable(app: &App, ctx: &Ctx, msg: &str) -> Response {
    let form = if app.engine.policy().requires_two_factor() {
        format!(r#"<p class="msg error" role="status" id="tf-required">{}</p>"#, esc(REQUIRED))
    } else {
        format!(
            r#"{msg}<form method="post" action="/account/two-factor/off">{csrf}
{field}
<button class="primary danger" type="submit" id="disable">Turn off two-factor authentication</button>
</form>"#,
            csrf = csrf_field(&ctx.data),
            field = code_field("Code from your authenticator app, or your backup code"),
        )
    };
    let body = format!(
        r#"<h1>Turn off two-factor authentication</h1>
<p>Your password alone will sign you in. Your authenticators, your backup code and your remembered locations stop working, and we email you that it happened. You can turn it on again at any time.</p>
{form}
<p><a href="/account">Keep it on</a></p>"#
    );
    app.page(ctx, "Turn off two-factor authentication", &body, None)
}

/// The code form's fields.
#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

/// Turns 2FA off after a fresh code; refused under a policy that requires it.
pub async fn disable(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<CodeForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let fresh = Fresh::read(&f.code);
    let outcome = match app.engine.disable_two_factor(user.id, fresh.factor()).await {
        // The page says why; the engine refused before looking at the code.
        Err(Error::Misuse(Refusal::TwoFactorRequired)) => return Ok(render_disable(&app, &ctx, "")),
        Err(Error::Misuse(Refusal::TwoFactorNotActive)) => {
            ctx.set(|d| d.notice = Some("Two-factor authentication is already off.".to_owned())).await?;
            return Ok(redirect("/account"));
        }
        other => other?,
    };
    if !outcome.is_verified() {
        let text = refused(&outcome, "That code is not right. Check your authenticator app and try again.");
        return Ok(render_disable(&app, &ctx, &message("error", &text)));
    }
    // The backup code went with the rest (no new one is mailed); the notice goes out
    // from the delivery worker.
    ctx.set(|d| {
        d.stepped_up_at = None;
        d.notice = Some(
            "Two-factor authentication is off: your password alone signs you in now. \
             We are emailing you a notice."
                .to_owned(),
        );
    })
    .await?;
    Ok(redirect("/account"))
}

// ---- Changing the email, behind a step-up prompt ----

/// The email page: the step-up prompt, or the new-email form while a step-up is fresh.
pub async fn email_form(State(app): State<Shared>, mut ctx: Ctx) -> Result {
    let user = signed_in(&ctx)?;
    let view = view(&app, &mut ctx, &user).await?;
    Ok(if is_fresh(&ctx) { render_email(&app, &ctx, &view, "", "") } else { render_prompt(&app, &ctx, &view, "") })
}

fn current(view: &AccountView) -> String {
    format!(r#"<p>Your email address is <strong id="current-email">{}</strong>.</p>"#, esc(&view.email))
}

/// The step-up prompt: a code (or, without 2FA, the password).
fn render_prompt(app: &App, ctx: &Ctx, view: &AccountView, msg: &str) -> Response {
    let (why, field) = if view.two_factor == TwoFactorState::Enabled {
        (
            "first confirm it's you with a code from any of your authenticators, or your backup code",
            code_field("Code from your authenticator app, or your backup code"),
        )
    } else {
        (
            "first confirm it's you with your password",
            r#"<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required autofocus>"#
                .to_owned(),
        )
    };
    let body = format!(
        r#"<h1>Change your email</h1>{current}
<p class="help" id="step-up-help">Your email address is where your backup codes and security notices go, so changing it is a sensitive action: {why}. It stays confirmed for {minutes} minutes.</p>{msg}
<form method="post" action="/account/step-up">{csrf}
{field}
<button class="primary" type="submit" id="step-up">Confirm it's me</button>
</form>
<p><a href="/account">Back to your account</a></p>"#,
        current = current(view),
        minutes = FRESH_FOR / 60,
        csrf = csrf_field(&ctx.data),
    );
    app.page(ctx, "Change your email", &body, None)
}

/// The new-email form (only while a step-up is fresh).
fn render_email(app: &App, ctx: &Ctx, view: &AccountView, email: &str, msg: &str) -> Response {
    let body = format!(
        r#"<h1>Change your email</h1>{current}{msg}
<form method="post" action="/account/email">{csrf}
<label for="email">New email address</label>
<input type="email" id="email" name="email" value="{email}" autocomplete="email" maxlength="254" required autofocus>
<button class="primary" type="submit" id="change-email">Change email</button>
</form>
<p class="muted">You confirmed it's you; that lasts {minutes} minutes.</p>
<p><a href="/account">Back to your account</a></p>"#,
        current = current(view),
        email = esc(email),
        minutes = FRESH_FOR / 60,
        csrf = csrf_field(&ctx.data),
    );
    app.page(ctx, "Change your email", &body, None)
}

/// The step-up form's fields: a code, or (without 2FA) the password.
#[derive(Deserialize)]
pub struct StepUpForm {
    csrf: String,
    code: Option<String>,
    password: Option<String>,
}

/// The step-up check: on success the session notes when, and the email form opens.
pub async fn step_up(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<StepUpForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let view = view(&app, &mut ctx, &user).await?;
    if view.two_factor != TwoFactorState::Enabled {
        return password_step_up(&app, ctx, &user, &view, f.password.as_deref()).await;
    }
    let Some(code) = f.code.as_deref() else {
        return Ok(render_prompt(&app, &ctx, &view, &message("error", "Enter a code to confirm it's you.")));
    };
    let fresh = Fresh::read(code);
    let outcome = match app.engine.step_up(user.id, fresh.factor()).await {
        // Turned off meanwhile: the prompt asks for the password instead.
        Err(Error::Misuse(Refusal::TwoFactorNotActive)) => {
            let view = self::view(&app, &mut ctx, &user).await?;
            return Ok(render_prompt(&app, &ctx, &view, ""));
        }
        other => other?,
    };
    if !outcome.is_verified() {
        let text = refused(&outcome, "That code is not right. Check your authenticator app and try again.");
        return Ok(render_prompt(&app, &ctx, &view, &message("error", &text)));
    }
    let new_code = new_code_sent(&app, &user, &outcome).await;
    ctx.set(|d| {
        d.stepped_up_at = Some(now());
        d.notice = new_code.map(str::to_owned);
    })
    .await?;
    Ok(redirect("/account/email"))
}

/// The step-up of an account without 2FA: its password, checked as at sign-in (the
/// same throttle counts a wrong one).
async fn password_step_up(
    app: &App,
    mut ctx: Ctx,
    user: &SignedIn,
    view: &AccountView,
    password: Option<&str>,
) -> Result {
    let Some(password) = password else {
        return Ok(render_prompt(app, &ctx, view, &message("error", "Enter your password to confirm it's you.")));
    };
    let confirmed = match app.engine.begin_login(&user.username, password, None).await? {
        LoginOutcome::Authenticated(auth) | LoginOutcome::EnrollmentRequired(auth) => auth.account == user.id,
        // Turned on meanwhile: the password is not enough any more.
        LoginOutcome::SecondFactorRequired(_) => {
            let view = self::view(app, &mut ctx, user).await?;
            return Ok(render_prompt(app, &ctx, &view, ""));
        }
        LoginOutcome::Busy { retry_after } => return Err(AppError::Busy(retry_after)),
        _ => false,
    };
    if !confirmed {
        return Ok(render_prompt(app, &ctx, view, &message("error", "That password is not right.")));
    }
    ctx.set(|d| d.stepped_up_at = Some(now())).await?;
    Ok(redirect("/account/email"))
}

/// The new-email form's fields.
#[derive(Deserialize)]
pub struct EmailForm {
    csrf: String,
    email: String,
}

/// Changes the email, if a step-up is fresh.
pub async fn change_email(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<EmailForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let view = view(&app, &mut ctx, &user).await?;
    if !is_fresh(&ctx) {
        let text = format!(
            "Please confirm it's you first: changing your email needs a confirmation from the last {} minutes.",
            FRESH_FOR / 60
        );
        return Ok(render_prompt(&app, &ctx, &view, &message("error", &text)));
    }
    let email = f.email.trim();
    if let Err(why) = check_email(email) {
        return Ok(render_email(&app, &ctx, &view, email, &message("error", why)));
    }
    if !crate::parts::set_email(app.engine.store(), user.id, email).await.map_err(Error::from)? {
        ctx.end(None).await?;
        return Ok(redirect("/login"));
    }
    let text = format!("Your email address is now {email}. Backup codes and security notices go there from now on.");
    ctx.set(|d| d.notice = Some(text)).await?;
    Ok(redirect("/account"))
}

/// An address the mail composer can send to, or why not.
fn check_email(email: &str) -> std::result::Result<(), &'static str> {
    let shaped = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if shaped && email.parse::<lettre::Address>().is_ok() {
        Ok(())
    } else {
        Err("That does not look like an email address (name@example.com).")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_an_authenticator_code_and_anything_else_a_backup_code() {
        assert!(matches!(Fresh::read(" 123 456 "), Fresh::Totp(c) if c == "123456"));
        assert!(matches!(Fresh::read("12345678"), Fresh::Totp(c) if c == "12345678"));
        assert!(matches!(Fresh::read(" K7QX-M2PD-9WRT-H4NB "), Fresh::Backup(c) if c == "K7QX-M2PD-9WRT-H4NB"));
        assert!(matches!(Fresh::read("1234567890123456"), Fresh::Backup(_)), "too long for a TOTP code");
        assert!(matches!(Fresh::read(""), Fresh::Backup(_)));
    }

    #[test]
    fn only_sendable_addresses_are_taken() {
        assert!(check_email("alice@example.org").is_ok());
        for bad in ["", "alice", "alice@", "@example.org", "alice@localhost", "a b@example.org", "<a@example.org>"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
