//! RFC 4226 / RFC 6238 test vectors, `otpauth://` URIs and the verification rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;
use twofactor::InputError;
use twofactor::otpauth::{OtpauthUri, otpauth_uri, parse_otpauth_uri};
use twofactor::totp::{Algorithm, TotpCode, TotpKey, TotpParams, TotpVerification, Window, generate, verify};

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn seed(algorithm: Algorithm) -> &'static [u8] {
    match algorithm {
        Algorithm::Sha256 => SEED_SHA256,
        Algorithm::Sha512 => SEED_SHA512,
        _ => SEED_SHA1,
    }
}

// ---- RFC 6238 Appendix B -------------------------------------------------------

/// The code totp-lite (the independent oracle: `hmac` + RustCrypto hashes, its own
/// truncation and formatting) computes for `params` at `time`. It takes any period and
/// digit count, so it expresses every case our parameters allow.
fn oracle(secret: &[u8], params: &TotpParams, time: u64) -> String {
    let (period, digits) = (u64::from(params.period), u32::from(params.digits));
    match params.algorithm {
        Algorithm::Sha1 => totp_lite::totp_custom::<totp_lite::Sha1>(period, digits, secret, time),
        Algorithm::Sha256 => totp_lite::totp_custom::<totp_lite::Sha256>(period, digits, secret, time),
        Algorithm::Sha512 => totp_lite::totp_custom::<totp_lite::Sha512>(period, digits, secret, time),
        other => panic!("no oracle for {other:?}"),
    }
}

/// Checks the RFC 6238 Appendix B vector (8 digits) for ours and totp-lite, then the
/// same time at 6 digits (the vector's last 6 digits) for both.
fn check_rfc6238(algorithm: Algorithm, time: u64, expected: &str) {
    let params = TotpParams::new(algorithm, 8, 30).unwrap();
    let got = generate(seed(algorithm), &params, time);
    assert_eq!(got.expose(), expected, "RFC 6238 {algorithm:?} at T={time}");
    assert_eq!(oracle(seed(algorithm), &params, time), expected, "totp-lite, RFC 6238 {algorithm:?} at T={time}");
    let six = TotpParams::new(algorithm, 6, 30).unwrap();
    let suffix = &expected[2..];
    assert_eq!(generate(seed(algorithm), &six, time).expose(), suffix, "6 digits, {algorithm:?} at T={time}");
    assert_eq!(oracle(seed(algorithm), &six, time), suffix, "totp-lite, 6 digits, {algorithm:?} at T={time}");
}

