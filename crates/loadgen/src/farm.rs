//! A farm of simulated miners: ramp-up, scenarios, live snapshots and the
//! final report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::miner::{self, MinerConfig, MinerStats};

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
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steady" => Ok(Scenario::Steady),
            "connect-storm" => Ok(Scenario::ConnectStorm),
            "reconnect-storm" => Ok(Scenario::ReconnectStorm),
            other => Err(format!(
                "unknown scenario {other:?} (steady, connect-storm, reconnect-storm)"
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

/// Runs a farm; `progress` is called about once a second.
pub async fn run_farm(cfg: FarmConfig, mut progress: impl FnMut(&Snapshot)) -> Report {
    let start = Instant::now();
    let arrivals: miner::JobArrivals = Arc::default();
    let disconnects = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let stats: Vec<Arc<MinerStats>> = (0..cfg.miners)
        .map(|_| Arc::new(MinerStats::default()))
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
        tokio::spawn(async move {
            if miner::run_in_farm(mc, s, Some(a), cancel).await.is_err() {
                d.fetch_add(1, Ordering::Relaxed);
            }
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
    let measure_start = Instant::now();
    let end = measure_start + cfg.duration;
    let mut stormed = false;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if cfg.scenario == Scenario::ReconnectStorm
            && !stormed
            && Instant::now() >= measure_start + cfg.duration / 2
        {
            // Everyone drops and rejoins at once.
            stormed = true;
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
    stop.cancel();

    let mut lat =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds");
    let mut first = lat.clone();
    let mut fan = lat.clone();
    let mut rejected_by_code = std::collections::BTreeMap::new();
    let mut rejected_by_error = std::collections::BTreeMap::new();
    let mut bad_sent = [0u64; 3];
    for m in &stats {
        if let Ok(h) = m.latency_us.lock() {
            let _ = lat.add(&*h);
        }
        if let Ok(h) = m.first_job_us.lock() {
            let _ = first.add(&*h);
        }
        if let Ok(h) = m.fanout_us.lock() {
            let _ = fan.add(&*h);
        }
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
    Report {
        scenario: cfg.scenario,
        miners: cfg.miners,
        connected: fin.connected,
        elapsed_sec: start.elapsed().as_secs_f64(),
        measured_sec: measured,
        hashes: fin.hashes,
        hashrate: (fin.hashes - base.hashes) as f64 / measured,
        submitted: fin.submitted,
        accepted: fin.accepted,
        accepted_per_sec: (fin.accepted - base.accepted) as f64 / measured,
        rejected_by_code,
        rejected_by_error,
        rejected_per_sec: (fin.rejected - base.rejected) as f64 / measured,
        bad_sent,
        disconnects: fin.disconnects,
        submit_latency: Percentiles::of(&lat),
        first_job: Percentiles::of(&first),
        fanout_lag: Percentiles::of(&fan),
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
            "rejected                 {:.1}/s  by code {{{}}}\nbad sent on purpose      stale {}, duplicate {}, low difficulty {}\ndisconnects              {}\n\n",
            self.rejected_per_sec,
            codes.join(", "),
            self.bad_sent[0],
            self.bad_sent[1],
            self.bad_sent[2],
            self.disconnects
        ));
        s.push_str(&p("submit → response", &self.submit_latency));
        s.push_str(&p("connect → first job", &self.first_job));
        s.push_str(&p("job fan-out lag", &self.fanout_lag));
        s
    }
}
