//! The library accounts used through the new engine, on a migrated store: every account
//! does what the manifest says it can (and nothing it says it cannot).

use std::time::Duration;

use twofactor::mail::{Delivery, MemoryMailer};
use twofactor::store::UserStore;
use twofactor::totp::TotpParams;
use twofactor::{
    AccountView, AppKey, AuthMethod, Authenticated, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, Policy,
    ResetOutcome, SecondFactor, SecondFactorOutcome, Timestamp, UserId,
};

use super::manifest::{Account, Manifest, fixture};
use super::records::{list, num, opt_num, stored, text};

pub type Eng<S> = Engine<S, MemoryMailer, ManualClock>;

/// The key in a 0.1.0 CLI key file (64 hex digits), as the CLI reads it: key id 1.
pub fn key_ring_from_file(name: &str, id: u32, manifest_hex: &str) -> KeyRing {
    let hex = std::fs::read_to_string(fixture(name)).expect("read the key file");
    assert_eq!(hex.len(), 64, "{name}: 64 hex digits, no newline");
    assert_eq!(hex, manifest_hex, "{name} is the manifest's key");
    KeyRing::new(vec![AppKey::from_hex(id, &hex).expect("a hex key")]).expect("a key ring")
}

/// The policies the generator built its engines with (manifest `policies`).
pub fn policy(name: &str) -> Policy {
    match name {
        "default" => Policy::default(),
        "fast" => Policy::builder().danger_fast_hashing().build().expect("fast policy"),
        "grace" => Policy::builder()
            .danger_fast_hashing()
            .backup_code_count(3)
            .backup_code_lifetime(Some(Duration::from_secs(7 * 86_400)))
            .build()
            .expect("grace policy"),
        "heidi" => Policy::builder()
            .danger_fast_hashing()
            .backup_code_lifetime(Some(Duration::from_secs(86_400)))
            .build()
            .expect("heidi policy"),
        other => panic!("unknown policy {other}"),
    }
}

/// The account's TOTP secret (raw bytes) and parameters, from the manifest.
pub fn totp_of(secret_base32: &str, params: &super::manifest::StoredParams) -> (Vec<u8>, TotpParams) {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_base32.as_bytes()).expect("base32 secret");
    let algorithm = twofactor::totp::Algorithm::parse(&params.algorithm).expect("algorithm");
    (secret, TotpParams::new(algorithm, params.digits, params.period).expect("params"))
}

pub fn code_at(secret: &[u8], params: &TotpParams, t: u64) -> String {
    twofactor::totp::generate(secret, params, t).expose().to_owned()
}

/// One engine per policy over one store, mailer and clock, as the generator built them.
pub struct Library<S: UserStore + Clone + 'static> {
    pub m: Manifest,
    pub store: S,
    pub clock: ManualClock,
    pub mailer: MemoryMailer,
    engines: Vec<(&'static str, Eng<S>)>,
}

