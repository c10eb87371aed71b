//! The `sluice` package's library: what the binary runs, also usable by
//! end-to-end tests in-process.
//!
//! Map:
//! - [`config`]: the TOML config, its validation, and the quick flags.
//! - [`run`]: wiring a config into a running proxy or pool node.
//! - [`core_source`]: Bitcoin Core as the pool node's template source.
//! - [`bench_hash`]: `sluice bench hash`, share-validation throughput.
//! - [`load`]: `sluice loadgen` and `sluice demo`.
//! - [`ledger`]: `sluice ledger`, blocks and payouts from a share ledger.
//! - [`advise`]: `sluice advise`, the curtailment advice as text.
//! - [`routing`]: `sluice routing`, the routing report as a table.
//! - [`keys`]: `sluice keygen` and `sluice cert` (Stratum V2 identities).
//! - [`every`]: the clock of the periodic tasks.
//! - [`memory`]: the allocator (jemalloc), and freed heap given back to
//!   the OS once a minute.

pub mod advise;
pub mod bench_hash;
pub mod books;
pub mod config;
pub mod core_source;
pub mod every;
pub mod keys;
pub mod ledger;
pub mod load;
pub mod memory;
pub mod money;
pub mod routing;
pub mod run;
