//! Property tests with the `bitcoin` crate as the oracle: coinbases from
//! [`coinbase::build`], the transaction parser, and blocks assembled on
//! the synthetic chain.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use bitcoin::absolute::LockTime;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash as _;
use bitcoin::script::Builder;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, Txid, Witness};
use proptest::prelude::*;
use sluice_node::coinbase::{self, CoinbaseError, CoinbaseSpec, TxOut};
use sluice_node::{SyntheticChain, SyntheticConfig, Tx, block};
use sluice_pow::Header;

fn arb_outputs() -> impl Strategy<Value = Vec<TxOut>> {
    prop::collection::vec(
        (
            0..=coinbase::MAX_MONEY_SAT / 4,
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(value_sat, script_pubkey)| TxOut {
                value_sat,
                script_pubkey,
            }),
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any height 1..=10,000,000 and extranonce 1..=32 bytes gives a
    /// coinbase the oracle parses, whose scriptSig starts with exactly
    /// `Builder::push_int(height)` (Core's `CScript() << height`, the
    /// prefix Core's BIP34 check compares), followed by the extranonce and
    /// the tag; outputs, commitment, sequence, lock time and txid agree.
    #[test]
    fn coinbase_parses_with_right_height(
        height in 1u32..=10_000_000,
        extranonce in prop::collection::vec(any::<u8>(), 1..=32),
        tag in prop::collection::vec(any::<u8>(), 0..=20),
        outputs in arb_outputs(),
        commitment in prop::option::of(any::<[u8; 32]>()),
        version in any::<u32>(),
    ) {
        let mut spec = CoinbaseSpec::new(height, outputs.clone());
        spec.extranonce_len = extranonce.len();
        spec.tag = tag.clone();
        spec.witness_commitment = commitment;
        spec.version = version;
        let parts = match coinbase::build(&spec) {
            Ok(p) => p,
            Err(CoinbaseError::SixtyFourBytes) => {
                // Only the smallest shapes can hit 64 bytes.
                let script_sig = coinbase::bip34_height_script(height).len() + extranonce.len() + tag.len();
                let scripts: usize = outputs.iter().map(|o| o.script_pubkey.len()).sum();
                prop_assert_eq!(60 + script_sig + scripts, 64);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let raw = parts.serialize(&extranonce).unwrap();
        prop_assert_eq!(raw.len(), parts.total_len());
        let tx: Transaction = deserialize(&raw).unwrap();
        prop_assert!(tx.is_coinbase());
        prop_assert_eq!(tx.version, Version(version as i32));
        prop_assert_eq!(tx.lock_time.to_consensus_u32(), height - 1);
        prop_assert_eq!(tx.input[0].sequence, Sequence(0xffff_fffe));
        prop_assert!(tx.input[0].witness.is_empty());

        let expected_prefix = Builder::new().push_int(i64::from(height)).into_script();
        let want = [expected_prefix.as_bytes(), &extranonce, &tag].concat();
        prop_assert_eq!(tx.input[0].script_sig.as_bytes(), &want[..]);

        let n = outputs.len();
        prop_assert_eq!(tx.output.len(), n + usize::from(commitment.is_some()));
        for (got, want) in tx.output.iter().zip(&outputs) {
            prop_assert_eq!(got.value.to_sat(), want.value_sat);
            prop_assert_eq!(got.script_pubkey.as_bytes(), &want.script_pubkey[..]);
        }
        if let Some(c) = commitment {
            let last = &tx.output[n];
            prop_assert_eq!(last.value.to_sat(), 0);
            prop_assert_eq!(last.script_pubkey.as_bytes(), &coinbase::witness_commitment_script(&c)[..]);
        }
        prop_assert_eq!(tx.compute_txid().to_byte_array(), parts.txid(&extranonce).unwrap());

        // The oracle reads the height back (it only knows data pushes, so
        // heights 1..=16, which Core writes as OP_1..OP_16, are left out).
        if height > 16 {
            let block = bitcoin::Block {
                header: bitcoin::block::Header {
                    version: bitcoin::block::Version::from_consensus(0x2000_0000),
                    prev_blockhash: bitcoin::BlockHash::all_zeros(),
                    merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                    time: 0,
                    bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
                    nonce: 0,
                },
                txdata: vec![tx],
            };
            prop_assert_eq!(block.bip34_block_height().unwrap(), u64::from(height));
        }
    }

    /// The commitment of any wtxid list is the oracle's.
    #[test]
    fn witness_commitment_matches_oracle(wtxids in prop::collection::vec(any::<[u8; 32]>(), 0..40)) {
        let leaves = std::iter::once([0u8; 32]).chain(wtxids.iter().copied())
            .map(bitcoin::Wtxid::from_byte_array);
        let root = bitcoin::merkle_tree::calculate_root(leaves).unwrap();
        let want = bitcoin::Block::compute_witness_commitment(&root.into(), &[0u8; 32]);
        prop_assert_eq!(coinbase::witness_commitment(&wtxids), want.to_byte_array());
    }

    /// Transactions the oracle serialises parse to the same txid, wtxid,
    /// inputs and outputs.
    #[test]
    fn parser_agrees_with_oracle(tx in arb_tx()) {
        let raw = serialize(&tx);
        let parsed = Tx::parse(&raw).unwrap();
        prop_assert_eq!(parsed.txid(), tx.compute_txid().to_byte_array());
        prop_assert_eq!(parsed.wtxid(), tx.compute_wtxid().to_byte_array());
        prop_assert_eq!(parsed.has_witness(), tx.input.iter().any(|i| !i.witness.is_empty()));
        prop_assert_eq!(parsed.version, tx.version.0 as u32);
        prop_assert_eq!(parsed.lock_time, tx.lock_time.to_consensus_u32());
        prop_assert_eq!(parsed.inputs.len(), tx.input.len());
        for (p, o) in parsed.inputs.iter().zip(&tx.input) {
            prop_assert_eq!(p.prev_txid, o.previous_output.txid.to_byte_array());
            prop_assert_eq!(p.prev_index, o.previous_output.vout);
            prop_assert_eq!(p.script_sig, o.script_sig.as_bytes());
            prop_assert_eq!(p.sequence, o.sequence.0);
            let w: Vec<&[u8]> = o.witness.iter().collect();
            prop_assert_eq!(&p.witness, &w);
        }
        prop_assert_eq!(parsed.outputs.len(), tx.output.len());
        for (p, o) in parsed.outputs.iter().zip(&tx.output) {
            prop_assert_eq!(p.value_sat, o.value.to_sat());
            prop_assert_eq!(p.script_pubkey, o.script_pubkey.as_bytes());
        }
    }

    /// Corrupted transactions never panic the parser, and whenever both
    /// parsers accept the bytes they agree on the ids.
    #[test]
    fn corrupted_bytes_never_panic(
        tx in arb_tx(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut raw = serialize(&tx);
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        if truncate {
            raw.truncate(cut.index(raw.len()));
        }
        let ours = Tx::parse(&raw);
        let theirs: Result<Transaction, _> = deserialize(&raw);
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            prop_assert_eq!(a.txid(), b.compute_txid().to_byte_array());
            prop_assert_eq!(a.wtxid(), b.compute_wtxid().to_byte_array());
        }
        // Where we accept, the oracle accepts too (we are the stricter).
        if ours.is_ok() {
            prop_assert!(theirs.is_ok());
        }
    }

    /// Random bytes never panic the parser.
    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Tx::parse(&raw);
    }
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    let input = (
        any::<[u8; 32]>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..120),
        any::<u32>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..3),
    )
        .prop_map(|(txid, vout, sig, seq, witness)| bitcoin::TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array(txid),
                vout,
            },
            script_sig: ScriptBuf::from_bytes(sig),
            sequence: Sequence(seq),
            witness: Witness::from_slice(&witness),
        });
    let output =
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(v, script)| {
            bitcoin::TxOut {
                value: Amount::from_sat(v),
                script_pubkey: ScriptBuf::from_bytes(script),
            }
        });
    (
        any::<i32>(),
        prop::collection::vec(input, 1..4),
        prop::collection::vec(output, 1..4),
        any::<u32>(),
    )
        .prop_map(|(version, input, output, lock)| Transaction {
            version: Version(version),
            lock_time: LockTime::from_consensus(lock),
            input,
            output,
        })
}

