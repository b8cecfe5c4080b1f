//! A file outbox: every mail becomes one RFC 5322 file in a directory. For command-line
//! tools, demos and local development, where a real mail transport is not at hand.
//!
//! Files are named `{unix_nanos:020}-{pid:010}-{seq:06}-{kind}.eml`, so sorting the
//! names gives the sending order, also when several processes share one directory.
//! Each file is written under a hidden temporary name and renamed into place, so a
//! reader never sees half a mail. The mail is composed exactly as the SMTP mailer
//! composes it (lettre's message builder): CRLF line endings, transfer encodings that
//! keep every line within 78 characters.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::Mailbox;
use zeroize::{Zeroize, Zeroizing};

use crate::error::MailError;
use crate::mail::render::{compose, message_id};
use crate::mail::{DefaultRenderer, Mailer, Message, MessageKind, Renderer};
use crate::outbox::MailId;

/// The default `From:` address.
const DEFAULT_FROM: &str = "no-reply@localhost";

/// Sequence number of the mails written by this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
/// The newest timestamp handed out by this process, so names never go backwards here.
static LAST_NANOS: AtomicU64 = AtomicU64::new(0);

/// A [`Mailer`] that writes each mail as a file in a directory.
///
/// ```
/// use twofactor::Policy;
/// use twofactor::mail::{DefaultRenderer, FileOutbox};
/// let policy = Policy::builder().issuer("Example Co").build()?;
/// let dir = std::env::temp_dir().join(format!("twofactor-doc-outbox-{}", std::process::id()));
/// let outbox = FileOutbox::new(&dir)?
///     .with_renderer(DefaultRenderer::for_policy(&policy).with_support("security@example.test"))
///     .with_from("Example Co <security@example.test>")?;
/// assert_eq!(format!("{outbox:?}"), format!("FileOutbox {{ dir: {:?} }}", dir));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The files hold backup codes: on Unix the directory is created with mode 0700 and
/// each file with mode 0600. Writes are synchronous (small local files), so a send
/// blocks its task briefly.
pub struct FileOutbox<R = DefaultRenderer> {
    dir: PathBuf,
    from: Mailbox,
    renderer: R,
}

impl<R> fmt::Debug for FileOutbox<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileOutbox").field("dir", &self.dir).finish()
    }
}

impl FileOutbox {
    /// An outbox writing into `dir` (created if missing) with the
    /// [`DefaultRenderer::default`] templates (no product name; see
    /// [`with_renderer`](FileOutbox::with_renderer) and
    /// [`DefaultRenderer::for_policy`]) and `From: no-reply@localhost`.
    ///
    /// # Errors
    /// [`MailError::Unavailable`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, MailError> {
        let dir = dir.into();
        create_dir(&dir)
            .map_err(|e| MailError::Unavailable(format!("cannot create the outbox {}: {e}", dir.display())))?;
        let from = DEFAULT_FROM.parse().map_err(|e| MailError::Build(format!("the default From address: {e}")))?;
        Ok(FileOutbox { dir, from, renderer: DefaultRenderer::default() })
    }
}

impl<R: Renderer> FileOutbox<R> {
    /// Renders with `renderer` instead (your own templates, or
    /// [`DefaultRenderer::for_policy`] for your product name and support contact).
    pub fn with_renderer<R2: Renderer>(self, renderer: R2) -> FileOutbox<R2> {
        FileOutbox { dir: self.dir, from: self.from, renderer }
    }

    /// Uses `from` as the `From:` header (an address, or `Name <address>`).
    ///
    /// # Errors
    /// [`MailError::Build`] when it is not a valid mailbox (this includes any line break
    /// or other control character).
    pub fn with_from(mut self, from: impl AsRef<str>) -> Result<Self, MailError> {
        self.from = from
            .as_ref()
            .parse()
            .map_err(|e| MailError::Build(format!("the From address is not a valid mailbox: {e}")))?;
        Ok(self)
    }

