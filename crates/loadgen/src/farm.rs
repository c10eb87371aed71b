//! A farm of simulated miners: ramp-up, scenarios, live snapshots and the
//! final report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::miner::{self, Histograms, MinerConfig, MinerStats};

/// What the farm does during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Connect at the ramp rate, then mine.
    Steady,
    /// Connect everyone at once, then mine.
    ConnectStorm,
    /// Like steady, but every miner drops and rejoins mid-run, all at once.
    ReconnectStorm,
    /// Like steady, but every minute 1 % of the miners (the next 1 % in
    /// turn) drop and rejoin: a farm's everyday churn, for soak runs.
    Churn,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steady" => Ok(Scenario::Steady),
            "connect-storm" => Ok(Scenario::ConnectStorm),
            "reconnect-storm" => Ok(Scenario::ReconnectStorm),
            "churn" => Ok(Scenario::Churn),
            other => Err(format!(
                "unknown scenario {other:?} (steady, connect-storm, reconnect-storm, churn)"
            )),
        }
    }
}

/// Farm settings.
#[derive(Clone, Debug)]
pub struct FarmConfig {
    /// `host:port`.
    pub addr: String,
    /// Simulated miners.
    pub miners: usize,
    /// How long to mine after the ramp.
    pub duration: Duration,
    /// Connections opened per second (`None`: all at once).
    pub ramp_per_sec: Option<f64>,
    /// What happens during the run.
    pub scenario: Scenario,
    /// Template for every miner (the worker name gets a number appended).
    pub miner: MinerConfig,
}

/// Totals at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Seconds since the start.
    pub elapsed_sec: f64,
    /// Miners with a job.
    pub connected: u64,
    /// Hashes computed.
    pub hashes: u64,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected.
    pub rejected: u64,
    /// Miners whose connection ended with an error.
    pub disconnects: u64,
}

/// Percentiles of one histogram, microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// How the load generator itself fared: whether it delivered the load it
/// was asked for, and whether its latency figures are the server's or its
/// own (a saturated generator answers its sockets late and blames the
/// server).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Generator {
    /// Connections asked for.
    pub miners_asked: usize,
    /// Hashes per second asked for in all (`None` when the share rate
    /// sets it: it follows the difficulty).
    pub hashrate_asked: Option<f64>,
    /// Shares per second asked for in all (`None` without a share rate).
    pub share_rate_asked: Option<f64>,
    /// Shares per second submitted over the measured window.
    pub share_rate: f64,
    /// Its own CPU over the measured window, as a fraction of its worker
    /// threads' time (1.0: every thread busy all the time).
    pub cpu_busy: Option<f64>,
    /// Worker threads of its runtime.
    pub threads: usize,
    /// How late its event loop ran a 50 ms timer (ms beyond the 50): a
    /// busy loop reads replies late.
    pub loop_lag: Percentiles,
    /// Where it fell short of the load asked, in words (empty: it did not).
    pub shortfalls: Vec<String>,
    /// Its latency figures include its own delay (event-loop lag p99 above
    /// 5 ms, or its threads over 90 % busy): they are not the server's.
    pub saturated: bool,
}

/// Event-loop lag above this (p99) means the generator's latency figures
/// carry its own delay: the runtime's timer has 1 ms resolution, so an
/// idle loop shows ~1 ms.
const LAG_SATURATED_US: u64 = 5_000;
/// Its threads busier than this and it cannot be trusted to read replies
/// promptly.
const CPU_SATURATED: f64 = 0.9;
/// Delivering less than this fraction of what was asked is a shortfall.
const SHORTFALL: f64 = 0.95;

/// CPU seconds this process has used (Linux; `None` elsewhere).
fn own_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) end at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), in USER_HZ = 100.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Measures how late a 50 ms timer fires on this runtime until stopped.
fn watch_loop_lag(stop: CancellationToken) -> Arc<std::sync::Mutex<Histogram<u64>>> {
    let h = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds"),
    ));
    let out = h.clone();
    tokio::spawn(async move {
        let period = Duration::from_millis(50);
        loop {
            let t = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.cancelled() => return,
            }
            let late = t.elapsed().saturating_sub(period);
            if let Ok(mut h) = h.lock() {
                let _ = h.record((late.as_micros() as u64).clamp(1, 3_600_000_000));
            }
        }
    });
    out
}

