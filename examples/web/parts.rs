//! The demo's store, mailer and keys: the one place to switch parts. (Hashing runs on
//! the engine's own threads, its default.)
//!
//! Every run starts empty: a SQLite file and a file outbox (one `.eml` per mail) in
//! the run's data directory. With `--features smtp` and `TWOFACTOR_WEB_SMTP_URL` set,
//! mail goes through that SMTP server instead (the demo mailbox then stays empty).
//!
//! The keys that seal the TOTP secrets and pending logins are real ones, loaded as an
//! application loads them: from `TWOFACTOR_KEYS` ([`KeyRing::from_env`]: `tfk1.` keys,
//! newest first, separated by newlines or spaces) or, when it is unset, from the key
//! file `twofactor.db.key` beside the database ([`KeyRing::from_file`]), created with
//! one fresh key and mode 0600 when missing. In the default temporary data directory
//! that file goes with the database at the end of the run.

use std::error::Error;
use std::path::{Path, PathBuf};

use twofactor::mail::BoxMailer;
use twofactor::mail::{DefaultRenderer, FileOutbox};
use twofactor::store::SqliteStore;
use twofactor::{AppKey, Engine, KeyRing, Policy, StoreError};

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

/// The variable the keys are read from.
pub const KEYS_VAR: &str = "TWOFACTOR_KEYS";

/// The key file's name in the data directory, beside the database (as the CLI keeps
/// `PATH.key` beside `PATH`).
const KEY_FILE: &str = "twofactor.db.key";

/// The demo's keys, and a line for the console saying where they came from:
/// `TWOFACTOR_KEYS` when it is set, else the key file in `data_dir`.
pub fn keys(data_dir: &Path) -> Result<(KeyRing, String), Box<dyn Error>> {
    if std::env::var_os(KEYS_VAR).is_some() {
        // The message names the variable, never its value.
        let ring = KeyRing::from_env(KEYS_VAR).map_err(|e| format!("{KEYS_VAR}: {e}"))?;
        return Ok((ring, format!("keys from {KEYS_VAR}")));
    }
    key_file(&data_dir.join(KEY_FILE))
}

/// The keys in the file at `path`, created (one fresh key, mode 0600) when missing.
fn key_file(path: &Path) -> Result<(KeyRing, String), Box<dyn Error>> {
    let created = create_key_file(path)?;
    let ring = KeyRing::from_file(path).map_err(|e| match e {
        twofactor::KeyError::Read { .. } => e.to_string(),
        other => format!("key file {}: {other}", path.display()),
    })?;
    let how = if created { "a new key, mode 0600: keep it with the database" } else { "the existing key file" };
    Ok((ring, format!("keys in {} ({how}; set {KEYS_VAR} to use your own)", path.display())))
}

/// Writes a fresh key to `path` unless something is there already; `true` if it did.
fn create_key_file(path: &Path) -> Result<bool, Box<dyn Error>> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("cannot create the key file {}: {e}", path.display()).into()),
    };
    let text = AppKey::generate(1)?.to_text();
    if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.write_all(b"\n")).and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(path);
        return Err(format!("cannot write the key file {}: {e}", path.display()).into());
    }
    Ok(true)
}

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

/// Changes user `id`'s email address: `false` when there is no such user. The demo's
/// users live in [`SqliteStore`]'s own table, `twofactor_users`, whose `email` column is
/// the application's to change (the engine only reads it, at every call); an
/// application with a users table of its own updates that instead.
pub async fn set_email(store: &DemoStore, id: twofactor::UserId, email: &str) -> Result<bool, StoreError> {
    let done = twofactor::sqlx::query("UPDATE twofactor_users SET email = ? WHERE id = ?")
        .bind(email)
        .bind(id.as_str())
        .execute(store.pool())
        .await
        .map_err(StoreError::backend)?;
    Ok(done.rows_affected() == 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_file_is_created_private_and_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (ring, said) = key_file(&path).unwrap();
        assert_eq!(ring.ids(), [1]);
        assert!(said.contains(&path.display().to_string()) && said.contains("a new key"), "{said}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, ring.to_text().as_str(), "one tfk1 line");
        assert!(!said.contains(text.trim()), "the key is never shown");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, said) = key_file(&path).unwrap();
        assert_eq!(again.to_text(), ring.to_text(), "the next run reads the same key");
        assert!(said.contains("the existing key file"), "{said}");
    }

    #[tokio::test]
    async fn a_changed_email_is_what_the_engine_reads_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("twofactor.db")).await.unwrap();
        let engine = Engine::builder(store, twofactor::mail::MemoryMailer::new(), KeyRing::ephemeral().unwrap())
            .policy(Policy::builder().danger_fast_hashing().build().unwrap())
            .build()
            .unwrap();
        let alice = twofactor::NewAccount::new("alice", "alice@example.test", twofactor::Role::User, "correct horse");
        let alice = engine.create_account(alice).await.unwrap();
        assert!(set_email(engine.store(), alice, "alice@example.org").await.unwrap());
        assert_eq!(engine.account(alice).await.unwrap().unwrap().email, "alice@example.org");
        let nobody = twofactor::UserId::from(404_u64);
        assert!(!set_email(engine.store(), nobody, "x@example.org").await.unwrap(), "no such user");
    }

    #[test]
    fn a_bad_key_file_is_an_error_naming_the_file_not_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "tfk1.1.this-is-no-key\n").unwrap();
        let err = key_file(&path).err().expect("refused").to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("this-is-no-key"), "{err}");
    }
}
