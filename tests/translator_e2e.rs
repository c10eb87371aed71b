//! Interop with the Stratum V2 reference translator, `translator_sv2`
//! 0.6.0, run as its own process: V1 miners (sluice's load generator, real
//! hashing) → translator_sv2 → the pool node's V2 listener (Noise, extended
//! channels), everything on 127.0.0.1. Shares flow end to end and land in
//! sluice's books under the names the translator gives its channels.
//!
//! The translator answers its V1 miners itself, against the difficulty it
//! gave them, then checks each share it accepted against its upstream
//! channel (sluice's target and jobs; channel manager, `validate_share`):
//! it forwards the ones that pass and drops the others without a word to
//! the miner. Its log (debug) names each outcome, so every share a miner
//! had accepted is accounted for, in every test:
//!   accepted = forwarded + below sluice's target + dropped (stale job),
//!   forwarded = booked by sluice + stale at sluice.
//! And per setup:
//! - one channel per miner at a difficulty just above sluice's, no block:
//!   all forwarded, booked one for one under each channel's name;
//! - one aggregated channel, miners at a quarter of sluice's difficulty:
//!   each accepted share meets sluice's target with probability
//!   d_miner / d_sluice (a hash below the easier target is uniform below
//!   it), checked statistically;
//! - new blocks: shares on an old job are refused (code 21) or, when one
//!   crossed the block on the way, dropped or answered stale-share by
//!   sluice; still every one accounted for.
//!
//! sluice's difficulty is pinned (min = start = max) so that those
//! relations are exact: by the translator's code, when a SetTarget makes
//! the channel harder, shares it accepted from a miner at the old target
//! fail its channel check and are dropped, at debug level, where this test
//! cannot count them. Its own vardiff ticks once a minute (the first tick
//! at start-up, before any miner), so within a test it does not move.
//!
//! Needs the peer: `cargo install --locked translator_sv2@0.6.0` (found as
//! `$SLUICE_TRANSLATOR_BIN`, `translator_sv2` on PATH, or
//! `~/.cargo/bin/translator_sv2`). `SLUICE_SKIP_TRANSLATOR=1` skips the
//! tests; without it a missing binary is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::v2node::V2Node as Node;
use common::wait_until;
use sluice::config::{Config, Mode, PoolNodeConfig};
use sluice_engine::stats::Reject;
use sluice_loadgen::{MinerConfig, MinerStats};
use tokio_util::sync::CancellationToken;

const TRANSLATOR_VERSION: &str = "0.6.0";
const INSTALL: &str = "cargo install --locked translator_sv2@0.6.0";

/// Every wait is bounded: a hang is a failure, not a stuck suite.
const DEADLINE: Duration = Duration::from_secs(30);

/// sluice's share difficulty (pinned): 2^32 × 1e-6 ≈ 4,295 hashes a share.
const POOL_DIFFICULTY: f64 = 1e-6;

/// Each miner's hash rate: about 4.7 shares/s at the pool's difficulty.
const MINER_HASHRATE: f64 = 20_000.0;

/// What translator_sv2 0.6.0 logs for each share it accepted from a miner
/// (`channel_manager/mod.rs`): sent upstream (info) …
const FORWARD_LOG: &str = "SubmitSharesExtended: valid share, forwarding it to upstream";
/// … below its channel's target, not sent (debug) …
const BELOW_LOG: &str = "SubmitSharesExtended does not meet the upstream channel target";
/// … failed its channel's other checks (a job a new block made stale in
/// between), not sent (warn).
const DROP_LOG: &str = "SubmitSharesExtended rejected by upstream channel validation";

