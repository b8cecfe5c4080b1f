//! The transactional outbox on every store (`MemoryStore`, SQLite on a file,
//! PostgreSQL), one generic body each: the README's story holds (the used backup code is
//! void at once, its successor stored and queued in the same write, then mailed); a
//! queued code is sealed while it waits and erased once delivered; every message the
//! engine decides on is queued, not sent, by the operation; a failed send is retried
//! with backoff under one Message-ID and given up after its last try; several workers
//! (several engines over one database) send each message exactly once, and a crashed
//! worker's claim runs out; a message that voids queued codes drops their mail; the key
//! operations cover queued codes; the background worker delivers; a document's outbox
//! stays bounded without ever dropping a code.

mod store_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_encoding::{BASE64, HEXLOWER};
use serde_json::Value;
use twofactor::events::MemorySink;
use twofactor::mail::{Delivery, Mailer, MemoryMailer, Message, MessageKind};
use twofactor::store::{Document, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    AppKey, AuthMethod, ConfirmOutcome, DeliveryPolicy, DeliveryReport, DeliveryWorker, Engine, Error, KeyRing,
    LocationPolicy, LoginOutcome, MailError, MailId, MailStatus, ManualClock, NewAccount, Policy, PolicyBuilder,
    ResetOutcome, Role, SecondFactor, SecondFactorOutcome, StoreError, ThrottlePolicy, Timestamp, UserId,
};

const PASSWORD: &str = "correct horse battery staple";
const T0: u64 = 1_800_000_000;
const STEP: Duration = Duration::from_secs(30);

/// A store these tests run on.
trait Store: UserStore + Clone + 'static {}
impl<T: UserStore + Clone + 'static> Store for T {}

type Eng<S, M = MemoryMailer> = Engine<S, M, ManualClock>;

fn fast() -> PolicyBuilder {
    Policy::builder().issuer("Acme").danger_fast_hashing()
}

/// A ring of one fresh key with id 1.
fn first_ring() -> KeyRing {
    KeyRing::new(vec![AppKey::generate(1).expect("key")]).expect("ring")
}

/// One database with the clock, outbox, audit log and keys every engine over it shares,
/// as the app servers of one site share them.
struct Site<S> {
    store: S,
    clock: ManualClock,
    mailer: MemoryMailer,
    events: MemorySink,
    keys: KeyRing,
}

impl<S: Store> Site<S> {
    fn new(store: S) -> Site<S> {
        Site {
            store,
            clock: ManualClock::new(Timestamp(T0)),
            mailer: MemoryMailer::new(),
            events: MemorySink::new(),
            keys: first_ring(),
        }
    }

    /// An engine over the site's store with `policy`.
    fn engine(&self, policy: PolicyBuilder) -> Eng<S> {
        self.engine_on(self.store.clone(), &self.keys, self.mailer.clone(), policy)
    }

    /// An engine over `store` (another connection to the site's database) with `keys`
    /// and `mailer`.
    fn engine_on<M: Mailer>(&self, store: S, keys: &KeyRing, mailer: M, policy: PolicyBuilder) -> Eng<S, M> {
        Engine::builder(store, mailer, keys.clone())
            .clock(self.clock.clone())
            .policy(policy.build().expect("policy"))
            .events(self.events.clone())
            .build()
            .expect("engine")
    }

    fn now(&self) -> Timestamp {
        twofactor::Clock::now(&self.clock)
    }

    fn code(&self, secret: &[u8]) -> String {
        twofactor::totp::generate(secret, &TotpParams::default(), self.now().0).expose().to_owned()
    }

    /// The stored version and document text of `id`, byte for byte.
    async fn raw(&self, id: UserId) -> (u64, String) {
        let user = self.store.find_by_id(id).await.expect("store").expect("the user");
        let stored = user.credentials.expect("a document");
        (stored.version, stored.document.as_json().to_owned())
    }

    /// The stored document of `id`, parsed.
    async fn json(&self, id: UserId) -> Value {
        serde_json::from_str(&self.raw(id).await.1).expect("the document is JSON")
    }

    /// When the stored document of `id` says its earliest mail is due.
    async fn mail_due_at(&self, id: UserId) -> Option<Timestamp> {
        Document::from_json(self.raw(id).await.1).mail_due_at()
    }

    /// The messages waiting in `id`'s document: (id, kind name), in queue order.
    async fn queued(&self, id: UserId) -> Vec<(MailId, String)> {
        let doc = self.json(id).await;
        let Some(outbox) = doc.get("outbox") else { return Vec::new() };
        outbox
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| {
                let id = MailId::parse(m["id"].as_str().expect("an id")).expect("a mail id");
                (id, m["kind"].as_str().expect("a kind").to_owned())
            })
            .collect()
    }

    /// The kind names queued for `id`.
    async fn queued_kinds(&self, id: UserId) -> Vec<String> {
        self.queued(id).await.into_iter().map(|(_, k)| k).collect()
    }

    /// Names of the `mail.*` events so far, in order.
    fn mail_events(&self) -> Vec<&'static str> {
        self.events.names().into_iter().filter(|n| n.starts_with("mail.")).collect()
    }

    /// How many times each id was mailed.
    fn sent_per_id(&self) -> BTreeMap<MailId, usize> {
        let mut counts = BTreeMap::new();
        for mail in self.mailer.outbox() {
            *counts.entry(mail.id).or_default() += 1;
        }
        counts
    }

    /// Creates `name` with the password and confirmed 2FA; the setup code mail waits
    /// (its id returned). Moves to the next TOTP step.
    async fn enrolled<M: Mailer>(&self, engine: &Eng<S, M>, name: &str) -> (User, MailId) {
        let user = self.user(engine, name, Role::User).await;
        let started = engine.start_enrollment(user.id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let confirmed = engine.confirm_enrollment(user.id, &self.code(&secret)).await.expect("confirm");
        let ConfirmOutcome::Confirmed { backup_code_delivery: Delivery::Queued(setup) } = confirmed else {
            panic!("{name}: expected a confirmation with a queued code, got {confirmed:?}");
        };
        self.clock.advance(STEP);
        (User { secret, ..user }, setup)
    }

    /// Creates `name` with the password and no 2FA.
    async fn user<M: Mailer>(&self, engine: &Eng<S, M>, name: &str, role: Role) -> User {
        let email = format!("{name}@example.test");
        let id = engine.create_account(NewAccount::new(name, &email, role, PASSWORD)).await.expect("create");
        User { id, name: name.to_owned(), email, secret: Vec::new() }
    }

    /// The password step, then `code` as the user's backup code.
    async fn backup_login(&self, engine: &Eng<S>, user: &User, code: &str) -> SecondFactorOutcome {
        let pending = pending(engine, user).await;
        engine.finish_login(&pending, SecondFactor::BackupCode(code), None).await.expect("finish")
    }

    /// The password step, then the TOTP code of the next step.
    async fn totp_login(&self, engine: &Eng<S>, user: &User) -> SecondFactorOutcome {
        self.clock.advance(STEP);
        let pending = pending(engine, user).await;
        engine.finish_login(&pending, SecondFactor::Totp(&self.code(&user.secret)), None).await.expect("finish")
    }

    /// The last backup code mailed to `user`.
    fn mailed_code(&self, user: &User) -> String {
        self.mailer.last_code_for(&user.email).expect("a mailed backup code")
    }
}

