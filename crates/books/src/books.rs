//! The registry: workers (by name), pools (by config index), the farm,
//! the network's difficulty and reward, and the BTC price.
//!
//! Sessions hold an `Arc<Worker>` from authorize on, so recording a share
//! is one uncontended worker lock plus a pool and a farm shard picked by
//! session number. Readers (the API) build rows on demand: a sorted page of
//! 10,000 workers is 10,000 short locks and a sort.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::money::{self, Power, Profit};
use crate::tally::{Figures, Outcome, Rejects, Tally, Window};

/// Shards for pool and farm books: enough that 2–16 cores rarely meet on
/// one lock.
const SHARDS: usize = 8;

/// Name the farm's books are stored under.
pub const FARM: &str = "farm";
/// A worker's power class when it has no power (no rule matches its name
/// and there is no default).
pub const NO_POWER: u16 = u16::MAX;

/// The most power rules a config may hold: a worker keeps its class in a
/// `u16`, with [`NO_POWER`] kept apart.
pub const MAX_POWER_RULES: usize = 4_096;

/// Worker that takes the shares of names past `max_workers`.
pub const OVERFLOW_WORKER: &str = "(overflow)";

/// Wall-clock milliseconds for engine `Instant`s: one fixed pairing, so
/// the share path never reads the system clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
    base_ms: u64,
}

impl Clock {
    /// Pairs `Instant::now()` with the system time.
    pub fn new() -> Self {
        Self::at(Instant::now(), unix_ms())
    }

    /// Pairs `base` with `base_ms` (tests).
    pub fn at(base: Instant, base_ms: u64) -> Self {
        Self { base, base_ms }
    }

    /// Milliseconds since the Unix epoch at `t`.
    pub fn ms(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.base) {
            Some(d) => self.base_ms + d.as_millis() as u64,
            None => self
                .base_ms
                .saturating_sub(self.base.duration_since(t).as_millis() as u64),
        }
    }

    /// Milliseconds since the Unix epoch now.
    pub fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a pool's block reward comes from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The job's coinbase outputs (the pool pays from the coinbase, or
    /// this is our own pool node): subsidy plus the template's fees.
    Coinbase,
    /// A fixed reward per block, BTC.
    BlockBtc(f64),
    /// A fixed payout per difficulty-1 share, BTC, after the pool's fee
    /// (what an FPPS pool quotes).
    PerShareBtc(f64),
}

/// How a pool pays (shown to users; FPPS/PPS pay the expectation the
/// books compute, PPLNS and solo pay it only on average).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Full pay per share.
    #[default]
    Fpps,
    /// Pay per share (subsidy only).
    Pps,
    /// Pay per last N shares.
    Pplns,
    /// Solo: only blocks pay.
    Solo,
}

/// Money settings of one pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolBooksConfig {
    /// Name (its URL; the store keys on it).
    pub name: String,
    /// Pool fee, a fraction (0.02 = 2 %).
    pub fee: f64,
    /// Payout scheme.
    pub scheme: Scheme,
    /// Where the reward comes from.
    pub reward: Reward,
}

/// Where the BTC price comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PriceConfig {
    /// A fixed price, USD (never stale).
    Fixed(f64),
    /// Set by a feed; stale when older than `max_age_ms`.
    Feed {
        /// Age after which money figures are marked stale.
        max_age_ms: u64,
    },
    /// No price: USD figures are absent.
    None,
}

/// Books settings.
#[derive(Clone, Debug)]
pub struct BooksConfig {
    /// Pools in config order (jobs carry this index).
    pub pools: Vec<PoolBooksConfig>,
    /// Electricity price, USD per kWh (outside the time-of-use periods).
    pub power_price_usd_per_kwh: f64,
    /// Time-of-use periods (local hours) with their own price.
    pub power_periods: Vec<crate::advice::TouPeriod>,
    /// Local time's offset from UTC for the periods, minutes.
    pub power_utc_offset_min: i32,
    /// A power-price feed's price counts this long, ms (0: no feed).
    pub power_feed_max_age_ms: u64,
    /// Power by worker-name pattern (machine classes); first match wins.
    pub power_rules: Vec<money::PowerRule>,
    /// Power of workers no rule matches.
    pub default_power: Option<Power>,
    /// BTC price source.
    pub price: PriceConfig,
    /// Workers kept; later names share one overflow entry.
    pub max_workers: usize,
    /// Reject reason names, by index.
    pub reasons: Vec<&'static str>,
    /// Worker books with no connection and no share for this long are
    /// dropped from memory.
    pub forget_after_ms: u64,
}

