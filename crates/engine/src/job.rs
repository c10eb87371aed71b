//! Jobs as sessions see them, and the share a session forwards upstream.
//!
//! A [`Job`] is built once per upstream job and shared (`Arc`) by every
//! session on that upstream connection. It holds the job's
//! protocol-neutral parts; each protocol's encoding of it lives in its
//! [`JobWire`], made once per job and shared (ARCHITECTURE.md, trick 2).
//! The upstream's extranonce1 is already folded into `coinb1` (trick 1),
//! so a session's own extranonce1 is just its prefix.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use sluice_pow::version::RollingRule;
use sluice_pow::{JobTemplate, Target};
use tokio::sync::mpsc;

use crate::session::SessionId;

/// Index of an upstream connection (unique for the process lifetime).
pub type UpstreamId = u32;

/// A job ready for sessions.
#[derive(Debug)]
pub struct Job {
    /// Process-wide job number; its hex form is the V1 job id miners see.
    pub id: u64,
    /// The upstream connection the job came from.
    pub upstream: UpstreamId,
    /// The job id the upstream used (for submitting shares back).
    pub upstream_job_id: Arc<str>,
    /// What the share checker needs; `coinb1` includes the upstream's
    /// extranonce1.
    pub template: Arc<JobTemplate>,
    /// Block version the job was issued with.
    pub version: u32,
    /// Version bits the upstream lets miners roll (0: none).
    pub version_mask: u32,
    /// How rolled bits combine with `version` (the upstream's convention).
    pub rolling_rule: RollingRule,
    /// Job time.
    pub ntime: u32,
    /// True when miners must drop earlier jobs.
    pub clean: bool,
    /// Incremented on every clean job of an upstream: jobs of an older
    /// epoch are stale.
    pub epoch: u64,
    /// Shares at or below this target are sent upstream.
    pub upstream_target: Target,
    /// The difficulty the pool credits a forwarded share of this job at.
    /// Sessions never give a miner more than this (work in = work
    /// credited: above it, the pool would credit each share at its own
    /// smaller difficulty). Infinite for the local pool node, which books
    /// every share at the miner's difficulty.
    pub pool_difficulty: f64,

    /// The extranonce1 of the upstream subscription the job came from
    /// (folded into `coinb1`; empty for the local pool node). A block can
    /// be sent again on a later connection only if it gets the same one.
    pub upstream_extranonce1: Vec<u8>,
    /// Where its shares and blocks go: the job's own upstream, even after
    /// the session has moved elsewhere.
    pub links: JobLinks,
    /// The job's encodings, made from the fields above on first use.
    pub wire: JobWire,
    /// Config index of the pool the job came from (the books' pool).
    pub pool: usize,
    /// Network difficulty and block reward, for the books.
    pub value: sluice_books::JobValue,
    /// Zero bytes after the session's extranonce2 when the upstream's
    /// extranonce2 space is larger than the split (fixed per job, so a
    /// later `set_extranonce` cannot change how old shares are sent).
    pub extranonce_pad: usize,
    /// When the job arrived.
    pub received: Instant,
    /// The job this one re-issues with a new version mask (same work, same
    /// upstream job): sessions keep one duplicate set and difficulty for
    /// both ids.
    pub republish_of: Option<u64>,
    /// Solo pool node: builds this job's coinbase for another payout
    /// script (see [`Job::for_payout`]); `None` elsewhere.
    pub payout: Option<PayoutSplit>,
    /// The script this job's coinbase was built for by
    /// [`Job::for_payout`] (a solo miner's own job).
    pub paid_to: Option<Arc<[u8]>>,
}

/// Builds a job's `(coinb1, coinb2)` paying a given output script.
#[derive(Clone)]
pub struct PayoutSplit(pub Arc<SplitFn>);

/// `script → (coinb1, coinb2)`, or why not.
pub type SplitFn = dyn Fn(&[u8]) -> Result<(Vec<u8>, Vec<u8>), String> + Send + Sync;

