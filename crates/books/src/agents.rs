//! User agents, kept once each.
//!
//! A farm runs a handful of firmware builds, and every connection reports
//! one of them: a copy in each session and another in each worker's books
//! was about fifty bytes of every connection. Agents are shared through
//! one table instead, up to a bound, so that a miner sending a new agent
//! on every connection cannot grow it without end: a full table first
//! drops the agents nothing else holds any more, and past that an agent
//! is kept as a copy of its own, as before.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Distinct agents shared; past this many, new ones are copied.
pub const MAX_SHARED: usize = 1024;

/// Longest agent kept, in characters (the rest is cut).
pub const MAX_CHARS: usize = 256;

/// The shared agents.
#[derive(Debug, Default)]
pub struct Agents {
    set: Mutex<HashSet<Arc<str>>>,
}

impl Agents {
    /// `ua`, cut to [`MAX_CHARS`], as the one shared copy.
    pub fn get(&self, ua: &str) -> Arc<str> {
        let ua = match ua.char_indices().nth(MAX_CHARS) {
            Some((end, _)) => &ua[..end],
            None => ua,
        };
        // Nothing panics while holding it; a poisoned set is still a set.
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = set.get(ua) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(ua);
        if set.len() >= MAX_SHARED {
            // Agents of sessions and workers long gone: a scan of the
            // table, only when it is full and a new agent comes.
            set.retain(|a| Arc::strong_count(a) > 1);
        }
        if set.len() < MAX_SHARED {
            set.insert(a.clone());
        }
        a
    }

    /// Agents shared.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_of_each_agent() {
        let a = Agents::default();
        let x = a.get("bmminer/2.0.0");
        let y = a.get(&String::from("bmminer/2.0.0"));
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(&*x, "bmminer/2.0.0");
        assert!(!Arc::ptr_eq(&x, &a.get("cgminer/4.11.1")));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn long_agents_are_cut_on_a_character_boundary() {
        let a = Agents::default();
        let long = "é".repeat(MAX_CHARS + 10);
        let got = a.get(&long);
        assert_eq!(got.chars().count(), MAX_CHARS);
        assert!(Arc::ptr_eq(&got, &a.get(&long)));
    }

    #[test]
    fn the_table_is_bounded_and_later_agents_still_kept_whole() {
        let a = Agents::default();
        // Held elsewhere (by sessions or books), so the table keeps them.
        let held: Vec<Arc<str>> = (0..MAX_SHARED + 100)
            .map(|i| {
                let got = a.get(&format!("junk/{i}"));
                assert_eq!(&*got, format!("junk/{i}"));
                got
            })
            .collect();
        assert_eq!(a.len(), MAX_SHARED);
        // An agent seen before the table filled is still shared.
        assert!(Arc::ptr_eq(&a.get("junk/7"), &held[7]));
        // One past it is a copy each time, with the right text.
        let late = format!("junk/{}", MAX_SHARED + 5);
        assert!(!Arc::ptr_eq(&a.get(&late), &a.get(&late)));
        // Once the agents are let go, a new agent clears them out and is
        // shared again.
        drop(held);
        let fresh = a.get("bmminer/2.0.0");
        assert!(Arc::ptr_eq(&fresh, &a.get("bmminer/2.0.0")));
        assert_eq!(a.len(), 1);
    }
}
