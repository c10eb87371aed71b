//! Upstream Stratum V1 client: one task per pool connection.
//!
//! The task connects, configures version rolling, subscribes, authorizes,
//! turns every `mining.notify` into one shared [`Job`] (published on a
//! `watch` channel, so a slow session skips ahead rather than lagging), and
//! submits the shares sessions forward. Responses are attributed back to the
//! session that produced the share. It reports its health on another
//! `watch`: the router fails sessions over when a connection drops, stalls
//! (no job for `stall_timeout`), or rejects everything.
//!
//! Protocol state (pending requests, difficulty for the next job, health)
//! lives in [`ClientState`], which takes lines and `now` and is tested
//! without sockets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use sluice_pow::version::RollingRule;
use sluice_pow::{JobTemplate, Target, hex};
use sluice_sv1::message as msg;
use sluice_sv1::{LineCodec, ServerMessage, SubscribeResult, parse_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::blocks::{BlockLog, BlockStatus};
use crate::extranonce::Geometry;
use crate::job::{BlockForward, Job, JobLinks, ShareForward, UpstreamId};
use crate::session::SessionId;
use crate::stats::{AtomicF64, PoolReject, Stats};
pub use crate::url::{PoolUrl, UrlError};

/// One upstream pool connection's settings.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Where to connect.
    pub url: PoolUrl,
    /// Pool account (`mining.authorize` user).
    pub user: String,
    /// Pool password.
    pub password: String,
    /// Submit as `user.worker` (each authorized upstream on first use)
    /// instead of under `user` alone.
    pub pass_through_workers: bool,
    /// How the pool combines rolled bits with the job version.
    pub rolling_rule: RollingRule,
    /// Version bits to ask the pool for (0: do not configure rolling).
    pub version_mask: u32,
    /// How the pool's extranonce2 space is split.
    pub geometry: Geometry,
    /// Give up on a connection after this long without a job.
    pub stall_timeout: Duration,
    /// Connect and handshake timeout.
    pub connect_timeout: Duration,
    /// This many rejects in a row mark the pool as rejecting everything.
    pub max_consecutive_rejects: u32,
    /// Longest line accepted from the pool.
    pub max_line: usize,
    /// Sent in `mining.subscribe`.
    pub user_agent: String,
    /// Ask the pool for a difficulty that fits the aggregate.
    pub suggest_difficulty: bool,
    /// Hosts other than the configured one that `client.reconnect` may
    /// send us to (the configured host, any port, is always allowed).
    pub reconnect_hosts: Vec<String>,
}

impl UpstreamConfig {
    /// True when `client.reconnect` may take us (and our credentials) to
    /// `host`: the configured host, or one listed for this pool. Host
    /// names compare without case; nothing is resolved.
    pub fn reconnect_allowed(&self, host: &str) -> bool {
        let same = |h: &str| {
            h.trim_end_matches('.')
                .eq_ignore_ascii_case(host.trim_end_matches('.'))
        };
        same(&self.url.host) || self.reconnect_hosts.iter().any(|h| same(h))
    }
}

/// Health as the router sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    /// Connecting or handshaking; no job yet.
    Connecting,
    /// Jobs are flowing.
    Ready,
    /// Down; the reason is for logs and the API.
    Failed(String),
}

/// Upstream result for one forwarded share, sent to its session.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamResult {
    /// The session that found the share.
    pub session: SessionId,
    /// Accepted by the pool.
    pub accepted: bool,
    /// Its credited difficulty.
    pub difficulty: f64,
    /// Submit to answer, when the pool answered.
    pub latency: Option<Duration>,
    /// Why the pool refused it (`None` when accepted).
    pub reject: Option<PoolReject>,
    /// Worker, pool and value of the share (for the books).
    pub share: ShareInfo,
}

impl UpstreamResult {
    /// A share that never reached its pool (counted in `stats`): a reject
    /// for its session, whose books take it back.
    pub fn undelivered(s: &ShareForward, stats: &Stats) -> Self {
        stats.upstream_reject(PoolReject::Undelivered);
        Self {
            session: s.session,
            accepted: false,
            difficulty: s.difficulty,
            latency: None,
            reject: Some(PoolReject::Undelivered),
            share: ShareInfo::of(s),
        }
    }
}

/// What the books need to take back a share the pool refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShareInfo {
    /// The worker that found it.
    pub worker: Option<Arc<str>>,
    /// Config index of its pool.
    pub pool: usize,
    /// Its job's value.
    pub value: sluice_books::JobValue,
    /// When the miner submitted it (a reversal lands in its bucket).
    pub received: Option<Instant>,
    /// The pool's difficulty for it: a forwarded share stands for that
    /// much work when the pool's difficulty is above the miner's.
    pub upstream_difficulty: f64,
}

impl ShareInfo {
    /// The identity of a forwarded share.
    pub fn of(s: &ShareForward) -> Self {
        Self {
            worker: Some(s.worker.clone()),
            pool: s.job.pool,
            value: s.job.value,
            received: Some(s.received),
            upstream_difficulty: s.job.upstream_target.difficulty(),
        }
    }
}

/// What a running upstream connection exposes.
#[derive(Debug)]
pub struct UpstreamHandle {
    /// Connection number.
    pub id: UpstreamId,
    /// Index of its pool in the configuration.
    pub pool: usize,
    /// Latest job.
    pub jobs: watch::Receiver<Option<Arc<Job>>>,
    /// The sessions told when a job is published (they add themselves).
    pub listeners: Arc<crate::fanout::JobListeners>,
    /// Health.
    pub health: watch::Receiver<Health>,
    /// Sessions assigned to it (kept by the router).
    pub sessions: AtomicU64,
    /// Cancels the connection task.
    pub cancel: CancellationToken,
    /// The difficulty the router asks this connection's pool for (the
    /// aggregate of its sessions; 0 until known).
    pub suggest: Arc<AtomicF64>,
}

