//! JSON shapes of the API and the metrics text, built from the books and
//! the engine's counters on each request.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;
use sluice_books::books::{MoneyRow, Network, Price, WorkerRow};
use sluice_books::money::{self, Power};
use sluice_books::tally::{HASHES_PER_DIFF1, Totals};
use sluice_books::{Books, Reward, Scheme, Window};
use sluice_engine::blocks::{BlockLog, BlockRecord};
use sluice_engine::router::Router;
use sluice_engine::stats::{Disconnect, LATENCY_BOUNDS, PoolReject, Reject, Stats};
use sluice_engine::upstream::Health;

use crate::ApiState;
use crate::prom::Exposition;

/// `/api/v1/blocks`: the counters and the most recent candidates, newest
/// first.
#[derive(Serialize)]
pub struct Blocks {
    /// Candidates found (shares meeting the network target).
    pub found: u64,
    /// Submissions sent (retries included).
    pub submitted: u64,
    /// Accepted by the pool or node.
    pub accepted: u64,
    /// Refused by the pool or node.
    pub rejected: u64,
    /// Given up on without a verdict.
    pub failed: u64,
    /// The candidates (the last 1,000; the block log file has all).
    pub blocks: Vec<BlockRecord>,
}

/// The block log's view.
pub fn blocks(log: &BlockLog, stats: &Stats) -> Blocks {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut blocks = log.list();
    blocks.reverse();
    Blocks {
        found: get(&stats.blocks_found),
        submitted: get(&stats.blocks_submitted),
        accepted: get(&stats.blocks_accepted),
        rejected: get(&stats.blocks_rejected),
        failed: get(&stats.blocks_failed),
        blocks,
    }
}

/// One point of a worker's day (a bucket of the width it gives).
#[derive(Serialize)]
pub struct SeriesPoint {
    /// Bucket start, Unix seconds.
    pub start: u64,
    /// Accepted hashrate over the bucket, H/s.
    pub hashrate_accepted: f64,
    /// Submitted hashrate over the bucket, H/s.
    pub hashrate_submitted: f64,
    /// Accepted shares.
    pub accepted_shares: u32,
    /// Rejected shares.
    pub rejected_shares: u32,
    /// BTC earned.
    pub earned_btc: f64,
    /// Seconds of the bucket that have passed (the current one is
    /// partial): rates over the bucket divide by this.
    pub secs: f64,
}

/// `/api/v1/workers/{name}`.
#[derive(Serialize)]
pub struct WorkerDetail {
    /// The worker over the last hour (connection, power, money).
    #[serde(flatten)]
    pub row: WorkerRow,
    /// Figures and money over each window.
    pub windows: BTreeMap<&'static str, MoneyRow>,
    /// Lifetime totals.
    pub totals: Totals,
    /// Lifetime rejects by reason.
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// The last 24 h, oldest first: 2-hour buckets before the current
    /// one; in it, one point for the part older than the last hour if
    /// it began before that, then 5 min buckets (each point says its
    /// seconds).
    pub series: Vec<SeriesPoint>,
}

/// The seconds a series point's bucket covers: the current bucket has only
/// run for part of its width, and the one the worker began in only since
/// it began (a 2-hour point would otherwise show a newcomer at a fraction
/// of its rate); one wholly before the worker keeps its width. At least a
/// second, so a rate is always defined.
fn point_secs(start_ms: u64, width_ms: u64, now_ms: u64, first_ms: u64) -> f64 {
    let end = (start_ms + width_ms).min(now_ms);
    let from = if first_ms < end {
        start_ms.max(first_ms)
    } else {
        start_ms
    };
    (end.saturating_sub(from) as f64 / 1000.0).clamp(1.0, (width_ms as f64 / 1000.0).max(1.0))
}

