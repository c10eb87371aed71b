//! The share ledger: every share the pool node accepted, and every block
//! it found, in a database — SQLite embedded, or PostgreSQL for a pool
//! that runs several instances on one ledger.
//!
//! - [`Ledger::append`] never waits: it queues the row for the writer and
//!   refuses (so the share is refused, not answered `true` and lost) only
//!   when the queue is full.
//! - The writer gathers rows for `gather` (20 ms) after the first, then
//!   commits them in one transaction (group commit): one fsync for many
//!   shares. A share is durable at most `gather` plus one commit after it
//!   was queued; that is the loss window on a crash.
//! - A commit that fails is tried again with the same rows until it goes
//!   in; nothing is dropped.
//! - [`payout`]: PPLNS for a found block and FPPS over a span, computed
//!   from the ledger's rows.

pub mod payout;
mod postgres;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use payout::Payout;

/// One accepted share.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareRow {
    /// Worker name.
    pub worker: Arc<str>,
    /// The difficulty it was accepted at.
    pub difficulty: f64,
    /// The job (the instance's job number).
    pub job: u64,
    /// Height of the block being mined.
    pub height: u32,
    /// When the pool received it, Unix milliseconds.
    pub time_ms: u64,
    /// The first 8 bytes of its hash (display order).
    pub hash_prefix: u64,
    /// Network difficulty of its job.
    pub network_difficulty: f64,
    /// Block reward of its job (subsidy + fees), satoshi.
    pub reward_sat: u64,
}

/// A block: recorded when found, its status updated with the node's
/// verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockRow {
    /// Display hex.
    pub hash: String,
    /// Height.
    pub height: u32,
    /// Who found it.
    pub worker: Arc<str>,
    /// The time of its share (the PPLNS window ends there), Unix ms.
    pub time_ms: u64,
    /// Coinbase value, satoshi.
    pub reward_sat: u64,
    /// Network difficulty.
    pub network_difficulty: f64,
    /// The instance that found it.
    pub instance: String,
    /// `submitted`, `accepted` or `rejected`.
    pub status: String,
}

/// A block's new status.
#[derive(Clone, Debug, PartialEq)]
struct BlockStatus {
    hash: String,
    status: String,
}

/// How to open a ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// `sqlite:PATH` (or a bare path), or `postgres://…`.
    pub url: String,
    /// This instance's name in the rows it writes.
    pub instance: String,
    /// Rows waiting for the writer before appends are refused.
    pub queue: usize,
    /// Most rows in one transaction.
    pub max_batch: usize,
    /// How long the writer gathers rows after the first before it commits:
    /// fewer, larger commits (each one an fsync), at the price of this
    /// much more in the crash loss window.
    pub gather: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:sluice-ledger.db".into(),
            instance: "sluice".into(),
            queue: 1 << 20,
            max_batch: 65_536,
            gather: Duration::from_millis(20),
        }
    }
}

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite said no.
    #[error("ledger (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("ledger (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The URL is neither.
    #[error("ledger URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    /// A block the ledger does not hold.
    #[error("no block {0} in the ledger")]
    NoBlock(String),
    /// A block the node refused pays nothing.
    #[error("block {0} was refused by the node: it pays nothing")]
    Rejected(String),
    /// The writer is gone (shutting down).
    #[error("the ledger writer has stopped")]
    Stopped,
    /// A blocking task failed.
    #[error("ledger task: {0}")]
    Task(String),
}

/// The queue is full: the database is not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ledger is not keeping up")]
pub struct LedgerFull;

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Shares committed.
    pub shares_written: AtomicU64,
    /// Blocks committed.
    pub blocks_written: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Commits that failed (and were tried again).
    pub commit_errors: AtomicU64,
    /// Appends refused because the queue was full.
    pub refused: AtomicU64,
    /// Rows queued, not yet committed.
    pub pending: AtomicU64,
}