/// Worker names one connection authorizes upstream (pass-through); past
/// it, shares go under the account itself.
const MAX_UPSTREAM_NAMES: usize = 65_536;

/// Shares awaiting an answer before a pool counts as not answering.
const MAX_PENDING: usize = 50_000;

/// A share the client submitted and awaits an answer for.
#[derive(Clone, Debug)]
struct Pending {
    session: SessionId,
    difficulty: f64,
    sent: Instant,
    share: ShareInfo,
    /// For a block: its number in the block log, and when it was sent
    /// (it may be a resubmission of a share found long before).
    block: Option<(u64, Instant)>,
}

/// What the protocol state wants the task to do.
#[derive(Debug, PartialEq)]
pub enum ClientAction {
    /// Write a line.
    Send(Bytes),
    /// Publish a job.
    Job(JobParts),
    /// Report a share result.
    Result(UpstreamResult),
    /// The pool's verdict on a block we submitted.
    Block {
        /// Its number in the block log.
        id: u64,
        /// Accepted.
        accepted: bool,
        /// The pool's words.
        detail: Option<String>,
    },
    /// The pool changed its version mask (effective at once).
    VersionMask(u32),
    /// The handshake is done.
    Subscribed(SubscribeResult),
    /// The pool asks us to reconnect elsewhere (an allowed host).
    Reconnect(PoolUrl, Duration),
    /// The pool asked us to reconnect to a host its config does not allow.
    RefusedReconnect(PoolUrl),
    /// The connection must go down.
    Fail(String),
}

/// A job decoded from a notify, before it gets a process-wide id.
#[derive(Clone, Debug, PartialEq)]
pub struct JobParts {
    /// The notify as received.
    pub notify: sluice_sv1::Notify,
    /// Pool difficulty in force for it.
    pub difficulty: f64,
    /// True when earlier jobs are dead (clean, or new prev hash).
    pub clean: bool,
}

/// Sans-IO protocol state of one upstream connection.
#[derive(Debug)]
pub struct ClientState {
    cfg: Arc<UpstreamConfig>,
    next_id: u64,
    subscribe_id: u64,
    subscribed: Option<SubscribeResult>,
    authorized: HashSet<String>,
    version_mask: u32,
    difficulty: f64,
    pending_difficulty: Option<f64>,
    pending: HashMap<u64, Pending>,
    last_prev_hash: Option<[u8; 32]>,
    last_job: Option<Instant>,
    consecutive_rejects: u32,
    /// Id of the main account's authorize: a refusal is fatal.
    authorize_id: u64,
    /// The next job must be clean (first job, or extranonce changed).
    force_clean: bool,
    /// Id of our latest `mining.suggest_difficulty` (0: none yet).
    suggest_id: u64,
    /// The difficulty last suggested.
    suggested: Option<f64>,
    /// False once the pool refused a suggestion: it is not asked again.
    suggest_ok: bool,
    /// Rejects since the last reject log line, and when that was.
    rejects_unlogged: u64,
    last_reject_log: Option<Instant>,
    /// The session id to resume at subscribe (from the last connection).
    resume: Option<String>,
    /// The session id this connection's subscribe result gave.
    session_id: Option<String>,
}

/// How long a pool may leave a block unanswered before the connection is
/// taken for dead and the block sent again on a new one.
pub const BLOCK_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Least time between two log lines about a pool's rejects.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

impl ClientState {
    /// Fresh state; call [`ClientState::handshake`] once connected.
    pub fn new(cfg: Arc<UpstreamConfig>) -> Self {
        Self {
            cfg,
            next_id: 1,
            subscribe_id: 0,
            subscribed: None,
            authorized: HashSet::new(),
            version_mask: 0,
            difficulty: 1.0,
            pending_difficulty: None,
            pending: HashMap::new(),
            last_prev_hash: None,
            last_job: None,
            consecutive_rejects: 0,
            authorize_id: 0,
            force_clean: true,
            suggest_id: 0,
            suggested: None,
            suggest_ok: true,
            rejects_unlogged: 0,
            last_reject_log: None,
            resume: None,
            session_id: None,
        }
    }

    /// Asks to resume `session` (a previous connection's) at subscribe.
    pub fn resuming(mut self, session: Option<String>) -> Self {
        self.resume = session;
        self
    }

    /// The session id the pool gave this connection (to resume later).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The opening requests: configure (if rolling), subscribe, authorize.
    pub fn handshake(&mut self, now: Instant) -> Vec<ClientAction> {
        let mut out = Vec::new();
        if self.cfg.version_mask != 0 {
            let id = self.id();
            out.push(ClientAction::Send(msg::encode_request(
                id,
                "mining.configure",
                json!([["version-rolling"], {"version-rolling.mask": format!("{:08x}", self.cfg.version_mask), "version-rolling.min-bit-count": 2}]),
            )));
        }
        self.subscribe_id = self.id();
        // Ask to resume the last session (ckpool and others then keep our
        // extranonce1, so work and blocks from before still fit).
        let params = match &self.resume {
            Some(id) => json!([self.cfg.user_agent, id]),
            None => json!([self.cfg.user_agent]),
        };
        out.push(ClientAction::Send(msg::encode_request(
            self.subscribe_id,
            "mining.subscribe",
            params,
        )));
        let user = self.cfg.user.clone();
        self.authorize_id = self.next_id;
        out.push(ClientAction::Send(self.authorize(&user)));
        self.last_job = Some(now);
        out
    }

