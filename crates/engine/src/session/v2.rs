//! The Stratum V2 adapter (sans-IO): decoded messages in, plaintext frames,
//! shares and a disconnect out, around one [`Channel`] per open extended
//! channel. The connection task owns the socket and the Noise transport;
//! an [`Output::Send`] from here holds one whole plaintext frame.
//!
//! What it serves: SetupConnection (mining protocol, version 2); extended
//! channels (OpenExtendedMiningChannel) and standard, header-only ones
//! (OpenStandardMiningChannel), with CloseChannel and UpdateChannel; jobs
//! as NewExtendedMiningJob to each extended channel, and for standard
//! channels either one NewMiningJob each (the merkle root made here, when
//! the miner requires standard jobs) or one NewExtendedMiningJob to their
//! group channel, from which the miner makes its channels' roots itself;
//! SetNewPrevHash when the previous block changes; SetTarget when the
//! difficulty does (at once, for the live jobs too); SubmitSharesExtended
//! and SubmitSharesStandard, answered with one batched
//! SubmitShares.Success per channel per [`V2Conn::flush`] or a
//! SubmitShares.Error with the spec's code.
//!
//! A standard channel is an extended one whose miner rolls no extranonce:
//! its whole extranonce is its prefix followed by zeros, unique per
//! channel, so its shares go through the same check.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sluice_books::Books;
use sluice_pow::{ShareChecker, Target};
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::frame::{Frame, HEADER_LEN};
use sluice_sv2::message::{
    self as m, Message, PROTOCOL_MINING, PROTOCOL_VERSION, error_code, setup_flags,
};

use super::channel::{Channel, Share, Verdict, VersionIn};
use super::conn::ConnCore;
use super::{Output, SessionConfig, SessionCounters, SessionId};
use crate::job::{Job, UpstreamId};
use crate::limits::{NameQuota, Prefixes};
use crate::stats::{Disconnect, Reject, Stats};

/// The version bits a V2 miner may roll (BIP 320's general-purpose bits,
/// what the spec's extended channels allow).
pub const V2_VERSION_MASK: u32 = 0x1fff_e000;

/// How often a miner should find a share at its starting difficulty,
/// from the hashrate it states when it opens a channel.
const SHARES_PER_MINUTE: f64 = 6.0;

/// The group channel every standard channel of a connection belongs to,
/// where their shared extended jobs go. Channel ids never take it.
const STANDARD_GROUP: u32 = 0x8000_0000;

/// A standard channel's miner part of the extranonce.
const ZEROS: [u8; 32] = [0; 32];

/// One open channel.
struct V2Channel {
    id: u32,
    /// Header-only: the miner rolls no extranonce.
    standard: bool,
    ch: Channel,
    /// The name it mines for (its `user_identity`).
    worker: Arc<str>,
    /// The previous-block hash the miner was last told (SetNewPrevHash).
    prev_hash: Option<[u8; 32]>,
    /// Shares accepted since the last SubmitShares.Success.
    batch: Batch,
}

#[derive(Default)]
struct Batch {
    last_sequence: u32,
    count: u32,
    work: f64,
}

/// One V2 miner connection.
pub struct V2Conn {
    core: ConnCore,
    /// Where each channel's extranonce prefix comes from (given back when
    /// the channel closes).
    prefixes: Arc<Prefixes>,
    /// Extranonce bytes each channel's miner rolls.
    extranonce_size: usize,
    setup: bool,
    channels: Vec<V2Channel>,
    next_channel: u32,
    /// The upstream's latest job, for channels opened after it came.
    latest: Option<Arc<Job>>,
    /// The miner asked for standard jobs (REQUIRES_STANDARD_JOBS): each
    /// standard channel gets its own NewMiningJob; otherwise their group
    /// gets one extended job for all.
    standard_jobs: bool,
    /// The job and previous-block hash the standard group was last sent.
    group_job: Option<u64>,
    group_prev_hash: Option<[u8; 32]>,
}

