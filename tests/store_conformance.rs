//! The store conformance kit (`twofactor::testkit`) against every shipped store:
//! `MemoryStore`, `SqliteStore` on a file and in memory, and `PostgresStore`; its
//! seeded mode against a store that does not create users; and the kit's own teeth:
//! each broken store below must fail, naming the check that caught it.

mod store_support;
mod wrapper_stores;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use store_support::temp_db;
use twofactor::store::{Document, MemoryStore, ScanPage, SqliteStore, Swap, UserRecord, UserStore};
use twofactor::testkit::{Conformance, DEFAULT_TASKS, Failure, Report, SEEDED_USERS, run_conformance};
use twofactor::{Role, StoreError, Timestamp, UserId};
use wrapper_stores::{AppUsers, NoScan};

/// The document checks (`run_seeded`).
const SEEDED_CHECKS: [&str; 14] = [
    "reads_users",
    "first_document_inserted_once",
    "swap_bumps_version",
    "stale_version_conflicts",
    "missing_user_conflicts",
    "writes_touch_one_user",
    "racing_inserts_one_winner",
    "racing_swaps_one_winner",
    "retried_swaps_lose_no_update",
    "scan_visits_every_document_once",
    "mail_due_lists_due_documents",
    "mail_due_follows_swaps",
    "forget_removes_the_document",
    "racing_forget_and_swaps_one_winner",
];
/// What `run` checks beyond them, on a store that creates users.
const CREATE_CHECKS: [&str; 4] =
    ["create_user_duplicates", "logins_compare_exactly", "racing_creates_one_winner", "create_user_writes_mail_due"];

fn passed(report: Result<Report, Failure>) {
    let report = report.unwrap_or_else(|failure| panic!("{failure}"));
    let all: Vec<&str> = SEEDED_CHECKS.iter().chain(&CREATE_CHECKS).copied().collect();
    assert_eq!(report.checks, all, "{report}");
    assert_eq!(report.tasks, DEFAULT_TASKS);
}

fn passed_seeded(report: Result<Report, Failure>) {
    let report = report.unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(report.checks, SEEDED_CHECKS, "{report}");
    assert_eq!(report.tasks, DEFAULT_TASKS);
}

