//! Password hashes made by other systems: recognising, validating and verifying them, so
//! that an application moving to this crate keeps its users' passwords. The engine
//! re-hashes to Argon2id at the next right password ([`needs_rehash`](super::needs_rehash)
//! is true for every format but current Argon2id).
//!
//! | [`HashFormat`] | stored string | written by |
//! | --- | --- | --- |
//! | `argon2id`, `argon2i`, `argon2d` | `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` (PHC, `v=` optional) | this crate, argon2-cffi, passlib, libsodium |
//! | `django-argon2` | `argon2$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` | Django's `Argon2PasswordHasher` |
//! | `django-pbkdf2-sha256` | `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` | Django's default hasher |
//! | `django-pbkdf2-sha1` | `pbkdf2_sha1$<iterations>$<salt>$<base64 hash>` | Django's `PBKDF2SHA1PasswordHasher` |
//! | `django-scrypt` | `scrypt$<n>$<salt>$<r>$<p>$<base64 hash>` | Django's `ScryptPasswordHasher` |
//! | `django-bcrypt` | `bcrypt$<bcrypt hash>` | Django's `BCryptPasswordHasher` |
//! | `django-bcrypt-sha256` | `bcrypt_sha256$<bcrypt hash of the hex SHA-256>` | Django's `BCryptSHA256PasswordHasher` |
//! | `bcrypt` | `$2a$`, `$2b$`, `$2y$<cost>$<salt><hash>` | Python's bcrypt, Rails/Devise, PHP's `password_hash`, `htpasswd -B` |
//! | `scrypt` | `$scrypt$ln=<log2 n>,r=<r>,p=<p>$<salt>$<hash>` | passlib, RustCrypto's `scrypt` |
//! | `passlib-pbkdf2-sha256`, `-sha512`, `-sha1` | `$pbkdf2-sha256$<rounds>$<salt>$<hash>`, `$pbkdf2-sha512$…`, `$pbkdf2$…` | passlib |
//!
//! Every hash is parsed and checked whole before anything is computed: salt and hash
//! lengths, and costs within the bounds below, which stop a stored hash from making
//! one login a denial of service. [`check_imported`] and [`verify`] apply the same
//! checks, so a hash [`check_imported`] refuses is never computed.
//!
//! The unit tests check every format against hashes the real tools made
//! (`tests/vectors/imported_hashes.tsv`, written by `scripts/make_hash_vectors.sh`).

mod bcrypt;
mod pbkdf2;
mod scrypt;

use std::fmt;

use self::bcrypt::Bcrypt;
use self::pbkdf2::{Pbkdf2, Prf};
use self::scrypt::Scrypt;
use crate::error::Error;

/// The most PBKDF2 iterations an imported hash may ask for. Django 5.2 writes 1,000,000
/// (HMAC-SHA-256) and passlib 29,000; 10 million takes seconds of a hashing thread, and
/// a stored hash asking for more (written by an attacker who reached the store, or
/// mistyped) would make each login attempt on it that much more expensive.
pub(crate) const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// The most memory an imported scrypt hash may ask for, in bytes, counted as scrypt
/// allocates it: 128·r·(N + p). 256 MiB is four times passlib's default (N = 2¹⁶, r = 8)
/// and sixteen times Django's; each verify allocates this much, so more would let a
/// stored hash exhaust memory under concurrent logins.
pub(crate) const MAX_SCRYPT_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// The most scrypt parallelism (`p`) an imported hash may ask for. The crate computes
/// the `p` lanes one after another, so time grows with `p`; Django writes 5, passlib 1.
pub(crate) const MAX_SCRYPT_PARALLELISM: u32 = 16;

/// The highest bcrypt cost an imported hash may have. Each step doubles the work:
/// cost 16 is 16 times the usual 12 (about four seconds), and the format allows 31.
pub(crate) const MAX_BCRYPT_COST: u32 = 16;

/// The most Argon2 memory a stored hash may ask for, in KiB (1 GiB). Every Argon2
/// verify computes in a buffer of that size from the process's pool, so a larger one
/// would let a stored hash exhaust memory; the crate's own default is 19 MiB.
pub(crate) const MAX_ARGON2_M_COST_KIB: u32 = 1024 * 1024;

/// The most Argon2 passes (`t`) a stored hash may ask for. Time grows with passes ×
/// memory; common settings use 1 to 10.
pub(crate) const MAX_ARGON2_T_COST: u32 = 64;

/// The shortest salt accepted, in bytes. Every tool here writes at least 12 (Django's
/// salts before 3.1); a shorter one is a hand-made or broken hash.
pub(crate) const MIN_SALT_BYTES: usize = 8;

/// The longest salt accepted, in bytes (passlib's own limit).
pub(crate) const MAX_SALT_BYTES: usize = 1024;