impl Default for BooksConfig {
    fn default() -> Self {
        Self {
            pools: Vec::new(),
            power_price_usd_per_kwh: 0.0,
            power_periods: Vec::new(),
            power_utc_offset_min: 0,
            power_feed_max_age_ms: 0,
            power_rules: Vec::new(),
            default_power: None,
            price: PriceConfig::None,
            max_workers: 100_000,
            reasons: Vec::new(),
            forget_after_ms: 86_400_000,
        }
    }
}

/// What a job's shares are worth: the network difficulty from its nbits
/// and the block reward when its coinbase shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JobValue {
    /// Network difficulty.
    pub difficulty: f64,
    /// Coinbase outputs total, satoshi.
    pub reward_sat: Option<u64>,
}

/// What happened to a share (the engine's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// Accepted; `block` when it met the network target.
    Accepted {
        /// Met the network target.
        block: bool,
    },
    /// Its job was stale or unknown (reason index): work done on an old
    /// job.
    Stale(u8),
    /// Rejected for its work (reason index).
    RejectedWork(u8),
    /// Refused before any work counted (reason index).
    Refused(u8),
    /// Accepted here, then rejected by the pool or never delivered to it
    /// (reason index): the credit is reversed.
    UpstreamRejected(u8),
}

/// One worker's connection as last seen.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Connection {
    /// Remote address.
    pub ip: Option<IpAddr>,
    /// User agent from `mining.subscribe` (shared, see [`crate::agents`]).
    pub user_agent: Option<Arc<str>>,
    /// When it authorized (ms since the Unix epoch).
    pub since_ms: u64,
}

/// Mutable worker state.
#[derive(Debug)]
pub struct WorkerState {
    /// The worker's books.
    pub tally: Tally,
    /// Difficulty of its last share.
    pub difficulty: f64,
    /// Latest connection.
    pub conn: Connection,
    /// Pool index of its last share (a `u16`: the entry's size class,
    /// see `a_worker_entry_fits_in_256_bytes`; configs hold a few pools).
    pub pool: Option<u16>,
}

/// One worker.
#[derive(Debug)]
pub struct Worker {
    name: Arc<str>,
    /// Its machine class: the index of the first power rule its name
    /// matches, the rules' count for the default power, [`NO_POWER`]
    /// for none. Read through [`Books::power`]: an index is 2 bytes where
    /// the power was 16, which put the entry in the next size class.
    power_class: u16,
    connections: AtomicU32,
    /// Stored history not merged yet (see `Store::save`).
    pub history_pending: std::sync::atomic::AtomicBool,
    state: Mutex<WorkerState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the books down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    fn new(name: Arc<str>, power_class: u16, now_ms: u64) -> Self {
        Self {
            name,
            power_class,
            connections: AtomicU32::new(0),
            history_pending: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(WorkerState {
                tally: Tally::worker(now_ms),
                difficulty: 0.0,
                conn: Connection::default(),
                pool: None,
            }),
        }
    }

    /// The worker name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection authorized this worker.
    pub fn connected(&self, ip: Option<IpAddr>, user_agent: Option<Arc<str>>, now_ms: u64) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.state);
        s.conn = Connection {
            ip,
            user_agent,
            since_ms: now_ms,
        };
        s.tally.last_change_ms = s.tally.last_change_ms.max(now_ms);
    }

    /// A connection that authorized this worker closed.
    pub fn disconnected(&self) {
        let _ = self
            .connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    /// Live connections.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Locks the state (API and store).
    pub fn state(&self) -> MutexGuard<'_, WorkerState> {
        lock(&self.state)
    }
}

/// A tally split in shards (pools, farm).
#[derive(Debug)]
pub struct Sharded {
    shards: Vec<Mutex<Tally<f64>>>,
}

impl Sharded {
    fn new(now_ms: u64) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Tally::new(now_ms)))
                .collect(),
        }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Tally<f64>> {
        lock(&self.shards[key as usize % SHARDS])
    }

    /// Figures over `w`, all shards.
    pub fn figures(&self, now_ms: u64, w: Window) -> Figures {
        let mut f = Figures::default();
        for s in &self.shards {
            f.merge(&lock(s).figures(now_ms, w));
        }
        f
    }

    /// Lifetime totals, all shards.
    pub fn totals(&self) -> crate::tally::Totals {
        let mut t = crate::tally::Totals::default();
        for s in &self.shards {
            t.add(&lock(s).totals);
        }
        t
    }

    /// All shards merged into one tally (for the store and the series).
    pub fn merged(&self) -> Tally<f64> {
        let mut it = self.shards.iter();
        let mut t = it
            .next()
            .map(|s| lock(s).clone())
            .unwrap_or_else(|| Tally::new(0));
        for s in it {
            t.absorb(&lock(s));
        }
        t
    }

    /// Replaces the books with a stored tally (at start).
    pub fn restore(&self, t: Tally<f64>) {
        for (i, s) in self.shards.iter().enumerate() {
            *lock(s) = if i == 0 {
                t.clone()
            } else {
                Tally::new(t.first_ms)
            };
        }
    }
}