macro_rules! rfc6238 {
    ($($name:ident: $alg:ident, $time:expr, $code:expr;)*) => {
        $(#[test] fn $name() { check_rfc6238(Algorithm::$alg, $time, $code); })*
    };
}

rfc6238! {
    rfc6238_sha1_59: Sha1, 59, "94287082";
    rfc6238_sha256_59: Sha256, 59, "46119246";
    rfc6238_sha512_59: Sha512, 59, "90693936";
    rfc6238_sha1_1111111109: Sha1, 1_111_111_109, "07081804";
    rfc6238_sha256_1111111109: Sha256, 1_111_111_109, "68084774";
    rfc6238_sha512_1111111109: Sha512, 1_111_111_109, "25091201";
    rfc6238_sha1_1111111111: Sha1, 1_111_111_111, "14050471";
    rfc6238_sha256_1111111111: Sha256, 1_111_111_111, "67062674";
    rfc6238_sha512_1111111111: Sha512, 1_111_111_111, "99943326";
    rfc6238_sha1_1234567890: Sha1, 1_234_567_890, "89005924";
    rfc6238_sha256_1234567890: Sha256, 1_234_567_890, "91819424";
    rfc6238_sha512_1234567890: Sha512, 1_234_567_890, "93441116";
    rfc6238_sha1_2000000000: Sha1, 2_000_000_000, "69279037";
    rfc6238_sha256_2000000000: Sha256, 2_000_000_000, "90698825";
    rfc6238_sha512_2000000000: Sha512, 2_000_000_000, "38618901";
    rfc6238_sha1_20000000000: Sha1, 20_000_000_000, "65353130";
    rfc6238_sha256_20000000000: Sha256, 20_000_000_000, "77737706";
    rfc6238_sha512_20000000000: Sha512, 20_000_000_000, "47863826";
}

#[test]
fn rfc6238_time_steps() {
    let params = TotpParams::default();
    for (time, step) in [
        (59, 0x1),
        (1_111_111_109, 0x023_523EC),
        (1_111_111_111, 0x023_523ED),
        (1_234_567_890, 0x027_3EF07),
        (2_000_000_000, 0x03F_940AA),
        (20_000_000_000, 0x27B_C86AA),
    ] {
        assert_eq!(params.step_at(time), step, "T={time}");
    }
}

// ---- RFC 4226 Appendix D -------------------------------------------------------

const RFC4226: [(u32, &str); 10] = [
    (1_284_755_224, "755224"),
    (1_094_287_082, "287082"),
    (137_359_152, "359152"),
    (1_726_969_429, "969429"),
    (1_640_338_314, "338314"),
    (868_254_676, "254676"),
    (1_918_287_922, "287922"),
    (82_162_583, "162583"),
    (673_399_871, "399871"),
    (645_520_489, "520489"),
];

#[test]
fn rfc4226_hotp_values() {
    let key = TotpKey::new(Algorithm::Sha1, SEED_SHA1);
    for (counter, (_, code)) in (0u64..).zip(RFC4226) {
        assert_eq!(key.code(counter, 6).expose(), code, "counter {counter}");
        assert_eq!(key.hotp(counter, 6), code.parse::<u32>().unwrap(), "counter {counter}");
    }
}

#[test]
fn rfc4226_truncated_values() {
    let key = TotpKey::new(Algorithm::Sha1, SEED_SHA1);
    for (counter, (truncated, _)) in (0u64..).zip(RFC4226) {
        assert_eq!(key.hotp(counter, 10), truncated, "counter {counter}");
    }
}

#[test]
fn long_keys_are_hashed_like_rfc2104() {
    // A key longer than the SHA-1 block equals HMAC keyed with SHA-1(key).
    use sha1::Digest;
    let long = [7u8; 100];
    let hashed = sha1::Sha1::digest(long);
    let a = TotpKey::new(Algorithm::Sha1, &long);
    let b = TotpKey::new(Algorithm::Sha1, &hashed);
    assert_eq!(a.hotp(42, 10), b.hotp(42, 10));
}

// ---- TotpParams / Algorithm / Window ------------------------------------------

#[test]
fn params_bounds() {
    assert_eq!(TotpParams::default(), TotpParams::new(Algorithm::Sha1, 6, 30).unwrap());
    for digits in [0, 5, 7, 9, 10] {
        assert!(TotpParams::new(Algorithm::Sha1, digits, 30).is_err(), "{digits}");
    }
    for period in [0, 14, 301] {
        assert!(TotpParams::new(Algorithm::Sha1, 6, period).is_err(), "{period}");
    }
    assert!(TotpParams::new(Algorithm::Sha512, 8, 15).is_ok());
    assert!(TotpParams::new(Algorithm::Sha512, 8, 300).is_ok());
}

#[test]
fn algorithm_names() {
    for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
        assert_eq!(Algorithm::parse(&alg.as_str().to_lowercase()), Some(alg));
    }
    assert_eq!(Algorithm::parse("SHA-1"), None);
    assert_eq!(Algorithm::parse(""), None);
}

#[test]
fn window_bounds() {
    assert_eq!(Window::default(), Window::default().back(1).ahead(0));
    assert!(Window::new(Window::MAX, Window::MAX).is_ok());
    assert!(Window::new(Window::MAX + 1, 0).is_err());
    assert!(Window::new(0, Window::MAX + 1).is_err());
}

// ---- TotpCode::parse -----------------------------------------------------------