/// A user of these tests.
#[derive(Debug, Clone)]
struct User {
    id: UserId,
    name: String,
    email: String,
    secret: Vec<u8>,
}

async fn pending<M: Mailer, S: Store>(engine: &Eng<S, M>, user: &User) -> String {
    match engine.begin_login(&user.name, PASSWORD, None).await.expect("login") {
        LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
        other => panic!("{}: expected a second factor, got {other:?}", user.name),
    }
}

async fn wrong_password<S: Store>(engine: &Eng<S>, user: &User) {
    let out = engine.begin_login(&user.name, "not the password at all", None).await.expect("login");
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
}

/// One delivery round over every user.
async fn deliver<S: Store, M: Mailer>(engine: &Eng<S, M>) -> DeliveryReport {
    engine.deliver_due(1000).await.expect("delivery round")
}

#[track_caller]
fn authenticated(out: &SecondFactorOutcome) -> bool {
    matches!(out, SecondFactorOutcome::Authenticated(_))
}

/// No common form of `code` (as shown, without dashes, lower case, their base64 and
/// hex) appears in `text`.
#[track_caller]
fn assert_no_plaintext(text: &str, code: &str, what: &str) {
    let bare = code.replace('-', "");
    let mut forms = vec![code.to_owned(), bare.clone(), code.to_lowercase(), bare.to_lowercase()];
    for f in forms.clone() {
        forms.push(BASE64.encode(f.as_bytes()));
        forms.push(HEXLOWER.encode(f.as_bytes()));
    }
    for form in forms {
        assert!(!text.contains(&form), "{what}: the code appears in plaintext as {form:?}");
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn names(kinds: &[MessageKind]) -> Vec<String> {
    sorted(kinds.iter().map(|k| k.as_str().to_owned()).collect())
}

// ---------------------------------------------------------------- the story

/// README, "The backup code works once": when a backup code is accepted the user is
/// logged in, the code is void from that instant, and a new one is generated, stored and
/// queued in one write; no mail has gone out yet. The delivery round then mails exactly
/// that message; the new code logs in, the old one never does again.
async fn a_used_backup_code_is_void_at_once_and_its_successor_is_stored_and_queued_in_one_write<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let (alice, _) = site.enrolled(&engine, "alice").await;
    deliver(&engine).await;
    let old = site.mailed_code(&alice);
    site.mailer.clear();

    let pending = pending(&engine, &alice).await;
    let (version, before) = site.raw(alice.id).await;
    let out = engine.finish_login(&pending, SecondFactor::BackupCode(&old), None).await.expect("finish");
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("expected a login, got {out:?}") };
    assert_eq!((auth.account, auth.method), (alice.id, AuthMethod::PasswordAndBackupCode));
    let Some(Delivery::Queued(id)) = auth.backup_code_delivery else {
        panic!("expected the new code queued, got {:?}", auth.backup_code_delivery)
    };
    // One write: the code swapped and the mail queued at the next version.
    let (version_after, _) = site.raw(alice.id).await;
    assert_eq!(version_after, version + 1, "the login wrote more than once");
    let before: Value = serde_json::from_str(&before).expect("JSON");
    let after = site.json(alice.id).await;
    assert_ne!(before.pointer("/second_factor/backup_codes"), after.pointer("/second_factor/backup_codes"));
    assert_eq!(site.queued(alice.id).await, [(id, "backup_code.rotated".to_owned())]);
    assert!(site.mailer.outbox().is_empty(), "the login sent mail");
    assert!(
        matches!(engine.mail_status(alice.id, id).await.expect("status"), MailStatus::Queued { attempts: 0, .. }),
        "not queued untried"
    );
    // Void from that instant, before any delivery.
    assert!(!authenticated(&site.backup_login(&engine, &alice, &old).await), "the used code worked again");

    let report = deliver(&engine).await;
    assert_eq!((report.sent, report.retrying, report.gave_up), (1, 0, 0), "{report:?}");
    assert_eq!(report.delivery_of(id), Some(&Delivery::Sent));
    let mails = site.mailer.outbox();
    assert_eq!(mails.len(), 1, "exactly one mail");
    assert_eq!((mails[0].id, mails[0].message.kind()), (id, MessageKind::BackupCodeRotated));
    assert_eq!(mails[0].message.recipient().email, alice.email);
    let new = site.mailed_code(&alice);
    assert_ne!(new, old);
    assert!(authenticated(&site.backup_login(&engine, &alice, &new).await), "the mailed code does not log in");
    assert!(!authenticated(&site.backup_login(&engine, &alice, &old).await), "the used code worked again");
    deliver(&engine).await;
    assert!(!authenticated(&site.backup_login(&engine, &alice, &old).await), "the used code worked again");
}

