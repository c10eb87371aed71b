//! Resources sessions take from a shared pool, taken only once a miner has
//! shown it is one: extranonce prefixes (at subscribe, not at accept) and
//! worker names per source address (at authorize).
//!
//! Both are off the share path: a lock or a map entry per handshake, never
//! per share.

use std::net::IpAddr;
use std::sync::Mutex;

use dashmap::DashMap;

use crate::extranonce::PrefixAllocator;

/// The process's extranonce prefixes, shared by all sessions.
#[derive(Debug)]
pub struct Prefixes(Mutex<PrefixAllocator>);

impl Prefixes {
    /// Prefixes of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self(Mutex::new(PrefixAllocator::new(len)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PrefixAllocator> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free prefix, or `None` when every one is taken.
    pub fn alloc(&self) -> Option<Vec<u8>> {
        self.lock().alloc()
    }

    /// Gives a prefix back.
    pub fn release(&self, p: &[u8]) {
        self.lock().release(p);
    }

    /// Prefixes in use.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use()
    }
}

/// Worker names held per source address, across its connections: one
/// address authorizing names without end must not crowd out the rest.
#[derive(Debug)]
pub struct NameQuota {
    max_per_ip: usize,
    held: DashMap<IpAddr, usize>,
}

impl NameQuota {
    /// At most `max_per_ip` names held at once per address.
    pub fn new(max_per_ip: usize) -> Self {
        Self {
            max_per_ip,
            held: DashMap::new(),
        }
    }

    /// Takes one name for `ip`; false when it holds its maximum.
    pub fn take(&self, ip: IpAddr) -> bool {
        let mut n = self.held.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back `count` names of `ip`.
    pub fn give_back(&self, ip: IpAddr, count: usize) {
        self.held.remove_if_mut(&ip, |_, n| {
            *n = n.saturating_sub(count);
            *n == 0
        });
    }

    /// Names `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.held.get(&ip).map_or(0, |n| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_per_address_and_given_back() {
        let q = NameQuota::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(q.take(a) && q.take(a));
        assert!(!q.take(a), "third name from one address");
        assert!(q.take(b), "another address is not affected");
        q.give_back(a, 1);
        assert!(q.take(a));
        q.give_back(a, 5);
        assert_eq!(q.held(a), 0);
    }

    #[test]
    fn prefixes_come_back() {
        let p = Prefixes::new(1);
        let all: Vec<_> = (0..256).filter_map(|_| p.alloc()).collect();
        assert_eq!(all.len(), 256);
        assert!(p.alloc().is_none());
        p.release(&all[7]);
        assert_eq!(p.alloc(), Some(all[7].clone()));
        assert_eq!(p.in_use(), 256);
    }
}
