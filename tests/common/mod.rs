//! Shared test fixtures.
//! An engine on in-memory parts with a manual clock and a fast hashing policy (hash cost is not what these tests are about).
#![allow(dead_code)]

use twofactor::{
    AccountId, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, MemoryMailer, MemorySink, MemoryStore,
    NewAccount, Policy, PolicyBuilder, Role, SecondFactor, SecondFactorOutcome, Timestamp, TotpParams,
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

pub fn email(name: &str) -> String {
    format!("{}@example.test", name.replace([' ', ':'], "_"))
}

impl Fixture {
    pub async fn user(&self, name: &str, role: Role) -> AccountId {
        let email = email(name);
        self.engine.create_account(NewAccount::new(name, &email, role, PASSWORD)).await.expect("create")
    }

    /// Creates a user with confirmed 2FA; returns (id, base32 secret).
    pub async fn enrolled(&self, name: &str) -> (AccountId, Vec<u8>) {
        let id = self.user(name, Role::User).await;
        let started = self.engine.start_enrollment(id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("b32");
        let code = self.code(&secret);
        let outcome = self.engine.confirm_enrollment(id, &code).await.expect("confirm");
        assert!(matches!(outcome, ConfirmOutcome::Confirmed { .. }), "{outcome:?}");
        // Move past the confirming step so the next code is fresh.
        self.clock.advance(std::time::Duration::from_secs(30));
        (id, secret)
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

    pub fn backup_code(&self, name: &str) -> String {
        self.mailer.last_code_for(&email(name)).expect("a mailed backup code")
    }
}

pub fn is_authenticated(o: &SecondFactorOutcome) -> bool {
    matches!(o, SecondFactorOutcome::Authenticated(_))
}

pub mod hashwork;

/// The stored record and its version.
pub async fn stored(f: &Fixture, id: AccountId) -> twofactor::Versioned<twofactor::Account> {
    twofactor::UserStore::find_by_id(&f.store, id).await.expect("store").expect("account")
}

/// Replaces a stored record behind the engine's back (to set up a state or simulate
/// tampering), asserting that the write took.
pub async fn overwrite(f: &Fixture, id: AccountId, change: impl FnOnce(&mut twofactor::Account)) {
    let mut rec = stored(f, id).await;
    change(&mut rec.record);
    let swap = twofactor::UserStore::compare_and_swap(&f.store, rec.version, &rec.record).await.expect("store");
    assert!(matches!(swap, twofactor::Swap::Swapped { .. }), "the overwrite lost a race: {swap:?}");
}
