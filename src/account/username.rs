//! Usernames: the rules a new account's name must follow, and the form a login name is
//! looked up by.
//!
//! # One name, one spelling: NFC
//!
//! Names are stored and compared in Unicode Normalization Form C (NFC, [UAX #15]), so
//! `josé` typed with the precomposed `é` (U+00E9) and `jose` + U+0301 COMBINING ACUTE
//! ACCENT are the same name: the second cannot be created beside the first, and either
//! spelling logs in. [`validate_new`] returns the NFC form to store; [`for_login`] the NFC
//! form to look up. Normalization uses the `unicode-normalization` crate (unicode-rs).
//!
//! # Characters no username may contain
//!
//! A character that is invisible or that reorders the text around it lets two different
//! names look identical on the reset page, in a mail and in the audit trail (`admin` and
//! `admin` + U+200B ZERO WIDTH SPACE, or U+202E RIGHT-TO-LEFT OVERRIDE + `nimda`). These
//! are refused when an account is created ([`InputError::ForbiddenCharacter`], naming the
//! code point) and never match at login ([`for_login`] answers `None` and the engine
//! takes the unknown-user path: same answer, same Argon2 work):
//!
//! - general category **Cc** (control characters: NUL, tab, newline, DEL, C1 controls);
//! - general category **Cf** (format characters: U+00AD SOFT HYPHEN, U+061C ARABIC
//!   LETTER MARK, U+200B–U+200D zero-width space and joiners, U+200E/U+200F and
//!   U+202A–U+202E bidi marks, embeddings and overrides, U+2060–U+2064 word joiner and
//!   invisible operators, U+2066–U+2069 bidi isolates, U+FEFF, the tag characters, …);
//! - general categories **Zl** and **Zp** (U+2028 LINE SEPARATOR, U+2029 PARAGRAPH
//!   SEPARATOR);
//! - every other **Default_Ignorable_Code_Point** (Unicode's `DerivedCoreProperties.txt`):
//!   variation selectors (U+FE00–U+FE0F, U+E0100–U+E01EF, the Mongolian free variation
//!   selectors U+180B–U+180D and U+180F), U+034F COMBINING GRAPHEME JOINER, the Hangul
//!   fillers U+115F, U+1160, U+3164 and U+FFA0, the Khmer inherent vowels U+17B4 and
//!   U+17B5, and the ranges reserved for future invisible characters (U+2065,
//!   U+FFF0–U+FFF8, U+E0000–U+E0FFF). A consequence: emoji written with a presentation
//!   selector (`❤` + U+FE0F) or joined by U+200D ZERO WIDTH JOINER are refused; plain
//!   emoji are not.
//!
//! General categories come from the `unicode-properties` crate (unicode-rs, maintained
//! beside `unicode-normalization`); it has no default-ignorable property, so the
//! default-ignorable code points outside Cf are listed here as ranges.
//!
//! # Further rules for a new name
//!
//! These only matter when a name is chosen, so [`for_login`] does not apply them (an
//! account that 0.1.0 created with such a name still logs in):
//!
//! - not empty, and at most [`MAX_USERNAME`] characters, counted after normalization
//!   (NFC can lengthen a name: U+0958 DEVANAGARI LETTER QA becomes two characters);
//! - no leading or trailing whitespace;
//! - no `:` — the Key Uri Format uses it to separate the issuer from the account name,
//!   so an authenticator app could not be enrolled for such a name (under
//!   [`Policy::nist_aal2`](crate::Policy::nist_aal2) the account would be stuck at
//!   enrollment);
//! - no space character other than U+0020 (U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC
//!   SPACE, …: each looks like a plain space), and no two spaces in a row (HTML shows
//!   them as one).
//!
//! # Case-sensitive, on purpose
//!
//! `Alice` and `alice` are two names, as they were in 0.1.0. A database written by 0.1.0
//! may hold both; folding case now would merge two accounts onto one login name or make
//! one of them unreachable. An application that wants case-insensitive names folds them
//! itself, the same way, before both [`Engine::create_account`](crate::Engine::create_account)
//! and [`Engine::begin_login`](crate::Engine::begin_login).
//!
//! # What this does not catch
//!
//! Confusable letters from different scripts (Latin `a` and Cyrillic `а`, U+0430) stay
//! distinct names: telling them apart needs the UTS #39 confusables data and a
//! per-deployment choice of scripts, which this crate does not make.
//!
//! # Databases written by 0.1.0
//!
//! 0.1.0 stored names as typed. A lookup tries the NFC form first and, when the input was
//! not in NFC, the input as typed too, so an account stored in, say, NFD still logs in
//! with the same keystrokes. An account whose stored name contains a refused invisible
//! character can no longer log in; it was the look-alike this rule exists to stop.
//!
//! [UAX #15]: https://www.unicode.org/reports/tr15/