/// A backup code waits in the document sealed (no form of it in the stored text) and is
/// erased once delivered: the outbox entry is gone, nothing is due, the store no longer
/// lists the user for delivery, and the message is remembered as delivered.
async fn a_queued_code_is_sealed_while_it_waits_and_erased_once_delivered<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let (alice, setup) = site.enrolled(&engine, "alice").await;
    let waiting_setup = site.raw(alice.id).await.1;
    deliver(&engine).await;
    let setup_code = site.mailed_code(&alice);
    assert_no_plaintext(&waiting_setup, &setup_code, "the document with the setup code waiting");
    assert!(matches!(engine.mail_status(alice.id, setup).await.expect("status"), MailStatus::Delivered { .. }));

    let out = site.backup_login(&engine, &alice, &setup_code).await;
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let id = auth.backup_code_delivery.and_then(|d| d.queued()).expect("queued");
    let waiting = site.raw(alice.id).await.1;
    let doc: Value = serde_json::from_str(&waiting).expect("JSON");
    let codes = doc.pointer("/outbox/0/codes").and_then(Value::as_array).expect("sealed codes in the outbox");
    assert_eq!(codes.len(), 1);
    let now = site.now();
    assert_eq!(site.mail_due_at(alice.id).await, Some(now), "due at once");
    assert_eq!(site.store.mail_due(now, 10).await.expect("mail due"), [alice.id]);

    deliver(&engine).await;
    let new = site.mailed_code(&alice);
    for text in [&waiting_setup, &waiting] {
        assert_no_plaintext(text, &new, "a document with the new code waiting");
        assert_no_plaintext(text, &setup_code, "a document after the setup code was used");
    }
    let delivered = site.raw(alice.id).await.1;
    assert_no_plaintext(&delivered, &new, "the document after delivery");
    let doc: Value = serde_json::from_str(&delivered).expect("JSON");
    assert!(doc.get("outbox").is_none_or(|o| o.as_array().is_some_and(Vec::is_empty)), "still queued: {doc}");
    assert!(!delivered.contains(&codes[0].as_str().expect("base64").to_owned()), "the sealed code is still stored");
    assert_eq!(site.mail_due_at(alice.id).await, None);
    assert!(site.store.mail_due(now, 10).await.expect("mail due").is_empty());
    assert_eq!(engine.mail_status(alice.id, id).await.expect("status"), MailStatus::Delivered { at: now });
    let settled = doc.get("settled_mail").and_then(Value::as_array).expect("settled mail remembered");
    assert!(settled.iter().any(|m| m["id"] == id.to_string() && m["delivered"] == true), "{doc}");
}

// ---------------------------------------------------------------- every kind is queued

/// The mailer was cleared before an operation on `user`; it must have queued exactly
/// `kinds` (and `id` among them, when the operation named one) and sent nothing. One
/// round for the user then mails exactly those messages, under their queued ids.
async fn queued_not_sent<S: Store>(
    site: &Site<S>,
    engine: &Eng<S>,
    user: &User,
    kinds: &[MessageKind],
    id: Option<MailId>,
) {
    assert!(site.mailer.outbox().is_empty(), "{kinds:?}: the operation sent mail");
    let queued = site.queued(user.id).await;
    assert_eq!(sorted(queued.iter().map(|(_, k)| k.clone()).collect()), names(kinds), "{kinds:?}");
    if let Some(id) = id {
        assert!(queued.iter().any(|(q, _)| *q == id), "{kinds:?}: the outcome's id is not the queued one");
    }
    let report = engine.deliver_queued(user.id).await.expect("deliver");
    assert_eq!(report.sent as usize, kinds.len(), "{report:?}");
    let mails = site.mailer.outbox();
    assert_eq!(sorted(mails.iter().map(|m| m.message.kind().as_str().to_owned()).collect()), names(kinds));
    assert!(mails.iter().all(|m| m.message.recipient().email == user.email));
    let sent: BTreeSet<MailId> = mails.iter().map(|m| m.id).collect();
    assert_eq!(sent, queued.iter().map(|(q, _)| *q).collect(), "{kinds:?}: mailed under other ids");
    assert!(site.queued(user.id).await.is_empty());
}

/// Enrollment confirmation, a backup-code login, a reissue, a reset, the throttle notice
/// (5th wrong password), the lock notice and the new-location notice: each is queued by
/// the operation's own write, and none is sent by it.
async fn every_message_the_engine_decides_on_is_queued_not_sent<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let root = site.user(&engine, "root", Role::Admin).await;

    // Enrollment confirmation: the setup code.
    let (alice, setup) = site.enrolled(&engine, "alice").await;
    queued_not_sent(&site, &engine, &alice, &[MessageKind::BackupCodeSetup], Some(setup)).await;
    let code = site.mailed_code(&alice);
    site.mailer.clear();

    // A backup-code login: the rotated code.
    let out = site.backup_login(&engine, &alice, &code).await;
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let rotated = auth.backup_code_delivery.and_then(|d| d.queued());
    assert!(rotated.is_some());
    queued_not_sent(&site, &engine, &alice, &[MessageKind::BackupCodeRotated], rotated).await;

    // A reissue.
    site.mailer.clear();
    let reissued = engine.reissue_backup_code(alice.id).await.expect("reissue");
    assert!(reissued.queued().is_some(), "{reissued:?}");
    queued_not_sent(&site, &engine, &alice, &[MessageKind::BackupCodeReissued], reissued.queued()).await;

    // A reset notice.
    site.mailer.clear();
    let ResetOutcome::Reset { notice_delivery } = engine.reset(root.id, alice.id, "called back").await.expect("reset")
    else {
        panic!("the admin may reset alice")
    };
    assert!(notice_delivery.queued().is_some(), "{notice_delivery:?}");
    queued_not_sent(&site, &engine, &alice, &[MessageKind::TwoFactorReset], notice_delivery.queued()).await;

    // The throttle notice, at the 5th wrong password (the default budget), not before.
    site.mailer.clear();
    let bob = site.user(&engine, "bob", Role::User).await;
    assert_eq!(ThrottlePolicy::default().free_failures, 5);
    for _ in 0..4 {
        wrong_password(&engine, &bob).await;
    }
    assert!(site.queued(bob.id).await.is_empty(), "a notice before throttling starts");
    wrong_password(&engine, &bob).await;
    queued_not_sent(&site, &engine, &bob, &[MessageKind::Throttled], None).await;

    // The lock notice (with the throttle notice of the same failure).
    let strict = site.engine(fast().throttle(ThrottlePolicy::default().free_failures(3).disable_after(3)));
    let (carol, _) = site.enrolled(&strict, "carol").await;
    deliver(&strict).await;
    site.mailer.clear();
    let pending = pending(&strict, &carol).await;
    let right: u32 = site.code(&carol.secret).parse().expect("digits");
    let wrong = format!("{:06}", (right + 1) % 1_000_000);
    for _ in 0..3 {
        let out = strict.finish_login(&pending, SecondFactor::Totp(&wrong), None).await.expect("finish");
        assert!(!authenticated(&out), "{out:?}");
    }
    queued_not_sent(&site, &strict, &carol, &[MessageKind::Throttled, MessageKind::SecondFactorLocked], None).await;

    // The new-location notice.
    let notify = site.engine(fast().locations(LocationPolicy::default().notify_new_location(true)));
    let (dave, _) = site.enrolled(&notify, "dave").await;
    deliver(&notify).await;
    site.mailer.clear();
    assert!(authenticated(&site.totp_login(&notify, &dave).await));
    queued_not_sent(&site, &notify, &dave, &[MessageKind::NewLocation], None).await;
}