impl<S: UserStore + Clone + 'static> Library<S> {
    pub fn new(store: S, m: Manifest) -> Library<S> {
        let clock = ManualClock::new(Timestamp(m.times.fixture_now));
        let mailer = MemoryMailer::new();
        let keys = key_ring_from_file("library.key", m.app_key.id, &m.app_key.hex);
        let engines = ["fast", "default", "grace", "heidi"]
            .into_iter()
            .map(|name| {
                let engine = Engine::builder(store.clone(), mailer.clone(), keys.clone())
                    .clock(clock.clone())
                    .policy(policy(name))
                    .build()
                    .expect("engine");
                (name, engine)
            })
            .collect();
        Library { m, store, clock, mailer, engines }
    }

    pub fn engine(&self, policy: &str) -> &Eng<S> {
        &self.engines.iter().find(|(n, _)| *n == policy).unwrap_or_else(|| panic!("no engine {policy}")).1
    }

    fn eng(&self, a: &Account) -> &Eng<S> {
        self.engine(&a.policy)
    }

    /// Delivers `a`'s queued mail (operations only queue it) through `a`'s engine and
    /// returns how the round went for `mail`, the message an operation said it queued.
    pub async fn deliver(&self, a: &Account, mail: Option<&Delivery>) -> Delivery {
        let queued = mail.and_then(Delivery::queued);
        let queued = queued.unwrap_or_else(|| panic!("{}: expected queued mail, got {mail:?}", a.username));
        let report = self.eng(a).deliver_queued(UserId::from(a.id)).await.expect("delivery");
        report.delivery_of(queued).cloned().unwrap_or_else(|| panic!("{}: not tried: {report:?}", a.username))
    }

    pub fn at(&self, t: u64) {
        self.clock.set(Timestamp(t));
    }

    pub fn now(&self) -> u64 {
        self.m.times.fixture_now
    }

    pub async fn login(&self, a: &Account, password: &str, device: Option<&str>) -> LoginOutcome {
        self.eng(a).begin_login(&a.username, password, device).await.expect("begin_login")
    }

    /// A right password on an account with 2FA: the pending-login token.
    pub async fn pending(&self, a: &Account) -> String {
        match self.login(a, &a.password, None).await {
            LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
            other => panic!("{}: expected a second factor, got {other:?}", a.key),
        }
    }

    pub async fn finish(&self, a: &Account, token: &str, factor: SecondFactor<'_>) -> SecondFactorOutcome {
        self.eng(a).finish_login(token, factor, None).await.expect("finish_login")
    }

    pub async fn view(&self, a: &Account) -> AccountView {
        self.eng(a).account(UserId::from(a.id)).await.expect("account").unwrap_or_else(|| panic!("{}", a.key))
    }

    pub async fn doc(&self, a: &Account) -> serde_json::Value {
        stored(&self.store, UserId::from(a.id)).await.2
    }
}

#[track_caller]
pub fn assert_auth(a: &Account, auth: &Authenticated, method: AuthMethod) {
    assert_eq!(auth.account, UserId::from(a.id), "{}: the account logged in", a.key);
    assert_eq!(auth.username, a.stored.username, "{}: username", a.key);
    assert_eq!(auth.role.as_str(), a.role, "{}: role", a.key);
    assert_eq!(auth.method, method, "{}: method", a.key);
}

#[track_caller]
pub fn logged_in(a: &Account, outcome: LoginOutcome, method: AuthMethod) -> Authenticated {
    match outcome {
        LoginOutcome::Authenticated(auth) => {
            assert_auth(a, &auth, method);
            auth
        }
        other => panic!("{}: expected Authenticated({method:?}), got {other:?}", a.key),
    }
}

#[track_caller]
pub fn passed(a: &Account, outcome: SecondFactorOutcome, method: AuthMethod) -> Authenticated {
    match outcome {
        SecondFactorOutcome::Authenticated(auth) => {
            assert_auth(a, &auth, method);
            auth
        }
        other => panic!("{}: expected Authenticated({method:?}), got {other:?}", a.key),
    }
}

#[track_caller]
pub fn denied(a: &Account, outcome: LoginOutcome, what: &str) {
    assert!(matches!(outcome, LoginOutcome::Denied), "{}: {what}: expected Denied, got {outcome:?}", a.key);
}

#[track_caller]
pub fn wrong_code(a: &Account, outcome: SecondFactorOutcome, attempts_left: u32, what: &str) {
    match outcome {
        SecondFactorOutcome::Denied { attempts_left: left } => {
            assert_eq!(left, attempts_left, "{}: {what}: attempts left", a.key)
        }
        other => panic!("{}: {what}: expected Denied, got {other:?}", a.key),
    }
}

