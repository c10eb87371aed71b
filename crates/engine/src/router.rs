//! Routing hashrate to pools: weights within a failover level, ordered
//! levels, hot-standby connections, and moves with a clean job (never a
//! reconnect).
//!
//! - A new session goes to the healthy pool of the active level (the
//!   lowest level with a healthy pool) whose session count is furthest
//!   below its weight, on a connection with room (a new connection is
//!   opened when all are at `max_sessions_per_upstream`).
//! - Every tick, sessions on a failed connection move to a healthy one;
//!   sessions on a lower-priority level move back once a better level has
//!   been healthy for `failback_after`.
//! - Every `rebalance_interval`, the work each pool of the active level
//!   received (Σ accepted difficulty of its sessions) since the window
//!   opened is compared with the weights (or a routing policy's split,
//!   [`Router::set_split`]); sessions move from the pool over its share to
//!   the one under it until the split is within `rebalance_tolerance`.
//!   A window opens at the last move or split change and spans up to ten
//!   intervals; a pool must be off by more than three standard deviations
//!   of chance too, so random share arrival never moves a session.
//!
//! Moves are events to the session's task, which switches its job feed and
//! sends the miner a clean job from the new pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::job::UpstreamId;
use crate::mailbox::Mailbox;
use crate::session::SessionId;
use crate::upstream::{Health, UpstreamHandle, UpstreamResult};

/// Upstream connections one pool may have open.
const MAX_CONNS_PER_POOL: usize = 256;

/// What the router tells a session.
#[derive(Debug)]
pub enum SessionEvent {
    /// Switch to this upstream.
    Move {
        /// The new upstream.
        to: Arc<UpstreamHandle>,
        /// The old one failed (its jobs are stale).
        old_failed: bool,
    },
    /// The pool's verdict on a forwarded share.
    Result(UpstreamResult),
    /// Close (shutdown).
    Close,
    /// The followed upstream published a job, or ended (not queued: a
    /// flag in the mailbox; see [`crate::fanout`]).
    JobReady,
    /// The session's tick (a flag in the mailbox; see [`crate::ticks`]).
    Tick,
}

/// A session as the router tracks it.
#[derive(Debug)]
pub struct SessionSlot {
    /// Events to the session's task.
    pub tx: Arc<Mailbox>,
    /// Its current upstream.
    pub upstream: AtomicU32,
}

/// A session's accepted work and share count, for balancing.
#[derive(Debug, Default)]
pub struct SessionWork {
    /// Σ accepted difficulty as `f64` bits (fixed point would truncate the
    /// tiny fractional difficulties of test and load rigs).
    work: AtomicU64,
    /// Accepted shares.
    shares: AtomicU64,
}

impl SessionWork {
    /// Records the session's totals so far.
    pub fn set(&self, work: f64, shares: u64) {
        self.work.store(work.to_bits(), Ordering::Relaxed);
        self.shares.store(shares, Ordering::Relaxed);
    }

    /// (Σ accepted difficulty, accepted shares).
    pub fn get(&self) -> (f64, u64) {
        (
            f64::from_bits(self.work.load(Ordering::Relaxed)),
            self.shares.load(Ordering::Relaxed),
        )
    }
}

/// One pool's connections: (id, health, sessions).
#[derive(Clone, Debug)]
pub struct PoolSnapshot {
    /// The pool's name (URL).
    pub name: String,
    /// Its connections.
    pub connections: Vec<(UpstreamId, Health, u64)>,
}

/// Starts upstream connections for one pool.
pub trait Connector: Send + Sync {
    /// Spawns a connection task numbered `id` and returns its handle.
    fn spawn(&self, id: UpstreamId, pool: usize) -> Arc<UpstreamHandle>;
    /// True when one connection serves any number of sessions.
    fn unlimited(&self) -> bool {
        false
    }
}

/// One pool as configured for routing.
pub struct PoolEntry {
    /// Name for logs (its URL).
    pub name: String,
    /// Relative weight within its level.
    pub weight: f64,
    /// Failover level: 0 is tried first.
    pub level: u32,
    /// Opens connections.
    pub connector: Box<dyn Connector>,
}