#[track_caller]
fn failed(report: Result<Report, Failure>, check: &str) -> Failure {
    let failure = report.expect_err("the kit must reject this store");
    assert_eq!(failure.check, check, "{failure}");
    assert!(!failure.detail.is_empty());
    assert!(failure.to_string().contains(check), "{failure}");
    failure
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    passed(run_conformance(|| async { Ok::<_, StoreError>(MemoryStore::new()) }).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_conforms() {
    let (dir, _) = temp_db();
    let n = AtomicUsize::new(0);
    passed(
        run_conformance(|| {
            let path = dir.path().join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
            async move { SqliteStore::open(path).await }
        })
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_store_conforms() {
    passed(run_conformance(|| SqliteStore::connect("sqlite::memory:")).await);
}

/// All checks on one database file: the kit's random ids and logins let runs share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms_on_one_shared_file() {
    let (_dir, path) = temp_db();
    passed(run_conformance(|| SqliteStore::open(path.clone())).await);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    passed(
        run_conformance(|| async {
            let url = store_support::pg_schema_url().await;
            twofactor::store::PostgresStore::connect(&url).await
        })
        .await,
    );
}

/// The seeded checks on a PostgreSQL table whose users were added by the application
/// (plain SQL, version 0, no document).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms_seeded() {
    let url = store_support::pg_schema_url().await;
    let n = AtomicUsize::new(0);
    passed_seeded(
        Conformance::new()
            .run_seeded(|| {
                let (url, base) = (url.clone(), n.fetch_add(SEEDED_USERS, Ordering::Relaxed));
                async move {
                    let store = twofactor::store::PostgresStore::connect(&url).await?;
                    let mut ids = Vec::new();
                    for k in base..base + SEEDED_USERS {
                        let id = format!("app-user-{k}");
                        sqlx::query(
                            "INSERT INTO twofactor_users (id, login, email, role, version) VALUES ($1, $2, $3, 'user', 0)",
                        )
                        .bind(&id)
                        .bind(format!("login-{k}"))
                        .bind("app@example.test")
                        .execute(store.pool())
                        .await
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                        ids.push(UserId::new(&id).expect("id"));
                    }
                    Ok::<_, StoreError>((store, ids))
                }
            })
            .await,
    );
}

/// A `MemoryStore` holding `n` users without a document, as an application adds them;
/// their ids are text, not numbers.
fn app_users(n: usize) -> (MemoryStore, Vec<UserId>) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let store = MemoryStore::new();
    let ids = (0..n)
        .map(|_| {
            let k = NEXT.fetch_add(1, Ordering::Relaxed);
            let id = UserId::new(&format!("usr_{k:04}-é")).expect("id");
            store.add_user(id, &format!("app-login-{k}"), "app@example.test", Role::User).expect("add");
            id
        })
        .collect();
    (store, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_without_create_user_conforms_seeded() {
    let report = Conformance::new()
        .run_seeded(|| {
            let (inner, ids) = app_users(SEEDED_USERS);
            async move { Ok::<_, StoreError>((AppUsers(inner), ids)) }
        })
        .await;
    passed_seeded(report);

    // Its create_user is the default, so the full kit cannot run on it: the failure
    // says so instead of passing or panicking.
    let failure = run_conformance(|| async { Ok::<_, StoreError>(AppUsers::default()) }).await.expect_err("no users");
    assert!(failure.detail.contains("create_user"), "{failure}");
    let user = UserRecord::new(UserId::from(1_u64), "x", "x@example.test", Role::User);
    assert!(matches!(AppUsers::default().create_user(&user).await, Err(StoreError::Unsupported(_))));
}

/// More racing tasks than the default, seeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeded_kit_races_the_tasks_it_is_given() {
    let report = Conformance::new()
        .tasks(64)
        .run_seeded(|| {
            let (inner, ids) = app_users(SEEDED_USERS + 2);
            async move { Ok::<_, StoreError>((AppUsers(inner), ids)) }
        })
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!((report.checks.len(), report.tasks), (SEEDED_CHECKS.len(), 64));
}

/// The seeded kit refuses a factory that gives too few users, unknown users or users
/// that already have a document, rather than testing something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeded_kit_refuses_a_bad_factory() {
    let few = Conformance::new()
        .run_seeded(|| {
            let (inner, ids) = app_users(SEEDED_USERS - 1);
            async move { Ok::<_, StoreError>((AppUsers(inner), ids)) }
        })
        .await;
    assert!(failed(few, "reads_users").detail.contains("users"));

    let unknown = Conformance::new()
        .run_seeded(|| async {
            let ids = (0..SEEDED_USERS as u64).map(UserId::from).collect();
            Ok::<_, StoreError>((AppUsers::default(), ids))
        })
        .await;
    failed(unknown, "reads_users");

    let written = Conformance::new()
        .run_seeded(|| async {
            let (inner, ids) = app_users(SEEDED_USERS);
            let _ = inner.insert_document(ids[2], &Document::from_json(r#"{"format":1}"#)).await?;
            Ok::<_, StoreError>((AppUsers(inner), ids))
        })
        .await;
    assert!(failed(written, "reads_users").detail.contains("already has a document"));

    let broken_factory =
        Conformance::new().run_seeded(|| async { Err::<(AppUsers, Vec<UserId>), _>("no database") }).await;
    assert!(failed(broken_factory, "reads_users").detail.contains("no database"));
}

/// A broken store: a `MemoryStore` with one method replaced. `Mode` picks the defect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// compare_and_swap ignores the expected version: the last writer wins.
    LastWriterWins,
    /// insert_document overwrites a document that exists (and still says version 1).
    InsertOverwrites,
    /// Documents are cut to 4 KiB, as a `VARCHAR(4096)` column would.
    Truncates,
    /// Documents are parsed and written back as canonical JSON (sorted keys, no
    /// insignificant bytes), as a `JSONB` column would.
    ReEncodes,
    /// Non-ASCII characters are written as `\uXXXX` escapes (the same JSON value,
    /// other bytes), as an ASCII-only driver or column would.
    EscapesNonAscii,
    /// find_by_login ignores case.
    CaseInsensitiveLogin,
    /// scan's cursor is the first user of the next page instead of the last of this
    /// one, so the walk skips one user at every page boundary.
    ScanSkips,
    /// scan's cursor is the last user but one of the page, so the walk visits the
    /// page's last user again on the next page.
    ScanRepeats,
    /// mail_due answers in id order instead of most overdue first.
    DueInIdOrder,
    /// The due time is written with a user's first document only, as a store whose
    /// swap statement forgot the column would: mail_due answers from those.
    DueNotSwapped,
    /// forget ignores the expected version: a stale one removes the document too.
    ForgetIgnoresVersion,
    /// forget answers Swapped but removes nothing (a statement that matched no row
    /// read as success).
    ForgetKeepsDocument,
    /// forget is the trait's default (`Unsupported`), as in a store written before it.
    ForgetUnsupported,
}

#[derive(Clone)]
struct Broken {
    inner: MemoryStore,
    mode: Mode,
    /// Lowercased login to id, for `CaseInsensitiveLogin`.
    folded: Arc<Mutex<HashMap<String, UserId>>>,
    /// The due time of each user's first document, for `DueNotSwapped`.
    first_due: Arc<Mutex<HashMap<UserId, Timestamp>>>,
}

impl Broken {
    fn new(mode: Mode) -> Broken {
        Broken { inner: MemoryStore::new(), mode, folded: Arc::default(), first_due: Arc::default() }
    }

    fn remember_due(&self, id: UserId, document: &Document) {
        if let Some(due) = document.mail_due_at() {
            self.first_due.lock().unwrap().insert(id, due);
        }
    }

    fn store(&self, document: &Document) -> Document {
        match self.mode {
            Mode::Truncates => {
                let json = document.as_json();
                let mut end = json.len().min(4096);
                while !json.is_char_boundary(end) {
                    end -= 1;
                }
                Document::from_json(&json[..end])
            }
            Mode::EscapesNonAscii => {
                let mut out = String::new();
                for c in document.as_json().chars() {
                    if c.is_ascii() {
                        out.push(c);
                    } else {
                        for unit in c.encode_utf16(&mut [0; 2]) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                }
                Document::from_json(out)
            }
            Mode::ReEncodes => match serde_json::from_str::<serde_json::Value>(document.as_json()) {
                Ok(value) => Document::from_json(value.to_string()),
                Err(_) => document.clone(),
            },
            _ => document.clone(),
        }
    }

    fn remember_login(&self, user: &UserRecord) {
        self.folded.lock().unwrap().insert(user.login.to_lowercase(), user.id);
    }
}

impl UserStore for Broken {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.find_by_id(id).await
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        if self.mode != Mode::CaseInsensitiveLogin {
            return self.inner.find_by_login(login).await;
        }
        let id = self.folded.lock().unwrap().get(&login.to_lowercase()).copied();
        match id {
            Some(id) => self.inner.find_by_id(id).await,
            None => Ok(None),
        }
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        let document = self.store(document);
        if self.mode == Mode::InsertOverwrites
            && let Some(current) = self.inner.find_by_id(id).await?.and_then(|u| u.credentials)
        {
            return self.inner.compare_and_swap(id, current.version, &document).await.map(|swap| match swap {
                Swap::Swapped { .. } => Swap::Swapped { version: 1 },
                other => other,
            });
        }
        let swap = self.inner.insert_document(id, &document).await?;
        if swap == (Swap::Swapped { version: 1 }) {
            self.remember_due(id, &document);
        }
        Ok(swap)
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        let document = self.store(document);
        if self.mode == Mode::LastWriterWins {
            let current = self.inner.find_by_id(id).await?.and_then(|u| u.credentials);
            let Some(current) = current else { return Ok(Swap::Conflict) };
            return self.inner.compare_and_swap(id, current.version, &document).await;
        }
        self.inner.compare_and_swap(id, expected, &document).await
    }

    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        let limit = limit.max(1);
        match self.mode {
            Mode::ScanSkips => {
                // Reads one user too many and resumes after it.
                let mut page = self.inner.scan(after, limit + 1).await?;
                let next = (page.users.len() > limit).then(|| page.users[limit].id.to_string());
                page.users.truncate(limit);
                Ok(ScanPage::new(page.users, next))
            }
            Mode::ScanRepeats => {
                let page = self.inner.scan(after, limit).await?;
                let next = match (&page.next, page.users.len()) {
                    (Some(_), n) if n >= 2 => Some(page.users[n - 2].id.to_string()),
                    (next, _) => next.clone(),
                };
                Ok(ScanPage::new(page.users, next))
            }
            _ => self.inner.scan(after, limit).await,
        }
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let stored = match &user.credentials {
            Some(c) => UserRecord::new(user.id, user.login.as_str(), user.email.as_str(), user.role)
                .with_document(c.version, self.store(&c.document)),
            None => user.clone(),
        };
        self.inner.create_user(&stored).await?;
        self.remember_login(user);
        if let Some(c) = &stored.credentials {
            self.remember_due(user.id, &c.document);
        }
        Ok(())
    }

    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        match self.mode {
            Mode::DueInIdOrder => {
                let mut due = self.inner.mail_due(now, usize::MAX).await?;
                due.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                due.truncate(limit.max(1));
                Ok(due)
            }
            Mode::DueNotSwapped => {
                let mut due: Vec<(Timestamp, UserId)> = self
                    .first_due
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, t)| **t <= now)
                    .map(|(id, t)| (*t, *id))
                    .collect();
                due.sort();
                Ok(due.into_iter().take(limit.max(1)).map(|(_, id)| id).collect())
            }
            _ => self.inner.mail_due(now, limit).await,
        }
    }

    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        match self.mode {
            Mode::ForgetIgnoresVersion => {
                let current = self.inner.find_by_id(id).await?.map(|u| u.credentials.map_or(0, |c| c.version));
                match current {
                    Some(version) => self.inner.forget(id, version).await,
                    None => Ok(Swap::Conflict),
                }
            }
            Mode::ForgetKeepsDocument => {
                let current = self.inner.find_by_id(id).await?.map(|u| u.credentials.map_or(0, |c| c.version));
                Ok(if current == Some(expected) { Swap::Swapped { version: 0 } } else { Swap::Conflict })
            }
            Mode::ForgetUnsupported => Err(StoreError::Unsupported("this store cannot forget users")),
            _ => self.inner.forget(id, expected).await,
        }
    }
}

