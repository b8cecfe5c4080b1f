//! Default plain-text templates. Applications replace them by implementing [`Renderer`].

use crate::mail::{CodeReason, Message};

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

/// The default templates: the product name and a support contact come from the
/// application.
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

    fn not_you(&self) -> String {
        format!("If this was not you, someone may know your password: change it and report this to {}.", self.support)
    }
}

impl Renderer for DefaultRenderer {
    fn render(&self, message: &Message) -> Rendered {
        let p = &self.product;
        let (subject, body) = match message {
            Message::BackupCode { to, reason, codes, expires_at } => {
                let (subject, intro) = match reason {
                    CodeReason::Setup => (
                        format!("Your {p} backup code"),
                        format!("Two-factor authentication is now set up for {}.", to.username),
                    ),
                    CodeReason::Rotated => (
                        format!("Your new {p} backup code"),
                        "You just logged in with your backup code, so it no longer works. Here is its replacement."
                            .to_owned(),
                    ),
                    CodeReason::Reissued => (
                        format!("Your new {p} backup code"),
                        "You asked for a new backup code. Your previous code no longer works.".to_owned(),
                    ),
                };
                let mut body = format!("{intro}\n\nUse this code once if you cannot use your authentication app:\n\n");
                for code in codes {
                    body.push_str(code.expose());
                    body.push('\n');
                }
                body.push_str("\nEach code works once; after you use it we send a new one. Keep this mail safe.\n");
                if let Some(at) = expires_at {
                    body.push_str(&format!("This code expires at {at}.\n"));
                }
                if *reason != CodeReason::Setup {
                    body.push('\n');
                    body.push_str(&self.not_you());
                    body.push('\n');
                }
                (subject, body)
            }
            Message::TwoFactorReset { to, by, by_role, at } => (
                format!("Two-factor authentication was reset on your {p} account"),
                format!(
                    "Two-factor authentication for {} was reset by {by} ({by_role}) at {at}.\n\
                     Your authenticator app, backup code and remembered locations no longer work.\n\
                     You can log in with your password and set up two-factor authentication again.\n\n\
                     If you did not ask for this, contact {} at once.\n",
                    to.username, self.support
                ),
            ),
            Message::Throttled { to, until } => (
                format!("Failed sign-in attempts on your {p} account"),
                format!(
                    "There were several failed attempts to sign in as {}. Sign-in is paused until {until}.\n\n{}\n",
                    to.username,
                    self.not_you()
                ),
            ),
            Message::SecondFactorLocked { to, at } => (
                format!("Two-factor sign-in locked on your {p} account"),
                format!(
                    "After too many failed attempts, two-factor sign-in for {} was locked at {at}.\n\
                     An administrator must reset it before you can sign in again.\n\n{}\n",
                    to.username,
                    self.not_you()
                ),
            ),
            Message::NewLocation { to, location, at } => (
                format!("New sign-in to your {p} account"),
                format!("{} signed in from a new location at {at}: {location}.\n\n{}\n", to.username, self.not_you()),
            ),
        };
        Rendered { subject, text: body, html: None }
    }
}
