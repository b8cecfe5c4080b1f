//! The seed's whole story, with no setup: run `cargo run --example quickstart`.
//!
//! 1. Create alice (user) and bob (admin).
//! 2. Enroll alice and print the `otpauth://` URI (what the QR code holds).
//! 3. Confirm with a code from "her phone"; the backup-code mail is queued with the
//!    change, then the delivery worker sends it: show it.
//! 4. Log in with password + authenticator code.
//! 5. "I don't have my device": log in with the backup code; show the new code that
//!    was mailed, and the old code refused.
//! 6. bob resets alice's 2FA; alice logs in with her password alone.
//!
//! No operation sends mail: each writes its message into alice's record in the same
//! write as the change, and a delivery worker sends it from there. An application runs
//! [`DeliveryWorker::spawn`](twofactor::DeliveryWorker::spawn) (or calls
//! [`Engine::deliver_due`] from a job of its own); the story calls `deliver_due` itself,
//! so each mail shows up right where it is sent.
//!
//! Accounts live in a SQLite file (the embedded default) in a fresh temporary directory,
//! removed on the way out, however the program ends (`quickstart | head` included: it
//! stops quietly when the reader goes away). Time is a manual clock so the story runs
//! instantly; everything else is what an application uses: real Argon2id at OWASP
//! strength, sealed secrets, the mail outbox. The one exception is the key ring: a
//! throwaway one ([`KeyRing::ephemeral`], for tests and demos only) that dies with the
//! run, which is fine only because the database dies with it. An application loads its
//! keys from its secrets manager, the environment or a file (README, "Keys").

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use twofactor::mail::DefaultRenderer;
use twofactor::mail::MemoryMailer;
use twofactor::store::SqliteStore;
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, NewAccount, Policy, Role, SecondFactor,
    SecondFactorOutcome, SystemClock,
};

/// Runs the story in a fresh temporary directory, and removes it on every way out: the
/// end of the story, an error, a panic (the guard is dropped while unwinding), Ctrl-C or
/// SIGTERM, and a reader that stops early (`quickstart | head`: the write fails with
/// `BrokenPipe`, and the story stops quietly).
fn main() -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("twofactor-quickstart-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => {
            let outcome = runtime.block_on(async {
                let mut out = io::stdout().lock();
                tokio::select! {
                    result = story(dir.path(), &mut out) => result.map(|()| None),
                    signal = interrupted() => Ok(Some(signal)),
                }
            });
            // Closes the store's connections before their folder goes.
            drop(runtime);
            outcome
        }
        Err(e) => Err(e.into()),
    };
    let path = dir.path().to_owned();
    if let Err(e) = dir.close() {
        eprintln!("error: cannot remove {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    match outcome {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some((signal, status))) => {
            eprintln!("interrupted ({signal})");
            ExitCode::from(status)
        }
        // The reader went away (`quickstart | head`): nothing more to show.
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for Ctrl-C (or, on Unix, SIGTERM); names it, with the exit status a shell
/// gives a program it ends (128 + the signal's number).
async fn interrupted() -> (&'static str, u8) {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => sigterm.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("Ctrl-C", 130),
        _ = terminate => ("SIGTERM", 143),
    }
}

