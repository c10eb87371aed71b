//! A deterministic simulated chain for tests, benches and demos, standing
//! in for Bitcoin Core where none is available.
//!
//! The chain has a tip and a current [`BlockTemplate`] on it. A pool built
//! on this crate takes the template, builds coinbases and jobs exactly as
//! it would from `getblocktemplate`, and hands solved blocks back through
//! [`SyntheticChain::submit_block`], which checks what a node would check
//! without a UTXO set: tip, header fields, coinbase (BIP34, value,
//! finality, witness commitment), merkle root and proof of work. Blocks
//! "found elsewhere" are simulated with [`SyntheticChain::advance_external`].
//!
//! Everything derives from the config and the calls made, so two chains
//! given the same inputs produce the same templates and hashes.
//!
//! The template's transactions are structurally valid transactions (they
//! parse, and their txids and wtxids are the real hashes of their data, so
//! merkle branches and witness commitments are real computations), but
//! they spend outputs that do not exist and carry random bytes for
//! signatures: nobody validates them, and a real node would reject them.
//! Half are segwit spends, half legacy, so both txid kinds occur.

use std::collections::VecDeque;

use sluice_pow::sha::{Sha256, sha256d};
use sluice_pow::{Header, Target, TargetError, merkle};

use crate::block;
use crate::coinbase::{self, CoinbaseSpec, MAX_MONEY_SAT};
use crate::template::{BlockTemplate, TemplateTx};
use crate::wire::write_var_bytes;

/// Regtest's easiest compact target (about half of all hashes meet it).
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// The block version the synthetic chain asks for (BIP9 top bits only, so
/// that both version-rolling conventions give the same header).
pub const SYNTHETIC_VERSION: u32 = 0x2000_0000;

/// Most transactions a synthetic template may hold; at ~200 bytes each
/// that is already more than a real block's weight allows.
pub const MAX_TXS_PER_BLOCK: usize = 20_000;

/// How far ahead of the chain's clock a block time may be (Core's
/// `MAX_FUTURE_BLOCK_TIME`).
const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;

/// Blocks in the median-time-past window.
const MEDIAN_TIME_SPAN: usize = 11;

/// How the synthetic chain is shaped.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Network difficulty; fractional values are allowed (0.001 means a
    /// block every ~4.3 million hashes). Anything easier than regtest's
    /// limit is clamped to [`REGTEST_BITS`].
    pub network_difficulty: f64,
    /// Non-coinbase transactions in every template.
    pub txs_per_block: usize,
    /// Block subsidy in satoshis (constant: no halvings are simulated).
    pub block_subsidy_sat: u64,
    /// Fee each synthetic transaction pays.
    pub fee_per_tx_sat: u64,
    /// Where [`SyntheticChain::coinbase_spec`] pays the reward.
    pub payout_script: Vec<u8>,
    /// The pool tag [`SyntheticChain::coinbase_spec`] puts in the coinbase.
    pub tag: Vec<u8>,
    /// The chain's clock at the start: the first template's `cur_time`.
    pub start_time: u32,
    /// Height of the first block to be mined (at least 1).
    pub start_height: u32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            network_difficulty: 0.001,
            txs_per_block: 8,
            block_subsidy_sat: 312_500_000,
            fee_per_tx_sat: 1_000,
            // P2WPKH to the regtest wallet in testdata/ (bcrt1ql3e9pgs3…).
            payout_script: [
                &[0x00, 0x14][..],
                &[
                    0xfc, 0x72, 0x50, 0xa2, 0x11, 0xde, 0xdd, 0xc7, 0x0e, 0xe5, 0xa2, 0x73, 0x8d,
                    0xe5, 0xf0, 0x78, 0x17, 0x35, 0x1c, 0xef,
                ],
            ]
            .concat(),
            tag: b"/sluice/".to_vec(),
            start_time: 1_700_000_000,
            start_height: 1,
        }
    }
}

