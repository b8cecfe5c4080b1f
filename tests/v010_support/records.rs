//! Every migrated user row against what 0.1.0 stored (the manifest's `stored`): the
//! identity columns, the version, and every field of the credential document.

use data_encoding::{BASE64, HEXLOWER};
use serde_json::Value;
use twofactor::UserId;
use twofactor::store::{UserRecord, UserStore};

use super::manifest::{Account, Stored};

/// The number at `pointer`, 0 when absent (the document leaves zeros out).
pub fn num(doc: &Value, pointer: &str) -> u64 {
    doc.pointer(pointer).map_or(0, |v| v.as_u64().unwrap_or_else(|| panic!("{pointer} is not a u64: {v}")))
}

/// The number at `pointer`, `None` when absent.
pub fn opt_num(doc: &Value, pointer: &str) -> Option<u64> {
    doc.pointer(pointer).map(|v| v.as_u64().unwrap_or_else(|| panic!("{pointer} is not a u64: {v}")))
}

/// The flag at `pointer`, false when absent.
pub fn flag(doc: &Value, pointer: &str) -> bool {
    doc.pointer(pointer).is_some_and(|v| v.as_bool().unwrap_or_else(|| panic!("{pointer} is not a bool: {v}")))
}

/// The text at `pointer`.
pub fn text<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("{pointer} is not a string in {doc}"))
}

/// The list at `pointer`, empty when absent.
pub fn list<'a>(doc: &'a Value, pointer: &str) -> &'a [Value] {
    doc.pointer(pointer).map_or(&[], |v| v.as_array().unwrap_or_else(|| panic!("{pointer} is not a list: {v}")))
}

/// The user and its parsed document, by id; panics when either is missing.
pub async fn stored<S: UserStore>(store: &S, id: UserId) -> (UserRecord, u64, Value) {
    let user = store.find_by_id(id).await.expect("store").unwrap_or_else(|| panic!("no user {id}"));
    let credentials = user.credentials.clone().unwrap_or_else(|| panic!("user {id} has no credential document"));
    let doc = serde_json::from_str(credentials.document.as_json()).expect("the document is JSON");
    (user, credentials.version, doc)
}

/// Checks that `store` holds `account` exactly as 0.1.0 stored it: same id (the
/// decimal text of the same number), the login byte for byte, email, role, version,
/// and a document carrying every stored field.
pub async fn check_account<S: UserStore>(store: &S, account: &Account) {
    let who = &account.key;
    let s = &account.stored;
    assert_eq!(s.id, account.id, "{who}: manifest id");
    let id = UserId::from(account.id);
    assert_eq!(id.as_str(), account.id_text, "{who}: UserId::from(u64) is the id's decimal text");
    assert_eq!(id.as_u64(), Some(account.id), "{who}");

    let (user, version, doc) = stored(store, id).await;
    assert_eq!(user.id, id, "{who}: id");
    assert_eq!(user.login, s.username, "{who}: login as 0.1.0 stored it");
    assert_eq!(user.login, account.username, "{who}: login");
    if let Some(hex) = &account.username_utf8_hex {
        assert_eq!(&HEXLOWER.encode(user.login.as_bytes()), hex, "{who}: the login's bytes are kept unnormalized");
    }
    assert_eq!(user.email, s.email, "{who}: email");
    assert_eq!(user.role.as_str(), s.role, "{who}: role");
    assert_eq!(version, s.version, "{who}: the document keeps the 0.1.0 record's version");

    // The same user by the login exactly as stored.
    let by_login = store.find_by_login(&s.username).await.expect("store").unwrap_or_else(|| panic!("{who} by login"));
    assert_eq!(by_login.id, id, "{who}: found by the login as stored");

    check_document(who, s, &doc);
}

