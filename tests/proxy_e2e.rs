//! The V1 proxy end to end, on real sockets on 127.0.0.1: simulated miners
//! doing real hashing → `sluice proxy` → `sluice pool` (the pool-node role
//! on the synthetic chain), all in one process so the pool's books can be
//! read directly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sluice::config::{Config, Mode, PoolConfig, PoolNodeConfig, RoutingConfig};
use sluice::run::{Running, start};
use sluice_engine::local::WorkerTally;
use sluice_engine::server::Engine;
use sluice_engine::stats::{Disconnect, Reject};
use sluice_engine::upstream::PoolUrl;
use sluice_loadgen::MinerStats;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Node {
    addr: SocketAddr,
    engine: Arc<Engine>,
    workers: Option<Arc<DashMap<Arc<str>, WorkerTally>>>,
    cancel: CancellationToken,
}

impl Node {
    fn pool_shares(&self, worker: &str) -> u64 {
        self.workers
            .as_ref()
            .and_then(|w| w.get(worker).map(|t| t.shares))
            .unwrap_or(0)
    }

    fn pool_total(&self) -> u64 {
        self.workers
            .as_ref()
            .map(|w| w.iter().map(|t| t.shares).sum())
            .unwrap_or(0)
    }
}

async fn launch(cfg: Config) -> Node {
    let cancel = CancellationToken::new();
    let Running {
        engine,
        listener,
        pool_workers,
        ..
    } = start(&cfg, cancel.clone()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(engine.clone().serve(listener));
    Node {
        addr,
        engine,
        workers: pool_workers,
        cancel,
    }
}

fn base(mode: Mode, addr: SocketAddr) -> Config {
    let mut c = Config::new(mode, addr);
    c.routing = RoutingConfig {
        failback_after_secs: 1.0,
        ..Default::default()
    };
    c.pool_node = PoolNodeConfig {
        // Blocks stay rare: the tests are about shares.
        network_difficulty: 1.0,
        block_interval_secs: 0.0,
        refresh_interval_secs: 2.0,
        ..Default::default()
    };
    c.difficulty.min = 1e-7;
    c.difficulty.start = 1e-6;
    c
}

async fn pool_node(addr: SocketAddr) -> Node {
    launch(base(Mode::Pool, addr)).await
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pool_entry(node: &Node, user: &str, weight: f64, level: u32) -> PoolConfig {
    let url = PoolUrl::v1("127.0.0.1", node.addr.port());
    PoolConfig {
        // A fixed, low difficulty upstream: every share the proxy accepts
        // is forwarded and checked again by the pool.
        password: "d=0.0000001".into(),
        weight,
        level,
        stall_timeout_secs: 30,
        ..PoolConfig::new(url, user)
    }
}

fn miner(
    addr: SocketAddr,
    worker: &str,
    hashes_per_sec: f64,
    cancel: &CancellationToken,
) -> Arc<MinerStats> {
    common::spawn_miner(common::v1_miner(addr, worker, hashes_per_sec), cancel)
}

async fn upstreams_ready(proxy: &Node) {
    wait_for(
        "every pool's upstream ready",
        Duration::from_secs(10),
        || {
            proxy.engine.router.snapshot().iter().all(|p| {
                p.connections
                    .iter()
                    .any(|c| c.1 == sluice_engine::upstream::Health::Ready)
            })
        },
    )
    .await;
}

/// Waits until `n` connections have ended for `reason`.
async fn wait_disconnects(
    engine: &Engine,
    reason: Disconnect,
    n: u64,
    what: &str,
    timeout: Duration,
) {
    wait_for(what, timeout, || engine.stats.disconnects(reason) == n).await;
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_reach_the_pool_under_the_configured_user() {
    let pool = pool_node(any_port()).await;
    let mut pc = base(Mode::Proxy, any_port());
    pc.pools.push(pool_entry(&pool, "farmuser", 1.0, 0));
    let proxy = launch(pc).await;
    let cancel = CancellationToken::new();
    let miners: Vec<_> = (0..3)
        .map(|i| miner(proxy.addr, &format!("rig.{i}"), 20_000.0, &cancel))
        .collect();
    wait_for(
        "3 accepted shares per miner",
        Duration::from_secs(30),
        || {
            miners
                .iter()
                .all(|m| m.accepted.load(Ordering::Relaxed) >= 3)
        },
    )
    .await;
    wait_for("the pool to book them", Duration::from_secs(10), || {
        pool.pool_shares("farmuser") >= 9
    })
    .await;
    // Everything the pool booked is under the proxy's user, nothing else.
    assert_eq!(pool.workers.as_ref().unwrap().len(), 1);
    let stats = &proxy.engine.stats;
    assert!(stats.forwarded.load(Ordering::Relaxed) >= 9);
    assert_eq!(stats.upstream_rejected.load(Ordering::Relaxed), 0);
    for m in &miners {
        assert_eq!(m.rejected_total(), 0, "no rejects for honest miners");
    }
    cancel.cancel();
    proxy.cancel.cancel();
    pool.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_get_unique_extranonces_and_validate_upstream() {
    let pool = pool_node(any_port()).await;
    let mut pc = base(Mode::Proxy, any_port());
    let mut entry = pool_entry(&pool, "farm", 1.0, 0);
    entry.pass_through_workers = true;
    // The pool at the miners' own start difficulty: a pool below them
    // would pull all 1,000 down (work in = work credited) and multiply the
    // share rate this test needs to carry.
    entry.password = "d=0.000001".into();
    pc.pools.push(entry);
    // Several upstream connections must open; sessions stay unique across
    // all of them.
    pc.routing.max_sessions_per_upstream = 300;
    let proxy = launch(pc).await;
    let cancel = CancellationToken::new();
    let n: usize = std::env::var("SLUICE_TEST_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let miners: Vec<_> = (0..n)
        .map(|i| miner(proxy.addr, &format!("farm.m{i}"), 1_000.0, &cancel))
        .collect();
    wait_for("every miner to get a job", Duration::from_secs(60), || {
        miners.iter().all(|m| m.ready.load(Ordering::Relaxed) == 1)
    })
    .await;
    let en1: HashSet<u64> = miners
        .iter()
        .map(|m| m.extranonce1.load(Ordering::Relaxed))
        .collect();
    assert_eq!(en1.len(), n, "extranonce1 values are unique");
    let conns: usize = proxy
        .engine
        .router
        .snapshot()
        .iter()
        .map(|p| p.connections.len())
        .sum();
    assert!(
        conns >= n.div_ceil(300),
        "{n} sessions at 300 per connection need ≥ {} upstream connections, got {conns}",
        n.div_ceil(300)
    );
    // With pass-through names the pool books each miner separately: every
    // one of them had shares validated by the pool.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing: Vec<usize> = (0..n)
            .filter(|i| pool.pool_shares(&format!("farm.m{i}")) == 0)
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let m = &miners[missing[0]];
            panic!(
                "{} miners without a pool-validated share; e.g. m{}: hashes {} submitted {} accepted {} rejected {}; proxy forwarded {} upstream accepted {}",
                missing.len(),
                missing[0],
                m.hashes.load(Ordering::Relaxed),
                m.submitted.load(Ordering::Relaxed),
                m.accepted.load(Ordering::Relaxed),
                m.rejected_total(),
                proxy.engine.stats.forwarded.load(Ordering::Relaxed),
                proxy.engine.stats.upstream_accepted.load(Ordering::Relaxed),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = &proxy.engine.stats;
    assert_eq!(
        st.upstream_rejected.load(Ordering::Relaxed),
        0,
        "upstream rejects by reason: {:?}",
        sluice_engine::stats::PoolReject::ALL
            .iter()
            .map(|r| (
                r.label(),
                st.upstream_rejects[*r as usize].load(Ordering::Relaxed)
            ))
            .collect::<Vec<_>>()
    );
    cancel.cancel();
    proxy.cancel.cancel();
    pool.cancel.cancel();
}

async fn raw_session(
    addr: SocketAddr,
) -> (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, w) = s.into_split();
    (BufReader::new(r), w)
}

async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> serde_json::Value {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("method").is_none() {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_the_wire_is_answered_counted_and_bounded() {
    let pool = pool_node(any_port()).await;
    let node = &pool;
    let (mut r, mut w) = raw_session(node.addr).await;
    // Submit before subscribe: 25.
    w.write_all(b"{\"id\":1,\"method\":\"mining.submit\",\"params\":[\"a.b\",\"1\",\"00000000\",\"00000000\",\"00000000\"]}\n").await.unwrap();
    assert_eq!(reply(&mut r).await["error"][0], 25);
    // Malformed JSON: 20 with a null id; the session survives.
    w.write_all(b"{\"id\":2,\"method\":\n").await.unwrap();
    let v = reply(&mut r).await;
    assert_eq!(v["error"][0], 20);
    assert!(v["id"].is_null());
    // Unknown method: 20.
    w.write_all(b"{\"id\":3,\"method\":\"mining.nope\",\"params\":[]}\n")
        .await
        .unwrap();
    assert_eq!(reply(&mut r).await["error"][0], 20);
    // A line in pieces (its reads meet a partial line) is answered once
    // whole; two lines in one write are both answered, in order.
    for piece in [
        &b"{\"id\":31,\"met"[..],
        b"hod\":\"mining.nope\",",
        b"\"params\":[]}\n",
    ] {
        w.write_all(piece).await.unwrap();
        w.flush().await.unwrap();
        // Spaced so that the proxy most likely reads them apart (the
        // answer does not depend on it).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reply(&mut r).await["id"], 31);
    w.write_all(b"{\"id\":32,\"method\":\"mining.nope\",\"params\":[]}\n{\"id\":33,\"method\":\"mining.nope\",\"params\":[]}\n")
        .await
        .unwrap();
    assert_eq!(reply(&mut r).await["id"], 32);
    assert_eq!(reply(&mut r).await["id"], 33);
    w.write_all(b"{\"id\":4,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await
        .unwrap();
    assert_eq!(reply(&mut r).await["result"][2], 8);
    let stats = &node.engine.stats;
    assert_eq!(stats.rejected(Reject::NotSubscribed), 1);
    assert_eq!(stats.rejected(Reject::Malformed), 1);
    assert_eq!(stats.rejected(Reject::UnknownMethod), 4);

    // A line over the limit ends the connection, and only that one.
    let (mut r2, mut w2) = raw_session(node.addr).await;
    let long = vec![b'x'; 20_000];
    let _ = w2.write_all(&long).await;
    let mut buf = String::new();
    let n = tokio::time::timeout(Duration::from_secs(5), r2.read_line(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after an oversized line");
    w.write_all(b"{\"id\":5,\"method\":\"mining.authorize\",\"params\":[\"a.b\",\"x\"]}\n")
        .await
        .unwrap();
    assert_eq!(
        reply(&mut r).await["result"],
        true,
        "the other session is unaffected"
    );
    wait_for(
        "the disconnect to be counted",
        Duration::from_secs(5),
        || stats.disconnects(Disconnect::LineTooLong) == 1,
    )
    .await;
    pool.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_miners_connected_and_failback_restores_the_primary() {
    let primary = pool_node(any_port()).await;
    let primary_addr = primary.addr;
    let backup = pool_node(any_port()).await;
    let mut pc = base(Mode::Proxy, any_port());
    pc.pools.push(pool_entry(&primary, "farm", 1.0, 0));
    pc.pools.push(pool_entry(&backup, "farm", 1.0, 1));
    let proxy = launch(pc).await;
    // Both upstreams ready first: otherwise a miner arriving while only the
    // backup is up is (rightly) served there until failback.
    upstreams_ready(&proxy).await;
    let cancel = CancellationToken::new();
    let miners: Vec<_> = (0..5)
        .map(|i| miner(proxy.addr, &format!("rig.{i}"), 20_000.0, &cancel))
        .collect();
    wait_for("shares at the primary", Duration::from_secs(30), || {
        primary.pool_total() >= 10
    })
    .await;
    assert_eq!(
        backup.pool_total(),
        0,
        "the backup idles while the primary is up"
    );
    assert_eq!(proxy.engine.router.sessions_per_pool(), vec![5, 0]);

    // Stop the primary.
    let clean_before: Vec<u64> = miners
        .iter()
        .map(|m| m.clean_jobs.load(Ordering::Relaxed))
        .collect();
    let accepted_before: Vec<u64> = miners
        .iter()
        .map(|m| m.accepted.load(Ordering::Relaxed))
        .collect();
    primary.cancel.cancel();
    let stopped = Instant::now();
    wait_for(
        "a clean job from the backup on every miner",
        Duration::from_secs(5),
        || {
            miners
                .iter()
                .zip(&clean_before)
                .all(|(m, b)| m.clean_jobs.load(Ordering::Relaxed) > *b)
        },
    )
    .await;
    let failover = stopped.elapsed();
    wait_for(
        "shares accepted at the backup",
        Duration::from_secs(20),
        || backup.pool_total() >= 10,
    )
    .await;
    wait_for(
        "every miner's next shares accepted",
        Duration::from_secs(30),
        || {
            miners
                .iter()
                .zip(&accepted_before)
                .all(|(m, b)| m.accepted.load(Ordering::Relaxed) > *b)
        },
    )
    .await;
    // Every miner is still on its first TCP connection: the miner task
    // would have panicked on a closed connection.
    assert_eq!(proxy.engine.stats.sessions.load(Ordering::Relaxed), 5);
    assert_eq!(proxy.engine.router.sessions_per_pool(), vec![0, 5]);
    eprintln!("failover: clean job on all miners {failover:?} after the primary stopped");

    // Restart the primary on the same port: the sessions return.
    let primary = pool_node(primary_addr).await;
    wait_for(
        "sessions back on the primary",
        Duration::from_secs(60),
        || proxy.engine.router.sessions_per_pool() == vec![5, 0],
    )
    .await;
    wait_for(
        "shares at the restarted primary",
        Duration::from_secs(20),
        || primary.pool_total() >= 5,
    )
    .await;
    assert_eq!(proxy.engine.stats.sessions.load(Ordering::Relaxed), 5);
    cancel.cancel();
    proxy.cancel.cancel();
    primary.cancel.cancel();
    backup.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_work_70_30_and_rebalancing_fixes_uneven_miners() {
    let a = pool_node(any_port()).await;
    let b = pool_node(any_port()).await;
    let mut pc = base(Mode::Proxy, any_port());
    pc.pools.push(pool_entry(&a, "farm", 70.0, 0));
    pc.pools.push(pool_entry(&b, "farm", 30.0, 0));
    pc.routing.rebalance_interval_secs = 3.0;
    pc.routing.rebalance_tolerance = 0.05;
    // Keep vardiff from changing share sizes mid-test.
    pc.difficulty.vardiff.enabled = false;
    let proxy = launch(pc).await;
    upstreams_ready(&proxy).await;
    let cancel = CancellationToken::new();
    // Uneven miners: two are 4× faster and connect first, so placement by
    // session count (70/30 of 12 sessions) puts both on pool A: 83/17 of
    // the work. Only moving sessions by measured work brings it near 70/30
    // (72/28 once two slow miners move).
    let mut miners = Vec::new();
    for i in 0..12 {
        let rate = if i < 2 { 40_000.0 } else { 10_000.0 };
        miners.push(miner(proxy.addr, &format!("rig.{i}"), rate, &cancel));
        if i < 2 {
            // Wait until it is placed: the order decides the placement.
            wait_for("a fast miner placed", Duration::from_secs(10), || {
                proxy.engine.stats.sessions.load(Ordering::Relaxed) == i as u64 + 1
            })
            .await;
        }
    }
    wait_for("all miners working", Duration::from_secs(20), || {
        miners
            .iter()
            .all(|m| m.accepted.load(Ordering::Relaxed) > 0)
    })
    .await;
    // Let a few rebalance rounds pass, then measure a fresh window.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (a0, b0) = (a.pool_total(), b.pool_total());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (da, db) = (a.pool_total() - a0, b.pool_total() - b0);
    let share_a = da as f64 / (da + db) as f64;
    eprintln!("work split over 15 s: {da} / {db} shares = {:.2}", share_a);
    // Shares are Poisson: with thousands of shares in the window the noise
    // is a few percent; miners move in whole units (a slow miner is 1/18 of
    // the farm), so the split lands within ±0.1 of 0.7 — and without the
    // moves it would stay at 0.83.
    assert!((0.6..=0.8).contains(&share_a), "split {share_a:.2}");
    assert!(
        proxy.engine.router.rebalance_moves.load(Ordering::Relaxed) >= 1,
        "the split came from rebalancing"
    );
    assert_eq!(
        proxy.engine.stats.sessions.load(Ordering::Relaxed),
        12,
        "moves never disconnect miners"
    );
    cancel.cancel();
    proxy.cancel.cancel();
    a.cancel.cancel();
    b.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_cap_and_handshake_timeout_are_enforced() {
    let mut cfg = base(Mode::Pool, any_port());
    cfg.listen.max_connections_per_ip = 2;
    cfg.listen.handshake_timeout_secs = 1;
    let node = launch(cfg).await;
    let (mut r1, _w1) = raw_session(node.addr).await;
    let (mut r2, _w2) = raw_session(node.addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third connection from 127.0.0.1 is refused at once.
    let (mut r3, _w3) = raw_session(node.addr).await;
    let mut line = String::new();
    let n = tokio::time::timeout(Duration::from_secs(2), r3.read_line(&mut line))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        node.engine
            .stats
            .refused_connections
            .load(Ordering::Relaxed),
        1
    );
    // The two that never subscribe are closed after the handshake timeout.
    let start = Instant::now();
    for r in [&mut r1, &mut r2] {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
    wait_disconnects(
        &node.engine,
        Disconnect::HandshakeTimeout,
        2,
        "handshake timeouts counted",
        Duration::from_secs(2),
    )
    .await;
    node.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_found_through_the_proxy_extend_the_synthetic_chain() {
    // A network difficulty close to the share difficulty: blocks come often.
    let mut pcfg = base(Mode::Pool, any_port());
    pcfg.pool_node.network_difficulty = 0.00001;
    let cancel_pool = CancellationToken::new();
    let running = start(&pcfg, cancel_pool.clone()).await.unwrap();
    let blocks = running.blocks.clone().unwrap();
    let pool_addr = running.listener.local_addr().unwrap();
    tokio::spawn(running.engine.clone().serve(running.listener));
    let pool = Node {
        addr: pool_addr,
        engine: running.engine,
        workers: running.pool_workers,
        cancel: cancel_pool,
    };

    let mut pc = base(Mode::Proxy, any_port());
    pc.pools.push(pool_entry(&pool, "farm", 1.0, 0));
    let proxy = launch(pc).await;
    let cancel = CancellationToken::new();
    let m = miner(proxy.addr, "rig.1", 50_000.0, &cancel);
    wait_for("three blocks", Duration::from_secs(60), || {
        blocks.lock().unwrap().len() >= 3
    })
    .await;
    let found = blocks.lock().unwrap().clone();
    // Heights follow one another: each block became the new tip.
    for w in found.windows(2) {
        assert_eq!(w[1].height, w[0].height + 1);
    }
    assert!(proxy.engine.stats.blocks_found.load(Ordering::Relaxed) >= 3);
    // Each block brought a clean job.
    assert!(m.clean_jobs.load(Ordering::Relaxed) >= 3);
    cancel.cancel();
    proxy.cancel.cancel();
    pool.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_stops_reading_is_disconnected_without_slowing_others() {
    let mut cfg = base(Mode::Pool, any_port());
    cfg.listen.write_timeout_secs = 1;
    let node = launch(cfg).await;
    // This client sends requests forever and never reads the replies, so
    // the server's writes back up until the write timeout.
    let slow = TcpStream::connect(node.addr).await.unwrap();
    let (_slow_r, mut slow_w) = slow.into_split();
    let flood = tokio::spawn(async move {
        let line =
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"slow\"]}\n".repeat(1000);
        while slow_w.write_all(&line).await.is_ok() {}
    });
    // Meanwhile a healthy miner is served normally.
    let cancel = CancellationToken::new();
    let m = miner(node.addr, "ok.rig", 20_000.0, &cancel);
    wait_disconnects(
        &node.engine,
        Disconnect::SlowReader,
        1,
        "the slow reader to be cut",
        Duration::from_secs(30),
    )
    .await;
    wait_for(
        "the healthy miner's shares",
        Duration::from_secs(20),
        || m.accepted.load(Ordering::Relaxed) >= 3,
    )
    .await;
    flood.abort();
    cancel.cancel();
    node.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_connection_cap_and_idle_timeout_are_enforced() {
    let mut cfg = base(Mode::Pool, any_port());
    cfg.listen.max_connections = 1;
    cfg.listen.idle_timeout_secs = 1;
    let node = launch(cfg).await;
    let (mut r1, mut w1) = raw_session(node.addr).await;
    w1.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"a.b\",\"x\"]}\n")
        .await
        .unwrap();
    assert_eq!(reply(&mut r1).await["id"], 1);
    // A second connection while the first is held: refused at once.
    let (mut r2, _w2) = raw_session(node.addr).await;
    let mut line = String::new();
    let n = tokio::time::timeout(Duration::from_secs(2), r2.read_line(&mut line))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        node.engine
            .stats
            .refused_connections
            .load(Ordering::Relaxed),
        1
    );
    // The first, ready but silent, is dropped after the idle timeout.
    let start = Instant::now();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), r1.read_line(&mut line))
            .await
            .unwrap()
            .unwrap_or(0);
        if n == 0 {
            break;
        }
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
    wait_disconnects(
        &node.engine,
        Disconnect::IdleTimeout,
        1,
        "the idle timeout counted",
        Duration::from_secs(2),
    )
    .await;
    node.cancel.cancel();
}

/// A share read together with a line that ends the connection (here one
/// too long) is not dropped with it: a block among them still reaches the
/// node, and the miner still hears its share taken before the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_read_with_a_bad_line_still_reaches_the_node() {
    use sluice_pow::{JobTemplate, ShareChecker, Submission, Target};
    use sluice_sv1::{ServerMessage, SubscribeResult, parse_server};

    let mut cfg = base(Mode::Pool, any_port());
    // Every share at the miner's difficulty is a block candidate.
    cfg.pool_node.network_difficulty = 1e-6;
    cfg.listen.max_line_bytes = 512;
    let node = launch(cfg).await;
    let (mut r, mut w) = raw_session(node.addr).await;
    w.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"farm.b\",\"d=0.000001\"]}\n")
        .await
        .unwrap();
    let (mut sub, mut job, mut authorized) = (None, None, false);
    while sub.is_none() || job.is_none() || !authorized {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("the handshake answered")
            .unwrap();
        assert!(n > 0, "connection closed during the handshake");
        match parse_server(line.as_bytes()).unwrap() {
            ServerMessage::Response { id, result, .. } if id.as_u64() == Some(1) => {
                sub = Some(SubscribeResult::from_value(&result).unwrap());
            }
            ServerMessage::Response { id, result, .. } if id.as_u64() == Some(2) => {
                assert_eq!(result, serde_json::json!(true));
                authorized = true;
            }
            ServerMessage::Notify(n) => job = Some(n),
            _ => {}
        }
    }
    let (sub, job) = (sub.unwrap(), job.unwrap());
    // Mine a block candidate for the job.
    let template = JobTemplate::new(
        job.prev_hash,
        job.coinb1.clone(),
        job.coinb2.clone(),
        job.branches.clone(),
        job.nbits,
    )
    .unwrap();
    let mut checker = ShareChecker::new(
        Arc::new(template),
        &sub.extranonce1,
        sub.extranonce2_size,
        Target::from_difficulty(1e-6).unwrap(),
    )
    .unwrap();
    let en2 = vec![7u8; sub.extranonce2_size];
    let nonce = (0u32..)
        .find(|&nonce| {
            checker
                .check(&Submission {
                    extranonce2: &en2,
                    time: job.ntime,
                    nonce,
                    version: job.version,
                })
                .unwrap()
                .meets_network_target
        })
        .unwrap();
    // The block and a line over the limit, in one write (one read).
    let mut bytes =
        sluice_sv1::message::encode_submit(3, "farm.b", &job.job_id, &en2, job.ntime, nonce, None)
            .to_vec();
    bytes.extend_from_slice(&[b'x'; 600]);
    w.write_all(&bytes).await.unwrap();
    // The share's answer comes before the close.
    let mut taken = false;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("closed")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        if let Ok(ServerMessage::Response { id, result, .. }) = parse_server(line.as_bytes())
            && id.as_u64() == Some(3)
        {
            taken = result == serde_json::json!(true);
        }
    }
    assert!(taken, "the block share was answered true before the close");
    wait_disconnects(
        &node.engine,
        Disconnect::LineTooLong,
        1,
        "the long line counted",
        Duration::from_secs(10),
    )
    .await;
    wait_for("the block at the node", Duration::from_secs(10), || {
        node.engine
            .blocks
            .list()
            .iter()
            .any(|b| b.status == sluice_engine::blocks::BlockStatus::Accepted)
    })
    .await;
    node.cancel.cancel();
}

/// The idle timeout counts from a ready miner's last line, not from its
/// connection: one that keeps talking stays, however long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_miner_that_keeps_talking_is_not_idled_out() {
    let mut cfg = base(Mode::Pool, any_port());
    // 3 s against a line every 200 ms: a busy machine would have to
    // stall the test's client for fifteen lines in a row.
    cfg.listen.idle_timeout_secs = 3;
    let node = launch(cfg).await;
    let (mut r, mut w) = raw_session(node.addr).await;
    w.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"a.b\",\"x\"]}\n")
        .await
        .unwrap();
    assert_eq!(reply(&mut r).await["id"], 1);
    assert_eq!(reply(&mut r).await["id"], 2);
    // Over two idle timeouts' worth, a line every 200 ms: each is answered.
    let start = Instant::now();
    let mut id = 3;
    while start.elapsed() < Duration::from_secs(7) {
        w.write_all(
            format!("{{\"id\":{id},\"method\":\"mining.extranonce.subscribe\",\"params\":[]}}\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(reply(&mut r).await["id"], id, "answered while talking");
        id += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(node.engine.stats.disconnects(Disconnect::IdleTimeout), 0);
    // Then silent: dropped.
    wait_disconnects(
        &node.engine,
        Disconnect::IdleTimeout,
        1,
        "the idle timeout counted",
        Duration::from_secs(10),
    )
    .await;
    node.cancel.cancel();
}

/// Stopping ends every session (through its mailbox: sessions hold no
/// cancellation future of their own), idle or not, and counts it as a
/// shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_session() {
    let node = launch(base(Mode::Pool, any_port())).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let (mut r, mut w) = raw_session(node.addr).await;
        w.write_all(format!("{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"a.s{i}\",\"x\"]}}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(reply(&mut r).await["id"], 1);
        held.push((r, w));
    }
    // One more that never subscribes: it is in the middle of its handshake.
    let (r, w) = raw_session(node.addr).await;
    held.push((r, w));
    wait_for("four sessions", Duration::from_secs(10), || {
        node.engine.stats.sessions.load(Ordering::Relaxed) == 4
    })
    .await;
    node.cancel.cancel();
    for (r, _) in &mut held {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
                .await
                .expect("closed at shutdown")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
        }
    }
    wait_disconnects(
        &node.engine,
        Disconnect::Shutdown,
        4,
        "shutdowns counted",
        Duration::from_secs(5),
    )
    .await;
}

/// Two instances with `listen.reuse_port` on one address: both bind it and
/// the kernel hands each a share of the miners (how an operator runs more
/// miners than one process has open files for); a third without it cannot
/// bind, and says which address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_reuse_port_share_one_address() {
    let pool = pool_node(any_port()).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut pc = base(Mode::Proxy, addr);
    pc.pools.push(pool_entry(&pool, "farmuser", 1.0, 0));
    pc.listen.reuse_port = true;
    let a = launch(pc.clone()).await;
    let b = launch(pc.clone()).await;
    upstreams_ready(&a).await;
    upstreams_ready(&b).await;
    // 64 connections: all landing on one of two is a chance of 2^-63.
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    let held = |n: &Node| n.engine.stats.sessions.load(Ordering::Relaxed);
    wait_for(
        "both instances hold connections",
        Duration::from_secs(10),
        || held(&a) > 0 && held(&b) > 0 && held(&a) + held(&b) == 64,
    )
    .await;
    eprintln!(
        "reuse_port: {} and {} of 64 connections",
        held(&a),
        held(&b)
    );
    let mut alone = pc.clone();
    alone.listen.reuse_port = false;
    let cancel = CancellationToken::new();
    let err = start(&alone, cancel.clone())
        .await
        .err()
        .expect("the address is taken");
    cancel.cancel();
    assert!(format!("{err:#}").contains(&addr.to_string()), "{err:#}");
    drop(conns);
    // A load generator's farm spread over both: the instances name their
    // jobs alike but each builds its own coinbase (its own extranonce from
    // the pool), and no miner may be handed the other instance's work.
    let accepted = |n: &Node| n.engine.stats.accepted.load(Ordering::Relaxed);
    let report = sluice_loadgen::run_farm(
        sluice_loadgen::FarmConfig {
            addr: addr.to_string(),
            miners: 32,
            duration: Duration::from_secs(3),
            ramp_per_sec: None,
            scenario: sluice_loadgen::Scenario::Steady,
            miner: sluice_loadgen::MinerConfig {
                worker: "farmuser.spread".into(),
                share_rate: Some(4.0),
                ..Default::default()
            },
        },
        |_| {},
    )
    .await;
    assert_eq!(report.connected, 32, "{report:?}");
    assert!(
        accepted(&a) > 0 && accepted(&b) > 0,
        "both instances took shares: {} and {}",
        accepted(&a),
        accepted(&b)
    );
    assert!(
        report.accepted > 0 && report.rejected_by_code.is_empty(),
        "every share accepted: {} accepted, rejects {:?}",
        report.accepted,
        report.rejected_by_code
    );
    a.cancel.cancel();
    b.cancel.cancel();
    pool.cancel.cancel();
}
