//! Bitcoin Core as the pool node's template source: jobs from the node's
//! latest template, blocks assembled from each job's own template.

use sluice_engine::local::{BlockAccepted, BlockRefused, BlockSubmit, LocalJob, TemplateSource};
use sluice_node::{CoreTemplates, coinbase};
use sluice_pow::Header;
use tokio::sync::watch;

/// Longest coinbase handed out: the smallest buffer common firmware has
/// (NiceHash ~500 B, NerdMiner 512 B; PROTOCOLS.md).
pub const MAX_COINBASE_BYTES: usize = 500;

/// Jobs from Bitcoin Core.
pub struct CoreSource {
    core: CoreTemplates,
    payout_script: Vec<u8>,
    tag: Vec<u8>,
    seen_generation: u64,
}

impl CoreSource {
    /// Pays every coinbase to `payout_script`, tagged with `tag`.
    pub fn new(core: CoreTemplates, payout_script: Vec<u8>, tag: Vec<u8>) -> Self {
        let seen_generation = core.tip_generation();
        Self {
            core,
            payout_script,
            tag,
            seen_generation,
        }
    }
}

impl TemplateSource for CoreSource {
    fn job(&mut self, now_unix: u32, extranonce_len: usize) -> Result<LocalJob, String> {
        let (token, t) = self
            .core
            .latest()
            .ok_or("bitcoind has not sent a template yet")?;
        let spec = t.coinbase_spec(&self.payout_script, &self.tag, extranonce_len);
        let parts = coinbase::build(&spec).map_err(|e| e.to_string())?;
        if parts.total_len() > MAX_COINBASE_BYTES {
            return Err(format!(
                "the coinbase would be {} bytes; miners' firmware takes at most {MAX_COINBASE_BYTES}",
                parts.total_len()
            ));
        }
        Ok(LocalJob {
            prev_hash: t.prev_hash,
            coinb1: parts.coinb1,
            coinb2: parts.coinb2,
            branches: t.merkle_branches(),
            version: t.version,
            nbits: t.bits,
            // The node's clock bounds the block time from below (median
            // time past); ours is as good as its own from above.
            ntime: now_unix.max(t.min_time).max(t.cur_time),
            height: t.height,
            coinbase_value_sat: t.coinbase_value_sat,
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