impl std::fmt::Debug for PayoutSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayoutSplit")
    }
}

/// A job's ways back to the upstream it came from.
#[derive(Clone, Debug)]
pub struct JobLinks {
    /// Shares (bounded: a pool that does not keep up is not buffered for).
    pub share_tx: mpsc::Sender<ShareForward>,
    /// Blocks: a path of their own that no share queue can fill or delay
    /// (unbounded: blocks are rare and none may be dropped).
    pub block_tx: mpsc::UnboundedSender<BlockForward>,
    /// True while the upstream can take shares (written by its task): a
    /// share that can go nowhere is not answered `true`.
    pub up: Arc<AtomicBool>,
}

impl Job {
    /// The same job (same id, work and links) with a coinbase paying
    /// `script`: what a solo miner mines. Its encodings are its own.
    pub fn for_payout(&self, script: &Arc<[u8]>) -> Result<Arc<Job>, String> {
        let split = self
            .payout
            .as_ref()
            .ok_or("this job cannot pay a miner's own address")?;
        let (coinb1, coinb2) = (split.0)(script)?;
        let t = &self.template;
        let template = JobTemplate::new(
            *t.prev_hash(),
            coinb1,
            coinb2,
            t.branches().to_vec(),
            t.bits(),
        )
        .map_err(|e| e.to_string())?;
        let job = Job {
            id: self.id,
            upstream: self.upstream,
            upstream_job_id: self.upstream_job_id.clone(),
            template: Arc::new(template),
            version: self.version,
            version_mask: self.version_mask,
            rolling_rule: self.rolling_rule,
            ntime: self.ntime,
            clean: self.clean,
            epoch: self.epoch,
            upstream_target: self.upstream_target,
            pool_difficulty: self.pool_difficulty,
            upstream_extranonce1: self.upstream_extranonce1.clone(),
            links: self.links.clone(),
            wire: JobWire::default(),
            pool: self.pool,
            value: self.value,
            extranonce_pad: self.extranonce_pad,
            received: self.received,
            republish_of: self.republish_of,
            payout: None,
            paid_to: Some(script.clone()),
        };
        job.encode_wire();
        Ok(Arc::new(job))
    }

    /// Version bits to submit upstream for a validated header version:
    /// both rules rebuild `version` from these (see `RollingRule`).
    pub fn version_bits(&self, version: u32) -> Option<u32> {
        (version != self.version).then_some(version & self.version_mask)
    }

    /// The job id miners see.
    pub fn wire_id(&self) -> String {
        format!("{:x}", self.id)
    }

    /// The job's `mining.notify` line: with `clean_jobs` as the upstream
    /// sent it, or, with `force_clean`, set (for sessions that just
    /// subscribed or moved here).
    pub fn v1_notify(&self, force_clean: bool) -> Bytes {
        let (as_sent, clean) = self.wire.v1.get_or_init(|| self.encode_v1());
        if force_clean {
            clean.clone()
        } else {
            as_sent.clone()
        }
    }

    /// The job's NewExtendedMiningJob frame (plaintext, header included)
    /// for channel 0: `future` without `min_ntime` (it waits for the
    /// SetNewPrevHash that names it), otherwise valid at once.
    pub fn v2_extended_job(&self, future: bool) -> Bytes {
        let (fut, now) = self.wire.v2.get_or_init(|| self.encode_v2());
        if future { fut.clone() } else { now.clone() }
    }

