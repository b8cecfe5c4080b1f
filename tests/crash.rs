//! Crash tests of the outbox (issue 13, item 5) with a real process killed by SIGKILL,
//! on a SQLite file and on PostgreSQL, and the real SMTP sink (`scripts/with-services`).
//!
//! The test binary re-executes itself as the child (the test `crash_child`, which does
//! nothing unless `TWOFACTOR_CRASH_CHILD` holds its parameters; the key ring comes in
//! `TWOFACTOR_CRASH_KEYS`). The child opens the database, does its part, tells the
//! parent (a file it renames into place) and then blocks; the parent kills it with
//! SIGKILL (`Child::kill`), then "restarts": a fresh store over the same database, a
//! fresh engine with the same key ring, and an `SmtpMailer` to the sink.
//!
//! - **Killed after the commit, before any delivery**: the child logs in with a backup
//!   code (the old code void, the new one stored and queued, in one write) and is
//!   killed. After the restart one `deliver_due` mails the new code, it works at
//!   login, and the old one stays void.
//! - **Killed in the middle of a send** (after the claim): the child's mailer signals
//!   and blocks inside `send`. After the restart the message is not sent again before
//!   the claim's lease ends (the clock is the parent's: a `ManualClock` the child
//!   starts at the same instant), and after it, it is sent once, with the Message-ID
//!   the child was sending.
#![cfg(all(feature = "sqlite", feature = "smtp"))]

mod maildir;
mod store_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use maildir::{Mail, mails_to, sink};
use serde_json::{Value, json};
use twofactor::mail::{DefaultRenderer, SmtpMailer};
use twofactor::mail::{Delivery, Mailer, MemoryMailer, Message};
use twofactor::store::{BoxStore, SqliteStore};
use twofactor::totp::TotpParams;
use twofactor::{
    AppKey, Clock, ConfirmOutcome, DeliveryPolicy, Engine, KeyRing, LoginOutcome, MailError, MailId, MailStatus,
    ManualClock, NewAccount, Policy, Role, SecondFactor, SecondFactorOutcome, SystemClock, Timestamp, UserId,
};

const CHILD: &str = "TWOFACTOR_CRASH_CHILD";
const KEYS: &str = "TWOFACTOR_CRASH_KEYS";
const PASSWORD: &str = "correct horse battery staple";
const FROM: &str = "Acme Security <no-reply@acme.test>";
/// The claim's lease: configured, so the test shows it is the policy's.
const LEASE: Duration = Duration::from_secs(120);
/// How long the parent waits for the child to reach its point.
const CHILD_DEADLINE: Duration = Duration::from_secs(180);

fn policy() -> Policy {
    Policy::builder()
        .issuer("Acme")
        .danger_fast_hashing()
        .delivery(DeliveryPolicy::default().lease(LEASE))
        .build()
        .expect("policy")
}

/// The database both processes open.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Db {
    async fn open(&self) -> BoxStore {
        match self {
            Db::Sqlite(path) => BoxStore::new(SqliteStore::open(path).await.expect("open the SQLite file")),
            #[cfg(feature = "postgres")]
            Db::Postgres(url) => {
                BoxStore::new(twofactor::store::PostgresStore::connect(url).await.expect("connect to PostgreSQL"))
            }
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Db::Sqlite(path) => json!({ "sqlite": path }),
            #[cfg(feature = "postgres")]
            Db::Postgres(url) => json!({ "postgres": url }),
        }
    }

    fn from_json(v: &Value) -> Db {
        if let Some(path) = v["sqlite"].as_str() {
            return Db::Sqlite(PathBuf::from(path));
        }
        #[cfg(feature = "postgres")]
        if let Some(url) = v["postgres"].as_str() {
            return Db::Postgres(url.to_owned());
        }
        panic!("no database in {v}")
    }
}

fn engine<M: Mailer, C: Clock>(store: BoxStore, mailer: M, keys: KeyRing, clock: C) -> Engine<BoxStore, M, C> {
    Engine::builder(store, mailer, keys).clock(clock).policy(policy()).build().expect("engine")
}

