//! How a new job reaches the sessions on an upstream: the upstream task
//! publishes it on a [`JobBoard`] (the latest job, in a watch channel),
//! which then marks every listening session's [`Mailbox`] and wakes it.
//!
//! Why not let each session await the watch channel itself: its
//! `changed()` future is ~120 bytes, kept in every connection's task for
//! the task's whole life (it is one branch of the task's `select!`), and
//! it put the task in the 768-byte allocation class instead of 640. The
//! session already waits on its mailbox; a flag in it costs nothing, and a
//! listener here is a weak pointer and a number (16 bytes).
//!
//! A session listens to one upstream at a time: it calls
//! [`Mailbox::follow`] and [`JobListeners::add`] when it is assigned or
//! moved. An entry for an upstream it has left, or for a session that
//! ended, is dropped the next time that upstream publishes, or when the
//! list has doubled since it was last pruned.

use std::sync::Arc;

use tokio::sync::watch;

use crate::job::{Job, UpstreamId};
use crate::mailbox::{Mailbox, MailboxList};

/// The sessions listening for one upstream's jobs.
#[derive(Debug, Default)]
pub struct JobListeners {
    /// The upstream they listen to.
    upstream: UpstreamId,
    /// Each session's mailbox and the number of its [`Mailbox::follow`]
    /// call that put it here (a session that left and came back is only
    /// told once).
    list: MailboxList<u32>,
}

impl JobListeners {
    /// Adds a session that has just followed this upstream (`seq` is what
    /// [`Mailbox::follow`] returned).
    pub fn add(&self, mailbox: &Arc<Mailbox>, seq: u32) {
        let upstream = self.upstream;
        self.list
            .add(mailbox, seq, |m, seq| m.follows(upstream, *seq));
    }

    /// Marks every listening session's mailbox and wakes it; forgets the
    /// sessions that left or ended.
    fn notify(&self) {
        let upstream = self.upstream;
        self.list.mark_all(|m, seq| m.job_ready(upstream, *seq));
    }

    /// Sessions listed (some may have left since the last job).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no session is listed.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// An upstream task's end of its jobs: the latest job for whoever reads
/// it, and a word to every listening session.
#[derive(Debug)]
pub struct JobBoard {
    tx: watch::Sender<Option<Arc<Job>>>,
    listeners: Arc<JobListeners>,
}

impl JobBoard {
    /// A board for upstream `id`, the receiver sessions read the latest
    /// job from, and the listeners they add themselves to.
    pub fn new(id: UpstreamId) -> (Self, watch::Receiver<Option<Arc<Job>>>, Arc<JobListeners>) {
        let (tx, rx) = watch::channel(None);
        let listeners = Arc::new(JobListeners {
            upstream: id,
            list: MailboxList::default(),
        });
        (
            Self {
                tx,
                listeners: listeners.clone(),
            },
            rx,
            listeners,
        )
    }

