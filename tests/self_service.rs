//! Self-service (issue 14) on every store (`MemoryStore`, SQLite on a file,
//! PostgreSQL), one generic body per rule, each named for it: several authenticators
//! (add, list, log in, replay state, remove, reset), turning 2FA off, step-up checks,
//! an administrator's unlock and forgetting a user; and the races, with two
//! authenticators, between engines over separate connections to one database.

mod common;
mod store_support;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::delivered;
use twofactor::events::Factor;
use twofactor::events::{Event, EventKind, MemorySink};
use twofactor::mail::{Delivery, MemoryMailer, MessageKind};
use twofactor::store::UserStore;
use twofactor::totp::TotpParams;
use twofactor::{
    AddAuthenticatorOutcome, AuthMethod, ConfirmOutcome, Engine, Error, KeyRing, LoginOutcome, ManualClock, NewAccount,
    Policy, PolicyBuilder, Refusal, ResetOutcome, Role, SecondFactor, SecondFactorOutcome, StepUpOutcome,
    ThrottlePolicy, Timestamp, TwoFactorState, UnlockOutcome, UserId,
};

const PASSWORD: &str = "correct horse battery staple";
const T0: u64 = 1_800_000_000;
const STEP: Duration = Duration::from_secs(30);

/// A store these tests run on.
trait Store: UserStore + Clone + 'static {}
impl<T: UserStore + Clone + 'static> Store for T {}

type Eng<S> = Engine<S, MemoryMailer, ManualClock>;

fn fast() -> PolicyBuilder {
    Policy::builder().issuer("Acme").danger_fast_hashing()
}

/// A budget the racing tasks' failures do not exhaust (the races are about single use,
/// not about throttling).
fn relaxed() -> PolicyBuilder {
    fast().danger_relaxed_throttle(ThrottlePolicy::default().free_failures(100).disable_after(100))
}

/// One database with the clock, mailer, audit log and keys that every engine over it
/// shares, as the app servers of one site share them.
struct Site<S> {
    store: S,
    clock: ManualClock,
    mailer: MemoryMailer,
    events: MemorySink,
    keys: KeyRing,
}

/// A user of these tests, with the authenticator it enrolled first.
#[derive(Debug, Clone)]
struct User {
    id: UserId,
    name: String,
    email: String,
    phone: Device,
}

/// An authenticator: its public id and its secret.
#[derive(Debug, Clone)]
struct Device {
    id: String,
    secret: Vec<u8>,
}

impl<S: Store> Site<S> {
    fn new(store: S) -> Site<S> {
        Site {
            store,
            clock: ManualClock::new(Timestamp(T0)),
            mailer: MemoryMailer::new(),
            events: MemorySink::new(),
            keys: KeyRing::ephemeral().expect("keys"),
        }
    }

    /// An engine over the site's store.
    fn engine(&self, policy: PolicyBuilder) -> Eng<S> {
        self.engine_on(self.store.clone(), policy.build().expect("policy"))
    }

    /// An engine over `store` (another connection to the site's database).
    fn engine_on(&self, store: S, policy: Policy) -> Eng<S> {
        Engine::builder(store, self.mailer.clone(), self.keys.clone())
            .clock(self.clock.clone())
            .policy(policy)
            .events(self.events.clone())
            .build()
            .expect("engine")
    }

    fn now(&self) -> u64 {
        twofactor::Clock::now(&self.clock).0
    }

    /// The code `secret` shows now.
    fn code(&self, secret: &[u8]) -> String {
        self.code_at(secret, self.now())
    }

    fn code_at(&self, secret: &[u8], at: u64) -> String {
        twofactor::totp::generate(secret, &TotpParams::default(), at).expose().to_owned()
    }

    /// A well-formed code that `secret` does not show now.
    fn wrong_code(&self, secret: &[u8]) -> String {
        let right: u32 = self.code(secret).parse().expect("digits");
        format!("{:06}", (right + 1) % 1_000_000)
    }

    fn next_step(&self) {
        self.clock.advance(STEP);
    }

    /// Creates `name` with the password and no 2FA.
    async fn user(&self, engine: &Eng<S>, name: &str, role: Role) -> UserId {
        let email = format!("{name}@example.test");
        engine.create_account(NewAccount::new(name, &email, role, PASSWORD)).await.expect("create")
    }

    /// Creates `name` with confirmed 2FA, delivers the setup code and moves to the next
    /// step.
    async fn enrolled(&self, engine: &Eng<S>, name: &str) -> User {
        self.enrolled_as(engine, name, Role::User).await
    }

    async fn enrolled_as(&self, engine: &Eng<S>, name: &str, role: Role) -> User {
        let user = self.enrolled_undelivered(engine, name, role).await;
        delivered(engine).await;
        user
    }

    /// As [`enrolled_as`](Self::enrolled_as), but the setup code's mail stays queued.
    async fn enrolled_undelivered(&self, engine: &Eng<S>, name: &str, role: Role) -> User {
        let id = self.user(engine, name, role).await;
        let phone = self.enroll(engine, id).await;
        User { id, name: name.to_owned(), email: format!("{name}@example.test"), phone }
    }

    /// Starts and confirms 2FA for `id` and moves to the next step; the setup code's
    /// mail stays queued.
    async fn enroll(&self, engine: &Eng<S>, id: UserId) -> Device {
        let started = engine.start_enrollment(id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let confirmed = engine.confirm_enrollment(id, &self.code(&secret)).await.expect("confirm");
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
        self.next_step();
        let listed = engine.authenticators(id).await.expect("list");
        Device { id: listed[0].id.clone(), secret }
    }

    /// Adds and confirms an authenticator named `name`, then moves to the next step.
    async fn add(&self, engine: &Eng<S>, user: &User, name: &str) -> Device {
        let started = engine.add_authenticator(user.id, name).await.expect("add");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let added = engine.confirm_authenticator(user.id, &self.code(&secret)).await.expect("confirm");
        let AddAuthenticatorOutcome::Added { id, .. } = added else { panic!("{name}: not added: {added:?}") };
        self.next_step();
        Device { id, secret }
    }

    /// The last backup code mailed to `user` (deliver first).
    fn backup_code(&self, user: &User) -> String {
        self.mailer.last_code_for(&user.email).expect("a mailed backup code")
    }

    /// The events named `name`, in order.
    fn events_named(&self, name: &str) -> Vec<Event> {
        self.events.events().into_iter().filter(|e| e.kind.name() == name).collect()
    }

    /// The kinds of the mail sent to `user` so far, in order.
    fn mail_kinds(&self, user: &User) -> Vec<MessageKind> {
        self.mailer
            .outbox()
            .iter()
            .filter(|m| m.message.recipient().email == user.email)
            .map(|m| m.message.kind())
            .collect()
    }

    /// The plain-text bodies of the mail of `kind` sent to `user`.
    fn mail_texts(&self, user: &User, kind: MessageKind) -> Vec<String> {
        self.mailer
            .outbox()
            .iter()
            .filter(|m| m.message.recipient().email == user.email && m.message.kind() == kind)
            .map(|m| m.rendered.text.clone())
            .collect()
    }

    /// The stored document of `id`, parsed.
    async fn json(&self, id: UserId) -> serde_json::Value {
        let user = self.store.find_by_id(id).await.expect("store").expect("the user");
        serde_json::from_str(user.credentials.expect("a document").document.as_json()).expect("JSON")
    }

    /// The stored count of consecutive failures of `id`.
    async fn failures(&self, id: UserId) -> u64 {
        self.json(id).await.pointer("/throttle/failures").map_or(0, |v| v.as_u64().expect("a number"))
    }

    async fn two_factor(&self, engine: &Eng<S>, id: UserId) -> TwoFactorState {
        engine.account(id).await.expect("account").expect("the user").two_factor
    }

    async fn authenticator_ids(&self, engine: &Eng<S>, id: UserId) -> Vec<String> {
        engine.authenticators(id).await.expect("list").into_iter().map(|a| a.id).collect()
    }
}

async fn pending<S: Store>(engine: &Eng<S>, user: &User) -> String {
    match engine.begin_login(&user.name, PASSWORD, None).await.expect("login") {
        LoginOutcome::SecondFactorRequired(p) => p.token().to_owned(),
        other => panic!("{}: expected a second factor, got {other:?}", user.name),
    }
}

/// The password step, then `factor`.
async fn login<S: Store>(engine: &Eng<S>, user: &User, factor: SecondFactor<'_>) -> SecondFactorOutcome {
    let pending = pending(engine, user).await;
    engine.finish_login(&pending, factor, None).await.expect("finish")
}

fn logged_in(out: &SecondFactorOutcome) -> bool {
    matches!(out, SecondFactorOutcome::Authenticated(_))
}

#[track_caller]
fn verified(out: &StepUpOutcome, factor: Factor) {
    match out {
        StepUpOutcome::Verified { factor: f, .. } if *f == factor => {}
        other => panic!("expected Verified by {factor:?}, got {other:?}"),
    }
}

#[track_caller]
fn refused(result: twofactor::Result<StepUpOutcome>, refusal: Refusal) {
    match result {
        Err(Error::Misuse(r)) if r == refusal => {}
        other => panic!("expected Misuse({refusal:?}), got {other:?}"),
    }
}

// ---------------------------------------------------------------- several authenticators

/// A user adds a second authenticator under a name of their choosing; it is confirmed
/// by a code from it (not from the first one) and logs in only from then on.
async fn a_second_authenticator_is_added_with_a_name_and_confirmed_by_a_code_from_it<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let started = engine.add_authenticator(alice.id, "  Tablet  ").await.expect("add");
    assert!(started.uri.expose().starts_with("otpauth://totp/"), "a QR code's URI");
    let tablet = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    assert_ne!(tablet, alice.phone.secret);

