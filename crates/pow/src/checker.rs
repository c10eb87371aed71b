//! The share checker: prepared once per (session, job), it turns a submitted
//! (extranonce2, ntime, nonce, version) into a block hash and a verdict.
//!
//! Cost per share, in SHA-256 compressions:
//! - new extranonce2: the coinbase blocks after the cached prefix, +1 for
//!   the coinbase's second hash, 3 per merkle branch, then 3 for the header;
//! - the last extranonce2 again (its merkle root is cached): 3. The header
//!   midstate is not cached: miners roll the version for nearly every
//!   share, and the 44 bytes it took put each checker in a larger
//!   allocation for one compression saved only when they do not.
//!
//! The work is split in two steps, [`ShareChecker::prepare`] (coinbase,
//! merkle root, header midstate) and [`HeaderMidstate::hash`] (the two
//! compressions every share pays). A batch checker hashes many prepared
//! headers side by side (multi-buffer SIMD) between those steps.

use std::sync::Arc;

use crate::coinbase::CoinbasePrefix;
use crate::header::{Header, HeaderMidstate};
use crate::merkle;
use crate::target::{Target, TargetError, hash_difficulty};

/// Largest extranonce2 the checker accepts (Stratum V2 extended channels
/// allow 32 bytes of extranonce in total).
pub const MAX_EXTRANONCE2: usize = 32;

/// Why a share could not be checked (protocol-level validation such as
/// stale jobs and ntime windows belongs to the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The extranonce2 is not the length the session was given.
    #[error("extranonce2 is {got} bytes, expected {expected}")]
    Extranonce2Size {
        /// Length the session was given.
        expected: usize,
        /// Length submitted.
        got: usize,
    },
}

/// Why a checker could not be built.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum SetupError {
    /// The job's nbits does not decode to a usable target.
    #[error("job nbits: {0}")]
    Bits(#[from] TargetError),
    /// The requested extranonce2 length exceeds [`MAX_EXTRANONCE2`].
    #[error("extranonce2 length {0} exceeds {MAX_EXTRANONCE2}")]
    Extranonce2TooLong(usize),
    /// The coinbase before extranonce2 is 4 GiB or more.
    #[error("coinbase prefix of 4 GiB or more")]
    CoinbaseTooLong,
}

/// The parts of a job the checker needs; built once per job and shared by
/// every session's checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobTemplate {
    prev_hash: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branches: Vec<[u8; 32]>,
    bits: u32,
    network_target: Target,
}

impl JobTemplate {
    /// `prev_hash` in header (internal) byte order; `coinb1` includes
    /// anything the upstream prepends before the session's extranonce1.
    pub fn new(
        prev_hash: [u8; 32],
        coinb1: Vec<u8>,
        coinb2: Vec<u8>,
        branches: Vec<[u8; 32]>,
        bits: u32,
    ) -> Result<Self, TargetError> {
        Ok(Self {
            network_target: Target::from_compact(bits)?,
            prev_hash,
            coinb1,
            coinb2,
            branches,
            bits,
        })
    }

    /// Previous block hash, internal byte order.
    pub fn prev_hash(&self) -> &[u8; 32] {
        &self.prev_hash
    }
    /// Coinbase part before extranonce1.
    pub fn coinb1(&self) -> &[u8] {
        &self.coinb1
    }
    /// Coinbase part after extranonce2.
    pub fn coinb2(&self) -> &[u8] {
        &self.coinb2
    }
    /// Merkle branches for the coinbase.
    pub fn branches(&self) -> &[[u8; 32]] {
        &self.branches
    }
    /// Compact network target.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// The network target decoded from `bits`.
    pub fn network_target(&self) -> &Target {
        &self.network_target
    }
}

/// One submitted share, already decoded from its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission<'a> {
    /// The miner's extranonce2.
    pub extranonce2: &'a [u8],
    /// Header time.
    pub time: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The full header version, after applying rolled bits (see
    /// [`crate::version`] for the two conventions in use).
    pub version: u32,
}

