//! Schema-2 databases written by hand (0.1.0's tables plus migration 2's columns,
//! rows in the documented encoding), for the migration tests of `tests/sql_stores.rs`,
//! and the credential documents those rows must turn into.
#![allow(dead_code)]

use data_encoding::{BASE64, HEXLOWER};
use serde_json::{Value, json};

pub const SQLITE_0001: &str = include_str!("../../src/store/sql/migrations/sqlite/0001_accounts.sql");
pub const SQLITE_0002: &str = include_str!("../../src/store/sql/migrations/sqlite/0002_throttle_and_replay.sql");
pub const POSTGRES_0001: &str = include_str!("../../src/store/sql/migrations/postgres/0001_accounts.sql");
pub const POSTGRES_0002: &str = include_str!("../../src/store/sql/migrations/postgres/0002_throttle_and_replay.sql");

/// The version table, as the stores create it.
pub const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS twofactor_schema_version \
     (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Schema 1's account columns (0.1.0 without migration 2).
pub const INSERT_ACCOUNT_V1: &str = "INSERT INTO twofactor_accounts (id, username, email, role, password_hash, \
     security_stamp, version, created_at, tf_state, totp_secret, totp_algorithm, totp_digits, totp_period, \
     totp_last_used_step, tf_started_at, tf_enabled_at, throttle_failures, throttle_until, second_factor_locked, \
     reset_by, reset_by_username, reset_by_role, reset_identity_check, reset_at, pending_marks) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
     $23, $24, $25)";
/// Schema 2's account columns.
pub const INSERT_ACCOUNT_V2: &str = "INSERT INTO twofactor_accounts (id, username, email, role, password_hash, \
     security_stamp, version, created_at, tf_state, totp_secret, totp_algorithm, totp_digits, totp_period, \
     totp_last_used_step, tf_started_at, tf_enabled_at, throttle_failures, throttle_until, second_factor_locked, \
     reset_by, reset_by_username, reset_by_role, reset_identity_check, reset_at, pending_marks, \
     second_factor_failures, retired_totp_step) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
     $23, $24, $25, $26, $27)";
