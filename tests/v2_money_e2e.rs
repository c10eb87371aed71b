//! The conservation laws for Stratum V2 miners, on real sockets on
//! 127.0.0.1, with the V2 load generator (Noise, extended channels, real
//! hashing): straight into the pool node, and through `sluice proxy`
//! into a V1 pool. The work credited equals the hashes computed / 2^32
//! within the bound stated in `safety_e2e.rs`; a share answered by a
//! SubmitShares.Success is booked exactly once; every bad share comes
//! back with its error string.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::v2node::{V2Node as Node, launch};
use common::wait_until;
use sluice::config::{Config, Mode, PoolConfig, PoolNodeConfig};
use sluice_engine::upstream::{Health, PoolUrl};
use sluice_loadgen::{MinerConfig, MinerStats, V2Config};
use sluice_sv2::noise::AuthorityPublicKey;
use tokio_util::sync::CancellationToken;

const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

/// A node's V2 (or V1) URL.
fn pool_url(n: &Node, v2: bool) -> PoolUrl {
    if v2 {
        PoolUrl::v2("127.0.0.1", n.v2.port(), n.authority)
    } else {
        PoolUrl::v1("127.0.0.1", n.v1.port())
    }
}

/// `sluice proxy` in front of `urls` (each its own failover level, in
/// order), its miners held at difficulty `d`; with `ready`, once every
/// upstream is up.
async fn proxy(urls: &[PoolUrl], d: f64, ready: bool) -> Node {
    let mut xc = Config::new(Mode::Proxy, "127.0.0.1:0".parse().unwrap());
    xc.pools = urls
        .iter()
        .enumerate()
        .map(|(i, u)| PoolConfig {
            level: i as u32,
            ..PoolConfig::new(u.clone(), "farm")
        })
        .collect();
    xc.difficulty.min = d;
    xc.difficulty.start = d;
    xc.difficulty.max = d;
    let proxy = launch(xc, "v2-money-proxy").await;
    if ready {
        wait_until("every upstream ready", Duration::from_secs(15), || {
            proxy
                .running
                .engine
                .router
                .snapshot()
                .iter()
                .all(|p| p.connections.iter().any(|(_, h, _)| *h == Health::Ready))
        })
        .await;
    }
    proxy
}

/// A pool node whose share difficulty is held at `d` (min = max).
fn pool_config(d: f64) -> Config {
    let mut c = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    c.pool_node = PoolNodeConfig {
        network_difficulty: 1.0,
        block_interval_secs: 0.0,
        refresh_interval_secs: 1.0,
        ..Default::default()
    };
    c.difficulty.min = d;
    c.difficulty.start = d;
    c.difficulty.max = d;
    c
}

/// A V2 miner on an extended channel, or with `standard` a header-only
/// one.
fn v2_miner(
    node: &Node,
    worker: &str,
    hashes_per_sec: f64,
    standard: bool,
    stop: &CancellationToken,
) -> Arc<MinerStats> {
    let cfg = MinerConfig {
        addr: node.v2.to_string(),
        worker: worker.into(),
        hashes_per_sec,
        v2: Some(V2Config {
            authority: node.authority,
            standard,
        }),
        ..MinerConfig::default()
    };
    let stats = Arc::new(MinerStats::default());
    let (s, c) = (stats.clone(), stop.clone());
    tokio::spawn(async move { sluice_loadgen::run(cfg, s, c).await });
    stats
}

/// Σ hashes / 2^32 of the miners.
fn computed(miners: &[Arc<MinerStats>]) -> f64 {
    miners
        .iter()
        .map(|m| m.hashes.load(Ordering::Relaxed) as f64)
        .sum::<f64>()
        / HASHES_PER_DIFF1
}

/// The pool node's tally: (shares, Σ difficulty).
fn pool_tally(node: &Node) -> (u64, f64) {
    node.running
        .pool_workers
        .as_ref()
        .unwrap()
        .iter()
        .fold((0, 0.0), |(n, w), t| (n + t.shares, w + t.work))
}

