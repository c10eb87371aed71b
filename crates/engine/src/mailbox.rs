//! A session's mailbox: what the router tells a session task (moves, a
//! pool's refusal of a share it forwarded, close).
//!
//! Why not a tokio channel: a bounded channel allocates a block of 32
//! slots up front (~3.6 KiB with these events), for every connection,
//! while a session hears from the router a handful of times an hour (a
//! pool's *acceptance* of a share needs no event at all: see
//! [`crate::router::Router::deliver`]). The mailbox holds an empty queue
//! and the waiting task's waker until something is sent, and gives its
//! memory back once drained. It stays bounded, like the channel was, and
//! on close hands back what was never read so that no refusal is lost.
//!
//! Why not a [`tokio::sync::Notify`]: its `notified()` future is ~80
//! bytes, kept in every connection's task for its whole life. A session
//! is the mailbox's only reader, so one waker kept under the queue's lock
//! does the same (no wake-up can slip between a check and a wait), and
//! [`Mailbox::recv`] needs nothing but a reference.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};

use crate::job::UpstreamId;
use crate::router::{SessionEvent, SessionWork};

/// Events one session may have waiting at once.
pub const MAILBOX_CAPACITY: usize = 256;

/// Why an event could not be left in a mailbox (it is handed back).
#[derive(Debug)]
pub enum SendError {
    /// The session has [`MAILBOX_CAPACITY`] events unread.
    Full(SessionEvent),
    /// The session is gone.
    Closed(SessionEvent),
}