enum Entry {
    Share(ShareRow),
    Block(BlockRow),
    Status(BlockStatus),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Where rows go and how they are read back.
enum Backend {
    Sqlite(sqlite::Db),
    Postgres(postgres::Db),
}

/// The ledger; cheap to share.
pub struct Ledger {
    tx: mpsc::Sender<Entry>,
    blocks_tx: mpsc::UnboundedSender<Entry>,
    stats: Arc<LedgerStats>,
    reader: Backend,
    instance: String,
}

/// A share row as written: its id unique to this instance, so that a
/// batch written again after a lost commit reply is not written twice.
#[derive(Clone, Debug)]
struct Stamped {
    uid: i64,
    row: ShareRow,
}

impl Ledger {
    /// Opens (creating the tables when missing) and starts the writer.
    pub async fn open(cfg: LedgerConfig) -> Result<Arc<Self>, LedgerError> {
        let (writer, reader) =
            if cfg.url.starts_with("postgres://") || cfg.url.starts_with("postgresql://") {
                let w = postgres::Db::connect(&cfg.url).await?;
                w.create_tables().await?;
                let r = postgres::Db::connect(&cfg.url).await?;
                (Backend::Postgres(w), Backend::Postgres(r))
            } else {
                let path = cfg.url.strip_prefix("sqlite:").unwrap_or(&cfg.url);
                if path.is_empty() || cfg.url.contains("://") {
                    return Err(LedgerError::Url(cfg.url.clone()));
                }
                let w = sqlite::Db::open(path.into()).await?;
                let r = sqlite::Db::open(path.into()).await?;
                (Backend::Sqlite(w), Backend::Sqlite(r))
            };
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let (blocks_tx, blocks_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(LedgerStats::default());
        tokio::spawn(write_loop(
            writer,
            rx,
            blocks_rx,
            stats.clone(),
            cfg.instance.clone(),
            cfg.max_batch.max(1),
            cfg.gather,
        ));
        Ok(Arc::new(Self {
            tx,
            blocks_tx,
            stats,
            reader,
            instance: cfg.instance,
        }))
    }

    /// Queues an accepted share; refused only when the queue is full.
    pub fn append(&self, row: ShareRow) -> Result<(), LedgerFull> {
        // Counted before the writer can see it, so `pending` never dips
        // below what is queued.
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Entry::Share(row)) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(LedgerFull)
            }
        }
    }

    /// Records a block found, status `submitted` (never refused: blocks
    /// are rare), before its submission's outcome is known: a crash
    /// mid-submission still leaves it in the ledger.
    pub fn record_block(&self, mut row: BlockRow) {
        row.instance = self.instance.clone();
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        let _ = self.blocks_tx.send(Entry::Block(row));
    }

    /// The node's verdict on a recorded block: `accepted` or `rejected`.
    pub fn block_status(&self, hash: &str, status: &str) {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        let _ = self.blocks_tx.send(Entry::Status(BlockStatus {
            hash: hash.to_owned(),
            status: status.to_owned(),
        }));
    }

    /// Waits until every row queued so far is committed.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Entry::Flush(tx))
            .await
            .map_err(|_| LedgerError::Stopped)?;
        rx.await.map_err(|_| LedgerError::Stopped)
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<LedgerStats> {
        &self.stats
    }

    /// Rows the queue holds before appends are refused.
    pub fn capacity(&self) -> u64 {
        self.tx.max_capacity() as u64
    }

    /// Shares in the ledger (every instance's).
    pub async fn share_count(&self) -> Result<u64, LedgerError> {
        match &self.reader {
            Backend::Sqlite(d) => d.share_count().await,
            Backend::Postgres(d) => d.share_count().await,
        }
    }

    /// Blocks in the ledger, newest first.
    pub async fn blocks(&self) -> Result<Vec<BlockRow>, LedgerError> {
        match &self.reader {
            Backend::Sqlite(d) => d.blocks().await,
            Backend::Postgres(d) => d.blocks().await,
        }
    }

    /// PPLNS for block `hash`: its reward split over the last
    /// `factor × D` units of difficulty up to its share (D: the network
    /// difficulty of the block), across every instance.
    pub async fn pplns(&self, hash: &str, factor: f64) -> Result<Vec<Payout>, LedgerError> {
        let b = self
            .blocks()
            .await?
            .into_iter()
            .find(|b| b.hash == hash)
            .ok_or_else(|| LedgerError::NoBlock(hash.to_owned()))?;
        if b.status == "rejected" {
            return Err(LedgerError::Rejected(hash.to_owned()));
        }
        let window = payout::Window::new(factor * b.network_difficulty);
        let window = match &self.reader {
            Backend::Sqlite(d) => d.window(b.time_ms, window).await?,
            Backend::Postgres(d) => d.window(b.time_ms, window).await?,
        };
        Ok(window.pay(b.reward_sat))
    }

    /// FPPS earnings of every worker for shares in `[from_ms, to_ms)`.
    pub async fn fpps(
        &self,
        from_ms: u64,
        to_ms: u64,
        fee: f64,
    ) -> Result<Vec<Payout>, LedgerError> {
        let rows = match &self.reader {
            Backend::Sqlite(d) => d.span(from_ms, to_ms).await?,
            Backend::Postgres(d) => d.span(from_ms, to_ms).await?,
        };
        Ok(payout::fpps(
            rows.iter().map(|(w, d, n, r)| (w.as_str(), *d, *n, *r)),
            fee,
        ))
    }
}

