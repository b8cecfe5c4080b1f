//! Audit events (issue 3): a typed, stable event for every security-relevant step,
//! delivered to an `EventSink` (and, with the `tracing` feature, as `tracing` events);
//! no event, error or outcome ever carries a password, code, key or token.

mod common;

use std::time::Duration;

use common::*;
use twofactor::events::Event;
use twofactor::events::{EventKind, Factor, FailureClass};
use twofactor::{DeliveryPolicy, Error, Role, SecondFactor, SecondFactorOutcome};

/// Everything secret a full flow handled, and every event, error and outcome it saw.
struct Flow {
    f: Fixture,
    secrets: Vec<String>,
    codes: Vec<String>,
    seen: Vec<String>,
}

fn dbg(what: impl std::fmt::Debug) -> String {
    format!("{what:?}")
}

/// Decimal digit runs of `s` (a 6-digit code must not be one; timestamps may contain it).
fn digit_runs(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()).collect()
}

/// Every step of the product: enrollment, TOTP and backup-code logins (one whose
/// replacement mail fails until it is given up), wrong and replayed codes, an expired
/// pending login, a remembered and a revoked location, a throttle, a password change,
/// a denied and a done reset; and the delivery rounds that send the mail they queue.
async fn full_flow() -> Flow {
    let delivery = DeliveryPolicy::default().max_attempts(2);
    let f = fixture_with(fast_policy().delivery(delivery).build().unwrap());
    let (mut secrets, mut codes, mut seen) = (vec![PASSWORD.to_owned()], vec![], vec![]);
    let id = f.user("audited", Role::User).await;
    let admin = f.user("auditor", Role::Admin).await;
    let started = f.engine.start_enrollment(id).await.unwrap();
    let (uri, b32) = (started.uri.expose().to_owned(), started.secret_base32.expose().to_owned());
    let secret = data_encoding::BASE32_NOPAD.decode(b32.as_bytes()).unwrap();
    let confirm = f.code(&secret);
    let out = f.engine.confirm_enrollment(id, &confirm).await.unwrap();
    seen.push(dbg(f.deliver().await));
    let first_backup = f.backup_code("audited");
    secrets.push(uri.to_owned());
    secrets.push(b32.to_owned());
    secrets.push(data_encoding::HEXLOWER.encode(&secret).to_owned());
    codes.push(confirm.to_owned());
    seen.push(dbg(out));
    f.clock.advance(Duration::from_secs(30));

    // TOTP login remembering the location, then a login through it.
    let pending = f.pending("audited").await;
    let code = f.code(&secret);
    let out = f.engine.finish_login(&pending, SecondFactor::Totp(&code), Some("work laptop")).await.unwrap();
    let SecondFactorOutcome::Authenticated(auth) = &out else { panic!("{out:?}") };
    let remember = auth.remembered.clone().unwrap();
    let via = f.engine.begin_login("audited", PASSWORD, Some(remember.token())).await.unwrap();
    let (p1, c1, t1, l1) = (pending, code, remember.token().to_owned(), remember.id().to_owned());
    secrets.push(p1.to_owned());
    secrets.push(t1.to_owned());
    codes.push(c1.to_owned());
    seen.push(dbg(out));
    seen.push(dbg(via));

    // A replayed code, a wrong code, a malformed code, then an expired pending login.
    let pending = f.pending("audited").await;
    let replay = f.engine.finish_login(&pending, SecondFactor::Totp(&c1), None).await.unwrap();
    let wrong = f.engine.finish_login(&pending, SecondFactor::Totp("000000"), None).await.unwrap();
    let bad = f.engine.finish_login(&pending, SecondFactor::Totp("12x456"), None).await.unwrap();
    assert!(matches!(bad, SecondFactorOutcome::Denied { .. }), "a typo is an outcome: {bad:?}");
    let bad_backup = f.engine.finish_login(&pending, SecondFactor::BackupCode("K7QX-M2PD-9WRT-H4N!"), None).await;
    f.clock.advance(Duration::from_secs(301));
    let expired = f.engine.finish_login(&pending, SecondFactor::Totp(&f.code(&secret)), None).await.unwrap();
    secrets.push(pending.to_owned());
    secrets.push("12x456".to_owned());
    secrets.push("K7QX-M2PD-9WRT-H4N!".to_owned());
    codes.push("000000".to_owned());
    for o in [replay, wrong, expired] {
        seen.push(dbg(o));
    }
    seen.push(dbg(&bad));
    seen.push(dbg(bad_backup.as_ref().map(|_| ())));
    seen.push(dbg(bad_backup.map_err(|e| e.to_string()).map(|_| ())));

    // A backup-code login whose replacement mail fails every try, and is given up.
    f.mailer.fail_next(2);
    let pending = f.pending("audited").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&first_backup), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    secrets.push(pending.to_owned());
    secrets.push(first_backup.to_owned());
    secrets.push(first_backup.replace('-', "").to_owned());
    seen.push(dbg(out));
    let retrying = f.deliver().await;
    assert_eq!(retrying.retrying, 1, "{retrying:?}");
    f.clock.advance(delivery.retry_after(1));
    let gave_up = f.deliver().await;
    assert_eq!(gave_up.gave_up, 1, "{gave_up:?}");
    seen.push(dbg(retrying));
    seen.push(dbg(gave_up));
    let reissued = f.engine.reissue_backup_code(id).await.unwrap();
    seen.push(dbg(f.deliver().await));
    let second_backup = f.backup_code("audited");
    secrets.push(second_backup.to_owned());
    seen.push(dbg(f.engine.mail_status(id, reissued.queued().expect("queued")).await.unwrap()));
    seen.push(dbg(reissued));

    // Wrong passwords until throttled; an unknown user.
    for i in 0..5 {
        let password = format!("wrong secret {i}");
        let out = f.engine.begin_login("audited", &password, None).await.unwrap();
        secrets.push(password.to_owned());
        seen.push(dbg(out));
    }
    let out = f.engine.begin_login("nobody-here", "unknown user password", None).await.unwrap();
    secrets.push("unknown user password".to_owned());
    seen.push(dbg(out));
    seen.push(dbg(f.deliver().await)); // the throttle notice
    f.clock.advance(Duration::from_secs(3600));

    // Locations, password change, resets.
    assert!(f.engine.revoke_location(id, &l1).await.unwrap());
    let new_password = "another long passphrase";
    f.engine.change_password(id, new_password).await.unwrap();
    let denied = f.engine.reset(id, admin, "self-service attempt").await.unwrap();
    let done = f.engine.reset(admin, id, "video call, photo ID matched").await.unwrap();
    secrets.push(new_password.to_owned());
    seen.push(dbg(denied));
    seen.push(dbg(done));
    seen.push(dbg(f.deliver().await)); // the reset notice
    for e in f.events.events() {
        seen.push(dbg(&e));
        seen.push(dbg(e.kind.name()));
    }
    Flow { f, secrets, codes, seen }
}

