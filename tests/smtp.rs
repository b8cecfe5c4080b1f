//! SmtpMailer against the real SMTP sink started by `scripts/with-services`: envelope,
//! headers (the Message-ID is the outbox's mail id) and MIME structure; the code in the
//! mail is the one that works at login; and failures (server down for a while, 4xx
//! then 2xx, 5xx, slow server) leave the account consistent: the used code stays void,
//! the failure is reported by the delivery round and recorded, the message stays
//! queued, and once mail flows again every message arrives exactly once, with the same
//! Message-ID it was first tried with.
//!
//! The engine's operations only queue mail (`Delivery::Queued`); these tests deliver it
//! with `Engine::deliver_queued` (one user) or `Engine::deliver_due` (a worker's round).
#![cfg(feature = "smtp")]

mod common;
mod maildir;

use std::collections::{BTreeSet, HashMap};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{PASSWORD, T0, fast_policy};
use maildir::{Mail, is_code, mails_to, sink};
use twofactor::events::MemorySink;
use twofactor::mail::{
    CodeReason, DefaultRenderer, Recipient, Rendered, Renderer, RetryPolicy, SmtpConfig, SmtpMailer,
};
use twofactor::mail::{Delivery, Mailer, Message, MessageKind};
use twofactor::store::MemoryStore;
use twofactor::totp::TotpParams;
use twofactor::{
    Clock, ConfirmOutcome, DeliveryPolicy, DeliveryReport, Engine, KeyRing, LoginOutcome, MailError, MailId,
    MailStatus, ManualClock, NewAccount, Policy, ResetOutcome, Role, SecondFactor, SecondFactorOutcome, SecretString,
    Timestamp, UserId,
};

const FROM: &str = "Acme Security <no-reply@acme.test>";

/// A unique local part for this test run (the sink's fault counters are global).
fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{test}.{}.{nanos}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A mail id of our own, for sends outside the engine.
fn fresh_id() -> MailId {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = u128::from(N.fetch_add(1, Ordering::Relaxed));
    let pid = u128::from(std::process::id());
    MailId::parse(&format!("{:032x}", (nanos << 40) ^ (pid << 20) ^ n)).unwrap()
}

/// The Message-ID header the shipped mailers write for `id` from [`FROM`].
fn message_id(id: MailId) -> String {
    format!("<{id}@acme.test>")
}

/// Fast retries so the tests stay quick; generous per-attempt time for a loaded machine.
fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(4)
        .initial_backoff(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(200))
        .deadline(Duration::from_secs(20))
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

/// A port on which nothing listens (yet).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// The one mail to `to`, which must exist.
fn only_mail(dir: &Path, to: &str) -> Mail {
    let mut mails = mails_to(dir, to);
    assert_eq!(mails.len(), 1, "expected exactly one mail to {to}");
    mails.remove(0)
}

/// The mails to `to` whose Message-ID is `id`'s.
fn mails_with_id(dir: &Path, to: &str, id: MailId) -> Vec<Mail> {
    let wanted = message_id(id);
    mails_to(dir, to).into_iter().filter(|m| m.message.header("Message-ID") == Some(wanted.as_str())).collect()
}

fn code_message(to: &str, code: &str) -> Message {
    Message::BackupCode {
        to: Recipient { username: "alice".to_owned(), email: to.to_owned() },
        reason: CodeReason::Setup,
        codes: vec![SecretString::from(code)],
        expires_at: None,
    }
}

/// The id of a queued message.
#[track_caller]
fn queued(delivery: &Delivery) -> MailId {
    delivery.queued().unwrap_or_else(|| panic!("the operation queues its mail: {delivery:?}"))
}

