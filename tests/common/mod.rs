//! Shared test fixtures.
//! An engine on in-memory parts with a manual clock and a fast hashing policy (hash cost is not what these tests are about).
#![allow(dead_code)]

use twofactor::events::MemorySink;
use twofactor::mail::{Mailer, MemoryMailer};
use twofactor::store::{MemoryStore, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, DeliveryReport, Engine, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy,
    PolicyBuilder, Role, SecondFactor, SecondFactorOutcome, Timestamp, UserId,
};

pub const PASSWORD: &str = "correct horse battery staple";
pub const T0: u64 = 1_800_000_000;

pub type TestEngine = Engine<MemoryStore, MemoryMailer, ManualClock>;

pub struct Fixture {
    pub engine: TestEngine,
    pub store: MemoryStore,
    pub mailer: MemoryMailer,
    pub clock: ManualClock,
    pub events: MemorySink,
}

pub fn fast_policy() -> PolicyBuilder {
    Policy::builder().issuer("Acme").danger_fast_hashing()
}

pub fn fixture() -> Fixture {
    fixture_with(fast_policy().build().expect("policy"))
}

pub fn fixture_with(policy: Policy) -> Fixture {
    let store = MemoryStore::new();
    let mailer = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(T0));
    let events = MemorySink::new();
    let engine = Engine::builder(store.clone(), mailer.clone(), KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(policy)
        .events(events.clone())
        .build()
        .expect("engine");
    Fixture { engine, store, mailer, clock, events }
}

/// Runs delivery rounds ([`Engine::deliver_due`]) until one finds nothing due, and
/// returns what they did together. The engine's operations only queue mail; a test that
/// reads the mailbox after one delivers first. A message that fails waits for its retry
/// (backoff), which a clock that does not move never reaches, so this ends.
pub async fn delivered<S: UserStore, M: Mailer, C: Clock>(engine: &Engine<S, M, C>) -> DeliveryReport {
    let mut all = DeliveryReport::default();
    for _ in 0..100 {
        let round = engine.deliver_due(1000).await.expect("a delivery round");
        let done = round.messages.is_empty();
        all.absorb(round);
        if done {
            return all;
        }
    }
    panic!("mail was still due after 100 delivery rounds");
}

pub fn email(name: &str) -> String {
    format!("{}@example.test", name.replace([' ', ':'], "_"))
}

impl Fixture {
    /// Delivers the queued mail that is due ([`delivered`]).
    pub async fn deliver(&self) -> DeliveryReport {
        delivered(&self.engine).await
    }

    pub async fn user(&self, name: &str, role: Role) -> UserId {
        let email = email(name);
        self.engine.create_account(NewAccount::new(name, &email, role, PASSWORD)).await.expect("create")
    }

    /// Creates a user with confirmed 2FA; returns (id, secret).
    pub async fn enrolled(&self, name: &str) -> (UserId, Vec<u8>) {
        self.enrolled_as(name, Role::User).await
    }

    /// Creates a user with `role` and confirmed 2FA; returns (id, secret).
    pub async fn enrolled_as(&self, name: &str, role: Role) -> (UserId, Vec<u8>) {
        let id = self.user(name, role).await;
        (id, self.enroll(id).await)
    }

