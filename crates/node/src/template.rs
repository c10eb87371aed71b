//! A block template: what Bitcoin Core's `getblocktemplate` returns,
//! checked and converted to internal byte order.
//!
//! Parsing trusts nothing in the JSON that can be recomputed: each
//! transaction's txid and wtxid are recomputed from its data, and the
//! node's `default_witness_commitment` must equal the commitment computed
//! from those wtxids. A template that passes is one whose merkle branches
//! and commitment a pool can hand to miners without a second look.

use serde_json::{Map, Value};
use sluice_pow::hex::{self, HexError};
use sluice_pow::{Header, Target, TargetError, merkle};

use crate::coinbase::{self, CoinbaseSpec, TxOut};
use crate::tx::{Tx, TxError};

/// One non-coinbase transaction of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateTx {
    /// Txid, internal byte order.
    pub txid: [u8; 32],
    /// Wtxid, internal byte order (equal to the txid without witness).
    pub wtxid: [u8; 32],
    /// The raw transaction as it goes into the block.
    pub data: Vec<u8>,
    /// Fee in satoshis.
    pub fee_sat: u64,
}

/// Everything needed to build jobs and assemble a block on one tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// Height of the block to build.
    pub height: u32,
    /// Hash of the tip, header (internal) byte order.
    pub prev_hash: [u8; 32],
    /// Block version the node asks for.
    pub version: u32,
    /// Compact network target.
    pub bits: u32,
    /// The node's current time.
    pub cur_time: u32,
    /// Earliest valid block time (median time past + 1).
    pub min_time: u32,
    /// Subsidy plus fees the coinbase may claim.
    pub coinbase_value_sat: u64,
    /// Transactions after the coinbase, in block order.
    pub transactions: Vec<TemplateTx>,
    /// The witness commitment output script the node suggests
    /// (`6a24aa21a9ed ‖ commitment`), when segwit is active.
    pub default_witness_commitment: Option<Vec<u8>>,
}

/// What is wrong with one transaction of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateTxError {
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field has the wrong JSON type or is out of range.
    #[error("field `{0}` has the wrong type or is out of range")]
    Invalid(&'static str),
    /// A hex field does not decode.
    #[error("field `{field}`: {error}")]
    Hex {
        /// The field.
        field: &'static str,
        /// The decoding error.
        error: HexError,
    },
    /// `data` is not a transaction.
    #[error("data: {0}")]
    Parse(TxError),
    /// `txid` is not the hash of `data`'s non-witness serialisation.
    #[error("txid does not match data")]
    TxidMismatch,
    /// `hash` (the wtxid) is not the hash of `data`.
    #[error("hash (wtxid) does not match data")]
    WtxidMismatch,
}

/// Why a `getblocktemplate` result was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The result is not a JSON object.
    #[error("getblocktemplate result is not a JSON object")]
    NotObject,
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field has the wrong JSON type or is out of range.
    #[error("field `{0}` has the wrong type or is out of range")]
    Invalid(&'static str),
    /// A hex field does not decode.
    #[error("field `{field}`: {error}")]
    Hex {
        /// The field.
        field: &'static str,
        /// The decoding error.
        error: HexError,
    },
    /// `bits` does not decode to a usable target.
    #[error("bits: {0}")]
    Bits(TargetError),
    /// One of the transactions is malformed or mislabelled.
    #[error("transaction {index}: {error}")]
    Transaction {
        /// Position in `transactions`.
        index: usize,
        /// What is wrong with it.
        error: TemplateTxError,
    },
    /// `default_witness_commitment` does not commit to the transactions.
    #[error("default_witness_commitment does not match the transactions")]
    CommitmentMismatch,
}