/// The bound of `safety_e2e.rs`: 4/√(W/d_max) + 1 %.
fn check_credit(what: &str, credited: f64, want: f64, d_max: f64) {
    let err = credited / want - 1.0;
    let bound = 4.0 / (credited / d_max).sqrt() + 0.01;
    eprintln!(
        "{what}: miners computed {want:.6} diff-1 units, credited {credited:.6} ({:+.2} %, bound {:.2} %)",
        err * 100.0,
        bound * 100.0
    );
    assert!(
        err.abs() < bound,
        "{what}: credited {err:+.4}, bound {bound:.4}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_node_credits_the_work_v2_miners_did_and_books_each_share_once() {
    let d = 2e-7;
    let pool = launch(pool_config(d), "v2-money-pool").await;
    let stop = CancellationToken::new();
    let miners: Vec<_> = (0..4)
        // Two on extended channels, two header-only on standard ones.
        .map(|i| v2_miner(&pool, &format!("farm.v2m{i}"), 60_000.0, i >= 2, &stop))
        .collect();
    let stats = pool.running.engine.stats.clone();
    // Enough shares for a tight bound, however busy the machine.
    // Work worth 2,000 shares at the miners' difficulty: a bound of ~10 %
    // however the difficulty moved on the way.
    wait_until("work worth 2,000 shares", Duration::from_secs(120), || {
        stats.accepted_work.get() >= 2_000.0 * d
    })
    .await;
    stop.cancel();
    wait_until("every miner drained", Duration::from_secs(20), || {
        miners
            .iter()
            .all(|m| m.finished.load(Ordering::Acquire) == 1)
    })
    .await;
    let (n_pool, credited) = pool_tally(&pool);
    // Accepted = booked, exactly: every share a miner was told was
    // accepted is in the pool's tally and in its books, once.
    let told: u64 = miners
        .iter()
        .map(|m| m.accepted.load(Ordering::Relaxed))
        .sum();
    assert_eq!(
        told, n_pool,
        "SubmitShares.Success counts vs the pool's tally"
    );
    assert_eq!(stats.accepted.load(Ordering::Relaxed), n_pool);
    let books = pool.running.books.clone();
    for (i, m) in miners.iter().enumerate() {
        let name = format!("farm.v2m{i}");
        let page = books
            .workers_page(
                &sluice_books::WorkerQuery {
                    prefix: Some(name.clone()),
                    ..Default::default()
                },
                books.clock().now_ms(),
            )
            .unwrap();
        assert!(m.accepted.load(Ordering::Relaxed) > 0, "{name} mined");
        let w = page.workers.iter().find(|w| w.name == name).unwrap();
        assert_eq!(
            w.money.accepted_shares,
            m.accepted.load(Ordering::Relaxed),
            "{name}"
        );
    }
    check_credit("V2 miners → pool node", credited, computed(&miners), d);
    let told_work: f64 = miners.iter().map(|m| m.accepted_work()).sum();
    assert!(
        (told_work / credited - 1.0).abs() < 1e-9,
        "{told_work} vs {credited}"
    );
}

/// What a miner behind the proxy speaks.
#[derive(Clone, Copy, Debug)]
enum Kind {
    V1,
    V2Extended,
    V2Standard,
}

/// V2 miners → `sluice proxy` (V2 listener) → the pool node over V1: the
/// pool credits the work the V2 miners did; the proxy's books agree with
/// the pool; every share the proxy forwarded is answered and booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_pool_credits_the_work_v2_miners_did_through_the_proxy() {
    use Kind::{V2Extended, V2Standard};
    let kinds = [V2Extended, V2Standard, V2Extended, V2Standard];
    through_the_proxy("V2 miners → proxy → V1 pool", false, &kinds).await;
}

/// V1 miners → `sluice proxy` → the pool node over V2 (Noise, one
/// extended channel per upstream connection): translation V1 → V2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_pool_credits_the_work_v1_miners_did_through_the_proxy() {
    through_the_proxy("V1 miners → proxy → V2 pool", true, &[Kind::V1; 4]).await;
}

/// V1 and V2 miners (extended and standard channels) → `sluice proxy` →
/// the pool node over V2: all folded into the upstream's one channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_pool_credits_v1_and_v2_miners_aggregated_through_the_proxy() {
    use Kind::{V1, V2Extended, V2Standard};
    let kinds = [V1, V2Extended, V2Standard, V1];
    through_the_proxy("V1 + V2 miners → proxy → V2 pool", true, &kinds).await;
}

