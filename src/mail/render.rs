//! Rendering a [`Message`] into a mail, and the default templates ([`DefaultRenderer`]).
//! Applications replace them by implementing [`Renderer`].
//!
//! Also the one place a [`Rendered`] message becomes an RFC 5322 mail ([`compose`]),
//! shared by every mailer that writes MIME (SMTP and the file outbox).

use std::time::SystemTime;

use lettre::Address;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use crate::error::MailError;
use crate::mail::templates::Branding;
use crate::mail::{Message, Recipient};
use crate::outbox::MailId;
use crate::policy::Policy;

/// A rendered message: subject, plain text and an optional HTML alternative.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML alternative, if the renderer makes one.
    pub html: Option<String>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold a backup code.
        f.debug_struct("Rendered").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Turns a [`Message`] into a mail.
pub trait Renderer: Send + Sync {
    /// Renders one message.
    fn render(&self, message: &Message) -> Rendered;
}

/// The default templates: plain text plus an HTML alternative for every message kind.
///
/// The product name is the policy's issuer ([`Policy::issuer`]), the name authenticator
/// apps show: set it once with [`PolicyBuilder::issuer`](crate::PolicyBuilder::issuer)
/// and build the templates from the policy with [`DefaultRenderer::for_policy`], so the
/// code in the app and every mail say the same name. The support contact (where users
/// report a mail they did not expect) comes from the application.
///
/// Every mail a user might not expect (rotation, reissue, reset, throttling, lock, new
/// location, and setup itself, since someone with the password could enroll) says how
/// to report it. In plain text each backup code stands alone on its own line;
/// interpolated values are kept to one line there and HTML-escaped in the HTML part.
///
/// ```
/// use twofactor::Policy;
/// use twofactor::mail::{DefaultRenderer, Renderer};
/// let policy = Policy::builder().issuer("Example Co").build()?;
/// let r = DefaultRenderer::for_policy(&policy).with_support("security@example.test");
/// assert_eq!(r.product(), "Example Co");
/// assert_eq!(r.support(), "security@example.test");
/// # Ok::<(), twofactor::InputError>(())
/// ```
///
/// [`DefaultRenderer::default`] names no product ("Your backup code"): the library's
/// own name never appears in an application's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRenderer {
    product: String,
    support: String,
}

/// The support contact when the application gives none.
const DEFAULT_SUPPORT: &str = "your administrator";

impl Default for DefaultRenderer {
    /// No product name, and "your administrator" as the support contact.
    fn default() -> Self {
        DefaultRenderer::new("", DEFAULT_SUPPORT)
    }
}

impl DefaultRenderer {
    /// Templates naming the policy's product ([`Policy::issuer`]) and telling users to
    /// report surprises to "your administrator" (change it with
    /// [`with_support`](DefaultRenderer::with_support)).
    pub fn for_policy(policy: &Policy) -> Self {
        DefaultRenderer::new(policy.issuer(), DEFAULT_SUPPORT)
    }

    /// Templates naming `product` (none when empty) and telling users to report
    /// surprises to `support`.
    ///
    /// Prefer [`DefaultRenderer::for_policy`], which takes the name from the policy so it
    /// is written once.
    pub fn new(product: impl Into<String>, support: impl Into<String>) -> Self {
        DefaultRenderer { product: product.into(), support: support.into() }
    }

    /// The same templates with `support` as the contact for unexpected mail.
    #[must_use]
    pub fn with_support(mut self, support: impl Into<String>) -> Self {
        self.support = support.into();
        self
    }

    /// The product name (empty when none).
    pub fn product(&self) -> &str {
        &self.product
    }

    /// The support contact.
    pub fn support(&self) -> &str {
        &self.support
    }
}

impl Renderer for DefaultRenderer {
    fn render(&self, message: &Message) -> Rendered {
        Branding { product: &self.product, support: &self.support }.render(message)
    }
}

impl<R: Renderer + ?Sized> Renderer for std::sync::Arc<R> {
    fn render(&self, message: &Message) -> Rendered {
        (**self).render(message)
    }
}