use std::borrow::Cow;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{InputError, check_len};

/// Longest username, in Unicode characters (of the NFC form, for a new name).
pub(crate) const MAX_USERNAME: usize = 64;

/// The input's name in errors.
const FIELD: &str = "username";

/// The reason given for a Cf or default-ignorable character.
const INVISIBLE: &str = "contains an invisible or formatting character";

/// The Default_Ignorable_Code_Point ranges (Unicode `DerivedCoreProperties.txt`) whose
/// general category is not Cf; the Cf ones are refused by category.
const OTHER_DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),   // COMBINING GRAPHEME JOINER
    ('\u{115F}', '\u{1160}'),   // HANGUL CHOSEONG and JUNGSEONG FILLER
    ('\u{17B4}', '\u{17B5}'),   // KHMER VOWEL INHERENT AQ, AA
    ('\u{180B}', '\u{180D}'),   // MONGOLIAN FREE VARIATION SELECTOR ONE..THREE
    ('\u{180F}', '\u{180F}'),   // MONGOLIAN FREE VARIATION SELECTOR FOUR
    ('\u{2065}', '\u{2065}'),   // reserved
    ('\u{3164}', '\u{3164}'),   // HANGUL FILLER
    ('\u{FE00}', '\u{FE0F}'),   // VARIATION SELECTOR-1..16
    ('\u{FFA0}', '\u{FFA0}'),   // HALFWIDTH HANGUL FILLER
    ('\u{FFF0}', '\u{FFF8}'),   // reserved
    ('\u{E0000}', '\u{E0FFF}'), // tags (Cf), VARIATION SELECTOR-17..256, reserved
];

/// Why `c` may never appear in a username, or `None` when it may.
fn invisible(c: char) -> Option<&'static str> {
    if c.is_ascii() {
        // The only ASCII characters refused here are the controls; skip the table lookup.
        return c.is_ascii_control().then_some("contains a control character");
    }
    match c.general_category() {
        GeneralCategory::Control => Some("contains a control character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("contains a line or paragraph separator")
        }
        GeneralCategory::Format => Some(INVISIBLE),
        _ if OTHER_DEFAULT_IGNORABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) => Some(INVISIBLE),
        _ => None,
    }
}

/// The first character of `name` that no username may contain, as an error.
fn first_invisible(name: &str) -> Option<InputError> {
    name.chars().find_map(|character| {
        invisible(character).map(|reason| InputError::ForbiddenCharacter { field: FIELD, reason, character })
    })
}

/// Checks a new account's username and returns the form to store: its NFC form.
///
/// # Errors
/// [`InputError::TooLong`] over [`MAX_USERNAME`] characters (before or after
/// normalization); [`InputError::ForbiddenCharacter`] for a control, invisible or
/// formatting character, a line or paragraph separator, or a space other than U+0020;
/// [`InputError::Malformed`] for an empty name, leading or trailing whitespace, a `:` or
/// two spaces in a row. The messages name characters by code point, never by echoing
/// them.
pub(crate) fn validate_new(input: &str) -> Result<String, InputError> {
    // A cheap bound first, so a huge input is never normalized.
    check_len(FIELD, input, MAX_USERNAME)?;
    if input.is_empty() {
        return Err(InputError::malformed(FIELD, "must not be empty"));
    }
    let name: String = input.nfc().collect();
    if let Some(err) = first_invisible(&name) {
        return Err(err);
    }
    if let Some(character) =
        name.chars().find(|&c| c != ' ' && !c.is_ascii() && c.general_category() == GeneralCategory::SpaceSeparator)
    {
        return Err(InputError::ForbiddenCharacter {
            field: FIELD,
            reason: "contains a space other than U+0020",
            character,
        });
    }
    if name.trim() != name {
        return Err(InputError::malformed(FIELD, "must not start or end with whitespace"));
    }
    if name.contains(':') {
        return Err(InputError::malformed(
            FIELD,
            "must not contain ':' (authenticator apps read it as the end of the issuer's name, so 2FA could never be set up)",
        ));
    }
    if name.contains("  ") {
        return Err(InputError::malformed(FIELD, "must not contain two spaces in a row"));
    }
    check_len(FIELD, &name, MAX_USERNAME)?;
    Ok(name)
}

