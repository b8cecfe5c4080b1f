//! The key text format on arbitrary input: `KeyRing::from_text` (a ring, one key a
//! line, `tfk1.<id>.<base64url>` or 0.1.0's 64 hex digits), `AppKey::from_text` and
//! `AppKey::from_hex`. Never panics; a ring or key that parses writes `to_text` that
//! parses back to the same ids and the same text (so the same key material), and 64 hex
//! digits read by `from_hex` are also a 0.1.0 key file holding that key as id 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::{AppKey, KeyRing};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(ring) = KeyRing::from_text(&text) {
        let written = ring.to_text();
        let again = KeyRing::from_text(&written).expect("a ring's text parses");
        assert_eq!(again.ids(), ring.ids());
        assert_eq!(again.to_text().as_str(), written.as_str());
        assert_eq!(again.current().id(), ring.current().id());
        let ids = ring.ids();
        assert!(!ids.is_empty());
        assert!(ids.iter().enumerate().all(|(i, id)| !ids[i + 1..].contains(id)), "duplicate ids: {ids:?}");
    }

    if let Ok(key) = AppKey::from_text(&text) {
        let written = key.to_text();
        assert!(written.starts_with("tfk1."));
        let again = AppKey::from_text(&written).expect("a key's text parses");
        assert_eq!(again.id(), key.id());
        assert_eq!(again.to_text().as_str(), written.as_str());
        // One key is a ring of one.
        let ring = KeyRing::from_text(&written).expect("a key's text is a ring");
        assert_eq!(ring.ids(), [key.id()]);
    }

    let (id, hex) = match data.split_first() {
        Some((&first, _)) => (u32::from(first), &text[..]),
        None => (1, &text[..]),
    };
    if let Ok(key) = AppKey::from_hex(id, hex) {
        assert_eq!(key.id(), id);
        let again = AppKey::from_text(&key.to_text()).expect("a hex key's text parses");
        assert_eq!(again.to_text().as_str(), key.to_text().as_str());
        // The same text as a 0.1.0 key file: key id 1, the same material.
        let ring = KeyRing::from_text(hex).expect("64 hex digits are a key file");
        assert_eq!(ring.ids(), [1]);
        assert_eq!(ring.current().to_text().as_str(), AppKey::from_hex(1, hex).expect("hex").to_text().as_str());
    }
});
