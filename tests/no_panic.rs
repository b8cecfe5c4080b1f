//! Bad input (issue 3). No input makes a public function panic: property tests over
//! arbitrary strings and arbitrary bytes (lossily converted), plus near-valid shapes,
//! for every public entry point that takes text. Where it can be checked, bad input
//! leaves the stored record unchanged (same version, same record). What a user types
//! at login (username, password, code, the pending-login cookie) is an outcome, never
//! an `Err` (issue 15): `Denied` or `Expired`, with the kind of bad input in the event;
//! what an application or administrator passes is `Err(InvalidInput)`. Every text
//! input has a maximum length, and a code is canonicalised once, before both the
//! comparison and the replay check.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use twofactor::events::{EventKind, FailureClass, InputProblem};
use twofactor::store::UserStore;
use twofactor::totp::TotpCode;
use twofactor::{
    AppKey, BackupCode, ConfirmOutcome, Error, InputError, LoginOutcome, NewAccount, Policy, ResetOutcome, Role,
    SecondFactor, SecondFactorOutcome,
};

/// Arbitrary text: any string, any bytes made UTF-8 lossily, near-valid shapes, long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        3 => proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "[0-9 -]{0,40}",
        1 => "[0-9A-Za-z -]{0,40}",
        1 => "(pl1|pl2|loc1|loc2)\\.[A-Za-z0-9_-]{0,124}",
        1 => "otpauth://(totp|hotp|x)/[^?#]{0,40}\\?[a-zA-Z0-9=&%+ ]{0,80}",
        1 => proptest::collection::vec(any::<char>(), 0..5000).prop_map(String::from_iter),
    ]
}

fn run<T: std::fmt::Debug>(
    cases: u32,
    strategy: impl Strategy<Value = T>,
    body: impl Fn(T) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, body) {
        panic!("{e}");
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

fn invalid_input<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidInput(_)))
}

const CASES: u32 = 128;

#[test]
fn begin_login_never_panics() {
    let rt = rt();
    let f = fixture();
    let (alice, _) = rt.block_on(f.enrolled("alice-np"));
    let carol = rt.block_on(f.user("carol-np", Role::User));
    run(CASES, (text(), text(), proptest::option::of(text())), |(user, password, remembered)| {
        rt.block_on(async {
            let out = f.engine.begin_login(&user, &password, remembered.as_deref()).await;
            prop_assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");

            let before = stored(&f, carol).await;
            let out = f.engine.begin_login("carol-np", &password, None).await;
            prop_assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");
            let refused_unread =
                f.events.events().last().is_some_and(|e| {
                    matches!(e.kind, EventKind::LoginFailed { reason: FailureClass::BadInput { .. } })
                });
            if refused_unread {
                prop_assert_eq!(stored(&f, carol).await, before, "bad input changes nothing");
            }

            let before = stored(&f, alice).await;
            let out = f.engine.begin_login("alice-np", PASSWORD, remembered.as_deref()).await;
            prop_assert!(matches!(out, Ok(LoginOutcome::SecondFactorRequired(_))), "a bad token is ignored: {out:?}");
            prop_assert_eq!(stored(&f, alice).await, before);
            Ok(())
        })
    });
}

#[test]
fn finish_login_never_panics() {
    let rt = rt();
    let f = fixture();
    let (alice, _) = rt.block_on(f.enrolled("alice-fl"));
    let strategy = (text(), text(), any::<bool>(), proptest::option::of(text()), any::<usize>(), any::<char>());
    run(CASES, strategy, |(pending, code, totp, label, at, ch)| {
        rt.block_on(async {
            // Each case gets an open pending login on an unthrottled account, so
            // well-formed codes reach the comparison (and backup codes the hashing)
            // instead of stopping at a used-up login.
            overwrite(&f, alice, |doc| {
                doc.as_object_mut().expect("an object").remove("throttle");
            })
            .await;
            let real = f.pending("alice-fl").await;
            let factor = if totp { SecondFactor::Totp(&code) } else { SecondFactor::BackupCode(&code) };
            // A one-character mutation of a real token reaches the AEAD check; it answers
            // like the real token would have, or `Expired`, never an error of its own.
            let mut mutated: Vec<char> = real.chars().collect();
            let i = at % mutated.len();
            mutated[i] = ch;
            let mutated: String = mutated.into_iter().collect();
            let mut real_was_err = false;
            for token in [pending.as_str(), real.as_str(), mutated.as_str()] {
                let before = stored(&f, alice).await;
                let out = f.engine.finish_login(token, factor, label.as_deref()).await;
                if token == real {
                    real_was_err = out.is_err();
                } else if token == mutated && !real_was_err {
                    prop_assert!(out.is_ok(), "a mutated token is Expired, not an error: {out:?}");
                }
                prop_assert!(
                    matches!(
                        out,
                        Ok(SecondFactorOutcome::Denied { .. }
                            | SecondFactorOutcome::Locked { .. }
                            | SecondFactorOutcome::Expired)
                    ) || invalid_input(&out),
                    "{out:?}"
                );
                if out.is_err() {
                    prop_assert_eq!(stored(&f, alice).await, before);
                }
            }
            Ok(())
        })
    });
}