/// Every library account against the manifest, through the engine. The stored
/// documents are checked first (`records::check_account`), because logins change them.
pub async fn check_logins<S: UserStore + Clone + 'static>(lib: &Library<S>) {
    for a in &lib.m.accounts {
        check_view(lib, a).await;
    }
    for a in &lib.m.accounts {
        let started = std::time::Instant::now();
        match a.key.as_str() {
            "alice" => alice(lib, a).await,
            "carol" => carol(lib, a).await,
            "erin" => erin(lib, a).await,
            "grace" => grace(lib, a).await,
            "heidi" => heidi(lib, a).await,
            "zoe_nfd" => zoe_nfd(lib, a).await,
            _ => password_only(lib, a).await,
        }
        eprintln!("  {}: {:?}", a.key, started.elapsed());
    }
}

/// What an administration page shows for the account.
async fn check_view<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    lib.at(lib.now());
    let v = lib.view(a).await;
    let s = &a.stored;
    assert_eq!(v.id, UserId::from(a.id), "{}", a.key);
    assert_eq!(v.username, s.username, "{}", a.key);
    assert_eq!(v.email, s.email, "{}", a.key);
    assert_eq!(v.role.as_str(), s.role, "{}", a.key);
    assert_eq!(v.two_factor.as_str(), s.two_factor.state, "{}: two_factor", a.key);
    assert_eq!(v.backup_codes, s.backup_code_hashes.len(), "{}: backup codes", a.key);
    assert_eq!(v.remembered_locations, s.locations.len(), "{}: remembered locations", a.key);
    assert_eq!(v.locked, s.throttle.second_factor_locked, "{}: locked", a.key);
}

/// bob, dave, frank, zoë (NFC) and zoé (typed decomposed): the password, and only it.
async fn password_only<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    lib.at(lib.now());
    assert_eq!(a.stored.two_factor.state, "disabled", "{}", a.key);
    denied(a, lib.login(a, "not the password at all", None).await, "wrong password");
    logged_in(a, lib.login(a, &a.password, None).await, AuthMethod::Password);
}

/// alice: TOTP (the step 0.1.0 used last stays used), her backup code once and
/// replaced, the void one refused, both remembered locations, for her only.
async fn alice<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    let (secret, params) =
        totp_of(a.two_factor.secret_base32.as_deref().expect("secret"), a.two_factor.params.as_ref().expect("params"));
    let period = u64::from(params.period);
    let last = a.stored.two_factor.last_used_step.expect("last_used_step");

    // Just after the step 0.1.0 accepted last: its code (still inside the window) is a
    // replay; the next step's code is fresh.
    lib.at((last + 1) * period);
    let p = lib.pending(a).await;
    wrong_code(
        a,
        lib.finish(a, &p, SecondFactor::Totp(&code_at(&secret, &params, last * period))).await,
        4,
        "replay of 0.1.0's last step",
    );
    passed(
        a,
        lib.finish(a, &p, SecondFactor::Totp(&code_at(&secret, &params, (last + 1) * period))).await,
        AuthMethod::PasswordAndTotp,
    );

    let now = lib.now();
    lib.at(now);
    denied(a, lib.login(a, "not alice's password", None).await, "wrong password");
    let code = code_at(&secret, &params, now);
    let p = lib.pending(a).await;
    passed(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, AuthMethod::PasswordAndTotp);
    let p = lib.pending(a).await;
    wrong_code(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, 4, "the same code again");

    // Backup codes: the void one is refused, the valid one works once and is replaced.
    assert_eq!(a.backup_codes.len(), 1);
    let valid = &a.backup_codes[0].code;
    let p = lib.pending(a).await;
    for void in &a.void_backup_codes {
        wrong_code(a, lib.finish(a, &p, SecondFactor::BackupCode(&void.code)).await, 4, "void backup code");
    }
    let auth = passed(a, lib.finish(a, &p, SecondFactor::BackupCode(valid)).await, AuthMethod::PasswordAndBackupCode);
    let delivered = lib.deliver(a, auth.backup_code_delivery.as_ref()).await;
    assert_eq!(delivered, Delivery::Sent, "alice: the replacement was mailed");
    let replacement = lib.mailer.last_code_for(&a.email).expect("a replacement code mailed to alice");
    assert_ne!(&replacement, valid);
    let doc = lib.doc(a).await;
    let codes = list(&doc, "/second_factor/backup_codes");
    assert_eq!(codes.len(), 1, "alice: still one backup code");
    assert_ne!(text(&codes[0], "/hash"), a.stored.backup_code_hashes[0].phc, "alice: the used code is gone");
    assert_eq!(num(&codes[0], "/issued_at"), now);
    let p = lib.pending(a).await;
    wrong_code(a, lib.finish(a, &p, SecondFactor::BackupCode(valid)).await, 4, "the used backup code again");
    passed(a, lib.finish(a, &p, SecondFactor::BackupCode(&replacement)).await, AuthMethod::PasswordAndBackupCode);

    // Both remembered locations (0.1.0's loc1. tokens) skip the code, listed as stored.
    let listed = lib.engine("fast").remembered_locations(UserId::from(a.id)).await.expect("locations");
    let ids: Vec<_> = listed.iter().map(|l| (l.id.as_str(), l.label.as_str(), l.expires_at.0)).collect();
    let want: Vec<_> = a.locations.iter().map(|l| (l.id.as_str(), l.label.as_str(), l.expires_at)).collect();
    assert_eq!(ids, want, "alice: remembered locations listed as stored");
    for loc in &a.locations {
        assert!(loc.token.starts_with("loc1."), "a 0.1.0 token");
        logged_in(a, lib.login(a, &a.password, Some(&loc.token)).await, AuthMethod::PasswordAndLocation);
        // With a wrong password the token opens nothing.
        denied(a, lib.login(a, "not alice's password", Some(&loc.token)).await, "wrong password with a location");
    }
    // Not for another account with 2FA.
    for other in ["grace", "heidi"] {
        let o = lib.m.account(other);
        match lib.login(o, &o.password, Some(&a.locations[0].token)).await {
            LoginOutcome::SecondFactorRequired(_) => {}
            x => panic!("{other} with alice's location token: expected SecondFactorRequired, got {x:?}"),
        }
    }
}

