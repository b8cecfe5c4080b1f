//! [`SmtpMailer`]: delivery over SMTP with lettre and rustls (feature `smtp`).
//!
//! It renders each message (plain text plus an HTML alternative with the default
//! templates), sends it in one SMTP conversation bounded by a timeout, and retries
//! transient (4xx) answers with exponential backoff within a total deadline. Errors
//! never carry the SMTP password, even when the server echoes it.
//!
//! It needs a Tokio runtime with the time and I/O drivers enabled.

mod config;
mod redact;
mod retry;

use std::error::Error as _;
use std::fmt;
use std::time::Instant;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use zeroize::{Zeroize, Zeroizing};

pub use config::{Security, SmtpConfig, SmtpConfigError};
pub use retry::{FailureKind, RetryPolicy};

use crate::error::MailError;
use crate::mail::render::{compose, message_id};
use crate::mail::{DefaultRenderer, Mailer, Message, Renderer};
use crate::outbox::MailId;
use redact::Redactor;
use retry::Failure;

/// A [`Mailer`] that delivers through an SMTP server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::Policy;
/// use twofactor::mail::{DefaultRenderer, SmtpConfig, SmtpMailer};
/// let policy = Policy::builder().issuer("Example Co").build()?;
/// let config = SmtpConfig::from_url("smtps://mailer:secret@mail.example.com", "Example Co <no-reply@example.com>")?;
/// let mailer = SmtpMailer::new(config)?
///     .with_renderer(DefaultRenderer::for_policy(&policy).with_support("security@example.com"));
/// # Ok(()) }
/// ```
pub struct SmtpMailer<R = DefaultRenderer> {
    config: SmtpConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    renderer: R,
    redactor: Redactor,
}

impl<R> fmt::Debug for SmtpMailer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SmtpMailer<DefaultRenderer> {
    /// A mailer for `config`, with the default templates naming no product (see
    /// [`with_renderer`](SmtpMailer::with_renderer) and [`DefaultRenderer::for_policy`]).
    ///
    /// # Errors
    /// [`SmtpConfigError::Tls`] when the TLS settings cannot be built.
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| SmtpConfigError::Tls(e.to_string()));
        let security = match config.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls(&config.host)?),
            Security::ImplicitTls => Tls::Wrapper(tls(&config.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
            .port(config.port)
            .tls(security)
            .timeout(Some(config.connect_timeout));
        let mut redactor = Redactor::default();
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            redactor = Redactor::new(user, password.expose());
        }
        Ok(SmtpMailer { transport: builder.build(), config, renderer: DefaultRenderer::default(), redactor })
    }

    /// Shorthand for [`SmtpConfig::from_url`] then [`SmtpMailer::new`].
    ///
    /// # Errors
    /// [`SmtpConfigError`].
    pub fn from_url(url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        SmtpMailer::new(SmtpConfig::from_url(url, from)?)
    }
}

impl<R> SmtpMailer<R> {
    /// Renders with `renderer` instead (your own templates, or
    /// [`DefaultRenderer::for_policy`] for your product name and support contact).
    pub fn with_renderer<R2: Renderer>(self, renderer: R2) -> SmtpMailer<R2> {
        SmtpMailer { config: self.config, transport: self.transport, renderer, redactor: self.redactor }
    }

    /// The configuration.
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// Describes a transport error without credentials.
    fn failure(&self, err: &lettre::transport::smtp::Error) -> Failure {
        let code = err.status().map(u16::from);
        let kind = FailureKind::of_reply(code);
        let detail = match (code, err.source()) {
            (Some(code), Some(text)) => format!("server answered {code} {}", self.redactor.clean(&text.to_string())),
            (Some(code), None) => format!("server answered {code}"),
            (None, _) if err.is_timeout() => "timed out connecting to the server".to_owned(),
            (None, _) => format!("cannot talk to the server: {}", self.redactor.clean(&err.to_string())),
        };
        Failure { kind, detail }
    }
}

impl<R: Renderer> Mailer for SmtpMailer<R> {
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        let mut rendered = self.renderer.render(message);
        let message_id = Some(message_id(id, &self.config.from));
        let built =
            compose(&self.config.from, message.recipient(), &rendered, message_id, std::time::SystemTime::now());
        // The bodies hold the backup code: wipe our copies (lettre's own are beyond reach).
        rendered.text.zeroize();
        rendered.html.zeroize();
        let mail = built?;
        let envelope = mail.envelope().clone();
        // The formatted mail holds the backup code: wiped when dropped.
        let raw = Zeroizing::new(mail.formatted());
        drop(mail);
        let policy = self.config.retry;
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let budget = policy.attempt_budget(self.config.command_timeout, started.elapsed());
            attempts += 1;
            let failure = match tokio::time::timeout(budget, self.transport.send_raw(&envelope, &raw)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(err)) => self.failure(&err),
                Err(_) => Failure {
                    kind: FailureKind::Unreachable,
                    detail: format!("no answer from the server within {} ms", budget.as_millis()),
                },
            };
            match policy.next_delay(failure.kind, attempts, started.elapsed()) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(failure.into_error(attempts)),
            }
        }
    }
}

#[cfg(test)]
mod tests;
