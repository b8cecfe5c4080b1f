//! The seed's whole story, with no setup: run `cargo run --example quickstart`.
//!
//! 1. Create alice (user) and bob (admin).
//! 2. Enroll alice and print the `otpauth://` URI (what the QR code holds).
//! 3. Confirm with a code from "her phone"; show the backup-code mail.
//! 4. Log in with password + authenticator code.
//! 5. "I don't have my device": log in with the backup code; show the new code that
//!    was mailed, and the old code refused.
//! 6. bob resets alice's 2FA; alice logs in with her password alone.
//!
//! Accounts live in a SQLite file (the embedded default) in a fresh temporary directory,
//! removed at the end. Time is a manual clock so the story runs instantly; everything
//! else is what an application uses: real Argon2id at OWASP strength, sealed secrets,
//! the mail outbox.

use std::error::Error;
use std::time::Duration;

use twofactor::mail::DefaultRenderer;
use twofactor::{
    Clock, ConfirmOutcome, Engine, KeyRing, LoginOutcome, ManualClock, MemoryMailer, NewAccount, Policy, Role,
    SecondFactor, SecondFactorOutcome, SqliteStore, SystemClock, TotpParams,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("twofactor-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = story(&dir).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

async fn story(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let db = dir.join("twofactor-demo.db");
    let store = SqliteStore::open(&db).await?;
    println!("accounts are stored in {}", db.display());
    let mailer = MemoryMailer::with_renderer(DefaultRenderer::new("Paligo", "support@paligo.example"));
    let clock = ManualClock::new(SystemClock.now());
    let policy = Policy::builder().issuer("Paligo").build()?;
    let engine =
        Engine::builder(store, mailer.clone(), KeyRing::ephemeral()?).clock(clock.clone()).policy(policy).build()?;

    step("1. Create alice (user) and bob (admin)");
    let password = "correct horse battery staple";
    let alice = engine.create_account(NewAccount::new("alice", "alice@example.test", Role::User, password)).await?;
    let bob =
        engine.create_account(NewAccount::new("bob", "bob@example.test", Role::Admin, "bob's long passphrase")).await?;
    println!("created alice ({alice}) and bob ({bob})");

    step("2. Enroll alice");
    let enrollment = engine.start_enrollment(alice).await?;
    println!("scan this in an authenticator app:\n  {}", enrollment.uri.expose());
    let secret = data_encoding::BASE32_NOPAD.decode(enrollment.secret_base32.expose().as_bytes())?;
    let phone = |at: &ManualClock| twofactor::totp::generate(&secret, &TotpParams::default(), at.now().0);

    step("3. Confirm with a code from the phone");
    let code = phone(&clock);
    match engine.confirm_enrollment(alice, code.expose()).await? {
        ConfirmOutcome::Confirmed { backup_code_delivery } => {
            println!("2FA is on; backup code mail: {backup_code_delivery}")
        }
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    show_last_mail(&mailer);

    step("4. Log in with password + authenticator code");
    clock.advance(Duration::from_secs(30)); // a fresh code: the confirming one is spent
    let pending = pending_login(&engine, password).await?;
    let code = phone(&clock);
    println!("password accepted; entering code {} from the phone", code.expose());
    report(engine.finish_login(&pending, SecondFactor::Totp(code.expose()), None).await?);

    step("5. \"I don't have my device\": log in with the backup code");
    let old_code = mailer.last_code_for("alice@example.test").ok_or("no backup code mailed")?;
    let pending = pending_login(&engine, password).await?;
    println!("entering backup code {old_code}");
    report(engine.finish_login(&pending, SecondFactor::BackupCode(&old_code), None).await?);
    println!("a new backup code was mailed:");
    show_last_mail(&mailer);
    let pending = pending_login(&engine, password).await?;
    println!("trying the old code {old_code} again:");
    report(engine.finish_login(&pending, SecondFactor::BackupCode(&old_code), None).await?);

    step("6. bob resets alice's 2FA; alice logs in with her password alone");
    let outcome = engine.reset(bob, alice, "video call, matched the photo ID on file").await?;
    println!("reset: {outcome:?}");
    show_last_mail(&mailer);
    match engine.begin_login("alice", password, None).await? {
        LoginOutcome::Authenticated(a) => println!("alice is logged in ({:?}); she can set up 2FA again", a.method),
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

fn report(outcome: SecondFactorOutcome) {
    match outcome {
        SecondFactorOutcome::Authenticated(a) => println!("  -> logged in as {} ({:?})", a.username, a.method),
        SecondFactorOutcome::Denied { attempts_left } => println!("  -> refused ({attempts_left} attempts left)"),
        other => println!("  -> {other:?}"),
    }
}

fn show_last_mail(mailer: &MemoryMailer) {
    if let Some(mail) = mailer.outbox().last() {
        let to = &mail.message.recipient().email;
        println!("  ┌ mail to {to}: {}", mail.rendered.subject);
        for line in mail.rendered.text.lines() {
            println!("  │ {line}");
        }
        println!("  └");
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}
