//! An application that already has users adds two-factor login: three columns (and an
//! index) on its own `users` table and one trait implementation. Run it with
//! `cargo run --example own_users`.
//!
//! The application keeps its table, its integer ids, its login (by email, whatever the
//! case) and its own password check. The crate reads the user from that table at every
//! call and writes only its columns: a version, an opaque JSON document, and when the
//! document's earliest queued mail is due (so the delivery worker finds that mail
//! through an index instead of reading every document). Forgetting a user clears those
//! columns and leaves the application's row alone. Here
//! the application checks passwords itself (the second-factor-only mode); an
//! application that wants the crate to check them gives it the stored hashes once
//! (`Engine::import_password_hash`, which reads bcrypt, Django and scrypt hashes)
//! and calls `begin_login` instead.
//!
//! `tests/own_users.rs` runs the store conformance kit on [`AppStore`].

use std::error::Error;
use std::time::Duration;

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, query};
use twofactor::mail::MemoryMailer;
use twofactor::store::{Document, ScanPage, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, Engine, KeyError, KeyRing, LoginOutcome, ManualClock, PasswordAttempt, Policy, Role, SecondFactor,
    SecondFactorOutcome, StoreError, SystemClock, Timestamp, UserId,
};

/// The application's own table, as it was before 2FA.
const APP_SCHEMA: &str = "CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT    NOT NULL
)";

/// What adding 2FA takes: three columns and an index for the mail delivery query.
const ADD_TWOFACTOR: &str = "ALTER TABLE users ADD COLUMN twofactor_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN twofactor_document TEXT;
ALTER TABLE users ADD COLUMN twofactor_mail_due BIGINT;
CREATE INDEX users_twofactor_mail_due ON users (twofactor_mail_due, id) WHERE twofactor_mail_due IS NOT NULL";

/// The crate's view of the application's users.
#[derive(Clone)]
pub struct AppStore {
    pool: SqlitePool,
}

impl AppStore {
    /// Over the application's pool.
    pub fn new(pool: SqlitePool) -> Self {
        AppStore { pool }
    }
}

macro_rules! select {
    ($by:literal) => {
        concat!("SELECT id, email, is_admin, twofactor_version, twofactor_document FROM users WHERE ", $by)
    };
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// The application's integer id for a crate `UserId` (`None`: not one of ours).
fn app_id(id: UserId) -> Option<i64> {
    id.as_str().parse().ok()
}

fn user_of(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    let email: String = row.try_get("email").map_err(backend)?;
    let role = if row.try_get("is_admin").map_err(backend)? { Role::Admin } else { Role::User };
    let id = UserId::from(row.try_get::<i64, _>("id").map_err(backend)?);
    let user = UserRecord::new(id, email.clone(), email, role);
    let version: i64 = row.try_get("twofactor_version").map_err(backend)?;
    Ok(match row.try_get::<Option<String>, _>("twofactor_document").map_err(backend)? {
        Some(json) => user.with_document(version as u64, Document::from_json(json)),
        None => user,
    })
}

impl UserStore for AppStore {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let Some(id) = app_id(id) else { return Ok(None) };
        let row = query(select!("id = ?")).bind(id).fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = query(select!("email = ?")).bind(login).fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.swap(id, 0, document).await
    }

    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        if expected == 0 {
            return Ok(Swap::Conflict); // version 0 means "no document": only an insert writes it
        }
        self.swap(id, expected, document).await
    }

    /// The users with a document, in id order, for the key operations
    /// (`Engine::key_usage`, `Engine::reseal`). The cursor is the page's last id.
    async fn scan(&self, after: Option<&str>, limit: usize) -> Result<ScanPage, StoreError> {
        let limit = limit.max(1);
        let after = match after {
            Some(cursor) => cursor.parse().map_err(|_| StoreError::Corrupt(format!("scan cursor {cursor:?}")))?,
            None => i64::MIN,
        };
        let rows = query(select!("twofactor_document IS NOT NULL AND id > ? ORDER BY id LIMIT ?"))
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let users = rows.iter().map(user_of).collect::<Result<Vec<_>, _>>()?;
        // A full page may have more after it; a short one ends the walk.
        let next = if users.len() >= limit { users.last().map(|u| u.id.to_string()) } else { None };
        Ok(ScanPage::new(users, next))
    }

    /// The users with mail due by `now`, most overdue first, for the delivery worker
    /// (`Engine::deliver_due`): answered from the indexed column the swap writes.
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM users WHERE twofactor_mail_due IS NOT NULL AND twofactor_mail_due <= ? \
             ORDER BY twofactor_mail_due, id LIMIT ?",
        )
        .bind(seconds(now))
        .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ids.into_iter().map(UserId::from).collect())
    }

    /// Forgets what the crate keeps for a user (`Engine::forget_user`, for account
    /// deletion and data-protection requests): one guarded UPDATE clears the crate's
    /// columns (the document, with any mail queued in it, and its due time; the version
    /// back to 0) if nobody wrote since `expected`. The application's row stays: the
    /// application deletes its user itself, or keeps it without 2FA.
    async fn forget(&self, id: UserId, expected: u64) -> Result<Swap, StoreError> {
        let (Some(id), Ok(expected_sql)) = (app_id(id), i64::try_from(expected)) else { return Ok(Swap::Conflict) };
        let done = query(
            "UPDATE users SET twofactor_document = NULL, twofactor_mail_due = NULL, twofactor_version = 0 \
             WHERE id = ? AND twofactor_version = ?",
        )
        .bind(id)
        .bind(expected_sql)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(if done.rows_affected() == 1 { Swap::Swapped { version: 0 } } else { Swap::Conflict })
    }
}

