//! Money and block safety end to end, on real sockets on 127.0.0.1:
//! simulated miners doing real hashing → `sluice proxy` → a pool (sluice's
//! own pool node with vardiff, or a test double that behaves like ckpool,
//! stalls, goes away or turns hostile).
//!
//! The conservation laws: the work a pool credits equals the hashes the
//! miners computed / 2^32 within a stated bound; every block candidate is
//! recorded durably and submitted; a share answered `true` is booked once
//! and one that went nowhere is never answered `true`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::double::{Behaviour, Double};
use common::wait_until;
use serde_json::{Value, json};
use sluice::config::{Config, Mode, PoolConfig, PoolNodeConfig};
use sluice::run::Running;
use sluice_engine::stats::{Disconnect, Reject};
use sluice_engine::upstream::{Health, PoolUrl};
use sluice_loadgen::{MinerConfig, MinerStats};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

struct Node {
    addr: SocketAddr,
    running: Running,
    cancel: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn launch(cfg: Config) -> Node {
    let (addr, running, cancel) = common::serve(&cfg).await;
    Node {
        addr,
        running,
        cancel,
    }
}

fn url(addr: SocketAddr) -> PoolUrl {
    PoolUrl::v1("127.0.0.1", addr.port())
}

fn proxy_config(pool: SocketAddr) -> Config {
    let mut c = Config::new(Mode::Proxy, "127.0.0.1:0".parse().unwrap());
    c.pools = vec![PoolConfig {
        password: "secret".into(),
        ..PoolConfig::new(url(pool), "farm")
    }];
    c.difficulty.min = 1e-9;
    c.difficulty.start = 1e-6;
    c
}

fn miner(
    addr: SocketAddr,
    worker: &str,
    hashes_per_sec: f64,
    stop: &CancellationToken,
) -> Arc<MinerStats> {
    miner_with(
        MinerConfig {
            addr: addr.to_string(),
            worker: worker.into(),
            hashes_per_sec,
            ..MinerConfig::default()
        },
        stop,
    )
}

fn miner_with(cfg: MinerConfig, stop: &CancellationToken) -> Arc<MinerStats> {
    let stats = Arc::new(MinerStats::default());
    let s = stats.clone();
    let c = stop.clone();
    // A miner the proxy disconnects ends with an error: that is the point
    // of some tests, not a failure.
    tokio::spawn(async move { sluice_loadgen::run(cfg, s, c).await });
    stats
}

fn ready(node: &Node) -> bool {
    node.running
        .engine
        .router
        .snapshot()
        .iter()
        .all(|p| p.connections.iter().any(|(_, h, _)| *h == Health::Ready))
}

async fn up(node: &Node) {
    wait_until("the upstream ready", Duration::from_secs(15), || {
        ready(node)
    })
    .await;
}

fn rss_kib() -> u64 {
    sluice::memory::rss_kib().unwrap_or(0)
}

/// Work conservation through `sluice proxy` into sluice's pool node, for
/// a pool whose vardiff starts 100× below the miners' difficulty (and
/// climbs to it), and one held 10× above it.
///
/// The bound: the pool's credited work W = Σ d over its accepted shares.
/// Each hash meets a target of difficulty d independently with
/// probability 1/(d·2^32), so shares at difficulty d arrive as a Poisson
/// process and W estimates H/2^32 with variance Σ d²; its relative
/// standard deviation is 1/√N_eff with N_eff = W²/Σd² ≥ W/d_max (shares
/// at the pool's vardiff's small early difficulties count for little).
/// We allow 4/√(W/d_max) (false alarm ~6·10⁻⁵) plus 1 % for timing (the
/// hashes of a miner's last batch). The work compared is the hashes less
/// the shares the proxy refused as stale (code 21: work on a job the pool
/// replaced, here every second) or
/// could not forward (code 20: on a starved machine the pool's queue
/// fills, and the proxy refuses rather than answer `true` and lose
/// them); no pool credits those. A miner stops waiting for answers 5 s after it is told
/// to stop: shares still unanswered then (on a busy machine) may or may
/// not have been credited, so the pool's figure may fall short by at most
/// their work (a CI run on a loaded machine fell 12 % short). The proxy's
/// own books (Σ d of the
/// shares it accepted) must agree with the pool's within
/// 4·√(d_max/W + d_miner/B) + 1 %, B being the books' total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_credits_the_work_the_miners_did() {
    // The miners sit at 2·10⁻⁷ (vardiff off: a fixed reference).
    let miner_d = 2e-7;
    for (name, pool_d, pool_vardiff, hashes_per_sec) in [
        (
            "pool vardiff from 100x below the miners",
            miner_d / 100.0,
            true,
            50_000.0,
        ),
        (
            "pool held 10x above the miners",
            miner_d * 10.0,
            false,
            120_000.0,
        ),
    ] {
        let mut pc = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
        pc.pool_node = PoolNodeConfig {
            network_difficulty: 1.0,
            block_interval_secs: 0.0,
            refresh_interval_secs: 1.0,
            ..Default::default()
        };
        pc.difficulty.min = pool_d;
        pc.difficulty.start = pool_d;
        pc.difficulty.max = pool_d.max(miner_d);
        pc.difficulty.vardiff.enabled = pool_vardiff;
        pc.difficulty.vardiff.target_share_interval_secs = 0.1;
        let pool = launch(pc).await;
        let mut xc = proxy_config(pool.addr);
        xc.difficulty.vardiff.enabled = false;
        xc.difficulty.start = miner_d;
        let proxy = launch(xc).await;
        up(&proxy).await;
        let stop = CancellationToken::new();
        let miners: Vec<_> = (0..4)
            .map(|i| miner(proxy.addr, &format!("farm.m{i}"), hashes_per_sec, &stop))
            .collect();
        tokio::time::sleep(Duration::from_secs(12)).await;
        stop.cancel();
        let stats = proxy.running.engine.stats.clone();
        let pool_workers = pool.running.pool_workers.clone().unwrap();
        // Everything forwarded is answered, and the pool booked it.
        wait_until(
            "the pool answered every forwarded share",
            Duration::from_secs(20),
            || {
                let fwd = stats.forwarded.load(Ordering::Relaxed);
                let answered = stats.upstream_accepted.load(Ordering::Relaxed)
                    + stats.upstream_rejected.load(Ordering::Relaxed);
                let booked: u64 = pool_workers.iter().map(|w| w.shares).sum();
                miners
                    .iter()
                    .all(|m| m.finished.load(Ordering::Acquire) == 1)
                    && fwd > 0
                    && answered == fwd
                    && booked == stats.upstream_accepted.load(Ordering::Relaxed)
            },
        )
        .await;
        let hashes: f64 = miners
            .iter()
            .map(|m| m.hashes.load(Ordering::Relaxed) as f64)
            .sum();
        let stale: u64 = miners.iter().map(|m| m.rejected(21)).sum();
        // Shares the proxy could not forward (its pool queue full on a
        // starved machine, or no pool up) are refused with 20, never
        // answered `true`: no pool credits their work either.
        let refused: u64 = miners.iter().map(|m| m.rejected(20)).sum();
        let not_creditable: f64 = miners
            .iter()
            .map(|m| m.rejected_work(20) + m.rejected_work(21))
            .sum();
        let want = hashes / HASHES_PER_DIFF1 - not_creditable;
        let unanswered: u64 = miners
            .iter()
            .map(|m| {
                let answered = m.accepted.load(Ordering::Relaxed) + m.rejected_total();
                m.submitted.load(Ordering::Relaxed).saturating_sub(answered)
            })
            .sum();
        // At most the miners' difficulty each (the pool's is never above
        // it while its vardiff climbs).
        let unanswered_share = unanswered as f64 * miner_d / want;
        let (n_pool, credited) = pool_workers
            .iter()
            .fold((0u64, 0.0), |(n, w), t| (n + t.shares, w + t.work));
        let n_proxy = stats.accepted.load(Ordering::Relaxed);
        let booked = stats.accepted_work.get();
        let d_max = pool_d.max(miner_d);
        let err_pool = credited / want - 1.0;
        let bound_pool = 4.0 / (credited / d_max).sqrt() + 0.01;
        let err_books = booked / credited - 1.0;
        let bound_books = 4.0 * (d_max / credited + miner_d / booked).sqrt() + 0.01;
        eprintln!(
            "{name}: miners computed {want:.6} diff-1 units not refused ({stale} stale, {refused} refused for want of a pool, {unanswered} unanswered; rejects by code 20..25 {:?}); the pool credited {credited:.6} over {n_pool} shares ({:+.2} %, bound {:.2} %); the proxy booked {booked:.6} over {n_proxy} shares ({:+.2} % from the pool, bound {:.2} %); {} shares withheld, {} suggestions",
            (20u8..=25)
                .map(|c| miners.iter().map(|m| m.rejected(c)).sum::<u64>())
                .collect::<Vec<_>>(),
            err_pool * 100.0,
            bound_pool * 100.0,
            err_books * 100.0,
            bound_books * 100.0,
            stats.upstream_withheld.load(Ordering::Relaxed),
            stats.difficulty_suggestions.load(Ordering::Relaxed),
        );
        assert!(
            err_pool < bound_pool && err_pool > -bound_pool - unanswered_share,
            "{name}: pool credited {err_pool:+.4}, bound {bound_pool:.4} (+{unanswered_share:.4} below for unanswered shares)"
        );
        assert!(
            err_books.abs() < bound_books,
            "{name}: books vs pool {err_books:+.4}, bound {bound_books:.4}"
        );
        assert_eq!(stats.upstream_rejected.load(Ordering::Relaxed), 0, "{name}");
    }
}

