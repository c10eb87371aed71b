//! sluice-loadgen: simulated miners doing real low-difficulty hashing.
//!
//! Map of the crate:
//! - [`miner`]: one simulated ASIC over Stratum V1, its counters and HDR
//!   histograms.
//! - [`farm`]: many miners with ramp-up and scenarios, and the report.

pub mod farm;
pub mod miner;

pub use farm::{FarmConfig, Report, Scenario, Snapshot, run_farm};
pub use miner::{MinerConfig, MinerError, MinerStats, run};
