//! Parts chosen at run time: `BoxStore`, `BoxMailer` and `Either` drive a real engine,
//! dispatch to the part that was picked, and pass errors through unchanged.

mod common;
mod wrapper_stores;

use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, T0, delivered, email, fast_policy};
use twofactor::mail::{BoxMailer, Delivery, Mailer, MemoryMailer, Message};
use twofactor::mail::{CodeReason, FileOutbox, Recipient};
use twofactor::store::{BoxStore, Document, MemoryStore, Swap, UserRecord, UserStore};
use twofactor::totp::TotpParams;
use twofactor::{
    ConfirmOutcome, Either, Engine, KeyRing, LoginOutcome, MailId, ManualClock, NewAccount, Role, SecondFactor,
    SecondFactorOutcome, SecretString, StoreError, Timestamp, UserId,
};
use wrapper_stores::{AppUsers, NoScan};

/// A message to `name`.
fn message(name: &str) -> Message {
    Message::BackupCode {
        to: Recipient { username: name.to_owned(), email: email(name) },
        reason: CodeReason::Reissued,
        codes: vec![SecretString::from("ABCD-EFGH-JKLM".to_owned())],
        expires_at: None,
    }
}

/// A message id (the `n`th).
fn mail_id(n: u8) -> MailId {
    MailId::parse(&format!("{n:02x}").repeat(16)).expect("32 hex digits")
}

fn code(secret: &[u8], clock: &ManualClock) -> String {
    twofactor::totp::generate(secret, &TotpParams::default(), twofactor::Clock::now(clock).0).expose().to_owned()
}

fn eml_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("outbox dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml")))
        .count()
}

/// Runs the whole story on an engine with any store and mailer: account, enrollment,
/// a TOTP login, then a backup-code login that rotates the code. `outbox` reads the
/// mailed backup codes; the queued mail is delivered through the engine's store (its
/// `mail_due`) and mailer.
async fn full_story<S: UserStore, M: Mailer>(
    engine: &Engine<S, M, ManualClock>,
    clock: &ManualClock,
    outbox: &MemoryMailer,
    name: &str,
) -> UserId {
    let id = engine.create_account(NewAccount::new(name, &email(name), Role::User, PASSWORD)).await.expect("create");
    let started = engine.start_enrollment(id).await.expect("enroll");
    let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("b32");
    let confirmed = engine.confirm_enrollment(id, &code(&secret, clock)).await.expect("confirm");
    let ConfirmOutcome::Confirmed { backup_code_delivery } = confirmed else { panic!("{confirmed:?}") };
    let setup = backup_code_delivery.queued().expect("the setup code is queued");
    assert_eq!(delivered(engine).await.delivery_of(setup), Some(&Delivery::Sent));
    clock.advance(Duration::from_secs(30));

    // Password, then the app's code.
    let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login(name, PASSWORD, None).await.expect("login")
    else {
        panic!("2FA is active")
    };
    let outcome =
        engine.finish_login(pending.token(), SecondFactor::Totp(&code(&secret, clock)), None).await.expect("finish");
    assert!(matches!(&outcome, SecondFactorOutcome::Authenticated(who) if who.username == name), "{outcome:?}");

    // Password, then the mailed backup code: it works once and is replaced.
    let backup = outbox.last_code_for(&email(name)).expect("the first backup code was mailed");
    let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login(name, PASSWORD, None).await.expect("login")
    else {
        panic!("2FA is active")
    };
    let outcome = engine.finish_login(pending.token(), SecondFactor::BackupCode(&backup), None).await.expect("finish");
    assert!(matches!(&outcome, SecondFactorOutcome::Authenticated(who) if who.username == name), "{outcome:?}");
    let SecondFactorOutcome::Authenticated(who) = outcome else { unreachable!() };
    let replacement = who.backup_code_delivery.as_ref().and_then(Delivery::queued).expect("the replacement is queued");
    assert_eq!(delivered(engine).await.delivery_of(replacement), Some(&Delivery::Sent));
    assert_eq!(outbox.outbox().last().map(|m| m.id), Some(replacement), "the id reached the wrapped mailer");
    let rotated = outbox.last_code_for(&email(name)).expect("a new backup code was mailed");
    assert_ne!(rotated, backup);

    // The spent code no longer works.
    let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login(name, PASSWORD, None).await.expect("login")
    else {
        panic!("2FA is active")
    };
    let outcome = engine.finish_login(pending.token(), SecondFactor::BackupCode(&backup), None).await.expect("finish");
    assert!(matches!(outcome, SecondFactorOutcome::Denied { .. }), "{outcome:?}");
    id
}

