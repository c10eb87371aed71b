//! A channel: one stream of jobs to a miner and the shares against them,
//! in no protocol's encoding. A V1 connection has one; a V2 connection
//! one per open channel. The core check lives here: a decoded [`Share`]
//! against a live job gives a [`ShareForward`] or a reason.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_books::JobValue;
use sluice_pow::version::RollingRule;
use sluice_pow::{ShareChecker, Submission, Target};

use super::epochs::Epochs;
use super::seen::Seen;
use super::{SessionConfig, SessionId};
use crate::job::{Extranonce, Job, ShareForward, UpstreamId};
use crate::stats::Reject;
use crate::vardiff::Vardiff;

/// How long after a raised target shares at the target before it are
/// still taken: a round trip and a miner's pipeline, with room to spare.
pub(super) const SET_TARGET_GRACE: Duration = Duration::from_secs(5);

/// Earlier ids a job entry answers to when its work is re-issued under a
/// new mask. A miner works on the newest, or on one it has just been
/// replaced by; shares naming an older one are refused as for an unknown
/// job.
pub(super) const MAX_ALIASES: usize = 4;

pub(super) struct JobEntry {
    pub(super) job: Arc<Job>,
    /// The difficulty in force when the job was sent: its shares are
    /// credited at this, whatever vardiff did since.
    pub(super) difficulty: f64,
    /// Its hashes' tag in the channel's duplicate set, unique among the
    /// live jobs.
    pub(super) tag: u8,
    /// Set when the job's upstream failed or a clean job superseded it.
    pub(super) stale: bool,
    /// Version bits the miner may roll on this job (what it was told).
    pub(super) mask: u32,
    /// The pool's mask in force for this job (it can change at once).
    pub(super) pool_mask: u32,
}

impl JobEntry {
    /// The share target its difficulty gives (computed when a checker is
    /// built, not kept: a connection remembers up to `max_jobs` entries).
    pub(super) fn target(&self) -> Target {
        Target::from_difficulty(self.difficulty).unwrap_or(Target::MAX)
    }
}

/// A share as the core checks it: decoded, in no protocol's encoding.
#[derive(Clone, Copy, Debug)]
pub struct Share<'a> {
    /// The miner's part of the extranonce (after the channel's prefix).
    pub extranonce: &'a [u8],
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The header version, as the protocol states it.
    pub version: VersionIn,
}

/// A job a channel has just started, and what the miner must be told
/// before it: each protocol says it in its own messages.
pub(super) struct Started {
    /// The job to send.
    pub(super) job: Arc<Job>,
    /// It must be sent as clean (first job, after a move, a skipped clean
    /// job, a restart).
    pub(super) clean: bool,
    /// The difficulty changed to this (it applies from this job on).
    pub(super) new_difficulty: Option<f64>,
    /// The rolling mask changed to this (at once, older jobs included).
    pub(super) new_mask: Option<u32>,
}

/// How a share states its header version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionIn {
    /// Not at all: the job's version.
    Job,
    /// Rolled bits (V1 `version_bits`), combined with the job's version
    /// by the job's rolling rule.
    Bits(u32),
    /// The whole version (V2): it may differ from the job's only in the
    /// bits the miner was allowed to roll.
    Full(u32),
}

/// What became of a share: the adapter answers the miner with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Taken, at this difficulty; `block` when it meets the network
    /// target.
    Accepted {
        /// The difficulty it was credited at.
        difficulty: f64,
        /// It is a block candidate.
        block: bool,
    },
    /// Refused, for this reason (already counted and booked).
    Rejected(Reject),
}

