//! Several authenticators: adding one (a name, then its QR code and secret, and one
//! code from it to confirm), and removing one after a fresh code from *another*
//! authenticator or the backup code, so a stolen phone alone cannot remove the others.
//! The last one cannot be removed: turning 2FA off removes it.

use axum::extract::{Form, Query, State};
use axum::response::Response;
use serde::Deserialize;
use twofactor::{AddAuthenticatorOutcome, AuthenticatorInfo, Error, Refusal};

use crate::app::{App, MailNow, Result, Shared, check_csrf, redirect, signed_in};
use crate::enroll::qr_and_secret;
use crate::html::{csrf_field, esc, message, when};
use crate::session::{Adding, Ctx, Shown};
use crate::stepup::{Fresh, code_field, new_code_sent, refused};

/// Why the last authenticator stays (`id="last-authenticator"` wherever it is shown).
pub const LAST: &str = "This is your only authenticator, so it cannot be removed: add another one first, \
                        or turn two-factor authentication off.";

/// The add form's fields.
#[derive(Deserialize)]
pub struct AddForm {
    csrf: String,
    name: String,
}

/// Starts adding an authenticator named as the user said; its QR code is shown next.
pub async fn add(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<AddForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let notice = match app.engine.add_authenticator(user.id, &f.name).await {
        Ok(started) => {
            let shown =
                Shown { uri: started.uri.expose().to_owned(), secret: started.secret_base32.expose().to_owned() };
            let adding = Adding { name: f.name.trim().to_owned(), shown };
            ctx.set(|d| d.adding = Some(adding)).await?;
            return Ok(redirect("/account/authenticators/new"));
        }
        Err(Error::InvalidInput(_)) => "Please give the new authenticator a name: one line, at most 64 characters.",
        Err(Error::Misuse(Refusal::TooManyAuthenticators)) => {
            "You have as many authenticators as we keep. Remove one before adding another."
        }
        Err(Error::Misuse(Refusal::TwoFactorNotActive)) => "Set up two-factor authentication first.",
        Err(e) => return Err(e.into()),
    };
    ctx.set(|d| d.notice = Some(notice.to_owned())).await?;
    Ok(redirect("/account"))
}

/// The authenticator being added: its QR code, its secret and the confirm field.
pub async fn shown(State(app): State<Shared>, ctx: Ctx) -> Result {
    signed_in(&ctx)?;
    let Some(adding) = ctx.data.adding.clone() else {
        return Ok(redirect("/account"));
    };
    Ok(render_new(&app, &ctx, &adding, ""))
}

fn render_new(app: &App, ctx: &Ctx, adding: &Adding, msg: &str) -> Response {
    let (qr, secret) = qr_and_secret(&adding.shown);
    let body = format!(
        r#"<h1>Add an authenticator</h1>
<p>Adding <strong id="adding-name">{name}</strong>. Its codes will sign you in, as your other authenticators' codes do.</p>
<p>1. Scan this QR code with the authentication app on the new device.</p>
<div class="qr" id="qr">{qr}</div>
<p>Can't scan it? Enter this key in the app instead:<br><code class="secret" id="secret">{secret}</code></p>
<p>2. Enter the 6-digit code the new device shows.</p>{msg}
<form method="post" action="/account/authenticators/new">{csrf}
<label for="code">Code from the new authenticator</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="10" required autofocus>
<button class="primary" type="submit" id="confirm-authenticator">Add this authenticator</button>
</form>
<p><a href="/account">Cancel</a></p>"#,
        name = esc(&adding.name),
        csrf = csrf_field(&ctx.data),
    );
    app.page(ctx, "Add an authenticator", &body, None)
}

/// The confirm form's fields.
#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    code: String,
}

/// Confirms the authenticator being added with a code from it.
pub async fn confirm(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<ConfirmForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let Some(adding) = ctx.data.adding.clone() else {
        return Ok(redirect("/account"));
    };
    let outcome = match app.engine.confirm_authenticator(user.id, f.code.trim()).await {
        Err(Error::InvalidInput(_) | Error::Misuse(Refusal::StepUsedBeforeReset)) => AddAuthenticatorOutcome::WrongCode,
        // Replaced in another tab, or 2FA reset meanwhile: start again.
        Err(Error::Misuse(
            Refusal::NoEnrollment
            | Refusal::EnrollmentChanged
            | Refusal::TwoFactorNotActive
            | Refusal::TooManyAuthenticators,
        )) => {
            ctx.set(|d| {
                d.adding = None;
                d.notice = Some("That authenticator is no longer waiting to be added. Please start again.".to_owned());
            })
            .await?;
            return Ok(redirect("/account"));
        }
        other => other?,
    };
    let AddAuthenticatorOutcome::Added { notice_delivery, .. } = outcome else {
        let msg = message("error", "That code is not right. Check the new authenticator and try again.");
        return Ok(render_new(&app, &ctx, &adding, &msg));
    };
    // The notice was queued with the addition: send it now, to say whether it went.
    let mail = match app.deliver_now(user.id, &notice_delivery).await {
        MailNow::Sent => "We emailed you a notice.",
        MailNow::Delayed => "The notice email is delayed; we keep trying.",
        MailNow::Lost => "We could not email you a notice.",
    };
    let text = format!("“{}” was added: its codes sign you in from now on. {mail}", adding.name);
    ctx.set(|d| {
        d.adding = None;
        d.notice = Some(text);
    })
    .await?;
    Ok(redirect("/account"))
}

