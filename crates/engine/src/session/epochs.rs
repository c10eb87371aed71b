//! The latest clean-job epoch a channel has seen from each upstream it
//! had lately, inline: a job from a newer epoch is clean even when the
//! clean job itself was skipped (the job feed keeps only the latest).
//!
//! A list on the heap cost 64 bytes a connection (and 24 for its header)
//! for the one or two upstreams a session ever has; the three held here
//! take 28 bytes inline. The one used longest ago makes room for a new
//! one; an upstream pushed out that way is new again when it comes back:
//! its next job is judged by its own `clean` flag.

use crate::job::UpstreamId;

/// Upstreams remembered.
const HELD: usize = 3;

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Epochs {
    /// (upstream, its latest epoch's low 32 bits), `len` of them, the
    /// one used longest ago first.
    held: [(UpstreamId, u32); HELD],
    len: u8,
}

impl Epochs {
    /// Records `epoch` of `upstream`; true when it is newer than the last
    /// one seen from it (false for an upstream not seen before).
    pub(super) fn newer(&mut self, upstream: UpstreamId, epoch: u64) -> bool {
        // Epochs count clean jobs: 32 bits compared with wrapping hold
        // for two billion clean jobs between two jobs of one channel.
        let epoch = epoch as u32;
        let len = usize::from(self.len);
        if let Some(i) = self.held[..len].iter().position(|(u, _)| *u == upstream) {
            let e = self.held[i].1;
            let newer = (epoch.wrapping_sub(e) as i32) > 0;
            // Used now: moved to the back, out of the way of eviction.
            self.held[i..len].rotate_left(1);
            self.held[len - 1] = (upstream, if newer { epoch } else { e });
            return newer;
        }
        if len == HELD {
            self.held.copy_within(1.., 0);
            self.held[HELD - 1] = (upstream, epoch);
        } else {
            self.held[len] = (upstream, epoch);
            self.len += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_newer_only_than_its_own_upstreams_last() {
        let mut e = Epochs::default();
        assert!(!e.newer(1, 5), "first seen");
        assert!(!e.newer(1, 5));
        assert!(!e.newer(1, 4), "an older epoch");
        assert!(e.newer(1, 7));
        assert!(!e.newer(1, 6), "older than the latest");
        assert!(!e.newer(2, 100), "another upstream, first seen");
        assert!(e.newer(1, 8));
        assert!(e.newer(2, 101));
    }

    #[test]
    fn epochs_compare_across_the_wrap_of_their_low_bits() {
        let mut e = Epochs::default();
        let near = u64::from(u32::MAX) - 1;
        assert!(!e.newer(1, near));
        assert!(e.newer(1, near + 3), "past 2^32");
        assert!(!e.newer(1, near + 2));
    }

    #[test]
    fn the_upstream_used_longest_ago_makes_room_and_is_new_again() {
        let mut e = Epochs::default();
        for u in 1..=3 {
            assert!(!e.newer(u, 10));
        }
        // 1 is used again: 2 is now the one used longest ago.
        assert!(e.newer(1, 11), "1 is still held");
        assert!(!e.newer(4, 10), "4 pushes out 2");
        assert!(e.newer(1, 12), "1 is still held");
        assert!(e.newer(3, 11), "3 is still held");
        // 4 is now the one used longest ago.
        assert!(!e.newer(2, 12), "2 is new again, and pushes out 4");
        assert!(e.newer(1, 13), "1 is still held");
        assert!(!e.newer(4, 11), "4 is new again");
        assert!(std::mem::size_of::<Epochs>() <= 28);
    }
}