    // Not confirmed yet: its codes do not log in; a code from the phone does not confirm it.
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet))).await));
    let out = engine.confirm_authenticator(alice.id, &site.code(&alice.phone.secret)).await.expect("confirm");
    assert_eq!(out, AddAuthenticatorOutcome::WrongCode);
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [alice.phone.id.as_str()]);

    let out = engine.confirm_authenticator(alice.id, &site.code(&tablet)).await.expect("confirm");
    let AddAuthenticatorOutcome::Added { id, notice_delivery: Delivery::Queued(_) } = out else {
        panic!("expected the tablet added with its notice queued, got {out:?}")
    };
    assert_eq!(id.len(), 16, "16 hex digits: {id}");
    let listed = engine.authenticators(alice.id).await.expect("list");
    let names: Vec<(&str, &str)> = listed.iter().map(|a| (a.id.as_str(), a.name.as_str())).collect();
    assert_eq!(names, [(alice.phone.id.as_str(), "Authenticator app"), (id.as_str(), "Tablet")]);
    let added = site.events_named("authenticator.added");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].kind, EventKind::AuthenticatorAdded { authenticator: id.clone() });
    assert_eq!(added[0].account, Some(alice.id));

    site.next_step();
    let out = login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet))).await;
    let SecondFactorOutcome::Authenticated(auth) = out else { panic!("the tablet's code: {out:?}") };
    assert_eq!(auth.method, AuthMethod::PasswordAndTotp);
}

/// A wrong code adds nothing: the authenticator stays unconfirmed (its codes do not log
/// in, nothing is mailed or recorded) until a right one; adding needs 2FA on and a
/// one-line name.
async fn a_wrong_code_adds_no_authenticator<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    assert!(matches!(
        engine.confirm_authenticator(alice.id, "123456").await,
        Err(Error::Misuse(Refusal::NoEnrollment))
    ));
    let started = engine.add_authenticator(alice.id, "Tablet").await.expect("add");
    let tablet = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    for _ in 0..3 {
        let out = engine.confirm_authenticator(alice.id, &site.wrong_code(&tablet)).await.expect("confirm");
        assert_eq!(out, AddAuthenticatorOutcome::WrongCode);
    }
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [alice.phone.id.as_str()]);
    assert!(site.events_named("authenticator.added").is_empty());
    delivered(&engine).await;
    assert!(!site.mail_kinds(&alice).contains(&MessageKind::AuthenticatorAdded));
    site.next_step();
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet))).await));
    // Still being added: a right code confirms it.
    let out = engine.confirm_authenticator(alice.id, &site.code(&tablet)).await.expect("confirm");
    assert!(matches!(out, AddAuthenticatorOutcome::Added { .. }), "{out:?}");

    for bad in ["", "   ", "two\nlines", &"x".repeat(65)] {
        let out = engine.add_authenticator(alice.id, bad).await;
        assert!(matches!(out, Err(Error::InvalidInput(_))), "{bad:?}: {out:?}");
    }
    let bob = site.user(&engine, "bob", Role::User).await;
    assert!(matches!(engine.add_authenticator(bob, "Tablet").await, Err(Error::Misuse(Refusal::TwoFactorNotActive))));
}

/// The list shows each authenticator's name, when it was added and when a code from it
/// was last accepted.
async fn the_list_shows_each_authenticators_name_added_and_last_use<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let enrolled_at = site.now();
    let alice = site.enrolled(&engine, "alice").await;
    let added_at = site.now();
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let listed = engine.authenticators(alice.id).await.expect("list");
    let rows: Vec<_> = listed.iter().map(|a| (a.name.as_str(), a.added_at.0, a.last_used_at.map(|t| t.0))).collect();
    assert_eq!(
        rows,
        [("Authenticator app", enrolled_at, Some(enrolled_at)), ("Tablet", added_at, Some(added_at))],
        "a confirming code counts as a use"
    );

    site.next_step();
    let used_at = site.now();
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet.secret))).await));
    let listed = engine.authenticators(alice.id).await.expect("list");
    let last: Vec<_> = listed.iter().map(|a| a.last_used_at.map(|t| t.0)).collect();
    assert_eq!(last, [Some(enrolled_at), Some(used_at)], "only the tablet was used");
    assert_eq!(listed[1].added_at.0, added_at);

    // Turned off, the list is empty.
    site.next_step();
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await;
    verified(&out.expect("disable"), Factor::Totp);
    assert!(engine.authenticators(alice.id).await.expect("list").is_empty());
}

/// A code from either authenticator logs in.
async fn a_code_from_any_authenticator_logs_in<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let laptop = site.add(&engine, &alice, "Laptop").await;
    for device in [&alice.phone, &tablet, &laptop] {
        site.next_step();
        let out = login(&engine, &alice, SecondFactor::Totp(&site.code(&device.secret))).await;
        assert!(logged_in(&out), "{out:?}");
    }
    // Each one at the same step, too.
    site.next_step();
    for device in [&laptop, &alice.phone, &tablet] {
        let out = login(&engine, &alice, SecondFactor::Totp(&site.code(&device.secret))).await;
        assert!(logged_in(&out), "{out:?}");
    }
}

