//! Backup codes: 80 random bits shown as `K7QX-M2PD-9WRT-H4NB`.
//!
//! The alphabet is Crockford's base32 (no I, L, O, U). Input is case-insensitive,
//! ignores spaces and dashes, and reads `O` as `0` and `I`/`L` as `1`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::random;
use crate::crypto::secret::SecretString;
use crate::error::{Error, InputError};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code (16 × 5 bits = 80 bits).
const CODE_CHARS: usize = 16;
const GROUP: usize = 4;
/// The longest input accepted before canonicalisation.
const MAX_INPUT: usize = 64;

/// A backup code in canonical form (16 alphabet characters, no dashes).
/// Zeroized on drop; `Debug` is redacted; equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BackupCode([u8; CODE_CHARS]);

impl BackupCode {
    /// Characters in a code: 16 × 5 bits = 80 bits (shown in four groups of four).
    pub const CHARS: usize = CODE_CHARS;

    /// The longest input [`parse`](Self::parse) accepts (spaces and dashes included),
    /// for a form field's `maxlength`.
    pub const MAX_INPUT: usize = MAX_INPUT;

    /// A fresh code from the OS CSPRNG.
    pub(crate) fn generate() -> Result<BackupCode, Error> {
        let mut raw = random::bytes::<CODE_CHARS>()?;
        let mut out = [0u8; CODE_CHARS];
        for (o, r) in out.iter_mut().zip(raw.iter()) {
            // 256 is a multiple of 32, so the low five bits are uniform.
            *o = ALPHABET[usize::from(*r & 31)];
        }
        raw.zeroize();
        Ok(BackupCode(out))
    }

    /// Canonicalises user input: case-insensitive, spaces and dashes ignored, `O`→`0`,
    /// `I`/`L`→`1`.
    ///
    /// ```
    /// use twofactor::BackupCode;
    /// let a = BackupCode::parse("k7qx-m2pd 9wrt-h4nb")?;
    /// let b = BackupCode::parse("K7QXM2PD9WRTH4NB")?;
    /// assert!(a == b);
    /// assert!(BackupCode::parse("K7QX-M2PD-9WRT-H4N").is_err());
    /// # Ok::<(), twofactor::InputError>(())
    /// ```
    ///
    /// # Errors
    /// [`InputError`] when the input is too long, has a character outside the
    /// alphabet, or has the wrong number of characters.
    pub fn parse(input: &str) -> Result<BackupCode, InputError> {
        if input.len() > MAX_INPUT {
            return Err(InputError::TooLong { field: "backup code", max: MAX_INPUT });
        }
        let mut out = [0u8; CODE_CHARS];
        let mut n = 0usize;
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' | '\t' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => {
                    out.zeroize();
                    return Err(InputError::malformed("backup code", "unexpected character"));
                }
            };
            match out.get_mut(n) {
                Some(slot) => *slot = c as u8,
                None => {
                    out.zeroize();
                    return Err(InputError::malformed("backup code", "must have 16 characters"));
                }
            }
            n += 1;
        }
        if n != CODE_CHARS {
            out.zeroize();
            return Err(InputError::malformed("backup code", "must have 16 characters"));
        }
        Ok(BackupCode(out))
    }

    /// The canonical bytes (what is hashed).
    pub(crate) fn canonical(&self) -> &[u8] {
        &self.0
    }

    /// The display form, `XXXX-XXXX-XXXX-XXXX`.
    pub fn display(&self) -> SecretString {
        let mut s = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP);
        for (i, chunk) in self.0.chunks(GROUP).enumerate() {
            if i > 0 {
                s.push('-');
            }
            s.extend(chunk.iter().map(|b| char::from(*b)));
        }
        SecretString::new(s)
    }
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupCode(REDACTED)")
    }
}

impl PartialEq for BackupCode {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for BackupCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_display_shape() -> Result<(), Error> {
        let code = BackupCode::generate()?;
        let shown = code.display();
        let s = shown.expose();
        assert_eq!(s.len(), 19);
        assert_eq!(s.matches('-').count(), 3);
        assert!(BackupCode::parse(s)? == code);
        assert!(BackupCode::generate()? != code);
        Ok(())
    }

    #[test]
    fn ambiguous_letters_are_read_as_digits() -> Result<(), InputError> {
        assert!(BackupCode::parse("oooo-iiii-llll-0000")? == BackupCode::parse("0000111111110000")?);
        Ok(())
    }

    #[test]
    fn rejects_bad_input() {
        assert!(BackupCode::parse("").is_err());
        assert!(BackupCode::parse("UUUU-UUUU-UUUU-UUUU").is_err(), "U is not in the alphabet");
        assert!(BackupCode::parse("K7QX-M2PD-9WRT-H4NB-A").is_err());
        assert!(BackupCode::parse(&"A".repeat(65)).is_err());
        assert!(BackupCode::parse("K7QX-M2PD-9WRT-H4Nß").is_err());
    }

    #[test]
    fn the_canonical_form_is_the_sixteen_characters_without_separators() -> Result<(), InputError> {
        assert_eq!(BackupCode::parse(" k7qx m2pd-9wrt-h4nb ")?.canonical(), b"K7QXM2PD9WRTH4NB");
        Ok(())
    }

    #[test]
    fn input_up_to_max_input_is_read_and_past_it_is_too_long() -> Result<(), InputError> {
        let padded = format!("K7QX-M2PD-9WRT-H4NB{}", " ".repeat(MAX_INPUT - 19));
        assert_eq!(padded.len(), MAX_INPUT);
        assert!(BackupCode::parse(&padded)? == BackupCode::parse("K7QXM2PD9WRTH4NB")?);
        let past = format!("{padded} ");
        assert!(matches!(BackupCode::parse(&past), Err(InputError::TooLong { max: MAX_INPUT, .. })));
        Ok(())
    }

    #[test]
    fn debug_is_redacted() -> Result<(), InputError> {
        let code = BackupCode::parse("K7QX-M2PD-9WRT-H4NB")?;
        assert_eq!(format!("{code:?}"), "BackupCode(REDACTED)");
        Ok(())
    }
}
