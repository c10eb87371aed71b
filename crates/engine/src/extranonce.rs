//! Extranonce partitioning with a stable extranonce1 (ARCHITECTURE.md,
//! trick 1).
//!
//! The upstream gives each connection `extranonce1` and `n` bytes of
//! extranonce2. We append the upstream's extranonce1 to coinb1 and split
//! its extranonce2 into `prefix_len` bytes that name the session and
//! `downstream_len` bytes the miner rolls. The session's extranonce1 *is*
//! its prefix, and prefixes are unique across the whole process, so a
//! session moved to any upstream of the same geometry keeps its
//! extranonce1 and needs only a clean job.

/// How the upstream extranonce2 space is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes naming the session (the miner's extranonce1).
    pub prefix_len: usize,
    /// Bytes the miner rolls (its extranonce2_size).
    pub downstream_len: usize,
}

/// Why an upstream's extranonce space cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "upstream gives {upstream} bytes of extranonce2; {prefix} (session prefix) + {downstream} (miner) are needed — lower downstream_extranonce2_size or session_prefix_bytes"
)]
pub struct GeometryError {
    /// Upstream extranonce2 size.
    pub upstream: usize,
    /// Configured prefix.
    pub prefix: usize,
    /// Configured miner extranonce2 size.
    pub downstream: usize,
}

impl Geometry {
    /// Checks that an upstream's extranonce2 size can hold this split. A
    /// larger upstream space is fine: the rest is zero padding (see
    /// [`Geometry::pad_len`]).
    pub fn fits(&self, upstream_extranonce2_size: usize) -> Result<(), GeometryError> {
        if self.prefix_len + self.downstream_len <= upstream_extranonce2_size {
            Ok(())
        } else {
            Err(GeometryError {
                upstream: upstream_extranonce2_size,
                prefix: self.prefix_len,
                downstream: self.downstream_len,
            })
        }
    }

    /// Zero bytes left over when the upstream space is larger than the
    /// split. They go in front of coinb2 as sessions see it, so the
    /// upstream extranonce2 is `prefix ‖ miner extranonce2 ‖ zeros` and
    /// every upstream presents miners the same geometry.
    pub fn pad_len(&self, upstream_extranonce2_size: usize) -> usize {
        upstream_extranonce2_size.saturating_sub(self.prefix_len + self.downstream_len)
    }

    /// Number of distinct prefixes.
    pub fn capacity(&self) -> u64 {
        1u64 << (8 * self.prefix_len.min(4))
    }
}

/// Hands out unique session prefixes.
#[derive(Debug)]
pub struct PrefixAllocator {
    len: usize,
    capacity: u64,
    used: Vec<u64>,
    in_use: u64,
    next: u64,
}

impl PrefixAllocator {
    /// Prefixes of `len` bytes (1–4).
    pub fn new(len: usize) -> Self {
        let len = len.clamp(1, 4);
        let capacity = 1u64 << (8 * len);
        Self {
            len,
            capacity,
            used: vec![0; capacity.div_ceil(64) as usize],
            in_use: 0,
            next: 0,
        }
    }

    /// Prefix length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Prefixes in use.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// True when none are in use.
    pub fn is_empty(&self) -> bool {
        self.in_use == 0
    }

    /// A free prefix, or `None` when all are taken. Hands prefixes out
    /// round-robin so a just-released prefix is not reused at once (late
    /// shares of a departed session cannot collide with a new one).
    pub fn alloc(&mut self) -> Option<Vec<u8>> {
        if self.in_use >= self.capacity {
            return None;
        }
        for _ in 0..self.capacity {
            let p = self.next;
            self.next = (self.next + 1) % self.capacity;
            let (w, b) = ((p / 64) as usize, p % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.in_use += 1;
                return Some(self.encode(p));
            }
        }
        None
    }

    /// Returns a prefix.
    pub fn release(&mut self, prefix: &[u8]) {
        if prefix.len() != self.len {
            return;
        }
        let p = prefix.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        let (w, b) = ((p / 64) as usize, p % 64);
        if self.used[w] & (1 << b) != 0 {
            self.used[w] &= !(1 << b);
            self.in_use -= 1;
        }
    }

    fn encode(&self, p: u64) -> Vec<u8> {
        p.to_be_bytes()[8 - self.len..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn unique_until_exhausted_then_reusable() {
        let mut a = PrefixAllocator::new(1);
        let got: HashSet<Vec<u8>> = (0..256).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(got.len(), 256);
        assert!(a.alloc().is_none());
        a.release(&[7]);
        assert_eq!(a.alloc().unwrap(), vec![7]);
        a.release(&[1, 2]); // wrong length: ignored
        assert_eq!(a.in_use(), 256);
    }

    #[test]
    fn geometry_checks_space() {
        let g = Geometry {
            prefix_len: 2,
            downstream_len: 4,
        };
        assert!(g.fits(8).is_ok());
        assert_eq!(g.pad_len(8), 2);
        let e = g.fits(4).unwrap_err();
        assert!(e.to_string().contains("downstream_extranonce2_size"));
        assert_eq!(g.capacity(), 65536);
    }
}
