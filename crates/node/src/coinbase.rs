//! A consensus-valid coinbase transaction, split for Stratum around the
//! extranonce.
//!
//! Layout of the non-witness serialisation, which is what the txid and the
//! Stratum `coinb1 ‖ extranonce ‖ coinb2` split cover:
//!
//! ```text
//! coinb1: version · 01 · 00×32 ffffffff · scriptSig length · BIP34 height push
//!         extranonce (extranonce_len bytes, raw: no push opcode)
//! coinb2: tag (raw) · sequence fffffffe · outputs [· witness commitment] · lock time
//! ```
//!
//! The extranonce and the tag go into the scriptSig as raw bytes: a
//! coinbase scriptSig is never executed, and this is the shape Bitcoin
//! Core's own miner produces (`height ‖ OP_0`, the `OP_0` being a one-byte
//! extranonce), which the tests reproduce byte for byte.
//!
//! Sequence and lock time follow Bitcoin Core 29+ and the Stratum V2
//! reference pool: nSequence `0xfffffffe` so that nLockTime is enforced,
//! and nLockTime = height − 1 by default. BIP54 (consensus cleanup) would
//! require exactly that, so blocks built today stay valid under it.

use sluice_pow::merkle;
use sluice_pow::sha::Sha256;
use sluice_pow::sha::merkle_node;

use crate::wire::{write_compact_size, write_var_bytes};

/// nSequence of the coinbase input: not final, so nLockTime applies.
pub const COINBASE_SEQUENCE: u32 = 0xffff_fffe;

/// Largest number of satoshis that can exist (`MAX_MONEY`).
pub const MAX_MONEY_SAT: u64 = 21_000_000 * 100_000_000;

/// Shortest coinbase scriptSig consensus allows (`bad-cb-length`).
pub const MIN_SCRIPT_SIG_LEN: usize = 2;

/// Longest coinbase scriptSig consensus allows (`bad-cb-length`).
pub const MAX_SCRIPT_SIG_LEN: usize = 100;

/// The first six bytes of a BIP141 witness commitment output script:
/// `OP_RETURN`, a 36-byte push, and the commitment header `aa21a9ed`.
pub const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// The witness reserved value this crate always uses (BIP141 lets it be
/// any 32 bytes; everyone uses zeros).
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// One output of the coinbase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOut {
    /// Value in satoshis.
    pub value_sat: u64,
    /// The scriptPubKey.
    pub script_pubkey: Vec<u8>,
}

/// What to put in a coinbase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSpec {
    /// Height of the block this coinbase is for (BIP34); at least 1.
    pub height: u32,
    /// Payout outputs, in order. Their sum is not checked against the
    /// template here ([`crate::block::check_coinbase`] does that).
    pub outputs: Vec<TxOut>,
    /// The BIP141 commitment; when set, an extra zero-value output
    /// carrying it is appended after `outputs`.
    pub witness_commitment: Option<[u8; 32]>,
    /// Raw bytes after the extranonce in the scriptSig (a pool tag).
    pub tag: Vec<u8>,
    /// Bytes reserved for the extranonce (extranonce1 + extranonce2 in V1).
    pub extranonce_len: usize,
    /// Transaction version (2 by default).
    pub version: u32,
    /// nLockTime; must be below `height` to be final.
    pub lock_time: u32,
}

impl CoinbaseSpec {
    /// A spec with the defaults: version 2, lock time height − 1, an
    /// 8-byte extranonce, no tag and no witness commitment.
    pub fn new(height: u32, outputs: Vec<TxOut>) -> Self {
        Self {
            height,
            outputs,
            witness_commitment: None,
            tag: Vec::new(),
            extranonce_len: 8,
            version: 2,
            lock_time: height.saturating_sub(1),
        }
    }
}