/// One stream of jobs to a miner and the shares against them: its
/// extranonce prefix, difficulty and version mask, and the jobs it may
/// still submit to. Nothing in it is V1: a V1 connection has exactly one,
/// a V2 connection one per open channel.
pub(super) struct Channel {
    /// The miner's extranonce1 (its prefix): empty until subscribe when
    /// it comes from the session's `prefixes`.
    /// Boxed: set once, so no capacity is kept beside it.
    pub(super) extranonce1: Box<[u8]>,
    pub(super) extranonce2_size: usize,
    /// Mask agreed with the miner (0 when it never configured rolling).
    pub(super) version_mask: u32,
    /// The mask last announced to the miner.
    pub(super) sent_mask: Option<u32>,
    /// Latest clean-job epoch seen per upstream: a job from a newer epoch
    /// is clean even if an intermediate clean job was skipped.
    pub(super) epochs: Epochs,
    pub(super) vardiff: Vardiff,
    /// Set by the miner (`d=` in a V1 password): vardiff stays off.
    pub(super) fixed_difficulty: bool,
    pub(super) sent_difficulty: Option<f64>,
    /// After a difficulty raised at once (a V2 SetTarget), the one the
    /// miner had before and until when its shares are still taken at it:
    /// shares found before the miner heard of the change are its work.
    /// Boxed: only a V2 raise sets it, for seconds, and inline it was 24
    /// bytes of every connection.
    pub(super) grace: Option<Box<(f64, Instant)>>,
    pub(super) jobs: VecDeque<JobEntry>,
    /// Earlier ids of work re-issued under a new mask, with the tag of the
    /// entry that now holds it: shares on them land there, under one
    /// duplicate tag. Kept here, not in each entry, because a pool that
    /// re-issues is rare and every entry would carry the empty list (16
    /// bytes, eight entries a connection).
    #[allow(clippy::box_collection)]
    pub(super) aliases: Option<Box<Vec<(u64, u8)>>>,
    /// Accepted hashes of the live jobs (a resubmitted share hashes
    /// alike).
    pub(super) seen: Seen,
    pub(super) latest: Option<Arc<Job>>,
    /// The one share checker kept built, for the job tagged
    /// `checker_tag` (the job the miner works on); with no tag, a retired
    /// one whose allocation the next takes. A checker is 192 bytes and a
    /// channel remembers up to `max_jobs` jobs; a share on an older job
    /// (late shares after a new job, a few per job change) rebuilds it in
    /// the same allocation, a few SHA-256 compressions, where a second one
    /// would cost every connection 192 bytes for its whole life. In the
    /// channel, not in each job entry: eight entries of 40 bytes became
    /// eight of 32 (256 bytes, one allocation size down).
    checker: Option<Box<ShareChecker>>,
    checker_tag: Option<u8>,
    /// The next job sent must be clean (first job, or first after moving
    /// upstream).
    pub(super) force_clean: bool,
    /// The slot of the job the share being settled named: a stale share
    /// on an older pool's job is that pool's stale work, not the current
    /// one's (routing compares pools by it). An index, not a copy of the
    /// job's pool and value: this lives in every connection.
    pub(super) checked_slot: Option<u32>,
    /// How far past its job's ntime a share's ntime may be, in seconds.
    pub(super) ntime_max_forward_secs: u32,
    /// Solo mining: the script this channel's coinbases pay.
    pub(super) payout: Option<Arc<[u8]>>,
    /// The miner is never told a mask (Stratum V2: it rolls every BIP 320
    /// bit when rolling is allowed).
    pub(super) mask_untold: bool,
    /// Stratum V1: the miner subscribed, so it holds this channel's
    /// extranonce and may authorize and take jobs (a V2 channel is opened
    /// with both). Here and not in the V1 session, with the next flag:
    /// the channel's padding holds them, and the session, one size class
    /// smaller, fits the connection's task (see `server`).
    pub(super) subscribed: bool,
    /// Stratum V1: the miner takes `mining.set_extranonce`.
    pub(super) extranonce_subscribed: bool,
}

/// The version bits a miner may roll on a job: its own mask and the
/// pool's, without the bits the job version already sets, so that BIP
/// 310's replace rule and ckpool's OR rule build the same header. A miner
/// that cannot be told a mask (V2) keeps those bits where the pool
/// replaces: every value of them gives the header we check.
fn rollable(mine: u32, untold: bool, pool_mask: u32, version: u32, rule: RollingRule) -> u32 {
    let set = if untold && rule == RollingRule::Replace {
        0
    } else {
        version
    };
    mine & pool_mask & !set
}