/// The shortest stored hash accepted, in bytes: a shorter one would let wrong passwords
/// match by chance too often. passlib's Argon2 writes 16, the rest 20 to 64.
pub(crate) const MIN_HASH_BYTES: usize = 16;

/// The longest stored hash accepted, in bytes (the longest any format here writes).
pub(crate) const MAX_HASH_BYTES: usize = 64;

/// The format of a stored password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HashFormat {
    /// Argon2id PHC string (what the crate writes).
    Argon2id,
    /// Argon2i PHC string.
    Argon2i,
    /// Argon2d PHC string.
    Argon2d,
    /// Django's `argon2$` + an Argon2 PHC string without its leading `$`.
    DjangoArgon2,
    /// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
    DjangoPbkdf2Sha256,
    /// Django's `pbkdf2_sha1$<iterations>$<salt>$<base64 hash>`.
    DjangoPbkdf2Sha1,
    /// Django's `scrypt$<n>$<salt>$<r>$<p>$<base64 hash>`.
    DjangoScrypt,
    /// Django's `bcrypt$` + a bcrypt hash.
    DjangoBcrypt,
    /// Django's `bcrypt_sha256$` + a bcrypt hash of the password's hex SHA-256.
    DjangoBcryptSha256,
    /// bcrypt, `$2a$`, `$2b$` or `$2y$`.
    Bcrypt,
    /// scrypt in PHC form, `$scrypt$ln=…,r=…,p=…$<salt>$<hash>` (passlib, RustCrypto).
    Scrypt,
    /// passlib's `$pbkdf2-sha256$<rounds>$<salt>$<hash>`.
    PasslibPbkdf2Sha256,
    /// passlib's `$pbkdf2-sha512$<rounds>$<salt>$<hash>`.
    PasslibPbkdf2Sha512,
    /// passlib's `$pbkdf2$<rounds>$<salt>$<hash>` (HMAC-SHA-1).
    PasslibPbkdf2Sha1,
}

impl HashFormat {
    /// A short stable name (`"argon2id"`, `"django-pbkdf2-sha256"`, `"bcrypt"`, …), for
    /// logs, metrics and import reports.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            HashFormat::Argon2id => "argon2id",
            HashFormat::Argon2i => "argon2i",
            HashFormat::Argon2d => "argon2d",
            HashFormat::DjangoArgon2 => "django-argon2",
            HashFormat::DjangoPbkdf2Sha256 => "django-pbkdf2-sha256",
            HashFormat::DjangoPbkdf2Sha1 => "django-pbkdf2-sha1",
            HashFormat::DjangoScrypt => "django-scrypt",
            HashFormat::DjangoBcrypt => "django-bcrypt",
            HashFormat::DjangoBcryptSha256 => "django-bcrypt-sha256",
            HashFormat::Bcrypt => "bcrypt",
            HashFormat::Scrypt => "scrypt",
            HashFormat::PasslibPbkdf2Sha256 => "passlib-pbkdf2-sha256",
            HashFormat::PasslibPbkdf2Sha512 => "passlib-pbkdf2-sha512",
            HashFormat::PasslibPbkdf2Sha1 => "passlib-pbkdf2-sha1",
        }
    }
}