/// Each authenticator keeps its own replay state: a step one of them used does not
/// block another's code for that step, and a used step is refused for the one that
/// used it (at login and at a step-up alike).
async fn each_authenticator_keeps_its_own_replay_state<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let (phone_code, tablet_code) = (site.code(&alice.phone.secret), site.code(&tablet.secret));

    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&phone_code)).await));
    assert!(
        logged_in(&login(&engine, &alice, SecondFactor::Totp(&tablet_code)).await),
        "the phone's use of this step blocked the tablet's fresh code"
    );
    for code in [&phone_code, &tablet_code] {
        let out = login(&engine, &alice, SecondFactor::Totp(code)).await;
        assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "a used step: {out:?}");
    }
    let out = engine.step_up(alice.id, SecondFactor::Totp(&tablet_code)).await.expect("step-up");
    assert_eq!(out, StepUpOutcome::Denied, "a used step at a step-up");
    // Within the window, the used step stays used after the clock moves on.
    site.next_step();
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&phone_code)).await));
    // The next step is fresh for both.
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet.secret))).await));
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));
}

/// Every addition and every removal is mailed (queued by the call, sent by delivery),
/// naming the authenticator.
async fn every_addition_and_removal_is_mailed<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    site.mailer.clear();
    let started = engine.add_authenticator(alice.id, "Tablet").await.expect("add");
    let tablet = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
    let out = engine.confirm_authenticator(alice.id, &site.code(&tablet)).await.expect("confirm");
    let AddAuthenticatorOutcome::Added { id, notice_delivery: Delivery::Queued(notice) } = out else {
        panic!("{out:?}")
    };
    assert!(site.mailer.outbox().is_empty(), "the call sent mail instead of queueing it");
    let report = delivered(&engine).await;
    assert_eq!(report.delivery_of(notice), Some(&Delivery::Sent), "{report:?}");
    assert_eq!(site.mail_kinds(&alice), [MessageKind::AuthenticatorAdded]);
    assert!(site.mail_texts(&alice, MessageKind::AuthenticatorAdded)[0].contains("\"Tablet\""));

    site.next_step();
    let out = engine.remove_authenticator(alice.id, &id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await;
    verified(&out.expect("remove"), Factor::Totp);
    assert_eq!(site.mail_kinds(&alice), [MessageKind::AuthenticatorAdded], "nothing sent by the call");
    delivered(&engine).await;
    assert_eq!(site.mail_kinds(&alice), [MessageKind::AuthenticatorAdded, MessageKind::AuthenticatorRemoved]);
    assert!(site.mail_texts(&alice, MessageKind::AuthenticatorRemoved)[0].contains("\"Tablet\""));
    let removed = site.events_named("authenticator.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].kind, EventKind::AuthenticatorRemoved { authenticator: id });
}

/// An authenticator is removed only after a fresh factor from another one or the backup
/// code: its own code, a used step or a wrong code is Denied and counts in the budget.
async fn an_authenticator_is_removed_only_with_a_fresh_factor_from_another_or_the_backup_code<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let used = site.code(&tablet.secret);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&used)).await));
    assert_eq!(site.failures(alice.id).await, 0);

    let phone = alice.phone.id.as_str();
    let own = site.code(&alice.phone.secret);
    let wrong = site.wrong_code(&tablet.secret);
    for (n, (what, code)) in
        [("its own code", &own), ("a used step", &used), ("a wrong code", &wrong)].into_iter().enumerate()
    {
        let out = engine.remove_authenticator(alice.id, phone, SecondFactor::Totp(code)).await.expect("remove");
        assert_eq!(out, StepUpOutcome::Denied, "{what}");
        assert_eq!(site.failures(alice.id).await, n as u64 + 1, "{what} counts in the budget");
        assert_eq!(site.authenticator_ids(&engine, alice.id).await.len(), 2, "{what} removed it");
    }
    site.next_step();
    let out = engine.remove_authenticator(alice.id, phone, SecondFactor::Totp(&site.code(&tablet.secret))).await;
    assert_eq!(out.expect("remove"), StepUpOutcome::Verified { factor: Factor::Totp, backup_code_delivery: None });
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [tablet.id.as_str()]);

    // With the backup code: consumed, and its replacement queued.
    let laptop = site.add(&engine, &alice, "Laptop").await;
    let old = site.backup_code(&alice);
    let out = engine.remove_authenticator(alice.id, &tablet.id, SecondFactor::BackupCode(&old)).await.expect("remove");
    let StepUpOutcome::Verified { factor: Factor::BackupCode, backup_code_delivery: Some(Delivery::Queued(next)) } =
        out
    else {
        panic!("expected a backup-code removal with the replacement queued, got {out:?}")
    };
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [laptop.id.as_str()]);
    let report = delivered(&engine).await;
    assert_eq!(report.delivery_of(next), Some(&Delivery::Sent));
    assert_ne!(site.backup_code(&alice), old);
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&old)).await), "the used code worked again");
    assert!(logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&site.backup_code(&alice))).await));
}

/// The last authenticator cannot be removed (turning 2FA off removes it); an unknown or
/// malformed id is refused; none of these evaluates or consumes the factor.
async fn the_last_authenticator_cannot_be_removed<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let code = site.backup_code(&alice);
    let phone = alice.phone.id.as_str();
    refused(
        engine.remove_authenticator(alice.id, phone, SecondFactor::BackupCode(&code)).await,
        Refusal::LastAuthenticator,
    );
    refused(
        engine.remove_authenticator(alice.id, "0000000000000000", SecondFactor::BackupCode(&code)).await,
        Refusal::NoSuchAuthenticator,
    );
    for malformed in ["", "xyz", "00000000000000000", "0000000000000000 "] {
        let out = engine.remove_authenticator(alice.id, malformed, SecondFactor::BackupCode(&code)).await;
        assert!(matches!(out, Err(Error::InvalidInput(_))), "{malformed:?}: {out:?}");
    }
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [phone]);
    assert_eq!(site.failures(alice.id).await, 0, "nothing was evaluated");

    // After one was added and the first removed, the new one is the last.
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let out = engine.remove_authenticator(alice.id, phone, SecondFactor::BackupCode(&code)).await.expect("remove");
    verified(&out, Factor::BackupCode);
    delivered(&engine).await;
    let code = site.backup_code(&alice);
    refused(
        engine.remove_authenticator(alice.id, &tablet.id, SecondFactor::BackupCode(&code)).await,
        Refusal::LastAuthenticator,
    );
    assert!(logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&code)).await), "the code was not consumed");
    let bob = site.user(&engine, "bob", Role::User).await;
    refused(
        engine.remove_authenticator(bob, &tablet.id, SecondFactor::Totp("123456")).await,
        Refusal::TwoFactorNotActive,
    );
}

/// A removed authenticator's codes no longer log in, nor prove a step-up; the others'
/// still do.
async fn a_removed_authenticators_codes_no_longer_log_in<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let out = engine
        .remove_authenticator(alice.id, &tablet.id, SecondFactor::Totp(&site.code(&alice.phone.secret)))
        .await
        .expect("remove");
    verified(&out, Factor::Totp);
    for _ in 0..2 {
        site.next_step();
        let out = login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet.secret))).await;
        assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "the removed tablet's code: {out:?}");
        let out = engine.step_up(alice.id, SecondFactor::Totp(&site.code(&tablet.secret))).await.expect("step-up");
        assert_eq!(out, StepUpOutcome::Denied);
    }
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));
}