    fn encode_v2(&self) -> (Bytes, Bytes) {
        use sluice_sv2::binary::{B064K, Seq0255};
        let t = &self.template;
        let job = sluice_sv2::message::NewExtendedMiningJob {
            channel_id: 0,
            // V2 ids are 32 bits; a channel keeps a handful of live jobs,
            // far from wrapping.
            job_id: self.id as u32,
            min_ntime: Some(self.ntime),
            version: self.version,
            // Only when the upstream lets miners roll at all (the bits
            // they may roll are then BIP 320's, as the spec has it).
            version_rolling_allowed: self.version_mask & !self.version != 0,
            merkle_path: Seq0255::new(t.branches().to_vec()).unwrap_or_default(),
            coinbase_tx_prefix: B064K::new(t.coinb1().to_vec()).unwrap_or_default(),
            coinbase_tx_suffix: B064K::new(t.coinb2().to_vec()).unwrap_or_default(),
        };
        let now = sluice_sv2::Message::from(job.clone()).to_frame_bytes();
        let fut = sluice_sv2::Message::from(sluice_sv2::message::NewExtendedMiningJob {
            min_ntime: None,
            ..job
        })
        .to_frame_bytes();
        (fut, now)
    }

    /// Makes the encodings sessions will ask for. The task publishing the
    /// job calls it, so that no session encodes (or waits on another one
    /// encoding) on its way to the miner.
    pub fn encode_wire(&self) {
        self.wire.v1.get_or_init(|| self.encode_v1());
    }

    fn encode_v1(&self) -> (Bytes, Bytes) {
        let t = &self.template;
        let n = sluice_sv1::Notify {
            job_id: self.wire_id(),
            prev_hash: *t.prev_hash(),
            coinb1: t.coinb1().to_vec(),
            coinb2: t.coinb2().to_vec(),
            branches: t.branches().to_vec(),
            version: self.version,
            nbits: t.bits(),
            ntime: self.ntime,
            clean: self.clean,
        };
        let as_sent = n.encode();
        // A clean job's line is already the forced-clean one.
        let clean = if self.clean {
            as_sent.clone()
        } else {
            sluice_sv1::Notify { clean: true, ..n }.encode()
        };
        (as_sent, clean)
    }
}

/// A job's encodings, one per wire format, each made at most once and then
/// shared by every session that sends the job. Empty until first asked
/// for: a job no session of a protocol ever sees costs nothing in that
/// protocol.
#[derive(Debug, Default)]
pub struct JobWire {
    /// `mining.notify` with `clean_jobs` as sent, and forced clean.
    v1: OnceLock<(Bytes, Bytes)>,
    /// NewExtendedMiningJob frames for channel 0: as a future job, and
    /// valid at once. A channel copies one and writes its id over the
    /// first four payload bytes.
    v2: OnceLock<(Bytes, Bytes)>,
}

/// Largest extranonce the engine moves around (V2 allows 32 bytes).
pub const MAX_EXTRANONCE: usize = 32;

/// A fixed-capacity extranonce, so forwarding a share does not allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extranonce {
    len: u8,
    bytes: [u8; MAX_EXTRANONCE],
}

impl Extranonce {
    /// Concatenates parts; `None` if they exceed [`MAX_EXTRANONCE`].
    pub fn from_parts(parts: &[&[u8]]) -> Option<Self> {
        let mut e = Extranonce {
            len: 0,
            bytes: [0; MAX_EXTRANONCE],
        };
        for p in parts {
            let start = usize::from(e.len);
            let end = start
                .checked_add(p.len())
                .filter(|&n| n <= MAX_EXTRANONCE)?;
            e.bytes[start..end].copy_from_slice(p);
            e.len = end as u8;
        }
        Some(e)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Extranonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Extranonce({})",
            sluice_pow::hex::encode(self.as_slice())
        )
    }
}