impl Channel {
    pub(super) fn new(
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        cfg: &SessionConfig,
        now: Instant,
    ) -> Self {
        Self {
            extranonce1: extranonce1.into_boxed_slice(),
            extranonce2_size,
            version_mask: 0,
            sent_mask: None,
            epochs: Epochs::default(),
            vardiff: Vardiff::new(
                cfg.vardiff_rules(),
                cfg.start_difficulty,
                cfg.min_difficulty,
                now,
            ),
            fixed_difficulty: false,
            sent_difficulty: None,
            grace: None,
            jobs: VecDeque::new(),
            aliases: None,
            seen: Seen::default(),
            latest: None,
            checker: None,
            checker_tag: None,
            force_clean: true,
            checked_slot: None,
            ntime_max_forward_secs: cfg.ntime_max_forward_secs,
            payout: None,
            mask_untold: false,
            subscribed: false,
            extranonce_subscribed: false,
        }
    }

    fn rollable(&self, pool_mask: u32, version: u32, rule: RollingRule) -> u32 {
        rollable(
            self.version_mask,
            self.mask_untold,
            pool_mask,
            version,
            rule,
        )
    }

    /// What a share on a job the channel does not know counts as: almost
    /// always a job dropped after `max_jobs`, or one from before a
    /// reconnect, so the miner hashed for it at about the current
    /// difficulty, and submitted hashrate is the work it did. A miner
    /// inventing ids only lowers its own figures (and is disconnected
    /// after enough bad requests in a row).
    pub(super) fn unknown_job(&self) -> (Reject, f64) {
        (Reject::JobNotFound, self.vardiff.difficulty())
    }

    /// The slot of the job a share names (the newest entry with that id,
    /// or with it among its earlier ids).
    pub(super) fn find_job(&self, id: u64) -> Result<usize, (Reject, f64)> {
        let tag = self.alias_tag(|a| a == id);
        self.jobs
            .iter()
            .rposition(|e| e.job.id == id || Some(e.tag) == tag)
            .ok_or_else(|| self.unknown_job())
    }

    /// The tag of the entry an earlier id matching `is` now lives in.
    fn alias_tag(&self, is: impl Fn(u64) -> bool) -> Option<u8> {
        let aliases = self.aliases.as_deref()?;
        aliases.iter().rev().find(|(a, _)| is(*a)).map(|&(_, t)| t)
    }

    /// Forgets the earlier ids of the entry tagged `tag` (it is gone).
    fn forget_aliases(&mut self, tag: u8) {
        if let Some(a) = self.aliases.as_mut() {
            a.retain(|&(_, t)| t != tag);
            if a.is_empty() {
                self.aliases = None;
            }
        }
    }

    /// The slot of the job a V2 share names: V2 job ids are the low 32
    /// bits of the engine's (a channel holds a handful of live jobs, far
    /// from wrapping).
    pub(super) fn find_job_low32(&self, id: u32) -> Result<usize, (Reject, f64)> {
        let tag = self.alias_tag(|a| a as u32 == id);
        self.jobs
            .iter()
            .rposition(|e| e.job.id as u32 == id || Some(e.tag) == tag)
            .ok_or_else(|| self.unknown_job())
    }

    /// The time check of [`Channel::check`] on its own, for adapters
    /// that find a bad field only after it (the reject order is fixed).
    pub(super) fn check_ntime(&self, slot: usize, ntime: u32) -> Result<(), (Reject, f64)> {
        let Some(entry) = self.jobs.get(slot) else {
            return Err(self.unknown_job());
        };
        if !in_ntime_window(entry.job.ntime, ntime, self.ntime_max_forward_secs) {
            return Err((Reject::NtimeOutOfRange, entry.difficulty));
        }
        Ok(())
    }