/// An administrator's reset removes every authenticator: a code from any of them no
/// longer logs in, even after the user enrolls again.
async fn an_administrator_reset_removes_every_authenticator<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let bob = site.user(&engine, "bob", Role::Admin).await;
    let out = engine.reset(bob, alice.id, "called back on the number on file").await.expect("reset");
    assert!(matches!(out, ResetOutcome::Reset { .. }), "{out:?}");
    assert!(engine.authenticators(alice.id).await.expect("list").is_empty());
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Disabled);

    let fresh = site.enroll(&engine, alice.id).await;
    delivered(&engine).await;
    for old in [&alice.phone, &tablet] {
        let out = login(&engine, &alice, SecondFactor::Totp(&site.code(&old.secret))).await;
        assert!(!logged_in(&out), "a code from an authenticator the reset removed: {out:?}");
        site.next_step();
    }
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&fresh.secret))).await));
}

// ---------------------------------------------------------------- turning 2FA off

/// Turning 2FA off needs a fresh TOTP code (from any authenticator) or the backup code;
/// a wrong one turns nothing off.
async fn turning_2fa_off_needs_a_fresh_totp_or_backup_code<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let bob = site.enrolled(&engine, "bob").await;

    let wrong = site.wrong_code(&alice.phone.secret);
    assert_eq!(
        engine.disable_two_factor(alice.id, SecondFactor::Totp(&wrong)).await.expect("off"),
        StepUpOutcome::Denied
    );
    let typo = engine.disable_two_factor(alice.id, SecondFactor::Totp("12ab56")).await.expect("off");
    assert_eq!(typo, StepUpOutcome::Denied);
    assert_eq!(site.failures(alice.id).await, 1, "a typo guesses nothing and counts nothing");
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Enabled);

    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&site.code(&tablet.secret))).await;
    verified(&out.expect("off"), Factor::Totp);
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Disabled);

    let code = site.backup_code(&bob);
    verified(
        &engine.disable_two_factor(bob.id, SecondFactor::BackupCode(&code)).await.expect("off"),
        Factor::BackupCode,
    );
    assert_eq!(site.two_factor(&engine, bob.id).await, TwoFactorState::Disabled);
    refused(engine.disable_two_factor(bob.id, SecondFactor::BackupCode(&code)).await, Refusal::TwoFactorNotActive);
}

/// Wrong factors when turning 2FA off count in the shared budget: the fifth throttles
/// the account, and then neither turning off (even with a right code), a step-up nor
/// the login's password step is evaluated.
async fn turning_2fa_off_counts_failures_in_the_shared_budget<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    for n in 1..=5 {
        let wrong = site.wrong_code(&alice.phone.secret);
        let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&wrong)).await.expect("off");
        if n < 5 {
            assert_eq!(out, StepUpOutcome::Denied, "failure {n}");
        } else {
            assert!(matches!(out, StepUpOutcome::Throttled { .. }), "the fifth failure throttles: {out:?}");
        }
    }
    let right = site.code(&alice.phone.secret);
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&right)).await.expect("off");
    assert!(matches!(out, StepUpOutcome::Throttled { .. }), "{out:?}");
    let out = engine.step_up(alice.id, SecondFactor::Totp(&right)).await.expect("step-up");
    assert!(matches!(out, StepUpOutcome::Throttled { .. }), "{out:?}");
    let out = engine.begin_login(&alice.name, PASSWORD, None).await.expect("login");
    assert!(matches!(out, LoginOutcome::Denied), "the password step is throttled too: {out:?}");
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Enabled);
    assert_eq!(site.failures(alice.id).await, 5, "refusals while throttled count nothing");

    site.clock.advance(Duration::from_secs(120));
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await;
    verified(&out.expect("off"), Factor::Totp);
}

/// Turning 2FA off is replay-safe: a code already used at login cannot turn it off.
async fn turning_2fa_off_is_replay_safe<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let code = site.code(&alice.phone.secret);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&code)).await));
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&code)).await.expect("off");
    assert_eq!(out, StepUpOutcome::Denied);
    let backup = site.backup_code(&alice);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&backup)).await));
    let out = engine.disable_two_factor(alice.id, SecondFactor::BackupCode(&backup)).await.expect("off");
    assert_eq!(out, StepUpOutcome::Denied);
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Enabled);
    assert!(site.events_named("two_factor.disabled").is_empty());
}

/// Turning 2FA off is refused when the policy requires 2FA (`require_two_factor`, and
/// NIST AAL2), before the factor is evaluated or consumed.
async fn turning_2fa_off_is_refused_when_the_policy_requires_2fa<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let code = site.code(&alice.phone.secret);
    let required = site.engine(fast().require_two_factor(true));
    let aal2 = site.engine_on(site.store.clone(), Policy::nist_aal2());
    for strict in [&required, &aal2] {
        refused(strict.disable_two_factor(alice.id, SecondFactor::Totp(&code)).await, Refusal::TwoFactorRequired);
    }
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Enabled);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&code)).await), "the code was consumed");
}

/// Turning 2FA off mails the user and records the event.
async fn turning_2fa_off_mails_the_user<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    site.mailer.clear();
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await;
    verified(&out.expect("off"), Factor::Totp);
    assert!(site.mailer.outbox().is_empty(), "queued, not sent");
    delivered(&engine).await;
    assert_eq!(site.mail_kinds(&alice), [MessageKind::TwoFactorDisabled]);
    let events = site.events_named("two_factor.disabled");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].account, Some(alice.id));
}

/// After 2FA is off the password alone logs in, and the old factors never work again:
/// not the authenticators' codes (not even after re-enrolling the same secret, nor the
/// very code that turned 2FA off), not the backup code.
async fn after_turning_2fa_off_the_password_alone_logs_in_and_old_codes_never_work_again<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let tablet = site.add(&engine, &alice, "Tablet").await;
    let backup = site.backup_code(&alice);
    // A few steps on, so the one that turns 2FA off is newer than any used before.
    site.clock.advance(STEP * 4);
    let off = site.code(&alice.phone.secret);
    verified(&engine.disable_two_factor(alice.id, SecondFactor::Totp(&off)).await.expect("off"), Factor::Totp);

    let out = engine.begin_login(&alice.name, PASSWORD, None).await.expect("login");
    let LoginOutcome::Authenticated(auth) = out else { panic!("the password alone: {out:?}") };
    assert_eq!(auth.method, AuthMethod::Password);

    // The same secret again (as a migration would import it).
    let uri = format!(
        "otpauth://totp/Acme:alice?secret={}&issuer=Acme",
        data_encoding::BASE32_NOPAD.encode(&alice.phone.secret)
    );
    engine.import_enrollment(alice.id, &uri).await.expect("import");
    // The previous step (still in the window) and the step that turned 2FA off stay used.
    let previous = site.code_at(&alice.phone.secret, site.now() - 30);
    let out = engine.confirm_enrollment(alice.id, &previous).await.expect("confirm");
    if matches!(out, ConfirmOutcome::Confirmed { .. }) {
        delivered(&engine).await;
        let replay = login(&engine, &alice, SecondFactor::Totp(&off)).await;
        assert!(!logged_in(&replay), "the code that turned 2FA off logged in after the same secret was re-enrolled");
    }
    assert!(matches!(out, ConfirmOutcome::WrongCode), "a step before 2FA was turned off confirmed the re-enrollment");
    let out = engine.confirm_enrollment(alice.id, &off).await.expect("confirm");
    assert!(matches!(out, ConfirmOutcome::WrongCode), "the code that turned 2FA off confirmed the re-enrollment");
    site.next_step();
    let out = engine.confirm_enrollment(alice.id, &site.code(&alice.phone.secret)).await.expect("confirm");
    assert!(matches!(out, ConfirmOutcome::Confirmed { .. }), "{out:?}");
    delivered(&engine).await;

    // `off` is still in the window: it is refused as used, not as too old.
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&off)).await), "the code that turned 2FA off");
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&tablet.secret))).await), "the tablet");
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&backup)).await), "the old backup code");
    site.next_step();
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));
}

