//! A conformance kit for [`UserStore`] implementations (feature `testkit`).
//!
//! [`run_conformance`] takes a factory that makes a fresh, empty store and checks the
//! whole store contract against it: a fully populated record (every field, all three
//! 2FA states, `u64` values near 2^64) reads back exactly as written; a taken id or
//! username is [`StoreError::Duplicate`] and writes nothing; a swap bumps the version by
//! one and replaces child data (backup codes, locations, pending marks) completely; a
//! stale or future version, or a missing id, is [`Swap::Conflict`] and changes
//! nothing; a swap never changes the username; N tokio tasks racing one swap from the
//! same version produce exactly one winner; and N tasks that each re-read and retry
//! until their increment lands lose no update.
//!
//! Run it on tokio's multi-thread runtime so the racing tasks really run in parallel.
//! Ids and usernames are random, so runs may share a database. A failing check is a
//! [`Failure`] naming the check and what differed, never a panic.
//!
//! ```no_run
//! use twofactor::testkit::run_conformance;
//! use twofactor::MemoryStore; // your store here
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

use crate::account::{
    Account, AccountId, BackupCodeHash, Enabled, Enrolling, PendingMark, RememberedLocation, ResetRecord, Role,
    SealedSecret, Throttle, TwoFactor, Versioned,
};
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::{Swap, UserStore};
use crate::totp::{Algorithm, TotpParams};

/// How many tasks race by default in the concurrency checks.
pub const DEFAULT_TASKS: usize = 32;

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

/// Runs every check, each against a fresh store from `factory`, with
/// [`DEFAULT_TASKS`] racing tasks.
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

    /// Runs every check, each against a fresh store from `factory`.
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
        let mut checks = Vec::new();
        macro_rules! check {
            ($name:literal, $f:expr) => {{
                let store = factory().await.map_err(|e| Failure { check: $name, detail: format!("factory: {e}") })?;
                let result: Check = $f(Arc::new(store)).await;
                result.map_err(|detail| Failure { check: $name, detail })?;
                checks.push($name);
            }};
        }
        check!("round_trip", round_trip);
        check!("duplicates", duplicates);
        check!("swap_bumps_version", swap_bumps_version);
        check!("stale_version_conflicts", stale_version_conflicts);
        check!("missing_id_conflicts", missing_id_conflicts);
        check!("username_unchanged_by_swap", username_unchanged_by_swap);
        let tasks = self.tasks;
        check!("racing_inserts_one_winner", |s| racing_inserts(s, tasks));
        check!("racing_swaps_one_winner", |s| racing_swaps(s, tasks));
        check!("retried_swaps_lose_no_update", |s| retried_swaps(s, tasks));
        Ok(Report { checks, tasks })
    }
}

/// A fully populated record: enabled 2FA with three backup codes (one expiring), two
/// remembered locations, three pending marks, a throttle, a reset record, and `u64`
/// values near 2^64 for the stamp, the TOTP step and some times. Id and username are
/// as given.
pub fn sample_account(id: AccountId, username: &str) -> Account {
    let big = u64::MAX;
    Account {
        id,
        username: username.to_owned(),
        email: format!("{username}@example.test"),
        role: Role::Admin,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        security_stamp: big - 1,
        created_at: Timestamp(1_800_000_000),
        two_factor: TwoFactor::Enabled(Enabled {
            secret: SealedSecret((0..=255).collect()),
            params: TotpParams { algorithm: Algorithm::Sha512, digits: 8, period: 60 },
            last_used_step: big - 7,
            backup_codes: vec![
                BackupCodeHash { phc: "$argon2id$code-1".to_owned(), issued_at: Timestamp(10), expires_at: None },
                BackupCodeHash {
                    phc: "$argon2id$code-2".to_owned(),
                    issued_at: Timestamp(20),
                    expires_at: Some(Timestamp(big)),
                },
                BackupCodeHash {
                    phc: "$argon2id$code-3".to_owned(),
                    issued_at: Timestamp(i64::MAX as u64 + 1),
                    expires_at: Some(Timestamp(30)),
                },
            ],
            enabled_at: Timestamp(1_800_000_100),
        }),
        throttle: Throttle {
            failures: u32::MAX,
            until: Some(Timestamp(big - 2)),
            second_factor_failures: u32::MAX - 1,
            second_factor_locked: true,
        },
        locations: vec![
            RememberedLocation {
                id: [7; 16],
                token_hash: [0xfe; 32],
                label: "Firefox on Linux — ünïcödé".to_owned(),
                created_at: Timestamp(100),
                last_used_at: Timestamp(200),
                expires_at: Timestamp(big),
            },
            RememberedLocation {
                id: [0; 16],
                token_hash: [1; 32],
                label: String::new(),
                created_at: Timestamp(0),
                last_used_at: Timestamp(0),
                expires_at: Timestamp(1),
            },
        ],
        pending: vec![
            PendingMark { id: [3; 16], expires_at: Timestamp(big - 3), failures: 2, consumed: false },
            PendingMark { id: [4; 16], expires_at: Timestamp(5), failures: 0, consumed: true },
            PendingMark { id: [2; 16], expires_at: Timestamp(6), failures: u32::MAX, consumed: false },
        ],
        last_reset: Some(ResetRecord {
            by: AccountId(i64::MAX as u64),
            by_username: "support-1".to_owned(),
            by_role: Role::Support,
            identity_check: "video call; photo ID 'x' \"y\" ; DROP TABLE".to_owned(),
            at: Timestamp(big - 4),
        }),
        retired_totp_step: big - 5,
    }
}

