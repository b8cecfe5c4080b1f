//! A conformance kit for [`UserStore`] implementations (feature `testkit`).
//!
//! A store keeps, per user, the application's identity of the user and one opaque
//! [`Document`] under a version number. The kit checks that contract against a store:
//! users read back by id and by login with their document (byte for byte, any size,
//! any Unicode) and its version; the first document is inserted at version 1, once;
//! a swap bumps the version by one; a stale or future version, or a missing user, is
//! [`Swap::Conflict`] and changes nothing; a write to one user never touches another;
//! N tokio tasks racing one insert or one swap from the same version produce exactly
//! one winner; N tasks that each re-read and retry until their increment lands lose
//! no update; a paginated [`UserStore::scan`] visits every user with a document
//! exactly once, and no other; and [`UserStore::mail_due`] lists exactly the users
//! whose stored document has mail due ([`Document::mail_due_at`] at or before the
//! time asked about), most overdue first, at most the limit (0 counting as 1),
//! following every swap that changes the due time and no swap that failed; and
//! [`UserStore::forget`] at the stored version removes the document (the user too, or
//! the user stays without one: the kit accepts either), so `mail_due` and `scan` no
//! longer list it, while a stale version or a missing user is [`Swap::Conflict`] and
//! changes nothing, other users stay untouched, and a forget racing swaps from the
//! same version is the one winner or loses.
//!
//! - [`run_conformance`] is for a store that creates users itself
//!   ([`UserStore::create_user`], like the shipped stores). It also checks that a
//!   taken id or login is [`StoreError::Duplicate`] and writes nothing, that racing
//!   creations of one login have one winner, that logins compare exactly, and that
//!   a user created with a document has its mail due time written with it.
//! - [`Conformance::run_seeded`] is for a store over the application's own users
//!   table: the factory returns the store and the ids of at least [`SEEDED_USERS`]
//!   users it has added without a document (the kit never creates users then).
//!
//! Run it on tokio's multi-thread runtime so the racing tasks really run in parallel.
//! Ids, logins and the mail checks' times are random, so runs may share a database
//! (one after another: the mail checks read back any other user a store lists as due,
//! and another writer changing those users meanwhile may fail them). A failing check is
//! a [`Failure`] naming the check and what differed, never a panic.
//!
//! ```no_run
//! use twofactor::testkit::run_conformance;
//! use twofactor::store::MemoryStore; // your store here
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_conforms() {
//!     let report = run_conformance(|| async { Ok::<_, twofactor::StoreError>(MemoryStore::new()) })
//!         .await
//!         .unwrap_or_else(|failure| panic!("{failure}"));
//!     println!("{report}");
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::UserId;
use crate::account::Role;
use crate::error::StoreError;
use crate::plumbing::clock::Timestamp;
use crate::store::{Document, Swap, UserRecord, UserStore};

/// How many tasks race by default in the concurrency checks.
pub const DEFAULT_TASKS: usize = 32;

/// How many users without a document a seeded factory must provide.
pub const SEEDED_USERS: usize = 4;

/// The checks that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Names of the checks, in the order they ran.
    pub checks: Vec<&'static str>,
    /// How many tasks raced in the concurrency checks.
    pub tasks: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} store checks passed ({} racing tasks): {}", self.checks.len(), self.tasks, self.checks.join(", "))
    }
}

/// A check that failed: which one, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What differed from the contract.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store conformance check `{}` failed: {}", self.check, self.detail)
    }
}

impl std::error::Error for Failure {}

/// The conformance suite with its settings. [`run_conformance`] runs it with the
/// defaults.
#[derive(Debug, Clone, Copy)]
pub struct Conformance {
    tasks: usize,
}

impl Default for Conformance {
    fn default() -> Self {
        Conformance { tasks: DEFAULT_TASKS }
    }
}

/// Runs every check, each against a fresh store from `factory` that creates its own
/// users, with [`DEFAULT_TASKS`] racing tasks.
///
/// # Errors
/// The first [`Failure`].
pub async fn run_conformance<S, E, F, Fut>(factory: F) -> Result<Report, Failure>
where
    S: UserStore + 'static,
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, E>>,
{
    Conformance::default().run(factory).await
}

type Check = Result<(), String>;

/// A fully populated credential document, as the engine writes it: enabled 2FA with
/// three backup codes, two remembered locations, three pending marks, a throttle, a
/// reset record, and numbers near 2^64 (about 1.5 KB of JSON). For a store's own tests.
pub fn sample_document() -> Document {
    let account = crate::document::sample::sample_account(UserId::from(7_u64), "sample");
    // Encoding a well-formed account cannot fail; an empty document would fail any
    // check that uses it.
    crate::document::encode(&account).unwrap_or_else(|_| Document::from_json(""))
}

impl Conformance {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tasks race in the concurrency checks (at least 2).
    pub fn tasks(mut self, n: usize) -> Self {
        self.tasks = n.max(2);
        self
    }

