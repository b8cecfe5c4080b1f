//! A file outbox: every mail becomes one RFC 5322 file in a directory. For command-line
//! tools, demos and local development, where a real mail transport is not at hand.
//!
//! Files are named `{unix_nanos:020}-{pid:010}-{seq:06}-{kind}.eml`, so sorting the
//! names gives the sending order, also when several processes share one directory.
//! Each file is written under a hidden temporary name and renamed into place, so a
//! reader never sees half a mail. Lines end in CRLF, as RFC 5322 requires.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, Zeroizing};

use crate::clock::civil_from_days;
use crate::error::MailError;
use crate::mail::{DefaultRenderer, Mailer, Message, Rendered, Renderer};

/// The default `From:` address.
const DEFAULT_FROM: &str = "twofactor@localhost";
/// RFC 5322's limit on a line, without its CRLF.
const MAX_LINE: usize = 998;
/// Bytes of UTF-8 per RFC 2047 encoded word (base64 of 45 bytes is 60 characters, so
/// each encoded word stays under 75).
const ENCODED_WORD_BYTES: usize = 45;

/// Sequence number of the mails written by this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
/// The newest timestamp handed out by this process, so names never go backwards here.
static LAST_NANOS: AtomicU64 = AtomicU64::new(0);

/// A [`Mailer`] that writes each mail as a file in a directory.
///
/// ```
/// use twofactor::mail::FileOutbox;
/// let dir = std::env::temp_dir().join(format!("twofactor-doc-outbox-{}", std::process::id()));
/// let outbox = FileOutbox::new(&dir)?.with_from("Acme <security@acme.test>")?;
/// assert_eq!(format!("{outbox:?}"), format!("FileOutbox {{ dir: {:?} }}", dir));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), twofactor::MailError>(())
/// ```
///
/// The files hold backup codes: on Unix the directory is created with mode 0700 and
/// each file with mode 0600. Writes are synchronous (small local files), so a send
/// blocks its task briefly.
pub struct FileOutbox<R = DefaultRenderer> {
    dir: PathBuf,
    from: String,
    renderer: R,
}

impl<R> fmt::Debug for FileOutbox<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileOutbox").field("dir", &self.dir).finish()
    }
}

impl FileOutbox {
    /// An outbox writing into `dir` (created if missing) with the
    /// [`DefaultRenderer`] and `From: twofactor@localhost`.
    ///
    /// # Errors
    /// [`MailError::Unavailable`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, MailError> {
        let dir = dir.into();
        create_dir(&dir)
            .map_err(|e| MailError::Unavailable(format!("cannot create the outbox {}: {e}", dir.display())))?;
        Ok(FileOutbox { dir, from: DEFAULT_FROM.to_owned(), renderer: DefaultRenderer::default() })
    }
}

impl<R: Renderer> FileOutbox<R> {
    /// Renders with `renderer` instead.
    pub fn with_renderer<R2: Renderer>(self, renderer: R2) -> FileOutbox<R2> {
        FileOutbox { dir: self.dir, from: self.from, renderer }
    }

    /// Uses `from` as the `From:` header (an address, or `Name <address>`).
    ///
    /// # Errors
    /// [`MailError::Build`] when it holds a line break or another control character.
    pub fn with_from(mut self, from: impl Into<String>) -> Result<Self, MailError> {
        let from = from.into();
        check_header("From", &from)?;
        self.from = from;
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
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        let mut rendered = self.renderer.render(message);
        let stamp = Stamp::next();
        let mail = compose(&self.from, &message.recipient().email, &rendered, &stamp);
        rendered.text.zeroize();
        if let Some(html) = rendered.html.as_mut() {
            html.zeroize();
        }
        let mail = mail?;
        self.write(&stamp.file_name(message.kind()), mail.as_bytes())
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

    fn file_name(&self, kind: &str) -> String {
        format!("{:020}-{:010}-{:06}-{kind}.eml", self.unix_nanos, self.pid, self.seq)
    }

    fn message_id(&self, from: &str) -> String {
        let domain = from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim())
            .filter(|d| !d.is_empty())
            .unwrap_or("localhost");
        format!("<{}.{}.{}@{domain}>", self.unix_nanos, self.pid, self.seq)
    }
}