/// ckpool's OR rule and a job version with a signalling bit inside the
/// rolling mask (0x30000000): the proxy, configured with the default
/// replace rule, offers miners only bits the job leaves clear, so the pool
/// (which checks every share with its own hash) accepts all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_or_rule_pool_accepts_every_forwarded_share_of_a_signalling_job() {
    let pool = Double::start(Behaviour {
        version: 0x3000_0000,
        or_rule: true,
        difficulty: 1e-6,
        ..Behaviour::default()
    })
    .await;
    let proxy = launch(proxy_config(pool.addr)).await;
    up(&proxy).await;
    let stop = CancellationToken::new();
    for i in 0..3 {
        miner(proxy.addr, &format!("farm.r{i}"), 80_000.0, &stop);
    }
    wait_until("200 shares at the pool", Duration::from_secs(60), || {
        pool.submits().len() >= 200
    })
    .await;
    // The pool narrows its mask: miners hear it at once (not with the next
    // job, which this pool never sends), and roll only those bits.
    pool.push(json!({"id": null, "method": "mining.set_version_mask", "params": ["0000e000"]}));
    let from = pool.submits().len();
    wait_until(
        "100 shares under the new mask",
        Duration::from_secs(60),
        || {
            let seen = pool.submits();
            seen.len() > from + 100
                && seen[seen.len() - 100..]
                    .iter()
                    .all(|s| s.version & 0x0fff_0000 == 0)
        },
    )
    .await;
    stop.cancel();
    let stats = &proxy.running.engine.stats;
    wait_until("every share answered", Duration::from_secs(15), || {
        stats.forwarded.load(Ordering::Relaxed)
            == stats.upstream_accepted.load(Ordering::Relaxed)
                + stats.upstream_rejected.load(Ordering::Relaxed)
    })
    .await;
    let seen = pool.submits();
    let rolled = seen.iter().filter(|s| s.version != 0x3000_0000).count();
    let bad = seen.iter().filter(|s| !s.valid).count();
    eprintln!(
        "{} shares at the OR-rule pool, {rolled} with rolled bits, {bad} invalid",
        seen.len()
    );
    assert!(rolled > 0, "miners rolled version bits");
    assert!(
        seen.iter().all(|s| s.version & 0x1000_0000 != 0),
        "bit 28 kept"
    );
    assert_eq!(bad, 0);
    assert_eq!(stats.upstream_rejected.load(Ordering::Relaxed), 0);
}