#[test]
fn code_canonicalisation() {
    for (input, digits, canonical) in [
        ("123456", 6, "123456"),
        ("123 456", 6, "123456"),
        ("123-456", 6, "123456"),
        ("  123456\n", 6, "123456"),
        ("1 2 3 4 5 6", 6, "123456"),
        ("1234 5678", 8, "12345678"),
        ("1234-5678", 8, "12345678"),
        ("000000", 6, "000000"),
    ] {
        assert_eq!(TotpCode::parse(input, digits).unwrap().as_str(), canonical, "{input:?}");
    }
}

#[test]
fn code_rejections() {
    let malformed = |input: &str, digits: u8| {
        assert!(
            matches!(TotpCode::parse(input, digits), Err(InputError::Malformed { field: "code", .. })),
            "{input:?} / {digits}"
        );
    };
    for input in [
        "12a456",
        "12345",
        "1234567",
        "",
        "   ",
        "-123456",
        "123456-",
        "12-34-56",
        "123--456",
        "123\t456",
        "１２３４５６",
        "+123456",
        "123.456",
    ] {
        malformed(input, 6);
    }
    malformed("123456", 8);
    malformed("1234567", 7);
    assert_eq!(
        TotpCode::parse(&"1".repeat(40), 6).unwrap_err(),
        InputError::TooLong { field: "code", max: TotpCode::MAX_INPUT }
    );
    // The length check comes first, even for junk.
    assert!(matches!(TotpCode::parse(&"x".repeat(33), 6), Err(InputError::TooLong { .. })));
}

// ---- verify --------------------------------------------------------------------

const NOW: u64 = 1_700_000_015;

fn setup() -> (TotpKey, TotpParams, u64) {
    let params = TotpParams::default();
    (TotpKey::new(params.algorithm, SEED_SHA1), params, params.step_at(NOW))
}

fn code_at(key: &TotpKey, params: &TotpParams, step: u64) -> TotpCode {
    TotpCode::parse(key.code(step, params.digits).expose(), params.digits).unwrap()
}

fn check(key: &TotpKey, params: &TotpParams, step: u64, last: Option<u64>) -> TotpVerification {
    verify(key, params, Window::default(), &code_at(key, params, step), NOW, last)
}

#[test]
fn verify_current_step_accepted() {
    let (key, params, now) = setup();
    assert_eq!(check(&key, &params, now, None), TotpVerification::Accepted { step: now });
    assert_eq!(check(&key, &params, now, Some(now - 1)), TotpVerification::Accepted { step: now });
}

#[test]
fn verify_window() {
    let (key, params, now) = setup();
    let accepted = TotpVerification::Accepted { step: now - 1 };
    assert_eq!(check(&key, &params, now - 1, None), accepted);
    assert_eq!(check(&key, &params, now - 2, None), TotpVerification::Rejected);
    assert_eq!(check(&key, &params, now + 1, None), TotpVerification::Rejected);
    let wide = Window::new(2, 1).unwrap();
    for step in [now - 2, now + 1] {
        let code = code_at(&key, &params, step);
        assert_eq!(verify(&key, &params, wide, &code, NOW, None), TotpVerification::Accepted { step });
    }
}

#[test]
fn verify_replay() {
    let (key, params, now) = setup();
    let TotpVerification::Accepted { step } = check(&key, &params, now, None) else {
        panic!("first use must be accepted");
    };
    assert_eq!(check(&key, &params, now, Some(step)), TotpVerification::Replayed { step });
    // An older step after a newer one was used is a replay too.
    assert_eq!(check(&key, &params, now - 1, Some(now)), TotpVerification::Replayed { step: now - 1 });
}

#[test]
fn verify_rejects_mismatches() {
    let (key, params, now) = setup();
    let eight = TotpCode::parse(key.code(now, 8).expose(), 8).unwrap();
    let w = Window::default();
    assert_eq!(verify(&key, &params, w, &eight, NOW, None), TotpVerification::Rejected);
    let code = code_at(&key, &params, now);
    let sha256 = params.algorithm(Algorithm::Sha256);
    assert_eq!(verify(&key, &sha256, w, &code, NOW, None), TotpVerification::Rejected);
    let bad = params.period(0);
    assert_eq!(verify(&key, &bad, w, &code, NOW, None), TotpVerification::Rejected);
    let wrong = TotpCode::parse(if code.as_str() == "000000" { "111111" } else { "000000" }, 6);
    let wrong = wrong.unwrap();
    assert_eq!(verify(&key, &params, w, &wrong, NOW, None), TotpVerification::Rejected);
}

