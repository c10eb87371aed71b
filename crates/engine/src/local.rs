//! The pool-node role's upstream: jobs from a local template source
//! instead of a remote pool.
//!
//! The task asks a [`TemplateSource`] (Bitcoin Core, or the synthetic
//! chain) for the job to mine, publishes it like any upstream, keeps a
//! per-worker tally of the shares sessions accepted, and starts submitting
//! a block the moment a share meets the network target — before anything
//! else is done with it. A source never makes this task wait on the
//! network: jobs come from the template it already holds, and a
//! submission runs on its own task and reports back.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sluice_books::ledger::{BlockRow, Ledger, ShareRow};
use sluice_pow::version::RollingRule;
use sluice_pow::{Header, JobTemplate, Target, hex};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::blocks::{BlockLog, BlockStatus};
use crate::job::{BlockForward, Job, JobLinks, ShareForward, UpstreamId};
use crate::stats::Stats;
use crate::upstream::{Health, JobIds, UpstreamResult};

/// A job from a template source, with the coinbase split around an
/// extranonce of the requested length.
#[derive(Clone, Debug)]
pub struct LocalJob {
    /// Previous block hash, header byte order.
    pub prev_hash: [u8; 32],
    /// Coinbase before the extranonce.
    pub coinb1: Vec<u8>,
    /// Coinbase after the extranonce.
    pub coinb2: Vec<u8>,
    /// Merkle branches for the coinbase.
    pub branches: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact target.
    pub nbits: u32,
    /// Block time.
    pub ntime: u32,
    /// Height of the block being mined.
    pub height: u32,
    /// Subsidy plus fees, satoshi.
    pub coinbase_value_sat: u64,
    /// Names the template the job was built from; a block on the job is
    /// assembled from it.
    pub token: u64,
    /// Solo mining: the coinbase for a miner's own payout script.
    pub payout: Option<crate::job::PayoutSplit>,
}

/// A block the source accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAccepted {
    /// Its height.
    pub height: u32,
    /// Its hash, display hex.
    pub hash: String,
}

/// Why a block did not go in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRefused {
    /// What the node said.
    pub reason: String,
    /// True for a verdict on the block (trying again changes nothing);
    /// false when the node was away or busy.
    pub is_final: bool,
}

/// A block submission under way.
pub type BlockSubmit = Pin<Box<dyn Future<Output = Result<BlockAccepted, BlockRefused>> + Send>>;

/// Where pool-node jobs come from. No method may wait on the network.
pub trait TemplateSource: Send + 'static {
    /// The job to mine now, from the template the source holds, its
    /// coinbase split around `extranonce_len` bytes.
    fn job(&mut self, now_unix: u32, extranonce_len: usize) -> Result<LocalJob, String>;
    /// Starts submitting a solved block of the job built from template
    /// `token`: the header and the legacy coinbase bytes.
    fn submit_block(&mut self, token: u64, header: &Header, coinbase: &[u8]) -> BlockSubmit;
    /// Lets time pass; true when the chain tip moved since the last call
    /// (a block found here or elsewhere), so a clean job is due.
    fn poll(&mut self, now_unix: u32) -> bool;
    /// Changes when the source has news for [`Self::poll`]; `None`: the
    /// task's 250 ms tick is enough.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// Jobs whose template token is remembered for their blocks.
const TOKENS_KEPT: usize = 256;

/// Shares the pool accepted from one worker.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkerTally {
    /// Shares.
    pub shares: u64,
    /// Σ difficulty.
    pub work: f64,
    /// Blocks found.
    pub blocks: u64,
}

/// Pool-node settings.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Re-issue the job (new ntime) this often even without a new block.
    pub refresh_interval: Duration,
    /// Version bits miners may roll.
    pub version_mask: u32,
    /// Extranonce bytes the coinbase leaves for prefix + miner.
    pub extranonce_len: usize,
}

