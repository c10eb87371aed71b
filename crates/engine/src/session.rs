//! One downstream Stratum V1 session as a sans-IO state machine.
//!
//! It takes lines, jobs and clock ticks, and pushes [`Output`]s (lines to
//! write, shares to forward, a disconnect) into a caller-owned buffer. The
//! tokio task in [`crate::server`] owns the socket; this type owns the
//! protocol, which is what makes it testable without sockets or real time.
//!
//! Share path: fast submit parse → job lookup (stale by clean-job epoch) →
//! field checks → [`ShareChecker`] (midstates, cached merkle roots) →
//! target → duplicate → forward (blocks first) → reply. No lock, and no
//! allocation beyond the duplicate set's growth.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};
use sluice_books::{Books, JobValue, ShareKind, Worker as BookWorker};
use sluice_pow::{ShareChecker, Submission, Target, hex};
use sluice_sv1::message::{self as msg, ClientRequest};
use sluice_sv1::{SubmitRef, parse_client, parse_submit};
use tokio::sync::mpsc;

use std::sync::atomic::Ordering;

use crate::job::{Extranonce, Job, ShareForward, UpstreamId};
use crate::limits::{NameQuota, Prefixes};
use crate::stats::{Disconnect, Reject, Stats};
use crate::vardiff::{Vardiff, VardiffConfig};

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

/// Per-session tallies (the books read these).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionCounters {
    /// Accepted shares.
    pub accepted: u64,
    /// Σ difficulty of accepted shares.
    pub accepted_work: f64,
    /// Σ difficulty of shares rejected for work reasons (stale, low, dup…).
    pub rejected_work: f64,
    /// Rejects by reason (index = `Reject as usize`).
    pub rejected: [u64; Reject::ALL.len()],
    /// Blocks found.
    pub blocks: u64,
    /// Forwarded shares the pool accepted.
    pub upstream_accepted: u64,
    /// Forwarded shares the pool rejected (or that had nowhere to go).
    pub upstream_rejected: u64,
}

/// A hasher for keys that are already uniformly random (hash prefixes).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
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

struct JobEntry {
    job: Arc<Job>,
    /// The difficulty in force when the job was sent: its shares are
    /// credited at this, whatever vardiff did since.
    difficulty: f64,
    target: Target,
    /// Built on the first share for the job; boxed, because most jobs of
    /// a slow miner never see a share and a session keeps several jobs
    /// (inline it would cost ~700 bytes per job per connection).
    checker: Option<Box<ShareChecker>>,
    /// First 8 bytes of accepted hashes: a resubmitted share hashes alike.
    seen: HashSet<u64, BuildHasherDefault<IdHasher>>,
    /// Set when the job's upstream failed or a clean job superseded it.
    stale: bool,
    /// Version bits the miner may roll on this job (what it was told).
    mask: u32,
    /// The pool's mask in force for this job (it can change at once).
    pool_mask: u32,
    /// Earlier ids of the same work (re-issued under a new mask): shares
    /// on them land here, with one duplicate set.
    aliases: Vec<u64>,
}

/// A share as the core checks it: decoded, in no protocol's encoding.
#[derive(Clone, Copy, Debug)]
pub struct Share<'a> {
    /// The miner's part of the extranonce (after the channel's prefix).
    pub extranonce: &'a [u8],
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The header version, as the protocol states it.
    pub version: VersionIn,
}

/// How a share states its header version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionIn {
    /// Not at all: the job's version.
    Job,
    /// Rolled bits (V1 `version_bits`), combined with the job's version
    /// by the job's rolling rule.
    Bits(u32),
    /// The whole version (V2): it may differ from the job's only in the
    /// bits the miner was allowed to roll.
    Full(u32),
}

/// What became of a share: the adapter answers the miner with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Taken, at this difficulty; `block` when it meets the network
    /// target.
    Accepted {
        /// The difficulty it was credited at.
        difficulty: f64,
        /// It is a block candidate.
        block: bool,
    },
    /// Refused, for this reason (already counted and booked).
    Rejected(Reject),
}

