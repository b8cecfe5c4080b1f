//! Applications that log users in their own way: a store whose logins match in any
//! case, and applications that check passwords themselves. A burst of concurrent
//! guesses must meet the failure budget one by one either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use twofactor::mail::MemoryMailer;
use twofactor::store::{Document, MemoryStore, ScanPage, Swap, UserRecord, UserStore};
use twofactor::{
    Engine, KeyRing, LoginOutcome, ManualClock, PasswordAttempt, Policy, Role, StoreError, Timestamp, UserId,
};

const PASSWORD: &str = "correct horse battery staple";

/// An application's store whose logins match whatever the case (its users are stored
/// in lower case and looked up in lower case). It counts the writes it refuses because
/// the document changed since it was read.
#[derive(Clone, Default)]
struct AnyCase(MemoryStore, Arc<AtomicUsize>);

impl AnyCase {
    fn conflicts(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
}

impl UserStore for AnyCase {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.0.find_by_id(id).await
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.0.find_by_login(&login.to_lowercase()).await
    }
    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.0.insert_document(id, document).await
    }
    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        let swap = self.0.compare_and_swap(id, expected, document).await?;
        if matches!(swap, Swap::Conflict) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        Ok(swap)
    }
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        self.0.scan(after, limit).await
    }
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.0.mail_due(now, limit).await
    }
    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        self.0.forget(id, expected).await
    }
}

fn policy() -> Policy {
    Policy::builder().danger_fast_hashing().build().expect("policy")
}

fn engine<S: UserStore>(store: S) -> Arc<Engine<S, MemoryMailer, ManualClock>> {
    Arc::new(
        Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .clock(ManualClock::new(Timestamp(1_800_000_000)))
            .policy(policy())
            .max_concurrent_hashes(1)
            .max_queued_logins(64) // the burst is about the throttle, not about shedding
            .build()
            .expect("engine"),
    )
}

async fn failures(store: &MemoryStore, id: UserId) -> u64 {
    let user = store.find_by_id(id).await.expect("store").expect("user");
    let doc: serde_json::Value =
        serde_json::from_str(user.credentials.expect("document").document.as_json()).expect("json");
    doc.pointer("/throttle/failures").and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// 40 concurrent guesses, each spelling the login in another case, the 31st with the
/// right password: every spelling reaches the same user, so they must take turns as
/// one name does (each reads what the one before wrote, so no write meets a changed
/// document); the right password comes after the budget is spent and is refused.
#[tokio::test(flavor = "current_thread")]
async fn guesses_in_every_case_take_turns_as_one_name() {
    let inner = MemoryStore::new();
    let id = UserId::from(7_u64);
    inner.add_user(id, "alice@example.test", "alice@example.test", Role::User).expect("add");
    let store = AnyCase(inner.clone(), Arc::default());
    let engine = engine(store.clone());
    engine.change_password(id, PASSWORD).await.expect("password");
    let spelling = |i: usize| -> String {
        "alice@example.test"
            .chars()
            .enumerate()
            .map(|(j, c)| if (i >> (j % 8)) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect()
    };
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let (login, password) = (spelling(i), if i == 30 { PASSWORD.to_owned() } else { format!("wrong {i}") });
            tokio::spawn(async move { engine.begin_login(&login, &password, None).await.expect("login") })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    assert!(matches!(outcomes[30], LoginOutcome::Denied), "the 31st: {:?}", outcomes[30]);
    assert!(outcomes.iter().all(|o| matches!(o, LoginOutcome::Denied)));
    let free = u64::from(policy().throttle().free_failures);
    assert_eq!(failures(&inner, id).await, free, "only the free failures were counted");
    assert_eq!(store.conflicts(), 0, "a step read the record before the one ahead of it wrote");
}

/// The same burst when the application checks passwords itself through
/// `password_attempt`: one check per user at a time, refused once throttled.
#[tokio::test(flavor = "current_thread")]
async fn an_applications_own_password_checks_take_turns_and_stop_at_the_budget() {
    let store = MemoryStore::new();
    let id = UserId::new("6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55").expect("id");
    store.add_user(id, "alice", "alice@example.test", Role::User).expect("add");
    let engine = engine(store.clone());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                match engine.password_attempt(id).await.expect("attempt") {
                    PasswordAttempt::Check(check) => {
                        // The application's own (slow) check, during which others wait.
                        tokio::task::yield_now().await;
                        if i == 30 {
                            (true, check.succeeded(None).await.expect("second step"))
                        } else {
                            check.failed().await.expect("failed");
                            (true, LoginOutcome::Denied)
                        }
                    }
                    _ => (false, LoginOutcome::Denied),
                }
            })
        })
        .collect();
    let mut checked = 0;
    let mut outcomes = Vec::new();
    for task in tasks {
        let (was_checked, outcome) = task.await.expect("task");
        checked += usize::from(was_checked);
        outcomes.push(outcome);
    }
    let free = u64::from(policy().throttle().free_failures);
    assert_eq!(checked as u64, free, "only as many checks as the budget allows ran");
    assert!(outcomes.iter().all(|o| matches!(o, LoginOutcome::Denied)), "the right password came too late");
    assert_eq!(failures(&store, id).await, free);
    // Still refused while throttled, and the record did not change.
    let refused = engine.password_attempt(id).await.expect("attempt");
    assert!(matches!(refused, PasswordAttempt::Refused));
    assert_eq!(format!("{refused:?}"), "Refused");
}