/// Network figures from the latest job of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Network {
    /// Network difficulty.
    pub difficulty: f64,
    /// Block reward, BTC (None when the pool's reward is unknown).
    pub reward_btc: Option<f64>,
    /// When it was seen (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Books of one pool.
#[derive(Debug)]
pub struct PoolBooks {
    /// Money settings.
    pub cfg: PoolBooksConfig,
    /// The pool's tallies.
    pub tally: Sharded,
    network: Mutex<Option<Network>>,
}

/// The BTC price as last known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Price {
    /// USD per BTC, when known.
    pub usd: Option<f64>,
    /// Seconds since it was set (0 for a fixed price).
    pub age_s: Option<f64>,
    /// True when the feed is older than its limit: USD figures are from
    /// an old price.
    pub stale: bool,
    /// `"config"`, `"feed"` or `"none"`.
    pub source: &'static str,
    /// Electricity price now, USD per kWh.
    pub power_usd_per_kwh: f64,
    /// Where it comes from: `"config"`, `"schedule"` (a time-of-use
    /// period) or `"feed"`.
    pub power_source: &'static str,
}

/// The registry.
#[derive(Debug)]
pub struct Books {
    cfg: BooksConfig,
    clock: Clock,
    workers: DashMap<Arc<str>, Arc<Worker>>,
    pools: Vec<PoolBooks>,
    farm: Sharded,
    /// (USD, set at ms) for feeds.
    price: Mutex<Option<(f64, u64)>>,
    price_updates: AtomicU64,
    price_errors: AtomicU64,
    /// (USD per kWh, set at ms) from a power-price feed.
    power_feed: Mutex<Option<(f64, u64)>>,
    power_polls: [AtomicU64; 2],
    /// User agents, one copy of each.
    agents: crate::agents::Agents,
}

impl Books {
    /// `ua` as the books keep it: cut, and one copy shared by every
    /// connection that sends it (sessions keep theirs from here too).
    pub fn agent(&self, ua: &str) -> Arc<str> {
        self.agents.get(ua)
    }

    /// Empty books.
    pub fn new(mut cfg: BooksConfig, clock: Clock) -> Self {
        // A worker keeps its machine class in a `u16` (see `NO_POWER`);
        // the config check refuses more rules than this, so only a caller
        // building the config itself can reach it.
        cfg.power_rules.truncate(MAX_POWER_RULES);
        let now = clock.now_ms();
        let pools = cfg
            .pools
            .iter()
            .map(|p| PoolBooks {
                cfg: p.clone(),
                tally: Sharded::new(now),
                network: Mutex::new(None),
            })
            .collect();
        Self {
            cfg,
            clock,
            workers: DashMap::new(),
            pools,
            farm: Sharded::new(now),
            price: Mutex::new(None),
            price_updates: AtomicU64::new(0),
            price_errors: AtomicU64::new(0),
            power_feed: Mutex::new(None),
            power_polls: Default::default(),
            agents: Default::default(),
        }
    }

    /// The clock shares are timed with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Settings.
    pub fn config(&self) -> &BooksConfig {
        &self.cfg
    }

    /// The worker's books, created on first use (authorize, not share).
    pub fn worker(&self, name: &str) -> Arc<Worker> {
        self.worker_with(name, true, true, |_| {})
    }

    /// A connection authorized `name`: its books, marked connected while
    /// the map entry is held (so an idle-worker sweep cannot drop it in
    /// between).
    pub fn connect_worker(
        &self,
        name: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        now_ms: u64,
    ) -> Arc<Worker> {
        let user_agent = user_agent.map(|u| self.agents.get(u));
        self.worker_with(name, true, true, |w| w.connected(ip, user_agent, now_ms))
    }