fn v1_miner(
    node: &Node,
    worker: &str,
    hashes_per_sec: f64,
    stop: &CancellationToken,
) -> Arc<MinerStats> {
    let cfg = MinerConfig {
        addr: node.v1.to_string(),
        worker: worker.into(),
        hashes_per_sec,
        ..MinerConfig::default()
    };
    let stats = Arc::new(MinerStats::default());
    let (s, c) = (stats.clone(), stop.clone());
    tokio::spawn(async move { sluice_loadgen::run(cfg, s, c).await });
    stats
}

/// Miners of `kinds` → `sluice proxy` → the pool node over V1 or V2
/// (`upstream_v2`), the pool's vardiff starting 10x below the miners.
async fn through_the_proxy(name: &str, upstream_v2: bool, kinds: &[Kind]) {
    let d = 2e-7;
    let mut pc = pool_config(d);
    pc.difficulty.min = d / 10.0;
    pc.difficulty.start = d / 10.0;
    pc.difficulty.vardiff.target_share_interval_secs = 0.1;
    let pool = launch(pc, "v2-money-upstream").await;
    let proxy = proxy(&[pool_url(&pool, upstream_v2)], d, true).await;
    let stop = CancellationToken::new();
    let miners: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let w = format!("farm.p{i}");
            match k {
                Kind::V1 => v1_miner(&proxy, &w, 60_000.0, &stop),
                Kind::V2Extended => v2_miner(&proxy, &w, 60_000.0, false, &stop),
                Kind::V2Standard => v2_miner(&proxy, &w, 60_000.0, true, &stop),
            }
        })
        .collect();
    let stats = proxy.running.engine.stats.clone();
    // Work worth 2,000 shares at the miners' difficulty: a bound of ~10 %
    // however the difficulty moved on the way.
    wait_until("work worth 2,000 shares", Duration::from_secs(120), || {
        stats.accepted_work.get() >= 2_000.0 * d
    })
    .await;
    stop.cancel();
    wait_until(
        "every forwarded share answered and booked by the pool",
        Duration::from_secs(20),
        || {
            let fwd = stats.forwarded.load(Ordering::Relaxed);
            let answered = stats.upstream_accepted.load(Ordering::Relaxed)
                + stats.upstream_rejected.load(Ordering::Relaxed);
            miners
                .iter()
                .all(|m| m.finished.load(Ordering::Acquire) == 1)
                && fwd > 0
                && answered == fwd
                && pool_tally(&pool).0 == stats.upstream_accepted.load(Ordering::Relaxed)
        },
    )
    .await;
    assert_eq!(stats.upstream_rejected.load(Ordering::Relaxed), 0);
    let told: u64 = miners
        .iter()
        .map(|m| m.accepted.load(Ordering::Relaxed))
        .sum();
    assert_eq!(told, stats.accepted.load(Ordering::Relaxed));
    let (_, credited) = pool_tally(&pool);
    eprintln!(
        "proxy: accepted {} booked {:.6}, forwarded {}, withheld {}, upstream accepted {}; miners told {:.6}",
        stats.accepted.load(Ordering::Relaxed),
        stats.accepted_work.get(),
        stats.forwarded.load(Ordering::Relaxed),
        stats.upstream_withheld.load(Ordering::Relaxed),
        stats.upstream_accepted.load(Ordering::Relaxed),
        miners.iter().map(|m| m.accepted_work()).sum::<f64>(),
    );
    check_credit(name, credited, computed(&miners), d);
    let booked = stats.accepted_work.get();
    let bound = 4.0 * (d / credited + d / booked).sqrt() + 0.01;
    assert!(
        (booked / credited - 1.0).abs() < bound,
        "the proxy booked {booked}, the pool credited {credited}"
    );
}

