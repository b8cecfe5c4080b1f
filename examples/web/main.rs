//! The seed's login pages in an axum app: sign-in, verification with the "I don't have
//! my device" backup-code switch, enrollment with a QR code, account, administrator
//! reset and a demo mailbox.
//!
//! Run `cargo run --example web` and open the printed URL. The demo seeds an
//! administrator and a user and prints their (per-run, random) passwords on the
//! console only.
//!
//! Environment:
//! - `TWOFACTOR_WEB_ADDR` — listen address (default `127.0.0.1:3000`; port 0 picks a
//!   free port). The actual URL is printed as `listening on http://…`.
//! - `TWOFACTOR_WEB_DATA_DIR` — where the run keeps its SQLite database and its file
//!   outbox (default: a fresh temp directory, removed on Ctrl-C). Every run starts
//!   empty, so the demo's key ring is ephemeral.
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
//! - `TWOFACTOR_WEB_SMTP_URL=smtp://…` — with `--features smtp`, send mail through that
//!   SMTP server instead of the file outbox.
//!
//! Flags take `0` or `1`; any other value stops the demo with an error.

mod account;
mod admin;
mod app;
mod enroll;
mod html;
mod mailbox;
mod parts;
mod session;
mod signin;
mod store;
mod verify;

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use twofactor::{Engine, KeyRing, NewAccount, Policy, Role};

/// Settings read from the environment.
struct Config {
    addr: String,
    data_dir: PathBuf,
    /// Whether `data_dir` is this run's own temp dir (removed on Ctrl-C).
    temporary: bool,
    secure_cookies: bool,
    mailbox: bool,
    require_two_factor: bool,
    max_sessions: usize,
}

impl Config {
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
        let (data_dir, temporary) = match std::env::var_os("TWOFACTOR_WEB_DATA_DIR") {
            Some(dir) => (PathBuf::from(dir), false),
            None => {
                let name = format!("twofactor-web-{}-{}", std::process::id(), &session::token()[..12]);
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(&data_dir)?;
        Ok(Config {
            addr: std::env::var("TWOFACTOR_WEB_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned()),
            data_dir,
            temporary,
            secure_cookies: flag("TWOFACTOR_WEB_SECURE_COOKIES", false)?,
            mailbox: flag("TWOFACTOR_WEB_MAILBOX", true)?,
            require_two_factor: flag("TWOFACTOR_WEB_REQUIRE_2FA", false)?,
            max_sessions,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let config = Config::from_env()?;
    let (store, mailer, mailbox) = parts::open(&config.data_dir).await?;
    let policy = Policy::builder().issuer("Acme demo").require_two_factor(config.require_two_factor).build()?;
    let engine = Engine::builder(store, mailer, KeyRing::ephemeral()?).policy(policy).build()?;
    seed(&engine).await?;
    let sessions = session::Sessions::new(config.secure_cookies, config.max_sessions);
    let app = app::App::new(engine, mailbox, sessions, config.mailbox);
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    println!("data in {}", config.data_dir.display());
    if config.require_two_factor {
        println!("two-factor authentication is required for every account");
    }
    println!("listening on http://{}", listener.local_addr()?);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app::router(Arc::new(app))).with_graceful_shutdown(stop).await?;
    if config.temporary {
        std::fs::remove_dir_all(&config.data_dir)?;
    }
    Ok(())
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
