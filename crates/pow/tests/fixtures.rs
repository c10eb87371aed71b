//! Real blocks from ../../testdata (Bitcoin Core regtest, a ckpool V1 pool
//! and the Stratum V2 reference stack) rebuilt through sluice-pow.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::PathBuf;
use std::sync::Arc;

use bitcoin::consensus::deserialize;
use sluice_pow::{
    Header, JobTemplate, ShareChecker, Submission, Target, hex, merkle, nbits_difficulty,
};

fn testdata(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&testdata(name)).unwrap()
}

/// Header hash and merkle root of a raw block, checked against Core's
/// `getblock` output and against the `bitcoin` crate's txids.
fn check_block(hex_file: &str, json_file: &str) {
    let raw = hex::decode(testdata(hex_file).trim()).unwrap();
    let meta = json(json_file);
    let header = Header::from_bytes(raw[..80].try_into().unwrap());
    assert_eq!(
        hex::encode_reversed(&header.block_hash()),
        meta["hash"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode_reversed(&header.merkle_root),
        meta["merkleroot"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode_reversed(&header.prev_hash),
        meta["previousblockhash"].as_str().unwrap()
    );
    assert_eq!(u64::from(header.version), meta["version"].as_u64().unwrap());
    assert_eq!(u64::from(header.nonce), meta["nonce"].as_u64().unwrap());
    assert_eq!(
        format!("{:08x}", header.bits),
        meta["bits"].as_str().unwrap()
    );
    assert_eq!(
        Target::from_compact(header.bits).unwrap().to_string(),
        meta["target"].as_str().unwrap()
    );
    let diff = nbits_difficulty(header.bits).unwrap();
    let core_diff = meta["difficulty"].as_f64().unwrap();
    assert!(
        (diff / core_diff - 1.0).abs() < 1e-12,
        "{diff} vs {core_diff}"
    );

    let block: bitcoin::Block = deserialize(&raw).unwrap();
    let txids: Vec<[u8; 32]> = block
        .txdata
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    assert_eq!(txids.len() as u64, meta["nTx"].as_u64().unwrap());
    assert_eq!(merkle::root(&txids), header.merkle_root);
    // The coinbase path alone gives the same root.
    let branches = merkle::coinbase_branches(&txids[1..]);
    assert_eq!(
        merkle::root_from_branches(&txids[0], &branches),
        header.merkle_root
    );
    // And the coinbase txid from our hasher matches.
    let stripped = strip_witness(&block.txdata[0]);
    assert_eq!(sluice_pow::sha::sha256d(&stripped), txids[0]);
}

fn strip_witness(tx: &bitcoin::Transaction) -> Vec<u8> {
    let mut t = tx.clone();
    for i in &mut t.input {
        i.witness.clear();
    }
    bitcoin::consensus::serialize(&t)
}

use bitcoin::hashes::Hash as _;

#[test]
fn core_block_203() {
    check_block("block-regtest-203.hex", "block-regtest-203.json");
}

#[test]
fn ckpool_block_204() {
    check_block(
        "block-regtest-204-ckpool.hex",
        "block-regtest-204-ckpool.json",
    );
}

#[test]
fn sv2_stack_block_102() {
    check_block(
        "block-regtest30-102-sv2pool.hex",
        "block-regtest30-102-sv2pool.json",
    );
}

/// Pulls the JSON objects out of a transcript's `<`/`>` lines.
fn transcript(name: &str) -> Vec<serde_json::Value> {
    testdata(name)
        .lines()
        .filter_map(|l| l.strip_prefix("< ").or_else(|| l.strip_prefix("> ")))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Rebuilds a share from a V1 transcript (subscribe result, notify, submit)
/// through the ShareChecker and returns (hash, header, checker).
fn replay(name: &str) -> ([u8; 32], Header) {
    let msgs = transcript(name);
    let sub = msgs.iter().find(|m| m["result"].is_array()).unwrap();
    let en1 = hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
    let en2_size = sub["result"][2].as_u64().unwrap() as usize;
    let notify = msgs
        .iter()
        .find(|m| m["method"] == "mining.notify")
        .unwrap();
    let p = &notify["params"];
    let s = |i: usize| p[i].as_str().unwrap();
    let prev = hex::swap_words(&hex::decode_array::<32>(s(1).as_bytes()).unwrap());
    let branches = p[4]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode_array::<32>(b.as_str().unwrap().as_bytes()).unwrap())
        .collect();
    let job = JobTemplate::new(
        prev,
        hex::decode(s(2)).unwrap(),
        hex::decode(s(3)).unwrap(),
        branches,
        hex::decode_u32_be(s(6).as_bytes()).unwrap(),
    )
    .unwrap();
    let version = hex::decode_u32_be(s(5).as_bytes()).unwrap();
    let submit = msgs
        .iter()
        .find(|m| m["method"] == "mining.submit")
        .unwrap();
    let q = |i: usize| submit["params"][i].as_str().unwrap();
    assert_eq!(q(1), s(0), "submit names the notified job");
    let en2 = hex::decode(q(2)).unwrap();
    assert_eq!(en2.len(), en2_size);
    let share = Submission {
        extranonce2: &en2,
        time: hex::decode_u32_be(q(3).as_bytes()).unwrap(),
        nonce: hex::decode_u32_be(q(4).as_bytes()).unwrap(),
        version,
    };
    let mut checker = ShareChecker::new(Arc::new(job), &en1, en2_size, sluice_pow::DIFF1).unwrap();
    let r = checker.check(&share).unwrap();
    assert!(r.meets_network_target, "the transcript's share was a block");
    (r.hash, checker.header(&share))
}

#[test]
fn ckpool_v1_exchange_rebuilds_block_204() {
    let (hash, header) = replay("stratum-v1-ckpool-block204.txt");
    let raw = hex::decode(testdata("block-regtest-204-ckpool.hex").trim()).unwrap();
    assert_eq!(&header.to_bytes()[..], &raw[..80]);
    assert_eq!(
        hex::encode_reversed(&hash),
        "000000008fdbbf33bac742810a9dbdb9c3607e48682376a92534f4e41c995dd0"
    );
}

#[test]
fn translator_sv2_exchange_rebuilds_block_102() {
    let (hash, header) = replay("stratum-v1-translator_sv2-session.txt");
    let raw = hex::decode(testdata("block-regtest30-102-sv2pool.hex").trim()).unwrap();
    assert_eq!(&header.to_bytes()[..], &raw[..80]);
    assert_eq!(
        hex::encode_reversed(&hash),
        "0000001ff84e5c9199008e10f703d8289da84e11bc8c9838a21566127b61ae4b"
    );
}

#[test]
fn ckpool_notify_branches_match_block_txids() {
    let raw = hex::decode(testdata("block-regtest-204-ckpool.hex").trim()).unwrap();
    let block: bitcoin::Block = deserialize(&raw).unwrap();
    let txids: Vec<[u8; 32]> = block.txdata[1..]
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    let msgs = transcript("stratum-v1-ckpool-block204.txt");
    let notify = msgs
        .iter()
        .find(|m| m["method"] == "mining.notify")
        .unwrap();
    let sent: Vec<String> = notify["params"][4]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    let ours: Vec<String> = merkle::coinbase_branches(&txids)
        .iter()
        .map(|b| hex::encode(b))
        .collect();
    assert_eq!(ours, sent);
}

/// The pool's reward read from its notify (coinb1 ‖ extranonce ‖ coinb2)
/// is what the found block's coinbase really paid.
#[test]
fn coinbase_reward_from_notify_matches_the_block() {
    for (transcript_file, block_file) in [
        (
            "stratum-v1-ckpool-block204.txt",
            "block-regtest-204-ckpool.hex",
        ),
        (
            "stratum-v1-translator_sv2-session.txt",
            "block-regtest30-102-sv2pool.hex",
        ),
    ] {
        let msgs = transcript(transcript_file);
        let sub = msgs.iter().find(|m| m["result"].is_array()).unwrap();
        let en1_len = sub["result"][1].as_str().unwrap().len() / 2;
        let en2_size = sub["result"][2].as_u64().unwrap() as usize;
        let notify = msgs
            .iter()
            .find(|m| m["method"] == "mining.notify")
            .unwrap();
        let p = &notify["params"];
        let coinb1 = hex::decode(p[2].as_str().unwrap()).unwrap();
        let coinb2 = hex::decode(p[3].as_str().unwrap()).unwrap();
        let total =
            sluice_pow::coinbase::coinbase_output_total(&coinb1, en1_len + en2_size, &coinb2)
                .unwrap();
        let raw = hex::decode(testdata(block_file).trim()).unwrap();
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&raw).unwrap();
        let paid: u64 = block.txdata[0]
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum();
        assert_eq!(total, paid, "{transcript_file}");
        assert!(total > 0);
        // Truncated or garbled coinbases give no reward rather than a wrong one.
        assert_eq!(
            sluice_pow::coinbase::coinbase_output_total(
                &coinb1,
                en1_len + en2_size,
                &coinb2[..coinb2.len() - 5]
            ),
            None
        );
        assert_eq!(
            sluice_pow::coinbase::coinbase_output_total(&coinb1[..10], 0, &[]),
            None
        );
    }
}
