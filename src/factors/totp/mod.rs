//! RFC 4226 HOTP and RFC 6238 TOTP: generating and checking one-time codes.
//!
//! ```
//! use twofactor::totp::{TotpCode, TotpKey, TotpParams, TotpVerification, Window, generate, verify};
//!
//! let secret = b"12345678901234567890";
//! let params = TotpParams::default();
//! let now = 1_111_111_109;
//! let shown = generate(secret, &params, now); // what the authenticator app displays
//!
//! let key = TotpKey::new(params.algorithm, secret);
//! let code = TotpCode::parse(shown.expose(), params.digits)?;
//! let outcome = verify(&key, &params, Window::default(), &code, now, None);
//! assert_eq!(outcome, TotpVerification::Accepted { step: params.step_at(now) });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod sha1_hmac;

use std::fmt;
use std::ops::RangeInclusive;

use hmac::Hmac;
use hmac::digest::{Digest, Key, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::secret::SecretString;
use crate::error::{InputError, check_len};

/// The HMAC hash function of a TOTP key.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1, the RFC 4226 default and the only one every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `"SHA1"`, `"SHA256"` or `"SHA512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses a name as written by [`Algorithm::as_str`], ignoring ASCII case.
    ///
    /// ```
    /// use twofactor::totp::Algorithm;
    /// assert_eq!(Algorithm::parse("sha256"), Some(Algorithm::Sha256));
    /// assert_eq!(Algorithm::parse("MD5"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512].into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// The parameters of a TOTP credential.
///
/// Build checked values with [`TotpParams::new`]; [`verify`] rejects every code when
/// the (public) fields were set to values that `new` would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotpParams {
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// The number of digits of a code: 6 or 8.
    pub digits: u8,
    /// The length of a time step in seconds: 15 to 300.
    pub period: u32,
}

impl Default for TotpParams {
    /// SHA-1, 6 digits, 30 seconds: what every authenticator app supports.
    fn default() -> Self {
        TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
    }
}

impl TotpParams {
    /// Checked parameters: `digits` must be 6 or 8 and `period` 15 to 300 seconds.
    ///
    /// ```
    /// use twofactor::totp::{Algorithm, TotpParams};
    /// assert!(TotpParams::new(Algorithm::Sha256, 8, 60).is_ok());
    /// assert!(TotpParams::new(Algorithm::Sha1, 7, 30).is_err());
    /// assert!(TotpParams::new(Algorithm::Sha1, 6, 0).is_err());
    /// ```
    pub fn new(algorithm: Algorithm, digits: u8, period: u32) -> Result<Self, InputError> {
        let params = TotpParams { algorithm, digits, period };
        params.validate()?;
        Ok(params)
    }

    /// The time step containing `unix_secs` (`unix_secs / period`). A `period` of 0,
    /// which [`TotpParams::new`] refuses, is treated as 1 rather than panicking.
    ///
    /// ```
    /// use twofactor::totp::TotpParams;
    /// assert_eq!(TotpParams::default().step_at(59), 1);
    /// ```
    pub fn step_at(&self, unix_secs: u64) -> u64 {
        unix_secs / u64::from(self.period.max(1))
    }

    pub(crate) fn validate(&self) -> Result<(), InputError> {
        if !valid_digits(self.digits) {
            return Err(InputError::malformed("digits", "must be 6 or 8"));
        }
        if !(15..=300).contains(&self.period) {
            return Err(InputError::malformed("period", "must be 15 to 300 seconds"));
        }
        Ok(())
    }
}

fn valid_digits(digits: u8) -> bool {
    digits == 6 || digits == 8
}

/// The time steps accepted around the current one, to allow for clock drift and
/// for the time a person takes to type. Default: one step back, none ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Window {
    /// Steps accepted before the current one (at most [`Window::MAX`]).
    pub back: u8,
    /// Steps accepted after the current one (at most [`Window::MAX`]).
    pub ahead: u8,
}

impl Window {
    /// The largest `back` or `ahead`; [`verify`] clamps larger field values to it.
    pub const MAX: u8 = 10;