/// carol: enrolling again after dave's reset: her password logs in, the reset record
/// is kept, the recorded new secret confirms (the old one does not).
async fn carol<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    let now = lib.now();
    lib.at(now);
    let id = UserId::from(a.id);
    let doc = lib.doc(a).await;
    let reset = a.last_reset.as_ref().expect("carol's reset");
    let dave = lib.m.account("dave");
    assert_eq!(reset.by_username, "dave");
    assert_eq!(reset.by, dave.id);
    assert_eq!(reset.identity_check, "video call, photo ID");
    assert_eq!(text(&doc, "/last_reset/by_login"), "dave");
    assert_eq!(text(&doc, "/last_reset/by"), dave.id_text);
    assert_eq!(text(&doc, "/last_reset/identity_check"), "video call, photo ID");
    assert_eq!(text(&doc, "/second_factor/state"), "enrolling");

    denied(a, lib.login(a, "not carol's password", None).await, "wrong password");
    logged_in(a, lib.login(a, &a.password, None).await, AuthMethod::Password);

    let engine = lib.engine(&a.policy);
    for void in &a.two_factor.void_secrets {
        let (old, params) = totp_of(&void.secret_base32, a.two_factor.params.as_ref().expect("params"));
        let outcome = engine.confirm_enrollment(id, &code_at(&old, &params, now)).await.expect("confirm");
        assert!(matches!(outcome, ConfirmOutcome::WrongCode), "carol: the secret the reset removed: {outcome:?}");
    }
    let (secret, params) =
        totp_of(a.two_factor.secret_base32.as_deref().expect("secret"), a.two_factor.params.as_ref().expect("params"));
    match engine.confirm_enrollment(id, &code_at(&secret, &params, now)).await.expect("confirm") {
        ConfirmOutcome::Confirmed { backup_code_delivery } => {
            assert_eq!(lib.deliver(a, Some(&backup_code_delivery)).await, Delivery::Sent, "carol: the setup code");
            assert!(lib.mailer.last_code_for(&a.email).is_some(), "carol: a backup code mailed to her");
        }
        other => panic!("carol: the recorded enrolling secret confirms: {other:?}"),
    }
    assert_eq!(lib.view(a).await.two_factor, twofactor::TwoFactorState::Enabled);
}