/// A random id below 2^63 and a username unique to this run.
fn fresh(prefix: &str) -> Result<(AccountId, String), String> {
    let bytes = crate::random::bytes::<8>().map_err(|e| format!("random: {e}"))?;
    let id = u64::from_le_bytes(bytes) >> 1;
    Ok((AccountId(id), format!("{prefix}-{id:016x}")))
}

fn fresh_account(prefix: &str) -> Result<Account, String> {
    let (id, username) = fresh(prefix)?;
    Ok(sample_account(id, &username))
}

fn plain(account: &Account) -> Account {
    Account {
        two_factor: TwoFactor::Disabled,
        throttle: Throttle::default(),
        locations: vec![],
        pending: vec![],
        last_reset: None,
        retired_totp_step: 0,
        security_stamp: 0,
        role: Role::User,
        ..account.clone()
    }
}

fn enrolling(account: &Account) -> Account {
    Account {
        two_factor: TwoFactor::Enrolling(Enrolling {
            secret: SealedSecret(vec![9; 40]),
            params: TotpParams { algorithm: Algorithm::Sha256, digits: 6, period: 15 },
            started_at: Timestamp(u64::MAX),
        }),
        ..plain(account)
    }
}

/// Names the fields that differ (records redact their secrets in `Debug`).
fn differences(expected: &Account, found: &Account) -> String {
    let mut fields = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => { $( if expected.$f != found.$f { fields.push(stringify!($f)); } )* };
    }
    cmp!(
        id,
        username,
        email,
        role,
        password_hash,
        security_stamp,
        created_at,
        two_factor,
        throttle,
        locations,
        pending,
        last_reset,
        retired_totp_step
    );
    fields.join(", ")
}

fn store_err(what: &str, err: StoreError) -> String {
    format!("{what} failed: {err}")
}

async fn expect_stored<S: UserStore>(store: &S, want: &Account, version: u64, when: &str) -> Check {
    let found = store.find_by_id(want.id).await.map_err(|e| store_err("find_by_id", e))?;
    let Some(Versioned { version: v, record }) = found else {
        return Err(format!("{when}: find_by_id found nothing"));
    };
    if v != version {
        return Err(format!("{when}: version is {v}, expected {version}"));
    }
    if &record != want {
        return Err(format!("{when}: the record read back differs in: {}", differences(want, &record)));
    }
    let by_name = store.find_by_username(&want.username).await.map_err(|e| store_err("find_by_username", e))?;
    if by_name.as_ref().map(|f| (f.version, &f.record)) != Some((version, want)) {
        return Err(format!("{when}: find_by_username does not return the same record and version as find_by_id"));
    }
    Ok(())
}

async fn round_trip<S: UserStore>(store: Arc<S>) -> Check {
    let full = fresh_account("full")?;
    let disabled = plain(&fresh_account("disabled")?);
    let enrolling = enrolling(&fresh_account("enrolling")?);
    for a in [&full, &disabled, &enrolling] {
        store.insert(a).await.map_err(|e| store_err("insert", e))?;
    }
    for a in [&full, &disabled, &enrolling] {
        expect_stored(&*store, a, 1, &format!("after inserting a {} record", a.two_factor.name())).await?;
    }
    let (missing, missing_name) = fresh("missing")?;
    if store.find_by_id(missing).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("find_by_id found an id never inserted".to_owned());
    }
    if store.find_by_username(&missing_name).await.map_err(|e| store_err("find_by_username", e))?.is_some() {
        return Err("find_by_username found a name never inserted".to_owned());
    }
    let upper = full.username.to_uppercase();
    if store.find_by_username(&upper).await.map_err(|e| store_err("find_by_username", e))?.is_some() {
        return Err("find_by_username must compare exactly, but matched another case".to_owned());
    }
    Ok(())
}