/// Why a coinbase could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoinbaseError {
    /// Height 0 is the genesis block, which nobody builds a coinbase for.
    #[error("height 0 has no buildable coinbase")]
    HeightZero,
    /// The scriptSig (height push + extranonce + tag) is outside 2..=100.
    #[error("coinbase scriptSig would be {0} bytes; consensus allows 2..=100")]
    ScriptSigLength(usize),
    /// No outputs at all (and no witness commitment).
    #[error("coinbase has no outputs")]
    NoOutputs,
    /// An output value or the sum of all exceeds 21 million BTC.
    #[error("coinbase output values exceed MAX_MONEY")]
    ValueTooLarge,
    /// The lock time is not below the height, so the coinbase would not be
    /// final in its own block.
    #[error("lock time {lock_time} is not final at height {height}")]
    LockTimeNotFinal {
        /// The requested nLockTime.
        lock_time: u32,
        /// The block height.
        height: u32,
    },
    /// The serialisation would be exactly 64 bytes, the size BIP54 makes
    /// invalid because it can pass for an inner merkle node.
    #[error("coinbase would be exactly 64 bytes")]
    SixtyFourBytes,
    /// An extranonce of the wrong length was given to [`CoinbaseParts`].
    #[error("extranonce is {got} bytes, expected {expected}")]
    ExtranonceLength {
        /// Bytes the coinbase reserves.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

/// A built coinbase: the legacy serialisation is
/// `coinb1 ‖ extranonce ‖ coinb2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseParts {
    /// Bytes before the extranonce.
    pub coinb1: Vec<u8>,
    /// Bytes after the extranonce.
    pub coinb2: Vec<u8>,
    /// Bytes the extranonce must have.
    pub extranonce_len: usize,
}

impl CoinbaseParts {
    /// Length of the legacy serialisation with its extranonce.
    pub fn total_len(&self) -> usize {
        self.coinb1.len() + self.extranonce_len + self.coinb2.len()
    }

    /// The legacy serialisation for one extranonce.
    pub fn serialize(&self, extranonce: &[u8]) -> Result<Vec<u8>, CoinbaseError> {
        self.check_extranonce(extranonce)?;
        Ok([&self.coinb1[..], extranonce, &self.coinb2].concat())
    }

    /// The coinbase txid for one extranonce (internal byte order).
    pub fn txid(&self, extranonce: &[u8]) -> Result<[u8; 32], CoinbaseError> {
        self.check_extranonce(extranonce)?;
        let mut h = Sha256::new();
        h.update(&self.coinb1);
        h.update(extranonce);
        h.update(&self.coinb2);
        Ok(h.finalize_double())
    }

    fn check_extranonce(&self, extranonce: &[u8]) -> Result<(), CoinbaseError> {
        if extranonce.len() == self.extranonce_len {
            Ok(())
        } else {
            Err(CoinbaseError::ExtranonceLength {
                expected: self.extranonce_len,
                got: extranonce.len(),
            })
        }
    }
}

/// Builds the coinbase described by `spec`, split around its extranonce.
pub fn build(spec: &CoinbaseSpec) -> Result<CoinbaseParts, CoinbaseError> {
    if spec.height == 0 {
        return Err(CoinbaseError::HeightZero);
    }
    if spec.lock_time >= spec.height {
        return Err(CoinbaseError::LockTimeNotFinal {
            lock_time: spec.lock_time,
            height: spec.height,
        });
    }
    if spec.outputs.is_empty() && spec.witness_commitment.is_none() {
        return Err(CoinbaseError::NoOutputs);
    }
    let mut total = 0u64;
    for o in &spec.outputs {
        total = total
            .checked_add(o.value_sat)
            .filter(|&t| o.value_sat <= MAX_MONEY_SAT && t <= MAX_MONEY_SAT)
            .ok_or(CoinbaseError::ValueTooLarge)?;
    }
    let height_push = bip34_height_script(spec.height);
    let script_len = height_push.len() + spec.extranonce_len + spec.tag.len();
    if !(MIN_SCRIPT_SIG_LEN..=MAX_SCRIPT_SIG_LEN).contains(&script_len) {
        return Err(CoinbaseError::ScriptSigLength(script_len));
    }

    let mut coinb1 = Vec::with_capacity(42 + height_push.len());
    coinb1.extend_from_slice(&spec.version.to_le_bytes());
    coinb1.push(1);
    coinb1.extend_from_slice(&[0; 32]);
    coinb1.extend_from_slice(&u32::MAX.to_le_bytes());
    write_compact_size(&mut coinb1, script_len as u64);
    coinb1.extend_from_slice(&height_push);

    let mut coinb2 = Vec::new();
    coinb2.extend_from_slice(&spec.tag);
    coinb2.extend_from_slice(&COINBASE_SEQUENCE.to_le_bytes());
    let n_out = spec.outputs.len() + usize::from(spec.witness_commitment.is_some());
    write_compact_size(&mut coinb2, n_out as u64);
    for o in &spec.outputs {
        coinb2.extend_from_slice(&o.value_sat.to_le_bytes());
        write_var_bytes(&mut coinb2, &o.script_pubkey);
    }
    if let Some(c) = &spec.witness_commitment {
        coinb2.extend_from_slice(&0u64.to_le_bytes());
        write_var_bytes(&mut coinb2, &witness_commitment_script(c));
    }
    coinb2.extend_from_slice(&spec.lock_time.to_le_bytes());

    let parts = CoinbaseParts {
        coinb1,
        coinb2,
        extranonce_len: spec.extranonce_len,
    };
    if parts.total_len() == 64 {
        return Err(CoinbaseError::SixtyFourBytes);
    }
    Ok(parts)
}

