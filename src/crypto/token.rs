//! The two opaque tokens the engine hands to applications: pending logins and
//! remembered locations. Both are `prefix.base64url` strings (no padding), parsed with
//! hard length limits; neither carries a password or a TOTP key, and neither names the
//! account in the clear.
//!
//! - Pending login, `pl2.` (114 to 198 characters): the claims (the user id, pending
//!   id, issue and expiry times, the account's security stamp; 42 to 105 bytes) sealed
//!   with XChaCha20-Poly1305 under the key ring: nonce (24) | ciphertext | tag (16).
//!   The user id is a byte 0 and 8 bytes for a numeric id (as every 0.1.0 id is, so
//!   such a token stays at 123 characters), else its length (1–64) and text.
//!   It names no key; every key of the ring is tried. 0.1.0's `pl1.` tokens (which
//!   showed the account id) are no longer accepted: they lived minutes.
//! - Remembered location, `loc2.` (48 characters): a random handle, location id (16) |
//!   secret (16); the account is the one logging in. 0.1.0's `loc1.` tokens (account id
//!   (8) | location id | secret) are still accepted, for their account only; the stored
//!   digest is the same for both.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::UserId;
use crate::account::RememberedLocation;
use crate::account::user_id::MAX_USER_ID_LEN;
use crate::crypto::keys::KeyRing;
use crate::crypto::random;
use crate::error::{Error, InputError};
use crate::plumbing::clock::Timestamp;

/// The longest token input accepted.
pub const MAX_TOKEN_LEN: usize = 256;

/// The pending-login format (0.1.0 wrote `pl1.`).
const PENDING_PREFIX: &str = "pl2.";
/// The associated data a pending login is sealed with.
const PENDING_LABEL: &[u8] = b"twofactor/pending-login/v2";
/// Pending id, issued, expires, stamp: what follows the user id.
const PENDING_FIXED: usize = 16 + 8 + 8 + 8;
/// Nonce and tag around the sealed claims.
const SEAL_OVERHEAD: usize = 24 + 16;
/// The remembered-location format.
const LOCATION_PREFIX: &str = "loc2.";
/// Location id, secret.
const LOCATION_LEN: usize = 16 + 16;
/// 0.1.0's remembered-location format, still accepted.
const LEGACY_LOCATION_PREFIX: &str = "loc1.";
/// Account id, location id, secret.
const LEGACY_LOCATION_LEN: usize = 8 + 16 + 16;

/// The decoded body of `prefix.base64url` input of a length in `len`, or `None`.
fn body(input: &str, prefix: &str, len: std::ops::RangeInclusive<usize>) -> Option<Zeroizing<Vec<u8>>> {
    let text = input.trim().strip_prefix(prefix)?;
    let bytes = Zeroizing::new(BASE64URL_NOPAD.decode(text.as_bytes()).ok()?);
    len.contains(&bytes.len()).then_some(bytes)
}

/// `N` bytes of `bytes` from `at` (zeros if out of range; callers check lengths first).
fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// What a pending-login token says. Authentic once opened (it is sealed under the key
/// ring); the stamp is compared with the account's when it is used. `Debug` leaves out
/// the id and the stamp.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LoginClaims {
    /// The account logging in.
    pub account: UserId,
    /// The pending login's random id (its attempt count and single use are kept under
    /// it in the account's pending marks).
    pub id: [u8; 16],
    /// When the password step issued it.
    pub issued_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The account's security stamp when the login was issued: a rotation ends it.
    pub stamp: u64,
}