/// A hostile pool redirects the proxy: to a foreign host (refused,
/// counted, the connection kept), to another loopback address (refused:
/// nothing is resolved or guessed), then to another port of its own host
/// (followed). The pool's credentials only ever reach the configured host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_cannot_send_the_farm_or_its_credentials_elsewhere() {
    let a = Double::start(Behaviour::default()).await;
    let b = Double::start(Behaviour::default()).await;
    // A listener on another loopback address, standing for a foreign host.
    let foreign = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let foreign_port = foreign.local_addr().unwrap().port();
    let foreign_hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hits = foreign_hits.clone();
    tokio::spawn(async move {
        while foreign.accept().await.is_ok() {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut xc = proxy_config(a.addr);
    xc.api.listen = Some("127.0.0.1:0".parse().unwrap());
    let proxy = launch(xc).await;
    up(&proxy).await;
    let stats = proxy.running.engine.stats.clone();
    for (n, host) in [(1, "evil.example"), (2, "127.0.0.2"), (3, "localhost")] {
        a.push(
            json!({"id": null, "method": "client.reconnect", "params": [host, foreign_port, 0]}),
        );
        wait_until("the redirect refused", Duration::from_secs(10), || {
            stats.reconnects_refused.load(Ordering::Relaxed) == n
        })
        .await;
    }
    assert!(
        ready(&proxy),
        "the connection to the configured pool is kept"
    );
    assert_eq!(a.state.connections.load(Ordering::SeqCst), 1);
    // Same host, another port: followed, with the same credentials.
    a.push(json!({"id": null, "method": "client.reconnect", "params": ["127.0.0.1", b.addr.port(), 0]}));
    wait_until(
        "the proxy at the other port",
        Duration::from_secs(10),
        || !b.state.authorizes.lock().unwrap().is_empty(),
    )
    .await;
    assert_eq!(
        foreign_hits.load(Ordering::SeqCst),
        0,
        "nothing reached the foreign host"
    );
    for d in [&a, &b] {
        for (user, pass) in d.state.authorizes.lock().unwrap().iter() {
            assert_eq!((user.as_str(), pass.as_str()), ("farm", "secret"));
        }
    }
    let (_, metrics) = metrics(&proxy).await;
    assert!(
        metrics.contains("sluice_reconnects_refused_total 3"),
        "{metrics}"
    );
}

async fn metrics(node: &Node) -> (u16, String) {
    let api = node.running.api.expect("api enabled");
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&format!("http://{api}/metrics")).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    })
    .await
    .unwrap()
}