/// The seeded factory for a broken store: users added behind its back.
fn seeded(mode: Mode) -> impl FnMut() -> std::future::Ready<Result<(Broken, Vec<UserId>), StoreError>> {
    move || {
        let broken = Broken::new(mode);
        let ids = (0..SEEDED_USERS as u64)
            .map(|k| {
                let user = UserRecord::new(UserId::from(900 + k), format!("Seeded-{k}"), "s@example.test", Role::User);
                broken.inner.add_user(user.id, &user.login, &user.email, user.role).expect("add");
                broken.remember_login(&user);
                user.id
            })
            .collect();
        std::future::ready(Ok((broken, ids)))
    }
}

async fn full_kit(mode: Mode) -> Result<Report, Failure> {
    run_conformance(|| async move { Ok::<_, StoreError>(Broken::new(mode)) }).await
}

/// Each broken store fails the full kit and the seeded kit, at the check that covers
/// its defect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_broken_stores() {
    let cases = [
        (Mode::LastWriterWins, "stale_version_conflicts"),
        (Mode::InsertOverwrites, "first_document_inserted_once"),
        // The sample document (about 1.5 KB) fits; the 80 KB one does not.
        (Mode::Truncates, "swap_bumps_version"),
        (Mode::ReEncodes, "first_document_inserted_once"),
        (Mode::EscapesNonAscii, "first_document_inserted_once"),
        (Mode::ScanSkips, "scan_visits_every_document_once"),
        (Mode::ScanRepeats, "scan_visits_every_document_once"),
        (Mode::DueInIdOrder, "mail_due_lists_due_documents"),
        (Mode::DueNotSwapped, "mail_due_follows_swaps"),
        (Mode::ForgetIgnoresVersion, "forget_removes_the_document"),
        (Mode::ForgetKeepsDocument, "forget_removes_the_document"),
        (Mode::ForgetUnsupported, "forget_removes_the_document"),
    ];
    for (mode, check) in cases {
        let failure = failed(full_kit(mode).await, check);
        let seeded = failed(Conformance::new().run_seeded(seeded(mode)).await, check);
        let expect = match mode {
            Mode::LastWriterWins => Some("was not a Conflict"),
            Mode::ScanSkips => Some("visited a user with a document 0 times"),
            Mode::ScanRepeats => Some("visited a user with a document 2 times"),
            Mode::DueInIdOrder => Some("not most overdue first"),
            Mode::ForgetIgnoresVersion => Some("a forget expecting version"),
            Mode::ForgetKeepsDocument => Some("still holds its document"),
            Mode::ForgetUnsupported => Some("forget failed"),
            _ => None,
        };
        if let Some(expect) = expect {
            assert!(failure.detail.contains(expect), "{failure}");
            assert!(seeded.detail.contains(expect), "{seeded}");
        }
    }
}