    /// Runs every check, each against a fresh store from `factory`; the kit creates
    /// the users it needs with [`UserStore::create_user`].
    ///
    /// # Errors
    /// The first [`Failure`]: a broken contract, a store error where none was due, a
    /// factory error, or no tokio runtime to spawn the racing tasks on.
    pub async fn run<S, E, F, Fut>(&self, mut factory: F) -> Result<Report, Failure>
    where
        S: UserStore + 'static,
        E: fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S, E>>,
    {
        let mut seeded = || {
            let store = factory();
            async move {
                let store = store.await.map_err(|e| format!("factory: {e}"))?;
                let mut users = Vec::with_capacity(SEEDED_USERS);
                for _ in 0..SEEDED_USERS {
                    let (id, login) = fresh("user")?;
                    store
                        .create_user(&UserRecord::new(id, login, "user@example.test", Role::User))
                        .await
                        .map_err(|e| store_err("create_user", e))?;
                    users.push(id);
                }
                Ok::<_, String>((store, users))
            }
        };
        let mut report = self.run_seeded(&mut seeded).await?;
        let tasks = self.tasks;
        let mut checks = Vec::new();
        macro_rules! check {
            ($name:literal, $f:expr) => {{
                let (store, _) = seeded().await.map_err(|detail| Failure { check: $name, detail })?;
                let result: Check = $f(Arc::new(store)).await;
                result.map_err(|detail| Failure { check: $name, detail })?;
                checks.push($name);
            }};
        }
        check!("create_user_duplicates", create_user_duplicates);
        check!("logins_compare_exactly", logins_compare_exactly);
        check!("racing_creates_one_winner", |s| racing_creates(s, tasks));
        check!("create_user_writes_mail_due", create_user_writes_mail_due);
        report.checks.extend(checks);
        Ok(report)
    }

    /// Runs the document checks, each against a fresh store from `factory`, which
    /// returns the store and the ids of at least [`SEEDED_USERS`] users it holds
    /// without a document (for a store over the application's own users table).
    ///
    /// # Errors
    /// The first [`Failure`], as for [`run`](Self::run); also too few users, or a
    /// seeded user that already has a document.
    pub async fn run_seeded<S, E, F, Fut>(&self, mut factory: F) -> Result<Report, Failure>
    where
        S: UserStore + 'static,
        E: fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(S, Vec<UserId>), E>>,
    {
        let mut checks = Vec::new();
        macro_rules! check {
            ($name:literal, $f:expr) => {{
                let (store, users) =
                    factory().await.map_err(|e| Failure { check: $name, detail: format!("factory: {e}") })?;
                let users = seeded_users(&store, users).await.map_err(|detail| Failure { check: $name, detail })?;
                let result: Check = $f(Arc::new(store), users).await;
                result.map_err(|detail| Failure { check: $name, detail })?;
                checks.push($name);
            }};
        }
        let tasks = self.tasks;
        check!("reads_users", reads_users);
        check!("first_document_inserted_once", first_document_inserted_once);
        check!("swap_bumps_version", swap_bumps_version);
        check!("stale_version_conflicts", stale_version_conflicts);
        check!("missing_user_conflicts", missing_user_conflicts);
        check!("writes_touch_one_user", writes_touch_one_user);
        check!("racing_inserts_one_winner", |s, u| racing_inserts(s, u, tasks));
        check!("racing_swaps_one_winner", |s, u| racing_swaps(s, u, tasks));
        check!("retried_swaps_lose_no_update", |s, u| retried_swaps(s, u, tasks));
        check!("scan_visits_every_document_once", scan_visits_every_document_once);
        check!("mail_due_lists_due_documents", mail_due_lists_due_documents);
        check!("mail_due_follows_swaps", mail_due_follows_swaps);
        check!("forget_removes_the_document", forget_removes_the_document);
        check!("racing_forget_and_swaps_one_winner", |s, u| racing_forget_and_swaps(s, u, tasks));
        Ok(Report { checks, tasks })
    }
}

/// The seeded users as the store reads them; each must exist and have no document.
async fn seeded_users<S: UserStore>(store: &S, ids: Vec<UserId>) -> Result<Vec<UserRecord>, String> {
    if ids.len() < SEEDED_USERS {
        return Err(format!("the factory gave {} users; the kit needs {SEEDED_USERS}", ids.len()));
    }
    let mut users = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(user) = store.find_by_id(id).await.map_err(|e| store_err("find_by_id", e))? else {
            return Err(format!("find_by_id({id}) of a seeded user found nothing"));
        };
        if user.credentials.is_some() {
            return Err(format!("seeded user {id} already has a document"));
        }
        users.push(user);
    }
    Ok(users)
}

/// A random id below 2^63 and a login unique to this run.
fn fresh(prefix: &str) -> Result<(UserId, String), String> {
    let bytes = crate::crypto::random::bytes::<8>().map_err(|e| format!("random: {e}"))?;
    let id = u64::from_le_bytes(bytes) >> 1;
    Ok((UserId::from(id), format!("{prefix}-{id:016x}")))
}

fn store_err(what: &str, err: StoreError) -> String {
    format!("{what} failed: {err}")
}