/// The translator binary; `None` when the tests are to be skipped.
fn translator_bin() -> Option<PathBuf> {
    if std::env::var_os("SLUICE_SKIP_TRANSLATOR").is_some_and(|v| v == "1") {
        eprintln!("SLUICE_SKIP_TRANSLATOR=1: skipping the translator_sv2 interop test");
        return None;
    }
    let bin = if let Some(p) = std::env::var_os("SLUICE_TRANSLATOR_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SLUICE_TRANSLATOR_BIN={} is not a file; install the peer with `{INSTALL}`",
            p.display()
        );
        p
    } else {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("translator_sv2"));
        let cargo_bin = [
            std::env::var_os("CARGO_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")),
        ]
        .into_iter()
        .flatten()
        .map(|d| d.join("bin").join("translator_sv2"));
        on_path
            .chain(cargo_bin)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "translator_sv2 not found (SLUICE_TRANSLATOR_BIN, PATH, ~/.cargo/bin): \
                 install it with `{INSTALL}`, or set SLUICE_SKIP_TRANSLATOR=1 to skip this test"
                )
            })
    };
    // The config keys, names and log lines used here are 0.6.0's.
    let out = Command::new(&bin).arg("-V").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.trim() == format!("translator_sv2 {TRANSLATOR_VERSION}"),
        "{} says {:?}; this test is written against translator_sv2 {TRANSLATOR_VERSION} (`{INSTALL}`)",
        bin.display(),
        version.trim()
    );
    Some(bin)
}

/// A port free on 127.0.0.1 a moment ago (for the translator, which takes
/// its listening port from its config).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pool node at a pinned share difficulty, with a fresh authority key
/// and a V2 listener on 127.0.0.1; a new block from elsewhere every
/// `block_interval_secs` (0: never).
async fn launch_pool(block_interval_secs: f64) -> Node {
    let mut cfg = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    cfg.pool_node = PoolNodeConfig {
        // The miners find no block (2^32 × 1e6 hashes a block).
        network_difficulty: 1e6,
        block_interval_secs,
        // New jobs (new ntime) every second: job translation keeps
        // working while shares flow.
        refresh_interval_secs: 1.0,
        ..Default::default()
    };
    cfg.difficulty.min = POOL_DIFFICULTY;
    cfg.difficulty.start = POOL_DIFFICULTY;
    cfg.difficulty.max = POOL_DIFFICULTY;
    common::v2node::launch(cfg, "translator-pool").await
}

/// How the translator is set up.
struct Setup {
    /// One upstream channel for all miners, or one each.
    aggregate: bool,
    /// The translator's own vardiff toward its miners.
    vardiff: bool,
    /// `min_individual_miner_hashrate`: with `shares_per_minute` = 60, the
    /// miners' difficulty is ≈ this / 2^32 (and, with vardiff on, the
    /// `max_target` of the channels it opens).
    miner_hashrate: f64,
    /// `user_identity` of the upstream.
    user: &'static str,
}

/// translator_sv2 as a child process; killed when dropped, its log printed
/// when the test failed.
struct Translator {
    child: Child,
    log: PathBuf,
    v1: SocketAddr,
}

