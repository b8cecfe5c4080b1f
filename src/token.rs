//! The two opaque tokens the engine hands to applications: pending logins and
//! remembered locations. Both are `prefix.base64url` strings, parsed with hard length
//! limits; neither carries a password or a TOTP key.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::account::{AccountId, RememberedLocation};
use crate::clock::Timestamp;
use crate::error::InputError;

/// The longest token input accepted.
pub const MAX_TOKEN_LEN: usize = 256;

const PENDING_PREFIX: &str = "pl1.";
const PENDING_PAYLOAD: usize = 8 + 16 + 8 + 8;
const PENDING_LEN: usize = PENDING_PAYLOAD + 32;
const LOCATION_PREFIX: &str = "loc1.";
const LOCATION_LEN: usize = 8 + 16 + 16;

fn decode(input: &str, prefix: &str, len: usize, field: &'static str) -> Result<Zeroizing<Vec<u8>>, InputError> {
    if input.len() > MAX_TOKEN_LEN {
        return Err(InputError::TooLong { field, max: MAX_TOKEN_LEN });
    }
    let body = input.trim().strip_prefix(prefix).ok_or(InputError::malformed(field, "unknown token format"))?;
    let bytes = Zeroizing::new(
        BASE64URL_NOPAD.decode(body.as_bytes()).map_err(|_| InputError::malformed(field, "not base64url"))?,
    );
    if bytes.len() != len {
        return Err(InputError::malformed(field, "wrong length"));
    }
    Ok(bytes)
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// What a pending-login token says (before its MAC is checked against the account's
/// security stamp). `Debug` leaves out the id and the tag, which would rebuild the token.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PendingClaims {
    pub account: AccountId,
    pub id: [u8; 16],
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub tag: [u8; 32],
}

impl std::fmt::Debug for PendingClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingClaims")
            .field("account", &self.account)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PendingClaims {
    pub fn payload(&self) -> [u8; PENDING_PAYLOAD] {
        let mut p = [0u8; PENDING_PAYLOAD];
        p[..8].copy_from_slice(&self.account.0.to_be_bytes());
        p[8..24].copy_from_slice(&self.id);
        p[24..32].copy_from_slice(&self.issued_at.0.to_be_bytes());
        p[32..40].copy_from_slice(&self.expires_at.0.to_be_bytes());
        p
    }

    /// The parts the MAC covers: a domain label, the payload and the account's stamp.
    pub fn mac_parts(payload: &[u8], stamp: u64) -> [Vec<u8>; 3] {
        [b"twofactor/pending-login".to_vec(), payload.to_vec(), stamp.to_be_bytes().to_vec()]
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(PENDING_LEN);
        bytes.extend_from_slice(&self.payload());
        bytes.extend_from_slice(&self.tag);
        format!("{PENDING_PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn decode(input: &str) -> Result<PendingClaims, InputError> {
        let b = decode(input, PENDING_PREFIX, PENDING_LEN, "pending login")?;
        Ok(PendingClaims {
            account: AccountId(u64::from_be_bytes(take::<8>(&b, 0))),
            id: take::<16>(&b, 8),
            issued_at: Timestamp(u64::from_be_bytes(take::<8>(&b, 24))),
            expires_at: Timestamp(u64::from_be_bytes(take::<8>(&b, 32))),
            tag: take::<32>(&b, PENDING_PAYLOAD),
        })
    }
}

/// A remembered-location token: which account, which location, and 128 secret bits.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LocationToken {
    pub account: AccountId,
    pub id: [u8; 16],
    pub secret: Zeroizing<[u8; 16]>,
}

impl LocationToken {
    pub fn encode(&self) -> String {
        let mut bytes = Zeroizing::new(Vec::with_capacity(LOCATION_LEN));
        bytes.extend_from_slice(&self.account.0.to_be_bytes());
        bytes.extend_from_slice(&self.id);
        bytes.extend_from_slice(self.secret.as_ref());
        format!("{LOCATION_PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn decode(input: &str) -> Result<LocationToken, InputError> {
        let b = decode(input, LOCATION_PREFIX, LOCATION_LEN, "location token")?;
        Ok(LocationToken {
            account: AccountId(u64::from_be_bytes(take::<8>(&b, 0))),
            id: take::<16>(&b, 8),
            secret: Zeroizing::new(take::<16>(&b, 24)),
        })
    }

    /// The stored digest: bound to the account's security stamp.
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
        f.debug_struct("LocationToken").field("account", &self.account).finish_non_exhaustive()
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

    #[test]
    fn pending_round_trip() -> Result<(), InputError> {
        let c = PendingClaims {
            account: AccountId(42),
            id: [7; 16],
            issued_at: Timestamp(100),
            expires_at: Timestamp(400),
            tag: [9; 32],
        };
        let s = c.encode();
        assert!(s.starts_with("pl1."));
        assert_eq!(PendingClaims::decode(&s)?, c);
        assert!(PendingClaims::decode(&s[..s.len() - 1]).is_err());
        assert!(PendingClaims::decode("loc1.AAAA").is_err());
        assert!(PendingClaims::decode(&"x".repeat(300)).is_err());
        Ok(())
    }

    #[test]
    fn location_round_trip_and_redaction() -> Result<(), InputError> {
        let t = LocationToken { account: AccountId(5), id: [1; 16], secret: Zeroizing::new([2; 16]) };
        let s = t.encode();
        assert_eq!(LocationToken::decode(&s)?, t);
        assert!(!format!("{t:?}").contains('2'));
        assert_ne!(t.hash(1), t.hash(2));
        Ok(())
    }
}