    /// The pool and value a refused share is booked at: those of the job
    /// in `slot` (the one it named, see `checked_slot`) if the channel
    /// knows it; otherwise the latest sent's, the newest entry (the
    /// network rate does not depend on which job it was).
    pub(super) fn booked_value(&self, slot: Option<u32>) -> (Option<usize>, JobValue) {
        let named = slot.and_then(|s| self.jobs.get(s as usize));
        match named.or(self.jobs.back()) {
            Some(e) => (Some(e.job.pool), e.job.value),
            None => (None, JobValue::default()),
        }
    }

    /// Checks a decoded share against the job in `slot` (from
    /// [`Channel::find_job`]): on failure, the reason and the difficulty
    /// the miner was working at (0 for protocol errors, which are no
    /// work). An accepted share is in the channel's duplicate set.
    pub(super) fn check(
        &mut self,
        slot: usize,
        share: &Share<'_>,
        worker: Arc<str>,
        session: SessionId,
        now: Instant,
    ) -> Result<ShareForward, (Reject, f64)> {
        let en2_size = self.extranonce2_size;
        let ntime_fwd = self.ntime_max_forward_secs;
        let grace = self
            .grace
            .as_deref()
            .copied()
            .filter(|&(_, until)| now < until);
        let Some(entry) = self.jobs.get_mut(slot) else {
            return Err((Reject::JobNotFound, self.vardiff.difficulty()));
        };
        self.checked_slot = u32::try_from(slot).ok();
        let mut d = entry.difficulty;
        if share.extranonce.len() != en2_size {
            return Err((Reject::BadExtranonce2Size, 0.0));
        }
        let job = &entry.job;
        if !in_ntime_window(job.ntime, share.ntime, ntime_fwd) {
            return Err((Reject::NtimeOutOfRange, d));
        }
        let mask = entry.mask;
        let version = match share.version {
            VersionIn::Job => job.version,
            VersionIn::Bits(bits) => {
                if sluice_pow::version::outside_mask(bits, mask) {
                    return Err((Reject::VersionOutsideMask, d));
                }
                job.rolling_rule.apply(job.version, mask, bits)
            }
            VersionIn::Full(v) => {
                if (v ^ job.version) & !mask != 0 {
                    return Err((Reject::VersionOutsideMask, d));
                }
                v
            }
        };
        if self.checker_tag != Some(entry.tag) {
            let c = ShareChecker::new(
                job.template.clone(),
                &self.extranonce1,
                en2_size,
                entry.target(),
            )
            .map_err(|_| (Reject::BadExtranonce2Size, 0.0))?;
            // Only now, with a share past the field checks, does an
            // older job give up its checker.
            self.install_checker(slot, c);
        }
        let Some(entry) = self.jobs.get(slot) else {
            return Err((Reject::JobNotFound, d));
        };
        let Some(checker) = self.checker.as_deref_mut() else {
            return Err((Reject::Malformed, 0.0));
        };
        let r = checker
            .check(&Submission {
                extranonce2: share.extranonce,
                time: share.ntime,
                nonce: share.nonce,
                version,
            })
            .map_err(|_| (Reject::BadExtranonce2Size, 0.0))?;
        // A stale job's share is still hashed: if it is a block (a forced
        // clean job on the same tip, firmware that ignores clean_jobs), it
        // goes up anyway; otherwise it is stale.
        if entry.stale && !r.meets_network_target {
            return Err((Reject::Stale, d));
        }
        // A block is never refused, even where the network target is
        // easier than the session's (regtest, test chains).
        if !r.meets_share_target && !r.meets_network_target {
            // Found at the easier target in force before a raise, and
            // in flight when the miner heard of it: credited at that
            // target (never above what the pool credits the job at).
            let earlier = grace
                .map(|(g, _)| g.min(entry.job.pool_difficulty))
                .filter(|&g| g < d)
                .filter(|&g| Target::from_difficulty(g).is_ok_and(|t| t.is_met_by(&r.hash)));
            match earlier {
                Some(g) => d = g,
                None => return Err((Reject::LowDifficulty, d)),
            }
        }
        // A share that can go nowhere is not answered `true` (a block
        // still is: it waits in the block log for its pool to return).
        if !r.meets_network_target && !entry.job.links.up.load(Ordering::Acquire) {
            return Err((Reject::NoUpstream, d));
        }
        if !self.seen.insert(entry.tag, &r.hash) {
            return Err((Reject::Duplicate, d));
        }
        let extranonce2 = Extranonce::from_parts(&[&self.extranonce1, share.extranonce])
            .ok_or((Reject::BadExtranonce2Size, 0.0))?;
        Ok(ShareForward {
            session,
            worker,
            job: entry.job.clone(),
            extranonce2,
            ntime: share.ntime,
            nonce: share.nonce,
            version,
            difficulty: d,
            pool_mask: entry.pool_mask,
            hash: r.hash,
            is_block: r.meets_network_target,
            received: now,
        })
    }

