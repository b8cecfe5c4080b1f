//! The application's keys: they seal TOTP secrets at rest (XChaCha20-Poly1305, bound to
//! the account id) and seal pending-login tokens (XChaCha20-Poly1305 under a separate
//! sub-key), so a token reveals nothing and cannot be altered.
//!
//! A [`KeyRing`] holds one or more [`AppKey`]s. The newest seals; all of them open, so
//! keys rotate without a migration: a secret sealed under an older key is re-sealed
//! under the newest the next time it is used.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::UserId;
use crate::account::SealedSecret;
use crate::error::{Error, InputError};
use crate::random;

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A 256-bit application key with a numeric id (the id is stored with each sealed
/// secret, so the right key is found on unseal).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AppKey {
    id: u32,
    seal: [u8; 32],
    token: [u8; 32],
}

impl AppKey {
    /// A key from 32 bytes of key material (from a secrets manager, say). Separate
    /// sub-keys for sealing TOTP secrets and for sealing tokens are derived from it.
    pub fn from_bytes(id: u32, material: &[u8; 32]) -> AppKey {
        AppKey { id, seal: derive(material, b"twofactor/seal/v1"), token: derive(material, b"twofactor/token/v1") }
    }

    /// A key from 64 hex digits.
    ///
    /// # Errors
    /// [`InputError`] when the text is not 64 hex digits.
    pub fn from_hex(id: u32, hex: &str) -> Result<AppKey, InputError> {
        let mut material = Zeroizing::new([0u8; 32]);
        let decoded = Zeroizing::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.trim().as_bytes())
                .map_err(|_| InputError::malformed("key", "must be 64 hex digits"))?,
        );
        if decoded.len() != 32 {
            return Err(InputError::malformed("key", "must be 64 hex digits"));
        }
        material.copy_from_slice(&decoded);
        Ok(AppKey::from_bytes(id, &material))
    }

    /// A fresh random key (for tests and demos; production keys must persist).
    ///
    /// # Errors
    /// [`Error::Random`] if the OS generator fails.
    pub fn generate(id: u32) -> Result<AppKey, Error> {
        let material = Zeroizing::new(random::bytes::<32>()?);
        Ok(AppKey::from_bytes(id, &material))
    }

    /// The key's id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppKey").field("id", &self.id).finish_non_exhaustive()
    }
}