/// The pool-node upstream task.
pub struct LocalTask<S: TemplateSource> {
    /// Connection number (there is one local upstream).
    pub id: UpstreamId,
    /// Settings.
    pub cfg: LocalConfig,
    /// The template source.
    pub source: S,
    /// Job numbering.
    pub job_ids: Arc<JobIds>,
    /// Engine counters.
    pub stats: Arc<Stats>,
    /// Config index of the pool (0: the node is the only one).
    pub pool: usize,
    /// The books (network difficulty and reward of each job).
    pub books: Option<Arc<sluice_books::Books>>,
    /// Publishes jobs.
    pub jobs: crate::fanout::JobBoard,
    /// Publishes health.
    pub health: watch::Sender<Health>,
    /// Shares from sessions.
    pub shares: mpsc::Receiver<ShareForward>,
    /// Blocks from sessions (their own path).
    pub blocks: mpsc::UnboundedReceiver<BlockForward>,
    /// What jobs carry back to this task.
    pub links: JobLinks,
    /// Where blocks and their fate are recorded.
    pub block_log: Arc<BlockLog>,
    /// Results back to sessions.
    pub results: mpsc::UnboundedSender<UpstreamResult>,
    /// Per-worker tallies (read by tests and the API).
    pub workers: Arc<DashMap<Arc<str>, WorkerTally>>,
    /// Blocks found.
    pub found: Arc<std::sync::Mutex<Vec<BlockAccepted>>>,
    /// Stops the task.
    pub cancel: CancellationToken,
    /// Template token and height of each recent job (fill with
    /// `Default`).
    pub tokens: VecDeque<(u64, u64, u32)>,
    /// The share ledger, when kept.
    pub ledger: Option<Arc<Ledger>>,
    /// The ledger is too far behind: sessions are told no pool can take
    /// shares until it catches up.
    pub ledger_blocked: bool,
    /// Blocks out for submission, by block-log id, until the node's
    /// verdict (fill with `Default`).
    pub block_times: HashMap<u64, BlockOut>,
}

/// A block between its first submission and the node's verdict.
#[derive(Clone, Copy, Debug)]
pub struct BlockOut {
    /// The time of its share, Unix ms (its PPLNS window ends there).
    pub time_ms: u64,
    /// When it was first submitted (tokio's clock: tests pause it).
    pub first: tokio::time::Instant,
}

/// How long a block the node could not take (away, restarting, warming
/// up, busy) is offered again: a node's restart takes minutes, and the
/// block is worth the wait. A verdict on the block ends it at once.
pub const BLOCK_RETRY_FOR: Duration = Duration::from_secs(600);

/// The wait before the n-th retry: 250 ms, doubling, at most 10 s.
fn retry_delay(attempts: u32) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(Duration::from_secs(10))
}

/// A submission's outcome, back on the task.
type Done = (BlockForward, u32, Result<BlockAccepted, BlockRefused>);

/// When the pool received `s`, Unix milliseconds.
fn share_time_ms(s: &ShareForward) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(s.received.elapsed()).as_millis() as u64
}

