//! Templates and blocks over Bitcoin Core's RPC: a watcher that always
//! holds the node's latest template, and a block submitter.
//!
//! The pool node never waits on the network to hand out work: it reads the
//! template held here. Two loops keep it fresh — a `getblocktemplate` long
//! poll (the node answers when its tip or mempool changes), and a poller
//! that compares `getbestblockhash` with the template's parent every
//! `poll_interval` and also refetches every `refresh_interval` for fees.
//! Either alone is enough; a node that refuses long polls still works.
//!
//! Every template gets a token. A job remembers its token, and a block is
//! assembled from that job's own template, never the latest one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sluice_pow::{Header, hex};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::block;
use crate::rpc::{RpcClient, RpcError};
use crate::template::BlockTemplate;

/// Templates kept for blocks on older jobs: a few tips' worth.
const HISTORY: usize = 64;

/// How the watcher paces itself.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Compare the node's best block with our template this often.
    pub poll_interval: Duration,
    /// Fetch a new template this often even without a new tip (fees).
    pub refresh_interval: Duration,
    /// Longest a long poll is left open.
    pub longpoll_wait: Duration,
    /// The node's ZMQ `hashblock` publisher (`tcp://127.0.0.1:28332`):
    /// a new tip is fetched the moment the node announces it.
    pub zmq_hashblock: Option<String>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            refresh_interval: Duration::from_secs(30),
            // Core keeps a long poll's RPC thread until its tip or mempool
            // changes, even after we give up on it: give up rarely.
            longpoll_wait: Duration::from_secs(3600),
            zmq_hashblock: None,
        }
    }
}

/// Counters a pool operator watches.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// Templates taken (each new one, not each fetch).
    pub templates: AtomicU64,
    /// New tips seen.
    pub tip_changes: AtomicU64,
    /// RPC calls that failed.
    pub rpc_errors: AtomicU64,
    /// Templates the node sent that did not parse or check out.
    pub bad_templates: AtomicU64,
    /// `hashblock` announcements received over ZMQ.
    pub zmq_announcements: AtomicU64,
}

/// Why a block did not go in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the node (or assembly) said.
    pub reason: String,
    /// True when trying again can change nothing (a verdict on the
    /// block); false when the node was away or busy.
    pub is_final: bool,
}

/// A block the node took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Its height.
    pub height: u32,
    /// Its hash, display hex.
    pub hash: String,
    /// What the node said beyond "taken": `duplicate`, or that another
    /// block is its tip.
    pub note: Option<String>,
}

#[derive(Default)]
struct State {
    next_token: u64,
    latest: Option<(u64, Arc<BlockTemplate>)>,
    history: VecDeque<(u64, Arc<BlockTemplate>)>,
    tip_generation: u64,
    longpollid: Option<String>,
    /// The last error was logged; quiet until the node is back.
    failing: bool,
    /// Parents we moved on from: a template built on one is a late reply
    /// from before the new tip, not work to hand out.
    superseded: VecDeque<[u8; 32]>,
}

struct Inner {
    rpc: RpcClient,
    cfg: CoreConfig,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    kick: Notify,
    stats: Arc<CoreStats>,
}

/// The node's latest template, kept fresh; cheap to clone.
#[derive(Clone)]
pub struct CoreTemplates {
    inner: Arc<Inner>,
}

/// Why the node cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The node is on another network than the configured one.
    #[error("bitcoind is on {node}, but the pool is configured for {configured}")]
    WrongChain {
        /// What `getblockchaininfo` said.
        node: String,
        /// What the config said.
        configured: String,
    },
    /// A call failed in a way waiting will not fix.
    #[error("{0}")]
    Rpc(#[from] RpcError),
    /// Cancelled while waiting for the node.
    #[error("stopped while waiting for bitcoind")]
    Cancelled,
}

