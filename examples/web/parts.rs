//! The demo's store and mailer: the one place to switch parts. (Hashing runs on the
//! engine's own threads, its default.)
//!
//! Every run starts empty: a SQLite file and a file outbox (one `.eml` per mail) in
//! the run's data directory, under an ephemeral key ring (nothing outlives the run, so
//! there is no key file to keep). With `--features smtp` and `TWOFACTOR_WEB_SMTP_URL`
//! set, mail goes through that SMTP server instead (the demo mailbox then stays empty).

use std::error::Error;
use std::path::{Path, PathBuf};

use twofactor::mail::{DefaultRenderer, FileOutbox, Mailer, Message};
use twofactor::{Engine, MailError, SqliteStore};

/// The store the demo runs on.
pub type DemoStore = SqliteStore;

const PRODUCT: &str = "Acme";
const SUPPORT: &str = "your administrator";
const FROM: &str = "Acme <security@acme.example>";

/// The mailer the demo sends through: the file outbox, or SMTP behind a flag.
pub enum DemoMailer {
    /// One `.eml` file per mail, shown by the demo mailbox.
    Outbox(FileOutbox),
    /// A real SMTP server (`TWOFACTOR_WEB_SMTP_URL`, feature `smtp`).
    #[cfg(feature = "smtp")]
    Smtp(Box<twofactor::mail::SmtpMailer<DefaultRenderer>>),
}

impl Mailer for DemoMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        match self {
            DemoMailer::Outbox(m) => m.send(message).await,
            #[cfg(feature = "smtp")]
            DemoMailer::Smtp(m) => m.send(message).await,
        }
    }
}

fn mailer(outbox: &Path) -> Result<DemoMailer, Box<dyn Error>> {
    #[cfg(feature = "smtp")]
    if let Ok(url) = std::env::var("TWOFACTOR_WEB_SMTP_URL") {
        let smtp =
            twofactor::mail::SmtpMailer::from_url(&url, FROM)?.with_renderer(DefaultRenderer::new(PRODUCT, SUPPORT));
        return Ok(DemoMailer::Smtp(Box::new(smtp)));
    }
    let outbox = FileOutbox::new(outbox)?.with_renderer(DefaultRenderer::new(PRODUCT, SUPPORT)).with_from(FROM)?;
    Ok(DemoMailer::Outbox(outbox))
}
/// The engine over them.
pub type DemoEngine = Engine<DemoStore, DemoMailer>;

/// Opens the store and the mailer under `data_dir`, and the mailbox view of what was sent.
pub async fn open(data_dir: &Path) -> Result<(DemoStore, DemoMailer, Mailbox), Box<dyn Error>> {
    let db = data_dir.join("twofactor.db");
    if db.exists() {
        return Err(format!("{} exists: the demo starts from an empty data directory", db.display()).into());
    }
    let outbox = data_dir.join("outbox");
    let mailer = mailer(&outbox)?;
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

/// To, Subject and the text/plain body of one mail as the file outbox writes it.
fn parse_eml(raw: &str) -> Option<MailView> {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n")?;
    let header = |name: &str| {
        head.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": "))).map(str::to_owned)
    };
    let boundary = head.lines().find_map(|l| l.split("boundary=\"").nth(1)).map(|b| b.trim_end_matches('"'));
    let body = match boundary {
        Some(b) => body.split(&format!("--{b}")).nth(1)?.split_once("\n\n")?.1.to_owned(),
        None => body.to_owned(),
    };
    Some(MailView { to: header("To")?, subject: header("Subject")?, body })
}