    /// Starts and confirms 2FA for an existing user, and delivers the setup code mail;
    /// returns the secret.
    pub async fn enroll(&self, id: UserId) -> Vec<u8> {
        let started = self.engine.start_enrollment(id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("b32");
        let code = self.code(&secret);
        let outcome = self.engine.confirm_enrollment(id, &code).await.expect("confirm");
        let ConfirmOutcome::Confirmed { backup_code_delivery, .. } = outcome else { panic!("{outcome:?}") };
        let mail = backup_code_delivery.queued().expect("the setup code is queued");
        let report = self.deliver().await;
        assert!(
            report.delivery_of(mail).is_some_and(twofactor::mail::Delivery::is_sent),
            "the setup code mail: {report:?}"
        );
        // Move past the confirming step so the next code is fresh.
        self.clock.advance(std::time::Duration::from_secs(30));
        secret
    }

    pub fn code(&self, secret: &[u8]) -> String {
        twofactor::totp::generate(secret, &TotpParams::default(), twofactor::Clock::now(&self.clock).0)
            .expose()
            .to_owned()
    }

    pub async fn pending(&self, name: &str) -> String {
        match self.engine.begin_login(name, PASSWORD, None).await.expect("login") {
            LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
            other => panic!("expected a second factor, got {other:?}"),
        }
    }

    pub async fn totp_login(&self, name: &str, secret: &[u8]) -> SecondFactorOutcome {
        let pending = self.pending(name).await;
        let code = self.code(secret);
        self.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.expect("finish")
    }

    /// The last backup code delivered to `name` (deliver first: operations only queue it).
    pub fn backup_code(&self, name: &str) -> String {
        self.mailer.last_code_for(&email(name)).expect("a mailed backup code")
    }
}

pub fn is_authenticated(o: &SecondFactorOutcome) -> bool {
    matches!(o, SecondFactorOutcome::Authenticated(_))
}

pub mod hashwork;

/// The stored credential document (parsed JSON; its format is described in
/// `src/document/wire.rs`) and its version.
pub async fn stored(f: &Fixture, id: UserId) -> (u64, serde_json::Value) {
    let user = twofactor::store::UserStore::find_by_id(&f.store, id).await.expect("store").expect("account");
    let stored = user.credentials.expect("a credential document");
    (stored.version, serde_json::from_str(stored.document.as_json()).expect("the document is JSON"))
}

/// Replaces a stored document behind the engine's back (to set up a state or simulate
/// tampering), asserting that the write took.
pub async fn overwrite(f: &Fixture, id: UserId, change: impl FnOnce(&mut serde_json::Value)) {
    let (version, mut doc) = stored(f, id).await;
    change(&mut doc);
    let doc = twofactor::store::Document::from_json(doc.to_string());
    let swap = twofactor::store::UserStore::compare_and_swap(&f.store, id, version, &doc).await.expect("store");
    assert!(matches!(swap, twofactor::store::Swap::Swapped { .. }), "the overwrite lost a race: {swap:?}");
}

/// A number in the stored document at `pointer` (JSON pointer, e.g.
/// `/throttle/failures`); 0 when absent (the document leaves out zeros).
pub async fn stored_number(f: &Fixture, id: UserId, pointer: &str) -> u64 {
    stored(f, id).await.1.pointer(pointer).map_or(0, |v| v.as_u64().expect("a number"))
}

/// A string in the stored document at `pointer` (JSON pointer, e.g. `/password`);
/// `None` when absent.
pub async fn stored_str(f: &Fixture, id: UserId, pointer: &str) -> Option<String> {
    stored(f, id).await.1.pointer(pointer).map(|v| v.as_str().expect("a string").to_owned())
}

/// The user as the store holds it (identity and, if any, the credential document).
pub async fn user_record(f: &Fixture, id: UserId) -> twofactor::store::UserRecord {
    twofactor::store::UserStore::find_by_id(&f.store, id).await.expect("store").expect("user")
}

/// Stores a user under `login` exactly as given, as 0.1.0 could have (it neither
/// normalized names nor refused invisible characters), with id `id` and a copy of the
/// credential document of `template` (so the same password).
pub async fn insert_raw_user(f: &Fixture, template: UserId, login: &str, id: UserId) {
    let template = user_record(f, template).await;
    let doc = template.credentials.expect("a credential document").document;
    let user = twofactor::store::UserRecord::new(id, login, template.email, template.role).with_document(1, doc);
    twofactor::store::UserStore::create_user(&f.store, &user).await.expect("created");
}

/// The parsed credential document of a user as a store returned it.
pub fn document_of(user: &twofactor::store::UserRecord) -> serde_json::Value {
    let stored = user.credentials.as_ref().expect("a credential document");
    serde_json::from_str(stored.document.as_json()).expect("the document is JSON")
}

/// The hashes of the stored backup codes; the second factor must be enabled.
pub fn backup_hashes(doc: &serde_json::Value) -> Vec<String> {
    assert_eq!(doc.pointer("/second_factor/state").and_then(|s| s.as_str()), Some("enabled"), "{doc}");
    doc.pointer("/second_factor/backup_codes")
        .and_then(|c| c.as_array())
        .map(|codes| codes.iter().map(|c| c["hash"].as_str().expect("a hash").to_owned()).collect())
        .unwrap_or_default()
}

/// Whether a list in the document is empty (the document leaves empty lists out).
pub fn no_entries(doc: &serde_json::Value, pointer: &str) -> bool {
    doc.pointer(pointer).is_none_or(|v| v.as_array().expect("a list").is_empty())
}

/// The stored failure budget (`/throttle` in the document; absent fields are zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    pub failures: u32,
    pub until: Option<Timestamp>,
    pub second_factor_failures: u32,
    pub second_factor_locked: bool,
}

/// The stored failure budget of `id`.
pub async fn throttle_of(f: &Fixture, id: UserId) -> Throttle {
    let (_, doc) = stored(f, id).await;
    let number = |field: &str| doc.pointer(&format!("/throttle/{field}")).map(|v| v.as_u64().expect("a number"));
    Throttle {
        failures: u32::try_from(number("failures").unwrap_or(0)).expect("a count"),
        until: number("until").map(Timestamp),
        second_factor_failures: u32::try_from(number("second_factor_failures").unwrap_or(0)).expect("a count"),
        second_factor_locked: doc.pointer("/throttle/locked").is_some_and(|v| v.as_bool().expect("a bool")),
    }
}