impl V2Conn {
    /// A connection whose channels take their prefixes from `prefixes` and
    /// give their miners `extranonce_size` bytes to roll.
    pub fn new(
        id: SessionId,
        cfg: Arc<SessionConfig>,
        stats: Arc<Stats>,
        prefixes: Arc<Prefixes>,
        extranonce_size: usize,
    ) -> Self {
        V2Conn {
            core: ConnCore::new(id, cfg, stats),
            prefixes,
            extranonce_size,
            setup: false,
            channels: Vec::new(),
            next_channel: 1,
            latest: None,
            standard_jobs: false,
            group_job: None,
            group_prev_hash: None,
        }
    }

    /// Keeps books for the connection's workers.
    pub fn with_books(mut self, books: Arc<Books>, peer: Option<std::net::IpAddr>) -> Self {
        self.core.set_books(books, peer);
        self
    }

    /// Counts the connection's names against its address's quota.
    pub fn with_name_quota(mut self, quota: Arc<NameQuota>, ip: std::net::IpAddr) -> Self {
        self.core.set_name_quota(quota, ip);
        self
    }

    /// The connection's tallies.
    pub fn counters(&self) -> &SessionCounters {
        &self.core.counters
    }

    /// Whether the miner has set the connection up.
    pub fn is_ready(&self) -> bool {
        self.setup
    }

