//! The demo's store, mailer and hashing offload: the one place to switch parts.
//!
//! Every run starts empty: a SQLite file in the run's data directory under an
//! ephemeral key ring (nothing outlives the run, so there is no key file to keep).

use std::error::Error;
use std::path::Path;

use twofactor::offload::{Job, JobFuture, Offload};
use twofactor::{Engine, MemoryMailer, SqliteStore};

/// The store the demo runs on.
pub type DemoStore = SqliteStore;
/// The mailer the demo sends through.
pub type DemoMailer = MemoryMailer;
/// The engine over them.
pub type DemoEngine = Engine<DemoStore, DemoMailer>;

/// Opens the store and the mailer under `data_dir`, and the mailbox view of what was sent.
pub async fn open(data_dir: &Path) -> Result<(DemoStore, DemoMailer, Mailbox), Box<dyn Error>> {
    let db = data_dir.join("twofactor.db");
    if db.exists() {
        return Err(format!("{} exists: the demo starts from an empty data directory", db.display()).into());
    }
    let mailer = MemoryMailer::new();
    Ok((SqliteStore::open(&db).await?, mailer.clone(), Mailbox(mailer)))
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

/// Read access to the mails sent.
#[derive(Clone)]
pub struct Mailbox(MemoryMailer);

impl Mailbox {
    /// Every mail sent, newest first.
    pub fn newest_first(&self) -> Vec<MailView> {
        let mut mails: Vec<MailView> = self
            .0
            .outbox()
            .into_iter()
            .map(|m| MailView {
                to: m.message.recipient().email.clone(),
                subject: m.rendered.subject,
                body: m.rendered.text,
            })
            .collect();
        mails.reverse();
        mails
    }
}
