//! Argon2id hashing for passwords and backup codes, verifying stored hashes (the
//! crate's own and those imported from other systems, see [`imported`]), and the
//! password rules.

mod imported;

use std::sync::{Mutex, MutexGuard, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use subtle::ConstantTimeEq;

pub(crate) use self::imported::{HashFormat, ImportProblem, check_imported};
use self::imported::{MAX_ARGON2_M_COST_KIB, MAX_ARGON2_T_COST, MAX_HASH_BYTES, MIN_HASH_BYTES};
use crate::crypto::random;
use crate::error::{Error, InputError, InternalError};
use crate::policy::{HashParams, PasswordPolicy};

/// The longest password input the engine reads, in bytes, whatever the policy says:
/// larger inputs are refused before any hashing.
pub(crate) const MAX_PASSWORD_BYTES: usize = 4096;

/// The Argon2id hasher for new hashes. Parameters above the bounds that [`verify`]
/// applies to stored hashes are refused here, so the crate never writes a hash it
/// would not verify.
fn argon2(params: &HashParams) -> Result<Argon2<'static>, Error> {
    if params.m_cost > MAX_ARGON2_M_COST_KIB || params.t_cost > MAX_ARGON2_T_COST {
        return Err(InputError::malformed(
            "password_hash",
            "Argon2 parameters above the bounds stored hashes are verified within",
        )
        .into());
    }
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|_| InputError::malformed("password_hash", "invalid Argon2 parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `secret` with a fresh 16-byte salt into a PHC string
/// (`$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`), in working memory from the pool.
pub(crate) fn hash(secret: &[u8], params: &HashParams) -> Result<String, Error> {
    let salt = random::bytes::<16>()?;
    hash_with_salt(&MEMORY, secret, &salt, params)
}

/// [`hash`] with a given salt and pool: what argon2's `hash_password_with_salt` makes,
/// without letting Argon2 allocate its memory.
fn hash_with_salt(pool: &Pool, secret: &[u8], salt: &[u8], params: &HashParams) -> Result<String, Error> {
    let hasher = argon2(params)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    pool.with_memory(hasher.params().block_count(), |memory| {
        hasher.hash_password_into_with_memory(secret, salt, &mut out, memory)
    })
    .map_err(|_| InternalError::Hashing)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(hasher.params()).map_err(|_| InternalError::Hashing)?,
        salt: Some(Salt::new(salt).map_err(|_| InternalError::Hashing)?),
        hash: Some(Output::new(&out).map_err(|_| InternalError::Hashing)?),
    };
    Ok(phc.to_string())
}

/// The process's Argon2 working memory, for every hash and verify.
static MEMORY: Pool = Pool::new();

/// Argon2 working memory kept for reuse: every hash and verify in the crate computes
/// in a buffer taken from here. Hashing runs under the engine's concurrent-hash bound,
/// so this holds at most as many buffers as hashes ever ran at once (the sum of the
/// bounds of the engines in the process, plus an engine being built), each as large
/// as the largest `m_cost` it served.
///
/// Why not let Argon2 allocate: each call then allocates and frees m_cost KiB, and the
/// allocator keeps freed blocks (glibc: per-thread arenas, and a dynamic mmap
/// threshold that rises after the first large free, so later 19 MiB blocks come from
/// arenas that are never trimmed): 300 account creations drove the resident set to
/// 5.9 GiB. Reused buffers make the resident hashing memory bound × m_cost. (argon2's
/// own allocation is not wiped when freed, either.)
///
/// # Wiping: a finished hash's blocks are overwritten by the next hash or wiped
///
/// Argon2 version 0x13 writes every block of the region it uses before it reads it, in
/// its first pass (argon2 0.6.0, `src/lib.rs`, `fill_blocks`: it takes exactly
/// `memory_blocks.get_mut(..block_count)` (l. 361); sets the first two blocks of each
/// lane from H0 (`block.load(&hash)`, l. 385); then in pass 0 assigns each further block
/// (`*memory_view.get_block_mut(cur_index) = result`, l. 511–512, where later passes
/// XOR, l. 514) from the previous block and a reference block that `reference_area_size`
/// (l. 467–478) confines, in pass 0, to blocks this pass has already computed). So the
/// old contents of the region never reach the result (the unit test
/// `argon2_overwrites_the_memory_it_is_given` checks it), and a buffer can go from one
/// hash straight to the next with no wipe in between: the next hash overwrites the
/// blocks the last one left, within the region it uses.
///
/// The rule: the number of idle buffers holding a finished hash's blocks ("parked")
/// never exceeds the number of hashes running. A finishing hash parks its buffer
/// unwiped only if that keeps the rule (another hash is running, so more are likely
/// to follow, and a starting hash first takes the oldest parked buffer whose blocks
/// its region covers);
/// otherwise it wipes its own buffer, and if hashes ended while buffers were parked,
/// the oldest parked ones too, before it returns. So once no hash runs, no idle buffer
/// holds password-derived blocks, and under load buffers pass from hash to hash with
/// no 19 MiB memset between them (the wipe cost ~5 % of a login; see BENCHMARKS.md
/// §7). A lone hash, with none running beside it, still wipes before it returns.
///
/// The region a hash does not overwrite is wiped when it takes the buffer: a buffer
/// parked by a larger hash has its blocks beyond the new hash's region zeroed first,
/// and a buffer too small for the new hash is wiped before it grows (growing may move
/// it and free the old allocation). The pool keeps, per buffer, how many leading
/// blocks may hold data, so no stale block is missed.
struct Pool {
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Idle buffers, in the order they were put back (a parked buffer is taken oldest
    /// first).
    idle: Vec<Idle>,
    /// Hashes holding a buffer.
    running: usize,
}

/// An idle buffer and how many of its leading blocks may hold a finished hash's data
/// (0: wiped).
struct Idle {
    blocks: Vec<Block>,
    dirty: usize,
}

impl PoolState {
    fn parked(&self) -> usize {
        self.idle.iter().filter(|b| b.dirty > 0).count()
    }

    /// The buffer for a hash of `blocks` blocks: a parked one it will overwrite
    /// entirely, else a wiped one large enough, else the largest.
    fn pick(&self, blocks: usize) -> Option<usize> {
        let idle = &self.idle;
        idle.iter()
            .position(|b| b.dirty > 0 && b.dirty <= blocks && b.blocks.len() >= blocks)
            .or_else(|| idle.iter().position(|b| b.dirty == 0 && b.blocks.len() >= blocks))
            .or_else(|| idle.iter().enumerate().max_by_key(|(_, b)| b.blocks.len()).map(|(i, _)| i))
    }
}

impl Pool {
    const fn new() -> Self {
        Pool { state: Mutex::new(PoolState { idle: Vec::new(), running: 0 }) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on exactly `blocks` Argon2 blocks from the pool (see [`Pool`] for what
    /// is wiped when).
    fn with_memory<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut lease = self.take(blocks);
        f(lease.buffer.get_mut(..blocks).unwrap_or_default())
    }

    fn take(&self, blocks: usize) -> Lease<'_> {
        let (mut buffer, dirty) = {
            let mut state = self.lock();
            state.running += 1;
            match state.pick(blocks) {
                Some(i) => {
                    let idle = state.idle.remove(i);
                    (idle.blocks, idle.dirty)
                }
                None => (Vec::new(), 0),
            }
        };
        if buffer.len() < blocks {
            wipe(buffer.get_mut(..dirty));
            buffer.reserve_exact(blocks - buffer.len());
            buffer.resize(blocks, Block::default());
        } else {
            // Blocks beyond this hash's region would otherwise keep the last one's data.
            wipe(buffer.get_mut(blocks..dirty));
        }
        Lease { pool: self, buffer, used: blocks }
    }
}

/// A buffer taken from a [`Pool`]; it goes back (parked or wiped) when dropped, also
/// when the hash panics.
struct Lease<'a> {
    pool: &'a Pool,
    buffer: Vec<Block>,
    /// The leading blocks the hash writes.
    used: usize,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut dirty = self.used.min(buffer.len());
        let mut state = self.pool.lock();
        state.running = state.running.saturating_sub(1);
        loop {
            if dirty > 0 && state.parked() >= state.running {
                // Parking it would break the rule: wipe it (outside the lock; the
                // buffer stays counted against this hash's permit meanwhile).
                drop(state);
                wipe(buffer.get_mut(..dirty));
                dirty = 0;
                state = self.pool.lock();
            }
            state.idle.push(Idle { blocks: buffer, dirty });
            // Hashes that ended while buffers were parked leave too many parked: wipe
            // the oldest until the rule holds again.
            if state.parked() <= state.running {
                return;
            }
            let Some(i) = state.idle.iter().position(|b| b.dirty > 0) else {
                return;
            };
            let idle = state.idle.remove(i);
            (buffer, dirty) = (idle.blocks, idle.dirty);
        }
    }
}

fn wipe(blocks: Option<&mut [Block]>) {
    blocks.into_iter().flatten().for_each(zeroize::Zeroize::zeroize);
}

/// Whether `secret` matches the stored hash, compared in constant time: an Argon2 PHC
/// string, or a hash imported from another system (see [`imported`] for the formats). A
/// corrupt hash, or one whose costs are above the import bounds, is a fault, not a
/// mismatch, and is never computed.
pub(crate) fn verify(secret: &[u8], stored: &str) -> Result<bool, Error> {
    imported::verify(secret, stored)
}

/// An Argon2 PHC string, parsed and checked against the import bounds.
struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Salt,
    expected: Output,
}

