//! HMAC-SHA-1 (RFC 2104) of 8-byte counters, straight on SHA-1 compression states: the
//! fast path of [`super::TotpKey`] for [`super::Algorithm::Sha1`] only (SHA-256 and
//! SHA-512 keys use the `hmac` crate).
//!
//! The key schedule is two compressions (the ipad and the opad block), done once per
//! key; each HMAC is then exactly two more (the padded counter, then the padded inner
//! digest), so a ±1 window costs 2 + 3 × 2 = 8 compressions.
//!
//! What makes it faster than the `hmac` crate, which does the same compressions: the
//! HMACs of a window are computed side by side, up to [`LANES`] at a time, in four
//! passes: write every inner block, run every inner compression, write every outer
//! block, run every outer compression. The lanes do not depend on each other, so the
//! CPU overlaps their compressions. Hashing each block right after writing it, one HMAC
//! after another (as the `hmac` crate does, and this module did before), defeats that:
//! on x86 with the SHA extensions `sha1::compress` loads a block 16 bytes at a time, a
//! load the CPU cannot forward from the narrower stores that just wrote the block, so it
//! waits for those stores to retire, and with them every older instruction, the
//! previous compressions included; the compressions then run one after another.
//!
//! Hand-written rather than the maintained `hmac` crate because the benchmark says so
//! (the rule: it stays only while at least 10 % faster than the `hmac` crate path).
//! `cargo bench --bench totp -- --measurement-time 3 --warm-up-time 1`, 2026-11-30, 2
//! cores, interleaved medians for a wrong code in a ±1 window (key schedule, code
//! parse, 3 steps, compare): **252.3 ns** here against **345.1 ns** on the `hmac`
//! crate path (load average 6.0 → 8.4), and 261.6 ns against 352.5 ns in a run at load
//! 4.0 → 4.5; this path takes 0.73–0.74 × the `hmac` crate's time (the `hmac` crate
//! is 1.35–1.37 × slower). Criterion, one contender after the other, gave 334.7
//! against 409.8 ns and 423.0 against 551.7 ns. Rerun the bench when `sha1`, `hmac` or
//! the CPU changes; below a 10 % lead this module goes and SHA-1 keys take the `hmac`
//! crate like SHA-256/512. BENCHMARKS.md §1 has the figures.
//!
//! The keyed states are plain words, so unlike `hmac` 0.12 states they are zeroized on
//! drop; the padded key, the inner digests and the MACs are wiped after use.

use std::ops::RangeInclusive;

use sha1::compress;
use sha1::digest::Digest;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 64;
/// How many HMACs are computed side by side (a ±1 window needs 3).
const LANES: usize = 4;
/// SHA-1's initial state (FIPS 180-4, 5.3.1).
const IV: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
/// A SHA-1 state: the five words of a digest, big-endian.
type State = [u32; 5];

/// The inner and outer states after the key's ipad and opad blocks.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct Sha1Hmac {
    inner: State,
    outer: State,
}

fn compress_block(state: &mut State, block: &[u8; BLOCK]) {
    compress(state, std::slice::from_ref(block.into()));
}

/// Pads a message of `len` bytes at the start of `block`, hashed after one key block
/// (FIPS 180-4, 5.1.1): the 0x80 marker, then the total length in bits at the end.
fn pad(block: &mut [u8; BLOCK], len: usize) {
    if let Some(marker) = block.get_mut(len) {
        *marker = 0x80;
    }
    let bits = ((BLOCK + len) as u64) * 8;
    block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
}

impl Sha1Hmac {
    /// Runs the key schedule (a key longer than a block is hashed first).
    pub(super) fn new(secret: &[u8]) -> Self {
        // One buffer, turned from the ipad block into the opad block in place, so the
        // key exists in one block-sized copy that is wiped once.
        let mut block = [0u8; BLOCK];
        if secret.len() > BLOCK {
            let mut digest = sha1::Sha1::digest(secret);
            block.iter_mut().zip(digest.iter()).for_each(|(b, d)| *b = *d);
            digest.as_mut_slice().zeroize();
        } else {
            block.iter_mut().zip(secret).for_each(|(b, s)| *b = *s);
        }
        block.iter_mut().for_each(|b| *b ^= 0x36);
        let mut inner = IV;
        compress_block(&mut inner, &block);
        block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        let mut outer = IV;
        compress_block(&mut outer, &block);
        block.as_mut_slice().zeroize();
        Sha1Hmac { inner, outer }
    }

    /// Calls `f(counter, value)` for every counter in `counters`, in ascending order,
    /// where `value` is the RFC 4226 dynamic truncation (31 bits) of the counter's
    /// HMAC (the counter as 8 bytes, big-endian). Every counter is computed.
    pub(super) fn each_truncated(&self, mut counters: RangeInclusive<u64>, mut f: impl FnMut(u64, u32)) {
        let mut macs = [IV; LANES];
        while !counters.is_empty() {
            let mut lanes = [0u64; LANES];
            let mut len = 0;
            for (lane, counter) in lanes.iter_mut().zip(counters.by_ref().take(LANES)) {
                *lane = counter;
                len += 1;
            }
            let lanes = lanes.get(..len).unwrap_or_default();
            self.macs(lanes, &mut macs);
            for (mac, &counter) in macs.iter().zip(lanes) {
                f(counter, dynamic_truncation(mac));
            }
        }
        macs.as_flattened_mut().zeroize();
    }