/// Everything measured in a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// Miners asked for.
    pub miners: usize,
    /// Miners that got a job.
    pub connected: u64,
    /// Seconds from the first connect to the end.
    pub elapsed_sec: f64,
    /// Seconds of mining measured (after the ramp).
    pub measured_sec: f64,
    /// Hashes computed in all.
    pub hashes: u64,
    /// Hashes per second actually computed (ground truth for hashrate).
    pub hashrate: f64,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Accepted shares per second over the measured window.
    pub accepted_per_sec: f64,
    /// Rejects by V1 code (20–25); V2 errors under the code of the same
    /// meaning.
    pub rejected_by_code: std::collections::BTreeMap<u8, u64>,
    /// V2 rejects by the error string the server sent (empty for V1).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rejected_by_error: std::collections::BTreeMap<String, u64>,
    /// Rejects per second over the measured window.
    pub rejected_per_sec: f64,
    /// Bad shares sent on purpose: stale, duplicate, low difficulty.
    pub bad_sent: [u64; 3],
    /// Connections that ended with an error.
    pub disconnects: u64,
    /// Submit → response.
    pub submit_latency: Percentiles,
    /// Connect → first job.
    pub first_job: Percentiles,
    /// Job arrival after the first miner got the same job.
    pub fanout_lag: Percentiles,
    /// Whether the generator delivered the load asked and can be trusted
    /// on latency.
    pub generator: Generator,
    /// Miners the scenario dropped and rejoined.
    pub reconnected: u64,
    /// Shares submitted and never answered (at the end; a miner told to
    /// stop waits up to 5 s for its answers).
    pub unanswered: u64,
}

fn snapshot(stats: &[Arc<MinerStats>], disconnects: u64, start: Instant) -> Snapshot {
    let mut s = Snapshot {
        elapsed_sec: start.elapsed().as_secs_f64(),
        disconnects,
        ..Default::default()
    };
    for m in stats {
        s.connected += m.ready.load(Ordering::Relaxed);
        s.hashes += m.hashes.load(Ordering::Relaxed);
        s.submitted += m.submitted.load(Ordering::Relaxed);
        s.accepted += m.accepted.load(Ordering::Relaxed);
        s.rejected += m.rejected_total();
    }
    s
}

/// Latency histogram sets a farm's miners share.
const HISTOGRAM_SETS: usize = 16;

/// How often the churn scenario drops and rejoins its next 1 %.
const CHURN_EVERY: Duration = Duration::from_secs(60);

