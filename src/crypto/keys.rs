//! The application's keys: they seal TOTP secrets at rest (XChaCha20-Poly1305, bound to
//! the account id) and seal pending-login tokens (XChaCha20-Poly1305 under a separate
//! sub-key), so a token reveals nothing and cannot be altered.
//!
//! A [`KeyRing`] holds one or more [`AppKey`]s. The newest seals; all of them open, so
//! keys rotate without a migration: a secret sealed under an older key is re-sealed
//! under the newest the next time it is used, or at once by
//! [`Engine::reseal`](crate::Engine::reseal), after which the old key can be retired
//! ([`Engine::retire_key`](crate::Engine::retire_key)).
//!
//! A key's text form is `tfk1.<id>.<key>`: the format, the key's id in decimal, and its
//! 32 bytes in unpadded base64url (48 characters in all for id 1). A key file or
//! variable holds one key per line, newest first; `#` starts a comment line. 0.1.0's key
//! files (64 hex digits) still load, as key id 1. README's "Keys" section says how to
//! generate, keep, back up, rotate and retire them.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::UserId;
use crate::account::SealedSecret;
use crate::crypto::random;
use crate::error::{Error, InputError, InternalError};
use crate::outbox::MailId;

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// The text form's prefix.
const KEY_PREFIX: &str = "tfk1.";

/// A 256-bit application key with a numeric id (the id is stored with each sealed
/// secret, so the right key is found on unseal). Neither `Debug` nor any error shows
/// the key; its memory is wiped when it is dropped.
///
/// ```
/// use twofactor::AppKey;
/// let key = AppKey::generate(1)?;
/// let text = key.to_text(); // keep it in a secrets manager, never in the repository
/// assert!(text.starts_with("tfk1.1."));
/// assert_eq!(AppKey::from_text(&text)?.id(), 1);
/// assert_eq!(format!("{key:?}"), "AppKey { id: 1, .. }");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AppKey {
    id: u32,
    material: [u8; 32],
    seal: [u8; 32],
    token: [u8; 32],
}

impl AppKey {
    /// A key from 32 bytes of key material (from a secrets manager, say). Separate
    /// sub-keys for sealing TOTP secrets and for sealing tokens are derived from it.
    pub fn from_bytes(id: u32, material: &[u8; 32]) -> AppKey {
        AppKey {
            id,
            material: *material,
            seal: derive(material, b"twofactor/seal/v1"),
            token: derive(material, b"twofactor/token/v1"),
        }
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

    /// A key from its text form, `tfk1.<id>.<base64url key>` (surrounding whitespace
    /// ignored).
    ///
    /// # Errors
    /// [`InputError`] when the text is not a key (the message never quotes it).
    pub fn from_text(text: &str) -> Result<AppKey, InputError> {
        let bad = || InputError::malformed("key", "must be tfk1.<id>.<43 base64url characters>");
        let rest = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let (id, key) = rest.split_once('.').ok_or_else(bad)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id: u32 = id.parse().map_err(|_| bad())?;
        let decoded = Zeroizing::new(data_encoding::BASE64URL_NOPAD.decode(key.as_bytes()).map_err(|_| bad())?);
        let material = Zeroizing::new(<[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| bad())?);
        Ok(AppKey::from_bytes(id, &material))
    }

    /// The key's text form, `tfk1.<id>.<base64url key>`: what a key file or variable
    /// holds. Wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let encoding = data_encoding::BASE64URL_NOPAD;
        let mut key = Zeroizing::new(vec![0u8; encoding.encode_len(self.material.len())]);
        encoding.encode_mut(&self.material, &mut key);
        let mut text = Zeroizing::new(String::with_capacity(KEY_PREFIX.len() + 11 + key.len()));
        text.push_str(KEY_PREFIX);
        text.push_str(&self.id.to_string());
        text.push('.');
        // Base64url is ASCII, so every byte is a char; no copy outlives the buffers.
        text.extend(key.iter().map(|&b| char::from(b)));
        text
    }

    /// A fresh random key from the operating system's generator. Write its
    /// [`to_text`](Self::to_text) down before use: a key that is lost takes every
    /// TOTP secret sealed under it with it.
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