impl Argon2Hash {
    /// The format its algorithm names.
    fn format(&self) -> HashFormat {
        match self.algorithm {
            Algorithm::Argon2d => HashFormat::Argon2d,
            Algorithm::Argon2i => HashFormat::Argon2i,
            Algorithm::Argon2id => HashFormat::Argon2id,
        }
    }

    /// Its cost parameters.
    fn cost(&self) -> HashParams {
        let p = &self.params;
        HashParams { m_cost: p.m_cost(), t_cost: p.t_cost(), p_cost: p.p_cost() }
    }
}

/// Parses an Argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`; `v=`
/// optional, meaning 0x13) and checks its costs against [`MAX_ARGON2_M_COST_KIB`] and
/// [`MAX_ARGON2_T_COST`] and its hash length.
fn parse_argon2(phc: &str) -> Result<Argon2Hash, ImportProblem> {
    let malformed = ImportProblem::Malformed;
    let parsed = PasswordHash::new(phc).map_err(|_| malformed("Argon2 PHC string"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| malformed("Argon2 algorithm"))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|_| malformed("Argon2 version"))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&parsed).map_err(|_| malformed("Argon2 parameters"))?;
    if params.m_cost() > MAX_ARGON2_M_COST_KIB {
        return Err(ImportProblem::CostTooHigh("Argon2 memory"));
    }
    if params.t_cost() > MAX_ARGON2_T_COST {
        return Err(ImportProblem::CostTooHigh("Argon2 passes"));
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(malformed("Argon2 PHC string without salt or hash"));
    };
    if !(MIN_HASH_BYTES..=MAX_HASH_BYTES).contains(&expected.len()) {
        return Err(malformed("password hash length out of range"));
    }
    Ok(Argon2Hash { algorithm, version, params, salt, expected })
}

