//! SmtpMailer against the real SMTP sink started by `scripts/with-services`: envelope,
//! headers and MIME structure; the code in the mail is the one that works at login;
//! and failures (server down, 4xx then 2xx, 5xx, slow server) leave the account
//! consistent: the used code stays void, the failure is reported and recorded, and a
//! reissue delivers a fresh code once mail flows again.
#![cfg(feature = "smtp")]

mod common;
mod maildir;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{PASSWORD, T0, fast_policy};
use maildir::{Mail, is_code, mails_to, sink};
use twofactor::mail::{
    CodeReason, DefaultRenderer, Recipient, Rendered, Renderer, RetryPolicy, SmtpConfig, SmtpMailer,
};
use twofactor::{
    ConfirmOutcome, Delivery, Engine, KeyRing, LoginOutcome, MailError, Mailer, ManualClock, MemorySink, MemoryStore,
    Message, NewAccount, Role, SecondFactor, SecondFactorOutcome, SecretString, Timestamp, TotpParams, UserId,
};

const FROM: &str = "Acme Security <no-reply@acme.test>";

/// A unique local part for this test run (the sink's fault counters are global).
fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{test}.{}.{nanos}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Fast retries so the tests stay quick; generous per-attempt time for a loaded machine.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        deadline: Duration::from_secs(20),
    }
}

fn mailer_for(url: &str) -> SmtpMailer {
    mailer_with(SmtpConfig::from_url(url, FROM).unwrap().retry(fast_retry()))
}

/// The product name comes from the policy (its issuer, "Acme"), the support contact
/// from configuration.
fn mailer_with(config: SmtpConfig) -> SmtpMailer {
    let policy = fast_policy().build().unwrap();
    SmtpMailer::new(config)
        .unwrap()
        .with_renderer(DefaultRenderer::for_policy(&policy).with_support("security@acme.test"))
}

fn sink_mailer() -> (SmtpMailer, PathBuf) {
    let (url, dir) = sink();
    (mailer_for(&url), dir)
}

/// A URL on which nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("smtp://127.0.0.1:{port}")
}

/// The one mail to `to`, which must exist.
fn only_mail(dir: &Path, to: &str) -> Mail {
    let mut mails = mails_to(dir, to);
    assert_eq!(mails.len(), 1, "expected exactly one mail to {to}");
    mails.remove(0)
}

fn code_message(to: &str, code: &str) -> Message {
    Message::BackupCode {
        to: Recipient { username: "alice".to_owned(), email: to.to_owned() },
        reason: CodeReason::Setup,
        codes: vec![SecretString::from(code)],
        expires_at: None,
    }
}

