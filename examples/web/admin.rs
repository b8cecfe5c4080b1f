//! The administrator's page: reset a user's 2FA, with a note on how the user's
//! identity was checked; and unlock a user whose sign-in is paused (or whose second
//! factor is locked) after failed attempts, with a note on why. The engine enforces the
//! role rules for both; a refusal is shown.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twofactor::{Error, ResetOutcome, Role, UnlockOutcome};

use crate::app::{App, AppError, MailNow, Result, Shared, check_csrf, signed_in};
use crate::html::{csrf_field, esc, message};
use crate::session::{Ctx, SignedIn};

/// The reset and unlock forms.
pub async fn form(State(app): State<Shared>, ctx: Ctx) -> Result {
    admin(&ctx)?;
    Ok(render(&app, &ctx, &Filled::default()))
}

/// The signed-in administrator (or support); 403 for a plain user.
fn admin(ctx: &Ctx) -> Result<SignedIn> {
    let user = signed_in(ctx)?;
    if user.role == Role::User {
        return Err(AppError::Respond(Box::new((StatusCode::FORBIDDEN, "Administrators only.").into_response())));
    }
    Ok(user)
}

/// What the forms show again, and the answer to the one that was used (at the top of
/// the page, where it is seen without scrolling).
#[derive(Default)]
struct Filled<'a> {
    msg: String,
    username: &'a str,
    note: &'a str,
    unlock_username: &'a str,
    reason: &'a str,
}

fn render(app: &App, ctx: &Ctx, f: &Filled<'_>) -> Response {
    let body = format!(
        r#"<h1>Administration</h1>{msg}
<h2>Reset two-factor authentication</h2>
<p>Resetting removes the user's authenticator app, backup code and remembered locations. They then sign in with their password alone and can set up two-factor authentication again. The user is told by email.</p>
<p class="help"><strong>Verify the user's identity first.</strong> You are responsible for making sure the person asking is the account's owner and is authorized (for example: a video call with photo ID, or a call back to the phone number on file). Describe how you checked; it is recorded with the reset.</p>
<p class="muted">Rules: an administrator resets users; only support resets an administrator; nobody resets their own two-factor authentication.</p>
<form method="post" action="/admin">{csrf}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" required>
<label for="identity_check">How did you verify the user's identity?</label>
<textarea id="identity_check" name="identity_check" rows="3" maxlength="500" required>{note}</textarea>
<button class="primary danger" type="submit" id="reset">Reset two-factor authentication</button>
</form>
<h2 id="unlock-section">Unlock sign-in</h2>
<p>After repeated wrong passwords or codes, sign-in to an account pauses for a while; after very many wrong codes its second factor locks. Unlocking lifts both at once and leaves the user's two-factor authentication as it is. The user is told by email.</p>
<p class="muted">Rules as for a reset: an administrator unlocks users; only support unlocks an administrator; nobody unlocks themselves. Say why you unlock; it is recorded.</p>
<form method="post" action="/admin/unlock">{csrf}
<label for="unlock_username">Username</label>
<input type="text" id="unlock_username" name="username" value="{unlock_username}" required>
<label for="reason">Why are you unlocking it?</label>
<textarea id="reason" name="reason" rows="2" maxlength="500" required>{reason}</textarea>
<button class="primary" type="submit" id="unlock">Unlock sign-in</button>
</form>"#,
        csrf = csrf_field(&ctx.data),
        msg = f.msg,
        username = esc(f.username),
        note = esc(f.note),
        unlock_username = esc(f.unlock_username),
        reason = esc(f.reason),
    );
    app.page(ctx, "Administration", &body, None)
}

/// The reset form's fields.
#[derive(Deserialize)]
pub struct ResetForm {
    csrf: String,
    username: String,
    identity_check: String,
}