/// A time as the application stores it: Unix seconds (saturating; no clock gets there).
fn seconds(at: Timestamp) -> i64 {
    i64::try_from(at.0).unwrap_or(i64::MAX)
}

impl AppStore {
    /// One guarded UPDATE: the write happens only if nobody wrote since `expected`. The
    /// document's mail due time goes with it, in the same statement.
    async fn swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        let (Some(id), Ok(expected_sql)) = (app_id(id), i64::try_from(expected)) else { return Ok(Swap::Conflict) };
        let done = query(
            "UPDATE users SET twofactor_document = ?, twofactor_mail_due = ?, \
             twofactor_version = twofactor_version + 1 WHERE id = ? AND twofactor_version = ?",
        )
        .bind(document.as_json())
        .bind(document.mail_due_at().map(seconds))
        .bind(id)
        .bind(expected_sql)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(if done.rows_affected() == 1 { Swap::Swapped { version: expected + 1 } } else { Swap::Conflict })
    }
}

/// An in-memory database holding the application's table, with the 2FA columns added.
pub async fn app_database() -> Result<SqlitePool, sqlx::Error> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    sqlx::raw_sql(APP_SCHEMA).execute(&pool).await?;
    sqlx::raw_sql(ADD_TWOFACTOR).execute(&pool).await?;
    Ok(pool)
}

