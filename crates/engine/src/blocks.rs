//! The block log: every share that meets the network target, recorded
//! durably before the miner hears anything, and what became of it.
//!
//! A record goes to the writer thread the moment a session finds the
//! block; the block is handed to its upstream at once; the session then
//! waits for the fsync before it answers the miner.
//!
//! Blocks found = blocks submitted. A candidate is appended to a JSON-lines
//! file (header, coinbase, job, pool, time) the moment its session finds
//! it, handed to its upstream on a channel of its own, and fsync'd before
//! the miner's answer goes out; the upstream appends each submission and
//! its verdict under the same number. A `kill -9` loses nothing that was
//! written (the page cache outlives the process); a power cut loses
//! nothing that was answered. On start the file is read back, so
//! `/api/v1/blocks` shows blocks from earlier runs too.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sluice_pow::hex;

use crate::job::ShareForward;
use crate::stats::Stats;

/// Records kept in memory for the API (the file keeps every one).
const KEPT: usize = 1000;

/// Where a block candidate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockStatus {
    /// Found and recorded; not yet sent (its pool may be down).
    Found,
    /// Sent to the pool or node; no verdict yet.
    Submitted,
    /// The pool or node took it.
    Accepted,
    /// The pool or node refused it (the reason is in `detail`).
    Rejected,
    /// Given up on: tried as often as allowed without a verdict.
    Failed,
}

impl BlockStatus {
    /// A fixed label.
    pub fn label(self) -> &'static str {
        match self {
            BlockStatus::Found => "found",
            BlockStatus::Submitted => "submitted",
            BlockStatus::Accepted => "accepted",
            BlockStatus::Rejected => "rejected",
            BlockStatus::Failed => "failed",
        }
    }
}

/// One block candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Its number in this log.
    pub id: u64,
    /// When it was found, Unix milliseconds.
    pub found_at_ms: u64,
    /// Block hash, display hex.
    pub hash: String,
    /// Config index of its pool.
    pub pool: usize,
    /// The upstream connection its job came from.
    pub upstream: u32,
    /// The job id its upstream used.
    pub job_id: String,
    /// The worker that found it.
    pub worker: String,
    /// The session that found it.
    pub session: u64,
    /// The 80-byte header, hex.
    pub header: String,
    /// The coinbase transaction (legacy serialization), hex.
    pub coinbase: String,
    /// Where it stands.
    pub status: BlockStatus,
    /// Submissions so far.
    pub attempts: u32,
    /// The pool's or node's answer, or why it was not sent.
    pub detail: Option<String>,
    /// Last change, Unix milliseconds.
    pub updated_at_ms: u64,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    Found(BlockRecord),
    Status {
        id: u64,
        status: BlockStatus,
        attempts: u32,
        detail: Option<String>,
        at_ms: u64,
    },
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("block log {path}: {source}")]
pub struct BlockLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What the writer thread is asked to do, in order.
enum Write {
    /// Append a line; fsync after it when `sync`.
    Line(Vec<u8>, bool),
    /// fsync, then say so.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// The block log, shared by sessions (which record) and upstreams (which
/// report what became of each block). File I/O happens on a thread of its
/// own, in order: nothing on the block path waits for a disk unless it
/// asks to ([`BlockLog::sync`]), and no runtime thread ever blocks on one.
#[derive(Debug)]
pub struct BlockLog {
    writer: Option<std::sync::mpsc::Sender<Write>>,
    records: Mutex<VecDeque<BlockRecord>>,
    next_id: AtomicU64,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Line(l, s) => write!(f, "Line({} bytes, sync {s})", l.len()),
            Write::Sync(_) => write!(f, "Sync"),
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The writer thread: appends lines in order, fsyncs when asked.
fn writer(mut file: File, rx: std::sync::mpsc::Receiver<Write>, stats: Arc<Stats>) {
    let fail = |e: std::io::Error| {
        stats.block_log_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "could not write the block log; blocks are still submitted");
    };
    while let Ok(w) = rx.recv() {
        match w {
            // One write per line: a crash leaves whole lines or a torn
            // last one (skipped on reading), never two records mixed.
            Write::Line(l, sync) => {
                if let Err(e) = file
                    .write_all(&l)
                    .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
                {
                    fail(e);
                }
            }
            Write::Sync(done) => {
                if let Err(e) = file.sync_data() {
                    fail(e);
                }
                let _ = done.send(());
            }
        }
    }
}

impl BlockLog {
    /// A log kept in memory only (tests, and runs without a data file).
    pub fn in_memory(stats: Arc<Stats>) -> Self {
        Self {
            writer: None,
            records: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            stats,
        }
    }

