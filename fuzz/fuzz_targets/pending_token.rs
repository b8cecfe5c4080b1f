//! Pending-login tokens through `Engine::finish_login`: arbitrary text, arbitrary bytes
//! in the token format, and bytes spliced over a real token after its account id (so
//! the MAC check runs). Never panics, never logs in.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::{SecondFactor, SecondFactorOutcome};

fuzz_target!(|data: &[u8]| {
    let world = common::world();
    let shaped = format!("pl1.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let spliced = common::splice(&world.pending, "pl1.", 8, data);
    for token in [String::from_utf8_lossy(data).into_owned(), shaped, spliced] {
        if token == world.pending {
            continue;
        }
        let out = common::block_on(world.engine.finish_login(&token, SecondFactor::Totp(&world.wrong_code), None));
        assert!(!matches!(out, Ok(SecondFactorOutcome::Authenticated(_))), "a forged pending login logged in");
    }
});