async fn duplicates<S: UserStore>(store: Arc<S>) -> Check {
    let original = fresh_account("dup")?;
    store.insert(&original).await.map_err(|e| store_err("insert", e))?;
    let (other_id, other_name) = fresh("dup-other")?;
    let same_id = Account { username: other_name, ..plain(&original) };
    let same_name = Account { id: other_id, ..plain(&original) };
    for (what, a) in [("id", &same_id), ("username", &same_name)] {
        match store.insert(a).await {
            Err(StoreError::Duplicate) => {}
            Err(e) => return Err(format!("inserting a taken {what}: expected Duplicate, got the error {e}")),
            Ok(()) => return Err(format!("inserting a taken {what} succeeded")),
        }
    }
    expect_stored(&*store, &original, 1, "after the refused duplicates").await?;
    if store.find_by_id(other_id).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("a refused insert (taken username) left a record behind".to_owned());
    }
    if store.find_by_username(&same_id.username).await.map_err(|e| store_err("find_by_username", e))?.is_some() {
        return Err("a refused insert (taken id) left its username behind".to_owned());
    }
    Ok(())
}

async fn swap<S: UserStore>(store: &S, expected: u64, a: &Account) -> Result<Swap, String> {
    store.compare_and_swap(expected, a).await.map_err(|e| store_err("compare_and_swap", e))
}

async fn swap_bumps_version<S: UserStore>(store: Arc<S>) -> Check {
    let full = fresh_account("swap")?;
    store.insert(&full).await.map_err(|e| store_err("insert", e))?;
    // Full → plain (every child row goes) → enrolling → full again (child rows return).
    let steps = [plain(&full), enrolling(&full), full.clone()];
    for (i, next) in steps.iter().enumerate() {
        let expected = i as u64 + 1;
        match swap(&*store, expected, next).await? {
            Swap::Swapped { version } if version == expected + 1 => {}
            other => {
                return Err(format!(
                    "swap from version {expected}: expected Swapped at {}, got {other:?}",
                    expected + 1
                ));
            }
        }
        expect_stored(&*store, next, expected + 1, &format!("after swap {}", i + 1)).await?;
    }
    Ok(())
}

async fn stale_version_conflicts<S: UserStore>(store: Arc<S>) -> Check {
    let full = fresh_account("stale")?;
    store.insert(&full).await.map_err(|e| store_err("insert", e))?;
    if !matches!(swap(&*store, 1, &full).await?, Swap::Swapped { version: 2 }) {
        return Err("the first swap from version 1 did not succeed at version 2".to_owned());
    }
    let other = plain(&full);
    for expected in [1, 3, 0, u64::MAX] {
        if swap(&*store, expected, &other).await? != Swap::Conflict {
            return Err(format!("a swap expecting version {expected} while the store holds 2 was not a Conflict"));
        }
    }
    expect_stored(&*store, &full, 2, "after the conflicting swaps").await
}

async fn missing_id_conflicts<S: UserStore>(store: Arc<S>) -> Check {
    let ghost = fresh_account("ghost")?;
    if swap(&*store, 1, &ghost).await? != Swap::Conflict {
        return Err("a swap of an id never inserted was not a Conflict".to_owned());
    }
    if store.find_by_id(ghost.id).await.map_err(|e| store_err("find_by_id", e))?.is_some() {
        return Err("a swap of an id never inserted created the record".to_owned());
    }
    Ok(())
}

async fn username_unchanged_by_swap<S: UserStore>(store: Arc<S>) -> Check {
    let full = fresh_account("rename")?;
    store.insert(&full).await.map_err(|e| store_err("insert", e))?;
    let (_, new_name) = fresh("renamed")?;
    let renamed = Account { username: new_name.clone(), email: "changed@example.test".to_owned(), ..full.clone() };
    if !matches!(swap(&*store, 1, &renamed).await?, Swap::Swapped { version: 2 }) {
        return Err("the swap did not succeed".to_owned());
    }
    let want = Account { username: full.username.clone(), ..renamed };
    expect_stored(&*store, &want, 2, "after a swap that tried to rename").await?;
    if store.find_by_username(&new_name).await.map_err(|e| store_err("find_by_username", e))?.is_some() {
        return Err("the swap changed the username".to_owned());
    }
    Ok(())
}

