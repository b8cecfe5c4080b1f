//! bcrypt hashes, `$2a$`, `$2b$` and `$2y$<cost>$<22-char salt><31-char hash>` (Python's
//! bcrypt, Rails/Devise, PHP's `password_hash`, `htpasswd -B`), and Django's two
//! wrappers, `bcrypt$<bcrypt hash>` and `bcrypt_sha256$<bcrypt hash>`.
//!
//! # Passwords longer than 72 bytes
//!
//! bcrypt keys Blowfish with the password's bytes and a terminating NUL, and reads at
//! most 72 bytes: a longer password is cut to its first 72 bytes (and loses the NUL),
//! so everything after byte 72 is ignored, even in the middle of a UTF-8 character.
//! This is what crypt_blowfish (`htpasswd -B`, PHP, Ruby's bcrypt) and the reference
//! OpenBSD code do, and what the `bcrypt` crate's `verify` does; Python's bcrypt 5
//! refuses to hash such a password, and verifies a hash made of one with its first 72
//! bytes. Verification here does the same, so an imported hash of a long password
//! verifies with the password as the user types it. (Django's `bcrypt_sha256` hashes
//! the hex SHA-256 of the password instead, so there the whole password counts.) A NUL
//! byte inside the password is hashed as it is, as Python's bcrypt does (C
//! implementations would stop at it).
//!
//! `$2x$` (crypt_blowfish's marker for hashes made by its sign-extension bug) is not
//! recognised.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{HashFormat, ImportProblem, MAX_BCRYPT_COST};

/// bcrypt's smallest cost; every implementation refuses lower ones.
const MIN_COST: u32 = 4;

/// The most password bytes bcrypt reads.
const MAX_KEY_BYTES: usize = 72;

/// The length of a bcrypt hash string (`$2b$12$` + 22 + 31).
const HASH_CHARS: usize = 60;

/// bcrypt's base64 alphabet (`./A-Za-z0-9`, no padding).
const ALPHABET: &str = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// What is done to the password before bcrypt reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prehash {
    /// Nothing.
    None,
    /// Django's `bcrypt_sha256`: the lowercase hex of its SHA-256 (64 bytes, so never
    /// truncated).
    Sha256Hex,
}

/// A parsed bcrypt hash, within the import bounds.
pub(super) struct Bcrypt {
    format: HashFormat,
    prehash: Prehash,
    cost: u32,
    salt: [u8; 16],
    expected: [u8; 23],
}

/// Decodes bcrypt's base64 into `out`, which must be exactly what `text` decodes to.
fn decode(text: &str, out: &mut [u8], what: &'static str) -> Result<(), ImportProblem> {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str(ALPHABET);
    let encoding = spec.encoding().map_err(|_| ImportProblem::Malformed(what))?;
    match encoding.decode_len(text.len()) {
        Ok(len) if len == out.len() => {}
        _ => return Err(ImportProblem::Malformed(what)),
    }
    encoding.decode_mut(text.as_bytes(), out).map(|_| ()).map_err(|_| ImportProblem::Malformed(what))
}

impl Bcrypt {
    /// A bare bcrypt hash, `$2a$`, `$2b$` or `$2y$`: the three mean the same for
    /// passwords under 256 bytes (`2b` fixed OpenBSD's wrap of longer lengths; `2y` is
    /// crypt_blowfish's name for its correct hashes).
    pub(super) fn parse(stored: &str) -> Result<Self, ImportProblem> {
        Self::parse_as(HashFormat::Bcrypt, Prehash::None, stored)
    }

    /// Django's `bcrypt$<bcrypt hash>`.
    pub(super) fn django(rest: &str) -> Result<Self, ImportProblem> {
        Self::parse_as(HashFormat::DjangoBcrypt, Prehash::None, rest)
    }

    /// Django's `bcrypt_sha256$<bcrypt hash>`.
    pub(super) fn django_sha256(rest: &str) -> Result<Self, ImportProblem> {
        Self::parse_as(HashFormat::DjangoBcryptSha256, Prehash::Sha256Hex, rest)
    }

    /// Parses a bare bcrypt hash, checking its cost against [`MIN_COST`] and
    /// [`MAX_BCRYPT_COST`].
    fn parse_as(format: HashFormat, prehash: Prehash, stored: &str) -> Result<Self, ImportProblem> {
        if stored.len() != HASH_CHARS || !stored.is_ascii() {
            return Err(ImportProblem::Malformed("bcrypt hash is not 60 ASCII characters"));
        }
        let (prefix, rest) = stored.split_at(4);
        if !matches!(prefix, "$2a$" | "$2b$" | "$2y$") {
            return Err(ImportProblem::Malformed("bcrypt hash does not start with $2a$, $2b$ or $2y$"));
        }
        let (cost, rest) = rest.split_at(2);
        let Some(encoded) = rest.strip_prefix('$') else {
            return Err(ImportProblem::Malformed("bcrypt cost is not two digits"));
        };
        let cost = u32::try_from(super::decimal(cost, "bcrypt cost is not two digits")?)
            .map_err(|_| ImportProblem::CostTooHigh("bcrypt cost"))?;
        if cost < MIN_COST {
            return Err(ImportProblem::Malformed("bcrypt cost is below 4"));
        }
        if cost > MAX_BCRYPT_COST {
            return Err(ImportProblem::CostTooHigh("bcrypt cost"));
        }
        let (salt_text, hash_text) = encoded.split_at(22);
        let mut salt = [0u8; 16];
        let mut expected = [0u8; 23];
        decode(salt_text, &mut salt, "bcrypt salt is not bcrypt base64")?;
        decode(hash_text, &mut expected, "bcrypt hash is not bcrypt base64")?;
        Ok(Bcrypt { format, prehash, cost, salt, expected })
    }

    /// Which format the hash came in.
    pub(super) fn format(&self) -> HashFormat {
        self.format
    }

    /// Whether `secret` (its first 72 bytes; see the module's docs) derives the stored
    /// hash, compared in constant time.
    pub(super) fn verify(&self, secret: &[u8]) -> bool {
        let mut hex = Zeroizing::new([0u8; 64]);
        let password = match self.prehash {
            Prehash::None => secret,
            Prehash::Sha256Hex => {
                let mut digest = Sha256::digest(secret);
                data_encoding::HEXLOWER.encode_mut(&digest, &mut hex[..]);
                digest.as_mut_slice().zeroize();
                &hex[..]
            }
        };
        // The key: the password's bytes and a NUL, cut to 72 bytes.
        let mut key = Zeroizing::new([0u8; MAX_KEY_BYTES]);
        let len = password.len().min(MAX_KEY_BYTES);
        key.iter_mut().zip(password).for_each(|(k, p)| *k = *p);
        let used = key.get(..(len + 1).min(MAX_KEY_BYTES)).unwrap_or_default();
        let derived = Zeroizing::new(::bcrypt::bcrypt(self.cost, self.salt, used));
        // bcrypt keeps 23 of the 24 bytes it derives.
        bool::from(derived.get(..23).unwrap_or_default().ct_eq(&self.expected))
    }
}