/// `?id=` on the remove page.
#[derive(Deserialize)]
pub struct Which {
    id: String,
}

/// The remove page: asks for a code from another authenticator or the backup code (or
/// says why the last one stays).
pub async fn remove_form(State(app): State<Shared>, mut ctx: Ctx, Query(which): Query<Which>) -> Result {
    let user = signed_in(&ctx)?;
    let all = app.engine.authenticators(user.id).await?;
    let Some(target) = all.iter().find(|a| a.id == which.id) else {
        ctx.set(|d| d.notice = Some("That authenticator was already removed.".to_owned())).await?;
        return Ok(redirect("/account"));
    };
    Ok(render_remove(&app, &ctx, target, all.len() < 2, ""))
}

fn render_remove(app: &App, ctx: &Ctx, target: &AuthenticatorInfo, last: bool, msg: &str) -> Response {
    let form = if last {
        format!(r#"<p class="msg error" role="status" id="last-authenticator">{}</p>"#, esc(LAST))
    } else {
        format!(
            r#"<p>To confirm it's you, enter a code from <strong>another</strong> authenticator (not this one), or your backup code.</p>{msg}
<form method="post" action="/account/authenticators/remove">{csrf}
<input type="hidden" name="id" value="{id}">
{field}
<button class="primary danger" type="submit" id="remove">Remove this authenticator</button>
</form>"#,
            csrf = csrf_field(&ctx.data),
            id = esc(&target.id),
            field = code_field("Code from another authenticator, or your backup code"),
        )
    };
    let body = format!(
        r#"<h1>Remove an authenticator</h1>
<p>Remove <strong id="removing">{name}</strong> (added {added})? Its codes will no longer sign you in. We email you when it is removed.</p>
{form}
<p><a href="/account">Keep it</a></p>"#,
        name = esc(&target.name),
        added = when(target.added_at),
    );
    app.page(ctx, "Remove an authenticator", &body, None)
}

/// The remove form's fields.
#[derive(Deserialize)]
pub struct RemoveForm {
    csrf: String,
    id: String,
    code: String,
}

/// Removes an authenticator after a fresh code from another one, or the backup code.
pub async fn remove(State(app): State<Shared>, mut ctx: Ctx, Form(f): Form<RemoveForm>) -> Result {
    let user = signed_in(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let all = app.engine.authenticators(user.id).await?;
    let gone = "That authenticator was already removed.";
    let Some(target) = all.into_iter().find(|a| a.id == f.id) else {
        ctx.set(|d| d.notice = Some(gone.to_owned())).await?;
        return Ok(redirect("/account"));
    };
    let fresh = Fresh::read(&f.code);
    let outcome = match app.engine.remove_authenticator(user.id, &f.id, fresh.factor()).await {
        Err(Error::Misuse(Refusal::LastAuthenticator)) => return Ok(render_remove(&app, &ctx, &target, true, "")),
        Err(Error::InvalidInput(_) | Error::Misuse(Refusal::NoSuchAuthenticator | Refusal::TwoFactorNotActive)) => {
            ctx.set(|d| d.notice = Some(gone.to_owned())).await?;
            return Ok(redirect("/account"));
        }
        other => other?,
    };
    if !outcome.is_verified() {
        let wrong = "That code is not right. Enter a code from another authenticator (not the one you are \
                     removing), or your backup code.";
        return Ok(render_remove(&app, &ctx, &target, false, &message("error", &refused(&outcome, wrong))));
    }
    let mut text = format!("“{}” was removed: its codes no longer sign you in.", target.name);
    if let Some(new_code) = new_code_sent(&app, &user, &outcome).await {
        text.push(' ');
        text.push_str(new_code);
    }
    ctx.set(|d| d.notice = Some(text)).await?;
    Ok(redirect("/account"))
}