// ---------------------------------------------------------------------------------
// The mail itself
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn envelope_headers_and_mime_structure() {
    let (mailer, dir) = sink_mailer();
    let to = format!("{}@example.test", unique("structure"));
    mailer.send(&code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();

    let mail = only_mail(&dir, &to);
    // Composed by the same code as the file outbox: no line over 78 characters.
    let raw = std::fs::read_to_string(&mail.file).unwrap();
    assert!(raw.split("\r\n").all(|l| l.len() <= 78), "a long line:\n{raw}");
    assert_eq!(mail.envelope_from(), "<no-reply@acme.test>");
    assert_eq!(mail.envelope_to(), [format!("<{to}>").as_str()]);
    let m = &mail.message;
    assert_eq!(m.header("From"), Some("\"Acme Security\" <no-reply@acme.test>"));
    assert_eq!(m.header("To"), Some(to.as_str()));
    assert_eq!(m.header("Subject"), Some("Your Acme backup code"));
    assert_eq!(m.header("MIME-Version"), Some("1.0"));
    let date = m.header("Date").expect("Date");
    assert!(date.ends_with("+0000") && date.contains(','), "RFC 5322 date: {date}");
    let id = m.header("Message-ID").expect("Message-ID");
    assert!(id.starts_with('<') && id.ends_with('>') && id.contains('@'), "{id}");

    assert_eq!(m.mime_type(), "multipart/alternative");
    let parts = m.subparts();
    let types: Vec<String> = parts.iter().map(|p| p.mime_type()).collect();
    assert_eq!(types, ["text/plain", "text/html"], "plain first, HTML (preferred) last");
    for p in &parts {
        assert_eq!(p.content_type_param("charset").as_deref(), Some("utf-8"));
    }
    assert_eq!(mail.codes(), ["K7QX-M2PD-9WRT-H4NB"], "the code alone on its line:\n{}", mail.text());
    assert!(mail.text().contains("report this to security@acme.test"), "{}", mail.text());
    let html = mail.part("text/html").body;
    assert!(html.contains("<strong>K7QX-M2PD-9WRT-H4NB</strong>") && html.starts_with("<!DOCTYPE html>"), "{html}");
}

#[tokio::test]
async fn a_replaced_renderer_without_html_sends_a_single_text_part() {
    struct Terse;
    impl Renderer for Terse {
        fn render(&self, m: &Message) -> Rendered {
            Rendered { subject: format!("[{}]", m.kind()), text: "Short and plain.\r\n".to_owned(), html: None }
        }
    }
    let (url, dir) = sink();
    let mailer = SmtpMailer::from_url(&url, FROM).unwrap().with_renderer(Terse);
    let to = format!("{}@example.test", unique("terse"));
    mailer.send(&code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();
    let mail = only_mail(&dir, &to);
    assert_eq!(mail.message.header("Subject"), Some("[backup_code.setup]"));
    assert_eq!(mail.message.mime_type(), "text/plain");
    assert_eq!(mail.text().trim_end(), "Short and plain.");
}

// ---------------------------------------------------------------------------------
// End to end through the engine
// ---------------------------------------------------------------------------------

struct Env<M> {
    engine: Engine<MemoryStore, M, ManualClock>,
    store: MemoryStore,
    clock: ManualClock,
    events: MemorySink,
    dir: PathBuf,
}

fn env<M: Mailer + 'static>(mailer: M) -> Env<M> {
    let (_, dir) = sink();
    let store = MemoryStore::new();
    let clock = ManualClock::new(Timestamp(T0));
    let events = MemorySink::new();
    let engine = Engine::builder(store.clone(), mailer, KeyRing::ephemeral().unwrap())
        .clock(clock.clone())
        .policy(fast_policy().build().unwrap())
        .events(events.clone())
        .build()
        .unwrap();
    Env { engine, store, clock, events, dir }
}

impl<M: Mailer> Env<M> {
    /// Creates `name` with `email` and confirms 2FA; returns the id and the setup delivery.
    async fn enroll(&self, name: &str, email: &str) -> (UserId, Delivery) {
        let id = self.engine.create_account(NewAccount::new(name, email, Role::User, PASSWORD)).await.unwrap();
        let started = self.engine.start_enrollment(id).await.unwrap();
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
        let now = twofactor::Clock::now(&self.clock).0;
        let code = twofactor::totp::generate(&secret, &TotpParams::default(), now);
        let outcome = self.engine.confirm_enrollment(id, code.expose()).await.unwrap();
        self.clock.advance(Duration::from_secs(30));
        match outcome {
            ConfirmOutcome::Confirmed { backup_code_delivery } => (id, backup_code_delivery),
            other => panic!("enrollment not confirmed: {other:?}"),
        }
    }

    async fn backup_login(&self, name: &str, code: &str) -> SecondFactorOutcome {
        let pending = match self.engine.begin_login(name, PASSWORD, None).await.unwrap() {
            LoginOutcome::SecondFactorRequired(p) => p,
            other => panic!("expected a second factor, got {other:?}"),
        };
        self.engine.finish_login(pending.token(), SecondFactor::BackupCode(code), None).await.unwrap()
    }

    /// Logs in with `code`, which must work; returns the delivery of its replacement.
    async fn use_code(&self, name: &str, code: &str) -> Delivery {
        match self.backup_login(name, code).await {
            SecondFactorOutcome::Authenticated(auth) => auth.backup_code_delivery.expect("a replacement was mailed"),
            other => panic!("the code from the mail did not work: {other:?}"),
        }
    }

    async fn assert_code_void(&self, name: &str, code: &str) {
        let out = self.backup_login(name, code).await;
        assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "a used code must stay void: {out:?}");
    }

    /// The code in the newest mail to `to`, whose subject must be `subject`.
    fn newest_code(&self, to: &str, subject: &str) -> String {
        let mail = mails_to(&self.dir, to).pop().unwrap_or_else(|| panic!("no mail to {to}"));
        assert_eq!(mail.message.header("Subject"), Some(subject));
        let codes = mail.codes();
        assert_eq!(codes.len(), 1, "one code on its own line:\n{}", mail.text());
        codes[0].clone()
    }

    fn count(&self, event: &str) -> usize {
        self.events.names().iter().filter(|n| **n == event).count()
    }

    /// Changes the account's address directly in the store (the application fixing it).
    async fn set_email(&self, id: UserId, email: &str) {
        assert!(self.store.set_email(id, email), "no such user");
    }

    /// After a failed delivery of a rotated code: it was reported and recorded once.
    fn assert_failure_recorded(&self, delivery: &Delivery, before: (usize, usize)) {
        assert!(matches!(delivery, Delivery::Failed(_)), "{delivery:?}");
        assert_eq!(self.count("backup_code.delivery_failed"), before.0 + 1);
        assert_eq!(self.count("mail.failed"), before.1 + 1);
    }

    fn failure_counts(&self) -> (usize, usize) {
        (self.count("backup_code.delivery_failed"), self.count("mail.failed"))
    }

    /// Enrolls `name` at `email` (the setup mail must be sent); returns the id and the
    /// code from that mail.
    async fn enroll_with_code(&self, name: &str, email: &str) -> (UserId, String) {
        let (id, delivery) = self.enroll(name, email).await;
        assert_eq!(delivery, Delivery::Sent);
        (id, self.newest_code(email, SETUP))
    }

    /// Logs in with `code` while its replacement cannot be delivered to `to`: the
    /// failure is reported and recorded once, nothing more reaches `to`, and `code`
    /// stays void. Returns the reason and how long the login took.
    async fn use_code_undelivered(&self, name: &str, code: &str, to: &str) -> (String, Duration) {
        let before = self.failure_counts();
        let mails_before = mails_to(&self.dir, to).len();
        let started = Instant::now();
        let delivery = self.use_code(name, code).await;
        let took = started.elapsed();
        self.assert_failure_recorded(&delivery, before);
        assert_eq!(mails_to(&self.dir, to).len(), mails_before, "nothing arrived for the failed send");
        self.assert_code_void(name, code).await;
        let Delivery::Failed(why) = delivery else { unreachable!() };
        (why, took)
    }
}

