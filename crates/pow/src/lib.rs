//! sluice-pow: the share-validation core. Pure code: no I/O, no async, and
//! no allocation on the share path.
//!
//! Map of the crate:
//! - [`sha`]: SHA-256 on `sha2`'s `compress256` (SHA-NI picked at run
//!   time), midstates, an allocation-free incremental hasher, sha256d.
//! - [`header`]: the 80-byte header, its hash with and without a cached
//!   midstate of the first 64 bytes.
//! - [`target`]: 256-bit targets, compact `nbits`, Stratum difficulty
//!   (fractional allowed), hash ≤ target.
//! - [`coinbase`]: coinbase txids from a cached midstate of
//!   `coinb1 ‖ extranonce1`.
//! - [`merkle`]: merkle root from branches; branches from txids.
//! - [`checker`]: [`ShareChecker`], prepared once per (session, job).
//! - [`version`]: version-rolling masks and rules.
//! - [`hex`]: allocation-free hex decoding and Stratum byte orders.
//! - [`synthetic`]: deterministic job shapes for benches and tests.
//! - [`baseline`]: naive reference implementations benches compare with.

pub mod baseline;
pub mod checker;
pub mod coinbase;
pub mod header;
pub mod hex;
mod lanes;
pub mod merkle;
pub mod sha;
pub mod synthetic;
pub mod target;
pub mod version;

pub use checker::{CheckError, JobTemplate, SetupError, ShareChecker, ShareResult, Submission};
pub use header::{Header, HeaderMidstate};
pub use target::{DIFF1, Target, TargetError, hash_difficulty, nbits_difficulty};