#[tokio::test]
async fn an_engine_on_boxed_parts_runs_the_whole_login() {
    let store = MemoryStore::new();
    let outbox = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(T0));
    let engine: Engine<BoxStore, BoxMailer, ManualClock> = Engine::builder(
        BoxStore::new(store.clone()),
        BoxMailer::new(outbox.clone()),
        KeyRing::ephemeral().expect("keys"),
    )
    .clock(clock.clone())
    .policy(fast_policy().build().expect("policy"))
    .build()
    .expect("engine");

    let id = full_story(&engine, &clock, &outbox, "alice").await;

    // The writes went to the wrapped store, and the mail to the wrapped mailer.
    let stored = store.find_by_id(id).await.expect("store").expect("alice is stored");
    assert_eq!(stored.login, "alice");
    let document = stored.credentials.expect("the engine wrote alice's credential document");
    assert!(document.version > 1, "enrollment and the logins swapped the document: {}", document.version);
    assert!(outbox.outbox().len() >= 2, "setup and rotation mails");
    assert!(format!("{:?}", engine.store()).contains("MemoryStore"), "{:?}", engine.store());
    assert!(format!("{:?}", engine.mailer()).contains("MemoryMailer"), "{:?}", engine.mailer());
}

#[tokio::test]
async fn an_engine_on_either_parts_runs_the_whole_login_on_both_sides() {
    // Left on both.
    let outbox = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(T0));
    let store: Either<MemoryStore, BoxStore> = Either::Left(MemoryStore::new());
    let mailer: Either<MemoryMailer, BoxMailer> = Either::Left(outbox.clone());
    let engine = Engine::builder(store, mailer, KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(fast_policy().build().expect("policy"))
        .build()
        .expect("engine");
    full_story(&engine, &clock, &outbox, "left").await;

    // Right on both.
    let outbox = MemoryMailer::new();
    let clock = ManualClock::new(Timestamp(T0));
    let store: Either<MemoryStore, BoxStore> = Either::Right(BoxStore::new(MemoryStore::new()));
    let mailer: Either<MemoryMailer, BoxMailer> = Either::Right(BoxMailer::new(outbox.clone()));
    let engine = Engine::builder(store, mailer, KeyRing::ephemeral().expect("keys"))
        .clock(clock.clone())
        .policy(fast_policy().build().expect("policy"))
        .build()
        .expect("engine");
    full_story(&engine, &clock, &outbox, "right").await;
}

#[tokio::test]
async fn a_mailer_picked_from_a_list_at_run_time_gets_the_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = MemoryMailer::new();
    let shared = Arc::new(MemoryMailer::new());
    let mailers: Vec<(&str, BoxMailer)> = vec![
        ("memory", BoxMailer::new(memory.clone())),
        ("files", BoxMailer::new(FileOutbox::new(dir.path()).expect("outbox"))),
        ("shared", BoxMailer::new(Arc::clone(&shared))),
    ];
    let pick = |name: &str| mailers.iter().find(|(n, _)| *n == name).map(|(_, m)| m.clone()).expect("configured");

    pick("files").send(mail_id(1), &message("bob")).await.expect("sent");
    assert_eq!(eml_files(dir.path()), 1);
    let eml = std::fs::read_dir(dir.path()).expect("outbox dir").next().expect("a file").expect("an entry").path();
    let eml = std::fs::read_to_string(eml).expect("the mail");
    assert!(eml.contains(&format!("<{}@", mail_id(1))), "the id is the Message-ID: {eml}");
    assert!(memory.outbox().is_empty());
    assert!(shared.outbox().is_empty());

    pick("memory").send(mail_id(2), &message("carol")).await.expect("sent");
    assert_eq!(memory.last_code_for(&email("carol")).as_deref(), Some("ABCD-EFGH-JKLM"));
    assert_eq!(memory.outbox()[0].id, mail_id(2), "the id passes through");
    assert!(shared.outbox().is_empty());

    let chosen = pick("shared");
    chosen.clone().send(mail_id(3), &message("dave")).await.expect("sent");
    chosen.send(mail_id(4), &message("dave")).await.expect("sent");
    assert_eq!(shared.outbox().len(), 2, "clones share the one mailer");
    assert_eq!(memory.outbox().len(), 1);
    assert_eq!(eml_files(dir.path()), 1);
}