/// A document holding a counter, padded and with non-ASCII text so a store that
/// truncates, re-encodes or normalizes it is caught.
fn counter(n: u64) -> Document {
    Document::from_json(format!(r#"{{"format":1,"n":{n},"label":"Zoë's 📱 — ünïcödé \"quoted\" \\ ; DROP TABLE"}}"#))
}

fn count_of(doc: &Document) -> Option<u64> {
    let rest = doc.as_json().strip_prefix(r#"{"format":1,"n":"#)?;
    rest.split(',').next()?.parse().ok()
}

async fn expect_document<S: UserStore>(
    store: &S,
    user: &UserRecord,
    want: Option<(u64, &Document)>,
    when: &str,
) -> Check {
    let found = store.find_by_id(user.id).await.map_err(|e| store_err("find_by_id", e))?;
    let Some(found) = found else { return Err(format!("{when}: find_by_id found nothing")) };
    let got = found.credentials.as_ref().map(|c| (c.version, &c.document));
    if got != want {
        let show = |d: Option<(u64, &Document)>| d.map(|(v, d)| format!("version {v}, {} bytes", d.len()));
        return Err(format!("{when}: read back {:?}, expected {:?}", show(got), show(want)));
    }
    if (found.id, &found.login, &found.email, found.role) != (user.id, &user.login, &user.email, user.role) {
        return Err(format!("{when}: the user's id, login, email or role changed"));
    }
    let by_login = store.find_by_login(&user.login).await.map_err(|e| store_err("find_by_login", e))?;
    if by_login.as_ref() != Some(&found) {
        return Err(format!("{when}: find_by_login does not return what find_by_id returns"));
    }
    Ok(())
}

async fn insert<S: UserStore>(store: &S, id: UserId, doc: &Document) -> Result<Swap, String> {
    store.insert_document(id, doc).await.map_err(|e| store_err("insert_document", e))
}

async fn swap<S: UserStore>(store: &S, id: UserId, expected: u64, doc: &Document) -> Result<Swap, String> {
    store.compare_and_swap(id, expected, doc).await.map_err(|e| store_err("compare_and_swap", e))
}

async fn reads_users<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    for user in &users {
        expect_document(&*store, user, None, "a seeded user").await?;
    }
    let (missing, missing_login) = fresh("missing")?;
    if store.find_by_id(missing).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("find_by_id found an id that does not exist".to_owned());
    }
    if store.find_by_login(&missing_login).await.map_err(|e| store_err("find_by_login", e))?.is_some() {
        return Err("find_by_login found a login that does not exist".to_owned());
    }
    Ok(())
}

async fn first_document_inserted_once<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let (user, full) = (&users[0], sample_document());
    if insert(&*store, user.id, &full).await? != (Swap::Swapped { version: 1 }) {
        return Err("the first insert_document was not Swapped at version 1".to_owned());
    }
    expect_document(&*store, user, Some((1, &full)), "after the first insert").await?;
    if insert(&*store, user.id, &counter(9)).await? != Swap::Conflict {
        return Err("a second insert_document was not a Conflict".to_owned());
    }
    expect_document(&*store, user, Some((1, &full)), "after the refused second insert").await?;
    if swap(&*store, users[1].id, 0, &counter(1)).await? != Swap::Conflict {
        return Err(
            "compare_and_swap from version 0 (no document) was not a Conflict: only an insert writes the first"
                .to_owned(),
        );
    }
    expect_document(&*store, &users[1], None, "after a swap from version 0").await
}

async fn swap_bumps_version<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let user = &users[0];
    let big = Document::from_json(format!(r#"{{"format":1,"pad":"{}"}}"#, "é".repeat(40_000)));
    let steps = [counter(1), big, sample_document(), counter(2)];
    if insert(&*store, user.id, &counter(0)).await? != (Swap::Swapped { version: 1 }) {
        return Err("the first insert_document was not Swapped at version 1".to_owned());
    }
    for (i, next) in steps.iter().enumerate() {
        let expected = i as u64 + 1;
        match swap(&*store, user.id, expected, next).await? {
            Swap::Swapped { version } if version == expected + 1 => {}
            other => {
                return Err(format!(
                    "swap from version {expected}: expected Swapped at {}, got {other:?}",
                    expected + 1
                ));
            }
        }
        expect_document(&*store, user, Some((expected + 1, next)), &format!("after swap {}", i + 1)).await?;
    }
    Ok(())
}

async fn stale_version_conflicts<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let user = &users[0];
    let _ = insert(&*store, user.id, &counter(0)).await?;
    if swap(&*store, user.id, 1, &counter(1)).await? != (Swap::Swapped { version: 2 }) {
        return Err("the first swap from version 1 did not succeed at version 2".to_owned());
    }
    for expected in [1, 3, 0, u64::MAX, i64::MAX as u64] {
        if swap(&*store, user.id, expected, &counter(99)).await? != Swap::Conflict {
            return Err(format!("a swap expecting version {expected} while the store holds 2 was not a Conflict"));
        }
    }
    expect_document(&*store, user, Some((2, &counter(1))), "after the conflicting swaps").await
}

async fn missing_user_conflicts<S: UserStore>(store: Arc<S>, _users: Vec<UserRecord>) -> Check {
    let (ghost, _) = fresh("ghost")?;
    if insert(&*store, ghost, &counter(1)).await? != Swap::Conflict {
        return Err("insert_document for a user that does not exist was not a Conflict".to_owned());
    }
    if swap(&*store, ghost, 1, &counter(1)).await? != Swap::Conflict {
        return Err("compare_and_swap for a user that does not exist was not a Conflict".to_owned());
    }
    if store.find_by_id(ghost).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("a write for a user that does not exist created the user".to_owned());
    }
    Ok(())
}