/// The script Bitcoin Core expects a coinbase scriptSig to start with at
/// `height`: `CScript() << height`. That is `OP_0` for 0, `OP_1`..`OP_16`
/// for 1..=16 (not a one-byte push: Core's BIP34 check compares bytes, so
/// a push of `0x05` at height 5 is invalid), and otherwise a push of the
/// minimal little-endian `CScriptNum` with a sign byte when the top bit is
/// set (height 204 → `02 cc 00`).
pub fn bip34_height_script(height: u32) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let le = height.to_le_bytes();
            let mut n = 4;
            while le[n - 1] == 0 {
                n -= 1;
            }
            let mut out = Vec::with_capacity(6);
            let sign_byte = le[n - 1] & 0x80 != 0;
            out.push(n as u8 + u8::from(sign_byte));
            out.extend_from_slice(&le[..n]);
            if sign_byte {
                out.push(0);
            }
            out
        }
    }
}

/// The BIP141 commitment for a block whose non-coinbase transactions have
/// these wtxids (block order, internal byte order): sha256d of the witness
/// merkle root (the coinbase's wtxid counting as zero) followed by the
/// zero witness reserved value.
pub fn witness_commitment(wtxids_excluding_coinbase: &[[u8; 32]]) -> [u8; 32] {
    let root = merkle::root_from_branches(
        &[0; 32],
        &merkle::coinbase_branches(wtxids_excluding_coinbase),
    );
    merkle_node(&root, &WITNESS_RESERVED_VALUE)
}

/// The 38-byte output script carrying a witness commitment.
pub fn witness_commitment_script(commitment: &[u8; 32]) -> Vec<u8> {
    [&WITNESS_COMMITMENT_HEADER[..], commitment].concat()
}