    /// A ring with one fresh random key that lives as long as the process: **for tests
    /// and demos only**. An application that uses it loses every user's TOTP secret at
    /// its next restart (their logins then fail with [`Error::UnknownKey`]); load real
    /// keys with [`from_env`](Self::from_env) or [`from_file`](Self::from_file).
    ///
    /// # Errors
    /// [`Error::Random`] if the OS generator fails.
    pub fn ephemeral() -> Result<KeyRing, Error> {
        Ok(KeyRing { newest: AppKey::generate(1)?, older: Vec::new() })
    }

    /// Keys from text: one per line, **newest first** (the first line seals), each in
    /// the text form `tfk1.<id>.<key>` or, as 0.1.0's key files hold, 64 hex digits
    /// (key id 1). Blank lines and lines starting with `#` are ignored.
    ///
    /// ```
    /// use twofactor::{AppKey, KeyRing};
    /// let text = format!("# rotated 2026-11\n{}\n{}\n", AppKey::generate(2)?.to_text().as_str(), AppKey::generate(1)?.to_text().as_str());
    /// let ring = KeyRing::from_text(&text)?;
    /// assert_eq!(ring.ids(), [2, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InputError`] for a line that is not a key (the message never quotes it), no
    /// key at all, or two keys with one id.
    pub fn from_text(text: &str) -> Result<KeyRing, InputError> {
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let key = if line.starts_with(KEY_PREFIX) { AppKey::from_text(line)? } else { AppKey::from_hex(1, line)? };
            keys.push(key);
        }
        keys.reverse();
        KeyRing::new(keys)
    }

    /// Keys from a file in [`from_text`](Self::from_text)'s format (a key file of the
    /// 0.1.0 CLI included).
    ///
    /// # Errors
    /// [`KeyError::Read`] when the file cannot be read, [`KeyError::Invalid`] when its
    /// text is not a key ring.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<KeyRing, KeyError> {
        let path = path.as_ref();
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?,
        );
        KeyRing::from_text(&text).map_err(KeyError::Invalid)
    }

    /// Keys from an environment variable in [`from_text`](Self::from_text)'s format
    /// (newlines, or spaces, between keys).
    ///
    /// # Errors
    /// [`KeyError::MissingVar`] when the variable is unset or not Unicode,
    /// [`KeyError::Invalid`] when its text is not a key ring.
    pub fn from_env(var: &str) -> Result<KeyRing, KeyError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyError::MissingVar { var: var.to_owned() })?);
        // Keys may also stand between spaces on one line; a `#` comment line stays whole,
        // so its words are not read as keys.
        let lines = Zeroizing::new(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with('#'))
                .flat_map(str::split_whitespace)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        KeyRing::from_text(&lines).map_err(KeyError::Invalid)
    }

    /// The ring's text, newest first, one `tfk1.` line per key: what
    /// [`from_text`](Self::from_text) reads back. Wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        // Sized up front, so pushing never reallocates and leaves a copy behind.
        let mut out = Zeroizing::new(String::with_capacity(self.all().count() * 64));
        for key in self.all() {
            out.push_str(&key.to_text());
            out.push('\n');
        }
        out
    }

    /// The keys' ids, newest (the one that seals) first.
    pub fn ids(&self) -> Vec<u32> {
        self.all().map(AppKey::id).collect()
    }

    /// The same ring with a fresh random key, one id above the highest, as the newest:
    /// from now on it seals, and the others only open. Write the new ring down
    /// ([`to_text`](Self::to_text)) before using it.
    ///
    /// # Errors
    /// [`Error::Random`] if the OS generator fails; [`Error::InvalidInput`] when the
    /// ring already holds the highest possible key id.
    pub fn with_new_key(&self) -> Result<KeyRing, Error> {
        let next = self
            .all()
            .map(AppKey::id)
            .max()
            .and_then(|m| m.checked_add(1))
            .ok_or(InputError::malformed("key", "the ring holds the highest possible key id; no id is left"))?;
        let mut older: Vec<AppKey> = self.older.clone();
        older.push(self.newest.clone());
        Ok(KeyRing { newest: AppKey::generate(next)?, older })
    }

    /// The same ring without the key `id`, which must not be the newest. Prefer
    /// [`Engine::retire_key`](crate::Engine::retire_key), which first checks that no
    /// document still needs the key.
    ///
    /// # Errors
    /// [`InputError`] when `id` is the newest key or not in the ring.
    pub fn without(&self, id: u32) -> Result<KeyRing, InputError> {
        if self.newest.id == id {
            return Err(InputError::malformed("key", "the newest key seals and cannot be removed"));
        }
        if !self.older.iter().any(|k| k.id == id) {
            return Err(InputError::malformed("key", "no key with that id in the ring"));
        }
        Ok(KeyRing { newest: self.newest.clone(), older: self.older.iter().filter(|k| k.id != id).cloned().collect() })
    }

    /// The key that seals.
    pub fn current(&self) -> &AppKey {
        &self.newest
    }

    /// The keys, newest first.
    fn all(&self) -> impl Iterator<Item = &AppKey> {
        std::iter::once(&self.newest).chain(self.older.iter().rev())
    }

    fn by_id(&self, id: u32) -> Option<&AppKey> {
        self.all().find(|k| k.id == id)
    }

    /// Seals a TOTP secret for `account` under the current key.
    pub(crate) fn seal(&self, account: UserId, secret: &[u8]) -> Result<SealedSecret, Error> {
        self.seal_bound(&aad(account), secret)
    }

    /// Opens a sealed secret; the flag says whether it was sealed under an older key
    /// (and should be re-sealed).
    pub(crate) fn unseal(&self, account: UserId, sealed: &SealedSecret) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
        self.unseal_bound(&aad(account), sealed)
    }

    /// Seals a backup code waiting in `account`'s outbox in mail `mail`: bound to both,
    /// and under associated data no TOTP secret uses, so a sealed secret moved into a
    /// mail (or a code moved into another mail or account) does not open.
    pub(crate) fn seal_mail_code(&self, account: UserId, mail: MailId, code: &[u8]) -> Result<SealedSecret, Error> {
        self.seal_bound(&mail_aad(account, mail), code)
    }

    /// Opens [`KeyRing::seal_mail_code`]'s output; the flag as for [`KeyRing::unseal`].
    pub(crate) fn unseal_mail_code(
        &self,
        account: UserId,
        mail: MailId,
        sealed: &SealedSecret,
    ) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
        self.unseal_bound(&mail_aad(account, mail), sealed)
    }

    /// Seals `secret` under the current key with associated data `aad`: version (1
    /// byte) | key id (4 bytes, big-endian) | nonce (24 bytes) | ciphertext | tag.
    fn seal_bound(&self, aad: &[u8], secret: &[u8]) -> Result<SealedSecret, Error> {
        let key = self.current();
        let nonce_bytes = random::bytes::<NONCE_LEN>()?;
        let nonce = XNonce::from(nonce_bytes);
        let cipher = XChaCha20Poly1305::new(&key.seal.into());
        let ct = cipher.encrypt(&nonce, Payload { msg: secret, aad }).map_err(|_| InternalError::Sealing)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(SealedSecret(out))
    }

    /// Opens [`KeyRing::seal_bound`]'s output under the key its header names.
    fn unseal_bound(&self, aad: &[u8], sealed: &SealedSecret) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
        let bytes = &sealed.0;
        let (header, ct) = bytes.split_at_checked(HEADER_LEN).ok_or(Error::Corrupt("sealed secret"))?;
        let (version, rest) = header.split_first().ok_or(Error::Corrupt("sealed secret"))?;
        if *version != SEAL_VERSION {
            return Err(Error::Corrupt("sealed secret version"));
        }
        let (id_bytes, nonce_bytes) = rest.split_at_checked(4).ok_or(Error::Corrupt("sealed secret"))?;
        let id = u32::from_be_bytes(id_bytes.try_into().map_err(|_| Error::Corrupt("sealed secret"))?);
        let nonce_arr: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| Error::Corrupt("sealed secret"))?;
        let key = self.by_id(id).ok_or(Error::UnknownKey { key_id: id })?;
        let cipher = XChaCha20Poly1305::new(&key.seal.into());
        let plain = cipher.decrypt(&XNonce::from(nonce_arr), Payload { msg: ct, aad }).map_err(|_| Error::Unseal)?;
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
            .map_err(|_| InternalError::Sealing)?;
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