/// `sluice loadgen` with a `stratum2+tcp://` URL: V2 miners on extended
/// and on standard channels, real hashing, the JSON report; every kind of
/// bad share answered with its V2 error string (and counted under the V1
/// code of the same meaning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_loadgen_reports_every_bad_share_by_its_error() {
    let mut pc = pool_config(1e-8);
    pc.difficulty.max = 1.0;
    let pool = launch(pc, "v2-loadgen").await;
    for channel in ["extended", "standard"] {
        let url = format!("stratum2+tcp://{}/{}", pool.v2, pool.authority);
        let out = tokio::task::spawn_blocking(move || {
            common::output([
                "loadgen",
                "--channel",
                channel,
                "--url",
                &url,
                "--miners",
                "10",
                "--duration",
                "3s",
                "--share-rate",
                "20",
                "--bad-fraction",
                "0.3",
                "--json",
            ])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["connected"], 10, "{channel}: {v}");
        assert_eq!(v["disconnects"], 0, "{channel}: {v}");
        assert!(v["accepted"].as_u64().unwrap() > 100, "{channel}: {v}");
        assert!(
            v["submit_latency"]["count"].as_u64().unwrap() > 100,
            "{channel}: {v}"
        );
        // Shares still in flight when the run ends are not answered: allow a
        // few. Stale shares name the job a new block replaced (stale-share)
        // or, before any, a job never sent (invalid-job-id).
        let sent = v["bad_sent"].as_array().unwrap();
        let by_error = &v["rejected_by_error"];
        let n = |k: &str| by_error[k].as_u64().unwrap_or(0);
        for (kind, answered) in [
            (0, n("stale-share") + n("invalid-job-id")),
            (1, n("duplicate-share")),
            (2, n("difficulty-too-low")),
        ] {
            let s = sent[kind].as_u64().unwrap();
            assert!(s > 5, "{channel}: bad kind {kind} sent {s}: {v}");
            assert!(
                answered <= s && answered + 5 >= s,
                "{channel}: bad kind {kind}: {answered} answered of {s} sent: {v}"
            );
        }
        let codes = &v["rejected_by_code"];
        assert_eq!(
            codes["22"].as_u64().unwrap_or(0),
            n("duplicate-share"),
            "{channel}: {v}"
        );
        // And the pool counted what it refused.
        let stats = &pool.running.engine.stats;
        assert!(stats.rejected(sluice_engine::stats::Reject::Duplicate) >= n("duplicate-share"));
    }
}

/// Failover between a V2 and a V1 pool, both ways: V1 and V2 miners
/// behind the proxy keep their connections, get the backup's work, and
/// their shares are accepted there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_between_a_v2_and_a_v1_pool_keeps_every_miner_connected() {
    for primary_v2 in [true, false] {
        let what = if primary_v2 { "V2 → V1" } else { "V1 → V2" };
        let d = 1e-6;
        let primary = launch(pool_config(d), "failover-primary").await;
        let backup = launch(pool_config(d), "failover-backup").await;
        let urls = [
            pool_url(&primary, primary_v2),
            pool_url(&backup, !primary_v2),
        ];
        let proxy = proxy(&urls, d, true).await;
        let stop = CancellationToken::new();
        let miners = [
            v1_miner(&proxy, "farm.f0", 40_000.0, &stop),
            v2_miner(&proxy, "farm.f1", 40_000.0, false, &stop),
            v2_miner(&proxy, "farm.f2", 40_000.0, true, &stop),
        ];
        wait_until(
            &format!("{what}: shares at the primary"),
            Duration::from_secs(30),
            || {
                pool_tally(&primary).0 >= 20
                    && miners
                        .iter()
                        .all(|m| m.accepted.load(Ordering::Relaxed) > 0)
            },
        )
        .await;
        assert_eq!(pool_tally(&backup).0, 0, "{what}: the backup idles");
        let before: Vec<u64> = miners
            .iter()
            .map(|m| m.accepted.load(Ordering::Relaxed))
            .collect();
        let sessions = proxy.running.engine.stats.sessions.load(Ordering::Relaxed);
        drop(primary);
        wait_until(
            &format!("{what}: every miner's shares accepted at the backup"),
            Duration::from_secs(30),
            || {
                pool_tally(&backup).0 >= 20
                    && miners
                        .iter()
                        .zip(&before)
                        .all(|(m, b)| m.accepted.load(Ordering::Relaxed) > b + 3)
            },
        )
        .await;
        // No miner was dropped: each is on its first connection.
        assert!(
            miners
                .iter()
                .all(|m| m.finished.load(Ordering::Acquire) == 0),
            "{what}: a miner lost its connection"
        );
        assert_eq!(
            proxy.running.engine.stats.sessions.load(Ordering::Relaxed),
            sessions,
            "{what}"
        );
        stop.cancel();
    }
}