/// Why a synthetic chain could not be created.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum SyntheticError {
    /// The difficulty is not a finite positive number, or so high that no
    /// compact target represents it.
    #[error("network difficulty: {0}")]
    Difficulty(TargetError),
    /// `start_height` is 0.
    #[error("start height must be at least 1")]
    StartHeight,
    /// More than [`MAX_TXS_PER_BLOCK`] transactions per block.
    #[error("{0} transactions per block exceeds {MAX_TXS_PER_BLOCK}")]
    TooManyTxs(usize),
    /// Subsidy plus fees exceed 21 million BTC.
    #[error("subsidy plus fees exceed MAX_MONEY")]
    ValueTooLarge,
}

/// Why a submitted block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// It does not build on the current tip.
    #[error("stale: block does not build on the tip")]
    Stale,
    /// Wrong bits, a version below 4, or a time before the median time
    /// past or more than two hours past the chain's clock.
    #[error("bad header: bits, version or time out of bounds")]
    BadHeader,
    /// The coinbase is malformed or does not fit the template.
    #[error("bad coinbase")]
    BadCoinbase,
    /// The header's merkle root is not the block's.
    #[error("bad merkle root")]
    BadMerkle,
    /// The header hash does not meet the network target.
    #[error("hash above the network target")]
    HighHash,
}

/// A block the chain accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundBlock {
    /// Its height.
    pub height: u32,
    /// Its hash, internal byte order; the new tip.
    pub hash: [u8; 32],
    /// What its coinbase pays out (at most the template's coinbase value;
    /// anything less is burnt).
    pub reward_sat: u64,
}

/// The simulated chain: a tip and the template on it.
#[derive(Clone, Debug)]
pub struct SyntheticChain {
    config: SyntheticConfig,
    bits: u32,
    target: Target,
    tip_hash: [u8; 32],
    tip_height: u32,
    /// Times of the last [`MEDIAN_TIME_SPAN`] blocks, oldest first.
    recent_times: VecDeque<u32>,
    now: u32,
    template: BlockTemplate,
    branches: Vec<[u8; 32]>,
}

impl SyntheticChain {
    /// A chain whose first template is at `config.start_height`.
    pub fn new(config: SyntheticConfig) -> Result<Self, SyntheticError> {
        let bits =
            bits_for_difficulty(config.network_difficulty).map_err(SyntheticError::Difficulty)?;
        let target = Target::from_compact(bits).map_err(SyntheticError::Difficulty)?;
        if config.start_height == 0 {
            return Err(SyntheticError::StartHeight);
        }
        if config.txs_per_block > MAX_TXS_PER_BLOCK {
            return Err(SyntheticError::TooManyTxs(config.txs_per_block));
        }
        config
            .fee_per_tx_sat
            .checked_mul(config.txs_per_block as u64)
            .and_then(|fees| fees.checked_add(config.block_subsidy_sat))
            .filter(|&v| v <= MAX_MONEY_SAT)
            .ok_or(SyntheticError::ValueTooLarge)?;

        let mut genesis = Sha256::new();
        genesis.update(b"sluice synthetic chain");
        genesis.update(&config.start_height.to_le_bytes());
        genesis.update(&config.start_time.to_le_bytes());
        let tip_hash = genesis.finalize_double();
        let tip_height = config.start_height - 1;
        // A full median-time window of blocks ten minutes apart, the last
        // one ten minutes before `start_time`: the median time past then
        // lags an hour behind, as on a real chain.
        let recent_times: VecDeque<u32> = (1..=MEDIAN_TIME_SPAN as u32)
            .rev()
            .map(|k| config.start_time.saturating_sub(600 * k))
            .collect();
        let now = config.start_time;
        let template = make_template(&config, bits, tip_hash, tip_height, &recent_times, now);
        let branches = template.merkle_branches();
        Ok(Self {
            config,
            bits,
            target,
            tip_hash,
            tip_height,
            recent_times,
            now,
            template,
            branches,
        })
    }