/// Every field of the 0.1.0 record in the JSON document (see src/document/wire.rs).
pub fn check_document(who: &str, s: &Stored, doc: &Value) {
    assert_eq!(num(doc, "/format"), 1, "{who}: format");
    assert_eq!(text(doc, "/password"), s.password_hash, "{who}: the password hash string is kept");
    assert_eq!(num(doc, "/stamp"), s.security_stamp, "{who}: security stamp");
    assert_eq!(num(doc, "/stamp").to_string(), s.security_stamp_text, "{who}: security stamp text");
    assert_eq!(num(doc, "/stamp") as i64, s.security_stamp_sql, "{who}: security stamp as the 0.1.0 BIGINT");
    assert_eq!(num(doc, "/created_at"), s.created_at, "{who}: created_at");

    let tf = &s.two_factor;
    let state = doc.pointer("/second_factor/state").and_then(Value::as_str).unwrap_or("disabled");
    assert_eq!(state, tf.state, "{who}: second factor state");
    let sealed = |hex: &Option<String>| -> String {
        let hex = hex.as_ref().unwrap_or_else(|| panic!("{who}: no sealed secret in the manifest"));
        BASE64.encode(&HEXLOWER.decode(hex.as_bytes()).expect("sealed_secret_hex is hex"))
    };
    let check_totp = |at: &str, last_used: u64, added: u64| {
        let params = tf.params.as_ref().unwrap_or_else(|| panic!("{who}: no params"));
        assert_eq!(text(doc, &format!("{at}/kind")), "totp", "{who}");
        assert_eq!(
            text(doc, &format!("{at}/secret")),
            sealed(&tf.sealed_secret_hex),
            "{who}: the sealed secret is the same bytes"
        );
        assert_eq!(text(doc, &format!("{at}/algorithm")), params.algorithm, "{who}: algorithm");
        assert_eq!(num(doc, &format!("{at}/digits")), u64::from(params.digits), "{who}: digits");
        assert_eq!(num(doc, &format!("{at}/period")), u64::from(params.period), "{who}: period");
        assert_eq!(num(doc, &format!("{at}/last_used_step")), last_used, "{who}: last used step");
        assert_eq!(num(doc, &format!("{at}/added_at")), added, "{who}: added_at");
    };
    match tf.state.as_str() {
        "disabled" => {
            assert!(doc.pointer("/second_factor/authenticators").is_none(), "{who}: {doc}");
            assert!(doc.pointer("/second_factor/authenticator").is_none(), "{who}: {doc}");
            assert!(s.backup_code_hashes.is_empty());
        }
        "enrolling" => {
            let started = tf.started_at.expect("started_at");
            assert_eq!(num(doc, "/second_factor/started_at"), started, "{who}: started_at");
            check_totp("/second_factor/authenticator", 0, started);
            assert!(s.backup_code_hashes.is_empty());
        }
        "enabled" => {
            let enabled_at = tf.enabled_at.expect("enabled_at");
            assert_eq!(num(doc, "/second_factor/enabled_at"), enabled_at, "{who}: enabled_at");
            assert_eq!(list(doc, "/second_factor/authenticators").len(), 1, "{who}: one authenticator");
            check_totp("/second_factor/authenticators/0", tf.last_used_step.expect("last_used_step"), enabled_at);
            let codes = list(doc, "/second_factor/backup_codes");
            assert_eq!(codes.len(), s.backup_code_hashes.len(), "{who}: backup codes");
            for (i, (got, want)) in codes.iter().zip(&s.backup_code_hashes).enumerate() {
                assert_eq!(text(got, "/hash"), want.phc, "{who}: backup code {i} hash");
                assert_eq!(num(got, "/issued_at"), want.issued_at, "{who}: backup code {i} issued_at");
                assert_eq!(opt_num(got, "/expires_at"), want.expires_at, "{who}: backup code {i} expires_at");
            }
        }
        other => panic!("{who}: unknown state {other}"),
    }

    assert_eq!(num(doc, "/throttle/failures"), s.throttle.failures, "{who}: throttle failures");
    assert_eq!(opt_num(doc, "/throttle/until"), s.throttle.until, "{who}: throttle until");
    assert_eq!(flag(doc, "/throttle/locked"), s.throttle.second_factor_locked, "{who}: second factor locked");
    assert_eq!(num(doc, "/throttle/second_factor_failures"), 0, "{who}: 0.1.0 kept no such count");

    let locations = list(doc, "/locations");
    assert_eq!(locations.len(), s.locations.len(), "{who}: remembered locations");
    for (i, (got, want)) in locations.iter().zip(&s.locations).enumerate() {
        assert_eq!(text(got, "/id"), want.id, "{who}: location {i} id");
        assert_eq!(text(got, "/token_hash"), want.token_hash_hex, "{who}: location {i} token hash");
        assert_eq!(text(got, "/label"), want.label, "{who}: location {i} label");
        assert_eq!(num(got, "/created_at"), want.created_at, "{who}: location {i} created_at");
        assert_eq!(num(got, "/last_used_at"), want.last_used_at, "{who}: location {i} last_used_at");
        assert_eq!(num(got, "/expires_at"), want.expires_at, "{who}: location {i} expires_at");
    }

    let pending = list(doc, "/pending");
    assert_eq!(pending.len(), s.pending_marks.len(), "{who}: pending marks (expired ones included)");
    for (i, (got, want)) in pending.iter().zip(&s.pending_marks).enumerate() {
        assert_eq!(text(got, "/id"), want.id, "{who}: pending mark {i} id");
        assert_eq!(num(got, "/expires_at"), want.expires_at, "{who}: pending mark {i} expires_at");
        assert_eq!(num(got, "/failures"), want.failures, "{who}: pending mark {i} failures");
        assert_eq!(flag(got, "/consumed"), want.consumed, "{who}: pending mark {i} consumed");
    }

    match &s.last_reset {
        None => assert!(doc.pointer("/last_reset").is_none(), "{who}: no reset record: {doc}"),
        Some(r) => {
            assert_eq!(text(doc, "/last_reset/by"), r.by.to_string(), "{who}: reset by (id text)");
            assert_eq!(text(doc, "/last_reset/by_login"), r.by_username, "{who}: reset by_login");
            assert_eq!(text(doc, "/last_reset/by_role"), r.by_role, "{who}: reset by_role");
            assert_eq!(text(doc, "/last_reset/identity_check"), r.identity_check, "{who}: identity check");
            assert_eq!(num(doc, "/last_reset/at"), r.at, "{who}: reset at");
        }
    }
    assert_eq!(num(doc, "/retired_totp_step"), 0, "{who}: 0.1.0 kept no retired step");
}
