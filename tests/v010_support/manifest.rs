//! `tests/fixtures/v0_1_0/manifest.json`, read into types: what 0.1.0 stored for every
//! account and what a person knows about it (password, TOTP secret, backup codes,
//! remembered-location tokens). See the fixtures' README for the fields.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join("v0_1_0")
}

/// A fixture file (never to be opened in place: copy it first).
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// The parsed manifest.
pub fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixture("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub accounts: Vec<Account>,
    pub app_key: AppKeyInfo,
    pub times: Times,
    pub databases: Databases,
    pub cli: Cli,
}

impl Manifest {
    /// The library account with this `key` (alice, bob, …, zoe_nfc, zoe_nfd, zoe_acute_nfd).
    pub fn account(&self, key: &str) -> &Account {
        self.accounts.iter().find(|a| a.key == key).unwrap_or_else(|| panic!("no account {key} in the manifest"))
    }
}

#[derive(Debug, Deserialize)]
pub struct AppKeyInfo {
    pub id: u32,
    pub hex: String,
}

#[derive(Debug, Deserialize)]
pub struct Times {
    pub t0: u64,
    pub fixture_now: u64,
    pub erin_locked_at: u64,
}

#[derive(Debug, Deserialize)]
pub struct Databases {
    pub identical_records: bool,
    pub schema_version_rows_sqlite: Vec<SchemaRow>,
    pub schema_version_rows_postgres: Vec<SchemaRow>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub struct SchemaRow {
    pub version: i64,
    pub applied_at: i64,
}

#[derive(Debug, Deserialize)]
pub struct Cli {
    pub database: String,
    pub key_file: String,
    pub app_key: AppKeyInfo,
    pub times: CliTimes,
    pub schema_version_rows: Vec<SchemaRow>,
    pub accounts: Vec<Account>,
}

impl Cli {
    pub fn account(&self, key: &str) -> &Account {
        self.accounts.iter().find(|a| a.key == key).unwrap_or_else(|| panic!("no CLI account {key} in the manifest"))
    }
}

#[derive(Debug, Deserialize)]
pub struct CliTimes {
    pub created_at: u64,
    pub enrolled_at: u64,
    pub confirmed_at: u64,
    pub login_at: u64,
    pub fixture_now: u64,
}

#[derive(Debug, Deserialize)]
pub struct Account {
    pub key: String,
    pub id: u64,
    pub id_text: String,
    pub username: String,
    /// Absent for the CLI accounts.
    #[serde(default)]
    pub username_utf8_hex: Option<String>,
    pub email: String,
    pub role: String,
    pub password: String,
    pub policy: String,
    pub two_factor: TwoFactorInfo,
    pub backup_codes: Vec<ValidCode>,
    pub void_backup_codes: Vec<VoidCode>,
    pub locations: Vec<LocationInfo>,
    pub throttle: Throttle,
    pub last_reset: Option<Reset>,
    pub stored: Stored,
}

#[derive(Debug, Deserialize)]
pub struct TwoFactorInfo {
    pub state: String,
    pub secret_base32: Option<String>,
    pub params: Option<StoredParams>,
    pub void_secrets: Vec<VoidSecret>,
}

#[derive(Debug, Deserialize)]
pub struct VoidSecret {
    pub secret_base32: String,
}

#[derive(Debug, Deserialize)]
pub struct ValidCode {
    pub code: String,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub valid_at_fixture_now: bool,
}

#[derive(Debug, Deserialize)]
pub struct VoidCode {
    pub code: String,
    #[serde(default)]
    pub expires_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct LocationInfo {
    pub token: String,
    pub id: String,
    pub label: String,
    pub expires_at: u64,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Throttle {
    pub failures: u64,
    pub until: Option<u64>,
    pub second_factor_locked: bool,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Reset {
    pub at: u64,
    pub by: u64,
    pub by_role: String,
    pub by_username: String,
    pub identity_check: String,
}

/// The record as 0.1.0 read it back.
#[derive(Debug, Deserialize)]
pub struct Stored {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: String,
    pub version: u64,
    pub created_at: u64,
    pub password_hash: String,
    pub security_stamp: u64,
    pub security_stamp_text: String,
    pub security_stamp_sql: i64,
    pub two_factor: StoredTwoFactor,
    pub backup_code_hashes: Vec<StoredCode>,
    pub locations: Vec<StoredLocation>,
    pub pending_marks: Vec<StoredPending>,
    pub throttle: Throttle,
    pub last_reset: Option<Reset>,
}

#[derive(Debug, Deserialize)]
pub struct StoredTwoFactor {
    pub state: String,
    pub params: Option<StoredParams>,
    pub sealed_secret_hex: Option<String>,
    pub last_used_step: Option<u64>,
    pub enabled_at: Option<u64>,
    pub started_at: Option<u64>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct StoredParams {
    pub algorithm: String,
    pub digits: u8,
    pub period: u32,
}

#[derive(Debug, Deserialize)]
pub struct StoredCode {
    pub phc: String,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct StoredLocation {
    pub id: String,
    pub token_hash_hex: String,
    pub label: String,
    pub created_at: u64,
    pub last_used_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Deserialize)]
pub struct StoredPending {
    pub id: String,
    pub expires_at: u64,
    pub failures: u64,
    pub consumed: bool,
}