fn smtp_mailer() -> (SmtpMailer, PathBuf) {
    let (url, dir) = sink();
    let mailer = SmtpMailer::from_url(&url, FROM)
        .expect("mailer")
        .with_renderer(DefaultRenderer::for_policy(&policy()).with_support("security@acme.test"));
    (mailer, dir)
}

/// The parent's half of a test: the database, the user, its key ring and working files.
struct Setup {
    db: Db,
    keys: KeyRing,
    name: String,
    email: String,
    user: UserId,
    /// The backup code the user holds.
    code: String,
    /// When the test's clock starts (now, to the second).
    now: Timestamp,
    work: tempfile::TempDir,
}

impl Setup {
    /// Creates the user with confirmed 2FA and delivers the setup code (to an
    /// in-memory mailer, so the parent knows it).
    async fn new(db: Db, test: &str) -> Setup {
        sink(); // the restart mails through the sink: fail now, not after the crash, when it is missing
        let keys = KeyRing::new(vec![AppKey::generate(1).expect("key")]).expect("key ring");
        let name = store_support::unique(test);
        let email = format!("{name}@example.test");
        let now = SystemClock.now();
        let clock = ManualClock::new(now);
        let mailer = MemoryMailer::new();
        let e = engine(db.open().await, mailer.clone(), keys.clone(), clock.clone());
        let user = e.create_account(NewAccount::new(&name, &email, Role::User, PASSWORD)).await.expect("create");
        let started = e.start_enrollment(user).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let totp = twofactor::totp::generate(&secret, &TotpParams::default(), now.0);
        let confirmed = e.confirm_enrollment(user, totp.expose()).await.expect("confirm");
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
        assert_eq!(e.deliver_queued(user).await.expect("deliver").sent, 1);
        let code = mailer.last_code_for(&email).expect("the setup code");
        Setup { db, keys, name, email, user, code, now, work: tempfile::tempdir().expect("temp dir") }
    }

    /// Starts the child for `scenario`.
    fn spawn(&self, scenario: &str) -> Running {
        let signal = self.work.path().join(format!("{scenario}.signal"));
        let log = self.work.path().join(format!("{scenario}.log"));
        let params = json!({
            "scenario": scenario,
            "db": self.db.to_json(),
            "user": self.name,
            "code": self.code,
            "now": self.now.0,
            "signal": signal,
        });
        let out = std::fs::File::create(&log).expect("child log");
        let err = out.try_clone().expect("child log");
        let child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, params.to_string())
            .env(KEYS, self.keys.to_text().as_str())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the child");
        Running { child, signal, log }
    }

    /// A fresh store over the same database, an engine with the same key ring and a
    /// mailer to the sink: the restarted server.
    async fn restart(&self, clock: ManualClock) -> (Engine<BoxStore, SmtpMailer, ManualClock>, PathBuf) {
        let (mailer, dir) = smtp_mailer();
        let keys = KeyRing::from_text(self.keys.to_text().as_str()).expect("the same key ring");
        (engine(self.db.open().await, mailer, keys, clock), dir)
    }
}

/// A child process on its way to its point.
struct Running {
    child: Child,
    signal: PathBuf,
    log: PathBuf,
}

impl Running {
    /// Waits for the child's signal (the mail id it names), then kills it with SIGKILL.
    fn kill_at_signal(mut self) -> MailId {
        let started = Instant::now();
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&self.signal) {
                break text;
            }
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!("the child ended ({status}) before its signal:\n{}", self.log());
            }
            if started.elapsed() > CHILD_DEADLINE {
                let _ = self.child.kill();
                panic!("no signal from the child in {CHILD_DEADLINE:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(self.child.try_wait().expect("poll the child").is_none(), "the child blocks at its point");
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reap the child");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}\n{}", self.log());
        }
        MailId::parse(text.trim()).expect("a mail id")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Tells the parent `id` (written aside, then renamed into place: never half a file).
fn signal(path: &Path, id: MailId) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, id.to_string()).expect("write the signal");
    std::fs::rename(&temp, path).expect("signal");
}

/// A mailer for the child that must not be used: nothing is delivered before the crash.
struct NoDelivery;

