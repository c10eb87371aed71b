//! sluice-node: the pool-node role. Everything but [`rpc`] and [`core`] is
//! pure code (no I/O, no async); every input is checked and refused with
//! an error, never a panic.
//!
//! Map of the crate:
//! - [`rpc`]: an async Bitcoin Core JSON-RPC client (cookie or user and
//!   password), errors classified by whether a retry can help.
//! - [`core`]: [`CoreTemplates`], the node's latest template kept fresh by
//!   long poll and tip polling, and block submission from a job's own
//!   template.
//! - [`payout`]: who a coinbase pays: the pool's address, or in solo mode
//!   the miner's own, checked against the configured network.
//! - [`tx`]: a minimal, bounds-checked transaction parser (txid, wtxid,
//!   inputs, outputs); scripts are never interpreted.
//! - [`coinbase`]: a consensus-valid coinbase split around the extranonce
//!   (`coinb1 ‖ extranonce ‖ coinb2`), the BIP34 height push and the
//!   BIP141 witness commitment.
//! - [`template`]: [`BlockTemplate`], parsed and cross-checked from Bitcoin
//!   Core's `getblocktemplate`; merkle branches and witness commitment.
//! - [`block`]: checks a solved coinbase and header against their template
//!   and serialises the full block for `submitblock`.
//! - [`synthetic`]: [`SyntheticChain`], a deterministic simulated chain
//!   for tests, benches and demos where no Bitcoin Core is available.
//!
//! Hashes are in internal byte order (as serialised) everywhere; only the
//! JSON of `getblocktemplate` uses the reversed display order.

pub mod block;
pub mod coinbase;
pub mod core;
pub mod payout;
pub mod rpc;
pub mod synthetic;
pub mod template;
pub mod tx;
mod wire;

pub use block::{BlockError, assemble, block_hex};
pub use coinbase::{CoinbaseError, CoinbaseParts, CoinbaseSpec, TxOut};
pub use core::{CoreConfig, CoreTemplates};
pub use synthetic::{FoundBlock, SubmitError, SyntheticChain, SyntheticConfig, SyntheticError};
pub use template::{BlockTemplate, TemplateError, TemplateTx};
pub use tx::{Tx, TxError};
