//! A channel's duplicate set: the shares it accepted on its live jobs,
//! in one place.
//!
//! A set per job cost a hash table per job: eight remembered jobs, most
//! with a handful of shares, each table with its own allocation and
//! slack. One list for the channel holds the same keys in about their own
//! size (6 bytes each); a channel with many shares gets a table. Each key
//! carries its job's tag, so a job's keys go when the job does.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The keys are already uniformly random except for the tag in the top
/// byte and the zeros in the bottom two: the rotation puts random bits
/// where the table takes its bucket index (the low bits) and its control
/// byte (the top seven).
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

/// Keys a channel keeps in a plain list before it builds a table. At a
/// production share rate (a share every ~5 s, eight jobs of ~30 s) a
/// channel holds about fifty, and a lucky few minutes well over sixty; a
/// table of that many would take twice the memory (its buckets come in
/// powers of two, at most 7/8 full) and four times once a lucky minute
/// pushes it over. A scan of 128 keys (768 bytes) is a few dozen nanoseconds.
const FEW: usize = 128;

/// The list's room comes in steps of this many keys (96 bytes), up and
/// down: across ten thousand connections, lists of a few sizes reuse each
/// other's freed blocks, where lists of every size leave the heap in
/// pieces no other list fits (RSS that grows while the live heap does
/// not).
const STEP: usize = 16;

/// Accepted shares of a channel's live jobs, by hash: a list while they
/// are few, a table when a miner at a tiny difficulty sends many.
#[derive(Default)]
pub(super) struct Seen {
    few: Vec<Key>,
    /// Boxed: 8 bytes in every channel instead of 32, for a table few
    /// channels ever build.
    #[allow(clippy::box_collection)]
    many: Option<Box<HashSet<u64, BuildHasherDefault<KeyHasher>>>>,
}

impl Seen {
    /// Records an accepted hash for the job tagged `tag`; false when it
    /// was already there (a duplicate).
    pub(super) fn insert(&mut self, tag: u8, hash: &[u8; 32]) -> bool {
        let k = key(tag, hash);
        if let Some(many) = self.many.as_mut() {
            return many.insert(wide(k));
        }
        if self.few.contains(&k) {
            return false;
        }
        if self.few.len() < FEW {
            if self.few.len() == self.few.capacity() {
                self.few.reserve_exact(STEP);
            }
            self.few.push(k);
            return true;
        }
        let mut many: HashSet<u64, BuildHasherDefault<KeyHasher>> =
            HashSet::with_capacity_and_hasher(2 * FEW, BuildHasherDefault::default());
        many.extend(self.few.drain(..).map(wide));
        many.insert(wide(k));
        self.few = Vec::new();
        self.many = Some(Box::new(many));
        true
    }

    /// Forgets a hash (its share was refused after all).
    pub(super) fn remove(&mut self, tag: u8, hash: &[u8; 32]) {
        let k = key(tag, hash);
        match self.many.as_mut() {
            Some(many) => {
                many.remove(&wide(k));
            }
            None => self.few.retain(|&x| x != k),
        }
    }

    /// Forgets every hash of the job tagged `tag` (it is no longer live,
    /// and the tag may be given to another job).
    pub(super) fn forget(&mut self, tag: u8) {
        let Some(many) = self.many.as_mut() else {
            self.few.retain(|k| k[0] != tag);
            // Only well under its room: a channel's keys come and go by a
            // job's worth, and a list that follows them is reallocated at
            // every job.
            if self.few.capacity() >= self.few.len() + 2 * STEP {
                self.few.shrink_to(self.few.len().div_ceil(STEP) * STEP);
            }
            return;
        };
        many.retain(|k| (*k >> 56) as u8 != tag);
        // Back to a list once the burst's jobs are gone: the table is not
        // kept for the connection's life.
        if many.len() <= FEW / 2 {
            self.few = many.iter().map(|&k| narrow(k)).collect();
            self.many = None;
        }
    }