    /// The HMACs of up to [`LANES`] counters into `macs[..counters.len()]`, side by
    /// side, in four passes: write every inner block, run every inner compression,
    /// write every outer block, run every outer compression. Keep the passes apart:
    /// a compression right after the write of its block waits for everything before
    /// it (see the module comment).
    fn macs(&self, counters: &[u64], macs: &mut [State; LANES]) {
        let mut blocks = [[0u8; BLOCK]; LANES];
        let lanes = counters.len().min(LANES);
        for (block, counter) in blocks.iter_mut().zip(counters) {
            block[..8].copy_from_slice(&counter.to_be_bytes());
            pad(block, 8);
        }
        for (state, block) in macs.iter_mut().zip(&blocks).take(lanes) {
            *state = self.inner;
            compress_block(state, block);
        }
        for (block, state) in blocks.iter_mut().zip(macs.iter()).take(lanes) {
            *block = [0u8; BLOCK];
            for (chunk, word) in block.chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            pad(block, 20);
        }
        for (state, block) in macs.iter_mut().zip(&blocks).take(lanes) {
            *state = self.outer;
            compress_block(state, block);
        }
        // The inner digests; the counters and the padding are public.
        blocks.as_flattened_mut().zeroize();
    }
}

/// RFC 4226 dynamic truncation of a MAC given as state words: the 31 bits at the byte
/// offset named by the low nibble of the last byte. The word pair holding them is
/// picked in constant time, not by a secret-dependent index.
fn dynamic_truncation(mac: &State) -> u32 {
    let [a, b, c, d, e] = *mac;
    let offset = e & 0x0f;
    let mut pair = 0u64;
    for (first_word, (high, low)) in (0u32..).zip([(a, b), (b, c), (c, d), (d, e)]) {
        let candidate = (u64::from(high) << 32) | u64::from(low);
        pair.conditional_assign(&candidate, first_word.ct_eq(&(offset >> 2)));
    }
    // The pair holds bytes 4 × (offset / 4) onward; the wanted 4 start `offset % 4` in.
    let value = ((pair << ((offset & 3) * 8)) >> 32) as u32 & 0x7fff_ffff;
    pair.zeroize();
    value
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha1::Sha1;

    use super::*;

    /// The `hmac` crate's HMAC-SHA-1 of an 8-byte counter.
    fn reference(key: &[u8], counter: u64) -> [u8; 20] {
        let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
        mac.update(&counter.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// RFC 4226 5.4 on the MAC's bytes, as written there.
    fn reference_truncation(mac: &[u8; 20]) -> u32 {
        let offset = usize::from(mac[19] & 0x0f);
        u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]) & 0x7fff_ffff
    }

    fn bytes(state: &State) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn truncated(key: &Sha1Hmac, counters: RangeInclusive<u64>) -> Vec<(u64, u32)> {
        let mut seen = Vec::new();
        key.each_truncated(counters, |counter, value| seen.push((counter, value)));
        seen
    }

    #[test]
    fn matches_the_hmac_crate_for_every_key_length() {
        for len in [0usize, 1, 16, 20, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let ours = Sha1Hmac::new(&key);
            let counters = [0u64, 1, 59_999_999, u64::MAX];
            let mut macs = [IV; LANES];
            ours.macs(&counters, &mut macs);
            for (mac, counter) in macs.iter().zip(counters) {
                assert_eq!(bytes(mac), reference(&key, counter), "key length {len}, counter {counter}");
            }
        }
    }

    #[test]
    fn rfc_4226_appendix_d() {
        let ours = Sha1Hmac::new(b"12345678901234567890");
        let mut macs = [IV; LANES];
        ours.macs(&[0], &mut macs);
        assert_eq!(bytes(&macs[0])[..4], [0xcc, 0x93, 0xcf, 0x18]); // D.1, count 0
        let values: Vec<u32> = truncated(&ours, 0..=9).into_iter().map(|(_, v)| v).collect();
        // D.2, "Decimal" column.
        let expected = [
            1_284_755_224,
            1_094_287_082,
            137_359_152,
            1_726_969_429,
            1_640_338_314,
            868_254_676,
            1_918_287_922,
            82_162_583,
            673_399_871,
            645_520_489,
        ];
        assert_eq!(values, expected);
    }

    #[test]
    fn every_counter_once_in_order_at_the_ends_of_the_range() {
        let key = Sha1Hmac::new(b"k");
        for (first, last) in [(5, 4), (7, 7), (0, 0), (0, 3), (0, 4), (10, 30), (u64::MAX - 5, u64::MAX)] {
            let seen: Vec<u64> = truncated(&key, first..=last).into_iter().map(|(c, _)| c).collect();
            assert_eq!(seen, (first..=last).collect::<Vec<_>>());
        }
    }

    proptest! {
        /// The fast path against the `hmac` crate, on random keys (shorter and longer
        /// than a block) and random windows of counters (more than one batch of lanes).
        #[test]
        fn fast_path_equals_the_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 0..150),
            first in any::<u64>(),
            span in 0u64..11,
        ) {
            let ours = Sha1Hmac::new(&key);
            let last = first.saturating_add(span);
            let mut counters = Vec::new();
            let mut macs = [IV; LANES];
            for chunk in (first..=last).collect::<Vec<_>>().chunks(LANES) {
                ours.macs(chunk, &mut macs);
                for (mac, &counter) in macs.iter().zip(chunk) {
                    prop_assert_eq!(bytes(mac), reference(&key, counter));
                }
                counters.extend_from_slice(chunk);
            }
            let expected: Vec<(u64, u32)> =
                counters.iter().map(|&c| (c, reference_truncation(&reference(&key, c)))).collect();
            prop_assert_eq!(truncated(&ours, first..=last), expected);
        }

        #[test]
        fn truncation_equals_rfc_4226(words in any::<[u32; 5]>()) {
            prop_assert_eq!(dynamic_truncation(&words), reference_truncation(&bytes(&words)));
        }
    }
}
