//! The account page: the email (changed behind a step-up prompt, see `stepup`), 2FA
//! status, the authenticators (add, remove: see `authenticators`), turning 2FA off,
//! remembered locations (with revoke), and reissue of the backup code (also the way
//! out after a failed backup-code mail).

use axum::extract::{Form, State};
use serde::Deserialize;
use twofactor::{Error, Refusal, TwoFactorState};

use crate::app::{App, MailNow, Result, Shared, check_csrf, redirect, signed_in};
use crate::html::{csrf_field, esc, when};
use crate::session::{Ctx, SignedIn};

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
            let authenticators = authenticators(&app, &user, &csrf).await?;
            let off = if app.engine.policy().requires_two_factor() {
                r#"<p class="muted" id="tf-required">Two-factor authentication is required for every account here, so it cannot be turned off.</p>"#
            } else {
                r#"<p><a href="/account/two-factor/off" id="disable-link">Turn off two-factor authentication</a></p>"#
            };
            format!(
                r#"<p id="tf-status">Two-factor authentication is <strong>on</strong>.</p>{warning}
<h3>Authenticators</h3>
<p class="muted">A code from any of these signs you in.</p>{authenticators}
<h3>Backup code</h3>
<form method="post" action="/account/backup-code">{csrf}
<p class="muted">Lost the mail with your backup code? A new code replaces the old one at once.</p>
<button class="secondary" type="submit" id="reissue">Email me a new backup code</button></form>
{off}"#
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
<p>Signed in as <strong id="whoami">{name}</strong> ({role}, <span id="email">{email}</span>). <a href="/account/email" id="email-link">Change email</a></p>
<h2>Two-factor authentication</h2>{two_factor}
<h2>Remembered locations</h2>
<p class="muted">These browsers skip the verification code when you sign in.</p>{locations}"#,
        name = esc(&view.username),
        role = view.role,
        email = esc(&view.email),
    );
    Ok(app.page_sized(&ctx, "Your account", &body, None, true))
}

/// The authenticators table (each with a Remove button, or why the last one stays)
/// and the form that adds one.
async fn authenticators(app: &App, user: &SignedIn, csrf: &str) -> Result<String> {
    let all = app.engine.authenticators(user.id).await?;
    let rows: String = all
        .iter()
        .map(|a| {
            let remove = if all.len() < 2 {
                String::new()
            } else {
                format!(
                    r#"<form method="get" action="/account/authenticators/remove"><input type="hidden" name="id" value="{id}">
<button class="secondary remove" type="submit">Remove</button></form>"#,
                    id = esc(&a.id),
                )
            };
            format!(
                r#"<tr><td class="label">{name}</td><td>{added}</td><td>{used}</td><td>{remove}</td></tr>"#,
                name = esc(&a.name),
                added = when(a.added_at),
                used = a.last_used_at.map_or_else(|| "unknown".to_owned(), when),
            )
        })
        .collect();
    let last = if all.len() < 2 {
        format!(r#"<p class="muted" id="last-authenticator">{}</p>"#, esc(crate::authenticators::LAST))
    } else {
        String::new()
    };
    Ok(format!(
        r#"<table id="authenticators"><tr><th>Name</th><th>Added</th><th>Last used</th><th></th></tr>{rows}</table>{last}
<form method="post" action="/account/authenticators">{csrf}
<label for="authenticator_name">Add an authenticator (a tablet beside your phone, say)</label>
<input type="text" id="authenticator_name" name="name" maxlength="64" placeholder="Name, e.g. Tablet" required>
<button class="secondary" type="submit" id="add-authenticator">Add an authenticator</button></form>"#
    ))
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
