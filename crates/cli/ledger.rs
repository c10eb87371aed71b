//! `sluice ledger`: blocks and payouts read from a share ledger (any
//! instance's, or all of them on one PostgreSQL ledger).

use serde_json::{Value, json};
use sluice_books::ledger::{Ledger, LedgerConfig, Payout};

/// What to read.
#[derive(Debug, Clone)]
pub enum Query {
    /// Every block, newest first.
    Blocks,
    /// PPLNS payouts of one block.
    Pplns {
        /// Its hash.
        block: String,
        /// Window, × the block's network difficulty.
        window: f64,
    },
    /// FPPS earnings for shares in `[from_ms, to_ms)`.
    Fpps {
        /// From, Unix ms.
        from_ms: u64,
        /// To, Unix ms.
        to_ms: u64,
        /// Pool fee, a fraction.
        fee: f64,
    },
}

fn payouts(p: &[Payout]) -> Value {
    json!(
        p.iter()
            .map(|x| json!({"worker": x.worker, "work": x.work, "sat": x.sat}))
            .collect::<Vec<_>>()
    )
}

/// Runs `q` against the ledger at `url`, as JSON.
pub async fn query(url: &str, q: Query) -> anyhow::Result<Value> {
    // Reading must not leave an empty ledger behind a typo.
    if let Some(path) = url.strip_prefix("sqlite:")
        && !std::path::Path::new(path).exists()
    {
        anyhow::bail!("no ledger at {path}");
    }
    let l = Ledger::open(LedgerConfig {
        url: url.to_owned(),
        instance: "sluice-ledger-cli".into(),
        ..LedgerConfig::default()
    })
    .await?;
    Ok(match q {
        Query::Blocks => json!(
            l.blocks()
                .await?
                .iter()
                .map(|b| json!({
                    "hash": b.hash, "height": b.height, "worker": &*b.worker,
                    "time_ms": b.time_ms, "reward_sat": b.reward_sat,
                    "network_difficulty": b.network_difficulty, "instance": b.instance,
                }))
                .collect::<Vec<_>>()
        ),
        Query::Pplns { window, .. } if !(window.is_finite() && window > 0.0) => {
            anyhow::bail!("--window must be a positive number (times the network difficulty)")
        }
        Query::Pplns { block, window } => {
            let p = l.pplns(&block, window).await?;
            json!({"block": block, "window": window, "total_sat": p.iter().map(|x| x.sat).sum::<u64>(), "payouts": payouts(&p)})
        }
        Query::Fpps {
            from_ms,
            to_ms,
            fee,
        } => {
            let p = l.fpps(from_ms, to_ms, fee).await?;
            json!({"from_ms": from_ms, "to_ms": to_ms, "fee": fee, "total_sat": p.iter().map(|x| x.sat).sum::<u64>(), "payouts": payouts(&p)})
        }
    })
}