#[tokio::test]
async fn boxed_and_either_mailers_pass_failures_through() {
    let failing = MemoryMailer::new();
    failing.fail_next(2);
    let boxed = BoxMailer::new(failing.clone());
    assert!(boxed.send(mail_id(1), &message("erin")).await.is_err());
    let either: Either<MemoryMailer, FileOutbox> = Either::Left(failing.clone());
    assert!(either.send(mail_id(2), &message("erin")).await.is_err());
    // The failures are used up: both deliver again.
    boxed.send(mail_id(1), &message("erin")).await.expect("sent");
    either.send(mail_id(2), &message("erin")).await.expect("sent");
    assert_eq!(failing.outbox().iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id(1), mail_id(2)]);
}

#[tokio::test]
async fn either_mailer_dispatches_to_the_chosen_side_only() {
    let (left, right) = (MemoryMailer::new(), MemoryMailer::new());
    let pick = |use_left: bool| -> Either<MemoryMailer, BoxMailer> {
        if use_left { Either::Left(left.clone()) } else { Either::Right(BoxMailer::new(right.clone())) }
    };
    pick(true).send(mail_id(1), &message("frank")).await.expect("sent");
    assert_eq!((left.outbox().len(), right.outbox().len()), (1, 0));
    pick(false).send(mail_id(2), &message("frank")).await.expect("sent");
    pick(false).send(mail_id(3), &message("frank")).await.expect("sent");
    assert_eq!((left.outbox().len(), right.outbox().len()), (1, 2));
    assert_eq!(right.outbox().iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id(2), mail_id(3)]);
}