/// The witness commitment among output scripts, as BIP141 finds it: the
/// last script of at least 38 bytes starting with
/// [`WITNESS_COMMITMENT_HEADER`].
pub fn find_witness_commitment<'a>(
    scripts: impl IntoIterator<Item = &'a [u8]>,
) -> Option<[u8; 32]> {
    scripts
        .into_iter()
        .filter_map(|s| {
            let rest = s.strip_prefix(&WITNESS_COMMITMENT_HEADER[..])?;
            rest.get(..32)?.try_into().ok()
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Tx;
    use sluice_pow::hex;

    fn p2wpkh() -> Vec<u8> {
        hex::decode("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap()
    }

    #[test]
    fn height_pushes_match_core() {
        let cases: [(u32, &str); 14] = [
            (0, "00"),
            (1, "51"),
            (16, "60"),
            (17, "0111"),
            (102, "0166"),
            (127, "017f"),
            (128, "028000"),
            (203, "02cb00"),
            (204, "02cc00"),
            (255, "02ff00"),
            (256, "020001"),
            (32_768, "03008000"),
            (840_000, "0340d10c"),
            (u32::MAX, "05ffffffff00"),
        ];
        for (h, want) in cases {
            assert_eq!(hex::encode(&bip34_height_script(h)), want, "height {h}");
        }
    }

    #[test]
    fn layout_and_split() {
        let mut spec = CoinbaseSpec::new(
            204,
            vec![TxOut {
                value_sat: 2_500_188_000,
                script_pubkey: p2wpkh(),
            }],
        );
        spec.tag = b"/sluice/".to_vec();
        spec.extranonce_len = 12;
        spec.witness_commitment = Some([0xab; 32]);
        let parts = build(&spec).unwrap();
        // version, 1 input, null prevout, scriptSig length, height push.
        assert_eq!(
            hex::encode(&parts.coinb1),
            format!(
                "0200000001{}ffffffff{:02x}02cc00",
                "00".repeat(32),
                3 + 12 + 8
            )
        );
        let en = [0x11; 12];
        let raw = parts.serialize(&en).unwrap();
        assert_eq!(raw.len(), parts.total_len());
        let tx = Tx::parse(&raw).unwrap();
        assert!(tx.is_coinbase());
        assert!(!tx.has_witness());
        let input = &tx.inputs[0];
        assert_eq!(
            input.script_sig,
            [&[2, 0xcc, 0][..], &en, b"/sluice/"].concat()
        );
        assert_eq!(input.sequence, COINBASE_SEQUENCE);
        assert_eq!(tx.lock_time, 203);
        assert_eq!(tx.outputs.len(), 2);
        assert_eq!(tx.outputs[1].value_sat, 0);
        assert_eq!(
            find_witness_commitment(tx.outputs.iter().map(|o| o.script_pubkey)),
            Some([0xab; 32])
        );
        assert_eq!(parts.txid(&en).unwrap(), tx.txid());
        assert_eq!(
            parts.txid(&[0; 3]),
            Err(CoinbaseError::ExtranonceLength {
                expected: 12,
                got: 3
            })
        );
    }

    #[test]
    fn refusals() {
        let out = || {
            vec![TxOut {
                value_sat: 1,
                script_pubkey: p2wpkh(),
            }]
        };
        let mut s = CoinbaseSpec::new(5, out());
        s.extranonce_len = 0;
        // OP_5 alone is one byte.
        assert_eq!(build(&s), Err(CoinbaseError::ScriptSigLength(1)));
        s.extranonce_len = 1;
        assert!(build(&s).is_ok());
        s.extranonce_len = 100;
        assert_eq!(build(&s), Err(CoinbaseError::ScriptSigLength(101)));
        s.extranonce_len = 99;
        assert!(build(&s).is_ok());

        let mut s = CoinbaseSpec::new(300, out());
        s.lock_time = 300;
        assert_eq!(
            build(&s),
            Err(CoinbaseError::LockTimeNotFinal {
                lock_time: 300,
                height: 300
            })
        );
        s.lock_time = 600_000_000;
        assert!(build(&s).is_err());
        assert_eq!(
            build(&CoinbaseSpec::new(0, out())),
            Err(CoinbaseError::HeightZero)
        );

        let mut s = CoinbaseSpec::new(300, vec![]);
        assert_eq!(build(&s), Err(CoinbaseError::NoOutputs));
        s.witness_commitment = Some([0; 32]);
        assert!(build(&s).is_ok());

        for values in [
            vec![MAX_MONEY_SAT + 1],
            vec![MAX_MONEY_SAT, 1],
            vec![u64::MAX, u64::MAX],
        ] {
            let outputs = values
                .into_iter()
                .map(|value_sat| TxOut {
                    value_sat,
                    script_pubkey: vec![],
                })
                .collect();
            assert_eq!(
                build(&CoinbaseSpec::new(300, outputs)),
                Err(CoinbaseError::ValueTooLarge)
            );
        }
    }

    #[test]
    fn sixty_four_byte_coinbase_is_refused() {
        // 42 + scriptSig + 4 + 1 + (8 + 1 + script) + 4 = 64 with a 2-byte
        // scriptSig and a 2-byte output script.
        let mut s = CoinbaseSpec::new(
            300,
            vec![TxOut {
                value_sat: 0,
                script_pubkey: vec![0x51, 0x51],
            }],
        );
        s.extranonce_len = 0;
        s.tag = vec![];
        // height 300 pushes 3 bytes: 65 bytes, fine.
        assert_eq!(build(&s).unwrap().total_len(), 65);
        s.height = 100;
        s.lock_time = 0;
        assert_eq!(build(&s), Err(CoinbaseError::SixtyFourBytes));
    }

    #[test]
    fn empty_block_commitment_matches_core() {
        // gbt-regtest-1.json (no transactions) and the SV2 pool's block 102.
        assert_eq!(
            hex::encode(&witness_commitment(&[])),
            "e2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
        );
    }

    #[test]
    fn finds_the_last_commitment_only() {
        let a = witness_commitment_script(&[1; 32]);
        let b = witness_commitment_script(&[2; 32]);
        let short = &a[..37];
        let mut long = b.clone();
        long.push(0x99);
        assert_eq!(
            find_witness_commitment([&a[..], &b[..], short]),
            Some([2; 32])
        );
        assert_eq!(find_witness_commitment([&b[..], &a[..]]), Some([1; 32]));
        assert_eq!(find_witness_commitment([&long[..]]), Some([2; 32]));
        assert_eq!(find_witness_commitment([short]), None);
    }
}
