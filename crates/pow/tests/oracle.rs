//! Property tests with the `bitcoin` crate as the oracle: header hashes,
//! merkle roots, compact targets and difficulty.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use bitcoin::block::{Header as BtcHeader, Version};
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{Hash as _, sha256d};
use bitcoin::pow::{CompactTarget, Target as BtcTarget};
use proptest::prelude::*;
use sluice_pow::{
    Header, HeaderMidstate, JobTemplate, ShareChecker, Submission, Target, merkle, sha,
};

fn arb_header() -> impl Strategy<Value = Header> {
    (
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(version, prev_hash, merkle_root, time, bits, nonce)| Header {
                version,
                prev_hash,
                merkle_root,
                time,
                bits,
                nonce,
            },
        )
}

/// A compact value the consensus rules accept: positive, non-zero, fits.
fn arb_valid_compact() -> impl Strategy<Value = u32> {
    (3u32..=32, 1u32..=0x7f_ffff).prop_map(|(size, mant)| (size << 24) | mant)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn header_hash_matches_bitcoin(h in arb_header()) {
        let bytes = h.to_bytes();
        let btc: BtcHeader = deserialize(&bytes).unwrap();
        prop_assert_eq!(serialize(&btc), bytes.to_vec());
        prop_assert_eq!(btc.version, Version::from_consensus(h.version as i32));
        let expect = btc.block_hash().to_byte_array();
        prop_assert_eq!(h.block_hash(), expect);
        prop_assert_eq!(h.midstate().hash(h.time, h.bits, h.nonce), expect);
        let m = HeaderMidstate::from_parts(h.version, &h.prev_hash, &h.merkle_root);
        prop_assert_eq!(m.hash(h.time, h.bits, h.nonce), expect);
        prop_assert_eq!(Header::from_bytes(&bytes), h);
    }

    #[test]
    fn sha256d_matches_bitcoin_hashes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(sha::sha256d(&data), sha256d::Hash::hash(&data).to_byte_array());
    }

    #[test]
    fn merkle_root_matches_bitcoin(txids in proptest::collection::vec(any::<[u8; 32]>(), 1..70)) {
        let btc = bitcoin::merkle_tree::calculate_root(
            txids.iter().map(|t| bitcoin::Txid::from_byte_array(*t)),
        ).unwrap();
        prop_assert_eq!(merkle::root(&txids), btc.to_byte_array());
    }

    #[test]
    fn share_checker_matches_bitcoin(
        coinb1 in proptest::collection::vec(any::<u8>(), 0..300),
        en1 in proptest::collection::vec(any::<u8>(), 0..16),
        en2 in proptest::collection::vec(any::<u8>(), 1..=8),
        coinb2 in proptest::collection::vec(any::<u8>(), 0..300),
        others in proptest::collection::vec(any::<[u8; 32]>(), 0..40),
        prev in any::<[u8; 32]>(),
        (time, nonce, version) in (any::<u32>(), any::<u32>(), any::<u32>()),
    ) {
        let branches = merkle::coinbase_branches(&others);
        let job = Arc::new(JobTemplate::new(prev, coinb1.clone(), coinb2.clone(), branches, 0x1d00ffff).unwrap());
        let mut c = ShareChecker::new(job, &en1, en2.len(), sluice_pow::DIFF1).unwrap();
        let s = Submission { extranonce2: &en2, time, nonce, version };
        let got = c.check(&s).unwrap();

        let coinbase = [&coinb1[..], &en1, &en2, &coinb2].concat();
        let cb_txid = sha256d::Hash::hash(&coinbase).to_byte_array();
        let mut all = vec![cb_txid];
        all.extend_from_slice(&others);
        let root = bitcoin::merkle_tree::calculate_root(
            all.iter().map(|t| bitcoin::Txid::from_byte_array(*t)),
        ).unwrap();
        let btc = BtcHeader {
            version: Version::from_consensus(version as i32),
            prev_blockhash: bitcoin::BlockHash::from_byte_array(prev),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(root.to_byte_array()),
            time,
            bits: CompactTarget::from_consensus(0x1d00ffff),
            nonce,
        };
        prop_assert_eq!(got.hash, btc.block_hash().to_byte_array());
        let btc_target = BtcTarget::from_compact(btc.bits);
        prop_assert_eq!(got.meets_network_target, btc.validate_pow(btc_target).is_ok());
        // Second call takes the cached path; same answer.
        prop_assert_eq!(c.check(&s).unwrap().hash, got.hash);
    }

    #[test]
    fn compact_round_trips_with_bitcoin(bits in arb_valid_compact()) {
        let ours = Target::from_compact(bits);
        let btc = BtcTarget::from_compact(CompactTarget::from_consensus(bits));
        match ours {
            Ok(t) => {
                prop_assert_eq!(t.to_le_bytes(), btc.to_le_bytes());
                prop_assert_eq!(t.to_compact(), btc.to_compact_lossy().to_consensus());
                // Re-encoding is canonical: decoding it gives the same target.
                prop_assert_eq!(Target::from_compact(t.to_compact()).unwrap(), t);
            }
            // Only encodings wider than 256 bits are refused here (bitcoin
            // silently truncates them).
            Err(_) => {
                let mantissa_bits = 32 - (bits & 0x7f_ffff).leading_zeros();
                prop_assert!(mantissa_bits + 8 * ((bits >> 24) - 3) > 256, "{:#x}", bits);
            }
        }
    }

    #[test]
    fn any_target_round_trips_through_compact_like_bitcoin(le in any::<[u8; 32]>()) {
        let ours = Target::from_le_bytes(&le);
        let btc = BtcTarget::from_le_bytes(le);
        prop_assert_eq!(ours.to_compact(), btc.to_compact_lossy().to_consensus());
    }

    #[test]
    fn difficulty_round_trips(d in 1e-9f64..1e15) {
        let t = Target::from_difficulty(d).unwrap();
        let back = t.difficulty();
        prop_assert!((back / d - 1.0).abs() < 1e-12, "{} -> {} -> {}", d, t, back);
        // Exactness: t = floor(DIFF1 / d) means t·d ≤ DIFF1 < (t+1)·d, checked
        // in floating point to 1e-12 relative.
        let approx = sluice_pow::DIFF1.to_f64() / d;
        prop_assert!((t.to_f64() / approx - 1.0).abs() < 1e-12);
    }

    #[test]
    fn difficulty_matches_bitcoin_for_network_targets(bits in arb_valid_compact()) {
        if let Ok(t) = Target::from_compact(bits) {
            let btc = BtcTarget::from_compact(CompactTarget::from_consensus(bits));
            // bitcoin's difficulty_float uses the same DIFF1 (max mainnet target).
            let theirs = btc.difficulty_float();
            let ours = t.difficulty();
            prop_assert!((ours / theirs - 1.0).abs() < 1e-9, "{} vs {}", ours, theirs);
        }
    }

    #[test]
    fn meets_target_matches_bitcoin(hash in any::<[u8; 32]>(), bits in arb_valid_compact()) {
        if let Ok(t) = Target::from_compact(bits) {
            let btc = BtcTarget::from_compact(CompactTarget::from_consensus(bits));
            let btc_meets = btc.is_met_by(bitcoin::BlockHash::from_byte_array(hash));
            prop_assert_eq!(t.is_met_by(&hash), btc_meets);
        }
    }
}