/// Seconds since the Unix epoch, as a block time.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl<S: TemplateSource> LocalTask<S> {
    fn publish(&mut self, clean: bool, epoch: &mut u64) {
        let lj = match self.source.job(unix_now(), self.cfg.extranonce_len) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "template source failed");
                self.links.up.store(false, Ordering::Release);
                let _ = self.health.send(Health::Failed(e));
                return;
            }
        };
        if clean {
            *epoch += 1;
        }
        let template =
            match JobTemplate::new(lj.prev_hash, lj.coinb1, lj.coinb2, lj.branches, lj.nbits) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "template has bad nbits");
                    return;
                }
            };
        let id = self.job_ids.next();
        self.tokens.push_back((id, lj.token, lj.height));
        if self.tokens.len() > TOKENS_KEPT {
            self.tokens.pop_front();
        }
        let job = Job {
            id,
            upstream: self.id,
            upstream_job_id: format!("{id:x}").into(),
            template: Arc::new(template),
            version: lj.version,
            // Sessions leave out the bits the template sets where the
            // miner can be told so (see the channel's `rollable`).
            version_mask: self.cfg.version_mask,
            rolling_rule: RollingRule::Replace,
            ntime: lj.ntime,
            clean,
            epoch: *epoch,
            // Every accepted share comes here: the pool keeps the books,
            // at the miner's own difficulty.
            upstream_target: Target::MAX,
            pool_difficulty: f64::INFINITY,
            upstream_extranonce1: Vec::new(),
            links: self.links.clone(),
            wire: crate::job::JobWire::default(),
            pool: self.pool,
            value: sluice_books::JobValue {
                difficulty: sluice_pow::target::nbits_difficulty(lj.nbits).unwrap_or(0.0),
                reward_sat: Some(lj.coinbase_value_sat),
            },
            extranonce_pad: 0,
            received: Instant::now(),
            republish_of: None,
            payout: lj.payout.clone(),
            paid_to: None,
        };
        if let Some(b) = &self.books {
            b.on_job(self.pool, &job.value, b.clock().now_ms());
        }
        job.encode_wire();
        self.jobs.publish(Arc::new(job));
        self.links.up.store(!self.ledger_blocked, Ordering::Release);
        let _ = self.health.send(Health::Ready);
    }

    /// Starts submitting a block (attempt `attempts`); its outcome comes
    /// back on `done`.
    fn submit(&mut self, b: BlockForward, attempts: u32, done: &mpsc::UnboundedSender<Done>) {
        let (header, coinbase) = b.share.block_parts();
        self.block_log.set(b.id, BlockStatus::Submitted, None);
        let token = self
            .tokens
            .iter()
            .find(|(id, _, _)| *id == b.share.job.id)
            .map(|(_, t, _)| *t);
        let fut = match token {
            Some(t) => self.source.submit_block(t, &header, &coinbase),
            None => Box::pin(std::future::ready(Err(BlockRefused {
                reason: "its job is too old to know its template".into(),
                is_final: true,
            }))) as BlockSubmit,
        };
        let done = done.clone();
        tokio::spawn(async move {
            let r = fut.await;
            let _ = done.send((b, attempts, r));
        });
    }

    /// Takes a submission's outcome. True when the block should be tried
    /// again: the node was away or busy, and the retry window is open.
    fn finish(
        &mut self,
        b: &BlockForward,
        attempts: u32,
        r: Result<BlockAccepted, BlockRefused>,
    ) -> bool {
        match r {
            Ok(acc) => {
                tracing::info!(height = acc.height, hash = %acc.hash, worker = %b.share.worker, "block found");
                self.block_log.set(
                    b.id,
                    BlockStatus::Accepted,
                    Some(format!("height {}", acc.height)),
                );
                self.block_times.remove(&b.id);
                if let Some(l) = &self.ledger {
                    l.block_status(&hex::encode_reversed(&b.share.hash), "accepted");
                }
                if let Ok(mut f) = self.found.lock() {
                    f.push(acc);
                }
                self.workers
                    .entry(b.share.worker.clone())
                    .or_default()
                    .blocks += 1;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e.reason, hash = %hex::encode_reversed(&b.share.hash), attempts, "block refused");
                let open = self
                    .block_times
                    .get(&b.id)
                    .is_some_and(|o| o.first.elapsed() < BLOCK_RETRY_FOR);
                let again = !e.is_final && open;
                let status = if again {
                    BlockStatus::Found
                } else {
                    self.block_times.remove(&b.id);
                    if let Some(l) = &self.ledger {
                        l.block_status(&hex::encode_reversed(&b.share.hash), "rejected");
                    }
                    BlockStatus::Rejected
                };
                self.block_log.set(b.id, status, Some(e.reason));
                again
            }
        }
    }

    /// Books a share (the ledger first, when kept) and answers it;
    /// returns the time it is booked at.
    fn on_share(&mut self, s: ShareForward) -> u64 {
        let time_ms = share_time_ms(&s);
        if let Some(l) = &self.ledger {
            let height = self
                .tokens
                .iter()
                .rev()
                .find(|(id, _, _)| *id == s.job.id)
                .map_or(0, |(_, _, h)| *h);
            let row = ShareRow {
                worker: s.worker.clone(),
                difficulty: s.difficulty,
                job: s.job.id,
                height,
                time_ms,
                hash_prefix: u64::from_le_bytes(s.hash[24..32].try_into().unwrap_or_default()),
                network_difficulty: s.job.value.difficulty,
                reward_sat: s.job.value.reward_sat.unwrap_or(0),
            };
            let appended = l.append(row);
            self.gate_on_ledger();
            if appended.is_err() {
                // Not in the ledger, so not booked: the session's books
                // take it back.
                let _ = self
                    .results
                    .send(UpstreamResult::undelivered(&s, &self.stats));
                return time_ms;
            }
        }
        let mut t = self.workers.entry(s.worker.clone()).or_insert_with(|| {
            // Once per worker, not per share.
            tracing::info!(worker = %s.worker, "first share from worker");
            WorkerTally::default()
        });
        t.shares += 1;
        t.work += s.difficulty;
        drop(t);
        self.stats.upstream_accepted.fetch_add(1, Ordering::Relaxed);
        let latency = s.received.elapsed();
        self.stats.observe_submit_latency(self.pool, latency);
        let _ = self.results.send(UpstreamResult {
            session: s.session,
            accepted: true,
            difficulty: s.difficulty,
            latency: Some(latency),
            reject: None,
            share: crate::upstream::ShareInfo::of(&s),
        });
        time_ms
    }

    /// Stops taking shares while the ledger is far behind, and takes
    /// them again once it has caught up.
    fn gate_on_ledger(&mut self) {
        let Some(l) = &self.ledger else { return };
        // Above half the ledger's queue no share is taken (sessions answer
        // "no pool" and miners fail over); the other half absorbs shares
        // already on their way. Below an eighth, shares are taken again.
        let pending = l.stats().pending.load(Ordering::Relaxed);
        let (high, low) = (l.capacity() / 2, l.capacity() / 8);
        if !self.ledger_blocked && pending > high {
            self.ledger_blocked = true;
            tracing::error!(
                pending,
                "the ledger is far behind: refusing shares until it catches up"
            );
            self.links.up.store(false, Ordering::Release);
        } else if self.ledger_blocked && pending < low {
            self.ledger_blocked = false;
            tracing::info!(pending, "the ledger caught up");
            self.links.up.store(true, Ordering::Release);
        }
    }

    /// Runs until cancelled.
    pub async fn run(mut self) {
        let mut epoch = 0;
        self.publish(true, &mut epoch);
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut last_publish = Instant::now();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        // Blocks to try again, with their attempts so far and when.
        let mut retry: Vec<(BlockForward, u32, tokio::time::Instant)> = Vec::new();
        // Submissions whose outcome has not come back.
        let mut in_flight = 0usize;
        let mut changes = self.source.changes();
        loop {
            tokio::select! {
                biased;
                b = self.blocks.recv() => {
                    let Some(b) = b else { return };
                    // The block first; the books after.
                    self.submit(b.clone(), 1, &done_tx);
                    in_flight += 1;
                    let first = tokio::time::Instant::now();
                    let time_ms = self.on_share(b.share.clone());
                    self.block_times.insert(b.id, BlockOut { time_ms, first });
                    self.record_block(&b, time_ms);
                }
                Some((b, n, r)) = done_rx.recv() => {
                    in_flight -= 1;
                    if self.finish(&b, n, r) {
                        retry.push((b, n, tokio::time::Instant::now() + retry_delay(n)));
                    }
                    if self.source.poll(unix_now()) {
                        self.publish(true, &mut epoch);
                        last_publish = Instant::now();
                    }
                }
                s = self.shares.recv() => {
                    let Some(s) = s else { return };
                    self.on_share(s);
                }
                Ok(()) = async {
                    match changes.as_mut() {
                        Some(c) => c.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.source.poll(unix_now()) {
                        self.publish(true, &mut epoch);
                        last_publish = Instant::now();
                    }
                }
                _ = ticker.tick() => {
                    // A quiet pool still notices the ledger catching up.
                    self.gate_on_ledger();
                    let now = tokio::time::Instant::now();
                    for (b, n, at) in std::mem::take(&mut retry) {
                        if at <= now {
                            self.submit(b, n + 1, &done_tx);
                            in_flight += 1;
                        } else {
                            retry.push((b, n, at));
                        }
                    }
                    if self.source.poll(unix_now()) {
                        self.publish(true, &mut epoch);
                        last_publish = Instant::now();
                    } else if last_publish.elapsed() >= self.cfg.refresh_interval {
                        self.publish(false, &mut epoch);
                        last_publish = Instant::now();
                    }
                }
                _ = self.cancel.cancelled() => {
                    // Verdicts already on their way are recorded (a few
                    // seconds at most); blocks still waiting for a retry
                    // stay "found" in the block log for the next start.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while in_flight > 0 {
                        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                            Ok(Some((b, n, r))) => {
                                in_flight -= 1;
                                self.finish(&b, n, r);
                            }
                            _ => break,
                        }
                    }
                    return;
                }
            }
        }
    }

    /// The block in the ledger, `submitted`, before the node answers.
    fn record_block(&self, b: &BlockForward, time_ms: u64) {
        let Some(l) = &self.ledger else { return };
        let height = self
            .tokens
            .iter()
            .rev()
            .find(|(id, _, _)| *id == b.share.job.id)
            .map_or(0, |(_, _, h)| *h);
        l.record_block(BlockRow {
            hash: hex::encode_reversed(&b.share.hash),
            height,
            worker: b.share.worker.clone(),
            time_ms,
            reward_sat: b.share.job.value.reward_sat.unwrap_or(0),
            network_difficulty: b.share.job.value.difficulty,
            instance: String::new(),
            status: "submitted".into(),
        });
    }
}

#[cfg(test)]
mod tests;