/// Without a burst, a right password checked by the application starts the second
/// step, and a dropped check counts nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_right_password_checked_by_the_application_signs_in() {
    let store = MemoryStore::new();
    let id = UserId::from(42_u64);
    store.add_user(id, "bob", "bob@example.test", Role::User).expect("add");
    let engine = engine(store.clone());
    let attempt = engine.password_attempt(id).await.expect("attempt");
    assert_eq!(format!("{attempt:?}"), "Check");
    let PasswordAttempt::Check(check) = attempt else {
        panic!("an unthrottled user may be checked");
    };
    assert_eq!(format!("{check:?}"), format!("PasswordCheck {{ id: {id:?}, .. }}"));
    drop(check);
    assert!(store.find_by_id(id).await.expect("store").expect("user").credentials.is_none(), "nothing written");
    let PasswordAttempt::Check(check) = engine.password_attempt(id).await.expect("attempt") else {
        panic!("an unthrottled user may be checked");
    };
    assert!(matches!(check.succeeded(None).await.expect("second step"), LoginOutcome::Authenticated(_)));
}

/// A check in progress holds its own user's turn only: another user's check, and the
/// same user's next one once it is done, go ahead.
#[tokio::test(flavor = "current_thread")]
async fn a_check_in_progress_holds_up_only_its_own_user() {
    let store = MemoryStore::new();
    let (alice, bob) = (UserId::from(1_u64), UserId::from(2_u64));
    store.add_user(alice, "alice", "alice@example.test", Role::User).expect("add");
    store.add_user(bob, "bob", "bob@example.test", Role::User).expect("add");
    let engine = engine(store);
    let limit = std::time::Duration::from_secs(10);
    let held = engine.password_attempt(alice).await.expect("attempt");
    assert!(matches!(held, PasswordAttempt::Check(_)));
    let other = tokio::time::timeout(limit, engine.password_attempt(bob)).await.expect("bob waited for alice's turn");
    assert!(matches!(other.expect("attempt"), PasswordAttempt::Check(_)));
    let waiting = engine.password_attempt(alice);
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting).await.is_err(),
        "alice's second check ran beside her first"
    );
    drop(held);
    let next = tokio::time::timeout(limit, waiting).await.expect("the turn was not handed on");
    assert!(matches!(next.expect("attempt"), PasswordAttempt::Check(_)));
}