// ---------------------------------------------------------------------------------
// The mail itself
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn envelope_headers_and_mime_structure() {
    let (mailer, dir) = sink_mailer();
    let to = format!("{}@example.test", unique("structure"));
    let id = fresh_id();
    mailer.send(id, &code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();

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
    assert_eq!(m.headers_named("Message-ID"), [message_id(id).as_str()], "the mail id at the sender's domain");

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
    let id = fresh_id();
    mailer.send(id, &code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();
    let mail = only_mail(&dir, &to);
    assert_eq!(mail.message.header("Subject"), Some("[backup_code.setup]"));
    assert_eq!(mail.message.header("Message-ID"), Some(message_id(id).as_str()));
    assert_eq!(mail.message.mime_type(), "text/plain");
    assert_eq!(mail.text().trim_end(), "Short and plain.");
}

// ---------------------------------------------------------------------------------
// End to end through the engine and its outbox
// ---------------------------------------------------------------------------------

struct Env<M> {
    engine: Engine<MemoryStore, M, ManualClock>,
    store: MemoryStore,
    clock: ManualClock,
    events: MemorySink,
    dir: PathBuf,
}

fn env<M: Mailer + 'static>(mailer: M) -> Env<M> {
    env_with(mailer, fast_policy().build().unwrap())
}

fn env_with<M: Mailer + 'static>(mailer: M, policy: Policy) -> Env<M> {
    let (_, dir) = sink();
    let store = MemoryStore::new();
    let clock = ManualClock::new(Timestamp(T0));
    let events = MemorySink::new();
    let engine = Engine::builder(store.clone(), mailer, KeyRing::ephemeral().unwrap())
        .clock(clock.clone())
        .policy(policy)
        .events(events.clone())
        .build()
        .unwrap();
    Env { engine, store, clock, events, dir }
}

/// What a delivery round that failed to send a message told.
struct Undelivered {
    /// The queued message.
    mail: MailId,
    /// The reason the round gave.
    why: String,
    /// How long the backup-code login took (it never waits on mail).
    login: Duration,
    /// How long the delivery round took.
    delivery: Duration,
}

