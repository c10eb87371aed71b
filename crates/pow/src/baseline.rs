//! Straightforward reference implementations: a share check with no
//! midstates, no caches and fresh buffers, the way a first implementation
//! (or many pools) would write it. Benchmarks report sluice's rates as
//! ratios to these; tests use them as a second opinion.

use sha2::{Digest, Sha256};

use crate::checker::{JobTemplate, Submission};
use crate::header::Header;

/// sha256d of a serialised header with `Sha256::digest` twice.
#[inline]
pub fn header_hash(header: &[u8; 80]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(header)).into()
}

/// The block hash of a share computed from scratch: build the coinbase,
/// hash it, fold the branches, hash the header.
pub fn share_hash(job: &JobTemplate, extranonce1: &[u8], s: &Submission<'_>) -> [u8; 32] {
    let coinbase = [job.coinb1(), extranonce1, s.extranonce2, job.coinb2()].concat();
    let mut acc: [u8; 32] = Sha256::digest(Sha256::digest(&coinbase)).into();
    for b in job.branches() {
        let node = [&acc[..], &b[..]].concat();
        acc = Sha256::digest(Sha256::digest(&node)).into();
    }
    let header = Header {
        version: s.version,
        prev_hash: *job.prev_hash(),
        merkle_root: acc,
        time: s.time,
        bits: job.bits(),
        nonce: s.nonce,
    };
    header_hash(&header.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DIFF1, ShareChecker, synthetic};

    #[test]
    fn baseline_agrees_with_checker() {
        let (job, en1) = synthetic::job(synthetic::TYPICAL, 7);
        let mut c = ShareChecker::new(job.clone(), &en1, 4, DIFF1).unwrap();
        for n in 0..20u32 {
            let en2 = n.to_le_bytes();
            let s = Submission {
                extranonce2: &en2,
                time: 5,
                nonce: n,
                version: 0x2000_0000 | (n << 13),
            };
            assert_eq!(c.check(&s).unwrap().hash, share_hash(&job, &en1, &s));
            let h = c.header(&s).to_bytes();
            assert_eq!(header_hash(&h), c.header(&s).block_hash());
        }
    }
}