/// Every store method through `BoxStore` and both sides of `Either`, against the
/// wrapped store.
#[tokio::test]
async fn boxed_and_either_stores_forward_every_method() {
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    let stores: Vec<(BoxStore, MemoryStore)> = vec![
        (BoxStore::new(a.clone()), a.clone()),
        (BoxStore::new(Either::<MemoryStore, BoxStore>::Left(b.clone())), b.clone()),
        (BoxStore::new(Either::<BoxStore, MemoryStore>::Right(a.clone())), a.clone()),
    ];
    // Documents written by a real engine, so they are well formed.
    let maker = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
        .policy(fast_policy().build().expect("policy"))
        .build()
        .expect("engine");
    let admin = maker.create_account(NewAccount::new("admin", &email("admin"), Role::Admin, PASSWORD)).await.unwrap();
    // Mail is due for a user from when it was queued (by the maker's system clock).
    let later = Timestamp(u64::from(u32::MAX));

    for (i, (boxed, inner)) in stores.iter().enumerate() {
        let name = format!("user{i}");
        let id =
            maker.create_account(NewAccount::new(&name, &email(&name), Role::User, PASSWORD)).await.expect("create");
        let made = maker.store().find_by_id(id).await.expect("store").expect("made");
        let document = made.credentials.clone().expect("the engine wrote a document").document;

        // create_user, with its document, and its Duplicate.
        boxed.create_user(&made).await.expect("create_user");
        assert!(matches!(boxed.create_user(&made).await, Err(StoreError::Duplicate)), "a duplicate is refused");

        let by_id = boxed.find_by_id(id).await.expect("store").expect("found by id");
        assert_eq!((by_id.login.as_str(), by_id.role), (name.as_str(), Role::User));
        assert_eq!(by_id.credentials.as_ref().map(|c| (c.version, &c.document)), Some((1, &document)));
        let by_login = boxed.find_by_login(&name).await.expect("store").expect("found by login");
        assert_eq!(by_login, by_id);
        assert!(boxed.find_by_login("nobody").await.expect("store").is_none());
        assert!(boxed.find_by_id(UserId::from(u64::MAX >> 1)).await.expect("store").is_none());

        let changed = Document::from_json(format!(r#"{{"format":1,"changed":{i}}}"#));
        assert_eq!(boxed.compare_and_swap(id, 1, &changed).await.expect("swap"), Swap::Swapped { version: 2 });
        assert_eq!(boxed.compare_and_swap(id, 1, &document).await.expect("swap"), Swap::Conflict);
        assert_eq!(boxed.insert_document(id, &document).await.expect("insert"), Swap::Conflict);

        // A user without a document gets its first one by insert_document.
        let (bare, bare_login) = (UserId::from(1000 + i as u64), format!("bare{i}"));
        boxed
            .create_user(&UserRecord::new(bare, bare_login.as_str(), "bare@example.test", Role::Admin))
            .await
            .expect("bare");
        assert!(boxed.find_by_login(&bare_login).await.expect("store").expect("bare").credentials.is_none());
        assert_eq!(boxed.insert_document(bare, &document).await.expect("insert"), Swap::Swapped { version: 1 });

        // scan walks the wrapped store, page by page, with its cursors.
        let whole = inner.scan(None, 100).await.expect("scan");
        assert_eq!(boxed.scan(None, 100).await.expect("scan"), whole);
        assert!(whole.users.iter().any(|u| u.id == bare) && whole.next.is_none());
        let first = boxed.scan(None, 1).await.expect("scan");
        assert_eq!(first, inner.scan(None, 1).await.expect("scan"));
        let cursor = first.next.as_deref().expect("more than one page");
        assert_eq!(
            boxed.scan(Some(cursor), 100).await.expect("scan"),
            inner.scan(Some(cursor), 100).await.expect("scan")
        );

        // mail_due finds the wrapped store's users with mail due: one whose document
        // holds a queued reset notice.
        let queued_name = format!("queued{i}");
        let queued = maker
            .create_account(NewAccount::new(&queued_name, &email(&queued_name), Role::User, PASSWORD))
            .await
            .expect("create");
        assert!(matches!(maker.reset(admin, queued, "video call").await, Ok(twofactor::ResetOutcome::Reset { .. })));
        boxed
            .create_user(&maker.store().find_by_id(queued).await.expect("store").expect("made"))
            .await
            .expect("create");
        let due = boxed.mail_due(later, 100).await.expect("mail_due");
        assert!(due.contains(&queued) && !due.contains(&id) && !due.contains(&bare), "{due:?}");
        assert_eq!(due, inner.mail_due(later, 100).await.expect("mail_due"));
        assert_eq!(boxed.mail_due(later, 1).await.expect("mail_due").len(), 1, "the limit is passed on");
        assert!(
            boxed.mail_due(Timestamp(0), 100).await.expect("mail_due").is_empty(),
            "nothing is due before it was queued"
        );

        // It all landed in the wrapped store.
        let seen = inner.find_by_id(id).await.expect("store").expect("in the inner store");
        assert_eq!(seen.credentials.map(|c| (c.version, c.document)), Some((2, changed)));
        let seen = inner.find_by_id(bare).await.expect("store").expect("in the inner store");
        assert_eq!((seen.login.as_str(), seen.role), (bare_login.as_str(), Role::Admin));
        assert_eq!(seen.credentials.map(|c| (c.version, c.document)), Some((1, document)));
    }
    // `a` holds three users per round (through `BoxStore` and through `Either::Right`), `b` one round's.
    assert!(a.find_by_login("user0").await.expect("store").is_some());
    assert!(a.find_by_login("user2").await.expect("store").is_some());
    assert!(b.find_by_login("user1").await.expect("store").is_some());
    assert!(b.find_by_login("user0").await.expect("store").is_none());
    assert_eq!((a.len(), b.len()), (6, 3));
}

/// `create_user` is forwarded too: a wrapped store without it answers `Unsupported`
/// through `BoxStore` and `Either`, and writes nothing.
#[tokio::test]
async fn boxed_and_either_stores_forward_an_unsupported_create_user() {
    let inner = MemoryStore::new();
    let app = AppUsers(inner.clone());
    let user = UserRecord::new(UserId::from(5_u64), "eve", "eve@example.test", Role::User);
    let wrapped: Vec<BoxStore> = vec![
        BoxStore::new(app.clone()),
        BoxStore::new(Either::<AppUsers, MemoryStore>::Left(app.clone())),
        BoxStore::new(Either::<MemoryStore, AppUsers>::Right(app.clone())),
    ];
    for store in &wrapped {
        assert!(matches!(store.create_user(&user).await, Err(StoreError::Unsupported(_))), "{store:?}");
    }
    let direct: Either<AppUsers, MemoryStore> = Either::Left(app.clone());
    assert!(matches!(direct.create_user(&user).await, Err(StoreError::Unsupported(_))));
    assert!(inner.is_empty(), "a refused create_user wrote nothing");

    // The other methods reach the application's users.
    inner.add_user(user.id, "eve", "eve@example.test", Role::User).expect("add");
    let doc = Document::from_json(r#"{"format":1}"#);
    for (i, store) in wrapped.iter().enumerate() {
        assert_eq!(store.find_by_login("eve").await.expect("store").map(|u| u.id), Some(user.id));
        let swap = if i == 0 {
            store.insert_document(user.id, &doc).await.expect("insert")
        } else {
            store.compare_and_swap(user.id, i as u64, &doc).await.expect("swap")
        };
        assert_eq!(swap, Swap::Swapped { version: i as u64 + 1 });
    }
    assert_eq!(inner.find_by_id(user.id).await.expect("store").and_then(|u| u.credentials).map(|c| c.version), Some(3));
}

/// `scan` is forwarded too: a wrapped store without it answers `Unsupported` through
/// `BoxStore` and `Either`, and the key operations report that store error.
#[tokio::test]
async fn boxed_and_either_stores_forward_an_unsupported_scan() {
    let inner = MemoryStore::new();
    inner.add_user(UserId::from(5_u64), "eve", "eve@example.test", Role::User).expect("add");
    let _ = inner.insert_document(UserId::from(5_u64), &Document::from_json(r#"{"format":1}"#)).await.expect("insert");
    let wrapped: Vec<BoxStore> = vec![
        BoxStore::new(NoScan(inner.clone())),
        BoxStore::new(Either::<NoScan, MemoryStore>::Left(NoScan(inner.clone()))),
        BoxStore::new(Either::<MemoryStore, NoScan>::Right(NoScan(inner.clone()))),
    ];
    for store in wrapped {
        assert!(matches!(store.scan(None, 10).await, Err(StoreError::Unsupported(_))), "{store:?}");
        let engine = Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .policy(fast_policy().build().expect("policy"))
            .build()
            .expect("engine");
        let usage = engine.key_usage().await;
        assert!(matches!(usage, Err(twofactor::Error::Store(StoreError::Unsupported(_)))), "{usage:?}");
        let resealed = engine.reseal(None, |_| {}).await;
        assert!(matches!(resealed, Err(twofactor::Error::Store(StoreError::Unsupported(_)))), "{resealed:?}");
    }
    // While a store that has it answers through the same wrappers.
    let direct: Either<NoScan, AppUsers> = Either::Right(AppUsers(inner.clone()));
    assert_eq!(direct.scan(None, 10).await.expect("scan").users.len(), 1);
}

#[cfg(feature = "testkit")]
mod conformance {
    use twofactor::store::{BoxStore, MemoryStore};
    use twofactor::testkit::{Conformance, DEFAULT_TASKS, SEEDED_USERS, run_conformance};
    use twofactor::{Either, Role, StoreError, UserId};

    use super::AppUsers;

    /// The full kit runs 18 checks, the seeded one 14; both run their document checks
    /// in the same order, the scan tenth.
    fn passed(report: Result<twofactor::testkit::Report, twofactor::testkit::Failure>, checks: usize) {
        let report = report.unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(report.tasks, DEFAULT_TASKS, "{report}");
        assert_eq!(report.checks.len(), checks, "{report}");
        assert_eq!(report.checks[9], "scan_visits_every_document_once", "{report}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn box_store_conforms() {
        passed(run_conformance(|| async { Ok::<_, StoreError>(BoxStore::new(MemoryStore::new())) }).await, 18);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn either_store_conforms_on_both_sides() {
        passed(
            run_conformance(|| async {
                Ok::<_, StoreError>(Either::<MemoryStore, BoxStore>::Left(MemoryStore::new()))
            })
            .await,
            18,
        );
        passed(
            run_conformance(|| async {
                Ok::<_, StoreError>(Either::<MemoryStore, BoxStore>::Right(BoxStore::new(MemoryStore::new())))
            })
            .await,
            18,
        );
    }

    /// A boxed store that does not create users passes the seeded kit (the users are
    /// added behind it, as an application adds them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn box_store_over_application_users_conforms_seeded() {
        let mut next = 0_u64;
        let report = Conformance::new()
            .run_seeded(|| {
                let inner = MemoryStore::new();
                let ids: Vec<UserId> = (0..SEEDED_USERS as u64).map(|k| UserId::from(next + k)).collect();
                next += SEEDED_USERS as u64;
                for id in &ids {
                    let login = format!("app-{id}");
                    inner.add_user(*id, &login, "app@example.test", Role::User).expect("add");
                }
                let store = BoxStore::new(Either::<AppUsers, MemoryStore>::Left(AppUsers(inner)));
                async move { Ok::<_, StoreError>((store, ids)) }
            })
            .await;
        passed(report, 14);
    }
}