impl<M: Mailer> Env<M> {
    /// Creates `name` with `email` and confirms 2FA; returns the id and the queued
    /// setup mail.
    async fn enroll(&self, name: &str, email: &str) -> (UserId, MailId) {
        let id = self.engine.create_account(NewAccount::new(name, email, Role::User, PASSWORD)).await.unwrap();
        let started = self.engine.start_enrollment(id).await.unwrap();
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).unwrap();
        let now = self.clock.now().0;
        let code = twofactor::totp::generate(&secret, &TotpParams::default(), now);
        let outcome = self.engine.confirm_enrollment(id, code.expose()).await.unwrap();
        self.clock.advance(Duration::from_secs(30));
        match outcome {
            ConfirmOutcome::Confirmed { backup_code_delivery } => (id, queued(&backup_code_delivery)),
            other => panic!("enrollment not confirmed: {other:?}"),
        }
    }

    /// Delivers `user`'s due mail now.
    async fn deliver(&self, user: UserId) -> DeliveryReport {
        self.engine.deliver_queued(user).await.unwrap()
    }

    /// Delivers `user`'s due mail, which must be exactly `mail`, and it must be sent.
    async fn deliver_one(&self, user: UserId, mail: MailId) {
        let report = self.deliver(user).await;
        assert_eq!(report.messages.len(), 1, "{report:?}");
        assert_eq!(report.delivery_of(mail), Some(&Delivery::Sent), "{report:?}");
        assert_eq!(report.sent, 1);
        assert!(matches!(self.engine.mail_status(user, mail).await.unwrap(), MailStatus::Delivered { .. }));
    }

    async fn backup_login(&self, name: &str, code: &str) -> SecondFactorOutcome {
        let pending = match self.engine.begin_login(name, PASSWORD, None).await.unwrap() {
            LoginOutcome::SecondFactorRequired(p) => p,
            other => panic!("expected a second factor, got {other:?}"),
        };
        self.engine.finish_login(pending.token(), SecondFactor::BackupCode(code), None).await.unwrap()
    }

    /// Logs in with `code`, which must work; returns the queued mail of its replacement.
    async fn use_code(&self, name: &str, code: &str) -> MailId {
        match self.backup_login(name, code).await {
            SecondFactorOutcome::Authenticated(auth) => {
                queued(&auth.backup_code_delivery.expect("a replacement was queued"))
            }
            other => panic!("the code from the mail did not work: {other:?}"),
        }
    }

    async fn assert_code_void(&self, name: &str, code: &str) {
        let out = self.backup_login(name, code).await;
        assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "a used code must stay void: {out:?}");
    }

    /// The code in the one mail to `to` with `mail`'s Message-ID, whose subject must be
    /// `subject`.
    fn code_in(&self, to: &str, mail: MailId, subject: &str) -> String {
        let mut mails = mails_with_id(&self.dir, to, mail);
        assert_eq!(mails.len(), 1, "exactly one mail to {to} with Message-ID {}", message_id(mail));
        let mail = mails.remove(0);
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

    /// (`backup_code.delivery_failed`, `mail.failed`) events so far.
    fn failure_counts(&self) -> (usize, usize) {
        (self.count("backup_code.delivery_failed"), self.count("mail.failed"))
    }

    /// Enrolls `name` at `email` and delivers the setup mail (it must be sent); returns
    /// the id and the code from that mail.
    async fn enroll_with_code(&self, name: &str, email: &str) -> (UserId, String) {
        let (id, setup) = self.enroll(name, email).await;
        self.deliver_one(id, setup).await;
        (id, self.code_in(email, setup, SETUP))
    }

    /// Logs in with `code` (queuing its replacement) and delivers while the replacement
    /// cannot reach `to`: the round reports the failure, it is recorded once
    /// (`mail.failed`; the backup code is not given up yet), the mail stays queued for
    /// its retry, nothing more reaches `to`, and `code` stays void.
    async fn use_code_undelivered(&self, user: UserId, name: &str, code: &str, to: &str) -> Undelivered {
        let before = self.failure_counts();
        let mails_before = mails_to(&self.dir, to).len();
        let started = Instant::now();
        let mail = self.use_code(name, code).await;
        let login = started.elapsed();
        let started = Instant::now();
        let report = self.deliver(user).await;
        let delivery = started.elapsed();
        let why = match report.delivery_of(mail) {
            Some(Delivery::Failed(why)) => why.clone(),
            other => panic!("the delivery failed: {other:?} in {report:?}"),
        };
        assert_eq!((report.sent, report.retrying, report.gave_up), (0, 1, 0), "{report:?}");
        assert_eq!(self.failure_counts(), (before.0, before.1 + 1), "recorded once, not given up");
        let retry_at = self.clock.now().plus(self.engine.policy().delivery().retry_after(1));
        assert_eq!(
            self.engine.mail_status(user, mail).await.unwrap(),
            MailStatus::Queued { attempts: 1, next_attempt_at: retry_at },
            "queued for its retry"
        );
        assert_eq!(mails_to(&self.dir, to).len(), mails_before, "nothing arrived for the failed send");
        self.assert_code_void(name, code).await;
        Undelivered { mail, why, login, delivery }
    }

    /// Moves the clock past the retry of a message that failed `failures` times.
    fn past_retry(&self, failures: u32) {
        self.clock.advance(self.engine.policy().delivery().retry_after(failures) + Duration::from_secs(1));
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
    let (id, setup) = e.enroll(&name, &email).await;
    assert!(mails_to(&e.dir, &email).is_empty(), "queued, not sent, by the enrollment");
    e.deliver_one(id, setup).await;
    let first = e.code_in(&email, setup, SETUP);

    let rotated = e.use_code(&name, &first).await;
    assert_ne!(rotated, setup);
    assert_eq!(mails_to(&e.dir, &email).len(), 1, "queued, not sent, by the login");
    e.deliver_one(id, rotated).await;
    let second = e.code_in(&email, rotated, NEW);
    assert_ne!(first, second);
    assert_eq!(mails_to(&e.dir, &email).len(), 2);
    e.assert_code_void(&name, &first).await;
    let third = e.use_code(&name, &second).await;
    e.deliver_one(id, third).await;
    assert_ne!(e.code_in(&email, third, NEW), second);
    assert_eq!(e.failure_counts(), (0, 0));
    assert_eq!(e.count("mail.delivered"), 3);
    assert!(e.deliver(id).await.messages.is_empty(), "nothing left to send");
}

// ---------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------

/// A TCP relay to the sink on a port of its own, which can be taken down (nothing
/// listens: connections are refused, as by a mail server that is down) and brought
/// back on the same port. The mailer pointed at it never changes.
struct Relay {
    port: u16,
    target: SocketAddr,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Relay {
    /// A relay to the sink at `sink_url` (`smtp://host:port`), up.
    fn to_sink(sink_url: &str) -> Relay {
        let authority = sink_url.strip_prefix("smtp://").and_then(|r| r.split(['/', '?']).next()).unwrap();
        let mut relay = Relay { port: closed_port(), target: authority.parse().unwrap(), running: None };
        relay.up();
        relay
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        assert!(self.running.is_none(), "already up");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("the relay's port {} was taken meanwhile: {e}", self.port));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let target = self.target;
        let accept = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || relay_connection(client, target));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("relay accept: {e}"),
                }
            }
            // The listener is dropped here: the port refuses connections again.
        });
        self.running = Some((stop, accept));
    }

    fn down(&mut self) {
        if let Some((stop, accept)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            accept.join().unwrap();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
    }
}