    /// The directory mails are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, name: &str, contents: &[u8]) -> std::io::Result<()> {
        let temp = self.dir.join(format!(".{name}.tmp"));
        let written = write_new(&temp, contents).and_then(|()| fs::rename(&temp, self.dir.join(name)));
        if written.is_err() {
            // Best effort: the error that matters is the one returned.
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

impl<R: Renderer> Mailer for FileOutbox<R> {
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        let mut rendered = self.renderer.render(message);
        let stamp = Stamp::next();
        let date = UNIX_EPOCH + Duration::from_nanos(stamp.unix_nanos);
        let built = compose(&self.from, message.recipient(), &rendered, Some(message_id(id, &self.from)), date);
        // The bodies hold the backup code: wipe our copies (lettre's own are beyond reach).
        rendered.text.zeroize();
        rendered.html.zeroize();
        // The formatted mail holds the backup code: wiped when dropped.
        let mail = Zeroizing::new(built?.formatted());
        self.write(&stamp.file_name(message.kind()), &mail)
            .map_err(|e| MailError::Unavailable(format!("cannot write to the outbox {}: {e}", self.dir.display())))
    }
}

#[cfg(unix)]
fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// What makes one mail's file name and Message-ID unique and ordered.
struct Stamp {
    unix_nanos: u64,
    pid: u32,
    seq: u64,
}

impl Stamp {
    fn next() -> Stamp {
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let update = |last: u64| Some(now.max(last.saturating_add(1)));
        let previous = LAST_NANOS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, update).unwrap_or_else(|p| p);
        Stamp {
            unix_nanos: now.max(previous.saturating_add(1)),
            pid: std::process::id(),
            seq: SEQUENCE.fetch_add(1, Ordering::SeqCst),
        }
    }