/// Mines `blocks` blocks on a synthetic chain, each assembled and checked
/// by the oracle: merkle root, witness commitment, BIP34 height, hash.
fn mine_and_check(config: SyntheticConfig, blocks: u32) {
    let mut chain = SyntheticChain::new(config).unwrap();
    for b in 0..blocks {
        let t = chain.template().clone();
        let parts = coinbase::build(&chain.coinbase_spec(8)).unwrap();
        let en = u64::from(b).to_le_bytes();
        let cb = parts.serialize(&en).unwrap();
        let root = sluice_pow::merkle::root_from_branches(
            &parts.txid(&en).unwrap(),
            chain.merkle_branches(),
        );
        let header = (0..10_000u32)
            .map(|nonce| t.header(root, t.cur_time, nonce))
            .find(|h: &Header| chain.target().is_met_by(&h.block_hash()))
            .expect("regtest bits: half of all nonces win");
        let raw = block::assemble(&t, &header, &cb).unwrap();
        let found = chain.submit_block(&header, &cb).unwrap();
        assert_eq!(found.height, t.height);
        assert_eq!(found.reward_sat, t.coinbase_value_sat);

        let parsed: bitcoin::Block = deserialize(&raw).unwrap();
        assert_eq!(parsed.txdata.len(), t.transactions.len() + 1);
        assert!(parsed.check_merkle_root());
        assert!(parsed.check_witness_commitment());
        assert_eq!(parsed.bip34_block_height().unwrap(), u64::from(t.height));
        assert_eq!(parsed.block_hash().to_byte_array(), found.hash);
        assert_eq!(serialize(&parsed), raw);
        // The chain moved on to a template on the found block.
        assert_eq!(chain.template().prev_hash, found.hash);
        assert_eq!(chain.height(), t.height + 1);
    }
}

/// Synthetic blocks of several shapes (empty, one transaction, odd and
/// even counts, a deeper tree) are valid to the oracle.
#[test]
fn synthetic_blocks_pass_the_oracle() {
    for txs in [0, 1, 2, 7, 37] {
        mine_and_check(
            SyntheticConfig {
                network_difficulty: 1e-12,
                txs_per_block: txs,
                start_height: 840_000,
                ..SyntheticConfig::default()
            },
            3,
        );
    }
}

/// Every synthetic transaction parses in the oracle with the template's
/// txid and wtxid.
#[test]
fn synthetic_transactions_pass_the_oracle() {
    let chain = SyntheticChain::new(SyntheticConfig {
        txs_per_block: 50,
        ..SyntheticConfig::default()
    })
    .unwrap();
    for t in &chain.template().transactions {
        let tx: Transaction = deserialize(&t.data).unwrap();
        assert_eq!(tx.compute_txid().to_byte_array(), t.txid);
        assert_eq!(tx.compute_wtxid().to_byte_array(), t.wtxid);
        assert_eq!(tx.output.len(), 2);
    }
}