/// Pending logins end when 2FA is turned off, for good: one issued before does not
/// come back when the user enrolls again.
async fn turning_2fa_off_ends_pending_logins_for_good<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let used = pending(&engine, &alice).await;
    assert!(logged_in(
        &engine.finish_login(&used, SecondFactor::Totp(&site.code(&alice.phone.secret)), None).await.expect("finish")
    ));
    site.next_step();
    let open_one = pending(&engine, &alice).await;
    let out = engine.disable_two_factor(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await;
    verified(&out.expect("off"), Factor::Totp);
    let out = engine.finish_login(&open_one, SecondFactor::Totp("123456"), None).await.expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Expired), "while 2FA is off: {out:?}");

    // (The step that turned 2FA off stays used: the next enrollment confirms at the next.)
    site.next_step();
    let fresh = site.enroll(&engine, alice.id).await;
    for (what, token) in
        [("a pending login from before 2FA was turned off", &open_one), ("a used pending login", &used)]
    {
        let out =
            engine.finish_login(token, SecondFactor::Totp(&site.code(&fresh.secret)), None).await.expect("finish");
        assert!(matches!(out, SecondFactorOutcome::Expired), "{what} came back after re-enrolling: {out:?}");
    }
}

// ---------------------------------------------------------------- step-up

/// A step-up is verified by a fresh factor and starts nothing: no pending login, no
/// login event, and it leaves the failure budget to a complete login.
async fn a_step_up_is_verified_by_a_fresh_factor_without_a_new_session<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let wrong = site.wrong_code(&alice.phone.secret);
    assert_eq!(engine.step_up(alice.id, SecondFactor::Totp(&wrong)).await.expect("step-up"), StepUpOutcome::Denied);
    let before = site.json(alice.id).await;
    let logins = site.events_named("login.succeeded").len();

    let code = site.code(&alice.phone.secret);
    let out = engine.step_up(alice.id, SecondFactor::Totp(&code)).await.expect("step-up");
    assert_eq!(out, StepUpOutcome::Verified { factor: Factor::Totp, backup_code_delivery: None });
    let after = site.json(alice.id).await;
    assert_eq!(after.get("pending"), before.get("pending"), "no pending login issued or consumed");
    assert_eq!(after.get("locations"), before.get("locations"));
    assert_eq!(site.failures(alice.id).await, 1, "only a complete login clears the budget");
    assert_eq!(site.events_named("login.succeeded").len(), logins, "a step-up is no login");
    let verified_events = site.events_named("second_factor.verified");
    assert_eq!(verified_events.len(), 1);
    assert_eq!(verified_events[0].kind, EventKind::SecondFactorVerified { factor: Factor::Totp });
    // The step counts as used.
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::Totp(&code)).await));

    let bob = site.user(&engine, "bob", Role::User).await;
    assert!(matches!(
        engine.step_up(bob, SecondFactor::Totp(&code)).await,
        Err(Error::Misuse(Refusal::TwoFactorNotActive))
    ));
    assert!(matches!(
        engine.step_up(UserId::from(424_242_u64), SecondFactor::Totp(&code)).await,
        Err(Error::NoSuchAccount)
    ));
}

/// A step used before (at login or at a step-up) is Denied at a step-up.
async fn a_used_step_is_denied_at_a_step_up<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let code = site.code(&alice.phone.secret);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&code)).await));
    assert_eq!(engine.step_up(alice.id, SecondFactor::Totp(&code)).await.expect("step-up"), StepUpOutcome::Denied);
    site.next_step();
    let code = site.code(&alice.phone.secret);
    verified(&engine.step_up(alice.id, SecondFactor::Totp(&code)).await.expect("step-up"), Factor::Totp);
    assert_eq!(engine.step_up(alice.id, SecondFactor::Totp(&code)).await.expect("step-up"), StepUpOutcome::Denied);
}

/// A backup-code step-up consumes the code and queues its replacement, which works.
async fn a_backup_code_step_up_consumes_the_code_and_queues_a_replacement<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let old = site.backup_code(&alice);
    let out = engine.step_up(alice.id, SecondFactor::BackupCode(&old)).await.expect("step-up");
    let StepUpOutcome::Verified { factor: Factor::BackupCode, backup_code_delivery: Some(Delivery::Queued(next)) } =
        out
    else {
        panic!("expected a backup-code step-up with the replacement queued, got {out:?}")
    };
    assert_eq!(engine.step_up(alice.id, SecondFactor::BackupCode(&old)).await.expect("step-up"), StepUpOutcome::Denied);
    let report = delivered(&engine).await;
    assert_eq!(report.delivery_of(next), Some(&Delivery::Sent), "{report:?}");
    let new = site.backup_code(&alice);
    assert_ne!(new, old);
    assert!(!logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&old)).await));
    assert!(logged_in(&login(&engine, &alice, SecondFactor::BackupCode(&new)).await));
}

/// Wrong factors at a step-up count in the same budget as the login's: failures at
/// login and at step-ups add up, a right step-up clears nothing, and the fifth failure
/// throttles everything.
async fn wrong_factors_at_a_step_up_count_in_the_logins_budget<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let waiting = pending(&engine, &alice).await;
    for _ in 0..2 {
        let out = engine
            .finish_login(&waiting, SecondFactor::Totp(&site.wrong_code(&alice.phone.secret)), None)
            .await
            .expect("finish");
        assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    }
    let right = engine.step_up(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await.expect("step-up");
    verified(&right, Factor::Totp);
    for _ in 0..2 {
        let wrong = SecondFactor::BackupCode("AAAA-AAAA-AAAA-AAAA");
        assert_eq!(engine.step_up(alice.id, wrong).await.expect("step-up"), StepUpOutcome::Denied);
    }
    assert_eq!(site.failures(alice.id).await, 4);
    let out = engine.step_up(alice.id, SecondFactor::Totp(&site.wrong_code(&alice.phone.secret))).await;
    let Ok(StepUpOutcome::Throttled { until }) = out else { panic!("the fifth failure throttles: {out:?}") };

    site.next_step();
    let fresh = site.code(&alice.phone.secret);
    let out = engine.finish_login(&waiting, SecondFactor::Totp(&fresh), None).await.expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Locked { until: Some(u) } if u == until), "{out:?}");
    let out = engine.begin_login(&alice.name, PASSWORD, None).await.expect("login");
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    assert_eq!(
        engine.step_up(alice.id, SecondFactor::Totp(&fresh)).await.expect("step-up"),
        StepUpOutcome::Throttled { until }
    );

    site.clock.set(until);
    let code = site.code(&alice.phone.secret);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&code)).await), "after the throttle");
    assert_eq!(site.failures(alice.id).await, 0, "a complete login clears the budget");
}

// ---------------------------------------------------------------- administrator unlock