impl Mailer for NoDelivery {
    async fn send(&self, _: MailId, _: &Message) -> Result<(), MailError> {
        panic!("the child delivers nothing before it is killed")
    }
}

/// A mailer that, inside `send`, tells the parent which message it is sending, then
/// never returns (the process dies there).
struct HangingMailer {
    signal: PathBuf,
}

impl Mailer for HangingMailer {
    async fn send(&self, id: MailId, _: &Message) -> Result<(), MailError> {
        signal(&self.signal, id);
        std::future::pending().await
    }
}

async fn backup_login<M: Mailer, C: Clock>(e: &Engine<BoxStore, M, C>, name: &str, code: &str) -> SecondFactorOutcome {
    let pending = match e.begin_login(name, PASSWORD, None).await.expect("login") {
        LoginOutcome::SecondFactorRequired(p) => p,
        other => panic!("expected a second factor, got {other:?}"),
    };
    e.finish_login(pending.token(), SecondFactor::BackupCode(code), None).await.expect("second step")
}

/// Logs in with `code`, which must work; returns the queued mail of its replacement.
async fn use_code<M: Mailer, C: Clock>(e: &Engine<BoxStore, M, C>, name: &str, code: &str) -> MailId {
    match backup_login(e, name, code).await {
        SecondFactorOutcome::Authenticated(auth) => match auth.backup_code_delivery {
            Some(Delivery::Queued(id)) => id,
            other => panic!("the replacement is queued: {other:?}"),
        },
        other => panic!("the code did not work: {other:?}"),
    }
}

async fn assert_void<M: Mailer, C: Clock>(e: &Engine<BoxStore, M, C>, name: &str, code: &str) {
    let out = backup_login(e, name, code).await;
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "the old code stays void: {out:?}");
}

