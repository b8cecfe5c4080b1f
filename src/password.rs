//! Argon2id hashing for passwords and backup codes, and the password rules.

use std::sync::{Mutex, PoisonError};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use subtle::ConstantTimeEq;

use crate::error::{Error, InputError};
use crate::policy::{HashParams, PasswordPolicy};
use crate::random;

/// The longest password input the engine reads, in bytes, whatever the policy says:
/// larger inputs are refused before any hashing.
pub(crate) const MAX_PASSWORD_BYTES: usize = 4096;

fn argon2(params: &HashParams) -> Result<Argon2<'static>, Error> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|_| Error::Misuse("invalid Argon2 parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `secret` with a fresh 16-byte salt into a PHC string.
pub(crate) fn hash(secret: &[u8], params: &HashParams) -> Result<String, Error> {
    let salt = random::bytes::<16>()?;
    let hash =
        argon2(params)?.hash_password_with_salt(secret, &salt).map_err(|_| Error::Misuse("Argon2 hashing failed"))?;
    Ok(hash.to_string())
}

/// Argon2 working memory kept for reuse. Hashing runs under the engine's
/// concurrent-hash bound, so this holds at most as many buffers as hashes ever ran at
/// once (the sum of the bounds of the engines in the process).
///
/// Why not let Argon2 allocate: each call then allocates and frees m_cost KiB, and the
/// allocator keeps freed blocks per thread (glibc: one arena per thread, up to 8 per
/// core), so a flood on a blocking pool of many threads grew the resident set far past
/// bound × m_cost. Reused buffers make the resident hashing memory exactly that.
/// Each buffer is wiped after use, so no password-derived block outlives its hash.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` on a buffer of at least `blocks` Argon2 blocks from the pool.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let pooled = MEMORY.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut buffer = pooled.unwrap_or_default();
    if buffer.len() < blocks {
        buffer.resize(blocks, Block::default());
    }
    let used = buffer.get_mut(..blocks).unwrap_or_default();
    let out = f(used);
    // Only the blocks this hash used hold its data (the rest were wiped after theirs).
    used.iter_mut().for_each(zeroize::Zeroize::zeroize);
    MEMORY.lock().unwrap_or_else(PoisonError::into_inner).push(buffer);
    out
}

/// Whether `secret` matches the PHC string, compared in constant time. A corrupt PHC
/// string is a fault, not a mismatch.
pub(crate) fn verify(secret: &[u8], phc: &str) -> Result<bool, Error> {
    let parsed = PasswordHash::new(phc).map_err(|_| Error::Corrupt("password hash"))?;
    let params = Params::try_from(&parsed).map_err(|_| Error::Corrupt("password hash parameters"))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(Error::Corrupt("password hash"));
    };
    let expected = expected.as_bytes();
    let mut buffer = [0u8; 64];
    let out = buffer.get_mut(..expected.len()).ok_or(Error::Corrupt("password hash length"))?;
    // Verify with what the stored hash names (an imported argon2i or v=16 hash is not a
    // wrong password); new hashes are always Argon2id v0x13.
    let algorithm =
        Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| Error::Corrupt("password hash algorithm"))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|_| Error::Corrupt("password hash version"))?,
        None => Version::V0x13,
    };
    let hasher = Argon2::new(algorithm, version, params.clone());
    with_memory(params.block_count(), |memory| hasher.hash_password_into_with_memory(secret, salt, out, memory))
        .map_err(|_| Error::Corrupt("password hash parameters"))?;
    let matched = bool::from(out.ct_eq(expected));
    zeroize::Zeroize::zeroize(&mut buffer);
    Ok(matched)
}

/// The parameters a PHC string was made with.
pub(crate) fn params_of(phc: &str) -> Option<HashParams> {
    let parsed = PasswordHash::new(phc).ok()?;
    let p = Params::try_from(&parsed).ok()?;
    Some(HashParams { m_cost: p.m_cost(), t_cost: p.t_cost(), p_cost: p.p_cost() })
}

/// Whether a stored hash should be replaced at the next successful login.
pub(crate) fn needs_rehash(phc: &str, policy: &HashParams) -> bool {
    params_of(phc).is_none_or(|p| p.weaker_than(policy))
}

/// Checks a new password against NIST SP 800-63B length rules (characters, not bytes;
/// no composition rules; never truncated).
pub(crate) fn check_new(password: &str, policy: &PasswordPolicy) -> Result<(), InputError> {
    check_input(password, policy)?;
    let chars = password.chars().count();
    if chars < policy.min_chars {
        return Err(InputError::TooShort { field: "password", min: policy.min_chars });
    }
    Ok(())
}

/// Bounds a password input before hashing (a login attempt with an oversized password
/// is refused rather than hashed).
pub(crate) fn check_input(password: &str, policy: &PasswordPolicy) -> Result<(), InputError> {
    let max = policy.max_chars.max(64);
    if password.len() > MAX_PASSWORD_BYTES || password.chars().count() > max {
        return Err(InputError::TooLong { field: "password", max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify_round_trip() -> Result<(), Error> {
        let phc = hash(b"correct horse", &HashParams::MINIMAL)?;
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(verify(b"correct horse", &phc)?);
        assert!(!verify(b"correct horsf", &phc)?);
        assert!(needs_rehash(&phc, &HashParams::OWASP));
        assert!(!needs_rehash(&phc, &HashParams::MINIMAL));
        Ok(())
    }

    #[test]
    fn verify_agrees_with_the_argon2_crate() -> Result<(), Error> {
        use argon2::PasswordVerifier;
        for params in [HashParams::MINIMAL, HashParams::BACKUP_CODE] {
            let phc = hash(b"backup", &params)?;
            let parsed = PasswordHash::new(&phc).map_err(|_| Error::Corrupt("test"))?;
            let reference = argon2(&params)?;
            assert!(reference.verify_password(b"backup", &parsed).is_ok());
            assert!(verify(b"backup", &phc)?);
            assert!(!verify(b"backuq", &phc)?);
        }
        Ok(())
    }

    #[test]
    fn hashes_made_with_other_argon2_variants_verify() -> Result<(), Error> {
        use argon2::PasswordHasher as _;
        let params = Params::new(8, 1, 1, None).map_err(|_| Error::Misuse("params"))?;
        for (algorithm, version) in [(Algorithm::Argon2i, Version::V0x13), (Algorithm::Argon2id, Version::V0x10)] {
            let phc = Argon2::new(algorithm, version, params.clone())
                .hash_password_with_salt(b"imported", b"saltsaltsaltsalt")
                .map_err(|_| Error::Misuse("hash"))?
                .to_string();
            assert!(verify(b"imported", &phc)?, "{phc}");
            assert!(!verify(b"imported!", &phc)?, "{phc}");
        }
        Ok(())
    }

    #[test]
    fn corrupt_hash_is_a_fault() {
        assert!(matches!(verify(b"x", "$argon2id$nonsense"), Err(Error::Corrupt(_))));
    }

    #[test]
    fn length_rules_count_characters() {
        let p = PasswordPolicy::default();
        assert!(check_new("ääääääää", &p).is_ok()); // 8 chars, 16 bytes
        assert!(matches!(check_new("äääääää", &p), Err(InputError::TooShort { .. })));
        assert!(check_new(&"x".repeat(64), &p).is_ok());
        assert!(check_new(&"x".repeat(256), &p).is_ok());
        assert!(matches!(check_new(&"x".repeat(257), &p), Err(InputError::TooLong { .. })));
        assert!(check_new("password", &p).is_ok(), "no composition rules");
    }
}