#[tokio::test]
async fn every_security_step_emits_its_event() {
    let flow = full_flow().await;
    let names = flow.f.events.names();
    for expected in [
        "account.created",
        "enrollment.started",
        "enrollment.confirmed",
        "login.succeeded",
        "login.failed",
        "second_factor.failed",
        "backup_code.used",
        "backup_code.rotated",
        "backup_code.delivery_failed",
        "mail.failed",
        "mail.gave_up",
        "mail.delivered",
        "location.remembered",
        "location.revoked",
        "throttle.started",
        "password.changed",
        "two_factor.reset",
        "two_factor.reset_denied",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
}

#[tokio::test]
async fn failures_carry_a_reason_class_and_logins_their_factor() {
    let flow = full_flow().await;
    let kinds: Vec<EventKind> = flow.f.events.events().into_iter().map(|e| e.kind).collect();
    for expected in [
        EventKind::LoginFailed { reason: FailureClass::WrongPassword },
        EventKind::LoginFailed { reason: FailureClass::UnknownUser },
        EventKind::SecondFactorFailed { factor: Factor::Totp, reason: FailureClass::Replayed },
        EventKind::SecondFactorFailed { factor: Factor::Totp, reason: FailureClass::WrongCode },
        EventKind::SecondFactorFailed { factor: Factor::Totp, reason: FailureClass::PendingInvalid },
        EventKind::LoginSucceeded { factor: Factor::Totp },
        EventKind::LoginSucceeded { factor: Factor::BackupCode },
        EventKind::LoginSucceeded { factor: Factor::Location },
    ] {
        assert!(kinds.contains(&expected), "missing {expected:?}");
    }
}

#[tokio::test]
async fn mail_events_carry_the_message_kind_and_the_tries() {
    let flow = full_flow().await;
    let kinds: Vec<EventKind> = flow.f.events.events().into_iter().map(|e| e.kind).collect();
    let rotated = twofactor::mail::MessageKind::BackupCodeRotated;
    let failed = kinds.iter().filter(|k| **k == EventKind::MailFailed { kind: rotated }).count();
    assert_eq!(failed, 2, "one per failed try: {kinds:?}");
    for expected in [
        EventKind::MailGaveUp { kind: rotated, attempts: 2 },
        EventKind::MailDelivered { kind: twofactor::mail::MessageKind::BackupCodeSetup },
        EventKind::MailDelivered { kind: twofactor::mail::MessageKind::BackupCodeReissued },
        EventKind::MailDelivered { kind: twofactor::mail::MessageKind::Throttled },
        EventKind::MailDelivered { kind: twofactor::mail::MessageKind::TwoFactorReset },
    ] {
        assert!(kinds.contains(&expected), "missing {expected:?} in {kinds:?}");
    }
    assert!(!kinds.contains(&EventKind::MailDelivered { kind: rotated }), "the given-up message was never sent");
}

#[tokio::test]
async fn a_reset_event_records_who_did_it_and_the_identity_check() {
    let flow = full_flow().await;
    let events: Vec<Event> = flow.f.events.events();
    let admin = flow.f.engine.account_by_username("auditor").await.unwrap().unwrap().id;
    let target = flow.f.engine.account_by_username("audited").await.unwrap().unwrap().id;
    let reset = events.iter().find(|e| e.kind.name() == "two_factor.reset").unwrap();
    assert_eq!(reset.account, Some(target));
    assert_eq!(
        reset.kind,
        EventKind::TwoFactorReset {
            by: admin,
            by_role: Role::Admin,
            identity_check: "video call, photo ID matched".to_owned()
        }
    );
    let denied = events.iter().find(|e| e.kind.name() == "two_factor.reset_denied").unwrap();
    assert_eq!((denied.account, &denied.kind), (Some(admin), &EventKind::ResetDenied { by: target }));
}

#[tokio::test]
async fn no_event_error_or_outcome_carries_a_secret() {
    let flow = full_flow().await;
    assert!(flow.seen.len() > 40, "the flow saw {} things", flow.seen.len());
    assert!(flow.codes.len() >= 3 && flow.secrets.len() >= 12);
    for text in &flow.seen {
        for secret in &flow.secrets {
            assert!(!text.contains(secret.as_str()), "{secret:?} leaked into {text}");
        }
        for code in &flow.codes {
            assert!(!digit_runs(text).contains(&code.as_str()), "code {code} leaked into {text}");
        }
    }
}

#[test]
fn input_errors_do_not_echo_the_input() {
    let marker = "SECRET-MARKER-123456";
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(twofactor::BackupCode::parse(marker).unwrap_err()),
        Box::new(twofactor::totp::TotpCode::parse(marker, 6).unwrap_err()),
        Box::new(twofactor::otpauth::parse_otpauth_uri(marker).unwrap_err()),
        Box::new(twofactor::AppKey::from_hex(1, marker).unwrap_err()),
        Box::new(Error::from(twofactor::totp::TotpCode::parse(&marker.repeat(10), 6).unwrap_err())),
    ];
    for e in errors {
        let shown = format!("{e} / {e:?}");
        assert!(!shown.contains("MARKER") && !shown.contains("123456"), "{shown}");
    }
}

/// The `tracing` output of every event of the full flow: under the `twofactor::audit`
/// target, with the stable name, and no secret.
#[cfg(feature = "tracing")]
#[tokio::test]
async fn tracing_events_carry_the_name_and_no_secret() {
    use std::sync::{Arc, Mutex};
    use twofactor::events::{EventSink, TracingSink};

    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
    struct Capture(Arc<Mutex<Vec<String>>>);
    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(format!("{} ", event.metadata().target()));
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    let flow = full_flow().await;
    let lines = Arc::new(Mutex::new(vec![]));
    let events = flow.f.events.events();
    tracing::subscriber::with_default(Capture(Arc::clone(&lines)), || {
        for e in &events {
            TracingSink.record(e);
        }
    });
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        assert!(line.starts_with("twofactor::audit "), "{line}");
        assert!(line.contains(event.kind.name()), "{line}");
        for secret in &flow.secrets {
            assert!(!line.contains(secret.as_str()), "{secret:?} leaked into {line}");
        }
        for code in &flow.codes {
            assert!(!digit_runs(line).contains(&code.as_str()), "code {code} leaked into {line}");
        }
    }
}