impl Translator {
    fn start(bin: &Path, dir: &Path, pool: &Node, s: &Setup) -> Self {
        let port = free_port();
        // Only what a local setup needs: no monitoring server, no
        // [miner_telemetry] (its examples scan a LAN), no extensions.
        let config = format!(
            r#"downstream_address = "127.0.0.1"
downstream_port = {port}
max_supported_version = 2
min_supported_version = 2
downstream_extranonce2_size = 4
aggregate_channels = {aggregate}

[downstream_difficulty_config]
min_individual_miner_hashrate = {hashrate:.1}
shares_per_minute = 60.0
enable_vardiff = {vardiff}
job_keepalive_interval_secs = 60

[[upstreams]]
address = "127.0.0.1"
port = {upstream_port}
authority_pubkey = "{authority}"
user_identity = "{user}"
"#,
            aggregate = s.aggregate,
            hashrate = s.miner_hashrate,
            vardiff = s.vardiff,
            upstream_port = pool.v2.port(),
            authority = pool.authority,
            user = s.user,
        );
        let cfg_path = dir.join("translator.toml");
        std::fs::write(&cfg_path, config).unwrap();
        let log = dir.join("translator.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&cfg_path)
            .current_dir(dir)
            // Debug: the line for a share below the channel's target.
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Translator {
            child,
            log,
            v1: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Of the shares it accepted so far: (forwarded, below the channel's
    /// target, dropped on its other checks).
    fn outcomes(&self) -> (u64, u64, u64) {
        let log = self.log_text();
        let n = |s: &str| log.matches(s).count() as u64;
        (n(FORWARD_LOG), n(BELOW_LOG), n(DROP_LOG))
    }

    /// Waits until its V1 port takes connections (it opens it only once its
    /// upstream connection is set up); fails at once if it exited.
    async fn wait_listening(&mut self) {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("translator_sv2 exited ({status}) before opening its V1 port");
            }
            // (A probe the translator logs as a downstream that errored out
            // before its first message; it opens no channel.)
            if tokio::net::TcpStream::connect(self.v1).await.is_ok() {
                eprintln!(
                    "translator_sv2 listening on {} after {:.2} s",
                    self.v1,
                    start.elapsed().as_secs_f64()
                );
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for translator_sv2 to listen on {}",
                self.v1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("translator_sv2 exited ({status})");
        }
    }
}

impl Drop for Translator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "---- translator_sv2 log ({}, last {} of {} lines) ----\n{}\n---- end ----",
                self.log.display(),
                tail.len(),
                lines.len(),
                tail.join("\n")
            );
        }
    }
}

fn v1_miner(
    translator: &Translator,
    worker: &str,
    seed: u64,
    stop: &CancellationToken,
) -> Arc<MinerStats> {
    let cfg = MinerConfig {
        addr: translator.v1.to_string(),
        worker: worker.into(),
        hashes_per_sec: MINER_HASHRATE,
        seed,
        ..MinerConfig::default()
    };
    let stats = Arc::new(MinerStats::default());
    let (s, c) = (stats.clone(), stop.clone());
    tokio::spawn(async move { sluice_loadgen::run(cfg, s, c).await });
    stats
}

/// Starts `n` miners one at a time, each once the one before has its
/// first job: the translator numbers its channels in the order miners
/// first speak, so miner i's channel is `<user>.miner<i+1>`.
async fn start_miners(
    translator: &Translator,
    n: usize,
    stop: &CancellationToken,
) -> Vec<Arc<MinerStats>> {
    let mut miners = Vec::new();
    for i in 0..n {
        let m = v1_miner(translator, &format!("rig.t{i}"), i as u64 + 1, stop);
        wait_until(&format!("miner {i}'s first job"), DEADLINE, || {
            m.ready.load(Ordering::Relaxed) > 0 || m.finished.load(Ordering::Relaxed) > 0
        })
        .await;
        assert_eq!(
            m.finished.load(Ordering::Relaxed),
            0,
            "miner {i} ended before its first job"
        );
        miners.push(m);
    }
    miners
}

fn accepted(miners: &[Arc<MinerStats>]) -> u64 {
    miners
        .iter()
        .map(|m| m.accepted.load(Ordering::Relaxed))
        .sum()
}

/// The pool node's per-worker tally: (name, shares, Σ difficulty).
fn pool_tally(node: &Node) -> Vec<(String, u64, f64)> {
    let mut v: Vec<_> = node
        .running
        .pool_workers
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| (t.key().to_string(), t.shares, t.work))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// sluice's books: (name, accepted shares) of every worker.
fn booked(node: &Node) -> Vec<(String, u64)> {
    let books = &node.running.books;
    let page = books
        .workers_page(&Default::default(), books.clock().now_ms())
        .unwrap();
    page.workers
        .iter()
        .map(|w| (w.name.clone(), w.money.accepted_shares))
        .collect()
}

