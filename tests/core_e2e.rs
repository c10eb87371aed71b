//! The pool node on Bitcoin Core, end to end against a JSON-RPC stand-in
//! that serves the real regtest templates in shared/fixtures: jobs from
//! each template, a found block assembled from the job's own template and
//! checked with the `bitcoin` crate, new tips, a node that goes away.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::{deserialize, serialize};
use common::core_standin::{POOL_ADDRESS, Standin, fixture};
use common::wait_until;
use serde_json::Value;
use sluice::config::{Config, Mode};
use sluice_engine::blocks::BlockStatus;
use sluice_loadgen::{MinerConfig, MinerStats};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

fn pool_config(node: &Standin) -> Config {
    let mut c = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    c.pool_node = node.pool_node();
    c.blocks.log = None;
    c.difficulty.min = 1e-7;
    c.difficulty.start = 1e-6;
    c
}

fn miner(addr: SocketAddr, worker: &str, cancel: &CancellationToken) -> Arc<MinerStats> {
    common::spawn_miner(common::v1_miner(addr, worker, 20_000.0), cancel)
}

fn payout_script() -> bitcoin::ScriptBuf {
    bitcoin::Address::from_str(POOL_ADDRESS)
        .unwrap()
        .require_network(bitcoin::Network::Regtest)
        .unwrap()
        .script_pubkey()
}

/// What a node checks of a block that a stand-in can: it deserialises,
/// holds the template's transactions in order, its merkle root and
/// witness commitment hold, it meets its target, its coinbase has the
/// template's height and pays the template's value to the pool.
fn check_block(bytes: &[u8], t: &Value) -> bitcoin::Block {
    let value = t["coinbasevalue"].as_u64().unwrap();
    check_block_paying(bytes, t, &[(payout_script(), value)])
}

/// [`check_block`], with the coinbase paying exactly `pays` (the witness
/// commitment aside).
fn check_block_paying(
    bytes: &[u8],
    t: &Value,
    pays: &[(bitcoin::ScriptBuf, u64)],
) -> bitcoin::Block {
    let b: bitcoin::Block = deserialize(bytes).expect("the block deserialises");
    assert_eq!(serialize(&b), bytes, "nothing after the block");
    assert_eq!(
        b.header.prev_blockhash.to_string(),
        t["previousblockhash"].as_str().unwrap()
    );
    let want: Vec<&str> = t["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["txid"].as_str().unwrap())
        .collect();
    let got: Vec<String> = b.txdata[1..]
        .iter()
        .map(|x| x.compute_txid().to_string())
        .collect();
    assert_eq!(got, want, "the template's transactions, in order");
    assert!(b.check_merkle_root(), "merkle root");
    assert!(b.check_witness_commitment(), "witness commitment");
    b.header
        .validate_pow(b.header.target())
        .expect("meets its target");
    assert_eq!(
        b.header.bits.to_consensus(),
        u32::from_str_radix(t["bits"].as_str().unwrap(), 16).unwrap()
    );
    assert_eq!(
        b.bip34_block_height().unwrap(),
        t["height"].as_u64().unwrap()
    );
    let cb = &b.txdata[0];
    assert!(cb.is_coinbase());
    let paid: Vec<(bitcoin::ScriptBuf, u64)> = cb
        .output
        .iter()
        .filter(|o| o.value.to_sat() > 0)
        .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
        .collect();
    assert_eq!(paid, pays);
    assert!(b.weight().to_wu() <= 4_000_000);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_template_gives_jobs_and_a_block_the_node_would_take() {
    for gbt in [
        "gbt-regtest-1.json",
        "gbt-regtest-2.json",
        "gbt-regtest-3.json",
        "gbt-regtest-4.json",
    ] {
        let node = Standin::start(gbt).await;
        let (addr, running, cancel) = common::serve(&pool_config(&node)).await;
        let stats = miner(addr, "rig1", &cancel);
        // On regtest about every other hash meets the network target: the
        // first share is a block.
        wait_until(
            &format!("a block from {gbt}"),
            Duration::from_secs(30),
            || !node.submitted().is_empty(),
        )
        .await;
        let bytes = node.submitted()[0].clone();
        let b = check_block(&bytes, &fixture(gbt));
        // The node answered null: the block log says so, with the hash
        // the node computed.
        let log = running.engine.blocks.clone();
        wait_until("the block marked accepted", Duration::from_secs(10), || {
            log.list()
                .iter()
                .any(|r| r.status == BlockStatus::Accepted && r.hash == b.block_hash().to_string())
        })
        .await;
        // The block goes out before its miner is answered: the answer
        // may still be on its way.
        wait_until(
            "the miner's block share answered",
            Duration::from_secs(10),
            || stats.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        )
        .await;
        cancel.cancel();
        // Siblings found on the same parent before the tip moved are
        // stale ("inconclusive"), never counted as blocks.
        let accepted = log
            .list()
            .iter()
            .filter(|r| r.status == BlockStatus::Accepted)
            .count();
        assert_eq!(accepted, 1, "one block per parent");
    }
}

/// A raw V1 miner that only reads jobs.
struct Watcher {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    _w: tokio::net::tcp::OwnedWriteHalf,
}

impl Watcher {
    async fn connect(addr: SocketAddr) -> Self {
        let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        w.write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n",
        )
        .await
        .unwrap();
        Self {
            lines: BufReader::new(r).lines(),
            _w: w,
        }
    }

    /// The next `mining.notify`'s params.
    async fn notify(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("a job in time")
                .unwrap()
                .expect("connection open");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["method"] == "mining.notify" {
                return v["params"].clone();
            }
        }
    }
}

