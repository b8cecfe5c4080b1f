//! The administrator's page: reset a user's 2FA, with a note on how the user's
//! identity was checked. The engine enforces the role rules; a refusal is shown.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twofactor::{Error, ResetOutcome, Role};

use crate::app::{App, AppError, MailNow, Result, Shared, check_csrf, signed_in};
use crate::html::{csrf_field, esc, message};
use crate::session::{Ctx, SignedIn};

/// The reset form.
pub async fn form(State(app): State<Shared>, ctx: Ctx) -> Result {
    admin(&ctx)?;
    Ok(render(&app, &ctx, "", "", ""))
}

/// The signed-in administrator (or support); 403 for a plain user.
fn admin(ctx: &Ctx) -> Result<SignedIn> {
    let user = signed_in(ctx)?;
    if user.role == Role::User {
        return Err(AppError::Respond(Box::new((StatusCode::FORBIDDEN, "Administrators only.").into_response())));
    }
    Ok(user)
}

fn render(app: &App, ctx: &Ctx, username: &str, note: &str, msg: &str) -> Response {
    let body = format!(
        r#"<h1>Reset two-factor authentication</h1>
<p>Resetting removes the user's authenticator app, backup code and remembered locations. They then sign in with their password alone and can set up two-factor authentication again. The user is told by email.</p>
<p class="help"><strong>Verify the user's identity first.</strong> You are responsible for making sure the person asking is the account's owner and is authorized (for example: a video call with photo ID, or a call back to the phone number on file). Describe how you checked; it is recorded with the reset.</p>
<p class="muted">Rules: an administrator resets users; only support resets an administrator; nobody resets their own two-factor authentication.</p>{msg}
<form method="post" action="/admin">{csrf}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" required>
<label for="identity_check">How did you verify the user's identity?</label>
<textarea id="identity_check" name="identity_check" rows="3" maxlength="500" required>{note}</textarea>
<button class="primary danger" type="submit" id="reset">Reset two-factor authentication</button>
</form>"#,
        csrf = csrf_field(&ctx.data),
        username = esc(username),
        note = esc(note),
    );
    app.page(ctx, "Reset two-factor authentication", &body, None)
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
    let Some(target) = app.engine.account_by_username(username).await? else {
        let msg = message("error", &format!("There is no user named “{username}”."));
        return Ok(render(&app, &ctx, username, &f.identity_check, &msg));
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
            return Ok(render(&app, &ctx, "", "", &message("ok", &text)));
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
    Ok(render(&app, &ctx, username, &f.identity_check, &msg))
}