async fn story(dir: &std::path::Path, out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    let db = dir.join("twofactor-demo.db");
    let store = SqliteStore::open(&db).await?;
    writeln!(out, "accounts are stored in {}", db.display())?;
    // Tests and demos only: this ring lives as long as the process. It is fine here
    // because this throwaway demo deletes its database on exit; an application using
    // it would lose every TOTP secret at its next restart. An application loads its
    // keys, e.g. `KeyRing::from_env("TWOFACTOR_KEYS")?`, after generating them once with
    // `cargo run --example cli -- keygen` or `AppKey::generate(1)?.to_text()`.
    let keys = KeyRing::ephemeral()?;
    writeln!(out, "TOTP secrets are sealed under a throwaway key (KeyRing::ephemeral: demos and tests only),")?;
    writeln!(out, "  fine here because this demo deletes its database on exit; an application loads")?;
    writeln!(out, "  real keys, e.g. KeyRing::from_env(\"TWOFACTOR_KEYS\") (README, \"Keys\")")?;
    // The product name is set once, in the policy; the mail templates take it from there.
    let policy = Policy::builder().issuer("Example Co").build()?;
    let mailer = MemoryMailer::with_renderer(DefaultRenderer::for_policy(&policy).with_support("support@example.test"));
    let clock = ManualClock::new(SystemClock.now());
    let engine = Engine::builder(store, mailer.clone(), keys).clock(clock.clone()).policy(policy).build()?;

    step(out, "1. Create alice (user) and bob (admin)")?;
    let password = "correct horse battery staple";
    let alice = engine.create_account(NewAccount::new("alice", "alice@example.test", Role::User, password)).await?;
    let bob =
        engine.create_account(NewAccount::new("bob", "bob@example.test", Role::Admin, "bob's long passphrase")).await?;
    writeln!(out, "created alice ({alice}) and bob ({bob})")?;

    step(out, "2. Enroll alice")?;
    let enrollment = engine.start_enrollment(alice).await?;
    writeln!(out, "scan this in an authenticator app:\n  {}", enrollment.uri.expose())?;
    let secret = data_encoding::BASE32_NOPAD.decode(enrollment.secret_base32.expose().as_bytes())?;
    let phone = |at: &ManualClock| twofactor::totp::generate(&secret, &TotpParams::default(), at.now().0);

    step(out, "3. Confirm with a code from the phone")?;
    let code = phone(&clock);
    match engine.confirm_enrollment(alice, code.expose()).await? {
        ConfirmOutcome::Confirmed { backup_code_delivery } => {
            writeln!(out, "2FA is on; backup code mail: {backup_code_delivery}")?
        }
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    // Queued with the change, not sent: nothing is in alice's mailbox yet.
    assert!(mailer.last_code_for("alice@example.test").is_none());
    deliver(out, &engine, &mailer).await?;
    let code = mailer.last_code_for("alice@example.test").ok_or("no backup code mailed")?;
    writeln!(out, "alice's backup code arrived: {code}")?;

    step(out, "4. Log in with password + authenticator code")?;
    clock.advance(Duration::from_secs(30)); // a fresh code: the confirming one is spent
    let pending = pending_login(&engine, password).await?;
    let code = phone(&clock);
    writeln!(out, "password accepted; entering code {} from the phone", code.expose())?;
    report(out, engine.finish_login(&pending, SecondFactor::Totp(code.expose()), None).await?)?;

    step(out, "5. \"I don't have my device\": log in with the backup code")?;
    let old_code = mailer.last_code_for("alice@example.test").ok_or("no backup code mailed")?;
    let pending = pending_login(&engine, password).await?;
    writeln!(out, "entering backup code {old_code}")?;
    report(out, engine.finish_login(&pending, SecondFactor::BackupCode(&old_code), None).await?)?;
    deliver(out, &engine, &mailer).await?;
    let new_code = mailer.last_code_for("alice@example.test").ok_or("no new backup code mailed")?;
    assert_ne!(new_code, old_code);
    let pending = pending_login(&engine, password).await?;
    writeln!(out, "trying the old code {old_code} again:")?;
    report(out, engine.finish_login(&pending, SecondFactor::BackupCode(&old_code), None).await?)?;

    step(out, "6. bob resets alice's 2FA; alice logs in with her password alone")?;
    let outcome = engine.reset(bob, alice, "video call, matched the photo ID on file").await?;
    writeln!(out, "reset: {outcome:?}")?;
    deliver(out, &engine, &mailer).await?;
    match engine.begin_login("alice", password, None).await? {
        LoginOutcome::Authenticated(a) => {
            writeln!(out, "alice is logged in ({:?}); she can set up 2FA again", a.method)?
        }
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    Ok(())
}

type DemoEngine = Engine<SqliteStore, MemoryMailer, ManualClock>;

async fn pending_login(engine: &DemoEngine, password: &str) -> Result<String, Box<dyn Error>> {
    match engine.begin_login("alice", password, None).await? {
        LoginOutcome::SecondFactorRequired(pending) => Ok(pending.token().to_owned()),
        other => Err(format!("expected a code prompt, got {other:?}").into()),
    }
}

fn report(out: &mut impl Write, outcome: SecondFactorOutcome) -> io::Result<()> {
    match outcome {
        SecondFactorOutcome::Authenticated(a) => writeln!(out, "  -> logged in as {} ({:?})", a.username, a.method),
        SecondFactorOutcome::Denied { attempts_left } => writeln!(out, "  -> refused ({attempts_left} attempts left)"),
        other => writeln!(out, "  -> {other:?}"),
    }
}

/// What the delivery worker does in an application (every few seconds, and whenever a
/// write queued mail): sends the mail that is due. Then the story shows the newest.
async fn deliver(out: &mut impl Write, engine: &DemoEngine, mailer: &MemoryMailer) -> Result<(), Box<dyn Error>> {
    let report = engine.deliver_due(100).await?;
    writeln!(out, "deliver_due (the delivery worker's call) sent {} queued message(s):", report.sent)?;
    show_last_mail(out, mailer)?;
    Ok(())
}

fn show_last_mail(out: &mut impl Write, mailer: &MemoryMailer) -> io::Result<()> {
    if let Some(mail) = mailer.outbox().last() {
        let to = &mail.message.recipient().email;
        writeln!(out, "  ┌ mail to {to}: {}", mail.rendered.subject)?;
        for line in mail.rendered.text.lines() {
            writeln!(out, "  │ {line}")?;
        }
        writeln!(out, "  └")?;
    }
    Ok(())
}

fn step(out: &mut impl Write, title: &str) -> io::Result<()> {
    writeln!(out, "\n== {title}")
}