/// What a checked share is worth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareResult {
    /// The block hash, internal byte order.
    pub hash: [u8; 32],
    /// Stratum difficulty of the hash (DIFF1 / hash).
    pub difficulty: f64,
    /// Hash ≤ the session's share target.
    pub meets_share_target: bool,
    /// Hash ≤ the network target: this share is a block.
    pub meets_network_target: bool,
}

/// The longest extranonce2 the cache keys on. Miners get 4 to 8 bytes
/// (V1) and a V2 channel rarely more than 16; a longer one has its root
/// rebuilt for every share, and a key of 32 bytes would put every checker
/// a connection keeps in the next allocation size (208 bytes, served as
/// 224).
const CACHED_EXTRANONCE2: usize = 16;

#[derive(Clone, Copy)]
struct CacheEntry {
    /// The entry holds the root of `extranonce2`: false until the first
    /// share, and for an extranonce2 longer than the key.
    used: bool,
    /// The extranonce2, zero-padded: a fixed-size compare, no `bcmp` call
    /// (a checker takes one length of extranonce2).
    extranonce2: [u8; CACHED_EXTRANONCE2],
    merkle_root: [u8; 32],
}

const EMPTY: CacheEntry = CacheEntry {
    used: false,
    extranonce2: [0; CACHED_EXTRANONCE2],
    merkle_root: [0; 32],
};

/// Per (session, job) share checker. Not `Sync`-shared: each session owns
/// its own, so the share path takes no lock and allocates nothing.
#[derive(Clone)]
pub struct ShareChecker {
    job: Arc<JobTemplate>,
    prefix: CoinbasePrefix,
    /// At most [`MAX_EXTRANONCE2`]: a byte.
    extranonce2_len: u8,
    share_target: Target,
    /// The merkle root of the last extranonce2 seen. A miner rolls
    /// version and nonce for many shares before it changes extranonce2,
    /// so one entry catches the repeats. Firmware that interleaves a few
    /// extranonce2 values (one per hash board) rebuilds the root for most
    /// shares, a few compressions each; more entries would help only
    /// there, and at a production share rate (one every few seconds) an
    /// extranonce2 rarely sees two shares at all, while each entry costs
    /// 49 bytes in every checker a connection keeps.
    cache: CacheEntry,
}

impl std::fmt::Debug for ShareChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareChecker")
            .field("extranonce2_len", &self.extranonce2_len)
            .field("share_target", &self.share_target)
            .finish_non_exhaustive()
    }
}

impl ShareChecker {
    /// Prepares a checker for one session on one job: hashes the constant
    /// coinbase prefix `coinb1 ‖ extranonce1` once.
    pub fn new(
        job: Arc<JobTemplate>,
        extranonce1: &[u8],
        extranonce2_len: usize,
        share_target: Target,
    ) -> Result<Self, SetupError> {
        if extranonce2_len == 0 || extranonce2_len > MAX_EXTRANONCE2 {
            return Err(SetupError::Extranonce2TooLong(extranonce2_len));
        }
        let prefix =
            CoinbasePrefix::new(&[job.coinb1(), extranonce1]).ok_or(SetupError::CoinbaseTooLong)?;
        Ok(Self {
            job,
            prefix,
            extranonce2_len: extranonce2_len as u8,
            share_target,
            cache: EMPTY,
        })
    }

    /// The job this checker validates against.
    pub fn job(&self) -> &Arc<JobTemplate> {
        &self.job
    }

    /// The session's share target for this job.
    pub fn share_target(&self) -> &Target {
        &self.share_target
    }

    /// Changes the share target (e.g. a V2 SetTarget that applies at once).
    pub fn set_share_target(&mut self, target: Target) {
        self.share_target = target;
    }

    /// Checks one share: hash, difficulty, and both target tests.
    #[inline]
    pub fn check(&mut self, s: &Submission<'_>) -> Result<ShareResult, CheckError> {
        let mid = self.prepare(s)?;
        let hash = mid.hash(s.time, self.job.bits, s.nonce);
        Ok(self.judge(hash))
    }

