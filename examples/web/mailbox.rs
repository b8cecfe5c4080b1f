//! The demo mailbox: every mail the app sent, backup codes included. Development
//! only (`TWOFACTOR_WEB_MAILBOX=0` turns it off); real users read their own inbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::Shared;
use crate::html::esc;
use crate::session::Ctx;

/// Lists the outbox, newest first.
pub async fn show(State(app): State<Shared>, ctx: Ctx) -> Response {
    let Some(mailbox) = &app.mailbox else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let mails: String = mailbox
        .newest_first()
        .iter()
        .map(|m| {
            format!(
                r#"<article class="mail" data-to="{to}"><div><strong>To:</strong> {to}</div>
<div><strong>Subject:</strong> <span class="subject">{subject}</span></div><pre class="body">{body}</pre></article>"#,
                to = esc(&m.to),
                subject = esc(&m.subject),
                body = esc(&m.body),
            )
        })
        .collect();
    let mails = if mails.is_empty() { r#"<p class="muted">No mail yet.</p>"#.to_owned() } else { mails };
    let body = format!(
        r#"<h1>Demo mailbox</h1>
<p class="msg error"><strong>Development only.</strong> This page shows every mail the demo sent, to anyone. A real deployment sends these mails to the users' own inboxes.</p>{mails}"#
    );
    app.page_sized(&ctx, "Demo mailbox", &body, None, true)
}
