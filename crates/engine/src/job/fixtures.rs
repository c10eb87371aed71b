//! Test-only defaults for [`Job`] and [`ShareForward`]: tests write
//! `Job { id, clean, ..test_job(template, links) }`, so a new field is
//! added here once instead of at every literal.

use std::sync::Arc;
use std::time::Instant;

use sluice_pow::version::RollingRule;
use sluice_pow::{JobTemplate, Target};

use super::{Extranonce, Job, JobLinks, ShareForward};

/// Version and ntime the defaults use (what the test rigs always used).
pub(crate) const VERSION: u32 = 0x2000_0000;
pub(crate) const NTIME: u32 = 0x6b00_0000;

/// A clean job numbered 1 from upstream 1, local-pool style (every share
/// goes up, no pool difficulty cap), valued at its nbits.
pub(crate) fn test_job(template: JobTemplate, links: JobLinks) -> Job {
    let value = sluice_books::JobValue {
        difficulty: sluice_pow::target::nbits_difficulty(template.bits()).unwrap_or(0.0),
        reward_sat: Some(312_500_000),
    };
    Job {
        id: 1,
        upstream: 1,
        upstream_job_id: "1".into(),
        template: Arc::new(template),
        version: VERSION,
        version_mask: sluice_pow::version::BIP320_MASK,
        rolling_rule: RollingRule::Replace,
        ntime: NTIME,
        clean: true,
        epoch: 1,
        upstream_target: Target::MAX,
        pool_difficulty: f64::INFINITY,
        upstream_extranonce1: Vec::new(),
        links,
        wire: super::JobWire::default(),
        pool: 0,
        value,
        extranonce_pad: 0,
        received: Instant::now(),
        republish_of: None,
        payout: None,
        paid_to: None,
    }
}

/// A share on `job` at the job's own version, time and mask, credited at
/// difficulty 1, not a block.
pub(crate) fn test_share(job: Arc<Job>) -> ShareForward {
    ShareForward {
        session: 0,
        worker: "x".into(),
        extranonce2: Extranonce::from_parts(&[]).unwrap(),
        ntime: job.ntime,
        nonce: 0,
        version: job.version,
        difficulty: 1.0,
        pool_mask: job.version_mask,
        hash: [0; 32],
        is_block: false,
        received: Instant::now(),
        job,
    }
}

/// Where a test job's shares and blocks go, and the receiving ends (keep
/// them alive: a dropped receiver makes the queue refuse shares).
pub(crate) struct TestLinks {
    pub(crate) links: JobLinks,
    pub(crate) shares: tokio::sync::mpsc::Receiver<ShareForward>,
    pub(crate) blocks: tokio::sync::mpsc::UnboundedReceiver<super::BlockForward>,
}

/// Links with room for `queue` shares, the upstream up.
pub(crate) fn test_links(queue: usize) -> TestLinks {
    let (share_tx, shares) = tokio::sync::mpsc::channel(queue);
    let (block_tx, blocks) = tokio::sync::mpsc::unbounded_channel();
    TestLinks {
        links: JobLinks {
            share_tx,
            block_tx,
            up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        },
        shares,
        blocks,
    }
}

/// The synthetic chain's job `block`, on the network target `bits` (hard
/// ones keep shares from being blocks by accident; `0x207fffff` makes
/// nearly every share one).
pub(crate) fn synthetic_template(block: u64, bits: u32) -> JobTemplate {
    let (t, _) = sluice_pow::synthetic::job(sluice_pow::synthetic::TYPICAL, block);
    JobTemplate::new(
        *t.prev_hash(),
        t.coinb1().to_vec(),
        t.coinb2().to_vec(),
        t.branches().to_vec(),
        bits,
    )
    .expect("valid bits")
}
