//! `TotpCode::parse` on arbitrary input and digit counts: never panics; an accepted
//! code is exactly `digits` ASCII digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::totp::TotpCode;

fuzz_target!(|data: &[u8]| {
    let Some((&digits, rest)) = data.split_first() else { return };
    let input = String::from_utf8_lossy(rest);
    for d in [digits, 6, 8] {
        if let Ok(code) = TotpCode::parse(&input, d) {
            assert_eq!(code.as_str().len(), usize::from(d));
            assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
    }
});