const SETUP: &str = "Your Acme backup code";
const NEW: &str = "Your new Acme backup code";

#[tokio::test]
async fn the_mailed_codes_work_at_login_setup_then_rotation() {
    let (mailer, _) = sink_mailer();
    let e = env(mailer);
    let name = unique("e2e");
    let email = format!("{name}@example.test");
    let (_, delivery) = e.enroll(&name, &email).await;
    assert_eq!(delivery, Delivery::Sent);
    let first = e.newest_code(&email, SETUP);

    assert_eq!(e.use_code(&name, &first).await, Delivery::Sent);
    let second = e.newest_code(&email, NEW);
    assert_ne!(first, second);
    assert_eq!(mails_to(&e.dir, &email).len(), 2);
    e.assert_code_void(&name, &first).await;
    assert_eq!(e.use_code(&name, &second).await, Delivery::Sent);
    assert_ne!(e.newest_code(&email, NEW), second);
    assert_eq!(e.failure_counts(), (0, 0));
}

// ---------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------

/// Sends through the sink, or (when switched) through a server that is down.
struct Switchable {
    up: SmtpMailer,
    down: SmtpMailer,
    is_down: AtomicBool,
}

impl Mailer for Switchable {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        if self.is_down.load(Ordering::SeqCst) { self.down.send(message).await } else { self.up.send(message).await }
    }
}