    /// Everything before the final two compressions: the header midstate
    /// for this share's extranonce2 and version (the merkle root from the
    /// cache when the extranonce2 is the last one's).
    #[inline]
    pub fn prepare(&mut self, s: &Submission<'_>) -> Result<HeaderMidstate, CheckError> {
        if s.extranonce2.len() != usize::from(self.extranonce2_len) {
            return Err(CheckError::Extranonce2Size {
                expected: usize::from(self.extranonce2_len),
                got: s.extranonce2.len(),
            });
        }
        self.load(s.extranonce2);
        Ok(HeaderMidstate::from_parts(
            s.version,
            &self.job.prev_hash,
            &self.cache.merkle_root,
        ))
    }

    /// Turns a block hash into a verdict against this checker's targets.
    #[inline(always)]
    pub fn judge(&self, hash: [u8; 32]) -> ShareResult {
        ShareResult {
            difficulty: hash_difficulty(&hash),
            meets_share_target: self.share_target.is_met_by(&hash),
            meets_network_target: self.job.network_target.is_met_by(&hash),
            hash,
        }
    }

    /// The merkle root for an extranonce2 (not cached; for block assembly
    /// and tests).
    pub fn merkle_root(&self, extranonce2: &[u8]) -> [u8; 32] {
        let txid = self.prefix.txid(extranonce2, &self.job.coinb2);
        merkle::root_from_branches(&txid, &self.job.branches)
    }

    /// The full header a submission describes (for submitting a block).
    pub fn header(&self, s: &Submission<'_>) -> Header {
        Header {
            version: s.version,
            prev_hash: self.job.prev_hash,
            merkle_root: self.merkle_root(s.extranonce2),
            time: s.time,
            bits: self.job.bits,
            nonce: s.nonce,
        }
    }

    /// Compressions a share with a fresh extranonce2 costs.
    pub fn compressions_fresh_extranonce2(&self) -> usize {
        self.prefix
            .compressions(usize::from(self.extranonce2_len), self.job.coinb2.len())
            + 3 * self.job.branches.len()
            + 3
    }