/// One stream of jobs to a miner and the shares against them: its
/// extranonce prefix, difficulty and version mask, and the jobs it may
/// still submit to. Nothing in it is V1: a V1 connection has exactly one,
/// a V2 connection one per open channel.
struct Channel {
    /// The miner's extranonce1 (its prefix): empty until subscribe when
    /// it comes from the session's `prefixes`.
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    /// Mask agreed with the miner (0 when it never configured rolling).
    version_mask: u32,
    /// The mask last announced to the miner.
    sent_mask: Option<u32>,
    /// Latest clean-job epoch seen per upstream: a job from a newer epoch
    /// is clean even if an intermediate clean job was skipped.
    epochs: Vec<(UpstreamId, u64)>,
    vardiff: Vardiff,
    /// Set by the miner (`d=` in a V1 password): vardiff stays off.
    fixed_difficulty: bool,
    sent_difficulty: Option<f64>,
    jobs: VecDeque<JobEntry>,
    latest: Option<Arc<Job>>,
    /// The next job sent must be clean (first job, or first after moving
    /// upstream).
    force_clean: bool,
    /// Pool and value of the latest job sent: rejected work is valued at
    /// it (the network rate does not depend on which job it was).
    last_value: (Option<usize>, JobValue),
    /// How far past its job's ntime a share's ntime may be, in seconds.
    ntime_max_forward_secs: u32,
}

impl Channel {
    fn new(
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        cfg: &SessionConfig,
        now: Instant,
    ) -> Self {
        Self {
            extranonce1,
            extranonce2_size,
            version_mask: 0,
            sent_mask: None,
            epochs: Vec::new(),
            vardiff: Vardiff::new(
                cfg.vardiff.clone(),
                cfg.start_difficulty,
                cfg.min_difficulty,
                cfg.max_difficulty,
                now,
            ),
            fixed_difficulty: false,
            sent_difficulty: None,
            jobs: VecDeque::new(),
            latest: None,
            force_clean: true,
            last_value: (None, JobValue::default()),
            ntime_max_forward_secs: cfg.ntime_max_forward_secs,
        }
    }

    /// What a share on a job the channel does not know counts as: almost
    /// always a job dropped after `max_jobs`, or one from before a
    /// reconnect, so the miner hashed for it at about the current
    /// difficulty, and submitted hashrate is the work it did. A miner
    /// inventing ids only lowers its own figures (and is disconnected
    /// after enough bad requests in a row).
    fn unknown_job(&self) -> (Reject, f64) {
        (Reject::JobNotFound, self.vardiff.difficulty())
    }

    /// The slot of the job a share names (the newest entry with that id,
    /// or with it among its earlier ids).
    fn find_job(&self, id: u64) -> Result<usize, (Reject, f64)> {
        self.jobs
            .iter()
            .rposition(|e| e.job.id == id || e.aliases.contains(&id))
            .ok_or_else(|| self.unknown_job())
    }

    /// The time check of [`Channel::check`] on its own, for adapters
    /// that find a bad field only after it (the reject order is fixed).
    fn check_ntime(&self, slot: usize, ntime: u32) -> Result<(), (Reject, f64)> {
        let Some(entry) = self.jobs.get(slot) else {
            return Err(self.unknown_job());
        };
        if !in_ntime_window(entry.job.ntime, ntime, self.ntime_max_forward_secs) {
            return Err((Reject::NtimeOutOfRange, entry.difficulty));
        }
        Ok(())
    }

