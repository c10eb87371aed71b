//! The real binaries: `sluice pool` and `sluice proxy` as separate
//! processes on 127.0.0.1, a simulated miner through them, clean shutdown
//! on SIGTERM; and `sluice check-config` on the shipped example.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_loadgen::{MinerConfig, MinerStats};
use tokio_util::sync::CancellationToken;

mod common;
use common::{sigterm, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_binary_forwards_to_pool_binary_and_both_shut_down_cleanly() {
    let mut pool = spawn(&[
        "pool",
        "--listen",
        "127.0.0.1:0",
        "--min-difficulty",
        "0.0000001",
        "--start-difficulty",
        "0.000001",
        "--block-interval",
        "0",
    ]);
    let url = format!("stratum+tcp://127.0.0.1:{}", pool.port);
    let mut proxy = spawn(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--pool",
        &url,
        "--user",
        "farmacct",
        "--password",
        "d=0.0000001",
        "--min-difficulty",
        "0.0000001",
        "--start-difficulty",
        "0.000001",
    ]);
    let stats = Arc::new(MinerStats::default());
    let cancel = CancellationToken::new();
    let cfg = MinerConfig {
        addr: format!("127.0.0.1:{}", proxy.port),
        worker: "site1.rig7".into(),
        password: "x".into(),
        version_rolling: true,
        hashes_per_sec: 20_000.0,
        user_agent: "cgminer/4.11.1".into(),
        ..MinerConfig::default()
    };
    tokio::spawn(sluice_loadgen::run(cfg, stats.clone(), cancel.clone()));
    let start = Instant::now();
    while stats.accepted.load(Ordering::Relaxed) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no accepted shares: {}",
            proxy.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pool booked the shares under the proxy's user.
    let start = Instant::now();
    while !pool.stderr.lock().unwrap().contains("worker=farmacct") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pool log: {}",
            pool.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    assert!(sigterm(&mut proxy).success());
    assert!(sigterm(&mut pool).success());
    assert!(proxy.stderr.lock().unwrap().contains("shutting down"));
}

#[test]
fn check_config_accepts_the_example_and_rejects_mistakes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/sluice.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check-config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool-a.example"), "{text}");
    assert!(text.trim_end().ends_with("ok"));

    let dir = std::env::temp_dir().join(format!("sluice-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body, expect) in [
        ("unknown.toml", "mode = \"pool\"\nbogus = 1\n", "bogus"),
        ("nopools.toml", "mode = \"proxy\"\n", "at least one"),
        (
            "badurl.toml",
            "mode = \"proxy\"\n[[pools]]\nurl = \"http://x:1\"\nuser = \"u\"\n",
            "stratum+tcp",
        ),
        (
            "baddiff.toml",
            "mode = \"pool\"\n[difficulty]\nmin = 10.0\nmax = 1.0\n",
            "above",
        ),
        (
            "en2.toml",
            "mode = \"pool\"\n[extranonce]\ndownstream_extranonce2_size = 9\n",
            "at most 8",
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["check-config", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_runs_pool_proxy_and_farm_in_one_process() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--miners", "12", "--duration", "6s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sessions 12"), "{text}");
    assert!(text.contains("farm.rig000"), "{text}");
    // Shares flowed: the last frame shows accepted shares.
    let last = text.rsplit("sluice demo —").next().unwrap();
    let accepted: u64 = last
        .split("accepted ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(accepted > 0, "{last}");
}

#[test]
fn loadgen_reports_json_with_every_bad_share_answered_by_its_code() {
    let mut pool = spawn(&[
        "pool",
        "--listen",
        "127.0.0.1:0",
        "--min-difficulty",
        "0.000000001",
        "--start-difficulty",
        "0.00000001",
        "--block-interval",
        "0",
    ]);
    let url = format!("stratum+tcp://127.0.0.1:{}", pool.port);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "loadgen",
            "--url",
            &url,
            "--miners",
            "20",
            "--duration",
            "3s",
            "--share-rate",
            "20",
            "--bad-fraction",
            "0.3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connected"], 20);
    assert!(v["accepted"].as_u64().unwrap() > 100, "{v}");
    assert!(v["hashes"].as_u64().unwrap() > 0);
    assert!(v["submit_latency"]["count"].as_u64().unwrap() > 100);
    assert!(v["submit_latency"]["p99_us"].as_u64().unwrap() > 0);
    assert!(v["first_job"]["count"].as_u64().unwrap() >= 20);
    // Each kind of bad share came back with its code. Shares still in
    // flight when the run ends are not answered, so allow a few.
    let sent = v["bad_sent"].as_array().unwrap();
    let codes = &v["rejected_by_code"];
    for (kind, code) in [(0, "21"), (1, "22"), (2, "23")] {
        let s = sent[kind].as_u64().unwrap();
        let r = codes[code].as_u64().unwrap_or(0);
        assert!(s > 5, "bad kind {kind} sent {s}");
        assert!(
            r <= s && r + 5 >= s,
            "code {code}: {r} answered of {s} sent: {v}"
        );
    }
    assert!(sigterm(&mut pool).success());
}
