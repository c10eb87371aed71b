//! sluice's books: what every worker, pool and the whole farm mined, what
//! it earned, what it cost.
//!
//! - [`ring`]: fixed rings of time buckets (constant memory per worker).
//! - [`tally`]: the books of one entity — windows (1 m, 5 m, 1 h, 24 h),
//!   lifetime totals, the day's series.
//! - [`money`]: hashprice, share value, power cost and break-even, exactly
//!   as ARCHITECTURE.md defines them.
//! - [`books`]: the registry the engine records into and the API reads:
//!   workers, pools, farm, network and BTC price; sorted, filtered pages.
//! - [`advice`]: curtailment advice — which machines lose money at
//!   which hours of a time-of-use power price, and what switching them off
//!   saves.
//! - [`earnings`]: what a pool really pays per unit of work, and the
//!   statistical uncertainty of that figure.
//! - [`store`]: SQLite snapshots, so the books survive a restart.
//! - [`ledger`]: the pool node's share ledger (SQLite or PostgreSQL),
//!   blocks, and PPLNS and FPPS payouts computed from it.
//!
//! The share path locks only its own worker's mutex and one of a few
//! shards of its pool's and the farm's books; nothing here allocates per
//! share.

pub mod advice;
pub mod agents;
pub mod books;
pub mod earnings;
pub mod ledger;
pub mod money;
pub mod ring;
pub mod store;
pub mod tally;

pub use books::{
    Books, BooksConfig, Clock, JobValue, MAX_POWER_RULES, PoolBooksConfig, PriceConfig, Reward,
    Scheme, ShareKind, Worker, WorkerQuery,
};
pub use money::Power;
pub use store::{Store, StoreError};
pub use tally::{Outcome, Window};
