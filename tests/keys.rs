//! Key operations on every store (`MemoryStore`, SQLite on a file, PostgreSQL), one
//! generic body each: `key_usage` counts the documents per key; `reseal` moves every
//! secret under a new key while users log in, after which `retire_key` drops the old
//! one; a key missing from the ring is named and changes nothing; an interrupted
//! `reseal` resumes from its cursor. And the text form of keys and rings: 0.1.0's key
//! file opens 0.1.0's database, files and variables load, and no error shows a key.

mod store_support;
mod v010_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store_support::temp_db;
use twofactor::mail::MemoryMailer;
use twofactor::store::{MemoryStore, ScanPage, SqliteStore, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    AddAuthenticatorOutcome, AppKey, ConfirmOutcome, Engine, Error, KeyError, KeyRing, LoginOutcome, ManualClock,
    NewAccount, Policy, Refusal, ResealProgress, Role, SecondFactor, SecondFactorOutcome, StoreError, Timestamp,
    UserId,
};

const PASSWORD: &str = "correct horse battery staple";
const T0: u64 = 1_800_000_000;
const PERIOD: Duration = Duration::from_secs(30);

type Eng<S> = Engine<S, MemoryMailer, ManualClock>;

/// One store with the clock and outbox every engine over it shares, as app servers
/// share a database.
struct Site<S> {
    store: S,
    clock: ManualClock,
    mailer: MemoryMailer,
}

impl<S: UserStore + Clone + 'static> Site<S> {
    fn new(store: S) -> Site<S> {
        Site { store, clock: ManualClock::new(Timestamp(T0)), mailer: MemoryMailer::new() }
    }

    /// An engine over the site's store with `keys` (fast hashing: hash cost is not what
    /// these tests are about).
    fn engine(&self, keys: &KeyRing) -> Eng<S> {
        Engine::builder(self.store.clone(), self.mailer.clone(), keys.clone())
            .clock(self.clock.clone())
            .policy(Policy::builder().issuer("Acme").danger_fast_hashing().build().expect("policy"))
            .build()
            .expect("engine")
    }

    fn now(&self) -> u64 {
        twofactor::Clock::now(&self.clock).0
    }

    /// Moves to the next TOTP step, so every user's next code is fresh.
    fn next_step(&self) {
        self.clock.advance(PERIOD);
    }

    /// The stored version and document text of `id`, byte for byte.
    async fn raw(&self, id: UserId) -> (u64, String) {
        let user = self.store.find_by_id(id).await.expect("store").expect("the user");
        let stored = user.credentials.expect("a document");
        (stored.version, stored.document.as_json().to_owned())
    }
}

/// A user of these tests.
#[derive(Clone)]
struct User {
    id: UserId,
    name: String,
    secret: Option<[u8; 20]>,
}

/// A TOTP secret of the user numbered `n` (known, so no QR code is needed).
fn secret_of(n: usize) -> [u8; 20] {
    let mut secret = [0x5a; 20];
    secret[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    secret
}

fn code(secret: &[u8], t: u64) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), t).expose().to_owned()
}

/// A user's second factor, as `add_user` leaves it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tf {
    /// No 2FA: a document without a secret.
    Off,
    /// A known secret imported, not confirmed: sealed, but not yet asked at login.
    Enrolling,
    /// Imported and confirmed in the current step (which is then used).
    Enabled,
}

/// Creates `user{n}` with the password, and its second factor as `tf` says.
async fn add_user<S: UserStore + Clone + 'static>(site: &Site<S>, engine: &Eng<S>, n: usize, tf: Tf) -> User {
    let name = format!("user{n}");
    let id = engine
        .create_account(NewAccount::new(&name, &format!("{name}@example.test"), Role::User, PASSWORD))
        .await
        .expect("create");
    let secret = match tf {
        Tf::Off => None,
        Tf::Enrolling | Tf::Enabled => {
            let secret = secret_of(n);
            let b32 = data_encoding::BASE32_NOPAD.encode(&secret);
            engine
                .import_enrollment(id, &format!("otpauth://totp/Acme:{name}?secret={b32}&issuer=Acme"))
                .await
                .expect("import");
            if tf == Tf::Enabled {
                let confirmed = engine.confirm_enrollment(id, &code(&secret, site.now())).await.expect("confirm");
                assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{name}: {confirmed:?}");
            }
            Some(secret)
        }
    };
    User { id, name, secret }
}

/// The password step, then the TOTP step with the user's code of the current step.
async fn totp_login<S: UserStore + Clone + 'static>(
    site: &Site<S>,
    engine: &Eng<S>,
    user: &User,
) -> twofactor::Result<SecondFactorOutcome> {
    let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login(&user.name, PASSWORD, None).await? else {
        panic!("{}: expected a second factor", user.name);
    };
    let secret = user.secret.expect("a user with 2FA");
    engine.finish_login(pending.token(), SecondFactor::Totp(&code(&secret, site.now())), None).await
}

