//! Where and how [`SmtpMailer`](super::SmtpMailer) connects: [`SmtpConfig`], read from
//! a URL.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use percent_encoding::percent_decode_str;
use url::{Host, Url};

use super::retry::RetryPolicy;
use crate::crypto::secret::SecretString;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// No TLS (`smtp://`): only for a relay on the same host or a trusted network.
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required: the send fails if
    /// the server does not offer it (`smtp://…?tls=starttls`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
}

/// A configuration the mailer cannot use. The messages never repeat the URL (it may
/// hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpConfigError {
    /// The URL does not parse.
    #[error("the SMTP URL is malformed")]
    MalformedUrl,
    /// The scheme is not `smtp` or `smtps`.
    #[error("unsupported SMTP URL scheme (use smtp:// or smtps://)")]
    UnsupportedScheme,
    /// The URL names no host.
    #[error("the SMTP URL has no host")]
    MissingHost,
    /// The URL has a path, fragment or query parameter other than `tls=starttls`.
    #[error("unsupported part in the SMTP URL (only ?tls=starttls is understood)")]
    UnsupportedPart,
    /// A user name or password is not valid percent-encoded UTF-8.
    #[error("the SMTP URL's credentials are not valid UTF-8")]
    BadCredentials,
    /// Credentials over a plain connection to a host that is not loopback.
    #[error("SMTP credentials need TLS (smtps:// or ?tls=starttls) unless the server is on loopback")]
    CredentialsWithoutTls,
    /// The From address does not parse.
    #[error("the From address is invalid")]
    InvalidFrom,
    /// The TLS settings could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// The SMTP server, credentials, From address, timeouts and retry policy of an