impl fmt::Display for HashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stored hash cannot be imported. The messages name what is wrong, never the
/// hash's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ImportProblem {
    /// Not a format the crate knows.
    #[error("unrecognised password hash format")]
    Unrecognised,
    /// A known format, but not well formed (the reason says which part).
    #[error("malformed password hash: {0}")]
    Malformed(&'static str),
    /// Well formed, but asks for more work than the import bounds allow (the reason
    /// names the cost).
    #[error("password hash cost above the import bound: {0}")]
    CostTooHigh(&'static str),
}

impl From<ImportProblem> for Error {
    /// A stored hash that cannot be verified is a corrupt stored value.
    fn from(problem: ImportProblem) -> Self {
        Error::Corrupt(match problem {
            ImportProblem::Unrecognised => "password hash of an unrecognised format",
            ImportProblem::Malformed(reason) => reason,
            ImportProblem::CostTooHigh(_) => "password hash cost above the import bounds",
        })
    }
}

/// A stored hash, parsed and checked, ready to verify.
enum Parsed {
    /// An Argon2 PHC string (bare or Django's), verified by the crate's own Argon2 path.
    Argon2(HashFormat, super::Argon2Hash),
    /// A PBKDF2 hash.
    Pbkdf2(Pbkdf2),
    /// A scrypt hash.
    Scrypt(Scrypt),
    /// A bcrypt hash.
    Bcrypt(Bcrypt),
}

impl Parsed {
    /// Which format the hash came in.
    fn format(&self) -> HashFormat {
        match self {
            Parsed::Argon2(format, _) => *format,
            Parsed::Pbkdf2(h) => h.format(),
            Parsed::Scrypt(h) => h.format(),
            Parsed::Bcrypt(h) => h.format(),
        }
    }
}

/// Recognises and parses a stored hash, checking it whole (see the module's docs).
fn parse(stored: &str) -> Result<Parsed, ImportProblem> {
    let (phc, body) = match stored.strip_prefix('$') {
        Some(body) => (true, body),
        None => (false, stored),
    };
    let (scheme, rest) = body.split_once('$').ok_or(ImportProblem::Unrecognised)?;
    Ok(match (phc, scheme) {
        (true, "argon2id" | "argon2i" | "argon2d") => {
            let hash = super::parse_argon2(stored)?;
            Parsed::Argon2(hash.format(), hash)
        }
        // Django's is the PHC string with `argon2` in front of its leading `$`.
        (false, "argon2") => Parsed::Argon2(HashFormat::DjangoArgon2, super::parse_argon2(&stored[scheme.len()..])?),
        (true, "2a" | "2b" | "2y") => Parsed::Bcrypt(Bcrypt::parse(stored)?),
        (true, "scrypt") => Parsed::Scrypt(Scrypt::phc(rest)?),
        (true, "pbkdf2-sha256") => Parsed::Pbkdf2(Pbkdf2::passlib(HashFormat::PasslibPbkdf2Sha256, Prf::Sha256, rest)?),
        (true, "pbkdf2-sha512") => Parsed::Pbkdf2(Pbkdf2::passlib(HashFormat::PasslibPbkdf2Sha512, Prf::Sha512, rest)?),
        (true, "pbkdf2") => Parsed::Pbkdf2(Pbkdf2::passlib(HashFormat::PasslibPbkdf2Sha1, Prf::Sha1, rest)?),
        (false, "pbkdf2_sha256") => Parsed::Pbkdf2(Pbkdf2::django(HashFormat::DjangoPbkdf2Sha256, Prf::Sha256, rest)?),
        (false, "pbkdf2_sha1") => Parsed::Pbkdf2(Pbkdf2::django(HashFormat::DjangoPbkdf2Sha1, Prf::Sha1, rest)?),
        (false, "scrypt") => Parsed::Scrypt(Scrypt::django(rest)?),
        (false, "bcrypt") => Parsed::Bcrypt(Bcrypt::django(rest)?),
        (false, "bcrypt_sha256") => Parsed::Bcrypt(Bcrypt::django_sha256(rest)?),
        _ => return Err(ImportProblem::Unrecognised),
    })
}

/// Recognises a stored hash's format and validates it fully (it parses, its salt and
/// hash have sane lengths, its costs are within the import bounds), without computing
/// anything: what an import checks before it stores a hash.
///
/// # Errors
/// [`ImportProblem`] saying why the hash would not verify.
pub(crate) fn check_imported(stored: &str) -> Result<HashFormat, ImportProblem> {
    parse(stored).map(|parsed| parsed.format())
}

/// Whether `secret` matches the stored hash, in any format the crate knows, compared in
/// constant time. A hash that [`check_imported`] refuses is a fault
/// ([`Error::Corrupt`]), not a mismatch, and is never computed.
pub(super) fn verify(secret: &[u8], stored: &str) -> Result<bool, Error> {
    match parse(stored)? {
        Parsed::Argon2(_, hash) => super::verify_argon2(secret, &hash),
        Parsed::Pbkdf2(hash) => hash.verify(secret),
        Parsed::Scrypt(hash) => hash.verify(secret),
        Parsed::Bcrypt(hash) => Ok(hash.verify(secret)),
    }
}

/// Splits `text` at `$` into exactly `N` fields.
fn fields<const N: usize>(text: &str) -> Result<[&str; N], ImportProblem> {
    let mut parts = text.split('$');
    let mut fields = [""; N];
    for field in &mut fields {
        *field = parts.next().ok_or(ImportProblem::Malformed("password hash has too few fields"))?;
    }
    match parts.next() {
        Some(_) => Err(ImportProblem::Malformed("password hash has too many fields")),
        None => Ok(fields),
    }
}

/// A decimal number of ASCII digits only (no sign, space or `_`); one too large for a
/// `u64` reads as `u64::MAX`, so it fails the cost bounds.
fn decimal(text: &str, what: &'static str) -> Result<u64, ImportProblem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ImportProblem::Malformed(what));
    }
    Ok(text.parse().unwrap_or(u64::MAX))
}

/// Decodes `text` with `encoding` (strict: canonical, no stray characters).
fn decode(encoding: &data_encoding::Encoding, text: &str, what: &'static str) -> Result<Vec<u8>, ImportProblem> {
    encoding.decode(text.as_bytes()).map_err(|_| ImportProblem::Malformed(what))
}

/// Decodes passlib's base64 without padding, in its adapted form (`.` for `+`, as
/// passlib's `ab64_decode` reads it) or the standard one.
fn decode_ab64(text: &str, what: &'static str) -> Result<Vec<u8>, ImportProblem> {
    decode(&data_encoding::BASE64_NOPAD, &text.replace('.', "+"), what)
}