/// Copies bytes both ways between `client` and a new connection to `target`.
fn relay_connection(client: TcpStream, target: SocketAddr) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect(target) else { return };
    let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

/// The issue's "SMTP down for a while, then back: every message is delivered exactly
/// once". Messages of five kinds for five users are queued while the server is down;
/// delivery rounds (the clock moved past each backoff) all fail and leave them queued;
/// once the server is back, rounds run until nothing is due, and every message arrives
/// exactly once, with the Message-ID it was first tried with, the codes in them work,
/// and the used (or replaced) codes stay void.
#[tokio::test]
async fn smtp_down_for_a_while_then_back_every_message_is_delivered_exactly_once() {
    const DOWN_ROUNDS: u32 = 3;
    let (sink_url, _) = sink();
    let mut relay = Relay::to_sink(&sink_url);
    let delivery = DeliveryPolicy::default()
        .max_attempts(DOWN_ROUNDS + 2)
        .retry(Duration::from_secs(30), Duration::from_secs(120));
    let e = env_with(mailer_for(&relay.url()), fast_policy().delivery(delivery).build().unwrap());
    let tag = unique("outage");
    let name = |who: &str| format!("{who}.{tag}");
    let addr = |who: &str| format!("{who}.{tag}@example.test");

    // While mail flows: alice, bob and dave enroll and get their first codes.
    let (alice, alice_code) = e.enroll_with_code(&name("alice"), &addr("alice")).await;
    let (bob, bob_code) = e.enroll_with_code(&name("bob"), &addr("bob")).await;
    let (dave, _) = e.enroll_with_code(&name("dave"), &addr("dave")).await;
    let admin = e.engine.create_account(NewAccount::new(&name("root"), &addr("root"), Role::Admin, PASSWORD)).await;
    let admin = admin.unwrap();
    let erin = e.engine.create_account(NewAccount::new(&name("erin"), &addr("erin"), Role::User, PASSWORD)).await;
    let erin = erin.unwrap();
    assert_eq!(e.count("mail.delivered"), 3);

    // The server goes down; every kind of message is queued meanwhile.
    relay.down();
    let rotated = e.use_code(&name("alice"), &alice_code).await;
    let reissued = queued(&e.engine.reissue_backup_code(bob).await.unwrap());
    let (carol, carol_setup) = e.enroll(&name("carol"), &addr("carol")).await;
    let reset = match e.engine.reset(admin, dave, "called back on the number on file").await.unwrap() {
        ResetOutcome::Reset { notice_delivery } => queued(&notice_delivery),
        other => panic!("{other:?}"),
    };
    for _ in 0..5 {
        let out = e.engine.begin_login(&name("erin"), "not the password", None).await.unwrap();
        assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    }

    // Down: every round tries every message once, fails, and leaves it queued; nothing
    // is tried again before its backoff has passed.
    let mut throttled = None;
    for round in 1..=DOWN_ROUNDS {
        let report = e.engine.deliver_due(100).await.unwrap();
        assert_eq!((report.sent, report.retrying, report.gave_up, report.skipped), (0, 5, 0, 0), "{report:?}");
        let erins: Vec<MailId> =
            report.messages.iter().filter(|(_, k, _)| *k == MessageKind::Throttled).map(|(id, _, _)| *id).collect();
        assert_eq!(erins.len(), 1, "{report:?}");
        assert_eq!(*throttled.get_or_insert(erins[0]), erins[0], "the same message, the same id, every round");
        let tried: BTreeSet<MailId> = report.messages.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(tried, BTreeSet::from([rotated, reissued, carol_setup, reset, erins[0]]), "round {round}");
        for (id, kind, delivery) in &report.messages {
            assert!(
                matches!(delivery, Delivery::Failed(why) if why.contains("unavailable")),
                "{id:?} {kind}: {delivery:?}"
            );
        }
        let again = e.engine.deliver_due(100).await.unwrap();
        assert!(again.messages.is_empty(), "nothing is due before the backoff has passed: {again:?}");
        e.past_retry(round);
    }
    let throttled = throttled.unwrap();
    let expected: [(MailId, UserId, &str, MessageKind); 5] = [
        (rotated, alice, "alice", MessageKind::BackupCodeRotated),
        (reissued, bob, "bob", MessageKind::BackupCodeReissued),
        (carol_setup, carol, "carol", MessageKind::BackupCodeSetup),
        (reset, dave, "dave", MessageKind::TwoFactorReset),
        (throttled, erin, "erin", MessageKind::Throttled),
    ];
    for (id, user, who, _) in expected {
        let status = e.engine.mail_status(user, id).await.unwrap();
        assert!(matches!(status, MailStatus::Queued { attempts: DOWN_ROUNDS, .. }), "{who}: {status:?}");
        assert!(mails_with_id(&e.dir, &addr(who), id).is_empty(), "{who}: nothing arrived while down");
    }
    assert_eq!(e.failure_counts(), (0, 5 * DOWN_ROUNDS as usize));
    assert_eq!(e.count("mail.gave_up"), 0);

    // The server is back: rounds until nothing is due.
    relay.up();
    let mut sent: HashMap<MailId, MessageKind> = HashMap::new();
    for round in 0.. {
        assert!(round < 10, "the queue drains");
        let report = e.engine.deliver_due(100).await.unwrap();
        if report.messages.is_empty() {
            break;
        }
        for (id, kind, delivery) in &report.messages {
            assert_eq!(delivery, &Delivery::Sent, "{kind}");
            assert!(sent.insert(*id, *kind).is_none(), "{kind} sent twice");
        }
        e.past_retry(DOWN_ROUNDS + 1);
    }
    let kinds: HashMap<MailId, MessageKind> = expected.iter().map(|(id, _, _, kind)| (*id, *kind)).collect();
    assert_eq!(sent, kinds, "every message sent once, each under the id it was queued and retried with");
    assert_eq!(e.count("mail.delivered"), 3 + 5);

    // In the sink: each message exactly once, its Message-ID the mail id it was tried
    // with while the server was down.
    let subjects = [
        (MessageKind::BackupCodeRotated, NEW),
        (MessageKind::BackupCodeReissued, NEW),
        (MessageKind::BackupCodeSetup, SETUP),
        (MessageKind::TwoFactorReset, "Two-factor authentication was reset on your Acme account"),
        (MessageKind::Throttled, "Failed sign-in attempts on your Acme account"),
    ];
    for (id, user, who, kind) in expected {
        let mails = mails_with_id(&e.dir, &addr(who), id);
        assert_eq!(mails.len(), 1, "{who}: {kind} delivered exactly once");
        let subject = subjects.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert_eq!(mails[0].message.header("Subject"), Some(subject), "{who}: {kind}");
        assert!(matches!(e.engine.mail_status(user, id).await.unwrap(), MailStatus::Delivered { .. }));
    }
    let all: Vec<Mail> =
        ["alice", "bob", "carol", "dave", "erin", "root"].iter().flat_map(|w| mails_to(&e.dir, &addr(w))).collect();
    assert_eq!(all.len(), 3 + 5, "three setup mails before the outage, five after it, nothing else");
    let ids: BTreeSet<&str> = all.iter().map(|m| m.message.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "no Message-ID twice");

    // The right codes: each new one works, each used or replaced one stays void.
    let alice_new = e.code_in(&addr("alice"), rotated, NEW);
    let bob_new = e.code_in(&addr("bob"), reissued, NEW);
    let carol_first = e.code_in(&addr("carol"), carol_setup, SETUP);
    e.assert_code_void(&name("alice"), &alice_code).await;
    e.assert_code_void(&name("bob"), &bob_code).await;
    e.use_code(&name("alice"), &alice_new).await;
    e.use_code(&name("bob"), &bob_new).await;
    e.use_code(&name("carol"), &carol_first).await;
    e.assert_code_void(&name("alice"), &alice_new).await;
}

