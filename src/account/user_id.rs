//! [`UserId`]: the application's own identifier of a user.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// The longest user id, in bytes of UTF-8.
pub const MAX_USER_ID_LEN: usize = 64;

/// The application's identifier of a user: an integer, a UUID or a string, held as
/// its text (1 to [`MAX_USER_ID_LEN`] bytes of UTF-8, no control characters).
///
/// The application keeps its users and their ids; the crate keys everything it
/// stores (the credential document, tokens, sealed secrets) by this id. It is one
/// concrete type rather than a type parameter on purpose: ids travel inside sealed
/// tokens, audit events and mail, and a generic would reach every public type
/// (`Engine<S, M, C, Id>`, every outcome and event) to buy what a short string already
/// holds. Integers convert with `From` (their decimal text), anything else with
/// [`UserId::new`] (a UUID's hyphenated text is 36 bytes). Ids are compared exactly,
/// byte for byte.
///
/// It is `Copy` (the text lives inline, without allocation) and serializes (serde)
/// as its text.
///
/// ```
/// use twofactor::UserId;
/// let numeric = UserId::from(42_i64);
/// assert_eq!(numeric.as_str(), "42");
/// let uuid: UserId = "6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55".parse()?;
/// assert_eq!(uuid.to_string(), "6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55");
/// assert!(UserId::new("").is_err());
/// assert!(UserId::new("tab\there").is_err());
/// # Ok::<(), twofactor::InvalidUserId>(())
/// ```
#[derive(Clone, Copy)]
pub struct UserId {
    len: u8,
    bytes: [u8; MAX_USER_ID_LEN],
}

/// Why a text is not a [`UserId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUserId {
    /// The text is empty.
    #[error("a user id cannot be empty")]
    Empty,
    /// The text is longer than [`MAX_USER_ID_LEN`] bytes.
    #[error("a user id is at most {MAX_USER_ID_LEN} bytes")]
    TooLong,
    /// The text holds a control character.
    #[error("a user id cannot hold control characters")]
    ControlCharacter,
}

impl UserId {
    /// Validates `text` as a user id.
    ///
    /// # Errors
    /// [`InvalidUserId`] for an empty text, one over [`MAX_USER_ID_LEN`] bytes, or one
    /// holding a control character.
    pub fn new(text: &str) -> Result<UserId, InvalidUserId> {
        if text.is_empty() {
            return Err(InvalidUserId::Empty);
        }
        if text.len() > MAX_USER_ID_LEN {
            return Err(InvalidUserId::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidUserId::ControlCharacter);
        }
        let mut bytes = [0u8; MAX_USER_ID_LEN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(UserId { len: text.len() as u8, bytes })
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        // Only ever built from a `&str` (or ASCII digits), cut at its own length.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The id as an unsigned integer, when its text is one written canonically
    /// (decimal digits, no sign, no leading zero). Ids made by 0.1.0 are such numbers,
    /// and the crate binds what it sealed for them to this value.
    pub fn as_u64(&self) -> Option<u64> {
        let s = self.as_str();
        let canonical = s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        if canonical { s.parse().ok() } else { None }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for UserId {
            /// The integer's decimal text.
            fn from(n: $t) -> UserId {
                let text = n.to_string();
                let mut bytes = [0u8; MAX_USER_ID_LEN];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                UserId { len: text.len() as u8, bytes }
            }
        }
    )*};
}
from_integer!(u32, i32, u64, i64, u128, i128);

impl FromStr for UserId {
    type Err = InvalidUserId;

    fn from_str(s: &str) -> Result<UserId, InvalidUserId> {
        UserId::new(s)
    }
}

impl TryFrom<&str> for UserId {
    type Error = InvalidUserId;

    fn try_from(s: &str) -> Result<UserId, InvalidUserId> {
        UserId::new(s)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidUserId;

    fn try_from(s: String) -> Result<UserId, InvalidUserId> {
        UserId::new(&s)
    }
}

impl PartialEq for UserId {
    fn eq(&self, other: &UserId) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserId {}

impl Hash for UserId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for UserId {
    fn partial_cmp(&self, other: &UserId) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserId {
    fn cmp(&self, other: &UserId) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.as_str())
    }
}

impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = UserId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id (1 to 64 bytes of text, no control characters)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UserId, E> {
                UserId::new(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_their_decimal_text() {
        assert_eq!(UserId::from(0_u64).as_str(), "0");
        assert_eq!(UserId::from(u64::MAX).as_str(), "18446744073709551615");
        assert_eq!(UserId::from(-5_i64).as_str(), "-5");
        assert_eq!(UserId::from(i128::MIN).as_str(), "-170141183460469231731687303715884105728");
        assert_eq!(UserId::from(7_u64), UserId::new("7").unwrap());
    }

    #[test]
    fn only_canonical_decimals_are_numbers() {
        assert_eq!(UserId::from(5468115731402263511_u64).as_u64(), Some(5468115731402263511));
        assert_eq!(UserId::new("0").unwrap().as_u64(), Some(0));
        for not_numbers in ["007", "-1", "+1", "1e3", "18446744073709551616", "abc", " 1"] {
            assert_eq!(UserId::new(not_numbers).unwrap().as_u64(), None, "{not_numbers}");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(UserId::new(""), Err(InvalidUserId::Empty));
        assert_eq!(UserId::new(&"x".repeat(65)), Err(InvalidUserId::TooLong));
        assert!(UserId::new(&"é".repeat(32)).is_ok(), "64 bytes of UTF-8");
        assert_eq!(UserId::new(&"é".repeat(33)), Err(InvalidUserId::TooLong));
        assert_eq!(UserId::new("a\nb"), Err(InvalidUserId::ControlCharacter));
        assert_eq!(UserId::new("a\u{7f}"), Err(InvalidUserId::ControlCharacter));
        assert_eq!(
            UserId::new("auth0|5f7c8ec7c33c6c004bbafe82").map(|i| i.to_string()).as_deref(),
            Ok("auth0|5f7c8ec7c33c6c004bbafe82")
        );
    }

    #[test]
    fn equality_and_order_follow_the_text() {
        let (a, b) = (UserId::new("a").unwrap(), UserId::new("ab").unwrap());
        assert!(a < b);
        assert_ne!(a, b);
        let mut set = std::collections::HashSet::new();
        set.insert(UserId::new("x").unwrap());
        assert!(set.contains(&UserId::new("x").unwrap()));
    }

    #[test]
    fn serde_is_the_text() {
        let id = UserId::new("6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55\"");
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<UserId>("5").is_err());
    }
}
