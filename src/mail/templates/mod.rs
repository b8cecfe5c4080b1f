//! The default wording of every message kind, written once as neutral blocks and laid
//! out as plain text and HTML by [`layout`].

pub(crate) mod escape;
mod layout;

use crate::mail::{CodeReason, Message, Rendered};
use layout::{Block, Document};

/// The product name (none when empty) and support contact the wording refers to.
pub(crate) struct Branding<'a> {
    pub product: &'a str,
    pub support: &'a str,
}

impl Branding<'_> {
    /// How to report a mail the user did not expect.
    /// `unexpected` starts the sentence: "If you did not …".
    fn report(&self, unexpected: &str) -> Block {
        Block::Warning(format!(
            "{unexpected}, someone else may know your password: change it now and report this to {}.",
            self.support
        ))
    }

    /// Lays out a document as the text and HTML alternatives.
    pub fn render(&self, message: &Message) -> Rendered {
        let doc = self.compose(message);
        Rendered { subject: doc.subject.clone(), text: doc.text(), html: Some(doc.html()) }
    }

    fn compose(&self, message: &Message) -> Document {
        // "your Acme account", or "your account" when the application names no product.
        let p = if self.product.is_empty() { String::new() } else { format!("{} ", self.product) };
        let (subject, blocks) = match message {
            Message::BackupCode { to, reason, codes, expires_at } => {
                let user = &to.username;
                let (subject, intro, what) = match reason {
                    CodeReason::Setup => (
                        format!("Your {p}backup code"),
                        format!("Two-factor authentication is now on for your {p}account {user}."),
                        "If you did not turn it on yourself",
                    ),
                    CodeReason::Rotated => (
                        format!("Your new {p}backup code"),
                        format!(
                            "Your backup code was just used to sign in to your {p}account {user}, so it no longer \
                             works. Here is its replacement."
                        ),
                        "If you did not just sign in with your backup code",
                    ),
                    CodeReason::Reissued => (
                        format!("Your new {p}backup code"),
                        format!(
                            "A new backup code was requested for your {p}account {user}. Your previous code no \
                             longer works."
                        ),
                        "If you did not ask for a new code",
                    ),
                };
                let mut blocks = vec![
                    Block::Para(intro),
                    Block::Para("If you cannot use your authenticator app, sign in with this backup code:".to_owned()),
                    Block::Codes(codes.iter().map(|c| c.expose().to_owned()).collect()),
                    Block::Para(
                        "Each code works once; after you use it we email you a new one. Keep this email safe and \
                         never share the code."
                            .to_owned(),
                    ),
                ];
                if let Some(at) = expires_at {
                    blocks.push(Block::Para(format!("This code expires at {at} (UTC).")));
                }
                blocks.push(self.report(what));
                (subject, blocks)
            }
            Message::TwoFactorReset { to, by, by_role, at } => (
                format!("Two-factor authentication was reset on your {p}account"),
                vec![
                    Block::Para(format!(
                        "Two-factor authentication for your {p}account {} was reset by {by} ({by_role}) at {at} (UTC).",
                        to.username
                    )),
                    Block::Para(
                        "Your authenticator app, your backup code and your remembered devices no longer work. You can \
                         sign in with your password and set up two-factor authentication again."
                            .to_owned(),
                    ),
                    Block::Warning(format!(
                        "If you did not ask for this reset, someone may be trying to take over your account: contact \
                         {} at once and change your password.",
                        self.support
                    )),
                ],
            ),
            Message::Throttled { to, until } => (
                format!("Failed sign-in attempts on your {p}account"),
                vec![
                    Block::Para(format!(
                        "There were several failed attempts to sign in to your {p}account {}. Sign-in is paused \
                         until {until} (UTC).",
                        to.username
                    )),
                    self.report("If these attempts were not yours"),
                ],
            ),
            Message::SecondFactorLocked { to, at } => (
                format!("Two-factor sign-in locked on your {p}account"),
                vec![
                    Block::Para(format!(
                        "After too many wrong codes, two-factor sign-in for your {p}account {} was locked at {at} \
                         (UTC). An administrator must reset it before you can sign in again.",
                        to.username
                    )),
                    self.report("If these attempts were not yours"),
                ],
            ),
            Message::NewLocation { to, location, at } => (
                format!("New sign-in to your {p}account"),
                vec![
                    Block::Para(format!(
                        "Your {p}account {} was signed in to from a new device or location at {at} (UTC): {location}.",
                        to.username
                    )),
                    self.report("If you did not just sign in"),
                ],
            ),
            Message::AuthenticatorAdded { to, name, at } => (
                format!("An authenticator was added to your {p}account"),
                vec![
                    Block::Para(format!(
                        "An authenticator named \"{name}\" was added to your {p}account {} at {at} (UTC). Codes from \
                         it now sign you in, as codes from your other authenticators do.",
                        to.username
                    )),
                    self.report("If you did not add it"),
                ],
            ),
            Message::AuthenticatorRemoved { to, name, at } => (
                format!("An authenticator was removed from your {p}account"),
                vec![
                    Block::Para(format!(
                        "The authenticator named \"{name}\" was removed from your {p}account {} at {at} (UTC). Its \
                         codes no longer sign you in.",
                        to.username
                    )),
                    self.report("If you did not remove it"),
                ],
            ),
            Message::TwoFactorDisabled { to, at } => (
                format!("Two-factor authentication was turned off on your {p}account"),
                vec![
                    Block::Para(format!(
                        "Two-factor authentication was turned off for your {p}account {} at {at} (UTC). Your \
                         authenticator apps, your backup code and your remembered devices no longer work; your \
                         password alone now signs you in. You can turn it on again at any time.",
                        to.username
                    )),
                    self.report("If you did not turn it off"),
                ],
            ),
            Message::Unlocked { to, by, by_role, at } => (
                format!("Sign-in was unlocked on your {p}account"),
                vec![
                    Block::Para(format!(
                        "{by} ({by_role}) cleared the failed sign-in attempts on your {p}account {} at {at} (UTC), \
                         and with them any pause or lock they had caused. Your authenticator apps and your backup \
                         code work as before.",
                        to.username
                    )),
                    Block::Warning(format!(
                        "If you did not ask for this, someone may be trying to take over your account: contact {} at \
                         once and change your password.",
                        self.support
                    )),
                ],
            ),
        };
        Document { subject, blocks, signature: self.product.to_owned() }
    }
}

#[cfg(test)]
mod tests;