    /// A checked window.
    ///
    /// ```
    /// use twofactor::totp::Window;
    /// assert_eq!(Window::new(1, 1).map(|w| w.ahead), Ok(1));
    /// assert!(Window::new(11, 0).is_err());
    /// ```
    pub fn new(back: u8, ahead: u8) -> Result<Self, InputError> {
        if back > Self::MAX || ahead > Self::MAX {
            return Err(InputError::malformed("window", "at most 10 steps each way"));
        }
        Ok(Window { back, ahead })
    }
}

impl Default for Window {
    fn default() -> Self {
        Window { back: 1, ahead: 0 }
    }
}

/// A canonical TOTP code as typed by a person: exactly `digits` ASCII digits.
///
/// Zeroized on drop; `Debug` prints `TotpCode(REDACTED)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TotpCode {
    /// ASCII digits in `digits[..len]` (no heap allocation, so no stray copies).
    digits: [u8; 8],
    len: u8,
}

impl TotpCode {
    /// The longest input accepted by [`TotpCode::parse`], in characters.
    pub const MAX_INPUT: usize = 32;

    /// Canonicalises user input once: surrounding whitespace is trimmed, ASCII spaces
    /// are removed, and a single dash between groups (`"123-456"`) is allowed. What
    /// remains must be exactly `digits` ASCII digits; `digits` must be 6 or 8.
    ///
    /// Errors: [`InputError::TooLong`] over [`TotpCode::MAX_INPUT`] characters (checked
    /// first), otherwise [`InputError::Malformed`] with field `"code"`.
    ///
    /// ```
    /// use twofactor::totp::TotpCode;
    /// assert_eq!(TotpCode::parse(" 123 456\n", 6)?.as_str(), "123456");
    /// assert_eq!(TotpCode::parse("1234-5678", 8)?.as_str(), "12345678");
    /// assert!(TotpCode::parse("12a456", 6).is_err());
    /// assert!(TotpCode::parse("12345", 6).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(input: &str, digits: u8) -> Result<Self, InputError> {
        check_len("code", input, Self::MAX_INPUT)?;
        if !valid_digits(digits) {
            return Err(InputError::malformed("code", "unsupported number of digits"));
        }
        let wanted = usize::from(digits);
        let trimmed = input.trim().as_bytes();
        let last = trimmed.len().saturating_sub(1);
        let mut code = TotpCode { digits: [0; 8], len: 0 };
        let mut dash_seen = false;
        for (i, &b) in trimmed.iter().enumerate() {
            match b {
                b'0'..=b'9' if usize::from(code.len) < wanted => {
                    if let Some(slot) = code.digits.get_mut(usize::from(code.len)) {
                        *slot = b;
                    }
                    code.len += 1;
                }
                b'0'..=b'9' => return Err(InputError::malformed("code", "wrong number of digits")),
                b' ' => {}
                b'-' if !dash_seen && i > 0 && i < last => dash_seen = true,
                b'-' => return Err(InputError::malformed("code", "misplaced separator")),
                _ => return Err(InputError::malformed("code", "only digits are allowed")),
            }
        }
        if usize::from(code.len) != wanted {
            return Err(InputError::malformed("code", "wrong number of digits"));
        }
        Ok(code)
    }

    /// The canonical digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored, so this never falls back.
        self.digits.get(..usize::from(self.len)).and_then(|d| std::str::from_utf8(d).ok()).unwrap_or("")
    }

    /// The digits as a number, without branching on their values (at most 8 digits,
    /// so it fits a `u32`; the leading zeros a code may have do not matter, because
    /// the caller has already checked its length).
    fn value(&self) -> u32 {
        self.as_str().bytes().fold(0u32, |acc, b| acc.wrapping_mul(10).wrapping_add(u32::from(b.wrapping_sub(b'0'))))
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode(REDACTED)")
    }
}

