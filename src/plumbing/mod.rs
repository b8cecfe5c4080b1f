//! The machinery under the engine: time, where Argon2 runs, and the semaphore that
//! bounds how many hashes run at once.

pub(crate) mod clock;
pub mod offload;
pub(crate) mod semaphore;