/// Runs a farm; `progress` is called about once a second.
pub async fn run_farm(cfg: FarmConfig, mut progress: impl FnMut(&Snapshot)) -> Report {
    let start = Instant::now();
    let churned = AtomicU64::new(0);
    // Miner tasks still running (a churned miner's old task drains while
    // its replacement runs).
    let live = Arc::new(AtomicU64::new(0));
    let arrivals: miner::JobArrivals = Arc::default();
    let disconnects = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    // A few histogram sets, shared round-robin: one per miner would cost
    // half a megabyte a miner.
    let shards: Vec<Histograms> = (0..HISTOGRAM_SETS.min(cfg.miners.max(1)))
        .map(|_| Histograms::default())
        .collect();
    let stats: Vec<Arc<MinerStats>> = (0..cfg.miners)
        .map(|i| Arc::new(MinerStats::sharing(&shards[i % shards.len()])))
        .collect();
    let mut cancels: Vec<CancellationToken> = Vec::with_capacity(cfg.miners);

    let spawn = |i: usize, cancel: CancellationToken| {
        let mut mc = cfg.miner.clone();
        mc.worker = format!("{}{i}", cfg.miner.worker);
        mc.addr = cfg.addr.clone();
        mc.seed = cfg.miner.seed.wrapping_add(i as u64 * 0x9E37_79B9);
        let s = stats[i].clone();
        let a = arrivals.clone();
        let d = disconnects.clone();
        let live = live.clone();
        live.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            if miner::run_in_farm(mc, s, Some(a), cancel).await.is_err() {
                d.fetch_add(1, Ordering::Relaxed);
            }
            live.fetch_sub(1, Ordering::AcqRel);
        });
    };

    // Ramp.
    let ramp = match cfg.scenario {
        Scenario::ConnectStorm => None,
        _ => cfg.ramp_per_sec.filter(|r| *r > 0.0),
    };
    let mut last_progress = Instant::now();
    for i in 0..cfg.miners {
        let c = stop.child_token();
        cancels.push(c.clone());
        spawn(i, c);
        if let Some(r) = ramp {
            let due = start + Duration::from_secs_f64((i + 1) as f64 / r);
            tokio::time::sleep_until(due.into()).await;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(&snapshot(
                &stats,
                disconnects.load(Ordering::Relaxed),
                start,
            ));
            last_progress = Instant::now();
        }
    }
    // Measure from when (nearly) everyone has a job, or after 30 s.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < wait_until {
        let s = snapshot(&stats, disconnects.load(Ordering::Relaxed), start);
        if s.connected as f64 >= cfg.miners as f64 * 0.99 {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(&s);
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = snapshot(&stats, disconnects.load(Ordering::Relaxed), start);
    let lag_stop = stop.child_token();
    let lag = watch_loop_lag(lag_stop.clone());
    let cpu0 = own_cpu_secs();
    let measure_start = Instant::now();
    let end = measure_start + cfg.duration;
    let mut stormed = false;
    let mut next_churn = measure_start + CHURN_EVERY;
    let mut churn_from = 0usize;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if cfg.scenario == Scenario::Churn && Instant::now() >= next_churn {
            next_churn += CHURN_EVERY;
            // The next 1 % in turn (at least one miner) drop and rejoin.
            let k = (cfg.miners / 100).max(1);
            for j in 0..k {
                let i = (churn_from + j) % cfg.miners;
                cancels[i].cancel();
                let fresh = stop.child_token();
                cancels[i] = fresh.clone();
                spawn(i, fresh);
            }
            churn_from = (churn_from + k) % cfg.miners.max(1);
            churned.fetch_add(k as u64, Ordering::Relaxed);
        }
        if cfg.scenario == Scenario::ReconnectStorm
            && !stormed
            && Instant::now() >= measure_start + cfg.duration / 2
        {
            // Everyone drops and rejoins at once.
            stormed = true;
            churned.fetch_add(cfg.miners as u64, Ordering::Relaxed);
            for (i, c) in cancels.iter_mut().enumerate() {
                c.cancel();
                let fresh = stop.child_token();
                *c = fresh.clone();
                stats[i].ready.store(0, Ordering::Relaxed);
                spawn(i, fresh);
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(&snapshot(
                &stats,
                disconnects.load(Ordering::Relaxed),
                start,
            ));
            last_progress = Instant::now();
        }
    }
    let fin = snapshot(&stats, disconnects.load(Ordering::Relaxed), start);
    let measured = measure_start.elapsed().as_secs_f64();
    let cpu = own_cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    lag_stop.cancel();
    stop.cancel();
    wait_for_drain(&live).await;

    let mut lat =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds");
    let mut first = lat.clone();
    let mut fan = lat.clone();
    let mut rejected_by_code = std::collections::BTreeMap::new();
    let mut rejected_by_error = std::collections::BTreeMap::new();
    let mut bad_sent = [0u64; 3];
    for h in &shards {
        if let Ok(h) = h.latency_us.lock() {
            let _ = lat.add(&*h);
        }
        if let Ok(h) = h.first_job_us.lock() {
            let _ = first.add(&*h);
        }
        if let Ok(h) = h.fanout_us.lock() {
            let _ = fan.add(&*h);
        }
    }
    for m in &stats {
        for code in 20u8..=25 {
            let n = m.rejected(code);
            if n > 0 {
                *rejected_by_code.entry(code).or_insert(0) += n;
            }
        }
        if let Ok(by) = m.rejected_v2.lock() {
            for (e, n) in by.iter() {
                *rejected_by_error.entry(e.clone()).or_insert(0) += n;
            }
        }
        for (i, b) in m.bad_sent.iter().enumerate() {
            bad_sent[i] += b.load(Ordering::Relaxed);
        }
    }
    let hashrate = (fin.hashes - base.hashes) as f64 / measured;
    let share_rate = (fin.submitted - base.submitted) as f64 / measured;
    let submit_latency = Percentiles::of(&lat);
    let loop_lag = lag.lock().map(|h| Percentiles::of(&h)).unwrap_or_default();
    let generator = judge_generator(
        &cfg,
        fin.connected,
        hashrate,
        share_rate,
        cpu,
        measured,
        loop_lag,
    );
    Report {
        scenario: cfg.scenario,
        miners: cfg.miners,
        connected: fin.connected,
        elapsed_sec: start.elapsed().as_secs_f64(),
        measured_sec: measured,
        hashes: fin.hashes,
        hashrate,
        submitted: fin.submitted,
        accepted: fin.accepted,
        accepted_per_sec: (fin.accepted - base.accepted) as f64 / measured,
        rejected_by_code,
        rejected_by_error,
        rejected_per_sec: (fin.rejected - base.rejected) as f64 / measured,
        bad_sent,
        disconnects: fin.disconnects,
        submit_latency,
        first_job: Percentiles::of(&first),
        fanout_lag: Percentiles::of(&fan),
        generator,
        reconnected: churned.load(Ordering::Relaxed),
        unanswered: unanswered(&stats),
    }
}

