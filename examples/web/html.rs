//! HTML helpers: escaping, the page layout (inline CSS, no external assets) and the
//! security headers every page carries.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS};
use axum::response::{IntoResponse, Response};

use crate::session::{Data, Login, token};

/// Escapes text for HTML element content and quoted attribute values.
pub use twofactor::mail::html_escape as esc;

/// A time for people: `2026-11-27 19:37 UTC`.
pub fn when(t: twofactor::Timestamp) -> String {
    let iso = t.to_string();
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// The hidden CSRF field for a POST form.
pub fn csrf_field(session: &Data) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(&session.csrf))
}

/// A message box: `kind` is `error`, `ok` or `info`.
pub fn message(kind: &str, text: &str) -> String {
    format!(r#"<p class="msg {kind}" role="status">{}</p>"#, esc(text))
}

const CSS: &str = "
*{box-sizing:border-box}[hidden]{display:none!important}
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f3f5f8;color:#1d2330}
header{background:#1f3a5f;color:#fff;padding:.7rem 1.5rem;display:flex;gap:1.2rem;align-items:center}
header a,header button{color:#fff;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer;padding:0}
header .brand{font-weight:700;margin-right:auto}header form{margin:0}
main{max-width:34rem;margin:2.5rem auto;background:#fff;border-radius:10px;padding:2rem 2.2rem;
box-shadow:0 2px 12px rgba(20,30,60,.08)}main.wide{max-width:46rem}
h1{font-size:1.45rem;margin:0 0 1rem}h2{font-size:1.1rem;margin:1.6rem 0 .6rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
label{display:block;font-weight:600;margin:.9rem 0 .3rem}label.check{font-weight:400;display:flex;gap:.5rem;align-items:center}
input[type=text],input[type=password],input[type=email],textarea{width:100%;padding:.6rem .7rem;border:1px solid #b8c1d1;border-radius:6px;font:inherit}
input:focus,textarea:focus{outline:2px solid #3b6fd8;border-color:#3b6fd8}
button.primary,button.secondary{margin-top:1.2rem;padding:.6rem 1.3rem;border-radius:6px;font:inherit;cursor:pointer;border:0}
button.primary{background:#2d5fc4;color:#fff}button.secondary{background:#e6ebf3;color:#1d2330}
button.danger{background:#b3261e;color:#fff}
.msg{padding:.6rem .8rem;border-radius:6px;margin:.8rem 0}.error{background:#fde8e7;color:#8a1c15}
.ok{background:#e5f5e9;color:#1b5e2b}.info{background:#eef3fc;color:#1f3a5f}
.help{background:#fff8e5;border:1px solid #f0d78c;border-radius:6px;padding:.7rem .9rem;margin:.6rem 0}
.muted{color:#5b6475;font-size:.92rem}code.secret{display:inline-block;margin-top:.3rem;font-size:1.05rem;letter-spacing:.04em;background:#f3f5f8;padding:.2rem .5rem;border-radius:4px}
.qr{text-align:center;margin:1rem 0}.qr svg{width:220px;height:220px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;white-space:nowrap;padding:.4rem;border-bottom:1px solid #e3e7ee;font-size:.92rem}td.label{white-space:normal}
td form{margin:0}td button.secondary{margin-top:0;padding:.3rem .9rem}
article.mail{border:1px solid #e3e7ee;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
article.mail pre{white-space:pre-wrap;font-size:.9rem;background:#f8f9fb;padding:.6rem;margin:.4rem 0 0}
";

/// What the header shows.
pub struct Nav<'a> {
    /// The session (for the user and the sign-out form's CSRF token).
    pub session: &'a Data,
    /// Whether to link the demo mailbox.
    pub mailbox: bool,
}

/// A complete page. `script` runs under a per-response CSP nonce.
pub fn page(nav: &Nav<'_>, title: &str, body: &str, script: Option<&str>, wide: bool) -> Response {
    let nonce = token();
    let mut links = String::new();
    match &nav.session.login {
        Login::Full(user) => {
            links.push_str(&format!(r#"<a href="/account">{}</a>"#, esc(&user.username)));
            if user.role != twofactor::Role::User {
                links.push_str(r#"<a href="/admin">Admin</a>"#);
            }
        }
        // Only enrollment and sign-out are open to them: link nothing else.
        Login::MustEnroll(user) => links.push_str(&format!(r#"<a href="/enroll">{}</a>"#, esc(&user.username))),
        Login::Anonymous => {}
    }
    if nav.mailbox {
        links.push_str(r#"<a href="/mailbox">Demo mailbox</a>"#);
    }
    if !matches!(nav.session.login, Login::Anonymous) {
        links.push_str(&format!(
            r#"<form method="post" action="/logout">{}<button id="sign-out">Sign out</button></form>"#,
            csrf_field(nav.session)
        ));
    } else {
        links.push_str(r#"<a href="/login">Sign in</a>"#);
    }
    let script = script.map_or(String::new(), |s| format!(r#"<script nonce="{nonce}">{s}</script>"#));
    let class = if wide { r#" class="wide""# } else { "" };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Example Co</title><style>{CSS}</style></head><body>\
         <header><span class=\"brand\">Example Co</span>{links}</header><main{class}>{body}</main>{script}</body></html>",
        title = esc(title),
    );
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = html.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    response
}