    fn authorize(&mut self, user: &str) -> Bytes {
        let id = self.id();
        self.authorized.insert(user.to_owned());
        msg::encode_request(id, "mining.authorize", json!([user, self.cfg.password]))
    }

    /// Asks the pool for `difficulty` when it differs from the last ask by
    /// more than half or double (and the pool has not refused asks).
    pub fn suggest(&mut self, difficulty: f64) -> Option<Bytes> {
        let can = self.cfg.suggest_difficulty
            && self.suggest_ok
            && self.subscribed.is_some()
            && difficulty.is_finite()
            && difficulty > 0.0;
        if !can || !suggestion_due(&mut self.suggested, difficulty) {
            return None;
        }
        self.suggest_id = self.id();
        Some(msg::encode_request(
            self.suggest_id,
            "mining.suggest_difficulty",
            json!([difficulty]),
        ))
    }

    /// True when a share should go to the pool: between a new difficulty
    /// and the pool's next job it must meet the stricter of its job's
    /// difficulty and the new one (a pool may apply a new difficulty at
    /// once; shares below it would be rejected, and 50 in a row fail the
    /// connection). From the next job on, shares of older jobs go at their
    /// own job's difficulty again, as pools credit them.
    pub fn should_forward(&self, s: &ShareForward) -> bool {
        if s.is_block {
            return true;
        }
        let strict = self.pending_difficulty.unwrap_or(0.0);
        if strict <= s.job.pool_difficulty {
            return true;
        }
        Target::from_difficulty(strict).is_ok_and(|t| t.is_met_by(&s.hash))
    }

    /// Version mask the pool granted (0 until configured).
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    /// The subscribe result, once received.
    pub fn subscription(&self) -> Option<&SubscribeResult> {
        self.subscribed.as_ref()
    }

