//! `otpauth://totp/…` provisioning URIs (the "Key Uri Format" of Google Authenticator),
//! shown as a QR code at enrollment and parsed when importing a credential.
//!
//! ```
//! use twofactor::otpauth::{otpauth_uri, parse_otpauth_uri};
//! use twofactor::totp::TotpParams;
//!
//! let uri = otpauth_uri("ACME Co", "jane@example.com", b"12345678901234567890", &TotpParams::default())?;
//! assert_eq!(
//!     uri.expose(),
//!     "otpauth://totp/ACME%20Co:jane%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co"
//! );
//! let parsed = parse_otpauth_uri(uri.expose())?;
//! assert_eq!(parsed.account, "jane@example.com");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

use crate::crypto::secret::{SecretBytes, SecretString};
use crate::error::{InputError, check_len};
use crate::factors::totp::{Algorithm, TotpParams};

/// The longest issuer or account name, in characters.
pub const MAX_NAME: usize = 128;
/// The longest secret [`otpauth_uri`] writes and [`parse_otpauth_uri`] accepts, in
/// bytes (2048 bits; 160 is usual).
pub const MAX_SECRET: usize = 256;
/// The longest URI accepted by [`parse_otpauth_uri`], in bytes: more than the longest
/// [`otpauth_uri`] writes (two issuers and an account of [`MAX_NAME`] four-byte
/// characters, percent-encoded, and a secret of [`MAX_SECRET`] bytes: about 5,150), so
/// every URI this crate writes reads back.
pub const MAX_URI: usize = 8192;

/// Builds `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER`, followed by
/// `&algorithm=…`, `&digits=…` and `&period=…` only where they differ from the
/// defaults. The secret is RFC 4648 base32, uppercase, without padding; issuer and
/// account are percent-encoded (everything but RFC 3986 unreserved characters, as
/// `%XX` uppercase) and joined by a literal `:`.
///
/// The URI contains the secret, so it comes back as a [`SecretString`].
///
/// Errors: [`InputError::TooLong`] for an issuer or account over [`MAX_NAME`]
/// characters or a secret over [`MAX_SECRET`] bytes; [`InputError::Malformed`] for one that is empty, contains `:` or a
/// control character, or starts or ends with whitespace, for an empty secret, and for
/// invalid `params`.
///
/// ```
/// use twofactor::otpauth::otpauth_uri;
/// use twofactor::totp::{Algorithm, TotpParams};
///
/// let params = TotpParams::new(Algorithm::Sha256, 8, 60)?;
/// let uri = otpauth_uri("Example", "alice", b"hello", &params)?;
/// assert_eq!(
///     uri.expose(),
///     "otpauth://totp/Example:alice?secret=NBSWY3DP&issuer=Example&algorithm=SHA256&digits=8&period=60"
/// );
/// assert!(otpauth_uri("Ex:ample", "alice", b"hello", &params).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &[u8],
    params: &TotpParams,
) -> Result<SecretString, InputError> {
    check_name("issuer", issuer)?;
    check_name("account", account)?;
    if secret.is_empty() {
        return Err(InputError::malformed("secret", "must not be empty"));
    }
    if secret.len() > MAX_SECRET {
        return Err(InputError::TooLong { field: "secret", max: MAX_SECRET });
    }
    params.validate()?;

    let encoded = Zeroizing::new(BASE32_NOPAD.encode(secret));
    // Sized up front so the buffer holding the secret is never reallocated.
    let capacity = 96 + 6 * issuer.len() + 3 * account.len() + encoded.len();
    let mut uri = Zeroizing::new(String::with_capacity(capacity));
    uri.push_str("otpauth://totp/");
    percent_encode(issuer, &mut uri);
    uri.push(':');
    percent_encode(account, &mut uri);
    uri.push_str("?secret=");
    uri.push_str(&encoded);
    uri.push_str("&issuer=");
    percent_encode(issuer, &mut uri);
    let defaults = TotpParams::default();
    if params.algorithm != defaults.algorithm {
        uri.push_str("&algorithm=");
        uri.push_str(params.algorithm.as_str());
    }
    if params.digits != defaults.digits {
        uri.push_str("&digits=");
        uri.push_str(&params.digits.to_string());
    }
    if params.period != defaults.period {
        uri.push_str("&period=");
        uri.push_str(&params.period.to_string());
    }
    Ok(SecretString::new(std::mem::take(&mut *uri)))
}

/// A parsed `otpauth://totp/…` URI. `Debug` redacts the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpauthUri {
    /// The issuer, from the label prefix or the `issuer` parameter.
    pub issuer: Option<String>,
    /// The account name.
    pub account: String,
    /// The decoded key.
    pub secret: SecretBytes,
    /// Algorithm, digits and period (defaults where absent).
    pub params: TotpParams,
}

