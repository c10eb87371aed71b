//! sluice-engine: the protocol-neutral core of the proxy and pool node.
//!
//! Map of the crate:
//! - [`blocks`]: the durable block log (candidates and their fate).
//! - [`job`]: the shared [`job::Job`] and the [`job::ShareForward`] a
//!   session sends upstream.
//! - [`session`]: one miner connection as a sans-IO state machine (V1).
//! - [`vardiff`]: per-connection difficulty targeting a share rate.
//! - [`extranonce`]: the stable-extranonce1 split and prefix allocator.
//! - [`upstream`]: the V1 pool client (sans-IO state + connection task).
//! - [`limits`]: prefixes taken at subscribe, worker names per address.
//! - [`mailbox`]: a session's inbox (router events, pool refusals, a
//!   flag for a new job).
//! - [`fanout`]: an upstream's latest job and the sessions it tells.
//! - [`ticks`]: the sessions' clock, a few timers ticking their mailboxes.
//! - [`local`]: the pool-node upstream over a [`local::TemplateSource`].
//! - [`policy`]: the hashprice routing policy (sans-IO): tiers of pools
//!   by measured pay, floors, ceilings, hysteresis.
//! - [`router`]: weights, failover levels, rebalancing, session moves.
//! - [`routing`]: the task that measures each pool's pay from the books,
//!   runs the policy and sets the router's split; its report.
//! - [`connect`]: connectors that open remote and local upstreams.
//! - [`server`]: the listener, limits, and the per-connection task.
//! - `scratch`: the read buffer and output vectors a worker thread lends
//!   its connections for a wake-up.
//! - [`stats`]: reject and disconnect reasons, engine counters.

pub mod blocks;
pub mod connect;
pub mod extranonce;
pub mod fanout;
pub mod job;
pub mod limits;
pub mod local;
pub mod mailbox;
pub mod policy;
pub mod router;
pub mod routing;
mod scratch;
pub mod server;
pub mod session;
pub mod stats;
#[cfg(test)]
mod testrng;
pub mod ticks;
pub mod upstream;
pub mod url;
pub mod vardiff;