    /// Checks a decoded share against the job in `slot` (from
    /// [`Channel::find_job`]): on failure, the reason and the difficulty
    /// the miner was working at (0 for protocol errors, which are no
    /// work). An accepted share is in the job's duplicate set.
    fn check(
        &mut self,
        slot: usize,
        share: &Share<'_>,
        worker: Arc<str>,
        session: SessionId,
        now: Instant,
    ) -> Result<ShareForward, (Reject, f64)> {
        let en2_size = self.extranonce2_size;
        let ntime_fwd = self.ntime_max_forward_secs;
        let Some(entry) = self.jobs.get_mut(slot) else {
            return Err((Reject::JobNotFound, self.vardiff.difficulty()));
        };
        let d = entry.difficulty;
        if share.extranonce.len() != en2_size {
            return Err((Reject::BadExtranonce2Size, 0.0));
        }
        let job = &entry.job;
        if !in_ntime_window(job.ntime, share.ntime, ntime_fwd) {
            return Err((Reject::NtimeOutOfRange, d));
        }
        let mask = entry.mask;
        let version = match share.version {
            VersionIn::Job => job.version,
            VersionIn::Bits(bits) => {
                if sluice_pow::version::outside_mask(bits, mask) {
                    return Err((Reject::VersionOutsideMask, d));
                }
                job.rolling_rule.apply(job.version, mask, bits)
            }
            VersionIn::Full(v) => {
                if (v ^ job.version) & !mask != 0 {
                    return Err((Reject::VersionOutsideMask, d));
                }
                v
            }
        };
        if entry.checker.is_none() {
            let c = ShareChecker::new(
                job.template.clone(),
                &self.extranonce1,
                en2_size,
                entry.target,
            )
            .map_err(|_| (Reject::BadExtranonce2Size, 0.0))?;
            entry.checker = Some(Box::new(c));
        }
        let Some(checker) = entry.checker.as_mut() else {
            return Err((Reject::Malformed, 0.0));
        };
        let r = checker
            .check(&Submission {
                extranonce2: share.extranonce,
                time: share.ntime,
                nonce: share.nonce,
                version,
            })
            .map_err(|_| (Reject::BadExtranonce2Size, 0.0))?;
        // A stale job's share is still hashed: if it is a block (a forced
        // clean job on the same tip, firmware that ignores clean_jobs), it
        // goes up anyway; otherwise it is stale.
        if entry.stale && !r.meets_network_target {
            return Err((Reject::Stale, d));
        }
        // A block is never refused, even where the network target is
        // easier than the session's (regtest, test chains).
        if !r.meets_share_target && !r.meets_network_target {
            return Err((Reject::LowDifficulty, d));
        }
        // A share that can go nowhere is not answered `true` (a block
        // still is: it waits in the block log for its pool to return).
        if !r.meets_network_target && !entry.job.links.up.load(Ordering::Acquire) {
            return Err((Reject::NoUpstream, d));
        }
        if !entry.seen.insert(seen_key(&r.hash)) {
            return Err((Reject::Duplicate, d));
        }
        let extranonce2 = Extranonce::from_parts(&[&self.extranonce1, share.extranonce])
            .ok_or((Reject::BadExtranonce2Size, 0.0))?;
        Ok(ShareForward {
            session,
            worker,
            job: entry.job.clone(),
            extranonce2,
            ntime: share.ntime,
            nonce: share.nonce,
            version,
            difficulty: d,
            pool_mask: entry.pool_mask,
            hash: r.hash,
            is_block: r.meets_network_target,
            received: now,
        })
    }

    /// Takes a new job from the channel's upstream as the next to send;
    /// marks what it supersedes stale.
    fn on_job(&mut self, job: Arc<Job>) {
        // The job feed keeps only the latest job, so a clean job may have
        // been skipped: a newer epoch means clean all the same.
        let newer_epoch = match self.epochs.iter_mut().find(|(u, _)| *u == job.upstream) {
            Some((_, e)) => {
                let newer = job.epoch > *e;
                *e = (*e).max(job.epoch);
                newer
            }
            None => {
                if self.epochs.len() >= 16 {
                    self.epochs.remove(0);
                }
                self.epochs.push((job.upstream, job.epoch));
                false
            }
        };
        if job.clean || newer_epoch {
            // Everything this upstream sent before is superseded.
            for e in self
                .jobs
                .iter_mut()
                .filter(|e| e.job.upstream == job.upstream)
            {
                e.stale = true;
            }
            if !job.clean {
                self.force_clean = true;
            }
        }
        self.latest = Some(job);
    }