#[track_caller]
fn authenticated(user: &User, outcome: twofactor::Result<SecondFactorOutcome>) {
    match outcome {
        Ok(SecondFactorOutcome::Authenticated(auth)) => assert_eq!(auth.account, user.id, "{}", user.name),
        other => panic!("{}: expected a login, got {other:?}", user.name),
    }
}

/// A ring of one fresh key with id 1.
fn first_ring() -> KeyRing {
    KeyRing::new(vec![AppKey::generate(1).expect("key")]).expect("ring")
}

fn counts(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
    pairs.iter().copied().collect()
}

// ---------------------------------------------------------------- key usage

/// `key_usage` counts the documents per key id, whatever their state (2FA enabled or
/// enrolling), the documents without a secret, and not the users the crate has written
/// nothing for. It reads only the key ids, so any engine sees the same counts.
async fn key_usage_counts_documents_per_key<S: UserStore + Clone + 'static>(store: S) {
    let site = Site::new(store);
    let ring1 = first_ring();
    let (e1, ring2) = (site.engine(&ring1), ring1.with_new_key().expect("new key"));
    let e2 = site.engine(&ring2);
    let empty = e1.key_usage().await.expect("usage");
    assert_eq!((empty.documents, empty.by_key.len(), empty.without_secret), (0, 0, 0));

    // Under key 1: 3 enabled, 2 enrolling, 4 without 2FA; under key 2: 2 enabled and
    // 1 enrolling; 2 users without a document.
    let plan = [
        (&e1, Tf::Enabled, 3),
        (&e1, Tf::Enrolling, 2),
        (&e1, Tf::Off, 4),
        (&e2, Tf::Enabled, 2),
        (&e2, Tf::Enrolling, 1),
    ];
    let mut n = 0;
    for (engine, tf, how_many) in plan {
        for _ in 0..how_many {
            add_user(&site, engine, n, tf).await;
            n += 1;
        }
    }
    for k in 0..2_u64 {
        let bare = UserRecord::new(UserId::from(900 + k), format!("bare{k}"), "bare@example.test", Role::User);
        site.store.create_user(&bare).await.expect("a user without a document");
    }
    for engine in [&e1, &e2] {
        let usage = engine.key_usage().await.expect("usage");
        assert_eq!(usage.documents, 12);
        assert_eq!(usage.by_key, counts(&[(1, 5), (2, 3)]));
        assert_eq!(usage.without_secret, 4);
    }
}

// ---------------------------------------------------------------- re-seal while users log in

const USERS: usize = 40;
const TASKS: usize = 32;

