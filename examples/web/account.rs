//! The account page: 2FA status, remembered locations (with revoke), and reissue of
//! the backup code (also the way out after a failed backup-code mail).

use axum::extract::{Form, State};
use serde::Deserialize;
use twofactor::{Error, Refusal, TwoFactorState};

use crate::app::{MailNow, Result, Shared, check_csrf, redirect, signed_in};
use crate::html::{csrf_field, esc, when};
use crate::session::Ctx;

/// The account page.
pub async fn show(State(app): State<Shared>, mut ctx: Ctx) -> Result {
    let user = signed_in(&ctx)?;
    let Some(view) = app.engine.account(user.id).await? else {
        ctx.end(None).await?;
        return Ok(redirect("/login"));
    };
    let notice = ctx.take_notice().await?;
    let csrf = csrf_field(&ctx.data);
    let two_factor = match view.two_factor {
        TwoFactorState::Enabled => {
            let warning = if view.backup_codes == 0 {
                r#"<p class="msg error">You have no valid backup code. Ask for a new one.</p>"#
            } else {
                ""
            };
            format!(
                r#"<p id="tf-status">Two-factor authentication is <strong>on</strong>.</p>{warning}
<form method="post" action="/account/backup-code">{csrf}
<p class="muted">Lost the mail with your backup code? A new code replaces the old one at once.</p>
<button class="secondary" type="submit" id="reissue">Email me a new backup code</button></form>"#
            )
        }
        _ => r#"<p id="tf-status">Two-factor authentication is <strong>off</strong>.</p>
<p><a href="/enroll" id="enroll-link">Set up two-factor authentication</a></p>"#
            .to_owned(),
    };
    let locations = app.engine.remembered_locations(user.id).await?;
    let rows: String = locations
        .iter()
        .map(|l| {
            format!(
                r#"<tr><td class="label">{label}</td><td>{created}</td><td>{used}</td><td>{expires}</td><td>
<form method="post" action="/account/locations/revoke">{csrf}<input type="hidden" name="location" value="{id}">
<button class="secondary revoke" type="submit">Revoke</button></form></td></tr>"#,
                label = esc(&l.label),
                created = when(l.created_at),
                used = when(l.last_used_at),
                expires = when(l.expires_at),
                id = esc(&l.id),
            )
        })
        .collect();
    let locations = if rows.is_empty() {
        r#"<p class="muted" id="no-locations">No remembered locations.</p>"#.to_owned()
    } else {
        format!(
            r#"<table id="locations"><tr><th>Location</th><th>Remembered</th><th>Last used</th><th>Expires</th><th></th></tr>{rows}</table>"#
        )
    };
    let body = format!(
        r#"<h1>Your account</h1>{notice}
<p>Signed in as <strong id="whoami">{name}</strong> ({role}, {email}).</p>
<h2>Two-factor authentication</h2>{two_factor}
<h2>Remembered locations</h2>
<p class="muted">These browsers skip the verification code when you sign in.</p>{locations}"#,
        name = esc(&view.username),
        role = view.role,
        email = esc(&view.email),
    );
    Ok(app.page_sized(&ctx, "Your account", &body, None, true))
}

/// The reissue form's fields.
#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Mails a fresh backup code; the old one stops working.
pub async fn reissue(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<CsrfOnly>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let notice = match app.engine.reissue_backup_code(user.id).await {
        // Queued with the new code: sent now, to say at once whether it went out.
        Ok(queued) => match app.deliver_now(user.id, &queued).await {
            MailNow::Sent => "We emailed you a new backup code. The previous one no longer works.",
            MailNow::Delayed => {
                "The email with your new backup code is delayed; we keep trying. The previous one no longer works."
            }
            MailNow::Lost => "We could not email your new backup code. Please try again in a moment.",
        },
        Err(Error::Misuse(Refusal::TwoFactorNotActive)) => {
            "Two-factor authentication is not on, so there is no backup code."
        }
        Err(e) => return Err(e.into()),
    };
    ctx.set(|d| d.notice = Some(notice.to_owned())).await?;
    Ok(redirect("/account"))
}

/// The revoke form's fields.
#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    location: String,
}

/// Forgets one remembered location.
pub async fn revoke(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<RevokeForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let notice = match app.engine.revoke_location(user.id, &f.location).await {
        Ok(true) => "That location will need the verification code again.",
        Ok(false) | Err(Error::InvalidInput(_)) => "That location was already forgotten.",
        Err(e) => return Err(e.into()),
    };
    ctx.set(|d| d.notice = Some(notice.to_owned())).await?;
    Ok(redirect("/account"))
}