/// One worker in full; `None` if it has no books.
pub fn worker_detail(books: &Books, name: &str) -> Option<WorkerDetail> {
    let w = books.find_worker(name)?;
    let now = books.clock().now_ms();
    let price = books.price(now);
    let row = books.worker_row(&w, now, Window::H1, &price);
    let windows = Window::ALL
        .iter()
        .map(|win| (win.label(), books.worker_row(&w, now, *win, &price).money))
        .collect();
    let (totals, series, first_ms) = {
        let s = w.state();
        (
            s.tally.totals.clone(),
            s.tally.series(now),
            s.tally.first_ms,
        )
    };
    let series = series
        .into_iter()
        .map(|(start, width, b)| (start, b, point_secs(start, width, now, first_ms)))
        .map(|(start, b, secs)| SeriesPoint {
            start: start / 1000,
            hashrate_accepted: f64::from(b.accepted_work) * HASHES_PER_DIFF1 / secs,
            hashrate_submitted: f64::from(b.accepted_work + b.stale_work + b.rejected_work)
                * HASHES_PER_DIFF1
                / secs,
            accepted_shares: b.accepted,
            rejected_shares: b.rejected,
            earned_btc: f64::from(b.earned_btc),
            secs,
        })
        .collect();
    Some(WorkerDetail {
        rejects_by_reason: books.rejects_by_reason(&totals.rejects),
        row,
        windows,
        totals,
        series,
    })
}

/// One upstream connection.
#[derive(Serialize)]
pub struct ConnectionView {
    /// Connection number.
    pub id: u32,
    /// `ready`, `connecting` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    pub error: Option<String>,
    /// Sessions on it.
    pub sessions: u64,
}

/// `/api/v1/pools` entry.
#[derive(Serialize)]
pub struct PoolView {
    /// Config index.
    pub index: usize,
    /// Name (URL).
    pub name: String,
    /// Fee, fraction.
    pub fee: f64,
    /// Payout scheme.
    pub scheme: Scheme,
    /// Where the reward comes from.
    pub reward: Reward,
    /// Difficulty and reward of its latest job.
    pub network: Option<Network>,
    /// Network hashprice at its reward.
    pub network_hashprice: Option<f64>,
    /// True when a connection is ready.
    pub up: bool,
    /// Its connections.
    pub connections: Vec<ConnectionView>,
    /// Figures and money by window.
    pub windows: BTreeMap<&'static str, MoneyRow>,
    /// Lifetime totals.
    pub totals: Totals,
    /// Configured weight.
    pub weight: f64,
    /// Lifetime rejects by reason (its own and miners' shares on its jobs).
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// Time from a miner's submit to this pool's answer.
    pub latency: Option<LatencyView>,
}

/// A latency histogram's quantiles (bucket upper bounds).
#[derive(Serialize)]
pub struct LatencyView {
    /// Answers timed.
    pub count: u64,
    /// Median, ms (at most).
    pub p50_ms: f64,
    /// 99th percentile, ms (at most; null when above 10 s, the last
    /// bucket's bound).
    pub p99_ms: Option<f64>,
}

fn latency(h: &sluice_engine::stats::LatencyHistogram) -> Option<LatencyView> {
    Some(LatencyView {
        count: h.count(),
        p50_ms: h.quantile(0.5)? * 1e3,
        p99_ms: h.quantile(0.99).filter(|q| q.is_finite()).map(|q| q * 1e3),
    })
}

fn health(h: &Health) -> (&'static str, Option<String>) {
    match h {
        Health::Ready => ("ready", None),
        Health::Connecting => ("connecting", None),
        Health::Failed(e) => ("failed", Some(e.clone())),
    }
}

fn windows(
    books: &Books,
    f: impl Fn(Window) -> sluice_books::tally::Figures,
    price: &Price,
) -> BTreeMap<&'static str, MoneyRow> {
    Window::ALL
        .iter()
        .map(|w| (w.label(), books.money_row(&f(*w), None, price)))
        .collect()
}

