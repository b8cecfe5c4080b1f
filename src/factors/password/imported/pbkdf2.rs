//! PBKDF2-HMAC hashes: Django's `pbkdf2_sha256$…`/`pbkdf2_sha1$…` and passlib's
//! `$pbkdf2-sha256$…`, `$pbkdf2-sha512$…`, `$pbkdf2$…` (SHA-1).

use hmac::Hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{HashFormat, ImportProblem, MAX_PBKDF2_ITERATIONS, decimal, fields};
use crate::error::Error;

/// The HMAC hash function of a PBKDF2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prf {
    /// HMAC-SHA-1 (20-byte blocks).
    Sha1,
    /// HMAC-SHA-256 (32-byte blocks).
    Sha256,
    /// HMAC-SHA-512 (64-byte blocks).
    Sha512,
}

impl Prf {
    /// The digest length, which is the length of the hash Django and passlib store: one
    /// PBKDF2 block, so a hash costs exactly its iteration count.
    const fn len(self) -> usize {
        match self {
            Prf::Sha1 => 20,
            Prf::Sha256 => 32,
            Prf::Sha512 => 64,
        }
    }
}

/// A parsed PBKDF2 hash, within the import bounds.
pub(super) struct Pbkdf2 {
    format: HashFormat,
    prf: Prf,
    iterations: u32,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

/// The iteration count: at least 1, at most [`MAX_PBKDF2_ITERATIONS`].
fn iterations(text: &str) -> Result<u32, ImportProblem> {
    let n = decimal(text, "PBKDF2 iteration count is not a number")?;
    if n == 0 {
        return Err(ImportProblem::Malformed("PBKDF2 iteration count is zero"));
    }
    if n > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(ImportProblem::CostTooHigh("PBKDF2 iterations"));
    }
    u32::try_from(n).map_err(|_| ImportProblem::CostTooHigh("PBKDF2 iterations"))
}

impl Pbkdf2 {
    /// Checks the salt length and that the hash is one digest long.
    fn new(
        format: HashFormat,
        prf: Prf,
        iterations: u32,
        salt: Vec<u8>,
        expected: Vec<u8>,
    ) -> Result<Self, ImportProblem> {
        super::check_salt(&salt)?;
        if expected.len() != prf.len() {
            return Err(ImportProblem::Malformed("PBKDF2 hash length is not the digest length"));
        }
        Ok(Pbkdf2 { format, prf, iterations, salt, expected })
    }

    /// Django's `<iterations>$<salt>$<base64 hash>` (after `pbkdf2_sha256$` or
    /// `pbkdf2_sha1$`): the salt is text used as its UTF-8 bytes, the hash standard
    /// base64 with padding, one digest long.
    pub(super) fn django(format: HashFormat, prf: Prf, rest: &str) -> Result<Self, ImportProblem> {
        let [iterations_text, salt, hash] = fields(rest)?;
        let expected = super::decode(&data_encoding::BASE64, hash, "PBKDF2 hash is not base64")?;
        Self::new(format, prf, iterations(iterations_text)?, salt.as_bytes().to_vec(), expected)
    }

    /// passlib's `<rounds>$<salt>$<hash>` (after `$pbkdf2-sha256$` and the like): salt
    /// and hash in passlib's adapted base64 (`.` for `+`, no padding), the hash one
    /// digest long.
    pub(super) fn passlib(format: HashFormat, prf: Prf, rest: &str) -> Result<Self, ImportProblem> {
        let [rounds, salt, hash] = fields(rest)?;
        let salt = super::decode_ab64(salt, "PBKDF2 salt is not adapted base64")?;
        let expected = super::decode_ab64(hash, "PBKDF2 hash is not adapted base64")?;
        Self::new(format, prf, iterations(rounds)?, salt, expected)
    }

    /// Which format the hash came in.
    pub(super) fn format(&self) -> HashFormat {
        self.format
    }

    /// Whether `secret` derives the stored hash, compared in constant time.
    pub(super) fn verify(&self, secret: &[u8]) -> Result<bool, Error> {
        let mut buffer = Zeroizing::new([0u8; 64]);
        let out = buffer.get_mut(..self.expected.len()).ok_or(Error::Corrupt("PBKDF2 hash length"))?;
        let (salt, rounds) = (&self.salt[..], self.iterations);
        match self.prf {
            Prf::Sha1 => ::pbkdf2::pbkdf2::<Hmac<Sha1>>(secret, salt, rounds, out),
            Prf::Sha256 => ::pbkdf2::pbkdf2::<Hmac<Sha256>>(secret, salt, rounds, out),
            Prf::Sha512 => ::pbkdf2::pbkdf2::<Hmac<Sha512>>(secret, salt, rounds, out),
        }
        .map_err(|_| Error::Corrupt("PBKDF2 key length"))?;
        Ok(bool::from(out.ct_eq(&self.expected)))
    }
}
