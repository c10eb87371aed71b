//! Connectors: how the router opens upstream connections, remote (a V1
//! pool) or local (a template source, pool-node role).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::blocks::BlockLog;
use crate::job::{JobLinks, UpstreamId};
use crate::local::{BlockAccepted, LocalConfig, LocalTask, TemplateSource, WorkerTally};
use crate::router::{Connector, Router};
use crate::stats::{AtomicF64, Stats};
use crate::upstream::{
    Health, JobIds, UpstreamConfig, UpstreamHandle, UpstreamResult, UpstreamTask,
};

/// Shares waiting for one upstream connection, by default.
pub const SHARE_QUEUE: usize = 4096;

/// What every upstream task shares.
#[derive(Clone)]
pub struct Shared {
    /// Engine counters.
    pub stats: Arc<Stats>,
    /// Job numbering.
    pub job_ids: Arc<JobIds>,
    /// Share results on their way to sessions.
    pub results: mpsc::UnboundedSender<UpstreamResult>,
    /// Stops everything.
    pub cancel: CancellationToken,
    /// The books, when kept.
    pub books: Option<Arc<sluice_books::Books>>,
    /// Where blocks are recorded (in memory until replaced by a file).
    pub block_log: Arc<BlockLog>,
    /// Shares waiting for one upstream connection before more are
    /// refused.
    pub share_queue: usize,
}

impl Shared {
    /// New shared state and the receiving end of the results channel (hand
    /// it to [`deliver_results`] once the router exists).
    pub fn new(
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> (Self, mpsc::UnboundedReceiver<UpstreamResult>) {
        let (results, rx) = mpsc::unbounded_channel();
        (
            Self {
                block_log: Arc::new(BlockLog::in_memory(Arc::clone(&stats))),
                stats,
                job_ids: Arc::new(JobIds::default()),
                results,
                cancel,
                books: None,
                share_queue: SHARE_QUEUE,
            },
            rx,
        )
    }

    fn handle_parts(&self, id: UpstreamId, pool: usize) -> (Arc<UpstreamHandle>, Parts) {
        let (jobs_tx, jobs_rx, listeners) = crate::fanout::JobBoard::new(id);
        let (health_tx, health_rx) = watch::channel(Health::Connecting);
        let (share_tx, share_rx) = mpsc::channel(self.share_queue.max(1));
        let (block_tx, block_rx) = mpsc::unbounded_channel();
        let cancel = self.cancel.child_token();
        let suggest = Arc::new(AtomicF64::default());
        let h = Arc::new(UpstreamHandle {
            id,
            pool,
            jobs: jobs_rx,
            listeners,
            health: health_rx,
            sessions: AtomicU64::new(0),
            cancel: cancel.clone(),
            suggest: suggest.clone(),
        });
        (
            h,
            Parts {
                jobs_tx,
                health_tx,
                links: JobLinks {
                    share_tx,
                    block_tx,
                    up: Arc::new(AtomicBool::new(false)),
                },
                share_rx,
                block_rx,
                suggest,
                cancel,
            },
        )
    }
}

struct Parts {
    jobs_tx: crate::fanout::JobBoard,
    health_tx: watch::Sender<Health>,
    links: JobLinks,
    share_rx: mpsc::Receiver<crate::job::ShareForward>,
    block_rx: mpsc::UnboundedReceiver<crate::job::BlockForward>,
    suggest: Arc<AtomicF64>,
    cancel: CancellationToken,
}

/// Opens V1 connections to one pool.
pub struct RemoteConnector {
    /// The pool's settings.
    pub cfg: Arc<UpstreamConfig>,
    /// Shared state.
    pub shared: Shared,
}

impl Connector for RemoteConnector {
    fn spawn(&self, id: UpstreamId, pool: usize) -> Arc<UpstreamHandle> {
        let (h, p) = self.shared.handle_parts(id, pool);
        let task = UpstreamTask {
            id,
            cfg: self.cfg.clone(),
            job_ids: self.shared.job_ids.clone(),
            stats: self.shared.stats.clone(),
            pool,
            books: self.shared.books.clone(),
            jobs: p.jobs_tx,
            health: p.health_tx,
            shares: p.share_rx,
            blocks: p.block_rx,
            links: p.links,
            block_log: self.shared.block_log.clone(),
            suggest: p.suggest,
            results: self.shared.results.clone(),
            cancel: p.cancel,
        };
        let span = tracing::info_span!("upstream", id, url = %self.cfg.url);
        tokio::spawn(tracing::Instrument::instrument(task.run(), span));
        h
    }
}

/// The pool-node role's single local upstream.
pub struct LocalConnector<S: TemplateSource> {
    source: Mutex<Option<S>>,
    cfg: LocalConfig,
    shared: Shared,
    /// Per-worker tallies of accepted shares.
    pub workers: Arc<DashMap<Arc<str>, WorkerTally>>,
    /// Blocks found.
    pub found: Arc<Mutex<Vec<BlockAccepted>>>,
    /// The share ledger, when kept.
    pub ledger: Option<Arc<sluice_books::ledger::Ledger>>,
}

impl<S: TemplateSource> LocalConnector<S> {
    /// Wraps a template source.
    pub fn new(source: S, cfg: LocalConfig, shared: Shared) -> Self {
        Self {
            source: Mutex::new(Some(source)),
            cfg,
            shared,
            workers: Arc::new(DashMap::new()),
            found: Arc::new(Mutex::new(Vec::new())),
            ledger: None,
        }
    }
}

impl<S: TemplateSource> Connector for LocalConnector<S> {
    fn spawn(&self, id: UpstreamId, pool: usize) -> Arc<UpstreamHandle> {
        let (h, p) = self.shared.handle_parts(id, pool);
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(source) = source else {
            // One local upstream serves everyone (`unlimited`); a second
            // spawn cannot happen, but must not panic either.
            let _ = p
                .health_tx
                .send(Health::Failed("local source already running".into()));
            return h;
        };
        let task = LocalTask {
            id,
            cfg: self.cfg.clone(),
            source,
            job_ids: self.shared.job_ids.clone(),
            stats: self.shared.stats.clone(),
            pool,
            books: self.shared.books.clone(),
            jobs: p.jobs_tx,
            health: p.health_tx,
            shares: p.share_rx,
            blocks: p.block_rx,
            links: p.links,
            block_log: self.shared.block_log.clone(),
            results: self.shared.results.clone(),
            workers: self.workers.clone(),
            found: self.found.clone(),
            cancel: p.cancel,
            tokens: Default::default(),
            ledger: self.ledger.clone(),
            ledger_blocked: false,
            block_times: Default::default(),
        };
        tokio::spawn(tracing::Instrument::instrument(
            task.run(),
            tracing::info_span!("pool-node"),
        ));
        h
    }

    fn unlimited(&self) -> bool {
        true
    }
}

/// Hands share results to their sessions until the channel closes.
///
/// A refusal whose session is gone (or cannot take it now) is still taken
/// back in the worker's books here: a share answered `true` and then lost
/// never stays credited.
pub async fn deliver_results(
    router: Arc<Router>,
    mut rx: mpsc::UnboundedReceiver<UpstreamResult>,
    books: Option<Arc<sluice_books::Books>>,
) {
    while let Some(r) = rx.recv().await {
        let Some(r) = router.deliver(r) else { continue };
        if r.accepted {
            continue;
        }
        if let (Some(b), Some(name)) = (&books, r.share.worker.as_deref())
            && let Some(w) = b.find_worker(name)
        {
            crate::session::book_reversal(b, &w, &r, std::time::Instant::now());
        }
    }
}