impl SendError {
    /// The event that was not left.
    pub fn into_event(self) -> SessionEvent {
        match self {
            SendError::Full(e) | SendError::Closed(e) => e,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Events from `head` on are unread; those before it were read (left
    /// as placeholders). A vector and a 2-byte index in the flags' padding
    /// rather than a `VecDeque` (8 bytes more): the mailbox and its `Arc`
    /// fit 96 bytes, not 112. Emptied, it gives its memory back; a queue
    /// never emptied drops its read part when it would grow.
    events: Vec<SessionEvent>,
    head: u16,
    closed: bool,
    /// The proxy is stopping: the session reads [`SessionEvent::Close`]
    /// before anything queued (which its guard books back on close).
    shutdown: bool,
    /// A job was published on the upstream the session follows (see
    /// [`crate::fanout`]): read after the queued events.
    job_ready: bool,
    /// The session's tick (see [`crate::ticks`]): read last.
    tick_due: bool,
    /// The upstream whose jobs the session follows, and the number of its
    /// [`Mailbox::follow`] calls so far.
    following: (UpstreamId, u32),
    /// The session task waiting for an event.
    waiter: Option<Waker>,
}

impl Queue {
    /// Events waiting.
    fn unread(&self) -> usize {
        self.events.len() - usize::from(self.head)
    }

    fn push(&mut self, ev: SessionEvent) {
        // Read slots are dropped only when they are at least half of a
        // full vector: a queue a slow session keeps nearly full grows once
        // instead of moving every unread event at each send. The vector
        // grows only while more than half of it is unread, so it holds at
        // most 512 slots (and `head` fits its u16).
        let head = usize::from(self.head);
        if head > 0 && self.events.len() == self.events.capacity() && 2 * head >= self.events.len()
        {
            self.events.drain(..head);
            self.head = 0;
        }
        self.events.push(ev);
    }

    fn pop_front(&mut self) -> Option<SessionEvent> {
        let at = usize::from(self.head);
        let slot = self.events.get_mut(at)?;
        let ev = std::mem::replace(slot, SessionEvent::Tick);
        if at + 1 == self.events.len() {
            self.events = Vec::new();
            self.head = 0;
        } else {
            self.head += 1;
        }
        Some(ev)
    }

    /// Not ended, and following `upstream` since its `seq`th follow.
    fn follows(&self, upstream: UpstreamId, seq: u32) -> bool {
        !self.closed && self.following == (upstream, seq)
    }
}

/// One session's inbox; the router holds one end, the session task the
/// other (both through an `Arc`).
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// The session's accepted work, which the router balances by: here
    /// rather than in an allocation of its own beside the mailbox.
    work: SessionWork,
}

impl Mailbox {
    /// The session's accepted work so far (written by its task only).
    pub fn work(&self) -> &SessionWork {
        &self.work
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned lock's data is fine.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves an event without waiting, or hands it back.
    pub fn try_send(&self, ev: SessionEvent) -> Result<(), SendError> {
        let waiter = {
            let mut q = self.lock();
            if q.closed {
                return Err(SendError::Closed(ev));
            }
            if q.unread() >= MAILBOX_CAPACITY {
                return Err(SendError::Full(ev));
            }
            q.push(ev);
            q.waiter.take()
        };
        // Woken outside the lock; a task not waiting yet finds the event
        // when it next looks.
        if let Some(w) = waiter {
            w.wake();
        }
        Ok(())
    }

    /// The next event without waiting; an empty queue gives its memory
    /// back.
    pub fn try_recv(&self) -> Option<SessionEvent> {
        Self::pop(&mut self.lock())
    }

    fn pop(q: &mut Queue) -> Option<SessionEvent> {
        if q.shutdown {
            return Some(SessionEvent::Close);
        }
        let ev = q.pop_front();
        // After the queue: a move queued before a job takes the session to
        // the new upstream, whose latest job it then reads.
        ev.or_else(|| std::mem::take(&mut q.job_ready).then_some(SessionEvent::JobReady))
            .or_else(|| std::mem::take(&mut q.tick_due).then_some(SessionEvent::Tick))
    }

    /// The session follows `upstream`'s jobs from now on, and reads its
    /// latest at once ([`SessionEvent::JobReady`]). Returns the number to
    /// list it under ([`crate::fanout::JobListeners::add`]).
    pub fn follow(&self, upstream: UpstreamId) -> u32 {
        let mut q = self.lock();
        let seq = q.following.1.wrapping_add(1);
        q.following = (upstream, seq);
        q.job_ready = true;
        seq
    }

    /// Runs `mark` under the lock; when it marked something, wakes the
    /// waiting task, outside the lock (a task not waiting yet finds the
    /// mark when it next looks).
    fn mark(&self, mark: impl FnOnce(&mut Queue) -> bool) -> bool {
        let waiter = {
            let mut q = self.lock();
            if !mark(&mut q) {
                return false;
            }
            q.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        true
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The session's tick: marks the mailbox and wakes the session. False
    /// when it has ended (its group forgets it).
    pub fn tick(&self) -> bool {
        self.mark(|q| {
            q.tick_due = !q.closed;
            q.tick_due
        })
    }

    /// Whether the session still follows `upstream` since its `seq`th
    /// [`Mailbox::follow`] (and has not ended).
    pub fn follows(&self, upstream: UpstreamId, seq: u32) -> bool {
        self.lock().follows(upstream, seq)
    }

    /// A job was published on `upstream`: marks the mailbox and wakes the
    /// session, if it still follows that upstream since its `seq`th
    /// [`Mailbox::follow`]. False when it does not (or has ended): the
    /// upstream forgets it.
    pub fn job_ready(&self, upstream: UpstreamId, seq: u32) -> bool {
        self.mark(|q| {
            let follows = q.follows(upstream, seq);
            q.job_ready |= follows;
            follows
        })
    }

    /// Waits for the next event. One task reads a mailbox: a second
    /// waiting at once would take the first one's place.
    pub fn recv(&self) -> impl Future<Output = SessionEvent> + '_ {
        std::future::poll_fn(move |cx| {
            let mut q = self.lock();
            if let Some(ev) = Self::pop(&mut q) {
                q.waiter = None;
                return Poll::Ready(ev);
            }
            match &mut q.waiter {
                Some(w) => w.clone_from(cx.waker()),
                None => q.waiter = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// Tells the session to end (the proxy is stopping), whatever its
    /// queue holds: unlike a sent [`SessionEvent::Close`] this cannot find
    /// the mailbox full.
    pub fn shutdown(&self) {
        self.mark(|q| {
            q.shutdown = true;
            true
        });
    }

    /// Refuses further events and hands back those never read (the
    /// session ended with them waiting).
    pub fn close(&self) -> Vec<SessionEvent> {
        let mut q = self.lock();
        q.closed = true;
        q.waiter = None;
        let head = usize::from(std::mem::take(&mut q.head));
        let mut unread = std::mem::take(&mut q.events);
        unread.drain(..head);
        unread
    }
}

/// Sessions to mark, by weak pointer (an upstream's job listeners, a
/// tick group): an entry keeps its `T` and is dropped once its session
/// ended or no longer wants the marks.
#[derive(Debug)]
pub struct MailboxList<T> {
    list: Mutex<Listed<T>>,
}

#[derive(Debug)]
struct Listed<T> {
    entries: Vec<(Weak<Mailbox>, T)>,
    /// Entries after the last pruning: a list nothing marks for a long
    /// time while sessions come and go is pruned as it grows.
    kept: usize,
}

impl<T> Default for MailboxList<T> {
    fn default() -> Self {
        Self {
            list: Mutex::new(Listed {
                entries: Vec::new(),
                kept: 0,
            }),
        }
    }
}

impl<T> MailboxList<T> {
    fn lock(&self) -> MutexGuard<'_, Listed<T>> {
        // Nothing panics while holding it; a poisoned list is still whole.
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session; when the list has doubled since it was last
    /// pruned, first drops the entries `wanted` says no to.
    pub fn add(&self, mailbox: &Arc<Mailbox>, t: T, wanted: impl Fn(&Mailbox, &T) -> bool) {
        let mut l = self.lock();
        if l.entries.len() >= 2 * l.kept + 64 {
            l.entries
                .retain(|(m, t)| m.upgrade().is_some_and(|m| wanted(m.as_ref(), t)));
            l.kept = l.entries.len();
        }
        l.entries.push((Arc::downgrade(mailbox), t));
    }

    /// Calls `mark` on every listed session; keeps those it returns true
    /// for.
    pub fn mark_all(&self, mark: impl Fn(&Mailbox, &T) -> bool) {
        let mut l = self.lock();
        l.entries
            .retain(|(m, t)| m.upgrade().is_some_and(|m| mark(m.as_ref(), t)));
        l.kept = l.entries.len();
    }

    /// Sessions listed (some may have ended since the last marking).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no session is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_ends_the_session_even_with_a_full_queue() {
        let m = Arc::new(Mailbox::default());
        while m.try_send(SessionEvent::Close).is_ok() {}
        // Read first, though the queue is full; what was queued is still
        // handed back on close (to be booked).
        m.shutdown();
        assert!(matches!(m.recv().await, SessionEvent::Close));
        assert_eq!(m.close().len(), MAILBOX_CAPACITY);
        // A waiting session is woken by it.
        let m = Arc::new(Mailbox::default());
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.recv().await }
        });
        tokio::task::yield_now().await;
        m.shutdown();
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(matches!(ev, SessionEvent::Close));
    }

    #[tokio::test]
    async fn a_send_before_the_wait_is_not_lost_and_memory_is_given_back() {
        let m = Arc::new(Mailbox::default());
        m.try_send(SessionEvent::Close).expect("room");
        assert!(matches!(m.recv().await, SessionEvent::Close));
        assert_eq!(
            m.lock().events.capacity(),
            0,
            "drained queue keeps no memory"
        );
        // A send while the task waits wakes it.
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.recv().await }
        });
        tokio::task::yield_now().await;
        m.try_send(SessionEvent::Close).expect("room");
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(ev, SessionEvent::Close));
    }