/// An administrator unlocks a throttled user: 2FA stays, the user logs in with a code
/// again, the unlock is recorded with who and why, and the user is mailed.
async fn an_administrator_unlocks_a_throttled_user_and_2fa_stays<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let bob = site.user(&engine, "bob", Role::Admin).await;
    for _ in 0..5 {
        let out = engine.begin_login(&alice.name, "not the password at all", None).await.expect("login");
        assert!(matches!(out, LoginOutcome::Denied));
    }
    assert!(matches!(engine.begin_login(&alice.name, PASSWORD, None).await.expect("login"), LoginOutcome::Denied));
    delivered(&engine).await;
    site.mailer.clear();

    let reason = "she called from the number on file";
    let out = engine.unlock(bob, alice.id, reason).await.expect("unlock");
    let UnlockOutcome::Unlocked { notice_delivery: Delivery::Queued(notice) } = out else { panic!("{out:?}") };
    assert_eq!(site.two_factor(&engine, alice.id).await, TwoFactorState::Enabled);
    assert_eq!(site.authenticator_ids(&engine, alice.id).await, [alice.phone.id.as_str()]);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));

    let unlocked = site.events_named("throttle.unlocked");
    assert_eq!(unlocked.len(), 1);
    assert_eq!(unlocked[0].account, Some(alice.id));
    assert_eq!(unlocked[0].kind, EventKind::Unlocked { by: bob, by_role: Role::Admin, reason: reason.to_owned() });
    let report = delivered(&engine).await;
    assert_eq!(report.delivery_of(notice), Some(&Delivery::Sent));
    assert_eq!(site.mail_kinds(&alice), [MessageKind::Unlocked]);
    assert!(site.mail_texts(&alice, MessageKind::Unlocked)[0].contains("bob (admin)"));
    assert!(matches!(engine.unlock(bob, alice.id, "  ").await, Err(Error::InvalidInput(_))));
}

/// An administrator unlocks a user whose second factor locked after too many wrong
/// codes: the lock is lifted, 2FA stays, and the user logs in with a code again.
async fn an_administrator_unlocks_a_locked_second_factor_and_2fa_stays<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let small = ThrottlePolicy::default().free_failures(3).disable_after(3);
    let engine = site.engine(fast().throttle(small));
    let alice = site.enrolled(&engine, "alice").await;
    let support = site.user(&engine, "sam", Role::Support).await;
    let waiting = pending(&engine, &alice).await;
    for _ in 0..3 {
        let wrong = site.wrong_code(&alice.phone.secret);
        engine.finish_login(&waiting, SecondFactor::Totp(&wrong), None).await.expect("finish");
    }
    assert!(engine.account(alice.id).await.expect("account").expect("alice").locked);
    site.clock.advance(Duration::from_secs(3600 * 24));
    assert!(matches!(engine.begin_login(&alice.name, PASSWORD, None).await.expect("login"), LoginOutcome::Denied));
    let out = engine.step_up(alice.id, SecondFactor::Totp(&site.code(&alice.phone.secret))).await.expect("step-up");
    assert_eq!(out, StepUpOutcome::Locked);

    let out = engine.unlock(support, alice.id, "identity checked by video call").await.expect("unlock");
    assert!(matches!(out, UnlockOutcome::Unlocked { .. }), "{out:?}");
    let view = engine.account(alice.id).await.expect("account").expect("alice");
    assert!(!view.locked);
    assert_eq!(view.two_factor, TwoFactorState::Enabled);
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));
    let unlocked = site.events_named("throttle.unlocked");
    assert_eq!(
        unlocked[0].kind,
        EventKind::Unlocked {
            by: support,
            by_role: Role::Support,
            reason: "identity checked by video call".to_owned()
        }
    );
}

/// The role rules are a reset's: an admin unlocks users but not admins, only support
/// unlocks admins, a user unlocks no one, nobody unlocks themselves. A refusal is
/// NotAllowed, changes nothing and is recorded.
async fn unlocking_follows_the_role_rules<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let carol = site.user(&engine, "carol", Role::User).await;
    let bob = site.enrolled_as(&engine, "bob", Role::Admin).await;
    let dave = site.user(&engine, "dave", Role::Admin).await;
    let sam = site.user(&engine, "sam", Role::Support).await;
    for name in ["alice", "bob", "sam"] {
        for _ in 0..5 {
            engine.begin_login(name, "not the password at all", None).await.expect("login");
        }
    }
    let denied =
        [(carol, alice.id), (dave, bob.id), (bob.id, bob.id), (sam, sam), (alice.id, alice.id), (carol, bob.id)];
    for (actor, target) in denied {
        assert_eq!(engine.unlock(actor, target, "asked nicely").await.expect("unlock"), UnlockOutcome::NotAllowed);
    }
    let events = site.events_named("throttle.unlock_denied");
    let recorded: Vec<_> = events.iter().map(|e| (e.account, e.kind.clone())).collect();
    let expected: Vec<_> = denied.iter().map(|(a, t)| (Some(*t), EventKind::UnlockDenied { by: *a })).collect();
    assert_eq!(recorded, expected);
    assert!(site.events_named("throttle.unlocked").is_empty());
    for name in ["alice", "bob", "sam"] {
        let out = engine.begin_login(name, PASSWORD, None).await.expect("login");
        assert!(matches!(out, LoginOutcome::Denied), "{name} is still throttled: {out:?}");
    }

    assert!(matches!(engine.unlock(sam, bob.id, "called back").await.expect("unlock"), UnlockOutcome::Unlocked { .. }));
    assert!(matches!(
        engine.unlock(bob.id, alice.id, "called back").await.expect("unlock"),
        UnlockOutcome::Unlocked { .. }
    ));
    assert!(matches!(engine.unlock(dave, carol, "called back").await.expect("unlock"), UnlockOutcome::NotLocked));
    assert!(logged_in(&login(&engine, &alice, SecondFactor::Totp(&site.code(&alice.phone.secret))).await));
    assert!(logged_in(&login(&engine, &bob, SecondFactor::Totp(&site.code(&bob.phone.secret))).await));
}

/// Unlocking a user with nothing to lift is NotLocked: nothing is written, recorded or
/// mailed.
async fn unlocking_a_user_with_nothing_to_lift_is_not_locked<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let bob = site.user(&engine, "bob", Role::Admin).await;
    site.mailer.clear();
    let version =
        site.store.find_by_id(alice.id).await.expect("store").expect("alice").credentials.expect("doc").version;
    assert_eq!(engine.unlock(bob, alice.id, "just in case").await.expect("unlock"), UnlockOutcome::NotLocked);
    let after = site.store.find_by_id(alice.id).await.expect("store").expect("alice").credentials.expect("doc").version;
    assert_eq!(after, version, "nothing written");
    assert!(site.events_named("throttle.unlocked").is_empty());
    delivered(&engine).await;
    assert!(site.mailer.outbox().is_empty());
}

// ---------------------------------------------------------------- forgetting a user

/// Forgetting a user removes their document and the mail queued in it (a queued code
/// is never delivered); the store, which keeps the users, removes the user; others
/// are untouched.
async fn forgetting_a_user_removes_the_document_and_queued_mail<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled_undelivered(&engine, "alice", Role::User).await;
    engine.reissue_backup_code(alice.id).await.expect("reissue");
    let bob = site.enrolled_undelivered(&engine, "bob", Role::User).await;
    let due = site.store.mail_due(Timestamp(u64::MAX / 2), 100).await.expect("mail_due");
    assert!(due.contains(&alice.id) && due.contains(&bob.id), "both have mail waiting");

    assert!(engine.forget_user(alice.id).await.expect("forget"));
    assert!(site.store.find_by_id(alice.id).await.expect("store").is_none(), "the shipped stores remove the user");
    assert!(site.store.find_by_login(&alice.name).await.expect("store").is_none());
    let due = site.store.mail_due(Timestamp(u64::MAX / 2), 100).await.expect("mail_due");
    assert_eq!(due, [bob.id], "only bob's mail is left");
    let report = delivered(&engine).await;
    assert!(site.mail_kinds(&alice).is_empty(), "a forgotten user's queued mail was delivered: {report:?}");
    assert_eq!(site.mail_kinds(&bob), [MessageKind::BackupCodeSetup]);
    assert_eq!(site.two_factor(&engine, bob.id).await, TwoFactorState::Enabled);
}