/// Router settings.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Sessions per upstream connection before another is opened.
    pub max_sessions_per_upstream: u64,
    /// How often the work split is checked.
    pub rebalance_interval: Duration,
    /// Allowed absolute difference between a pool's work share and its
    /// weight share before sessions are moved.
    pub rebalance_tolerance: f64,
    /// A better level must stay healthy this long before sessions return.
    pub failback_after: Duration,
    /// How often health is checked.
    pub tick: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_sessions_per_upstream: 1024,
            rebalance_interval: Duration::from_secs(60),
            rebalance_tolerance: 0.05,
            failback_after: Duration::from_secs(5),
            tick: Duration::from_millis(200),
        }
    }
}

struct PoolState {
    entry: PoolEntry,
    conns: Vec<Arc<UpstreamHandle>>,
    healthy_since: Option<Instant>,
    /// Work in the current balancing window.
    window_work: f64,
    /// Its variance (Σ over sessions of Δwork² / Δshares).
    window_var: f64,
}

struct Inner {
    pools: Vec<PoolState>,
    by_id: HashMap<UpstreamId, (usize, Arc<UpstreamHandle>)>,
    next_id: UpstreamId,
    last_rebalance: Instant,
    /// Each session's (work, shares) when the balancing window opened.
    window_base: HashMap<SessionId, (f64, u64)>,
    /// The same, half a window later: the next window's start, so a long
    /// window slides on instead of starting again short.
    window_mid: Option<HashMap<SessionId, (f64, u64)>>,
    /// Rebalance rounds the window has run without a move.
    window_rounds: u32,
    /// The split changed or sessions failed over: open a new window.
    window_stale: bool,
    last_suggest: Instant,
    suggest_work: HashMap<SessionId, f64>,
    /// Target shares set by a routing policy, in place of the weights.
    split: Option<Vec<f64>>,
    /// [`Router::close_all`] ran: no new session is assigned.
    closing: bool,
}

impl Inner {
    /// What pool `i` should get, relative to the others: the policy's
    /// split when one is set, else the configured weight.
    fn weight(&self, i: usize) -> f64 {
        match &self.split {
            Some(s) => s.get(i).copied().unwrap_or(0.0),
            None => self.pools[i].entry.weight,
        }
    }
}

/// Rebalance intervals one balancing window spans at most.
const MAX_WINDOW_ROUNDS: u32 = 10;

/// How often each connection's aggregate difficulty is worked out.
const SUGGEST_EVERY: Duration = Duration::from_secs(5);

/// Seconds per share the suggested difficulty aims at for a whole upstream
/// connection: a few shares a second keep the pool's count of our work
/// within about 1 % over an hour, and its traffic small.
const SUGGEST_SECS_PER_SHARE: f64 = 0.5;

/// The router. Shared (`Arc`) by the listener and its own task.
pub struct Router {
    cfg: RouterConfig,
    inner: Mutex<Inner>,
    /// Sessions, for events and balancing.
    pub sessions: DashMap<SessionId, SessionSlot>,
    /// Sessions moved off failed or worse-level upstreams.
    pub failover_moves: AtomicU64,
    /// Sessions moved to follow the weights.
    pub rebalance_moves: AtomicU64,
}

fn is_ready(h: &UpstreamHandle) -> bool {
    matches!(*h.health.borrow(), Health::Ready)
}

fn is_failed(h: &UpstreamHandle) -> bool {
    matches!(*h.health.borrow(), Health::Failed(_))
}

