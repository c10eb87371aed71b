//! Soak: `sluice run` in front of two pools for an hour, 10,000 miners at
//! one share per 5 s, 1 % of them dropping and rejoining every minute
//! (`loadgen --scenario churn`), and the primary pool killed every 10
//! minutes (restarted a minute later, so the proxy fails over and back).
//!
//! What it checks:
//! - RSS flat within 5 % after the first 10 minutes (sampled every 30 s);
//! - no share unanswered (the load generator's count at the end);
//! - nothing leaked: the proxy's tasks (`sluice_runtime_tasks`) and open
//!   files (`process_open_fds`), read from its /metrics before the miners
//!   came and after they left.
//!
//! `cargo bench --bench soak` (60 minutes) or `-- --quick` (90 s, 500
//! miners, the pool killed at 30 s); `-- --minutes N --miners M` for
//! other runs, `-- --proxy PATH` to soak another build of the proxy.
//! Report: target/soak/report.{json,md} under the working directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

#[path = "common/procfs.rs"]
#[allow(dead_code)]
mod procfs;
use procfs::{free_port, rss_kib};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sluice ARGS` (its log appended to target/soak/sluice.log) and
/// returns it with the lines it printed first (up to `lines`).
fn start(args: &[&str], lines: usize) -> (Proc, Vec<String>) {
    start_bin(SLUICE, args, lines)
}

/// [`start`] with another sluice binary (`--proxy PATH` runs the proxy
/// from a build of its own, e.g. with another allocator, while the pools
/// and the load generator stay the same).
fn start_bin(bin: &str, args: &[&str], lines: usize) -> (Proc, Vec<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("target/soak/sluice.log")
        .expect("open the log");
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start sluice");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut got = Vec::new();
    for _ in 0..lines {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        got.push(l.trim().to_string());
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Proc(child), got)
}

/// A pool node on a fixed port (so a restarted one is the same pool).
fn pool(dir: &Path, port: u16) -> Proc {
    let log = dir.join(format!("pool-{port}-blocks.jsonl"));
    start(
        &[
            "pool",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--min-difficulty",
            "0.000000001",
            "--start-difficulty",
            "0.00000001",
            "--block-interval",
            "0",
            "--refresh-interval",
            "30",
            "--block-log",
            log.to_str().unwrap_or_default(),
        ],
        1,
    )
    .0
}

/// One gauge from the proxy's /metrics.
fn metric(api: &str, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(api).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {api}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    tasks: f64,
    fds: f64,
    connections: f64,
}

fn sample(pid: u32, api: &str, t0: Instant) -> Sample {
    Sample {
        secs: t0.elapsed().as_secs_f64(),
        rss_kib: rss_kib(pid),
        tasks: metric(api, "sluice_runtime_tasks").unwrap_or(-1.0),
        fds: metric(api, "process_open_fds").unwrap_or(-1.0),
        connections: metric(api, "sluice_connections").unwrap_or(-1.0),
    }
}

fn arg(flag: &str) -> Option<f64> {
    let a: Vec<String> = std::env::args().collect();
    a.windows(2)
        .find(|w| w[0] == flag)
        .and_then(|w| w[1].parse().ok())
}

/// Waits for `cond`, up to `limit`.
fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    cond()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo test --benches` runs this without --bench: nothing to do.
    if !args.iter().any(|a| a == "--bench" || a == "--quick") {
        return;
    }
    let secs = arg("--minutes").map_or(if quick { 90.0 } else { 3600.0 }, |m| m * 60.0);
    let miners = arg("--miners").map_or(if quick { 500 } else { 10_000 }, |m| m as usize);
    // The pool is killed this often, and restarted a minute (quick: 15 s)
    // later; RSS must be flat after the first 10 minutes (quick: 30 s).
    let (failover_every, down_for, settle) = if quick {
        (30.0, 15.0, 30.0)
    } else {
        (600.0, 60.0, 600.0)
    };
    let dir = PathBuf::from("target/soak");
    std::fs::create_dir_all(&dir).unwrap();

    let (port_a, port_b) = (free_port(), free_port());
    let mut primary = Some(pool(&dir, port_a));
    let _backup = pool(&dir, port_b);
    let api_port = free_port();
    let cfg = dir.join("proxy.toml");
    std::fs::write(
        &cfg,
        format!(
            "mode = \"proxy\"\n[listen]\naddress = \"127.0.0.1:0\"\nmax_connections_per_ip = 65536\nmax_workers_per_ip = 65536\n[difficulty]\nstart = 0.00000001\nmin = 0.00000001\n[difficulty.vardiff]\nenabled = false\n[routing]\nmax_sessions_per_upstream = 65536\nfailback_after_secs = 10.0\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[blocks]\nlog = \"{}\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:{port_a}\"\nuser = \"soak\"\npassword = \"d=0.000001\"\nlevel = 0\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:{port_b}\"\nuser = \"soak\"\npassword = \"d=0.000001\"\nlevel = 1\n",
            dir.join("proxy-blocks.jsonl").display()
        ),
    )
    .unwrap();
    let proxy_bin = args
        .windows(2)
        .find(|w| w[0] == "--proxy")
        .map_or(SLUICE, |w| w[1].as_str());
    let (proxy, lines) = start_bin(proxy_bin, &["run", "--config", cfg.to_str().unwrap()], 2);
    let url = lines
        .iter()
        .find_map(|l| l.strip_prefix("listening on "))
        .expect("the proxy's address")
        .to_string();
    let api = format!("127.0.0.1:{api_port}");
    let pid = proxy.0.id();
    assert!(
        wait(Duration::from_secs(20), || metric(
            &api,
            "sluice_runtime_tasks"
        )
        .is_some()),
        "the proxy's API did not answer"
    );
    let t0 = Instant::now();
    let before = sample(pid, &api, t0);
    eprintln!("soak: {miners} miners for {secs:.0} s; before: {before:?}");

    let mut lg = Command::new(SLUICE)
        .args([
            "loadgen",
            "--url",
            &url,
            "--miners",
            &miners.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--share-rate",
            "0.2",
            "--hashrate",
            "10000000",
            "--ramp",
            "1000",
            "--scenario",
            "churn",
            "--worker-prefix",
            "soak.m",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start loadgen");
    let mut so = lg.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let mut samples = Vec::new();
    let mut next_sample = 0.0;
    let mut next_kill = failover_every;
    let mut restart_at: Option<f64> = None;
    let mut failovers = 0;
    while lg.try_wait().ok().flatten().is_none() {
        let now = t0.elapsed().as_secs_f64();
        if now >= next_sample {
            let s = sample(pid, &api, t0);
            eprintln!(
                "  t={:>5.0}s RSS {:>8} KiB, tasks {:>6}, fds {:>6}, connections {:>6}",
                s.secs, s.rss_kib, s.tasks, s.fds, s.connections
            );
            samples.push(s);
            next_sample += if quick { 5.0 } else { 30.0 };
        }
        if now >= next_kill && now < secs - down_for {
            drop(primary.take());
            failovers += 1;
            restart_at = Some(now + down_for);
            next_kill += failover_every;
        }
        if restart_at.is_some_and(|t| now >= t) {
            primary = Some(pool(&dir, port_a));
            restart_at = None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report: Value =
        serde_json::from_str(&reader.join().unwrap_or_default()).unwrap_or(Value::Null);
    // The miners are gone: their connections and tasks must be too.
    let drained = wait(Duration::from_secs(60), || {
        metric(&api, "sluice_connections") == Some(0.0)
    });
    let after = sample(pid, &api, t0);
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.secs >= settle && s.connections > 0.0)
        .collect();
    let (lo, hi) = steady.iter().fold((u64::MAX, 0u64), |(lo, hi), s| {
        (lo.min(s.rss_kib), hi.max(s.rss_kib))
    });
    let spread = if steady.is_empty() {
        f64::NAN
    } else {
        (hi - lo) as f64 / lo.max(1) as f64
    };
    // The trend, not just the range: a least-squares slope over the steady
    // samples tells a steady drift (a leak or fragmentation) from one step.
    let slope_kib_per_min = {
        let n = steady.len() as f64;
        let (mx, my) = steady.iter().fold((0.0, 0.0), |(x, y), s| {
            (x + s.secs / n, y + s.rss_kib as f64 / n)
        });
        let (sxy, sxx) = steady.iter().fold((0.0, 0.0), |(xy, xx), s| {
            let dx = s.secs - mx;
            (xy + dx * (s.rss_kib as f64 - my), xx + dx * dx)
        });
        if sxx > 0.0 {
            sxy / sxx * 60.0
        } else {
            f64::NAN
        }
    };
    let unanswered = report["unanswered"].as_u64().unwrap_or(u64::MAX);
    let leaked_tasks = after.tasks - before.tasks;
    let leaked_fds = after.fds - before.fds;
    // Upstream connections come and go with failovers: a couple either
    // way is not a leak; a leak per miner or reconnect would be hundreds.
    let flat = spread <= 0.05;
    let no_leak = drained && leaked_tasks <= 4.0 && leaked_fds <= 4.0;
    let md = format!(
        "# Soak ({})\n\n`sluice run` in front of two pools, {miners} miners at one share per 5 s for {:.1} min; every minute 1 % of them drop and rejoin ({} in all); the primary pool killed every {:.1} min and restarted {:.0} s later ({failovers} failovers).\n\n| check | measured | |\n|---|---|---|\n| RSS flat within 5 % after {:.1} min | {lo}–{hi} KiB ({:.2} %) over {} samples, trend {:+.1} KiB/min | {} |\n| no share unanswered | {unanswered} unanswered of {} submitted | {} |\n| no task or open file leaked | tasks {} → {}, open files {} → {} (connections {} after) | {} |\n\nLoad generator: accepted {:.0}/s, p99 {:.2} ms, disconnects {}, saturated {}.\n\nProxy binary: `{proxy_bin}`.\n",
        if quick { "quick" } else { "full" },
        secs / 60.0,
        report["reconnected"],
        failover_every / 60.0,
        down_for,
        settle / 60.0,
        spread * 100.0,
        steady.len(),
        slope_kib_per_min,
        if flat { "met" } else { "missed" },
        report["submitted"],
        if unanswered == 0 { "met" } else { "missed" },
        before.tasks,
        after.tasks,
        before.fds,
        after.fds,
        after.connections,
        if no_leak { "met" } else { "missed" },
        report["accepted_per_sec"].as_f64().unwrap_or(0.0),
        report["submit_latency"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0,
        report["disconnects"],
        report["generator"]["saturated"],
    );
    std::fs::write(dir.join("report.md"), &md).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json!({
            "quick": quick,
            "miners": miners,
            "secs": secs,
            "failovers": failovers,
            "rss_spread": spread,
            "rss_trend_kib_per_min": slope_kib_per_min,
            "proxy": proxy_bin,
            "rss_lo_kib": lo,
            "rss_hi_kib": hi,
            "unanswered": unanswered,
            "tasks_before": before.tasks,
            "tasks_after": after.tasks,
            "fds_before": before.fds,
            "fds_after": after.fds,
            "drained": drained,
            "flat": flat,
            "no_leak": no_leak,
            "samples": samples.iter().map(|s| json!([s.secs, s.rss_kib, s.tasks, s.fds, s.connections])).collect::<Vec<_>>(),
            "loadgen": report,
        }))
        .unwrap(),
    )
    .unwrap();
    println!("{md}");
    drop(primary);
}