impl BlockTemplate {
    /// Parses Bitcoin Core's `getblocktemplate` result (the `result`
    /// member, not the JSON-RPC envelope).
    pub fn from_gbt_json(v: &Value) -> Result<Self, TemplateError> {
        let obj = v.as_object().ok_or(TemplateError::NotObject)?;
        let prev = str_field(obj, "previousblockhash")?;
        let prev_hash = hex::decode_reversed(prev).map_err(|error| TemplateError::Hex {
            field: "previousblockhash",
            error,
        })?;
        let bits = hex::decode_u32_be(str_field(obj, "bits")?.as_bytes()).map_err(|error| {
            TemplateError::Hex {
                field: "bits",
                error,
            }
        })?;
        Target::from_compact(bits).map_err(TemplateError::Bits)?;
        let txs = obj
            .get("transactions")
            .ok_or(TemplateError::Missing("transactions"))?
            .as_array()
            .ok_or(TemplateError::Invalid("transactions"))?;
        let transactions = txs
            .iter()
            .enumerate()
            .map(|(index, t)| {
                parse_tx(t).map_err(|error| TemplateError::Transaction { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let default_witness_commitment = match obj.get("default_witness_commitment") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(hex::decode(s).map_err(|error| TemplateError::Hex {
                field: "default_witness_commitment",
                error,
            })?),
            Some(_) => return Err(TemplateError::Invalid("default_witness_commitment")),
        };
        let template = Self {
            height: u32_field(obj, "height")?,
            prev_hash,
            version: version_field(obj)?,
            bits,
            cur_time: u32_field(obj, "curtime")?,
            min_time: u32_field(obj, "mintime")?,
            coinbase_value_sat: u64_field(obj, "coinbasevalue")
                .and_then(|v| ok_if(v <= coinbase::MAX_MONEY_SAT, v, "coinbasevalue"))?,
            transactions,
            default_witness_commitment,
        };
        if let Some(script) = &template.default_witness_commitment {
            let expected = coinbase::witness_commitment_script(&template.witness_commitment());
            if *script != expected {
                return Err(TemplateError::CommitmentMismatch);
            }
        }
        Ok(template)
    }

    /// Txids of the non-coinbase transactions, block order.
    pub fn txids(&self) -> Vec<[u8; 32]> {
        self.transactions.iter().map(|t| t.txid).collect()
    }

    /// Wtxids of the non-coinbase transactions, block order.
    pub fn wtxids(&self) -> Vec<[u8; 32]> {
        self.transactions.iter().map(|t| t.wtxid).collect()
    }

    /// The merkle branches for the coinbase, as sent in `mining.notify`.
    pub fn merkle_branches(&self) -> Vec<[u8; 32]> {
        merkle::coinbase_branches(&self.txids())
    }

    /// The merkle root of the block with this coinbase txid.
    pub fn merkle_root(&self, coinbase_txid: &[u8; 32]) -> [u8; 32] {
        merkle::root_from_branches(coinbase_txid, &self.merkle_branches())
    }

    /// The BIP141 witness commitment over the transactions' wtxids.
    pub fn witness_commitment(&self) -> [u8; 32] {
        coinbase::witness_commitment(&self.wtxids())
    }

    /// True when the coinbase must carry a witness commitment: some
    /// transaction has witness data, or the node asks for one anyway (as
    /// Core does whenever segwit is active, even for an empty block).
    pub fn needs_witness_commitment(&self) -> bool {
        self.default_witness_commitment.is_some()
            || self.transactions.iter().any(|t| t.wtxid != t.txid)
    }

    /// Sum of the transactions' fees (saturating).
    pub fn fees_sat(&self) -> u64 {
        self.transactions
            .iter()
            .fold(0u64, |acc, t| acc.saturating_add(t.fee_sat))
    }

    /// The network target decoded from `bits`.
    pub fn target(&self) -> Result<Target, TargetError> {
        Target::from_compact(self.bits)
    }

    /// A header on this template; `version` and `time` are the template's
    /// until the miner rolls them.
    pub fn header(&self, merkle_root: [u8; 32], time: u32, nonce: u32) -> Header {
        Header {
            version: self.version,
            prev_hash: self.prev_hash,
            merkle_root,
            time,
            bits: self.bits,
            nonce,
        }
    }

    /// A coinbase spec paying the whole `coinbase_value_sat` to one
    /// script, with the witness commitment when one is needed.
    pub fn coinbase_spec(
        &self,
        payout_script: &[u8],
        tag: &[u8],
        extranonce_len: usize,
    ) -> CoinbaseSpec {
        let mut spec = CoinbaseSpec::new(
            self.height,
            vec![TxOut {
                value_sat: self.coinbase_value_sat,
                script_pubkey: payout_script.to_vec(),
            }],
        );
        spec.tag = tag.to_vec();
        spec.extranonce_len = extranonce_len;
        spec.witness_commitment = self
            .needs_witness_commitment()
            .then(|| self.witness_commitment());
        spec
    }
}

fn parse_tx(v: &Value) -> Result<TemplateTx, TemplateTxError> {
    use TemplateTxError as E;
    let obj = v.as_object().ok_or(E::Invalid("transactions[]"))?;
    let text = |key: &'static str| -> Result<Option<&str>, E> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(E::Invalid(key)),
        }
    };
    let data_hex = text("data")?.ok_or(E::Missing("data"))?;
    let data = hex::decode(data_hex).map_err(|error| E::Hex {
        field: "data",
        error,
    })?;
    let given_txid = text("txid")?.ok_or(E::Missing("txid"))?;
    let given_txid = hex::decode_reversed(given_txid).map_err(|error| E::Hex {
        field: "txid",
        error,
    })?;
    // Core has sent `hash` since segwit; without it the parsed data decides.
    let given_wtxid = text("hash")?
        .map(|h| {
            hex::decode_reversed(h).map_err(|error| E::Hex {
                field: "hash",
                error,
            })
        })
        .transpose()?;
    let fee_sat = obj
        .get("fee")
        .ok_or(E::Missing("fee"))?
        .as_u64()
        .filter(|&f| f <= coinbase::MAX_MONEY_SAT)
        .ok_or(E::Invalid("fee"))?;
    let tx = Tx::parse(&data).map_err(E::Parse)?;
    let (txid, wtxid) = (tx.txid(), tx.wtxid());
    if txid != given_txid {
        return Err(E::TxidMismatch);
    }
    if given_wtxid.is_some_and(|w| w != wtxid) {
        return Err(E::WtxidMismatch);
    }
    Ok(TemplateTx {
        txid,
        wtxid,
        data,
        fee_sat,
    })
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, TemplateError> {
    obj.get(key)
        .ok_or(TemplateError::Missing(key))?
        .as_str()
        .ok_or(TemplateError::Invalid(key))
}

fn u64_field(obj: &Map<String, Value>, key: &'static str) -> Result<u64, TemplateError> {
    obj.get(key)
        .ok_or(TemplateError::Missing(key))?
        .as_u64()
        .ok_or(TemplateError::Invalid(key))
}

fn u32_field(obj: &Map<String, Value>, key: &'static str) -> Result<u32, TemplateError> {
    u64_field(obj, key).and_then(|v| u32::try_from(v).map_err(|_| TemplateError::Invalid(key)))
}

fn ok_if<T>(cond: bool, v: T, key: &'static str) -> Result<T, TemplateError> {
    if cond {
        Ok(v)
    } else {
        Err(TemplateError::Invalid(key))
    }
}

/// Core prints the version as a signed 32-bit integer, so a version with
/// the top bit set would arrive negative; both spellings mean the same
/// 32 header bits.
fn version_field(obj: &Map<String, Value>) -> Result<u32, TemplateError> {
    const KEY: &str = "version";
    let v = obj
        .get(KEY)
        .ok_or(TemplateError::Missing(KEY))?
        .as_i64()
        .ok_or(TemplateError::Invalid(KEY))?;
    if let Ok(u) = u32::try_from(v) {
        Ok(u)
    } else {
        i32::try_from(v)
            .map(|s| s as u32)
            .map_err(|_| TemplateError::Invalid(KEY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GBT2: &str = include_str!("../../../testdata/gbt-regtest-2.json");

    fn gbt2() -> Value {
        serde_json::from_str(GBT2).unwrap()
    }

    #[test]
    fn parses_core_output() {
        let t = BlockTemplate::from_gbt_json(&gbt2()).unwrap();
        assert_eq!(t.height, 102);
        assert_eq!(t.bits, 0x207f_ffff);
        assert_eq!(t.version, 0x2000_0000);
        assert_eq!(t.coinbase_value_sat, 5_000_001_000);
        assert_eq!(t.transactions.len(), 1);
        assert_eq!(t.fees_sat(), 1000);
        assert_eq!(
            hex::encode_reversed(&t.prev_hash),
            "0d7d9eb1039e2f632dcc79d71d48055bd428c06e8535897679fe9f745ca551ff"
        );
        // One transaction: the only branch is its txid.
        assert_eq!(t.merkle_branches(), vec![t.transactions[0].txid]);
        assert!(t.needs_witness_commitment());
    }

    #[test]
    fn refuses_bad_input() {
        let err = |edit: &dyn Fn(&mut Value)| {
            let mut v = gbt2();
            edit(&mut v);
            BlockTemplate::from_gbt_json(&v).unwrap_err()
        };
        assert_eq!(
            BlockTemplate::from_gbt_json(&Value::Null),
            Err(TemplateError::NotObject)
        );
        assert_eq!(
            err(&|v| {
                v.as_object_mut().unwrap().remove("height");
            }),
            TemplateError::Missing("height")
        );
        assert_eq!(
            err(&|v| v["height"] = Value::from(-1)),
            TemplateError::Invalid("height")
        );
        assert_eq!(
            err(&|v| v["curtime"] = Value::from(1u64 << 32)),
            TemplateError::Invalid("curtime")
        );
        assert_eq!(
            err(&|v| v["bits"] = Value::from("207fff")),
            TemplateError::Hex {
                field: "bits",
                error: HexError::Length {
                    expected: 8,
                    got: 6
                }
            }
        );
        assert!(matches!(
            err(&|v| v["bits"] = Value::from("00000000")),
            TemplateError::Bits(_)
        ));
        assert!(matches!(
            err(&|v| v["previousblockhash"] = Value::from("zz")),
            TemplateError::Hex { .. }
        ));
        assert_eq!(
            err(&|v| v["coinbasevalue"] = Value::from(coinbase::MAX_MONEY_SAT + 1)),
            TemplateError::Invalid("coinbasevalue")
        );
        assert_eq!(
            err(&|v| v["default_witness_commitment"] = Value::from("6a24aa21a9ed00")),
            TemplateError::CommitmentMismatch
        );
        assert_eq!(
            err(&|v| v["transactions"] = Value::from(7)),
            TemplateError::Invalid("transactions")
        );
        let tx_err = |error| TemplateError::Transaction { index: 0, error };
        assert_eq!(
            err(&|v| {
                v["transactions"][0].as_object_mut().unwrap().remove("fee");
            }),
            tx_err(TemplateTxError::Missing("fee"))
        );
        assert_eq!(
            err(&|v| v["transactions"][0]["data"] = Value::from("0200")),
            tx_err(TemplateTxError::Parse(TxError::Truncated(0)))
        );
        assert_eq!(
            err(&|v| v["transactions"][0]["txid"] = Value::from("00".repeat(32))),
            tx_err(TemplateTxError::TxidMismatch)
        );
        assert_eq!(
            err(&|v| v["transactions"][0]["hash"] = Value::from("00".repeat(32))),
            tx_err(TemplateTxError::WtxidMismatch)
        );
        assert_eq!(
            err(&|v| v["transactions"][0]["data"] = Value::from(5)),
            tx_err(TemplateTxError::Invalid("data"))
        );
    }

    #[test]
    fn version_spellings() {
        let mut v = gbt2();
        v["version"] = Value::from(-0x7000_0000i64);
        let t = BlockTemplate::from_gbt_json(&v).unwrap();
        assert_eq!(t.version, 0x9000_0000);
        v["version"] = Value::from(0x9000_0000u64);
        assert_eq!(
            BlockTemplate::from_gbt_json(&v).unwrap().version,
            0x9000_0000
        );
        v["version"] = Value::from(1u64 << 33);
        assert_eq!(
            BlockTemplate::from_gbt_json(&v),
            Err(TemplateError::Invalid("version"))
        );
    }

    #[test]
    fn missing_wtxid_is_computed() {
        let mut v = gbt2();
        v["transactions"][0].as_object_mut().unwrap().remove("hash");
        let t = BlockTemplate::from_gbt_json(&v).unwrap();
        assert_eq!(
            hex::encode_reversed(&t.transactions[0].wtxid),
            "9c7d205527bcb813b2912d5304ef634fd36b7b92a541a9f6d6cfe2eee25ea1b8"
        );
    }
}