/// A keyed HMAC state, one variant per [`Algorithm`].
#[derive(Clone)]
enum KeyedMac {
    Sha1(sha1_hmac::Sha1Hmac),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// A TOTP key prepared for verification: the HMAC key schedule is computed once and
/// reused for each time step. SHA-1 keys take a hand-written HMAC on `sha1::compress`
/// that computes the steps of a window side by side; SHA-256/512 keys use the `hmac`
/// crate.
///
/// The key bytes are not kept. The precomputed HMAC state is as sensitive as the key:
/// for SHA-1 (the default) it is zeroized on drop; for SHA-256/512 it is an `hmac`
/// 0.12 state, which cannot be, so drop a `TotpKey` as soon as a check is done. Every
/// buffer derived from it here (padded key, MAC outputs) is zeroized. `Debug` shows
/// only the algorithm.
#[derive(Clone)]
pub struct TotpKey {
    algorithm: Algorithm,
    mac: KeyedMac,
}

impl TotpKey {
    /// Prepares `secret` for `algorithm` (any length; longer than a hash block is
    /// hashed first, as in RFC 2104).
    ///
    /// ```
    /// use twofactor::totp::{Algorithm, TotpKey};
    /// let key = TotpKey::new(Algorithm::Sha1, b"12345678901234567890");
    /// assert_eq!(key.code(0, 6).expose(), "755224"); // RFC 4226 Appendix D
    /// ```
    pub fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        let mac = match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(sha1_hmac::Sha1Hmac::new(secret)),
            Algorithm::Sha256 => KeyedMac::Sha256(keyed::<Hmac<Sha256>, Sha256>(secret)),
            Algorithm::Sha512 => KeyedMac::Sha512(keyed::<Hmac<Sha512>, Sha512>(secret)),
        };
        TotpKey { algorithm, mac }
    }

    /// The algorithm this key was prepared for.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The HOTP value for `counter`: RFC 4226 dynamic truncation, then modulo
    /// 10^`digits`. With `digits` of 10 or more the 31-bit truncated value itself is
    /// returned.
    ///
    /// ```
    /// use twofactor::totp::{Algorithm, TotpKey};
    /// let key = TotpKey::new(Algorithm::Sha1, b"12345678901234567890");
    /// assert_eq!(key.hotp(1, 6), 287_082);
    /// assert_eq!(key.hotp(1, 10), 1_094_287_082);
    /// ```
    pub fn hotp(&self, counter: u64, digits: u8) -> u32 {
        let mut value = 0;
        self.each_hotp(counter..=counter, digits, |_, v| value = v);
        value
    }

    /// Calls `f(counter, hotp(counter, digits))` for every counter in `counters`, in
    /// ascending order. For SHA-1 the values are computed several at a time (see
    /// `sha1_hmac`), which is what makes a window check cheaper than one HOTP after
    /// another.
    fn each_hotp(&self, counters: RangeInclusive<u64>, digits: u8, mut f: impl FnMut(u64, u32)) {
        let modulus = 10u32.checked_pow(u32::from(digits));
        let mut reduced = |counter, value: u32| f(counter, modulus.map_or(value, |m| value % m));
        match &self.mac {
            KeyedMac::Sha1(mac) => mac.each_truncated(counters, reduced),
            KeyedMac::Sha256(mac) => counters.for_each(|c| reduced(c, truncated(mac, c))),
            KeyedMac::Sha512(mac) => counters.for_each(|c| reduced(c, truncated(mac, c))),
        }
    }

    /// The HOTP code for `counter`, zero-padded to `digits` characters.
    ///
    /// ```
    /// use twofactor::totp::{Algorithm, TotpKey};
    /// let key = TotpKey::new(Algorithm::Sha1, b"12345678901234567890");
    /// assert_eq!(key.code(4, 6).expose(), "338314");
    /// ```
    pub fn code(&self, counter: u64, digits: u8) -> SecretString {
        let value = self.hotp(counter, digits);
        let mut out = String::with_capacity(usize::from(digits));
        for place in (0..u32::from(digits)).rev() {
            let digit = 10u32.checked_pow(place).map_or(0, |p| value / p % 10);
            out.extend(char::from_digit(digit, 10));
        }
        SecretString::new(out)
    }
}

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Keys an HMAC through its infallible block-sized-key constructor: RFC 2104 step 1
/// (hash a long key, zero-pad to the block size) done here, so no error path exists.
fn keyed<M: KeyInit, H: Digest>(secret: &[u8]) -> M {
    let mut block = Key::<M>::default();
    if secret.len() > block.len() {
        let mut hashed = H::digest(secret);
        block.iter_mut().zip(hashed.iter()).for_each(|(d, s)| *d = *s);
        hashed.as_mut_slice().zeroize();
    } else {
        block.iter_mut().zip(secret).for_each(|(d, s)| *d = *s);
    }
    let mac = M::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

/// HMAC(counter) then RFC 4226 dynamic truncation to 31 bits.
fn truncated<M: Mac + Clone>(mac: &M, counter: u64) -> u32 {
    let mut mac = mac.clone();
    mac.update(&counter.to_be_bytes());
    let mut out = mac.finalize().into_bytes();
    let value = dynamic_truncation(&out);
    out.as_mut_slice().zeroize();
    value
}

/// RFC 4226 dynamic truncation of a MAC to 31 bits.
fn dynamic_truncation(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = mac.get(offset..offset.saturating_add(4)) {
        word.iter_mut().zip(bytes).for_each(|(w, b)| *w = *b);
    }
    let value = u32::from_be_bytes(word) & 0x7fff_ffff;
    word.zeroize();
    value
}

/// The outcome of checking a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpVerification {
    /// The code matches `step`, which was never used before: record it as the last
    /// used step.
    Accepted {
        /// The matching time step.
        step: u64,
    },
    /// The code matches `step`, but that step is at or before the last used one.
    Replayed {
        /// The matching time step.
        step: u64,
    },
    /// The code matches no step in the window (or the inputs do not fit together).
    Rejected,
}

