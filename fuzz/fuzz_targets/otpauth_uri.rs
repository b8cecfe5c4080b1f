//! `parse_otpauth_uri` on arbitrary input: never panics; a URI that parses (with an
//! issuer) is rebuilt by `otpauth_uri` into one that parses to the same credential.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::otpauth::{otpauth_uri, parse_otpauth_uri};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(parsed) = parse_otpauth_uri(&input) else { return };
    let Some(issuer) = parsed.issuer.as_deref() else { return };
    let rebuilt = otpauth_uri(issuer, &parsed.account, parsed.secret.expose(), &parsed.params)
        .expect("a parsed credential can be written back");
    let again = parse_otpauth_uri(rebuilt.expose()).expect("the rebuilt URI parses");
    assert_eq!(again, parsed);
});