/// The form of a login name to look up: its NFC form (borrowed when the input already is
/// NFC), or `None` when the input contains a character no username may contain (a
/// control, invisible or formatting character, or a line or paragraph separator), so it
/// can never name an account and the caller takes the unknown-user path.
///
/// The rules that only concern choosing a name (`:`, spaces) are not applied: an account
/// that 0.1.0 created with such a name still logs in. The caller bounds the input's
/// length first.
pub(crate) fn for_login(input: &str) -> Option<Cow<'_, str>> {
    let name = match is_nfc_quick(input.chars()) {
        IsNormalized::Yes => Cow::Borrowed(input),
        IsNormalized::No | IsNormalized::Maybe => {
            let nfc: String = input.nfc().collect();
            if nfc == input { Cow::Borrowed(input) } else { Cow::Owned(nfc) }
        }
    };
    // Normalization neither removes nor adds such characters, so checking the result
    // checks the input.
    if first_invisible(&name).is_some() {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFC_JOSE: &str = "jos\u{E9}";
    const NFD_JOSE: &str = "jose\u{301}";

    /// The look-alikes of `admin` the issue lists, with the code point each must name.
    const LOOK_ALIKES: [(&str, u32); 4] =
        [("admin\u{200B}", 0x200B), ("ad\u{2060}min", 0x2060), ("ad\u{AD}min", 0xAD), ("\u{202E}nimda", 0x202E)];

    fn forbidden(input: &str) -> (char, String) {
        match validate_new(input) {
            Err(e @ InputError::ForbiddenCharacter { field: "username", character, .. }) => (character, e.to_string()),
            other => panic!("{input:?}: expected ForbiddenCharacter, got {other:?}"),
        }
    }

    fn malformed(input: &str) -> &'static str {
        match validate_new(input) {
            Err(InputError::Malformed { field: "username", reason }) => reason,
            other => panic!("{input:?}: expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn zero_width_soft_hyphen_word_joiner_and_bidi_override_are_refused_by_code_point() {
        for (input, code_point) in LOOK_ALIKES {
            let (character, message) = forbidden(input);
            assert_eq!(u32::from(character), code_point, "{input:?}");
            assert_eq!(
                message,
                format!("username contains an invisible or formatting character (U+{code_point:04X})"),
                "{input:?}"
            );
            assert!(message.is_ascii(), "the message never carries the character itself: {message:?}");
        }
    }

    #[test]
    fn look_alikes_never_name_an_account_at_login() {
        for (input, _) in LOOK_ALIKES {
            assert_eq!(for_login(input), None, "{input:?}");
        }
        assert_eq!(for_login("admin").as_deref(), Some("admin"));
    }

    #[test]
    fn other_invisible_and_control_characters_are_refused_at_creation_and_login() {
        let cases = [
            ("ad\u{200C}min", "invisible or formatting"),    // ZERO WIDTH NON-JOINER
            ("ad\u{200D}min", "invisible or formatting"),    // ZERO WIDTH JOINER
            ("ad\u{200E}min", "invisible or formatting"),    // LEFT-TO-RIGHT MARK
            ("ad\u{2066}min", "invisible or formatting"),    // LEFT-TO-RIGHT ISOLATE
            ("ad\u{061C}min", "invisible or formatting"),    // ARABIC LETTER MARK
            ("ad\u{FEFF}min", "invisible or formatting"),    // ZERO WIDTH NO-BREAK SPACE
            ("ad\u{E0041}min", "invisible or formatting"),   // TAG LATIN CAPITAL LETTER A
            ("ad\u{034F}min", "invisible or formatting"),    // COMBINING GRAPHEME JOINER
            ("ad\u{3164}min", "invisible or formatting"),    // HANGUL FILLER
            ("ad\u{115F}min", "invisible or formatting"),    // HANGUL CHOSEONG FILLER
            ("ad\u{180B}min", "invisible or formatting"),    // MONGOLIAN FREE VARIATION SELECTOR ONE
            ("ad\u{E0100}min", "invisible or formatting"),   // VARIATION SELECTOR-17
            ("\u{2764}\u{FE0F}", "invisible or formatting"), // heart + emoji presentation selector
            ("ad\u{2028}min", "line or paragraph separator"),
            ("ad\u{2029}min", "line or paragraph separator"),
            ("ad\u{0}min", "control character"),
            ("ad\tmin", "control character"),
            ("ad\u{7F}min", "control character"),
            ("ad\u{85}min", "control character"),
        ];
        for (input, kind) in cases {
            let (character, message) = forbidden(input);
            assert!(message.contains(kind), "{input:?}: {message}");
            assert!(message.ends_with(&format!("(U+{:04X})", u32::from(character))), "{message}");
            assert_eq!(for_login(input), None, "{input:?}");
        }
    }

    #[test]
    fn nfd_and_nfc_spell_one_name() {
        assert_ne!(NFC_JOSE, NFD_JOSE);
        assert_eq!(validate_new(NFD_JOSE).as_deref(), Ok(NFC_JOSE));
        assert_eq!(validate_new(NFC_JOSE).as_deref(), Ok(NFC_JOSE));
        assert_eq!(for_login(NFD_JOSE), Some(Cow::Owned(NFC_JOSE.to_owned())));
        assert!(matches!(for_login(NFC_JOSE), Some(Cow::Borrowed(NFC_JOSE))), "NFC input is looked up as is");
        // Hangul: conjoining jamo compose to one syllable.
        assert_eq!(validate_new("\u{1100}\u{1161}").as_deref(), Ok("\u{AC00}"));
    }

    #[test]
    fn a_colon_is_refused_because_an_otpauth_label_cannot_hold_it() {
        for input in ["alice:admin", ":alice", "alice:"] {
            assert!(malformed(input).contains("':'"), "{input:?}");
            let err = validate_new(input).expect_err("refused");
            assert!(err.to_string().starts_with("username is malformed: must not contain ':'"), "{err}");
        }
        // Looking up a 0.1.0 account whose name has a colon still works.
        assert_eq!(for_login("alice:admin").as_deref(), Some("alice:admin"));
    }

    #[test]
    fn empty_names_and_surrounding_whitespace_are_refused() {
        assert_eq!(malformed(""), "must not be empty");
        for input in [" alice", "alice ", " "] {
            assert_eq!(malformed(input), "must not start or end with whitespace", "{input:?}");
        }
    }

    #[test]
    fn spaces_other_than_u0020_and_double_spaces_are_refused() {
        for (input, code_point) in [("mary\u{A0}ann", 0xA0), ("mary\u{3000}ann", 0x3000), ("mary\u{2009}ann", 0x2009)] {
            let (character, message) = forbidden(input);
            assert_eq!(u32::from(character), code_point);
            assert!(message.contains("a space other than U+0020"), "{message}");
        }
        assert_eq!(malformed("mary  ann"), "must not contain two spaces in a row");
        assert_eq!(validate_new("mary ann").as_deref(), Ok("mary ann"));
    }

    #[test]
    fn names_stay_case_sensitive() {
        assert_eq!(validate_new("Alice").as_deref(), Ok("Alice"));
        assert_eq!(validate_new("alice").as_deref(), Ok("alice"));
        assert_eq!(for_login("Alice").as_deref(), Some("Alice"));
        assert_eq!(validate_new("JOS\u{C9}").as_deref(), Ok("JOS\u{C9}"));
    }

    #[test]
    fn ordinary_names_in_any_script_are_accepted_unchanged() {
        for input in ["alice", "o'brien", "mary-ann.smith_2", "李小龙", "Ωμέγα", "مريم", "😀", "x".repeat(64).as_str()]
        {
            assert_eq!(validate_new(input).as_deref(), Ok(input), "{input:?}");
            assert!(matches!(for_login(input), Some(Cow::Borrowed(_))), "{input:?}");
        }
    }

    #[test]
    fn the_length_limit_counts_the_normalized_name() {
        assert!(matches!(validate_new(&"x".repeat(65)), Err(InputError::TooLong { field: "username", max: 64 })));
        // U+0958 is excluded from composition: its NFC form is two characters.
        assert_eq!(validate_new("\u{958}").as_deref(), Ok("\u{915}\u{93C}"));
        let grows = "\u{958}".repeat(40);
        assert!(matches!(validate_new(&grows), Err(InputError::TooLong { field: "username", max: 64 })));
    }
}
