//! Writes the seed corpus of the `document_decode` target: the credential documents a
//! real engine writes for one user along a life (password, throttle, enrollment, 2FA on
//! with a queued and a delivered backup code, pending logins, a remembered location, a
//! second authenticator being added and added, a locked second factor, an unlock, a
//! reset, a mail being retried), sealed under the fuzz engines' fixed key for the
//! fuzzed user at the fuzzed time, plus a few hand-written texts.
//!
//! ```sh
//! cd fuzz && cargo run --example document_seeds   # writes corpus/document_decode/seed-*
//! ```

#[path = "../fuzz_targets/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::time::Duration;

use common::{DOC_EMAIL, DOC_LOGIN, DOC_USER, NOW, PASSWORD, block_on};
use twofactor::totp::{TotpParams, generate};
use twofactor::{
    ConfirmOutcome, Document, LoginOutcome, ManualClock, Policy, Role, SecondFactor, SecondFactorOutcome,
    ThrottlePolicy, Timestamp, UserId, UserRecord, UserStore,
};

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/document_decode");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let mut seeds: Vec<(String, String)> = vec![
        ("format-only".into(), r#"{"format":1}"#.into()),
        ("newer-format".into(), r#"{"format":2}"#.into()),
        ("outbox-dues".into(), r#"{"format":1,"outbox":[{"due":1800000060},{"due":1800000000}]}"#.into()),
    ];

    // Everything happens in the hour before the time the fuzzer runs at, so what is
    // live (pending logins, locations, queued mail) is still live there.
    let clock = ManualClock::new(Timestamp(NOW - 3600));
    // The second factor locks after 4 failures here (100 by default, and the throttle
    // would space them over days); a document does not record the policy.
    let throttle = ThrottlePolicy { free_failures: 4, disable_after: 4, ..ThrottlePolicy::default() };
    let policy = Policy::builder().danger_fast_hashing().danger_relaxed_throttle(throttle).build().expect("policy");
    let engine = common::fixed_engine_with(clock.clone(), policy);
    let store = engine.store().clone();
    let id = UserId::from(DOC_USER);
    store.add_user(id, DOC_LOGIN, DOC_EMAIL, Role::User).expect("user");
    let admin = UserId::from(7_u64);
    store.add_user(admin, "admin", "admin@example.test", Role::Admin).expect("admin");

    let mut snap = |name: &str| {
        let user = block_on(store.find_by_id(id)).expect("find").expect("user");
        let json = user.credentials.expect("a document").document.as_json().to_owned();
        if seeds.last().is_none_or(|(_, last)| *last != json) {
            seeds.push((name.to_owned(), json));
        }
    };
    let step = || clock.advance(Duration::from_secs(30));
    let now = || clock_now(&clock);

    block_on(engine.change_password(id, PASSWORD)).expect("password");
    snap("password");
    for _ in 0..2 {
        let out = block_on(engine.begin_login(DOC_LOGIN, "wrong password!", None)).expect("login");
        assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    }
    snap("password-failures");
    clock.advance(Duration::from_secs(120));

    let started = block_on(engine.start_enrollment(id)).expect("enroll");
    snap("enrolling");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let code = |secret: &[u8], at: u64| generate(secret, &TotpParams::default(), at).expose().to_owned();
    let confirmed = block_on(engine.confirm_enrollment(id, &code(&secret, now()))).expect("confirm");
    assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
    snap("enabled-backup-code-queued");
    block_on(engine.deliver_due(10)).expect("deliver");
    snap("enabled-mail-settled");

    step();
    let pending = |engine: &common::MemoryEngine| match block_on(engine.begin_login(DOC_LOGIN, PASSWORD, None)) {
        Ok(LoginOutcome::SecondFactorRequired(p)) => p.token().to_owned(),
        other => panic!("{other:?}"),
    };
    let first = pending(&engine);
    snap("pending-login");
    let wrong = (0..).map(|n: u32| format!("{n:06}")).find(|c| *c != code(&secret, now())).expect("wrong code");
    let out = block_on(engine.finish_login(&first, SecondFactor::Totp(&wrong), None)).expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    snap("pending-failure");
    let out =
        block_on(engine.finish_login(&first, SecondFactor::Totp(&code(&secret, now())), Some("Firefox on Linux")))
            .expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Authenticated(_)), "{out:?}");
    snap("remembered-location");

    step();
    let tablet = block_on(engine.add_authenticator(id, "Tablet")).expect("add");
    snap("adding-authenticator");
    let tablet_secret = data_encoding::BASE32_NOPAD.decode(tablet.secret_base32.expose().as_bytes()).expect("base32");
    block_on(engine.confirm_authenticator(id, &code(&tablet_secret, now()))).expect("confirm tablet");
    snap("two-authenticators");
    block_on(engine.deliver_due(10)).expect("deliver");
    snap("two-authenticators-settled");

    // Wrong codes until the second factor locks.
    for _ in 0..10 {
        let view = block_on(engine.account(id)).expect("account").expect("user");
        if view.locked {
            break;
        }
        step();
        let token = pending(&engine);
        let _ = block_on(engine.finish_login(&token, SecondFactor::Totp(&wrong), None));
    }
    snap("second-factor-locked");
    block_on(engine.unlock(admin, id, "called back on the known number")).expect("unlock");
    snap("unlocked");
    engine.mailer().fail_next(1);
    block_on(engine.deliver_due(10)).expect("deliver");
    snap("mail-retrying");
    block_on(engine.reset(admin, id, "identity checked in person")).expect("reset");
    snap("reset");

    // Each seed, as the fuzz target's engine reads it at the fuzzed time.
    let fixed = common::fixed();
    for (i, (name, json)) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}-{name}")), json).expect("write seed");
        let user = UserRecord::new(id, DOC_LOGIN, DOC_EMAIL, Role::User).with_document(1, Document::from_json(json));
        block_on(fixed.engine.store().create_user(&user)).expect("create");
        let view = block_on(fixed.engine.account(id)).map(|v| v.map(|v| v.two_factor));
        let login = block_on(fixed.engine.begin_login(DOC_LOGIN, PASSWORD, None)).map(|o| match o {
            LoginOutcome::Authenticated(_) => "authenticated",
            LoginOutcome::SecondFactorRequired(_) => "second factor required",
            LoginOutcome::Denied => "denied",
            _ => "other",
        });
        let delivered = block_on(fixed.engine.deliver_due(4)).map(|r| r.sent);
        println!("{name}: account {view:?}, login {login:?}, mail sent {delivered:?}");
        common::remove_user(&fixed.engine, id);
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}

fn clock_now(clock: &ManualClock) -> u64 {
    use twofactor::Clock;
    clock.now().0
}