    /// `track`: a name new to memory may have stored history to merge;
    /// `cap`: names past `max_workers` go to the overflow entry.
    fn worker_with(
        &self,
        name: &str,
        track: bool,
        cap: bool,
        f: impl FnOnce(&Worker),
    ) -> Arc<Worker> {
        if let Some(w) = self.workers.get(name) {
            f(&w);
            return w.clone();
        }
        let name: Arc<str> = if cap && self.workers.len() >= self.cfg.max_workers {
            Arc::from(OVERFLOW_WORKER)
        } else {
            Arc::from(name)
        };
        let power_class = self.power_class_for(&name);
        let now = self.clock.now_ms();
        let entry = self.workers.entry(name.clone()).or_insert_with(|| {
            let w = Worker::new(name, power_class, now);
            // A name new to memory may have history in the store (idle
            // past the forget limit): the next snapshot merges it before
            // writing the worker.
            w.history_pending.store(track, Ordering::Relaxed);
            Arc::new(w)
        });
        f(&entry);
        entry.clone()
    }

    /// The worker's books if it has any (never creates).
    pub fn find_worker(&self, name: &str) -> Option<Arc<Worker>> {
        self.workers.get(name).map(|w| w.clone())
    }

    fn power_class_for(&self, name: &str) -> u16 {
        let rules = self.cfg.power_rules.len();
        match self.class_of(name) {
            Some(i) => u16::try_from(i).unwrap_or(NO_POWER),
            None if self.cfg.default_power.is_some() => u16::try_from(rules).unwrap_or(NO_POWER),
            None => NO_POWER,
        }
    }

    /// A worker's power, from the config's rules (or the default).
    pub fn power(&self, w: &Worker) -> Option<Power> {
        let i = usize::from(w.power_class);
        match self.cfg.power_rules.get(i) {
            Some(r) => Some(r.power),
            None if i == self.cfg.power_rules.len() => self.cfg.default_power,
            None => None,
        }
    }

    /// The power rule (machine class) a worker name matches first.
    pub fn class_of(&self, name: &str) -> Option<usize> {
        self.cfg
            .power_rules
            .iter()
            .position(|r| money::glob_match(&r.pattern, name))
    }

    /// Number of workers on the books.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Pools.
    pub fn pools(&self) -> &[PoolBooks] {
        &self.pools
    }

    /// Farm tallies.
    pub fn farm(&self) -> &Sharded {
        &self.farm
    }

    /// A pool sent a job: its network difficulty and reward become the
    /// network's.
    pub fn on_job(&self, pool: usize, v: &JobValue, now_ms: u64) {
        let Some(p) = self.pools.get(pool) else {
            return;
        };
        let reward_btc = self.reward_btc(p, v);
        *lock(&p.network) = Some(Network {
            difficulty: v.difficulty,
            reward_btc,
            at_ms: now_ms,
        });
    }

    fn reward_btc(&self, p: &PoolBooks, v: &JobValue) -> Option<f64> {
        match p.cfg.reward {
            Reward::Coinbase => v.reward_sat.map(|s| s as f64 / 1e8),
            Reward::BlockBtc(r) => Some(r),
            // The per-share payout implies a reward: payout = R / D / (1 − fee).
            Reward::PerShareBtc(x) => {
                (v.difficulty > 0.0).then(|| x * v.difficulty / (1.0 - p.cfg.fee).max(1e-9))
            }
        }
    }