/// Forgetting a user records `user.forgotten`, naming the user and holding no secret.
async fn forgetting_a_user_records_an_event_without_secrets<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let backup = site.backup_code(&alice);
    assert!(engine.forget_user(alice.id).await.expect("forget"));
    let forgotten = site.events_named("user.forgotten");
    assert_eq!(forgotten.len(), 1);
    assert_eq!((forgotten[0].account, &forgotten[0].kind), (Some(alice.id), &EventKind::UserForgotten));
    let shown = format!("{:?}", forgotten[0]);
    let secret = data_encoding::BASE32_NOPAD.encode(&alice.phone.secret);
    let bare = backup.replace('-', "");
    for leaked in [PASSWORD, &backup, &bare, &secret, &alice.email, &alice.phone.id] {
        assert!(!shown.contains(leaked), "the event shows {leaked:?}: {shown}");
    }
}

/// A forgotten user can no longer log in: the password step does not know them, a
/// pending login from before ends, the calls about them find no account, and forgetting
/// again answers false. The name is free again, for a new account without the old one's
/// factors.
async fn a_forgotten_user_can_no_longer_log_in<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engine = site.engine(fast());
    let alice = site.enrolled(&engine, "alice").await;
    let waiting = pending(&engine, &alice).await;
    assert!(engine.forget_user(alice.id).await.expect("forget"));

    let out = engine.begin_login(&alice.name, PASSWORD, None).await.expect("login");
    assert!(matches!(out, LoginOutcome::Denied), "{out:?}");
    let code = site.code(&alice.phone.secret);
    let out = engine.finish_login(&waiting, SecondFactor::Totp(&code), None).await.expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
    assert!(engine.account(alice.id).await.expect("account").is_none());
    assert!(matches!(engine.authenticators(alice.id).await, Err(Error::NoSuchAccount)));
    assert!(matches!(engine.step_up(alice.id, SecondFactor::Totp(&code)).await, Err(Error::NoSuchAccount)));
    assert!(!engine.forget_user(alice.id).await.expect("forget again"));

    let again = site.user(&engine, "alice", Role::User).await;
    assert_ne!(again, alice.id);
    assert_eq!(site.two_factor(&engine, again).await, TwoFactorState::Disabled, "nothing of the old account");
    let out = engine.finish_login(&waiting, SecondFactor::Totp(&code), None).await.expect("finish");
    assert!(matches!(out, SecondFactorOutcome::Expired), "{out:?}");
}

// ---------------------------------------------------------------- races

/// Engines over `n` separate connections to the site's database (for MemoryStore,
/// clones), with the relaxed budget.
async fn engines<S: Store>(site: &Site<S>, open: &impl AsyncFn() -> S, n: usize) -> Vec<Arc<Eng<S>>> {
    let mut engines = Vec::with_capacity(n);
    for _ in 0..n {
        engines.push(Arc::new(site.engine_on(open().await, relaxed().build().expect("policy"))));
    }
    engines
}

const RACERS: usize = 8;

/// Runs `tasks` at once (after a barrier), each on the next engine in turn; their
/// results in order.
async fn race<S, T, F, Fut>(engines: &[Arc<Eng<S>>], tasks: Vec<F>) -> Vec<T>
where
    S: Store,
    T: Send + 'static,
    F: FnOnce(Arc<Eng<S>>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks.len()));
    let handles: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let (engine, barrier) = (Arc::clone(&engines[i % engines.len()]), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                task(engine).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("a racing task panicked"));
    }
    out
}

/// N logins racing with one code from one authenticator, each on its own pending
/// login: exactly one succeeds, in every round.
async fn racing_logins_with_one_code_from_one_authenticator_succeed_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engines = engines(&site, &open, 3).await;
    let e0 = &*engines[0];
    let alice = site.enrolled(e0, "alice").await;
    site.add(e0, &alice, "Tablet").await;
    for round in 0..3 {
        let code = site.code(&alice.phone.secret);
        let mut tasks = Vec::new();
        for _ in 0..RACERS {
            let (token, code) = (pending(e0, &alice).await, code.clone());
            tasks.push(move |engine: Arc<Eng<S>>| async move {
                engine.finish_login(&token, SecondFactor::Totp(&code), None).await.expect("finish")
            });
        }
        let outcomes = race(&engines, tasks).await;
        let wins = outcomes.iter().filter(|o| logged_in(o)).count();
        assert_eq!(wins, 1, "round {round}: {wins} of {RACERS} logins with one code succeeded: {outcomes:?}");
        assert!(outcomes.iter().all(|o| logged_in(o) || matches!(o, SecondFactorOutcome::Denied { .. })));
        site.next_step();
    }
}

/// Codes from two authenticators for the same step, racing on separate pending logins:
/// each authenticator's code succeeds exactly once (each keeps its own replay state, so
/// neither blocks the other, and neither code works twice).
async fn racing_codes_from_two_authenticators_each_succeed_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engines = engines(&site, &open, 3).await;
    let e0 = &*engines[0];
    let alice = site.enrolled(e0, "alice").await;
    let tablet = site.add(e0, &alice, "Tablet").await;
    for round in 0..3 {
        let codes = [site.code(&alice.phone.secret), site.code(&tablet.secret)];
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let (token, which) = (pending(e0, &alice).await, i % 2);
            let code = codes[which].clone();
            tasks.push(move |engine: Arc<Eng<S>>| async move {
                (which, engine.finish_login(&token, SecondFactor::Totp(&code), None).await.expect("finish"))
            });
        }
        let outcomes = race(&engines, tasks).await;
        for (which, device) in ["phone", "tablet"].iter().enumerate() {
            let wins = outcomes.iter().filter(|(w, o)| *w == which && logged_in(o)).count();
            assert_eq!(wins, 1, "round {round}: the {device}'s code succeeded {wins} times: {outcomes:?}");
        }
        site.next_step();
    }
}

/// N calls turning 2FA off with one code: exactly one is Verified; 2FA is off once, with
/// one event and one mail.
async fn racing_turn_offs_with_one_code_verify_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engines = engines(&site, &open, 3).await;
    let e0 = &*engines[0];
    let alice = site.enrolled(e0, "alice").await;
    site.add(e0, &alice, "Tablet").await;
    delivered(e0).await;
    site.mailer.clear();
    let code = site.code(&alice.phone.secret);
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (id, code) = (alice.id, code.clone());
            move |engine: Arc<Eng<S>>| async move { engine.disable_two_factor(id, SecondFactor::Totp(&code)).await }
        })
        .collect();
    let outcomes = race(&engines, tasks).await;
    let wins = outcomes.iter().filter(|o| matches!(o, Ok(StepUpOutcome::Verified { .. }))).count();
    assert_eq!(wins, 1, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(o, Ok(StepUpOutcome::Verified { .. } | StepUpOutcome::Denied))
                | matches!(o, Err(Error::Misuse(Refusal::TwoFactorNotActive))),
            "{o:?}"
        );
    }
    assert_eq!(site.two_factor(e0, alice.id).await, TwoFactorState::Disabled);
    assert_eq!(site.events_named("two_factor.disabled").len(), 1);
    delivered(e0).await;
    assert_eq!(site.mail_kinds(&alice), [MessageKind::TwoFactorDisabled]);
}