/// How a fake V2 pool misbehaves.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Its certificate is signed by another authority than configured.
    WrongKey,
    /// After the handshake, bytes that do not decrypt.
    Garbage,
    /// After the handshake, a frame whose message does not decode.
    BadMessage,
}

/// A fake V2 pool on 127.0.0.1 behaving as `how` on every connection;
/// returns its address and the authority key the proxy is told.
async fn hostile_pool(how: Hostile) -> (SocketAddr, AuthorityPublicKey) {
    use sluice_sv2::noise::{AuthorityKeypair, ResponderConfig, StaticKeypair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let told = AuthorityKeypair::generate().unwrap();
    let signer = match how {
        Hostile::WrongKey => AuthorityKeypair::generate().unwrap(),
        _ => told.clone(),
    };
    let now = sluice::keys::unix_now();
    let config = Arc::new(
        ResponderConfig::new(
            &signer,
            &StaticKeypair::generate().unwrap(),
            now - 60,
            now + 3600,
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(async move {
                let max = sluice_sv2::frame::DEFAULT_MAX_PAYLOAD;
                let Ok(mut codec) = sluice_sv2::codec::accept(&mut sock, &config, max).await else {
                    return;
                };
                let mut out = bytes::BytesMut::new();
                match how {
                    Hostile::WrongKey => return,
                    Hostile::Garbage => out.extend_from_slice(&[0x5a; 200]),
                    Hostile::BadMessage => {
                        // A SetupConnection.Success one byte long.
                        let frame = sluice_sv2::Frame {
                            header: sluice_sv2::Header::new(0x01, false, 1),
                            payload: bytes::Bytes::from_static(&[0]),
                        };
                        tokio_util::codec::Encoder::encode(&mut codec, &frame, &mut out).unwrap();
                    }
                }
                let _ = sock.write_all(&out).await;
                // Hold the connection until the proxy drops it.
                let mut sink = [0u8; 1024];
                while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, told.public_key())
}

/// One hostile V2 pool never hurts the miners: a wrong certificate, bytes
/// that do not decrypt and a message that does not decode each fail that
/// upstream with its reason (counted), and the miners mine on at the
/// backup without losing their connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_v2_pool_is_cut_with_its_reason_and_the_miners_mine_on() {
    let d = 1e-6;
    let backup = launch(pool_config(d), "hostile-backup").await;
    for (how, why) in [
        (Hostile::WrongKey, "V2 handshake"),
        (Hostile::Garbage, "noise"),
        (Hostile::BadMessage, "undecodable message from pool"),
    ] {
        let (addr, key) = hostile_pool(how).await;
        let urls = [
            PoolUrl::v2("127.0.0.1", addr.port(), key),
            pool_url(&backup, false),
        ];
        let proxy = proxy(&urls, d, false).await;
        let router = proxy.running.engine.router.clone();
        let reason = || {
            router.snapshot()[0]
                .connections
                .iter()
                .find_map(|(_, h, _)| match h {
                    Health::Failed(r) => Some(r.clone()),
                    _ => None,
                })
        };
        wait_until(
            &format!("{how:?}: the hostile upstream failed for its reason"),
            Duration::from_secs(15),
            || reason().is_some_and(|r| r.contains(why)),
        )
        .await;
        let stats = proxy.running.engine.stats.clone();
        assert!(stats.upstream_failures.load(Ordering::Relaxed) >= 1);
        let stop = CancellationToken::new();
        let miners = [
            v1_miner(&proxy, "farm.h0", 40_000.0, &stop),
            v2_miner(&proxy, "farm.h1", 40_000.0, false, &stop),
        ];
        wait_until(
            &format!("{how:?}: shares accepted at the backup"),
            Duration::from_secs(30),
            || {
                miners
                    .iter()
                    .all(|m| m.accepted.load(Ordering::Relaxed) >= 5)
            },
        )
        .await;
        assert!(
            miners
                .iter()
                .all(|m| m.finished.load(Ordering::Acquire) == 0),
            "{how:?}: no miner lost its connection"
        );
        stop.cancel();
    }
}
