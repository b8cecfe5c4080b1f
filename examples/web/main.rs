//! The seed's login pages in an axum app: sign-in, verification with the "I don't have
//! my device" backup-code switch, enrollment with a QR code, account, administrator
//! reset and a demo mailbox; and what users and administrators do besides logging in:
//! further authenticators (added with a QR code, removed after a code from another
//! one), turning 2FA off, a step-up prompt before changing the email, and an
//! administrator's unlock.
//!
//! Run `cargo run --example web` and open the printed URL. The demo seeds an
//! administrator and a user and prints their (per-run, random) passwords on the
//! console only.
//!
//! Mail: no request sends mail on its own. The engine writes each message into the
//! user's record in the same write as the change that causes it, and a background
//! [`DeliveryWorker`] (started with the server, stopped on graceful shutdown after the
//! last request) sends it, woken by that write, and every few seconds for retries.
//! After a successful backup-code login, an enrollment, a reissued code, an added
//! authenticator, a backup code used to step up or remove an authenticator, and an
//! administrator's reset or unlock the page delivers inline (`App::deliver_now`) to say at once
//! whether the mail went out ("we emailed you a new backup code", or "the email is
//! delayed; we keep trying"); a failed attempt never waits on mail.
//!
//! Environment:
//! - `TWOFACTOR_WEB_ADDR` — listen address (default `127.0.0.1:3000`; port 0 picks a
//!   free port). The actual URL is printed as `listening on http://…`; an address in
//!   use stops the demo with a message saying so, before anything is written.
//! - `TWOFACTOR_WEB_DATA_DIR` — where the run keeps its SQLite database, its key file
//!   and its file outbox (default: a fresh temp directory, removed on every exit:
//!   Ctrl-C, SIGTERM or an error). Every run starts with an empty database.
//! - `TWOFACTOR_KEYS` — the keys that seal TOTP secrets and pending logins, `tfk1.`
//!   keys newest first, separated by newlines or spaces (make one with
//!   `cargo run --example cli -- keygen`, which writes `twofactor-cli.db.key`, or
//!   `AppKey::generate(1)?.to_text()`). Unset, the demo uses the key file
//!   `twofactor.db.key` beside its database, created with mode 0600 when missing, and
//!   prints where it is.
//! - `TWOFACTOR_WEB_SECURE_COOKIES=1` — mark cookies `Secure`. Set it whenever the app
//!   is reached over HTTPS (e.g. behind a TLS-terminating proxy); the demo itself
//!   serves plain HTTP on 127.0.0.1, where browsers would drop `Secure` cookies.
//! - `TWOFACTOR_WEB_MAILBOX=0` — hide the demo mailbox (it shows every mail sent,
//!   backup codes included: development only).
//! - `TWOFACTOR_WEB_REQUIRE_2FA=1` — every account must use two-factor authentication
//!   (`PolicyBuilder::require_two_factor`): a password-only sign-in of an account
//!   without it reaches only the enrollment pages (and sign-out) until it is set up.
//! - `TWOFACTOR_WEB_MAX_SESSIONS` — how many sessions the server keeps at most
//!   (default 10000); beyond that the least recently used is dropped (signed out).
//!   Sessions are `tower-sessions` sessions in a bounded store of the demo's own
//!   (`store.rs`); idle for 30 minutes, one is forgotten.
//! - `TWOFACTOR_WEB_SMTP_URL=smtp://…` — with `--features smtp`, send mail through that
//!   SMTP server instead of the file outbox.
//! - `TWOFACTOR_WEB_MAIL_RETRY` — seconds to wait after a mail's first failed try
//!   before the worker tries again (default 30; each further failure doubles the wait,
//!   up to an hour; given up after 10 tries).
//!
//! Flags take `0` or `1`; any other value stops the demo with an error.

mod account;
mod admin;
mod app;
mod authenticators;
mod enroll;
mod html;
mod mailbox;
mod parts;
mod session;
mod signin;
mod stepup;
mod store;
mod verify;

use std::error::Error;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use twofactor::{DeliveryPolicy, DeliveryWorker, Engine, NewAccount, Policy, Role};

/// How often the delivery worker looks for mail that fell due without a write waking
/// it (retries, and mail other servers queued).
const DELIVERY_POLL: Duration = Duration::from_secs(5);

/// Settings read from the environment.
struct Config {
    addr: String,
    /// `TWOFACTOR_WEB_DATA_DIR`, or `None` for a temp dir of this run's own.
    data_dir: Option<PathBuf>,
    secure_cookies: bool,
    mailbox: bool,
    require_two_factor: bool,
    max_sessions: usize,
    /// `TWOFACTOR_WEB_MAIL_RETRY`: the wait after a mail's first failed try.
    mail_retry: Option<Duration>,
}

