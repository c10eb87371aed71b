//! The full block for `submitblock`: header, transaction count, the
//! coinbase (with its witness when it commits to witnesses), then the
//! template's transactions.
//!
//! Miners only ever see the coinbase's legacy serialisation (that is what
//! the txid, and so the merkle root, covers). BIP141 requires a coinbase
//! that carries a witness commitment to also carry a witness: exactly one
//! 32-byte item, the reserved value. [`assemble`] adds it, so callers keep
//! working with the bytes the miner hashed.
//!
//! Everything checkable without the chain is checked first (coinbase
//! shape, BIP34 height, value, finality, witness commitment, prev hash,
//! bits, merkle root), so a node never sees a block that fails for a
//! reason the pool could have caught. Proof of work is not checked: a
//! caller may want to assemble a block proposal.

use sluice_pow::{Header, hex};

use crate::coinbase::{self, MAX_SCRIPT_SIG_LEN, MIN_SCRIPT_SIG_LEN, WITNESS_RESERVED_VALUE};
use crate::template::BlockTemplate;
use crate::tx::{Tx, TxError};
use crate::wire::{write_compact_size, write_var_bytes};

/// Lock times from this value on are Unix times, below it heights.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Why a coinbase or header does not fit its template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The coinbase bytes are not a transaction.
    #[error("coinbase: {0}")]
    Coinbase(TxError),
    /// The transaction is not shaped like a coinbase (one input spending
    /// the null prevout).
    #[error("transaction is not a coinbase")]
    NotCoinbase,
    /// Witness data was given where the legacy serialisation is expected.
    #[error("coinbase must be given in its legacy serialisation")]
    CoinbaseHasWitness,
    /// The scriptSig is outside 2..=100 bytes.
    #[error("coinbase scriptSig is {0} bytes; consensus allows 2..=100")]
    ScriptSigLength(usize),
    /// The scriptSig does not start with the template's BIP34 height.
    #[error("coinbase scriptSig does not start with height {0}")]
    Bip34Height(u32),
    /// The coinbase is not final in this block.
    #[error("coinbase lock time {0} is not final")]
    LockTimeNotFinal(u32),
    /// The outputs claim more than the template allows.
    #[error("coinbase claims {claimed} sat, template allows {allowed}")]
    Overpays {
        /// Sum of the outputs (`u64::MAX` when it overflows).
        claimed: u64,
        /// The template's coinbase value.
        allowed: u64,
    },
    /// Some transaction has witness data but the coinbase commits to none.
    #[error("template has witness transactions but the coinbase has no commitment")]
    MissingWitnessCommitment,
    /// The coinbase's commitment is not the template's.
    #[error("coinbase witness commitment does not match the template")]
    WitnessCommitmentMismatch,
    /// The header builds on another tip.
    #[error("header prev hash is not the template's")]
    PrevHashMismatch,
    /// The header's bits are not the template's.
    #[error("header bits are not the template's")]
    BitsMismatch,
    /// The header's merkle root is not the root of this coinbase and the
    /// template's transactions.
    #[error("header merkle root does not match the transactions")]
    MerkleRootMismatch,
}

/// What [`check_coinbase`] learned about a valid coinbase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoinbaseCheck {
    /// The coinbase txid, internal byte order.
    pub txid: [u8; 32],
    /// Sum of its outputs.
    pub claimed_sat: u64,
    /// True when it carries a witness commitment (so the block must carry
    /// its witness reserved value).
    pub has_witness_commitment: bool,
}

/// Checks a coinbase (legacy serialisation) against its template:
/// coinbase shape, scriptSig length, BIP34 height, finality, value and
/// witness commitment.
pub fn check_coinbase(
    template: &BlockTemplate,
    coinbase_legacy: &[u8],
) -> Result<CoinbaseCheck, BlockError> {
    let tx = Tx::parse(coinbase_legacy).map_err(BlockError::Coinbase)?;
    if tx.has_witness() {
        return Err(BlockError::CoinbaseHasWitness);
    }
    if !tx.is_coinbase() {
        return Err(BlockError::NotCoinbase);
    }
    let input = tx.inputs.first().ok_or(BlockError::NotCoinbase)?;
    let script = input.script_sig;
    if !(MIN_SCRIPT_SIG_LEN..=MAX_SCRIPT_SIG_LEN).contains(&script.len()) {
        return Err(BlockError::ScriptSigLength(script.len()));
    }
    if !script.starts_with(&coinbase::bip34_height_script(template.height)) {
        return Err(BlockError::Bip34Height(template.height));
    }
    if !is_final(&tx, template) {
        return Err(BlockError::LockTimeNotFinal(tx.lock_time));
    }
    let claimed = tx.output_total().unwrap_or(u64::MAX);
    if claimed > template.coinbase_value_sat {
        return Err(BlockError::Overpays {
            claimed,
            allowed: template.coinbase_value_sat,
        });
    }
    let commitment = coinbase::find_witness_commitment(tx.outputs.iter().map(|o| o.script_pubkey));
    match commitment {
        Some(c) if c != template.witness_commitment() => {
            return Err(BlockError::WitnessCommitmentMismatch);
        }
        None if template.transactions.iter().any(|t| t.wtxid != t.txid) => {
            return Err(BlockError::MissingWitnessCommitment);
        }
        _ => {}
    }
    Ok(CoinbaseCheck {
        txid: tx.txid(),
        claimed_sat: claimed,
        has_witness_commitment: commitment.is_some(),
    })
}