/// Verifies an Argon2 hash in working memory from the pool. It is computed with what
/// the stored hash names (an imported argon2i or v=16 hash is not a wrong password); new
/// hashes are always Argon2id v0x13.
fn verify_argon2(secret: &[u8], hash: &Argon2Hash) -> Result<bool, Error> {
    let expected = hash.expected.as_bytes();
    let mut buffer = [0u8; 64];
    let out = buffer.get_mut(..expected.len()).ok_or(Error::Corrupt("password hash length"))?;
    let hasher = Argon2::new(hash.algorithm, hash.version, hash.params.clone());
    MEMORY
        .with_memory(hash.params.block_count(), |memory| {
            hasher.hash_password_into_with_memory(secret, &hash.salt, out, memory)
        })
        .map_err(|_| Error::Corrupt("password hash parameters"))?;
    let matched = bool::from(out.ct_eq(expected));
    zeroize::Zeroize::zeroize(&mut buffer);
    Ok(matched)
}

/// Whether a stored hash should be replaced at the next successful login: every hash
/// but an Argon2id v0x13 PHC string at least as strong as `policy` (an imported hash of
/// any other format, including Django's wrapped Argon2, argon2i/argon2d and v=16).
pub(crate) fn needs_rehash(stored: &str, policy: &HashParams) -> bool {
    match parse_argon2(stored) {
        Ok(hash) if hash.algorithm == Algorithm::Argon2id && hash.version == Version::V0x13 => {
            hash.cost().weaker_than(policy)
        }
        _ => true,
    }
}

