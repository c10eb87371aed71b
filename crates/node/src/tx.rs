//! A minimal transaction parser: just enough structure to compute txid and
//! wtxid, to read a coinbase's input and outputs, and to tell whether a
//! transaction carries witness data. Scripts are never interpreted.
//!
//! The parser follows Bitcoin Core's deserialiser where it matters for
//! consensus (BIP144 marker and flag, canonical compact sizes, no
//! superfluous witness) and additionally refuses transactions that
//! `CheckTransaction` would (no inputs, no outputs). It borrows from the
//! input and never allocates more than the input can describe, so hostile
//! bytes cost at most their own length.

use std::ops::Range;

use sluice_pow::sha::{Sha256, sha256d};

/// Largest value a compact size may carry (Bitcoin Core's `MAX_SIZE`).
const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// Why bytes are not a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes end in the middle of a field.
    #[error("transaction ends early at byte {0}")]
    Truncated(usize),
    /// A compact size was not written in its shortest form.
    #[error("non-canonical compact size at byte {0}")]
    NonCanonicalSize(usize),
    /// A compact size exceeds 32 MiB.
    #[error("compact size at byte {0} exceeds 32 MiB")]
    SizeTooLarge(usize),
    /// A BIP144 marker followed by a flag other than 1.
    #[error("unknown witness flag {0:#04x}")]
    WitnessFlag(u8),
    /// The witness flag is set but every input's witness is empty; Core
    /// refuses this ("Superfluous witness record").
    #[error("witness flag set but every witness is empty")]
    SuperfluousWitness,
    /// No inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// No outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// Bytes left over after the lock time.
    #[error("{0} bytes after the lock time")]
    TrailingBytes(usize),
}

/// One input, borrowing from the parsed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxIn<'a> {
    /// Txid of the spent output, internal byte order.
    pub prev_txid: [u8; 32],
    /// Index of the spent output.
    pub prev_index: u32,
    /// The scriptSig.
    pub script_sig: &'a [u8],
    /// nSequence.
    pub sequence: u32,
    /// Witness stack items (empty for a legacy input).
    pub witness: Vec<&'a [u8]>,
}

/// One output, borrowing from the parsed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOutRef<'a> {
    /// Value in satoshis.
    pub value_sat: u64,
    /// The scriptPubKey.
    pub script_pubkey: &'a [u8],
}

/// A parsed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tx<'a> {
    /// nVersion.
    pub version: u32,
    /// The inputs, in order.
    pub inputs: Vec<TxIn<'a>>,
    /// The outputs, in order.
    pub outputs: Vec<TxOutRef<'a>>,
    /// nLockTime.
    pub lock_time: u32,
    raw: &'a [u8],
    /// Where the input and output lists sit in `raw`: with the version and
    /// the lock time they make the non-witness serialisation.
    body: Range<usize>,
    has_witness: bool,
}

impl<'a> Tx<'a> {
    /// Parses one complete transaction (trailing bytes are an error).
    pub fn parse(raw: &'a [u8]) -> Result<Self, TxError> {
        let mut r = Reader { buf: raw, pos: 0 };
        let version = r.u32_le()?;
        let mut segwit = false;
        if r.peek() == Some(0) {
            // A legacy transaction cannot have zero inputs, which is what
            // lets BIP144 use a zero byte as its marker.
            r.u8()?;
            match r.u8()? {
                1 => segwit = true,
                0 => return Err(TxError::NoInputs),
                flag => return Err(TxError::WitnessFlag(flag)),
            }
        }
        let body_start = r.pos;
        let n_in = r.compact_size()?;
        if n_in == 0 {
            return Err(TxError::NoInputs);
        }
        let mut inputs = Vec::new();
        for _ in 0..n_in {
            inputs.push(TxIn {
                prev_txid: r.array()?,
                prev_index: r.u32_le()?,
                script_sig: r.var_bytes()?,
                sequence: r.u32_le()?,
                witness: Vec::new(),
            });
        }
        let n_out = r.compact_size()?;
        if n_out == 0 {
            return Err(TxError::NoOutputs);
        }
        let mut outputs = Vec::new();
        for _ in 0..n_out {
            outputs.push(TxOutRef {
                value_sat: r.u64_le()?,
                script_pubkey: r.var_bytes()?,
            });
        }
        let body = body_start..r.pos;
        if segwit {
            let mut any = false;
            for input in &mut inputs {
                let items = r.compact_size()?;
                for _ in 0..items {
                    input.witness.push(r.var_bytes()?);
                }
                any |= items > 0;
            }
            if !any {
                return Err(TxError::SuperfluousWitness);
            }
        }
        let lock_time = r.u32_le()?;
        let left = raw.len() - r.pos;
        if left != 0 {
            return Err(TxError::TrailingBytes(left));
        }
        Ok(Self {
            version,
            inputs,
            outputs,
            lock_time,
            raw,
            body,
            has_witness: segwit,
        })
    }