    /// Shares awaiting an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handles a line from the pool.
    pub fn on_line(&mut self, line: &[u8], now: Instant) -> Vec<ClientAction> {
        let mut out = Vec::new();
        let m = match parse_server(line) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "bad line from pool");
                return out;
            }
        };
        match m {
            ServerMessage::Response { id, result, error } => {
                let Some(id) = id.as_u64() else { return out };
                if id == self.subscribe_id {
                    // The session id to resume with next time: the
                    // mining.notify subscription id, as ckpool hands it out.
                    self.session_id = result
                        .get(0)
                        .and_then(Value::as_array)
                        .and_then(|subs| {
                            subs.iter().find_map(|p| {
                                let p = p.as_array()?;
                                (p.first()?.as_str()? == "mining.notify")
                                    .then(|| p.get(1)?.as_str().map(str::to_owned))
                                    .flatten()
                            })
                        })
                        .filter(|id| id.len() <= 64);
                    match SubscribeResult::from_value(&result) {
                        Ok(s) => {
                            if let Err(e) = self.cfg.geometry.fits(s.extranonce2_size) {
                                out.push(ClientAction::Fail(e.to_string()));
                                return out;
                            }
                            self.subscribed = Some(s.clone());
                            out.push(ClientAction::Subscribed(s));
                        }
                        Err(e) => out.push(ClientAction::Fail(format!(
                            "subscribe failed: {e} {error:?}"
                        ))),
                    }
                } else if id == self.authorize_id {
                    if error.is_some() || result.as_bool() != Some(true) {
                        let why = error.map(|e| e.message).unwrap_or_else(|| "refused".into());
                        out.push(ClientAction::Fail(format!(
                            "pool refused authorization for {}: {why}",
                            self.cfg.user
                        )));
                    }
                } else if id == self.suggest_id && (error.is_some() || result == Value::Bool(false))
                {
                    self.suggest_ok = false;
                    tracing::info!(
                        ?error,
                        "pool refuses mining.suggest_difficulty; not asking again"
                    );
                } else if let Some(p) = self.pending.remove(&id) {
                    let accepted = error.is_none() && result.as_bool() == Some(true);
                    let reject = (!accepted).then(|| {
                        let (code, text) = error
                            .as_ref()
                            .map_or((None, ""), |e| (Some(e.code), e.message.as_str()));
                        PoolReject::classify(code, text)
                    });
                    if accepted {
                        self.consecutive_rejects = 0;
                    } else {
                        self.consecutive_rejects += 1;
                        self.log_reject(error.as_ref(), now);
                    }
                    answer(
                        p,
                        reject,
                        error.as_ref().map(|e| e.message.clone()),
                        now,
                        &mut out,
                    );
                    if self.consecutive_rejects >= self.cfg.max_consecutive_rejects {
                        out.push(ClientAction::Fail(format!(
                            "pool rejected {} shares in a row",
                            self.consecutive_rejects
                        )));
                    }
                } else if let Some(mask) = result
                    .as_object()
                    .and_then(|o| o.get("version-rolling.mask"))
                    .and_then(|m| m.as_str())
                {
                    // The configure reply.
                    self.version_mask =
                        u32::from_str_radix(mask, 16).unwrap_or(0) & self.cfg.version_mask;
                } else if error.is_some() && result.as_bool() != Some(true) {
                    // An authorize (or configure) failure: fatal for auth.
                    if result.is_boolean() || result.is_null() {
                        let e = error.map(|e| e.message).unwrap_or_default();
                        if !self.pending.is_empty() || self.subscribed.is_some() {
                            tracing::warn!(error = %e, "pool refused a request");
                        }
                    }
                }
            }
            ServerMessage::SetDifficulty(d) => self.pending_difficulty = Some(d),
            ServerMessage::SetVersionMask(m) => {
                // Effective at once: miners hear of it now, not with the
                // next job.
                let m = m & self.cfg.version_mask;
                if m != self.version_mask {
                    self.version_mask = m;
                    out.push(ClientAction::VersionMask(m));
                }
            }
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                if let Err(e) = self.cfg.geometry.fits(extranonce2_size) {
                    out.push(ClientAction::Fail(e.to_string()));
                } else {
                    // Applies from the next notify (PROTOCOLS.md), which
                    // must be clean: older jobs used the old extranonce1.
                    self.subscribed = Some(SubscribeResult {
                        extranonce1,
                        extranonce2_size,
                    });
                    self.force_clean = true;
                }
            }
            ServerMessage::Notify(n) => {
                if let Some(d) = self.pending_difficulty.take() {
                    self.difficulty = d;
                }
                // Take the forced flag whatever the pool says: left set, it
                // would turn the pool's next non-clean job into a clean one
                // and cost every miner a share.
                let forced = std::mem::take(&mut self.force_clean);
                let clean =
                    n.clean || forced || self.last_prev_hash.is_some_and(|p| p != n.prev_hash);
                self.last_prev_hash = Some(n.prev_hash);
                self.last_job = Some(now);
                out.push(ClientAction::Job(JobParts {
                    notify: n,
                    difficulty: self.difficulty,
                    clean,
                }));
            }
            ServerMessage::Reconnect { host, port, wait } => {
                let url = PoolUrl {
                    host: host.unwrap_or_else(|| self.cfg.url.host.clone()),
                    port: port.unwrap_or(self.cfg.url.port),
                    authority: self.cfg.url.authority,
                };
                // A pool (or anyone on the plaintext path) could move the
                // farm's hashrate, and our credentials, anywhere: follow
                // only to the configured host or the hosts listed for it.
                if self.cfg.reconnect_allowed(&url.host) {
                    out.push(ClientAction::Reconnect(
                        url,
                        Duration::from_secs(wait.unwrap_or(0).min(600)),
                    ));
                } else {
                    out.push(ClientAction::RefusedReconnect(url));
                }
            }
            ServerMessage::ShowMessage(text) => tracing::info!(%text, "message from pool"),
            ServerMessage::Request { id, method } => {
                let reply = if method == "client.get_version" {
                    msg::encode_result(id.as_bytes(), &json!(self.cfg.user_agent))
                } else {
                    msg::encode_error(
                        id.as_bytes(),
                        sluice_sv1::ErrorCode::Other,
                        "Method not found",
                    )
                };
                out.push(ClientAction::Send(reply));
            }
            ServerMessage::Unknown(m) => {
                tracing::debug!(method = %m, "unhandled pool notification")
            }
        }
        out
    }

    /// Logs a pool's reject with its words, at most once per
    /// [`REJECT_LOG_EVERY`] (a pool rejecting everything must not flood
    /// the log), with the count since the last line.
    fn log_reject(&mut self, error: Option<&sluice_sv1::RpcError>, now: Instant) {
        self.rejects_unlogged += 1;
        if self
            .last_reject_log
            .is_some_and(|t| now.saturating_duration_since(t) < REJECT_LOG_EVERY)
        {
            return;
        }
        self.last_reject_log = Some(now);
        let n = std::mem::take(&mut self.rejects_unlogged);
        match error {
            Some(e) => {
                tracing::warn!(code = e.code, reason = %e.message, rejects = n, "pool rejected shares")
            }
            None => tracing::warn!(rejects = n, "pool rejected shares without a reason"),
        }
    }

    /// Encodes a block for the pool; its verdict comes back as
    /// [`ClientAction::Block`].
    pub fn submit_block(&mut self, id: u64, s: &ShareForward, now: Instant) -> Vec<Bytes> {
        let out = self.submit(s);
        if let Some(p) = self.pending.get_mut(&(self.next_id - 1)) {
            p.block = Some((id, now));
        }
        out
    }

    /// Encodes a share for the pool (and, with pass-through names, the
    /// worker's authorization the first time it is seen).
    pub fn submit(&mut self, s: &ShareForward) -> Vec<Bytes> {
        let pad = s.job.extranonce_pad;
        let mut out = Vec::with_capacity(2);
        let worker = if self.cfg.pass_through_workers {
            let suffix = s.worker.rsplit_once('.').map_or(&*s.worker, |(_, w)| w);
            let name = format!("{}.{}", self.cfg.user, suffix);
            if self.authorized.contains(&name) {
                name
            } else if self.authorized.len() < MAX_UPSTREAM_NAMES {
                out.push(self.authorize(&name));
                name
            } else {
                // Past the cap, under the account itself: still credited.
                self.cfg.user.clone()
            }
        } else {
            self.cfg.user.clone()
        };
        let id = self.id();
        let mut en2 = [0u8; 64];
        let n = s.extranonce2.as_slice().len();
        en2[..n].copy_from_slice(s.extranonce2.as_slice());
        out.push(msg::encode_submit(
            id,
            &worker,
            &s.job.upstream_job_id,
            &en2[..n + pad],
            s.ntime,
            s.nonce,
            s.version_bits(),
        ));
        self.pending.insert(
            id,
            Pending {
                session: s.session,
                difficulty: s.difficulty,
                sent: s.received,
                share: ShareInfo::of(s),
                block: None,
            },
        );
        out
    }

    /// Forgets shares still waiting for an answer (the connection is
    /// gone): each is reported as rejected, so none is counted nowhere.
    /// Blocks among them come back by number, to be sent again.
    pub fn drain_pending(&mut self) -> (Vec<UpstreamResult>, Vec<u64>) {
        drain(self.pending.drain().map(|(_, p)| p))
    }

    /// Checks the stall timer, and that the pool answers what we submit.
    pub fn on_tick(&self, now: Instant) -> Option<ClientAction> {
        pending_checks(
            self.pending.values(),
            self.pending.len(),
            self.last_job,
            self.cfg.stall_timeout,
            now,
        )
    }
}