/// The rotation of the issue: 40 users enrolled under key 1; a ring with a new key 2
/// and engines with it over the same store; key 1 cannot be retired yet. `reseal` runs
/// while 32 tasks log every user in with TOTP. Afterwards every document is under key
/// 2, key 1 retires, and an engine with the ring that is left logs every user in. An
/// engine still on the old ring (key 1 only) is refused, naming key 2.
async fn reseal_while_users_log_in<S: UserStore + Clone + 'static>(store: S) {
    let site = Site::new(store);
    let ring1 = first_ring();
    let e1 = site.engine(&ring1);
    let mut users = Vec::new();
    for n in 0..USERS {
        users.push(add_user(&site, &e1, n, Tf::Enabled).await);
    }
    site.next_step();
    assert_eq!(e1.key_usage().await.expect("usage").by_key, counts(&[(1, USERS as u64)]));

    let ring2 = ring1.with_new_key().expect("new key");
    assert_eq!(ring2.ids(), [2, 1]);
    let resealer = Arc::new(site.engine(&ring2));
    let server = Arc::new(site.engine(&ring2));

    // Before the re-seal, key 1 still seals every document; the newest key never retires.
    match resealer.retire_key(1).await {
        Err(Error::KeyInUse { key_id: 1, documents }) => assert_eq!(documents, USERS as u64),
        other => panic!("expected KeyInUse, got {other:?}"),
    }
    assert!(matches!(resealer.retire_key(2).await, Err(Error::InvalidInput(_))));
    assert!(matches!(resealer.retire_key(7).await, Err(Error::InvalidInput(_))));

    let site = Arc::new(site);
    let users = Arc::new(users);
    let start = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let logins: Vec<_> = (0..TASKS)
        .map(|t| {
            let (site, server, users, start) = (site.clone(), server.clone(), users.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut done = 0;
                for user in users.iter().skip(t).step_by(TASKS) {
                    authenticated(user, totp_login(&site, &server, user).await);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let reseal = {
        let (resealer, start) = (resealer.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            resealer.reseal(None, |_| {}).await
        })
    };
    let mut logged_in = 0;
    for login in logins {
        logged_in += login.await.expect("login task");
    }
    assert_eq!(logged_in, USERS, "every user logged in during the re-seal");
    let report = reseal.await.expect("reseal task").expect("reseal");
    eprintln!("reseal during logins: {report:?}");
    assert_eq!(report.scanned, USERS as u64);
    // A login under the new ring re-seals its user's secret too, so the re-seal finds
    // some already current.
    assert_eq!(report.resealed + report.already_current, USERS as u64, "{report:?}");
    assert_eq!(report.without_secret, 0);

    let usage = resealer.key_usage().await.expect("usage");
    assert_eq!((usage.documents, usage.without_secret), (USERS as u64, 0));
    assert_eq!(usage.by_key, counts(&[(2, USERS as u64)]));

    let retired = resealer.retire_key(1).await.expect("key 1 is no longer used");
    assert_eq!(retired.ids(), [2]);
    assert_eq!(retired.current().id(), 2);
    site.next_step();
    let after = site.engine(&retired);
    for user in users.iter() {
        authenticated(user, totp_login(&site, &after, user).await);
    }

    // A server left on the old ring cannot open the new seals, and says which key.
    site.next_step();
    let stale = totp_login(&site, &e1, &users[0]).await;
    assert!(matches!(stale, Err(Error::UnknownKey { key_id: 2 })), "{stale:?}");
}

// ---------------------------------------------------------------- a missing key

/// A ring without the key a document is sealed under: the TOTP login, the confirmation
/// of an enrollment and `reseal` fail with `UnknownKey` naming that key, and the
/// document stays byte for byte as it was (the failed login counted nothing). With the
/// key back, the same pending login and code succeed.
async fn a_missing_key_is_named_and_changes_nothing<S: UserStore + Clone + 'static>(store: S) {
    let site = Site::new(store);
    let ring1 = first_ring();
    let ring2 = ring1.with_new_key().expect("new key");
    let missing = ring2.without(1).expect("ring without key 1");
    assert_eq!(missing.ids(), [2]);
    let (e1, e2, broken) = (site.engine(&ring1), site.engine(&ring2), site.engine(&missing));
    let alice = add_user(&site, &e1, 0, Tf::Enabled).await; // sealed under key 1
    let carol = add_user(&site, &e1, 1, Tf::Enrolling).await; // enrolling under key 1
    let bob = add_user(&site, &e2, 2, Tf::Enabled).await; // under key 2
    site.next_step();

    let LoginOutcome::SecondFactorRequired(pending) =
        broken.begin_login(&alice.name, PASSWORD, None).await.expect("login")
    else {
        panic!("expected a second factor");
    };
    let alice_code = code(&alice.secret.expect("secret"), site.now());
    let before = site.raw(alice.id).await;
    let refused = broken.finish_login(pending.token(), SecondFactor::Totp(&alice_code), None).await;
    match &refused {
        Err(e @ Error::UnknownKey { key_id: 1 }) => assert!(e.to_string().contains("key 1"), "{e}"),
        other => panic!("expected UnknownKey {{ key_id: 1 }}, got {other:?}"),
    }
    assert_eq!(site.raw(alice.id).await, before, "a login under a missing key changed the document");

    let carol_before = site.raw(carol.id).await;
    let confirm = broken.confirm_enrollment(carol.id, &code(&carol.secret.expect("secret"), site.now())).await;
    assert!(matches!(confirm, Err(Error::UnknownKey { key_id: 1 })), "{confirm:?}");
    assert_eq!(site.raw(carol.id).await, carol_before);

    let bob_before = site.raw(bob.id).await;
    let resealed = broken.reseal(None, |_| {}).await;
    assert!(matches!(resealed, Err(Error::UnknownKey { key_id: 1 })), "{resealed:?}");
    assert_eq!(site.raw(alice.id).await, before, "reseal wrote to a document it could not open");
    assert_eq!(site.raw(carol.id).await, carol_before);
    assert_eq!(site.raw(bob.id).await, bob_before, "bob was already under the newest key");
    // Counting needs no key: the ring without key 1 sees what still needs it.
    assert_eq!(broken.key_usage().await.expect("usage").by_key, counts(&[(1, 2), (2, 1)]));
    assert!(matches!(broken.retire_key(1).await, Err(Error::InvalidInput(_))), "not in that ring");

    // With key 1 back, the same pending login and code go through.
    let outcome = e2.finish_login(pending.token(), SecondFactor::Totp(&alice_code), None).await;
    authenticated(&alice, outcome);
}

// ---------------------------------------------------------------- resuming a re-seal

/// More users than one page of the engine's walk (200).
const MANY: usize = 450;

/// A store whose connection drops once `pages` pages have been read: `scan` fails from
/// then on. Everything else goes through.
#[derive(Clone)]
struct Dropping<S> {
    inner: S,
    pages: Arc<Mutex<usize>>,
}

impl<S: UserStore> UserStore for Dropping<S> {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_login(login).await
    }
    async fn insert_document(&self, id: UserId, document: &twofactor::store::Document) -> Result<Swap, StoreError> {
        self.inner.insert_document(id, document).await
    }
    async fn compare_and_swap(
        &self,
        id: UserId,
        expected: u64,
        document: &twofactor::store::Document,
    ) -> Result<Swap, StoreError> {
        self.inner.compare_and_swap(id, expected, document).await
    }
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        {
            let mut left = self.pages.lock().expect("lock");
            if *left == 0 {
                return Err(StoreError::Backend("connection reset (simulated)".to_owned()));
            }
            *left -= 1;
        }
        self.inner.scan(after, limit).await
    }
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.inner.mail_due(now, limit).await
    }
    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.inner.forget(id, expected).await
    }
}