/// erin: her second factor is locked (100 wrong codes under 0.1.0) and she is
/// throttled past the fixture time. The engine refuses a locked account at the
/// password step (no pending login, so no code is ever asked for): `Denied`, right
/// password or not, and still after the throttle has run out. An administrator's
/// reset lifts it.
async fn erin<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    let now = lib.now();
    lib.at(now);
    let id = UserId::from(a.id);
    let until = a.throttle.until.expect("erin is throttled");
    assert!(until > now && a.throttle.second_factor_locked);
    let doc = lib.doc(a).await;
    assert_eq!(opt_num(&doc, "/throttle/until"), Some(until), "erin: throttle until kept");
    assert_eq!(num(&doc, "/throttle/failures"), 100, "erin: failure count kept");
    assert!(lib.view(a).await.locked);

    denied(a, lib.login(a, &a.password, None).await, "right password, locked and throttled");
    denied(a, lib.login(a, "not erin's password", None).await, "wrong password, locked and throttled");
    let engine = lib.engine(&a.policy);
    let second = engine.begin_second_factor(id, None).await.expect("begin_second_factor");
    assert!(matches!(second, LoginOutcome::Denied), "erin: second factor only: {second:?}");
    // Refused unevaluated: nothing counted, the stored throttle is as it was.
    let after = lib.doc(a).await;
    assert_eq!(num(&after, "/throttle/failures"), 100);
    assert_eq!(opt_num(&after, "/throttle/until"), Some(until));

    lib.at(until + 1);
    denied(a, lib.login(a, &a.password, None).await, "right password after the throttle: still locked");

    let bob = lib.m.account("bob");
    let reset = engine.reset(UserId::from(bob.id), id, "video call, photo ID").await.expect("reset");
    assert!(matches!(reset, ResetOutcome::Reset { .. }), "bob (admin) resets erin: {reset:?}");
    assert!(!lib.view(a).await.locked);
    logged_in(a, lib.login(a, &a.password, None).await, AuthMethod::Password);
}

/// grace: SHA-256, 8 digits, 60 s; three 7-day backup codes, each works once and is
/// replaced by another 7-day code; the used one stays void.
async fn grace<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    let now = lib.now();
    lib.at(now);
    let (secret, params) =
        totp_of(a.two_factor.secret_base32.as_deref().expect("secret"), a.two_factor.params.as_ref().expect("params"));
    assert_eq!((params.algorithm, params.digits, params.period), (twofactor::totp::Algorithm::Sha256, 8, 60));
    let code = code_at(&secret, &params, now);
    assert_eq!(code.len(), 8);
    denied(a, lib.login(a, "not grace's password", None).await, "wrong password");
    let p = lib.pending(a).await;
    passed(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, AuthMethod::PasswordAndTotp);
    let p = lib.pending(a).await;
    wrong_code(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, 4, "the same code again");

    assert_eq!(a.backup_codes.len(), 3);
    assert!(a.backup_codes.iter().all(|c| c.valid_at_fixture_now && c.expires_at.is_some_and(|e| e > now)));
    let p = lib.pending(a).await;
    for void in &a.void_backup_codes {
        wrong_code(a, lib.finish(a, &p, SecondFactor::BackupCode(&void.code)).await, 4, "void backup code");
    }
    let mut codes: Vec<String> = a.backup_codes.iter().map(|c| c.code.clone()).collect();
    let mut p = p;
    for i in 0..codes.len() {
        let auth =
            passed(a, lib.finish(a, &p, SecondFactor::BackupCode(&codes[i])).await, AuthMethod::PasswordAndBackupCode);
        assert_eq!(lib.deliver(a, auth.backup_code_delivery.as_ref()).await, Delivery::Sent);
        let replacement = lib.mailer.last_code_for(&a.email).expect("a replacement");
        assert!(!codes.contains(&replacement));
        assert_eq!(lib.view(a).await.backup_codes, 3, "grace: still three codes");
        p = lib.pending(a).await;
        wrong_code(a, lib.finish(a, &p, SecondFactor::BackupCode(&codes[i])).await, 4, "a used backup code again");
        codes.push(replacement);
    }
    let doc = lib.doc(a).await;
    let stored = list(&doc, "/second_factor/backup_codes");
    assert_eq!(stored.len(), 3);
    for c in stored {
        assert!(a.stored.backup_code_hashes.iter().all(|old| old.phc != text(c, "/hash")), "grace: all old codes used");
        assert_eq!(num(c, "/issued_at"), now);
        assert_eq!(opt_num(c, "/expires_at"), Some(now + 7 * 86_400), "grace: replacements live 7 days");
    }
    passed(
        a,
        lib.finish(a, &p, SecondFactor::BackupCode(codes.last().expect("a code"))).await,
        AuthMethod::PasswordAndBackupCode,
    );
}

