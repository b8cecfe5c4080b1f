//! Policy presets (issue 3): `Policy::default()` follows the seed with OWASP hashing;
//! `Policy::nist_aal2()` requires 2FA and limits an emailed code to 24 h; anything
//! weaker is reachable only through a `danger_*` builder method; the builder rejects
//! out-of-bounds values.

use std::time::Duration;

use twofactor::totp::{Algorithm, TotpParams, Window};
use twofactor::{DeliveryPolicy, HashParams, InputError, LocationPolicy, Policy, PolicyBuilder, ThrottlePolicy};

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn the_default_is_owasp_strength_with_optional_2fa_and_one_non_expiring_backup_code() {
    let p = Policy::default();
    assert_eq!(p.password().hash, HashParams::new(19_456, 2, 1));
    assert_eq!(p.password().hash, HashParams::OWASP);
    assert!(!p.requires_two_factor(), "2FA is optional per account");
    assert_eq!(p.backup_codes().count, 1, "one emailed backup code");
    assert_eq!(p.backup_codes().lifetime, None, "that works until used");
    assert_eq!(*p.totp(), TotpParams::default().algorithm(Algorithm::Sha1).digits(6).period(30));
    assert_eq!((p.window().back, p.window().ahead), (1, 0), "one step of clock drift back");
    assert_eq!(p.max_code_attempts(), 5);
    assert_eq!(*p.throttle(), ThrottlePolicy::default());
    assert_eq!(p.throttle().free_failures, 5);
    assert_eq!(p.throttle().guess_bound(), 100);
    assert_eq!(p.locations().lifetime, 30 * DAY);
    assert!(!p.locations().notify_new_location);
    let d = p.delivery();
    assert_eq!(*d, DeliveryPolicy::default());
    assert_eq!((d.max_attempts, d.first_retry, d.max_retry), (10, Duration::from_secs(30), Duration::from_secs(3600)));
    assert_eq!(d.lease, Duration::from_secs(300), "a claim outlasts a slow send");
    assert_eq!(Policy::builder().build().unwrap(), p, "the builder starts from the default");
}

#[test]
fn nist_aal2_requires_2fa_and_limits_an_emailed_code_to_24_hours() {
    let p = Policy::nist_aal2();
    assert!(p.requires_two_factor());
    assert_eq!(p.backup_codes().lifetime, Some(DAY));
    assert!(p.locations().lifetime <= DAY, "a remembered device does not outlive AAL2's 24 h reauthentication");
    assert!(p.locations().notify_new_location);
    assert_eq!(p.password().hash, HashParams::OWASP, "no weaker than the default");
    assert_eq!(p.throttle().guess_bound(), 100);
}

fn rejected(b: PolicyBuilder, field: &str) {
    match b.build() {
        Err(InputError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: expected a rejection, got {other:?}"),
    }
}

#[test]
fn weaker_hashing_needs_danger_fast_hashing() {
    let weak = HashParams::OWASP.m_cost(19_455);
    rejected(Policy::builder().password_hash(weak), "password_hash");
    rejected(Policy::builder().password_hash(HashParams::OWASP.t_cost(1)), "password_hash");
    let p = Policy::builder().danger_fast_hashing().build().unwrap();
    assert_eq!(p.password().hash, HashParams::MINIMAL);
    assert_eq!(p.backup_codes().hash, HashParams::MINIMAL);
    let stronger = HashParams::new(65_536, 3, 1);
    assert_eq!(Policy::builder().password_hash(stronger).build().unwrap().password().hash, stronger);
}

#[test]
fn a_wider_window_needs_danger_wide_window() {
    let wide = Window::new(2, 1).unwrap();
    rejected(Policy::builder().window(wide), "window");
    rejected(Policy::builder().window(Window::new(0, 3).unwrap()), "window");
    assert_eq!(Policy::builder().danger_wide_window(wide).build().unwrap().window(), wide);
    let narrow = Window::new(0, 0).unwrap();
    assert_eq!(Policy::builder().window(narrow).build().unwrap().window(), narrow, "narrower is fine");
}

#[test]
fn the_builder_rejects_out_of_bounds_values() {
    let b = Policy::builder;
    rejected(b().issuer(""), "issuer");
    rejected(b().issuer("a:b"), "issuer");
    rejected(b().issuer("line\nbreak"), "issuer");
    assert!(matches!(b().issuer("x".repeat(65)).build(), Err(InputError::TooLong { .. })));
    rejected(b().min_password_chars(7), "min_password_chars");
    rejected(b().min_password_chars(65), "min_password_chars");
    rejected(b().backup_code_count(0), "backup_code_count");
    rejected(b().backup_code_count(17), "backup_code_count");
    rejected(b().pending_lifetime(Duration::from_secs(29)), "pending_lifetime");
    rejected(b().pending_lifetime(Duration::from_secs(1801)), "pending_lifetime");
    rejected(b().max_code_attempts(0), "max_code_attempts");
    rejected(b().max_code_attempts(11), "max_code_attempts");
    let t = ThrottlePolicy::default();
    rejected(b().throttle(t.disable_after(101)), "throttle");
    rejected(b().throttle(t.free_failures(11)), "throttle");
    assert!(b().danger_relaxed_throttle(t.free_failures(11)).build().is_ok());
    rejected(b().throttle(t.free_failures(0)), "throttle");
    rejected(b().throttle(t.free_failures(10).disable_after(9)), "throttle");
    rejected(b().throttle(t.base_delay(Duration::ZERO)), "throttle");
    rejected(b().throttle(t.base_delay(Duration::from_millis(500))), "throttle");
    rejected(b().throttle(t.max_delay(Duration::from_secs(59))), "throttle");
    let l = LocationPolicy::default();
    rejected(b().locations(l.max_per_account(0)), "locations");
    rejected(b().locations(l.max_per_account(101)), "locations");
    rejected(b().locations(l.lifetime(Duration::ZERO)), "locations");
    let d = DeliveryPolicy::default();
    let (second, minute) = (Duration::from_secs(1), Duration::from_secs(60));
    rejected(b().delivery(d.max_attempts(0)), "delivery");
    rejected(b().delivery(d.max_attempts(101)), "delivery");
    rejected(b().delivery(d.retry(Duration::from_millis(999), minute)), "delivery");
    rejected(b().delivery(d.retry(minute, minute - second)), "delivery");
    rejected(b().delivery(d.lease(Duration::from_millis(999))), "delivery");

    // The edges themselves are accepted.
    let edges = b()
        .min_password_chars(64)
        .backup_code_count(16)
        .pending_lifetime(Duration::from_secs(30))
        .max_code_attempts(10)
        .throttle(t.free_failures(1).disable_after(100))
        .locations(l.max_per_account(100));
    assert!(edges.build().is_ok());
    for delivery in [d.max_attempts(1).retry(second, second).lease(second), d.max_attempts(100)] {
        assert_eq!(*b().delivery(delivery).build().unwrap().delivery(), delivery);
    }
}

#[test]
fn totp_parameters_stay_within_the_standard() {
    assert!(TotpParams::new(Algorithm::Sha1, 7, 30).is_err());
    assert!(TotpParams::new(Algorithm::Sha1, 6, 14).is_err());
    assert!(TotpParams::new(Algorithm::Sha1, 6, 301).is_err());
    assert!(Window::new(Window::MAX + 1, 0).is_err());
    let strong = TotpParams::new(Algorithm::Sha256, 8, 30).unwrap();
    assert_eq!(*Policy::builder().totp(strong).build().unwrap().totp(), strong);
}
