//! What seals and signs: the application's key ring, the tokens a client holds
//! (pending logins, remembered locations), secrets that wipe themselves, and the
//! operating system's randomness.

pub(crate) mod keys;
pub(crate) mod random;
pub(crate) mod secret;
pub(crate) mod token;