// ---------------------------------------------------------------- retries and giving up

/// A failed send waits `first_retry`, then twice that; a round before it is due sends
/// nothing; the message finally sent carries the id it was queued with; the audit log
/// says `mail.failed` twice, then `mail.delivered`.
async fn a_failed_send_is_retried_with_backoff_under_one_message_id<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let delivery = DeliveryPolicy::default().max_attempts(3).retry(Duration::from_secs(30), Duration::from_secs(3600));
    let engine = site.engine(fast().delivery(delivery));
    let (alice, id) = site.enrolled(&engine, "alice").await;
    site.mailer.fail_next(2);

    let first = deliver(&engine).await;
    assert_eq!((first.sent, first.retrying, first.gave_up), (0, 1, 0), "{first:?}");
    assert!(matches!(first.delivery_of(id), Some(Delivery::Failed(_))), "{first:?}");
    let retry_at = Timestamp(site.now().0 + 30);
    assert_eq!(
        engine.mail_status(alice.id, id).await.expect("status"),
        MailStatus::Queued { attempts: 1, next_attempt_at: retry_at }
    );
    assert_eq!(site.mail_due_at(alice.id).await, Some(retry_at));
    let early = deliver(&engine).await;
    assert!(early.messages.is_empty() && early.users == 0, "not due yet, yet tried: {early:?}");
    site.clock.advance(Duration::from_secs(29));
    assert!(deliver(&engine).await.messages.is_empty(), "tried a second before its retry");

    site.clock.advance(Duration::from_secs(1));
    let second = deliver(&engine).await;
    assert_eq!((second.sent, second.retrying), (0, 1), "{second:?}");
    let retry_at = Timestamp(site.now().0 + 60);
    assert_eq!(
        engine.mail_status(alice.id, id).await.expect("status"),
        MailStatus::Queued { attempts: 2, next_attempt_at: retry_at },
        "the second wait doubles"
    );
    site.clock.advance(Duration::from_secs(59));
    assert!(deliver(&engine).await.messages.is_empty(), "tried before its retry");
    site.clock.advance(Duration::from_secs(1));
    let third = deliver(&engine).await;
    assert_eq!((third.sent, third.retrying, third.gave_up), (1, 0, 0), "{third:?}");

    let mails = site.mailer.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].id, id, "the Message-ID changed across retries");
    assert_eq!(site.mail_events(), ["mail.failed", "mail.failed", "mail.delivered"]);
    assert_eq!(engine.mail_status(alice.id, id).await.expect("status"), MailStatus::Delivered { at: site.now() });
}

/// After `max_attempts` failed tries a message is given up: `GaveUp`, `mail.gave_up`
/// (and `backup_code.delivery_failed` for a code, not for a notice), the sealed code
/// gone from the document, nothing due. A reissue then gets the user a working code.
async fn a_message_is_given_up_after_its_last_try_and_its_code_erased<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let delivery = DeliveryPolicy::default().max_attempts(2).retry(Duration::from_secs(10), Duration::from_secs(60));
    let engine = site.engine(fast().delivery(delivery));
    let (alice, code_mail) = site.enrolled(&engine, "alice").await;
    let bob = site.user(&engine, "bob", Role::User).await;
    for _ in 0..5 {
        wrong_password(&engine, &bob).await;
    }
    let (notice, _) = site.queued(bob.id).await.pop().expect("a throttle notice");
    site.mailer.fail_next(usize::MAX);

    let first = deliver(&engine).await;
    assert_eq!((first.sent, first.retrying, first.gave_up), (0, 2, 0), "{first:?}");
    site.clock.advance(Duration::from_secs(10));
    let last = deliver(&engine).await;
    assert_eq!((last.sent, last.retrying, last.gave_up), (0, 0, 2), "{last:?}");
    let now = site.now();
    for (user, id) in [(alice.id, code_mail), (bob.id, notice)] {
        assert_eq!(engine.mail_status(user, id).await.expect("status"), MailStatus::GaveUp { at: now, attempts: 2 });
        assert_eq!(site.mail_due_at(user).await, None);
        assert!(site.queued(user).await.is_empty());
    }
    let doc = site.json(alice.id).await;
    assert!(doc.get("outbox").is_none_or(|o| o.as_array().is_some_and(Vec::is_empty)), "{doc}");
    let usage = engine.key_usage().await.expect("usage");
    assert_eq!(usage.by_key, BTreeMap::from([(1, 1)]), "only alice's TOTP secret is sealed");
    let names_for = |user: UserId| -> Vec<&'static str> {
        site.events.events().iter().filter(|e| e.account == Some(user)).map(|e| e.kind.name()).collect()
    };
    let alice_events = names_for(alice.id);
    assert!(alice_events.contains(&"mail.gave_up"), "{alice_events:?}");
    assert!(alice_events.contains(&"backup_code.delivery_failed"), "{alice_events:?}");
    let bob_events = names_for(bob.id);
    assert!(bob_events.contains(&"mail.gave_up"), "{bob_events:?}");
    assert!(!bob_events.contains(&"backup_code.delivery_failed"), "a notice carries no code: {bob_events:?}");
    site.clock.advance(Duration::from_secs(3600));
    assert!(deliver(&engine).await.messages.is_empty(), "a given-up message was tried again");

    // The account change stands; a reissue gets the user a working code.
    site.mailer.fail_next(0);
    let reissued = engine.reissue_backup_code(alice.id).await.expect("reissue");
    assert_eq!(deliver(&engine).await.delivery_of(reissued.queued().expect("queued")), Some(&Delivery::Sent));
    let code = site.mailed_code(&alice);
    assert!(authenticated(&site.backup_login(&engine, &alice, &code).await));
}

// ---------------------------------------------------------------- several workers

const WORKERS: usize = 8;
const USERS: usize = 50;

