//! Every mail the default templates produce, written by the `FileOutbox` (composed by the
//! same code as the SMTP mailer's): each kind of message, with long inputs (a 64-character
//! username and email, long and non-ASCII location labels, a 64-character product name),
//! parses as RFC 5322 / MIME, and no line of it exceeds 78 characters.

#[path = "maildir/mod.rs"]
mod maildir;

use std::path::Path;

use maildir::{Mail, Part};
use twofactor::mail::{CodeReason, DefaultRenderer, FileOutbox, Recipient};
use twofactor::mail::{Mailer, Message, MessageKind};
use twofactor::{MailId, Policy, Role, SecretString, Timestamp};

const CODE: &str = "K7QX-M2PD-9WRT-H4NB";
const AT: Timestamp = Timestamp(1_800_000_000);

fn messages(username: &str, email: &str, location: &str) -> Vec<Message> {
    let to = || Recipient { username: username.to_owned(), email: email.to_owned() };
    let code =
        |reason| Message::BackupCode { to: to(), reason, codes: vec![SecretString::from(CODE)], expires_at: Some(AT) };
    vec![
        code(CodeReason::Setup),
        code(CodeReason::Rotated),
        code(CodeReason::Reissued),
        Message::TwoFactorReset { to: to(), by: "b".repeat(64), by_role: Role::Support, at: AT },
        Message::Throttled { to: to(), until: AT },
        Message::SecondFactorLocked { to: to(), at: AT },
        Message::NewLocation { to: to(), location: location.to_owned(), at: AT },
    ]
}

/// The outbox's files, oldest first, parsed.
fn read(dir: &Path) -> Vec<(String, Mail)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let raw = std::fs::read_to_string(&file).unwrap();
            let message = Part::parse(&raw);
            (raw, Mail { file, message })
        })
        .collect()
}

#[tokio::test]
async fn every_line_of_every_default_mail_fits_in_78_characters_and_every_mail_parses() {
    let product = format!("Example Co {}", "x".repeat(53));
    assert_eq!(product.len(), 64);
    let policy = Policy::builder().issuer(product.as_str()).build().unwrap();
    let renderer = DefaultRenderer::for_policy(&policy).with_support(format!("{}@example.test", "s".repeat(60)));
    let username = "u".repeat(64);
    let email = format!("{}@{}.example.test", "e".repeat(64), "d".repeat(60));
    let cases = [
        "Firefox on Linux".to_owned(),
        format!("Firefox 145 on Ubuntu Linux, {}", "Bahnhofstraße 12, Zürich, ".repeat(40)),
        "a".repeat(3000),
        "日本語のラベル ".repeat(200),
        "tab\tand\nnewline <b>&amp;</b> \"quoted\"".to_owned(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let outbox = FileOutbox::new(dir.path())
        .unwrap()
        .with_renderer(renderer)
        .with_from("Example Co <no-reply@example.test>")
        .unwrap();
    let mut sent = Vec::new();
    for location in &cases {
        for message in messages(&username, &email, location) {
            let id = MailId::parse(&format!("{:032x}", sent.len() + 1)).unwrap();
            outbox.send(id, &message).await.unwrap();
            sent.push((message.kind(), location.clone(), id));
        }
    }
    let mails = read(dir.path());
    assert_eq!(mails.len(), sent.len());
    for ((raw, mail), (kind, location, id)) in mails.iter().zip(&sent) {
        let name = mail.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(&format!("-{kind}.eml")), "{name}");
        // Lines: CRLF only, all ASCII; none longer than 78 characters (RFC 5322's SHOULD),
        // except that an address cannot be folded: a header holding only the long
        // recipient address stays within the 998-octet MUST.
        assert_eq!(raw.matches('\n').count(), raw.matches("\r\n").count(), "{name}: bare LF");
        assert_eq!(raw.matches('\r').count(), raw.matches("\r\n").count(), "{name}: bare CR");
        for line in raw.split("\r\n") {
            assert!(line.is_ascii(), "{name}: a non-ASCII line {line:?}");
            let limit = if line == format!("To: {email}") { 998 } else { 78 };
            assert!(line.len() <= limit, "{name}: a line of {} octets: {line:?}", line.len());
        }
        // Headers.
        let m = &mail.message;
        for header in ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version"] {
            assert_eq!(m.headers_named(header).len(), 1, "{name}: {header}");
        }
        assert_eq!(m.header("To"), Some(email.as_str()));
        assert_eq!(m.header("From"), Some("\"Example Co\" <no-reply@example.test>"));
        let message_id = format!("<{id}@example.test>");
        assert_eq!(m.header("Message-ID"), Some(message_id.as_str()), "{name}: the queued message's id");
        // Structure: text first, then HTML, each utf-8 with a transfer encoding that
        // keeps lines short.
        assert_eq!(m.mime_type(), "multipart/alternative", "{name}");
        assert!(raw.ends_with(&format!("--{}--\r\n", m.content_type_param("boundary").unwrap())), "{name}");
        let parts = m.subparts();
        let types: Vec<String> = parts.iter().map(Part::mime_type).collect();
        assert_eq!(types, ["text/plain", "text/html"], "{name}");
        for p in &parts {
            assert_eq!(p.content_type_param("charset").as_deref(), Some("utf-8"), "{name}");
            let encoding = p.header("Content-Transfer-Encoding").unwrap_or("7bit").to_ascii_lowercase();
            assert_eq!(encoding, "quoted-printable", "{name}: never base64, whatever the text");
        }
        // The decoded content is all there.
        let text = mail.text();
        let html = mail.part("text/html").body;
        assert!(text.contains(&username) && html.contains(&username), "{name}");
        assert!(text.trim_end().ends_with(&product), "{name}: the signature is the product name");
        if matches!(
            kind,
            MessageKind::BackupCodeSetup | MessageKind::BackupCodeRotated | MessageKind::BackupCodeReissued
        ) {
            assert_eq!(mail.codes(), [CODE], "{name}: the code alone on its line");
            assert!(raw.lines().any(|l| l.trim() == CODE), "{name}: the code is readable in the raw file");
        }
        if *kind == MessageKind::NewLocation {
            let one_line = location.replace(['\t', '\n'], " ");
            assert!(text.contains(&one_line), "{name}: the location, on one line:\n{text}");
        }
    }
}
