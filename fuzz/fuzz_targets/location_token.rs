//! Remembered-location tokens through `Engine::begin_login` with the right password:
//! arbitrary text, arbitrary bytes in the token format, and bytes spliced over a real
//! token's secret part. Never panics, never skips the code.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::LoginOutcome;

fuzz_target!(|data: &[u8]| {
    let world = common::world();
    let shaped = format!("loc1.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let spliced = common::splice(&world.location, "loc1.", 24, data);
    for token in [String::from_utf8_lossy(data).into_owned(), shaped, spliced] {
        if token == world.location {
            continue;
        }
        let out = common::block_on(world.engine.begin_login(common::USER, common::PASSWORD, Some(&token)));
        assert!(matches!(out, Ok(LoginOutcome::SecondFactorRequired(_))), "{out:?}");
    }
});