/// `WORKERS` engines, each on its own connection to the site's database (one per app
/// server).
async fn workers<S: Store>(site: &Site<S>, open: &impl AsyncFn() -> S) -> Vec<Arc<Eng<S>>> {
    let mut engines = Vec::new();
    for _ in 0..WORKERS {
        engines.push(Arc::new(site.engine_on(open().await, &site.keys, site.mailer.clone(), fast())));
    }
    engines
}

/// Runs delivery rounds on every worker at once, each until a round finds no user with
/// mail due; returns how many messages their reports say were sent.
async fn run_workers<S: Store>(engines: &[Arc<Eng<S>>]) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(engines.len()));
    let tasks: Vec<_> = engines
        .iter()
        .enumerate()
        .map(|(n, engine)| {
            let (engine, start) = (Arc::clone(engine), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let mut sent = 0;
                loop {
                    // Rounds of different sizes, so the workers overlap in different ways.
                    let report = engine.deliver_due(3 + n).await.expect("delivery round");
                    sent += report.sent as usize;
                    if report.users == 0 {
                        return sent;
                    }
                }
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.expect("worker");
    }
    sent
}

/// Every queued message was mailed exactly once, under its queued id, and is recorded
/// delivered.
async fn each_sent_once<S: Store>(site: &Site<S>, engine: &Eng<S>, queued: &BTreeMap<MailId, UserId>) {
    let per_id = site.sent_per_id();
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(per_id.keys().copied().collect::<BTreeSet<_>>(), queued.keys().copied().collect(), "not all sent");
    for (id, user) in queued {
        assert!(matches!(engine.mail_status(*user, *id).await.expect("status"), MailStatus::Delivered { .. }));
        assert_eq!(site.mail_due_at(*user).await, None);
    }
}

/// Enrolls `USERS` users; returns their queued setup mails.
async fn queue_for_many<S: Store>(site: &Site<S>, engine: &Eng<S>) -> BTreeMap<MailId, UserId> {
    let mut queued = BTreeMap::new();
    for n in 0..USERS {
        let (user, id) = site.enrolled(engine, &format!("user{n}")).await;
        queued.insert(id, user.id);
    }
    assert!(site.mailer.outbox().is_empty());
    queued
}

/// Eight workers, each an engine on its own connection to the database (eight app
/// servers), run delivery rounds at once over fifty users' queued code mails: each
/// message is sent exactly once, under its queued id, and every one is recorded
/// delivered.
async fn several_workers_send_each_message_exactly_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let first = site.engine(fast());
    let queued = queue_for_many(&site, &first).await;
    let sent = run_workers(&workers(&site, &open).await).await;
    each_sent_once(&site, &first, &queued).await;
    assert_eq!(sent, USERS, "the reports count each message once");
}

/// The same eight workers through a mail outage (the next 70 sends fail): the failed
/// messages wait for their retry, and once it is due and the transport is back, each
/// message is still mailed exactly once.
async fn several_workers_through_an_outage_still_send_each_message_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let first = site.engine(fast());
    let queued = queue_for_many(&site, &first).await;
    let engines = workers(&site, &open).await;
    site.mailer.fail_next(70);
    let mut sent = 0;
    for _ in 0..3 {
        sent += run_workers(&engines).await;
        site.clock.advance(DeliveryPolicy::default().max_retry);
    }
    each_sent_once(&site, &first, &queued).await;
    assert_eq!(sent, USERS);
    let failed = site.mail_events().iter().filter(|n| **n == "mail.failed").count();
    assert_eq!(failed, 70, "each failed send is recorded once");
}

/// A mailer whose sends never finish: a worker that crashed mid-send.
#[derive(Clone, Default)]
struct Stall {
    entered: Arc<tokio::sync::Notify>,
    id: Arc<Mutex<Option<MailId>>>,
}

impl Mailer for Stall {
    async fn send(&self, id: MailId, _message: &Message) -> Result<(), MailError> {
        *self.id.lock().expect("lock") = Some(id);
        self.entered.notify_one();
        std::future::pending().await
    }
}

/// A worker (an engine over another connection) claims the due mail and dies while
/// sending message `id`.
async fn crash_a_worker_sending<S: Store>(
    site: &Site<S>,
    open: &impl AsyncFn() -> S,
    policy: PolicyBuilder,
    id: MailId,
) {
    let stall = Stall::default();
    let crashing = Arc::new(site.engine_on(open().await, &site.keys, stall.clone(), policy));
    let task = tokio::spawn({
        let crashing = Arc::clone(&crashing);
        async move { crashing.deliver_due(10).await }
    });
    tokio::time::timeout(Duration::from_secs(10), stall.entered.notified()).await.expect("the claim and send began");
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    assert_eq!(*stall.id.lock().expect("lock"), Some(id));
}

/// A worker that claimed a message and never settled it (it crashed mid-send) holds it
/// for the lease only: no one sends it meanwhile; after the lease another worker sends
/// it, under the id the first one tried.
async fn a_crashed_workers_claim_runs_out_and_another_sends_under_the_same_id<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let lease = Duration::from_secs(120);
    let policy = || fast().delivery(DeliveryPolicy::default().lease(lease));
    let healthy = site.engine(policy());
    let (alice, id) = site.enrolled(&healthy, "alice").await;
    crash_a_worker_sending(&site, &open, policy(), id).await;
    let claimed_until = Timestamp(site.now().0 + lease.as_secs());
    assert_eq!(
        healthy.mail_status(alice.id, id).await.expect("status"),
        MailStatus::Queued { attempts: 1, next_attempt_at: claimed_until }
    );

    let during = deliver(&healthy).await;
    assert!(during.messages.is_empty(), "sent while another worker held the claim: {during:?}");
    site.clock.advance(lease - Duration::from_secs(1));
    assert!(deliver(&healthy).await.messages.is_empty(), "sent before the lease ran out");
    site.clock.advance(Duration::from_secs(1));
    let after = deliver(&healthy).await;
    assert_eq!((after.sent, after.delivery_of(id)), (1, Some(&Delivery::Sent)), "{after:?}");
    let mails = site.mailer.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].id, id, "the retry after a crash has another Message-ID");
    assert!(matches!(healthy.mail_status(alice.id, id).await.expect("status"), MailStatus::Delivered { .. }));
}