/// Checks a salt's length against [`MIN_SALT_BYTES`] and [`MAX_SALT_BYTES`].
fn check_salt(salt: &[u8]) -> Result<(), ImportProblem> {
    match salt.len() {
        MIN_SALT_BYTES..=MAX_SALT_BYTES => Ok(()),
        _ => Err(ImportProblem::Malformed("password hash salt length out of range")),
    }
}

/// Checks a stored hash's length against [`MIN_HASH_BYTES`] and [`MAX_HASH_BYTES`].
fn check_hash(hash: &[u8]) -> Result<(), ImportProblem> {
    match hash.len() {
        MIN_HASH_BYTES..=MAX_HASH_BYTES => Ok(()),
        _ => Err(ImportProblem::Malformed("password hash length out of range")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::error::InputError;
    use crate::policy::HashParams;

    /// One row of `tests/vectors/imported_hashes.tsv`: a hash a real tool made.
    #[derive(Debug, Clone, Copy)]
    struct Vector {
        tool: &'static str,
        format: &'static str,
        password: &'static str,
        hash: &'static str,
    }

    impl Vector {
        /// Rows at a tool's default costs, slower than the rest.
        fn at_defaults(&self) -> bool {
            self.tool.ends_with("@defaults")
        }
    }

    const TSV: &str = include_str!("../../../tests/vectors/imported_hashes.tsv");

    /// The rows of the vectors file.
    fn vectors() -> Vec<Vector> {
        let rows: Vec<Vector> = TSV
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .skip(1) // the column names
            .map(|line| match line.split('\t').collect::<Vec<_>>()[..] {
                [tool, format, password, hash] => Vector { tool, format, password, hash },
                _ => panic!("a row without four columns: {line}"),
            })
            .collect();
        assert!(rows.len() > 40, "the vectors file lost its rows");
        rows
    }

    /// Every format the crate names, each of which the vectors must cover.
    const FORMATS: [HashFormat; 14] = [
        HashFormat::Argon2id,
        HashFormat::Argon2i,
        HashFormat::Argon2d,
        HashFormat::DjangoArgon2,
        HashFormat::DjangoPbkdf2Sha256,
        HashFormat::DjangoPbkdf2Sha1,
        HashFormat::DjangoScrypt,
        HashFormat::DjangoBcrypt,
        HashFormat::DjangoBcryptSha256,
        HashFormat::Bcrypt,
        HashFormat::Scrypt,
        HashFormat::PasslibPbkdf2Sha256,
        HashFormat::PasslibPbkdf2Sha512,
        HashFormat::PasslibPbkdf2Sha1,
    ];

    /// The password with its first character replaced.
    fn first_changed(password: &str) -> String {
        let mut chars = password.chars();
        let first = chars.next().map_or('x', |c| if c == 'x' { 'y' } else { 'x' });
        std::iter::once(first).chain(chars).collect()
    }

    #[test]
    fn vectors_cover_every_format_and_tool() {
        let rows = vectors();
        for format in FORMATS {
            assert!(rows.iter().any(|v| v.format == format.as_str()), "no vector for {format}");
        }
        for tool in ["django", "passlib", "bcrypt", "htpasswd", "argon2-cffi"] {
            assert!(rows.iter().any(|v| v.tool == tool), "no vector from {tool}");
        }
        assert!(rows.iter().any(|v| v.password == "pässwörd-ünïcode"));
        assert!(rows.iter().any(|v| v.format == "bcrypt" && v.password.len() > 72));
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            assert!(rows.iter().any(|v| v.hash.starts_with(prefix)), "no {prefix} vector");
        }
    }

    #[test]
    fn check_imported_names_each_vectors_format() {
        for v in vectors() {
            assert_eq!(check_imported(v.hash).map(HashFormat::as_str), Ok(v.format), "{v:?}");
        }
    }

    #[test]
    fn vectors_verify_with_their_password() -> Result<(), Error> {
        for v in vectors() {
            let started = std::time::Instant::now();
            assert!(super::verify(v.password.as_bytes(), v.hash)?, "{v:?}");
            // The tool-default rows are kept only while a debug build verifies them fast.
            assert!(started.elapsed() < std::time::Duration::from_secs(2), "{v:?} took {:?}", started.elapsed());
        }
        Ok(())
    }

    #[test]
    fn vectors_refuse_a_wrong_password() -> Result<(), Error> {
        for v in vectors() {
            assert!(!super::verify(b"not the password", v.hash)?, "{v:?}");
            if !v.at_defaults() {
                assert!(!super::verify(b"", v.hash)?, "{v:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn vectors_refuse_the_password_with_its_first_character_changed() -> Result<(), Error> {
        for v in vectors() {
            assert!(!super::verify(first_changed(v.password).as_bytes(), v.hash)?, "{v:?}");
        }
        Ok(())
    }

    /// Every format but Argon2id is replaced at the next right password; Argon2id only
    /// when weaker than the policy.
    #[test]
    fn every_imported_hash_needs_rehash_but_argon2id_as_strong_as_the_policy() {
        let strongest = HashParams { m_cost: MAX_ARGON2_M_COST_KIB, t_cost: MAX_ARGON2_T_COST, p_cost: 16 };
        for v in vectors() {
            assert!(crate::factors::password::needs_rehash(v.hash, &strongest), "{v:?}");
            let minimal = crate::factors::password::needs_rehash(v.hash, &HashParams::MINIMAL);
            assert_eq!(minimal, v.format != "argon2id", "{v:?}");
        }
    }

    /// bcrypt reads the first 72 bytes: the `htpasswd -B` hashes of longer passwords
    /// (one cut inside a two-byte character) verify with those bytes and any tail, as
    /// crypt_blowfish and Python's bcrypt (`checkpw(password[:72])`, checked by the
    /// script) do.
    #[test]
    fn bcrypt_reads_only_the_first_72_bytes_like_the_reference() -> Result<(), Error> {
        let long: Vec<_> = vectors().into_iter().filter(|v| v.format == "bcrypt" && v.password.len() > 72).collect();
        assert_eq!(long.len(), 2);
        for v in long {
            let bytes = v.password.as_bytes();
            let first_72 = &bytes[..72];
            assert!(super::verify(first_72, v.hash)?, "{v:?}");
            assert!(super::verify(&[first_72, b"another tail"].concat(), v.hash)?, "{v:?}");
            assert!(!super::verify(&bytes[..71], v.hash)?, "{v:?}");
            let mut last_read = first_72.to_vec();
            last_read[71] ^= 1;
            assert!(!super::verify(&last_read, v.hash)?, "{v:?}");
        }
        Ok(())
    }

    /// Django's `bcrypt_sha256` pre-hashes, so it reads the whole password.
    #[test]
    fn django_bcrypt_sha256_reads_the_whole_password() -> Result<(), Error> {
        let v = vectors().into_iter().find(|v| v.format == "django-bcrypt-sha256" && v.password.len() > 72);
        let v = v.ok_or(Error::Corrupt("no long django-bcrypt-sha256 vector"))?;
        assert!(super::verify(v.password.as_bytes(), v.hash)?);
        assert!(!super::verify(&v.password.as_bytes()[..72], v.hash)?);
        Ok(())
    }

    /// The first vector of `format` at low cost.
    fn sample(format: HashFormat) -> Vector {
        let found = vectors().into_iter().find(|v| v.format == format.as_str() && !v.at_defaults());
        found.unwrap_or_else(|| panic!("no {format} vector"))
    }

    /// Asserts `stored` is refused with `expected`, by `check_imported` and by `verify`
    /// (which must not compute it), and that neither message holds its text.
    fn assert_refused(stored: &str, expected: fn(&ImportProblem) -> bool) {
        let problem = check_imported(stored).expect_err(stored);
        assert!(expected(&problem), "{stored:?}: {problem:?}");
        let started = std::time::Instant::now();
        let error = super::verify(b"password", stored).expect_err(stored);
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "{stored:?} was computed");
        assert!(matches!(error, Error::Corrupt(_)), "{stored:?}: {error:?}");
        for message in [problem.to_string(), error.to_string()] {
            for field in stored.split(['$', ',']).filter(|f| f.len() >= 8) {
                assert!(!message.contains(field), "{message:?} shows part of {stored:?}");
            }
        }
    }

    fn malformed(p: &ImportProblem) -> bool {
        matches!(p, ImportProblem::Malformed(_))
    }

    fn too_costly(p: &ImportProblem) -> bool {
        matches!(p, ImportProblem::CostTooHigh(_))
    }

    fn unrecognised(p: &ImportProblem) -> bool {
        *p == ImportProblem::Unrecognised
    }

    #[test]
    fn junk_is_unrecognised() {
        for junk in ["", "$", "$$", "$$$", "not-a-hash", "hunter2", "$1$salt$hash", "$2x$04$abc", "$5$rounds=5000$x$y"]
        {
            assert_refused(junk, unrecognised);
        }
        for junk in [
            "md5$salt$hash",
            "sha1$salt$hash",
            "{SSHA}abc",
            "$scrypt",
            "pbkdf2_sha256",
            "bcrypt",
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert_refused(junk, unrecognised);
        }
    }

    /// Each format's sample with one part broken: truncated, bad base64, wrong lengths,
    /// bad numbers, missing or extra fields.
    #[test]
    fn malformed_variants_of_each_format_are_errors() {
        let django = sample(HashFormat::DjangoPbkdf2Sha256).hash; // pbkdf2_sha256$1000$<salt>$<hash>
        let [_, _, salt, hash] = django.split('$').collect::<Vec<_>>()[..] else { panic!("{django}") };
        for bad in [
            format!("pbkdf2_sha256$1000${salt}"),
            format!("pbkdf2_sha256$1000${salt}${hash}$"),
            format!("pbkdf2_sha256$1000${salt}${}", &hash[..hash.len() - 4]),
            format!("pbkdf2_sha256$1000${salt}${}", hash.replace('=', "")),
            format!("pbkdf2_sha256$1000${salt}$!{}", &hash[1..]),
            format!("pbkdf2_sha256$1000${salt}${hash}{hash}"),
            format!("pbkdf2_sha1$1000${salt}${hash}"), // a SHA-256 length under SHA-1
            format!("pbkdf2_sha256$1000$$${hash}"),
            format!("pbkdf2_sha256$1000$short${hash}"),
            format!("pbkdf2_sha256$0${salt}${hash}"),
            format!("pbkdf2_sha256$+1000${salt}${hash}"),
            format!("pbkdf2_sha256$ 1000${salt}${hash}"),
            format!("pbkdf2_sha256$1_000${salt}${hash}"),
            format!("pbkdf2_sha256$-1${salt}${hash}"),
            format!("pbkdf2_sha256$${salt}${hash}"),
        ] {
            assert_refused(&bad, malformed);
        }

        let passlib = sample(HashFormat::PasslibPbkdf2Sha256).hash;
        let [_, _, rounds, salt, hash] = passlib.split('$').collect::<Vec<_>>()[..] else { panic!("{passlib}") };
        for bad in [
            format!("$pbkdf2-sha256${rounds}${salt}${}", &hash[..hash.len() - 1]),
            format!("$pbkdf2-sha256${rounds}${salt}${hash}="),
            format!("$pbkdf2-sha512${rounds}${salt}${hash}"),
            format!("$pbkdf2-sha256${rounds}${salt}"),
            format!("$pbkdf2-sha256${rounds}$${hash}"),
            format!("$pbkdf2-sha256$x${salt}${hash}"),
        ] {
            assert_refused(&bad, malformed);
        }

        let django_scrypt = sample(HashFormat::DjangoScrypt).hash; // scrypt$1024$<salt>$8$1$<hash>
        let [_, _, salt, _, _, hash] = django_scrypt.split('$').collect::<Vec<_>>()[..] else { panic!() };
        for bad in [
            format!("scrypt$1000${salt}$8$1${hash}"),
            format!("scrypt$1${salt}$8$1${hash}"),
            format!("scrypt$0${salt}$8$1${hash}"),
            format!("scrypt$1024${salt}$0$1${hash}"),
            format!("scrypt$1024${salt}$8$0${hash}"),
            format!("scrypt$1024${salt}$8${hash}"),
            format!("scrypt$1024${salt}$8$1${}", &hash[..44]),
            format!("scrypt$1024${salt}$8$1$${hash}"),
            format!("scrypt$1024$$8$1${hash}"),
        ] {
            assert_refused(&bad, malformed);
        }

        let phc_scrypt = sample(HashFormat::Scrypt).hash; // $scrypt$ln=10,r=8,p=1$<salt>$<hash>
        let [_, _, params, salt, hash] = phc_scrypt.split('$').collect::<Vec<_>>()[..] else { panic!() };
        for bad in [
            format!("$scrypt$r=8,ln=10,p=1${salt}${hash}"),
            format!("$scrypt$ln=10,r=8${salt}${hash}"),
            format!("$scrypt$ln=10,r=8,p=1,len=32${salt}${hash}"),
            format!("$scrypt$ln=0,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=10,r=0,p=1${salt}${hash}"),
            format!("$scrypt$ln=10,r=8,p=0${salt}${hash}"),
            format!("$scrypt$ln=10,r=8,p=${salt}${hash}"),
            format!("$scrypt$ln=9,r=0,p=1${salt}${hash}"),
            format!("$scrypt${params}${salt}${}", &hash[..20]),
            format!("$scrypt${params}${salt}${hash}{hash}{hash}"),
            format!("$scrypt${params}${salt}$={hash}"),
            format!("$scrypt${params}$AAAA${hash}"),
            format!("$scrypt${params}${salt}"),
        ] {
            assert_refused(&bad, malformed);
        }

        let bcrypt = sample(HashFormat::Bcrypt).hash; // $2a$04$<53 chars>
        let body = &bcrypt[7..];
        for bad in [
            bcrypt[..59].to_owned(),
            format!("{bcrypt}x"),
            format!("$2b$03${body}"),
            format!("$2b$4${body}x"),
            format!("$2b$x4${body}"),
            format!("$2b$+4${body}"),
            format!("$2b$04#{body}"),
            format!("$2b$04${}+{}", &body[..10], &body[11..]),
            format!("$2b$04${}=", &body[..52]),
            format!("$2b$04${}é", &body[..51]),
            format!("bcrypt${body}"),
            format!("bcrypt_sha256${}", &bcrypt[..59]),
        ] {
            assert_refused(&bad, malformed);
        }

        let argon2 = sample(HashFormat::Argon2id).hash; // $argon2id$v=19$m=64,t=1,p=1$<salt>$<hash>
        let [_, _, _, params, salt, hash] = argon2.split('$').collect::<Vec<_>>()[..] else { panic!() };
        for bad in [
            format!("$argon2id$v=19${params}${salt}"),
            format!("$argon2id$v=19${params}${salt}${}", &hash[..16]),
            format!("$argon2id$v=18${params}${salt}${hash}"),
            format!("$argon2id$v=19${params}${salt}${hash}xx"),
            format!("$argon2id$v=19${params},x=1${salt}${hash}"),
            format!("$argon2id$v=19$m=64,t=1,p=0${salt}${hash}"),
            format!("$argon2id$v=19$m=sixty,t=1,p=1${salt}${hash}"),
            format!("$argon2id$v=19$m=4,t=1,p=1${salt}${hash}"),
            format!("$argon2id$v=19$m=64,t=0,p=1${salt}${hash}"),
            format!("$argon2id$v=19${params}$AAAA${hash}"),
            format!("$argon2id$v=19${params}${salt}$!{hash}"),
            format!("argon2$argon2id$v=19${params}${salt}"),
            format!("argon2$$argon2id$v=19${params}${salt}${hash}"),
        ] {
            assert_refused(&bad, malformed);
        }
    }

    /// Every prefix of every low-cost vector is an error, or a variable-length hash cut
    /// short but still well formed. Such an Argon2 hash no longer matches (Argon2 binds
    /// the output length); a scrypt one still does, rightly: scrypt's output is
    /// PBKDF2's, whose first bytes do not depend on the length asked for, so a cut
    /// scrypt hash (still at least 16 bytes) is the hash of the same password at a
    /// shorter length.
    #[test]
    fn truncated_vectors_are_errors_or_shorter_hashes() -> Result<(), Error> {
        for v in vectors().into_iter().filter(|v| !v.at_defaults()) {
            for end in (0..v.hash.len()).filter(|&end| v.hash.is_char_boundary(end)) {
                let cut = &v.hash[..end];
                match check_imported(cut) {
                    Err(_) => assert!(super::verify(v.password.as_bytes(), cut).is_err(), "{cut:?}"),
                    Ok(format) => {
                        assert!(
                            matches!(
                                format,
                                HashFormat::Argon2id
                                    | HashFormat::Argon2i
                                    | HashFormat::Argon2d
                                    | HashFormat::DjangoArgon2
                                    | HashFormat::Scrypt
                            ),
                            "{cut:?}"
                        );
                        let matched = super::verify(v.password.as_bytes(), cut)?;
                        assert_eq!(matched, format == HashFormat::Scrypt, "{cut:?}");
                    }
                }
            }
        }
        Ok(())
    }

    /// Costs past each bound are refused before anything is computed (each of these
    /// would take minutes to days, or gigabytes); costs at the bounds are accepted.
    #[test]
    fn costs_above_the_bounds_are_refused_and_at_the_bounds_accepted() {
        let salt = "c2FsdHNhbHRzYWx0c2FsdA"; // 16 bytes
        let hash = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"; // 32 bytes
        let django_hash = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=";
        let django_scrypt_hash = sample(HashFormat::DjangoScrypt).hash.rsplit('$').next().unwrap_or_default();
        let bcrypt_body = &sample(HashFormat::Bcrypt).hash[7..];
        for too_costly_hash in [
            format!("pbkdf2_sha256$10000001$saltsaltsalt${django_hash}"),
            format!("pbkdf2_sha256$99999999999999999999999999$saltsaltsalt${django_hash}"),
            format!("$pbkdf2-sha256$4294967295${salt}${hash}"),
            format!("$2b$17${bcrypt_body}"),
            format!("$2b$31${bcrypt_body}"),
            format!("$2y$99${bcrypt_body}"),
            format!("bcrypt$$2b$31${bcrypt_body}"),
            format!("$scrypt$ln=18,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=20,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=63,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=64,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=255,r=8,p=1${salt}${hash}"),
            format!("$scrypt$ln=1,r=4294967295,p=1${salt}${hash}"),
            format!("$scrypt$ln=10,r=8,p=17${salt}${hash}"),
            format!("$scrypt$ln=1,r=1000000,p=16${salt}${hash}"),
            // 128·r·(N + p) with r = 8, p = 1: N = 2¹⁸ is 256 MiB and 1 KiB, just over.
            format!("scrypt$262144$saltsaltsalt$8$1${django_scrypt_hash}"),
            format!("scrypt$9223372036854775808$saltsaltsalt$8$1${django_scrypt_hash}"),
            format!("$argon2id$v=19$m=1048577,t=1,p=1${salt}${hash}"),
            format!("$argon2id$v=19$m=4294967295,t=1,p=1${salt}${hash}"),
            format!("$argon2id$v=19$m=64,t=65,p=1${salt}${hash}"),
            format!("argon2$argon2id$v=19$m=64,t=4294967295,p=1${salt}${hash}"),
        ] {
            assert_refused(&too_costly_hash, too_costly);
        }
        for at_bound in [
            format!("pbkdf2_sha256$10000000$saltsaltsalt${django_hash}"),
            format!("$2b$16${bcrypt_body}"),
            format!("$scrypt$ln=17,r=8,p=16${salt}${hash}"), // 128 MiB + 16 KiB
            format!("$scrypt$ln=10,r=8,p=16${salt}${hash}"),
            format!("$argon2id$v=19$m=1048576,t=64,p=1${salt}${hash}"),
        ] {
            assert!(check_imported(&at_bound).is_ok(), "{at_bound}");
        }
    }

    #[test]
    fn new_hashes_above_the_bounds_are_refused() {
        for params in [
            HashParams { m_cost: MAX_ARGON2_M_COST_KIB + 1, t_cost: 1, p_cost: 1 },
            HashParams { m_cost: 8, t_cost: MAX_ARGON2_T_COST + 1, p_cost: 1 },
        ] {
            let refused = crate::factors::password::hash(b"x", &params);
            assert!(
                matches!(refused, Err(Error::InvalidInput(InputError::Malformed { field: "password_hash", .. }))),
                "{params:?}"
            );
        }
    }

    #[test]
    fn format_names_are_distinct_and_displayed() {
        let names: std::collections::HashSet<_> = FORMATS.iter().map(|f| f.as_str()).collect();
        assert_eq!(names.len(), FORMATS.len());
        assert_eq!(HashFormat::DjangoPbkdf2Sha256.to_string(), "django-pbkdf2-sha256");
        assert_eq!(ImportProblem::Unrecognised.to_string(), "unrecognised password hash format");
        assert_eq!(
            ImportProblem::CostTooHigh("bcrypt cost").to_string(),
            "password hash cost above the import bound: bcrypt cost"
        );
    }

    /// Beginnings of the known formats, for junk that gets past the first check.
    const PREFIXES: &[&str] = &[
        "",
        "$",
        "$argon2id$",
        "$argon2i$v=19$",
        "argon2$argon2id$v=19$m=",
        "$2a$",
        "$2b$04$",
        "$2y$1",
        "$scrypt$",
        "$scrypt$ln=",
        "$pbkdf2-sha256$",
        "$pbkdf2$1000$",
        "pbkdf2_sha256$",
        "pbkdf2_sha1$1000$",
        "scrypt$",
        "scrypt$1024$",
        "bcrypt$",
        "bcrypt_sha256$$2b$04$",
    ];

    /// Strings that look like the formats and strings that don't.
    fn junk() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[$a-zA-Z0-9+/=.,_-]{0,120}",
            (proptest::sample::select(PREFIXES), "[$a-zA-Z0-9+/=.,]{0,100}").prop_map(|(p, s)| format!("{p}{s}")),
            (proptest::sample::select(PREFIXES), any::<String>()).prop_map(|(p, s)| format!("{p}{s}")),
        ]
    }

    /// A low-cost vector with one character replaced, inserted or removed.
    fn mutated_vector() -> impl Strategy<Value = (Vector, String)> {
        let rows: Vec<Vector> = vectors().into_iter().filter(|v| !v.at_defaults()).collect();
        (proptest::sample::select(rows), any::<prop::sample::Index>(), any::<char>(), 0..3u8).prop_map(
            |(v, at, c, how)| {
                let mut chars: Vec<char> = v.hash.chars().collect();
                let i = at.index(chars.len() + 1);
                match how {
                    0 if i < chars.len() => chars[i] = c,
                    1 if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ => chars.insert(i, c),
                }
                (v, chars.into_iter().collect())
            },
        )
    }

    proptest! {
        /// Junk never panics, and whatever `check_imported` refuses `verify` refuses too
        /// without computing it.
        #[test]
        fn junk_never_panics_and_is_refused_alike(stored in junk()) {
            if check_imported(&stored).is_err() {
                prop_assert!(matches!(super::verify(b"password", &stored), Err(Error::Corrupt(_))));
            }
        }

        /// A vector with one character changed is refused, or verifies only when the
        /// change is one the format ignores (passlib's `.` and `+` are the same digit).
        #[test]
        fn mutated_vectors_never_panic((v, stored) in mutated_vector()) {
            match check_imported(&stored) {
                Err(_) => prop_assert!(super::verify(v.password.as_bytes(), &stored).is_err()),
                Ok(_) => {
                    let matched = super::verify(v.password.as_bytes(), &stored);
                    prop_assert!(matched.is_ok());
                }
            }
        }
    }
}