/// V1's prevhash field: the internal byte order, word-swapped.
fn v1_prevhash(display: &str) -> String {
    let internal = sluice_pow::hex::decode_reversed(display).unwrap();
    sluice_pow::hex::encode(&sluice_pow::hex::swap_words(&internal))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tip_reaches_miners_as_a_clean_job_at_once() {
    let node = Standin::start("gbt-regtest-3.json").await;
    let (addr, _running, cancel) = common::serve(&pool_config(&node)).await;
    let mut w = Watcher::connect(addr).await;
    let first = w.notify().await;
    let t3 = fixture("gbt-regtest-3.json");
    assert_eq!(
        first[1],
        v1_prevhash(t3["previousblockhash"].as_str().unwrap())
    );
    // The version leaves the template's signalling bits alone.
    assert_eq!(first[5], "30000000");
    node.set_template("gbt-regtest-4.json");
    let t4 = fixture("gbt-regtest-4.json");
    let want = v1_prevhash(t4["previousblockhash"].as_str().unwrap());
    loop {
        let n = w.notify().await;
        if n[1] == want {
            assert_eq!(n[8], true, "a new tip is a clean job");
            break;
        }
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_away_keeps_miners_mining_and_is_picked_up_again() {
    let node = Standin::start("gbt-regtest-3.json").await;
    let (addr, running, cancel) = common::serve(&pool_config(&node)).await;
    // Blocks would be judged against a moving tip: only shares here.
    node.set(|s| s.submit_answer = Some(Value::Null));
    let mut w = Watcher::connect(addr).await;
    w.notify().await;
    let stats = miner(addr, "rig1", &cancel);
    node.set(|s| s.warming = true);
    let before = node.calls("getbestblockhash");
    wait_until(
        "the node polled while away",
        Duration::from_secs(10),
        || node.calls("getbestblockhash") > before + 3,
    )
    .await;
    // Shares are still answered while the node is away.
    let shares = stats.accepted.load(std::sync::atomic::Ordering::Relaxed);
    wait_until(
        "shares answered while away",
        Duration::from_secs(20),
        || stats.accepted.load(std::sync::atomic::Ordering::Relaxed) > shares + 2,
    )
    .await;
    assert_eq!(
        stats.finished.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the miner stayed connected"
    );
    // Back, on a new tip: miners hear of it.
    node.set_template("gbt-regtest-4.json");
    node.set(|s| s.warming = false);
    let t4 = fixture("gbt-regtest-4.json");
    let want = v1_prevhash(t4["previousblockhash"].as_str().unwrap());
    while w.notify().await[1] != want {}
    assert_eq!(
        stats.finished.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the miner stayed connected"
    );
    drop(running);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_from_the_node_marks_the_block_rejected_once() {
    let node = Standin::start("gbt-regtest-2.json").await;
    node.set(|s| s.submit_answer = Some(Value::String("bad-cb-amount".into())));
    let (addr, running, cancel) = common::serve(&pool_config(&node)).await;
    let _stats = miner(addr, "rig1", &cancel);
    let log = running.engine.blocks.clone();
    wait_until("a rejected block", Duration::from_secs(30), || {
        log.list().iter().any(|r| {
            r.status == BlockStatus::Rejected && r.detail.as_deref() == Some("bad-cb-amount")
        })
    })
    .await;
    cancel.cancel();
    let r = log
        .list()
        .into_iter()
        .find(|r| r.status == BlockStatus::Rejected)
        .unwrap();
    assert_eq!(r.attempts, 1, "a verdict is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_network_or_credentials_stop_the_start_with_a_clear_error() {
    let node = Standin::start("gbt-regtest-1.json").await;
    let mut c = pool_config(&node);
    c.pool_node.network = Some("mainnet".into());
    c.pool_node.payout_address = Some("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2".into());
    let e = sluice::run::start(&c, CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("bitcoind is on regtest, but the pool is configured for main"),
        "{e:#}"
    );
    let mut c = pool_config(&node);
    c.pool_node.rpc_password = Some("wrong".into());
    let e = sluice::run::start(&c, CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("refused the RPC credentials"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_warming_up_at_start_is_waited_for() {
    let node = Standin::start("gbt-regtest-1.json").await;
    node.set(|s| s.warming = true);
    let c = pool_config(&node);
    let cancel = CancellationToken::new();
    let start = tokio::spawn({
        let cancel = cancel.clone();
        async move { sluice::run::start(&c, cancel).await.map(|_| ()) }
    });
    wait_until("start asks the node", Duration::from_secs(10), || {
        node.calls("getblockchaininfo") >= 2
    })
    .await;
    assert!(!start.is_finished());
    node.set(|s| s.warming = false);
    tokio::time::timeout(Duration::from_secs(20), start)
        .await
        .expect("starts once the node is ready")
        .unwrap()
        .unwrap();
    cancel.cancel();
}

fn regtest_address(n: u8) -> (String, bitcoin::ScriptBuf) {
    // A P2WSH of a trivial script: any valid regtest address will do.
    let a = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::from(vec![0x51, n]),
        bitcoin::Network::Regtest,
    );
    (a.to_string(), a.script_pubkey())
}

/// True once the node has received a block paying each of `scripts`.
fn blocks_pay_each(node: &Standin, scripts: &[&bitcoin::ScriptBuf]) -> bool {
    let subs = node.submitted();
    scripts.iter().all(|s| {
        subs.iter().any(|x| {
            deserialize::<bitcoin::Block>(x)
                .is_ok_and(|b| b.txdata[0].output[0].script_pubkey == **s)
        })
    })
}

/// Checks every block the node received: each pays one of `scripts`
/// (its first output), as `pays` says for that script.
fn check_solo_blocks(
    node: &Standin,
    t: &Value,
    scripts: &[&bitcoin::ScriptBuf],
    pays: impl Fn(&bitcoin::ScriptBuf) -> Vec<(bitcoin::ScriptBuf, u64)>,
) -> usize {
    let subs = node.submitted();
    for bytes in &subs {
        let blk: bitcoin::Block = deserialize(bytes).unwrap();
        let to = blk.txdata[0].output[0].script_pubkey.clone();
        assert!(
            scripts.contains(&&to),
            "a solo block pays one of its miners"
        );
        check_block_paying(bytes, t, &pays(&to));
    }
    subs.len()
}

fn solo_config(node: &Standin, fee: f64) -> Config {
    let mut c = pool_config(node);
    c.pool_node.solo = true;
    c.pool_node.fee = fee;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_blocks_pay_each_miners_own_address_less_the_fee() {
    let gbt = "gbt-regtest-4.json";
    let node = Standin::start(gbt).await;
    let (addr, running, cancel) = common::serve(&solo_config(&node, 0.01)).await;
    let (a, a_script) = regtest_address(1);
    let (b, b_script) = regtest_address(2);
    let _ma = miner(addr, &format!("{a}.rig1"), &cancel);
    let _mb = miner(addr, &b, &cancel);
    let t = fixture(gbt);
    let value = t["coinbasevalue"].as_u64().unwrap();
    let fee = (value as f64 * 0.01).floor() as u64;
    let pays =
        |script: &bitcoin::ScriptBuf| vec![(script.clone(), value - fee), (payout_script(), fee)];
    wait_until(
        "a block from each solo miner",
        Duration::from_secs(30),
        || blocks_pay_each(&node, &[&a_script, &b_script]),
    )
    .await;
    cancel.cancel();
    let seen = check_solo_blocks(&node, &t, &[&a_script, &b_script], pays);
    assert!(seen >= 2);
    // The books know the worker by its full username.
    let names: Vec<String> = running
        .pool_workers
        .as_ref()
        .unwrap()
        .iter()
        .map(|w| w.key().to_string())
        .collect();
    assert!(names.contains(&format!("{a}.rig1")), "{names:?}");
}

/// Authorizes `user` on a raw V1 connection; the reply's error, if any.
async fn authorize(addr: SocketAddr, user: &str) -> Value {
    let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
    let req = serde_json::json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]});
    w.write_all(
        format!("{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}}\n{req}\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(r).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 2 {
            return v["error"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solo_username_that_is_not_an_address_of_the_network_is_refused_clearly() {
    let node = Standin::start("gbt-regtest-1.json").await;
    let (addr, running, cancel) = common::serve(&solo_config(&node, 0.0)).await;
    let e = authorize(addr, "rig1").await;
    assert_eq!(e[0], 24);
    assert!(
        e[1].as_str()
            .unwrap()
            .contains("\"rig1\" is not a Bitcoin address"),
        "{e}"
    );
    let e = authorize(addr, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2.rig1").await;
    assert!(
        e[1].as_str().unwrap().contains("is not a regtest address"),
        "{e}"
    );
    assert!(e[1].as_str().unwrap().contains("ADDRESS.WORKER"), "{e}");
    let (good, _) = regtest_address(3);
    assert_eq!(authorize(addr, &format!("{good}.x")).await, Value::Null);
    let unauthorized = running.engine.stats.rejected
        [sluice_engine::stats::Reject::Unauthorized as usize]
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(unauthorized, 2, "each refusal is counted");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zmq_hashblock_announcement_brings_the_new_tip_at_once() {
    use zeromq::{Socket, SocketSend};
    let node = Standin::start("gbt-regtest-3.json").await;
    // No long poll, and tip polls a minute apart: only ZMQ can be quick.
    node.set(|s| s.no_longpoll = true);
    let mut publisher = zeromq::PubSocket::new();
    let ep = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut c = pool_config(&node);
    c.pool_node.tip_poll_secs = 60.0;
    c.pool_node.refresh_interval_secs = 120.0;
    c.pool_node.zmq_hashblock = Some(ep.to_string());
    let (addr, _running, cancel) = common::serve(&c).await;
    let mut w = Watcher::connect(addr).await;
    w.notify().await;
    node.set_template("gbt-regtest-4.json");
    let t4 = fixture("gbt-regtest-4.json");
    let want = v1_prevhash(t4["previousblockhash"].as_str().unwrap());
    // Announce until the pool's subscription is up (a PUB socket drops
    // messages for subscribers it does not have yet), then the job comes.
    let announce = tokio::spawn(async move {
        loop {
            let mut m = zeromq::ZmqMessage::from("hashblock");
            m.push_back(bytes::Bytes::from(vec![0u8; 32]));
            m.push_back(bytes::Bytes::from(vec![0u8; 4]));
            let _ = publisher.send(m).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(20), async {
        while w.notify().await[1] != want {}
    })
    .await
    .expect("the new tip within 20 s, not the minute polls take");
    announce.abort();
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_and_the_ledger_are_in_the_metrics() {
    let node = Standin::start("gbt-regtest-2.json").await;
    let dir = common::scratch_dir().join("core-metrics");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = pool_config(&node);
    c.pool_node.ledger = Some(format!("sqlite:{}", dir.join("l.db").display()));
    c.api.listen = Some("127.0.0.1:0".parse().unwrap());
    let (addr, running, cancel) = common::serve(&c).await;
    let stats = miner(addr, "rig1", &cancel);
    wait_until("shares", Duration::from_secs(30), || {
        stats.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 5
    })
    .await;
    running.ledger.as_ref().unwrap().flush().await.unwrap();
    let (status, m) = common::http_get(format!("http://{}/metrics", running.api.unwrap())).await;
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    assert!(value("sluice_node_templates_total") >= 1.0);
    assert!(value("sluice_ledger_shares_written_total") >= 5.0);
    assert!(value("sluice_ledger_commits_total") >= 1.0);
    assert_eq!(value("sluice_ledger_refused_total"), 0.0);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_v2_channels_extended_and_standard_each_pay_their_own_address() {
    let gbt = "gbt-regtest-3.json";
    let node = Standin::start(gbt).await;
    let mut c = solo_config(&node, 0.0);
    // V2 miners start at the difficulty of their stated hashrate (6 shares
    // a minute); capped here so that blocks come in seconds.
    c.difficulty.max = 1e-6;
    let pool = common::v2node::launch(c, "solo-v2").await;
    let cancel = CancellationToken::new();
    let (a, a_script) = regtest_address(4);
    let (b, b_script) = regtest_address(5);
    let mut stats = Vec::new();
    for (user, standard) in [(format!("{a}.ext"), false), (format!("{b}.std"), true)] {
        let cfg = MinerConfig {
            addr: pool.v2.to_string(),
            worker: user,
            hashes_per_sec: 20_000.0,
            v2: Some(sluice_loadgen::miner_v2::V2Config {
                authority: pool.authority,
                standard,
            }),
            ..MinerConfig::default()
        };
        let c = cancel.clone();
        let st = Arc::new(MinerStats::default());
        stats.push(st.clone());
        tokio::spawn(async move { sluice_loadgen::run(cfg, st, c).await });
    }
    let t = fixture(gbt);
    let value = t["coinbasevalue"].as_u64().unwrap();
    wait_until(
        "a block from each V2 solo miner",
        Duration::from_secs(30),
        || blocks_pay_each(&node, &[&a_script, &b_script]),
    )
    .await;
    cancel.cancel();
    // The template signals a deployment (version 0x30000000, bit 28 inside
    // BIP 320's range); V2 miners roll that bit too, and are right to.
    for st in &stats {
        assert!(
            st.rejected_v2.lock().unwrap().is_empty(),
            "{:?}",
            st.rejected_v2
        );
    }
    check_solo_blocks(&node, &t, &[&a_script, &b_script], |to| {
        vec![(to.clone(), value)]
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solo_v1_connection_mines_for_one_address_only() {
    let node = Standin::start("gbt-regtest-1.json").await;
    let (addr, _running, cancel) = common::serve(&solo_config(&node, 0.0)).await;
    let (a, _) = regtest_address(6);
    let (b, _) = regtest_address(7);
    let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
    let req = |id: u32, user: &str| {
        serde_json::json!({"id": id, "method": "mining.authorize", "params": [user, "x"]})
            .to_string()
            + "\n"
    };
    let lines = format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}}\n{}{}{}",
        req(2, &format!("{a}.one")),
        req(3, &format!("{a}.two")),
        req(4, &b)
    );
    w.write_all(lines.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(r).lines();
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = v["id"].as_u64().filter(|i| (2..=4).contains(i)) {
            answers.insert(id, v);
        }
    }
    // Two workers of one address are fine; another address is not.
    assert_eq!(answers[&2]["result"], true);
    assert_eq!(answers[&3]["result"], true);
    assert_eq!(answers[&4]["error"][0], 24);
    assert!(
        answers[&4]["error"][1]
            .as_str()
            .unwrap()
            .contains("one payout address per connection")
    );
    cancel.cancel();
}

#[test]
fn check_config_checks_the_node_keys() {
    let dir = common::scratch_dir().join("core-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node = "[pool_node]\nbitcoind = \"http://127.0.0.1:18443\"\n";
    let creds = "rpc_user = \"u\"\nrpc_password = \"p\"\n";
    let good = format!(
        "mode = \"pool\"\n{node}{creds}network = \"regtest\"\npayout_address = \"{POOL_ADDRESS}\"\nledger = \"postgres://pool@127.0.0.1/pool\"\nzmq_hashblock = \"tcp://127.0.0.1:28332\"\n"
    );
    let text = common::check_config_passes(&dir, "good.toml", &good);
    assert!(
        text.contains(&format!(
            "pool node: bitcoind http://127.0.0.1:18443 (regtest), pool, paying {POOL_ADDRESS}"
        )),
        "{text}"
    );
    let mainnet = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
    common::check_config_refuses(
        &dir,
        &[
            (
                "net.toml",
                format!(
                    "mode = \"pool\"\n{node}{creds}network = \"regtest\"\npayout_address = \"{mainnet}\"\n"
                ),
                "is not a regtest address",
            ),
            (
                "nonet.toml",
                format!("mode = \"pool\"\n{node}{creds}payout_address = \"{POOL_ADDRESS}\"\n"),
                "pool_node.network is needed",
            ),
            (
                "badnet.toml",
                format!("mode = \"pool\"\n{node}{creds}network = \"dogecoin\"\n"),
                "unknown network",
            ),
            (
                "both.toml",
                format!(
                    "mode = \"pool\"\n{node}{creds}rpc_cookie = \"/c\"\nnetwork = \"regtest\"\nsolo = true\n"
                ),
                "not both",
            ),
            (
                "nopayee.toml",
                format!("mode = \"pool\"\n{node}{creds}network = \"regtest\"\n"),
                "payout_address (pool mode) or solo",
            ),
            (
                "solofee.toml",
                format!(
                    "mode = \"pool\"\n{node}{creds}network = \"regtest\"\nsolo = true\nfee = 0.01\n"
                ),
                "solo fee needs payout_address",
            ),
            (
                "ledger.toml",
                format!(
                    "mode = \"pool\"\n{node}{creds}network = \"regtest\"\nsolo = true\nledger = \"mysql://x\"\n"
                ),
                "use sqlite:PATH or postgres",
            ),
            (
                "zmq.toml",
                format!(
                    "mode = \"pool\"\n{node}{creds}network = \"regtest\"\nsolo = true\nzmq_hashblock = \"127.0.0.1:1\"\n"
                ),
                "tcp://HOST:PORT",
            ),
            (
                "https.toml",
                format!(
                    "mode = \"pool\"\n[pool_node]\nbitcoind = \"https://x:1\"\n{creds}network = \"regtest\"\nsolo = true\n"
                ),
                "only http://",
            ),
            (
                "nonode.toml",
                "mode = \"pool\"\n[pool_node]\nsolo = true\n".to_string(),
                "need pool_node.bitcoind",
            ),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_gets_the_block_again_until_it_takes_it() {
    let node = Standin::start("gbt-regtest-2.json").await;
    let (addr, running, cancel) = common::serve(&pool_config(&node)).await;
    node.set(|s| s.busy = true);
    let stop = CancellationToken::new();
    let _m = miner(addr, "rig1", &stop);
    let log = running.engine.blocks.clone();
    wait_until(
        "a block offered twice to a busy node",
        Duration::from_secs(30),
        || {
            log.list()
                .iter()
                .any(|r| r.attempts >= 2 && r.status != BlockStatus::Rejected)
        },
    )
    .await;
    // No new blocks; every one found has been offered twice, so the one
    // the node takes when it has room is a retried one.
    stop.cancel();
    wait_until("every block offered twice", Duration::from_secs(60), || {
        log.list().iter().all(|r| r.attempts >= 2)
    })
    .await;
    node.set(|s| s.busy = false);
    wait_until(
        "the block taken once the node has room",
        Duration::from_secs(30),
        || {
            log.list()
                .iter()
                .any(|r| r.status == BlockStatus::Accepted && r.attempts >= 2)
        },
    )
    .await;
    cancel.cancel();
}