fn runtime(check: &str) -> Result<tokio::runtime::Handle, String> {
    tokio::runtime::Handle::try_current().map_err(|_| format!("{check} needs a tokio runtime to spawn tasks on"))
}

/// `tasks` inserts of different ids under one username: exactly one is stored, the rest
/// are [`StoreError::Duplicate`] (a store that checks for the name, then inserts, fails).
async fn racing_inserts<S: UserStore + 'static>(store: Arc<S>, tasks: usize) -> Check {
    let rt = runtime("racing_inserts_one_winner")?;
    let (_, username) = fresh("insert-race")?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        let (id, _) = fresh("insert-race")?;
        let mine = plain(&sample_account(id, &username));
        handles.push(rt.spawn(async move {
            barrier.wait().await;
            store.insert(&mine).await.map(|()| mine)
        }));
    }
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(Ok(mine)) => winners.push(mine),
            Ok(Err(StoreError::Duplicate)) => {}
            Ok(Err(e)) => return Err(store_err("a racing insert", e)),
            Err(e) => return Err(format!("a racing task failed: {e}")),
        }
    }
    let [winner] = winners.as_slice() else {
        return Err(format!("{} of {tasks} inserts of one username succeeded; exactly one must", winners.len()));
    };
    let found = store.find_by_username(&username).await.map_err(|e| store_err("find_by_username", e))?;
    match found {
        Some(v) if v.record == *winner && v.version == 1 => Ok(()),
        _ => Err("after the insert race the username does not hold the winner's record at version 1".to_owned()),
    }
}

async fn racing_swaps<S: UserStore + 'static>(store: Arc<S>, tasks: usize) -> Check {
    let rt = runtime("racing_swaps_one_winner")?;
    let base = fresh_account("race")?;
    store.insert(&base).await.map_err(|e| store_err("insert", e))?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            let mut mine = base.clone();
            mine.throttle.failures = i as u32;
            rt.spawn(async move {
                barrier.wait().await;
                store.compare_and_swap(1, &mine).await.map(|s| (s, mine))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(Ok((Swap::Swapped { version }, mine))) => winners.push((version, mine)),
            Ok(Ok((Swap::Conflict, _))) => {}
            Ok(Err(e)) => return Err(store_err("a racing compare_and_swap", e)),
            Err(e) => return Err(format!("a racing task failed: {e}")),
        }
    }
    match winners.as_slice() {
        [(2, mine)] => expect_stored(&*store, mine, 2, "after the race").await,
        [(v, _)] => Err(format!("the winner reported version {v}, expected 2")),
        _ => Err(format!("{} of {tasks} swaps from the same version succeeded; exactly one must", winners.len())),
    }
}

async fn retried_swaps<S: UserStore + 'static>(store: Arc<S>, tasks: usize) -> Check {
    let rt = runtime("retried_swaps_lose_no_update")?;
    let base = plain(&fresh_account("counter")?);
    store.insert(&base).await.map_err(|e| store_err("insert", e))?;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let id = base.id;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            rt.spawn(async move {
                barrier.wait().await;
                // Every lost swap means another task's swap won, so `tasks` attempts
                // always suffice; a store that conflicts spuriously fails, not hangs.
                for _ in 0..tasks.saturating_mul(4) {
                    let Some(current) = store.find_by_id(id).await? else {
                        return Err(StoreError::Corrupt("the record vanished".to_owned()));
                    };
                    let mut next = current.record;
                    next.throttle.failures += 1;
                    if let Swap::Swapped { .. } = store.compare_and_swap(current.version, &next).await? {
                        return Ok(());
                    }
                }
                Err(StoreError::Backend("compare_and_swap kept conflicting with no concurrent winner".to_owned()))
            })
        })
        .collect();
    for handle in handles {
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(store_err("a retrying task", e)),
            Err(e) => return Err(format!("a retrying task failed: {e}")),
        }
    }
    let mut want = base;
    want.throttle.failures = tasks as u32;
    expect_stored(&*store, &want, 1 + tasks as u64, "after every task's increment landed").await
}
