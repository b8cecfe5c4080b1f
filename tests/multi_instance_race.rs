//! Races across app servers: two engines with separate connection pools on one
//! database (SQLite file, PostgreSQL), 32 tasks each, all submitting the same backup
//! code — and separately the same TOTP code — against their own pending logins, for
//! 100 rounds each. Exactly one login wins every round. After each backup-code round
//! both servers run a delivery round at once: the one replacement code is mailed once.

mod store_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use twofactor::mail::MemoryMailer;
use twofactor::store::{SqliteStore, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, SecondFactor,
    SecondFactorOutcome, ThrottlePolicy, Timestamp,
};

const TASKS_PER_ENGINE: usize = 32;
const ROUNDS: usize = 100;
const PASSWORD: &str = "correct horse battery staple";
const USER: &str = "racer";
const EMAIL: &str = "racer@example.test";

type RaceEngine<S> = Engine<S, MemoryMailer, ManualClock>;

/// Two app servers sharing one database, one clock and one outbox.
struct Cluster<S> {
    engines: [Arc<RaceEngine<S>>; 2],
    mailer: MemoryMailer,
    clock: ManualClock,
    secret: Vec<u8>,
}

/// Fast hashing, and a failure budget that the 63 losers of a round stay inside (a
/// success, which commits first in every round, clears the count). Pending logins
/// live 30 s, so each round's marks are pruned by the next.
fn policy() -> Policy {
    Policy::builder()
        .danger_fast_hashing()
        .danger_relaxed_throttle(ThrottlePolicy::default().free_failures(100).disable_after(100))
        .pending_lifetime(Duration::from_secs(30))
        .build()
        .expect("policy")
}

impl<S: UserStore + 'static> Cluster<S> {
    /// Builds both engines and an account with confirmed 2FA.
    async fn new(stores: [S; 2]) -> Self {
        let keys = KeyRing::ephemeral().expect("keys");
        let mailer = MemoryMailer::new();
        let clock = ManualClock::new(Timestamp(1_800_000_000));
        let engines = stores.map(|store| {
            Arc::new(
                Engine::builder(store, mailer.clone(), keys.clone())
                    .clock(clock.clone())
                    .policy(policy())
                    .build()
                    .expect("engine"),
            )
        });
        let id = engines[0].create_account(NewAccount::new(USER, EMAIL, Role::User, PASSWORD)).await.expect("create");
        let started = engines[1].start_enrollment(id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let cluster = Cluster { engines, mailer, clock, secret };
        let code = cluster.totp_code();
        let confirmed = cluster.engines[0].confirm_enrollment(id, &code).await.expect("confirm");
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
        assert_eq!(cluster.deliver().await, 1, "the setup code mail");
        cluster
    }

    /// Both servers run delivery rounds at the same time until neither finds mail due;
    /// returns how many messages they sent together.
    async fn deliver(&self) -> u32 {
        let mut sent = 0;
        loop {
            let (a, b) = tokio::join!(self.engines[0].deliver_due(100), self.engines[1].deliver_due(100));
            let (a, b) = (a.expect("delivery round"), b.expect("delivery round"));
            assert_eq!(a.retrying + a.gave_up + b.retrying + b.gave_up, 0, "the mailer does not fail: {a:?} {b:?}");
            if a.messages.is_empty() && b.messages.is_empty() {
                return sent;
            }
            sent += a.sent + b.sent;
        }
    }

    fn totp_code(&self) -> String {
        twofactor::totp::generate(&self.secret, &TotpParams::default(), self.clock.now().0).expose().to_owned()
    }

    /// One round: every task logs in with the password on its engine, then all submit
    /// `code` at once. Returns how many were authenticated.
    async fn round(&self, code: impl Fn() -> String, backup: bool) -> usize {
        let code = Arc::new(code());
        let tasks = 2 * TASKS_PER_ENGINE;
        let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let engine = Arc::clone(&self.engines[i % 2]);
                let (barrier, code) = (Arc::clone(&barrier), Arc::clone(&code));
                tokio::spawn(async move {
                    let pending = match engine.begin_login(USER, PASSWORD, None).await.expect("password step") {
                        LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
                        other => panic!("expected a second factor, got {other:?}"),
                    };
                    barrier.wait().await;
                    let factor = if backup { SecondFactor::BackupCode(&code) } else { SecondFactor::Totp(&code) };
                    engine.finish_login(&pending, factor, None).await.expect("second step")
                })
            })
            .collect();
        let mut winners = 0;
        for handle in handles {
            match handle.await.expect("task") {
                SecondFactorOutcome::Authenticated(_) => winners += 1,
                SecondFactorOutcome::Denied { .. } => {}
                other => panic!("a loser must be denied, got {other:?}"),
            }
        }
        winners
    }

    /// 100 rounds of the same backup code submitted 64 times; the winner's
    /// replacement code is the next round's.
    async fn race_backup_code(&self) {
        let started = Instant::now();
        for round in 0..ROUNDS {
            self.clock.advance(Duration::from_secs(30));
            let code = self.mailer.last_code_for(EMAIL).expect("a mailed backup code");
            let winners = self.round(|| code.clone(), true).await;
            assert_eq!(winners, 1, "round {round}: {winners} logins accepted one backup code");
            let mailed = self.mailer.outbox().len();
            assert_eq!(self.deliver().await, 1, "round {round}: one replacement, sent by one server");
            assert_eq!(self.mailer.outbox().len(), mailed + 1, "round {round}: mailed once");
            let next = self.mailer.last_code_for(EMAIL).expect("the replacement code");
            assert_ne!(next, code, "round {round}: the used code was not replaced");
        }
        eprintln!("backup-code race: {ROUNDS} rounds in {:?}", started.elapsed());
    }

    /// 100 rounds of the current TOTP code submitted 64 times, 30 s apart.
    async fn race_totp_code(&self) {
        let started = Instant::now();
        for round in 0..ROUNDS {
            self.clock.advance(Duration::from_secs(30));
            let winners = self.round(|| self.totp_code(), false).await;
            assert_eq!(winners, 1, "round {round}: {winners} logins accepted one TOTP code");
        }
        eprintln!("TOTP race: {ROUNDS} rounds in {:?}", started.elapsed());
    }
}

async fn sqlite_cluster() -> (tempfile::TempDir, Cluster<SqliteStore>) {
    let (dir, path) = store_support::temp_db();
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    (dir, Cluster::new([a, b]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_backup_code_wins_once_per_round() {
    let (_dir, cluster) = sqlite_cluster().await;
    cluster.race_backup_code().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_totp_code_wins_once_per_round() {
    let (_dir, cluster) = sqlite_cluster().await;
    cluster.race_totp_code().await;
}

#[cfg(feature = "postgres")]
async fn postgres_cluster() -> Cluster<twofactor::store::PostgresStore> {
    let url = store_support::pg_schema_url().await;
    let a = twofactor::store::PostgresStore::connect(&url).await.expect("connect a");
    let b = twofactor::store::PostgresStore::connect(&url).await.expect("connect b");
    Cluster::new([a, b]).await
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_backup_code_wins_once_per_round() {
    postgres_cluster().await.race_backup_code().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_totp_code_wins_once_per_round() {
    postgres_cluster().await.race_totp_code().await;
}
