//! `sluice loadgen` and `sluice demo`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_engine::upstream::PoolUrl;
use sluice_loadgen::{FarmConfig, MinerConfig, MinerStats, Report, Scenario, Snapshot, run_farm};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, PoolConfig, PoolNodeConfig};

/// Parses `30s`, `2m`, `500ms`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Raises the open-files limit as far as allowed (each miner is a socket).
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Settings for `sluice loadgen`.
#[derive(Clone, Debug)]
pub struct LoadgenArgs {
    /// Where to connect.
    pub url: PoolUrl,
    /// Simulated miners.
    pub miners: usize,
    /// Mining time after the ramp.
    pub duration: Duration,
    /// Shares per second per miner (hash rate follows the difficulty).
    pub share_rate: Option<f64>,
    /// Hashes per second per miner (the ceiling with `share_rate`).
    pub hashrate: f64,
    /// Connections per second.
    pub ramp: Option<f64>,
    /// Fraction of shares sent bad on purpose.
    pub bad_fraction: f64,
    /// The scenario.
    pub scenario: Scenario,
    /// Worker names are this plus a number.
    pub worker_prefix: String,
    /// Password for every miner.
    pub password: String,
}

fn progress_printer() -> impl FnMut(&Snapshot) {
    let tty = std::io::stderr().is_terminal();
    let mut last_accepted = 0u64;
    let mut last_t = 0.0f64;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    move |s: &Snapshot| {
        let dt = (s.elapsed_sec - last_t).max(1e-9);
        let rate = (s.accepted.saturating_sub(last_accepted)) as f64 / dt;
        last_accepted = s.accepted;
        last_t = s.elapsed_sec;
        let line = format!(
            "t={:>5.1}s miners {:>6} with jobs | accepted {:>9} ({:>8.1}/s) rejected {:>7} | {:>8.3} MH/s | disconnects {}",
            s.elapsed_sec,
            s.connected,
            s.accepted,
            rate,
            s.rejected,
            s.hashes as f64 / s.elapsed_sec.max(1e-9) / 1e6,
            s.disconnects
        );
        if tty {
            eprint!("\r{line}");
        } else if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!("{line}");
            last_print = Instant::now();
        }
    }
}

/// Runs `sluice loadgen`.
pub async fn loadgen(a: LoadgenArgs) -> Report {
    raise_fd_limit();
    let cfg = FarmConfig {
        addr: format!("{}:{}", a.url.host, a.url.port),
        miners: a.miners,
        duration: a.duration,
        ramp_per_sec: a.ramp,
        scenario: a.scenario,
        miner: MinerConfig {
            worker: a.worker_prefix.clone(),
            password: a.password.clone(),
            hashes_per_sec: a.hashrate,
            share_rate: a.share_rate,
            bad_fraction: a.bad_fraction,
            ..MinerConfig::default()
        },
    };
    let report = run_farm(cfg, progress_printer()).await;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    report
}