impl Config {
    /// Reads the settings; touches nothing.
    fn from_env() -> Result<Config, Box<dyn Error>> {
        let flag = |name: &str, default: bool| match std::env::var(name).as_deref() {
            Err(_) => Ok(default),
            Ok("1") => Ok(true),
            Ok("0") => Ok(false),
            Ok(other) => Err(format!("{name} must be 0 or 1, not {other:?}")),
        };
        let max_sessions = match std::env::var("TWOFACTOR_WEB_MAX_SESSIONS") {
            Err(_) => 10_000,
            Ok(n) => n.parse().ok().filter(|&n| n > 0).ok_or("TWOFACTOR_WEB_MAX_SESSIONS must be a positive number")?,
        };
        let mail_retry = match std::env::var("TWOFACTOR_WEB_MAIL_RETRY") {
            Err(_) => None,
            Ok(secs) => Some(Duration::from_secs(
                secs.parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or("TWOFACTOR_WEB_MAIL_RETRY must be a positive number of seconds")?,
            )),
        };
        Ok(Config {
            addr: std::env::var("TWOFACTOR_WEB_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned()),
            data_dir: std::env::var_os("TWOFACTOR_WEB_DATA_DIR").map(PathBuf::from),
            secure_cookies: flag("TWOFACTOR_WEB_SECURE_COOKIES", false)?,
            mailbox: flag("TWOFACTOR_WEB_MAILBOX", true)?,
            require_two_factor: flag("TWOFACTOR_WEB_REQUIRE_2FA", false)?,
            max_sessions,
            mail_retry,
        })
    }
}

/// The run's data directory; a temp dir of its own is removed when this is dropped,
/// which every way out of [`run`] does (an error, Ctrl-C, SIGTERM, a panic unwinding).
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn create(configured: Option<PathBuf>) -> Result<DataDir, Box<dyn Error>> {
        let (path, temporary) = match configured {
            Some(dir) => (dir, false),
            None => {
                let name = format!("twofactor-web-{}-{}", std::process::id(), &session::token()[..12]);
                (std::env::temp_dir().join(name), true)
            }
        };
        let dir = DataDir { path, temporary };
        std::fs::create_dir_all(&dir.path)?;
        Ok(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary
            && let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut stopped = stop_signal()?;
    let config = Config::from_env()?;
    // Listen before writing anything, so a busy port leaves nothing behind.
    let listener = tokio::net::TcpListener::bind(&config.addr).await.map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => {
            let port = config.addr.rsplit(':').next().unwrap_or(&config.addr);
            format!(
                "port {port} is in use ({}); set TWOFACTOR_WEB_ADDR to another address, e.g. \
                 TWOFACTOR_WEB_ADDR=127.0.0.1:0 for any free port",
                config.addr
            )
        }
        _ => format!("cannot listen on {} (TWOFACTOR_WEB_ADDR): {e}", config.addr),
    })?;
    let data = DataDir::create(config.data_dir.clone())?;
    let (router, keys, worker) = tokio::select! {
        set = set_up(&config, &data) => set?,
        _ = stopped.wait_for(|s| *s) => return Ok(()),
    };
    println!("data in {}", data.path.display());
    println!("{keys}");
    if config.require_two_factor {
        println!("two-factor authentication is required for every account");
    }
    println!("listening on http://{}", listener.local_addr()?);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    // The last request is answered: the worker finishes the round in progress and
    // stops (mail still queued stays in the database).
    worker.shutdown().await;
    served?;
    Ok(())
}

/// The keys, store, mailer, engine, demo accounts and routes, in `data`; the line
/// saying where the keys came from; and the running delivery worker.
async fn set_up(config: &Config, data: &DataDir) -> Result<(axum::Router, String, DeliveryWorker), Box<dyn Error>> {
    let mut delivery = DeliveryPolicy::default();
    if let Some(first) = config.mail_retry {
        delivery = delivery.retry(first, first.max(delivery.max_retry));
    }
    let policy = Policy::builder()
        .issuer("Example Co")
        .require_two_factor(config.require_two_factor)
        .delivery(delivery)
        .build()?;
    // The keys first: a bad TWOFACTOR_KEYS then leaves no database behind.
    let (keys, from) = parts::keys(&data.path)?;
    let (store, mailer, mailbox) = parts::open(&data.path, &policy).await?;
    let engine = Arc::new(Engine::builder(store, mailer, keys).policy(policy).build()?);
    seed(&engine).await?;
    // Every mail goes out from here (or inline after a success: `App::deliver_now`).
    let worker = DeliveryWorker::spawn(Arc::clone(&engine), DELIVERY_POLL)?;
    let app = app::App { engine, mailbox: config.mailbox.then_some(mailbox), secure: config.secure_cookies };
    Ok((app::router(Arc::new(app), config.max_sessions), from, worker))
}

/// Turns true on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed before this
/// returns, so a signal during set-up also ends the run cleanly.
fn stop_signal() -> std::io::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = tx.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Creates the demo accounts with random passwords, shown on this console only.
async fn seed(engine: &parts::DemoEngine) -> Result<(), Box<dyn Error>> {
    for (username, role) in [("admin", Role::Admin), ("alice", Role::User)] {
        let password = session::token()[..16].to_owned();
        let email = format!("{username}@example.test");
        engine.create_account(NewAccount::new(username, &email, role, &password)).await?;
        println!("demo {role}: username {username} password {password}");
    }
    Ok(())
}