/// A message whose last try crashed its worker is given up by the next claim once the
/// lease runs out, and that round reports it.
async fn a_message_whose_last_try_crashed_is_given_up_by_the_next_round<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let lease = Duration::from_secs(120);
    let policy = || fast().delivery(DeliveryPolicy::default().lease(lease).max_attempts(1));
    let healthy = site.engine(policy());
    let (alice, id) = site.enrolled(&healthy, "alice").await;
    crash_a_worker_sending(&site, &open, policy(), id).await;
    site.clock.advance(lease);
    let after = deliver(&healthy).await;
    assert_eq!((after.users, after.sent, after.gave_up), (1, 0, 1), "{after:?}");
    assert_eq!(
        healthy.mail_status(alice.id, id).await.expect("status"),
        MailStatus::GaveUp { at: site.now(), attempts: 1 }
    );
    assert!(site.mailer.outbox().is_empty());
}

// ---------------------------------------------------------------- newer messages void queued codes

/// A reissue while a code mail waits leaves only the new code's mail (notices stay):
/// the voided codes are never mailed, and the one mailed works.
async fn a_reissue_drops_the_queued_code_mail_it_voids<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let (alice, setup) = site.enrolled(&engine, "alice").await;
    for _ in 0..5 {
        wrong_password(&engine, &alice).await;
    }
    assert_eq!(site.queued_kinds(alice.id).await, ["backup_code.setup", "throttled"]);
    let first = engine.reissue_backup_code(alice.id).await.expect("reissue").queued().expect("queued");
    assert_eq!(site.queued_kinds(alice.id).await, ["throttled", "backup_code.reissued"]);
    let second = engine.reissue_backup_code(alice.id).await.expect("reissue").queued().expect("queued");
    let queued = site.queued(alice.id).await;
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[1], (second, "backup_code.reissued".to_owned()));
    assert!(site.mailer.outbox().is_empty());

    assert_eq!(deliver(&engine).await.sent, 2);
    let codes: Vec<_> = site.mailer.outbox().into_iter().filter(|m| m.message.carries_code()).collect();
    assert_eq!(codes.len(), 1, "a voided code was mailed");
    assert_eq!(codes[0].id, second);
    for dropped in [setup, first] {
        let status = engine.mail_status(alice.id, dropped).await.expect("status");
        assert_eq!(status, MailStatus::Unknown, "a dropped mail is neither queued, sent nor given up");
    }
    site.clock.advance(Duration::from_secs(3600)); // past the throttle
    let code = site.mailed_code(&alice);
    assert!(authenticated(&site.backup_login(&engine, &alice, &code).await));
}

/// With several codes per account, a used code's successor voids nothing else: the
/// successor of an earlier use, still waiting, is mailed too, and each mailed code works.
async fn with_several_codes_a_successor_keeps_the_other_queued_successors<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast().backup_code_count(2));
    let (alice, _) = site.enrolled(&engine, "alice").await;
    deliver(&engine).await;
    let setup_codes: Vec<String> = match &site.mailer.outbox()[0].message {
        Message::BackupCode { codes, .. } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("expected the setup codes, got {other:?}"),
    };
    assert_eq!(setup_codes.len(), 2);
    for code in &setup_codes {
        assert!(authenticated(&site.backup_login(&engine, &alice, code).await));
    }
    assert_eq!(site.queued_kinds(alice.id).await, ["backup_code.rotated", "backup_code.rotated"]);

    assert_eq!(deliver(&engine).await.sent, 2);
    let successors: Vec<String> = site.mailer.outbox()[1..]
        .iter()
        .map(|m| match &m.message {
            Message::BackupCode { codes, .. } => codes[0].expose().to_owned(),
            other => panic!("expected a successor code, got {other:?}"),
        })
        .collect();
    for code in &successors {
        assert!(authenticated(&site.backup_login(&engine, &alice, code).await), "a mailed successor works");
    }
}

/// A reset while a code mail waits drops it and queues the reset notice: the user is
/// mailed the notice only.
async fn a_reset_drops_a_queued_code_mail_and_queues_its_notice<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let root = site.user(&engine, "root", Role::Admin).await;
    let (alice, _) = site.enrolled(&engine, "alice").await;
    deliver(&engine).await;
    let code = site.mailed_code(&alice);
    site.mailer.clear();
    let out = site.backup_login(&engine, &alice, &code).await;
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let rotated = auth.backup_code_delivery.and_then(|d| d.queued()).expect("queued");
    assert_eq!(site.queued(alice.id).await, [(rotated, "backup_code.rotated".to_owned())]);

    let ResetOutcome::Reset { notice_delivery } = engine.reset(root.id, alice.id, "video call").await.expect("reset")
    else {
        panic!("the admin may reset alice")
    };
    let notice = notice_delivery.queued().expect("queued");
    assert_eq!(site.queued(alice.id).await, [(notice, "reset".to_owned())]);
    assert_eq!(deliver(&engine).await.sent, 1);
    let mails = site.mailer.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!((mails[0].id, mails[0].message.kind()), (notice, MessageKind::TwoFactorReset));
    let status = engine.mail_status(alice.id, rotated).await.expect("status");
    assert_eq!(status, MailStatus::Unknown, "a dropped mail is neither queued, sent nor given up");
    assert_eq!(engine.key_usage().await.expect("usage").by_key, BTreeMap::new(), "a sealed code stayed behind");
}

// ---------------------------------------------------------------- keys

/// A code waiting under an old key keeps that key in use: `key_usage` counts the
/// document under it (its TOTP secret is under the new key), and `retire_key` refuses
/// until the mail is delivered.
async fn a_key_sealing_a_queued_code_stays_in_use_until_the_mail_is_delivered<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let ring1 = first_ring();
    let ring2 = ring1.with_new_key().expect("new key");
    let e1 = site.engine_on(site.store.clone(), &ring1, site.mailer.clone(), fast());
    let e2 = site.engine_on(site.store.clone(), &ring2, site.mailer.clone(), fast());
    let (alice, _) = site.enrolled(&e1, "alice").await;
    deliver(&e1).await;
    assert!(e1.reissue_backup_code(alice.id).await.expect("reissue").queued().is_some());
    // A login on the new ring re-seals the TOTP secret, not the queued code.
    assert!(authenticated(&site.totp_login(&e2, &alice).await));
    let usage = e2.key_usage().await.expect("usage");
    assert_eq!(usage.documents, 1);
    assert_eq!(usage.by_key, BTreeMap::from([(1, 1), (2, 1)]), "the queued code's key is not counted");
    let refused = e2.retire_key(1).await;
    assert!(matches!(refused, Err(Error::KeyInUse { key_id: 1, documents: 1 })), "{refused:?}");

    site.mailer.clear();
    assert_eq!(deliver(&e2).await.sent, 1, "the ring with both keys opens the old code");
    assert_eq!(e2.key_usage().await.expect("usage").by_key, BTreeMap::from([(2, 1)]));
    let ring3 = e2.retire_key(1).await.expect("no document needs key 1 now");
    assert_eq!(ring3.ids(), [2]);
    let e3 = site.engine_on(site.store.clone(), &ring3, site.mailer.clone(), fast());
    let code = site.mailed_code(&alice);
    let out = {
        let pending = pending(&e3, &alice).await;
        e3.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.expect("finish")
    };
    assert!(authenticated(&out), "{out:?}");
}