/// Builds the whole mail, CRLF line endings throughout.
fn compose(from: &str, to: &str, rendered: &Rendered, stamp: &Stamp) -> Result<Zeroizing<String>, MailError> {
    check_header("From", from)?;
    check_header("To", to)?;
    check_header("Subject", &rendered.subject)?;
    let mut out = Zeroizing::new(String::new());
    let mut header = |name: &str, value: &str| -> Result<(), MailError> {
        if name.len() + 2 + value.lines().map(str::len).max().unwrap_or(0) > MAX_LINE {
            return Err(MailError::Build(format!("the {name} header is too long")));
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
        Ok(())
    };
    header("Date", &rfc5322_date(stamp.unix_nanos / 1_000_000_000))?;
    header("From", from)?;
    header("To", to)?;
    header("Subject", &encode_subject(&rendered.subject))?;
    header("Message-ID", &stamp.message_id(from))?;
    header("MIME-Version", "1.0")?;
    match &rendered.html {
        None => {
            header("Content-Type", "text/plain; charset=utf-8")?;
            header("Content-Transfer-Encoding", "8bit")?;
            out.push_str("\r\n");
            push_crlf(&mut out, &rendered.text);
        }
        Some(html) => {
            let random = crate::random::bytes::<16>().map_err(|e| MailError::Build(e.to_string()))?;
            let boundary = format!("twofactor-{}", data_encoding::HEXLOWER.encode(&random));
            header("Content-Type", &format!("multipart/alternative; boundary=\"{boundary}\""))?;
            out.push_str("\r\n");
            for (kind, body) in [("plain", &rendered.text), ("html", html)] {
                out.push_str(&format!("--{boundary}\r\nContent-Type: text/{kind}; charset=utf-8\r\n"));
                out.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
                push_crlf(&mut out, body);
            }
            out.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    Ok(out)
}

/// Rejects a header value that could inject further headers or break the mail.
fn check_header(name: &str, value: &str) -> Result<(), MailError> {
    if value.chars().any(char::is_control) {
        return Err(MailError::Build(format!("the {name} header contains a line break or control character")));
    }
    Ok(())
}

/// Appends `text` with every line ending (LF, CRLF or a lone CR) as CRLF, ending in
/// CRLF.
fn push_crlf(out: &mut String, text: &str) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
}

/// The subject as is when ASCII, otherwise as folded RFC 2047 encoded words.
fn encode_subject(subject: &str) -> String {
    if subject.is_ascii() {
        return subject.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > ENCODED_WORD_BYTES {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    let encoded: Vec<String> =
        words.iter().map(|w| format!("=?utf-8?B?{}?=", data_encoding::BASE64.encode(w.as_bytes()))).collect();
    encoded.join("\r\n ")
}

/// `Fri, 27 Nov 2026 19:18:48 +0000`.
fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days % 7).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m.saturating_sub(1)).unwrap_or(0).min(11)];
    format!("{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Role;
    use crate::clock::Timestamp;
    use crate::mail::{CodeReason, Recipient};
    use crate::secret::SecretString;

    const CODE: &str = "K7QX-M2PD-9WRT-H4NB";

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

    #[tokio::test]
    async fn writes_an_rfc5322_mail_with_the_code_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path().join("out")).unwrap();
        outbox.send(&code_mail("alice@example.test")).await.unwrap();
        let all = mails(outbox.dir());
        assert_eq!(all.len(), 1);
        let (name, mail) = &all[0];
        assert!(name.ends_with("-backup_code.setup.eml"), "{name}");
        assert_eq!(header(mail, "To"), Some("alice@example.test"));
        assert_eq!(header(mail, "From"), Some("twofactor@localhost"));
        assert_eq!(header(mail, "Subject"), Some("Your twofactor backup code"));
        assert_eq!(header(mail, "MIME-Version"), Some("1.0"));
        // The default templates have an HTML alternative: the mail is multipart/alternative.
        let content_type = header(mail, "Content-Type").unwrap();
        assert!(content_type.starts_with("multipart/alternative; boundary="), "{content_type}");
        assert!(header(mail, "Message-ID").unwrap().ends_with("@localhost>"));
        let date = header(mail, "Date").unwrap();
        assert!(date.ends_with(" +0000") && date.len() == "Fri, 27 Nov 2026 19:18:48 +0000".len(), "{date}");
        // Every line ends in CRLF; no bare LF or CR anywhere.
        assert_eq!(mail.matches('\n').count(), mail.matches("\r\n").count());
        assert_eq!(mail.matches('\r').count(), mail.matches("\r\n").count());
        let plain = mail.split("text/plain; charset=utf-8\r\n").nth(1).unwrap().split("\r\n--twofactor-").next();
        assert!(plain.unwrap().split("\r\n").any(|l| l == CODE), "{mail}");
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
        outbox.send(&code_mail("alice@example.test")).await.unwrap();
        let (_, mail) = mails(dir.path()).pop().unwrap();
        assert_eq!(header(&mail, "Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(header(&mail, "Content-Transfer-Encoding"), Some("8bit"));
        assert!(mail.ends_with(&format!("\r\n\r\nintro\r\n\r\n{CODE}\r\n\r\nbye\r\n")), "{mail}");
    }

    #[tokio::test]
    async fn names_sort_in_sending_order_and_no_temp_files_remain() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap();
        let kinds = ["backup_code.setup", "reset", "backup_code.setup", "reset", "reset"];
        for kind in kinds {
            let m = if kind == "reset" { reset_mail() } else { code_mail("alice@example.test") };
            outbox.send(&m).await.unwrap();
        }
        let sent: Vec<String> = mails(dir.path()).into_iter().map(|(n, _)| n).collect();
        let sent_kinds: Vec<&str> =
            sent.iter().map(|n| n.rsplit_once('-').unwrap().1.trim_end_matches(".eml")).collect();
        assert_eq!(sent_kinds, kinds);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), kinds.len(), "leftover temporary files");
    }

    #[tokio::test]
    async fn concurrent_senders_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = std::sync::Arc::new(FileOutbox::new(dir.path()).unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.send(&reset_mail()).await })
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
            let err = outbox.send(&code_mail(email)).await.unwrap_err();
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
        let err = outbox.with_renderer(Injecting).send(&reset_mail()).await.unwrap_err();
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
        let outbox =
            FileOutbox::new(dir.path()).unwrap().with_from("Acme <security@acme.test>").unwrap().with_renderer(Fancy);
        outbox.send(&reset_mail()).await.unwrap();
        let (_, mail) = mails(dir.path()).pop().unwrap();
        assert_eq!(header(&mail, "From"), Some("Acme <security@acme.test>"));
        assert!(header(&mail, "Message-ID").unwrap().ends_with("@acme.test>"));
        let subject = header(&mail, "Subject").unwrap();
        assert!(subject.starts_with("=?utf-8?B?") && subject.is_ascii(), "{subject}");
        assert!(mail.contains("\r\n\r\nline one\r\nline two\r\nline three\r\n--"), "{mail}");
        let ct = header(&mail, "Content-Type").unwrap();
        let boundary = ct.strip_prefix("multipart/alternative; boundary=\"").unwrap().trim_end_matches('"');
        assert!(mail.contains(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n")));
        assert!(mail.contains(&format!("--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n")));
        assert!(mail.ends_with(&format!("--{boundary}--\r\n")));
        assert_eq!(mail.matches('\n').count(), mail.matches("\r\n").count());
    }

    #[test]
    fn encoded_subject_words_stay_short_and_round_trip() {
        let subject = "ü".repeat(100);
        let encoded = encode_subject(&subject);
        let mut decoded = Vec::new();
        for word in encoded.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
            let b64 = word.strip_prefix("=?utf-8?B?").unwrap().strip_suffix("?=").unwrap();
            decoded.extend(data_encoding::BASE64.decode(b64.as_bytes()).unwrap());
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_111_111_109), "Fri, 18 Mar 2005 01:58:29 +0000");
        assert_eq!(rfc5322_date(1_795_807_128), "Fri, 27 Nov 2026 19:18:48 +0000");
    }

    #[test]
    fn debug_shows_only_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path()).unwrap().with_from("secret-sender@acme.test").unwrap();
        let shown = format!("{outbox:?}");
        assert_eq!(shown, format!("FileOutbox {{ dir: {:?} }}", dir.path()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(dir.path().join("new")).unwrap();
        outbox.send(&code_mail("alice@example.test")).await.unwrap();
        assert_eq!(fs::metadata(outbox.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        let (name, _) = mails(outbox.dir()).pop().unwrap();
        assert_eq!(fs::metadata(outbox.dir().join(name)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