    /// The template to mine on now.
    pub fn template(&self) -> &BlockTemplate {
        &self.template
    }

    /// The current template's merkle branches (cached).
    pub fn merkle_branches(&self) -> &[[u8; 32]] {
        &self.branches
    }

    /// The config the chain was made with.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// Compact network target.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The network target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Network difficulty of [`bits`](Self::bits): the configured value
    /// after compact rounding and clamping.
    pub fn network_difficulty(&self) -> f64 {
        self.target.difficulty()
    }

    /// Height of the block being mined (the template's height; the tip is
    /// one below).
    pub fn height(&self) -> u32 {
        self.template.height
    }

    /// Hash of the tip, internal byte order.
    pub fn tip_hash(&self) -> [u8; 32] {
        self.tip_hash
    }

    /// The chain's clock.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// A coinbase spec paying the template's full value to the configured
    /// payout script, with the configured tag.
    pub fn coinbase_spec(&self, extranonce_len: usize) -> CoinbaseSpec {
        self.template
            .coinbase_spec(&self.config.payout_script, &self.config.tag, extranonce_len)
    }

    /// Checks a solved block (header and legacy coinbase) and, when it is
    /// valid, makes it the new tip.
    pub fn submit_block(
        &mut self,
        header: &Header,
        coinbase_legacy: &[u8],
    ) -> Result<FoundBlock, SubmitError> {
        let t = &self.template;
        if header.prev_hash != self.tip_hash {
            return Err(SubmitError::Stale);
        }
        let latest = self.now.saturating_add(MAX_FUTURE_BLOCK_TIME);
        if header.bits != t.bits
            || header.version < 4
            || header.time < t.min_time
            || header.time > latest
        {
            return Err(SubmitError::BadHeader);
        }
        let cb = block::check_coinbase(t, coinbase_legacy).map_err(|_| SubmitError::BadCoinbase)?;
        if merkle::root_from_branches(&cb.txid, &self.branches) != header.merkle_root {
            return Err(SubmitError::BadMerkle);
        }
        let hash = header.block_hash();
        if !self.target.is_met_by(&hash) {
            return Err(SubmitError::HighHash);
        }
        let height = t.height;
        self.push_block(height, hash, header.time);
        Ok(FoundBlock {
            height,
            hash,
            reward_sat: cb.claimed_sat,
        })
    }

    /// A block found elsewhere on the network at `time` (raised to the
    /// median time past + 1 if earlier): a new tip with a derived hash,
    /// and a new template on it. The chain's clock moves to `time` if that
    /// is later.
    pub fn advance_external(&mut self, time: u32) {
        let height = self.template.height;
        let time = time.max(self.template.min_time);
        let mut h = Sha256::new();
        h.update(b"sluice synthetic external block");
        h.update(&self.tip_hash);
        h.update(&height.to_le_bytes());
        h.update(&time.to_le_bytes());
        self.now = self.now.max(time);
        self.push_block(height, h.finalize_double(), time);
    }

    /// Sets the chain's clock; the template's `cur_time` follows it but
    /// never drops below `min_time`.
    pub fn set_time(&mut self, now_unix: u32) {
        self.now = now_unix;
        self.template.cur_time = now_unix.max(self.template.min_time);
    }

    fn push_block(&mut self, height: u32, hash: [u8; 32], time: u32) {
        self.tip_hash = hash;
        self.tip_height = height;
        self.recent_times.push_back(time);
        while self.recent_times.len() > MEDIAN_TIME_SPAN {
            self.recent_times.pop_front();
        }
        self.template = make_template(
            &self.config,
            self.bits,
            self.tip_hash,
            self.tip_height,
            &self.recent_times,
            self.now,
        );
        self.branches = self.template.merkle_branches();
    }
}