/// `reseal` re-seals queued codes under the newest key (same mail id, new blob); the old
/// key can then be retired, and an engine with only the new key delivers the right
/// code.
async fn reseal_moves_queued_codes_to_the_new_key_and_the_mail_still_delivers<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let ring1 = first_ring();
    let e1 = site.engine_on(site.store.clone(), &ring1, site.mailer.clone(), fast());
    let (alice, _) = site.enrolled(&e1, "alice").await;
    deliver(&e1).await;
    site.mailer.clear();
    let id = e1.reissue_backup_code(alice.id).await.expect("reissue").queued().expect("queued");
    let sealed_before = site.json(alice.id).await.pointer("/outbox/0/codes/0").cloned().expect("a sealed code");

    let ring2 = ring1.with_new_key().expect("new key");
    let e2 = site.engine_on(site.store.clone(), &ring2, site.mailer.clone(), fast());
    let report = e2.reseal(None, |_| {}).await.expect("reseal");
    assert_eq!(report.resealed, 1);
    let doc = site.json(alice.id).await;
    assert_eq!(doc.pointer("/outbox/0/id").and_then(Value::as_str), Some(id.to_string().as_str()));
    let sealed_after = doc.pointer("/outbox/0/codes/0").and_then(Value::as_str).expect("a sealed code");
    assert_ne!(Some(sealed_after), sealed_before.as_str(), "the queued code was not re-sealed");
    let blob = BASE64.decode(sealed_after.as_bytes()).expect("base64");
    assert_eq!(u32::from_be_bytes(blob[1..5].try_into().expect("a key id")), 2, "sealed under key 2");
    assert_eq!(e2.key_usage().await.expect("usage").by_key, BTreeMap::from([(2, 1)]));

    let ring3 = e2.retire_key(1).await.expect("key 1 retired");
    let e3 = site.engine_on(site.store.clone(), &ring3, site.mailer.clone(), fast());
    let delivered = deliver(&e3).await;
    assert_eq!((delivered.sent, delivered.skipped), (1, 0), "{delivered:?}");
    let mails = site.mailer.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].id, id);
    let code = site.mailed_code(&alice);
    let out = {
        let pending = pending(&e3, &alice).await;
        e3.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.expect("finish")
    };
    assert!(authenticated(&out), "the re-sealed code mailed is not the stored one: {out:?}");
}

// ---------------------------------------------------------------- the background worker

/// Waits (at most 10 s) until `done` holds, checking every few milliseconds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `DeliveryWorker` delivers what is queued without being asked: the setup code at
/// its first round, then, woken by the write that queued it (its poll interval is an
/// hour), a backup-code login's new code and a 5th wrong password's notice; `shutdown`
/// returns.
async fn the_delivery_worker_delivers_queued_mail_in_the_background<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = Arc::new(site.engine(fast()));
    let (alice, setup) = site.enrolled(&engine, "alice").await;
    let worker = DeliveryWorker::spawn(Arc::clone(&engine), Duration::from_secs(3600)).expect("worker");
    eventually("the setup code", || site.mailer.outbox().iter().any(|m| m.id == setup)).await;
    let code = site.mailed_code(&alice);

    let out = site.backup_login(&engine, &alice, &code).await;
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("{out:?}") };
    let rotated = auth.backup_code_delivery.and_then(|d| d.queued()).expect("queued");
    eventually("the new code", || site.mailer.outbox().iter().any(|m| m.id == rotated)).await;
    let new = site.mailed_code(&alice);
    assert_ne!(new, code);
    // A failed password's write wakes it too.
    let bob = site.user(&engine, "bob", Role::User).await;
    for _ in 0..5 {
        wrong_password(&engine, &bob).await;
    }
    let throttled = |m: &twofactor::mail::SentMail| m.message.kind() == MessageKind::Throttled;
    eventually("the throttle notice", || site.mailer.outbox().iter().any(throttled)).await;
    tokio::time::timeout(Duration::from_secs(10), worker.shutdown()).await.expect("the worker stops");
    assert!(authenticated(&site.backup_login(&engine, &alice, &new).await));
    assert_eq!(site.sent_per_id().values().copied().collect::<Vec<_>>(), [1, 1, 1], "each mail once");
}

// ---------------------------------------------------------------- bounded

/// While nothing is delivered, 40 rounds of a throttle notice (5 wrong passwords) and a
/// new-location notice (a login) never leave more than 32 messages queued; the oldest
/// notices go first, and the queued setup code is never the one dropped (it is mailed,
/// and works, when delivery resumes).
async fn the_outbox_stays_bounded_and_never_drops_a_queued_code<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast().locations(LocationPolicy::default().notify_new_location(true)));
    let (alice, setup) = site.enrolled(&engine, "alice").await;
    let mut login_times = Vec::new();
    for round in 0..40 {
        for _ in 0..5 {
            wrong_password(&engine, &alice).await;
        }
        site.clock.advance(Duration::from_secs(60)); // past the throttle; the login takes the next step
        assert!(authenticated(&site.totp_login(&engine, &alice).await), "round {round}");
        login_times.push(site.now().0);
        let queued = site.queued(alice.id).await;
        assert!(queued.len() <= 32, "round {round}: {} messages queued", queued.len());
        assert!(queued.iter().any(|(id, _)| *id == setup), "round {round}: the queued code was dropped");
    }
    let doc = site.json(alice.id).await;
    let outbox = doc["outbox"].as_array().expect("an outbox");
    assert_eq!(outbox.len(), 32);
    // 80 notices, 31 kept: the newest, from round 24's login on.
    let oldest_notice = outbox
        .iter()
        .filter(|m| m["kind"] != "backup_code.setup")
        // Never tried, so each is due from the moment it was queued.
        .map(|m| m["due"].as_u64().expect("a time"))
        .min();
    assert_eq!(oldest_notice, Some(login_times[24]), "not the oldest notices dropped");
    assert!(site.mailer.outbox().is_empty());

    let report = deliver(&engine).await;
    assert_eq!(report.sent, 32, "{report:?}");
    assert!(site.mailer.outbox().iter().any(|m| m.id == setup));
    let code = site.mailed_code(&alice);
    assert!(authenticated(&site.backup_login(&engine, &alice, &code).await));
}

