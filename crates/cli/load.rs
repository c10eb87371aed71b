//! `sluice loadgen` and `sluice demo`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_engine::upstream::PoolUrl;
use sluice_loadgen::{FarmConfig, MinerConfig, MinerStats, Report, Scenario, Snapshot, run_farm};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, PoolConfig, PoolNodeConfig};

/// Parses `30s`, `2m`, `500ms`, `1h`, `30d` or a plain number of seconds.
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
        "d" => v * 86_400.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h, d)")),
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
    /// Where to connect; a `stratum2+tcp://` URL makes V2 miners.
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
    /// V2 miners open standard (header-only) channels.
    pub standard_channel: bool,
    /// Local address to connect from.
    pub bind: Option<std::net::IpAddr>,
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
        addr: a.url.addr(),
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
            bind: a.bind,
            v2: a.url.authority.map(|authority| sluice_loadgen::V2Config {
                authority,
                standard: a.standard_channel,
            }),
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
    // Money as on mainnet (Hashrate Index, 3 Nov 2025: difficulty
    // 155.97 T, reward 3.1445 BTC, BTC $106,935), whatever the toy
    // chain's difficulty: the pool quotes an FPPS payout per share.
    proxy_cfg.pools = vec![PoolConfig {
        pass_through_workers: true,
        max_consecutive_rejects: 1000,
        fee: DEMO_FEE,
        payout_btc_per_share: Some(DEMO_REWARD_BTC / DEMO_DIFFICULTY * (1.0 - DEMO_FEE)),
        ..PoolConfig::new(PoolUrl::v1("127.0.0.1", pool_addr.port()), "demo-farm")
    }];
    // Small simulated miners: a share within a second or two each (every
    // worker shows in the books from its first share), and a vardiff that
    // settles within the first minute.
    proxy_cfg.difficulty.start = 1e-6;
    proxy_cfg.difficulty.vardiff.target_share_interval_secs = 2.0;
    proxy_cfg.difficulty.vardiff.retarget_after_secs = 20.0;
    proxy_cfg.difficulty.vardiff.retarget_shares = 12;
    proxy_cfg.books.price.usd = Some(DEMO_PRICE_USD);
    proxy_cfg.books.power.price_usd_per_kwh = 0.06;
    proxy_cfg.books.power.rules = DEMO_MACHINES
        .iter()
        .map(|(class, j_per_th, th_s)| crate::config::PowerRule {
            class: Some((*class).to_string()),
            pattern: format!("farm.{class}-*"),
            efficiency_j_per_th: Some(*j_per_th),
            watts: None,
            nominal_th_s: Some(*th_s),
        })
        .collect();
    proxy_cfg.api.listen = Some("127.0.0.1:0".parse()?);
    let proxy = crate::run::start(&proxy_cfg, cancel.clone()).await?;
    let proxy_addr = proxy.listener.local_addr()?;
    let proxy_engine = proxy.engine.clone();
    let books = proxy.books.clone();
    tokio::spawn(proxy.engine.clone().serve(proxy.listener));

    if let Some(api) = proxy.api {
        println!("dashboard on http://{api}/ (open it in a browser)");
    }
    println!(
        "sluice demo: pool node on stratum+tcp://{pool_addr}, proxy on stratum+tcp://{proxy_addr}, {miners} simulated miners"
    );
    if let Some(api) = proxy.api {
        println!(
            "API on http://{api} (try: sluice workers --api http://{api} --sort profit_usd_day --asc)"
        );
    }
    // Miners of different sizes, like a real farm; 1% of shares bad.
    let stats: Vec<Arc<MinerStats>> = (0..miners)
        .map(|_| Arc::new(MinerStats::default()))
        .collect();
    let start = Instant::now();
    for (i, s) in stats.iter().enumerate() {
        let cfg = MinerConfig {
            addr: proxy_addr.to_string(),
            worker: format!("farm.{}-{i:03}", DEMO_MACHINES[i % DEMO_MACHINES.len()].0),
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
    let show = || {
        let view = render_workers(
            &stats,
            start.elapsed(),
            &proxy_engine,
            &books,
            blocks
                .as_ref()
                .map_or(0, |b| b.lock().map_or(0, |v| v.len())),
        );
        let mut out = std::io::stdout().lock();
        if tty {
            // Clear the screen and home the cursor.
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        let _ = writeln!(out, "{view}");
        let _ = out.flush();
    };
    loop {
        tokio::select! {
            _ = tick.tick() => show(),
            _ = &mut stop => break,
        }
    }
    // The table as the run ends, so a timed run's last word is its whole
    // duration rather than whichever tick came before it.
    show();
    cancel.cancel();
    Ok(())
}

/// The demo's money: mainnet figures of 3 Nov 2025 (Hashrate Index).
const DEMO_DIFFICULTY: f64 = 155.97e12;
const DEMO_REWARD_BTC: f64 = 3.1445;
const DEMO_PRICE_USD: f64 = 106_935.0;
const DEMO_FEE: f64 = 0.02;
/// Machine classes (worker-name prefix, J/TH, nominal TH/s) the
/// simulated farm mixes: an S21 is 200 TH/s at 3,500 W, an S19 XP 141
/// TH/s at 3,032 W, an S19j Pro 104 TH/s at 3,068 W, an S9 13.5 TH/s at
/// 1,323 W.
const DEMO_MACHINES: [(&str, f64, f64); 4] = [
    ("s21", 17.5, 200.0),
    ("s19xp", 21.5, 141.0),
    ("s19jpro", 29.5, 104.0),
    ("s9", 98.0, 13.5),
];

fn render_workers(
    stats: &[Arc<MinerStats>],
    elapsed: Duration,
    engine: &sluice_engine::server::Engine,
    books: &sluice_books::Books,
    blocks: usize,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let real: f64 = stats
        .iter()
        .map(|s| s.hashes.load(Ordering::Relaxed) as f64 / secs)
        .sum();
    let st = &engine.stats;
    let mut s = format!(
        "sluice demo — {:.0} s | sessions {} | farm really hashing {} | accepted {} | rejected {} | forwarded {} | blocks found {}\n",
        secs,
        st.sessions.load(Ordering::Relaxed),
        crate::money::fmt_hashrate(real),
        st.accepted.load(Ordering::Relaxed),
        sluice_engine::stats::Reject::ALL
            .iter()
            .map(|r| st.rejected(*r))
            .sum::<u64>(),
        st.forwarded.load(Ordering::Relaxed),
        blocks,
    );
    s.push_str(&format!(
        "money as on mainnet 3 Nov 2025 (difficulty 155.97 T, reward {DEMO_REWARD_BTC} BTC, BTC ${DEMO_PRICE_USD}), pool fee {:.0} %, power $0.06/kWh\n\n",
        DEMO_FEE * 100.0
    ));
    // The five best earners of each machine class.
    let now = books.clock().now_ms();
    let mut page: Option<sluice_books::books::WorkerPage> = None;
    let mut total = 0;
    for (class, _, _) in DEMO_MACHINES {
        let q = sluice_books::WorkerQuery {
            window: sluice_books::Window::M5,
            sort: "effective_hashprice".into(),
            desc: true,
            limit: 5,
            prefix: Some(format!("farm.{class}-")),
            ..sluice_books::WorkerQuery::default()
        };
        let Ok(p) = books.workers_page(&q, now) else {
            continue;
        };
        total += p.total;
        match page.as_mut() {
            None => page = Some(p),
            Some(all) => all.workers.extend(p.workers),
        }
    }
    if let Some(mut p) = page {
        let shown = p.workers.len();
        p.total = total;
        let v = serde_json::to_value(&p).unwrap_or_default();
        s.push_str(&crate::money::workers_table(&v));
        if total > shown {
            s.push_str(&format!("… and {} more workers\n", total - shown));
        }
    }
    s.push_str(&nominal_machines(books, now));
    s.push_str("\n(effective hashprice and break-even are per PH/s: what a real machine of each class earns and costs here; Ctrl-C to stop)");
    s
}

/// One machine of each class at its nominal size (the simulated ones
/// hash at kH/s): what it would earn, cost and make a day here.
fn nominal_machines(books: &sluice_books::Books, now_ms: u64) -> String {
    let q = sluice_books::books::AdviceQuery::default();
    let Ok(a) = books.advice(&q, now_ms) else {
        return String::new();
    };
    let mut s = String::from(
        "\nat nominal size (one real machine of each class, NOMINAL figures, at what its class earns here):\n",
    );
    for c in &a.classes {
        let Some(n) = c.nominal else { continue };
        s.push_str(&format!(
            "  {:<8} {:>6.1} TH/s {:>6.0} W   earns ${:>6.2}/day   power ${:>6.2}/day   profit ${:>7.2}/day{}\n",
            c.class,
            n.th_s,
            n.power_w,
            n.revenue_usd_day,
            n.power_cost_usd_day,
            n.profit_usd_day,
            if n.profit_usd_day < 0.0 { "   LOSES MONEY" } else { "" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
