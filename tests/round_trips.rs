//! Store round trips per login step, counted by a wrapper around `MemoryStore`: the
//! password step needs at most one read and no write; the second step one conditional
//! write, and no read when its password step ran on the same engine (one read when
//! not, or when the document changed in between). The key
//! operations read by pages of `scan` and write only the documents they re-seal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use twofactor::mail::MemoryMailer;
use twofactor::store::{Document, MemoryStore, ScanPage, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, SecondFactor,
    SecondFactorOutcome, StoreError, Timestamp, UserId,
};

const PASSWORD: &str = "correct horse battery staple";

/// Counts the calls that reach the store.
#[derive(Clone, Default)]
struct Counting {
    inner: MemoryStore,
    reads: Arc<AtomicUsize>,
    inserts: Arc<AtomicUsize>,
    swaps: Arc<AtomicUsize>,
    scans: Arc<AtomicUsize>,
}

/// (reads, inserts, swaps) since the last call.
impl Counting {
    fn take(&self) -> (usize, usize, usize) {
        (
            self.reads.swap(0, Ordering::SeqCst),
            self.inserts.swap(0, Ordering::SeqCst),
            self.swaps.swap(0, Ordering::SeqCst),
        )
    }

    /// Pages scanned since the last call.
    fn take_scans(&self) -> usize {
        self.scans.swap(0, Ordering::SeqCst)
    }
}

impl UserStore for Counting {
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.create_user(user).await
    }
    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_document(id, document).await
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_id(id).await
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_login(login).await
    }
    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        self.swaps.fetch_add(1, Ordering::SeqCst);
        self.inner.compare_and_swap(id, expected, document).await
    }
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(after, limit).await
    }
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.inner.mail_due(now, limit).await
    }
    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.swaps.fetch_add(1, Ordering::SeqCst); // a version-guarded write, as a swap is
        self.inner.forget(id, expected).await
    }
}

struct Setup {
    engine: Engine<Counting, MemoryMailer, ManualClock>,
    store: Counting,
    mailer: MemoryMailer,
    clock: ManualClock,
    secret: Vec<u8>,
}

/// An engine over the counting store and an account `name` with confirmed 2FA.
async fn setup(name: &str) -> Setup {
    let store = Counting::default();
    let mailer = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(1_800_000_000));
    let policy = Policy::builder().danger_fast_hashing().build().expect("policy");
    let engine = Engine::builder(store.clone(), mailer.clone(), KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(policy)
        .build()
        .expect("engine");
    let id =
        engine.create_account(NewAccount::new(name, "u@example.test", Role::User, PASSWORD)).await.expect("create");
    let started = engine.start_enrollment(id).await.expect("enroll");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let code = twofactor::totp::generate(&secret, &TotpParams::default(), clock.now().0).expose().to_owned();
    let confirmed = engine.confirm_enrollment(id, &code).await.expect("confirm");
    assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
    // The delivery worker's round: the setup code leaves the outbox (and the document).
    assert_eq!(engine.deliver_due(10).await.expect("deliver").sent, 1);
    clock.advance(Duration::from_secs(30));
    store.take();
    Setup { engine, store, mailer, clock, secret }
}

async fn password_step(s: &Setup, name: &str) -> String {
    let outcome = s.engine.begin_login(name, PASSWORD, None).await.expect("login");
    let LoginOutcome::SecondFactorRequired(pending) = outcome else { panic!("expected a second factor: {outcome:?}") };
    pending.token().to_owned()
}

#[tokio::test]
async fn password_step_reads_once_and_writes_nothing() {
    let s = setup("alice").await;
    password_step(&s, "alice").await;
    assert_eq!(s.store.take(), (1, 0, 0), "the password step: (reads, inserts, swaps)");
    // Without 2FA the password alone logs in, also without a write.
    let id = s.engine.create_account(NewAccount::new("bob", "b@example.test", Role::User, PASSWORD)).await.unwrap();
    s.store.take();
    let outcome = s.engine.begin_login("bob", PASSWORD, None).await.unwrap();
    assert!(matches!(&outcome, LoginOutcome::Authenticated(a) if a.account == id), "{outcome:?}");
    assert_eq!(s.store.take(), (1, 0, 0));
}

/// The second step starts from the record its password step read on this engine: no
/// read, one swap.
#[tokio::test]
async fn totp_step_swaps_once_without_a_read() {
    let s = setup("carol").await;
    let pending = password_step(&s, "carol").await;
    s.store.take();
    let code = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    // Exactly one swap: a successful step that wrote nothing would leave the step
    // reusable.
    assert_eq!(s.store.take(), (0, 0, 1), "TOTP step: (reads, inserts, swaps)");
}

#[tokio::test]
async fn backup_code_step_swaps_once_without_a_read() {
    let s = setup("dave").await;
    let pending = password_step(&s, "dave").await;
    s.store.take();
    let code = s.mailer.last_code_for("u@example.test").expect("backup code");
    let outcome = s.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    // The replacement code is queued in that one swap: no second write for the mail.
    assert_eq!(s.store.take(), (0, 0, 1), "backup step: (reads, inserts, swaps)");
}

#[tokio::test]
async fn a_wrong_code_is_one_swap() {
    let s = setup("erin").await;
    let pending = password_step(&s, "erin").await;
    s.store.take();
    let right = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let wrong: String = right.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&wrong), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Denied { .. }), "{outcome:?}");
    assert_eq!(s.store.take(), (0, 0, 1));
    // The kept record was taken: the next try reads the store.
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&right), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    assert_eq!(s.store.take(), (1, 0, 1));
}