#[test]
fn verify_saturates_at_the_ends_of_time() {
    let (key, params, _) = setup();
    let wide = Window::default().back(u8::MAX).ahead(u8::MAX); // clamped to Window::MAX
    let zero = code_at(&key, &params, 0);
    let got = verify(&key, &params, wide, &zero, 0, None);
    assert_eq!(got, TotpVerification::Accepted { step: 0 });
    let last = params.step_at(u64::MAX);
    let end = code_at(&key, &params, last);
    let got = verify(&key, &params, wide, &end, u64::MAX, None);
    assert_eq!(got, TotpVerification::Accepted { step: last });
    // Past the clamp: 11 steps back is outside even the widest window.
    let old = code_at(&key, &params, 100 - 11);
    let got = verify(&key, &params, wide, &old, 100 * 30, None);
    assert_eq!(got, TotpVerification::Rejected);
}

#[test]
fn debug_never_shows_secrets() {
    let key = TotpKey::new(Algorithm::Sha1, SEED_SHA1);
    assert!(!format!("{key:?}").contains("1234"));
    let code = TotpCode::parse("987654", 6).unwrap();
    assert!(!format!("{code:?}").contains("987654"));
    let uri = otpauth_uri("Acme", "bob", SEED_SHA1, &TotpParams::default()).unwrap();
    assert!(!format!("{uri:?}").contains("GEZDGNBV"));
    let parsed = parse_otpauth_uri(uri.expose()).unwrap();
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("GEZDGNBV") && !debug.contains("49, 50"), "{debug}");
    assert!(debug.contains("bob"));
}

// ---- otpauth -------------------------------------------------------------------

#[test]
fn otpauth_uri_default_params() {
    let uri = otpauth_uri("ACME Co", "john.doe@email.com", SEED_SHA1, &TotpParams::default());
    assert_eq!(
        uri.unwrap().expose(),
        "otpauth://totp/ACME%20Co:john.doe%40email.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co"
    );
}

#[test]
fn otpauth_uri_non_default_params() {
    let params = TotpParams::new(Algorithm::Sha512, 8, 60).unwrap();
    let uri = otpauth_uri("A", "b", b"hello", &params).unwrap();
    assert_eq!(uri.expose(), "otpauth://totp/A:b?secret=NBSWY3DP&issuer=A&algorithm=SHA512&digits=8&period=60");
}

#[test]
fn otpauth_percent_encoding() {
    let uri = otpauth_uri("Zürich Bank", "a b@c+d/é~_.-", b"k", &TotpParams::default()).unwrap();
    assert_eq!(
        uri.expose(),
        "otpauth://totp/Z%C3%BCrich%20Bank:a%20b%40c%2Bd%2F%C3%A9~_.-\
         ?secret=NM&issuer=Z%C3%BCrich%20Bank"
    );
}

