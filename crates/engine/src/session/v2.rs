//! The Stratum V2 adapter (sans-IO): decoded messages in, plaintext frames,
//! shares and a disconnect out, around one [`Channel`] per open extended
//! channel. The connection task owns the socket and the Noise transport;
//! an [`Output::Send`] from here holds one whole plaintext frame.
//!
//! What it serves today: SetupConnection (mining protocol, version 2),
//! extended channels (OpenExtendedMiningChannel, CloseChannel,
//! UpdateChannel), jobs as NewExtendedMiningJob with SetNewPrevHash when
//! the previous block changes, SetTarget when the difficulty does (at once,
//! for the live jobs too), and SubmitSharesExtended answered with one
//! batched SubmitShares.Success per channel per [`V2Conn::flush`] or a
//! SubmitShares.Error with the spec's code. Standard and group channels
//! come later; a miner that requires standard jobs is told so at setup.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sluice_books::Books;
use sluice_pow::Target;
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::frame::{Frame, HEADER_LEN};
use sluice_sv2::message::{
    self as m, Message, PROTOCOL_MINING, PROTOCOL_VERSION, error_code, setup_flags, success_flags,
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

/// One open extended channel.
struct V2Channel {
    id: u32,
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
        }
    }

    /// Keeps books for the connection's workers.
    pub fn with_books(mut self, books: Arc<Books>, peer: Option<std::net::IpAddr>) -> Self {
        self.core.books = Some(books);
        self.core.peer = peer;
        self
    }

    /// Counts the connection's names against its address's quota.
    pub fn with_name_quota(mut self, quota: Arc<NameQuota>, ip: std::net::IpAddr) -> Self {
        self.core.quota = Some((quota, ip));
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
            Message::OpenExtendedMiningChannel(o) => self.on_open(&o, now, out),
            Message::OpenStandardMiningChannel(o) => send(
                out,
                m::OpenMiningChannelError {
                    request_id: o.request_id,
                    error_code: Str0255::from("standard-channels-unsupported"),
                },
            ),
            Message::SubmitSharesExtended(s) => self.on_submit(&s, now, out),
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
        let unsupported =
            s.flags & (setup_flags::REQUIRES_WORK_SELECTION | setup_flags::REQUIRES_STANDARD_JOBS);
        if unsupported != 0 {
            return refuse(unsupported, error_code::UNSUPPORTED_FEATURE_FLAGS, out);
        }
        self.setup = true;
        self.core.user_agent = s.vendor.as_str().map(|v| {
            let fw = s.firmware.as_str().unwrap_or("");
            if fw.is_empty() {
                v.to_string()
            } else {
                format!("{v}/{fw}")
            }
        });
        send(
            out,
            m::SetupConnectionSuccess {
                used_version: PROTOCOL_VERSION,
                flags: success_flags::REQUIRES_EXTENDED_CHANNELS,
            },
        );
    }

    fn on_open(&mut self, o: &m::OpenExtendedMiningChannel, now: Instant, out: &mut Vec<Output>) {
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
        if usize::from(o.min_extranonce_size) > self.extranonce_size {
            return refuse(error_code::BAD_EXTRANONCE_SIZE, out);
        }
        if self.channels.len() >= self.core.cfg.max_workers_per_connection {
            self.core.count_reject(Reject::TooManyWorkers);
            return refuse(Reject::TooManyWorkers.v2_error(), out);
        }
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
        // The first difficulty from the stated hashrate, within the
        // configured bounds (vardiff takes over from there).
        let rate = f64::from(o.nominal_hash_rate);
        if rate.is_finite() && rate > 0.0 {
            let d = rate * 60.0 / SHARES_PER_MINUTE / 4_294_967_296.0;
            ch.vardiff.set(d, now);
        }
        // A miner that cannot take targets as easy as ours is asked for
        // no easier ones.
        let floor = Target::from_le_bytes(&o.max_target).difficulty();
        if floor.is_finite() && floor > self.core.cfg.min_difficulty {
            ch.vardiff.set_min(floor);
            if ch.vardiff.difficulty() < floor {
                ch.vardiff.set(floor, now);
            }
        }
        let id = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1).max(1);
        let d = ch.vardiff.difficulty();
        let target = Target::from_difficulty(d).unwrap_or(Target::MAX);
        send(
            out,
            m::OpenExtendedMiningChannelSuccess {
                request_id: o.request_id,
                channel_id: id,
                target: target.to_le_bytes(),
                extranonce_size: self.extranonce_size as u16,
                extranonce_prefix: B032::new(prefix).unwrap_or_default(),
                // Peers want a group id that is neither the channel's nor
                // u32::MAX (PROTOCOLS.md, the reference translator).
                group_channel_id: id | 0x8000_0000,
            },
        );
        let mut c = V2Channel {
            id,
            ch,
            worker,
            prev_hash: None,
            batch: Batch::default(),
        };
        // The miner was told this target: jobs start at it.
        c.ch.sent_difficulty = Some(d);
        if let Some(job) = &self.latest {
            c.ch.on_job(job.clone());
            start(&mut c, self.core.cfg.max_jobs, now, out);
        }
        self.channels.push(c);
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
            let d =
                c.ch.vardiff
                    .set(rate * 60.0 / SHARES_PER_MINUTE / 4_294_967_296.0, now);
            retarget(c, d, now, out);
        }
    }

    fn on_submit(&mut self, s: &m::SubmitSharesExtended, now: Instant, out: &mut Vec<Output>) {
        let Some(pos) = self.channels.iter().position(|c| c.id == s.channel_id) else {
            self.core.count_reject(Reject::NotSubscribed);
            self.core.consecutive_bad += 1;
            return share_error(out, s, Reject::NotSubscribed);
        };
        let c = &mut self.channels[pos];
        let book = self.core.workers.get(&c.worker).cloned().flatten();
        let checked = c.ch.find_job_low32(s.job_id).and_then(|slot| {
            let share = Share {
                extranonce: &s.extranonce,
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
            start(c, self.core.cfg.max_jobs, now, out);
        }
        self.latest = Some(job);
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
            c.ch.on_tick(now);
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

fn send(out: &mut Vec<Output>, msg: impl Into<Message>) {
    out.push(Output::Send(msg.into().to_frame_bytes()));
}

fn share_error(out: &mut Vec<Output>, s: &m::SubmitSharesExtended, r: Reject) {
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

/// Sends a channel the job it has waiting: a future job and
/// SetNewPrevHash when the previous block changed (or on the first job),
/// otherwise a job valid at once.
fn start(c: &mut V2Channel, max_jobs: usize, now: Instant, out: &mut Vec<Output>) {
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
    let t = &job.template;
    let new_block = c.prev_hash != Some(*t.prev_hash());
    // Encoded once per job for every channel; each copy gets its own id.
    let mut frame = BytesMut::from(&job.v2_extended_job(new_block)[..]);
    frame[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&c.id.to_le_bytes());
    out.push(Output::Send(frame.freeze()));
    if new_block {
        send(
            out,
            m::SetNewPrevHash {
                channel_id: c.id,
                job_id: job.id as u32,
                prev_hash: *t.prev_hash(),
                min_ntime: job.ntime,
                nbits: t.bits(),
            },
        );
        c.prev_hash = Some(*t.prev_hash());
    }
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
