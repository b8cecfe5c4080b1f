//! The world the token targets fuzz: an engine on in-memory parts with one account
//! that has active 2FA, a remembered location and an open pending login. Tokens are
//! fuzzed through the public engine calls that parse them, so the crate exposes no
//! extra surface for fuzzing.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use twofactor::totp::{TotpParams, generate};
use twofactor::{
    Engine, KeyRing, LoginOutcome, ManualClock, MemoryMailer, MemoryStore, NewAccount, Policy, Role, SecondFactor,
    SecondFactorOutcome, Timestamp,
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
        let mut bytes = id.0.to_be_bytes().to_vec();
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