/// Runs `sluice demo`: a pool node, a proxy in front of it, and a farm of
/// simulated miners in one process, with a live table of workers.
pub async fn demo(miners: usize, duration: Option<Duration>) -> anyhow::Result<()> {
    raise_fd_limit();
    let cancel = CancellationToken::new();
    // The pool node: a synthetic chain where the farm finds a block now and
    // then, and the network finds one every two minutes.
    let mut pool_cfg = Config::new(Mode::Pool, "127.0.0.1:0".parse()?);
    pool_cfg.pool_node = PoolNodeConfig {
        // ~2 MH/s of simulated farm finds a block every ~40 s.
        network_difficulty: 0.02,
        block_interval_secs: 120.0,
        refresh_interval_secs: 30.0,
        ..Default::default()
    };
    pool_cfg.difficulty.min = 1e-7;
    pool_cfg.difficulty.start = 1e-5;
    let pool = crate::run::start(&pool_cfg, cancel.clone()).await?;
    let pool_addr = pool.listener.local_addr()?;
    let blocks = pool.blocks.clone();
    tokio::spawn(pool.engine.clone().serve(pool.listener));

    let mut proxy_cfg = pool_cfg.clone();
    proxy_cfg.mode = Mode::Proxy;
    proxy_cfg.pools = vec![PoolConfig {
        pass_through_workers: true,
        max_consecutive_rejects: 1000,
        ..PoolConfig::new(
            PoolUrl {
                host: "127.0.0.1".into(),
                port: pool_addr.port(),
            },
            "demo-farm",
        )
    }];
    // Small simulated miners: a share every couple of seconds each, and a
    // vardiff that settles within the first minute.
    proxy_cfg.difficulty.start = 5e-6;
    proxy_cfg.difficulty.vardiff.target_share_interval_secs = 2.0;
    proxy_cfg.difficulty.vardiff.retarget_after_secs = 20.0;
    proxy_cfg.difficulty.vardiff.retarget_shares = 12;
    let proxy = crate::run::start(&proxy_cfg, cancel.clone()).await?;
    let proxy_addr = proxy.listener.local_addr()?;
    let proxy_engine = proxy.engine.clone();
    tokio::spawn(proxy.engine.clone().serve(proxy.listener));

    println!(
        "sluice demo: pool node on stratum+tcp://{pool_addr}, proxy on stratum+tcp://{proxy_addr}, {miners} simulated miners"
    );
    // Miners of different sizes, like a real farm; 1% of shares bad.
    let stats: Vec<Arc<MinerStats>> = (0..miners)
        .map(|_| Arc::new(MinerStats::default()))
        .collect();
    let start = Instant::now();
    for (i, s) in stats.iter().enumerate() {
        let cfg = MinerConfig {
            addr: proxy_addr.to_string(),
            worker: format!("farm.rig{i:03}"),
            hashes_per_sec: [4_000.0, 8_000.0, 12_000.0, 20_000.0][i % 4],
            bad_fraction: 0.01,
            seed: i as u64 + 1,
            user_agent: "sluice-demo-miner/1".into(),
            ..MinerConfig::default()
        };
        tokio::spawn(sluice_loadgen::run(cfg, s.clone(), cancel.clone()));
    }
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 5 }));
    let stop = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let view = render_workers(&stats, start.elapsed(), &proxy_engine, blocks.as_ref().map_or(0, |b| b.lock().map_or(0, |v| v.len())));
                let mut out = std::io::stdout().lock();
                if tty {
                    // Clear the screen and home the cursor.
                    let _ = write!(out, "\x1b[2J\x1b[H");
                }
                let _ = writeln!(out, "{view}");
                let _ = out.flush();
            }
            _ = &mut stop => break,
        }
    }
    cancel.cancel();
    Ok(())
}

fn render_workers(
    stats: &[Arc<MinerStats>],
    elapsed: Duration,
    engine: &sluice_engine::server::Engine,
    blocks: usize,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let fmt_rate = |h: f64| {
        if h >= 1e6 {
            format!("{:.2} MH/s", h / 1e6)
        } else {
            format!("{:.1} kH/s", h / 1e3)
        }
    };
    let mut rows: Vec<(usize, f64, f64, u64, u64, f64)> = stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let real = s.hashes.load(Ordering::Relaxed) as f64 / secs;
            // Estimated from accepted work alone, as a pool sees it.
            let est = s.accepted_work() * 4_294_967_296.0 / secs;
            let d = s.difficulty_x2_32.load(Ordering::Relaxed) as f64 / 4_294_967_296.0;
            (
                i,
                real,
                est,
                s.accepted.load(Ordering::Relaxed),
                s.rejected_total(),
                d,
            )
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let st = &engine.stats;
    let total_real: f64 = rows.iter().map(|r| r.1).sum();
    let total_est: f64 = rows.iter().map(|r| r.2).sum();
    let mut s = format!(
        "sluice demo — {:.0} s | sessions {} | farm {} (estimated from shares {}) | accepted {} | rejected {} | forwarded {} | blocks found {}\n\n",
        secs,
        st.sessions.load(Ordering::Relaxed),
        fmt_rate(total_real),
        fmt_rate(total_est),
        st.accepted.load(Ordering::Relaxed),
        sluice_engine::stats::Reject::ALL
            .iter()
            .map(|r| st.rejected(*r))
            .sum::<u64>(),
        st.forwarded.load(Ordering::Relaxed),
        blocks,
    );
    s.push_str(&format!(
        "{:<14} {:>12} {:>18} {:>9} {:>9} {:>12}\n",
        "worker", "hashrate", "est. from shares", "accepted", "rejected", "difficulty"
    ));
    for (i, real, est, acc, rej, d) in rows.iter().take(20) {
        s.push_str(&format!(
            "{:<14} {:>12} {:>18} {:>9} {:>9} {:>12.3e}\n",
            format!("farm.rig{i:03}"),
            fmt_rate(*real),
            fmt_rate(*est),
            acc,
            rej,
            d
        ));
    }
    if rows.len() > 20 {
        s.push_str(&format!("… and {} more workers\n", rows.len() - 20));
    }
    s.push_str("\n(hashprice and profit per worker arrive with the books; Ctrl-C to stop)");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