/// A re-seal that stops after its first page (the connection drops) resumes from the
/// cursor its progress reported: the second call re-seals the rest and the counts add
/// up; a third, from the start, re-seals nothing and finds every secret current.
async fn an_interrupted_reseal_resumes_from_its_cursor<S: UserStore + Clone + 'static>(store: S) {
    let site = Site::new(store);
    let ring1 = first_ring();
    let e1 = site.engine(&ring1);
    let started = Instant::now();
    // Every tenth user has no 2FA; the others are enrolling under key 1.
    for n in 0..MANY {
        add_user(&site, &e1, n, if n % 10 == 9 { Tf::Off } else { Tf::Enrolling }).await;
    }
    eprintln!("{MANY} users in {:?}", started.elapsed());
    let (sealed, plain) = ((MANY - MANY / 10) as u64, (MANY / 10) as u64);
    assert_eq!(e1.key_usage().await.expect("usage").by_key, counts(&[(1, sealed)]));

    let ring2 = ring1.with_new_key().expect("new key");
    let e2 = site.engine(&ring2);
    let dropping = Dropping { inner: site.store.clone(), pages: Arc::new(Mutex::new(1)) };
    let interrupted = Engine::builder(dropping, site.mailer.clone(), ring2.clone())
        .clock(site.clock.clone())
        .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
        .build()
        .expect("engine");

    let mut first = Vec::new();
    let failed = interrupted.reseal(None, |p| first.push(p.clone())).await;
    assert!(matches!(failed, Err(Error::Store(StoreError::Backend(_)))), "{failed:?}");
    let [page] = first.as_slice() else { panic!("one page before the interruption: {first:?}") };
    assert_eq!(page.scanned, 200);
    let cursor = page.cursor.clone().expect("a cursor to resume from");
    let usage = e2.key_usage().await.expect("usage");
    assert_eq!(
        usage.by_key,
        counts(&[(1, sealed - page.resealed), (2, page.resealed)]),
        "the first page stays re-sealed"
    );

    let mut second = Vec::new();
    let rest = e2.reseal(Some(&cursor), |p| second.push(p.clone())).await.expect("resumed");
    assert_eq!(page.scanned + rest.scanned, MANY as u64);
    assert_eq!(page.resealed + rest.resealed, sealed, "{page:?} then {rest:?}");
    assert_eq!(rest.already_current, 0, "the resumed walk starts after the first page");
    let last = second.last().expect("progress");
    assert_eq!((last.scanned, last.resealed, last.cursor.as_deref()), (rest.scanned, rest.resealed, None));
    assert!(second[..second.len() - 1].iter().all(|p| p.cursor.is_some()));
    let usage = e2.key_usage().await.expect("usage");
    assert_eq!((usage.documents, usage.without_secret), (MANY as u64, plain));
    assert_eq!(usage.by_key, counts(&[(2, sealed)]));

    let mut third = Vec::new();
    let again = e2.reseal(None, |p| third.push(p.clone())).await.expect("again");
    assert_eq!(
        (again.scanned, again.resealed, again.already_current, again.without_secret),
        (MANY as u64, 0, sealed, plain)
    );
    let scanned: Vec<u64> = third.iter().map(|p: &ResealProgress| p.scanned).collect();
    assert_eq!(scanned, [200, 400, 450], "progress after each page");
    assert!(e2.retire_key(1).await.is_ok());
}

#[cfg(feature = "postgres")]
async fn postgres() -> twofactor::store::PostgresStore {
    twofactor::store::PostgresStore::connect(&store_support::pg_schema_url().await).await.expect("connect")
}

// ---------------------------------------------------------------- text form

/// The base64url body of a key's text form (what must never appear in a message).
fn body(key: &AppKey) -> String {
    key.to_text().rsplit('.').next().expect("a body").to_owned()
}

/// No message shows any 12 characters of `secret`.
#[track_caller]
fn shows_none_of(message: &str, secret: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(12) {
        let piece: String = window.iter().collect();
        assert!(!message.contains(&piece), "the message shows key text {piece:?}: {message}");
    }
}

