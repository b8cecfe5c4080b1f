//! The world the token targets fuzz: an engine on in-memory parts with one account
//! that has active 2FA, a remembered location and an open pending login. Tokens are
//! fuzzed through the public engine calls that parse them, so the crate exposes no
//! extra surface for fuzzing. Below it, the fixed-key engine the document and import
//! targets share (one per process; each input gets a fresh user, removed after).
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use twofactor::mail::MemoryMailer;
use twofactor::store::MemoryStore;
use twofactor::totp::{TotpParams, generate};
use twofactor::{
    Engine, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, SecondFactor, SecondFactorOutcome, Timestamp,
};

pub const USER: &str = "fuzzed";
pub const PASSWORD: &str = "correct horse battery staple";

/// Everything in memory completes without waiting, so a no-op waker suffices.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

pub struct World {
    pub engine: Engine<MemoryStore, MemoryMailer, ManualClock>,
    /// An open pending login's token.
    pub pending: String,
    /// A remembered location's token.
    pub location: String,
    /// The same location's token in 0.1.0's `loc1.` layout (account id first).
    pub legacy_location: String,
    /// A code that is wrong at the world's (frozen) time.
    pub wrong_code: String,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| block_on(setup()))
}

fn pending(engine: &Engine<MemoryStore, MemoryMailer, ManualClock>) -> String {
    match block_on(engine.begin_login(USER, PASSWORD, None)) {
        Ok(LoginOutcome::SecondFactorRequired(p)) => p.token().to_owned(),
        other => panic!("setup: {other:?}"),
    }
}

async fn setup() -> World {
    let clock = ManualClock::new(Timestamp(1_800_000_000));
    let policy = Policy::builder().danger_fast_hashing().build().expect("policy");
    let keys = KeyRing::ephemeral().expect("keys");
    let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), keys)
        .clock(clock.clone())
        .policy(policy)
        .build()
        .expect("engine");
    let id = engine
        .create_account(NewAccount::new(USER, "fuzzed@example.test", Role::User, PASSWORD))
        .await
        .expect("create");
    let started = engine.start_enrollment(id).await.expect("enroll");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let code = |at: u64| generate(&secret, &TotpParams::default(), at).expose().to_owned();
    let now = 1_800_000_000;
    engine.confirm_enrollment(id, &code(now)).await.expect("confirm");
    clock.advance(Duration::from_secs(30));
    let first = pending(&engine);
    let location = match engine.finish_login(&first, SecondFactor::Totp(&code(now + 30)), Some("fuzz")).await {
        Ok(SecondFactorOutcome::Authenticated(auth)) => auth.remembered.expect("remembered").token().to_owned(),
        other => panic!("setup: {other:?}"),
    };
    let valid: Vec<String> = (0..4).map(|i| code(now + 30 * i)).collect();
    let wrong_code = (0..).map(|n: u32| format!("{n:06}")).find(|c| !valid.contains(c)).expect("a wrong code");
    let legacy_location = {
        let body = location.strip_prefix("loc2.").expect("loc2 token");
        let number = id.as_u64().expect("create_account makes numeric ids");
        let mut bytes = number.to_be_bytes().to_vec();
        bytes.extend(data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).expect("token body"));
        format!("loc1.{}", data_encoding::BASE64URL_NOPAD.encode(&bytes))
    };
    World { pending: pending(&engine), engine, location, legacy_location, wrong_code }
}

/// `data` written over a token's decoded bytes from `offset` on (keeping what comes
/// before, e.g. a location id, so the deeper checks run).
pub fn splice(token: &str, prefix: &str, offset: usize, data: &[u8]) -> String {
    let body = token.strip_prefix(prefix).expect("token prefix");
    let mut bytes = data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).expect("token body");
    for (b, d) in bytes.iter_mut().skip(offset).zip(data) {
        *b = *d;
    }
    format!("{prefix}{}", data_encoding::BASE64URL_NOPAD.encode(&bytes))
}

/// The engines of the document and import targets (and of the seed generator,
/// `examples/document_seeds.rs`) run at this time and seal under this fixed key, so
/// the committed seed documents' sealed secrets and codes open in the fuzzer.
pub const NOW: u64 = 1_800_000_000;
pub const FIXED_KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// The user whose document the document target fuzzes (the seeds are sealed for it).
pub const DOC_USER: u64 = 1001;
pub const DOC_LOGIN: &str = "doc-user";
pub const DOC_EMAIL: &str = "doc-user@example.test";

pub type MemoryEngine = Engine<MemoryStore, MemoryMailer, ManualClock>;

/// An engine on a fresh memory store and mailer, cheap hashing, the fixed key and
/// `clock`.
pub fn fixed_engine(clock: ManualClock) -> MemoryEngine {
    fixed_engine_with(clock, Policy::builder().danger_fast_hashing().build().expect("policy"))
}

/// [`fixed_engine`] under `policy`.
pub fn fixed_engine_with(clock: ManualClock, policy: Policy) -> MemoryEngine {
    let key = twofactor::AppKey::from_hex(1, FIXED_KEY_HEX).expect("key");
    let keys = KeyRing::new(vec![key]).expect("ring");
    Engine::builder(MemoryStore::new(), MemoryMailer::new(), keys).clock(clock).policy(policy).build().expect("engine")
}

/// An engine and its clock, built once per fuzzing process.
pub struct Fixed {
    pub engine: MemoryEngine,
    pub clock: ManualClock,
}

pub fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let clock = ManualClock::new(Timestamp(NOW));
        Fixed { engine: fixed_engine(clock.clone()), clock }
    })
}

/// Removes user `id` (and its document) from `engine`'s store, whatever its version.
pub fn remove_user(engine: &MemoryEngine, id: twofactor::UserId) {
    use twofactor::store::{Swap, UserStore};
    let store = engine.store();
    while let Some(user) = block_on(store.find_by_id(id)).expect("find") {
        let version = user.credentials.as_ref().map_or(0, |c| c.version);
        if let Swap::Swapped { .. } = block_on(store.forget(id, version)).expect("forget") {
            return;
        }
    }
}
