//! Coinbase txid hashing from a cached midstate of its constant prefix.
//!
//! A Stratum coinbase is `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`; only
//! extranonce2 changes between shares of one session and job. The state
//! after the whole 64-byte blocks of `coinb1 ‖ extranonce1` is computed once,
//! so a new extranonce2 costs only the blocks from there on.

use crate::sha::{Block, Sha256, State, compressions_for};

/// The hashed constant prefix of a coinbase, ready to take an extranonce2.
/// Its length is kept in 32 bits, not a hasher's 64 (100 bytes, not 112):
/// every connection's share checker holds one, and those 12 bytes decide
/// its allocation size (see `a_checker_fits_the_per_connection_budget`).
#[derive(Clone, Copy, Debug)]
pub struct CoinbasePrefix {
    state: State,
    tail: Block,
    len: u32,
}

impl CoinbasePrefix {
    /// Absorbs the prefix parts (typically coinb1 and extranonce1); `None`
    /// for 4 GiB or more (a coinbase is at most a block's size).
    pub fn new(parts: &[&[u8]]) -> Option<Self> {
        // Refused before anything is hashed.
        let len = u32::try_from(parts.iter().map(|p| p.len() as u64).sum::<u64>()).ok()?;
        let mut hasher = Sha256::new();
        for p in parts {
            hasher.update(p);
        }
        let (state, tail, _) = hasher.into_parts();
        Some(Self { state, tail, len })
    }

    /// Length of the prefix in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for an empty prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The coinbase txid (sha256d) for `extranonce2` followed by `suffix`.
    /// No allocation.
    #[inline]
    pub fn txid(&self, extranonce2: &[u8], suffix: &[u8]) -> [u8; 32] {
        let mut h = Sha256::resume(self.state, self.tail, u64::from(self.len));
        h.update(extranonce2);
        h.update(suffix);
        h.finalize_double()
    }

    /// Compressions one [`txid`](Self::txid) call costs for a given
    /// extranonce2 and suffix length (the prefix's whole blocks are free).
    pub fn compressions(&self, extranonce2_len: usize, suffix_len: usize) -> usize {
        let total = self.len() + extranonce2_len + suffix_len;
        compressions_for(total) - self.len() / 64 + 1
    }
}

/// Σ output values (satoshi) of a Stratum coinbase `coinb1 ‖ extranonce ‖
/// coinb2`, with an extranonce of `extranonce_len` bytes: what the pool's
/// block pays, subsidy plus fees. `None` when the bytes are not one
/// well-formed single-input transaction.
pub fn coinbase_output_total(coinb1: &[u8], extranonce_len: usize, coinb2: &[u8]) -> Option<u64> {
    let mut tx = Vec::with_capacity(coinb1.len() + extranonce_len + coinb2.len());
    tx.extend_from_slice(coinb1);
    tx.resize(coinb1.len() + extranonce_len, 0);
    tx.extend_from_slice(coinb2);
    let mut r = Reader { b: &tx, at: 0 };
    r.take(4)?; // version
    if r.peek()? == 0 {
        // Segwit marker and flag (rare in Stratum: coinbases go stripped).
        r.take(2)?;
    }
    if r.varint()? != 1 {
        return None;
    }
    r.take(36)?; // prevout
    let script = r.varint()?;
    r.take(usize::try_from(script).ok()?)?;
    r.take(4)?; // sequence
    let outputs = r.varint()?;
    if outputs == 0 || outputs > 10_000 {
        return None;
    }
    let mut total: u64 = 0;
    for _ in 0..outputs {
        let v = r.take(8)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(v);
        total = total.checked_add(u64::from_le_bytes(le))?;
        let len = r.varint()?;
        r.take(usize::try_from(len).ok()?)?;
    }
    // Witness (if flagged) and locktime follow; at least the locktime.
    (r.b.len() - r.at >= 4).then_some(total)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len())?;
        let s = &self.b[self.at..end];
        self.at = end;
        Some(s)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn varint(&mut self) -> Option<u64> {
        let first = self.take(1)?[0];
        let width = match first {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            n => return Some(u64::from(n)),
        };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.take(width)?);
        Some(u64::from_le_bytes(le))
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
        let p = CoinbasePrefix::new(&[&coinb1, &en1]).unwrap();
        for en2 in [[0u8; 4], [9, 9, 9, 9], [0xff; 4]] {
            let full = [&coinb1[..], &en1, &en2, &coinb2].concat();
            assert_eq!(p.txid(&en2, &coinb2), sha256d(&full));
        }
        // The tail kept beside the state: prefixes ending on, just before
        // and just past a block's edge, and an empty one.
        for len in [0, 1, 55, 63, 64, 65, 127, 128, 129] {
            let c1 = &coinb1[..len];
            let p = CoinbasePrefix::new(&[c1]).unwrap();
            assert_eq!((p.len(), p.is_empty()), (len, len == 0));
            for en2 in [&[7u8; 4][..], &[1; 8], &[2; 32]] {
                let full = [c1, en2, &coinb2].concat();
                assert_eq!(p.txid(en2, &coinb2), sha256d(&full), "prefix {len}");
            }
        }
        // 4 GiB of prefix is refused (64 parts of 64 MiB, never touched:
        // nothing is hashed).
        let big = vec![0u8; 1 << 26];
        assert!(CoinbasePrefix::new(&vec![&big[..]; 64]).is_none());
        // 248 bytes: 5 blocks with padding, the prefix's 2 whole blocks
        // cached, +1 for the second hash.
        assert_eq!(p.compressions(4, coinb2.len()), 4);
    }
}