async fn writes_touch_one_user<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let (a, b) = (&users[0], &users[1]);
    let _ = insert(&*store, a.id, &counter(10)).await?;
    let _ = insert(&*store, b.id, &counter(20)).await?;
    let _ = swap(&*store, a.id, 1, &counter(11)).await?;
    expect_document(&*store, a, Some((2, &counter(11))), "the written user").await?;
    expect_document(&*store, b, Some((1, &counter(20))), "the other user").await?;
    expect_document(&*store, &users[2], None, "a user never written").await
}

fn runtime(check: &str) -> Result<tokio::runtime::Handle, String> {
    tokio::runtime::Handle::try_current().map_err(|_| format!("{check} needs a tokio runtime to spawn tasks on"))
}

/// Awaits every task; the values of those that returned `Ok(Some(_))`.
async fn winners<T: Send + 'static>(
    handles: Vec<tokio::task::JoinHandle<Result<Option<T>, StoreError>>>,
    what: &str,
) -> Result<Vec<T>, String> {
    let mut won = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(Ok(Some(value))) => won.push(value),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(store_err(what, e)),
            Err(e) => return Err(format!("a racing task failed: {e}")),
        }
    }
    Ok(won)
}

async fn racing_inserts<S: UserStore + 'static>(store: Arc<S>, users: Vec<UserRecord>, tasks: usize) -> Check {
    let rt = runtime("racing_inserts_one_winner")?;
    let user = users[0].clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles = (0..tasks as u64)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            rt.spawn(async move {
                barrier.wait().await;
                let won = store.insert_document(user.id, &counter(i)).await? == (Swap::Swapped { version: 1 });
                Ok(won.then_some(i))
            })
        })
        .collect();
    match winners(handles, "a racing insert_document").await?.as_slice() {
        [i] => expect_document(&*store, &users[0], Some((1, &counter(*i))), "after the insert race").await,
        won => Err(format!("{} of {tasks} inserts of a first document succeeded; exactly one must", won.len())),
    }
}

async fn racing_swaps<S: UserStore + 'static>(store: Arc<S>, users: Vec<UserRecord>, tasks: usize) -> Check {
    let rt = runtime("racing_swaps_one_winner")?;
    let user = users[0].clone();
    let _ = insert(&*store, user.id, &counter(0)).await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles = (1..=tasks as u64)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            rt.spawn(async move {
                barrier.wait().await;
                Ok(match store.compare_and_swap(user.id, 1, &counter(i)).await? {
                    Swap::Swapped { version } => Some((version, i)),
                    Swap::Conflict => None,
                })
            })
        })
        .collect();
    match winners(handles, "a racing compare_and_swap").await?.as_slice() {
        [(2, i)] => expect_document(&*store, &users[0], Some((2, &counter(*i))), "after the race").await,
        [(v, _)] => Err(format!("the winner reported version {v}, expected 2")),
        won => Err(format!("{} of {tasks} swaps from the same version succeeded; exactly one must", won.len())),
    }
}

async fn retried_swaps<S: UserStore + 'static>(store: Arc<S>, users: Vec<UserRecord>, tasks: usize) -> Check {
    let rt = runtime("retried_swaps_lose_no_update")?;
    let id = users[0].id;
    let _ = insert(&*store, id, &counter(0)).await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles = (0..tasks)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            rt.spawn(async move {
                barrier.wait().await;
                // Every lost swap means another task's swap won, so `tasks` attempts
                // always suffice; a store that conflicts spuriously fails, not hangs.
                for _ in 0..tasks.saturating_mul(4) {
                    let current = store.find_by_id(id).await?.and_then(|u| u.credentials);
                    let Some((version, n)) = current.and_then(|c| Some((c.version, count_of(&c.document)?))) else {
                        return Err(StoreError::Corrupt("the document vanished or was altered".to_owned()));
                    };
                    if let Swap::Swapped { .. } = store.compare_and_swap(id, version, &counter(n + 1)).await? {
                        return Ok(Some(()));
                    }
                }
                Err(StoreError::Backend("compare_and_swap kept conflicting with no concurrent winner".to_owned()))
            })
        })
        .collect();
    winners(handles, "a retrying task").await?;
    let want = counter(tasks as u64);
    expect_document(&*store, &users[0], Some((1 + tasks as u64, &want)), "after every task's increment landed").await
}

/// Walks the whole store in pages of `limit`; the ids visited, in order.
async fn walk<S: UserStore>(store: &S, limit: usize) -> Result<Vec<UserRecord>, String> {
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    for _ in 0..100_000 {
        let page = store.scan(after.as_deref(), limit).await.map_err(|e| store_err("scan", e))?;
        if page.users.len() > limit {
            return Err(format!("scan returned {} users for a limit of {limit}", page.users.len()));
        }
        seen.extend(page.users);
        match page.next {
            Some(next) if after.as_deref() == Some(next.as_str()) => {
                return Err("scan returned the cursor it was given: the walk would never end".to_owned());
            }
            Some(next) => after = Some(next),
            None => return Ok(seen),
        }
    }
    Err("scan did not end within 100 000 pages".to_owned())
}

