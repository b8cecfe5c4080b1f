//! The demo's store and mailer: the one place to switch parts. (Hashing runs on the
//! engine's own threads, its default.)
//!
//! Every run starts empty: a SQLite file and a file outbox (one `.eml` per mail) in
//! the run's data directory, under an ephemeral key ring (nothing outlives the run, so
//! there is no key file to keep). With `--features smtp` and `TWOFACTOR_WEB_SMTP_URL`
//! set, mail goes through that SMTP server instead (the demo mailbox then stays empty).

use std::error::Error;
use std::path::{Path, PathBuf};

use twofactor::mail::{DefaultRenderer, FileOutbox};
use twofactor::{BoxMailer, Engine, Policy, SqliteStore};

/// The store the demo runs on.
pub type DemoStore = SqliteStore;

/// The mailer the demo sends through, chosen at run time: the file outbox, or SMTP
/// behind a flag. [`BoxMailer`] makes either one type.
pub type DemoMailer = BoxMailer;

const SUPPORT: &str = "your administrator";
const FROM: &str = "Example Co <security@example.test>";

/// The mail names the product the policy names (its issuer): set once.
fn mailer(outbox: &Path, policy: &Policy) -> Result<DemoMailer, Box<dyn Error>> {
    let renderer = DefaultRenderer::for_policy(policy).with_support(SUPPORT);
    #[cfg(feature = "smtp")]
    if let Ok(url) = std::env::var("TWOFACTOR_WEB_SMTP_URL") {
        let smtp = twofactor::mail::SmtpMailer::from_url(&url, FROM)?.with_renderer(renderer);
        return Ok(BoxMailer::new(smtp));
    }
    Ok(BoxMailer::new(FileOutbox::new(outbox)?.with_renderer(renderer).with_from(FROM)?))
}

/// The engine over them.
pub type DemoEngine = Engine<DemoStore, DemoMailer>;

/// Opens the store and the mailer under `data_dir`, and the mailbox view of what was sent.
pub async fn open(data_dir: &Path, policy: &Policy) -> Result<(DemoStore, DemoMailer, Mailbox), Box<dyn Error>> {
    let db = data_dir.join("twofactor.db");
    if db.exists() {
        return Err(format!("{} exists: the demo starts from an empty data directory", db.display()).into());
    }
    let outbox = data_dir.join("outbox");
    let mailer = mailer(&outbox, policy)?;
    Ok((SqliteStore::open(&db).await?, mailer, Mailbox(outbox)))
}

/// One mail as the demo mailbox shows it.
pub struct MailView {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Reads the file outbox's `.eml` files.
#[derive(Clone)]
pub struct Mailbox(PathBuf);

impl Mailbox {
    /// Every mail sent, newest first (the outbox's file names sort in sending order).
    pub fn newest_first(&self) -> Vec<MailView> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files.iter().rev().filter_map(|p| parse_eml(&std::fs::read_to_string(p).ok()?)).collect()
    }
}

/// To, Subject and the text/plain body of one mail as the file outbox writes it
/// (lettre's MIME: folded headers, quoted-printable or base64 bodies).
fn parse_eml(raw: &str) -> Option<MailView> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let headers = unfold(head);
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let content_type = header("Content-Type").unwrap_or_default();
    let (part_head, part_body) = match content_type.split("boundary=\"").nth(1) {
        Some(rest) => {
            let boundary = rest.split('"').next()?;
            let part = body.split(&format!("--{boundary}")).nth(1)?.trim_start_matches("\r\n");
            let (h, b) = part.split_once("\r\n\r\n")?;
            (unfold(h), b.trim_end_matches("\r\n").to_owned())
        }
        None => (headers.clone(), body.to_owned()),
    };
    let encoding = part_head
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Transfer-Encoding"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let body = match encoding.as_deref() {
        Some("quoted-printable") => decode_quoted_printable(&part_body)?,
        Some("base64") => {
            let compact: String = part_body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(data_encoding::BASE64.decode(compact.as_bytes()).ok()?).ok()?
        }
        _ => part_body,
    };
    Some(MailView { to: header("To")?, subject: header("Subject")?, body: body.replace("\r\n", "\n") })
}

/// Header (name, value) pairs, continuation lines joined.
fn unfold(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// Quoted-printable to text: `=XX` escapes, soft line breaks (`=` at a line's end).
fn decode_quoted_printable(body: &str) -> Option<String> {
    let joined = body.replace("=\r\n", "");
    let raw = joined.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'=' && i + 2 < raw.len() {
            bytes.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).ok()?, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).ok()
}