    /// Puts `c` in as `slot`'s checker; the job that had the checker
    /// gives it up. `c` takes the retired one's allocation: it is the size
    /// `c` needs, and taking it spares the allocator a free and a malloc
    /// per job change on every connection.
    pub(super) fn install_checker(&mut self, slot: usize, c: ShareChecker) {
        let Some(e) = self.jobs.get(slot) else {
            return;
        };
        self.checker_tag = Some(e.tag);
        match self.checker.as_deref_mut() {
            Some(b) => *b = c,
            None => self.checker = Some(Box::new(c)),
        }
    }

    /// `slot`'s checker, if it is the one built.
    pub(super) fn checker_of(&self, slot: usize) -> Option<&ShareChecker> {
        let tag = self.jobs.get(slot)?.tag;
        self.checker
            .as_deref()
            .filter(|_| self.checker_tag == Some(tag))
    }

    /// Starts the job waiting to be sent, if any: the difficulty it is
    /// credited at and the mask the miner may roll on it are fixed here,
    /// and it joins the live jobs. The adapter then tells the miner what
    /// [`Started`] says changed, and sends the job.
    pub(super) fn start_job(&mut self, max_jobs: usize) -> Option<Started> {
        let mut job = self.latest.take()?;
        if self.jobs.back().is_some_and(|e| e.job.id == job.id) && !self.force_clean {
            return None;
        }
        if let Some(script) = self
            .payout
            .as_ref()
            .filter(|p| job.paid_to.as_ref() != Some(*p))
        {
            // A solo miner mines its own coinbase: never the shared one,
            // which pays someone else. (Its own job again, after a
            // re-subscribe, is already that.)
            match job.for_payout(script) {
                Ok(j) => job = j,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a solo miner's coinbase; job not sent");
                    return None;
                }
            }
        }
        // Work in = work credited: never above what the pool credits a
        // forwarded share of this job at. A job re-issued under a new mask
        // keeps the difficulty it was first sent at (the same work,
        // credited the same).
        let republished = job.republish_of.and_then(|old| {
            let tag = self.alias_tag(|a| a == old);
            self.jobs
                .iter()
                .position(|e| e.job.id == old || Some(e.tag) == tag)
        });
        let d = match republished {
            Some(pos) => self.jobs[pos].difficulty,
            None => self.vardiff.difficulty().min(job.pool_difficulty),
        };
        let new_difficulty = (self.sent_difficulty != Some(d)).then_some(d);
        self.sent_difficulty = Some(d);
        // What the miner may roll: its mask and the upstream's, without the
        // bits the job version already sets — then BIP 310's replace rule
        // and ckpool's OR rule build the same header, and every pool
        // agrees with our hash.
        let mask = self.rollable(job.version_mask, job.version, job.rolling_rule);
        let mut new_mask = None;
        if self.version_mask != 0 && self.sent_mask != Some(mask) {
            new_mask = Some(mask);
            self.sent_mask = Some(mask);
            // A new mask takes effect at once, for the jobs the miner
            // still works on too: validate those with the mask in force
            // (less each job's own version bits).
            for e in self
                .jobs
                .iter_mut()
                .filter(|e| e.job.upstream == job.upstream)
            {
                e.mask = rollable(
                    self.version_mask,
                    self.mask_untold,
                    job.version_mask,
                    e.job.version,
                    e.job.rolling_rule,
                );
                e.pool_mask = job.version_mask;
            }
        }
        let clean = self.force_clean;
        self.force_clean = false;
        let started = Started {
            job: job.clone(),
            clean,
            new_difficulty,
            new_mask,
        };
        // The same job again (after moving away and back): keep its
        // duplicate set, so a replayed share is still a duplicate.
        if let Some(pos) = self.jobs.iter().position(|e| e.job.id == job.id)
            && let Some(mut e) = self.jobs.remove(pos)
        {
            e.stale = false;
            e.mask = mask;
            self.jobs.push_back(e);
            return Some(started);
        }
        // The same work re-issued under a new mask: one entry for both
        // ids (one duplicate set, the difficulty it was mined at).
        if let Some(pos) = republished
            && let Some(mut e) = self.jobs.remove(pos)
        {
            let aliases = self.aliases.get_or_insert_default();
            aliases.push((e.job.id, e.tag));
            // A pool that flips its mask back and forth re-issues the same
            // work each time: the ids a miner can still be working on are
            // the last few, and the list must not grow with every flip.
            if aliases.iter().filter(|&&(_, t)| t == e.tag).count() > MAX_ALIASES
                && let Some(first) = aliases.iter().position(|&(_, t)| t == e.tag)
            {
                aliases.remove(first);
            }
            e.job = job;
            e.mask = mask;
            self.jobs.push_back(e);
            return Some(started);
        }
        // Tags are unique among the live jobs, so at most 256 of them.
        let max_jobs = max_jobs.clamp(1, 256);
        // Room for them all at once: grown by doubling, the ring would
        // reallocate on its way there and could end with room to spare.
        if self.jobs.capacity() == 0 {
            self.jobs.reserve_exact(max_jobs);
        }
        while self.jobs.len() >= max_jobs {
            if let Some(old) = self.jobs.pop_front() {
                self.seen.forget(old.tag);
                self.forget_aliases(old.tag);
                // Its tag may go to the new job: the checker is retired.
                if self.checker_tag == Some(old.tag) {
                    self.checker_tag = None;
                }
            }
        }
        let tag = (0..=u8::MAX)
            .find(|t| self.jobs.iter().all(|e| e.tag != *t))
            .unwrap_or(0);
        let pool_mask = job.version_mask;
        self.jobs.push_back(JobEntry {
            job,
            difficulty: d,
            tag,
            stale: false,
            mask,
            pool_mask,
        });
        Some(started)
    }

    /// Changes the difficulty at once, for the jobs the miner works on as
    /// well as the next (a V2 SetTarget; V1 has no such message, so its
    /// difficulty changes with the next job). Each live job is credited at
    /// the new difficulty, still never above what its pool credits; the
    /// difficulty the miner was told is the new one. Returns what to tell
    /// it, if anything changed.
    pub(super) fn set_difficulty_now(&mut self, d: f64, now: Instant) -> Option<f64> {
        if !(d.is_finite() && d > 0.0) || self.sent_difficulty == Some(d) {
            return None;
        }
        let before = self.sent_difficulty;
        self.rejudge_live(d, before, now);
        self.sent_difficulty = Some(d);
        Some(d)
    }

    /// The live jobs are credited at `d` from now on (each still capped by
    /// its pool); if that is a raise from `before`, shares at `before`
    /// are taken for [`SET_TARGET_GRACE`].
    pub(super) fn rejudge_live(&mut self, d: f64, before: Option<f64>, now: Instant) {
        for e in self.jobs.iter_mut() {
            let jd = d.min(e.job.pool_difficulty);
            if jd == e.difficulty {
                continue;
            }
            e.difficulty = jd;
            if self.checker_tag == Some(e.tag)
                && let Some(c) = self.checker.as_deref_mut()
            {
                c.set_share_target(e.target());
            }
        }
        // The easiest target still in grace stays taken (two raises in a
        // row must not refuse shares found before the first); a new raise
        // starts a grace of its own for the target before it.
        let kept = self
            .grace
            .as_deref()
            .copied()
            .filter(|&(g, until)| now < until && g < d);
        let raised = before
            .filter(|&b| b < d)
            .map(|b| (b, now + SET_TARGET_GRACE));
        self.grace = match (kept, raised) {
            (Some(k), Some(r)) => Some(if k.0 <= r.0 { (k.0, r.1) } else { r }),
            (k, r) => r.or(k),
        }
        .map(Box::new);
    }

    /// The difficulty a V2 miner is to work at now: vardiff's, never
    /// above what the pool credits the job in force at (the miner applies
    /// a target to every job at once, so one above the pool's would be
    /// work the pool never credits).
    pub(super) fn difficulty_now(&self) -> f64 {
        let d = self.vardiff.difficulty();
        self.jobs.back().map_or(d, |e| d.min(e.job.pool_difficulty))
    }

    /// Takes a new job from the channel's upstream as the next to send;
    /// marks what it supersedes stale.
    pub(super) fn on_job(&mut self, job: Arc<Job>) {
        // The job feed keeps only the latest job, so a clean job may have
        // been skipped: a newer epoch means clean all the same.
        let newer_epoch = self.epochs.newer(job.upstream, job.epoch);
        if job.clean || newer_epoch {
            // Everything this upstream sent before is superseded.
            for e in self
                .jobs
                .iter_mut()
                .filter(|e| e.job.upstream == job.upstream)
            {
                e.stale = true;
            }
            if !job.clean {
                self.force_clean = true;
            }
        }
        self.latest = Some(job);
    }

    /// The channel was moved to another upstream; if the old one failed,
    /// its jobs are stale (their shares have nowhere to go).
    pub(super) fn on_moved(&mut self, old: UpstreamId, old_failed: bool) {
        if old_failed {
            for e in self.jobs.iter_mut().filter(|e| e.job.upstream == old) {
                e.stale = true;
            }
        }
        // The old upstream's pending job must not be sent after the move.
        if self.latest.as_ref().is_some_and(|j| j.upstream == old) {
            self.latest = None;
        }
        self.force_clean = true;
    }

    /// Lets time pass (vardiff for quiet miners).
    pub(super) fn on_tick(&mut self, cfg: &SessionConfig, now: Instant) {
        if !self.fixed_difficulty {
            let _ = self.vardiff.on_tick(cfg.vardiff_rules(), now);
        }
    }

    /// The miner starts over: the next job goes out with everything it
    /// needs (difficulty, mask, clean), even the one it already had.
    pub(super) fn restart(&mut self) {
        self.sent_difficulty = None;
        self.sent_mask = None;
        self.force_clean = true;
        if self.latest.is_none() {
            self.latest = self.jobs.back().map(|e| e.job.clone());
        }
    }

    /// Forgets an accepted hash (the share was refused after all, for want
    /// of room upstream: the same share again is no duplicate).
    pub(super) fn unsee(&mut self, job: u64, hash: &[u8; 32]) {
        if let Some(e) = self.jobs.iter().find(|e| e.job.id == job) {
            self.seen.remove(e.tag, hash);
        }
    }
}

/// True when a share's time is at or after its job's, by at most
/// `forward` seconds.
pub(super) fn in_ntime_window(job: u32, ntime: u32, forward: u32) -> bool {
    ntime >= job && ntime - job <= forward
}

#[cfg(test)]
mod rolling_tests {
    use super::*;

    #[test]
    fn signalled_bits_are_left_out_unless_the_miner_cannot_be_told_and_the_pool_replaces() {
        let (mask, v) = (0x1fff_e000, 0x3000_0000);
        // V1: told the mask, so the signalled bit 28 is left out.
        assert_eq!(
            rollable(mask, false, mask, v, RollingRule::Replace),
            0x0fff_e000
        );
        // V2 into a replacing pool: every BIP 320 bit gives our header.
        assert_eq!(rollable(mask, true, mask, v, RollingRule::Replace), mask);
        // V2 into an OR pool: a cleared bit 28 would come back upstream.
        assert_eq!(rollable(mask, true, mask, v, RollingRule::Or), 0x0fff_e000);
    }
}