    /// Hashes held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.many.as_ref().map_or(self.few.len(), |m| m.len())
    }

    /// Bytes its keys take on the heap.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        size_of::<Key>() * self.few.capacity() + self.many.as_ref().map_or(0, |m| 9 * m.capacity())
    }
}

/// A hash's key: the job's tag, then 40 bits of the hash. The hash's
/// first bytes are its least significant, random whatever the difficulty.
/// A share can only be taken for a duplicate of its own job's shares (a
/// few dozen at most at a production rate): a chance of about one in
/// 10¹⁰ per share, once in years for a farm of 100,000 machines. Eight
/// bytes a key put the usual fifty keys in the next allocation size.
type Key = [u8; 6];

fn key(tag: u8, hash: &[u8; 32]) -> Key {
    [tag, hash[0], hash[1], hash[2], hash[3], hash[4]]
}

/// A key as the table holds it: the tag in the top byte, the hash's bits
/// below it (where [`KeyHasher`] takes them), zeros at the bottom.
fn wide(k: Key) -> u64 {
    u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], 0, 0])
}

/// A key as the list holds it.
fn narrow(k: u64) -> Key {
    let b = k.to_be_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
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
        // Few enough for the list, and enough for the table.
        for n in [60u64, 1000] {
            let mut s = Seen::default();
            for i in 0..n {
                assert!(s.insert((i % 3) as u8, &hash(i)));
                assert!(!s.insert((i % 3) as u8, &hash(i)), "{n}: {i} again");
            }
            s.forget(1);
            assert_eq!(s.len() as u64, (0..n).filter(|i| i % 3 != 1).count() as u64);
            for i in 0..n {
                let tag = (i % 3) as u8;
                assert_eq!(s.insert(tag, &hash(i)), tag == 1, "{n}: hash {i}");
            }
            s.forget(0);
            s.forget(1);
            s.forget(2);
            assert_eq!(s.len(), 0);
            // A burst's table is given back once its jobs go.
            assert!(s.heap_bytes() <= 8 * 24, "{n}: {} bytes", s.heap_bytes());
        }
    }

    #[test]
    fn a_production_channel_holds_its_keys_in_about_their_own_size() {
        // Eight jobs of six shares: 48 keys of 6 bytes, 288 bytes (served
        // from the 320-byte size).
        let mut s = Seen::default();
        for i in 0..48u64 {
            assert!(s.insert((i / 6) as u8, &hash(i)));
        }
        assert!(s.heap_bytes() <= 6 * 48, "{} bytes", s.heap_bytes());
        // One job goes, the next comes: no growth.
        s.forget(0);
        for i in 48..54u64 {
            assert!(s.insert(8, &hash(i)));
        }
        assert!(s.heap_bytes() <= 6 * 48, "{} bytes", s.heap_bytes());
        // A lucky few minutes (twice the usual shares) stay in the list,
        // within a step of their size.
        for i in 54..102u64 {
            assert!(s.insert(9, &hash(i)));
        }
        assert!(s.many.is_none());
        assert!(s.heap_bytes() <= 6 * 112, "{} bytes", s.heap_bytes());
        // Its room comes in steps: a list's size is one of a few.
        assert_eq!(s.few.capacity() % STEP, 0, "{}", s.few.capacity());
        // The burst's jobs go: the list gives the room back, in a step.
        s.forget(9);
        assert_eq!(s.len(), 54 - 6);
        assert_eq!(s.few.capacity(), 48);
        // A job's worth of keys coming and going does not reallocate.
        let room = s.few.as_ptr();
        for round in 0..10u64 {
            // The eight live jobs are tagged 1 to 8, six keys each.
            let tag = 1 + (round % 8) as u8;
            s.forget(tag);
            for i in 0..6 {
                assert!(s.insert(tag, &hash(1000 + 10 * round + i)));
            }
            assert_eq!(s.few.as_ptr(), room, "round {round}");
        }
    }
}