/// Core's `IsFinalTx` for the coinbase, with the template's median time
/// past (`min_time − 1`) as the cut-off for time-based lock times, as
/// BIP113 has it.
fn is_final(tx: &Tx<'_>, template: &BlockTemplate) -> bool {
    if tx.lock_time == 0 || tx.inputs.iter().all(|i| i.sequence == u32::MAX) {
        return true;
    }
    if tx.lock_time < LOCKTIME_THRESHOLD {
        tx.lock_time < template.height
    } else {
        tx.lock_time < template.min_time.saturating_sub(1)
    }
}

/// Serialises the block: `header ‖ tx count ‖ coinbase ‖ transactions`,
/// after checking the coinbase and header against the template.
pub fn assemble(
    template: &BlockTemplate,
    header: &Header,
    coinbase_legacy: &[u8],
) -> Result<Vec<u8>, BlockError> {
    if header.prev_hash != template.prev_hash {
        return Err(BlockError::PrevHashMismatch);
    }
    if header.bits != template.bits {
        return Err(BlockError::BitsMismatch);
    }
    let cb = check_coinbase(template, coinbase_legacy)?;
    if template.merkle_root(&cb.txid) != header.merkle_root {
        return Err(BlockError::MerkleRootMismatch);
    }
    let tx_bytes: usize = template.transactions.iter().map(|t| t.data.len()).sum();
    let mut out = Vec::with_capacity(80 + 9 + coinbase_legacy.len() + 36 + tx_bytes);
    out.extend_from_slice(&header.to_bytes());
    write_compact_size(&mut out, template.transactions.len() as u64 + 1);
    if cb.has_witness_commitment {
        write_coinbase_with_witness(&mut out, coinbase_legacy)?;
    } else {
        out.extend_from_slice(coinbase_legacy);
    }
    for t in &template.transactions {
        out.extend_from_slice(&t.data);
    }
    Ok(out)
}

/// [`assemble`], as the hex string `submitblock` takes.
pub fn block_hex(
    template: &BlockTemplate,
    header: &Header,
    coinbase_legacy: &[u8],
) -> Result<String, BlockError> {
    assemble(template, header, coinbase_legacy).map(|b| hex::encode(&b))
}