/// N step-ups with one TOTP code, then N with one backup code: exactly one of each is
/// Verified, and the backup code's replacement is queued once.
async fn racing_step_ups_with_one_code_verify_once<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engines = engines(&site, &open, 3).await;
    let e0 = &*engines[0];
    let alice = site.enrolled(e0, "alice").await;
    site.add(e0, &alice, "Tablet").await;
    delivered(e0).await;
    let backup = site.backup_code(&alice);
    site.mailer.clear();
    let totp = site.code(&alice.phone.secret);
    for (code, is_backup) in [(totp, false), (backup.clone(), true)] {
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (id, code) = (alice.id, code.clone());
                move |engine: Arc<Eng<S>>| async move {
                    let factor = if is_backup { SecondFactor::BackupCode(&code) } else { SecondFactor::Totp(&code) };
                    engine.step_up(id, factor).await.expect("step-up")
                }
            })
            .collect();
        let outcomes = race(&engines, tasks).await;
        let wins: Vec<_> = outcomes.iter().filter(|o| o.is_verified()).collect();
        assert_eq!(wins.len(), 1, "backup code: {is_backup}: {outcomes:?}");
        assert!(outcomes.iter().all(|o| o.is_verified() || *o == StepUpOutcome::Denied), "{outcomes:?}");
    }
    delivered(e0).await;
    assert_eq!(site.mail_kinds(&alice), [MessageKind::BackupCodeRotated], "one replacement");
    let new = site.backup_code(&alice);
    assert_ne!(new, backup);
    assert!(logged_in(&login(e0, &alice, SecondFactor::BackupCode(&new)).await));
}

/// Removing the phone (proven with the tablet's code) races removing the tablet (proven
/// with the phone's code): never are both removed; exactly one removal happens and the
/// remaining authenticator is the one that proved it.
async fn racing_removals_of_two_authenticators_never_remove_both<S: Store>(open: impl AsyncFn() -> S) {
    let site = Site::new(open().await);
    let engines = engines(&site, &open, 2).await;
    let e0 = &*engines[0];
    let alice = site.enrolled(e0, "alice").await;
    let mut devices = [alice.phone.clone(), site.add(e0, &alice, "Tablet").await];
    for round in 0..4 {
        let codes = [site.code(&devices[0].secret), site.code(&devices[1].secret)];
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                // Task i removes device i % 2, proven by the other one's code.
                let (target, proof) = (i % 2, 1 - i % 2);
                let (id, removed, code) = (alice.id, devices[target].id.clone(), codes[proof].clone());
                move |engine: Arc<Eng<S>>| async move {
                    (target, engine.remove_authenticator(id, &removed, SecondFactor::Totp(&code)).await)
                }
            })
            .collect();
        let outcomes = race(&engines, tasks).await;
        let wins: Vec<usize> =
            outcomes.iter().filter(|(_, o)| matches!(o, Ok(StepUpOutcome::Verified { .. }))).map(|(t, _)| *t).collect();
        assert_eq!(wins.len(), 1, "round {round}: {outcomes:?}");
        for (_, o) in &outcomes {
            assert!(
                matches!(o, Ok(StepUpOutcome::Verified { .. } | StepUpOutcome::Denied))
                    | matches!(o, Err(Error::Misuse(Refusal::LastAuthenticator | Refusal::NoSuchAuthenticator))),
                "round {round}: {o:?}"
            );
        }
        let removed = wins[0];
        let left = site.authenticator_ids(e0, alice.id).await;
        assert_eq!(left, [devices[1 - removed].id.as_str()], "round {round}: never both removed");
        let user = User { phone: devices[1 - removed].clone(), ..alice.clone() };
        devices[removed] = site.add(e0, &user, &format!("Device {round}")).await;
    }
    let names: BTreeSet<String> =
        e0.authenticators(alice.id).await.expect("list").into_iter().map(|a| a.name).collect();
    assert_eq!(names.len(), 2);
}

/// Every self-service call's future is `Send`, so an application can await it in a
/// spawned task or a web handler. (They once held a non-`Sync` reference across an
/// await and were not.)
#[test]
fn every_self_service_future_is_send() {
    fn send<F: Future + Send>(_: F) {}
    let site = Site::new(twofactor::store::MemoryStore::new());
    let engine = site.engine(fast());
    let id = UserId::from(1_u64);
    send(engine.authenticators(id));
    send(engine.add_authenticator(id, "Tablet"));
    send(engine.confirm_authenticator(id, "123456"));
    send(engine.remove_authenticator(id, "0000000000000000", SecondFactor::Totp("123456")));
    send(engine.disable_two_factor(id, SecondFactor::Totp("123456")));
    send(engine.step_up(id, SecondFactor::BackupCode("AAAA-AAAA-AAAA-AAAA")));
    send(engine.unlock(id, id, "reason"));
    send(engine.forget_user(id));
}

// ---------------------------------------------------------------- on every store

use store_support::on_every_store_opener as on_every_store;

on_every_store!(
    a_second_authenticator_is_added_with_a_name_and_confirmed_by_a_code_from_it,
    a_wrong_code_adds_no_authenticator,
    the_list_shows_each_authenticators_name_added_and_last_use,
    a_code_from_any_authenticator_logs_in,
    each_authenticator_keeps_its_own_replay_state,
    every_addition_and_removal_is_mailed,
    an_authenticator_is_removed_only_with_a_fresh_factor_from_another_or_the_backup_code,
    the_last_authenticator_cannot_be_removed,
    a_removed_authenticators_codes_no_longer_log_in,
    an_administrator_reset_removes_every_authenticator,
    turning_2fa_off_needs_a_fresh_totp_or_backup_code,
    turning_2fa_off_counts_failures_in_the_shared_budget,
    turning_2fa_off_is_replay_safe,
    turning_2fa_off_is_refused_when_the_policy_requires_2fa,
    turning_2fa_off_mails_the_user,
    after_turning_2fa_off_the_password_alone_logs_in_and_old_codes_never_work_again,
    turning_2fa_off_ends_pending_logins_for_good,
    a_step_up_is_verified_by_a_fresh_factor_without_a_new_session,
    a_used_step_is_denied_at_a_step_up,
    a_backup_code_step_up_consumes_the_code_and_queues_a_replacement,
    wrong_factors_at_a_step_up_count_in_the_logins_budget,
    an_administrator_unlocks_a_throttled_user_and_2fa_stays,
    an_administrator_unlocks_a_locked_second_factor_and_2fa_stays,
    unlocking_follows_the_role_rules,
    unlocking_a_user_with_nothing_to_lift_is_not_locked,
    forgetting_a_user_removes_the_document_and_queued_mail,
    forgetting_a_user_records_an_event_without_secrets,
    a_forgotten_user_can_no_longer_log_in,
    racing_logins_with_one_code_from_one_authenticator_succeed_once,
    racing_codes_from_two_authenticators_each_succeed_once,
    racing_turn_offs_with_one_code_verify_once,
    racing_step_ups_with_one_code_verify_once,
    racing_removals_of_two_authenticators_never_remove_both,
);
