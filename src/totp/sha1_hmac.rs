//! HMAC-SHA-1 (RFC 2104) of an 8-byte counter, straight on SHA-1 compression states.
//!
//! A TOTP check computes a few HMACs under one key. Here the key schedule is two
//! compressions done once, and each HMAC is exactly two more (the counter and the
//! inner digest each fit one padded block), with no buffering layers in between. The
//! keyed states are plain words, so unlike `hmac` 0.12 states they are zeroized on drop.

use sha1::compress;
use sha1::digest::Digest;
use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 64;
/// SHA-1's initial state (FIPS 180-4, 5.3.1).
const IV: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

/// The inner and outer states after the key's ipad and opad blocks.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct Sha1Hmac {
    inner: [u32; 5],
    outer: [u32; 5],
}

fn compress_block(state: &mut [u32; 5], block: &[u8; BLOCK]) {
    compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// Pads `len` message bytes already in `block` (after one prefix block) per FIPS 180-4.
fn pad(block: &mut [u8; BLOCK], len: usize) {
    block[len] = 0x80;
    let bits = ((BLOCK + len) as u64) * 8;
    block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
}

impl Sha1Hmac {
    /// Runs the key schedule (a key longer than a block is hashed first).
    pub(super) fn new(secret: &[u8]) -> Self {
        let mut hashed = [0u8; 20];
        let key = if secret.len() > BLOCK {
            let mut digest = sha1::Sha1::digest(secret);
            hashed.copy_from_slice(&digest);
            digest.as_mut_slice().zeroize();
            &hashed[..]
        } else {
            secret
        };
        // One buffer, turned from the ipad block into the opad block in place, so the
        // key exists in one block-sized copy that is wiped once.
        let mut pad_block = [0x36u8; BLOCK];
        pad_block.iter_mut().zip(key).for_each(|(p, k)| *p ^= k);
        let mut inner = IV;
        compress_block(&mut inner, &pad_block);
        pad_block.iter_mut().for_each(|p| *p ^= 0x36 ^ 0x5c);
        let mut outer = IV;
        compress_block(&mut outer, &pad_block);
        pad_block.zeroize();
        hashed.zeroize();
        Sha1Hmac { inner, outer }
    }

    /// HMAC-SHA-1 of an 8-byte message.
    pub(super) fn mac8(&self, message: [u8; 8]) -> [u8; 20] {
        let mut block = [0u8; BLOCK];
        block[..8].copy_from_slice(&message);
        pad(&mut block, 8);
        let mut state = self.inner;
        compress_block(&mut state, &block);

        block = [0u8; BLOCK];
        for (chunk, word) in block.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        pad(&mut block, 20);
        state = self.outer;
        compress_block(&mut state, &block);

        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        // The inner digest; the rest of the block is public padding, and the first
        // block held only the (public) counter.
        block[..20].zeroize();
        state.zeroize();
        out
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    use super::*;

    #[test]
    fn matches_the_hmac_crate_for_every_key_length() {
        for len in [0usize, 1, 16, 20, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let ours = Sha1Hmac::new(&key);
            for counter in [0u64, 1, 59_999_999, u64::MAX] {
                let mut reference = Hmac::<Sha1>::new_from_slice(&key).expect("any length");
                reference.update(&counter.to_be_bytes());
                let expected: [u8; 20] = reference.finalize().into_bytes().into();
                assert_eq!(ours.mac8(counter.to_be_bytes()), expected, "key length {len}, counter {counter}");
            }
        }
    }

    #[test]
    fn rfc_4226_appendix_d_first_mac() {
        let ours = Sha1Hmac::new(b"12345678901234567890");
        let mac = ours.mac8(0u64.to_be_bytes());
        assert_eq!(mac[..4], [0xcc, 0x93, 0xcf, 0x18]); // RFC 4226 D.1, count 0
    }
}