/// `version ‖ 00 01 ‖ inputs and outputs ‖ witness ‖ lock time`: a legacy
/// coinbase starts with its 4-byte version and ends with its 4-byte lock
/// time, so the BIP144 form only needs bytes inserted at both seams.
fn write_coinbase_with_witness(out: &mut Vec<u8>, legacy: &[u8]) -> Result<(), BlockError> {
    let short = BlockError::Coinbase(TxError::Truncated(legacy.len()));
    let (version, rest) = legacy.split_at_checked(4).ok_or(short)?;
    let body_len = rest.len().checked_sub(4).ok_or(short)?;
    let (body, lock_time) = rest.split_at(body_len);
    out.extend_from_slice(version);
    out.extend_from_slice(&[0x00, 0x01]);
    out.extend_from_slice(body);
    // One input, whose witness is one item: the reserved value.
    out.push(1);
    write_var_bytes(out, &WITNESS_RESERVED_VALUE);
    out.extend_from_slice(lock_time);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coinbase::{CoinbaseSpec, TxOut, build};

    const GBT3: &str = include_str!("../../../testdata/gbt-regtest-3.json");

    fn template() -> BlockTemplate {
        BlockTemplate::from_gbt_json(&serde_json::from_str(GBT3).unwrap()).unwrap()
    }

    fn coinbase(t: &BlockTemplate, edit: impl FnOnce(&mut CoinbaseSpec)) -> Vec<u8> {
        let mut spec = t.coinbase_spec(&[0x51, 0x51, 0x51], b"/t/", 4);
        edit(&mut spec);
        build(&spec).unwrap().serialize(&[7; 4]).unwrap()
    }

    fn header_for(t: &BlockTemplate, cb: &[u8]) -> Header {
        let txid = Tx::parse(cb).unwrap().txid();
        t.header(t.merkle_root(&txid), t.cur_time, 0)
    }

    #[test]
    fn assembles_with_witness_and_parses_back() {
        let t = template();
        let cb = coinbase(&t, |_| {});
        let h = header_for(&t, &cb);
        let block = assemble(&t, &h, &cb).unwrap();
        assert_eq!(&block[..80], &h.to_bytes());
        assert_eq!(block[80], 8);
        let with_witness = &block[81..81 + cb.len() + 2 + 34];
        let parsed = Tx::parse(with_witness).unwrap();
        assert!(parsed.has_witness());
        assert_eq!(parsed.inputs[0].witness, vec![&[0u8; 32][..]]);
        assert_eq!(parsed.txid(), Tx::parse(&cb).unwrap().txid());
        let rest = &block[81 + with_witness.len()..];
        let expected: Vec<u8> = t.transactions.iter().flat_map(|x| x.data.clone()).collect();
        assert_eq!(rest, &expected[..]);
        assert_eq!(block_hex(&t, &h, &cb).unwrap(), hex::encode(&block));
    }

    #[test]
    fn refusals() {
        let t = template();
        let good = coinbase(&t, |_| {});
        let h = header_for(&t, &good);
        let check = |cb: &[u8]| check_coinbase(&t, cb).map(|_| ());

        let wrong_height = coinbase(&t, |s| {
            s.height = 202;
            s.lock_time = 201;
        });
        assert_eq!(check(&wrong_height), Err(BlockError::Bip34Height(203)));
        let greedy = coinbase(&t, |s| s.outputs[0].value_sat += 1);
        assert_eq!(
            check(&greedy),
            Err(BlockError::Overpays {
                claimed: t.coinbase_value_sat + 1,
                allowed: t.coinbase_value_sat
            })
        );
        let no_commit = coinbase(&t, |s| s.witness_commitment = None);
        assert_eq!(check(&no_commit), Err(BlockError::MissingWitnessCommitment));
        let bad_commit = coinbase(&t, |s| s.witness_commitment = Some([1; 32]));
        assert_eq!(
            check(&bad_commit),
            Err(BlockError::WitnessCommitmentMismatch)
        );
        assert_eq!(
            check(&good[..good.len() - 1]),
            Err(BlockError::Coinbase(TxError::Truncated(good.len() - 4)))
        );
        // A non-coinbase transaction from the template itself.
        assert_eq!(
            check(&t.transactions[0].data),
            Err(BlockError::CoinbaseHasWitness)
        );
        let mut spend = good.clone();
        spend[5] = 1;
        assert_eq!(check(&spend), Err(BlockError::NotCoinbase));

        // Lock time: the builder refuses non-final values, so patch bytes.
        let mut late = good.clone();
        let n = late.len();
        late[n - 4..].copy_from_slice(&203u32.to_le_bytes());
        assert_eq!(check(&late), Err(BlockError::LockTimeNotFinal(203)));
        late[n - 4..].copy_from_slice(&(t.min_time - 1).to_le_bytes());
        assert_eq!(
            check(&late),
            Err(BlockError::LockTimeNotFinal(t.min_time - 1))
        );
        late[n - 4..].copy_from_slice(&(t.min_time - 2).to_le_bytes());
        assert!(check(&late).is_ok());

        // Header mismatches.
        let mut other = h;
        other.prev_hash[0] ^= 1;
        assert_eq!(
            assemble(&t, &other, &good),
            Err(BlockError::PrevHashMismatch)
        );
        let mut other = h;
        other.bits = 0x1d00_ffff;
        assert_eq!(assemble(&t, &other, &good), Err(BlockError::BitsMismatch));
        let other = header_for(&t, &coinbase(&t, |s| s.tag = b"/u/".to_vec()));
        assert_eq!(
            assemble(&t, &other, &good),
            Err(BlockError::MerkleRootMismatch)
        );
    }

    #[test]
    fn no_witness_without_commitment() {
        // Template with only legacy transactions (here: none) and no
        // suggested commitment: the coinbase goes in unchanged.
        let mut t = template();
        t.transactions.clear();
        t.default_witness_commitment = None;
        let spec = CoinbaseSpec::new(
            t.height,
            vec![TxOut {
                value_sat: 1,
                script_pubkey: vec![0x51],
            }],
        );
        let cb = build(&spec).unwrap().serialize(&[0; 8]).unwrap();
        let h = header_for(&t, &cb);
        let block = assemble(&t, &h, &cb).unwrap();
        assert_eq!(block, [&h.to_bytes()[..], &[1], &cb].concat());
    }
}
