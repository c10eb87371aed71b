//! A channel's duplicate set: the shares it accepted on its live jobs,
//! in one table.
//!
//! A set per job costs a table per job (eight remembered jobs, most with a
//! handful of shares, each table with its own allocation and slack); one
//! table for the channel holds the same keys in about a third of that.
//! Each key carries its job's tag, so a job's keys go when the job does.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The keys are already uniformly random except for the tag in the top
/// byte: the rotation puts random bits where the table takes its bucket
/// index (the low bits) and its control byte (the top seven).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Accepted shares of a channel's live jobs, by hash.
#[derive(Default)]
pub(super) struct Seen {
    keys: HashSet<u64, BuildHasherDefault<KeyHasher>>,
}

impl Seen {
    /// Records an accepted hash for the job tagged `tag`; false when it
    /// was already there (a duplicate).
    pub(super) fn insert(&mut self, tag: u8, hash: &[u8; 32]) -> bool {
        self.keys.insert(key(tag, hash))
    }

    /// Forgets a hash (its share was refused after all).
    pub(super) fn remove(&mut self, tag: u8, hash: &[u8; 32]) {
        self.keys.remove(&key(tag, hash));
    }

    /// Forgets every hash of the job tagged `tag` (it is no longer live,
    /// and the tag may be given to another job).
    pub(super) fn forget(&mut self, tag: u8) {
        self.keys.retain(|&k| (k >> 56) as u8 != tag);
        // A burst of shares (a miner at a tiny difficulty) must not keep
        // its table for the connection's life.
        if self.keys.capacity() > 4 * self.keys.len().max(16) {
            self.keys.shrink_to_fit();
        }
    }

    /// Hashes held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// A hash's key: the job's tag over 56 bits of the hash. The hash's
/// first bytes are its least significant, random whatever the difficulty;
/// 56 bits make a false duplicate among a channel's few hundred live
/// shares a chance of about one in 10¹².
fn key(tag: u8, hash: &[u8; 32]) -> u64 {
    let h = u64::from_le_bytes([
        hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
    ]);
    (h & ((1 << 56) - 1)) | (u64::from(tag) << 56)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> [u8; 32] {
        let mut h = [0u8; 32];
        // Spread like a real hash's low bytes.
        h[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        h
    }

    #[test]
    fn a_hash_is_a_duplicate_only_on_its_own_job() {
        let mut s = Seen::default();
        assert!(s.insert(0, &hash(1)));
        assert!(!s.insert(0, &hash(1)), "the same share again");
        assert!(s.insert(1, &hash(1)), "another job's tag is another key");
        s.remove(0, &hash(1));
        assert!(s.insert(0, &hash(1)), "a removed hash is new again");
    }

    #[test]
    fn forgetting_a_job_drops_its_hashes_and_no_other() {
        let mut s = Seen::default();
        for i in 0..1000 {
            assert!(s.insert((i % 3) as u8, &hash(i)));
        }
        s.forget(1);
        assert_eq!(s.len(), 1000 - 333);
        for i in 0..1000 {
            let tag = (i % 3) as u8;
            assert_eq!(s.insert(tag, &hash(i)), tag == 1, "hash {i}");
        }
        // A burst's table is given back once its jobs go.
        s.forget(0);
        s.forget(1);
        s.forget(2);
        assert_eq!(s.len(), 0);
        assert!(s.keys.capacity() < 100, "{}", s.keys.capacity());
    }
}