/// Resets the named user's 2FA, if the role rules allow it.
pub async fn submit(State(app): State<Shared>, ctx: Ctx, Form(f): Form<ResetForm>) -> Result {
    let actor = admin(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let username = f.username.trim();
    let again = |msg: String| Filled { msg, username, note: &f.identity_check, ..Filled::default() };
    let Some(target) = app.engine.account_by_username(username).await? else {
        let msg = message("error", &format!("There is no user named “{username}”."));
        return Ok(render(&app, &ctx, &again(msg)));
    };
    let msg = match app.engine.reset(actor.id, target.id, &f.identity_check).await {
        Ok(ResetOutcome::Reset { notice_delivery }) => {
            // The notice was queued with the reset: send it now, to say whether it went.
            let mail = match app.deliver_now(target.id, &notice_delivery).await {
                MailNow::Sent => "They were notified by email: the notice was sent.",
                MailNow::Delayed => "The notice email is queued: it could not be sent yet, and we keep trying.",
                MailNow::Lost => "The notice email could not be sent: tell them yourself.",
            };
            let text = format!("Two-factor authentication for {username} was reset. {mail}");
            return Ok(render(&app, &ctx, &Filled { msg: message("ok", &text), ..Filled::default() }));
        }
        Ok(_) if actor.id == target.id => {
            message("error", "Not allowed: nobody resets their own two-factor authentication. Ask support.")
        }
        Ok(_) => message(
            "error",
            &format!(
                "Not allowed: a {} may not reset the two-factor authentication of {username}, a {}. \
                 An administrator resets users; only support resets an administrator.",
                actor.role, target.role
            ),
        ),
        Err(Error::InvalidInput(e)) => message("error", &format!("Please check the form: {e}.")),
        Err(e) => return Err(e.into()),
    };
    Ok(render(&app, &ctx, &again(msg)))
}

/// The unlock form's fields.
#[derive(Deserialize)]
pub struct UnlockForm {
    csrf: String,
    username: String,
    reason: String,
}

/// Unlocks the named user's sign-in, if the role rules allow it.
pub async fn unlock(State(app): State<Shared>, ctx: Ctx, Form(f): Form<UnlockForm>) -> Result {
    let actor = admin(&ctx)?;
    check_csrf(&ctx, &f.csrf)?;
    let username = f.username.trim();
    let again = |msg: String| Filled { msg, unlock_username: username, reason: &f.reason, ..Filled::default() };
    let Some(target) = app.engine.account_by_username(username).await? else {
        let msg = message("error", &format!("There is no user named “{username}”."));
        return Ok(render(&app, &ctx, &again(msg)));
    };
    let msg = match app.engine.unlock(actor.id, target.id, &f.reason).await {
        Ok(UnlockOutcome::Unlocked { notice_delivery }) => {
            // The notice was queued with the unlock: send it now, to say whether it went.
            let mail = match app.deliver_now(target.id, &notice_delivery).await {
                MailNow::Sent => "They were notified by email: the notice was sent.",
                MailNow::Delayed => "The notice email is queued: it could not be sent yet, and we keep trying.",
                MailNow::Lost => "The notice email could not be sent: tell them yourself.",
            };
            let text = format!("Sign-in for {username} was unlocked. {mail}");
            return Ok(render(&app, &ctx, &Filled { msg: message("ok", &text), ..Filled::default() }));
        }
        Ok(UnlockOutcome::NotLocked) => message(
            "info",
            &format!("Sign-in for {username} is neither paused nor locked: there is nothing to unlock."),
        ),
        Ok(_) if actor.id == target.id => {
            message("error", "Not allowed: nobody unlocks their own sign-in. Ask support.")
        }
        Ok(_) => message(
            "error",
            &format!(
                "Not allowed: a {} may not unlock {username}, a {}. \
                 An administrator unlocks users; only support unlocks an administrator.",
                actor.role, target.role
            ),
        ),
        Err(Error::InvalidInput(e)) => message("error", &format!("Please check the form: {e}.")),
        Err(e) => return Err(e.into()),
    };
    Ok(render(&app, &ctx, &again(msg)))
}
