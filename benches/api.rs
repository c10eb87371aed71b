//! API bench: a sorted page of 10,000 workers, over HTTP on 127.0.0.1,
//! against two baselines in the same run — `/healthz` on the same server
//! (the HTTP floor) and the same page built in-process (the compute
//! alone). Target: p99 under 50 ms for a sorted page of 10,000 workers,
//! and under 100 ms for each request of the dashboard's first screen.
//!
//! Every worker has a full day of books (a share every 5 s for the last
//! 10 minutes, one per 5 min bucket before that), power from a rule, and
//! a fixed BTC price, so every sortable figure is computed for real.
//!
//! `cargo bench --bench api` (full) or `cargo bench --bench api -- --quick`.
//! Writes `target/api-bench/report.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_books::books::WorkerQuery;
use sluice_books::{
    Books, BooksConfig, Clock, JobValue, PoolBooksConfig, Power, PriceConfig, Reward, Scheme,
    ShareKind, Window,
};
use sluice_engine::router::{Router, RouterConfig};
use sluice_engine::stats::Stats;

const WORKERS: usize = 10_000;

fn books() -> Arc<Books> {
    let cfg = BooksConfig {
        pools: vec![PoolBooksConfig {
            name: "pool".into(),
            fee: 0.02,
            scheme: Scheme::Fpps,
            reward: Reward::Coinbase,
        }],
        power_price_usd_per_kwh: 0.06,
        power_rules: vec![sluice_books::money::PowerRule {
            class: "s19".into(),
            pattern: "*.s19-*".into(),
            power: Power::Watts(3_250.0),
            nominal_th_s: None,
        }],
        default_power: Some(Power::EfficiencyJPerTh(17.5)),
        price: PriceConfig::Fixed(91_000.0),
        reasons: vec!["job_not_found", "stale", "duplicate", "low_difficulty"],
        ..BooksConfig::default()
    };
    let clock = Clock::new();
    let now = clock.now_ms();
    // Books "started" a day ago, so windows are full.
    let b = Arc::new(Books::new(cfg, Clock::at(Instant::now(), now)));
    let v = JobValue {
        difficulty: 150e12,
        reward_sat: Some(315_000_000),
    };
    let day = 86_400_000u64;
    for i in 0..WORKERS {
        let kind = if i % 3 == 0 { "s19" } else { "s21" };
        let w = b.worker(&format!("rack{:03}.{kind}-{i:05}", i / 40));
        let d = 65_536.0 * (1 + i % 7) as f64;
        let mut t = now - day + (i as u64 * 7_919) % 300_000;
        while t < now - 600_000 {
            b.record(
                &w,
                Some(0),
                i as u64,
                t,
                d,
                &v,
                ShareKind::Accepted { block: false },
            );
            t += 300_000;
        }
        while t < now {
            let kind = if t.is_multiple_of(97) {
                ShareKind::Stale(1)
            } else {
                ShareKind::Accepted { block: false }
            };
            b.record(&w, Some(0), i as u64, t, d, &v, kind);
            t += 5_000;
        }
    }
    b
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Series {
    name: &'static str,
    ms: Vec<f64>,
}

impl Series {
    fn summary(&mut self) -> serde_json::Value {
        self.ms.sort_by(f64::total_cmp);
        let mean = self.ms.iter().sum::<f64>() / self.ms.len() as f64;
        serde_json::json!({
            "name": self.name,
            "requests": self.ms.len(),
            "mean_ms": mean,
            "p50_ms": percentile(&self.ms, 0.5),
            "p99_ms": percentile(&self.ms, 0.99),
            "max_ms": percentile(&self.ms, 1.0),
        })
    }
}

fn time_get(agent: &ureq::Agent, url: &str, n: usize, name: &'static str) -> Series {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut r = agent.get(url).call().expect("request");
        let body = r.body_mut().read_to_string().expect("body");
        assert!(!body.is_empty());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Series { name, ms }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo test --benches` runs this without --bench: a 3-request smoke
    // run (debug build), no figures worth reading.
    let smoke = !std::env::args().any(|a| a == "--bench" || a == "--quick");
    let n = if smoke {
        3
    } else if quick {
        30
    } else {
        300
    };
    let t = Instant::now();
    let books = books();
    eprintln!(
        "built books for {WORKERS} workers in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let router = Router::new(RouterConfig::default(), Vec::new());
    let state = sluice_api::ApiState::new(
        books.clone(),
        Arc::new(Stats::default()),
        router,
        Arc::new(sluice_engine::blocks::BlockLog::in_memory(Arc::new(
            Stats::default(),
        ))),
        "proxy",
        None,
        None,
    );
    let state = Arc::new(state);
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = rt
        .block_on(sluice_api::spawn(
            "127.0.0.1:0".parse().expect("addr"),
            state,
            cancel.clone(),
        ))
        .expect("bind");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let base = format!("http://{addr}");
    // Warm up connections and caches.
    let _ = time_get(
        &agent,
        &format!("{base}/api/v1/workers?limit=10"),
        3,
        "warmup",
    );

    let mut series = vec![
        time_get(
            &agent,
            &format!("{base}/healthz"),
            n,
            "baseline: /healthz (HTTP floor)",
        ),
        time_get(
            &agent,
            &format!(
                "{base}/api/v1/workers?sort=effective_hashprice&order=desc&limit=100&window=1h"
            ),
            n,
            "sorted page: effective_hashprice, 100 of 10,000 (1 h)",
        ),
        time_get(
            &agent,
            &format!(
                "{base}/api/v1/workers?sort=profit_usd_day&order=asc&limit=100&window=24h&below_break_even=true"
            ),
            n,
            "sorted page: profit, below break-even only (24 h)",
        ),
        time_get(
            &agent,
            &format!("{base}/api/v1/workers?sort=name&limit=1000&window=5m"),
            n,
            "name order, 1,000 rows (5 m)",
        ),
        // The dashboard's first screen: its page, then the four data
        // requests it makes (the farm summary and the advice walk every
        // worker).
        time_get(&agent, &format!("{base}/"), n, "dashboard: the page (/)"),
        time_get(
            &agent,
            &format!("{base}/api/v1/farm"),
            n,
            "dashboard: farm summary (/api/v1/farm)",
        ),
        time_get(
            &agent,
            &format!(
                "{base}/api/v1/workers?window=1h&sort=profit_usd_day&order=asc&offset=0&limit=50"
            ),
            n,
            "dashboard: worker table, 50 by profit (1 h)",
        ),
        time_get(
            &agent,
            &format!("{base}/api/v1/blocks"),
            n,
            "dashboard: blocks (/api/v1/blocks)",
        ),
        time_get(
            &agent,
            &format!("{base}/api/v1/advice?limit=0&hashprice=34.49"),
            n,
            "dashboard: nominal machines (/api/v1/advice)",
        ),
    ];
    // The page's compute alone, in-process.
    let now = books.clock().now_ms();
    let q = WorkerQuery {
        window: Window::H1,
        sort: "effective_hashprice".into(),
        desc: true,
        limit: 100,
        ..WorkerQuery::default()
    };
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let p = books.workers_page(&q, now).expect("page");
        assert_eq!(p.total, WORKERS);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    series.push(Series {
        name: "baseline: same page in-process (no HTTP, no JSON)",
        ms,
    });
    let summaries: Vec<serde_json::Value> = series.iter_mut().map(Series::summary).collect();
    if smoke {
        println!(
            "API bench smoke run: {} series answered (figures only with --bench)",
            summaries.len()
        );
        cancel.cancel();
        return;
    }
    let floor = summaries[0]["p50_ms"].as_f64().unwrap_or(1.0);
    let compute = summaries[4]["p50_ms"].as_f64().unwrap_or(1.0);
    println!("API bench: {WORKERS} workers, {n} requests per series (127.0.0.1, 2 tokio workers)");
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "series", "p50 ms", "p99 ms", "max ms", "÷ /healthz", "÷ in-process"
    );
    for s in &summaries {
        let p50 = s["p50_ms"].as_f64().unwrap_or(0.0);
        println!(
            "{:<58} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>12.2}",
            s["name"].as_str().unwrap_or(""),
            p50,
            s["p99_ms"].as_f64().unwrap_or(0.0),
            s["max_ms"].as_f64().unwrap_or(0.0),
            p50 / floor,
            p50 / compute,
        );
    }
    let p99 = summaries[1]["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
    let met = p99 < 50.0;
    println!(
        "target: sorted page of 10,000 workers p99 < 50 ms: {} ({p99:.2} ms)",
        if met { "met" } else { "MISSED" }
    );
    let report = serde_json::json!({
        "workers": WORKERS,
        "requests_per_series": n,
        "quick": quick,
        "series": summaries,
        "target_p99_ms": 50.0,
        "target_met": met,
    });
    let _ = std::fs::create_dir_all("target/api-bench");
    let _ = std::fs::write(
        "target/api-bench/report.json",
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
    cancel.cancel();
}