impl std::fmt::Debug for LoginClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginClaims")
            .field("account", &self.account)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl LoginClaims {
    /// The plaintext that is sealed: the user id (0 and a u64 for a numeric id, else
    /// its length and text) | id | issued | expires | stamp (u64s BE).
    fn plain(&self) -> Zeroizing<Vec<u8>> {
        let mut p = Zeroizing::new(Vec::with_capacity(1 + MAX_USER_ID_LEN + PENDING_FIXED));
        match self.account.as_u64() {
            Some(n) => {
                p.push(0);
                p.extend_from_slice(&n.to_be_bytes());
            }
            None => {
                let text = self.account.as_str().as_bytes();
                // A user id is at most 64 bytes, so its length fits the byte.
                p.push(text.len() as u8);
                p.extend_from_slice(text);
            }
        }
        p.extend_from_slice(&self.id);
        p.extend_from_slice(&self.issued_at.0.to_be_bytes());
        p.extend_from_slice(&self.expires_at.0.to_be_bytes());
        p.extend_from_slice(&self.stamp.to_be_bytes());
        p
    }

    /// The token: the claims sealed under the ring's current key.
    pub fn seal(&self, keys: &KeyRing) -> Result<String, Error> {
        let sealed = keys.seal_token(PENDING_LABEL, self.plain().as_ref())?;
        Ok(format!("{PENDING_PREFIX}{}", BASE64URL_NOPAD.encode(&sealed)))
    }

    /// Opens a token. `Ok(None)` for anything that is not a pending login sealed under
    /// one of `keys` (wrong format, altered, forged, from another ring, from 0.1.0).
    ///
    /// # Errors
    /// [`InputError::TooLong`] beyond [`MAX_TOKEN_LEN`], like every text input.
    pub fn open(input: &str, keys: &KeyRing) -> Result<Option<LoginClaims>, InputError> {
        if input.len() > MAX_TOKEN_LEN {
            return Err(InputError::TooLong { field: "pending login", max: MAX_TOKEN_LEN });
        }
        let sealed_len = 2 + PENDING_FIXED + SEAL_OVERHEAD..=1 + MAX_USER_ID_LEN + PENDING_FIXED + SEAL_OVERHEAD;
        let Some(sealed) = body(input, PENDING_PREFIX, sealed_len) else {
            return Ok(None);
        };
        let Some(b) = keys.open_token(PENDING_LABEL, &sealed) else {
            return Ok(None);
        };
        let (account, at) = match b.first().copied().map(usize::from) {
            Some(0) => (Some(UserId::from(u64::from_be_bytes(take::<8>(&b, 1)))), 9),
            Some(len) => {
                (b.get(1..1 + len).and_then(|t| std::str::from_utf8(t).ok()).and_then(|t| UserId::new(t).ok()), 1 + len)
            }
            None => (None, 0),
        };
        let Some(account) = account.filter(|_| b.len() == at + PENDING_FIXED) else {
            return Ok(None);
        };
        Ok(Some(LoginClaims {
            account,
            id: take::<16>(&b, at),
            issued_at: Timestamp(u64::from_be_bytes(take::<8>(&b, at + 16))),
            expires_at: Timestamp(u64::from_be_bytes(take::<8>(&b, at + 24))),
            stamp: u64::from_be_bytes(take::<8>(&b, at + 32)),
        }))
    }
}

/// A remembered-location token: which location, and 128 secret bits.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LocationToken {
    /// The account a 0.1.0 `loc1.` token names (it must be the account logging in);
    /// `None` for a current token, which names none.
    pub legacy_account: Option<UserId>,
    /// The location's public id (stored as is, listed and revoked by it).
    pub id: [u8; 16],
    /// The secret part (stored only as a digest bound to the security stamp).
    pub secret: Zeroizing<[u8; 16]>,
}

impl LocationToken {
    /// A new token with a random id and secret.
    pub fn generate() -> Result<LocationToken, Error> {
        Ok(LocationToken {
            legacy_account: None,
            id: random::bytes::<16>()?,
            secret: Zeroizing::new(random::bytes::<16>()?),
        })
    }

