//! What a user proves: a password (Argon2id, and the formats an import accepts), a
//! TOTP code (RFC 6238, and the otpauth URI that carries its key), a backup code.

pub(crate) mod backup_code;
pub mod otpauth;
pub(crate) mod password;
pub mod totp;