    /// Makes `job` the latest and tells every listening session.
    pub fn publish(&self, job: Arc<Job>) {
        self.tx.send_replace(Some(job));
        self.listeners.notify();
    }
}

impl Drop for JobBoard {
    fn drop(&mut self) {
        // The upstream task has ended: its sessions find the channel
        // closed (the sender goes first, before they are woken) and wait
        // for the router to move them.
        let (dead, _) = watch::channel(None);
        drop(std::mem::replace(&mut self.tx, dead));
        self.listeners.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::fixtures::{synthetic_template, test_job, test_links};
    use crate::router::SessionEvent;
    use std::time::Duration;

    fn job(id: u64) -> Arc<Job> {
        Arc::new(Job {
            id,
            ..test_job(synthetic_template(id, 0x1d00_ffff), test_links(1).links)
        })
    }

    #[tokio::test]
    async fn a_published_job_wakes_every_session_that_follows_the_upstream() {
        let (board, rx, listeners) = JobBoard::new(7);
        let sessions: Vec<Arc<Mailbox>> = (0..3).map(|_| Arc::default()).collect();
        for m in &sessions {
            listeners.add(m, m.follow(7));
            // Following reads the latest at once.
            assert!(matches!(m.try_recv(), Some(SessionEvent::JobReady)));
            assert!(m.try_recv().is_none(), "then nothing until a job");
        }
        // A waiting session is woken.
        let waiter = tokio::spawn({
            let m = sessions[0].clone();
            async move { m.recv().await }
        });
        tokio::task::yield_now().await;
        board.publish(job(1));
        let ev = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(matches!(ev, SessionEvent::JobReady));
        for m in &sessions[1..] {
            assert!(matches!(m.try_recv(), Some(SessionEvent::JobReady)));
        }
        assert_eq!(rx.borrow().as_ref().map(|j| j.id), Some(1), "the latest");
        // Queued events come first; the job flag is read once.
        sessions[1].try_send(SessionEvent::Close).expect("room");
        board.publish(job(2));
        board.publish(job(3));
        assert!(matches!(sessions[1].try_recv(), Some(SessionEvent::Close)));
        assert!(matches!(
            sessions[1].try_recv(),
            Some(SessionEvent::JobReady)
        ));
        assert!(sessions[1].try_recv().is_none());
    }

    #[tokio::test]
    async fn sessions_that_moved_away_or_ended_are_forgotten_and_not_told() {
        let (board, _rx, listeners) = JobBoard::new(1);
        let (_other, _orx, other) = JobBoard::new(2);
        let stays: Arc<Mailbox> = Arc::default();
        let moves: Arc<Mailbox> = Arc::default();
        let ends: Arc<Mailbox> = Arc::default();
        let bounces: Arc<Mailbox> = Arc::default();
        for m in [&stays, &moves, &ends, &bounces] {
            listeners.add(m, m.follow(1));
            let _ = m.try_recv();
        }
        other.add(&moves, moves.follow(2));
        let _ = moves.try_recv();
        ends.close();
        // Away and back before the next job: listed twice, told once.
        other.add(&bounces, bounces.follow(2));
        listeners.add(&bounces, bounces.follow(1));
        let _ = bounces.try_recv();
        assert_eq!(listeners.len(), 5);
        board.publish(job(1));
        assert_eq!(
            listeners.len(),
            2,
            "the one that stayed and the bounce's last entry"
        );
        assert!(matches!(stays.try_recv(), Some(SessionEvent::JobReady)));
        assert!(matches!(bounces.try_recv(), Some(SessionEvent::JobReady)));
        assert!(moves.try_recv().is_none(), "it follows upstream 2");
        // A session gone altogether is dropped from the list too.
        drop(stays);
        board.publish(job(2));
        assert_eq!(listeners.len(), 1);
    }

    #[test]
    fn an_upstream_that_publishes_nothing_keeps_a_bounded_list() {
        // Miners come and go for hours on a pool that sends no job: the
        // list is pruned as it grows, not only when a job comes.
        let (_board, _rx, listeners) = JobBoard::new(1);
        let live: Vec<Arc<Mailbox>> = (0..10).map(|_| Arc::default()).collect();
        for m in &live {
            listeners.add(m, m.follow(1));
        }
        for _ in 0..10_000 {
            let m: Arc<Mailbox> = Arc::default();
            listeners.add(&m, m.follow(1));
            m.close();
        }
        assert!(
            listeners.len() <= 2 * 10 + 64 + 1,
            "{} listed",
            listeners.len()
        );
    }

    #[tokio::test]
    async fn an_ended_upstream_closes_its_channel_and_wakes_its_sessions() {
        let (board, mut rx, listeners) = JobBoard::new(3);
        let m: Arc<Mailbox> = Arc::default();
        listeners.add(&m, m.follow(3));
        let _ = m.try_recv();
        board.publish(job(1));
        let _ = m.try_recv();
        rx.borrow_and_update();
        drop(board);
        assert!(matches!(m.try_recv(), Some(SessionEvent::JobReady)));
        assert!(rx.has_changed().is_err(), "the session finds it closed");
    }
}