/// Waits until every miner task has ended (or as long as a miner drains,
/// and a second more).
async fn wait_for_drain(live: &AtomicU64) {
    let until = Instant::now() + miner::DRAIN_FOR + Duration::from_secs(1);
    while Instant::now() < until && live.load(Ordering::Acquire) > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unanswered(stats: &[Arc<MinerStats>]) -> u64 {
    stats
        .iter()
        .map(|m| {
            let answered = m.accepted.load(Ordering::Relaxed) + m.rejected_total();
            m.submitted.load(Ordering::Relaxed).saturating_sub(answered)
        })
        .sum()
}

/// What was asked against what was delivered, and whether the
/// generator's own delay is in its latency figures.
fn judge_generator(
    cfg: &FarmConfig,
    connected: u64,
    hashrate: f64,
    share_rate: f64,
    cpu_secs: Option<f64>,
    measured: f64,
    loop_lag: Percentiles,
) -> Generator {
    let threads = tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_workers())
        .unwrap_or(1)
        .max(1);
    let n = cfg.miners as f64;
    let share_rate_asked = cfg.miner.share_rate.map(|r| r * n);
    let hashrate_asked = cfg
        .miner
        .share_rate
        .is_none()
        .then_some(cfg.miner.hashes_per_sec * n);
    let mut shortfalls = Vec::new();
    if (connected as f64) < n * SHORTFALL {
        shortfalls.push(format!("connections: {connected} of {} asked", cfg.miners));
    }
    if let Some(asked) = hashrate_asked.filter(|a| hashrate < a * SHORTFALL) {
        shortfalls.push(format!(
            "hash rate: {:.3} MH/s of {:.3} MH/s asked ({:.1} %)",
            hashrate / 1e6,
            asked / 1e6,
            hashrate / asked * 100.0
        ));
    }
    // Shares arrive as a Poisson process: a short window's count is
    // short by chance unless it is more than 4 standard deviations below.
    let expected = |asked: f64| asked * measured;
    let short_by_more_than_chance = |asked: f64| {
        let (want, got) = (expected(asked), share_rate * measured);
        want - got > 4.0 * want.sqrt()
    };
    if let Some(asked) =
        share_rate_asked.filter(|a| share_rate < a * SHORTFALL && short_by_more_than_chance(*a))
    {
        shortfalls.push(format!(
            "share rate: {share_rate:.1}/s of {asked:.1}/s asked ({:.1} %)",
            share_rate / asked * 100.0
        ));
    }
    let cpu_busy = cpu_secs.map(|c| c / (measured.max(1e-9) * threads as f64));
    let saturated =
        loop_lag.p99_us > LAG_SATURATED_US || cpu_busy.is_some_and(|b| b > CPU_SATURATED);
    Generator {
        miners_asked: cfg.miners,
        hashrate_asked,
        share_rate_asked,
        share_rate,
        cpu_busy,
        threads,
        loop_lag,
        shortfalls,
        saturated,
    }
}