/// A message every try of which fails is given up after the policy's last try: the
/// round says so, the backup code in it is erased and the give-up recorded; once mail
/// flows again a reissue delivers a fresh code.
#[tokio::test]
async fn a_code_given_up_during_an_outage_is_recorded_and_a_reissue_works_once_back() {
    let (sink_url, _) = sink();
    let mut relay = Relay::to_sink(&sink_url);
    let delivery = DeliveryPolicy::default().max_attempts(2).retry(Duration::from_secs(30), Duration::from_secs(60));
    let e = env_with(mailer_for(&relay.url()), fast_policy().delivery(delivery).build().unwrap());
    let name = unique("giveup");
    let email = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &email).await;

    relay.down();
    let failed = e.use_code_undelivered(id, &name, &code, &email).await;
    assert!(
        failed.why.contains("unavailable") && failed.why.contains("after 1 attempt"),
        "a refused connection is not retried inside the mailer: {}",
        failed.why
    );
    e.past_retry(1);
    let report = e.deliver(id).await;
    assert_eq!((report.sent, report.gave_up), (0, 1), "{report:?}");
    assert!(matches!(report.delivery_of(failed.mail), Some(Delivery::GaveUp(_))));
    assert!(matches!(e.engine.mail_status(id, failed.mail).await.unwrap(), MailStatus::GaveUp { attempts: 2, .. }));
    assert_eq!(e.failure_counts(), (1, 2), "the give-up of a code is recorded once");
    assert_eq!(e.count("mail.gave_up"), 1);
    e.past_retry(2);
    assert!(e.deliver(id).await.messages.is_empty(), "given up: never tried again");
    assert_eq!(mails_to(&e.dir, &email).len(), 1, "only the setup mail");

    relay.up();
    let reissued = queued(&e.engine.reissue_backup_code(id).await.unwrap());
    e.deliver_one(id, reissued).await;
    let fresh = e.code_in(&email, reissued, NEW);
    assert!(mails_to(&e.dir, &email).last().unwrap().text().contains("A new backup code was requested"));
    assert_ne!(fresh, code);
    e.use_code(&name, &fresh).await;
    assert!(mails_with_id(&e.dir, &email, failed.mail).is_empty(), "the given-up message never went out");
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
    let rotated = e.use_code(&name, &code).await;
    let started = Instant::now();
    e.deliver_one(id, rotated).await; // two 451s are retried within the mailer's deadline
    let took = started.elapsed();
    let pauses = fast_retry().backoff(1) + fast_retry().backoff(2);
    assert!(took >= pauses, "the retries paused ({pauses:?} in all) before trying again: {took:?}");
    let next = e.code_in(&flaky, rotated, NEW);
    assert_eq!(mails_to(&e.dir, &flaky).len(), 1, "delivered exactly once");
    e.assert_code_void(&name, &code).await;
    let again = e.use_code(&name, &next).await;
    e.deliver_one(id, again).await;
    assert_eq!(e.failure_counts(), (0, 0));
}

