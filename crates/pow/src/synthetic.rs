//! Deterministic synthetic jobs shaped like real ones, for benches, the
//! `sluice bench hash` command and tests: a ~250-byte segwit-era coinbase
//! split around an 8-byte extranonce and a branch list as deep as a block
//! of a few thousand transactions.

use std::sync::Arc;

use crate::checker::JobTemplate;
use crate::sha::sha256;

/// Byte sizes of the shape [`job`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Coinbase bytes before extranonce1.
    pub coinb1_len: usize,
    /// extranonce1 bytes.
    pub extranonce1_len: usize,
    /// extranonce2 bytes.
    pub extranonce2_len: usize,
    /// Coinbase bytes after extranonce2.
    pub coinb2_len: usize,
    /// Merkle branches.
    pub branches: usize,
}

/// The shape the benchmarks name: ≈250-byte coinbase, 12 branches
/// (a block of 2,049–4,096 transactions).
pub const TYPICAL: Shape = Shape {
    coinb1_len: 59,
    extranonce1_len: 4,
    extranonce2_len: 4,
    coinb2_len: 183,
    branches: 12,
};

impl Shape {
    /// Total coinbase length.
    pub fn coinbase_len(&self) -> usize {
        self.coinb1_len + self.extranonce1_len + self.extranonce2_len + self.coinb2_len
    }
}

/// Pseudo-random bytes from a seed (SHA-256 in counter mode).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&seed.to_le_bytes());
        input[8..].copy_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&sha256(&input));
        i += 1;
    }
    out.truncate(len);
    out
}

/// A job of the given shape with regtest-easy bits (`0x207fffff`), plus
/// the extranonce1 to use with it.
pub fn job(shape: Shape, seed: u64) -> (Arc<JobTemplate>, Vec<u8>) {
    let prev: [u8; 32] = sha256(&seed.to_le_bytes());
    let branches = (0..shape.branches)
        .map(|i| sha256(&bytes(seed ^ 0xb7a2_c0de, 8 + i)))
        .collect();
    let job = JobTemplate::new(
        prev,
        bytes(seed ^ 1, shape.coinb1_len),
        bytes(seed ^ 2, shape.coinb2_len),
        branches,
        0x207f_ffff,
    );
    let job = match job {
        Ok(j) => j,
        // 0x207fffff is a valid compact target; unreachable in practice.
        Err(e) => unreachable!("synthetic bits invalid: {e}"),
    };
    (Arc::new(job), bytes(seed ^ 3, shape.extranonce1_len))
}