impl<R: Renderer + ?Sized> Renderer for Box<R> {
    fn render(&self, message: &Message) -> Rendered {
        (**self).render(message)
    }
}

/// The Message-ID header of queued message `id` sent from `from`: `<id@domain>`, the
/// same on every try, so a duplicate is recognisable.
pub(crate) fn message_id(id: MailId, from: &Mailbox) -> String {
    format!("<{id}@{}>", from.email.domain())
}

/// Composes the RFC 5322 mail for `rendered`, from `from` to `to`, with lettre's
/// message builder: Date (`date`), Message-ID (`message_id`, or a fresh one), MIME-Version;
/// a `multipart/alternative` body (text, then HTML) when the renderer gave HTML, else a
/// single `text/plain` part. lettre picks each part's transfer encoding (7bit when every
/// line is short ASCII, else quoted-printable or base64), so no line exceeds 78
/// characters, and encodes a non-ASCII subject as RFC 2047 words.
///
/// # Errors
/// [`MailError::Build`] when the recipient's address is invalid, the subject holds a
/// line break or another control character, or lettre refuses the message.
pub(crate) fn compose(
    from: &Mailbox,
    to: &Recipient,
    rendered: &Rendered,
    message_id: Option<String>,
    date: SystemTime,
) -> Result<lettre::Message, MailError> {
    let address: Address =
        to.email.parse().map_err(|_| MailError::Build("the recipient's email address is invalid".to_owned()))?;
    if rendered.subject.chars().any(char::is_control) {
        return Err(MailError::Build("the subject contains a line break or control character".to_owned()));
    }
    let builder = lettre::Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, address))
        .subject(rendered.subject.as_str())
        .date(date)
        .message_id(message_id);
    // Quoted-printable always: lettre would pick base64 for a body with much non-ASCII
    // text (a label, a name), and the code line must stay readable in the raw file as
    // 0.1.0's 8bit mail was (the CLI tells its users to read it there).
    let part = |content_type: ContentType, body: &str| {
        SinglePart::builder()
            .header(content_type)
            .header(ContentTransferEncoding::QuotedPrintable)
            .body(body.to_owned())
    };
    let text = part(ContentType::TEXT_PLAIN, &rendered.text);
    let built = match &rendered.html {
        Some(html) => {
            builder.multipart(MultiPart::alternative().singlepart(text).singlepart(part(ContentType::TEXT_HTML, html)))
        }
        None => builder.singlepart(text),
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
        "Example Co <no-reply@example.com>".parse().unwrap()
    }

    fn build(from: &Mailbox, to: &Recipient, rendered: &Rendered) -> Result<lettre::Message, MailError> {
        compose(from, to, rendered, None, SystemTime::now())
    }

    #[test]
    fn builds_multipart_alternative_when_there_is_html() {
        let m = build(&from(), &to("alice@example.com"), &rendered(Some("<p>Body</p>"))).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        for header in [
            "From: \"Example Co\" <no-reply@example.com>",
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
    fn the_given_message_id_and_date_are_used() {
        let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_807_128);
        let m = compose(&from(), &to("alice@example.com"), &rendered(None), Some("<1.2.3@example.com>".into()), date)
            .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <1.2.3@example.com>\r\n"), "{raw}");
        assert!(raw.contains("Date: Fri, 27 Nov 2026 19:18:48 +0000\r\n"), "{raw}");
    }

    #[test]
    fn a_bad_recipient_address_or_subject_is_a_build_error() {
        for bad in ["not an address", "a@b@c", "", "alice@example.com\r\nBcc: x@evil.test"] {
            assert!(matches!(build(&from(), &to(bad), &rendered(None)), Err(MailError::Build(_))), "{bad:?}");
        }
        let mut injecting = rendered(None);
        injecting.subject = "hi\r\nBcc: eve@evil.test".to_owned();
        assert!(matches!(build(&from(), &to("alice@example.com"), &injecting), Err(MailError::Build(_))));
    }
}