    fn file_name(&self, kind: MessageKind) -> String {
        format!("{:020}-{:010}-{:06}-{kind}.eml", self.unix_nanos, self.pid, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Role;
    use crate::crypto::secret::SecretString;
    use crate::mail::Rendered;
    use crate::mail::{CodeReason, Recipient};
    use crate::plumbing::clock::Timestamp;

    const CODE: &str = "K7QX-M2PD-9WRT-H4NB";
    const ID: MailId = MailId([0xab; 16]);

    fn to(email: &str) -> Recipient {
        Recipient { username: "alice".to_owned(), email: email.to_owned() }
    }

    fn code_mail(email: &str) -> Message {
        Message::BackupCode {
            to: to(email),
            reason: CodeReason::Setup,
            codes: vec![SecretString::from(CODE)],
            expires_at: None,
        }
    }

    fn reset_mail() -> Message {
        Message::TwoFactorReset {
            to: to("alice@example.test"),
            by: "bob".to_owned(),
            by_role: Role::Admin,
            at: Timestamp(0),
        }
    }

    /// The `.eml` files in `dir`, sorted by name, as text.
    fn mails(dir: &Path) -> Vec<(String, String)> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".eml"))
            .collect();
        names.sort();
        names.into_iter().map(|n| (n.clone(), fs::read_to_string(dir.join(&n)).unwrap())).collect()
    }

    fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
        let head = mail.split("\r\n\r\n").next()?;
        head.split("\r\n").find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    /// The body of the part (or single-part mail) whose Content-Type starts with `mime`,
    /// after its transfer encoding, with the encoding.
    fn part(mail: &str, mime: &str) -> (String, String) {
        let start = mail.find(&format!("Content-Type: {mime}")).unwrap_or_else(|| panic!("no {mime} in {mail}"));
        let (head, rest) = mail[start..].split_once("\r\n\r\n").unwrap();
        let body = rest.split("\r\n--").next().unwrap();
        let encoding = head.split("\r\n").find_map(|l| l.strip_prefix("Content-Transfer-Encoding: ")).unwrap();
        let decoded = match encoding {
            "7bit" => body.to_owned(),
            "quoted-printable" => {
                let joined = body.replace("=\r\n", "");
                let mut bytes = Vec::new();
                let raw = joined.as_bytes();
                let mut i = 0;
                while i < raw.len() {
                    if raw[i] == b'=' {
                        bytes.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap());
                        i += 3;
                    } else {
                        bytes.push(raw[i]);
                        i += 1;
                    }
                }
                String::from_utf8(bytes).unwrap()
            }
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                String::from_utf8(data_encoding::BASE64.decode(compact.as_bytes()).unwrap()).unwrap()
            }
            other => panic!("unexpected transfer encoding {other}"),
        };
        (encoding.to_owned(), decoded)
    }

    #[tokio::test]
    async fn writes_an_rfc5322_mail_with_the_code_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path().join("out")).unwrap();
        outbox.send(ID, &code_mail("alice@example.test")).await.unwrap();
        let all = mails(outbox.dir());
        assert_eq!(all.len(), 1);
        let (name, mail) = &all[0];
        assert!(name.ends_with("-backup_code.setup.eml"), "{name}");
        assert_eq!(header(mail, "To"), Some("alice@example.test"));
        assert_eq!(header(mail, "From"), Some("no-reply@localhost"));
        // The default templates name no product (never the library's own name).
        assert_eq!(header(mail, "Subject"), Some("Your backup code"));
        assert!(!mail.contains("twofactor"), "{mail}");
        assert_eq!(header(mail, "MIME-Version"), Some("1.0"));
        // The default templates have an HTML alternative: the mail is multipart/alternative.
        let content_type = header(mail, "Content-Type").unwrap();
        assert!(content_type.starts_with("multipart/alternative;"), "{content_type}");
        // The queued message's id: the same on every try of the message.
        assert_eq!(header(mail, "Message-ID"), Some("<abababababababababababababababab@localhost>"));
        let date = header(mail, "Date").unwrap();
        assert!(date.ends_with(" +0000") && date.len() == "Fri, 27 Nov 2026 19:18:48 +0000".len(), "{date}");
        // Every line ends in CRLF; no bare LF or CR anywhere; no line over 78 characters.
        assert_eq!(mail.matches('\n').count(), mail.matches("\r\n").count());
        assert_eq!(mail.matches('\r').count(), mail.matches("\r\n").count());
        assert!(mail.split("\r\n").all(|l| l.len() <= 78), "{mail}");
        let (_, plain) = part(mail, "text/plain");
        assert!(plain.split("\r\n").any(|l| l == CODE), "{mail}");
    }

    #[tokio::test]
    async fn a_text_only_renderer_gives_a_text_plain_mail() {
        struct Plain;
        impl Renderer for Plain {
            fn render(&self, _: &Message) -> Rendered {
                Rendered { subject: "s".to_owned(), text: format!("intro\n\n{CODE}\n\nbye"), html: None }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap().with_renderer(Plain);
        outbox.send(ID, &code_mail("alice@example.test")).await.unwrap();
        let (_, mail) = mails(dir.path()).pop().unwrap();
        assert_eq!(header(&mail, "Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(header(&mail, "Content-Transfer-Encoding"), Some("quoted-printable"));
        assert!(mail.ends_with(&format!("\r\n\r\nintro\r\n\r\n{CODE}\r\n\r\nbye\r\n")), "{mail:?}");
    }

    #[tokio::test]
    async fn long_lines_are_encoded_within_78_characters() {
        struct Long;
        impl Renderer for Long {
            fn render(&self, _: &Message) -> Rendered {
                let long = "word ".repeat(600);
                let unicode = "Zoë ".repeat(700);
                Rendered {
                    subject: format!("Subject {}", "ü".repeat(120)),
                    text: format!("{long}\n{CODE}\n{unicode}"),
                    html: Some(format!("<p>{long}</p><p>{unicode}</p>")),
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap().with_renderer(Long);
        outbox.send(ID, &code_mail("alice@example.test")).await.unwrap();
        let (_, mail) = mails(dir.path()).pop().unwrap();
        assert!(mail.split("\r\n").all(|l| l.len() <= 78), "{mail}");
        let (encoding, text) = part(&mail, "text/plain");
        assert_ne!(encoding, "7bit");
        assert!(text.split("\r\n").any(|l| l == CODE), "{text}");
        assert!(text.contains(&"Zoë ".repeat(700)));
        let (_, html) = part(&mail, "text/html");
        assert!(html.starts_with("<p>word word"), "{html}");
    }

    #[tokio::test]
    async fn names_sort_in_sending_order_and_no_temp_files_remain() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap();
        let (setup, reset) = (MessageKind::BackupCodeSetup, MessageKind::TwoFactorReset);
        let kinds = [setup, reset, setup, reset, reset];
        for kind in kinds {
            let m = if kind == reset { reset_mail() } else { code_mail("alice@example.test") };
            assert_eq!(m.kind(), kind);
            outbox.send(ID, &m).await.unwrap();
        }
        let sent: Vec<String> = mails(dir.path()).into_iter().map(|(n, _)| n).collect();
        let sent_kinds: Vec<&str> =
            sent.iter().map(|n| n.rsplit_once('-').unwrap().1.trim_end_matches(".eml")).collect();
        assert_eq!(sent_kinds, kinds.map(MessageKind::as_str), "the names end with the kinds' stable names");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), kinds.len(), "leftover temporary files");
    }

    #[tokio::test]
    async fn concurrent_senders_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = std::sync::Arc::new(FileOutbox::new(dir.path()).unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.send(ID, &reset_mail()).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(mails(dir.path()).len(), 32);
    }

    #[tokio::test]
    async fn header_injection_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap();
        for email in ["alice@example.test\r\nBcc: eve@evil.test", "alice@example.test\nBcc: eve@evil.test"] {
            let err = outbox.send(ID, &code_mail(email)).await.unwrap_err();
            assert!(matches!(err, MailError::Build(_)), "{err:?}");
        }
        let err = FileOutbox::new(dir.path()).unwrap().with_from("a@b.test\rBcc: eve@evil.test").unwrap_err();
        assert!(matches!(err, MailError::Build(_)));
        struct Injecting;
        impl Renderer for Injecting {
            fn render(&self, _: &Message) -> Rendered {
                Rendered { subject: "hi\r\nBcc: eve@evil.test".to_owned(), text: "x".to_owned(), html: None }
            }
        }
        let err = outbox.with_renderer(Injecting).send(ID, &reset_mail()).await.unwrap_err();
        assert!(matches!(err, MailError::Build(_)));
        assert!(mails(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn custom_renderer_from_html_and_unicode_subject() {
        struct Fancy;
        impl Renderer for Fancy {
            fn render(&self, _: &Message) -> Rendered {
                Rendered {
                    subject: "Ihr Sicherheitscode für Ärzte-Portal".to_owned(),
                    text: "line one\nline two\r\nline three".to_owned(),
                    html: Some("<p>hello</p>".to_owned()),
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path())
            .unwrap()
            .with_from("Example Co <security@example.test>")
            .unwrap()
            .with_renderer(Fancy);
        outbox.send(ID, &reset_mail()).await.unwrap();
        let (_, mail) = mails(dir.path()).pop().unwrap();
        assert_eq!(header(&mail, "From"), Some("\"Example Co\" <security@example.test>"));
        assert!(header(&mail, "Message-ID").unwrap().ends_with("@example.test>"));
        let subject = header(&mail, "Subject").unwrap();
        assert!(subject.to_ascii_lowercase().contains("=?utf-8?b?") && subject.is_ascii(), "{subject}");
        let (_, text) = part(&mail, "text/plain");
        assert_eq!(text, "line one\r\nline two\r\nline three");
        let (_, html) = part(&mail, "text/html");
        assert_eq!(html, "<p>hello</p>");
        // The Content-Type header may be folded: the boundary is the first quoted value.
        let boundary = mail.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(mail.contains(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n")));
        assert!(mail.contains(&format!("--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n")));
        assert!(mail.ends_with(&format!("--{boundary}--\r\n")));
        assert_eq!(mail.matches('\n').count(), mail.matches("\r\n").count());
    }

    #[test]
    fn debug_shows_only_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap().with_from("secret-sender@example.test").unwrap();
        let shown = format!("{outbox:?}");
        assert_eq!(shown, format!("FileOutbox {{ dir: {:?} }}", dir.path()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path().join("new")).unwrap();
        outbox.send(ID, &code_mail("alice@example.test")).await.unwrap();
        assert_eq!(fs::metadata(outbox.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        let (name, _) = mails(outbox.dir()).pop().unwrap();
        assert_eq!(fs::metadata(outbox.dir().join(name)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