    /// The channel was moved to another upstream; if the old one failed,
    /// its jobs are stale (their shares have nowhere to go).
    fn on_moved(&mut self, old: UpstreamId, old_failed: bool) {
        if old_failed {
            for e in self.jobs.iter_mut().filter(|e| e.job.upstream == old) {
                e.stale = true;
            }
        }
        // The old upstream's pending job must not be sent after the move.
        if self.latest.as_ref().is_some_and(|j| j.upstream == old) {
            self.latest = None;
        }
        self.force_clean = true;
    }

    /// Lets time pass (vardiff for quiet miners).
    fn on_tick(&mut self, now: Instant) {
        if !self.fixed_difficulty {
            let _ = self.vardiff.on_tick(now);
        }
    }

    /// The miner starts over: the next job goes out with everything it
    /// needs (difficulty, mask, clean), even the one it already had.
    fn restart(&mut self) {
        self.sent_difficulty = None;
        self.sent_mask = None;
        self.force_clean = true;
        if self.latest.is_none() {
            self.latest = self.jobs.back().map(|e| e.job.clone());
        }
    }

    /// Forgets an accepted hash (the share was refused after all, for want
    /// of room upstream: the same share again is no duplicate).
    fn unsee(&mut self, job: u64, hash: &[u8; 32]) {
        if let Some(e) = self.jobs.iter_mut().find(|e| e.job.id == job) {
            e.seen.remove(&seen_key(hash));
        }
    }
}

/// One miner connection.
pub struct Session {
    id: SessionId,
    cfg: Arc<SessionConfig>,
    stats: Arc<Stats>,
    subscribed: bool,
    user_agent: Option<String>,
    /// Authorized names and their books.
    workers: HashMap<Arc<str>, Option<Arc<BookWorker>>>,
    books: Option<Arc<Books>>,
    peer: Option<IpAddr>,
    /// Where the prefix comes from (taken at subscribe, given back at
    /// drop); `None` when the prefix was fixed at construction.
    prefixes: Option<Arc<Prefixes>>,
    /// Names held against the source address's quota.
    quota: Option<(Arc<NameQuota>, IpAddr)>,
    quota_held: usize,
    extranonce_subscribed: bool,
    /// The connection's one channel (V1 has no others).
    ch: Channel,
    consecutive_bad: u32,
    counters: SessionCounters,
}

impl Session {
    /// A new session that will hand the miner `extranonce1` (its prefix)
    /// and `extranonce2_size`.
    pub fn new(
        id: SessionId,
        cfg: Arc<SessionConfig>,
        stats: Arc<Stats>,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        now: Instant,
    ) -> Self {
        let ch = Channel::new(extranonce1, extranonce2_size, &cfg, now);
        Self {
            id,
            cfg,
            stats,
            subscribed: false,
            user_agent: None,
            workers: HashMap::new(),
            books: None,
            peer: None,
            prefixes: None,
            quota: None,
            quota_held: 0,
            extranonce_subscribed: false,
            ch,
            consecutive_bad: 0,
            counters: SessionCounters::default(),
        }
    }

    /// Keeps books for this session's workers; `peer` is shown with them.
    pub fn with_books(mut self, books: Arc<Books>, peer: Option<IpAddr>) -> Self {
        self.books = Some(books);
        self.peer = peer;
        self
    }

    /// Takes the miner's prefix from `prefixes` at subscribe (not at
    /// accept: a connection that never subscribes holds none).
    pub fn with_prefixes(mut self, prefixes: Arc<Prefixes>) -> Self {
        self.prefixes = Some(prefixes);
        self
    }

    /// Holds the worker names this session authorizes against `ip`'s
    /// share of `quota`.
    pub fn with_name_quota(mut self, quota: Arc<NameQuota>, ip: IpAddr) -> Self {
        self.quota = Some((quota, ip));
        self
    }

    /// The session number.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The miner's extranonce1 (its prefix).
    pub fn extranonce1(&self) -> &[u8] {
        &self.ch.extranonce1
    }

