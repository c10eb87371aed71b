//! Bitcoin Core as the pool node's template source: jobs from the node's
//! latest template, blocks assembled from each job's own template.

use std::sync::Arc;

use sluice_engine::job::PayoutSplit;
use sluice_engine::local::{BlockAccepted, BlockRefused, BlockSubmit, LocalJob, TemplateSource};
use sluice_node::template::BlockTemplate;
use sluice_node::{CoreTemplates, coinbase, payout};
use sluice_pow::Header;
use tokio::sync::watch;

/// Longest coinbase handed out: the smallest buffer common firmware has
/// (NiceHash ~500 B, NerdMiner 512 B; PROTOCOLS.md).
pub const MAX_COINBASE_BYTES: usize = 500;

/// Who the coinbase pays.
#[derive(Clone, Debug)]
pub enum Payout {
    /// Pool mode: everything to the pool's script.
    Pool(Vec<u8>),
    /// Solo mode: each miner's own script, less `fee` (a fraction) to
    /// `pool` when set.
    Solo {
        /// The fee.
        fee: f64,
        /// Where it goes.
        pool: Option<Vec<u8>>,
    },
}

/// Jobs from Bitcoin Core.
pub struct CoreSource {
    core: CoreTemplates,
    payout: Payout,
    tag: Vec<u8>,
    seen_generation: u64,
}

impl CoreSource {
    /// Pays coinbases as `payout` says, tagged with `tag`.
    pub fn new(core: CoreTemplates, payout: Payout, tag: Vec<u8>) -> Self {
        let seen_generation = core.tip_generation();
        Self {
            core,
            payout,
            tag,
            seen_generation,
        }
    }

    /// The node's RPC and template counters.
    pub fn node_stats(&self) -> std::sync::Arc<sluice_node::core::CoreStats> {
        self.core.stats().clone()
    }

    fn pool_or_unspendable(&self) -> &[u8] {
        match &self.payout {
            Payout::Pool(s) | Payout::Solo { pool: Some(s), .. } => s,
            Payout::Solo { pool: None, .. } => UNSPENDABLE,
        }
    }
}

/// The coinbase of `t` paying `outputs`, split around the extranonce and
/// kept within what firmware takes.
fn split(
    t: &BlockTemplate,
    outputs: Vec<coinbase::TxOut>,
    tag: &[u8],
    extranonce_len: usize,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut spec = t.coinbase_spec(&[], tag, extranonce_len);
    spec.outputs = outputs;
    let parts = coinbase::build(&spec).map_err(|e| e.to_string())?;
    if parts.total_len() > MAX_COINBASE_BYTES {
        return Err(format!(
            "the coinbase would be {} bytes; miners' firmware takes at most {MAX_COINBASE_BYTES}",
            parts.total_len()
        ));
    }
    Ok((parts.coinb1, parts.coinb2))
}

/// An output script nobody can spend: what the shared job of a solo pool
/// without a fee address pays. Solo miners never get that job (each gets
/// its own coinbase), so it is never mined.
const UNSPENDABLE: &[u8] = &[0x6a];

impl TemplateSource for CoreSource {
    fn job(&mut self, now_unix: u32, extranonce_len: usize) -> Result<LocalJob, String> {
        let (token, t) = self
            .core
            .latest()
            .ok_or("bitcoind has not sent a template yet")?;
        let value = t.coinbase_value_sat;
        let solo = match &self.payout {
            Payout::Pool(_) => None,
            Payout::Solo { fee, pool } => {
                let (fee, pool) = (*fee, pool.clone());
                let (tag, tmpl) = (self.tag.clone(), t.clone());
                Some(PayoutSplit(Arc::new(move |script: &[u8]| {
                    let fee = pool.as_deref().map(|p| (fee, p));
                    let outs = payout::outputs(value, script, fee).map_err(|e| e.to_string())?;
                    split(&tmpl, outs, &tag, extranonce_len)
                })))
            }
        };
        let base =
            payout::outputs(value, self.pool_or_unspendable(), None).map_err(|e| e.to_string())?;
        let (coinb1, coinb2) = split(&t, base, &self.tag, extranonce_len)?;
        Ok(LocalJob {
            prev_hash: t.prev_hash,
            coinb1,
            coinb2,
            branches: t.merkle_branches(),
            version: t.version,
            nbits: t.bits,
            // The node's clock bounds the block time from below (median
            // time past); ours is as good as its own from above.
            ntime: now_unix.max(t.min_time).max(t.cur_time),
            height: t.height,
            coinbase_value_sat: t.coinbase_value_sat,
            payout: solo,
            token,
        })
    }

    fn submit_block(&mut self, token: u64, header: &Header, coinbase: &[u8]) -> BlockSubmit {
        let core = self.core.clone();
        let (header, coinbase) = (*header, coinbase.to_vec());
        Box::pin(async move {
            core.submit(token, header, coinbase)
                .await
                .map(|a| {
                    if let Some(n) = &a.note {
                        tracing::info!(hash = %a.hash, note = %n, "bitcoind took the block");
                    }
                    BlockAccepted {
                        height: a.height,
                        hash: a.hash,
                    }
                })
                .map_err(|r| BlockRefused {
                    reason: r.reason,
                    is_final: r.is_final,
                })
        })
    }

    fn poll(&mut self, _now_unix: u32) -> bool {
        let g = self.core.tip_generation();
        std::mem::replace(&mut self.seen_generation, g) != g
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.core.subscribe())
    }
}
