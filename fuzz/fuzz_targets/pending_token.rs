//! Pending-login tokens through `Engine::finish_login`: arbitrary text, arbitrary bytes
//! in the token format (current `pl2.` and 0.1.0's `pl1.`), and bytes spliced over a real
//! token's ciphertext after its nonce (so the AEAD check runs). Never panics, never logs
//! in, and never answers an error for a token within the length limit (a token that
//! does not open is `Expired`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::{SecondFactor, SecondFactorOutcome};

fuzz_target!(|data: &[u8]| {
    let world = common::world();
    let shaped = format!("pl2.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let legacy = format!("pl1.{}", data_encoding::BASE64URL_NOPAD.encode(data));
    let spliced = common::splice(&world.pending, "pl2.", 24, data);
    for token in [String::from_utf8_lossy(data).into_owned(), shaped, legacy, spliced] {
        // Surrounding whitespace is trimmed: a padded real token is the real token.
        if token.trim() == world.pending {
            continue;
        }
        let out = common::block_on(world.engine.finish_login(&token, SecondFactor::Totp(&world.wrong_code), None));
        assert!(!matches!(out, Ok(SecondFactorOutcome::Authenticated(_))), "a forged pending login logged in");
        assert!(out.is_ok() || token.len() > 256, "{out:?}");
    }
});