    /// Tallies so far.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Authorized worker names.
    pub fn workers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.workers.keys()
    }

    /// The user agent from `mining.subscribe`.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.ch.vardiff.difficulty()
    }

    /// True once subscribed and authorized: jobs flow.
    pub fn is_ready(&self) -> bool {
        self.subscribed && !self.workers.is_empty()
    }

    /// Handles one line from the miner.
    pub fn on_line(&mut self, line: &[u8], now: Instant, out: &mut Vec<Output>) {
        if let Some(s) = parse_submit(line) {
            self.on_submit(&s, now, out);
        } else {
            match parse_client(line) {
                Ok(req) => self.on_request(req, now, out),
                Err(e) => {
                    tracing::debug!(session = self.id, error = %e, "bad request");
                    self.bad(Reject::Malformed, b"null", out);
                }
            }
        }
        if self.consecutive_bad > self.cfg.max_consecutive_bad {
            out.push(Output::Disconnect(Disconnect::RepeatOffender));
        }
    }

    fn bad(&mut self, r: Reject, id: &[u8], out: &mut Vec<Output>) {
        self.consecutive_bad += 1;
        self.reject(r, id, out);
    }

    fn reject(&mut self, r: Reject, id: &[u8], out: &mut Vec<Output>) {
        self.count_reject(r);
        out.push(Output::Send(msg::encode_error(id, r.code(), r.message())));
    }

    fn count_reject(&mut self, r: Reject) {
        self.stats.reject(r);
        self.counters.rejected[r as usize] += 1;
    }

    fn on_request(&mut self, req: msg::Request, now: Instant, out: &mut Vec<Output>) {
        let id = req.id.as_bytes();
        match req.body {
            ClientRequest::Subscribe { user_agent, .. } => {
                if self.ch.extranonce1.is_empty()
                    && let Some(p) = &self.prefixes
                {
                    match p.alloc() {
                        Some(prefix) => self.ch.extranonce1 = prefix,
                        None => {
                            tracing::warn!(
                                "extranonce prefixes exhausted; raise session_prefix_bytes"
                            );
                            out.push(Output::Send(msg::encode_error(
                                id,
                                sluice_sv1::ErrorCode::Other,
                                "Server full",
                            )));
                            out.push(Output::Disconnect(Disconnect::NoPrefix));
                            return;
                        }
                    }
                }
                if self.subscribed {
                    // Subscribed again on the same connection: the miner
                    // starts over, so tell it everything again.
                    self.ch.restart();
                }
                self.subscribed = true;
                self.user_agent = user_agent.map(|mut u| {
                    // Cut on a character boundary: the agent is untrusted text.
                    let mut n = u.len().min(128);
                    while !u.is_char_boundary(n) {
                        n -= 1;
                    }
                    u.truncate(n);
                    u
                });
                let sub_id = format!("{:x}", self.id);
                out.push(Output::Send(msg::encode_subscribe_result(
                    id,
                    &sub_id,
                    &self.ch.extranonce1,
                    self.ch.extranonce2_size,
                )));
                self.maybe_start(now, out);
            }
            ClientRequest::Authorize { username, password } => {
                let ok = !username.is_empty()
                    && username.len() <= self.cfg.max_worker_len
                    && !username.chars().any(char::is_control);
                if !ok {
                    self.bad(Reject::Unauthorized, id, out);
                    return;
                }
                if let Some(d) = password.as_deref().and_then(password_difficulty) {
                    self.ch.vardiff.set(d, now);
                    self.ch.fixed_difficulty = true;
                }
                if !self.workers.contains_key(username.as_str()) {
                    if self.workers.len() >= self.cfg.max_workers_per_connection {
                        self.bad(Reject::TooManyWorkers, id, out);
                        return;
                    }
                    if let Some((q, ip)) = &self.quota {
                        if !q.take(*ip) {
                            self.bad(Reject::TooManyWorkers, id, out);
                            return;
                        }
                        self.quota_held += 1;
                    }
                    // The books get a row at the worker's first accepted
                    // share, not here: names that never share cost nothing
                    // and cannot fill the table.
                    self.workers.insert(username.into(), None);
                }
                out.push(Output::Send(msg::encode_true(id)));
                self.maybe_start(now, out);
            }
            ClientRequest::Configure { extensions, params } => {
                let result = self.configure(&extensions, &params);
                out.push(Output::Send(msg::encode_result(id, &Value::Object(result))));
            }
            ClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                out.push(Output::Send(msg::encode_true(id)));
            }
            ClientRequest::SuggestDifficulty(d) | ClientRequest::SuggestTarget(d) => {
                if !self.ch.fixed_difficulty {
                    self.ch.vardiff.set(d, now);
                }
                if !req.id.is_null() {
                    out.push(Output::Send(msg::encode_true(id)));
                }
            }
            ClientRequest::Submit(s) => {
                let s = s.as_ref(&req.id);
                self.on_submit(&s, now, out);
            }
            ClientRequest::Unknown(method) => {
                tracing::debug!(session = self.id, %method, "unknown method");
                self.bad(Reject::UnknownMethod, id, out);
            }
        }
    }

    /// BIP 310: answer only what was asked.
    fn configure(
        &mut self,
        extensions: &[String],
        params: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut result = Map::new();
        for ext in extensions {
            match ext.as_str() {
                "version-rolling" => {
                    let theirs = params
                        .get("version-rolling.mask")
                        .and_then(Value::as_str)
                        .and_then(|m| u32::from_str_radix(m, 16).ok())
                        .unwrap_or(u32::MAX);
                    let min_bits = params
                        .get("version-rolling.min-bit-count")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let mask = theirs & self.cfg.version_mask;
                    let ok = mask != 0 && u64::from(mask.count_ones()) >= min_bits;
                    self.ch.version_mask = if ok { mask } else { 0 };
                    self.ch.sent_mask = Some(self.ch.version_mask);
                    result.insert(ext.clone(), Value::Bool(ok));
                    result.insert(
                        "version-rolling.mask".into(),
                        Value::from(format!("{:08x}", self.ch.version_mask)),
                    );
                }
                "minimum-difficulty" => {
                    let v = params
                        .get("minimum-difficulty.value")
                        .and_then(Value::as_f64);
                    match v {
                        Some(v) if v.is_finite() && v > 0.0 => {
                            self.ch.vardiff.set_min(v);
                            result.insert(ext.clone(), Value::Bool(true));
                        }
                        _ => {
                            result.insert(ext.clone(), Value::Bool(false));
                        }
                    }
                }
                "subscribe-extranonce" => {
                    self.extranonce_subscribed = true;
                    result.insert(ext.clone(), Value::Bool(true));
                }
                _ => {
                    result.insert(ext.clone(), Value::Bool(false));
                }
            }
        }
        result
    }

    /// A new job from the session's upstream.
    pub fn on_job(&mut self, job: Arc<Job>, now: Instant, out: &mut Vec<Output>) {
        self.ch.on_job(job);
        self.maybe_start(now, out);
    }

    /// The session was moved to another upstream; if the old one failed,
    /// its jobs are stale (their shares have nowhere to go).
    pub fn on_moved(&mut self, old: UpstreamId, old_failed: bool) {
        self.ch.on_moved(old, old_failed);
    }

    /// The pool's verdict on a share this session forwarded.
    pub fn on_upstream_result(&mut self, r: &crate::upstream::UpstreamResult, now: Instant) {
        if r.accepted {
            self.counters.upstream_accepted += 1;
        } else {
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
                book_reversal(books, w, r, now);
            }
        }
    }

    /// Lets time pass (vardiff for quiet miners).
    pub fn on_tick(&mut self, now: Instant) {
        self.ch.on_tick(now);
    }

    fn maybe_start(&mut self, _now: Instant, out: &mut Vec<Output>) {
        if !self.is_ready() {
            return;
        }
        let Some(job) = self.ch.latest.take() else {
            return;
        };
        if self.ch.jobs.back().is_some_and(|e| e.job.id == job.id) && !self.ch.force_clean {
            return;
        }
        // Work in = work credited: never above what the pool credits a
        // forwarded share of this job at.
        // A job re-issued under a new mask keeps the difficulty it was
        // first sent at (the same work, credited the same).
        let republished = job.republish_of.and_then(|old| {
            self.ch
                .jobs
                .iter()
                .position(|e| e.job.id == old || e.aliases.contains(&old))
        });
        let d = match republished {
            Some(pos) => self.ch.jobs[pos].difficulty,
            None => self.ch.vardiff.difficulty().min(job.pool_difficulty),
        };
        if self.ch.sent_difficulty != Some(d) {
            out.push(Output::Send(msg::encode_set_difficulty(d)));
            self.ch.sent_difficulty = Some(d);
        }
        // What the miner may roll: its mask and the upstream's, without the
        // bits the job version already sets — then BIP 310's replace rule
        // and ckpool's OR rule build the same header, and every pool
        // agrees with our hash.
        let mask = self.ch.version_mask & job.version_mask & !job.version;
        if self.ch.version_mask != 0 && self.ch.sent_mask != Some(mask) {
            out.push(Output::Send(msg::encode_set_version_mask(mask)));
            self.ch.sent_mask = Some(mask);
            // `mining.set_version_mask` takes effect at once, for the
            // jobs the miner still works on too: validate those with the
            // mask in force (less each job's own version bits).
            for e in self
                .ch
                .jobs
                .iter_mut()
                .filter(|e| e.job.upstream == job.upstream)
            {
                e.mask = self.ch.version_mask & job.version_mask & !e.job.version;
                e.pool_mask = job.version_mask;
            }
        }
        let line = job.v1_notify(self.ch.force_clean);
        self.ch.force_clean = false;
        self.ch.last_value = (Some(job.pool), job.value);
        out.push(Output::Send(line));
        // The same job again (after moving away and back): keep its
        // duplicate set, so a replayed share is still a duplicate.
        if let Some(pos) = self.ch.jobs.iter().position(|e| e.job.id == job.id)
            && let Some(mut e) = self.ch.jobs.remove(pos)
        {
            e.stale = false;
            e.mask = mask;
            self.ch.jobs.push_back(e);
            return;
        }
        // The same work re-issued under a new mask: one entry for both
        // ids (one duplicate set, the difficulty it was mined at).
        if let Some(pos) = republished
            && let Some(mut e) = self.ch.jobs.remove(pos)
        {
            e.aliases.push(e.job.id);
            e.job = job;
            e.mask = mask;
            self.ch.jobs.push_back(e);
            return;
        }
        let target = Target::from_difficulty(d).unwrap_or(Target::MAX);
        if self.ch.jobs.len() >= self.cfg.max_jobs {
            self.ch.jobs.pop_front();
        }
        let pool_mask = job.version_mask;
        self.ch.jobs.push_back(JobEntry {
            job,
            difficulty: d,
            target,
            checker: None,
            seen: HashSet::default(),
            stale: false,
            mask,
            pool_mask,
            aliases: Vec::new(),
        });
    }

    fn on_submit(&mut self, s: &SubmitRef<'_>, now: Instant, out: &mut Vec<Output>) {
        // One lookup of the worker per share: its name for the share, its
        // books for the outcome.
        let (name, book) = match self.workers.get_key_value(s.worker) {
            Some((k, b)) => (Some(k.clone()), b.clone()),
            None => (None, None),
        };
        let checked = self.check_submit(s, name, now);
        let reply = match self.settle(checked, book, now, out) {
            Verdict::Accepted { .. } => msg::encode_true(s.id),
            Verdict::Rejected(r) => msg::encode_error(s.id, r.code(), r.message()),
        };
        out.push(Output::Send(reply));
    }

    /// Settles a checked share: takes its place upstream, books and
    /// counts it, lets vardiff see it. A share to forward (a block first)
    /// goes into `out` before the adapter's reply.
    fn settle(
        &mut self,
        checked: Result<ShareForward, (Reject, f64)>,
        mut book: Option<Arc<BookWorker>>,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let checked = checked.and_then(|fwd| match Self::reserve(&fwd) {
            Ok(permit) => Ok((fwd, permit)),
            Err(r) => {
                // Refused for want of room upstream, not for the
                // share: the same share again later is no duplicate.
                self.ch.unsee(fwd.job.id, &fwd.hash);
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
                if !self.ch.fixed_difficulty {
                    let _ = self.ch.vardiff.on_share(d, now);
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
                let (pool, value) = self.ch.last_value;
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

    /// Records a share in its worker's books (if it keeps books).
    fn book(
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

    /// Validates a V1 submit: the connection checks, the job lookup, the
    /// hex fields decoded, then the channel's check. On failure, the
    /// reason and the difficulty the miner was working at.
    fn check_submit(
        &mut self,
        s: &SubmitRef<'_>,
        worker: Option<Arc<str>>,
        now: Instant,
    ) -> Result<ShareForward, (Reject, f64)> {
        if !self.subscribed {
            return Err((Reject::NotSubscribed, 0.0));
        }
        let Some(worker) = worker else {
            return Err((Reject::Unauthorized, 0.0));
        };
        let ch = &mut self.ch;
        let job_id = u64::from_str_radix(s.job_id, 16).map_err(|_| ch.unknown_job())?;
        let slot = ch.find_job(job_id)?;
        let en2_size = ch.extranonce2_size;
        if s.extranonce2.len() != 2 * en2_size {
            return Err((Reject::BadExtranonce2Size, 0.0));
        }
        let mut en2 = [0u8; 32];
        hex::decode_to_slice(s.extranonce2, &mut en2[..en2_size])
            .map_err(|_| (Reject::BadHex, 0.0))?;
        let ntime = hex::decode_u32_be(s.ntime).map_err(|_| (Reject::BadHex, 0.0))?;
        let nonce = hex::decode_u32_be(s.nonce).map_err(|_| (Reject::BadHex, 0.0))?;
        let version = match s.version_bits {
            None => VersionIn::Job,
            Some(v) => match hex::decode_u32_be(v) {
                Ok(bits) => VersionIn::Bits(bits),
                Err(_) => {
                    // Bad version hex has always been found after the
                    // time check: a share failing both stays out of range.
                    ch.check_ntime(slot, ntime)?;
                    return Err((Reject::BadHex, 0.0));
                }
            },
        };
        let share = Share {
            extranonce: &en2[..en2_size],
            ntime,
            nonce,
            version,
        };
        ch.check(slot, &share, worker, self.id, now)
    }
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

/// True when a share's time is at or after its job's, by at most
/// `forward` seconds.
fn in_ntime_window(job: u32, ntime: u32, forward: u32) -> bool {
    ntime >= job && ntime - job <= forward
}

/// A share's key in its job's duplicate set: the hash's first 8 bytes.
fn seen_key(hash: &[u8; 32]) -> u64 {
    u64::from_le_bytes([
        hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
    ])
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

impl Drop for Session {
    fn drop(&mut self) {
        for w in self.workers.values().flatten() {
            w.disconnected();
        }
        if let Some((q, ip)) = &self.quota {
            q.give_back(*ip, self.quota_held);
        }
        if let Some(p) = &self.prefixes
            && !self.ch.extranonce1.is_empty()
        {
            p.release(&self.ch.extranonce1);
        }
    }
}

/// Reads `d=N` from a password such as `x`, `d=4096` or `x,d=0.5`.
pub fn password_difficulty(password: &str) -> Option<f64> {
    password
        .split([',', ';', ' ', '&'])
        .filter_map(|kv| kv.strip_prefix("d="))
        .filter_map(|v| v.parse::<f64>().ok())
        .find(|d| d.is_finite() && *d > 0.0)
}

#[cfg(test)]
mod tests;