// ---------------------------------------------------------------- on every store

use store_support::on_every_store_opener as on_every_store;

on_every_store!(
    a_used_backup_code_is_void_at_once_and_its_successor_is_stored_and_queued_in_one_write,
    a_queued_code_is_sealed_while_it_waits_and_erased_once_delivered,
    every_message_the_engine_decides_on_is_queued_not_sent,
    a_failed_send_is_retried_with_backoff_under_one_message_id,
    a_message_is_given_up_after_its_last_try_and_its_code_erased,
    several_workers_send_each_message_exactly_once,
    several_workers_through_an_outage_still_send_each_message_once,
    a_crashed_workers_claim_runs_out_and_another_sends_under_the_same_id,
    a_message_whose_last_try_crashed_is_given_up_by_the_next_round,
    a_reissue_drops_the_queued_code_mail_it_voids,
    with_several_codes_a_successor_keeps_the_other_queued_successors,
    a_reset_drops_a_queued_code_mail_and_queues_its_notice,
    a_key_sealing_a_queued_code_stays_in_use_until_the_mail_is_delivered,
    reseal_moves_queued_codes_to_the_new_key_and_the_mail_still_delivers,
    the_delivery_worker_delivers_queued_mail_in_the_background,
    the_outbox_stays_bounded_and_never_drops_a_queued_code,
);

// ---------------------------------------------------------------- paging (MemoryStore)

/// A `MemoryStore` that records the `limit` of every `mail_due` query, and whose reads
/// by id fail while `down` is set.
#[derive(Clone, Default)]
struct DueQueries {
    store: twofactor::store::MemoryStore,
    limits: Arc<Mutex<Vec<usize>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl DueQueries {
    /// The limits asked since the last call.
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.limits.lock().expect("limits"))
    }
}

impl UserStore for DueQueries {
    async fn find_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::backend("connection refused"));
        }
        self.store.find_by_id(id).await
    }
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.store.find_by_login(login).await
    }
    async fn insert_document(&self, id: UserId, document: &Document) -> Result<Swap, StoreError> {
        self.store.insert_document(id, document).await
    }
    async fn compare_and_swap(&self, id: UserId, expected: u64, document: &Document) -> Result<Swap, StoreError> {
        self.store.compare_and_swap(id, expected, document).await
    }
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.store.create_user(user).await
    }
    async fn mail_due(&self, now: Timestamp, limit: usize) -> Result<Vec<UserId>, StoreError> {
        self.limits.lock().expect("limits").push(limit);
        self.store.mail_due(now, limit).await
    }
}

/// A user whose document the engine cannot read (it decodes to nothing it knows) but
/// whose mail the store reports due now: a round skips it.
async fn unreadable_with_mail_due(site: &Site<DueQueries>, n: u64) {
    let broken = Document::from_json(format!(r#"{{"format":1,"outbox":[{{"due":{}}}]}}"#, T0 - 1));
    let name = format!("broken{n}");
    let user = UserRecord::new(UserId::from(1_000_000 + n), &name, format!("{name}@example.test"), Role::User)
        .with_document(1, broken);
    site.store.create_user(&user).await.expect("create");
}

/// A round delivers to at most `max_users` users, asking the store again past the
/// documents it must skip (so they do not keep the users behind them waiting), and asks
/// no more than it needs: `max_users` plus what it skipped, and no second query once
/// the store answered fewer users than asked.
#[tokio::test]
async fn a_round_pages_past_unreadable_documents_and_asks_no_more_than_it_needs() {
    let site = Site::new(DueQueries::default());
    let engine = site.engine(fast());
    for n in 0..2 {
        unreadable_with_mail_due(&site, n).await;
    }
    let mut good = Vec::new();
    for n in 0..5 {
        good.push(site.enrolled(&engine, &format!("user{n}")).await.0);
    }
    site.store.take();

    // The two unreadable documents are due first: the first query (3) finds one user
    // to serve, the second (3 + 2 skipped) the other two.
    let report = engine.deliver_due(3).await.expect("round");
    assert_eq!((report.users, report.skipped, report.sent), (3, 2, 3), "{report:?}");
    assert_eq!(site.store.take(), [3, 5]);
    let mailed: Vec<bool> = good.iter().map(|u| site.mailer.last_code_for(&u.email).is_some()).collect();
    assert_eq!(mailed, [true, true, true, false, false], "the three users due first");

    // Fewer users due than asked: one query.
    let report = engine.deliver_due(10).await.expect("round");
    assert_eq!((report.users, report.skipped, report.sent), (2, 2, 2), "{report:?}");
    assert_eq!(site.store.take(), [10]);
    assert_eq!(site.mailer.outbox().len(), 5);
}

/// A round stops after skipping more than 1000 unreadable documents (each one asked
/// for again on every query), and reports them.
#[tokio::test]
async fn a_round_gives_up_after_skipping_more_than_a_thousand_documents() {
    let site = Site::new(DueQueries::default());
    let engine = site.engine(fast());
    for n in 0..1002 {
        unreadable_with_mail_due(&site, n).await;
    }
    let report = engine.deliver_due(1).await.expect("round");
    assert_eq!((report.users, report.skipped), (0, 1001), "{report:?}");
    assert_eq!(site.store.take().len(), 1001, "one query per skipped document");
}

/// The store failing stops a round at once with its error (the next round tries
/// again), unlike a document that cannot be read.
#[tokio::test]
async fn a_store_fault_stops_the_round() {
    let site = Site::new(DueQueries::default());
    let engine = site.engine(fast());
    site.enrolled(&engine, "alice").await;
    site.store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let round = engine.deliver_due(10).await;
    assert!(matches!(round, Err(Error::Store(StoreError::Backend(_)))), "{round:?}");
    site.store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(engine.deliver_due(10).await.expect("round").sent, 1);
}