/// The one mail to `to`, with `id`'s Message-ID and the subject of a new code; its code.
fn the_new_code(dir: &Path, to: &str, id: MailId) -> String {
    let mails: Vec<Mail> = mails_to(dir, to);
    assert_eq!(mails.len(), 1, "exactly one mail to {to}");
    let m = &mails[0];
    assert_eq!(m.message.headers_named("Message-ID"), [format!("<{id}@acme.test>").as_str()]);
    assert_eq!(m.message.header("Subject"), Some("Your new Acme backup code"));
    let codes = m.codes();
    assert_eq!(codes.len(), 1, "{}", m.text());
    codes[0].clone()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

// ---------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------

/// The child's side: does nothing unless started by a crash test.
#[test]
fn crash_child() {
    let Ok(params) = std::env::var(CHILD) else { return };
    let params: Value = serde_json::from_str(&params).expect("the child's parameters");
    runtime().block_on(child(&params));
    unreachable!("the child blocks until it is killed");
}

async fn child(params: &Value) {
    let keys = KeyRing::from_env(KEYS).expect("the key ring");
    let store = Db::from_json(&params["db"]).open().await;
    let clock = ManualClock::new(Timestamp(params["now"].as_u64().expect("now")));
    let signal_path = PathBuf::from(params["signal"].as_str().expect("signal"));
    let name = params["user"].as_str().expect("user");
    match params["scenario"].as_str().expect("scenario") {
        "after_commit" => {
            let e = engine(store, NoDelivery, keys, clock);
            let id = use_code(&e, name, params["code"].as_str().expect("code")).await;
            signal(&signal_path, id);
        }
        "mid_send" => {
            let e = engine(store, HangingMailer { signal: signal_path }, keys, clock);
            e.deliver_due(100).await.expect("a delivery round");
            panic!("the send never returns");
        }
        other => panic!("no scenario {other}"),
    }
    // Committed, nothing delivered: wait here to be killed.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------

/// Killed after the commit of a backup-code login, before any delivery.
fn killed_after_the_commit(db: Db, test: &str) {
    let rt = runtime();
    let s = rt.block_on(Setup::new(db, test));
    let queued = s.spawn("after_commit").kill_at_signal();

    rt.block_on(async {
        let clock = ManualClock::new(s.now);
        let (e, dir) = s.restart(clock.clone()).await;
        assert_eq!(
            e.mail_status(s.user, queued).await.expect("status"),
            MailStatus::Queued { attempts: 0, next_attempt_at: s.now },
            "the commit survived the crash with the mail queued, never tried"
        );
        assert!(mails_to(&dir, &s.email).is_empty(), "nothing was sent before the crash");
        assert_void(&e, &s.name, &s.code).await;

        let report = e.deliver_due(100).await.expect("a delivery round");
        assert_eq!(report.sent, 1, "{report:?}");
        assert_eq!(report.delivery_of(queued), Some(&Delivery::Sent), "{report:?}");
        assert!(matches!(e.mail_status(s.user, queued).await.expect("status"), MailStatus::Delivered { .. }));
        let fresh = the_new_code(&dir, &s.email, queued);
        assert_ne!(fresh, s.code);

        use_code(&e, &s.name, &fresh).await;
        assert_void(&e, &s.name, &s.code).await;
        assert_void(&e, &s.name, &fresh).await;
    });
}

/// Killed inside the mailer's `send`, after the claim.
fn killed_in_the_middle_of_a_send(db: Db, test: &str) {
    let rt = runtime();
    let s = rt.block_on(Setup::new(db, test));
    // The login commits the new code and queues its mail (this process sends nothing).
    let queued = rt.block_on(async {
        let e = engine(s.db.open().await, NoDelivery, s.keys.clone(), ManualClock::new(s.now));
        use_code(&e, &s.name, &s.code).await
    });
    let sending = s.spawn("mid_send").kill_at_signal();
    assert_eq!(sending, queued, "the child was sending the queued mail");

    rt.block_on(async {
        let clock = ManualClock::new(s.now);
        let (e, dir) = s.restart(clock.clone()).await;
        let lease_end = s.now.plus(LEASE);
        assert_eq!(
            e.mail_status(s.user, queued).await.expect("status"),
            MailStatus::Queued { attempts: 1, next_attempt_at: lease_end },
            "claimed by the dead child until its lease ends"
        );
        for at in [s.now, Timestamp(lease_end.0 - 1)] {
            clock.set(at);
            let report = e.deliver_due(100).await.expect("a delivery round");
            assert!(report.messages.is_empty(), "not sent again before the lease ends ({at:?}): {report:?}");
        }
        assert!(mails_to(&dir, &s.email).is_empty());

        clock.set(lease_end);
        let report = e.deliver_due(100).await.expect("a delivery round");
        assert_eq!((report.sent, report.messages.len()), (1, 1), "{report:?}");
        assert_eq!(report.delivery_of(queued), Some(&Delivery::Sent), "{report:?}");
        let fresh = the_new_code(&dir, &s.email, sending);

        clock.advance(LEASE * 2);
        let report = e.deliver_due(100).await.expect("a delivery round");
        assert!(report.messages.is_empty(), "delivered once: {report:?}");
        assert_eq!(mails_to(&dir, &s.email).len(), 1);

        use_code(&e, &s.name, &fresh).await;
        assert_void(&e, &s.name, &s.code).await;
    });
}

fn sqlite() -> (Db, tempfile::TempDir) {
    let (dir, path) = store_support::temp_db();
    (Db::Sqlite(path), dir)
}

#[cfg(feature = "postgres")]
fn postgres() -> Db {
    Db::Postgres(runtime().block_on(store_support::pg_schema_url()))
}

#[test]
fn sqlite_killed_after_the_commit_the_restarted_worker_mails_the_new_code() {
    let (db, _dir) = sqlite();
    killed_after_the_commit(db, "crash_commit_sqlite");
}

#[test]
fn sqlite_killed_in_the_middle_of_a_send_it_is_sent_once_after_the_lease() {
    let (db, _dir) = sqlite();
    killed_in_the_middle_of_a_send(db, "crash_send_sqlite");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_killed_after_the_commit_the_restarted_worker_mails_the_new_code() {
    killed_after_the_commit(postgres(), "crash_commit_pg");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_killed_in_the_middle_of_a_send_it_is_sent_once_after_the_lease() {
    killed_in_the_middle_of_a_send(postgres(), "crash_send_pg");
}
