//! sluice-loadgen: simulated miners doing real low-difficulty hashing.
//!
//! Map of the crate:
//! - [`miner`]: one simulated ASIC over Stratum V1 and its counters.

pub mod miner;

pub use miner::{MinerConfig, MinerError, MinerStats, run};