    /// The `loc2.` token text.
    pub fn encode(&self) -> String {
        let mut bytes = Zeroizing::new(Vec::with_capacity(LOCATION_LEN));
        bytes.extend_from_slice(&self.id);
        bytes.extend_from_slice(self.secret.as_ref());
        format!("{LOCATION_PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    /// Parses a `loc2.` token, or a 0.1.0 `loc1.` token.
    pub fn decode(input: &str) -> Result<LocationToken, InputError> {
        if input.len() > MAX_TOKEN_LEN {
            return Err(InputError::TooLong { field: "location token", max: MAX_TOKEN_LEN });
        }
        if let Some(b) = body(input, LOCATION_PREFIX, LOCATION_LEN..=LOCATION_LEN) {
            return Ok(LocationToken {
                legacy_account: None,
                id: take::<16>(&b, 0),
                secret: Zeroizing::new(take::<16>(&b, 16)),
            });
        }
        if let Some(b) = body(input, LEGACY_LOCATION_PREFIX, LEGACY_LOCATION_LEN..=LEGACY_LOCATION_LEN) {
            return Ok(LocationToken {
                legacy_account: Some(UserId::from(u64::from_be_bytes(take::<8>(&b, 0)))),
                id: take::<16>(&b, 8),
                secret: Zeroizing::new(take::<16>(&b, 24)),
            });
        }
        Err(InputError::malformed("location token", "unknown token format"))
    }

    /// The stored digest: bound to the account's security stamp (the same for `loc1.`
    /// and `loc2.` tokens).
    pub fn hash(&self, stamp: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"twofactor/location/");
        h.update(stamp.to_be_bytes());
        h.update(self.secret.as_ref());
        h.finalize().into()
    }

    /// Whether this token opens `location` (constant-time digest compare).
    pub fn matches(&self, location: &RememberedLocation, stamp: u64) -> bool {
        let id_ok = self.id.ct_eq(&location.id);
        let hash_ok = self.hash(stamp).ct_eq(&location.token_hash);
        (id_ok & hash_ok).into()
    }
}

impl std::fmt::Debug for LocationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationToken").field("legacy", &self.legacy_account.is_some()).finish_non_exhaustive()
    }
}

/// Public, non-secret id of a remembered location, as text (32 hex digits).
pub(crate) fn location_id_text(id: &[u8; 16]) -> String {
    data_encoding::HEXLOWER.encode(id)
}

