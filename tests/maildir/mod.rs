//! Reading the SMTP sink's maildir (see scripts/README.md): one `.eml` per accepted
//! message, the envelope prepended as `X-Envelope-From` / `X-Envelope-To` headers.
//! A small RFC 5322 / MIME reader: unfolded headers, multipart bodies, and
//! quoted-printable / base64 transfer encodings.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The sink's URL and maildir, from the environment `scripts/with-services` sets.
/// Panics when they are missing: these tests never skip silently.
pub fn sink() -> (String, PathBuf) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the SMTP tests under scripts/with-services (see scripts/README.md)")
        })
    };
    let url = var("TWOFACTOR_TEST_SMTP_URL");
    let maildir = PathBuf::from(var("TWOFACTOR_TEST_SMTP_MAILDIR"));
    assert!(maildir.is_dir(), "TWOFACTOR_TEST_SMTP_MAILDIR={} is not a directory", maildir.display());
    (url, maildir)
}

/// One MIME part (or a whole single-part message): headers and the decoded body.
#[derive(Debug, Clone)]
pub struct Part {
    /// Header (name, value) pairs in order, unfolded.
    pub headers: Vec<(String, String)>,
    /// The body after transfer decoding (for a multipart: the raw body).
    pub body: String,
}

impl Part {
    /// Parses headers + body from CRLF text and decodes the body.
    pub fn parse(raw: &str) -> Part {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a continuation line follows a header");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            } else {
                panic!("not a header line: {line:?}");
            }
        }
        let mut part = Part { headers, body: String::new() };
        part.body = match part.header("Content-Transfer-Encoding").map(str::to_ascii_lowercase).as_deref() {
            Some("base64") => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                String::from_utf8(data_encoding::BASE64.decode(compact.as_bytes()).expect("base64")).expect("utf-8")
            }
            Some("quoted-printable") => decode_quoted_printable(body),
            _ => body.to_owned(),
        };
        part
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header of that name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The media type, lower-cased, without parameters (`text/plain` by default).
    pub fn mime_type(&self) -> String {
        self.header("Content-Type")
            .map_or("text/plain".to_owned(), |v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
    }

    /// A Content-Type parameter (quotes removed).
    pub fn content_type_param(&self, name: &str) -> Option<String> {
        let value = self.header("Content-Type")?;
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    /// The parts of a multipart body, in order.
    pub fn subparts(&self) -> Vec<Part> {
        let boundary = self.content_type_param("boundary").expect("a multipart has a boundary");
        let delimiter = format!("--{boundary}");
        let body = self.body.split(&format!("{delimiter}--")).next().expect("closing delimiter");
        body.split(&delimiter)
            .skip(1) // the preamble
            .map(|chunk| Part::parse(chunk.trim_start_matches("\r\n").trim_end_matches("\r\n")))
            .collect()
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let mut lines = body.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft) = match line.strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let raw = line.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'=' && i + 2 < raw.len() {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).expect("hex");
                bytes.push(u8::from_str_radix(hex, 16).expect("a =XX escape"));
                i += 3;
            } else {
                bytes.push(raw[i]);
                i += 1;
            }
        }
        if !soft && lines.peek().is_some() {
            bytes.extend_from_slice(b"\r\n");
        }
    }
    String::from_utf8(bytes).expect("utf-8")
}

/// A message the sink stored.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The file it came from.
    pub file: PathBuf,
    /// The whole message (envelope headers included).
    pub message: Part,
}

impl Mail {
    /// The envelope sender.
    pub fn envelope_from(&self) -> &str {
        self.message.header("X-Envelope-From").expect("envelope sender")
    }

    /// The accepted envelope recipients.
    pub fn envelope_to(&self) -> Vec<&str> {
        self.message.headers_named("X-Envelope-To")
    }

    /// The decoded text/plain part (the part itself for a single-part message).
    pub fn text(&self) -> String {
        self.part("text/plain").body
    }

    /// The decoded part of that media type.
    pub fn part(&self, mime: &str) -> Part {
        if self.message.mime_type() == mime {
            return self.message.clone();
        }
        self.message.subparts().into_iter().find(|p| p.mime_type() == mime).unwrap_or_else(|| panic!("no {mime} part"))
    }

    /// The backup codes in the text part: lines that are nothing but a code.
    pub fn codes(&self) -> Vec<String> {
        self.text().lines().filter(|l| is_code(l)).map(str::to_owned).collect()
    }
}

/// `XXXX-XXXX-XXXX-XXXX` in the backup-code alphabet.
pub fn is_code(line: &str) -> bool {
    let groups: Vec<&str> = line.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()))
}

/// Every stored mail whose envelope has `recipient`, oldest first.
pub fn mails_to(maildir: &Path, recipient: &str) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir)
        .expect("read the maildir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    let wanted = format!("<{recipient}>");
    files
        .into_iter()
        .filter_map(|file| {
            let raw = std::fs::read_to_string(&file).expect("read an .eml");
            let message = Part::parse(&raw);
            message.headers_named("X-Envelope-To").contains(&wanted.as_str()).then_some(Mail { file, message })
        })
        .collect()
}

#[test]
fn quoted_printable_decodes_escapes_and_soft_breaks() {
    assert_eq!(decode_quoted_printable("Zo=C3=AB sa=\r\nys hi\r\nbye"), "Zoë says hi\r\nbye");
}