impl Router {
    /// Builds the router and opens one standby connection per pool, so a
    /// failover never waits for a handshake.
    pub fn new(cfg: RouterConfig, pools: Vec<PoolEntry>) -> Arc<Self> {
        let mut inner = Inner {
            pools: Vec::new(),
            by_id: HashMap::new(),
            next_id: 1,
            last_rebalance: Instant::now(),
            window_base: HashMap::new(),
            window_mid: None,
            window_rounds: 0,
            window_stale: false,
            last_suggest: Instant::now(),
            suggest_work: HashMap::new(),
            split: None,
            closing: false,
        };
        for (i, entry) in pools.into_iter().enumerate() {
            let id = inner.next_id;
            inner.next_id += 1;
            let h = entry.connector.spawn(id, i);
            inner.by_id.insert(id, (i, h.clone()));
            inner.pools.push(PoolState {
                entry,
                conns: vec![h],
                healthy_since: None,
                window_work: 0.0,
                window_var: 0.0,
            });
        }
        Arc::new(Self {
            cfg,
            inner: Mutex::new(inner),
            sessions: DashMap::new(),
            failover_moves: AtomicU64::new(0),
            rebalance_moves: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not wedge routing: take the data anyway.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Picks an upstream for a new session and registers it.
    pub fn assign(&self, session: SessionId, tx: Arc<Mailbox>) -> Option<Arc<UpstreamHandle>> {
        let mut inner = self.lock();
        if inner.closing {
            return None;
        }
        let level = Self::active_level(&inner);
        let h = self.pick(&mut inner, level, false)?;
        h.sessions.fetch_add(1, Ordering::Relaxed);
        self.sessions.insert(
            session,
            SessionSlot {
                tx,
                upstream: AtomicU32::new(h.id),
            },
        );
        Some(h)
    }

    /// Ends every session (the proxy is stopping) and assigns no more.
    /// Sessions wait on their mailbox, not on a cancellation token each:
    /// that would be ~70 bytes more in every connection's task.
    pub fn close_all(&self) {
        // Under the lock `assign` takes: a session assigned before this
        // is in the map below, one after it is refused.
        self.lock().closing = true;
        for slot in self.sessions.iter() {
            slot.tx.shutdown();
        }
    }

    /// Forgets a session.
    pub fn release(&self, session: SessionId) {
        if let Some((_, slot)) = self.sessions.remove(&session) {
            let inner = self.lock();
            if let Some((_, h)) = inner.by_id.get(&slot.upstream.load(Ordering::Relaxed)) {
                h.sessions.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Routes a pool's refusal to the session that found the share (its
    /// books take the share back). Gives it back when the session is gone
    /// or its mailbox is full. An acceptance needs nothing more: the share
    /// was booked when it was answered, and the engine's counters already
    /// have the verdict.
    pub fn deliver(&self, r: UpstreamResult) -> Option<UpstreamResult> {
        if r.accepted {
            return None;
        }
        let Some(s) = self.sessions.get(&r.session) else {
            return Some(r);
        };
        match s.tx.try_send(SessionEvent::Result(r)) {
            Ok(()) => None,
            Err(e) => match e.into_event() {
                SessionEvent::Result(r) => Some(r),
                _ => None,
            },
        }
    }

    /// Upstream connections per pool and their health, for logs and tests.
    pub fn snapshot(&self) -> Vec<PoolSnapshot> {
        let inner = self.lock();
        inner
            .pools
            .iter()
            .map(|p| PoolSnapshot {
                name: p.entry.name.clone(),
                connections: p
                    .conns
                    .iter()
                    .map(|h| {
                        (
                            h.id,
                            h.health.borrow().clone(),
                            h.sessions.load(Ordering::Relaxed),
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    /// Sessions per pool index.
    pub fn sessions_per_pool(&self) -> Vec<u64> {
        let inner = self.lock();
        inner
            .pools
            .iter()
            .map(|p| {
                p.conns
                    .iter()
                    .map(|h| h.sessions.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// Replaces the weights with a policy's target shares (config order);
    /// new sessions and the next rebalance follow them.
    pub fn set_split(&self, split: Vec<f64>) {
        let mut inner = self.lock();
        if inner.split.as_ref() != Some(&split) {
            inner.split = Some(split);
            inner.window_stale = true;
        }
    }

    /// What each pool is routed by now: the policy's split, or the
    /// weights.
    pub fn targets(&self) -> Vec<f64> {
        let inner = self.lock();
        (0..inner.pools.len()).map(|i| inner.weight(i)).collect()
    }

    /// Pools that can take work now: healthy and in the active failover
    /// level.
    pub fn routable(&self) -> Vec<bool> {
        let inner = self.lock();
        let active = Self::active_level(&inner);
        inner
            .pools
            .iter()
            .map(|p| Some(p.entry.level) == active && Self::pool_ready(p))
            .collect()
    }

    /// Each pool's level and weight as configured.
    pub fn configured(&self) -> Vec<(u32, f64)> {
        self.lock()
            .pools
            .iter()
            .map(|p| (p.entry.level, p.entry.weight))
            .collect()
    }

    /// A pool with a ready connection.
    fn pool_ready(p: &PoolState) -> bool {
        p.conns.iter().any(|h| is_ready(h))
    }

    fn active_level(inner: &Inner) -> Option<u32> {
        inner
            .pools
            .iter()
            .filter(|p| Self::pool_ready(p))
            .map(|p| p.entry.level)
            .min()
    }

    /// The pool to put one more session on: healthy, in `level` (the
    /// active level when `None` is healthy nowhere), furthest below its
    /// weight by session count.
    fn pick_pool(inner: &Inner, level: Option<u32>) -> Option<usize> {
        let candidates: Vec<usize> = (0..inner.pools.len())
            .filter(|&i| match level {
                Some(l) => inner.pools[i].entry.level == l && Self::pool_ready(&inner.pools[i]),
                // Nothing is healthy yet (start-up): the best level waits.
                None => true,
            })
            .collect();
        let min_level = candidates
            .iter()
            .map(|&i| inner.pools[i].entry.level)
            .min()?;
        candidates
            .into_iter()
            .filter(|&i| inner.pools[i].entry.level == min_level)
            .min_by(|&a, &b| {
                let load = |i: usize| {
                    let p = &inner.pools[i];
                    let n: u64 = p
                        .conns
                        .iter()
                        .map(|h| h.sessions.load(Ordering::Relaxed))
                        .sum();
                    (n as f64 + 1.0) / inner.weight(i).max(1e-9)
                };
                load(a).total_cmp(&load(b))
            })
    }

    fn pick(
        &self,
        inner: &mut Inner,
        level: Option<u32>,
        require_ready: bool,
    ) -> Option<Arc<UpstreamHandle>> {
        let pool = Self::pick_pool(inner, level)?;
        self.conn_in(inner, pool, require_ready)
    }

    /// A connection of `pool` with room. Moves (`require_ready`) only go to
    /// ready connections; a new session may wait on one still connecting.
    /// Another connection opens only when every live one is full — never
    /// while the pool is down, so an outage cannot multiply connections.
    fn conn_in(
        &self,
        inner: &mut Inner,
        pool: usize,
        require_ready: bool,
    ) -> Option<Arc<UpstreamHandle>> {
        let p = &inner.pools[pool];
        let unlimited = p.entry.connector.unlimited();
        let room = |h: &&Arc<UpstreamHandle>| {
            unlimited || h.sessions.load(Ordering::Relaxed) < self.cfg.max_sessions_per_upstream
        };
        if let Some(h) = p.conns.iter().filter(|h| is_ready(h)).find(room) {
            return Some(h.clone());
        }
        if let Some(h) = p
            .conns
            .iter()
            .filter(|h| !is_ready(h) && !is_failed(h))
            .find(room)
        {
            return (!require_ready).then(|| h.clone());
        }
        if unlimited || p.conns.iter().any(|h| is_failed(h)) || p.conns.len() >= MAX_CONNS_PER_POOL
        {
            // Down (or at the cap): wait here rather than open more.
            return if require_ready {
                None
            } else {
                p.conns.first().cloned()
            };
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let h = inner.pools[pool].entry.connector.spawn(id, pool);
        tracing::info!(pool = %inner.pools[pool].entry.name, upstream = id, "opening another upstream connection");
        inner.by_id.insert(id, (pool, h.clone()));
        inner.pools[pool].conns.push(h.clone());
        (!require_ready).then_some(h)
    }

    fn move_session(
        &self,
        inner: &mut Inner,
        session: SessionId,
        to: &Arc<UpstreamHandle>,
        old_failed: bool,
    ) -> bool {
        let Some(slot) = self.sessions.get(&session) else {
            return false;
        };
        let from = slot.upstream.load(Ordering::Relaxed);
        if from == to.id {
            return false;
        }
        let ev = SessionEvent::Move {
            to: to.clone(),
            old_failed,
        };
        if slot.tx.try_send(ev).is_err() {
            // Its queue is full or it is gone; try again next tick.
            return false;
        }
        slot.upstream.store(to.id, Ordering::Relaxed);
        if let Some((_, old)) = inner.by_id.get(&from) {
            old.sessions.fetch_sub(1, Ordering::Relaxed);
        }
        to.sessions.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// One round of health checks, failover, failback and rebalancing.
    pub fn tick(&self, now: Instant) {
        let mut inner = self.lock();
        for p in &mut inner.pools {
            let ready = p.conns.iter().any(|h| is_ready(h));
            p.healthy_since = match (ready, p.healthy_since) {
                (true, None) => Some(now),
                (true, s) => s,
                (false, _) => None,
            };
        }
        let active = Self::active_level(&inner);

        // Failover: sessions on failed connections, or on pools of a worse
        // level than one that has been healthy long enough.
        let settled_level = inner
            .pools
            .iter()
            .filter(|p| {
                p.healthy_since
                    .is_some_and(|s| now.duration_since(s) >= self.cfg.failback_after)
            })
            .map(|p| p.entry.level)
            .min();
        let mut to_move: Vec<(SessionId, bool)> = Vec::new();
        for s in self.sessions.iter() {
            let up = s.upstream.load(Ordering::Relaxed);
            let Some((pool, h)) = inner.by_id.get(&up) else {
                continue;
            };
            let level = inner.pools[*pool].entry.level;
            // Off a failed connection, or off a not-yet-ready one when a
            // better level is up.
            let stuck = (is_failed(h) && active.is_some())
                || (!is_ready(h) && active.is_some_and(|a| a < level));
            if stuck {
                to_move.push((*s.key(), true));
            } else if settled_level.is_some_and(|l| l < level) {
                to_move.push((*s.key(), false));
            }
        }
        if !to_move.is_empty() {
            tracing::info!(
                sessions = to_move.len(),
                "moving sessions to a healthy pool"
            );
        }
        for (session, failed) in to_move {
            // Off a failure: the best healthy level now. Failback: the level
            // that has been healthy long enough.
            let level = if failed { active } else { settled_level };
            if let Some(to) = self.pick(&mut inner, level, true)
                && self.move_session(&mut inner, session, &to, failed)
            {
                inner.window_stale = true;
                self.failover_moves.fetch_add(1, Ordering::Relaxed);
            }
        }

        if now.duration_since(inner.last_rebalance) >= self.cfg.rebalance_interval {
            inner.last_rebalance = now;
            self.rebalance(&mut inner, active);
        }
        let since = now.duration_since(inner.last_suggest);
        if since >= SUGGEST_EVERY {
            inner.last_suggest = now;
            self.suggest(&mut inner, since);
        }
    }

    /// Works out, per upstream connection, the difficulty that fits the
    /// work its sessions sent in the last interval, for the connection to
    /// ask its pool for (`mining.suggest_difficulty`).
    fn suggest(&self, inner: &mut Inner, elapsed: Duration) {
        let mut per_conn: HashMap<UpstreamId, f64> = HashMap::new();
        let mut seen = HashMap::with_capacity(self.sessions.len());
        for s in self.sessions.iter() {
            let w = s.tx.work().get().0;
            let last = inner.suggest_work.get(s.key()).copied().unwrap_or(w);
            seen.insert(*s.key(), w);
            *per_conn
                .entry(s.upstream.load(Ordering::Relaxed))
                .or_default() += (w - last).max(0.0);
        }
        inner.suggest_work = seen;
        let secs = elapsed.as_secs_f64().max(1e-3);
        for (id, work) in per_conn {
            if let Some((_, h)) = inner.by_id.get(&id)
                && work > 0.0
            {
                // Σ difficulty per second × seconds per share.
                h.suggest.set(work / secs * SUGGEST_SECS_PER_SHARE);
            }
        }
    }

    /// Moves sessions so that the work split of the active level follows
    /// the weights.
    fn rebalance(&self, inner: &mut Inner, active: Option<u32>) {
        let Some(level) = active else { return };
        // The window runs from the last move (or split change), and then
        // slides between half and all of MAX_WINDOW_ROUNDS intervals: a
        // real imbalance grows with it while chance grows only as its
        // square root, so a small one is still found, and equal pools are
        // left alone.
        let snapshot = || -> HashMap<SessionId, (f64, u64)> {
            self.sessions
                .iter()
                .map(|s| (*s.key(), s.tx.work().get()))
                .collect()
        };
        if inner.window_stale {
            inner.window_base = snapshot();
            inner.window_mid = None;
            inner.window_rounds = 0;
            inner.window_stale = false;
        } else if inner.window_rounds == MAX_WINDOW_ROUNDS / 2 {
            inner.window_mid = Some(snapshot());
        } else if inner.window_rounds >= MAX_WINDOW_ROUNDS
            && let Some(mid) = inner.window_mid.take()
        {
            inner.window_base = mid;
            inner.window_rounds = MAX_WINDOW_ROUNDS / 2;
            inner.window_mid = Some(snapshot());
        }
        inner.window_rounds += 1;
        // Work each session did in the window, by pool.
        let mut per_session: Vec<(SessionId, usize, f64)> = Vec::new();
        for p in &mut inner.pools {
            p.window_work = 0.0;
            p.window_var = 0.0;
        }
        for s in self.sessions.iter() {
            let (w, n) = s.tx.work().get();
            // A session that joined in the window: all its work is in it.
            let (base, base_n) = inner.window_base.get(s.key()).copied().unwrap_or((0.0, 0));
            let Some((pool, h)) = inner.by_id.get(&s.upstream.load(Ordering::Relaxed)) else {
                continue;
            };
            if !is_ready(h) || inner.pools[*pool].entry.level != level {
                continue;
            }
            let pool = *pool;
            let delta = (w - base).max(0.0);
            let shares = n.saturating_sub(base_n);
            // Shares arrive at random: Σd over n shares of difficulty d
            // varies by about d·√n, a variance of Δwork²/n.
            if shares > 0 {
                inner.pools[pool].window_var += delta * delta / shares as f64;
            }
            inner.pools[pool].window_work += delta;
            per_session.push((*s.key(), pool, delta));
        }
        let members: Vec<usize> = (0..inner.pools.len())
            .filter(|&i| inner.pools[i].entry.level == level && Self::pool_ready(&inner.pools[i]))
            .collect();
        let total_work: f64 = members.iter().map(|&i| inner.pools[i].window_work).sum();
        let total_var: f64 = members.iter().map(|&i| inner.pools[i].window_var).sum();
        let total_weight: f64 = members.iter().map(|&i| inner.weight(i)).sum();
        if members.len() < 2 || total_work <= 0.0 || total_weight <= 0.0 {
            return;
        }
        // Surplus work per pool (positive: more than its weight).
        let mut surplus: HashMap<usize, f64> = members
            .iter()
            .map(|&i| {
                (
                    i,
                    inner.pools[i].window_work - total_work * inner.weight(i) / total_weight,
                )
            })
            .collect();
        // Some pool is off by more than the tolerance and by more than
        // chance: three standard deviations of its surplus, W_i − t·W,
        // whose variance is (1 − t)²·V_i + t²·(V − V_i).
        let off = members.iter().any(|&i| {
            let t = inner.weight(i) / total_weight;
            let v_i = inner.pools[i].window_var;
            let var = (1.0 - t).powi(2) * v_i + t * t * (total_var - v_i).max(0.0);
            let s = surplus[&i].abs();
            s / total_work > self.cfg.rebalance_tolerance && s > 3.0 * var.sqrt()
        });
        if !off {
            return;
        }
        // Largest sessions first from over-served pools into under-served
        // ones, never overshooting a deficit by more than half a session.
        // A pool only gives or only takes in one round: a session is never
        // moved back and forth to even out rounding.
        per_session.sort_by(|a, b| b.2.total_cmp(&a.2));
        let givers: Vec<usize> = surplus
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, _)| *i)
            .collect();
        let mut moved = 0;
        for (session, from, work) in per_session {
            if work <= 0.0 || !givers.contains(&from) || surplus[&from] < work / 2.0 {
                continue;
            }
            let Some((&to, &deficit)) = surplus
                .iter()
                .filter(|(i, _)| !givers.contains(i))
                .min_by(|a, b| a.1.total_cmp(b.1))
            else {
                continue;
            };
            if -deficit < work / 2.0 {
                continue;
            }
            let Some(h) = self.conn_in(inner, to, true) else {
                continue;
            };
            if self.move_session(inner, session, &h, false) {
                *surplus.entry(from).or_default() -= work;
                *surplus.entry(to).or_default() += work;
                moved += 1;
            }
        }
        if moved > 0 {
            inner.window_stale = true;
            self.rebalance_moves.fetch_add(moved, Ordering::Relaxed);
            tracing::info!(moved, "rebalanced sessions across pools by weight");
        }
    }

    /// Runs [`Router::tick`] until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut t = tokio::time::interval(self.cfg.tick);
        loop {
            tokio::select! {
                // tokio's clock, so paused-time tests rebalance too.
                _ = t.tick() => self.tick(tokio::time::Instant::now().into_std()),
                _ = cancel.cancelled() => return,
            }
        }
    }
}