fn derive(material: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(material) {
        mac.update(label);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// The application's keys, newest last.
///
/// ```
/// use twofactor::{AppKey, KeyRing};
/// let old = AppKey::from_hex(1, &"11".repeat(32))?;
/// let new = AppKey::from_hex(2, &"22".repeat(32))?;
/// let ring = KeyRing::new(vec![old, new])?;
/// assert_eq!(ring.current().id(), 2);
/// # Ok::<(), twofactor::InputError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Seals (and opens).
    newest: AppKey,
    /// Only open.
    older: Vec<AppKey>,
}

impl KeyRing {
    /// A ring of keys, oldest first; the last seals.
    ///
    /// # Errors
    /// [`InputError`] when the list is empty or two keys share an id.
    pub fn new(mut keys: Vec<AppKey>) -> Result<KeyRing, InputError> {
        for (i, k) in keys.iter().enumerate() {
            if keys.iter().skip(i + 1).any(|o| o.id == k.id) {
                return Err(InputError::malformed("keys", "key ids must be unique"));
            }
        }
        let newest = keys.pop().ok_or(InputError::malformed("keys", "at least one key is needed"))?;
        Ok(KeyRing { newest, older: keys })
    }

    /// A ring with one fresh random key (tests and demos).
    ///
    /// # Errors
    /// [`Error::Random`] if the OS generator fails.
    pub fn ephemeral() -> Result<KeyRing, Error> {
        Ok(KeyRing { newest: AppKey::generate(1)?, older: Vec::new() })
    }

    /// The key that seals.
    pub fn current(&self) -> &AppKey {
        &self.newest
    }

    fn all(&self) -> impl Iterator<Item = &AppKey> {
        std::iter::once(&self.newest).chain(self.older.iter())
    }

    fn by_id(&self, id: u32) -> Option<&AppKey> {
        self.all().find(|k| k.id == id)
    }

    /// Seals a TOTP secret for `account` under the current key.
    pub(crate) fn seal(&self, account: UserId, secret: &[u8]) -> Result<SealedSecret, Error> {
        let key = self.current();
        let nonce_bytes = random::bytes::<NONCE_LEN>()?;
        let nonce = XNonce::from(nonce_bytes);
        let cipher = XChaCha20Poly1305::new(&key.seal.into());
        let aad = aad(account);
        let ct =
            cipher.encrypt(&nonce, Payload { msg: secret, aad: &aad }).map_err(|_| Error::Misuse("sealing failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(SealedSecret(out))
    }

    /// Opens a sealed secret; the flag says whether it was sealed under an older key
    /// (and should be re-sealed).
    pub(crate) fn unseal(&self, account: UserId, sealed: &SealedSecret) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
        let bytes = &sealed.0;
        let (header, ct) = bytes.split_at_checked(HEADER_LEN).ok_or(Error::Corrupt("sealed secret"))?;
        let (version, rest) = header.split_first().ok_or(Error::Corrupt("sealed secret"))?;
        if *version != SEAL_VERSION {
            return Err(Error::Corrupt("sealed secret version"));
        }
        let (id_bytes, nonce_bytes) = rest.split_at_checked(4).ok_or(Error::Corrupt("sealed secret"))?;
        let id = u32::from_be_bytes(id_bytes.try_into().map_err(|_| Error::Corrupt("sealed secret"))?);
        let nonce_arr: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| Error::Corrupt("sealed secret"))?;
        let key = self.by_id(id).ok_or(Error::Unseal)?;
        let cipher = XChaCha20Poly1305::new(&key.seal.into());
        let aad = aad(account);
        let plain =
            cipher.decrypt(&XNonce::from(nonce_arr), Payload { msg: ct, aad: &aad }).map_err(|_| Error::Unseal)?;
        Ok((Zeroizing::new(plain), id != self.current().id))
    }

    /// Seals a token's `plain` bytes under the current key's token sub-key:
    /// nonce (24 bytes) | ciphertext | tag (16 bytes). `label` (the token kind's domain
    /// label) is the associated data. The output names no key, so it reveals nothing;
    /// [`KeyRing::open_token`] tries every key.
    pub(crate) fn seal_token(&self, label: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random::bytes::<NONCE_LEN>()?;
        let cipher = XChaCha20Poly1305::new(&self.current().token.into());
        let ct = cipher
            .encrypt(&XNonce::from(nonce_bytes), Payload { msg: plain, aad: label })
            .map_err(|_| Error::Misuse("sealing failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens [`KeyRing::seal_token`]'s output under whichever key of the ring sealed it
    /// (newest first). `None` when it is too short or no key authenticates it.
    pub(crate) fn open_token(&self, label: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce_bytes, ct) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce_bytes).ok()?);
        self.all().find_map(|key| {
            let cipher = XChaCha20Poly1305::new(&key.token.into());
            cipher.decrypt(&nonce, Payload { msg: ct, aad: label }).ok().map(Zeroizing::new)
        })
    }
}

/// The associated data binding a sealed secret to its user. An id that is a canonical
/// decimal number (every id 0.1.0 made) is bound by its 8 bytes, as 0.1.0 did, so its
/// sealed secrets still open; any other id by its text, under a prefix of the same
/// length that differs within it, so no two ids share associated data.
fn aad(account: UserId) -> Vec<u8> {
    match account.as_u64() {
        Some(n) => [b"twofactor/totp-secret/".as_slice(), &n.to_be_bytes()].concat(),
        None => [b"twofactor/user-secret/".as_slice(), account.as_str().as_bytes()].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_bound_to_string_ids_too() -> Result<(), Error> {
        let ring = KeyRing::ephemeral()?;
        let id = |t: &str| UserId::new(t).map_err(|_| Error::Misuse("id"));
        let sealed = ring.seal(id("6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55")?, b"secret")?;
        assert_eq!(ring.unseal(id("6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55")?, &sealed)?.0.as_slice(), b"secret");
        for other in ["6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c56", "6F1E2A34-0D5C-4C7B-9A61-2F0E8B1D3C55"] {
            assert!(matches!(ring.unseal(id(other)?, &sealed), Err(Error::Unseal)), "{other}");
        }
        // A numeric id and its zero-padded text are different users.
        let numeric = ring.seal(UserId::from(7_u64), b"s")?;
        assert!(matches!(ring.unseal(id("007")?, &numeric), Err(Error::Unseal)));
        // No string id shares the associated data of a numeric one.
        assert_ne!(aad(id("abcdefgh")?), aad(UserId::from(u64::from_be_bytes(*b"abcdefgh"))));
        Ok(())
    }

    #[test]
    fn seal_round_trip_and_binding() -> Result<(), Error> {
        let ring = KeyRing::ephemeral()?;
        let sealed = ring.seal(UserId::from(7_u64), b"0123456789abcdefghij")?;
        let (plain, stale) = ring.unseal(UserId::from(7_u64), &sealed)?;
        assert_eq!(plain.as_slice(), b"0123456789abcdefghij");
        assert!(!stale);
        assert!(matches!(ring.unseal(UserId::from(8_u64), &sealed), Err(Error::Unseal)));
        Ok(())
    }

    #[test]
    fn rotation_opens_old_and_flags_it() -> Result<(), Error> {
        let old = AppKey::generate(1)?;
        let sealed = KeyRing::new(vec![old.clone()])?.seal(UserId::from(1_u64), b"secret")?;
        let ring = KeyRing::new(vec![old, AppKey::generate(2)?])?;
        let (plain, stale) = ring.unseal(UserId::from(1_u64), &sealed)?;
        assert_eq!(plain.as_slice(), b"secret");
        assert!(stale);
        let without_old = KeyRing::new(vec![AppKey::generate(2)?])?;
        assert!(matches!(without_old.unseal(UserId::from(1_u64), &sealed), Err(Error::Unseal)));
        Ok(())
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() -> Result<(), Error> {
        let ring = KeyRing::ephemeral()?;
        for len in 0..40 {
            let blob = SealedSecret(vec![1u8; len]);
            assert!(ring.unseal(UserId::from(1_u64), &blob).is_err());
        }
        Ok(())
    }

    #[test]
    fn tokens_open_under_any_key_of_the_ring_and_only_with_their_label() -> Result<(), Error> {
        let old = AppKey::generate(1)?;
        let sealed = KeyRing::new(vec![old.clone()])?.seal_token(b"label", b"claims")?;
        assert_eq!(sealed.len(), NONCE_LEN + 6 + 16);
        let ring = KeyRing::new(vec![old, AppKey::generate(2)?])?;
        assert_eq!(ring.open_token(b"label", &sealed).as_deref().map(Vec::as_slice), Some(&b"claims"[..]));
        assert!(ring.open_token(b"other", &sealed).is_none(), "bound to its label");
        assert!(KeyRing::new(vec![AppKey::generate(2)?])?.open_token(b"label", &sealed).is_none());
        for len in 0..sealed.len() {
            assert!(ring.open_token(b"label", &sealed[..len]).is_none());
        }
        Ok(())
    }

    #[test]
    fn the_token_sub_key_is_independent_of_the_sealing_sub_key() -> Result<(), Error> {
        let key = AppKey::from_hex(1, &"ab".repeat(32))?;
        assert_ne!(key.token, key.seal);
        let ring = KeyRing::new(vec![key.clone()])?;
        let sealed = ring.seal_token(b"label", b"claims")?;
        let cipher = XChaCha20Poly1305::new(&key.seal.into());
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| Error::Misuse("nonce"))?);
        assert!(cipher.decrypt(&nonce, Payload { msg: ct, aad: b"label" }).is_err());
        Ok(())
    }

    #[test]
    fn debug_shows_no_key_material() -> Result<(), Error> {
        let key = AppKey::from_hex(3, &"ab".repeat(32))?;
        let shown = format!("{:?}", KeyRing::new(vec![key])?);
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        Ok(())
    }
}
