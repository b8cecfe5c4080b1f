//! The verification page: the code from the authentication app, or — after "I don't
//! have my device" and its checkbox — the emailed backup code.

use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::response::Response;
use serde::Deserialize;
use twofactor::{SecondFactor, SecondFactorOutcome};

use crate::app::{App, MailNow, Result, Shared, check_csrf, redirect};
use crate::html::{csrf_field, message};
use crate::session::{Ctx, LOCATION_COOKIE, Login};
use crate::signin::signed;

/// Reveals the help on "I don't have my device"; the checkbox swaps the fields.
const SCRIPT: &str = "(function(){
var link=document.getElementById('no-device-link'),help=document.getElementById('no-device'),
box=document.getElementById('use_backup'),code=document.getElementById('code'),backup=document.getElementById('backup_code');
function sync(){var b=box.checked;document.getElementById('code-block').hidden=b;
document.getElementById('backup-block').hidden=!b;code.disabled=b;code.required=!b;backup.disabled=!b;backup.required=b;}
link.addEventListener('click',function(e){e.preventDefault();help.hidden=false;link.hidden=true;box.focus();});
box.addEventListener('change',function(){sync();(box.checked?backup:code).focus();});
sync();})();";

/// `?device=lost` shows the backup-code form without JavaScript.
#[derive(Deserialize)]
pub struct Mode {
    device: Option<String>,
}

/// The verification form.
pub async fn form(State(app): State<Shared>, ctx: Ctx, Query(mode): Query<Mode>) -> Response {
    if ctx.data.pending.is_none() {
        return redirect("/login");
    }
    let backup = mode.device.as_deref() == Some("lost");
    render(&app, &ctx, backup, "")
}

fn render(app: &App, ctx: &Ctx, backup: bool, msg: &str) -> Response {
    let (hide_code, hide_backup) = if backup { (" hidden", "") } else { ("", " hidden") };
    let (code_state, backup_state) = if backup { ("disabled", "required") } else { ("required autofocus", "disabled") };
    let checked = if backup { " checked" } else { "" };
    let body = format!(
        r#"<h1>Please verify your login</h1>
<p>Enter the verification code from your authentication app to log in.</p>{msg}
<form method="post" action="/verify">{csrf}
<div id="code-block"{hide_code}>
<label for="code">Verification code</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="10" {code_state}>
</div>
<div id="backup-block"{hide_backup}>
<label for="backup_code">Backup code</label>
<input type="text" id="backup_code" name="backup_code" autocomplete="off" placeholder="XXXX-XXXX-XXXX-XXXX" maxlength="40" {backup_state}>
<p class="muted">Each backup code works once. After you use it we email you a new one.</p>
</div>
<p><a href="/verify?device=lost" id="no-device-link"{hide_backup_link}>I don't have my device</a></p>
<div id="no-device" class="help"{hide_backup}>
<strong>Don't have your verified device?</strong>
<p>You can use the backup code we emailed to you when you set up two-factor authentication, or the newest one we sent after you last used a backup code.</p>
<label class="check"><input type="checkbox" id="use_backup" name="use_backup" value="1"{checked}> Use a backup code instead of the verification code</label>
<p class="muted">No backup code? Ask your administrator to reset two-factor authentication for your account. <a href="/verify">Use my authentication app</a></p>
</div>
<label class="check"><input type="checkbox" id="remember" name="remember" value="1"> Remember this location (skip the code next time in this browser)</label>
<button class="primary" type="submit" id="verify">Verify</button>
</form>"#,
        csrf = csrf_field(&ctx.data),
        hide_backup_link = if backup { " hidden" } else { "" },
    );
    app.page(ctx, "Verify your login", &body, Some(SCRIPT))
}

/// The verification form's fields (the disabled one is not sent).
#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: String,
    code: Option<String>,
    backup_code: Option<String>,
    use_backup: Option<String>,
    remember: Option<String>,
}

/// The second step.
pub async fn submit(State(app): State<Shared>, mut ctx: Ctx, headers: HeaderMap, Form(f): Form<VerifyForm>) -> Result {
    check_csrf(&ctx, &f.csrf)?;
    let Some(pending) = ctx.data.pending.clone() else {
        return Ok(redirect("/login"));
    };
    let backup = f.use_backup.is_some();
    let factor = if backup {
        SecondFactor::BackupCode(f.backup_code.as_deref().unwrap_or_default())
    } else {
        SecondFactor::Totp(f.code.as_deref().unwrap_or_default())
    };
    let label = f.remember.is_some().then(|| location_label(&headers));
    let what = if backup { "backup code" } else { "verification code" };
    // A code with letters or of the wrong length is `Denied` like a wrong one.
    let outcome = app.engine.finish_login(&pending, factor, label.as_deref()).await?;
    Ok(match outcome {
        SecondFactorOutcome::Authenticated(auth) => {
            let remembered = auth.remembered.clone();
            // A backup-code login queued the replacement code with the login itself;
            // sending it now (after a success only) tells the user at once whether it
            // went out.
            let mail = match &auth.backup_code_delivery {
                Some(queued) => Some(app.deliver_now(auth.account, queued).await),
                None => None,
            };
            ctx.promote(Login::Full(signed(auth))).await?;
            if let Some(mail) = mail {
                let text = match mail {
                    MailNow::Sent => "We emailed you a new backup code. The one you used no longer works.",
                    MailNow::Delayed => {
                        "The email with your new backup code is delayed; we keep trying. \
                         The one you used no longer works."
                    }
                    MailNow::Lost => {
                        "We could not email your new backup code, and the one you used no longer works. \
                         Ask for a new backup code below."
                    }
                };
                ctx.set(|d| d.notice = Some(text.to_owned())).await?;
            }
            let mut response = redirect("/account");
            if let Some(token) = remembered {
                let value = app.cookie(LOCATION_COOKIE, token.token(), Some(token.max_age().as_secs()));
                response.headers_mut().append(SET_COOKIE, value);
            }
            response
        }
        SecondFactorOutcome::Denied { attempts_left } => {
            let text = format!("That {what} is not right. {attempts_left} attempt(s) left.");
            render(&app, &ctx, backup, &message("error", &text))
        }
        SecondFactorOutcome::Locked { .. } => {
            restart(ctx, "Too many wrong codes. Sign-in is paused; try later.").await?
        }
        _ => restart(ctx, "That sign-in expired. Please enter your password again.").await?,
    })
}

async fn restart(mut ctx: Ctx, why: &str) -> Result {
    ctx.set(|d| {
        d.pending = None;
        d.notice = Some(why.to_owned());
    })
    .await?;
    Ok(redirect("/login"))
}

/// A short label for the remembered location, e.g. "Chrome on Linux".
fn location_label(headers: &HeaderMap) -> String {
    let ua = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"].into_iter().find(|b| ua.contains(b)).map_or(
        "A browser",
        |b| match b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" => "Chrome",
            _ => "Safari",
        },
    );
    let os = ["Android", "iPhone", "Windows", "Mac OS", "Linux"].into_iter().find(|o| ua.contains(o));
    let headless = if ua.contains("Headless") { " (headless)" } else { "" };
    match os {
        Some(os) => format!("{browser}{headless} on {os}"),
        None => format!("{browser}{headless}"),
    }
}
