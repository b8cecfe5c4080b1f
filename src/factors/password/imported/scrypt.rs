//! scrypt hashes: Django's `scrypt$<n>$<salt>$<r>$<p>$<hash>` and the PHC form that
//! passlib and RustCrypto's `scrypt` write, `$scrypt$ln=<log2 n>,r=<r>,p=<p>$<salt>$<hash>`.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{HashFormat, ImportProblem, MAX_SCRYPT_MEMORY_BYTES, MAX_SCRYPT_PARALLELISM, decimal, fields};
use crate::error::Error;

/// A parsed scrypt hash, within the import bounds.
pub(super) struct Scrypt {
    format: HashFormat,
    params: ::scrypt::Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

/// The bytes scrypt allocates for `n`, `r`, `p`: its `V` array (128·r·n) and its `B`
/// blocks (128·r·p); `None` if that overflows.
fn memory(log_n: u8, r: u64, p: u64) -> Option<u64> {
    let n = 1u64.checked_shl(u32::from(log_n))?;
    r.checked_mul(128)?.checked_mul(n.checked_add(p)?)
}

impl Scrypt {
    /// Checks the costs against the import bounds and the salt and hash lengths.
    fn new(
        format: HashFormat,
        log_n: u8,
        r: u64,
        p: u64,
        salt: Vec<u8>,
        expected: Vec<u8>,
    ) -> Result<Self, ImportProblem> {
        if log_n == 0 || r == 0 || p == 0 {
            return Err(ImportProblem::Malformed("scrypt n below 2, or r or p zero"));
        }
        if p > u64::from(MAX_SCRYPT_PARALLELISM) {
            return Err(ImportProblem::CostTooHigh("scrypt parallelism"));
        }
        if memory(log_n, r, p).is_none_or(|bytes| bytes > MAX_SCRYPT_MEMORY_BYTES) {
            return Err(ImportProblem::CostTooHigh("scrypt memory"));
        }
        super::check_salt(&salt)?;
        super::check_hash(&expected)?;
        let r = u32::try_from(r).map_err(|_| ImportProblem::CostTooHigh("scrypt memory"))?;
        let p = u32::try_from(p).map_err(|_| ImportProblem::CostTooHigh("scrypt parallelism"))?;
        let params = ::scrypt::Params::new(log_n, r, p, expected.len())
            .map_err(|_| ImportProblem::Malformed("scrypt parameters out of range"))?;
        Ok(Scrypt { format, params, salt, expected })
    }

    /// Django's `<n>$<salt>$<r>$<p>$<hash>` (after `scrypt$`): `n` itself (a power of
    /// two), the salt text used as its UTF-8 bytes, the hash standard base64 with
    /// padding, 64 bytes (Django's `dklen`).
    pub(super) fn django(rest: &str) -> Result<Self, ImportProblem> {
        let [n, salt, r, p, hash] = fields(rest)?;
        let n = decimal(n, "scrypt n is not a number")?;
        if !n.is_power_of_two() {
            return Err(ImportProblem::Malformed("scrypt n is not a power of two"));
        }
        let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| ImportProblem::CostTooHigh("scrypt memory"))?;
        let r = decimal(r, "scrypt r is not a number")?;
        let p = decimal(p, "scrypt p is not a number")?;
        let expected = super::decode(&data_encoding::BASE64, hash, "scrypt hash is not base64")?;
        if expected.len() != 64 {
            return Err(ImportProblem::Malformed("Django scrypt hash is not 64 bytes"));
        }
        Self::new(HashFormat::DjangoScrypt, log_n, r, p, salt.as_bytes().to_vec(), expected)
    }

    /// The PHC form's `ln=<log2 n>,r=<r>,p=<p>$<salt>$<hash>` (after `$scrypt$`), the
    /// parameters in this order as passlib and RustCrypto write them, salt and hash in
    /// standard base64 without padding (passlib's `b64s`; its `.`-for-`+` variant is
    /// accepted too).
    pub(super) fn phc(rest: &str) -> Result<Self, ImportProblem> {
        let [params, salt, hash] = fields(rest)?;
        let [ln, r, p] = {
            let mut parts = params.split(',');
            let mut next = |name: &str| parts.next().and_then(|part| part.strip_prefix(name));
            let fields = [next("ln="), next("r="), next("p=")];
            match (fields, parts.next()) {
                ([Some(ln), Some(r), Some(p)], None) => [ln, r, p],
                _ => return Err(ImportProblem::Malformed("scrypt parameters are not ln=…,r=…,p=…")),
            }
        };
        let ln = decimal(ln, "scrypt ln is not a number")?;
        let log_n = u8::try_from(ln).ok().filter(|&l| l < 64).ok_or(ImportProblem::CostTooHigh("scrypt memory"))?;
        let r = decimal(r, "scrypt r is not a number")?;
        let p = decimal(p, "scrypt p is not a number")?;
        let salt = super::decode_ab64(salt, "scrypt salt is not base64")?;
        let expected = super::decode_ab64(hash, "scrypt hash is not base64")?;
        Self::new(HashFormat::Scrypt, log_n, r, p, salt, expected)
    }

    /// Which format the hash came in.
    pub(super) fn format(&self) -> HashFormat {
        self.format
    }

    /// Whether `secret` derives the stored hash, compared in constant time. (The
    /// `scrypt` crate does not wipe its own working memory; the derived hash is wiped.)
    pub(super) fn verify(&self, secret: &[u8]) -> Result<bool, Error> {
        let mut buffer = Zeroizing::new([0u8; 64]);
        let out = buffer.get_mut(..self.expected.len()).ok_or(Error::Corrupt("scrypt hash length"))?;
        ::scrypt::scrypt(secret, &self.salt, &self.params, out).map_err(|_| Error::Corrupt("scrypt hash length"))?;
        Ok(bool::from(out.ct_eq(&self.expected)))
    }
}