/// A validated share on its way upstream.
#[derive(Clone, Debug)]
pub struct ShareForward {
    /// The session that found it (responses are attributed back to it).
    pub session: SessionId,
    /// The worker name the miner submitted under.
    pub worker: Arc<str>,
    /// The job it was mined on.
    pub job: Arc<Job>,
    /// The full upstream extranonce2: session prefix ‖ miner extranonce2.
    pub extranonce2: Extranonce,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The header version exactly as validated (rolled bits applied).
    pub version: u32,
    /// The difficulty the share was credited at (its session target).
    pub difficulty: f64,
    /// The pool's version mask in force when the share was validated (the
    /// bits submitted are the header version's bits under it).
    pub pool_mask: u32,
    /// The block hash.
    pub hash: [u8; 32],
    /// True when the hash meets the network target.
    pub is_block: bool,
    /// When the session received it.
    pub received: Instant,
}

impl ShareForward {
    /// Version bits to submit upstream: both BIP 310's replace rule and
    /// ckpool's OR rule rebuild the validated version from these, because
    /// miners never roll bits the job version sets.
    pub fn version_bits(&self) -> Option<u32> {
        (self.version != self.job.version).then_some(self.version & self.pool_mask)
    }

    /// The block this share makes: its header and the coinbase exactly as
    /// the pool or node rebuilds them.
    pub fn block_parts(&self) -> (sluice_pow::Header, Vec<u8>) {
        let t = &self.job.template;
        let coinbase = [t.coinb1(), self.extranonce2.as_slice(), t.coinb2()].concat();
        let txid = sluice_pow::sha::sha256d(&coinbase);
        let header = sluice_pow::Header {
            version: self.version,
            prev_hash: *t.prev_hash(),
            merkle_root: sluice_pow::merkle::root_from_branches(&txid, t.branches()),
            time: self.ntime,
            bits: t.bits(),
            nonce: self.nonce,
        };
        (header, coinbase)
    }
}

/// A block candidate on its way to its upstream, with its number in the
/// block log (results are written back under it).
#[derive(Clone, Debug)]
pub struct BlockForward {
    /// Its number in the block log.
    pub id: u64,
    /// The share that found it.
    pub share: ShareForward,
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    /// What the upstream and local tasks encoded before jobs carried
    /// their own wire: the V1 lines must stay byte for byte the same.
    #[test]
    fn v1_notify_is_the_notify_of_the_jobs_parts() {
        let (t, _) = sluice_pow::synthetic::job(sluice_pow::synthetic::TYPICAL, 3);
        let links = fixtures::test_links(1).links;
        for clean in [false, true] {
            let job = Job {
                id: 0x4d,
                clean,
                version: 0x2000_4000,
                ntime: 0x6b00_0007,
                ..fixtures::test_job((*t).clone(), links.clone())
            };
            let n = sluice_sv1::Notify {
                job_id: "4d".into(),
                prev_hash: *t.prev_hash(),
                coinb1: t.coinb1().to_vec(),
                coinb2: t.coinb2().to_vec(),
                branches: t.branches().to_vec(),
                version: 0x2000_4000,
                nbits: t.bits(),
                ntime: 0x6b00_0007,
                clean,
            };
            assert_eq!(job.v1_notify(false), n.encode());
            let forced = sluice_sv1::Notify { clean: true, ..n }.encode();
            assert_eq!(job.v1_notify(true), forced);
            // Encoded once: every call hands out the same buffer (and a
            // clean job's two lines are one).
            assert_eq!(job.v1_notify(false).as_ptr(), job.v1_notify(false).as_ptr());
            assert_eq!(
                job.v1_notify(false).as_ptr() == job.v1_notify(true).as_ptr(),
                clean
            );
        }
    }

    #[test]
    fn extranonce_concatenates_within_bounds() {
        let e = Extranonce::from_parts(&[&[1, 2], &[3, 4, 5]]).unwrap();
        assert_eq!(e.as_slice(), &[1, 2, 3, 4, 5]);
        assert!(Extranonce::from_parts(&[&[0; 20], &[0; 13]]).is_none());
        assert_eq!(
            Extranonce::from_parts(&[&[0; 32]])
                .unwrap()
                .as_slice()
                .len(),
            32
        );
    }
}