/// A store that cannot walk its documents (`scan` left at the trait's default,
/// `Unsupported`) is right by every other check; the scan check fails on it, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_a_store_without_scan() {
    assert!(matches!(NoScan::default().scan(None, 10).await, Err(StoreError::Unsupported(_))));
    let full = failed(
        run_conformance(|| async { Ok::<_, StoreError>(NoScan::default()) }).await,
        "scan_visits_every_document_once",
    );
    assert!(full.detail.contains("scan"), "{full}");
    let seeded = failed(
        Conformance::new()
            .run_seeded(|| {
                let (inner, ids) = app_users(SEEDED_USERS);
                async move { Ok::<_, StoreError>((NoScan(inner), ids)) }
            })
            .await,
        "scan_visits_every_document_once",
    );
    assert!(seeded.detail.contains("scan"), "{seeded}");
}

/// A store whose logins ignore case is right by every document check; only the full
/// kit's `logins_compare_exactly` flags it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_a_case_insensitive_login_store() {
    passed_seeded(Conformance::new().run_seeded(seeded(Mode::CaseInsensitiveLogin)).await);
    let failure = failed(full_kit(Mode::CaseInsensitiveLogin).await, "logins_compare_exactly");
    assert!(failure.detail.contains("another spelling"), "{failure}");
}