/// Checks `code` against every step in `[now - back, now + ahead]` around the step of
/// `unix_secs` (steps below 0 or above `u64::MAX` are skipped; `back`/`ahead` are
/// clamped to [`Window::MAX`]).
///
/// Every step in the window is computed and compared in constant time, with no early
/// exit. A match at a step `<= last_used_step` is [`TotpVerification::Replayed`], so a
/// step accepted once is never accepted again; if several steps match, the newest
/// fresh one wins. A code of the wrong length, a key whose algorithm differs from
/// `params.algorithm`, or invalid `params` give [`TotpVerification::Rejected`].
///
/// ```
/// use twofactor::totp::{TotpCode, TotpKey, TotpParams, TotpVerification, Window, generate, verify};
///
/// let secret = b"12345678901234567890";
/// let params = TotpParams::default();
/// let key = TotpKey::new(params.algorithm, secret);
/// let code = TotpCode::parse(generate(secret, &params, 1_000).expose(), 6)?;
///
/// let first = verify(&key, &params, Window::default(), &code, 1_010, None);
/// let TotpVerification::Accepted { step } = first else { unreachable!() };
/// let again = verify(&key, &params, Window::default(), &code, 1_010, Some(step));
/// assert_eq!(again, TotpVerification::Replayed { step });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(
    key: &TotpKey,
    params: &TotpParams,
    window: Window,
    code: &TotpCode,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> TotpVerification {
    if params.validate().is_err()
        || key.algorithm != params.algorithm
        || code.as_str().len() != usize::from(params.digits)
    {
        return TotpVerification::Rejected;
    }
    let now = params.step_at(unix_secs);
    let back = u64::from(window.back.min(Window::MAX));
    let ahead = u64::from(window.ahead.min(Window::MAX));
    let first = now.saturating_sub(back);
    let last = now.saturating_add(ahead);

    let mut entered = code.value();
    let (mut fresh, mut fresh_step) = (Choice::from(0), 0u64);
    let (mut used, mut used_step) = (Choice::from(0), 0u64);
    // Ascending, so the last selected match is the newest one.
    key.each_hotp(first..=last, params.digits, |step, mut expected| {
        let matches = expected.ct_eq(&entered);
        expected.zeroize();
        let is_fresh = Choice::from(u8::from(last_used_step.is_none_or(|u| step > u)));
        let m_fresh = matches & is_fresh;
        let m_used = matches & !is_fresh;
        fresh_step.conditional_assign(&step, m_fresh);
        used_step.conditional_assign(&step, m_used);
        fresh |= m_fresh;
        used |= m_used;
    });
    entered.zeroize();
    if bool::from(fresh) {
        TotpVerification::Accepted { step: fresh_step }
    } else if bool::from(used) {
        TotpVerification::Replayed { step: used_step }
    } else {
        TotpVerification::Rejected
    }
}

