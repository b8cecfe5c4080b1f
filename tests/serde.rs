//! Data out of the crate (issue 15, feature `serde`): ids, roles, timestamps, account
//! views, remembered locations and audit events serialize to stable, documented JSON
//! and back; secrets and tokens do not serialize at all.

mod common;

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use twofactor::events::Event;
use twofactor::events::{EventKind, Factor, FailureClass, InputProblem};
use twofactor::mail::MessageKind;
use twofactor::{
    AccountView, Clock, LocationInfo, LoginOutcome, Role, SecondFactor, SecondFactorOutcome, Timestamp, TwoFactorState,
    UserId,
};

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// Serializes to exactly `expected` and reads back as the same value.
#[track_caller]
fn shape<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, expected: &str) {
    assert_eq!(json(value), expected);
    assert_eq!(&serde_json::from_str::<T>(expected).unwrap(), value);
}

#[test]
fn user_id_is_its_text() {
    // An integer id is its decimal text, as a JSON string.
    shape(&UserId::from(42_u64), r#""42""#);
    // Above 2^53 (as random ids almost always are) a JSON number would round in
    // JavaScript; the string keeps every digit.
    shape(&UserId::from((1_u64 << 53) + 1), r#""9007199254740993""#);
    shape(&UserId::from(u64::MAX), r#""18446744073709551615""#);
    assert_eq!(
        json(&UserId::from(5_468_115_731_402_263_511_u64)),
        format!("\"{}\"", UserId::from(5_468_115_731_402_263_511_u64))
    );
    // Any other id is its text too, exactly as given (no normalization).
    for text in ["6f1e2a34-0d5c-4c7b-9a61-2f0e8b1d3c55", "auth0|5f7c8ec7c33c6c004bbafe82", "Zoë", "-1", "007", " 1"] {
        let id = UserId::new(text).unwrap();
        shape(&id, &serde_json::to_string(text).unwrap());
        assert_eq!(serde_json::from_str::<UserId>(&json(&id)).unwrap().as_str(), text);
    }
    // Text that is not a user id is refused, and so is anything but a string.
    let too_long = serde_json::to_string(&"x".repeat(65)).unwrap();
    for bad in ["42", "null", "[]", r#"{"id":"1"}"#, r#""""#, r#""a\u0000b""#, r#""tab\there""#, &too_long] {
        assert!(serde_json::from_str::<UserId>(bad).is_err(), "{bad} was accepted");
    }
}

#[test]
fn role_is_its_stable_name() {
    for role in [Role::User, Role::Admin, Role::Support] {
        shape(&role, &format!("\"{}\"", role.as_str()));
    }
    assert_eq!(json(&Role::Admin), r#""admin""#);
    assert!(serde_json::from_str::<Role>(r#""Admin""#).is_err());
    assert!(serde_json::from_str::<Role>(r#""root""#).is_err());
}

#[test]
fn timestamp_is_unix_seconds() {
    shape(&Timestamp(1_764_498_000), "1764498000");
    shape(&Timestamp(0), "0");
    assert!(serde_json::from_str::<Timestamp>(r#""1764498000""#).is_err());
    assert!(serde_json::from_str::<Timestamp>("-1").is_err());
}

#[test]
fn factor_failure_class_and_input_problem_are_their_stable_names() {
    for factor in [Factor::Password, Factor::Totp, Factor::BackupCode, Factor::Location] {
        shape(&factor, &format!("\"{}\"", factor.as_str()));
    }
    for class in [
        FailureClass::UnknownUser,
        FailureClass::WrongPassword,
        FailureClass::Throttled,
        FailureClass::Locked,
        FailureClass::WrongCode,
        FailureClass::Replayed,
        FailureClass::PendingInvalid,
    ] {
        shape(&class, &format!("\"{}\"", class.as_str()));
    }
    for problem in [InputProblem::TooLong, InputProblem::Malformed] {
        shape(&problem, &format!("\"{}\"", problem.as_str()));
    }
    shape(
        &FailureClass::BadInput { field: "backup code", problem: InputProblem::Malformed },
        r#"{"bad_input":{"field":"backup code","problem":"malformed"}}"#,
    );
    let unknown_field = r#"{"bad_input":{"field":"shoe size","problem":"malformed"}}"#;
    assert!(serde_json::from_str::<FailureClass>(unknown_field).is_err());
}

#[test]
fn location_info_shape() {
    let info = LocationInfo {
        id: "9f86d081884c7d659a2feaa0c55ad015".into(),
        label: "Firefox on Linux".into(),
        created_at: Timestamp(1_764_498_000),
        last_used_at: Timestamp(1_764_500_000),
        expires_at: Timestamp(1_767_090_000),
    };
    shape(
        &info,
        r#"{"id":"9f86d081884c7d659a2feaa0c55ad015","label":"Firefox on Linux","created_at":1764498000,"last_used_at":1764500000,"expires_at":1767090000}"#,
    );
}

#[test]
fn account_view_shape() {
    let text = r#"{"id":"5468115731402263511","username":"alice","email":"alice@example.test","role":"user","two_factor":"enabled","backup_codes":1,"remembered_locations":0,"locked":false}"#;
    let view: AccountView = serde_json::from_str(text).unwrap();
    assert_eq!(view.id, UserId::from(5_468_115_731_402_263_511_u64));
    assert_eq!(
        (view.role, view.two_factor, view.backup_codes, view.locked),
        (Role::User, TwoFactorState::Enabled, 1, false)
    );
    shape(&view, text);
    for state in [TwoFactorState::Disabled, TwoFactorState::Enrolling, TwoFactorState::Enabled] {
        let text = text.replace("\"enabled\"", &format!("\"{}\"", state.as_str()));
        assert_eq!(serde_json::from_str::<AccountView>(&text).unwrap().two_factor, state);
        assert_eq!(serde_json::to_value(state).unwrap(), state.as_str(), "serializes as its stable name");
        assert_eq!(state.to_string(), state.as_str());
    }
    assert!(serde_json::from_str::<AccountView>(&text.replace("\"enabled\"", "\"maybe\"")).is_err());
}

/// One event of every kind, as the crate records them.
fn every_kind() -> Vec<EventKind> {
    vec![
        EventKind::AccountCreated,
        EventKind::LoginSucceeded { factor: Factor::Totp },
        EventKind::LoginFailed { reason: FailureClass::WrongPassword },
        EventKind::LoginFailed { reason: FailureClass::BadInput { field: "username", problem: InputProblem::TooLong } },
        EventKind::LoginShed,
        EventKind::SecondFactorFailed { factor: Factor::BackupCode, reason: FailureClass::Replayed },
        EventKind::BackupCodeUsed,
        EventKind::BackupCodeRotated,
        EventKind::BackupCodeDeliveryFailed,
        EventKind::EnrollmentStarted,
        EventKind::EnrollmentConfirmed,
        EventKind::TwoFactorReset {
            by: UserId::from(9_007_199_254_740_993_u64),
            by_role: Role::Admin,
            identity_check: "video call".into(),
        },
        EventKind::ResetDenied { by: UserId::from(3_u64) },
        EventKind::Throttled { until: Timestamp(1_764_498_060) },
        EventKind::SecondFactorLocked,
        EventKind::LocationRemembered { location: "9f86d081884c7d659a2feaa0c55ad015".into() },
        EventKind::LocationRevoked { location: "9f86d081884c7d659a2feaa0c55ad015".into() },
        EventKind::PasswordChanged,
        EventKind::PasswordImported,
        EventKind::MailFailed { kind: MessageKind::BackupCodeRotated },
        EventKind::MailDelivered { kind: MessageKind::NewLocation },
        EventKind::MailGaveUp { kind: MessageKind::BackupCodeReissued, attempts: 10 },
        EventKind::HashingUnoptimized { millis: 1_100 },
    ]
}

#[test]
fn the_event_tag_is_the_stable_name_for_every_kind() {
    for kind in every_kind() {
        let value = serde_json::to_value(&kind).unwrap();
        assert_eq!(value["event"], kind.name(), "{value}");
        assert_eq!(serde_json::from_value::<EventKind>(value).unwrap(), kind);
        for account in [None, Some(UserId::from(5_468_115_731_402_263_511_u64))] {
            let event = Event { at: Timestamp(1_764_498_000), account, kind: kind.clone() };
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["event"], kind.name(), "{value}");
            assert_eq!(value["at"], 1_764_498_000u64);
            assert_eq!(value["account"], account.map_or(serde_json::Value::Null, |a| a.to_string().into()));
            assert_eq!(serde_json::from_value::<Event>(value).unwrap(), event);
            let text = json(&event);
            assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event, "{text}");
        }
    }
}

#[test]
fn event_shapes() {
    let at = Timestamp(1_764_498_000);
    let alice = Some(UserId::from(5_468_115_731_402_263_511_u64));
    shape(
        &Event {
            at,
            account: alice,
            kind: EventKind::SecondFactorFailed { factor: Factor::Totp, reason: FailureClass::WrongCode },
        },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"second_factor.failed","factor":"totp","reason":"wrong_code"}"#,
    );
    shape(
        &Event { at, account: None, kind: EventKind::LoginFailed { reason: FailureClass::UnknownUser } },
        r#"{"at":1764498000,"account":null,"event":"login.failed","reason":"unknown_user"}"#,
    );
    shape(
        &Event { at, account: alice, kind: EventKind::AccountCreated },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"account.created"}"#,
    );
    shape(
        &Event {
            at,
            account: alice,
            kind: EventKind::TwoFactorReset {
                by: UserId::from(7_u64),
                by_role: Role::Support,
                identity_check: "video call".into(),
            },
        },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"two_factor.reset","by":"7","by_role":"support","identity_check":"video call"}"#,
    );
    shape(
        &Event { at, account: alice, kind: EventKind::Throttled { until: Timestamp(1_764_498_060) } },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"throttle.started","until":1764498060}"#,
    );
    shape(
        &Event { at, account: alice, kind: EventKind::MailFailed { kind: MessageKind::TwoFactorReset } },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"mail.failed","kind":"reset"}"#,
    );
    shape(
        &Event { at, account: alice, kind: EventKind::MailDelivered { kind: MessageKind::BackupCodeSetup } },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"mail.delivered","kind":"backup_code.setup"}"#,
    );
    shape(
        &Event { at, account: alice, kind: EventKind::MailGaveUp { kind: MessageKind::Throttled, attempts: 10 } },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"mail.gave_up","kind":"throttled","attempts":10}"#,
    );
    shape(
        &Event {
            at,
            account: alice,
            kind: EventKind::LoginFailed {
                reason: FailureClass::BadInput { field: "password", problem: InputProblem::TooLong },
            },
        },
        r#"{"at":1764498000,"account":"5468115731402263511","event":"login.failed","reason":{"bad_input":{"field":"password","problem":"too_long"}}}"#,
    );
    // Field order does not matter on input; a missing account is none.
    let reordered = r#"{"event":"login.shed","at":1764498000}"#;
    assert_eq!(
        serde_json::from_str::<Event>(reordered).unwrap(),
        Event { at, account: None, kind: EventKind::LoginShed }
    );
    // Names this version does not know are refused, not guessed.
    for bad in [
        r#"{"at":1,"account":null,"event":"login.teleported"}"#,
        r#"{"at":1,"account":null,"event":"mail.failed","kind":"carrier_pigeon"}"#,
        r#"{"at":1,"account":null,"event":"mail.gave_up","kind":"reset"}"#,
        r#"{"at":1,"account":null,"event":"LoginShed"}"#,
        r#"{"at":1,"account":null}"#,
    ] {
        assert!(serde_json::from_str::<Event>(bad).is_err(), "{bad} was accepted");
    }
}

/// Every event a real flow records serializes, carries its stable name and reads back;
/// the account view and the location list do too; the token lifetimes need no clock
/// arithmetic by the caller.
#[tokio::test]
async fn a_real_flow_serializes() {
    let f = fixture();
    let (id, secret) = f.enrolled("alice").await;
    let _ = f.engine.begin_login("alice", "wrong password!", None).await.unwrap();

    let LoginOutcome::SecondFactorRequired(pending) = f.engine.begin_login("alice", PASSWORD, None).await.unwrap()
    else {
        panic!("2FA is on")
    };
    let now = f.clock.now();
    assert_eq!(pending.max_age(), pending.expires_at().since(now), "the lifetime, with no clock to read");
    let code = f.code(&secret);
    let out =
        f.engine.finish_login(pending.token(), SecondFactor::Totp(&code), Some("Firefox on Linux")).await.unwrap();
    let SecondFactorOutcome::Authenticated(who) = out else { panic!("{out:?}") };
    let remembered = who.remembered.expect("asked to remember");
    // Right after issuing, the cookie's Max-Age is the policy's lifetime.
    assert_eq!(remembered.max_age(), f.engine.policy().locations().lifetime);
    assert_eq!(remembered.expires_at(), f.clock.now().plus(remembered.max_age()));
    assert_eq!(
        SystemTime::from(remembered.expires_at()),
        UNIX_EPOCH + Duration::from_secs(remembered.expires_at().as_secs())
    );

    let events = f.events.events();
    assert!(events.len() >= 5, "{events:?}");
    for event in &events {
        let value = serde_json::to_value(event).unwrap();
        assert_eq!(value["event"], event.kind.name(), "{value}");
        assert_eq!(serde_json::from_value::<Event>(value).unwrap(), *event);
    }
    let lines: Vec<String> = events.iter().map(json).collect();
    assert!(lines.iter().any(|l| l.contains(r#""event":"login.failed","reason":"wrong_password""#)), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains(&format!(r#""account":"{id}""#))), "{lines:?}");
    let setup_mail = r#""event":"mail.delivered","kind":"backup_code.setup""#;
    assert!(lines.iter().any(|l| l.contains(setup_mail)), "the setup code's delivery: {lines:?}");

    let view = f.engine.account(id).await.unwrap().unwrap();
    let text = json(&view);
    assert!(
        text.starts_with(&format!(
            r#"{{"id":"{id}","username":"alice","email":"alice@example.test","role":"user","two_factor":"enabled""#
        )),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<AccountView>(&text).unwrap(), view);

    let locations = f.engine.remembered_locations(id).await.unwrap();
    assert_eq!(locations.len(), 1);
    let text = json(&locations);
    assert!(text.contains(r#""label":"Firefox on Linux""#), "{text}");
    assert_eq!(serde_json::from_str::<Vec<LocationInfo>>(&text).unwrap(), locations);
}

// Secrets never serialize. This is a compile-time property of the types; the probe
// below turns it into a test (an inherent associated const with a `Serialize` bound
// wins over the trait's fallback exactly when the bound holds).

trait Fallback {
    const SERIALIZE: bool = false;
    const DESERIALIZE: bool = false;
}
impl<T: ?Sized> Fallback for Probe<T> {}
struct Probe<T: ?Sized>(PhantomData<T>);
impl<T: ?Sized + Serialize> Probe<T> {
    const SERIALIZE: bool = true;
}
struct DeProbe<T: ?Sized>(PhantomData<T>);
impl<T: ?Sized> Fallback for DeProbe<T> {}
impl<T: DeserializeOwned> DeProbe<T> {
    const DESERIALIZE: bool = true;
}

macro_rules! serializable {
    ($($t:ty),* $(,)?) => { [$((stringify!($t), <Probe<$t>>::SERIALIZE, <DeProbe<$t>>::DESERIALIZE)),*] };
}

#[test]
fn secrets_and_tokens_do_not_serialize() {
    // The probe works: these do.
    for (name, ser, de) in
        serializable!(UserId, Role, Timestamp, AccountView, LocationInfo, Event, EventKind, Factor, FailureClass)
    {
        assert!(ser && de, "{name} should be Serialize + Deserialize");
    }
    for (name, ser, de) in serializable!(
        twofactor::SecretString,
        twofactor::SecretBytes,
        twofactor::PendingLogin,
        twofactor::RememberToken,
        twofactor::Authenticated,
        twofactor::LoginOutcome,
        twofactor::SecondFactorOutcome,
        twofactor::EnrollmentStarted,
        twofactor::BackupCode,
        twofactor::totp::TotpCode,
        twofactor::KeyRing,
        twofactor::AppKey,
        // The credential document holds the password hash and the sealed TOTP key;
        // it reaches the store as opaque text, never through serde.
        twofactor::store::Document,
        twofactor::store::StoredDocument,
        twofactor::store::UserRecord,
        twofactor::mail::Message,
    ) {
        assert!(!ser && !de, "{name} must not be Serialize or Deserialize");
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Session {
    account: UserId,
    role: Role,
    since: Timestamp,
}

#[test]
fn usable_inside_an_application_type() {
    shape(
        &Session {
            account: UserId::from(5_468_115_731_402_263_511_u64),
            role: Role::Admin,
            since: Timestamp(1_764_498_000),
        },
        r#"{"account":"5468115731402263511","role":"admin","since":1764498000}"#,
    );
}