#[tokio::test]
async fn server_down_reports_the_failure_and_a_reissue_works_once_it_is_back() {
    let (up, _) = sink_mailer();
    let e = env(Switchable { up, down: mailer_for(&closed_port_url()), is_down: AtomicBool::new(false) });
    let name = unique("down");
    let email = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &email).await;

    e.engine.mailer().is_down.store(true, Ordering::SeqCst);
    let (why, _) = e.use_code_undelivered(&name, &code, &email).await;
    assert!(
        why.contains("unavailable") && why.contains("after 1 attempt"),
        "a refused connection is not retried: {why}"
    );
    assert_eq!(mails_to(&e.dir, &email).len(), 1, "only the setup mail");

    e.engine.mailer().is_down.store(false, Ordering::SeqCst);
    assert_eq!(e.engine.reissue_backup_code(id).await.unwrap(), Delivery::Sent);
    let fresh = e.newest_code(&email, NEW);
    assert!(mails_to(&e.dir, &email).last().unwrap().text().contains("A new backup code was requested"));
    assert_ne!(fresh, code);
    assert_eq!(e.use_code(&name, &fresh).await, Delivery::Sent);
}

#[tokio::test]
async fn a_4xx_then_2xx_is_retried_and_delivered() {
    let (mailer, _) = sink_mailer();
    let e = env(mailer);
    let name = unique("retry");
    let good = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &good).await;

    // The sink answers 451 to the first two RCPTs for this address, then 250.
    let flaky = format!("tempfail-2-{name}@example.test");
    e.set_email(id, &flaky).await;
    let started = Instant::now();
    assert_eq!(e.use_code(&name, &code).await, Delivery::Sent, "two 451s are retried within the deadline");
    let took = started.elapsed();
    let pauses = fast_retry().backoff(1) + fast_retry().backoff(2);
    assert!(took >= pauses, "the retries paused ({pauses:?} in all) before trying again: {took:?}");
    let next = e.newest_code(&flaky, NEW);
    assert_eq!(mails_to(&e.dir, &flaky).len(), 1, "delivered exactly once");
    e.assert_code_void(&name, &code).await;
    assert_eq!(e.use_code(&name, &next).await, Delivery::Sent);
    assert_eq!(e.failure_counts(), (0, 0));
}