/// The id of the key a secret was sealed under, read from its header (`None` for a
/// blob too short to have one).
pub(crate) fn sealed_key_id(sealed: &SealedSecret) -> Option<u32> {
    let id = sealed.0.get(1..5)?;
    Some(u32::from_be_bytes(id.try_into().ok()?))
}

/// Why a key ring could not be loaded. The messages never show key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The environment variable is unset (or not Unicode).
    #[error("environment variable {var} holds no keys (unset or not Unicode)")]
    MissingVar {
        /// The variable.
        var: String,
    },
    /// The text is not a key ring.
    #[error("not a key ring: {0}")]
    Invalid(InputError),
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

/// The associated data binding a backup code waiting in the outbox to its user and
/// mail: a prefix no TOTP secret's associated data has, the mail id, then the user id
/// (whose length the rest implies).
fn mail_aad(account: UserId, mail: MailId) -> Vec<u8> {
    [b"twofactor/mail-code/".as_slice(), mail.as_bytes(), account.as_str().as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_names_its_key_and_the_key_shows_only_its_id() -> Result<(), Error> {
        let key = AppKey::generate(7)?;
        assert_eq!(format!("{key:?}"), "AppKey { id: 7, .. }");
        let sealed = KeyRing::new(vec![key])?.seal(UserId::from(1_u64), b"secret")?;
        assert_eq!(sealed_key_id(&sealed), Some(7));
        assert_eq!(sealed_key_id(&SealedSecret(vec![1, 0, 0])), None, "too short for a header");
        Ok(())
    }

    #[test]
    fn a_key_id_is_digits_only() -> Result<(), Error> {
        let text = AppKey::generate(7)?.to_text();
        let body = text.strip_prefix("tfk1.7.").ok_or(Error::Corrupt("shape"))?;
        assert!(AppKey::from_text(&format!("tfk1.7.{body}")).is_ok());
        for id in ["+7", "-7", "", "7a", " 7"] {
            assert!(AppKey::from_text(&format!("tfk1.{id}.{body}")).is_err(), "{id:?}");
        }
        Ok(())
    }

    #[test]
    fn the_text_form_round_trips_and_names_the_id() -> Result<(), Error> {
        let key = AppKey::generate(7)?;
        let text = key.to_text();
        assert!(text.starts_with("tfk1.7."), "{}", text.as_str());
        assert_eq!(text.len(), "tfk1.7.".len() + 43);
        let back = AppKey::from_text(&format!("  {}\n", text.as_str()))?;
        assert_eq!(back.id(), 7);
        // The same key: it opens what the original sealed.
        let sealed = KeyRing::new(vec![key])?.seal(UserId::from(1_u64), b"secret")?;
        assert_eq!(KeyRing::new(vec![back])?.unseal(UserId::from(1_u64), &sealed)?.0.as_slice(), b"secret");
        Ok(())
    }

    #[test]
    fn malformed_key_texts_are_refused_without_echo() -> Result<(), Error> {
        let good = AppKey::generate(1)?.to_text();
        let body = good.strip_prefix("tfk1.1.").unwrap_or_default().to_owned();
        let cases = [
            String::new(),
            "tfk1.".to_owned(),
            format!("tfk2.1.{body}"),
            format!("tfk1.x.{body}"),
            format!("tfk1.-1.{body}"),
            format!("tfk1.4294967296.{body}"),
            format!("tfk1.1.{}", &body[..42]),
            format!("tfk1.1.{body}A"),
            format!("tfk1.1.{}", body.replace(|c: char| c.is_ascii_alphanumeric(), "+")),
            format!("tfk1.1{body}"),
        ];
        for text in cases {
            let err = AppKey::from_text(&text).map(|_| ()).unwrap_err().to_string();
            assert!(body.is_empty() || !err.contains(&body[..10]), "{err}");
        }
        Ok(())
    }

    #[test]
    fn a_ring_reads_newest_first_with_comments_and_0_1_0_hex() -> Result<(), Error> {
        let (k3, k2) = (AppKey::generate(3)?, AppKey::generate(2)?);
        let text = format!("# keys\n\n{}\n  {}  \n{}\n", k3.to_text().as_str(), k2.to_text().as_str(), "ab".repeat(32));
        let ring = KeyRing::from_text(&text)?;
        assert_eq!(ring.ids(), [3, 2, 1]);
        assert_eq!(ring.current().id(), 3);
        assert_eq!(KeyRing::from_text(&ring.to_text())?.ids(), [3, 2, 1], "to_text reads back");
        assert!(KeyRing::from_text("# nothing\n").is_err(), "no key");
        let twice = format!("{}\n{}\n", k2.to_text().as_str(), k2.to_text().as_str());
        assert!(KeyRing::from_text(&twice).is_err(), "one id twice");
        assert!(KeyRing::from_text(&format!("{}\nnot a key\n", k2.to_text().as_str())).is_err());
        Ok(())
    }

    #[test]
    fn rings_grow_and_shrink_but_keep_their_newest_key() -> Result<(), Error> {
        let ring = KeyRing::from_text(&AppKey::generate(4)?.to_text())?;
        let grown = ring.with_new_key()?;
        assert_eq!(grown.ids(), [5, 4]);
        assert_eq!(grown.with_new_key()?.ids(), [6, 5, 4]);
        assert!(grown.without(5).is_err(), "the newest key seals");
        assert!(grown.without(9).is_err(), "not in the ring");
        assert_eq!(grown.without(4)?.ids(), [5]);
        Ok(())
    }

    #[test]
    fn a_secret_under_a_missing_key_names_it() -> Result<(), Error> {
        let old = KeyRing::new(vec![AppKey::generate(1)?])?;
        let sealed = old.seal(UserId::from(3_u64), b"secret")?;
        assert_eq!(sealed_key_id(&sealed), Some(1));
        let other = KeyRing::new(vec![AppKey::generate(2)?])?;
        assert!(matches!(other.unseal(UserId::from(3_u64), &sealed), Err(Error::UnknownKey { key_id: 1 })));
        Ok(())
    }

    #[test]
    fn key_errors_never_show_the_key() -> Result<(), Error> {
        let dir = std::env::temp_dir().join(format!("twofactor-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|_| Error::Corrupt("temp dir"))?;
        let path = dir.join("bad.keys");
        let text = AppKey::generate(1)?.to_text();
        std::fs::write(&path, format!("{}x\n", text.as_str())).map_err(|_| Error::Corrupt("write"))?;
        let err = KeyRing::from_file(&path).map(|_| ()).unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(&text[7..20]), "{shown}");
        }
        assert!(matches!(KeyRing::from_file(dir.join("missing")), Err(KeyError::Read { .. })));
        assert!(matches!(KeyRing::from_env("TWOFACTOR_TEST_SURELY_UNSET_VAR"), Err(KeyError::MissingVar { .. })));
        std::fs::remove_dir_all(&dir).map_err(|_| Error::Corrupt("cleanup"))?;
        Ok(())
    }

    #[test]
    fn secrets_are_bound_to_string_ids_too() -> Result<(), Error> {
        let ring = KeyRing::ephemeral()?;
        let id = |t: &str| UserId::new(t).map_err(|_| Error::Corrupt("id"));
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
    fn a_queued_code_opens_only_for_its_user_and_mail_and_never_as_a_totp_secret() -> Result<(), Error> {
        let ring = KeyRing::ephemeral()?;
        let (alice, bob) = (UserId::from(7_u64), UserId::from(8_u64));
        let (mail, other) = (MailId([1; 16]), MailId([2; 16]));
        let code = ring.seal_mail_code(alice, mail, b"K7QXM2PD9WRTH4NB")?;
        assert_eq!(ring.unseal_mail_code(alice, mail, &code)?.0.as_slice(), b"K7QXM2PD9WRTH4NB");
        assert!(matches!(ring.unseal_mail_code(alice, other, &code), Err(Error::Unseal)), "another mail");
        assert!(matches!(ring.unseal_mail_code(bob, mail, &code), Err(Error::Unseal)), "another user");
        assert!(matches!(ring.unseal(alice, &code), Err(Error::Unseal)), "read as a TOTP secret");
        // A TOTP secret moved into a mail does not open there, so it cannot be mailed.
        let secret = ring.seal(alice, b"0123456789abcdefghij")?;
        assert!(matches!(ring.unseal_mail_code(alice, mail, &secret), Err(Error::Unseal)));
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
        assert!(matches!(without_old.unseal(UserId::from(1_u64), &sealed), Err(Error::UnknownKey { key_id: 1 })));
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
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| Error::Corrupt("nonce"))?);
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
