//! sluice-loadgen: simulated miners doing real low-difficulty hashing.
//!
//! Map of the crate:
//! - [`miner`]: one simulated ASIC over Stratum V1, its counters and HDR
//!   histograms; [`miner_v2`]: the same over Stratum V2 (Noise, an
//!   extended channel); `pace`: the hash budget and bad-share choice both
//!   share.
//! - [`farm`]: many miners with ramp-up and scenarios, and the report.

pub mod farm;
pub mod miner;
pub mod miner_v2;
mod pace;

pub use farm::{FarmConfig, Report, Scenario, Snapshot, run_farm};
pub use miner::{Histograms, MinerConfig, MinerError, MinerStats, run};
pub use miner_v2::V2Config;