/// 0.1.0's CLI key file (64 hex digits, no newline) read by `from_text` and by
/// `from_file` is key 1 and opens 0.1.0's migrated SQLite database: key usage shows
/// key 1 for every secret, the users with 2FA log in (and carol confirms her
/// enrollment) with their codes. Then the whole rotation on that data: a new key, a
/// re-seal, key 1 retired, the ring written out and read back, and the logins again.
#[tokio::test]
async fn the_0_1_0_key_file_opens_the_migrated_database() {
    use v010_support::library::{code_at, policy, totp_of};
    use v010_support::manifest::{fixture, manifest};

    let m = manifest();
    let text = std::fs::read_to_string(fixture("library.key")).expect("key file");
    let ring = KeyRing::from_text(&text).expect("a 0.1.0 key file");
    assert_eq!(ring.ids(), [1]);
    let from_file = KeyRing::from_file(fixture("library.key")).expect("from_file");
    assert_eq!(from_file.to_text().as_str(), ring.to_text().as_str());
    let expected = AppKey::from_hex(1, &m.app_key.hex).expect("hex");
    assert_eq!(ring.current().to_text().as_str(), expected.to_text().as_str());

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("library.sqlite");
    std::fs::copy(fixture("library.sqlite"), &path).expect("copy the fixture");
    let store = SqliteStore::open(&path).await.expect("the 0.1.0 database opens");
    let clock = ManualClock::new(Timestamp(m.times.fixture_now));
    let engine = |keys: &KeyRing, name: &str| {
        Engine::builder(store.clone(), MemoryMailer::new(), keys.clone())
            .clock(clock.clone())
            .policy(policy(name))
            .build()
            .expect("engine")
    };
    let with_secret = m.accounts.iter().filter(|a| a.two_factor.state != "disabled").count() as u64;
    assert_eq!(with_secret, 5, "alice, carol, erin, grace and heidi");
    let usage = engine(&ring, "fast").key_usage().await.expect("usage");
    assert_eq!(usage.documents, m.accounts.len() as u64);
    assert_eq!(usage.by_key, counts(&[(1, with_secret)]));
    assert_eq!(usage.without_secret, m.accounts.len() as u64 - with_secret);

    // Logs in every account with 2FA enabled and not locked; confirms an enrollment
    // (carol's, the first time).
    let logins = async |keys: &KeyRing, t: u64| {
        clock.set(Timestamp(t));
        let mut done = Vec::new();
        for a in &m.accounts {
            let (Some(b32), Some(params)) = (&a.two_factor.secret_base32, &a.two_factor.params) else { continue };
            let (secret, params) = totp_of(b32, params);
            let e = engine(keys, &a.policy);
            let view = e.account(UserId::from(a.id)).await.expect("view").expect("the account");
            match view.two_factor {
                twofactor::TwoFactorState::Enrolling => {
                    let confirmed = e.confirm_enrollment(UserId::from(a.id), &code_at(&secret, &params, t)).await;
                    assert!(matches!(confirmed, Ok(ConfirmOutcome::Confirmed { .. })), "{}: {confirmed:?}", a.key);
                }
                _ if view.locked => continue,
                _ => {
                    let LoginOutcome::SecondFactorRequired(p) =
                        e.begin_login(&a.username, &a.password, None).await.expect("login")
                    else {
                        panic!("{}: expected a second factor", a.key)
                    };
                    let code = code_at(&secret, &params, t);
                    let outcome = e.finish_login(p.token(), SecondFactor::Totp(&code), None).await;
                    assert!(matches!(outcome, Ok(SecondFactorOutcome::Authenticated(_))), "{}: {outcome:?}", a.key);
                }
            }
            done.push(a.key.clone());
        }
        done
    };
    assert_eq!(logins(&ring, m.times.fixture_now).await, ["alice", "carol", "grace", "heidi"]);

    let rotated = ring.with_new_key().expect("new key");
    let report = engine(&rotated, "fast").reseal(None, |_| {}).await.expect("reseal");
    assert_eq!((report.scanned, report.resealed, report.without_secret), (m.accounts.len() as u64, with_secret, 6));
    let retired = engine(&rotated, "fast").retire_key(1).await.expect("retire key 1");
    let written = retired.to_text();
    let reread = KeyRing::from_text(&written).expect("read back");
    assert_eq!(reread.ids(), [2]);
    assert_eq!(reread.to_text().as_str(), written.as_str());
    // A later step (grace's period is 60 s), with only key 2.
    let later = m.times.fixture_now + 120;
    assert_eq!(logins(&reread, later).await, ["alice", "carol", "grace", "heidi"]);
}