#[tokio::test]
async fn a_4xx_without_retry_fails_which_shows_the_retry_is_what_delivers() {
    let (url, dir) = sink();
    let config = SmtpConfig::from_url(&url, FROM).unwrap().retry(RetryPolicy::no_retry(Duration::from_secs(10)));
    let mailer = SmtpMailer::new(config).unwrap();
    let to = format!("tempfail-1-{}@example.test", unique("noretry"));
    let err = mailer.send(&code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap_err();
    assert!(matches!(&err, MailError::Unavailable(m) if m.contains("451") && m.contains("after 1 attempt")), "{err}");
    assert!(mails_to(&dir, &to).is_empty());
    mailer.send(&code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();
    assert_eq!(mails_to(&dir, &to).len(), 1);
}

#[tokio::test]
async fn persistent_4xx_gives_up_at_max_attempts_and_a_reissue_works_after_recovery() {
    let (mailer, _) = sink_mailer(); // 4 attempts
    let e = env(mailer);
    let name = unique("tempfail");
    let good = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &good).await;

    // Five 451s: the rotation's four attempts all fail; the reissue's second succeeds.
    let flaky = format!("tempfail-5-{name}@example.test");
    e.set_email(id, &flaky).await;
    let (why, took) = e.use_code_undelivered(&name, &code, &flaky).await;
    assert!(why.contains("451") && why.contains("after 4 attempts") && why.contains("unavailable"), "{why}");
    let bound = fast_retry().deadline + Duration::from_secs(2);
    assert!(took <= bound, "the whole send stayed within the retry deadline: {took:?} > {bound:?}");
    assert!(mails_to(&e.dir, &flaky).is_empty());

    assert_eq!(e.engine.reissue_backup_code(id).await.unwrap(), Delivery::Sent);
    let fresh = e.newest_code(&flaky, NEW);
    assert_eq!(e.use_code(&name, &fresh).await, Delivery::Sent);
}

#[tokio::test]
async fn a_5xx_is_final_and_a_reissue_to_a_good_address_works() {
    let (mailer, _) = sink_mailer();
    let e = env(mailer);
    let name = unique("perm");
    let good = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &good).await;

    let rejected = format!("permfail-{name}@example.test");
    e.set_email(id, &rejected).await;
    let (why, _) = e.use_code_undelivered(&name, &code, &rejected).await;
    assert!(why.contains("rejected") && why.contains("550") && why.contains("after 1 attempt"), "not retried: {why}");
    assert!(mails_to(&e.dir, &rejected).is_empty());
    let before = e.failure_counts();
    assert!(matches!(e.engine.reissue_backup_code(id).await.unwrap(), Delivery::Failed(_)));
    assert_eq!(e.failure_counts(), (before.0 + 1, before.1 + 1));

    e.set_email(id, &good).await;
    assert_eq!(e.engine.reissue_backup_code(id).await.unwrap(), Delivery::Sent);
    let fresh = e.newest_code(&good, NEW);
    assert_ne!(fresh, code);
    assert_eq!(e.use_code(&name, &fresh).await, Delivery::Sent);
}

#[tokio::test]
async fn a_slow_server_hits_the_timeout_within_a_bounded_time() {
    let (url, _) = sink();
    let config =
        SmtpConfig::from_url(&url, FROM).unwrap().command_timeout(Duration::from_millis(500)).retry(fast_retry());
    let e = env(mailer_with(config));
    let name = unique("slow");
    let good = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &good).await;

    // The sink waits 5 s before answering RCPT for this address.
    let slow = format!("slow-5-{name}@example.test");
    e.set_email(id, &slow).await;
    let (why, took) = e.use_code_undelivered(&name, &code, &slow).await;
    assert!(took < Duration::from_secs(4), "the 500 ms timeout cut the 5 s wait: {took:?}");
    assert!(why.contains("no answer from the server within 500 ms") && why.contains("after 1 attempt"), "{why}");
    assert!(mails_to(&e.dir, &slow).is_empty());

    e.set_email(id, &good).await;
    assert_eq!(e.engine.reissue_backup_code(id).await.unwrap(), Delivery::Sent);
    let fresh = e.newest_code(&good, NEW);
    assert_eq!(e.use_code(&name, &fresh).await, Delivery::Sent);
}

#[tokio::test]
async fn starttls_when_asked_for_is_required_not_skipped() {
    // The sink offers no STARTTLS: a mailer told to use it must not fall back to plain text.
    let (url, dir) = sink();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mailer = mailer_for(&format!("{url}{sep}tls=starttls"));
    let to = format!("{}@example.test", unique("starttls"));
    let err = mailer.send(&code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::Unavailable(m) if m.contains("STARTTLS") && m.contains("after 1 attempt")),
        "{err}"
    );
    assert!(mails_to(&dir, &to).is_empty(), "nothing was sent in clear");
}

#[test]
fn code_lines_are_recognised() {
    assert!(is_code("K7QX-M2PD-9WRT-H4NB"));
    assert!(!is_code("If you cannot use your authenticator app"));
    assert!(!is_code("K7QX-M2PD-9WRT"));
}