    /// Records one share of difficulty `d` from `worker` on a job of
    /// `pool` worth `v`; `shard` spreads pool and farm locks (session id).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        worker: &Worker,
        pool: Option<usize>,
        shard: u64,
        t_ms: u64,
        d: f64,
        v: &JobValue,
        kind: ShareKind,
    ) {
        let p = pool.and_then(|i| self.pools.get(i));
        let (value_btc, earned_btc) = match p {
            Some(p) => {
                let r = self.reward_btc(p, v).unwrap_or(0.0);
                let value = money::share_value_btc(d, v.difficulty, r);
                let earned = match p.cfg.reward {
                    Reward::PerShareBtc(x) => d * x,
                    _ => value * (1.0 - p.cfg.fee),
                };
                (value, earned)
            }
            None => (0.0, 0.0),
        };
        let outcome = match kind {
            ShareKind::Accepted { block } => Outcome::Accepted { earned_btc, block },
            ShareKind::Stale(r) => Outcome::Stale(r),
            ShareKind::RejectedWork(r) => Outcome::RejectedWork(r),
            ShareKind::Refused(r) => Outcome::Refused(r),
            ShareKind::UpstreamRejected(reason) => Outcome::UpstreamRejected { earned_btc, reason },
        };
        {
            let mut s = worker.state();
            s.tally.record(t_ms, d, value_btc, outcome);
            if d > 0.0 {
                s.difficulty = d;
            }
            // A pool index is a position in the config's pool list (a
            // handful); one past `u16` would leave the last pool shown.
            if let Some(p) = pool.and_then(|p| u16::try_from(p).ok()) {
                s.pool = Some(p);
            }
        }
        if let Some(p) = p {
            // A miner's own fault (low difficulty, duplicate, bad version
            // bits…) never reached the pool: it counts as a reject there,
            // not as work the pool failed to pay for (routing ranks pools
            // by what they pay per unit of work).
            let pool_outcome = match outcome {
                Outcome::RejectedWork(r) => Outcome::Refused(r),
                o => o,
            };
            p.tally
                .shard(shard)
                .record(t_ms, d, value_btc, pool_outcome);
        }
        self.farm.shard(shard).record(t_ms, d, value_btc, outcome);
    }

    /// A new price from the feed.
    pub fn set_price(&self, usd: f64, now_ms: u64) {
        if usd.is_finite() && usd > 0.0 {
            *lock(&self.price) = Some((usd, now_ms));
            self.price_updates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A feed poll failed (the price keeps ageing towards stale).
    pub fn price_error(&self) {
        self.price_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Feed polls so far: (good, failed).
    pub fn price_polls(&self) -> (u64, u64) {
        (
            self.price_updates.load(Ordering::Relaxed),
            self.price_errors.load(Ordering::Relaxed),
        )
    }

    /// The price as of `now_ms`.
    pub fn price(&self, now_ms: u64) -> Price {
        let (power_usd_per_kwh, power_source) = self.power_price(now_ms);
        Price {
            power_usd_per_kwh,
            power_source,
            ..self.btc_price(now_ms)
        }
    }

    /// The electricity price schedule.
    pub fn power_schedule(&self) -> crate::advice::PowerSchedule {
        crate::advice::PowerSchedule {
            base_usd_per_kwh: self.cfg.power_price_usd_per_kwh,
            periods: self.cfg.power_periods.clone(),
            utc_offset_min: self.cfg.power_utc_offset_min,
        }
    }

    /// Electricity price now and its source: a fresh feed price, else
    /// the schedule.
    pub fn power_price(&self, now_ms: u64) -> (f64, &'static str) {
        if self.cfg.power_feed_max_age_ms > 0
            && let Some((usd, at)) = *lock(&self.power_feed)
            && now_ms.saturating_sub(at) <= self.cfg.power_feed_max_age_ms
        {
            return (usd, "feed");
        }
        let s = self.power_schedule();
        let hour = s.hour(now_ms);
        if s.periods.iter().any(|p| p.covers(hour)) {
            (s.at_hour(hour), "schedule")
        } else {
            (s.base_usd_per_kwh, "config")
        }
    }

    /// A new power price from the feed.
    pub fn set_power_price(&self, usd_per_kwh: f64, now_ms: u64) {
        // Negative is real: a grid paying to take power.
        if usd_per_kwh.is_finite() {
            *lock(&self.power_feed) = Some((usd_per_kwh, now_ms));
            self.power_polls[0].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A power-price feed poll failed.
    pub fn power_price_error(&self) {
        self.power_polls[1].fetch_add(1, Ordering::Relaxed);
    }

    /// Power-price feed polls so far: (good, failed).
    pub fn power_price_polls(&self) -> (u64, u64) {
        (
            self.power_polls[0].load(Ordering::Relaxed),
            self.power_polls[1].load(Ordering::Relaxed),
        )
    }

    fn btc_price(&self, now_ms: u64) -> Price {
        match self.cfg.price {
            PriceConfig::Fixed(usd) => Price {
                usd: Some(usd),
                age_s: Some(0.0),
                stale: false,
                source: "config",
                ..Price::default()
            },
            PriceConfig::None => Price {
                source: "none",
                ..Price::default()
            },
            PriceConfig::Feed { max_age_ms } => match *lock(&self.price) {
                Some((usd, at)) => {
                    let age = now_ms.saturating_sub(at);
                    Price {
                        usd: Some(usd),
                        age_s: Some(age as f64 / 1000.0),
                        stale: age > max_age_ms,
                        source: "feed",
                        ..Price::default()
                    }
                }
                None => Price {
                    usd: None,
                    age_s: None,
                    stale: true,
                    source: "feed",
                    ..Price::default()
                },
            },
        }
    }

    /// The newest network figures among pools.
    pub fn network(&self) -> Option<Network> {
        self.pools
            .iter()
            .filter_map(|p| *lock(&p.network))
            .max_by_key(|n| n.at_ms)
    }

    /// A pool's network figures.
    pub fn pool_network(&self, pool: usize) -> Option<Network> {
        self.pools.get(pool).and_then(|p| *lock(&p.network))
    }

    /// Network hashprice now, USD/PH/day (None without difficulty, reward
    /// or price).
    pub fn network_hashprice(&self, now_ms: u64) -> Option<f64> {
        let n = self.network()?;
        let usd = self.price(now_ms).usd?;
        Some(money::network_hashprice(n.difficulty, n.reward_btc?, usd))
    }

    /// Drops workers with no connection and no share for
    /// `forget_after_ms`; returns how many.
    pub fn forget_idle(&self, now_ms: u64) -> usize {
        let before = self.workers.len();
        let limit = self.cfg.forget_after_ms;
        self.workers.retain(|_, w| {
            w.connections() > 0 || now_ms.saturating_sub(w.state().tally.last_change_ms) < limit
        });
        before.saturating_sub(self.workers.len())
    }

    /// Every worker (the store walks this).
    pub fn workers(&self) -> Vec<Arc<Worker>> {
        self.workers.iter().map(|e| e.value().clone()).collect()
    }

    /// Puts back a worker read from the store.
    pub fn restore_worker(&self, name: &str, tally: Tally, difficulty: f64) {
        let w = self.worker_with(name, false, false, |_| {});
        let mut s = w.state();
        s.tally = tally;
        s.difficulty = difficulty;
    }

    /// Reject reason name for an index.
    pub fn reason_name(&self, i: usize) -> &'static str {
        self.cfg.reasons.get(i).copied().unwrap_or("other")
    }

    /// Rejects by reason name (non-zero only).
    pub fn rejects_by_reason(&self, counts: &Rejects) -> BTreeMap<&'static str, u64> {
        // Only the reasons seen are kept, none of them at zero.
        counts
            .iter()
            .map(|(i, c)| (self.reason_name(i), c))
            .collect()
    }

    // ----- views -----

    /// Money and figures for one entity over a window.
    pub fn money_row(&self, f: &Figures, power: Option<Power>, price: &Price) -> MoneyRow {
        let s = &f.sums;
        let usd = price.usd;
        let submitted = s.submitted_work();
        let earned_usd = usd.map(|p| s.earned_btc * p);
        let effective = usd.and_then(|p| money::effective_hashprice(s.earned_btc, submitted, p));
        let revenue = earned_usd.map(|e| money::per_day(e, f.span_s));
        // No work in the window (offline, or just connected): no profit
        // figure rather than a fixed draw charged to a machine that is off.
        let profit = match (power, revenue, usd) {
            (Some(pw), Some(rev), Some(p)) if submitted > 0.0 => Some(money::profit(
                f.hashrate_submitted(),
                rev,
                effective,
                pw,
                price.power_usd_per_kwh,
                p,
            )),
            _ => None,
        };
        MoneyRow {
            span_s: f.span_s,
            hashrate_accepted: f.hashrate_accepted(),
            hashrate_submitted: f.hashrate_submitted(),
            accepted_work: s.accepted_work,
            stale_work: s.stale_work,
            rejected_work: s.rejected_work,
            accepted_shares: s.accepted.round() as u64,
            rejected_shares: s.rejected.round() as u64,
            accept_rate: (submitted > 0.0).then(|| s.accepted_work / submitted),
            earned_btc: s.earned_btc,
            earned_usd,
            revenue_usd_day: revenue,
            effective_hashprice: effective,
            efficiency: (s.value_btc > 0.0).then(|| s.earned_btc / s.value_btc),
            profit,
            money_stale: price.stale,
        }
    }

    /// What a page sorts and filters on: one short lock, no strings.
    fn keyed(&self, worker: Arc<Worker>, now_ms: u64, w: Window, price: &Price) -> Keyed {
        let (f, difficulty, last_share_ms) = {
            let s = worker.state();
            (
                s.tally.figures(now_ms, w),
                s.difficulty,
                s.tally.last_share_ms,
            )
        };
        Keyed {
            money: self.money_row(&f, self.power(&worker), price),
            difficulty,
            last_share: (last_share_ms > 0).then_some(last_share_ms / 1000),
            worker,
        }
    }

    /// The full row for a keyed worker (connection and pool added).
    fn row(&self, k: &Keyed, w: Window) -> WorkerRow {
        let (conn, pool) = {
            let s = k.worker.state();
            (s.conn.clone(), s.pool)
        };
        WorkerRow {
            name: k.worker.name.to_string(),
            window: w,
            connections: k.worker.connections(),
            ip: conn.ip,
            user_agent: conn.user_agent.map(|u| u.to_string()),
            connected_since: (conn.since_ms > 0).then_some(conn.since_ms / 1000),
            last_share: k.last_share,
            difficulty: k.difficulty,
            pool: pool
                .and_then(|i| self.pools.get(usize::from(i)))
                .map(|p| p.cfg.name.clone()),
            power: self.power(&k.worker),
            money: k.money,
        }
    }

    /// One worker's row over `w`.
    pub fn worker_row(&self, wk: &Arc<Worker>, now_ms: u64, w: Window, price: &Price) -> WorkerRow {
        self.row(&self.keyed(wk.clone(), now_ms, w, price), w)
    }

    /// One worker's figures and money over `w` (no row built).
    pub fn worker_money(
        &self,
        wk: &Arc<Worker>,
        now_ms: u64,
        w: Window,
        price: &Price,
    ) -> MoneyRow {
        self.keyed(wk.clone(), now_ms, w, price).money
    }

    /// A sorted, filtered page of workers.
    pub fn workers_page(&self, q: &WorkerQuery, now_ms: u64) -> Result<WorkerPage, QueryError> {
        let key = SortKey::parse(&q.sort).ok_or_else(|| QueryError::UnknownSort(q.sort.clone()))?;
        let price = self.price(now_ms);
        // Figures only (no strings) for every match; full rows for the page.
        // The map's guards are not held while worker locks are taken.
        let matching: Vec<Arc<Worker>> = self
            .workers
            .iter()
            .filter(|e| q.prefix.as_deref().is_none_or(|p| e.key().starts_with(p)))
            .map(|e| e.value().clone())
            .collect();
        let mut keyed: Vec<Keyed> = matching
            .into_iter()
            .map(|w| self.keyed(w, now_ms, q.window, &price))
            .filter(|k| !q.below_break_even || k.money.profit.is_some_and(|p| p.below_break_even))
            .collect();
        let total = keyed.len();
        let limit = q.limit.min(MAX_PAGE);
        let order = |a: &Keyed, b: &Keyed| {
            // Workers without the figure (no power set, no shares) go last
            // whichever the direction.
            let (ka, kb) = (key.value(a), key.value(b));
            let o = match (ka, kb) {
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => {
                    let o = key.cmp(a, b);
                    if q.desc { o.reverse() } else { o }
                }
            };
            o.then_with(|| a.worker.name.cmp(&b.worker.name))
        };
        // Only the rows up to the page's end need ordering: select them in
        // linear time, then sort that prefix.
        let end = q.offset.saturating_add(limit).min(total);
        if end < total {
            keyed.select_nth_unstable_by(end, order);
        }
        keyed[..end].sort_unstable_by(order);
        let workers: Vec<WorkerRow> = keyed
            .iter()
            .skip(q.offset)
            .take(limit)
            .map(|k| self.row(k, q.window))
            .collect();
        Ok(WorkerPage {
            total,
            offset: q.offset,
            limit,
            window: q.window,
            sort: q.sort.clone(),
            desc: q.desc,
            price,
            network_hashprice: self.network_hashprice(now_ms),
            workers,
        })
    }
}

/// Most rows one page returns.
pub const MAX_PAGE: usize = 1_000;

/// A query for [`Books::workers_page`].
#[derive(Clone, Debug)]
pub struct WorkerQuery {
    /// Window the figures cover.
    pub window: Window,
    /// Field to sort by (see [`SortKey`]).
    pub sort: String,
    /// Largest first.
    pub desc: bool,
    /// Rows to skip.
    pub offset: usize,
    /// Rows to return (at most [`MAX_PAGE`]).
    pub limit: usize,
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Only workers losing money.
    pub below_break_even: bool,
}

impl Default for WorkerQuery {
    fn default() -> Self {
        Self {
            window: Window::H1,
            sort: "name".into(),
            desc: false,
            offset: 0,
            limit: 100,
            prefix: None,
            below_break_even: false,
        }
    }
}

/// A bad query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// Not a sortable field.
    #[error("unknown sort field {0:?} (one of: {fields})", fields = SortKey::NAMES.join(", "))]
    UnknownSort(String),
}

/// Fields a worker page sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Worker name.
    Name,
    /// Any numeric field, by position in [`SortKey::NAMES`].
    Num(usize),
}