/// The current code for `secret`: what an authenticator app would show at
/// `unix_secs` (for tests, examples and simulations).
///
/// ```
/// use twofactor::totp::{Algorithm, TotpParams, generate};
/// let params = TotpParams::new(Algorithm::Sha1, 8, 30)?;
/// let code = generate(b"12345678901234567890", &params, 59);
/// assert_eq!(code.expose(), "94287082"); // RFC 6238 Appendix B
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn generate(secret: &[u8], params: &TotpParams, unix_secs: u64) -> SecretString {
    TotpKey::new(params.algorithm, secret).code(params.step_at(unix_secs), params.digits)
}

setters!(TotpParams { algorithm: Algorithm, digits: u8, period: u32 });
setters!(Window { back: u8, ahead: u8 });

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str, digits: u8) -> Option<String> {
        TotpCode::parse(input, digits).ok().map(|c| c.as_str().to_owned())
    }

    #[test]
    fn a_code_is_its_digits_with_spaces_and_one_inner_dash_allowed() {
        assert_eq!(parsed("123456", 6).as_deref(), Some("123456"));
        assert_eq!(parsed(" 123 456\t", 6).as_deref(), Some("123456"));
        assert_eq!(parsed("123-456", 6).as_deref(), Some("123456"));
        assert_eq!(parsed("1-23456", 6).as_deref(), Some("123456"));
        assert_eq!(parsed("12345-6", 6).as_deref(), Some("123456"));
        assert_eq!(parsed("1234-5678", 8).as_deref(), Some("12345678"));
        assert_eq!(parsed("012345", 6).as_deref(), Some("012345"), "leading zeros are digits");
        for bad in ["12345", "1234567", "12a456", "-123456", "123456-", "12-34-56", "123+456", "", "      "] {
            assert_eq!(parsed(bad, 6), None, "{bad:?}");
        }
        assert_eq!(parsed("123456", 7), None, "6 or 8 digits only");
        assert_eq!(parsed("1234567", 8), None);
    }

    #[test]
    fn a_refused_code_says_why() {
        let reason = |input: &str| match TotpCode::parse(input, 6) {
            Err(InputError::Malformed { reason, .. }) => reason,
            _ => "",
        };
        assert_eq!(reason("1234567"), "wrong number of digits");
        assert_eq!(reason("12345"), "wrong number of digits");
        assert_eq!(reason("-123456"), "misplaced separator");
        assert_eq!(reason("12-34-56"), "misplaced separator");
        assert_eq!(reason("12a456"), "only digits are allowed");
    }

    #[test]
    fn keys_and_codes_show_no_secret() -> Result<(), InputError> {
        let key = TotpKey::new(Algorithm::Sha256, b"12345678901234567890");
        assert_eq!(key.algorithm(), Algorithm::Sha256);
        assert_eq!(format!("{key:?}"), "TotpKey { algorithm: Sha256, .. }");
        assert_eq!(format!("{:?}", TotpCode::parse("123456", 6)?), "TotpCode(REDACTED)");
        Ok(())
    }

    #[test]
    fn a_step_is_the_whole_periods_since_the_epoch() {
        let p = TotpParams::default(); // 30 s
        assert_eq!((p.step_at(0), p.step_at(29), p.step_at(30), p.step_at(89)), (0, 0, 1, 2));
        assert_eq!(p.period(60).step_at(119), 1);
        assert_eq!(p.period(0).step_at(5), 5, "a zero period counts as 1");
    }
}