    /// The bytes this transaction was parsed from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True when serialised with BIP144 witness data.
    pub fn has_witness(&self) -> bool {
        self.has_witness
    }

    /// sha256d of the non-witness serialisation.
    pub fn txid(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let (version, rest) = self.raw.split_at(4.min(self.raw.len()));
        h.update(version);
        h.update(self.raw.get(self.body.clone()).unwrap_or_default());
        h.update(rest.get(rest.len().saturating_sub(4)..).unwrap_or_default());
        h.finalize_double()
    }

    /// sha256d of the full serialisation (equal to the txid without
    /// witness data). A coinbase's wtxid is defined as zero by BIP141; that
    /// is the caller's business, not this function's.
    pub fn wtxid(&self) -> [u8; 32] {
        if self.has_witness {
            sha256d(self.raw)
        } else {
            self.txid()
        }
    }

    /// One input spending the null prevout: the shape of a coinbase.
    pub fn is_coinbase(&self) -> bool {
        matches!(self.inputs.as_slice(), [only] if only.prev_txid == [0; 32] && only.prev_index == u32::MAX)
    }

    /// Sum of the output values, or `None` on overflow.
    pub fn output_total(&self) -> Option<u64> {
        self.outputs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.value_sat))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TxError> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(TxError::Truncated(self.pos))?;
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TxError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, TxError> {
        self.array::<1>().map(|[b]| b)
    }

    fn u32_le(&mut self) -> Result<u32, TxError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64_le(&mut self) -> Result<u64, TxError> {
        self.array().map(u64::from_le_bytes)
    }

    fn compact_size(&mut self) -> Result<u64, TxError> {
        let at = self.pos;
        let (value, min) = match self.u8()? {
            0xfd => (u64::from(u16::from_le_bytes(self.array()?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array()?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array()?), 0x1_0000_0000),
            n => (u64::from(n), 0),
        };
        if value < min {
            return Err(TxError::NonCanonicalSize(at));
        }
        if value > MAX_COMPACT_SIZE {
            return Err(TxError::SizeTooLarge(at));
        }
        Ok(value)
    }

    fn var_bytes(&mut self) -> Result<&'a [u8], TxError> {
        let at = self.pos;
        let n = self.compact_size()?;
        let n = usize::try_from(n).map_err(|_| TxError::SizeTooLarge(at))?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_pow::hex;

    /// A segwit spend from gbt-regtest-2.json.
    const SEGWIT: &str = "02000000000101d70d0e7cb1025c1673a946fd12bfd896ae6dde03f310d7a361754c2ca07a4a4c0000000000fdffffff0200e1f50500000000160014751e76e8199196d454941c45d1b3a323f1433bd6180d102401000000160014fc7250a211deddc70ee5a2738de5f07817351cef0247304402203638b003860cf949d48dcbb449493cbcfeba11f749e30892b4b7b3704c2e4a7302201ff63cc9492c09e0ed98b24bb4c98ff992b3523c0cca40fd69ed3d4263c695480121034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa00000000";
    const TXID: &str = "f51a7ab5e0210ca0221e6c7d3e0c5678d2a7d572b3a33bc4ebda2bd21eab83d9";
    const WTXID: &str = "9c7d205527bcb813b2912d5304ef634fd36b7b92a541a9f6d6cfe2eee25ea1b8";

    fn legacy_of(raw: &[u8], tx: &Tx<'_>) -> Vec<u8> {
        [&raw[..4], &raw[tx.body.clone()], &raw[raw.len() - 4..]].concat()
    }

    #[test]
    fn segwit_round_trip_structure() {
        let raw = hex::decode(SEGWIT).unwrap();
        let tx = Tx::parse(&raw).unwrap();
        assert!(tx.has_witness());
        assert_eq!(tx.version, 2);
        assert_eq!(tx.inputs.len(), 1);
        assert_eq!(tx.inputs[0].witness.len(), 2);
        assert_eq!(tx.inputs[0].sequence, 0xffff_fffd);
        assert_eq!(tx.outputs.len(), 2);
        assert_eq!(tx.outputs[0].value_sat, 100_000_000);
        assert_eq!(tx.lock_time, 0);
        assert_eq!(hex::encode_reversed(&tx.txid()), TXID);
        assert_eq!(hex::encode_reversed(&tx.wtxid()), WTXID);
        assert!(!tx.is_coinbase());
        // The non-witness form parses on its own to the same txid.
        let legacy = legacy_of(&raw, &tx);
        let ltx = Tx::parse(&legacy).unwrap();
        assert!(!ltx.has_witness());
        assert_eq!(ltx.txid(), tx.txid());
        assert_eq!(ltx.wtxid(), ltx.txid());
        assert_eq!(tx.txid(), sha256d(&legacy));
        assert_ne!(tx.wtxid(), tx.txid());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let raw = hex::decode(SEGWIT).unwrap();
        for n in 0..raw.len() {
            assert!(Tx::parse(&raw[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut long = raw.clone();
        long.push(0);
        assert_eq!(Tx::parse(&long), Err(TxError::TrailingBytes(1)));
    }

    #[test]
    fn malformed_shapes_are_refused() {
        let raw = hex::decode(SEGWIT).unwrap();
        let mut flag2 = raw.clone();
        flag2[5] = 2;
        assert_eq!(Tx::parse(&flag2), Err(TxError::WitnessFlag(2)));
        let mut flag0 = raw.clone();
        flag0[5] = 0;
        assert_eq!(Tx::parse(&flag0), Err(TxError::NoInputs));

        // Marker and flag but empty witnesses.
        let tx = Tx::parse(&raw).unwrap();
        let superfluous = [
            &raw[..6],
            &raw[tx.body.clone()],
            &[0u8][..],
            &raw[raw.len() - 4..],
        ]
        .concat();
        assert_eq!(Tx::parse(&superfluous), Err(TxError::SuperfluousWitness));

        // Zero outputs.
        let no_out = [
            &[1, 0, 0, 0, 1][..],
            &[0; 36],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(Tx::parse(&no_out), Err(TxError::NoOutputs));

        // A one-byte script length written with 0xfd.
        let noncanon = [&[1, 0, 0, 0, 0xfd, 1, 0][..], &[0; 8]].concat();
        assert_eq!(Tx::parse(&noncanon), Err(TxError::NonCanonicalSize(4)));

        // A huge input count fails on the data, not on allocation.
        let huge = [&[1, 0, 0, 0, 0xfe][..], &0x0200_0000u32.to_le_bytes()].concat();
        assert_eq!(Tx::parse(&huge), Err(TxError::Truncated(9)));
        let too_big = [&[1, 0, 0, 0, 0xfe][..], &0x0200_0001u32.to_le_bytes()].concat();
        assert_eq!(Tx::parse(&too_big), Err(TxError::SizeTooLarge(4)));
        let eight = [&[1, 0, 0, 0, 0xff][..], &u64::MAX.to_le_bytes()].concat();
        assert_eq!(Tx::parse(&eight), Err(TxError::SizeTooLarge(4)));
    }
}