/// The compact target for a difficulty, clamped to regtest's limit.
fn bits_for_difficulty(difficulty: f64) -> Result<u32, TargetError> {
    let easiest = Target::from_compact(REGTEST_BITS)?;
    let target = Target::from_difficulty(difficulty)?;
    if target >= easiest {
        return Ok(REGTEST_BITS);
    }
    let bits = target.to_compact();
    // A difficulty so high that the target rounds to zero is refused here.
    Target::from_compact(bits)?;
    Ok(bits)
}

/// Median time past as Core computes it: the middle of the sorted times.
fn median_time_past(times: &VecDeque<u32>) -> u32 {
    let mut sorted: Vec<u32> = times.iter().copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

fn make_template(
    config: &SyntheticConfig,
    bits: u32,
    tip_hash: [u8; 32],
    tip_height: u32,
    recent_times: &VecDeque<u32>,
    now: u32,
) -> BlockTemplate {
    let min_time = median_time_past(recent_times).saturating_add(1);
    let transactions: Vec<TemplateTx> = (0..config.txs_per_block)
        .map(|i| synthetic_tx(&tip_hash, i, config.fee_per_tx_sat))
        .collect();
    let fees = config
        .fee_per_tx_sat
        .saturating_mul(transactions.len() as u64);
    let mut template = BlockTemplate {
        height: tip_height.saturating_add(1),
        prev_hash: tip_hash,
        version: SYNTHETIC_VERSION,
        bits,
        cur_time: now.max(min_time),
        min_time,
        coinbase_value_sat: config.block_subsidy_sat.saturating_add(fees),
        transactions,
        default_witness_commitment: None,
    };
    // Core suggests a commitment whenever segwit is active, even for an
    // empty block; so does the synthetic chain.
    template.default_witness_commitment = Some(coinbase::witness_commitment_script(
        &template.witness_commitment(),
    ));
    template
}

/// `len` pseudo-random bytes from a seed and a label (SHA-256 in counter
/// mode).
fn expand(seed: &[u8; 32], label: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(&[label]);
        h.update(&counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// One synthetic transaction on a tip: a one-input, two-output payment,
/// a P2WPKH-style spend for even `index` and a P2PKH-style one for odd.
fn synthetic_tx(tip_hash: &[u8; 32], index: usize, fee_sat: u64) -> TemplateTx {
    let mut h = Sha256::new();
    h.update(b"sluice synthetic tx");
    h.update(tip_hash);
    h.update(&(index as u64).to_le_bytes());
    let seed = h.finalize();
    let segwit = index.is_multiple_of(2);

    // A DER-looking signature and a compressed-looking public key.
    let mut sig = expand(&seed, 1, 71);
    sig[0] = 0x30;
    let mut pubkey = expand(&seed, 2, 33);
    pubkey[0] = 0x02 | (pubkey[0] & 1);

    let mut body = Vec::with_capacity(180);
    body.push(1);
    body.extend_from_slice(&expand(&seed, 3, 32));
    body.extend_from_slice(&u32::from(seed[0] & 3).to_le_bytes());
    if segwit {
        body.push(0);
    } else {
        let script_sig = [&[sig.len() as u8][..], &sig, &[pubkey.len() as u8], &pubkey].concat();
        write_var_bytes(&mut body, &script_sig);
    }
    body.extend_from_slice(&0xffff_fffd_u32.to_le_bytes());
    body.push(2);
    let amounts = expand(&seed, 4, 16);
    for (k, chunk) in amounts.chunks_exact(8).enumerate() {
        let mut v = [0u8; 8];
        v.copy_from_slice(chunk);
        // Kept above the dust limit so the outputs look like standard ones.
        let value = 546 + u64::from_le_bytes(v) % 100_000_000;
        body.extend_from_slice(&value.to_le_bytes());
        let program = expand(&seed, 5 + k as u8, 20);
        write_var_bytes(&mut body, &[&[0x00, 0x14][..], &program].concat());
    }

    let version = 2u32.to_le_bytes();
    let lock_time = 0u32.to_le_bytes();
    let legacy = [&version[..], &body, &lock_time].concat();
    let txid = sha256d(&legacy);
    if !segwit {
        return TemplateTx {
            txid,
            wtxid: txid,
            data: legacy,
            fee_sat,
        };
    }
    let mut witness = vec![2];
    write_var_bytes(&mut witness, &sig);
    write_var_bytes(&mut witness, &pubkey);
    let data = [&version[..], &[0x00, 0x01], &body, &witness, &lock_time].concat();
    TemplateTx {
        txid,
        wtxid: sha256d(&data),
        data,
        fee_sat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coinbase::build;
    use crate::tx::Tx;

    fn easy() -> SyntheticConfig {
        SyntheticConfig {
            network_difficulty: 1e-12,
            ..SyntheticConfig::default()
        }
    }

    /// Grinds nonces until the header meets (or, with `want_block` false,
    /// misses) the target. At regtest bits each try is a coin flip.
    fn solve(chain: &SyntheticChain, extranonce: &[u8], want_block: bool) -> (Header, Vec<u8>) {
        let parts = build(&chain.coinbase_spec(extranonce.len())).unwrap();
        let cb = parts.serialize(extranonce).unwrap();
        let t = chain.template();
        let root = t.merkle_root(&parts.txid(extranonce).unwrap());
        for nonce in 0..10_000 {
            let h = t.header(root, t.cur_time, nonce);
            if chain.target().is_met_by(&h.block_hash()) == want_block {
                return (h, cb);
            }
        }
        panic!("no nonce found");
    }

    #[test]
    fn difficulty_to_bits() {
        assert_eq!(bits_for_difficulty(1e-12), Ok(REGTEST_BITS));
        assert_eq!(bits_for_difficulty(1.0), Ok(0x1d00_ffff));
        let b = bits_for_difficulty(0.001).unwrap();
        let d = sluice_pow::nbits_difficulty(b).unwrap();
        assert!((d / 0.001 - 1.0).abs() < 1e-4, "{d}");
        assert!(bits_for_difficulty(0.0).is_err());
        assert!(bits_for_difficulty(1e80).is_err());
        assert!(matches!(
            SyntheticChain::new(SyntheticConfig {
                network_difficulty: f64::NAN,
                ..easy()
            }),
            Err(SyntheticError::Difficulty(_))
        ));
    }

    #[test]
    fn config_refusals() {
        let with = |edit: fn(&mut SyntheticConfig)| {
            let mut c = easy();
            edit(&mut c);
            SyntheticChain::new(c).map(|_| ()).unwrap_err()
        };
        assert_eq!(with(|c| c.start_height = 0), SyntheticError::StartHeight);
        assert_eq!(
            with(|c| c.txs_per_block = MAX_TXS_PER_BLOCK + 1),
            SyntheticError::TooManyTxs(MAX_TXS_PER_BLOCK + 1)
        );
        assert_eq!(
            with(|c| c.fee_per_tx_sat = u64::MAX),
            SyntheticError::ValueTooLarge
        );
        assert_eq!(
            with(|c| c.block_subsidy_sat = MAX_MONEY_SAT),
            SyntheticError::ValueTooLarge
        );
    }

    #[test]
    fn templates_are_real_and_deterministic() {
        let a = SyntheticChain::new(easy()).unwrap();
        let b = SyntheticChain::new(easy()).unwrap();
        assert_eq!(a.template(), b.template());
        let t = a.template();
        assert_eq!(t.height, 1);
        assert_eq!(t.cur_time, 1_700_000_000);
        // Eleven blocks ten minutes apart: the median is an hour back.
        assert_eq!(t.min_time, 1_700_000_000 - 3600 + 1);
        assert_eq!(t.coinbase_value_sat, 312_500_000 + 8 * 1_000);
        assert_eq!(t.transactions.len(), 8);
        for (i, tx) in t.transactions.iter().enumerate() {
            let parsed = Tx::parse(&tx.data).unwrap();
            assert_eq!(parsed.txid(), tx.txid);
            assert_eq!(parsed.wtxid(), tx.wtxid);
            assert_eq!(parsed.has_witness(), i % 2 == 0);
        }
        assert_eq!(a.merkle_branches(), &t.merkle_branches()[..]);
        assert_eq!(a.merkle_branches().len(), 4); // 9 leaves
    }

    #[test]
    fn found_block_advances_the_tip() {
        let mut chain = SyntheticChain::new(easy()).unwrap();
        let old_tip = chain.tip_hash();
        let value = chain.template().coinbase_value_sat;
        let (h, cb) = solve(&chain, &[1; 8], true);
        let found = chain.submit_block(&h, &cb).unwrap();
        assert_eq!(
            found,
            FoundBlock {
                height: 1,
                hash: h.block_hash(),
                reward_sat: value
            }
        );
        assert_eq!(chain.tip_hash(), found.hash);
        assert_eq!(chain.height(), 2);
        assert_eq!(chain.template().prev_hash, found.hash);
        assert_ne!(chain.tip_hash(), old_tip);
        // The same block again is stale now.
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::Stale));
    }

    #[test]
    fn refusals() {
        let mut chain = SyntheticChain::new(easy()).unwrap();
        let (miss, cb) = solve(&chain, &[2; 8], false);
        assert_eq!(chain.submit_block(&miss, &cb), Err(SubmitError::HighHash));
        let (good, cb) = solve(&chain, &[3; 8], true);

        let mut h = good;
        h.merkle_root[0] ^= 1;
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::BadMerkle));
        let mut h = good;
        h.bits = 0x1d00_ffff;
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::BadHeader));
        let mut h = good;
        h.time = chain.template().min_time - 1;
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::BadHeader));
        let mut h = good;
        h.time = chain.now() + 7201;
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::BadHeader));
        let mut h = good;
        h.version = 1;
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::BadHeader));
        assert_eq!(
            chain.submit_block(&good, &cb[..10]),
            Err(SubmitError::BadCoinbase)
        );
        let mut spec = chain.coinbase_spec(8);
        spec.height += 1;
        let wrong = build(&spec).unwrap().serialize(&[3; 8]).unwrap();
        assert_eq!(
            chain.submit_block(&good, &wrong),
            Err(SubmitError::BadCoinbase)
        );
        // Nothing above moved the tip.
        assert_eq!(chain.height(), 1);
        assert!(chain.submit_block(&good, &cb).is_ok());
    }

    #[test]
    fn external_blocks_and_time() {
        let mut chain = SyntheticChain::new(easy()).unwrap();
        let (h, cb) = solve(&chain, &[4; 8], true);
        let tip = chain.tip_hash();
        chain.advance_external(1_700_000_600);
        assert_eq!(chain.height(), 2);
        assert_ne!(chain.tip_hash(), tip);
        assert_eq!(chain.template().prev_hash, chain.tip_hash());
        assert_eq!(chain.now(), 1_700_000_600);
        assert_eq!(chain.template().cur_time, 1_700_000_600);
        // Work on the old tip is stale.
        assert_eq!(chain.submit_block(&h, &cb), Err(SubmitError::Stale));

        // The same history gives the same chain.
        let mut again = SyntheticChain::new(easy()).unwrap();
        again.advance_external(1_700_000_600);
        assert_eq!(again.template(), chain.template());

        chain.set_time(1_700_000_900);
        assert_eq!(chain.template().cur_time, 1_700_000_900);
        chain.set_time(5);
        assert_eq!(chain.template().cur_time, chain.template().min_time);

        // An external block with a time in the past is raised to MTP + 1.
        let min = chain.template().min_time;
        chain.advance_external(0);
        assert!(chain.template().min_time >= min);
        // Twelve blocks later the window holds eleven times.
        for i in 0..12 {
            chain.advance_external(1_700_001_000 + 600 * i);
        }
        assert_eq!(chain.recent_times.len(), MEDIAN_TIME_SPAN);
        assert_eq!(chain.template().min_time, 1_700_001_000 + 600 * 6 + 1);
    }
}
