//! What every downstream connection has, whatever its protocol: its
//! identity, the workers it authorized and their books, its tallies, and
//! the settling of a checked share (queue place, books, counters, vardiff)
//! into a [`Verdict`] for the adapter to answer with.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_books::{Books, JobValue, ShareKind, Worker as BookWorker};
use tokio::sync::mpsc;

use super::channel::{Channel, Verdict};
use super::names::Names;
use super::{Forward, Output, SessionConfig, SessionCounters, SessionId};
use crate::job::ShareForward;
use crate::limits::NameQuota;
use crate::stats::{Reject, Stats};

/// The protocol-neutral part of a connection.
pub(super) struct ConnCore {
    pub(super) id: SessionId,
    pub(super) cfg: Arc<SessionConfig>,
    pub(super) stats: Arc<Stats>,
    /// The books' shared copy when they are kept (see
    /// `sluice_books::agents`), a copy of its own otherwise.
    pub(super) user_agent: Option<Arc<str>>,
    /// Authorized names and their books.
    pub(super) workers: Names,
    pub(super) books: Option<Arc<Books>>,
    /// The miner's address: shown with its workers, and the key of its
    /// quota (one copy for both).
    pub(super) peer: Option<IpAddr>,
    /// Names held against `peer`'s quota (set together with `peer`).
    pub(super) quota: Option<Arc<NameQuota>>,
    pub(super) quota_held: usize,
    pub(super) consecutive_bad: u32,
    pub(super) counters: SessionCounters,
}

/// What a connection holds outside itself goes back however it ends, in
/// either protocol: its workers leave the books' connection count and its
/// names go back to its address's quota.
impl Drop for ConnCore {
    fn drop(&mut self) {
        for w in self.workers.values().flatten() {
            w.disconnected();
        }
        if let (Some(q), Some(ip)) = (&self.quota, self.peer) {
            q.give_back(ip, self.quota_held);
        }
    }
}

impl ConnCore {
    /// Keeps books for the connection's workers; `peer` is shown with
    /// them (an address the quota already set stays).
    pub(super) fn set_books(&mut self, books: Arc<Books>, peer: Option<IpAddr>) {
        self.books = Some(books);
        self.peer = peer.or(self.peer);
    }

    /// Keeps the miner's user agent: V1 cuts it to 128 bytes, V2's is
    /// two fields of at most 255 bytes, and the books cut theirs to 256
    /// characters.
    pub(super) fn set_user_agent(&mut self, ua: Option<&str>) {
        self.user_agent = ua.map(|u| match &self.books {
            Some(b) => b.agent(u),
            None => Arc::from(u),
        });
    }

    /// Holds the names the connection authorizes against `ip`'s share of
    /// `quota`: the quota is keyed by `peer`, so both are set here.
    pub(super) fn set_name_quota(&mut self, quota: Arc<NameQuota>, ip: IpAddr) {
        self.quota = Some(quota);
        self.peer = Some(ip);
    }

    /// Whether a worker name is acceptable at all: not empty, not too
    /// long, no control characters.
    pub(super) fn valid_name(name: &str, cfg: &SessionConfig) -> bool {
        !name.is_empty() && name.len() <= cfg.max_worker_len && !name.chars().any(char::is_control)
    }

    /// Adds a (valid) worker name to the connection, within its caps and
    /// its address's quota; a name already there is fine. Returns the
    /// shared name.
    pub(super) fn authorize(&mut self, name: &str) -> Result<Arc<str>, Reject> {
        if let Some((k, _)) = self.workers.get_key_value(name) {
            return Ok(k.clone());
        }
        if self.workers.len() >= self.cfg.max_workers_per_connection {
            return Err(Reject::TooManyWorkers);
        }
        if let (Some(q), Some(ip)) = (&self.quota, self.peer) {
            if !q.take(ip) {
                return Err(Reject::TooManyWorkers);
            }
            self.quota_held += 1;
        }
        // The books get a row at the worker's first accepted share, not
        // here: names that never share cost nothing and cannot fill the
        // table.
        let k: Arc<str> = name.into();
        self.workers.insert(k.clone(), None);
        Ok(k)
    }

    /// The pool's verdict on a share this connection forwarded: counted,
    /// and taken back in the books when refused.
    pub(super) fn on_upstream_result(&mut self, r: &crate::upstream::UpstreamResult, now: Instant) {
        if !r.accepted {
            self.counters.upstream_rejected += 1;
            // Credited when it passed here, refused (or never seen) by the
            // pool: the books take it back.
            // Only shares meeting the pool's target go up: when its
            // difficulty is above the miner's, each stands for that much
            // of the work credited here.
            if let (Some(books), Some(Some(w))) = (
                &self.books,
                r.share.worker.as_deref().and_then(|w| self.workers.get(w)),
            ) {
                super::book_reversal(books, w, r, now);
            }
        }
    }

