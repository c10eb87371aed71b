//! The share ledger under load: `sluice pool` at the load bench's 20,000
//! shares/s step (1,000 miners × 20/s) with no ledger, with SQLite and
//! with a throwaway PostgreSQL server, in alternating rounds of one run.
//! For each: the miners' submit p99 and its ratio to the no-ledger rounds,
//! and whether every share the pool accepted is in the ledger after a
//! graceful stop (rows = the pool's own accepted count).
//!
//! `cargo bench --bench ledger` (full: 10 s steps, 3 rounds) or with
//! `-- --quick` (100 miners × 20/s, 3 s, 1 round). Report:
//! target/ledger-bench/report.{json,md}.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/pg.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

struct Pool {
    child: std::process::Child,
    port: u16,
    api: String,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pool as the load bench runs it: vardiff off at a fixed tiny
/// difficulty (the load generator sets each miner's share rate), no
/// blocks from elsewhere, a new job every 2 s.
fn start_pool(dir: &std::path::Path, ledger: Option<&str>) -> Pool {
    let ledger = ledger
        .map(|l| format!("ledger = \"{l}\"\n"))
        .unwrap_or_default();
    let toml = format!(
        "mode = \"pool\"\n[listen]\naddress = \"127.0.0.1:0\"\nmax_connections_per_ip = 65536\nmax_workers_per_ip = 65536\n[difficulty]\nstart = 0.00000001\nmin = 0.00000001\n[difficulty.vardiff]\nenabled = false\n[pool_node]\nblock_interval_secs = 0.0\nrefresh_interval_secs = 2.0\n{ledger}[api]\nlisten = \"127.0.0.1:0\"\n[blocks]\nlog = \"{}\"\n",
        dir.join("blocks.jsonl").display()
    );
    let cfg = dir.join("pool.toml");
    std::fs::write(&cfg, toml).unwrap();
    let args = [
        "run".to_string(),
        "--config".into(),
        cfg.display().to_string(),
    ];
    let mut child = Command::new(SLUICE)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sluice pool");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Pool {
        child,
        port: first.trim().rsplit(':').next().unwrap().parse().unwrap(),
        api: second.trim().strip_prefix("api on ").unwrap().to_owned(),
    }
}

fn metric(api: &str, name: &str) -> f64 {
    let body = ureq::get(&format!("{api}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn loadgen(port: u16, miners: usize, rate: f64, secs: f64) -> Value {
    let out = Command::new(SLUICE)
        .args([
            "loadgen",
            "--url",
            &format!("stratum+tcp://127.0.0.1:{port}"),
            "--miners",
            &miners.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--share-rate",
            &rate.to_string(),
            "--hashrate",
            "10000000",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .expect("run loadgen");
    serde_json::from_slice(&out.stdout).expect("loadgen report")
}

/// User + system CPU seconds of a process (from /proc; 100 ticks/s).
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// SIGTERM, then wait for the exit (the ledger is flushed on the way out).
fn stop(mut p: Pool) {
    let pid = p.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    while p.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pool did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if !std::env::args().any(|a| a == "--bench" || a == "--quick") {
        return;
    }
    let (miners, rate, secs, rounds) = if quick {
        (100, 20.0, 3.0, 1)
    } else {
        (1_000, 20.0, 10.0, 3)
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ledger-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = pg::server();
    let mut steps = Vec::new();
    for round in 0..rounds {
        for backend in ["off", "sqlite", "postgres"] {
            let url = match backend {
                "sqlite" => Some(format!(
                    "sqlite:{}",
                    dir.join(format!("l{round}.db")).display()
                )),
                "postgres" => Some(rt.block_on(pg.database(&format!("bench{round}")))),
                _ => None,
            };
            let pool = start_pool(&dir, url.as_deref());
            let cpu0 = cpu_secs(pool.child.id());
            let report = loadgen(pool.port, miners, rate, secs);
            let cpu = cpu_secs(pool.child.id()) - cpu0;
            let accepted = metric(&pool.api, "sluice_shares_accepted_total") as u64;
            stop(pool);
            let rows = url.as_ref().map(|u| {
                rt.block_on(async {
                    let l =
                        sluice_books::ledger::Ledger::open(sluice_books::ledger::LedgerConfig {
                            url: u.clone(),
                            instance: "bench".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    l.share_count().await.unwrap()
                })
            });
            let p99 = report["submit_latency"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0;
            eprintln!(
                "  round {round} {backend:<8} {:>8.0} shares/s, p99 {p99:>6.2} ms, pool CPU {cpu:>5.2} s, pool accepted {accepted}, ledger rows {}",
                report["accepted_per_sec"].as_f64().unwrap_or(0.0),
                rows.map_or("-".into(), |r| r.to_string())
            );
            steps.push(json!({
                "round": round, "backend": backend, "miners": miners, "share_rate": rate,
                "accepted_per_sec": report["accepted_per_sec"], "p99_ms": p99,
                "pool_accepted": accepted, "ledger_rows": rows, "pool_cpu_secs": cpu,
                "lost": rows.map(|r| accepted.saturating_sub(r)),
            }));
        }
    }
    let median_p99 = |b: &str| {
        let mut v: Vec<f64> = steps
            .iter()
            .filter(|s| s["backend"] == b)
            .filter_map(|s| s["p99_ms"].as_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median_p99("off");
    let mut md = format!(
        "# Ledger bench ({})\n\n{miners} miners × {rate} shares/s, {secs} s per step, {rounds} round(s), backends alternating.\n\n| backend | p99 ms (median of rounds) | ratio to no ledger | shares lost |\n|---|---|---|---|\n",
        if quick { "quick" } else { "full" }
    );
    let mut summary = Vec::new();
    for b in ["off", "sqlite", "postgres"] {
        let p = median_p99(b);
        let lost: u64 = steps
            .iter()
            .filter(|s| s["backend"] == b)
            .filter_map(|s| s["lost"].as_u64())
            .sum();
        md.push_str(&format!(
            "| {b} | {p:.2} | {:.2} | {} |\n",
            p / base,
            if b == "off" {
                "-".into()
            } else {
                lost.to_string()
            }
        ));
        summary.push(json!({"backend": b, "p99_ms": p, "ratio": p / base, "lost": lost}));
    }
    md.push_str("\n| round | backend | shares/s | p99 ms | pool CPU s | pool accepted | ledger rows |\n|---|---|---|---|---|---|---|\n");
    for st in &steps {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            st["round"],
            st["backend"].as_str().unwrap_or_default(),
            st["accepted_per_sec"].as_f64().unwrap_or(0.0),
            st["p99_ms"].as_f64().unwrap_or(0.0),
            st["pool_cpu_secs"].as_f64().unwrap_or(0.0),
            st["pool_accepted"],
            st["ledger_rows"]
                .as_u64()
                .map_or("-".into(), |r| r.to_string()),
        ));
    }
    eprintln!("{md}");
    std::fs::write(dir.join("report.md"), &md).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json!({"quick": quick, "steps": steps, "summary": summary}))
            .unwrap(),
    )
    .unwrap();
}