/// A share's verdict as actions: the block's fate first (if it was one),
/// then the result for its session.
fn answer(
    p: Pending,
    reject: Option<PoolReject>,
    detail: Option<String>,
    now: Instant,
    out: &mut Vec<ClientAction>,
) {
    let accepted = reject.is_none();
    if let Some((b, _)) = p.block {
        out.push(ClientAction::Block {
            id: b,
            accepted,
            detail,
        });
    }
    out.push(ClientAction::Result(UpstreamResult {
        session: p.session,
        accepted,
        difficulty: p.difficulty,
        latency: Some(now.saturating_duration_since(p.sent)),
        reject,
        share: p.share,
    }));
}

/// Why a block cannot go to the pool on this connection, if it cannot:
/// its coinbase carries another extranonce1 than the connection's (V1:
/// the pool did not resume the session), or (V2) its job came from an
/// earlier channel, whose job ids the new one does not know.
fn unsendable(st: &Proto, b: &BlockForward, first_epoch: Option<u64>) -> Option<&'static str> {
    let en1 = st.subscription().map(|s| s.extranonce1.as_slice());
    if en1 != Some(&*b.share.job.upstream_extranonce1) {
        return Some(
            "the pool gave the new connection another extranonce1 (it did not resume the session), so it cannot rebuild this block's coinbase: submit it from the log",
        );
    }
    let earlier = first_epoch.is_none_or(|f| b.share.job.epoch < f);
    if matches!(st, Proto::V2(_)) && earlier {
        return Some(
            "a V2 pool knows a job only on the channel that sent it, and this block's job came from an earlier connection: submit it from the log",
        );
    }
    None
}

/// Whether a difficulty is worth telling the pool: the first, or one off
/// the last told by more than half or double (then it is the last told).
fn suggestion_due(last: &mut Option<f64>, difficulty: f64) -> bool {
    if last.is_some_and(|s| difficulty < 2.0 * s && difficulty > 0.5 * s) {
        return false;
    }
    *last = Some(difficulty);
    true
}

/// Shares a gone connection leaves unanswered: each a reject for its
/// session; blocks among them by number, to be sent again.
fn drain(pending: impl Iterator<Item = Pending>) -> (Vec<UpstreamResult>, Vec<u64>) {
    let mut blocks = Vec::new();
    let results = pending
        .filter_map(|p| {
            if let Some((b, _)) = p.block {
                // Not a reject: it will be submitted again.
                blocks.push(b);
                return None;
            }
            Some(UpstreamResult {
                session: p.session,
                accepted: false,
                difficulty: p.difficulty,
                latency: None,
                reject: Some(PoolReject::Unanswered),
                share: p.share,
            })
        })
        .collect();
    (results, blocks)
}

/// Whether a connection must go down for what it left unanswered or for
/// sending no job in `stall_timeout`.
fn pending_checks<'a>(
    pending: impl Iterator<Item = &'a Pending>,
    count: usize,
    last_job: Option<Instant>,
    stall_timeout: Duration,
    now: Instant,
) -> Option<ClientAction> {
    // A block the pool has not answered: it may have stopped reading.
    // Fail the connection, so the block goes again on a new one.
    if let Some((_, at)) = pending
        .filter_map(|p| p.block)
        .find(|(_, at)| now.saturating_duration_since(*at) > BLOCK_ANSWER_TIMEOUT)
    {
        return Some(ClientAction::Fail(format!(
            "pool left a block unanswered for {:?}",
            now.saturating_duration_since(at)
        )));
    }
    if count > MAX_PENDING {
        return Some(ClientAction::Fail(format!(
            "pool left {count} shares unanswered"
        )));
    }
    let last = last_job?;
    (now.saturating_duration_since(last) > stall_timeout)
        .then(|| ClientAction::Fail(format!("no job for {stall_timeout:?}")))
}

/// Process-wide counters the upstream tasks share.
#[derive(Debug, Default)]
pub struct JobIds(AtomicU64);