    /// Opens (or creates) the log at `path`, reading back what earlier runs
    /// recorded. Unreadable lines (a torn last line after a crash, bytes
    /// that are not UTF-8) are skipped with a warning: they must not stop
    /// the proxy.
    pub fn open(path: &Path, stats: Arc<Stats>) -> Result<Self, BlockLogError> {
        let err = |source| BlockLogError {
            path: path.to_owned(),
            source,
        };
        let mut records: VecDeque<BlockRecord> = VecDeque::new();
        let mut next_id = 1;
        let mut ends_clean = true;
        match std::fs::read(path) {
            Ok(bytes) => {
                ends_clean = bytes.last().is_none_or(|&b| b == b'\n');
                for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
                    if line.is_empty() {
                        continue;
                    }
                    match serde_json::from_slice::<Line>(line) {
                        Ok(Line::Found(r)) => {
                            next_id = next_id.max(r.id + 1);
                            if records.len() >= KEPT {
                                records.pop_front();
                            }
                            records.push_back(r);
                        }
                        Ok(Line::Status {
                            id,
                            status,
                            attempts,
                            detail,
                            at_ms,
                        }) => {
                            if let Some(r) = records.iter_mut().rev().find(|r| r.id == id) {
                                r.status = status;
                                r.attempts = attempts;
                                r.detail = detail;
                                r.updated_at_ms = at_ms;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping an unreadable block log line")
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        if !ends_clean {
            // End the torn line, so the next record starts a line of its own.
            file.write_all(b"\n").map_err(err)?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let st = stats.clone();
        std::thread::Builder::new()
            .name("sluice-block-log".into())
            .spawn(move || writer(file, rx, st))
            .map_err(err)?;
        Ok(Self {
            writer: Some(tx),
            records: Mutex::new(records),
            next_id: AtomicU64::new(next_id),
            stats,
        })
    }

    fn append(&self, line: &Line, sync: bool) {
        let Some(w) = &self.writer else { return };
        let mut text = match serde_json::to_vec(line) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "block record not serializable");
                return;
            }
        };
        text.push(b'\n');
        if w.send(Write::Line(text, sync)).is_err() {
            self.stats.block_log_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a candidate (written, not yet fsync'd: call [`Self::sync`]
    /// before answering the miner) and returns its number.
    pub fn found(&self, s: &ShareForward) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (header, coinbase) = s.block_parts();
        let now = unix_ms();
        let r = BlockRecord {
            id,
            found_at_ms: now,
            hash: hex::encode_reversed(&s.hash),
            pool: s.job.pool,
            upstream: s.job.upstream,
            job_id: s.job.upstream_job_id.to_string(),
            worker: s.worker.to_string(),
            session: s.session,
            header: hex::encode(&header.to_bytes()),
            coinbase: hex::encode(&coinbase),
            status: BlockStatus::Found,
            attempts: 0,
            detail: None,
            updated_at_ms: now,
        };
        self.stats.blocks_found.fetch_add(1, Ordering::Relaxed);
        tracing::info!(block = id, hash = %r.hash, worker = %r.worker, "block candidate found");
        self.append(&Line::Found(r.clone()), false);
        let mut recs = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if recs.len() >= KEPT {
            recs.pop_front();
        }
        recs.push_back(r);
        id
    }

    /// Makes everything recorded so far durable (written and fsync'd by
    /// the writer thread); a log in memory returns at once.
    pub async fn sync(&self) {
        let Some(w) = &self.writer else { return };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if w.send(Write::Sync(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Records what became of block `id` (written and fsync'd in order,
    /// without waiting for it).
    pub fn set(&self, id: u64, status: BlockStatus, detail: Option<String>) {
        let c = match status {
            BlockStatus::Found => None,
            BlockStatus::Submitted => Some(&self.stats.blocks_submitted),
            BlockStatus::Accepted => Some(&self.stats.blocks_accepted),
            BlockStatus::Rejected => Some(&self.stats.blocks_rejected),
            BlockStatus::Failed => Some(&self.stats.blocks_failed),
        };
        if let Some(c) = c {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let now = unix_ms();
        let attempts = {
            let mut recs = self.records.lock().unwrap_or_else(|p| p.into_inner());
            match recs.iter_mut().rev().find(|r| r.id == id) {
                Some(r) => {
                    if status == BlockStatus::Submitted {
                        r.attempts += 1;
                    }
                    r.status = status;
                    r.detail = detail.clone();
                    r.updated_at_ms = now;
                    r.attempts
                }
                None => 0,
            }
        };
        match status {
            BlockStatus::Accepted => tracing::info!(block = id, "block accepted"),
            BlockStatus::Rejected | BlockStatus::Failed => {
                tracing::error!(block = id, status = status.label(), detail = ?detail, "block not accepted")
            }
            _ => tracing::info!(block = id, status = status.label(), detail = ?detail, "block"),
        }
        self.append(
            &Line::Status {
                id,
                status,
                attempts,
                detail,
                at_ms: now,
            },
            true,
        );
    }

    /// The most recent records, oldest first.
    pub fn list(&self) -> Vec<BlockRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests;