    /// Open channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// A frame from the miner.
    pub fn on_frame(&mut self, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        let msg = match Message::decode(frame) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::info!(error = %e, "undecodable V2 message; disconnecting");
                self.core.count_reject(Reject::Malformed);
                out.push(Output::Disconnect(Disconnect::Protocol));
                return;
            }
        };
        if !self.setup && !matches!(msg, Message::SetupConnection(_)) {
            out.push(Output::Disconnect(Disconnect::Protocol));
            return;
        }
        match msg {
            Message::SetupConnection(s) => self.on_setup(&s, out),
            Message::OpenExtendedMiningChannel(o) => {
                let req = OpenRequest {
                    request_id: o.request_id,
                    user_identity: &o.user_identity,
                    nominal_hash_rate: o.nominal_hash_rate,
                    max_target: &o.max_target,
                    min_extranonce_size: Some(o.min_extranonce_size),
                };
                self.open(&req, now, out);
            }
            Message::OpenStandardMiningChannel(o) => {
                let req = OpenRequest {
                    request_id: o.request_id,
                    user_identity: &o.user_identity,
                    nominal_hash_rate: o.nominal_hash_rate,
                    max_target: &o.max_target,
                    min_extranonce_size: None,
                };
                self.open(&req, now, out);
            }
            Message::SubmitSharesExtended(s) => {
                let sub = Submit {
                    channel_id: s.channel_id,
                    sequence_number: s.sequence_number,
                    job_id: s.job_id,
                    nonce: s.nonce,
                    ntime: s.ntime,
                    version: s.version,
                    extranonce: Some(&s.extranonce),
                };
                self.on_submit(&sub, now, out);
            }
            Message::SubmitSharesStandard(s) => {
                let sub = Submit {
                    channel_id: s.channel_id,
                    sequence_number: s.sequence_number,
                    job_id: s.job_id,
                    nonce: s.nonce,
                    ntime: s.ntime,
                    version: s.version,
                    extranonce: None,
                };
                self.on_submit(&sub, now, out);
            }
            Message::UpdateChannel(u) => self.on_update(&u, now, out),
            Message::CloseChannel(c) => self.close(c.channel_id),
            // Anything else a miner may send (or an extension's message)
            // has nothing for us to do; it was cut by its length.
            _ => {}
        }
    }

    fn on_setup(&mut self, s: &m::SetupConnection, out: &mut Vec<Output>) {
        let refuse = |flags: u32, code: &'static str, out: &mut Vec<Output>| {
            send(
                out,
                m::SetupConnectionError {
                    flags,
                    error_code: Str0255::from(code),
                },
            );
            out.push(Output::Disconnect(Disconnect::Protocol));
        };
        if self.setup {
            return refuse(0, "connection-already-set-up", out);
        }
        if s.protocol != PROTOCOL_MINING {
            return refuse(0, error_code::UNSUPPORTED_PROTOCOL, out);
        }
        if !(s.min_version..=s.max_version).contains(&PROTOCOL_VERSION) {
            return refuse(0, error_code::PROTOCOL_VERSION_MISMATCH, out);
        }
        let unsupported = s.flags & setup_flags::REQUIRES_WORK_SELECTION;
        if unsupported != 0 {
            return refuse(unsupported, error_code::UNSUPPORTED_FEATURE_FLAGS, out);
        }
        self.setup = true;
        // Solo: every channel pays its own address, so no job is shared
        // by a group.
        self.standard_jobs =
            s.flags & setup_flags::REQUIRES_STANDARD_JOBS != 0 || self.core.cfg.solo.is_some();
        let user_agent = s.vendor.as_str().map(|v| {
            let fw = s.firmware.as_str().unwrap_or("");
            if fw.is_empty() {
                v.to_string()
            } else {
                format!("{v}/{fw}")
            }
        });
        self.core.set_user_agent(user_agent.as_deref());
        send(
            out,
            // Any channel kind will do, and version rolling is allowed.
            m::SetupConnectionSuccess {
                used_version: PROTOCOL_VERSION,
                flags: 0,
            },
        );
    }

    /// Opens an extended channel (`min_extranonce_size` given) or a
    /// standard one.
    fn open(&mut self, o: &OpenRequest<'_>, now: Instant, out: &mut Vec<Output>) {
        let standard = o.min_extranonce_size.is_none();
        let refuse = |code: &'static str, out: &mut Vec<Output>| {
            send(
                out,
                m::OpenMiningChannelError {
                    request_id: o.request_id,
                    error_code: Str0255::from(code),
                },
            );
        };
        let name = match o.user_identity.as_str() {
            Some(n) if ConnCore::valid_name(n, &self.core.cfg) => n,
            _ => {
                self.core.count_reject(Reject::Unauthorized);
                return refuse(error_code::UNKNOWN_USER, out);
            }
        };
        if o.min_extranonce_size
            .is_some_and(|n| usize::from(n) > self.extranonce_size)
            || self.extranonce_size > ZEROS.len()
        {
            return refuse(error_code::BAD_EXTRANONCE_SIZE, out);
        }
        if self.channels.len() >= self.core.cfg.max_workers_per_connection {
            self.core.count_reject(Reject::TooManyWorkers);
            return refuse(Reject::TooManyWorkers.v2_error(), out);
        }
        let payout = match &self.core.cfg.solo {
            Some(solo) => match (solo.0)(name) {
                Ok(script) => Some(script),
                Err(why) => {
                    tracing::debug!(user = name, why, "solo channel refused");
                    self.core.count_reject(Reject::Unauthorized);
                    return refuse(Reject::Unauthorized.v2_error(), out);
                }
            },
            None => None,
        };
        let worker = match self.core.authorize(name) {
            Ok(w) => w,
            Err(r) => {
                self.core.count_reject(r);
                return refuse(r.v2_error(), out);
            }
        };
        let Some(prefix) = self.prefixes.alloc() else {
            return refuse("no-extranonce-space", out);
        };
        let mut ch = Channel::new(prefix.clone(), self.extranonce_size, &self.core.cfg, now);
        ch.version_mask = V2_VERSION_MASK;
        ch.mask_untold = true;
        ch.payout = payout;
        // The first difficulty from the stated hashrate, within the
        // configured bounds (vardiff takes over from there).
        let rate = f64::from(o.nominal_hash_rate);
        if rate.is_finite() && rate > 0.0 {
            let d = difficulty_for(rate);
            ch.vardiff.set(self.core.cfg.vardiff_rules(), d, now);
        }
        // A miner that cannot take targets as easy as ours is asked for
        // no easier ones.
        let floor = Target::from_le_bytes(o.max_target).difficulty();
        if floor.is_finite() && floor > self.core.cfg.min_difficulty {
            let rules = self.core.cfg.vardiff_rules();
            ch.vardiff.set_min(rules, floor);
            if ch.vardiff.difficulty() < floor {
                ch.vardiff.set(rules, floor, now);
            }
        }
        let id = self.next_channel;
        // Ids stay below the group ids (and never reach u32::MAX).
        self.next_channel = (self.next_channel + 1) % (STANDARD_GROUP - 1);
        self.next_channel = self.next_channel.max(1);
        let d = ch.vardiff.difficulty();
        let target = Target::from_difficulty(d).unwrap_or(Target::MAX);
        if standard {
            // The whole extranonce: the miner adds none.
            let full = [&prefix[..], &ZEROS[..self.extranonce_size]].concat();
            send(
                out,
                m::OpenStandardMiningChannelSuccess {
                    request_id: o.request_id,
                    channel_id: id,
                    target: target.to_le_bytes(),
                    extranonce_prefix: B032::new(full).unwrap_or_default(),
                    group_channel_id: STANDARD_GROUP,
                },
            );
        } else {
            send(
                out,
                m::OpenExtendedMiningChannelSuccess {
                    request_id: o.request_id,
                    channel_id: id,
                    target: target.to_le_bytes(),
                    extranonce_size: self.extranonce_size as u16,
                    extranonce_prefix: B032::new(prefix).unwrap_or_default(),
                    // Peers want a group id that is neither the channel's
                    // nor u32::MAX (PROTOCOLS.md, the reference translator).
                    group_channel_id: id | STANDARD_GROUP,
                },
            );
        }
        let mut c = V2Channel {
            id,
            standard,
            ch,
            worker,
            prev_hash: None,
            batch: Batch::default(),
        };
        // The miner was told this target: jobs start at it.
        c.ch.sent_difficulty = Some(d);
        if let Some(job) = &self.latest {
            c.ch.on_job(job.clone());
            start(&mut c, self.core.cfg.max_jobs, self.standard_jobs, now, out);
        }
        self.channels.push(c);
        self.send_group_job(out);
    }

    /// Sends the standard channels' group the latest job, once, when they
    /// take group jobs and it has not had it.
    fn send_group_job(&mut self, out: &mut Vec<Output>) {
        if self.standard_jobs || !self.channels.iter().any(|c| c.standard) {
            return;
        }
        let Some(job) = &self.latest else { return };
        if self.group_job == Some(job.id) {
            return;
        }
        self.group_job = Some(job.id);
        let new_block = self.group_prev_hash != Some(*job.template.prev_hash());
        send_job(out, STANDARD_GROUP, job, new_block);
        if new_block {
            self.group_prev_hash = Some(*job.template.prev_hash());
        }
    }

    fn on_update(&mut self, u: &m::UpdateChannel, now: Instant, out: &mut Vec<Output>) {
        let Some(c) = self.channels.iter_mut().find(|c| c.id == u.channel_id) else {
            send(
                out,
                m::UpdateChannelError {
                    channel_id: u.channel_id,
                    error_code: Str0255::from(error_code::INVALID_CHANNEL_ID),
                },
            );
            return;
        };
        let rate = f64::from(u.nominal_hash_rate);
        if rate.is_finite() && rate > 0.0 && !c.ch.fixed_difficulty {
            let d = difficulty_for(rate);
            c.ch.vardiff.set(self.core.cfg.vardiff_rules(), d, now);
            // Never above what the pool credits the job in force at.
            let d = c.ch.difficulty_now();
            retarget(c, d, now, out);
        }
    }

    fn on_submit(&mut self, s: &Submit<'_>, now: Instant, out: &mut Vec<Output>) {
        let Some(pos) = self.channels.iter().position(|c| c.id == s.channel_id) else {
            self.core.count_reject(Reject::NotSubscribed);
            self.core.consecutive_bad += 1;
            return share_error(out, s, Reject::NotSubscribed);
        };
        let c = &mut self.channels[pos];
        // A standard channel's miner adds no extranonce; an extended
        // channel's must.
        let extranonce = match (s.extranonce, c.standard) {
            (Some(e), false) => e,
            (None, true) => &ZEROS[..c.ch.extranonce2_size],
            _ => {
                self.core.count_reject(Reject::Malformed);
                self.core.consecutive_bad += 1;
                flush_one(c, out);
                return share_error(out, s, Reject::Malformed);
            }
        };
        let book = self.core.workers.get(&c.worker).cloned().flatten();
        let checked = c.ch.find_job_low32(s.job_id).and_then(|slot| {
            let share = Share {
                extranonce,
                ntime: s.ntime,
                nonce: s.nonce,
                version: VersionIn::Full(s.version),
            };
            c.ch.check(slot, &share, c.worker.clone(), self.core.id, now)
        });
        let verdict = self.core.settle(&mut c.ch, checked, book, now, out);
        match verdict {
            Verdict::Accepted { difficulty, .. } => {
                c.batch.last_sequence = s.sequence_number;
                c.batch.count += 1;
                c.batch.work += difficulty;
                // Vardiff moved: a V2 target changes at once.
                follow_vardiff(c, now, out);
            }
            Verdict::Rejected(r) => {
                // Accepted shares are acknowledged before the error, so the
                // miner's sequence numbers stay in order.
                flush_one(c, out);
                share_error(out, s, r);
            }
        }
    }

    /// Acknowledges every share accepted since the last flush, one
    /// SubmitShares.Success per channel. The connection task calls it
    /// once per read, after the frames that read brought.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        for c in &mut self.channels {
            flush_one(c, out);
        }
    }

    fn close(&mut self, id: u32) {
        if let Some(pos) = self.channels.iter().position(|c| c.id == id) {
            let c = self.channels.swap_remove(pos);
            self.prefixes.release(&c.ch.extranonce1);
        }
    }

    /// A new job from the connection's upstream, for every channel.
    pub fn on_job(&mut self, job: Arc<Job>, now: Instant, out: &mut Vec<Output>) {
        for c in &mut self.channels {
            c.ch.on_job(job.clone());
            start(c, self.core.cfg.max_jobs, self.standard_jobs, now, out);
        }
        self.latest = Some(job);
        self.send_group_job(out);
    }

    /// The connection was moved to another upstream.
    pub fn on_moved(&mut self, old: UpstreamId, old_failed: bool) {
        for c in &mut self.channels {
            c.ch.on_moved(old, old_failed);
        }
        if self.latest.as_ref().is_some_and(|j| j.upstream == old) {
            self.latest = None;
        }
    }

    /// The pool's verdict on a share this connection forwarded.
    pub fn on_upstream_result(&mut self, r: &crate::upstream::UpstreamResult, now: Instant) {
        self.core.on_upstream_result(r, now);
    }

    /// Lets time pass (vardiff for quiet miners; a V2 target moves at
    /// once).
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        for c in &mut self.channels {
            c.ch.on_tick(&self.core.cfg, now);
            follow_vardiff(c, now, out);
        }
    }
}