#[test]
fn otpauth_base32_has_no_padding() {
    for len in 1..=12 {
        let uri = otpauth_uri("I", "a", &vec![0xA5; len], &TotpParams::default()).unwrap();
        let secret = uri.expose().split("secret=").nth(1).unwrap().split('&').next().unwrap();
        assert!(!secret.contains('='), "{len}: {secret}");
        assert!(secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    }
}

#[test]
fn otpauth_uri_rejects_bad_names() {
    let p = TotpParams::default();
    let malformed = |issuer: &str, account: &str, field: &str| {
        let err = otpauth_uri(issuer, account, b"k", &p).unwrap_err();
        assert!(matches!(err, InputError::Malformed { field: f, .. } if f == field), "{issuer:?} {account:?}: {err:?}");
    };
    malformed("Ac:me", "bob", "issuer");
    malformed("Acme", "bo:b", "account");
    malformed("", "bob", "issuer");
    malformed("Acme", "", "account");
    malformed("Ac\nme", "bob", "issuer");
    malformed("Acme", "bob\u{7f}", "account");
    malformed("Acme", " bob", "account");
    malformed("Acme ", "bob", "issuer");
    let long = "x".repeat(129);
    assert_eq!(otpauth_uri(&long, "bob", b"k", &p).unwrap_err(), InputError::TooLong { field: "issuer", max: 128 });
    assert!(otpauth_uri("Acme", &long, b"k", &p).is_err());
    assert!(otpauth_uri(&long[..128], &long[..128], b"k", &p).is_ok());
    assert!(otpauth_uri("Acme", "bob", b"", &p).is_err());
    assert!(otpauth_uri("Acme", "bob", b"k", &p.digits(7)).is_err());
}

#[test]
fn otpauth_round_trip() {
    let params = TotpParams::new(Algorithm::Sha256, 8, 45).unwrap();
    let uri = otpauth_uri("Bank of Ω", "ω@example.org", SEED_SHA256, &params).unwrap();
    let parsed = parse_otpauth_uri(uri.expose()).unwrap();
    assert_eq!(parsed.issuer.as_deref(), Some("Bank of Ω"));
    assert_eq!(parsed.account, "ω@example.org");
    assert_eq!(parsed.secret.expose(), SEED_SHA256);
    assert_eq!(parsed.params, params);
}

#[test]
fn otpauth_parse_lenient_forms() {
    let parsed =
        parse_otpauth_uri("OTPAUTH://TOTP/Example%3A%20alice%40google.com?secret=jbsw y3dp ehpk 3pxp====&image=x")
            .unwrap();
    assert_eq!(parsed.issuer.as_deref(), Some("Example"));
    assert_eq!(parsed.account, "alice@google.com");
    assert_eq!(parsed.secret.expose(), b"Hello!\xde\xad\xbe\xef");
    assert_eq!(parsed.params, TotpParams::default());

    let only_param = parse_otpauth_uri("otpauth://totp/alice?issuer=Big+Co&secret=NM").unwrap();
    assert_eq!(only_param.issuer.as_deref(), Some("Big Co"));
    let none = parse_otpauth_uri("otpauth://totp/alice?secret=NM").unwrap();
    assert_eq!(none.issuer, None);
    assert_eq!(none.account, "alice");
}

#[test]
fn otpauth_parse_errors() {
    let err = parse_otpauth_uri("otpauth://hotp/A:b?secret=NM&counter=0").unwrap_err();
    assert_eq!(err, InputError::Malformed { field: "uri", reason: "only totp is supported" });
    for junk in [
        "",
        "otpauth",
        "http://totp/A:b?secret=NM",
        "otpauth://totp",
        "otpauth://totp/",
        "otpauth://totp/A:b",
        "otpauth://totp/A:b?secret=",
        "otpauth://totp/A:b?secret=N1",
        "otpauth://totp/A:b?secret=NN",
        "otpauth://totp/A:b?secret=NM&secret=NM",
        "otpauth://totp/A:b?secret=NM&issuer=B",
        "otpauth://totp/A:b?secret=NM&digits=7",
        "otpauth://totp/A:b?secret=NM&digits=+6",
        "otpauth://totp/A:b?secret=NM&digits=0006",
        "otpauth://totp/A:b?secret=NM&period=10",
        "otpauth://totp/A:b?secret=NM&period=",
        "otpauth://totp/A:b?secret=NM&algorithm=MD5",
        "otpauth://totp/A%3:b?secret=NM",
        "otpauth://totp/A%:b?secret=NM",
        "otpauth://totp/A%FF:b?secret=NM",
        "otpauth://totp/A:b?secret=NM&issuer=%C3",
        "otpauth://totp/A:b:c?secret=NM",
        "otpauth://totp/:b?secret=NM",
        "otpauth://totp/A:?secret=NM",
        "otpauth://totp/A:b%0A?secret=NM",
        "otpauth://totp/A:b?secret=NM#frag",
        "otpauth://steam/A:b?secret=NM",
    ] {
        assert!(parse_otpauth_uri(junk).is_err(), "{junk:?} should be rejected");
    }
    let huge = format!("otpauth://totp/A:b?secret=NM&x={}", "a".repeat(twofactor::otpauth::MAX_URI));
    let max = twofactor::otpauth::MAX_URI;
    assert_eq!(parse_otpauth_uri(&huge).unwrap_err(), InputError::TooLong { field: "uri", max });
}

// ---- properties ----------------------------------------------------------------

fn params_strategy() -> impl Strategy<Value = TotpParams> {
    (
        prop_oneof![Just(Algorithm::Sha1), Just(Algorithm::Sha256), Just(Algorithm::Sha512)],
        prop_oneof![Just(6u8), Just(8u8)],
        15u32..=300,
    )
        .prop_map(|(a, d, p)| TotpParams::new(a, d, p).unwrap())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 128 && s.trim() == s
}

proptest! {
    #[test]
    fn parsers_never_panic(s in ".*", t in "otpauth://totp/[ -~%]*") {
        let _ = parse_otpauth_uri(&s);
        let _ = parse_otpauth_uri(&t);
        for digits in [6, 8] {
            if let Ok(code) = TotpCode::parse(&s, digits) {
                prop_assert_eq!(code.as_str().len(), usize::from(digits));
                prop_assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_uris(
        tail in "[A-Za-z0-9%=&?:+ /#.-]{0,60}",
    ) {
        let _ = parse_otpauth_uri(&format!("otpauth://totp/A:b?secret=NM{tail}"));
        let _ = parse_otpauth_uri(&format!("otpauth://totp/{tail}"));
    }

    #[test]
    fn otpauth_round_trips(
        issuer in "[^:\\p{Cc}]{1,40}",
        account in "[^:\\p{Cc}]{1,40}",
        secret in prop::collection::vec(any::<u8>(), 1..80),
        params in params_strategy(),
    ) {
        let uri = otpauth_uri(&issuer, &account, &secret, &params);
        if !(valid_name(&issuer) && valid_name(&account)) {
            prop_assert!(uri.is_err());
            return Ok(());
        }
        let uri = uri.unwrap();
        let parsed: OtpauthUri = parse_otpauth_uri(uri.expose()).unwrap();
        prop_assert_eq!(parsed.issuer.as_deref(), Some(issuer.as_str()));
        prop_assert_eq!(&parsed.account, &account);
        prop_assert_eq!(parsed.secret.expose(), secret.as_slice());
        prop_assert_eq!(parsed.params, params);
    }

    /// Ours against totp-lite for every algorithm and digit count, on random secrets
    /// (1–64 bytes), times (0..2^40) and periods (15..=300 s, the range
    /// `TotpParams::new` accepts). totp-lite can express every one of these cases.
    #[test]
    fn codes_equal_totp_lite(
        secret in prop::collection::vec(any::<u8>(), 1..=64),
        time in 0u64..1 << 40,
        period in 15u32..=300,
    ) {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for digits in [6u8, 8] {
                let params = TotpParams::new(algorithm, digits, period).unwrap();
                let ours = generate(&secret, &params, time);
                prop_assert_eq!(ours.expose(), oracle(&secret, &params, time), "{:?}, {} digits", algorithm, digits);
            }
        }
    }

    #[test]
    fn generated_codes_verify(
        secret in prop::collection::vec(any::<u8>(), 1..80),
        params in params_strategy(),
        now in 0u64..=u64::MAX / 2,
    ) {
        let key = TotpKey::new(params.algorithm, &secret);
        let shown = generate(&secret, &params, now);
        let code = TotpCode::parse(shown.expose(), params.digits).unwrap();
        let step = params.step_at(now);
        prop_assert_eq!(
            verify(&key, &params, Window::default(), &code, now, None),
            TotpVerification::Accepted { step }
        );
        prop_assert_eq!(
            verify(&key, &params, Window::default(), &code, now, Some(step)),
            TotpVerification::Replayed { step }
        );
    }
}
