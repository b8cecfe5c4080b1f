//! Argon2id hashing for passwords and backup codes, and the password rules.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

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

/// Whether `secret` matches the PHC string (Argon2's own comparison is constant-time).
/// A corrupt PHC string is a fault, not a mismatch.
pub(crate) fn verify(secret: &[u8], phc: &str) -> Result<bool, Error> {
    let parsed = PasswordHash::new(phc).map_err(|_| Error::Corrupt("password hash"))?;
    let params = Params::try_from(&parsed).map_err(|_| Error::Corrupt("password hash parameters"))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    Ok(hasher.verify_password(secret, &parsed).is_ok())
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