    fn result(n: u32) -> SessionEvent {
        SessionEvent::Result(crate::upstream::UpstreamResult {
            session: 1,
            accepted: true,
            difficulty: f64::from(n),
            latency: None,
            reject: None,
            share: crate::upstream::ShareInfo {
                worker: None,
                pool: 0,
                value: sluice_books::JobValue {
                    difficulty: 1.0,
                    reward_sat: None,
                },
                received: None,
                upstream_difficulty: 1.0,
            },
        })
    }

    fn number(ev: SessionEvent) -> u32 {
        match ev {
            SessionEvent::Result(r) => r.difficulty as u32,
            other => panic!("not a result: {other:?}"),
        }
    }

    #[test]
    fn a_mailbox_and_its_arc_fit_in_96_bytes() {
        // One per connection: 97 to 112 bytes is the next size class.
        let n = size_of::<Mailbox>() + 2 * size_of::<usize>();
        assert!(n <= 96, "{n} bytes");
    }

    #[test]
    fn events_come_out_in_order_from_a_queue_never_emptied() {
        let m = Mailbox::default();
        let (mut sent, mut read) = (0u32, 0u32);
        // One to five waiting at every moment, for thousands of events:
        // the read part is dropped as it goes, so the queue stays small.
        for round in 0..5_000u32 {
            for _ in 0..1 + round % 2 {
                m.try_send(result(sent)).expect("room");
                sent += 1;
            }
            let keep = 1 + round % 3;
            while m.lock().unread() > keep as usize {
                assert_eq!(number(m.try_recv().expect("queued")), read);
                read += 1;
            }
            assert!(m.lock().events.capacity() <= 16, "round {round}");
        }
        // A slow session, its queue kept full: the vector grows once, then
        // drops what was read in halves, in order still.
        while m.try_send(result(sent)).is_ok() {
            sent += 1;
        }
        for _ in 0..2_000 {
            assert_eq!(number(m.try_recv().expect("queued")), read);
            read += 1;
            m.try_send(result(sent)).expect("room for one");
            sent += 1;
            assert_eq!(m.lock().unread(), MAILBOX_CAPACITY);
            assert!(m.lock().events.capacity() <= 2 * MAILBOX_CAPACITY);
        }
        // Closing hands back the unread ones, in order.
        let rest: Vec<u32> = m.close().into_iter().map(number).collect();
        assert_eq!(rest, (read..sent).collect::<Vec<_>>());
    }

    #[test]
    fn bounded_and_closed_mailboxes_hand_events_back() {
        let m = Mailbox::default();
        for _ in 0..MAILBOX_CAPACITY {
            m.try_send(SessionEvent::Close).expect("room");
        }
        assert!(matches!(
            m.try_send(SessionEvent::Close),
            Err(SendError::Full(SessionEvent::Close))
        ));
        let unread = m.close();
        assert_eq!(
            unread.len(),
            MAILBOX_CAPACITY,
            "close hands back the unread"
        );
        assert!(matches!(
            m.try_send(SessionEvent::Close),
            Err(SendError::Closed(SessionEvent::Close))
        ));
    }
}