/// [`SmtpMailer`](super::SmtpMailer).
///
/// URL forms (user name and password percent-encoded):
///
/// | URL | connection | default port |
/// | --- | --- | --- |
/// | `smtp://host[:port]` | plain, no TLS | 25 |
/// | `smtp://[user:pass@]host[:port]?tls=starttls` | STARTTLS, required | 587 |
/// | `smtps://[user:pass@]host[:port]` | implicit TLS | 465 |
///
/// Credentials are refused on a plain connection unless the host is loopback.
/// Certificates are checked against the Mozilla roots (webpki-roots).
///
/// ```
/// use std::time::Duration;
/// use twofactor::mail::{Security, SmtpConfig};
/// let config = SmtpConfig::from_url("smtps://mailer:p%40ss@mail.example.com", "Acme <no-reply@example.com>")?
///     .command_timeout(Duration::from_secs(10));
/// assert_eq!((config.host(), config.port(), config.security()), ("mail.example.com", 465, Security::ImplicitTls));
/// assert!(!format!("{config:?}").contains("p@ss"));
/// # Ok::<(), twofactor::mail::SmtpConfigError>(())
/// ```
#[derive(Clone)]
pub struct SmtpConfig {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: Security,
    pub(super) credentials: Option<(String, SecretString)>,
    pub(super) from: Mailbox,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) retry: RetryPolicy,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.credentials.as_ref().map(|(user, _)| user))
            .field("password", &self.credentials.as_ref().map(|_| "REDACTED"))
            .field("from", &self.from.to_string())
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl SmtpConfig {
    /// Reads the server and credentials from `url` (see the table above); mail is sent
    /// from `from` (`no-reply@example.com` or `Name <no-reply@example.com>`).
    /// Timeouts: connect 5 s, one attempt 15 s; retries: [`RetryPolicy::default`].
    ///
    /// # Errors
    /// [`SmtpConfigError`]; never echoes the URL.
    pub fn from_url(url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let url = Url::parse(url).map_err(|_| SmtpConfigError::MalformedUrl)?;
        let mut starttls = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "starttls") if !starttls => starttls = true,
                _ => return Err(SmtpConfigError::UnsupportedPart),
            }
        }
        if url.fragment().is_some() || !matches!(url.path(), "" | "/") {
            return Err(SmtpConfigError::UnsupportedPart);
        }
        let (security, default_port) = match (url.scheme(), starttls) {
            ("smtp", false) => (Security::Plain, 25),
            ("smtp", true) => (Security::StartTls, 587),
            ("smtps", false) => (Security::ImplicitTls, 465),
            ("smtps", true) => return Err(SmtpConfigError::UnsupportedPart),
            _ => return Err(SmtpConfigError::UnsupportedScheme),
        };
        let (host, loopback) = match url.host() {
            // smtp is not a "special" scheme to the URL parser, so an IPv4 address comes as a domain.
            Some(Host::Domain(d)) if !d.is_empty() => {
                let loopback = d.parse::<IpAddr>().map_or(d.eq_ignore_ascii_case("localhost"), |ip| ip.is_loopback());
                (d.to_owned(), loopback)
            }
            Some(Host::Ipv4(ip)) => (ip.to_string(), ip.is_loopback()),
            Some(Host::Ipv6(ip)) => (ip.to_string(), IpAddr::from(ip).is_loopback()),
            _ => return Err(SmtpConfigError::MissingHost),
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => {
                let decode = |s: &str| {
                    percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|_| SmtpConfigError::BadCredentials)
                };
                Some((decode(user)?, SecretString::new(decode(password.unwrap_or(""))?)))
            }
        };
        if credentials.is_some() && security == Security::Plain && !loopback {
            return Err(SmtpConfigError::CredentialsWithoutTls);
        }
        let from = from.parse::<Mailbox>().map_err(|_| SmtpConfigError::InvalidFrom)?;
        Ok(SmtpConfig {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
            from,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
        })
    }

    /// Bounds establishing the TCP connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds one delivery attempt's whole SMTP conversation (connect, greeting,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA and its final reply). An attempt that
    /// runs out of time is reported as [`MailError::Unavailable`](crate::MailError)
    /// and not retried: the server may have accepted the message.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How transient (4xx) answers are retried, and the bound on the whole send.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The server's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is protected.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The user name the mailer authenticates as, if any (the password is never shown).
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// The From address, as it appears in the header.
    pub fn from_address(&self) -> String {
        self.from.to_string()
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "no-reply@example.com";

    fn parse(url: &str) -> Result<SmtpConfig, SmtpConfigError> {
        SmtpConfig::from_url(url, FROM)
    }

    #[test]
    fn schemes_pick_security_and_default_ports() {
        let c = parse("smtp://127.0.0.1").unwrap();
        assert_eq!((c.host(), c.port(), c.security()), ("127.0.0.1", 25, Security::Plain));
        let c = parse("smtp://mail.example.com?tls=starttls").unwrap();
        assert_eq!((c.port(), c.security()), (587, Security::StartTls));
        let c = parse("smtps://mail.example.com").unwrap();
        assert_eq!((c.port(), c.security()), (465, Security::ImplicitTls));
        let c = parse("smtps://mail.example.com:2465/").unwrap();
        assert_eq!(c.port(), 2465);
        let c = parse("smtp://[::1]:2525").unwrap();
        assert_eq!((c.host(), c.port()), ("::1", 2525));
    }

    #[test]
    fn credentials_are_percent_decoded_and_kept_secret() {
        let c = parse("smtps://mail%2Bbot:p%40ss%3Aw0rd@mail.example.com").unwrap();
        assert_eq!(c.username(), Some("mail+bot"));
        let (_, password) = c.credentials.as_ref().unwrap();
        assert_eq!(password.expose(), "p@ss:w0rd");
        let debug = format!("{c:?}");
        assert!(!debug.contains("p@ss") && !debug.contains("p%40ss") && !debug.contains("w0rd"), "{debug}");
        assert!(debug.contains("REDACTED") && debug.contains("mail+bot"), "{debug}");
    }

    #[test]
    fn credentials_need_tls_except_on_loopback() {
        assert_eq!(parse("smtp://u:p@mail.example.com").unwrap_err(), SmtpConfigError::CredentialsWithoutTls);
        assert!(parse("smtp://u:p@mail.example.com?tls=starttls").is_ok());
        assert!(parse("smtp://u:p@127.0.0.1:2525").is_ok());
        assert!(parse("smtp://u:p@localhost:2525").is_ok());
        assert!(parse("smtp://u:p@[::1]:2525").is_ok());
    }

    #[test]
    fn rejects_what_it_does_not_understand_without_echoing_the_url() {
        let cases = [
            ("not a url", SmtpConfigError::MalformedUrl),
            ("http://mail.example.com", SmtpConfigError::UnsupportedScheme),
            ("smtp://", SmtpConfigError::MissingHost),
            ("smtp://mail.example.com?tls=opportunistic", SmtpConfigError::UnsupportedPart),
            ("smtps://mail.example.com?tls=starttls", SmtpConfigError::UnsupportedPart),
            ("smtp://mail.example.com/path", SmtpConfigError::UnsupportedPart),
            ("smtp://mail.example.com#frag", SmtpConfigError::UnsupportedPart),
            ("smtps://u:%FF@mail.example.com", SmtpConfigError::BadCredentials),
        ];
        for (url, expected) in cases {
            let err = parse(url).unwrap_err();
            assert_eq!(err, expected, "{url}");
            assert!(!err.to_string().contains("example.com"), "{err}");
        }
        let err = parse("smtps://u:hunter2@exa mple.com").unwrap_err();
        assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn from_address_must_parse() {
        assert_eq!(
            SmtpConfig::from_url("smtp://localhost", "not an address").unwrap_err(),
            SmtpConfigError::InvalidFrom
        );
        let c = SmtpConfig::from_url("smtp://localhost", "Acme <no-reply@example.com>").unwrap();
        assert_eq!(c.from_address(), "Acme <no-reply@example.com>");
    }
}
