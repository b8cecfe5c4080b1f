//! Turning a rendered message into an RFC 5322 mail.

use lettre::Address;
use lettre::message::{Mailbox, MultiPart, SinglePart};

use crate::error::MailError;
use crate::mail::{Recipient, Rendered};

/// A mail from `from` to `to`: Date, a fresh Message-ID and MIME-Version headers; a
/// `multipart/alternative` body (text, then HTML) when the renderer gave HTML, else a
/// single `text/plain` part. lettre picks each part's transfer encoding.
pub(crate) fn build(from: &Mailbox, to: &Recipient, rendered: &Rendered) -> Result<lettre::Message, MailError> {
    let address: Address =
        to.email.parse().map_err(|_| MailError::Build("the recipient's email address is invalid".to_owned()))?;
    let builder = lettre::Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, address))
        .subject(rendered.subject.as_str())
        .message_id(None);
    let built = match &rendered.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(rendered.text.clone())),
    };
    built.map_err(|e| MailError::Build(format!("the message could not be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(html: Option<&str>) -> Rendered {
        Rendered { subject: "Hello".to_owned(), text: "Body\n".to_owned(), html: html.map(str::to_owned) }
    }

    fn to(email: &str) -> Recipient {
        Recipient { username: "alice".to_owned(), email: email.to_owned() }
    }

    fn from() -> Mailbox {
        "Acme <no-reply@example.com>".parse().unwrap()
    }

    #[test]
    fn builds_multipart_alternative_when_there_is_html() {
        let m = build(&from(), &to("alice@example.com"), &rendered(Some("<p>Body</p>"))).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        for header in [
            "From: Acme <no-reply@example.com>",
            "To: alice@example.com",
            "Subject: Hello",
            "Date: ",
            "Message-ID: <",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative;",
        ] {
            assert!(raw.contains(header), "{header} missing:\n{raw}");
        }
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8")
                && raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.find("text/plain") < raw.find("text/html"), "text first, HTML last (preferred)");
    }

    #[test]
    fn builds_a_single_text_part_without_html() {
        let m = build(&from(), &to("alice@example.com"), &rendered(None)).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8") && !raw.contains("multipart"), "{raw}");
        let envelope = m.envelope();
        assert_eq!(envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(), ["alice@example.com"]);
        assert_eq!(envelope.from().map(ToString::to_string).as_deref(), Some("no-reply@example.com"));
    }

    #[test]
    fn a_bad_recipient_address_is_a_build_error() {
        for bad in ["not an address", "a@b@c", "", "alice@example.com\r\nBcc: x@evil.test"] {
            assert!(matches!(build(&from(), &to(bad), &rendered(None)), Err(MailError::Build(_))), "{bad:?}");
        }
    }
}