impl SortKey {
    /// Sortable field names.
    pub const NAMES: [&'static str; 19] = [
        "name",
        "hashrate_accepted",
        "hashrate_submitted",
        "accepted_work",
        "stale_work",
        "rejected_work",
        "accepted_shares",
        "rejected_shares",
        "accept_rate",
        "earned_btc",
        "earned_usd",
        "revenue_usd_day",
        "effective_hashprice",
        "efficiency",
        "power_w",
        "profit_usd_day",
        "break_even_hashprice",
        "last_share",
        "difficulty",
    ];

    fn parse(s: &str) -> Option<SortKey> {
        match Self::NAMES.iter().position(|n| *n == s)? {
            0 => Some(SortKey::Name),
            i => Some(SortKey::Num(i)),
        }
    }

    fn num(i: usize, r: &Keyed) -> Option<f64> {
        let m = &r.money;
        match i {
            1 => Some(m.hashrate_accepted),
            2 => Some(m.hashrate_submitted),
            3 => Some(m.accepted_work),
            4 => Some(m.stale_work),
            5 => Some(m.rejected_work),
            6 => Some(m.accepted_shares as f64),
            7 => Some(m.rejected_shares as f64),
            8 => m.accept_rate,
            9 => Some(m.earned_btc),
            10 => m.earned_usd,
            11 => m.revenue_usd_day,
            12 => m.effective_hashprice,
            13 => m.efficiency,
            14 => m.profit.map(|p| p.power_w),
            15 => m.profit.map(|p| p.profit_usd_day),
            16 => m.profit.and_then(|p| p.break_even_hashprice),
            17 => r.last_share.map(|t| t as f64),
            18 => Some(r.difficulty),
            _ => None,
        }
    }