/// The application's own sign-up (its own password hashing; here a placeholder).
pub async fn sign_up(pool: &SqlitePool, email: &str, name: &str, admin: bool) -> Result<UserId, sqlx::Error> {
    let row =
        query("INSERT INTO users (email, display_name, is_admin, password_hash) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(email)
            .bind(name)
            .bind(admin)
            .bind("(the application's own hash)")
            .fetch_one(pool)
            .await?;
    Ok(UserId::from(row.get::<i64, _>(0)))
}

/// The application's password step: its own check (`password_is_right`, standing for
/// its hash verification), run only when the crate's budget allows, then the crate's
/// second step.
async fn sign_in<M: twofactor::mail::Mailer, C: Clock>(
    engine: &Engine<AppStore, M, C>,
    id: UserId,
    password_is_right: impl Fn(&str) -> bool,
) -> twofactor::Result<LoginOutcome> {
    match engine.password_attempt(id).await? {
        PasswordAttempt::Check(check) if password_is_right("her password") => check.succeeded(None).await,
        PasswordAttempt::Check(check) => check.failed().await.map(|()| LoginOutcome::Denied),
        _ => Ok(LoginOutcome::Denied), // throttled: not checked, answered as a wrong password
    }
}

/// The story: sign-up in the application, enrollment, a login with the code.
#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn Error>> {
    let pool = app_database().await?;
    let alice = sign_up(&pool, "alice@example.test", "Alice", false).await?;
    let mailer = MemoryMailer::new();
    // A manual clock, so the demo need not wait 30 s for the next code.
    let clock = ManualClock::new(SystemClock.now());
    // The application's keys, from the environment (README, "Keys"). This demo's
    // database lives in memory and dies with it, so without the variable a throwaway
    // key will do; a real application stops instead, or its users' TOTP secrets die
    // at the next restart.
    let keys = match KeyRing::from_env("TWOFACTOR_KEYS") {
        Ok(keys) => keys,
        Err(KeyError::MissingVar { .. }) => {
            println!("TWOFACTOR_KEYS is unset: a throwaway key for this in-memory demo");
            KeyRing::ephemeral()?
        }
        Err(e) => return Err(e.into()),
    };
    let policy = Policy::builder().issuer("Acme").danger_fast_hashing().build()?; // demo speed only
    let engine = Engine::builder(AppStore::new(pool.clone()), mailer.clone(), keys)
        .clock(clock.clone())
        .policy(policy)
        .build()?;

    // The application checks alice's password itself, under the crate's failure
    // budget: no check while she is throttled, one check at a time. No 2FA yet.
    let LoginOutcome::Authenticated(_) = sign_in(&engine, alice, |typed| typed == "her password").await? else {
        return Err("expected to be signed in before enrolling".into());
    };
    println!("before enrollment: signed in");

    // She enrolls: the app shows the QR code, her phone answers with a code.
    let started = engine.start_enrollment(alice).await?;
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes())?;
    let phone = |at: Timestamp| twofactor::totp::generate(&secret, &TotpParams::default(), at.0);
    engine.confirm_enrollment(alice, phone(clock.now()).expose()).await?;
    // The backup code waits in her document; the delivery worker (here one round of
    // it) finds her through `mail_due` and sends it.
    if !mailer.outbox().is_empty() {
        return Err("the engine sent mail inside the call instead of queueing it".into());
    }
    let report = engine.deliver_due(100).await?;
    if report.sent != 1 {
        return Err(format!("one queued mail was due, the delivery round sent {}", report.sent).into());
    }
    let to = mailer.outbox().last().map(|m| m.message.recipient().email.clone()).unwrap_or_default();
    if to != "alice@example.test" {
        return Err("the backup code was not mailed to the address in the application's table".into());
    }
    println!("enrolled; backup code mailed to {to}");

    // Next time: the password (the app's check), then the code (the crate's).
    clock.advance(Duration::from_secs(30)); // a code is accepted once: the next one
    let LoginOutcome::SecondFactorRequired(pending) = sign_in(&engine, alice, |_| true).await? else {
        return Err("expected the second step".into());
    };
    let done = engine.finish_login(pending.token(), SecondFactor::Totp(phone(clock.now()).expose()), None).await?;
    let SecondFactorOutcome::Authenticated(_) = done else {
        return Err(format!("the code was refused: {done:?}").into());
    };
    println!("with the code: signed in");

    let (version, size, mail_due): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT twofactor_version, length(twofactor_document), twofactor_mail_due FROM users WHERE id = ?",
    )
    .bind(app_id(alice))
    .fetch_one(&pool)
    .await?;
    if mail_due.is_some() {
        return Err("the delivered mail is still due".into());
    }
    println!("the crate's columns for alice: version {version}, document of {size} bytes, no mail due");

    // A data-protection request: the crate forgets what it holds for her (the
    // document, and any mail queued in it). Her row is the application's to delete.
    if !engine.forget_user(alice).await? {
        return Err("forget_user did not find alice".into());
    }
    let (version, document, name): (i64, Option<String>, String) =
        sqlx::query_as("SELECT twofactor_version, twofactor_document, display_name FROM users WHERE id = ?")
            .bind(app_id(alice))
            .fetch_one(&pool)
            .await?;
    if (version, document.is_some()) != (0, false) {
        return Err("forget_user left the crate's columns behind".into());
    }
    println!("forgotten: the crate's columns are cleared; the application's row ({name}) stays");
    Ok(())
}