#[test]
fn account_management_never_panics() {
    let rt = rt();
    let f = fixture();
    let (alice, _) = rt.block_on(f.enrolled("alice-mg"));
    let enrolling = rt.block_on(f.user("dave-mg", Role::User));
    rt.block_on(f.engine.start_enrollment(enrolling)).unwrap();
    let admin = rt.block_on(f.user("admin-mg", Role::Admin));
    let target = rt.block_on(f.user("target-mg", Role::User));
    let changer = rt.block_on(f.user("erin-mg", Role::User));
    let importer = rt.block_on(f.user("frank-mg", Role::User));
    run(CASES, text(), |input| {
        rt.block_on(async {
            let before = stored(&f, importer).await;
            let out = f.engine.import_enrollment(importer, &input).await;
            prop_assert!(out.is_ok() || invalid_input(&out), "{out:?}");
            if out.is_err() {
                prop_assert_eq!(stored(&f, importer).await, before);
            }

            let before = stored(&f, enrolling).await;
            let out = f.engine.confirm_enrollment(enrolling, &input).await;
            prop_assert!(matches!(out, Ok(ConfirmOutcome::WrongCode)) || invalid_input(&out), "{out:?}");
            prop_assert_eq!(stored(&f, enrolling).await, before);

            let before = stored(&f, target).await;
            let out = f.engine.reset(admin, target, &input).await;
            prop_assert!(matches!(out, Ok(ResetOutcome::Reset { .. })) || invalid_input(&out), "{out:?}");
            if out.is_err() {
                prop_assert_eq!(stored(&f, target).await, before);
            }

            let before = stored(&f, changer).await;
            let out = f.engine.change_password(changer, &input).await;
            prop_assert!(out.is_ok() || invalid_input(&out), "{out:?}");
            if out.is_err() {
                prop_assert_eq!(stored(&f, changer).await, before);
            }

            let before = stored(&f, alice).await;
            let out = f.engine.revoke_location(alice, &input).await;
            prop_assert!(matches!(out, Ok(false)) || invalid_input(&out), "{out:?}");
            prop_assert_eq!(stored(&f, alice).await, before);

            let out = f.engine.account_by_username(&input).await;
            prop_assert!(out.is_ok() || invalid_input(&out), "{out:?}");
            Ok(())
        })
    });
}