/// Every reject sluice counted, by label.
fn pool_rejects(node: &Node) -> Vec<(&'static str, u64)> {
    let stats = &node.running.engine.stats;
    Reject::ALL
        .iter()
        .map(|r| (r.label(), stats.rejected(*r)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Where the shares the miners had accepted went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ledger {
    /// Answered `true` to the miners (by the translator).
    accepted: u64,
    /// Sent to sluice.
    forwarded: u64,
    /// Below the channel's target: kept by the translator.
    below_target: u64,
    /// Failed the channel's other checks: kept by the translator.
    dropped: u64,
    /// Accepted by sluice.
    booked: u64,
    /// Refused by sluice as stale.
    stale: u64,
}

impl Ledger {
    fn read(miners: &[Arc<MinerStats>], t: &Translator, node: &Node) -> Self {
        let accepted = accepted(miners);
        let (forwarded, below_target, dropped) = t.outcomes();
        let stats = &node.running.engine.stats;
        Ledger {
            accepted,
            forwarded,
            below_target,
            dropped,
            booked: stats.accepted.load(Ordering::Relaxed),
            stale: stats.rejected(Reject::Stale),
        }
    }

    fn balances(&self) -> bool {
        self.accepted == self.forwarded + self.below_target + self.dropped
            && self.forwarded == self.booked + self.stale
    }
}

/// Stops the miners, waits until each has drained (its answers in), then
/// until every share they had accepted is accounted for (the translator
/// answers a miner before it checks and forwards the share: the last ones
/// go on a moment after). Prints what each side saw; fails if the ledger
/// does not balance in time.
async fn stop_and_settle(
    what: &str,
    miners: &[Arc<MinerStats>],
    stop: &CancellationToken,
    t: &mut Translator,
    node: &Node,
) -> Ledger {
    stop.cancel();
    wait_until("every miner drained", DEADLINE, || {
        miners
            .iter()
            .all(|m| m.finished.load(Ordering::Relaxed) > 0)
    })
    .await;
    let start = std::time::Instant::now();
    let mut ledger = Ledger::read(miners, t, node);
    while !ledger.balances() && start.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ledger = Ledger::read(miners, t, node);
    }
    t.assert_running();
    for (i, m) in miners.iter().enumerate() {
        eprintln!(
            "{what}: miner {i}: extranonce1 {:016x}…, {} jobs ({} clean), {} submitted, {} accepted, rejects {:?}, difficulty {:.6e}",
            m.extranonce1.load(Ordering::Relaxed),
            m.jobs.load(Ordering::Relaxed),
            m.clean_jobs.load(Ordering::Relaxed),
            m.submitted.load(Ordering::Relaxed),
            m.accepted.load(Ordering::Relaxed),
            (20..=25).map(|c| m.rejected(c)).collect::<Vec<_>>(),
            m.accepted_work() / m.accepted.load(Ordering::Relaxed).max(1) as f64,
        );
    }
    eprintln!(
        "{what}: {ledger:?}; sluice tally {:?}, rejects {:?}",
        pool_tally(node),
        pool_rejects(node)
    );
    assert!(
        ledger.balances(),
        "{what}: shares unaccounted for: {ledger:?}"
    );
    ledger
}

/// Checks what every test expects of the miners and of sluice's records:
/// jobs and accepted shares for every miner, no reject from the translator
/// but stale (21) when `blocks`, none from sluice but stale, and sluice's
/// counters, books and the pool node's tally agreeing. Returns the tally.
async fn check_common(
    miners: &[Arc<MinerStats>],
    node: &Node,
    ledger: &Ledger,
    blocks: bool,
) -> Vec<(String, u64, f64)> {
    for (i, m) in miners.iter().enumerate() {
        assert!(m.jobs.load(Ordering::Relaxed) > 0, "miner {i}: no jobs");
        assert!(
            m.accepted.load(Ordering::Relaxed) > 0,
            "miner {i}: no shares"
        );
        let allowed = if blocks { m.rejected(21) } else { 0 };
        assert_eq!(m.rejected_total(), allowed, "miner {i}: rejects");
    }
    let rejects: Vec<_> = pool_rejects(node)
        .into_iter()
        .filter(|(l, _)| !blocks || *l != Reject::Stale.label())
        .collect();
    assert_eq!(rejects, vec![], "sluice refused shares");
    // sluice answers (and books) a share before its pool node tallies it.
    wait_until("the pool node's tally to catch up", DEADLINE, || {
        pool_tally(node).iter().map(|t| t.1).sum::<u64>() == ledger.booked
    })
    .await;
    let tally = pool_tally(node);
    for (name, n, work) in &tally {
        assert!(
            (work / (*n as f64 * POOL_DIFFICULTY) - 1.0).abs() < 1e-9,
            "{name}: credited {work} for {n} shares"
        );
    }
    let books = booked(node);
    let from_tally: Vec<_> = tally.iter().map(|t| (t.0.clone(), t.1)).collect();
    assert_eq!(books, from_tally, "books vs the pool node's tally");
    tally
}

/// One channel per miner, the translator's vardiff off: the miners' shares
/// reach sluice one for one, each under its channel's own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_miners_through_translator_sv2_are_booked_per_channel() {
    let Some(bin) = translator_bin() else {
        return;
    };
    let dir = common::scratch_dir().join("translator-per-channel");
    std::fs::create_dir_all(&dir).unwrap();
    // No new block: every job stays valid, so no share can turn stale
    // between the translator's answer and sluice's.
    let pool = launch_pool(0.0).await;
    // With its vardiff off the translator still gives each miner the
    // difficulty of min_individual_miner_hashrate / shares_per_minute
    // until the pool sends a SetTarget (sluice, pinned, sends none): 4,400
    // hashes a share, ≈2.4 % harder than sluice's 4,295, so every share it
    // accepts meets sluice's target. (Its channels ask for max_target
    // 0xff…ff and state that hash rate; sluice's pinned difficulty wins.)
    let setup = Setup {
        aggregate: false,
        vardiff: false,
        miner_hashrate: 4_400.0,
        user: "farm",
    };
    let mut translator = Translator::start(&bin, &dir, &pool, &setup);
    translator.wait_listening().await;
    let stop = CancellationToken::new();
    let miners = start_miners(&translator, 3, &stop).await;
    wait_until("every miner to have 15 shares accepted", DEADLINE, || {
        miners
            .iter()
            .all(|m| m.accepted.load(Ordering::Relaxed) >= 15)
    })
    .await;
    let ledger = stop_and_settle("per-channel", &miners, &stop, &mut translator, &pool).await;
    let tally = check_common(&miners, &pool, &ledger, false).await;
    assert_eq!(
        (ledger.below_target, ledger.dropped, ledger.stale),
        (0, 0, 0),
        "{ledger:?}"
    );
    assert_eq!(ledger.booked, ledger.accepted);
    // One worker per channel, `<user_identity>.miner<N>`, in the order the
    // miners connected; the miners' own names ("rig.tN") never reach the
    // pool (only through extension 0x0002, not negotiated here).
    let names: Vec<&str> = tally.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["farm.miner1", "farm.miner2", "farm.miner3"]);
    for (i, m) in miners.iter().enumerate() {
        let n = m.accepted.load(Ordering::Relaxed);
        assert_eq!(
            tally[i].1, n,
            "{}: booked vs miner {i}'s accepted",
            tally[i].0
        );
        // The miner was told a difficulty just above sluice's.
        let told = m.accepted_work() / n as f64;
        assert!(
            told > POOL_DIFFICULTY && told < POOL_DIFFICULTY * 1.05,
            "miner {i} mined at {told:e}"
        );
    }
}

