//! The real binaries: `sluice pool` and `sluice proxy` as separate
//! processes on 127.0.0.1, a simulated miner through them, clean shutdown
//! on SIGTERM; and `sluice check-config` on the shipped example.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

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
    let out = common::output(["check-config", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool-a.example"), "{text}");
    assert!(text.contains("fee 2.5 %"), "{text}");
    assert!(text.contains("api: http://127.0.0.1:8080"), "{text}");
    assert!(text.contains("power: $0.06/kWh"), "{text}");
    // The rules a proxy lives by are shown, not guessed.
    assert!(
        text.contains("version rolling: replace (BIP 310)"),
        "{text}"
    );
    assert!(text.contains("reconnect: same host"), "{text}");
    assert!(text.contains("8192 per address"), "{text}");
    assert!(
        text.contains("blocks: logged to sluice-blocks.jsonl"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("ok"));

    let dir = std::env::temp_dir().join(format!("sluice-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    common::check_config_refuses(
        &dir,
        &[
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
            (
                "power.toml",
                "mode = \"pool\"\n[[books.power.rules]]\npattern = \"s9-*\"\nwatts = 1300.0\nefficiency_j_per_th = 98.0\n",
                "not both",
            ),
            (
                "fee.toml",
                "mode = \"proxy\"\n[[pools]]\nurl = \"stratum+tcp://x:1\"\nuser = \"u\"\nfee = 2.5\n",
                "fraction",
            ),
            (
                "twice.toml",
                "mode = \"proxy\"\n[[pools]]\nurl = \"stratum+tcp://x:1\"\nuser = \"u\"\n[[pools]]\nurl = \"stratum+tcp://x:1\"\nuser = \"v\"\n",
                "listed twice",
            ),
            (
                "feed.toml",
                "mode = \"pool\"\n[books.price]\nfeed_url = \"ftp://prices\"\n",
                "http://",
            ),
            (
                "grace.toml",
                "mode = \"pool\"\n[listen]\nno_upstream_grace_secs = -1.0\n",
                "no_upstream_grace_secs",
            ),
            (
                "names.toml",
                "mode = \"pool\"\n[listen]\nmax_workers_per_ip = 0\n",
                "max_workers_per_ip",
            ),
            (
                "queue.toml",
                "mode = \"pool\"\n[routing]\nshare_queue = 0\n",
                "share_queue",
            ),
            (
                "rolling.toml",
                "mode = \"proxy\"\n[[pools]]\nurl = \"stratum+tcp://x:1\"\nuser = \"u\"\nrolling = \"xor\"\n",
                "rolling",
            ),
            (
                "feedkey.toml",
                "mode = \"pool\"\n[books.price]\nfeed = \"http://x\"\n",
                "unknown field",
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_runs_pool_proxy_and_farm_in_one_process() {
    let out = common::output(["demo", "--miners", "12", "--duration", "8s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sessions 12"), "{text}");
    // Every machine class shows in the table printed as the run ends.
    // (Not one named worker: the smallest do a share a second, so one of
    // them can still have none after a slow start on a busy machine.)
    // The money columns: mainnet hashprice of the demo's inputs, an S21's
    // break-even, and the S9s flagged.
    assert!(text.contains("network hashprice 43.37 $/PH/day"), "{text}");
    let last_frame = text.rsplit("sluice demo —").next().unwrap();
    let secs: f64 = last_frame
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(
        secs >= 8.0,
        "the last table is not the run's end: {last_frame}"
    );
    let s21 = last_frame
        .lines()
        .find(|l| l.starts_with("farm.s21-"))
        .unwrap_or_else(|| panic!("no S21 row: {last_frame}"));
    assert!(s21.contains("25.20") && s21.ends_with("ok"), "{s21}");
    let s9 = last_frame
        .lines()
        .find(|l| l.starts_with("farm.s9-"))
        .unwrap_or_else(|| panic!("no S9 row: {last_frame}"));
    assert!(
        s9.contains("141.12") && s9.ends_with("BELOW BREAK-EVEN"),
        "{s9}"
    );
    // One machine of each class at its nominal size, labelled so: an S21
    // (200 TH/s, 3,500 W) makes money, an S9 (13.5 TH/s, 1,323 W) loses.
    assert!(last_frame.contains("NOMINAL figures"), "{last_frame}");
    let nominal = |class: &str| {
        last_frame
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{class} ")) && l.contains("TH/s"))
            .unwrap_or_else(|| panic!("no nominal {class}: {last_frame}"))
            .to_string()
    };
    let s21 = nominal("s21");
    assert!(
        s21.contains("200.0 TH/s") && s21.contains("3500 W") && !s21.contains("LOSES"),
        "{s21}"
    );
    let s9 = nominal("s9");
    assert!(
        s9.contains("13.5 TH/s") && s9.contains("1323 W") && s9.ends_with("LOSES MONEY"),
        "{s9}"
    );
    assert!(text.starts_with("dashboard on http://127.0.0.1:"), "{text}");
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
    let out = common::output([
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
    ]);
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

#[test]
fn hashprice_calculator_reproduces_a_published_hashprice() {
    // Hashrate Index Roundup, 3 Nov 2025: $43.33/PH/s/day with BTC at
    // ~$106,935, difficulty 155.97 T and fees 0.62 % of block rewards
    // (reward 3.125 / (1 − 0.0062) = 3.1445 BTC).
    let out = common::output([
        "hashprice",
        "--difficulty",
        "155.97T",
        "--reward",
        "3.1445",
        "--price",
        "106935",
        "--efficiency",
        "17.5",
        "--power-price",
        "0.06",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = v["hashprice_usd_per_ph_day"].as_f64().unwrap();
    assert!((h / 43.33 - 1.0).abs() < 0.005, "{h} vs published 43.33");
    assert!((v["machine"]["break_even_hashprice"].as_f64().unwrap() - 25.20).abs() < 1e-9);
    // Bad input is refused with a message, not a panic.
    let out = common::output([
        "hashprice",
        "--difficulty",
        "lots",
        "--reward",
        "3",
        "--price",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a difficulty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_command_reads_a_running_instance() {
    let mut pool = spawn(&[
        "pool",
        "--listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
        "--btc-price",
        "90000",
        "--min-difficulty",
        "0.00000001",
        "--start-difficulty",
        "0.000005",
        "--block-interval",
        "0",
    ]);
    // Without a scheme: `sluice workers` adds http://.
    let api = pool
        .api
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let stop = CancellationToken::new();
    let stats = Arc::new(MinerStats::default());
    tokio::spawn(sluice_loadgen::run(
        MinerConfig {
            addr: format!("127.0.0.1:{}", pool.port),
            worker: "rack7.s19-42".into(),
            hashes_per_sec: 50_000.0,
            ..MinerConfig::default()
        },
        stats.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    assert!(stats.accepted.load(Ordering::Relaxed) > 0);
    let table = common::output([
        "workers",
        "--api",
        &api,
        "--sort",
        "effective_hashprice",
        "--prefix",
        "rack7.",
    ]);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("rack7.s19-42") && text.contains("BTC $90000"),
        "{text}"
    );
    // A bad sort field comes back as the API's message.
    let bad = common::output(["workers", "--api", &api, "--sort", "bogus"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown sort field"));
    // No instance there: a message, not a panic.
    let none = common::output(["workers", "--api", "127.0.0.1:1"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("is sluice running"));
    assert_eq!(sigterm(&mut pool).code(), Some(0));
}

/// A supervisor that stops reading sluice's stdout (a closed pipe) must
/// not bring it down: it keeps serving miners.
#[test]
fn a_closed_stdout_does_not_stop_the_pool() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::scratch_dir())
        .args(["pool", "--listen", &listen, "--block-log", ""])
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // It answers a subscribe (after it wrote its listening line into the
    // closed pipe).
    use std::io::{BufRead, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    let answered = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sluice exited: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(&listen) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n");
            let mut line = String::new();
            if std::io::BufReader::new(s).read_line(&mut line).is_ok() && !line.is_empty() {
                break line;
            }
        }
        assert!(Instant::now() < deadline, "no answer in time");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answered.contains("\"id\":1"), "{answered}");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