#[tokio::test]
async fn a_4xx_without_retry_fails_which_shows_the_retry_is_what_delivers() {
    let (url, dir) = sink();
    let config = SmtpConfig::from_url(&url, FROM).unwrap().retry(RetryPolicy::no_retry(Duration::from_secs(10)));
    let mailer = SmtpMailer::new(config).unwrap();
    let to = format!("tempfail-1-{}@example.test", unique("noretry"));
    let id = fresh_id();
    let err = mailer.send(id, &code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap_err();
    assert!(matches!(&err, MailError::Unavailable(m) if m.contains("451") && m.contains("after 1 attempt")), "{err}");
    assert!(mails_to(&dir, &to).is_empty());
    mailer.send(id, &code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap();
    let mail = only_mail(&dir, &to);
    assert_eq!(mail.message.header("Message-ID"), Some(message_id(id).as_str()), "the same id on the second try");
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
    let failed = e.use_code_undelivered(id, &name, &code, &flaky).await;
    let why = &failed.why;
    assert!(why.contains("451") && why.contains("after 4 attempts") && why.contains("unavailable"), "{why}");
    let bound = fast_retry().deadline + Duration::from_secs(2);
    assert!(failed.delivery <= bound, "the whole send stayed within the retry deadline: {:?}", failed.delivery);
    assert!(mails_to(&e.dir, &flaky).is_empty());

    // The reissued code replaces the queued one: only the reissued mail goes out.
    let reissued = queued(&e.engine.reissue_backup_code(id).await.unwrap());
    let status = e.engine.mail_status(id, failed.mail).await.unwrap();
    assert!(!matches!(status, MailStatus::Queued { .. }), "the replaced code's mail is no longer queued: {status:?}");
    e.deliver_one(id, reissued).await;
    let fresh = e.code_in(&flaky, reissued, NEW);
    e.use_code(&name, &fresh).await;
    e.past_retry(4);
    let report = e.deliver(id).await;
    assert!(report.delivery_of(failed.mail).is_none(), "the replaced mail is never sent: {report:?}");
    assert!(mails_with_id(&e.dir, &flaky, failed.mail).is_empty());
}

#[tokio::test]
async fn a_5xx_is_final_for_the_mailer_and_the_queued_mail_reaches_the_fixed_address() {
    let (mailer, _) = sink_mailer();
    let e = env(mailer);
    let name = unique("perm");
    let good = format!("{name}@example.test");
    let (id, code) = e.enroll_with_code(&name, &good).await;

    let rejected = format!("permfail-{name}@example.test");
    e.set_email(id, &rejected).await;
    let failed = e.use_code_undelivered(id, &name, &code, &rejected).await;
    let why = &failed.why;
    assert!(why.contains("rejected") && why.contains("550") && why.contains("after 1 attempt"), "not retried: {why}");
    assert!(mails_to(&e.dir, &rejected).is_empty());
    let before = e.failure_counts();
    let reissued = queued(&e.engine.reissue_backup_code(id).await.unwrap());
    let report = e.deliver(id).await;
    assert!(matches!(report.delivery_of(reissued), Some(Delivery::Failed(_))), "{report:?}");
    assert_eq!(e.failure_counts(), (before.0, before.1 + 1));

    // The application fixes the address; the queued mail's recipient is read at
    // delivery, so its next try goes there.
    e.set_email(id, &good).await;
    e.past_retry(1);
    e.deliver_one(id, reissued).await;
    let fresh = e.code_in(&good, reissued, NEW);
    assert_ne!(fresh, code);
    e.use_code(&name, &fresh).await;
    assert!(mails_to(&e.dir, &rejected).is_empty());
}

#[tokio::test]
async fn a_slow_server_hits_the_timeout_within_a_bounded_time_and_no_login_waits_for_it() {
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
    let failed = e.use_code_undelivered(id, &name, &code, &slow).await;
    assert!(failed.login < Duration::from_secs(4), "the login did not wait for the mail: {:?}", failed.login);
    assert!(failed.delivery < Duration::from_secs(4), "the 500 ms timeout cut the 5 s wait: {:?}", failed.delivery);
    let why = &failed.why;
    assert!(why.contains("no answer from the server within 500 ms") && why.contains("after 1 attempt"), "{why}");
    assert!(mails_to(&e.dir, &slow).is_empty());

    e.set_email(id, &good).await;
    e.past_retry(1);
    e.deliver_one(id, failed.mail).await;
    let fresh = e.code_in(&good, failed.mail, NEW);
    let next = e.use_code(&name, &fresh).await;
    e.deliver_one(id, next).await;
}

#[tokio::test]
async fn starttls_when_asked_for_is_required_not_skipped() {
    // The sink offers no STARTTLS: a mailer told to use it must not fall back to plain text.
    let (url, dir) = sink();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mailer = mailer_for(&format!("{url}{sep}tls=starttls"));
    let to = format!("{}@example.test", unique("starttls"));
    let err = mailer.send(fresh_id(), &code_message(&to, "K7QX-M2PD-9WRT-H4NB")).await.unwrap_err();
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
