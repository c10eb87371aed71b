//! The books end to end: simulated miners that count the hashes they
//! really computed → sluice (pool-node role) → its HTTP API, read over real
//! sockets on 127.0.0.1; the price feed going down; restarts with the
//! SQLite store, killed and clean.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use sluice::config::{Config, Mode, PoolNodeConfig};
use sluice::money::get_json;
use sluice::run::Running;
use sluice_loadgen::{MinerConfig, MinerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

fn pool_config() -> Config {
    let mut c = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    c.pool_node = PoolNodeConfig {
        // Blocks stay rare (one per ~2^32 hashes): the test is about shares.
        network_difficulty: 1.0,
        block_interval_secs: 0.0,
        refresh_interval_secs: 2.0,
        fee: 0.02,
        ..Default::default()
    };
    c.difficulty.min = 1e-8;
    c.difficulty.start = 1e-6;
    c.api.listen = Some("127.0.0.1:0".parse().unwrap());
    c.books.price.usd = Some(100_000.0);
    c.books.power.price_usd_per_kwh = 0.06;
    c.books.power.default_efficiency_j_per_th = Some(17.5);
    c
}

async fn launch(cfg: &Config) -> (SocketAddr, String, CancellationToken, Running) {
    let (addr, running, cancel) = common::serve(cfg).await;
    let api = format!("http://{}", running.api.unwrap());
    (addr, api, cancel, running)
}

/// A simulated miner at fixed difficulty `d`, until `stop`.
fn mine(
    addr: String,
    worker: &str,
    d: f64,
    hashes_per_sec: f64,
    bad_fraction: f64,
    stop: &CancellationToken,
) -> Arc<MinerStats> {
    let stats = Arc::new(MinerStats::default());
    let cfg = MinerConfig {
        addr,
        worker: worker.into(),
        password: format!("d={d}"),
        hashes_per_sec,
        bad_fraction,
        ..MinerConfig::default()
    };
    tokio::spawn(sluice_loadgen::run(cfg, stats.clone(), stop.clone()));
    stats
}

async fn get(url: String) -> Value {
    tokio::task::spawn_blocking(move || get_json(&url).unwrap())
        .await
        .unwrap()
}

/// Four miners at a fixed difficulty of 10⁻⁶ (one share per ~4,295
/// hashes), 5 % of their shares sent bad, for 20 s.
///
/// The bound: each hash meets the share target independently with
/// probability p = 1/(d·2³²), so the share count N over H hashes is
/// binomial with mean λ = H·p and variance ≈ λ; the estimate N·d·2³²
/// of H has relative standard deviation 1/√λ. We allow 4/√λ (false alarm
/// ~6·10⁻⁵) plus 1 % for timing: the books count from authorize, the
/// miners from their first job, and a few shares are in flight when read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashrate_and_hashprice_match_the_work_really_done() {
    let cfg = pool_config();
    let (addr, api, cancel, _running) = launch(&cfg).await;
    let d = 1e-6;
    let miners: Vec<(String, Arc<MinerStats>)> = (0..4)
        .map(|i| (format!("farm.s21-{i}"), Arc::new(MinerStats::default())))
        .collect();
    let stop = CancellationToken::new();
    for (i, (name, stats)) in miners.iter().enumerate() {
        let mc = MinerConfig {
            addr: addr.to_string(),
            worker: name.clone(),
            password: format!("d={d}"),
            hashes_per_sec: 150_000.0,
            bad_fraction: 0.05,
            seed: i as u64 + 7,
            ..MinerConfig::default()
        };
        tokio::spawn(sluice_loadgen::run(mc, stats.clone(), stop.clone()));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.cancel();
    // Miners finish their in-flight shares and leave; wait for that, not
    // for a fixed time.
    common::wait_until_async(
        "the miners' answers are in and they are gone",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let finished = miners
                .iter()
                .all(|(_, s)| s.finished.load(Ordering::Acquire) == 1);
            let accepted: u64 = miners
                .iter()
                .map(|(_, s)| s.accepted.load(Ordering::Relaxed))
                .sum();
            async move {
                if !finished {
                    return false;
                }
                let farm = get(format!("{api}/api/v1/farm")).await;
                let page = get(format!("{api}/api/v1/workers?window=1h")).await;
                farm["totals"]["accepted"].as_u64() == Some(accepted)
                    && page["workers"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|w| w["connections"] == 0))
            }
        },
    )
    .await;

    let page = get(format!(
        "{api}/api/v1/workers?window=1h&sort=name&order=asc"
    ))
    .await;
    let rows = page["workers"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{page}");
    let network = page["network_hashprice"].as_f64().unwrap();
    let (mut est_sum, mut real_sum, mut hashes_sum) = (0.0, 0.0, 0.0);
    for ((name, stats), row) in miners.iter().zip(rows) {
        assert_eq!(row["name"], name.as_str());
        let span = row["span_s"].as_f64().unwrap();
        let hashes = stats.hashes.load(Ordering::Relaxed) as f64;
        let real = hashes / span;
        let est = row["hashrate_submitted"].as_f64().unwrap();
        let lambda = hashes / (d * HASHES_PER_DIFF1);
        let bound = 4.0 / lambda.sqrt() + 0.01;
        let err = est / real - 1.0;
        eprintln!(
            "{name}: real {real:.0} H/s, 1 h estimate {est:.0} H/s, error {:+.2} % (bound {:.2} %, {lambda:.0} shares expected)",
            err * 100.0,
            bound * 100.0
        );
        assert!(err.abs() < bound, "{name}: error {err} over bound {bound}");
        est_sum += est;
        real_sum += real;
        hashes_sum += hashes;

        // Effective hashprice = network × accept rate × (1 − fee), the
        // accept rate as the miner itself saw it.
        let acc = stats.accepted.load(Ordering::Relaxed) as f64;
        let rej = stats.rejected_total() as f64;
        let accept = acc / (acc + rej);
        assert!(rej > 0.0 && accept < 0.999, "some shares were bad");
        let eff = row["effective_hashprice"].as_f64().unwrap();
        let expect = network * accept * (1.0 - 0.02);
        assert!(
            (eff / expect - 1.0).abs() < 0.005,
            "{name}: effective {eff} vs network × accept × (1 − fee) = {expect}"
        );
        assert!((row["efficiency"].as_f64().unwrap() - accept * 0.98).abs() < 0.005);
        assert_eq!(row["connections"], 0, "miners are gone");
        assert_eq!(
            row["user_agent"],
            format!("sluice-loadgen/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(row["ip"], "127.0.0.1");
    }
    let lambda = hashes_sum / (d * HASHES_PER_DIFF1);
    let bound = 4.0 / lambda.sqrt() + 0.01;
    let err = est_sum / real_sum - 1.0;
    eprintln!(
        "farm: real {real_sum:.0} H/s, estimate {est_sum:.0} H/s, error {:+.2} % (bound {:.2} %)",
        err * 100.0,
        bound * 100.0
    );
    assert!(err.abs() < bound);

    // The rest of the API over the same books.
    let one = &miners[0].0;
    let detail = get(format!("{api}/api/v1/workers/{one}")).await;
    assert_eq!(detail["name"], one.as_str());
    let series = detail["series"].as_array().unwrap();
    // A day: 2-hour points, then (after one for the rest of the current
    // 2 hours when they began over an hour ago) 5 min points.
    let (first, last) = (&series[0], series.last().unwrap());
    let span = last["start"].as_u64().unwrap() - first["start"].as_u64().unwrap();
    assert!(span >= 23 * 3600, "a day of points: {series:?}");
    assert_eq!(first["secs"].as_f64().unwrap(), 7200.0);
    assert!(last["secs"].as_f64().unwrap() <= 300.0, "{last}");
    assert!(series.last().unwrap()["accepted_shares"].as_u64().unwrap() > 0);
    for w in ["1m", "5m", "1h", "24h"] {
        assert!(
            detail["windows"][w]["accepted_shares"].as_u64().unwrap() > 0,
            "{w}"
        );
    }
    assert!(!detail["rejects_by_reason"].as_object().unwrap().is_empty());
    let farm = get(format!("{api}/api/v1/farm")).await;
    assert_eq!(farm["workers"], 4);
    let acc_total: u64 = miners
        .iter()
        .map(|(_, s)| s.accepted.load(Ordering::Relaxed))
        .sum();
    // Accepted = booked: every share answered `true` is in the books once.
    let booked = farm["totals"]["accepted"].as_u64().unwrap();
    assert_eq!(booked, acc_total);
    let pools = get(format!("{api}/api/v1/pools")).await;
    assert_eq!(pools[0]["up"], true);
    assert_eq!(pools[0]["fee"], 0.02);
    let hp = get(format!("{api}/api/v1/hashprice")).await;
    assert!((hp["break_even_hashprice"].as_f64().unwrap() - 25.2).abs() < 1e-9);
    assert!((hp["network_hashprice_usd"].as_f64().unwrap() - network).abs() < 1e-6 * network);

    // Probes and metrics.
    assert_eq!(common::http_get(format!("{api}/healthz")).await.0, 200);
    assert_eq!(common::http_get(format!("{api}/readyz")).await.0, 200);
    let (status, bad) = common::http_get(format!("{api}/api/v1/workers?sort=bogus")).await;
    assert_eq!(status, 400);
    assert!(bad.contains("unknown sort field"), "{bad}");
    assert_eq!(
        common::http_get(format!("{api}/api/v1/workers?window=2h"))
            .await
            .0,
        400
    );
    assert_eq!(
        common::http_get(format!("{api}/api/v1/workers?limit=-1"))
            .await
            .0,
        400
    );
    assert_eq!(
        common::http_get(format!("{api}/api/v1/workers/nobody"))
            .await
            .0,
        404
    );
    let (_, metrics) = common::http_get(format!("{api}/metrics")).await;
    for needle in [
        "sluice_build_info{version=",
        "sluice_shares_accepted_total ",
        "sluice_shares_rejected_total{reason=\"duplicate\"}",
        "sluice_work_hashes_total{outcome=\"accepted\"}",
        "sluice_upstream_submit_latency_seconds_bucket{le=\"+Inf\"}",
        "sluice_network_hashprice_usd_per_phs_day ",
        "sluice_farm_hashprice_usd_per_phs_day{window=\"1h\"}",
        "sluice_upstream_up{pool=\"local synthetic chain\"} 1",
        "sluice_pool_work_hashes_total{pool=\"local synthetic chain\",outcome=\"stale\"}",
        "sluice_pool_earned_btc_total{pool=\"local synthetic chain\"}",
        "sluice_api_bad_requests_total 4",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    // No per-worker labels, `_total` only on counters.
    assert!(!metrics.contains("farm.s21"));
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE")) {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[2].ends_with("_total"), f[3] == "counter", "{line}");
    }
    cancel.cancel();
}

/// Serves `{"bitcoin":{"usd":P}}` on 127.0.0.1 until the token fires.
async fn price_server(price: f64, stop: CancellationToken) -> SocketAddr {
    json_server(format!("{{\"bitcoin\":{{\"usd\":{price}}}}}"), stop).await
}

/// Serves `body` as JSON to every request until `stop`.
async fn json_server(body: String, stop: CancellationToken) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                r = l.accept() => r.unwrap(),
                _ = stop.cancelled() => return,
            };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_feed_down_marks_money_stale() {
    let feed_stop = CancellationToken::new();
    let feed = price_server(87_654.0, feed_stop.clone()).await;
    let mut cfg = pool_config();
    cfg.books.price.usd = None;
    cfg.books.price.feed_url = Some(format!("http://{feed}/price"));
    cfg.books.price.poll_interval_secs = 0.1;
    cfg.books.price.max_age_secs = 1.0;
    let (_addr, api, cancel, _running) = launch(&cfg).await;
    common::wait_until_async("the feed's price", Duration::from_secs(15), || {
        let url = format!("{api}/api/v1/hashprice");
        async move { get(url).await["price"]["usd"] == 87_654.0 }
    })
    .await;
    let hp = get(format!("{api}/api/v1/hashprice")).await;
    assert_eq!(hp["price"]["usd"], 87_654.0, "{hp}");
    assert_eq!(hp["price"]["stale"], false);
    assert_eq!(hp["price"]["source"], "feed");

    feed_stop.cancel();
    common::wait_until_async("the price marked stale", Duration::from_secs(15), || {
        let url = format!("{api}/api/v1/hashprice");
        async move { get(url).await["price"]["stale"] == true }
    })
    .await;
    let hp = get(format!("{api}/api/v1/hashprice")).await;
    // Marked stale, not silently frozen: the last price is still shown,
    // with its age.
    assert_eq!(hp["price"]["stale"], true, "{hp}");
    assert_eq!(hp["price"]["usd"], 87_654.0);
    assert!(hp["price"]["age_s"].as_f64().unwrap() > 1.0);
    let page = get(format!("{api}/api/v1/workers")).await;
    assert_eq!(page["price"]["stale"], true);
    let (_, metrics) = common::http_get(format!("{api}/metrics")).await;
    assert!(metrics.contains("sluice_btc_price_stale 1"), "{metrics}");
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sluice_price_feed_polls_total{outcome=\"error\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 3.0, "failed polls are counted: {errors}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_price_feed_overrides_the_schedule_while_fresh() {
    let feed_stop = CancellationToken::new();
    let feed = json_server(r#"{"usd_per_kwh":0.21}"#.into(), feed_stop.clone()).await;
    let mut cfg = pool_config();
    cfg.books.power.feed_url = Some(format!("http://{feed}/now"));
    cfg.books.power.poll_interval_secs = 0.1;
    cfg.books.power.max_age_secs = 1.0;
    let (_addr, api, cancel, _running) = launch(&cfg).await;
    common::wait_until_async("the fed power price", Duration::from_secs(15), || {
        let url = format!("{api}/api/v1/hashprice");
        async move { get(url).await["power_price_usd_per_kwh"] == 0.21 }
    })
    .await;
    let page = get(format!("{api}/api/v1/workers")).await;
    assert_eq!(page["price"]["power_source"], "feed", "{page}");
    assert_eq!(page["price"]["power_usd_per_kwh"], 0.21, "{page}");
    // The advice uses it for the current hour.
    let a = get(format!("{api}/api/v1/advice?hashprice=40")).await;
    let hour = a["scenario"]["hour"].as_u64().unwrap() as usize;
    assert_eq!(a["scenario"]["prices"][hour], 0.21, "{a}");
    // An S21 (17.5 J/TH) costs 24 · 17.5 · 0.21 = 88.2 $/PH/day now.
    assert!(
        (a["classes"][0]["break_even_hashprice"].as_f64().unwrap() - 88.2).abs() < 1e-9,
        "{a}"
    );
    feed_stop.cancel();
    common::wait_until_async("the configured price back", Duration::from_secs(15), || {
        let url = format!("{api}/api/v1/hashprice");
        async move { get(url).await["power_price_usd_per_kwh"] == 0.06 }
    })
    .await;
    let (_, metrics) = common::http_get(format!("{api}/metrics")).await;
    assert!(
        metrics.contains("sluice_power_price_usd_per_kwh 0.06"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_power_price_feed_polls_total{outcome=\"error\"}"),
        "{metrics}"
    );
    cancel.cancel();
}

fn farm_accepted(api: &str) -> u64 {
    get_json(&format!("{api}/api/v1/farm")).unwrap()["totals"]["accepted"]
        .as_u64()
        .unwrap()
}

fn write_config(
    dir: &std::path::Path,
    name: &str,
    store: &std::path::Path,
    interval: f64,
) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"mode = "pool"
[listen]
address = "127.0.0.1:0"
[difficulty]
start = 0.00001
min = 0.00000001
[pool_node]
network_difficulty = 1.0
block_interval_secs = 0
[api]
listen = "127.0.0.1:0"
[books]
store = "{}"
snapshot_interval_secs = {interval}
[books.price]
usd = 90000
"#,
            store.display()
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// The loss window: after `kill -9`, the books come back with everything
/// recorded up to one snapshot interval before the kill; after SIGTERM,
/// with everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_survive_kill_and_restart_within_the_loss_window() {
    let dir = std::env::temp_dir().join(format!("sluice-books-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("books.sqlite");
    let fast = write_config(&dir, "fast.toml", &store, 1.0);

    let p = common::spawn(&["run", "--config", &fast]);
    let api = p.api.clone().unwrap();
    let stop = CancellationToken::new();
    let stats = mine(
        format!("127.0.0.1:{}", p.port),
        "rack1.s21-01",
        0.000002,
        100_000.0,
        0.0,
        &stop,
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Still mining: what the books held 1.5 snapshot intervals before the
    // kill must survive it.
    let api2 = api.clone();
    let before = tokio::task::spawn_blocking(move || farm_accepted(&api2))
        .await
        .unwrap();
    assert!(before > 0);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let at_kill = stats.accepted.load(Ordering::Relaxed);
    common::kill9(p);
    stop.cancel();

    let mut p = common::spawn(&["run", "--config", &fast]);
    let api = p.api.clone().unwrap();
    let api2 = api.clone();
    let (after, worker) = tokio::task::spawn_blocking(move || {
        (
            farm_accepted(&api2),
            get_json(&format!("{api2}/api/v1/workers/rack1.s21-01")).unwrap(),
        )
    })
    .await
    .unwrap();
    eprintln!(
        "kill -9: {before} accepted 1.5 s before the kill, {at_kill} at the kill, {after} after restart"
    );
    assert!(
        after >= before,
        "lost more than the loss window: {after} < {before}"
    );
    assert!(after <= at_kill);
    assert_eq!(worker["totals"]["accepted"].as_u64().unwrap(), after);
    assert!(
        worker["windows"]["1h"]["hashrate_accepted"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(common::sigterm(&mut p).code(), Some(0));
    drop(p);

    // A clean shutdown loses nothing, even with a snapshot interval far
    // longer than the run.
    let slow = write_config(&dir, "slow.toml", &store, 3_600.0);
    let p = common::spawn(&["run", "--config", &slow]);
    let stop = CancellationToken::new();
    let second = mine(
        format!("127.0.0.1:{}", p.port),
        "rack1.s21-01",
        0.000002,
        100_000.0,
        0.0,
        &stop,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let mut p = p;
    let api = p.api.clone().unwrap();
    // The miner drains its in-flight shares: wait until the books hold
    // every one it saw accepted (and it saw them all).
    common::wait_until_async(
        "the second run's shares booked",
        Duration::from_secs(15),
        || {
            let api = api.clone();
            let finished = second.finished.load(Ordering::Acquire) == 1;
            let want = after + second.accepted.load(Ordering::Relaxed);
            async move {
                finished
                    && tokio::task::spawn_blocking(move || farm_accepted(&api))
                        .await
                        .unwrap()
                        == want
            }
        },
    )
    .await;
    let api2 = api.clone();
    let before = tokio::task::spawn_blocking(move || farm_accepted(&api2))
        .await
        .unwrap();
    assert!(before > after, "the second run mined");
    assert_eq!(common::sigterm(&mut p).code(), Some(0));
    drop(p);
    let mut p = common::spawn(&["run", "--config", &slow]);
    let api = p.api.clone().unwrap();
    let again = tokio::task::spawn_blocking(move || farm_accepted(&api))
        .await
        .unwrap();
    assert_eq!(again, before, "SIGTERM loses nothing");
    assert_eq!(common::sigterm(&mut p).code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Proxy mode: the books value shares at the upstream job's own coinbase
/// (parsed from coinb1 ‖ extranonce ‖ coinb2) and nbits, less the pool's
/// configured fee; the pool's verdicts show in the pool's books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_books_value_shares_at_the_pools_own_coinbase() {
    let mut pool_cfg = pool_config();
    pool_cfg.api.listen = None;
    pool_cfg.pool_node.network_difficulty = 2.0;
    let (pool_addr, _pool, cancel) = common::serve(&pool_cfg).await;

    let mut proxy_cfg = pool_config();
    proxy_cfg.mode = Mode::Proxy;
    proxy_cfg.pools = vec![sluice::config::PoolConfig {
        fee: 0.015,
        payout: sluice::config::PayoutScheme::Pplns,
        password: "d=0.0000005".into(),
        ..sluice::config::PoolConfig::new(
            sluice_engine::upstream::PoolUrl::v1("127.0.0.1", pool_addr.port()),
            "farm",
        )
    }];
    let (addr, api, proxy_cancel, _running) = launch(&proxy_cfg).await;
    let stop = CancellationToken::new();
    let miner = mine(
        addr.to_string(),
        "farm.s21-9",
        0.000001,
        100_000.0,
        0.0,
        &stop,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    // Every share the proxy accepted was forwarded (the pool's difficulty
    // is the cap) and answered by the pool.
    // The miner stops once every share it sent is answered.
    let stats = _running.engine.stats.clone();
    common::wait_until(
        "every forwarded share answered",
        Duration::from_secs(15),
        || {
            let acc = stats.accepted.load(Ordering::Relaxed);
            miner.finished.load(Ordering::Acquire) == 1
                && acc > 0
                && acc == miner.accepted.load(Ordering::Relaxed)
                && stats.upstream_accepted.load(Ordering::Relaxed) == acc
                && stats.forwarded.load(Ordering::Relaxed) == acc
        },
    )
    .await;

    let pools = get(format!("{api}/api/v1/pools")).await;
    let p = &pools[0];
    // The synthetic chain pays 3.125 BTC plus 8 transactions × 1,000 sat.
    let reward = p["network"]["reward_btc"].as_f64().unwrap();
    assert!((reward - 3.125_080_00).abs() < 1e-9, "{p}");
    assert_eq!(p["network"]["difficulty"], 2.0);
    assert_eq!(p["reward"], "coinbase");
    assert_eq!(p["scheme"], "pplns");
    let accepted = p["totals"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0);
    // Every share the proxy accepted was forwarded and accepted upstream.
    let farm = get(format!("{api}/api/v1/farm")).await;
    assert_eq!(
        farm["upstream_accepted"].as_u64().unwrap(),
        accepted,
        "{farm}"
    );
    // Earned = Σ d / D · R · (1 − fee), every share at the pool's
    // difficulty of 5·10⁻⁷: the miner asked for 10⁻⁶, but a share above
    // what the pool credits would lose the difference.
    let earned = p["totals"]["earned_btc"].as_f64().unwrap();
    let expect = accepted as f64 * 5e-7 / 2.0 * reward * (1.0 - 0.015);
    assert!((earned / expect - 1.0).abs() < 1e-9, "{earned} vs {expect}");
    let w = get(format!("{api}/api/v1/workers/farm.s21-9")).await;
    assert_eq!(
        w["pool"],
        format!("stratum+tcp://127.0.0.1:{}", pool_addr.port())
    );
    assert!((w["totals"]["earned_btc"].as_f64().unwrap() - earned).abs() < 1e-15);
    proxy_cancel.cancel();
    cancel.cancel();
}

/// The shipped Prometheus alerts and Grafana dashboard use only metrics
/// sluice really exports (checked against a live scrape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_files_use_only_exported_metrics() {
    let cfg = pool_config();
    let (addr, api, cancel, _running) = launch(&cfg).await;
    let stop = CancellationToken::new();
    mine(
        addr.to_string(),
        "farm.s21-1",
        0.000001,
        50_000.0,
        0.1,
        &stop,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let (_, metrics) = common::http_get(format!("{api}/metrics")).await;
    let mut exported = std::collections::HashSet::new();
    for line in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut f = line.split(' ');
        let (name, kind) = (f.next().unwrap(), f.next().unwrap());
        exported.insert(name.to_string());
        if kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{s}"));
            }
        }
    }
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "deploy/prometheus-alerts.yml",
        "deploy/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let mut used = 0;
        for (i, _) in text.match_indices("sluice_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which sluice does not export"
            );
            used += 1;
        }
        assert!(used >= 8, "{file}: {used} metric uses");
    }
    serde_json::from_str::<Value>(
        &std::fs::read_to_string(format!("{root}/deploy/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    cancel.cancel();
}
