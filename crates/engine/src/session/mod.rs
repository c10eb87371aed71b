//! Downstream sessions as sans-IO state machines.
//!
//! Map: [`channel`](self) holds the protocol-neutral core (a channel's
//! jobs, difficulty and version mask, and the share check); `v1` is the
//! Stratum V1 adapter around it ([`Session`]); this file holds what both
//! share (config, outputs, counters, booking helpers).
//!
//! It takes lines, jobs and clock ticks, and pushes [`Output`]s (lines to
//! write, shares to forward, a disconnect) into a caller-owned buffer. The
//! tokio task in [`crate::server`] owns the socket; this type owns the
//! protocol, which is what makes it testable without sockets or real time.
//!
//! Share path: fast submit parse → job lookup (stale by clean-job epoch) →
//! field checks → [`ShareChecker`] (midstates, cached merkle roots) →
//! target → duplicate (`seen`, one set per channel) → forward
//! (blocks first) → reply. No lock, and no allocation beyond the
//! duplicate set's growth.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sluice_books::{Books, ShareKind, Worker as BookWorker};
use tokio::sync::mpsc;

use crate::job::ShareForward;
use crate::stats::{Disconnect, Reject};
use crate::vardiff::{Rules as VardiffRules, VardiffConfig};

mod channel;
mod conn;
mod epochs;
mod names;
mod seen;
mod v1;
mod v2;

pub use channel::{Share, Verdict, VersionIn};
pub use v1::{Session, password_difficulty};
pub use v2::{V2_VERSION_MASK, V2Conn};

/// Process-unique session number.
pub type SessionId = u64;

/// Session policy, shared by all sessions of a listener.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Lowest difficulty vardiff or a miner may choose.
    pub min_difficulty: f64,
    /// Highest difficulty.
    pub max_difficulty: f64,
    /// Difficulty of a new connection.
    pub start_difficulty: f64,
    /// Vardiff settings.
    pub vardiff: VardiffConfig,
    /// Version bits we let miners roll (intersected with theirs and with
    /// each job's upstream mask).
    pub version_mask: u32,
    /// How far past the job's ntime a share's ntime may be, in seconds.
    pub ntime_max_forward_secs: u32,
    /// Jobs kept per session for late shares on non-clean jobs.
    pub max_jobs: usize,
    /// Bad requests in a row before the connection is dropped.
    pub max_consecutive_bad: u32,
    /// Longest accepted worker name.
    pub max_worker_len: usize,
    /// Distinct worker names one connection may authorize (a proxy in
    /// front of us with pass-through names carries many).
    pub max_workers_per_connection: usize,
    /// Solo mining: each miner's username names the script its jobs'
    /// coinbase pays; `None`: everyone mines the upstream's job.
    pub solo: Option<SoloCheck>,
}

impl SessionConfig {
    /// What vardiff needs of this policy on each call.
    pub(crate) fn vardiff_rules(&self) -> VardiffRules<'_> {
        VardiffRules {
            cfg: &self.vardiff,
            max: self.max_difficulty,
        }
    }
}

/// Turns a solo miner's username into its payout script, or says why it
/// cannot be paid.
#[derive(Clone)]
pub struct SoloCheck(pub Arc<SoloFn>);

/// `username → payout script`, or why it cannot be paid.
pub type SoloFn = dyn Fn(&str) -> Result<Arc<[u8]>, String> + Send + Sync;

impl std::fmt::Debug for SoloCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoloCheck")
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            min_difficulty: 0.001,
            max_difficulty: 1e15,
            start_difficulty: 1024.0,
            vardiff: VardiffConfig::default(),
            version_mask: sluice_pow::version::BIP320_MASK,
            ntime_max_forward_secs: 7000,
            max_jobs: 8,
            max_consecutive_bad: 30,
            max_worker_len: 256,
            max_workers_per_connection: 10_000,
            solo: None,
        }
    }
}

/// What the session wants done.
#[derive(Debug)]
pub enum Output {
    /// Write this line to the miner.
    Send(Bytes),
    /// Send this share to its job's upstream (boxed: the share is large
    /// and rare next to replies, and outputs are buffered per session).
    Forward(Box<Forward>),
    /// Close the connection.
    Disconnect(Disconnect),
}

/// A share on its way up, with its place in its upstream's queue already
/// taken (so handing it over cannot fail or wait).
#[derive(Debug)]
pub struct Forward {
    /// The share.
    pub share: ShareForward,
    /// Its place in the job's share queue (`None` for a block, which has
    /// a path of its own).
    pub permit: Option<mpsc::OwnedPermit<ShareForward>>,
}

impl Forward {
    /// Hands the share to its upstream (a block: see the block path).
    pub fn send(self) -> Option<ShareForward> {
        match self.permit {
            Some(p) => {
                p.send(self.share);
                None
            }
            None => Some(self.share),
        }
    }
}

impl std::ops::Deref for Forward {
    type Target = ShareForward;
    fn deref(&self) -> &ShareForward {
        &self.share
    }
}

/// Per-session tallies (the books read these). Rejects by reason are
/// counted once, in the engine's [`Stats`](crate::stats::Stats), and per
/// worker in the books.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionCounters {
    /// Accepted shares.
    pub accepted: u64,
    /// Σ difficulty of accepted shares.
    pub accepted_work: f64,
    /// Σ difficulty of shares rejected for work reasons (stale, low, dup…).
    pub rejected_work: f64,
    /// Blocks found.
    pub blocks: u64,
    /// Forwarded shares the pool rejected (or that had nowhere to go).
    pub upstream_rejected: u64,
}

/// Takes back, in `worker`'s books, a share its pool refused or never
/// received (the session, or the result router when the session is gone).
/// Only shares meeting the pool's target go up: when its difficulty is
/// above the miner's, each stands for that much of the work credited.
pub fn book_reversal(
    books: &Books,
    worker: &BookWorker,
    r: &crate::upstream::UpstreamResult,
    now: Instant,
) {
    let d = if r.share.upstream_difficulty.is_finite() {
        r.difficulty.max(r.share.upstream_difficulty)
    } else {
        r.difficulty
    };
    let at = r.share.received.unwrap_or(now);
    books.record(
        worker,
        Some(r.share.pool),
        r.session,
        books.clock().ms(at),
        d,
        &r.share.value,
        ShareKind::UpstreamRejected(REASON_UPSTREAM_REJECTED),
    );
}

/// Reason index the books use for shares the pool refused (after the
/// engine's own reasons).
pub const REASON_UPSTREAM_REJECTED: u8 = Reject::ALL.len() as u8;

// Every reason the books are given must have its own slot there (and the
// books store its counts by index: a new reason is a new store schema).
const _: () = assert!(Reject::ALL.len() < sluice_books::tally::MAX_REASONS);

/// Names of the reason indices sessions book under (for `BooksConfig`).
pub fn book_reasons() -> Vec<&'static str> {
    Reject::ALL
        .iter()
        .map(|r| r.label())
        .chain(["upstream_rejected"])
        .collect()
}

#[cfg(test)]
mod tests;