async fn scan_visits_every_document_once<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    // Three users get a document; the fourth has none and must not be visited.
    for (i, user) in users.iter().take(3).enumerate() {
        let _ = insert(&*store, user.id, &counter(i as u64)).await?;
    }
    let _ = swap(&*store, users[0].id, 1, &counter(7)).await?;
    for limit in [1, 2, 1000] {
        let seen = walk(&*store, limit).await?;
        for (i, user) in users.iter().enumerate() {
            let visits: Vec<&UserRecord> = seen.iter().filter(|u| u.id == user.id).collect();
            let want = match i {
                0 => Some((2, counter(7))),
                1 | 2 => Some((1, counter(i as u64))),
                _ => None,
            };
            match (visits.as_slice(), &want) {
                ([], None) => {}
                ([found], Some((version, doc))) => {
                    let got = found.credentials.as_ref().map(|c| (c.version, &c.document));
                    if got != Some((*version, doc)) || found.login != user.login {
                        return Err(format!(
                            "scan (pages of {limit}) returned user {} with other data than find_by_id",
                            user.id
                        ));
                    }
                }
                (v, None) => {
                    return Err(format!("scan (pages of {limit}) visited a user without a document {} times", v.len()));
                }
                (v, Some(_)) => {
                    return Err(format!(
                        "scan (pages of {limit}) visited a user with a document {} times; exactly once is due",
                        v.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A document with mail queued, due at each of `due` (none: an empty outbox, as after
/// the last mail went out).
fn mail_at(due: &[u64]) -> Document {
    let entries: Vec<String> = due.iter().map(|t| format!(r#"{{"due":{t}}}"#)).collect();
    Document::from_json(format!(r#"{{"format":1,"outbox":[{}]}}"#, entries.join(",")))
}

/// A random time for a mail check to ask about, far from any clock (between about
/// 1970-01-12 and 2001-09-21), with room for the times around it.
fn mail_base() -> Result<u64, String> {
    let r = crate::crypto::random::u64().map_err(|e| format!("random: {e}"))?;
    Ok(1_000_000 + r % 1_000_000_000)
}

/// Asks the store for the users with mail due by `now`, at most `limit`, and checks
/// the answer against the check's own users (`ours`: each id with the due time of the
/// document the check last wrote for it, `None` for no mail waiting): no more than the
/// limit (0 counting as 1), each user once, only users with mail due by `now`, most
/// overdue first, and none of ours left out unless the limit cut it off at a later
/// time. Another user in the answer (a database shared with other runs) is read back
/// for its due time.
async fn expect_due<S: UserStore>(
    store: &S,
    now: u64,
    limit: usize,
    ours: &[(UserId, Option<u64>)],
    when: &str,
) -> Check {
    let asked = format!("{when}: mail_due(now = {now}, limit = {limit})");
    let answer = store.mail_due(Timestamp(now), limit).await.map_err(|e| store_err("mail_due", e))?;
    let cap = limit.max(1);
    if answer.len() > cap {
        return Err(format!("{asked} returned {} users", answer.len()));
    }
    let mut times = Vec::with_capacity(answer.len());
    for (i, id) in answer.iter().enumerate() {
        if answer[..i].contains(id) {
            return Err(format!("{asked} returned user {id} twice"));
        }
        let due = match ours.iter().find(|(mine, _)| mine == id) {
            Some((_, due)) => *due,
            None => {
                let found = store.find_by_id(*id).await.map_err(|e| store_err("find_by_id", e))?;
                let Some(found) = found else {
                    return Err(format!("{asked} returned user {id}, which find_by_id does not find"));
                };
                found.credentials.and_then(|c| c.document.mail_due_at()).map(|t| t.0)
            }
        };
        match due {
            Some(t) if t <= now => times.push(t),
            Some(t) => return Err(format!("{asked} returned a user whose mail is due later, at {t}")),
            None => return Err(format!("{asked} returned a user whose document has no mail waiting")),
        }
    }
    if times.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("{asked} returned users due at {times:?}: not most overdue first"));
    }
    for (id, due) in ours {
        let Some(t) = due.filter(|t| *t <= now) else { continue };
        if answer.contains(id) {
            continue;
        }
        let cut_off = answer.len() == cap && times.last().is_some_and(|last| *last <= t);
        if !cut_off {
            return Err(format!("{asked} left out a user whose mail is due at {t} (returned users due at {times:?})"));
        }
    }
    Ok(())
}

/// Due, not yet due and no mail: only the due documents are listed, most overdue
/// first (not in id order), within the limit.
async fn mail_due_lists_due_documents<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let base = mail_base()?;
    let mut ours: Vec<(UserId, Option<u64>)> = users.iter().map(|u| (u.id, None)).collect();
    expect_due(&*store, base + 1_000_000, 1000, &ours, "before any document").await?;
    // The most overdue user has the greatest id, so an answer in id order is caught.
    let mut users = users;
    users.sort_by(|a, b| b.id.as_str().cmp(a.id.as_str()));
    let writes = [
        (1, mail_at(&[base + 50, base - 100]), Some(base - 100)),
        (2, mail_at(&[base + 1000]), Some(base + 1000)),
        (3, counter(0), None),
        (0, mail_at(&[base - 300]), Some(base - 300)),
    ];
    ours.clear();
    for (i, doc, due) in writes {
        if insert(&*store, users[i].id, &doc).await? != (Swap::Swapped { version: 1 }) {
            return Err("the first insert_document was not Swapped at version 1".to_owned());
        }
        ours.push((users[i].id, due));
    }
    for limit in [1000, 2, 1, 0] {
        expect_due(&*store, base, limit, &ours, "two users due, one later, one without mail").await?;
    }
    let due_now: Vec<UserId> = store.mail_due(Timestamp(base), 1000).await.map_err(|e| store_err("mail_due", e))?;
    let mine: Vec<UserId> = due_now.into_iter().filter(|id| ours.iter().any(|(o, _)| o == id)).collect();
    if mine != [users[0].id, users[1].id] {
        return Err(format!("mail_due listed {} of the check's 2 due users, or not most overdue first", mine.len()));
    }
    expect_due(&*store, base - 300, 1000, &ours, "mail due exactly now").await?;
    expect_due(&*store, base - 301, 1000, &ours, "a second before any mail is due").await?;
    expect_due(&*store, base + 1000, 1000, &ours, "once the later mail is due too").await
}

/// Swaps `id`'s document from version `expected` to `doc`, whose mail is due at `due`,
/// and notes that in `ours`.
async fn swap_due<S: UserStore>(
    store: &S,
    ours: &mut [(UserId, Option<u64>)],
    id: UserId,
    expected: u64,
    doc: &Document,
    due: Option<u64>,
) -> Check {
    if swap(store, id, expected, doc).await? != (Swap::Swapped { version: expected + 1 }) {
        return Err(format!("a swap from version {expected} was not Swapped at version {}", expected + 1));
    }
    for entry in ours.iter_mut().filter(|(o, _)| *o == id) {
        entry.1 = due;
    }
    Ok(())
}

/// A swap that changes when mail is due changes the answer (a new earliest mail, the
/// last mail delivered, mail queued), and a failed swap or insert changes nothing.
async fn mail_due_follows_swaps<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let base = mail_base()?;
    let (a, b, c) = (users[0].id, users[1].id, users[2].id);
    let _ = insert(&*store, a, &mail_at(&[base - 300])).await?;
    let _ = insert(&*store, b, &mail_at(&[base - 100])).await?;
    let _ = insert(&*store, c, &counter(0)).await?;
    let mut ours = vec![(a, Some(base - 300)), (b, Some(base - 100)), (c, None)];
    expect_due(&*store, base, 1000, &ours, "after the first documents").await?;

    swap_due(&*store, &mut ours, b, 1, &mail_at(&[base - 500, base + 5]), Some(base - 500)).await?;
    expect_due(&*store, base, 1000, &ours, "after a swap made another user the most overdue").await?;
    expect_due(&*store, base, 1, &ours, "after a swap made another user the most overdue").await?;
    swap_due(&*store, &mut ours, a, 1, &mail_at(&[]), None).await?;
    expect_due(&*store, base, 1000, &ours, "after a swap delivered a user's last mail").await?;

    if swap(&*store, b, 1, &mail_at(&[])).await? != Swap::Conflict {
        return Err("a swap from a stale version was not a Conflict".to_owned());
    }
    if insert(&*store, a, &mail_at(&[base - 900])).await? != Swap::Conflict {
        return Err("a second insert_document was not a Conflict".to_owned());
    }
    if swap(&*store, c, 7, &mail_at(&[base - 900])).await? != Swap::Conflict {
        return Err("a swap from a future version was not a Conflict".to_owned());
    }
    expect_due(&*store, base, 1000, &ours, "after conflicting writes").await?;

    swap_due(&*store, &mut ours, c, 1, &mail_at(&[base + 10]), Some(base + 10)).await?;
    expect_due(&*store, base, 1000, &ours, "after a swap queued mail for later").await?;
    expect_due(&*store, base + 10, 1000, &ours, "once that mail is due").await
}

/// A user created with a document has its mail due time from that document.
async fn create_user_writes_mail_due<S: UserStore>(store: Arc<S>) -> Check {
    let base = mail_base()?;
    let mut ours = Vec::new();
    let users =
        [(Some(mail_at(&[base - 20])), Some(base - 20)), (Some(mail_at(&[base + 20])), Some(base + 20)), (None, None)];
    for (doc, due) in users {
        let (id, login) = fresh("mail")?;
        let user = UserRecord::new(id, login, "mail@example.test", Role::User);
        let user = match doc {
            Some(doc) => user.with_document(1, doc),
            None => user,
        };
        store.create_user(&user).await.map_err(|e| store_err("create_user", e))?;
        ours.push((id, due));
    }
    expect_due(&*store, base, 1000, &ours, "users created with their documents").await?;
    expect_due(&*store, base + 20, 1000, &ours, "users created with their documents").await?;
    let first = ours[0].0;
    if swap(&*store, first, 1, &mail_at(&[])).await? != (Swap::Swapped { version: 2 }) {
        return Err("a swap from version 1 of a created user did not succeed at version 2".to_owned());
    }
    ours[0].1 = None;
    expect_due(&*store, base, 1000, &ours, "after a swap delivered a created user's mail").await
}

async fn create_user_duplicates<S: UserStore>(store: Arc<S>) -> Check {
    let (id, login) = fresh("dup")?;
    let original =
        UserRecord::new(id, login.clone(), "dup@example.test", Role::Admin).with_document(1, sample_document());
    store.create_user(&original).await.map_err(|e| store_err("create_user", e))?;
    expect_document(&*store, &original, Some((1, &sample_document())), "a user created with a document").await?;
    let (other_id, other_login) = fresh("dup-other")?;
    let same_id = UserRecord::new(id, other_login.clone(), "x@example.test", Role::User);
    let same_login = UserRecord::new(other_id, login, "x@example.test", Role::User);
    for (what, user) in [("id", &same_id), ("login", &same_login)] {
        match store.create_user(user).await {
            Err(StoreError::Duplicate) => {}
            Err(e) => {
                return Err(format!("creating a user with a taken {what}: expected Duplicate, got the error {e}"));
            }
            Ok(()) => return Err(format!("creating a user with a taken {what} succeeded")),
        }
    }
    expect_document(&*store, &original, Some((1, &sample_document())), "after the refused duplicates").await?;
    if store.find_by_id(other_id).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("a refused create_user (taken login) left a user behind".to_owned());
    }
    if store.find_by_login(&other_login).await.map_err(|e| store_err("find_by_login", e))?.is_some() {
        return Err("a refused create_user (taken id) left its login behind".to_owned());
    }
    Ok(())
}

async fn logins_compare_exactly<S: UserStore>(store: Arc<S>) -> Check {
    let (id, login) = fresh("Case")?;
    store
        .create_user(&UserRecord::new(id, login.clone(), "c@example.test", Role::User))
        .await
        .map_err(|e| store_err("create_user", e))?;
    for other in [login.to_uppercase(), login.to_lowercase(), format!("{login} ")] {
        if store.find_by_login(&other).await.map_err(|e| store_err("find_by_login", e))?.is_some() {
            return Err("find_by_login must compare exactly, but matched another spelling".to_owned());
        }
    }
    Ok(())
}

async fn racing_creates<S: UserStore + 'static>(store: Arc<S>, tasks: usize) -> Check {
    let rt = runtime("racing_creates_one_winner")?;
    let (_, login) = fresh("create-race")?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        let (id, _) = fresh("create-race")?;
        let mine = UserRecord::new(id, login.clone(), "race@example.test", Role::User);
        handles.push(rt.spawn(async move {
            barrier.wait().await;
            match store.create_user(&mine).await {
                Ok(()) => Ok(Some(mine)),
                Err(StoreError::Duplicate) => Ok(None),
                Err(e) => Err(e),
            }
        }));
    }
    let won = winners(handles, "a racing create_user").await?;
    let [winner] = won.as_slice() else {
        return Err(format!("{} of {tasks} creations of one login succeeded; exactly one must", won.len()));
    };
    let found = store.find_by_login(&login).await.map_err(|e| store_err("find_by_login", e))?;
    if found.as_ref() != Some(winner) {
        return Err("after the creation race the login does not name the winner".to_owned());
    }
    Ok(())
}

async fn forget<S: UserStore>(store: &S, id: UserId, expected: u64) -> Result<Swap, String> {
    store.forget(id, expected).await.map_err(|e| store_err("forget", e))
}

/// Reads `user` back after a forget: either no user at all (a store that keeps the
/// users itself removes them) or the same user without a document (a store over the
/// application's own users table keeps its row); `find_by_login` agrees either way.
/// Returns whether the user is still there.
async fn expect_forgotten<S: UserStore>(store: &S, user: &UserRecord, when: &str) -> Result<bool, String> {
    let found = store.find_by_id(user.id).await.map_err(|e| store_err("find_by_id", e))?;
    match found {
        None => {
            let by_login = store.find_by_login(&user.login).await.map_err(|e| store_err("find_by_login", e))?;
            if by_login.is_some() {
                return Err(format!("{when}: find_by_id finds no user, but find_by_login still finds one"));
            }
            Ok(false)
        }
        Some(found) => {
            if let Some(stored) = &found.credentials {
                return Err(format!("{when}: the user still holds its document (version {})", stored.version));
            }
            expect_document(store, user, None, when).await?;
            Ok(true)
        }
    }
}

/// A forget at the stored version removes the document (and with it the user's place
/// in `mail_due` and `scan`); a stale, future or missing version, or a user that does
/// not exist, is a Conflict and changes nothing; other users are untouched. A store
/// may remove the user or keep it without a document: the kit accepts both, and a kept
/// user starts over (its next document is inserted at version 1).
async fn forget_removes_the_document<S: UserStore>(store: Arc<S>, users: Vec<UserRecord>) -> Check {
    let base = mail_base()?;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let (a_doc, b_doc) = (mail_at(&[base - 200]), mail_at(&[base - 50]));
    if insert(&*store, a.id, &mail_at(&[base - 100])).await? != (Swap::Swapped { version: 1 })
        || swap(&*store, a.id, 1, &a_doc).await? != (Swap::Swapped { version: 2 })
        || insert(&*store, b.id, &b_doc).await? != (Swap::Swapped { version: 1 })
    {
        return Err("setting up the documents (an insert, a swap, an insert) did not succeed".to_owned());
    }
    let mut ours: Vec<(UserId, Option<u64>)> = users.iter().map(|u| (u.id, None)).collect();
    ours[0].1 = Some(base - 200);
    ours[1].1 = Some(base - 50);
    expect_due(&*store, base, 1000, &ours, "before any forget").await?;

    for expected in [1, 3, 0, u64::MAX, i64::MAX as u64] {
        let answer = forget(&*store, a.id, expected).await?;
        if answer != Swap::Conflict {
            return Err(format!(
                "a forget expecting version {expected} while the store holds 2 answered {answer:?}; a Conflict is due"
            ));
        }
        let when = format!("after a forget expecting version {expected}");
        expect_document(&*store, a, Some((2, &a_doc)), &when).await?;
    }
    let (ghost, _) = fresh("ghost")?;
    for expected in [0, 1] {
        if forget(&*store, ghost, expected).await? != Swap::Conflict {
            return Err(format!(
                "a forget (expecting version {expected}) of a user that does not exist was not a Conflict"
            ));
        }
    }
    expect_due(&*store, base, 1000, &ours, "after the conflicting forgets").await?;

    let answer = forget(&*store, a.id, 2).await?;
    if answer != (Swap::Swapped { version: 0 }) {
        return Err(format!("a forget at the stored version answered {answer:?}; Swapped at version 0 is due"));
    }
    let kept = expect_forgotten(&*store, a, "after a forget at the stored version").await?;
    ours[0].1 = None;
    expect_due(&*store, base, 1000, &ours, "after a forget").await?;
    if walk(&*store, 1000).await?.iter().any(|u| u.id == a.id) {
        return Err("after a forget, scan still visits the user".to_owned());
    }
    expect_document(&*store, b, Some((1, &b_doc)), "another user, after a forget").await?;
    expect_document(&*store, c, None, "a user never written, after another's forget").await?;

    let again = insert(&*store, a.id, &counter(1)).await?;
    match (kept, again) {
        (true, Swap::Swapped { version: 1 }) | (false, Swap::Conflict) => {}
        (true, other) => {
            return Err(format!(
                "after a forget that kept the user, insert_document answered {other:?}; a first document at version 1 is due"
            ));
        }
        (false, other) => {
            return Err(format!("after a forget that removed the user, insert_document answered {other:?}"));
        }
    }

    // A user without a document is forgotten at version 0, and only at version 0.
    if forget(&*store, c.id, 1).await? != Swap::Conflict {
        return Err("a forget expecting version 1 of a user without a document was not a Conflict".to_owned());
    }
    let answer = forget(&*store, c.id, 0).await?;
    if answer != (Swap::Swapped { version: 0 }) {
        return Err(format!("a forget at version 0 of a user without a document answered {answer:?}"));
    }
    expect_forgotten(&*store, c, "after forgetting a user without a document").await?;
    expect_document(&*store, b, Some((1, &b_doc)), "another user, after the forgets").await?;
    ours[2].1 = None;
    expect_due(&*store, base, 1000, &ours, "after the forgets").await
}

/// Forgets and swaps racing from one version: exactly one of them wins, and the user
/// reads back as that winner left it.
async fn racing_forget_and_swaps<S: UserStore + 'static>(store: Arc<S>, users: Vec<UserRecord>, tasks: usize) -> Check {
    let rt = runtime("racing_forget_and_swaps_one_winner")?;
    let user = users[0].clone();
    if insert(&*store, user.id, &counter(0)).await? != (Swap::Swapped { version: 1 }) {
        return Err("the first insert_document was not Swapped at version 1".to_owned());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles = (1..=tasks as u64)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            rt.spawn(async move {
                barrier.wait().await;
                // Every other task forgets; the rest swap. `Some(None)`: a forget won.
                let swapped = if i % 2 == 0 {
                    store.forget(user.id, 1).await?.eq(&Swap::Swapped { version: 0 }).then_some(None)
                } else {
                    match store.compare_and_swap(user.id, 1, &counter(i)).await? {
                        Swap::Swapped { version } => Some(Some((version, i))),
                        Swap::Conflict => None,
                    }
                };
                Ok(swapped)
            })
        })
        .collect();
    match winners(handles, "a racing forget or compare_and_swap").await?.as_slice() {
        [None] => expect_forgotten(&*store, &users[0], "after a forget won the race").await.map(|_| ()),
        [Some((2, i))] => {
            expect_document(&*store, &users[0], Some((2, &counter(*i))), "after a swap won the race").await
        }
        [Some((v, _))] => Err(format!("the winning swap reported version {v}, expected 2")),
        won => {
            Err(format!("{} of {tasks} forgets and swaps from the same version succeeded; exactly one must", won.len()))
        }
    }
}