impl Drop for V2Conn {
    fn drop(&mut self) {
        for c in &self.channels {
            self.prefixes.release(&c.ch.extranonce1);
        }
    }
}

/// The difficulty at which a miner of `rate` H/s finds
/// [`SHARES_PER_MINUTE`] shares a minute.
fn difficulty_for(rate: f64) -> f64 {
    rate * 60.0 / SHARES_PER_MINUTE / 4_294_967_296.0
}

fn send(out: &mut Vec<Output>, msg: impl Into<Message>) {
    out.push(Output::Send(msg.into().to_frame_bytes()));
}

fn share_error(out: &mut Vec<Output>, s: &Submit<'_>, r: Reject) {
    send(
        out,
        m::SubmitSharesError {
            channel_id: s.channel_id,
            sequence_number: s.sequence_number,
            error_code: Str0255::from(r.v2_error()),
        },
    );
}

fn flush_one(c: &mut V2Channel, out: &mut Vec<Output>) {
    if c.batch.count == 0 {
        return;
    }
    let b = std::mem::take(&mut c.batch);
    send(
        out,
        m::SubmitSharesSuccess {
            channel_id: c.id,
            last_sequence_number: b.last_sequence,
            new_submits_accepted_count: b.count,
            // The spec's sum is an integer; difficulties below 1 (test
            // chains, CPU miners) round to at least one per share.
            new_shares_sum: (b.work.round() as u64).max(u64::from(b.count)),
        },
    );
}