/// Checks a new password against NIST SP 800-63B length rules (characters, not bytes;
/// no composition rules; never truncated).
pub(crate) fn check_new(password: &str, policy: &PasswordPolicy) -> Result<(), InputError> {
    check_input(password, policy)?;
    let chars = password.chars().count();
    if chars < policy.min_chars {
        return Err(InputError::TooShort { field: "password", min: policy.min_chars });
    }
    Ok(())
}

/// Bounds a password input before hashing (a login attempt with an oversized password
/// is refused rather than hashed).
pub(crate) fn check_input(password: &str, policy: &PasswordPolicy) -> Result<(), InputError> {
    let max = policy.max_chars.max(64);
    if password.len() > MAX_PASSWORD_BYTES || password.chars().count() > max {
        return Err(InputError::TooLong { field: "password", max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify_round_trip() -> Result<(), Error> {
        let phc = hash(b"correct horse", &HashParams::MINIMAL)?;
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(verify(b"correct horse", &phc)?);
        assert!(!verify(b"correct horsf", &phc)?);
        assert!(needs_rehash(&phc, &HashParams::OWASP));
        assert!(!needs_rehash(&phc, &HashParams::MINIMAL));
        Ok(())
    }

    #[test]
    fn verify_agrees_with_the_argon2_crate() -> Result<(), Error> {
        use argon2::PasswordVerifier;
        for params in [HashParams::MINIMAL, HashParams::BACKUP_CODE] {
            let phc = hash(b"backup", &params)?;
            let parsed = PasswordHash::new(&phc).map_err(|_| Error::Corrupt("test"))?;
            let reference = argon2(&params)?;
            assert!(reference.verify_password(b"backup", &parsed).is_ok());
            assert!(verify(b"backup", &phc)?);
            assert!(!verify(b"backuq", &phc)?);
        }
        Ok(())
    }

    #[test]
    fn hashes_made_with_other_argon2_variants_verify() -> Result<(), Error> {
        use argon2::PasswordHasher as _;
        let params = Params::new(8, 1, 1, None).map_err(|_| Error::Corrupt("params"))?;
        for (algorithm, version) in [(Algorithm::Argon2i, Version::V0x13), (Algorithm::Argon2id, Version::V0x10)] {
            let phc = Argon2::new(algorithm, version, params.clone())
                .hash_password_with_salt(b"imported", b"saltsaltsaltsalt")
                .map_err(|_| Error::Corrupt("hash"))?
                .to_string();
            assert!(verify(b"imported", &phc)?, "{phc}");
            assert!(!verify(b"imported!", &phc)?, "{phc}");
        }
        Ok(())
    }

    #[test]
    fn hash_makes_what_the_argon2_crate_makes() -> Result<(), Error> {
        use argon2::PasswordHasher as _;
        let salt = b"0123456789abcdef";
        for params in [HashParams::MINIMAL, HashParams::BACKUP_CODE, HashParams::OWASP] {
            let ours = hash_with_salt(&Pool::new(), b"secret", salt, &params)?;
            let theirs = argon2(&params)?
                .hash_password_with_salt(b"secret", salt)
                .map_err(|_| Error::Corrupt("hash"))?
                .to_string();
            assert_eq!(ours, theirs);
        }
        let phc = hash(b"correct horse", &HashParams::OWASP)?;
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).map_err(|_| Error::Corrupt("test"))?;
        assert_eq!(parsed.salt.map(|s| s.as_ref().len()), Some(16));
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
        Ok(())
    }

    /// Fills every word of `blocks` with `word`.
    fn fill(blocks: &mut [Block], word: u64) {
        blocks.iter_mut().for_each(|b| b.as_mut().fill(word));
    }

    fn all(blocks: &[Block], word: u64) -> bool {
        blocks.iter().all(|b| b.as_ref().iter().all(|&w| w == word))
    }

    /// The property the pool relies on to hand a buffer from hash to hash unwiped:
    /// Argon2 v0x13 writes every block of its region before reading it.
    #[test]
    fn argon2_overwrites_the_memory_it_is_given() -> Result<(), argon2::Error> {
        for (m, t, p) in [(64, 1, 1), (64, 2, 1), (64, 3, 2), (256, 1, 4)] {
            let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, p, None)?);
            let mut fresh = [0u8; 32];
            hasher.hash_password_into(b"secret", b"saltsaltsaltsalt", &mut fresh)?;
            for stale in [0, u64::MAX, 0x5a5a_5a5a_5a5a_5a5a] {
                let mut memory = vec![Block::default(); hasher.params().block_count()];
                fill(&mut memory, stale);
                let mut out = [0u8; 32];
                hasher.hash_password_into_with_memory(b"secret", b"saltsaltsaltsalt", &mut out, &mut memory)?;
                assert_eq!(out, fresh, "m={m} t={t} p={p}: the old contents reached the result");
                assert!(memory.iter().all(|b| b.as_ref().iter().any(|&w| w != stale)), "a block was never written");
            }
        }
        Ok(())
    }

    #[test]
    fn hash_takes_its_memory_from_the_pool() -> Result<(), Error> {
        let pool = Pool::new();
        let blocks = argon2(&HashParams::MINIMAL)?.params().block_count();
        let mut first = None;
        for _ in 0..5 {
            let phc = hash_with_salt(&pool, b"pooled", b"0123456789abcdef", &HashParams::MINIMAL)?;
            assert!(verify(b"pooled", &phc)?);
            let state = pool.lock();
            assert_eq!(state.running, 0);
            assert_eq!(state.idle.len(), 1, "sequential hashes share one buffer");
            let buffer = &state.idle[0];
            assert_eq!(buffer.blocks.len(), blocks);
            assert_eq!(*first.get_or_insert(buffer.blocks.as_ptr()), buffer.blocks.as_ptr(), "the same allocation");
            assert_eq!(buffer.dirty, 0);
            assert!(all(&buffer.blocks, 0), "a lone hash wipes its buffer before it idles");
        }
        Ok(())
    }

    #[test]
    fn a_buffer_is_wiped_before_it_idles() {
        let pool = Pool::new();
        pool.with_memory(16, |m| fill(m, u64::MAX));
        let state = pool.lock();
        assert_eq!((state.idle.len(), state.idle[0].dirty), (1, 0));
        assert!(all(&state.idle[0].blocks, 0));
    }

    /// Runs `f` while another hash holds a buffer of `pool`; that hash ends after `f`.
    fn beside_a_running_hash(pool: &Pool, f: impl FnOnce()) {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                pool.with_memory(16, |m| {
                    fill(m, 7);
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                })
            });
            assert!(started_rx.recv().is_ok());
            f();
            let _ = release_tx.send(());
        });
    }

    #[test]
    fn under_load_a_buffer_passes_to_the_next_hash_then_is_wiped_when_hashing_stops() {
        let pool = Pool::new();
        beside_a_running_hash(&pool, || {
            pool.with_memory(16, |m| fill(m, 0xab));
            {
                let state = pool.lock();
                assert_eq!((state.running, state.idle.len(), state.idle[0].dirty), (1, 1, 16), "parked unwiped");
                assert!(all(&state.idle[0].blocks, 0xab));
            }
            pool.with_memory(16, |m| {
                assert!(all(m, 0xab), "the next hash takes the parked buffer");
                fill(m, 0xcd);
            });
            let state = pool.lock();
            assert_eq!((state.idle.len(), state.idle[0].dirty), (1, 16));
        });
        // The last hash to end wiped its own buffer and the parked one.
        let state = pool.lock();
        assert_eq!(state.running, 0);
        assert_eq!(state.idle.len(), 2);
        for buffer in &state.idle {
            assert_eq!(buffer.dirty, 0);
            assert!(all(&buffer.blocks, 0));
        }
    }

    #[test]
    fn parked_buffers_never_outnumber_running_hashes() {
        let pool = Pool::new();
        beside_a_running_hash(&pool, || {
            beside_a_running_hash(&pool, || {
                // Two hashes run: two buffers may park.
                pool.with_memory(16, |m| fill(m, 1));
                assert_eq!(pool.lock().parked(), 1);
                // Three run while this one is taken, two once it ends.
                let _second = pool.take(16);
                pool.with_memory(16, |m| fill(m, 2));
                assert_eq!(pool.lock().parked(), 1);
            });
            let state = pool.lock();
            assert!(state.parked() <= state.running, "{} parked, {} running", state.parked(), state.running);
        });
        let state = pool.lock();
        assert_eq!((state.parked(), state.running), (0, 0));
        assert!(state.idle.iter().all(|b| all(&b.blocks, 0)));
    }

    #[test]
    fn stale_blocks_beyond_a_smaller_hash_are_wiped() {
        let pool = Pool::new();
        beside_a_running_hash(&pool, || {
            pool.with_memory(64, |m| fill(m, u64::MAX));
            pool.with_memory(8, |m| fill(m, 0xee));
            let state = pool.lock();
            let buffer = &state.idle[0];
            assert_eq!((state.idle.len(), buffer.blocks.len(), buffer.dirty), (1, 64, 8));
            assert!(all(&buffer.blocks[..8], 0xee), "parked for the next hash");
            assert!(all(&buffer.blocks[8..], 0), "the larger hash's blocks beyond the smaller region are gone");
        });
        assert!(pool.lock().idle.iter().all(|b| b.dirty == 0 && all(&b.blocks, 0)));
    }

    #[test]
    fn a_buffer_that_grows_is_wiped_first() {
        let pool = Pool::new();
        beside_a_running_hash(&pool, || {
            pool.with_memory(8, |m| fill(m, u64::MAX));
            pool.with_memory(64, |m| assert!(all(&m[..8], 0) && all(&m[8..], 0), "grown from a wiped buffer"));
        });
    }

    #[test]
    fn a_panicking_hash_gives_its_buffer_back_wiped() {
        let pool = Pool::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.with_memory(16, |m| {
                fill(m, 3);
                panic!("hash failed");
            })
        }));
        assert!(result.is_err());
        let state = pool.lock();
        assert_eq!((state.running, state.idle.len(), state.idle[0].dirty), (0, 1, 0));
        assert!(all(&state.idle[0].blocks, 0));
    }

    #[test]
    fn corrupt_hash_is_a_fault() {
        assert!(matches!(verify(b"x", "$argon2id$nonsense"), Err(Error::Corrupt(_))));
    }

    #[test]
    fn length_rules_count_characters() {
        let p = PasswordPolicy::default();
        assert!(check_new("ääääääää", &p).is_ok()); // 8 chars, 16 bytes
        assert!(matches!(check_new("äääääää", &p), Err(InputError::TooShort { .. })));
        assert!(check_new(&"x".repeat(64), &p).is_ok());
        assert!(check_new(&"x".repeat(256), &p).is_ok());
        assert!(matches!(check_new(&"x".repeat(257), &p), Err(InputError::TooLong { .. })));
        assert!(check_new("password", &p).is_ok(), "no composition rules");
    }
}
