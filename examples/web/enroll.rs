//! Enrollment: a QR code of the `otpauth://` URI, the secret for manual entry, and a
//! field to confirm one code (2FA turns on only then).
//!
//! These pages also take someone who must enroll before anything else (the policy
//! requires 2FA and they signed in with the password alone): confirming makes theirs a
//! full session, under a new id.

use axum::extract::{Form, State};
use axum::response::Response;
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;
use twofactor::{ConfirmOutcome, Error, TwoFactorState};

use crate::app::{App, MailNow, Result, Shared, check_csrf, enrolling, redirect};
use crate::html::{csrf_field, esc, message};
use crate::session::{Ctx, Login, Shown};

/// The enrollment page (starts an enrollment unless one is on screen already).
pub async fn form(State(app): State<Shared>, mut ctx: Ctx) -> Result {
    let (user, must_enroll) = enrolling(&ctx)?;
    if app.engine.account(user.id).await?.is_some_and(|a| a.two_factor == TwoFactorState::Enabled) {
        if must_enroll {
            // Enrolled elsewhere meanwhile: this session never passed a second factor.
            ctx.end(Some("Two-factor authentication is on. Please sign in again.")).await?;
            return Ok(redirect("/login"));
        }
        return Ok(redirect("/account"));
    }
    let shown = match ctx.data.enrollment.clone() {
        Some(shown) => shown,
        None => {
            let started = app.engine.start_enrollment(user.id).await?;
            let shown =
                Shown { uri: started.uri.expose().to_owned(), secret: started.secret_base32.expose().to_owned() };
            ctx.set(|d| d.enrollment = Some(shown.clone())).await?;
            shown
        }
    };
    Ok(render(&app, &ctx, &shown, ""))
}

/// An inline SVG QR code of the shown `otpauth://` URI, and its secret in groups of
/// four for typing (both HTML, escaped).
pub fn qr_and_secret(shown: &Shown) -> (String, String) {
    let qr = QrCode::new(shown.uri.as_bytes()).map_or_else(
        |_| "<p>(QR code unavailable: enter the key below.)</p>".to_owned(),
        |code| {
            let svg = code.render::<svg::Color<'_>>().min_dimensions(220, 220).quiet_zone(true).build();
            // Drop the XML declaration; the <svg> element is inlined in HTML.
            svg.find("<svg").map_or(svg.clone(), |i| svg[i..].to_owned())
        },
    );
    let grouped: Vec<String> =
        shown.secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    (qr, esc(&grouped.join(" ")))
}

fn render(app: &App, ctx: &Ctx, shown: &Shown, msg: &str) -> Response {
    let (qr, secret) = qr_and_secret(shown);
    let required = if matches!(ctx.data.login, Login::MustEnroll(_)) {
        message("info", "Two-factor authentication is required for your account. Set it up to continue.")
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>Set up two-factor authentication</h1>{required}
<p>1. Scan this QR code with your authentication app (Google Authenticator, Aegis, 1Password…).</p>
<div class="qr" id="qr">{qr}</div>
<p>Can't scan it? Enter this key in the app instead:<br><code class="secret" id="secret">{secret}</code></p>
<p>2. Enter the 6-digit code the app shows to turn two-factor authentication on. We will email you a backup code for when you don't have your device.</p>{msg}
<form method="post" action="/enroll">{csrf}
<label for="code">Verification code</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="10" required autofocus>
<button class="primary" type="submit" id="confirm">Turn on two-factor authentication</button>
</form>"#,
        csrf = csrf_field(&ctx.data),
    );
    app.page(ctx, "Set up two-factor authentication", &body, None)
}

/// The confirm form's fields.
#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    code: String,
}

/// Confirms the enrollment with one code.
pub async fn submit(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<ConfirmForm>) -> Result {
    let (user, must_enroll) = enrolling(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let Some(shown) = ctx.data.enrollment.clone() else {
        return Ok(redirect("/enroll"));
    };
    let outcome = match app.engine.confirm_enrollment(user.id, &f.code).await {
        Err(Error::InvalidInput(_)) => ConfirmOutcome::WrongCode,
        other => other?,
    };
    Ok(match outcome {
        ConfirmOutcome::Confirmed { backup_code_delivery } => {
            // The first backup code was queued with the confirmation: send it now.
            let mail = app.deliver_now(user.id, &backup_code_delivery).await;
            if must_enroll {
                ctx.promote(Login::Full(user)).await?;
            }
            let notice = match mail {
                MailNow::Sent => "Two-factor authentication is on. We emailed you a backup code: keep it safe.",
                MailNow::Delayed => {
                    "Two-factor authentication is on. The email with your backup code is delayed; we keep trying."
                }
                MailNow::Lost => {
                    "Two-factor authentication is on, but we could not email your backup code. \
                     Ask for a new backup code below."
                }
            };
            ctx.set(|d| {
                d.enrollment = None;
                d.notice = Some(notice.to_owned());
            })
            .await?;
            redirect("/account")
        }
        _ => render(&app, &ctx, &shown, &message("error", "That code is not right. Check the app and try again.")),
    })
}