#[test]
fn create_account_never_panics() {
    let rt = rt();
    let f = fixture();
    rt.block_on(f.user("taken", Role::User));
    let username = prop_oneof![text(), Just("taken".to_owned()), "[a-z]{1,12}"];
    let email = prop_oneof![text(), "[a-z]{1,8}@[a-z]{1,8}\\.test"];
    run(CASES, (username, email, text()), |(username, email, password)| {
        rt.block_on(async {
            let before = f.store.len();
            let out = f.engine.create_account(NewAccount::new(&username, &email, Role::User, &password)).await;
            match &out {
                Ok(id) => prop_assert!(f.store.find_by_id(*id).await.unwrap().is_some()),
                Err(Error::InvalidInput(_) | Error::UsernameTaken) => prop_assert_eq!(f.store.len(), before),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
            Ok(())
        })
    });
}

#[test]
fn parsers_never_panic() {
    run(256, (text(), any::<u8>(), any::<u32>()), |(input, digits, id)| {
        if let Ok(code) = BackupCode::parse(&input) {
            prop_assert!(BackupCode::parse(code.display().expose()).unwrap() == code, "canonical form round-trips");
        }
        for d in [6, 8, digits] {
            if let Ok(code) = TotpCode::parse(&input, d) {
                prop_assert!(
                    code.as_str().len() == usize::from(d) && code.as_str().bytes().all(|b| b.is_ascii_digit())
                );
            }
        }
        let _ = twofactor::otpauth::parse_otpauth_uri(&input);
        let _ = AppKey::from_hex(id, &input);
        if let Ok(mail) = twofactor::MailId::parse(&input) {
            prop_assert_eq!(mail.to_string(), input.clone(), "only the canonical form parses");
        }
        let _ = Policy::builder().issuer(input.clone()).build();
        Ok(())
    });
}

fn too_long<T: std::fmt::Debug>(r: Result<T, Error>, field: &str) {
    match r {
        Err(Error::InvalidInput(e @ InputError::TooLong { field: f, .. })) => {
            assert_eq!(f, field);
            assert!(e.to_string().starts_with(field), "a clear message: {e}");
        }
        other => panic!("{field}: expected TooLong, got {other:?}"),
    }
}

#[tokio::test]
async fn every_text_input_has_a_maximum_length() {
    let f = fixture();
    let (alice, _) = f.enrolled("alice-len").await;
    let admin = f.user("admin-len", Role::Admin).await;
    let pending = f.pending("alice-len").await;
    let before = stored(&f, alice).await;
    let long = |n: usize| "7".repeat(n);
    // What a user types: an outcome, with the input named in the event.
    let refused = |field: &'static str| {
        let last = f.events.events().pop().expect("an event");
        let reason = match last.kind {
            EventKind::LoginFailed { reason } | EventKind::SecondFactorFailed { reason, .. } => reason,
            other => panic!("{field}: {other:?}"),
        };
        assert_eq!(reason, FailureClass::BadInput { field, problem: InputProblem::TooLong });
    };
    for (username, password) in [(long(65), PASSWORD.to_owned()), ("alice-len".to_owned(), long(257))] {
        let out = f.engine.begin_login(&username, &password, None).await;
        assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");
        refused(if username.len() > 64 { "username" } else { "password" });
    }
    let out = f.engine.begin_login("alice-len", &"ä".repeat(2049), None).await;
    assert!(matches!(out, Ok(LoginOutcome::Denied)), "{out:?}");
    refused("password");
    let out = f.engine.finish_login(&long(257), SecondFactor::Totp("123456"), None).await;
    assert!(matches!(out, Ok(SecondFactorOutcome::Expired)), "{out:?}");
    refused("pending login");
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&long(33)), None).await;
    assert!(matches!(out, Ok(SecondFactorOutcome::Denied { attempts_left: 5 })), "counts nothing: {out:?}");
    refused("code");
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&long(65)), None).await;
    assert!(matches!(out, Ok(SecondFactorOutcome::Denied { attempts_left: 5 })), "counts nothing: {out:?}");
    refused("backup code");
    // What an application or administrator passes: a clear error.
    too_long(f.engine.finish_login(&pending, SecondFactor::Totp("123456"), Some(&long(129))).await, "location label");
    too_long(f.engine.reset(admin, alice, &long(501)).await, "identity check");
    too_long(f.engine.change_password(alice, &long(257)).await, "password");
    too_long(f.engine.account_by_username(&long(65)).await, "username");
    too_long(f.engine.create_account(NewAccount::new(&long(65), "a@b.test", Role::User, PASSWORD)).await, "username");
    let email = format!("{}@example.test", long(250));
    too_long(f.engine.create_account(NewAccount::new("new-len", &email, Role::User, PASSWORD)).await, "email");
    assert!(matches!(
        twofactor::otpauth::parse_otpauth_uri(&long(twofactor::otpauth::MAX_URI + 1)),
        Err(InputError::TooLong { .. })
    ));
    assert!(invalid_input(&f.engine.revoke_location(alice, &long(33)).await));
    assert_eq!(stored(&f, alice).await, before, "nothing was written");
}

#[tokio::test]
async fn a_totp_code_is_canonicalised_once_before_the_compare_and_the_replay_check() {
    let f = fixture();
    let (_, secret) = f.enrolled("canon-totp").await;
    let code = f.code(&secret);
    let typed = format!(" {}-{} ", &code[..3], &code[3..]);
    let pending = f.pending("canon-totp").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&typed), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    let pending = f.pending("canon-totp").await;
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "the canonical form is the same, used code: {out:?}");
    let last = f.events.events().pop().unwrap();
    let replayed = twofactor::events::FailureClass::Replayed;
    assert!(matches!(last.kind, twofactor::events::EventKind::SecondFactorFailed { reason, .. } if reason == replayed));
    for other_digits in ["١٢٣٤٥٦", "１２３４５６"] {
        let out = f.engine.finish_login(&pending, SecondFactor::Totp(other_digits), None).await;
        assert!(matches!(out, Ok(SecondFactorOutcome::Denied { .. })), "only ASCII digits: {out:?}");
    }
}

#[tokio::test]
async fn a_backup_code_is_canonicalised_once_before_the_compare_and_the_replay_check() {
    let f = fixture();
    let (id, _) = f.enrolled("canon-backup").await;
    let code = f.backup_code("canon-backup");
    // Lower case, spaces instead of dashes, and the look-alike letters O and I for 0 and 1.
    let typed: String = code
        .to_lowercase()
        .replace('-', " ")
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'I',
            c => c,
        })
        .collect();
    let pending = f.pending("canon-backup").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&typed), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    let pending = f.pending("canon-backup").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "used once, in any spelling: {out:?}");
    let before = stored(&f, id).await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode("UUUU-UUUU-UUUU-UUUU"), None).await;
    assert!(matches!(out, Ok(SecondFactorOutcome::Denied { attempts_left: 4 })), "outside the alphabet: {out:?}");
    assert_eq!(stored(&f, id).await, before, "a malformed code counts nothing");
}