/// Parses an `otpauth://totp/LABEL?PARAMETERS` URI.
///
/// The label (`ISSUER:ACCOUNT` or `ACCOUNT`, colon literal or `%3A`, spaces after the
/// colon ignored) and the parameters are percent-decoded, rejecting bad escapes and
/// invalid UTF-8; in parameters `+` means a space. `secret` is required: base32, any
/// case, optional `=` padding, spaces ignored. `algorithm`, `digits` and `period` are
/// optional; unknown parameters are ignored, repeated ones refused. If both the label
/// prefix and the `issuer` parameter are present they must be equal. Issuer and
/// account follow the rules of [`otpauth_uri`].
///
/// Errors: [`InputError::TooLong`] over [`MAX_URI`] bytes (or a secret over
/// [`MAX_SECRET`] bytes), otherwise
/// [`InputError::Malformed`]; `hotp` URIs give "only totp is supported". Never panics.
///
/// ```
/// use twofactor::otpauth::parse_otpauth_uri;
/// use twofactor::totp::Algorithm;
///
/// let uri = "otpauth://totp/ACME%20Co:john.doe@email.com?secret=jbsw y3dp ehpk 3pxp&issuer=ACME+Co&algorithm=SHA256";
/// let parsed = parse_otpauth_uri(uri)?;
/// assert_eq!(parsed.issuer.as_deref(), Some("ACME Co"));
/// assert_eq!(parsed.account, "john.doe@email.com");
/// assert_eq!(parsed.params.algorithm, Algorithm::Sha256);
/// assert_eq!(parsed.secret.len(), 10);
/// assert!(parse_otpauth_uri("otpauth://hotp/a?secret=AAAA&counter=1").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_otpauth_uri(uri: &str) -> Result<OtpauthUri, InputError> {
    if uri.len() > MAX_URI {
        return Err(InputError::TooLong { field: "uri", max: MAX_URI });
    }
    let rest =
        strip_prefix_ignore_case(uri, "otpauth://").ok_or(InputError::malformed("uri", "not an otpauth:// URI"))?;
    if rest.contains('#') {
        return Err(InputError::malformed("uri", "fragments are not allowed"));
    }
    let (kind, rest) = rest.split_once('/').ok_or(InputError::malformed("uri", "missing label"))?;
    if kind.eq_ignore_ascii_case("hotp") {
        return Err(InputError::malformed("uri", "only totp is supported"));
    }
    if !kind.eq_ignore_ascii_case("totp") {
        return Err(InputError::malformed("uri", "unknown OTP type"));
    }
    let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (label_issuer, account) = parse_label(label)?;

    let mut q = Query::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        q.set(name, value)?;
    }

    let issuer = match (label_issuer, q.issuer) {
        (Some(a), Some(b)) if a != b => {
            return Err(InputError::malformed("issuer", "differs from the label prefix"));
        }
        (a, b) => a.or(b),
    };
    if let Some(issuer) = &issuer {
        check_name("issuer", issuer)?;
    }
    let encoded = q.secret.ok_or(InputError::malformed("secret", "missing"))?;
    let defaults = TotpParams::default();
    let params = TotpParams::new(
        q.algorithm.unwrap_or(defaults.algorithm),
        q.digits.unwrap_or(defaults.digits),
        q.period.unwrap_or(defaults.period),
    )?;
    Ok(OtpauthUri { issuer, account, secret: decode_secret(&encoded)?, params })
}

/// The recognised query parameters, each set at most once.
#[derive(Default)]
struct Query {
    secret: Option<Zeroizing<String>>,
    issuer: Option<String>,
    algorithm: Option<Algorithm>,
    digits: Option<u8>,
    period: Option<u32>,
}

impl Query {
    fn set(&mut self, name: &str, raw: &str) -> Result<(), InputError> {
        let value = |field| percent_decode(raw, field, true).map(Zeroizing::new);
        let (field, repeated) = match name {
            "secret" => ("secret", self.secret.replace(value("secret")?).is_some()),
            "issuer" => {
                let issuer = percent_decode(raw, "issuer", true)?;
                ("issuer", self.issuer.replace(issuer).is_some())
            }
            "algorithm" => {
                let alg = Algorithm::parse(&value("algorithm")?)
                    .ok_or(InputError::malformed("algorithm", "unsupported algorithm"))?;
                ("algorithm", self.algorithm.replace(alg).is_some())
            }
            "digits" => {
                let digits = parse_number(&value("digits")?, "digits")?;
                ("digits", self.digits.replace(digits).is_some())
            }
            "period" => {
                let period = parse_number(&value("period")?, "period")?;
                ("period", self.period.replace(period).is_some())
            }
            _ => return Ok(()), // e.g. `image`: not ours to judge
        };
        if repeated {
            return Err(InputError::malformed(field, "given more than once"));
        }
        Ok(())
    }
}

