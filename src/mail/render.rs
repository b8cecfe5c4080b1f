//! Rendering a [`Message`] into a mail, and the default templates ([`DefaultRenderer`]).
//! Applications replace them by implementing [`Renderer`].

use crate::mail::Message;
use crate::mail::templates::Voice;

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
/// The product name and the support contact (where users report a mail they did not
/// expect) come from the application.
///
/// Every mail a user might not expect (rotation, reissue, reset, throttling, lock, new
/// location, and setup itself, since someone with the password could enroll) says how
/// to report it. In plain text each backup code stands alone on its own line;
/// interpolated values are kept to one line there and HTML-escaped in the HTML part.
///
/// ```
/// use twofactor::mail::{DefaultRenderer, Renderer};
/// let r = DefaultRenderer::new("Acme", "security@acme.test");
/// assert_eq!(r.product(), "Acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRenderer {
    product: String,
    support: String,
}

impl Default for DefaultRenderer {
    fn default() -> Self {
        DefaultRenderer::new("twofactor", "your administrator")
    }
}

impl DefaultRenderer {
    /// Templates naming `product` and telling users to report surprises to `support`.
    pub fn new(product: impl Into<String>, support: impl Into<String>) -> Self {
        DefaultRenderer { product: product.into(), support: support.into() }
    }

    /// The product name.
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
        Voice { product: &self.product, support: &self.support }.render(message)
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