/// A second step on another server (another engine over the same store and keys)
/// has no kept record: one read, one swap.
#[tokio::test]
async fn a_second_step_on_another_engine_reads_once_and_swaps_once() {
    let s = setup("heidi").await;
    let pending = password_step(&s, "heidi").await;
    let other = with_keys(&s, s.engine.keys().clone());
    s.store.take();
    let code = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let outcome = other.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    assert_eq!(s.store.take(), (1, 0, 1), "(reads, inserts, swaps)");
}

/// When the document changed between the steps, the kept record is stale: its swap
/// meets a conflict and the step is decided again on a fresh read. A reset in between
/// wins: the code is refused, and 2FA stays reset.
#[tokio::test]
async fn a_reset_between_the_steps_wins_over_the_kept_record() {
    let s = setup("ivan").await;
    let admin =
        s.engine.create_account(NewAccount::new("root", "r@example.test", Role::Admin, PASSWORD)).await.expect("admin");
    let pending = password_step(&s, "ivan").await;
    let ivan = s.engine.store().find_by_login("ivan").await.unwrap().expect("ivan").id;
    let reset = s.engine.reset(admin, ivan, "called back on the number on file").await.expect("reset");
    assert!(matches!(reset, twofactor::ResetOutcome::Reset { .. }), "{reset:?}");
    s.store.take();
    let code = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Expired), "{outcome:?}");
    assert_eq!(s.store.take(), (1, 0, 1), "the stale swap (refused), then the fresh read: (reads, inserts, swaps)");
    let outcome = s.engine.begin_login("ivan", PASSWORD, None).await.unwrap();
    assert!(!matches!(outcome, LoginOutcome::SecondFactorRequired(_)), "2FA stays reset: {outcome:?}");
}

/// Another pending login's failure between the steps is kept: the step decided on the
/// kept record loses its swap and is decided again on the record with the failure.
#[tokio::test]
async fn a_failure_written_between_the_steps_is_not_lost() {
    let s = setup("judy").await;
    let first = password_step(&s, "judy").await;
    let second = password_step(&s, "judy").await;
    let right = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let wrong: String = right.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let denied = s.engine.finish_login(&second, SecondFactor::Totp(&wrong), None).await.unwrap();
    let SecondFactorOutcome::Denied { attempts_left } = denied else { panic!("{denied:?}") };
    s.store.take();
    let again = s.engine.finish_login(&first, SecondFactor::Totp(&wrong), None).await.unwrap();
    assert!(matches!(again, SecondFactorOutcome::Denied { .. }), "{again:?}");
    assert_eq!(s.store.take(), (1, 0, 2), "a conflicting swap, a fresh read, a swap: (reads, inserts, swaps)");
    let third = s.engine.finish_login(&second, SecondFactor::Totp(&wrong), None).await.unwrap();
    let SecondFactorOutcome::Denied { attempts_left: left } = third else { panic!("{third:?}") };
    assert_eq!(left, attempts_left - 1, "the first failure was kept");
}

/// An engine over the same store and clock with another key ring.
fn with_keys(s: &Setup, keys: KeyRing) -> Engine<Counting, MemoryMailer, ManualClock> {
    Engine::builder(s.store.clone(), s.mailer.clone(), keys)
        .clock(s.clock.clone())
        .policy(Policy::builder().danger_fast_hashing().build().expect("policy"))
        .build()
        .expect("engine")
}

/// Key usage and re-seal read page by page (200 users a page: 201 documents are two
/// pages) and never by id; re-seal swaps once per secret not under the newest key, and
/// nothing at all when run again.
#[tokio::test]
async fn key_operations_read_by_pages_and_swap_only_stale_secrets() {
    let s = setup("frank").await;
    for i in 0..200 {
        let name = format!("plain{i}");
        s.engine.create_account(NewAccount::new(&name, "p@example.test", Role::User, PASSWORD)).await.expect("create");
    }
    s.store.take();
    s.store.take_scans();

    let usage = s.engine.key_usage().await.expect("usage");
    assert_eq!((usage.documents, usage.without_secret), (201, 200));
    assert_eq!((s.store.take(), s.store.take_scans()), ((0, 0, 0), 2), "key usage: (reads, inserts, swaps), scans");

    let rotated = with_keys(&s, s.engine.keys().with_new_key().expect("new key"));
    let report = rotated.reseal(None, |_| {}).await.expect("reseal");
    assert_eq!((report.scanned, report.resealed, report.without_secret), (201, 1, 200));
    assert_eq!((s.store.take(), s.store.take_scans()), ((0, 0, 1), 2), "reseal: one swap for frank's secret");

    let again = rotated.reseal(None, |_| {}).await.expect("reseal again");
    assert_eq!((again.resealed, again.already_current), (0, 1));
    assert_eq!((s.store.take(), s.store.take_scans()), ((0, 0, 0), 2), "nothing to re-seal: no write");
}

/// A login under a ring with a newer key re-seals the secret in the swap it makes
/// anyway: still one read and one swap, and the document is then under the new key.
#[tokio::test]
async fn a_login_under_a_new_key_reseals_within_its_one_swap() {
    let s = setup("grace").await;
    let rotated = with_keys(&s, s.engine.keys().with_new_key().expect("new key"));
    let outcome = rotated.begin_login("grace", PASSWORD, None).await.expect("login");
    let LoginOutcome::SecondFactorRequired(pending) = outcome else { panic!("expected a second factor: {outcome:?}") };
    s.store.take();
    let code = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let outcome = rotated.finish_login(pending.token(), SecondFactor::Totp(&code), None).await.expect("finish");
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    assert_eq!(s.store.take(), (0, 0, 1), "TOTP step under a new key: (reads, inserts, swaps)");
    let usage = rotated.key_usage().await.expect("usage");
    assert_eq!(usage.by_key, std::collections::BTreeMap::from([(2, 1)]));
}
