//! The sessions' clock: a few timer tasks, each ticking for a group of
//! sessions by a flag in their mailboxes, instead of a timer in every
//! connection's task.
//!
//! A session's tick drives vardiff, the no-upstream grace and the
//! handshake and idle deadlines (each passes at most a tick late). Its own
//! `tokio::time::Interval` cost 112 bytes on the heap (the boxed sleep)
//! and 32 in the task, for every connection. A session now joins one of
//! [`GROUPS`] groups (by its id) at a weak pointer each; the groups tick
//! out of phase, so a few thousand sessions wake at a time rather than all
//! of them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::mailbox::{Mailbox, MailboxList};

/// Sessions that tick together.
type Group = MailboxList<()>;

/// Groups of sessions that tick together.
pub const GROUPS: usize = 16;

/// The engine's session clock.
#[derive(Debug)]
pub struct Ticks {
    groups: Vec<Arc<Group>>,
}

impl Ticks {
    /// Starts one timer task per group, ticking every `period` (the groups
    /// spread over it) until `cancel`. Needs a tokio runtime.
    pub fn start(period: Duration, cancel: &CancellationToken) -> Self {
        let groups: Vec<Arc<Group>> = (0..GROUPS).map(|_| Arc::default()).collect();
        for (i, g) in groups.iter().enumerate() {
            let g = Arc::downgrade(g);
            let offset = period.mul_f64(i as f64 / GROUPS as f64);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + offset;
                let mut every = tokio::time::interval_at(start, period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        _ = every.tick() => {
                            // The engine is gone: nothing left to tick.
                            let Some(g) = g.upgrade() else { return };
                            g.mark_all(|m, ()| m.tick());
                        }
                    }
                }
            });
        }
        Self { groups }
    }

    /// Adds session `id` to its group: its mailbox is ticked from now on,
    /// until the session ends.
    pub fn join(&self, id: u64, mailbox: &Arc<Mailbox>) {
        let g = &self.groups[(id % GROUPS as u64) as usize];
        g.add(mailbox, (), |m, ()| !m.is_closed());
    }

    /// Sessions listed in all groups (some may have ended since their
    /// group last ticked).
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }

    /// True when no session is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::SessionEvent;

    #[tokio::test(start_paused = true)]
    async fn every_session_is_ticked_once_a_period_and_ended_ones_are_dropped() {
        let cancel = CancellationToken::new();
        let period = Duration::from_secs(5);
        let ticks = Ticks::start(period, &cancel);
        let sessions: Vec<Arc<Mailbox>> = (0..40).map(|_| Arc::default()).collect();
        for (id, m) in sessions.iter().enumerate() {
            ticks.join(id as u64, m);
        }
        assert_eq!(ticks.len(), 40);
        sessions[3].close();
        // Within one period every group has ticked once (its phase), and
        // a session's flag is read once however many ticks it missed.
        tokio::time::sleep(period).await;
        for (i, m) in sessions.iter().enumerate() {
            if i == 3 {
                continue;
            }
            assert!(
                matches!(m.try_recv(), Some(SessionEvent::Tick)),
                "session {i}"
            );
            assert!(m.try_recv().is_none());
        }
        assert_eq!(ticks.len(), 39, "the ended session is dropped");
        // A waiting session is woken by its group's next tick.
        let waiter = tokio::spawn({
            let m = sessions[0].clone();
            async move { m.recv().await }
        });
        let ev = tokio::time::timeout(2 * period, waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(matches!(ev, SessionEvent::Tick));
        // Cancelled: the timers stop (a tick already due may land first).
        cancel.cancel();
        tokio::time::sleep(period).await;
        let _ = sessions[1].try_recv();
        tokio::time::sleep(2 * period).await;
        assert!(sessions[1].try_recv().is_none(), "no tick after the cancel");
    }
}
