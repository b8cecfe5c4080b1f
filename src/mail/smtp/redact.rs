//! Keeping SMTP credentials out of error messages.
//!
//! lettre's errors include the server's reply text, and a server may echo what it was
//! sent (an `AUTH` line is the password in base64). Every message derived from a
//! transport error passes through [`Redactor::clean`].

use data_encoding::BASE64;
use zeroize::Zeroizing;

use crate::mail::templates::escape::one_line;

/// The longest server-derived detail kept in an error message.
const MAX_DETAIL: usize = 300;

/// The forms in which the credentials could appear in a server's reply.
#[derive(Default)]
pub(crate) struct Redactor {
    needles: Vec<Zeroizing<String>>,
}

impl Redactor {
    /// Watches for `password` in clear, in base64 (AUTH LOGIN) and inside the AUTH
    /// PLAIN blob with `username`.
    pub fn new(username: &str, password: &str) -> Self {
        if password.is_empty() {
            return Redactor::default();
        }
        let plain = Zeroizing::new(format!("\0{username}\0{password}"));
        let needles = [
            password.to_owned(),
            BASE64.encode(password.as_bytes()),
            BASE64.encode(plain.as_bytes()),
            // An unpadded echo of the blob.
            BASE64.encode(plain.as_bytes()).trim_end_matches('=').to_owned(),
        ];
        Redactor { needles: needles.into_iter().map(Zeroizing::new).collect() }
    }

    /// `text` with every credential form replaced by `[REDACTED]`, control characters
    /// turned into spaces, and cut to a sane length.
    pub fn clean(&self, text: &str) -> String {
        let mut out = one_line(text);
        for needle in &self.needles {
            if !needle.is_empty() {
                out = out.replace(needle.as_str(), "[REDACTED]");
            }
        }
        if out.chars().count() > MAX_DETAIL {
            out = out.chars().take(MAX_DETAIL).collect::<String>() + "…";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_password_in_every_form() {
        let r = Redactor::new("mailer", "s3cr3t-pa55");
        let b64 = BASE64.encode(b"s3cr3t-pa55");
        let blob = BASE64.encode(b"\0mailer\0s3cr3t-pa55");
        let text = format!("535 bad: s3cr3t-pa55 / {b64} / AUTH PLAIN {blob} / {}", blob.trim_end_matches('='));
        let clean = r.clean(&text);
        assert!(!clean.contains("s3cr3t"), "{clean}");
        assert!(!clean.contains(&b64) && !clean.contains(blob.trim_end_matches('=')), "{clean}");
        assert_eq!(clean.matches("[REDACTED]").count(), 4, "{clean}");
    }

    #[test]
    fn keeps_ordinary_replies_and_flattens_lines() {
        let r = Redactor::new("mailer", "s3cr3t-pa55");
        assert_eq!(r.clean("4.3.0 try again\r\nlater"), "4.3.0 try again  later");
        assert_eq!(Redactor::default().clean("550 5.1.1 rejected"), "550 5.1.1 rejected");
    }

    #[test]
    fn cuts_long_replies() {
        let clean = Redactor::default().clean(&"x".repeat(1_000));
        assert_eq!(clean.chars().count(), MAX_DETAIL + 1);
    }
}