/// All miners on one aggregated channel, the translator's vardiff on, its
/// miners at a quarter of sluice's difficulty: the translator accepts every
/// share at the miners' difficulty and forwards the ones that meet sluice's
/// target, which sluice books under the one channel's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translator_sv2_aggregating_forwards_the_shares_that_meet_the_pool_target() {
    let Some(bin) = translator_bin() else {
        return;
    };
    let dir = common::scratch_dir().join("translator-aggregated");
    std::fs::create_dir_all(&dir).unwrap();
    let pool = launch_pool(0.0).await;
    // 1,000 H/s at 60 shares a minute: 1,001 hashes a share, p ≈ 0.233 of
    // sluice's 4,295. The channel's max_target is that same easy target,
    // which sluice takes as the channel's floor; its pinned max wins.
    let setup = Setup {
        aggregate: true,
        vardiff: true,
        miner_hashrate: 1_000.0,
        user: "agg",
    };
    let mut translator = Translator::start(&bin, &dir, &pool, &setup);
    translator.wait_listening().await;
    let stop = CancellationToken::new();
    let miners = start_miners(&translator, 3, &stop).await;
    let stats = pool.running.engine.stats.clone();
    wait_until(
        "every miner to have 60 shares accepted and sluice 40 booked",
        DEADLINE,
        || {
            miners
                .iter()
                .all(|m| m.accepted.load(Ordering::Relaxed) >= 60)
                && stats.accepted.load(Ordering::Relaxed) >= 40
        },
    )
    .await;
    let ledger = stop_and_settle("aggregated", &miners, &stop, &mut translator, &pool).await;
    let tally = check_common(&miners, &pool, &ledger, false).await;
    assert_eq!((ledger.dropped, ledger.stale), (0, 0), "{ledger:?}");
    // One worker: the upstream user_identity's account + ".translator-proxy".
    let names: Vec<&str> = tally.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["agg.translator-proxy"]);
    // Each accepted share meets sluice's target with p = its difficulty /
    // sluice's: booked ~ Binomial(accepted, p), checked at 5 σ.
    let d_miner = miners.iter().map(|m| m.accepted_work()).sum::<f64>() / ledger.accepted as f64;
    let p = d_miner / POOL_DIFFICULTY;
    assert!((0.2..0.26).contains(&p), "miners mined at {d_miner:e}");
    let mean = ledger.accepted as f64 * p;
    let sigma = (mean * (1.0 - p)).sqrt();
    eprintln!(
        "aggregated: {} of {} accepted shares booked, expected {mean:.1} ± {sigma:.1}",
        ledger.booked, ledger.accepted
    );
    assert!(
        (ledger.booked as f64 - mean).abs() <= 5.0 * sigma,
        "booked {}, expected {mean:.1} ± {sigma:.1} (of {} at p = {p:.4})",
        ledger.booked,
        ledger.accepted
    );
}

