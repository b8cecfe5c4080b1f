//! `BackupCode::parse` on arbitrary input: never panics; an accepted code's display
//! form parses back to the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::BackupCode;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(code) = BackupCode::parse(&input) {
        let again = BackupCode::parse(code.display().expose()).expect("display form parses");
        assert!(again == code);
    }
});