impl CoreTemplates {
    /// Checks the node is on `chain` (Core's name: `main`, `test`,
    /// `testnet4`, `signet`, `regtest`) and waits for a first template,
    /// retrying while the node is away, warming up or syncing.
    pub async fn connect(
        rpc: RpcClient,
        cfg: CoreConfig,
        chain: &str,
        cancel: &CancellationToken,
    ) -> Result<Self, ConnectError> {
        let me = Self::new(rpc, cfg);
        let mut backoff = Duration::from_millis(250);
        loop {
            let attempt = async {
                let info = me.inner.rpc.get_blockchain_info().await?;
                if info.chain != chain {
                    return Err(ConnectError::WrongChain {
                        node: info.chain,
                        configured: chain.to_owned(),
                    });
                }
                if info.initial_block_download {
                    // Its templates would be for a tip long gone.
                    tracing::warn!(blocks = info.blocks, "bitcoind is still syncing; waiting");
                    return Ok(false);
                }
                me.fetch(None).await.map_err(ConnectError::Rpc)
            };
            match attempt.await {
                Ok(true) => return Ok(me),
                Ok(false) => {}
                Err(ConnectError::Rpc(e)) if e.retryable() => {
                    tracing::warn!(error = %e, "waiting for bitcoind");
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(ConnectError::Cancelled),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn new(rpc: RpcClient, cfg: CoreConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                rpc,
                cfg,
                state: Mutex::new(State::default()),
                changed: watch::Sender::new(0),
                kick: Notify::new(),
                stats: Arc::new(CoreStats::default()),
            }),
        }
    }

    /// Starts the long poll and the poller; they stop with `cancel`.
    pub fn spawn(&self, cancel: CancellationToken) {
        let me = self.clone();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = c.cancelled() => {}
                _ = me.longpoll_loop() => {}
            }
        });
        if let Some(endpoint) = self.inner.cfg.zmq_hashblock.clone() {
            let me = self.clone();
            let c = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = c.cancelled() => {}
                    _ = me.zmq_loop(endpoint) => {}
                }
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = me.poll_loop() => {}
            }
        });
    }

    /// Listens for the node's `hashblock` announcements and fetches a
    /// template on each; reconnects when the publisher goes away.
    async fn zmq_loop(&self, endpoint: String) {
        use zeromq::{Socket, SocketRecv};
        let mut backoff = Duration::from_secs(1);
        loop {
            let mut sub = zeromq::SubSocket::new();
            let r = async {
                sub.connect(&endpoint).await?;
                sub.subscribe("hashblock").await?;
                tracing::info!(%endpoint, "listening for new blocks over ZMQ");
                loop {
                    let m = sub.recv().await?;
                    if m.get(0).is_some_and(|t| &t[..] == b"hashblock") {
                        self.inner
                            .stats
                            .zmq_announcements
                            .fetch_add(1, Ordering::Relaxed);
                        self.refresh_now();
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), zeromq::ZmqError>(())
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(%endpoint, error = %e, "ZMQ hashblock feed lost; polling meanwhile");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// The latest template and its token.
    pub fn latest(&self) -> Option<(u64, Arc<BlockTemplate>)> {
        self.lock().latest.clone()
    }

    /// A recent template by token.
    pub fn template(&self, token: u64) -> Option<Arc<BlockTemplate>> {
        let s = self.lock();
        s.history
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, t)| t.clone())
    }

    /// Counts new tips: a change means a clean job is due.
    pub fn tip_generation(&self) -> u64 {
        self.lock().tip_generation
    }

    /// Counts templates taken; changes whenever a new one arrives.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<CoreStats> {
        &self.inner.stats
    }

    /// The RPC client (for address checks at start).
    pub fn rpc(&self) -> &RpcClient {
        &self.inner.rpc
    }

    /// Asks for a fresh template now (a block was found).
    pub fn refresh_now(&self) {
        self.inner.kick.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; the
        // state itself is always consistent between statements.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fetches a template (long polling on `longpollid`) and takes it.
    /// True when a template is held afterwards.
    async fn fetch(&self, longpollid: Option<&str>) -> Result<bool, RpcError> {
        let wait = if longpollid.is_some() {
            self.inner.cfg.longpoll_wait
        } else {
            Duration::from_secs(30)
        };
        match self.inner.rpc.get_block_template(longpollid, wait).await {
            Ok(v) => {
                self.take(&v);
                let mut s = self.lock();
                if s.failing {
                    s.failing = false;
                    tracing::info!("bitcoind answers again");
                }
                Ok(s.latest.is_some())
            }
            Err(e) => {
                self.inner.stats.rpc_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn take(&self, v: &Value) {
        let t = match BlockTemplate::from_gbt_json(v) {
            Ok(t) => t,
            Err(e) => {
                self.inner
                    .stats
                    .bad_templates
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "bitcoind sent a template that does not check out");
                return;
            }
        };
        let mut s = self.lock();
        s.longpollid = v
            .get("longpollid")
            .and_then(Value::as_str)
            .map(|id| id.chars().take(200).collect());
        if s.superseded.contains(&t.prev_hash) {
            // A reply that left the node before its tip moved.
            return;
        }
        let new_tip = s
            .latest
            .as_ref()
            .is_none_or(|(_, l)| l.prev_hash != t.prev_hash || l.height != t.height);
        if new_tip && let Some((_, old)) = &s.latest {
            let old = old.prev_hash;
            s.superseded.push_back(old);
            if s.superseded.len() > HISTORY {
                s.superseded.pop_front();
            }
        }
        if let Some((_, l)) = &s.latest
            && !new_tip
            && same_work(l, &t)
        {
            return;
        }
        let token = s.next_token;
        s.next_token += 1;
        let t = Arc::new(t);
        if new_tip {
            s.tip_generation += 1;
            self.inner.stats.tip_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(height = t.height, "new template on a new tip");
        }
        s.latest = Some((token, t.clone()));
        s.history.push_back((token, t));
        while s.history.len() > HISTORY {
            s.history.pop_front();
        }
        drop(s);
        self.inner.stats.templates.fetch_add(1, Ordering::Relaxed);
        self.inner.changed.send_modify(|n| *n += 1);
    }

    fn note_failure(&self, e: &RpcError) {
        let mut s = self.lock();
        if !s.failing {
            s.failing = true;
            tracing::warn!(error = %e, "bitcoind call failed; mining on the last template until it answers");
        }
    }

    async fn longpoll_loop(&self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let id = self.lock().longpollid.clone();
            let Some(id) = id else {
                // A node without long polls: the poller does the work.
                tokio::time::sleep(self.inner.cfg.refresh_interval).await;
                continue;
            };
            match self.fetch(Some(&id)).await {
                Ok(_) => backoff = Duration::from_secs(1),
                // Nothing changed for a long while: ask again.
                Err(RpcError::Timeout { .. }) => {}
                Err(e) => {
                    self.note_failure(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn poll_loop(&self) {
        let mut tick = tokio::time::interval(self.inner.cfg.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_fetch = tokio::time::Instant::now();
        loop {
            let kicked = tokio::select! {
                _ = tick.tick() => false,
                _ = self.inner.kick.notified() => true,
            };
            let due = kicked || last_fetch.elapsed() >= self.inner.cfg.refresh_interval;
            let stale = if due {
                true
            } else {
                match self.inner.rpc.get_best_block_hash().await {
                    Ok(best) => self.latest().is_none_or(|(_, t)| {
                        hex::decode_reversed(&best).is_ok_and(|b| b != t.prev_hash)
                    }),
                    Err(e) => {
                        self.inner.stats.rpc_errors.fetch_add(1, Ordering::Relaxed);
                        self.note_failure(&e);
                        false
                    }
                }
            };
            if stale {
                last_fetch = tokio::time::Instant::now();
                if let Err(e) = self.fetch(None).await {
                    self.note_failure(&e);
                }
            }
        }
    }

    /// Assembles the block from template `token` and submits it, then
    /// checks the node's tip. Asks for a new template when it went in.
    pub async fn submit(
        &self,
        token: u64,
        header: Header,
        coinbase: Vec<u8>,
    ) -> Result<Accepted, Refusal> {
        let refuse = |reason: String, is_final| Refusal { reason, is_final };
        let Some(t) = self.template(token) else {
            return Err(refuse(
                format!("template {token} is no longer held (job too old)"),
                true,
            ));
        };
        let hex_block = block::block_hex(&t, &header, &coinbase)
            .map_err(|e| refuse(format!("cannot assemble the block: {e}"), true))?;
        let hash = hex::encode_reversed(&header.block_hash());
        let note = match self.inner.rpc.submit_block(&hex_block).await {
            Ok(None) => None,
            // The node has it (an earlier try of ours went in); where, the
            // header check below says.
            Ok(Some(r)) if r == "duplicate" => Some(r),
            // Stored but not connected: a block at this height came first,
            // so this one is stale. Not a block found for the books.
            Ok(Some(r)) if r == "inconclusive" => {
                return Err(refuse(
                    "inconclusive: the node stored it off its best chain (another block at this height came first)".into(),
                    true,
                ));
            }
            Ok(Some(r)) => return Err(refuse(r, true)),
            Err(e) => {
                self.inner.stats.rpc_errors.fetch_add(1, Ordering::Relaxed);
                // Only the node's verdict on the block is final: a block
                // it could not decode will not decode later. Anything
                // else (away, busy, a reply cut short, even credentials
                // being fixed) may go through on a later try.
                let is_final = matches!(e, RpcError::Rpc { code: -22, .. });
                return Err(refuse(e.to_string(), is_final));
            }
        };
        self.refresh_now();
        // Taken is not enough: on the best chain is a block; stored off
        // it (a block at this height came first) is stale.
        let note = match self.inner.rpc.block_confirmations(&hash).await {
            Ok(c) if c >= 0 => note,
            Ok(_) => {
                return Err(refuse(
                    format!(
                        "{}stored off the node's best chain (another block at this height came first)",
                        note.map(|n| format!("{n}: ")).unwrap_or_default()
                    ),
                    true,
                ));
            }
            Err(e) => Some(format!(
                "{}not checked against the best chain: {e}",
                note.map(|n| format!("{n}; ")).unwrap_or_default()
            )),
        };
        Ok(Accepted {
            height: t.height,
            hash,
            note,
        })
    }
}

/// Same parent, same transactions, same value: nothing to re-issue.
fn same_work(a: &BlockTemplate, b: &BlockTemplate) -> bool {
    a.coinbase_value_sat == b.coinbase_value_sat
        && a.bits == b.bits
        && a.version == b.version
        && a.transactions.len() == b.transactions.len()
        && a.transactions
            .iter()
            .zip(&b.transactions)
            .all(|(x, y)| x.wtxid == y.wtxid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Auth;

    fn gbt(n: u32) -> Value {
        let p = format!(
            "{}/../../../shared/fixtures/gbt-regtest-{n}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v.get("result").cloned().unwrap_or(v)
    }

    fn templates() -> CoreTemplates {
        let rpc = RpcClient::new(
            "127.0.0.1:1",
            Auth::Cookie("/nonexistent".into()),
            Duration::from_secs(1),
        )
        .unwrap();
        CoreTemplates::new(rpc, CoreConfig::default())
    }

    #[test]
    fn a_late_reply_from_before_the_new_tip_is_not_taken() {
        let c = templates();
        c.take(&gbt(3));
        let (t3, _) = c.latest().unwrap();
        c.take(&gbt(4));
        let (t4, l4) = c.latest().unwrap();
        assert_ne!(t3, t4);
        assert_eq!((l4.height, c.tip_generation()), (204, 2));
        // The poller's fetch of the old tip, answered late.
        c.take(&gbt(3));
        assert_eq!(c.latest().unwrap().0, t4, "still the new tip's template");
        assert_eq!(c.tip_generation(), 2, "no clean job for a stale tip");
        // Both are still held for blocks on their jobs.
        assert!(c.template(t3).is_some() && c.template(t4).is_some());
    }

    #[test]
    fn the_same_work_again_is_not_a_new_template_but_new_fees_are() {
        let c = templates();
        c.take(&gbt(1));
        c.take(&gbt(1));
        assert_eq!(c.stats().templates.load(Ordering::Relaxed), 1);
        // gbt-2: the same parent with one transaction more.
        c.take(&gbt(2));
        assert_eq!(c.stats().templates.load(Ordering::Relaxed), 2);
        assert_eq!(c.tip_generation(), 1, "same tip: not a clean job");
    }

    #[test]
    fn a_template_that_does_not_check_out_is_counted_and_not_taken() {
        let c = templates();
        let mut bad = gbt(3);
        bad["transactions"][0]["txid"] = serde_json::json!("00".repeat(32));
        c.take(&bad);
        assert!(c.latest().is_none());
        assert_eq!(c.stats().bad_templates.load(Ordering::Relaxed), 1);
    }
}