/// Every pool.
pub fn pools(books: &Books, router: &Router, stats: &Stats) -> Vec<PoolView> {
    let now = books.clock().now_ms();
    let price = books.price(now);
    let snap = router.snapshot();
    let configured = router.configured();
    books
        .pools()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let network = books.pool_network(i);
            let conns: Vec<ConnectionView> = snap
                .get(i)
                .map(|s| {
                    s.connections
                        .iter()
                        .map(|(id, h, n)| {
                            let (state, error) = health(h);
                            ConnectionView {
                                id: *id,
                                state,
                                error,
                                sessions: *n,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            PoolView {
                index: i,
                name: p.cfg.name.clone(),
                fee: p.cfg.fee,
                scheme: p.cfg.scheme,
                reward: p.cfg.reward,
                network_hashprice: match (network, price.usd) {
                    (Some(n), Some(usd)) => n
                        .reward_btc
                        .map(|r| money::network_hashprice(n.difficulty, r, usd)),
                    _ => None,
                },
                network,
                up: conns.iter().any(|c| c.state == "ready"),
                connections: conns,
                windows: windows(books, |w| p.tally.figures(now, w), &price),
                weight: configured.get(i).map_or(0.0, |c| c.1),
                latency: stats.pool_latency.get(&i).and_then(|h| latency(&h)),
                rejects_by_reason: {
                    let t = p.tally.totals();
                    books.rejects_by_reason(&t.rejects)
                },
                totals: p.tally.totals(),
            }
        })
        .collect()
}

/// `/api/v1/farm`.
#[derive(Serialize)]
pub struct FarmView {
    /// Workers on the books.
    pub workers: usize,
    /// Workers with a live connection.
    pub connected_workers: usize,
    /// Workers losing money over the last hour.
    pub below_break_even: usize,
    /// Miner connections.
    pub connections: u64,
    /// BTC price used.
    pub price: Price,
    /// Network hashprice now.
    pub network_hashprice: Option<f64>,
    /// Figures and money by window.
    pub windows: BTreeMap<&'static str, MoneyRow>,
    /// Lifetime totals.
    pub totals: Totals,
    /// Lifetime rejects by reason.
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// Shares sent to pools and their verdicts (this process).
    pub forwarded: u64,
    /// Pool-accepted forwarded shares.
    pub upstream_accepted: u64,
    /// Pool-rejected forwarded shares (or with nowhere to go).
    pub upstream_rejected: u64,
    /// Power and profit of the workers with power settings, over the last
    /// hour.
    pub power: FarmPower,
}

/// The farm's power and profit: the sum over workers with power settings.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FarmPower {
    /// Workers counted.
    pub workers: usize,
    /// Their draw, W.
    pub power_w: f64,
    /// Their power cost, USD per day.
    pub power_cost_usd_day: f64,
    /// Their revenue, USD per day.
    pub revenue_usd_day: f64,
    /// Revenue − power cost, USD per day.
    pub profit_usd_day: f64,
}

/// One walk over the workers: connected, below break-even, power totals.
fn walk_workers(books: &Books, now: u64, price: &Price) -> (usize, usize, FarmPower) {
    let mut connected = 0;
    let mut below = 0;
    let mut power = FarmPower::default();
    for w in books.workers() {
        connected += usize::from(w.connections() > 0);
        if books.power(&w).is_some() {
            let m = books.worker_money(&w, now, Window::H1, price);
            if let Some(p) = m.profit {
                below += usize::from(p.below_break_even);
                power.workers += 1;
                power.power_w += p.power_w;
                power.power_cost_usd_day += p.power_cost_usd_day;
                power.revenue_usd_day += p.revenue_usd_day;
                power.profit_usd_day += p.profit_usd_day;
            }
        }
    }
    (connected, below, power)
}

/// The farm.
pub fn farm(books: &Books, stats: &Stats) -> FarmView {
    let now = books.clock().now_ms();
    let price = books.price(now);
    let totals = books.farm().totals();
    let (connected_workers, below, power) = walk_workers(books, now, &price);
    FarmView {
        workers: books.worker_count(),
        connected_workers,
        below_break_even: below,
        connections: stats.sessions.load(Ordering::Relaxed),
        network_hashprice: books.network_hashprice(now),
        windows: windows(books, |w| books.farm().figures(now, w), &price),
        rejects_by_reason: books.rejects_by_reason(&totals.rejects),
        totals,
        price,
        forwarded: stats.forwarded.load(Ordering::Relaxed),
        upstream_accepted: stats.upstream_accepted.load(Ordering::Relaxed),
        upstream_rejected: stats.upstream_rejected.load(Ordering::Relaxed),
        power,
    }
}

/// The farm's hashprice over one window.
#[derive(Serialize)]
pub struct FarmHashprice {
    /// USD per submitted PH/s per day.
    pub effective_hashprice: Option<f64>,
    /// Earned / network value of the submitted work.
    pub efficiency: Option<f64>,
    /// Submitted hashrate, H/s.
    pub hashrate_submitted: f64,
}

/// `/api/v1/hashprice`.
#[derive(Serialize)]
pub struct HashpriceView {
    /// Difficulty and reward of the newest job.
    pub network: Option<Network>,
    /// BTC price.
    pub price: Price,
    /// Network hashprice, USD/PH/day.
    pub network_hashprice_usd: Option<f64>,
    /// Network hashprice, BTC/PH/day.
    pub network_hashprice_btc: Option<f64>,
    /// Electricity price, USD/kWh.
    pub power_price_usd_per_kwh: f64,
    /// Power of workers no rule matches.
    pub default_power: Option<Power>,
    /// Break-even hashprice at the default efficiency (24 · E · c).
    pub break_even_hashprice: Option<f64>,
    /// BTC price where that machine breaks even at the network hashprice.
    pub break_even_price_usd: Option<f64>,
    /// The farm's effective hashprice by window.
    pub farm: BTreeMap<&'static str, FarmHashprice>,
}

/// Hashprice now.
pub fn hashprice(books: &Books) -> HashpriceView {
    let now = books.clock().now_ms();
    let price = books.price(now);
    let network = books.network();
    let cfg = books.config();
    let net_usd = books.network_hashprice(now);
    let net_btc = network.and_then(|n| {
        n.reward_btc
            .map(|r| money::network_hashprice_btc(n.difficulty, r))
    });
    let break_even = match cfg.default_power {
        Some(Power::EfficiencyJPerTh(e)) => {
            Some(money::break_even_hashprice(e, price.power_usd_per_kwh))
        }
        _ => None,
    };
    let farm = Window::ALL
        .iter()
        .map(|w| {
            let r = books.money_row(&books.farm().figures(now, *w), None, &price);
            (
                w.label(),
                FarmHashprice {
                    effective_hashprice: r.effective_hashprice,
                    efficiency: r.efficiency,
                    hashrate_submitted: r.hashrate_submitted,
                },
            )
        })
        .collect();
    HashpriceView {
        network,
        network_hashprice_usd: net_usd,
        network_hashprice_btc: net_btc,
        power_price_usd_per_kwh: price.power_usd_per_kwh,
        default_power: cfg.default_power,
        break_even_hashprice: break_even,
        break_even_price_usd: match (break_even, net_usd, price.usd) {
            (Some(b), Some(h), Some(p)) => money::break_even_price(p, b, h),
            _ => None,
        },
        farm,
        price,
    }
}

/// `/metrics`.
pub fn metrics(st: &ApiState) -> String {
    let (books, stats) = (&st.books, &st.stats);
    let now = books.clock().now_ms();
    let price = books.price(now);
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut e = Exposition::default();
    e.gauge(
        "sluice_build_info",
        "Build and role of this instance.",
        &[("version", env!("CARGO_PKG_VERSION")), ("mode", st.mode)],
        1.0,
    );
    // Leak checks (a soak compares them before and after): tasks alive in
    // the runtime and open files.
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        e.gauge(
            "sluice_runtime_tasks",
            "Tasks alive in the async runtime (one per miner connection, plus a few per pool).",
            &[],
            h.metrics().num_alive_tasks() as f64,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        e.gauge(
            "process_open_fds",
            "Open file descriptors (Linux).",
            &[],
            fds.count() as f64,
        );
    }
    e.counter(
        "sluice_shares_accepted_total",
        "Shares accepted from miners.",
        &[],
        get(&stats.accepted),
    );
    for r in Reject::ALL {
        e.counter(
            "sluice_shares_rejected_total",
            "Shares and requests refused, by reason.",
            &[("reason", r.label())],
            stats.rejected(r) as f64,
        );
    }
    let t = books.farm().totals();
    for (kind, work) in [
        ("accepted", t.accepted_work),
        ("stale", t.stale_work),
        ("rejected", t.rejected_work),
    ] {
        e.counter(
            "sluice_work_hashes_total",
            "Work in hashes (Σ difficulty · 2^32) by outcome; rate() of the sum is the submitted hashrate.",
            &[("outcome", kind)],
            work * HASHES_PER_DIFF1,
        );
    }
    e.counter(
        "sluice_earned_btc_total",
        "Expected BTC earned by the shares sluice accepted, after pool fees (before pool rejections).",
        &[],
        t.earned_btc,
    );
    e.counter(
        "sluice_upstream_rejected_work_hashes_total",
        "Work of accepted shares the pool then refused or never received, in hashes.",
        &[],
        t.rare().upstream_rejected_work * HASHES_PER_DIFF1,
    );
    e.counter(
        "sluice_upstream_rejected_btc_total",
        "Earnings taken back for shares the pool refused; net earned = sluice_earned_btc_total minus this.",
        &[],
        t.rare().upstream_rejected_btc,
    );
    let pool_totals: Vec<(String, Totals)> = books
        .pools()
        .iter()
        .map(|p| (p.cfg.name.clone(), p.tally.totals()))
        .collect();
    for (name, t) in &pool_totals {
        for (kind, work) in [
            ("accepted", t.accepted_work),
            ("stale", t.stale_work),
            ("rejected", t.rejected_work),
        ] {
            e.counter(
                "sluice_pool_work_hashes_total",
                "Work in hashes by pool and outcome (pool verdicts included; a miner's own bad shares are not the pool's).",
                &[("pool", name), ("outcome", kind)],
                work * HASHES_PER_DIFF1,
            );
        }
    }
    for (name, t) in &pool_totals {
        e.counter(
            "sluice_pool_earned_btc_total",
            "Expected BTC earned at each pool, after its fee (before its rejections).",
            &[("pool", name)],
            t.earned_btc,
        );
    }
    for (name, t) in &pool_totals {
        e.counter(
            "sluice_pool_upstream_rejected_btc_total",
            "Earnings taken back for shares each pool refused.",
            &[("pool", name)],
            t.rare().upstream_rejected_btc,
        );
    }
    e.counter(
        "sluice_blocks_found_total",
        "Block candidates: shares that met the network target.",
        &[],
        get(&stats.blocks_found),
    );
    e.counter(
        "sluice_blocks_submitted_total",
        "Block submissions sent to a pool or node (retries included).",
        &[],
        get(&stats.blocks_submitted),
    );
    e.counter(
        "sluice_blocks_accepted_total",
        "Blocks the pool or node accepted.",
        &[],
        get(&stats.blocks_accepted),
    );
    e.counter(
        "sluice_blocks_rejected_total",
        "Blocks the pool or node refused.",
        &[],
        get(&stats.blocks_rejected),
    );
    e.counter(
        "sluice_blocks_failed_total",
        "Blocks given up on without a verdict.",
        &[],
        get(&stats.blocks_failed),
    );
    e.counter(
        "sluice_block_log_errors_total",
        "Failed writes to the block log.",
        &[],
        get(&stats.block_log_errors),
    );
    e.counter(
        "sluice_upstream_failures_total",
        "Upstream connections that failed (refused, failed handshake, undecodable or undecryptable data, stall).",
        &[],
        get(&stats.upstream_failures),
    );
    if let Some(l) = &st.ledger {
        for (name, help, v) in [
            (
                "sluice_ledger_shares_written_total",
                "Shares committed to the ledger.",
                &l.shares_written,
            ),
            (
                "sluice_ledger_blocks_written_total",
                "Blocks committed to the ledger.",
                &l.blocks_written,
            ),
            (
                "sluice_ledger_commits_total",
                "Ledger transactions committed (one per batch).",
                &l.commits,
            ),
            (
                "sluice_ledger_commit_errors_total",
                "Ledger commits that failed and were tried again.",
                &l.commit_errors,
            ),
            (
                "sluice_ledger_refused_total",
                "Shares refused because the ledger queue was full.",
                &l.refused,
            ),
        ] {
            e.counter(name, help, &[], get(v));
        }
        e.gauge(
            "sluice_ledger_pending",
            "Rows queued for the ledger, not yet committed (the crash loss window).",
            &[],
            get(&l.pending),
        );
    }
    if let Some(n) = &st.node {
        for (name, help, v) in [
            (
                "sluice_node_templates_total",
                "Block templates taken from Bitcoin Core.",
                &n.templates,
            ),
            (
                "sluice_node_tip_changes_total",
                "New chain tips seen.",
                &n.tip_changes,
            ),
            (
                "sluice_node_rpc_errors_total",
                "Bitcoin Core RPC calls that failed.",
                &n.rpc_errors,
            ),
            (
                "sluice_node_bad_templates_total",
                "Templates that did not parse or check out.",
                &n.bad_templates,
            ),
            (
                "sluice_node_zmq_announcements_total",
                "hashblock announcements received over ZMQ.",
                &n.zmq_announcements,
            ),
        ] {
            e.counter(name, help, &[], get(v));
        }
    }
    e.counter(
        "sluice_reconnects_refused_total",
        "client.reconnect requests to hosts the pool's config does not list.",
        &[],
        get(&stats.reconnects_refused),
    );
    e.counter(
        "sluice_shares_withheld_total",
        "Shares not forwarded: below the stricter of a pool's old and new difficulty.",
        &[],
        get(&stats.upstream_withheld),
    );
    e.counter(
        "sluice_difficulty_suggestions_total",
        "mining.suggest_difficulty requests sent to pools.",
        &[],
        get(&stats.difficulty_suggestions),
    );
    for r in PoolReject::ALL {
        e.counter(
            "sluice_upstream_rejects_total",
            "Forwarded shares the pools refused or never answered, by reason.",
            &[("reason", r.label())],
            get(&stats.upstream_rejects[r as usize]),
        );
    }
    e.gauge(
        "sluice_connections",
        "Miner connections now.",
        &[],
        get(&stats.sessions),
    );
    e.counter(
        "sluice_connections_refused_total",
        "Connections refused at the global or per-IP limit.",
        &[],
        get(&stats.refused_connections),
    );
    for d in Disconnect::ALL {
        e.counter(
            "sluice_disconnects_total",
            "Miner connections closed, by reason.",
            &[("reason", d.label())],
            stats.disconnects(d) as f64,
        );
    }
    e.counter(
        "sluice_shares_forwarded_total",
        "Shares sent to pools.",
        &[],
        get(&stats.forwarded),
    );
    for (outcome, v) in [
        ("accepted", get(&stats.upstream_accepted)),
        ("rejected", get(&stats.upstream_rejected)),
    ] {
        e.counter(
            "sluice_upstream_shares_total",
            "Forwarded shares by the pool's verdict.",
            &[("outcome", outcome)],
            v,
        );
    }
    let snapshot = st.router.snapshot();
    for p in &snapshot {
        let up = p
            .connections
            .iter()
            .any(|(_, h, _)| matches!(h, Health::Ready));
        e.gauge(
            "sluice_upstream_up",
            "1 when a connection to the pool is ready.",
            &[("pool", &p.name)],
            f64::from(u8::from(up)),
        );
    }
    for p in &snapshot {
        e.gauge(
            "sluice_upstream_connections",
            "Connections to each pool.",
            &[("pool", &p.name)],
            p.connections.len() as f64,
        );
    }
    let h = &stats.submit_latency;
    let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    e.histogram(
        "sluice_upstream_submit_latency_seconds",
        "From a miner's submit to the pool's answer.",
        &LATENCY_BOUNDS,
        &counts,
        h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    if let Some(n) = books.network() {
        e.gauge(
            "sluice_network_difficulty",
            "Network difficulty of the newest job.",
            &[],
            n.difficulty,
        );
        if let Some(r) = n.reward_btc {
            e.gauge(
                "sluice_block_reward_btc",
                "Block reward of the newest job (subsidy and fees).",
                &[],
                r,
            );
        }
    }
    if let Some(usd) = price.usd {
        e.gauge(
            "sluice_btc_price_usd",
            "BTC price used for USD figures.",
            &[],
            usd,
        );
    }
    if let Some(age) = price.age_s {
        e.gauge(
            "sluice_btc_price_age_seconds",
            "Age of the BTC price.",
            &[],
            age,
        );
    }
    e.gauge(
        "sluice_btc_price_stale",
        "1 when the BTC price is older than its limit (USD figures are stale).",
        &[],
        f64::from(u8::from(price.stale)),
    );
    if let Some(h) = books.network_hashprice(now) {
        e.gauge(
            "sluice_network_hashprice_usd_per_phs_day",
            "Network hashprice, USD per PH/s per day.",
            &[],
            h,
        );
    }
    for w in [Window::H1, Window::H24] {
        let r = books.money_row(&books.farm().figures(now, w), None, &price);
        if let Some(h) = r.effective_hashprice {
            e.gauge(
                "sluice_farm_hashprice_usd_per_phs_day",
                "Farm effective hashprice (earned per submitted PH/s), USD per PH/s per day.",
                &[("window", w.label())],
                h,
            );
        }
    }
    let (connected, below, _) = walk_workers(books, now, &price);
    e.gauge(
        "sluice_workers",
        "Workers on the books.",
        &[],
        books.worker_count() as f64,
    );
    e.gauge(
        "sluice_workers_connected",
        "Workers with a live connection.",
        &[],
        connected as f64,
    );
    e.gauge(
        "sluice_workers_below_break_even",
        "Workers losing money over the last hour.",
        &[],
        below as f64,
    );
    let (ok, failed) = books.price_polls();
    for (outcome, v) in [("ok", ok), ("error", failed)] {
        e.counter(
            "sluice_price_feed_polls_total",
            "BTC price feed polls by outcome.",
            &[("outcome", outcome)],
            v as f64,
        );
    }
    let (ok, failed) = books.power_price_polls();
    for (outcome, v) in [("ok", ok), ("error", failed)] {
        e.counter(
            "sluice_power_price_feed_polls_total",
            "Power price feed polls by outcome.",
            &[("outcome", outcome)],
            v as f64,
        );
    }
    e.gauge(
        "sluice_power_price_usd_per_kwh",
        "Electricity price now (flat, time-of-use schedule, or feed).",
        &[],
        price.power_usd_per_kwh,
    );
    e.counter(
        "sluice_api_bad_requests_total",
        "API requests refused as bad.",
        &[],
        get(&st.bad_requests),
    );
    if let Some(r) = &st.routing {
        routing_metrics(&mut e, &r.report());
    }
    e.finish()
}

fn routing_metrics(e: &mut Exposition, r: &sluice_engine::routing::RoutingReport) {
    e.counter(
        "sluice_routing_split_changes_total",
        "Times the hashprice policy changed the split of hashrate across pools.",
        &[],
        r.split_changes as f64,
    );
    for (reason, v) in [("split", r.session_moves), ("failover", r.failover_moves)] {
        e.counter(
            "sluice_routing_session_moves_total",
            "Sessions moved between pools (with a clean job), to follow the split or weights, or off a failed pool.",
            &[("reason", reason)],
            v as f64,
        );
    }
    for p in &r.pools {
        e.gauge(
            "sluice_routing_target_share",
            "Share of the hashrate each pool is routed (policy target or weight share).",
            &[("pool", &p.name)],
            p.target_share,
        );
    }
    for p in &r.pools {
        if let Some(h) = p.measured.hashprice_btc {
            e.gauge(
                "sluice_pool_effective_hashprice_btc",
                "What each pool pays per unit of submitted work over the routing window, BTC per PH/s per day.",
                &[("pool", &p.name)],
                h,
            );
        }
    }
    for p in &r.pools {
        if let Some(h) = p.hashprice_usd {
            e.gauge(
                "sluice_pool_effective_hashprice_usd",
                "The same in USD per PH/s per day at the current BTC price.",
                &[("pool", &p.name)],
                h,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::point_secs;

    #[test]
    fn a_points_rate_is_over_the_time_its_bucket_ran() {
        const H2: u64 = 7_200_000;
        let start = 1_000 * H2;
        // A whole bucket, the current one, and the one a worker began in.
        assert_eq!(point_secs(start, H2, start + 3 * H2, 0), 7_200.0);
        assert_eq!(point_secs(start, H2, start + 1_800_000, 0), 1_800.0);
        assert_eq!(
            point_secs(start, H2, start + 3 * H2, start + 6_000_000),
            1_200.0
        );
        // Begun and read in the current one; a bucket wholly before the
        // worker keeps its width (the chart's spacing).
        assert_eq!(
            point_secs(start, H2, start + 4_000_000, start + 1_000_000),
            3_000.0
        );
        assert_eq!(
            point_secs(start, H2, start + 3 * H2, start + 2 * H2),
            7_200.0
        );
    }
}