/// 100,000 junk worker names from one address, never a share: they are
/// capped per connection and per address and never enter the books, so a
/// new honest worker (from another address) still gets its own row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_names_cannot_crowd_out_an_honest_worker() {
    let mut pc = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    pc.pool_node.network_difficulty = 1.0;
    pc.difficulty.start = 1e-6;
    pc.difficulty.min = 1e-9;
    pc.api.listen = Some("127.0.0.1:0".parse().unwrap());
    let pool = launch(pc).await;
    let before = rss_kib();
    let mut held = Vec::new();
    let mut sent = 0usize;
    let mut conn = 0usize;
    while sent < 100_000 {
        let s = tokio::net::TcpStream::connect(pool.addr).await.unwrap();
        let (rd, mut wr) = s.into_split();
        let mut lines = String::from("{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n");
        for i in 0..1_024 {
            lines.push_str(&format!(
                "{{\"id\":{},\"method\":\"mining.authorize\",\"params\":[\"junk.{conn}.{i}\",\"x\"]}}\n",
                i + 2
            ));
        }
        sent += 1_024;
        conn += 1;
        let _ = wr.write_all(lines.as_bytes()).await;
        // Read what it answers until it stops (cut for refusals, or all
        // answered); connections that stay open keep their names.
        let mut r = BufReader::new(rd).lines();
        let mut answers = 0;
        while answers < 1_025 {
            match tokio::time::timeout(Duration::from_secs(10), r.next_line()).await {
                Ok(Ok(Some(_))) => answers += 1,
                _ => break,
            }
        }
        held.push((r, wr));
    }
    let stats = &pool.running.engine.stats;
    let refused = stats.rejected(Reject::TooManyWorkers);
    let grown = rss_kib().saturating_sub(before);
    eprintln!(
        "{sent} junk names over {conn} connections: {refused} refused as too many, RSS grew {grown} KiB"
    );
    assert!(refused > 0);
    // A worker that never shared has no books.
    assert_eq!(pool.running.books.find_worker("junk.0.0").map(|_| ()), None);
    let stop = CancellationToken::new();
    let honest = miner_with(
        MinerConfig {
            addr: pool.addr.to_string(),
            worker: "farm.honest".into(),
            hashes_per_sec: 50_000.0,
            bind: Some("127.0.0.3".parse::<IpAddr>().unwrap()),
            ..MinerConfig::default()
        },
        &stop,
    );
    wait_until(
        "the honest worker's shares accepted",
        Duration::from_secs(30),
        || honest.accepted.load(Ordering::Relaxed) >= 5,
    )
    .await;
    let api = pool.running.api.unwrap();
    let w: Value = tokio::task::spawn_blocking(move || {
        sluice::money::get_json(&format!("http://{api}/api/v1/workers/farm.honest")).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(w["name"], "farm.honest");
    assert_eq!(w["ip"], "127.0.0.3");
    assert!(w["totals"]["accepted"].as_u64().unwrap() > 0);
    let farm_workers = pool.running.books.find_worker("farm.honest").is_some();
    assert!(farm_workers);
    // Bounded: the names held are capped (16,384 per address by default);
    // 100,000 kept names would cost well over this.
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    stop.cancel();
    drop(held);
}

/// With its only pool gone, a miner's shares get error 20 (not `true`),
/// and after the grace period it is disconnected so its own backup pools
/// take over. Every share answered `true` is accounted for upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_pool_miners_hear_it_and_are_let_go() {
    let mut pc = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    pc.pool_node.network_difficulty = 1.0;
    // Below the miners': every share the proxy accepts goes up.
    pc.difficulty.min = 1e-9;
    pc.difficulty.start = 1e-7;
    pc.difficulty.vardiff.enabled = false;
    let pool = launch(pc).await;
    let mut xc = proxy_config(pool.addr);
    xc.listen.no_upstream_grace_secs = 2.0;
    let proxy = launch(xc).await;
    up(&proxy).await;
    let stop = CancellationToken::new();
    let miners: Vec<_> = (0..3)
        .map(|i| miner(proxy.addr, &format!("farm.n{i}"), 100_000.0, &stop))
        .collect();
    wait_until("shares accepted", Duration::from_secs(30), || {
        miners
            .iter()
            .all(|m| m.accepted.load(Ordering::Relaxed) > 2)
    })
    .await;
    drop(pool);
    let stats = proxy.running.engine.stats.clone();
    wait_until("every miner let go", Duration::from_secs(30), || {
        stats.disconnects(Disconnect::NoUpstream) == 3
    })
    .await;
    // Each miner has read everything the proxy sent before its counts are
    // read (its connection has ended on its side too).
    wait_until(
        "every miner saw its connection end",
        Duration::from_secs(30),
        || {
            miners
                .iter()
                .all(|m| m.finished.load(Ordering::Relaxed) > 0)
        },
    )
    .await;
    let told: u64 = miners
        .iter()
        .map(|m| m.rejected[0].load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "pool gone: {} shares answered 20 (no pool), miners saw {told}; {} disconnected after the grace",
        stats.rejected(Reject::NoUpstream),
        stats.disconnects(Disconnect::NoUpstream)
    );
    assert!(
        stats.rejected(Reject::NoUpstream) > 0,
        "shares after the pool went were refused"
    );
    assert_eq!(told, stats.rejected(Reject::NoUpstream));
    // Accepted = booked upstream or taken back: every share answered
    // `true` was answered by the pool, or reported lost with the
    // connection or undelivered (and the books took those back).
    assert_eq!(
        stats.accepted.load(Ordering::Relaxed),
        stats.upstream_accepted.load(Ordering::Relaxed)
            + stats.upstream_rejected.load(Ordering::Relaxed)
    );
    stop.cancel();
}

