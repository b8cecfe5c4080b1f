//! Remembered-location tokens through `Engine::begin_login` with the right password:
//! arbitrary text, arbitrary bytes in the token format (current `loc2.` and 0.1.0's
//! `loc1.`), and bytes spliced over a real token's secret part, also in the 0.1.0 layout
//! with the right account id. Never panics, never skips the code.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::LoginOutcome;

fuzz_target!(|data: &[u8]| {
    let world = common::world();
    let shaped = format!("loc2.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let legacy = format!("loc1.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let spliced = common::splice(&world.location, "loc2.", 16, data);
    let legacy_spliced = common::splice(&world.legacy_location, "loc1.", 24, data);
    for token in [String::from_utf8_lossy(data).into_owned(), shaped, legacy, spliced, legacy_spliced] {
        // Surrounding whitespace is trimmed: a padded real token is the real token.
        if [world.location.as_str(), world.legacy_location.as_str()].contains(&token.trim()) {
            continue;
        }
        let out = common::block_on(world.engine.begin_login(common::USER, common::PASSWORD, Some(&token)));
        assert!(matches!(out, Ok(LoginOutcome::SecondFactorRequired(_))), "{out:?}");
    }
});