/// Rows of one transaction.
#[derive(Default)]
struct Batch {
    shares: Vec<Stamped>,
    blocks: Vec<BlockRow>,
    statuses: Vec<BlockStatus>,
    flushes: Vec<oneshot::Sender<()>>,
}

/// A batch's rows, shared with the blocking pool without a copy.
#[derive(Clone)]
struct Rows {
    shares: Arc<Vec<Stamped>>,
    blocks: Arc<Vec<BlockRow>>,
    statuses: Arc<Vec<BlockStatus>>,
}

impl Batch {
    fn push(&mut self, e: Entry, uids: &mut i64) {
        match e {
            Entry::Share(row) => {
                *uids += 1;
                self.shares.push(Stamped { uid: *uids, row });
            }
            Entry::Block(b) => self.blocks.push(b),
            Entry::Status(s) => self.statuses.push(s),
            Entry::Flush(f) => self.flushes.push(f),
        }
    }

    fn rows(&self) -> usize {
        self.shares.len() + self.blocks.len() + self.statuses.len()
    }
}

/// Longest a commit may take before it is tried again.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first share id of a run: microseconds since the epoch, so a
/// restarted instance never reuses an id (it would need over a million
/// shares a second to catch up with the clock).
fn first_uid() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn write_loop(
    mut db: Backend,
    mut rx: mpsc::Receiver<Entry>,
    mut blocks_rx: mpsc::UnboundedReceiver<Entry>,
    stats: Arc<LedgerStats>,
    instance: String,
    max_batch: usize,
    gather: Duration,
) {
    let mut uids = first_uid();
    loop {
        let mut batch = Batch::default();
        // Blocks first, as everywhere.
        tokio::select! {
            biased;
            Some(e) = blocks_rx.recv() => batch.push(e, &mut uids),
            e = rx.recv() => match e {
                Some(e) => batch.push(e, &mut uids),
                None => return,
            },
        }
        // Everything that queues within `gather` goes in this commit.
        let deadline = tokio::time::Instant::now() + gather;
        while batch.rows() < max_batch && batch.flushes.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e, &mut uids),
                Ok(None) | Err(_) => break,
            }
        }
        // Blocks (and verdicts) recorded before a flush taken above go in
        // with it.
        while let Ok(e) = blocks_rx.try_recv() {
            batch.push(e, &mut uids);
        }
        let n = batch.rows();
        let (n_shares, n_blocks) = (batch.shares.len(), batch.blocks.len());
        // A verdict on a block of the same batch goes in with its row: one
        // statement fewer.
        batch.statuses.retain(
            |v| match batch.blocks.iter_mut().find(|b| b.hash == v.hash) {
                Some(b) => {
                    b.status = v.status.clone();
                    false
                }
                None => true,
            },
        );
        let rows = Rows {
            shares: Arc::new(std::mem::take(&mut batch.shares)),
            blocks: Arc::new(std::mem::take(&mut batch.blocks)),
            statuses: Arc::new(std::mem::take(&mut batch.statuses)),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let write = async {
                match &mut db {
                    Backend::Sqlite(d) => d.write(&instance, &rows).await,
                    Backend::Postgres(d) => d.write(&instance, &rows).await,
                }
            };
            // A commit that does not come back in time is tried again on
            // a fresh connection (the server rolls back the old one's
            // transaction); share ids make a second write harmless.
            let r = match tokio::time::timeout(COMMIT_TIMEOUT, write).await {
                Ok(r) => r,
                Err(_) => {
                    if let Backend::Postgres(d) = &mut db {
                        d.drop_connection().await;
                    }
                    Err(LedgerError::Task(format!(
                        "commit took over {COMMIT_TIMEOUT:?}"
                    )))
                }
            };
            match r {
                Ok(()) => break,
                Err(e) => {
                    stats.commit_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, rows = n, "ledger commit failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if let Backend::Postgres(d) = &mut db {
                        d.reconnect().await;
                    }
                }
            }
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .shares_written
            .fetch_add(n_shares as u64, Ordering::Relaxed);
        stats
            .blocks_written
            .fetch_add(n_blocks as u64, Ordering::Relaxed);
        stats.pending.fetch_sub(n as u64, Ordering::Relaxed);
        for f in batch.flushes {
            let _ = f.send(());
        }
    }
}

#[cfg(test)]
mod tests;