/// The race check must catch a store that is right one call at a time but checks, then
/// writes: a pause between its login check and its write lets racing creations all pass
/// the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_rejects_a_check_then_create_store() {
    /// Users by id in a `MemoryStore` (under their id as login), logins in a map of
    /// its own that `create_user` checks and fills in two steps.
    #[derive(Clone, Default)]
    struct CheckThenCreate {
        rows: MemoryStore,
        logins: Arc<Mutex<HashMap<String, UserId>>>,
    }
    impl CheckThenCreate {
        fn named(&self, user: Option<UserRecord>) -> Option<UserRecord> {
            user.map(|mut user| {
                let logins = self.logins.lock().unwrap();
                user.login = logins.iter().find(|(_, id)| **id == user.id).map(|(n, _)| n.clone()).unwrap();
                user
            })
        }
    }
    impl UserStore for CheckThenCreate {
        async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
            Ok(self.named(self.rows.find_by_id(id).await?))
        }
        async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
            let id = self.logins.lock().unwrap().get(login).copied();
            match id {
                Some(id) => self.find_by_id(id).await,
                None => Ok(None),
            }
        }
        async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
            self.rows.insert_document(id, document).await
        }
        async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
            self.rows.compare_and_swap(id, expected, document).await
        }
        async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
            let page = self.rows.scan(after, limit).await?;
            let users = page.users.into_iter().filter_map(|user| self.named(Some(user))).collect();
            Ok(ScanPage::new(users, page.next))
        }
        async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
            self.rows.mail_due(now, limit).await
        }
        async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
            self.rows.forget(id, expected).await
        }
        async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
            if self.logins.lock().unwrap().contains_key(&user.login) {
                return Err(StoreError::Duplicate);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let mut row = user.clone();
            row.login = user.id.to_string();
            self.rows.create_user(&row).await?;
            self.logins.lock().unwrap().insert(user.login.clone(), user.id);
            Ok(())
        }
    }
    let failure =
        run_conformance(|| async { Ok::<_, StoreError>(CheckThenCreate::default()) }).await.expect_err("must fail");
    assert_eq!(failure.check, "racing_creates_one_winner", "{failure}");
}