impl JobIds {
    /// The next job number.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Builds the shared [`Job`] from a pool's notify (trick 1: the pool's
/// extranonce1 goes into coinb1; zero padding goes in front of coinb2).
#[allow(clippy::too_many_arguments)]
pub fn build_job(
    parts: &JobParts,
    sub: &SubscribeResult,
    geometry: Geometry,
    upstream: UpstreamId,
    pool: usize,
    id: u64,
    epoch: u64,
    version_mask: u32,
    rolling_rule: RollingRule,
    links: JobLinks,
    now: Instant,
) -> Result<Job, String> {
    let n = &parts.notify;
    let pad = geometry.pad_len(sub.extranonce2_size);
    // What the pool's block pays, read before its extranonce1 is folded in.
    let value = sluice_books::JobValue {
        difficulty: sluice_pow::target::nbits_difficulty(n.nbits).unwrap_or(0.0),
        reward_sat: sluice_pow::coinbase::coinbase_output_total(
            &n.coinb1,
            sub.extranonce1.len() + sub.extranonce2_size,
            &n.coinb2,
        ),
    };
    let coinb1 = [&n.coinb1[..], &sub.extranonce1].concat();
    let coinb2 = [&vec![0u8; pad][..], &n.coinb2].concat();
    let template = JobTemplate::new(n.prev_hash, coinb1, coinb2, n.branches.clone(), n.nbits)
        .map_err(|e| format!("job {}: {e}", n.job_id))?;
    let upstream_target = Target::from_difficulty(parts.difficulty).map_err(|e| e.to_string())?;
    Ok(Job {
        id,
        upstream,
        upstream_job_id: n.job_id.as_str().into(),
        template: Arc::new(template),
        version: n.version,
        version_mask,
        rolling_rule,
        ntime: n.ntime,
        clean: parts.clean,
        epoch,
        upstream_target,
        pool_difficulty: parts.difficulty,
        upstream_extranonce1: sub.extranonce1.clone(),
        links,
        wire: crate::job::JobWire::default(),
        pool,
        value,
        extranonce_pad: pad,
        received: now,
        republish_of: None,
        payout: None,
        paid_to: None,
    })
}

/// Everything one connection task needs.
pub struct UpstreamTask {
    /// Connection number.
    pub id: UpstreamId,
    /// Settings.
    pub cfg: Arc<UpstreamConfig>,
    /// Job numbering shared by all upstreams.
    pub job_ids: Arc<JobIds>,
    /// Engine counters.
    pub stats: Arc<Stats>,
    /// Config index of the pool.
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
    /// The difficulty to suggest to the pool (set by the router).
    pub suggest: Arc<AtomicF64>,
    /// Share results back to sessions.
    pub results: mpsc::UnboundedSender<UpstreamResult>,
    /// Stops the task.
    pub cancel: CancellationToken,
}

/// How long one write to a pool may take before the connection counts as
/// hung (a wedged pool must not hold up the sessions feeding it).
const POOL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Submissions of one block (over reconnects) before it counts as failed.
pub const MAX_BLOCK_ATTEMPTS: u32 = 5;

async fn write_line(wr: &mut tokio::net::tcp::OwnedWriteHalf, b: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(POOL_WRITE_TIMEOUT, wr.write_all(b)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write to pool timed out".into()),
    }
}

/// Writes one output of the protocol state: a V1 line as is, a V2 frame
/// encrypted first.
async fn write_out(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    wire: &mut PoolWire,
    b: &Bytes,
) -> Result<(), String> {
    if let PoolWire::Lines(_) = wire {
        return write_line(wr, b).await;
    }
    let mut out = BytesMut::with_capacity(b.len() + 64);
    wire.encode(b, &mut out)?;
    write_line(wr, &out).await
}

/// Blocks this connection task owes its pool: waiting for a connection, or
/// sent and awaiting a verdict (sent again if the connection drops first).
#[derive(Default)]
struct OwedBlocks {
    /// The last connection's session id, to resume on the next.
    session: Option<String>,
    /// With the submissions each has had so far.
    waiting: Vec<(BlockForward, u32)>,
    inflight: HashMap<u64, (BlockForward, u32)>,
}

impl UpstreamTask {
    /// Runs until cancelled, reconnecting with backoff.
    pub async fn run(mut self) {
        let mut owed = OwedBlocks::default();
        self.reconnecting(&mut owed).await;
        self.abandon(&mut owed);
    }