/// A ring's text lists its keys newest first, one `tfk1.` line each, and reads back as
/// the same ring, however many keys were added or removed; blank lines, comments and
/// surrounding spaces are ignored, and a 64-hex line is key 1.
#[test]
fn ring_text_round_trips_newest_first() {
    let mut ring = first_ring();
    for _ in 0..3 {
        ring = ring.with_new_key().expect("new key");
    }
    assert_eq!(ring.ids(), [4, 3, 2, 1]);
    assert_eq!(ring.current().id(), 4);
    let text = ring.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, id) in lines.iter().zip([4, 3, 2, 1]) {
        assert!(line.starts_with(&format!("tfk1.{id}.")), "{id}");
        assert_eq!(line.len(), "tfk1.1.".len() + 43, "{id}");
    }
    assert!(text.ends_with('\n'));
    let back = KeyRing::from_text(&text).expect("read back");
    assert_eq!((back.ids(), back.to_text().as_str()), (ring.ids(), text.as_str()));

    let without = ring.without(2).expect("drop key 2");
    assert_eq!(without.ids(), [4, 3, 1]);
    assert_eq!(KeyRing::from_text(&without.to_text()).expect("read back").ids(), [4, 3, 1]);
    assert_eq!(without.with_new_key().expect("new key").ids(), [5, 4, 3, 1]);
    assert!(ring.without(4).is_err(), "the newest key seals: it cannot be removed");
    assert!(ring.without(9).is_err(), "not in the ring");

    // KeyRing::new takes the keys oldest first.
    let keys: Vec<AppKey> = (1..=3).map(|id| AppKey::generate(id).expect("key")).collect();
    assert_eq!(KeyRing::new(keys).expect("ring").ids(), [3, 2, 1]);

    let hex = "00".repeat(32);
    let two = AppKey::generate(2).expect("key");
    let commented = format!("\n# rotated 2026-11\n   {}  \n\n# the 0.1.0 key\n{hex}\n", two.to_text().as_str());
    let mixed = KeyRing::from_text(&commented).expect("comments, blanks and a hex key");
    assert_eq!(mixed.ids(), [2, 1]);
    assert_eq!(
        mixed.to_text().as_str(),
        format!("{}\n{}\n", two.to_text().as_str(), AppKey::from_hex(1, &hex).expect("hex").to_text().as_str())
    );
    for bad in [
        "",
        "# only a comment\n",
        &format!("{hex}\n{hex}\n"),
        &format!("{}\n{}", two.to_text().as_str(), two.to_text().as_str()),
    ] {
        assert!(KeyRing::from_text(bad).is_err(), "{bad:?}");
    }
}

/// `from_file` reads a ring file; an unreadable file is `KeyError::Read` naming the
/// path. Bad files holding valid-looking keys are `KeyError::Invalid`, and neither the
/// message nor the debug form shows any of the key text.
#[test]
fn key_files_load_and_their_errors_show_no_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ring = first_ring().with_new_key().expect("new key");
    let path = dir.path().join("keys");
    std::fs::write(&path, format!("# twofactor keys\n{}", ring.to_text().as_str())).expect("write");
    let loaded = KeyRing::from_file(&path).expect("from_file");
    assert_eq!(loaded.to_text().as_str(), ring.to_text().as_str());

    let missing = dir.path().join("no-such-file");
    let err = KeyRing::from_file(&missing).expect_err("missing file");
    assert!(matches!(&err, KeyError::Read { path, .. } if path == &missing), "{err:?}");
    assert!(err.to_string().contains("no-such-file"), "{err}");

    let key = AppKey::generate(7).expect("key");
    let (text, body) = (key.to_text().as_str().to_owned(), body(&key));
    let hex = "0123456789abcdef".repeat(4);
    let bad_files = [
        text[..text.len() - 1].to_owned(),       // one character short
        format!("{text}A"),                      // one too many
        format!("{text} trailing words"),        // more on the line
        text.replace("tfk1.", "tfk2."),          // another format
        text.replace(".7.", ".x7."),             // a bad id
        format!("{}!", &text[..text.len() - 1]), // a bad character
        format!("{text}\n{text}\n"),             // one id twice
        format!("{text}\nnot a key\n"),          // a good line, then a bad one
        hex[..63].to_owned(),                    // a 0.1.0 key one digit short
        format!("{hex}0"),                       // one digit long
        format!("{text}\n{hex}\n{hex}\n"),       // key 1 twice
    ];
    for (i, content) in bad_files.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}"));
        std::fs::write(&path, content).expect("write");
        let err = KeyRing::from_file(&path).expect_err(content);
        assert!(matches!(err, KeyError::Invalid(_)), "{i}: {err:?}");
        for shown in
            [err.to_string(), format!("{err:?}"), format!("{:?}", KeyRing::from_text(content).expect_err("bad"))]
        {
            shows_none_of(&shown, &body);
            shows_none_of(&shown, &hex);
        }
    }
    // Nor do a ring's or a key's debug forms.
    for shown in [format!("{ring:?}"), format!("{key:?}"), format!("{:?}", KeyRing::from_text(&text).expect("ring"))] {
        shows_none_of(&shown, &body);
    }
}

/// Set in the child process of `keys_load_from_a_variable` (the test cannot set a
/// variable in its own process: `std::env::set_var` is `unsafe` in edition 2024 and
/// the crate forbids `unsafe`): the prefix of the variables it reads.
const CHILD: &str = "TWOFACTOR_KEYS_TEST_CHILD";

