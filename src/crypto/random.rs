//! The operating system's CSPRNG, the only source of randomness in the crate.

use crate::error::Error;

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// A random `u64`.
pub(crate) fn u64() -> Result<u64, Error> {
    Ok(u64::from_le_bytes(bytes::<8>()?))
}