/// Splits a label into an optional issuer prefix and the account.
fn parse_label(label: &str) -> Result<(Option<String>, String), InputError> {
    let decoded = percent_decode(label, "label", false)?;
    let (issuer, account) = match decoded.split_once(':') {
        Some((issuer, account)) => (Some(issuer.to_owned()), account.trim_start_matches(' ')),
        None => (None, decoded.as_str()),
    };
    check_name("account", account)?;
    if let Some(issuer) = &issuer {
        check_name("issuer", issuer)?;
    }
    Ok((issuer, account.to_owned()))
}

/// Decodes a base32 secret: any case, optional `=` padding, spaces ignored.
fn decode_secret(encoded: &str) -> Result<SecretBytes, InputError> {
    let mut cleaned = Zeroizing::new(String::with_capacity(encoded.len()));
    cleaned.extend(encoded.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()));
    let unpadded = cleaned.trim_end_matches('=');
    if unpadded.is_empty() {
        return Err(InputError::malformed("secret", "must not be empty"));
    }
    // Wrapped at once, so an over-long secret is wiped when it is refused.
    let secret = BASE32_NOPAD
        .decode(unpadded.as_bytes())
        .map(SecretBytes::new)
        .map_err(|_| InputError::malformed("secret", "not valid base32"))?;
    if secret.len() > MAX_SECRET {
        return Err(InputError::TooLong { field: "secret", max: MAX_SECRET });
    }
    Ok(secret)
}

/// Checks an issuer or account name.
fn check_name(field: &'static str, value: &str) -> Result<(), InputError> {
    check_len(field, value, MAX_NAME)?;
    if value.is_empty() {
        return Err(InputError::malformed(field, "must not be empty"));
    }
    if value.contains(':') {
        return Err(InputError::malformed(field, "must not contain ':'"));
    }
    if value.trim() != value {
        return Err(InputError::malformed(field, "must not start or end with whitespace"));
    }
    if value.chars().any(char::is_control) {
        return Err(InputError::malformed(field, "must not contain control characters"));
    }
    Ok(())
}

/// A small decimal parameter (`digits`, `period`): 1 to 3 ASCII digits.
fn parse_number<T: TryFrom<u16>>(value: &str, field: &'static str) -> Result<T, InputError> {
    let bad = || InputError::malformed(field, "not a supported number");
    if value.is_empty() || value.len() > 3 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u16 = value.parse().map_err(|_| bad())?;
    T::try_from(n).map_err(|_| bad())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) { s.get(prefix.len()..) } else { None }
}

/// Appends `value` percent-encoded: RFC 3986 unreserved characters kept, every other
/// UTF-8 byte as `%XX` (uppercase hex).
fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0x0f] {
                out.extend(HEX.get(usize::from(nibble)).copied().map(char::from));
            }
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space if `plus_is_space`); a bad escape or
/// invalid UTF-8 is an error. Intermediate buffers are zeroized.
fn percent_decode(value: &str, field: &'static str, plus_is_space: bool) -> Result<String, InputError> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len()));
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(InputError::malformed(field, "bad percent escape")),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(std::mem::take(&mut *out)).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        InputError::malformed(field, "not valid UTF-8")
    })
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `otpauth_uri` fuzz target: names of non-ASCII characters grow
    /// up to 12-fold when percent-encoded, and the issuer is written twice, so a URI
    /// this crate wrote could be too long for its own parser.
    #[test]
    fn the_longest_uri_written_reads_back() -> Result<(), InputError> {
        let widest = "\u{10FFFF}".repeat(MAX_NAME); // four bytes each, twelve encoded
        let secret = [0xa5; MAX_SECRET];
        let params = TotpParams::new(Algorithm::Sha512, 8, 300)?;
        let uri = otpauth_uri(&widest, &widest, &secret, &params)?;
        assert!(uri.expose().len() > 2048 && uri.expose().len() <= MAX_URI, "{}", uri.expose().len());
        let back = parse_otpauth_uri(uri.expose())?;
        assert_eq!((back.issuer.as_deref(), back.account.as_str()), (Some(widest.as_str()), widest.as_str()));
        assert_eq!(back.secret.expose(), secret.as_slice());
        Ok(())
    }

    #[test]
    fn a_secret_over_the_bound_is_refused_both_ways() {
        let long = [1; MAX_SECRET + 1];
        let too_long = InputError::TooLong { field: "secret", max: MAX_SECRET };
        assert_eq!(otpauth_uri("A", "b", &long, &TotpParams::default()).err(), Some(too_long.clone()));
        let uri = format!("otpauth://totp/A:b?secret={}&issuer=A", data_encoding::BASE32_NOPAD.encode(&long));
        assert_eq!(parse_otpauth_uri(&uri).err(), Some(too_long));
    }
}