    /// The figure, if the worker has it (names always do).
    fn value(self, r: &Keyed) -> Option<f64> {
        match self {
            SortKey::Name => Some(0.0),
            SortKey::Num(i) => Self::num(i, r),
        }
    }

    fn cmp(self, a: &Keyed, b: &Keyed) -> std::cmp::Ordering {
        match self {
            SortKey::Name => a.worker.name.cmp(&b.worker.name),
            // Unknown values sort before any number (last when descending).
            SortKey::Num(i) => match (Self::num(i, a), Self::num(i, b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        }
    }
}

/// What a page sorts and filters on, before rows are built.
struct Keyed {
    worker: Arc<Worker>,
    money: MoneyRow,
    difficulty: f64,
    last_share: Option<u64>,
}

/// Figures and money over one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MoneyRow {
    /// Seconds covered.
    pub span_s: f64,
    /// Accepted hashrate, H/s.
    pub hashrate_accepted: f64,
    /// Submitted hashrate (all work done), H/s.
    pub hashrate_submitted: f64,
    /// Σ difficulty accepted.
    pub accepted_work: f64,
    /// Σ difficulty stale.
    pub stale_work: f64,
    /// Σ difficulty of other work rejects.
    pub rejected_work: f64,
    /// Accepted shares.
    pub accepted_shares: u64,
    /// Rejected shares (all reasons).
    pub rejected_shares: u64,
    /// Accepted work / submitted work.
    pub accept_rate: Option<f64>,
    /// BTC earned (after fee).
    pub earned_btc: f64,
    /// The same in USD at the current price.
    pub earned_usd: Option<f64>,
    /// Earned USD per day at this window's rate.
    pub revenue_usd_day: Option<f64>,
    /// USD per PH/s (submitted) per day.
    pub effective_hashprice: Option<f64>,
    /// Earned / network value of the submitted work.
    pub efficiency: Option<f64>,
    /// Power, cost, profit and break-even (when power is configured).
    pub profit: Option<Profit>,
    /// True when the BTC price is older than its limit.
    pub money_stale: bool,
}

/// One worker in a page.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerRow {
    /// Name.
    pub name: String,
    /// Window of the figures.
    pub window: Window,
    /// Live connections.
    pub connections: u32,
    /// Address of the latest connection.
    pub ip: Option<IpAddr>,
    /// Its user agent.
    pub user_agent: Option<String>,
    /// When it authorized (Unix seconds).
    pub connected_since: Option<u64>,
    /// Last share (Unix seconds).
    pub last_share: Option<u64>,
    /// Difficulty of the last share.
    pub difficulty: f64,
    /// Pool of the last share.
    pub pool: Option<String>,
    /// Power setting that applies.
    pub power: Option<Power>,
    /// Figures and money.
    #[serde(flatten)]
    pub money: MoneyRow,
}

/// A page of workers.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerPage {
    /// Workers matching the filters.
    pub total: usize,
    /// Offset asked for.
    pub offset: usize,
    /// Page size used.
    pub limit: usize,
    /// Window of the figures.
    pub window: Window,
    /// Sort field.
    pub sort: String,
    /// Descending.
    pub desc: bool,
    /// BTC price used.
    pub price: Price,
    /// Network hashprice now.
    pub network_hashprice: Option<f64>,
    /// The rows.
    pub workers: Vec<WorkerRow>,
}

mod advise;
pub use advise::{AdviceError, AdviceQuery, MAX_ADVICE_WORKERS};

#[cfg(test)]
mod tests;