fn block_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Waits for the first block found after the `after`-th (block numbers
/// are handed out in the order blocks are found, before the log is
/// written: a block numbered later was found later).
async fn next_found(log: &std::path::Path, after: u64, what: &str) -> Value {
    let later = |r: &Value| r["event"] == "found" && r["id"].as_u64().is_some_and(|id| id > after);
    wait_until(what, Duration::from_secs(30), || {
        block_records(log).iter().any(later)
    })
    .await;
    block_records(log).into_iter().find(later).unwrap()
}

fn nonce_of(header_hex: &str) -> u32 {
    let b: Vec<u8> = (0..160)
        .step_by(2)
        .map(|i| u8::from_str_radix(&header_hex[i..i + 2], 16).unwrap())
        .collect();
    u32::from_le_bytes(b[76..80].try_into().unwrap())
}

/// Blocks found = blocks submitted, whatever the pool does:
/// - while its share queue overflows (a queue of one share, so shares are
///   refused as "pool busy" all the time), every block still reaches it;
/// - while it has stopped reading, a block is recorded, its submission
///   goes unanswered, the connection is dropped and the block is sent
///   again on the next one;
/// - while it is down, a block is recorded and sent once it is back.
///
/// Each block is in the block log before its miner hears anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_reach_the_pool_through_a_full_queue_a_stall_and_an_outage() {
    let dir = common::scratch_dir().join("blocks-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("blocks.jsonl");
    // Network difficulty 1/65,536 (nbits 0x1f00ffff) against shares of
    // 2·10⁻⁷: about one share in 76 is a block.
    let behaviour = Behaviour {
        nbits: 0x1f00_ffff,
        difficulty: 2e-7,
        ..Behaviour::default()
    };
    let pool = Double::start(behaviour.clone()).await;
    let mut xc = proxy_config(pool.addr);
    xc.routing.share_queue = 1;
    xc.blocks.log = Some(log.clone());
    xc.api.listen = Some("127.0.0.1:0".parse().unwrap());
    let proxy = launch(xc).await;
    up(&proxy).await;
    let stats = proxy.running.engine.stats.clone();
    let blocks = proxy.running.engine.blocks.clone();
    let stop = CancellationToken::new();
    for i in 0..2 {
        miner(proxy.addr, &format!("farm.b{i}"), 150_000.0, &stop);
    }
    let at_pool = |d: &Double, nonce: u32| d.submits().iter().any(|s| s.nonce == nonce && s.block);
    let accepted = |id: u64| {
        blocks
            .list()
            .iter()
            .any(|r| r.id == id && r.status == sluice_engine::blocks::BlockStatus::Accepted)
    };

    // A: the share queue overflows, blocks do not.
    wait_until(
        "three blocks in the log and a busy queue",
        Duration::from_secs(60),
        || {
            block_records(&log)
                .iter()
                .filter(|r| r["event"] == "found")
                .count()
                >= 3
                && stats.rejected(Reject::PoolBusy) >= 20
        },
    )
    .await;
    let found: Vec<Value> = block_records(&log)
        .into_iter()
        .filter(|r| r["event"] == "found")
        .collect();
    assert!(found.len() >= 3);
    for r in &found {
        let nonce = nonce_of(r["header"].as_str().unwrap());
        let id = r["id"].as_u64().unwrap();
        wait_until(
            "every block at the pool and accepted",
            Duration::from_secs(15),
            || at_pool(&pool, nonce) && accepted(id),
        )
        .await;
    }
    eprintln!(
        "queue of one: {} shares refused as pool busy, {} blocks found, all {} at the pool",
        stats.rejected(Reject::PoolBusy),
        stats.blocks_found.load(Ordering::Relaxed),
        found.len()
    );

    // B: the pool stops reading.
    pool.set(|b| b.stall = true);
    // Found after the stall began: its submission is a line the pool reads
    // only once stalled, so it goes unanswered. (Each of the two sessions
    // may hold a number it took but has not counted yet: skip those two.)
    let mark = stats.blocks_found.load(Ordering::Relaxed) + 2;
    let stalled = next_found(&log, mark, "a block found while the pool is stalled").await;
    let nonce = nonce_of(stalled["header"].as_str().unwrap());
    assert!(!at_pool(&pool, nonce), "the stalled pool read nothing");
    pool.set(|b| b.stall = false);
    let id = stalled["id"].as_u64().unwrap();
    wait_until(
        "the unanswered block sent again and accepted",
        Duration::from_secs(60),
        || at_pool(&pool, nonce) && accepted(id),
    )
    .await;
    assert!(
        pool.state.connections.load(Ordering::SeqCst) >= 2,
        "on a new connection"
    );
    assert!(
        pool.state.resumed.load(Ordering::SeqCst) >= 1,
        "which resumed the session (same extranonce1)"
    );

    // C: the pool goes away.
    let addr = pool.addr;
    drop(pool);
    wait_until("the upstream down", Duration::from_secs(15), || {
        !ready(&proxy)
    })
    .await;
    let mark = stats.blocks_found.load(Ordering::Relaxed);
    let down = next_found(&log, mark, "a block found while the pool is down").await;
    assert!(
        stats.rejected(Reject::NoUpstream) > 0,
        "shares meanwhile get 20"
    );
    let back = Double::start_on(addr, behaviour, None).await;
    let (nonce, id) = (
        nonce_of(down["header"].as_str().unwrap()),
        down["id"].as_u64().unwrap(),
    );
    wait_until(
        "the block at the pool once it is back",
        Duration::from_secs(60),
        || at_pool(&back, nonce) && accepted(id),
    )
    .await;
    stop.cancel();

    let (_, m) = metrics(&proxy).await;
    let api = proxy.running.api.unwrap();
    let view: Value = tokio::task::spawn_blocking(move || {
        sluice::money::get_json(&format!("http://{api}/api/v1/blocks")).unwrap()
    })
    .await
    .unwrap();
    eprintln!(
        "blocks: found {} submitted {} accepted {} rejected {} failed {}",
        view["found"], view["submitted"], view["accepted"], view["rejected"], view["failed"]
    );
    assert!(view["accepted"].as_u64().unwrap() >= 5, "{view}");
    assert_eq!(view["rejected"], 0);
    assert_eq!(view["failed"], 0);
    assert!(
        m.contains(&format!(
            "sluice_blocks_accepted_total {}",
            view["accepted"]
        )),
        "{m}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real binary killed with SIGKILL right after a block: its record is
/// whole on disk, and the next run shows it at /api/v1/blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_record_survives_kill_9() {
    let dir = common::scratch_dir().join("blocks-kill");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("blocks.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let pool = Double::start(Behaviour {
        nbits: 0x1f00_ffff,
        difficulty: 2e-7,
        ..Behaviour::default()
    })
    .await;
    let pool_url = format!("stratum+tcp://127.0.0.1:{}", pool.addr.port());
    let args = [
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--pool",
        &pool_url,
        "--user",
        "farm",
        "--min-difficulty",
        "0.000000001",
        "--start-difficulty",
        "0.000001",
        "--block-log",
        &log_s,
    ];
    let p = common::spawn(&args);
    let stop = CancellationToken::new();
    miner(
        format!("127.0.0.1:{}", p.port).parse().unwrap(),
        "farm.k",
        150_000.0,
        &stop,
    );
    wait_until("a block in the log", Duration::from_secs(60), || {
        block_records(&log).iter().any(|r| r["event"] == "found")
    })
    .await;
    common::kill9(p);
    stop.cancel();
    let text = std::fs::read_to_string(&log).unwrap();
    let found: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "found")
        .collect();
    assert!(!found.is_empty(), "{text}");
    for r in &found {
        assert_eq!(r["header"].as_str().unwrap().len(), 160, "{r}");
        assert!(!r["coinbase"].as_str().unwrap().is_empty());
        assert_eq!(r["worker"], "farm.k");
    }
    let mut args2 = args.to_vec();
    args2.extend(["--api-listen", "127.0.0.1:0"]);
    let mut p = common::spawn(&args2);
    let api = p.api.clone().unwrap();
    let blocks: Value = tokio::task::spawn_blocking(move || {
        sluice::money::get_json(&format!("{api}/api/v1/blocks")).unwrap()
    })
    .await
    .unwrap();
    let ids: Vec<u64> = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    for r in &found {
        assert!(ids.contains(&r["id"].as_u64().unwrap()), "{blocks}");
    }
    assert_eq!(common::sigterm(&mut p).code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