/// Tells the miner its new target, which applies at once to the jobs it
/// works on.
fn retarget(c: &mut V2Channel, d: f64, now: Instant, out: &mut Vec<Output>) {
    if let Some(d) = c.ch.set_difficulty_now(d, now) {
        set_target(out, c.id, d);
    }
}

/// Follows vardiff, unless the miner fixed its difficulty.
fn follow_vardiff(c: &mut V2Channel, now: Instant, out: &mut Vec<Output>) {
    if !c.ch.fixed_difficulty {
        let d = c.ch.difficulty_now();
        retarget(c, d, now, out);
    }
}

fn set_target(out: &mut Vec<Output>, channel_id: u32, d: f64) {
    send(
        out,
        m::SetTarget {
            channel_id,
            maximum_target: Target::from_difficulty(d)
                .unwrap_or(Target::MAX)
                .to_le_bytes(),
        },
    );
}

/// Sends a channel the job it has waiting: for an extended channel (or a
/// standard one that takes its jobs alone), a future job and
/// SetNewPrevHash when the previous block changed (or on the first job),
/// otherwise a job valid at once. A standard channel in a group only
/// registers the job here; the group gets it once ([`V2Conn::on_job`]).
fn start(
    c: &mut V2Channel,
    max_jobs: usize,
    standard_jobs: bool,
    now: Instant,
    out: &mut Vec<Output>,
) {
    let before = c.ch.sent_difficulty;
    let Some(started) = c.ch.start_job(max_jobs) else {
        return;
    };
    let job = &started.job;
    if let Some(d) = started.new_difficulty {
        // The miner applies a target to every job at once: so does the
        // check.
        c.ch.rejudge_live(d, before, now);
        set_target(out, c.id, d);
    }
    if c.standard && !standard_jobs {
        return;
    }
    let new_block = c.prev_hash != Some(*job.template.prev_hash());
    if c.standard {
        let Some(root) = standard_root(&mut c.ch, job) else {
            return;
        };
        send(
            out,
            m::NewMiningJob {
                channel_id: c.id,
                job_id: job.id as u32,
                min_ntime: (!new_block).then_some(job.ntime),
                version: job.version,
                merkle_root: root,
            },
        );
        if new_block {
            send_prev_hash(out, c.id, job);
        }
    } else {
        send_job(out, c.id, job, new_block);
    }
    if new_block {
        c.prev_hash = Some(*job.template.prev_hash());
    }
}