/// heidi: TOTP works; her only backup code expired a day after it was issued and is
/// refused at the fixture time, though it still opens before its expiry (its hash came
/// across intact).
async fn heidi<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    let now = lib.now();
    lib.at(now);
    let (secret, params) =
        totp_of(a.two_factor.secret_base32.as_deref().expect("secret"), a.two_factor.params.as_ref().expect("params"));
    let code = code_at(&secret, &params, now);
    denied(a, lib.login(a, "not heidi's password", None).await, "wrong password");
    let p = lib.pending(a).await;
    passed(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, AuthMethod::PasswordAndTotp);
    let p = lib.pending(a).await;
    wrong_code(a, lib.finish(a, &p, SecondFactor::Totp(&code)).await, 4, "the same code again");

    assert!(a.backup_codes.is_empty(), "heidi holds no valid code at the fixture time");
    let expired = a.void_backup_codes.iter().find(|c| c.expires_at.is_some()).expect("heidi's expired code");
    let expires_at = expired.expires_at.expect("expiry");
    assert!(expires_at < now);
    let p = lib.pending(a).await;
    wrong_code(a, lib.finish(a, &p, SecondFactor::BackupCode(&expired.code)).await, 4, "expired backup code");
    assert_eq!(lib.view(a).await.backup_codes, 1, "the expired code is kept (only refused)");

    lib.at(expires_at - 60);
    let p = lib.pending(a).await;
    let auth =
        passed(a, lib.finish(a, &p, SecondFactor::BackupCode(&expired.code)).await, AuthMethod::PasswordAndBackupCode);
    assert_eq!(lib.deliver(a, auth.backup_code_delivery.as_ref()).await, Delivery::Sent);
    let doc = lib.doc(a).await;
    let codes = list(&doc, "/second_factor/backup_codes");
    assert_eq!(codes.len(), 1);
    assert_eq!(opt_num(&codes[0], "/expires_at"), Some(expires_at - 60 + 86_400), "a 1-day replacement");
}

/// zoë typed decomposed (NFD): her record is reachable by id, and works (this account
/// has no 2FA, so the second-factor-only step logs her straight in). Her password login
/// by the name she typed is `zoe_nfd_logs_in_with_the_name_as_she_typed_it`.
async fn zoe_nfd<S: UserStore + Clone + 'static>(lib: &Library<S>, a: &Account) {
    lib.at(lib.now());
    assert_eq!(a.username, "zoe\u{308}");
    let id = UserId::from(a.id);
    let engine = lib.engine(&a.policy);
    let outcome = engine.begin_second_factor(id, None).await.expect("begin_second_factor");
    logged_in(a, outcome, AuthMethod::Password);
}
