//! The share ledger end to end: `sluice pool` killed with SIGKILL under
//! load keeps every share it answered before the stated loss window, on
//! SQLite and on a real PostgreSQL server; two pool instances on one
//! PostgreSQL ledger are one pool (one PPLNS window, every block).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::core_standin::Standin;
use common::wait_until;
use serde_json::Value;
use sluice::config::{Config, Mode, PoolNodeConfig};
use sluice_books::ledger::{Ledger, LedgerConfig};
use sluice_loadgen::{MinerConfig, MinerStats};
use tokio_util::sync::CancellationToken;

fn miners(
    addr: SocketAddr,
    prefix: &str,
    n: usize,
    share_rate: f64,
    cancel: &CancellationToken,
) -> Vec<Arc<MinerStats>> {
    (0..n)
        .map(|i| {
            // A fixed difficulty: the share rate asked for, at a few
            // thousand hashes a share (vardiff would raise the work, and
            // the CPU, as the shares pour in).
            let cfg = MinerConfig {
                share_rate: Some(share_rate),
                seed: i as u64,
                password: "d=0.000001".into(),
                ..common::v1_miner(addr, &format!("{prefix}{i}"), 2_000_000.0)
            };
            common::spawn_miner(cfg, cancel)
        })
        .collect()
}

fn accepted(m: &[Arc<MinerStats>]) -> u64 {
    m.iter().map(|s| s.accepted.load(Ordering::Relaxed)).sum()
}

async fn open(url: &str) -> Arc<Ledger> {
    Ledger::open(LedgerConfig {
        url: url.into(),
        instance: "reader".into(),
        ..LedgerConfig::default()
    })
    .await
    .unwrap()
}