impl Report {
    /// A human table.
    pub fn render(&self) -> String {
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        let p = |name: &str, x: &Percentiles| {
            format!(
                "{name:<24} p50 {:>10}  p99 {:>10}  p99.9 {:>10}  max {:>10}  (n={})\n",
                ms(x.p50_us),
                ms(x.p99_us),
                ms(x.p999_us),
                ms(x.max_us),
                x.count
            )
        };
        let mut s = format!(
            "scenario {:?}: {} miners, {} got jobs, {:.1} s measured ({:.1} s total)\n\n",
            self.scenario, self.miners, self.connected, self.measured_sec, self.elapsed_sec
        );
        s.push_str(&format!(
            "hashes computed          {} ({:.3} MH/s)\nshares submitted         {}\naccepted                 {} ({:.1}/s)\n",
            self.hashes,
            self.hashrate / 1e6,
            self.submitted,
            self.accepted,
            self.accepted_per_sec
        ));
        let codes: Vec<String> = self
            .rejected_by_code
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .chain(
                self.rejected_by_error
                    .iter()
                    .map(|(e, n)| format!("{e}: {n}")),
            )
            .collect();
        s.push_str(&format!(
            "rejected                 {:.1}/s  by code {{{}}}\nbad sent on purpose      stale {}, duplicate {}, low difficulty {}\ndisconnects              {}\nreconnected (scenario)   {}\nunanswered at the end    {}\n\n",
            self.rejected_per_sec,
            codes.join(", "),
            self.bad_sent[0],
            self.bad_sent[1],
            self.bad_sent[2],
            self.disconnects,
            self.reconnected,
            self.unanswered
        ));
        s.push_str(&p("submit → response", &self.submit_latency));
        s.push_str(&p("connect → first job", &self.first_job));
        s.push_str(&p("job fan-out lag", &self.fanout_lag));
        let g = &self.generator;
        s.push_str(&format!(
            "\ngenerator                {} threads, {} busy, event-loop lag p99 {} (max {})\n",
            g.threads,
            g.cpu_busy
                .map_or("?".into(), |b| format!("{:.0} %", b * 100.0)),
            ms(g.loop_lag.p99_us),
            ms(g.loop_lag.max_us)
        ));
        for f in &g.shortfalls {
            s.push_str(&format!("SHORT OF THE LOAD ASKED: {f}\n"));
        }
        if g.saturated {
            s.push_str(
                "GENERATOR SATURATED: its latency figures include its own delay; they are not the server's\n",
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn farm(miners: usize, hashes_per_sec: f64, share_rate: Option<f64>) -> FarmConfig {
        FarmConfig {
            addr: "127.0.0.1:1".into(),
            miners,
            duration: Duration::from_secs(10),
            ramp_per_sec: None,
            scenario: Scenario::Steady,
            miner: MinerConfig {
                hashes_per_sec,
                share_rate,
                ..MinerConfig::default()
            },
        }
    }

    fn lag(p99_ms: u64) -> Percentiles {
        Percentiles {
            count: 100,
            p50_us: 1_000,
            p99_us: p99_ms * 1_000,
            p999_us: p99_ms * 1_000,
            max_us: p99_ms * 1_000,
        }
    }

    #[test]
    fn a_generator_that_cannot_deliver_says_so_and_flags_its_latency() {
        // The case that misled: 50 miners at 10 MH/s asked, 17.8 MH/s in
        // all delivered, the loop seconds late.
        let g = judge_generator(
            &farm(50, 10e6, None),
            50,
            17.8e6,
            0.0,
            Some(9.5),
            10.0,
            lag(10_000),
        );
        assert_eq!(g.shortfalls.len(), 1, "{g:?}");
        assert!(g.shortfalls[0].starts_with("hash rate: 17.800 MH/s of 500.000 MH/s"));
        assert!(g.saturated);
        // Short of connections and of the share rate asked, but not busy.
        let g = judge_generator(
            &farm(1000, 1e7, Some(0.2)),
            900,
            0.0,
            150.0,
            Some(0.5),
            10.0,
            lag(1),
        );
        assert_eq!(g.shortfalls.len(), 2, "{g:?}");
        assert!(!g.saturated);
        // Busy threads alone make its latency untrustworthy.
        let g = judge_generator(&farm(10, 1e5, None), 10, 1e6, 1.0, Some(9.5), 10.0, lag(1));
        assert!(g.shortfalls.is_empty() && g.saturated, "{g:?}");
        // Everything delivered, the loop on time: nothing to say.
        let g = judge_generator(
            &farm(1000, 1e7, Some(0.2)),
            1000,
            0.0,
            199.0,
            Some(0.1),
            10.0,
            lag(2),
        );
        assert!(g.shortfalls.is_empty() && !g.saturated, "{g:?}");
        // 24 shares where 30 were due in a 3 s window is chance, not a
        // shortfall.
        let g = judge_generator(
            &farm(200, 1e7, Some(0.05)),
            200,
            0.0,
            8.0,
            Some(0.1),
            3.0,
            lag(2),
        );
        assert!(g.shortfalls.is_empty(), "{g:?}");
    }
}
