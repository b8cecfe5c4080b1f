//! The demo's store, mailer and hashing offload: the one place to switch parts.
//!
//! Every run starts empty: a SQLite file and a file outbox (one `.eml` per mail) in
//! the run's data directory, under an ephemeral key ring (nothing outlives the run, so
//! there is no key file to keep).

use std::error::Error;
use std::path::{Path, PathBuf};

use twofactor::mail::{DefaultRenderer, FileOutbox};
use twofactor::offload::{Job, JobFuture, Offload};
use twofactor::{Engine, SqliteStore};

/// The store the demo runs on.
pub type DemoStore = SqliteStore;
/// The mailer the demo sends through.
pub type DemoMailer = FileOutbox;
/// The engine over them.
pub type DemoEngine = Engine<DemoStore, DemoMailer>;

/// Opens the store and the mailer under `data_dir`, and the mailbox view of what was sent.
pub async fn open(data_dir: &Path) -> Result<(DemoStore, DemoMailer, Mailbox), Box<dyn Error>> {
    let db = data_dir.join("twofactor.db");
    if db.exists() {
        return Err(format!("{} exists: the demo starts from an empty data directory", db.display()).into());
    }
    let outbox = data_dir.join("outbox");
    let mailer = FileOutbox::new(&outbox)?
        .with_renderer(DefaultRenderer::new("Acme", "your administrator"))
        .with_from("Acme <security@acme.example>")?;
    Ok((SqliteStore::open(&db).await?, mailer, Mailbox(outbox)))
}

/// Runs hashing on tokio's blocking pool (the engine bounds how many at once).
///
/// With the crate's `tokio` feature this is `twofactor::offload::TokioOffload::new()`;
/// the demo keeps its own few lines so that `cargo run --example web` needs no flag.
pub fn offload() -> impl Offload {
    SpawnBlocking
}

struct SpawnBlocking;

impl Offload for SpawnBlocking {
    fn run(&self, job: Job) -> JobFuture {
        Box::pin(async move {
            // A panicking job shows up as a missing result in the engine.
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }
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