/// Runs `sluice pool --ledger URL` under load, kills it with SIGKILL, and
/// checks every share answered `true` before the loss window is there.
async fn survives_kill9(url: &str) {
    let pool = common::spawn(&[
        "pool",
        "--listen",
        "127.0.0.1:0",
        "--block-interval",
        "0",
        "--min-difficulty",
        "0.0000001",
        "--start-difficulty",
        "0.000001",
        "--ledger",
        url,
        "--api-listen",
        "127.0.0.1:0",
    ]);
    let api = format!("{}/metrics", pool.api.clone().expect("the API address"));
    let addr: SocketAddr = format!("127.0.0.1:{}", pool.port).parse().unwrap();
    let cancel = CancellationToken::new();
    let m = miners(addr, "rig", 4, 50.0, &cancel);
    wait_until("1,000 shares answered", Duration::from_secs(120), || {
        accepted(&m) >= 1_000
    })
    .await;
    // Every share answered so far, committed by the pool's own count
    // (the load goes on meanwhile): how long that takes is the loss window.
    let before = accepted(&m);
    let t0 = std::time::Instant::now();
    common::wait_until_async(
        "the answered shares committed",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            async move {
                let (_, text) = common::http_get(api).await;
                let written: f64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("sluice_ledger_shares_written_total "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                written as u64 >= before
            }
        },
    )
    .await;
    let window = t0.elapsed();
    let at_kill = accepted(&m);
    common::kill9(pool);
    cancel.cancel();
    let rows = open(url).await.share_count().await.unwrap();
    eprintln!(
        "{url}: {before} answered, committed within {window:?}; {at_kill} answered at the kill, {rows} in the ledger"
    );
    // What the pool called committed survived the kill.
    assert!(
        rows >= before,
        "{rows} rows, but {before} shares were committed before the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ledger_keeps_every_share_answered_before_a_kill9() {
    let dir = common::scratch_dir().join("kill9-ledger");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("ledger.db").display());
    survives_kill9(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ledger_keeps_every_share_answered_before_a_kill9() {
    let url = common::pg::server().database("kill9").await;
    survives_kill9(&url).await;
}

fn instance(node: &Standin, ledger: &str, name: &str) -> Config {
    let mut c = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    c.pool_node = PoolNodeConfig {
        ledger: Some(ledger.into()),
        instance: name.into(),
        ..node.pool_node()
    };
    c.blocks.log = None;
    c.difficulty.min = 1e-7;
    c.difficulty.start = 1e-6;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_ledger_are_one_pool() {
    let url = common::pg::server().database("scaleout").await;
    let node = Standin::start("gbt-regtest-3.json").await;
    // No block goes in until both instances have shares in the ledger.
    node.set(|s| s.submit_answer = Some(Value::String("high-hash".into())));
    let (addr_a, run_a, cancel_a) = common::serve(&instance(&node, &url, "a")).await;
    let (addr_b, run_b, cancel_b) = common::serve(&instance(&node, &url, "b")).await;
    let cancel = CancellationToken::new();
    // On regtest every other hash is a block: a light load keeps the
    // blocks (each one an RPC round trip and a ledger row) few.
    let ma = miners(addr_a, "a-rig", 1, 5.0, &cancel);
    let mb = miners(addr_b, "b-rig", 1, 5.0, &cancel);
    wait_until("shares on both instances", Duration::from_secs(60), || {
        accepted(&ma) >= 10 && accepted(&mb) >= 10
    })
    .await;
    // The node moves to a new tip, then takes the next block on it.
    node.set_template("gbt-regtest-4.json");
    node.set(|s| s.submit_answer = None);
    let ledger = open(&url).await;
    let mut block = None;
    let flush = |r: &sluice::run::Running| {
        let l = r.ledger.clone().unwrap();
        async move {
            tokio::time::timeout(Duration::from_secs(20), l.flush())
                .await
                .expect("the ledger commits within 20 s")
                .unwrap();
        }
    };
    for _ in 0..600 {
        flush(&run_a).await;
        flush(&run_b).await;
        // Blocks are recorded when found; the one the node took is the
        // one marked accepted.
        if let Some(b) = ledger
            .blocks()
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.status == "accepted")
        {
            block = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let block = block.expect("a block in the ledger within 30 s");
    cancel.cancel();
    assert!(block.instance == "a" || block.instance == "b");
    assert_eq!(block.height, 204);
    // One PPLNS window over both instances' shares: 2 × 10^6 × D covers
    // about 930 shares of difficulty 10^-6 on regtest.
    let p = ledger.pplns(&block.hash, 2e6).await.unwrap();
    let workers: Vec<&str> = p.iter().map(|x| x.worker.as_str()).collect();
    assert!(
        workers.iter().any(|w| w.starts_with("a-rig")),
        "{workers:?}"
    );
    assert!(
        workers.iter().any(|w| w.starts_with("b-rig")),
        "{workers:?}"
    );
    assert_eq!(p.iter().map(|x| x.sat).sum::<u64>(), block.reward_sat);
    assert_eq!(
        block.reward_sat,
        common::core_standin::fixture("gbt-regtest-4.json")["coinbasevalue"]
            .as_u64()
            .unwrap()
    );
    // Every share either instance answered is in the one ledger.
    cancel_a.cancel();
    cancel_b.cancel();
    flush(&run_a).await;
    flush(&run_b).await;
    let rows = ledger.share_count().await.unwrap();
    assert!(rows >= accepted(&ma) + accepted(&mb), "{rows} rows");
}

#[test]
fn the_ledger_command_prints_blocks_and_payouts() {
    let dir = common::scratch_dir().join("ledger-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("l.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = open(&url).await;
        for (w, d, t) in [("a", 2.0, 10), ("b", 2.0, 11)] {
            l.append(sluice_books::ledger::ShareRow {
                worker: w.into(),
                difficulty: d,
                job: 1,
                height: 9,
                time_ms: t,
                hash_prefix: 0,
                network_difficulty: 2.0,
                reward_sat: 1_000,
            })
            .unwrap();
        }
        l.record_block(sluice_books::ledger::BlockRow {
            hash: "00ff".into(),
            height: 9,
            worker: "b".into(),
            time_ms: 11,
            reward_sat: 1_000,
            network_difficulty: 2.0,
            instance: String::new(),
            status: "accepted".into(),
        });
        l.flush().await.unwrap();
    });
    let out = common::output(["ledger", "--ledger", &url, "pplns", "--block", "00ff"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_sat"], 1_000);
    assert_eq!(v["payouts"][0]["sat"], 500);
    let out = common::output(["ledger", "--ledger", &url, "blocks"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["hash"], "00ff");
    let out = common::output(["ledger", "--ledger", &url, "pplns", "--block", "beef"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no block beef"));
    let missing = format!("sqlite:{}", dir.join("typo.db").display());
    let out = common::output(["ledger", "--ledger", &missing, "blocks"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ledger at"));
    assert!(!dir.join("typo.db").exists(), "nothing created");
}
