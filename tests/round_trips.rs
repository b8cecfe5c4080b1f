//! Store round trips per login step, counted by a wrapper around `MemoryStore`: the
//! password step needs at most one read and no write; the second step at most one
//! read and one conditional write (single-threaded, so no swap is retried). The key
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

#[tokio::test]
async fn totp_step_reads_once_and_swaps_once() {
    let s = setup("carol").await;
    let pending = password_step(&s, "carol").await;
    s.store.take();
    let code = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    // Exactly one swap: a successful step that wrote nothing would leave the step
    // reusable.
    assert_eq!(s.store.take(), (1, 0, 1), "TOTP step: (reads, inserts, swaps)");
}

#[tokio::test]
async fn backup_code_step_reads_once_and_swaps_once() {
    let s = setup("dave").await;
    let pending = password_step(&s, "dave").await;
    s.store.take();
    let code = s.mailer.last_code_for("u@example.test").expect("backup code");
    let outcome = s.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    // The replacement code is queued in that one swap: no second write for the mail.
    assert_eq!(s.store.take(), (1, 0, 1), "backup step: (reads, inserts, swaps)");
}

#[tokio::test]
async fn a_wrong_code_is_one_read_and_one_swap() {
    let s = setup("erin").await;
    let pending = password_step(&s, "erin").await;
    s.store.take();
    let right = twofactor::totp::generate(&s.secret, &TotpParams::default(), s.clock.now().0).expose().to_owned();
    let wrong: String = right.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let outcome = s.engine.finish_login(&pending, SecondFactor::Totp(&wrong), None).await.unwrap();
    assert!(matches!(outcome, SecondFactorOutcome::Denied { .. }), "{outcome:?}");
    assert_eq!(s.store.take(), (1, 0, 1));
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
    assert_eq!(s.store.take(), (1, 0, 1), "TOTP step under a new key: (reads, inserts, swaps)");
    let usage = rotated.key_usage().await.expect("usage");
    assert_eq!(usage.by_key, std::collections::BTreeMap::from([(2, 1)]));
}