    async fn reconnecting(&mut self, owed: &mut OwedBlocks) {
        let mut backoff = Duration::from_millis(250);
        let mut url = self.cfg.url.clone();
        let mut epoch = 0u64;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let _ = self.health.send(Health::Connecting);
            let mut reached_ready = false;
            let outcome = self
                .connection(&url, &mut epoch, &mut reached_ready, owed)
                .await;
            self.links.up.store(false, Ordering::Release);
            if reached_ready {
                backoff = Duration::from_millis(250);
            }
            let (reason, wait) = match outcome {
                Ok(Some((next, wait))) => {
                    tracing::info!(%next, ?wait, "pool asked us to reconnect");
                    url = next;
                    backoff = Duration::from_millis(250);
                    ("reconnecting on pool request".to_string(), wait)
                }
                Ok(None) => return,
                Err(e) => {
                    self.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(upstream = self.id, url = %url, reason = %e, "upstream down");
                    // Back to the configured pool after a redirect fails.
                    url = self.cfg.url.clone();
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    (e, wait)
                }
            };
            let _ = self.health.send(Health::Failed(reason));
            // Shares that arrive while down have nowhere to go: count them.
            while let Ok(s) = self.shares.try_recv() {
                self.undelivered(&s);
            }
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    biased;
                    b = self.blocks.recv() => match b {
                        Some(b) => self.owe(owed, b, 0, "pool down; sent when it is back"),
                        None => return,
                    },
                    s = self.shares.recv() => match s {
                        Some(s) => self.undelivered(&s),
                        None => return,
                    },
                    _ = &mut sleep => break,
                    _ = self.cancel.cancelled() => return,
                }
            }
        }
    }

    /// Shutting down: blocks still owed are marked so in the log (their
    /// header and coinbase are there for a manual submission).
    fn abandon(&self, owed: &mut OwedBlocks) {
        let ids = owed
            .waiting
            .drain(..)
            .map(|(b, _)| b.id)
            .chain(owed.inflight.drain().map(|(id, _)| id));
        for id in ids {
            self.block_log.set(
                id,
                BlockStatus::Failed,
                Some("shut down before the pool took or answered it; if it did not, submit it from the log".into()),
            );
        }
    }

    /// A share that could not reach the pool: a reject for its session.
    fn undelivered(&self, s: &ShareForward) {
        let _ = self
            .results
            .send(UpstreamResult::undelivered(s, &self.stats));
    }

    /// Keeps a block for the next connection (or gives up on it after
    /// [`MAX_BLOCK_ATTEMPTS`]).
    fn owe(&self, owed: &mut OwedBlocks, b: BlockForward, tried: u32, why: &str) {
        if tried >= MAX_BLOCK_ATTEMPTS {
            self.block_log.set(
                b.id,
                BlockStatus::Failed,
                Some(format!("no verdict after {tried} submissions")),
            );
            // Its session books it as not taken.
            self.undelivered(&b.share);
            return;
        }
        self.block_log
            .set(b.id, BlockStatus::Found, Some(why.to_string()));
        owed.waiting.push((b, tried));
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_block(
        &self,
        st: &mut Proto,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        wire: &mut PoolWire,
        owed: &mut OwedBlocks,
        b: BlockForward,
        tried: u32,
    ) -> Result<(), String> {
        let lines = st.submit_block(b.id, &b.share, Instant::now());
        let id = b.id;
        if lines.is_empty() {
            // Nothing this pool could take (it cannot happen with the
            // jobs we build; a record that says so beats a silent limbo).
            self.block_log.set(
                id,
                BlockStatus::Failed,
                Some("could not be encoded for this pool: submit it from the log".into()),
            );
            self.undelivered(&b.share);
            return Ok(());
        }
        // In flight before the write: a failed write brings it back.
        owed.inflight.insert(id, (b, tried + 1));
        for line in lines {
            write_out(wr, wire, &line).await?;
        }
        // The block is on the wire first; the log hears of it after.
        self.block_log.set(id, BlockStatus::Submitted, None);
        Ok(())
    }

    /// One connection's life. `Ok(None)`: cancelled; `Ok(Some)`: the pool
    /// asked for a reconnect; `Err`: why it failed.
    async fn connection(
        &mut self,
        url: &PoolUrl,
        epoch: &mut u64,
        reached_ready: &mut bool,
        owed: &mut OwedBlocks,
    ) -> Result<Option<(PoolUrl, Duration)>, String> {
        let mut st = Proto::new(
            self.cfg.clone(),
            url.authority.is_some(),
            owed.session.take(),
        );
        let r = self
            .connection_inner(url, epoch, reached_ready, &mut st, owed)
            .await;
        self.links.up.store(false, Ordering::Release);
        let (results, blocks) = st.drain_pending();
        for res in results {
            self.stats.upstream_reject(PoolReject::Unanswered);
            let _ = self.results.send(res);
        }
        for id in blocks {
            if let Some((b, tried)) = owed.inflight.remove(&id) {
                self.owe(owed, b, tried, "connection lost before the pool answered");
            }
        }
        r
    }

    #[allow(clippy::too_many_lines)]
    async fn connection_inner(
        &mut self,
        url: &PoolUrl,
        epoch: &mut u64,
        reached_ready: &mut bool,
        st: &mut Proto,
        owed: &mut OwedBlocks,
    ) -> Result<Option<(PoolUrl, Duration)>, String> {
        let handshake_deadline = tokio::time::Instant::now() + self.cfg.connect_timeout;
        let connect = TcpStream::connect((url.host.as_str(), url.port));
        let mut stream = match tokio::time::timeout(self.cfg.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err("connect timed out".into()),
        };
        let _ = stream.set_nodelay(true);
        // A V2 pool: the Noise handshake first, its certificate checked
        // against the authority key configured for it.
        let mut wire = match url.authority {
            None => PoolWire::Lines(LineCodec::new(self.cfg.max_line)),
            Some(key) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
                let hs = sluice_sv2::codec::connect(
                    &mut stream,
                    Some(key),
                    now,
                    sluice_sv2::frame::DEFAULT_MAX_PAYLOAD,
                );
                match tokio::time::timeout_at(handshake_deadline, hs).await {
                    Ok(Ok(c)) => PoolWire::Noise(Box::new(c)),
                    Ok(Err(e)) => return Err(format!("V2 handshake: {e}")),
                    Err(_) => return Err("V2 handshake timed out".into()),
                }
            }
        };
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        for a in st.handshake(Instant::now()) {
            if let ClientAction::Send(b) = a {
                write_out(&mut wr, &mut wire, &b).await?;
            }
        }
        let mut ready = false;
        // Jobs numbered before this connection's first job were built on an
        // earlier subscription (maybe another extranonce1): the pool would
        // reject their shares.
        let mut first_epoch: Option<u64> = None;
        // The latest job's parts, rebuilt when the pool's mask changes.
        let mut last_parts: Option<(JobParts, u64)> = None;
        loop {
            let mut lines = Vec::new();
            tokio::select! {
                biased;
                // Blocks first: nothing queues in front of them.
                b = self.blocks.recv() => {
                    let Some(b) = b else { return Ok(None) };
                    if ready {
                        if let Some(why) = unsendable(st, &b, first_epoch) {
                            self.block_log.set(b.id, BlockStatus::Failed, Some(why.into()));
                            self.undelivered(&b.share);
                            continue;
                        }
                        self.send_block(st, &mut wr, &mut wire, owed, b, 0).await?;
                    } else {
                        self.owe(owed, b, 0, "pool not ready; sent when it is");
                    }
                    continue;
                }
                r = rd.read_buf(&mut buf) => {
                    match r {
                        Ok(0) => return Err("pool closed the connection".into()),
                        Ok(_) => {
                            while let Some(l) = wire.decode(&mut buf)? {
                                lines.push(l);
                            }
                        }
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                s = self.shares.recv() => {
                    let Some(s) = s else { return Ok(None) };
                    // Shares on jobs of an earlier connection are stale for
                    // this one; the pool would reject them.
                    if !ready || s.job.upstream != self.id || first_epoch.is_none_or(|f| s.job.epoch < f) {
                        self.undelivered(&s);
                        continue;
                    }
                    if !st.should_forward(&s) {
                        self.stats.upstream_withheld.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    for line in st.submit(&s) {
                        write_out(&mut wr, &mut wire, &line).await?;
                    }
                    self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                _ = ticker.tick() => {
                    if !ready && tokio::time::Instant::now() > handshake_deadline {
                        return Err("handshake timed out".into());
                    }
                    if let Some(ClientAction::Fail(r)) = st.on_tick(Instant::now()) {
                        return Err(r);
                    }
                    if ready && let Some(line) = st.suggest(self.suggest.get()) {
                        self.stats.difficulty_suggestions.fetch_add(1, Ordering::Relaxed);
                        write_out(&mut wr, &mut wire, &line).await?;
                    }
                }
                _ = self.cancel.cancelled() => return Ok(None),
            }
            for line in lines {
                for action in st.on_input(line, Instant::now()) {
                    match action {
                        ClientAction::Send(b) => write_out(&mut wr, &mut wire, &b).await?,
                        ClientAction::Subscribed(s) => {
                            owed.session = st.session_id().map(str::to_owned);
                            tracing::info!(upstream = self.id, extranonce1 = %hex::encode(&s.extranonce1), extranonce2_size = s.extranonce2_size, "subscribed");
                        }
                        ClientAction::Job(parts) => {
                            if parts.clean || !ready {
                                *epoch += 1;
                            }
                            let Some(id) = self.publish(st, &parts, *epoch, None) else {
                                continue;
                            };
                            last_parts = Some((parts, id));
                            if !ready {
                                ready = true;
                                *reached_ready = true;
                                first_epoch = Some(*epoch);
                                self.links.up.store(true, Ordering::Release);
                                let _ = self.health.send(Health::Ready);
                                // Blocks owed from before: the pool is back.
                                // One at a time off the list, so a write
                                // failing midway leaves the rest owed.
                                while let Some((b, tried)) = owed.waiting.pop() {
                                    // Say why, not "rejected".
                                    if let Some(why) = unsendable(st, &b, first_epoch) {
                                        self.block_log.set(
                                            b.id,
                                            BlockStatus::Failed,
                                            Some(why.into()),
                                        );
                                        self.undelivered(&b.share);
                                        continue;
                                    }
                                    self.send_block(st, &mut wr, &mut wire, owed, b, tried)
                                        .await?;
                                }
                            }
                        }
                        ClientAction::VersionMask(m) => {
                            tracing::info!(upstream = self.id, mask = %format!("{m:08x}"), "pool changed the version mask");
                            // The same work under the new mask, so sessions
                            // tell miners now rather than with the next job.
                            if let Some((mut p, id)) = last_parts.clone() {
                                p.clean = false;
                                if let Some(new) = self.publish(st, &p, *epoch, Some(id)) {
                                    last_parts = Some((p, new));
                                }
                            }
                        }
                        ClientAction::Result(r) => {
                            match r.reject {
                                None => {
                                    self.stats.upstream_accepted.fetch_add(1, Ordering::Relaxed);
                                }
                                Some(why) => self.stats.upstream_reject(why),
                            }
                            if let Some(l) = r.latency {
                                self.stats.observe_submit_latency(self.pool, l);
                            }
                            let _ = self.results.send(r);
                        }
                        ClientAction::Block {
                            id,
                            accepted,
                            detail,
                        } => {
                            let tries = owed.inflight.remove(&id).map_or(1, |(_, n)| n);
                            // A "duplicate" on a later try: the pool took an
                            // earlier one and its answer was lost.
                            let dup_retry = tries > 1
                                && detail
                                    .as_deref()
                                    .is_some_and(|d| d.to_ascii_lowercase().contains("duplicate"));
                            let status = if accepted || dup_retry {
                                BlockStatus::Accepted
                            } else {
                                BlockStatus::Rejected
                            };
                            self.block_log.set(id, status, detail);
                        }
                        ClientAction::Reconnect(u, wait) => return Ok(Some((u, wait))),
                        ClientAction::RefusedReconnect(u) => {
                            self.stats
                                .reconnects_refused
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(upstream = self.id, to = %u, "refused client.reconnect to a host this pool's config does not list");
                        }
                        ClientAction::Fail(r) => return Err(r),
                    }
                }
            }
        }
    }

    /// Builds and publishes a job (`republish_of`: the job it re-issues
    /// under a new mask); returns its id, or `None` when it is unusable.
    fn publish(
        &self,
        st: &Proto,
        parts: &JobParts,
        epoch: u64,
        republish_of: Option<u64>,
    ) -> Option<u64> {
        let sub = st.subscription()?;
        let job = build_job(
            parts,
            sub,
            self.cfg.geometry,
            self.id,
            self.pool,
            self.job_ids.next(),
            epoch,
            st.version_mask(),
            st.rolling_rule(&self.cfg),
            self.links.clone(),
            Instant::now(),
        );
        match job {
            Ok(mut j) => {
                if let Some(b) = &self.books {
                    b.on_job(self.pool, &j.value, b.clock().now_ms());
                }
                j.republish_of = republish_of;
                j.encode_wire();
                let id = j.id;
                self.jobs.publish(Arc::new(j));
                Some(id)
            }
            Err(e) => {
                tracing::warn!(upstream = self.id, error = %e, "unusable job");
                None
            }
        }
    }
}

pub mod proto;
pub mod v2;

use proto::{PoolWire, Proto};

#[cfg(test)]
mod tests;