/// The merkle root of a standard channel's job (its extranonce all
/// prefix and zeros), from the checker its shares will use, built now.
/// Like a share's, this is the channel's one built checker: an older
/// job's is retired, and rebuilt if a share comes for it.
fn standard_root(ch: &mut Channel, job: &Arc<Job>) -> Option<[u8; 32]> {
    let en2 = ch.extranonce2_size;
    let last = ch.jobs.len().checked_sub(1)?;
    let entry = ch.jobs.get(last).filter(|e| e.job.id == job.id)?;
    if ch.checker_of(last).is_none() {
        let c =
            ShareChecker::new(job.template.clone(), &ch.extranonce1, en2, entry.target()).ok()?;
        ch.install_checker(last, c);
    }
    ch.checker_of(last).map(|c| c.merkle_root(&ZEROS[..en2]))
}

/// A job as NewExtendedMiningJob to `channel_id` (encoded once per job;
/// each copy gets its own id), and SetNewPrevHash after it on a new block.
fn send_job(out: &mut Vec<Output>, channel_id: u32, job: &Job, new_block: bool) {
    let mut frame = BytesMut::from(&job.v2_extended_job(new_block)[..]);
    frame[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&channel_id.to_le_bytes());
    out.push(Output::Send(frame.freeze()));
    if new_block {
        send_prev_hash(out, channel_id, job);
    }
}

fn send_prev_hash(out: &mut Vec<Output>, channel_id: u32, job: &Job) {
    let t = &job.template;
    send(
        out,
        m::SetNewPrevHash {
            channel_id,
            job_id: job.id as u32,
            prev_hash: *t.prev_hash(),
            min_ntime: job.ntime,
            nbits: t.bits(),
        },
    );
}

/// What opening a channel asks, whichever kind.
struct OpenRequest<'a> {
    request_id: u32,
    user_identity: &'a Str0255,
    nominal_hash_rate: f32,
    max_target: &'a [u8; 32],
    /// `Some` for an extended channel.
    min_extranonce_size: Option<u16>,
}

/// A share, whichever kind of channel.
struct Submit<'a> {
    channel_id: u32,
    sequence_number: u32,
    job_id: u32,
    nonce: u32,
    ntime: u32,
    version: u32,
    /// The miner's extranonce (extended channels).
    extranonce: Option<&'a [u8]>,
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