    pub(super) fn new(id: SessionId, cfg: Arc<SessionConfig>, stats: Arc<Stats>) -> Self {
        ConnCore {
            id,
            cfg,
            stats,
            user_agent: None,
            workers: Names::default(),
            books: None,
            peer: None,
            quota: None,
            quota_held: 0,
            consecutive_bad: 0,
            counters: SessionCounters::default(),
        }
    }

    pub(super) fn count_reject(&mut self, r: Reject) {
        self.stats.reject(r);
    }

    /// Settles a checked share: takes its place upstream, books and
    /// counts it, lets vardiff see it. A share to forward (a block first)
    /// goes into `out` before the adapter's reply.
    pub(super) fn settle(
        &mut self,
        ch: &mut Channel,
        checked: Result<ShareForward, (Reject, f64)>,
        mut book: Option<Arc<BookWorker>>,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> Verdict {
        // Whatever the verdict, the named job's value is this share's only.
        let named = ch.checked_slot.take();
        let checked = checked.and_then(|fwd| match reserve(&fwd) {
            Ok(permit) => Ok((fwd, permit)),
            Err(r) => {
                // Refused for want of room upstream, not for the
                // share: the same share again later is no duplicate.
                ch.unsee(fwd.job.id, &fwd.hash);
                Err((r, fwd.difficulty))
            }
        });
        match checked {
            Ok((fwd, permit)) => {
                self.consecutive_bad = 0;
                if book.is_none()
                    && let Some(b) = &self.books
                {
                    // The worker's first accepted share: now it has books.
                    let w = b.connect_worker(
                        &fwd.worker,
                        self.peer,
                        self.user_agent.as_deref(),
                        b.clock().ms(now),
                    );
                    self.workers.insert(fwd.worker.clone(), Some(w.clone()));
                    book = Some(w);
                }
                let d = fwd.difficulty;
                let (pool, value, block) = (fwd.job.pool, fwd.job.value, fwd.is_block);
                if block {
                    // The block log counts candidates and logs them.
                    self.counters.blocks += 1;
                }
                // A block goes out before the miner hears anything; a share
                // below the pool's target stays here (credited in
                // expectation by the ones that meet it).
                if block || permit.is_some() {
                    out.push(Output::Forward(Box::new(Forward { share: fwd, permit })));
                }
                self.book(
                    book.as_deref(),
                    Some(pool),
                    &value,
                    d,
                    ShareKind::Accepted { block },
                    now,
                );
                self.counters.accepted += 1;
                self.counters.accepted_work += d;
                self.stats.accept(d);
                if !ch.fixed_difficulty {
                    let _ = ch.vardiff.on_share(self.cfg.vardiff_rules(), d, now);
                }
                Verdict::Accepted {
                    difficulty: d,
                    block,
                }
            }
            Err((r, work)) => {
                // A share on a job the session does not know is work done
                // on an old job (see Channel::unknown_job).
                let kind = match r {
                    Reject::Stale | Reject::JobNotFound => ShareKind::Stale(r as u8),
                    r if r.is_work() => ShareKind::RejectedWork(r as u8),
                    r => ShareKind::Refused(r as u8),
                };
                // Work on a job the session knows is that job's pool's;
                // on an unknown one, the latest job's.
                let (pool, value) = ch.booked_value(named);
                self.book(book.as_deref(), pool, &value, work, kind, now);
                if r.is_work() {
                    // Real work that does not count (stale, low, dup…):
                    // neither forgiven nor held against the miner.
                    self.counters.rejected_work += work;
                } else {
                    self.consecutive_bad += 1;
                }
                self.count_reject(r);
                Verdict::Rejected(r)
            }
        }
    }

    /// Records a share in its worker's books (if it keeps books).
    pub(super) fn book(
        &self,
        worker: Option<&BookWorker>,
        pool: Option<usize>,
        value: &JobValue,
        d: f64,
        kind: ShareKind,
        now: Instant,
    ) {
        let (Some(books), Some(w)) = (&self.books, worker) else {
            return;
        };
        books.record(w, pool, self.id, books.clock().ms(now), d, value, kind);
    }
}

/// Takes a place in the job's upstream queue for a share that meets
/// the pool's target (`None`: it stays here; a block has its own,
/// unbounded path). A share the upstream cannot take now is refused
/// here rather than answered `true` and lost.
fn reserve(share: &ShareForward) -> Result<Option<mpsc::OwnedPermit<ShareForward>>, Reject> {
    if share.is_block || !share.job.upstream_target.is_met_by(&share.hash) {
        return Ok(None);
    }
    match share.job.links.share_tx.clone().try_reserve_owned() {
        Ok(p) => Ok(Some(p)),
        Err(mpsc::error::TrySendError::Full(_)) => Err(Reject::PoolBusy),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(Reject::NoUpstream),
    }
}