    /// Makes the cache hold `extranonce2`'s merkle root. Caller
    /// guarantees `extranonce2.len() == self.extranonce2_len`.
    #[inline]
    fn load(&mut self, extranonce2: &[u8]) {
        let len = extranonce2.len();
        let e = &self.cache;
        // A byte loop the compiler unrolls, rather than a `bcmp` call or a
        // padded copy whose narrow stores a wide compare would have to
        // wait for.
        if e.used
            && e.extranonce2[..len]
                .iter()
                .zip(extranonce2)
                .all(|(a, b)| a == b)
        {
            return;
        }
        let mut key = [0u8; CACHED_EXTRANONCE2];
        let used = len <= CACHED_EXTRANONCE2;
        if used {
            key[..len].copy_from_slice(extranonce2);
        }
        let root = self.merkle_root(extranonce2);
        self.cache = CacheEntry {
            used,
            extranonce2: key,
            merkle_root: root,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha::sha256d;
    use crate::target::DIFF1;

    fn job() -> Arc<JobTemplate> {
        let branches = (0..5u8).map(|i| [i.wrapping_mul(37); 32]).collect();
        Arc::new(
            JobTemplate::new(
                [3; 32],
                vec![0xaa; 70],
                vec![0xbb; 120],
                branches,
                0x207fffff,
            )
            .unwrap(),
        )
    }

    fn naive(job: &JobTemplate, en1: &[u8], s: &Submission<'_>) -> [u8; 32] {
        let cb = [job.coinb1(), en1, s.extranonce2, job.coinb2()].concat();
        let root = merkle::root_from_branches(&sha256d(&cb), job.branches());
        Header {
            version: s.version,
            prev_hash: *job.prev_hash(),
            merkle_root: root,
            time: s.time,
            bits: job.bits(),
            nonce: s.nonce,
        }
        .block_hash()
    }

    #[test]
    fn cached_and_uncached_paths_agree_with_naive() {
        let job = job();
        let en1 = [1, 2, 3, 4];
        // The usual lengths, the longest the cache keys on, and longer
        // ones (not cached: rebuilt for every share).
        for len in [
            4,
            8,
            CACHED_EXTRANONCE2,
            CACHED_EXTRANONCE2 + 1,
            MAX_EXTRANONCE2,
        ] {
            let mut c = ShareChecker::new(job.clone(), &en1, len, DIFF1).unwrap();
            agree_with_naive(&job, &en1, &mut c, len);
        }
    }

    fn agree_with_naive(job: &JobTemplate, en1: &[u8], c: &mut ShareChecker, len: usize) {
        // Cycle through extranonce2 values, rolling version
        // and nonce, revisiting old ones: every path must give the same hash.
        for round in 0..3u32 {
            for e in 0..6u8 {
                for v in [0x2000_0000u32, 0x2000_2000, 0x2000_2000] {
                    // Values that differ in their last byte only, past
                    // the key of a longer extranonce2.
                    let mut en2 = vec![1; len];
                    en2[len - 1] = e;
                    let s = Submission {
                        extranonce2: &en2,
                        time: 0x6b01_0000 + round,
                        nonce: u32::from(e) * 1000 + round,
                        version: v,
                    };
                    let r = c.check(&s).unwrap();
                    assert_eq!(r.hash, naive(job, en1, &s), "length {len}");
                    assert_eq!(r.hash, c.header(&s).block_hash());
                }
            }
        }
    }

    #[test]
    fn a_checker_fits_the_per_connection_budget() {
        // A connection keeps one built (a 4 KiB budget for everything it
        // holds), boxed: 192 bytes is an allocation size of its own, 193
        // to 224 take 224 and up to 256 take 256 (with the header midstate
        // cached and a 64-bit prefix length it was 256).
        assert!(
            size_of::<ShareChecker>() <= 192,
            "{} bytes",
            size_of::<ShareChecker>()
        );
    }

    #[test]
    fn wrong_extranonce2_size_is_refused() {
        let mut c = ShareChecker::new(job(), &[0; 4], 4, DIFF1).unwrap();
        let s = Submission {
            extranonce2: &[0; 3],
            time: 0,
            nonce: 0,
            version: 0x2000_0000,
        };
        assert_eq!(
            c.check(&s),
            Err(CheckError::Extranonce2Size {
                expected: 4,
                got: 3
            })
        );
        assert!(ShareChecker::new(job(), &[], 33, DIFF1).is_err());
        assert!(ShareChecker::new(job(), &[], 0, DIFF1).is_err());
    }

    #[test]
    fn verdict_follows_targets() {
        // Regtest target: about half of all hashes are blocks; with the
        // share target at MAX every hash is a share.
        let mut c = ShareChecker::new(job(), &[0; 4], 4, Target::MAX).unwrap();
        let (mut blocks, n) = (0, 400u32);
        for nonce in 0..n {
            let r = c
                .check(&Submission {
                    extranonce2: &[0; 4],
                    time: 1,
                    nonce,
                    version: 0x2000_0000,
                })
                .unwrap();
            assert!(r.meets_share_target);
            assert_eq!(
                r.meets_network_target,
                c.job().network_target().is_met_by(&r.hash)
            );
            assert!((r.difficulty - hash_difficulty(&r.hash)).abs() < f64::EPSILON);
            blocks += usize::from(r.meets_network_target);
        }
        assert!((150..250).contains(&blocks), "{blocks} blocks of {n}");
        c.set_share_target(Target::ZERO);
        let r = c
            .check(&Submission {
                extranonce2: &[0; 4],
                time: 1,
                nonce: 0,
                version: 0x2000_0000,
            })
            .unwrap();
        assert!(!r.meets_share_target);
    }

    #[test]
    fn compression_count_formula() {
        let c = ShareChecker::new(job(), &[0; 4], 4, DIFF1).unwrap();
        // coinbase 70+4+4+120 = 198 B → 4 blocks, one cached (prefix 74 B),
        // +1 second hash = 4; 5 branches × 3 = 15; header 3.
        assert_eq!(c.compressions_fresh_extranonce2(), 4 + 15 + 3);
    }
}