/// New blocks while the miners work (one channel each, vardiff off, as in
/// the first test): the translator turns each SetNewPrevHash into a clean
/// mining.notify and itself refuses V1 shares on the old jobs (code 21). A
/// share it answered `true` just before a block can still miss: its own
/// channel drops it once the block is in, or sluice, which saw the block
/// first, answers stale-share. The ledger balances all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_new_blocks_every_share_translator_sv2_accepted_is_booked_or_stale() {
    let Some(bin) = translator_bin() else {
        return;
    };
    let dir = common::scratch_dir().join("translator-blocks");
    std::fs::create_dir_all(&dir).unwrap();
    let pool = launch_pool(1.0).await;
    let setup = Setup {
        aggregate: false,
        vardiff: false,
        miner_hashrate: 4_400.0,
        user: "blk",
    };
    let mut translator = Translator::start(&bin, &dir, &pool, &setup);
    translator.wait_listening().await;
    let stop = CancellationToken::new();
    let miners = start_miners(&translator, 3, &stop).await;
    wait_until(
        "every miner to have 15 shares accepted and 4 clean jobs",
        DEADLINE,
        || {
            miners.iter().all(|m| {
                m.accepted.load(Ordering::Relaxed) >= 15
                    && m.clean_jobs.load(Ordering::Relaxed) >= 4
            })
        },
    )
    .await;
    let ledger = stop_and_settle("blocks", &miners, &stop, &mut translator, &pool).await;
    let tally = check_common(&miners, &pool, &ledger, true).await;
    assert_eq!(ledger.below_target, 0, "{ledger:?}");
    let names: Vec<&str> = tally.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["blk.miner1", "blk.miner2", "blk.miner3"]);
    eprintln!(
        "blocks: miners refused as stale by the translator: {}",
        miners.iter().map(|m| m.rejected(21)).sum::<u64>()
    );
}
