//! Coinbase txid hashing from a cached midstate of its constant prefix.
//!
//! A Stratum coinbase is `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`; only
//! extranonce2 changes between shares of one session and job. The state
//! after the whole 64-byte blocks of `coinb1 ‖ extranonce1` is computed once,
//! so a new extranonce2 costs only the blocks from there on.

use crate::sha::{Sha256, compressions_for};

/// The hashed constant prefix of a coinbase, ready to take an extranonce2.
#[derive(Clone, Copy, Debug)]
pub struct CoinbasePrefix {
    hasher: Sha256,
}

impl CoinbasePrefix {
    /// Absorbs the prefix parts (typically coinb1 and extranonce1).
    pub fn new(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for p in parts {
            hasher.update(p);
        }
        Self { hasher }
    }

    /// Length of the prefix in bytes.
    pub fn len(&self) -> usize {
        self.hasher.len() as usize
    }

    /// True for an empty prefix.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The coinbase txid (sha256d) for `extranonce2` followed by `suffix`.
    /// No allocation.
    #[inline]
    pub fn txid(&self, extranonce2: &[u8], suffix: &[u8]) -> [u8; 32] {
        let mut h = self.hasher;
        h.update(extranonce2);
        h.update(suffix);
        h.finalize_double()
    }

    /// Compressions one [`txid`](Self::txid) call costs for a given
    /// extranonce2 and suffix length (the prefix's whole blocks are free).
    pub fn compressions(&self, extranonce2_len: usize, suffix_len: usize) -> usize {
        let total = self.len() + extranonce2_len + suffix_len;
        let cached = self.hasher.midstate().1 as usize;
        compressions_for(total) - cached / 64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha::sha256d;

    #[test]
    fn prefix_midstate_matches_plain_hash() {
        let coinb1: Vec<u8> = (0..150u8).collect();
        let en1 = [1, 2, 3, 4];
        let coinb2: Vec<u8> = (0..90u8).rev().collect();
        let p = CoinbasePrefix::new(&[&coinb1, &en1]);
        for en2 in [[0u8; 4], [9, 9, 9, 9], [0xff; 4]] {
            let full = [&coinb1[..], &en1, &en2, &coinb2].concat();
            assert_eq!(p.txid(&en2, &coinb2), sha256d(&full));
        }
        // 248 bytes: 5 blocks with padding, the prefix's 2 whole blocks
        // cached, +1 for the second hash.
        assert_eq!(p.compressions(4, coinb2.len()), 4);
    }
}
