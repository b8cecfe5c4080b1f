//! The otpauth import: `parse_otpauth_uri` on arbitrary input, and the same text through
//! `Engine::import_enrollment` (the import path) for a user without 2FA. Never panics;
//! - a URI that parses (with an issuer) is rebuilt by `otpauth_uri` into one that parses
//!   to the same credential;
//! - the import succeeds exactly when the URI parses with a secret of at least the
//!   policy's minimum, and then the user is enrolling, and a code computed from the
//!   parsed secret and parameters confirms the enrollment (what was sealed and stored is
//!   the credential the URI carried).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::otpauth::{otpauth_uri, parse_otpauth_uri};
use twofactor::totp::generate;
use twofactor::{ConfirmOutcome, Role, TwoFactorState, UserId};

use common::{NOW, block_on};

const IMPORT_USER: u64 = 2002;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let parsed = parse_otpauth_uri(&input);
    if let Ok(parsed) = &parsed
        && let Some(issuer) = parsed.issuer.as_deref()
    {
        let rebuilt = otpauth_uri(issuer, &parsed.account, parsed.secret.expose(), &parsed.params)
            .expect("a parsed credential can be written back");
        let again = parse_otpauth_uri(rebuilt.expose()).expect("the rebuilt URI parses");
        assert_eq!(&again, parsed);
    }

    let fixed = common::fixed();
    let engine = &fixed.engine;
    fixed.clock.set(twofactor::Timestamp(NOW));
    let id = UserId::from(IMPORT_USER);
    engine.store().add_user(id, "importer", "importer@example.test", Role::User).expect("add the user");
    let imported = block_on(engine.import_enrollment(id, &input));
    let min = engine.policy().min_imported_secret_bytes();
    let expected = parsed.as_ref().is_ok_and(|p| p.secret.len() >= min);
    assert_eq!(imported.is_ok(), expected, "import {imported:?}, parse {parsed:?}");
    if let Ok(parsed) = &parsed
        && imported.is_ok()
    {
        let view = block_on(engine.account(id)).expect("account").expect("the user");
        assert_eq!(view.two_factor, TwoFactorState::Enrolling);
        let code = generate(parsed.secret.expose(), &parsed.params, NOW);
        let confirmed = block_on(engine.confirm_enrollment(id, code.expose()));
        assert!(matches!(confirmed, Ok(ConfirmOutcome::Confirmed { .. })), "{confirmed:?}");
    }
    common::remove_user(engine, id);
});