/// `from_env` reads a ring from a variable, with newlines or spaces between the keys and
/// `#` comment lines as in a file; an unset or non-Unicode variable is
/// `KeyError::MissingVar` naming it; a bad one is `KeyError::Invalid` without the key
/// text. Runs in a child process of this test binary, which gets the variables.
#[test]
fn keys_load_from_a_variable() {
    if let Some(prefix) = std::env::var_os(CHILD) {
        return keys_load_from_a_variable_in_the_child(&prefix.into_string().expect("prefix"));
    }
    let prefix = format!("TWOFACTOR_TEST_KEYS_{}", std::process::id());
    let ring = first_ring().with_new_key().expect("new key").with_new_key().expect("new key");
    let text = ring.to_text().as_str().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let commented = format!("# rotated 2026-11\n{}\n# older keys\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let bad = format!("{} {}", lines[0], &lines[1][..lines[1].len() - 2]);

    let mut child = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    child
        .args(["keys_load_from_a_variable", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &prefix)
        .env(format!("{prefix}_EXPECT"), &text)
        .env(format!("{prefix}_LINES"), &text)
        .env(format!("{prefix}_SPACES"), lines.join(" "))
        .env(format!("{prefix}_COMMENTED"), &commented)
        .env(format!("{prefix}_BAD"), &bad)
        .env_remove(format!("{prefix}_UNSET"));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        child.env(format!("{prefix}_NOT_UNICODE"), std::ffi::OsStr::from_bytes(b"tfk1.\xff"));
    }
    let out = child.output().expect("run the child");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran no test:\n{stdout}");
    assert!(stdout.contains("child checks done"), "{stdout}");
}

fn keys_load_from_a_variable_in_the_child(prefix: &str) {
    let var = |name: &str| format!("{prefix}_{name}");
    let expected = std::env::var(var("EXPECT")).expect("expected text");
    for name in ["LINES", "SPACES", "COMMENTED"] {
        let ring = KeyRing::from_env(&var(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ring.ids(), [3, 2, 1], "{name}");
        assert_eq!(ring.to_text().as_str(), expected, "{name}");
    }
    let mut names = vec!["UNSET"];
    if cfg!(unix) {
        names.push("NOT_UNICODE");
    }
    for name in names {
        let err = KeyRing::from_env(&var(name)).expect_err(name);
        assert!(matches!(&err, KeyError::MissingVar { var: v } if *v == var(name)), "{name}: {err:?}");
        assert!(err.to_string().contains(&var(name)), "{err}");
    }
    let err = KeyRing::from_env(&var("BAD")).expect_err("bad");
    assert!(matches!(err, KeyError::Invalid(_)), "{err:?}");
    let bad = std::env::var(var("BAD")).expect("bad");
    for line in expected.lines() {
        let body = line.rsplit('.').next().expect("body");
        shows_none_of(&err.to_string(), body);
        shows_none_of(&format!("{err:?}"), body);
    }
    assert!(!err.to_string().contains(&bad));
    println!("child checks done");
}

// ---------------------------------------------------------------- confirming during a re-seal

/// Something to run inside the next compare-and-swap, before it reaches the store.
type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A `MemoryStore` that runs a hook at its next compare-and-swap: a write by another
/// server that lands between a call's read and its write, every time.
#[derive(Clone, Default)]
struct Hooked {
    inner: MemoryStore,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Hooked {
    /// Runs `hook` inside the next compare-and-swap, before it reaches the store.
    fn before_next_swap(&self, hook: impl std::future::Future<Output = ()> + Send + 'static) {
        *self.hook.lock().expect("lock") = Some(Box::pin(hook));
    }
}

impl UserStore for Hooked {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_login(login).await
    }
    async fn insert_document(&self, id: UserId, document: &twofactor::store::Document) -> Result<Swap, StoreError> {
        self.inner.insert_document(id, document).await
    }
    async fn compare_and_swap(
        &self,
        id: UserId,
        expected: u64,
        document: &twofactor::store::Document,
    ) -> Result<Swap, StoreError> {
        let hook = self.hook.lock().expect("lock").take();
        if let Some(hook) = hook {
            hook.await;
        }
        self.inner.compare_and_swap(id, expected, document).await
    }
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.inner.create_user(user).await
    }
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.inner.scan(after, limit).await
    }
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.inner.mail_due(now, limit).await
    }
    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.inner.forget(id, expected).await
    }
}

/// An engine of another server, straight on the hooked store's database.
fn other_server(hooked: &Hooked, ring: &KeyRing) -> Engine<MemoryStore, MemoryMailer> {
    Engine::builder(hooked.inner.clone(), MemoryMailer::new(), ring.clone())
        .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
        .build()
        .expect("engine")
}