/// Parses [`location_id_text`].
pub(crate) fn parse_location_id(text: &str) -> Result<[u8; 16], InputError> {
    if text.len() != 32 {
        return Err(InputError::malformed("location id", "must be 32 hex digits"));
    }
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .map_err(|_| InputError::malformed("location id", "must be 32 hex digits"))?;
    Ok(take::<16>(&bytes, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::AppKey;

    fn claims(account: u64) -> LoginClaims {
        LoginClaims {
            account: UserId::from(account),
            id: [7; 16],
            issued_at: Timestamp(100),
            expires_at: Timestamp(400),
            stamp: 0x0102_0304_0506_0708,
        }
    }

    fn decoded_body(token: &str, prefix: &str) -> Vec<u8> {
        let body = token.strip_prefix(prefix).unwrap_or_else(|| panic!("{prefix} token: {token}"));
        BASE64URL_NOPAD.decode(body.as_bytes()).unwrap_or_else(|e| panic!("base64url: {e}"))
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn common_prefix(a: &str, b: &str) -> usize {
        a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
    }

    /// The 0.1.0 layout of a remembered-location token.
    fn encode_v1(account: UserId, id: [u8; 16], secret: [u8; 16]) -> String {
        let mut bytes = account.as_u64().map(u64::to_be_bytes).unwrap_or_default().to_vec();
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&secret);
        format!("loc1.{}", BASE64URL_NOPAD.encode(&bytes))
    }

    #[test]
    fn pending_round_trip() -> Result<(), Error> {
        let keys = KeyRing::ephemeral()?;
        let c = claims(42);
        let s = c.seal(&keys)?;
        assert!(s.starts_with("pl2."));
        assert_eq!(s.len(), 123);
        assert_eq!(LoginClaims::open(&s, &keys)?, Some(c.clone()));
        assert_eq!(LoginClaims::open(&format!(" {s}\n"), &keys)?, Some(c), "surrounding space is trimmed");
        assert_eq!(LoginClaims::open(&s[..s.len() - 1], &keys)?, None);
        assert_eq!(LoginClaims::open(&s.replacen("pl2.", "pl1.", 1), &keys)?, None);
        assert_eq!(LoginClaims::open(&s, &KeyRing::ephemeral()?)?, None, "another ring's token");
        assert_eq!(LoginClaims::open("loc2.AAAA", &keys)?, None);
        assert_eq!(LoginClaims::open("", &keys)?, None);
        assert!(matches!(LoginClaims::open(&"x".repeat(300), &keys), Err(InputError::TooLong { .. })));
        Ok(())
    }

    #[test]
    fn the_length_bound_is_max_token_len_inclusive() -> Result<(), Error> {
        let keys = KeyRing::ephemeral()?;
        let at_bound = "x".repeat(MAX_TOKEN_LEN);
        let past = "x".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(LoginClaims::open(&at_bound, &keys)?, None, "junk at the bound is read, and does not open");
        assert!(matches!(LoginClaims::open(&past, &keys), Err(InputError::TooLong { .. })));
        assert!(!matches!(LocationToken::decode(&at_bound), Err(InputError::TooLong { .. })));
        assert!(matches!(LocationToken::decode(&past), Err(InputError::TooLong { .. })));
        Ok(())
    }

    #[test]
    fn pending_claims_debug_names_the_account_and_times_only() {
        let shown = format!("{:?}", claims(42));
        assert!(shown.starts_with("LoginClaims {") && shown.contains("issued_at"), "{shown}");
        assert!(!shown.contains("stamp:") && !shown.contains("[7, 7"), "{shown}");
    }

    #[test]
    fn a_location_id_reads_back_from_its_text_and_nothing_else_does() {
        let id: [u8; 16] = core::array::from_fn(|i| (i as u8) * 17);
        let text = location_id_text(&id);
        assert_eq!(text, "00112233445566778899aabbccddeeff");
        assert_eq!(parse_location_id(&text).ok(), Some(id));
        assert_eq!(parse_location_id(&text.to_uppercase()).ok(), Some(id), "either case");
        for bad in ["", "00112233", &format!("{text}00"), "zz112233445566778899aabbccddeeff"] {
            assert!(parse_location_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_location_token_debug_shows_no_secret() -> Result<(), Error> {
        let token = LocationToken::generate()?;
        assert_eq!(format!("{token:?}"), "LocationToken { legacy: false, .. }");
        Ok(())
    }

    #[test]
    fn pending_tokens_carry_any_user_id() -> Result<(), Error> {
        let keys = KeyRing::ephemeral()?;
        let ids = [
            UserId::from(0_u64),
            UserId::from(u64::MAX),
            UserId::new("007").map_err(|_| Error::Corrupt("id"))?, // not canonical: kept as text
            UserId::new("6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55").map_err(|_| Error::Corrupt("id"))?,
            UserId::new("üser-1").map_err(|_| Error::Corrupt("id"))?,
            UserId::new(&"x".repeat(MAX_USER_ID_LEN)).map_err(|_| Error::Corrupt("id"))?,
        ];
        for account in ids {
            let c = LoginClaims { account, ..claims(1) };
            let s = c.seal(&keys)?;
            assert!(s.len() <= MAX_TOKEN_LEN, "{} characters", s.len());
            let opened = LoginClaims::open(&s, &keys)?.ok_or(Error::Corrupt("did not open"))?;
            assert_eq!(opened.account.as_str(), account.as_str());
            assert_eq!(opened, c);
        }
        Ok(())
    }

    #[test]
    fn a_pending_token_opens_under_an_older_key_of_the_ring() -> Result<(), Error> {
        let old = AppKey::generate(1)?;
        let s = claims(3).seal(&KeyRing::new(vec![old.clone()])?)?;
        let rotated = KeyRing::new(vec![old, AppKey::generate(2)?])?;
        assert_eq!(LoginClaims::open(&s, &rotated)?, Some(claims(3)));
        assert_eq!(LoginClaims::open(&s, &KeyRing::new(vec![AppKey::generate(2)?])?)?, None, "key retired");
        Ok(())
    }

    #[test]
    fn a_pending_token_reveals_nothing() -> Result<(), Error> {
        let keys = KeyRing::ephemeral()?;
        for account in [1, 42, 0x0102_0304_0506_0708, u64::MAX - 1] {
            let c = claims(account);
            let a = c.seal(&keys)?;
            let b = c.seal(&keys)?;
            assert!(a.len() <= 128 && b.len() <= 128, "{} {}", a.len(), b.len());
            for token in [&a, &b] {
                let raw = decoded_body(token, "pl2.");
                for needle in [account.to_be_bytes(), account.to_le_bytes(), c.stamp.to_be_bytes()] {
                    assert!(!contains(&raw, &needle), "{token} shows {needle:?}");
                }
                assert!(!contains(&raw, &c.id[..8]), "{token} shows the pending id");
            }
            // Same claims, unrelated text: at most a chance match of a few characters.
            assert!(common_prefix(&a["pl2.".len()..], &b["pl2.".len()..]) < 4, "{a} {b}");
        }
        Ok(())
    }

    #[test]
    fn every_single_character_change_of_a_pending_token_fails_to_open() -> Result<(), Error> {
        let keys = KeyRing::ephemeral()?;
        let s = claims(9).seal(&keys)?;
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (i, original) in s.char_indices() {
            for replacement in [alphabet.chars().find(|&c| c != original).unwrap_or('A'), '!', '='] {
                if replacement == original {
                    continue;
                }
                let mut changed = s.clone();
                changed.replace_range(i..i + 1, replacement.encode_utf8(&mut [0; 4]));
                assert_eq!(LoginClaims::open(&changed, &keys)?, None, "position {i}: {changed}");
            }
        }
        Ok(())
    }

    #[test]
    fn location_round_trip_and_redaction() -> Result<(), Error> {
        let t = LocationToken { legacy_account: None, id: [1; 16], secret: Zeroizing::new([2; 16]) };
        let s = t.encode();
        assert!(s.starts_with("loc2.") && s.len() == 48, "{s}");
        assert_eq!(LocationToken::decode(&s)?, t);
        assert!(!format!("{t:?}").contains('2'));
        assert_ne!(t.hash(1), t.hash(2));
        assert!(LocationToken::decode(&s[..s.len() - 1]).is_err());
        assert!(LocationToken::decode(&"x".repeat(300)).is_err());
        Ok(())
    }

    #[test]
    fn a_location_token_is_a_random_handle() -> Result<(), Error> {
        let a = LocationToken::generate()?;
        let b = LocationToken::generate()?;
        assert_eq!(a.legacy_account, None);
        let (ta, tb) = (a.encode(), b.encode());
        assert!(ta.len() <= 128);
        assert_eq!(decoded_body(&ta, "loc2.").len(), 32, "location id and secret only");
        assert!(common_prefix(&ta["loc2.".len()..], &tb["loc2.".len()..]) < 4, "{ta} {tb}");
        Ok(())
    }

    #[test]
    fn a_0_1_0_location_token_still_parses_and_keeps_its_account() -> Result<(), Error> {
        let old = encode_v1(UserId::from(77_u64), [3; 16], [4; 16]);
        let t = LocationToken::decode(&old)?;
        assert_eq!(
            t,
            LocationToken { legacy_account: Some(UserId::from(77_u64)), id: [3; 16], secret: Zeroizing::new([4; 16]) }
        );
        Ok(())
    }

    #[test]
    fn the_stored_digest_is_unchanged_since_0_1_0() {
        let t = LocationToken { legacy_account: None, id: [1; 16], secret: Zeroizing::new([7; 16]) };
        assert_eq!(
            data_encoding::HEXLOWER.encode(&t.hash(0x0102_0304_0506_0708)),
            "592a089288e6c395f1d4a55f7c71b3fb225eade2748b395b77bc2986563e7171"
        );
    }
}