pub const INSERT_BACKUP_CODE: &str =
    "INSERT INTO twofactor_backup_codes (account_id, seq, phc, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_LOCATION: &str = "INSERT INTO twofactor_locations (account_id, seq, id, token_hash, label, \
     created_at, last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A pending mark as 0.1.0 packed it (29 bytes, see 0001's header comment).
#[derive(Debug, Clone)]
pub struct Mark {
    pub id: [u8; 16],
    pub expires_at: u64,
    pub failures: u32,
    pub consumed: bool,
}

pub fn pack(marks: &[Mark]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in marks {
        out.extend_from_slice(&m.id);
        out.extend_from_slice(&m.expires_at.to_be_bytes());
        out.extend_from_slice(&m.failures.to_be_bytes());
        out.push(u8::from(m.consumed));
    }
    out
}

#[derive(Debug, Clone)]
pub struct LegacyCode {
    pub phc: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LegacyLocation {
    pub id: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// One schema-2 account with its child rows. Integers are the stored `BIGINT`s (bit
/// casts of the record's `u64`s).
#[derive(Debug, Clone)]
pub struct LegacyAccount {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub security_stamp: i64,
    pub version: i64,
    pub created_at: i64,
    pub tf_state: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_algorithm: Option<String>,
    pub totp_digits: Option<i64>,
    pub totp_period: Option<i64>,
    pub totp_last_used_step: Option<i64>,
    pub tf_started_at: Option<i64>,
    pub tf_enabled_at: Option<i64>,
    pub throttle_failures: i64,
    pub throttle_until: Option<i64>,
    pub second_factor_locked: bool,
    pub reset_by: Option<i64>,
    pub reset_by_username: Option<String>,
    pub reset_by_role: Option<String>,
    pub reset_identity_check: Option<String>,
    pub reset_at: Option<i64>,
    pub pending_marks: Vec<u8>,
    pub second_factor_failures: i64,
    pub retired_totp_step: i64,
    pub backup_codes: Vec<LegacyCode>,
    pub locations: Vec<LegacyLocation>,
}

impl LegacyAccount {
    /// An account with 2FA off and nothing else.
    pub fn plain(id: i64, username: &str) -> LegacyAccount {
        LegacyAccount {
            id,
            username: username.to_owned(),
            email: format!("{username}@example.test"),
            role: "user".to_owned(),
            password_hash: format!("$argon2id${username}"),
            security_stamp: 0,
            version: 1,
            created_at: 1,
            tf_state: "disabled".to_owned(),
            totp_secret: None,
            totp_algorithm: None,
            totp_digits: None,
            totp_period: None,
            totp_last_used_step: None,
            tf_started_at: None,
            tf_enabled_at: None,
            throttle_failures: 0,
            throttle_until: None,
            second_factor_locked: false,
            reset_by: None,
            reset_by_username: None,
            reset_by_role: None,
            reset_identity_check: None,
            reset_at: None,
            pending_marks: Vec::new(),
            second_factor_failures: 0,
            retired_totp_step: 0,
            backup_codes: Vec::new(),
            locations: Vec::new(),
        }
    }

    /// Enabled 2FA with two backup codes, two remembered locations, two pending marks,
    /// a throttle, a reset record and bit-cast values above 2^63.
    pub fn full(id: i64, username: &str) -> LegacyAccount {
        LegacyAccount {
            role: "admin".to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            security_stamp: -2,
            version: 12,
            created_at: 1_700_000_000,
            tf_state: "enabled".to_owned(),
            totp_secret: Some((0..48).collect()),
            totp_algorithm: Some("SHA256".to_owned()),
            totp_digits: Some(8),
            totp_period: Some(60),
            totp_last_used_step: Some(28_333_350),
            tf_started_at: Some(1_700_000_050),
            tf_enabled_at: Some(1_700_000_100),
            throttle_failures: 3,
            throttle_until: Some(1_800_000_900),
            second_factor_locked: true,
            reset_by: Some(42),
            reset_by_username: Some("dave".to_owned()),
            reset_by_role: Some("support".to_owned()),
            reset_identity_check: Some("video call; photo ID 'x' \"y\"".to_owned()),
            reset_at: Some(1_750_000_000),
            pending_marks: pack(&[
                Mark { id: [0xa1; 16], expires_at: 1_800_000_600, failures: 2, consumed: false },
                Mark { id: [0xb2; 16], expires_at: u64::MAX - 1, failures: 0, consumed: true },
            ]),
            second_factor_failures: 2,
            retired_totp_step: 28_333_000,
            backup_codes: vec![
                LegacyCode { phc: "$argon2id$code-1".to_owned(), issued_at: 1_700_000_100, expires_at: None },
                LegacyCode {
                    phc: "$argon2id$code-2".to_owned(),
                    issued_at: 1_700_000_200,
                    expires_at: Some(4_000_000_000),
                },
            ],
            locations: vec![
                LegacyLocation {
                    id: vec![1; 16],
                    token_hash: vec![0xfe; 32],
                    label: "Firefox on Linux — ünïcödé".to_owned(),
                    created_at: 1_700_000_300,
                    last_used_at: 1_700_000_400,
                    expires_at: 4_000_000_000,
                },
                LegacyLocation {
                    id: vec![2; 16],
                    token_hash: vec![3; 32],
                    label: String::new(),
                    created_at: 0,
                    last_used_at: -1,
                    expires_at: -1,
                },
            ],
            ..LegacyAccount::plain(id, username)
        }
    }

    /// 2FA set up but not confirmed (algorithm written in lower case).
    pub fn enrolling(id: i64, username: &str) -> LegacyAccount {
        LegacyAccount {
            security_stamp: 5,
            version: 3,
            created_at: 1_700_000_400,
            tf_state: "enrolling".to_owned(),
            totp_secret: Some(vec![9; 20]),
            totp_algorithm: Some("sha1".to_owned()),
            totp_digits: Some(6),
            totp_period: Some(30),
            tf_started_at: Some(1_700_000_500),
            ..LegacyAccount::plain(id, username)
        }
    }

    /// The user id the account becomes: the decimal text of its `u64` id.
    pub fn user_id(&self) -> String {
        (self.id as u64).to_string()
    }
}

/// The credential document [`LegacyAccount::full`] must become, written out by hand.
pub fn full_document() -> Value {
    let hex = |byte: u8, n: usize| HEXLOWER.encode(&vec![byte; n]);
    json!({
        "format": 1,
        "password": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "stamp": u64::MAX - 1,
        "created_at": 1_700_000_000,
        "second_factor": {
            "state": "enabled",
            // 0.1.0's one authenticator: id 0, the default name.
            "authenticators": [{
                "kind": "totp",
                "id": "0000000000000000",
                "name": "Authenticator app",
                "secret": BASE64.encode(&(0..48).collect::<Vec<u8>>()),
                "algorithm": "SHA256",
                "digits": 8,
                "period": 60,
                "last_used_step": 28_333_350,
                "added_at": 1_700_000_100
            }],
            "backup_codes": [
                {"hash": "$argon2id$code-1", "issued_at": 1_700_000_100},
                {"hash": "$argon2id$code-2", "issued_at": 1_700_000_200, "expires_at": 4_000_000_000_u64}
            ],
            "enabled_at": 1_700_000_100
        },
        "throttle": {"failures": 3, "until": 1_800_000_900, "second_factor_failures": 2, "locked": true},
        "locations": [
            {
                "id": hex(1, 16),
                "token_hash": hex(0xfe, 32),
                "label": "Firefox on Linux — ünïcödé",
                "created_at": 1_700_000_300,
                "last_used_at": 1_700_000_400,
                "expires_at": 4_000_000_000_u64
            },
            {
                "id": hex(2, 16),
                "token_hash": hex(3, 32),
                "label": "",
                "created_at": 0,
                "last_used_at": u64::MAX,
                "expires_at": u64::MAX
            }
        ],
        "pending": [
            {"id": hex(0xa1, 16), "expires_at": 1_800_000_600, "failures": 2},
            {"id": hex(0xb2, 16), "expires_at": u64::MAX - 1, "consumed": true}
        ],
        "last_reset": {
            "by": "42",
            "by_login": "dave",
            "by_role": "support",
            "identity_check": "video call; photo ID 'x' \"y\"",
            "at": 1_750_000_000
        },
        "retired_totp_step": 28_333_000
    })
}

/// The document [`LegacyAccount::enrolling`] must become.
pub fn enrolling_document(username: &str) -> Value {
    json!({
        "format": 1,
        "password": format!("$argon2id${username}"),
        "stamp": 5,
        "created_at": 1_700_000_400,
        "second_factor": {
            "state": "enrolling",
            "authenticator": {
                "kind": "totp",
                "id": "0000000000000000",
                "name": "Authenticator app",
                "secret": BASE64.encode(&[9; 20]),
                "algorithm": "SHA1",
                "digits": 6,
                "period": 30,
                "added_at": 1_700_000_500
            },
            "started_at": 1_700_000_500
        }
    })
}

/// The document [`LegacyAccount::plain`] must become.
pub fn plain_document(username: &str) -> Value {
    json!({
        "format": 1,
        "password": format!("$argon2id${username}"),
        "stamp": 0,
        "created_at": 1,
        "second_factor": {"state": "disabled"}
    })
}

/// Writes `$accounts` (an iterator of `&LegacyAccount`) with their child rows into the
/// schema-2 tables over `$conn` (a `&mut` connection of either driver).
#[macro_export]
macro_rules! write_accounts {
    ($conn:expr, $accounts:expr) => {{
        for a in $accounts {
            sqlx::query($crate::sql_support::INSERT_ACCOUNT_V2)
                .bind(a.id)
                .bind(&a.username)
                .bind(&a.email)
                .bind(&a.role)
                .bind(&a.password_hash)
                .bind(a.security_stamp)
                .bind(a.version)
                .bind(a.created_at)
                .bind(&a.tf_state)
                .bind(&a.totp_secret)
                .bind(&a.totp_algorithm)
                .bind(a.totp_digits)
                .bind(a.totp_period)
                .bind(a.totp_last_used_step)
                .bind(a.tf_started_at)
                .bind(a.tf_enabled_at)
                .bind(a.throttle_failures)
                .bind(a.throttle_until)
                .bind(a.second_factor_locked)
                .bind(a.reset_by)
                .bind(&a.reset_by_username)
                .bind(&a.reset_by_role)
                .bind(&a.reset_identity_check)
                .bind(a.reset_at)
                .bind(&a.pending_marks)
                .bind(a.second_factor_failures)
                .bind(a.retired_totp_step)
                .execute(&mut *$conn)
                .await
                .expect("insert a schema-2 account");
            for (seq, c) in a.backup_codes.iter().enumerate() {
                sqlx::query($crate::sql_support::INSERT_BACKUP_CODE)
                    .bind(a.id)
                    .bind(seq as i64)
                    .bind(&c.phc)
                    .bind(c.issued_at)
                    .bind(c.expires_at)
                    .execute(&mut *$conn)
                    .await
                    .expect("insert a schema-2 backup code");
            }
            for (seq, l) in a.locations.iter().enumerate() {
                sqlx::query($crate::sql_support::INSERT_LOCATION)
                    .bind(a.id)
                    .bind(seq as i64)
                    .bind(&l.id)
                    .bind(&l.token_hash)
                    .bind(&l.label)
                    .bind(l.created_at)
                    .bind(l.last_used_at)
                    .bind(l.expires_at)
                    .execute(&mut *$conn)
                    .await
                    .expect("insert a schema-2 location");
            }
        }
    }};
}

/// Builds a schema-2 database over `$pool` (either driver): migrations 1 and 2 as
/// 0.1.0 and this crate's schema 2 applied them, recorded in
/// `twofactor_schema_version`, and `$accounts` written into them, in one transaction.
#[macro_export]
macro_rules! schema_2_database {
    ($pool:expr, [$m1:expr, $m2:expr], $accounts:expr) => {{
        let mut tx = $pool.begin().await.expect("begin");
        sqlx::raw_sql($m1).execute(&mut *tx).await.expect("migration 1");
        sqlx::raw_sql($m2).execute(&mut *tx).await.expect("migration 2");
        sqlx::query($crate::sql_support::CREATE_SCHEMA_VERSION).execute(&mut *tx).await.expect("version table");
        for version in [1_i64, 2] {
            sqlx::query("INSERT INTO twofactor_schema_version (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(1_700_000_000_i64 + version)
                .execute(&mut *tx)
                .await
                .expect("record the version");
        }
        $crate::write_accounts!(tx, $accounts);
        tx.commit().await.expect("commit");
    }};
}