/// A user confirming an enrollment while `reseal` re-seals the enrolling secret (the
/// same secret, under the new key) must be confirmed: re-seal promises to be safe
/// while users use the site. (It once compared the sealed bytes it read with the fresh
/// document's and answered `Misuse(Refusal::EnrollmentChanged)`: "the enrollment
/// changed while confirming; start again".)
#[tokio::test]
async fn confirming_an_enrollment_during_a_reseal_succeeds() {
    let hooked = Hooked::default();
    let site = Site::new(hooked.clone());
    let ring1 = first_ring();
    let carol = add_user(&site, &site.engine(&ring1), 0, Tf::Enrolling).await;
    let ring2 = ring1.with_new_key().expect("new key");
    // The re-seal runs on another server, straight on the store.
    let resealer = other_server(&hooked, &ring2);
    hooked.before_next_swap(async move {
        let report = resealer.reseal(None, |_| {}).await.expect("reseal");
        assert_eq!(report.resealed, 1);
    });
    let confirmed =
        site.engine(&ring2).confirm_enrollment(carol.id, &code(&carol.secret.expect("secret"), site.now())).await;
    assert!(matches!(confirmed, Ok(ConfirmOutcome::Confirmed { .. })), "{confirmed:?}");
    assert_eq!(site.engine(&ring2).key_usage().await.expect("usage").by_key, counts(&[(2, 1)]));
}

/// The same for an authenticator being added beside the first: a re-seal of its
/// secret meanwhile does not stop its confirmation.
#[tokio::test]
async fn confirming_an_added_authenticator_during_a_reseal_succeeds() {
    let hooked = Hooked::default();
    let site = Site::new(hooked.clone());
    let ring1 = first_ring();
    let dave = add_user(&site, &site.engine(&ring1), 1, Tf::Enabled).await;
    site.clock.advance(Duration::from_secs(30));
    let started = site.engine(&ring1).add_authenticator(dave.id, "tablet").await.expect("add");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let ring2 = ring1.with_new_key().expect("new key");
    let resealer = other_server(&hooked, &ring2);
    hooked.before_next_swap(async move {
        let report = resealer.reseal(None, |_| {}).await.expect("reseal");
        assert_eq!(report.resealed, 1);
    });
    let confirmed = site.engine(&ring2).confirm_authenticator(dave.id, &code(&secret, site.now())).await;
    assert!(matches!(confirmed, Ok(AddAuthenticatorOutcome::Added { .. })), "{confirmed:?}");
    assert_eq!(site.engine(&ring2).authenticators(dave.id).await.expect("list").len(), 2);
}

/// A confirmation whose enrollment was started again meanwhile (another tab, another
/// server) is refused, for a first authenticator and for an added one: its code proves
/// the replaced secret, not the one now waiting, whatever key seals them.
#[tokio::test]
async fn confirming_an_enrollment_restarted_meanwhile_is_refused() {
    let hooked = Hooked::default();
    let site = Site::new(hooked.clone());
    let ring = first_ring();
    let engine = site.engine(&ring);
    let carol = add_user(&site, &engine, 0, Tf::Enrolling).await;
    let restarter = other_server(&hooked, &ring);
    let id = carol.id;
    hooked.before_next_swap(async move {
        restarter.start_enrollment(id).await.expect("restart");
    });
    let proof = code(&carol.secret.expect("secret"), site.now());
    let confirmed = engine.confirm_enrollment(carol.id, &proof).await;
    assert!(matches!(confirmed, Err(Error::Misuse(Refusal::EnrollmentChanged))), "{confirmed:?}");
    let again = engine.confirm_enrollment(carol.id, &proof).await;
    assert!(matches!(again, Ok(ConfirmOutcome::WrongCode)), "the replaced secret confirmed: {again:?}");

    let dave = add_user(&site, &engine, 1, Tf::Enabled).await;
    site.clock.advance(Duration::from_secs(30));
    let started = engine.add_authenticator(dave.id, "tablet").await.expect("add");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let restarter = other_server(&hooked, &ring);
    let id = dave.id;
    hooked.before_next_swap(async move {
        restarter.add_authenticator(id, "tablet").await.expect("restart");
    });
    let confirmed = engine.confirm_authenticator(dave.id, &code(&secret, site.now())).await;
    assert!(matches!(confirmed, Err(Error::Misuse(Refusal::EnrollmentChanged))), "{confirmed:?}");
    assert_eq!(engine.authenticators(dave.id).await.expect("list").len(), 1, "nothing was added");
}

/// Runs each generic test body above on MemoryStore, a SQLite file and PostgreSQL, as
/// `memory::<body>`, `sqlite::<body>` and `postgres::<body>`.
macro_rules! on_every_store {
    ($($body:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                super::$body(twofactor::store::MemoryStore::new()).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                let (_dir, path) = super::temp_db();
                super::$body(twofactor::store::SqliteStore::open(&path).await.expect("open")).await;
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $body() {
                super::$body(super::postgres().await).await;
            })*
        }
    };
}

on_every_store!(
    key_usage_counts_documents_per_key,
    reseal_while_users_log_in,
    a_missing_key_is_named_and_changes_nothing,
    an_interrupted_reseal_resumes_from_its_cursor,
);
