//! One simulated ASIC over Stratum V2: the Noise handshake (the pool's
//! certificate checked against its authority key), SetupConnection, one
//! channel, and the same real hashing as the V1 miner with the version
//! rolled in BIP 320's bits. On an extended channel it rolls its own
//! extranonce after the channel's prefix and builds the coinbase; on a
//! standard channel (header-only, like most small devices) it asks for
//! standard jobs and hashes the header over the merkle root each job
//! brings.
//!
//! Shares go out as SubmitSharesExtended with a sequence number each. The
//! server answers accepted shares in batches (one SubmitShares.Success
//! covering every share up to a sequence number) and rejected ones singly,
//! before the batch that follows them; the miner takes each batch apart
//! into the same counters and latency histogram as V1, and ends with a
//! protocol error if the server's count disagrees with the shares the
//! batch covers. Errors are counted by the server's string and under the
//! V1 code of the same meaning, so reports compare across protocols.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use sluice_pow::header::HeaderMidstate;
use sluice_pow::{JobTemplate, ShareChecker, Submission, Target};
use sluice_sv2::Message;
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::codec::{self, NoiseCodec};
use sluice_sv2::frame::DEFAULT_MAX_PAYLOAD;
use sluice_sv2::message as m;
use sluice_sv2::noise::AuthorityPublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::miner::{
    BadKind, DRAIN_FOR, JobArrivals, MinerConfig, MinerError, MinerStats, connect, record,
};
use crate::pace::{BadPicker, Pacer};

/// BIP 320's bits, which V2 miners roll whenever a job allows it.
const VERSION_MASK: u32 = 0x1fff_e000;

/// Extranonce bytes the miner asks to roll (it is given at least this).
const MIN_EXTRANONCE: u16 = 4;

/// How a V2 miner reaches its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Config {
    /// The authority key the server's certificate must be signed by.
    pub authority: AuthorityPublicKey,
    /// A standard (header-only) channel instead of an extended one.
    pub standard: bool,
}

/// The V1 code of the same meaning as a V2 error string, so V1 and V2
/// runs report rejects alike (20 other, 21 stale or unknown job,
/// 22 duplicate, 23 low difficulty, 24 unauthorized, 25 no such channel).
pub fn v1_code_of(error: &str) -> u8 {
    match error {
        "stale-share" | "invalid-job-id" => 21,
        "duplicate-share" => 22,
        "difficulty-too-low" => 23,
        "unknown-user" => 24,
        "invalid-channel-id" => 25,
        _ => 20,
    }
}

/// The channel as the server opened it.
struct Channel {
    id: u32,
    prefix: Vec<u8>,
    extranonce_size: usize,
    target: Target,
}

impl Channel {
    /// From the server's answer (noting the prefix in the stats, as the
    /// V1 miner does its extranonce1).
    fn opened(
        stats: &MinerStats,
        id: u32,
        prefix: &[u8],
        extranonce_size: u16,
        target: &[u8; 32],
    ) -> Self {
        let v = prefix
            .iter()
            .take(8)
            .fold(0u64, |a, &b| (a << 8) | u64::from(b));
        stats.extranonce1.store(v, Ordering::Relaxed);
        Channel {
            id,
            prefix: prefix.to_vec(),
            extranonce_size: usize::from(extranonce_size),
            target: Target::from_le_bytes(target),
        }
    }
}

/// What the miner hashes on.
struct Work {
    job_id: u32,
    hasher: Hasher,
    version: u32,
    rolling: bool,
    ntime: u32,
    difficulty: f64,
}

/// How a share is hashed on each kind of channel.
enum Hasher {
    /// The coinbase with the miner's extranonce, then the header.
    Extended(Box<ShareChecker>),
    /// The header alone, over the job's merkle root (the midstate of the
    /// version in use kept).
    Standard {
        prev_hash: [u8; 32],
        merkle_root: [u8; 32],
        nbits: u32,
        target: Target,
        midstate: Option<(u32, HeaderMidstate)>,
    },
}

impl Hasher {
    fn meets(&mut self, extranonce: &[u8], ntime: u32, nonce: u32, version: u32) -> bool {
        match self {
            Hasher::Extended(c) => {
                let s = Submission {
                    extranonce2: extranonce,
                    time: ntime,
                    nonce,
                    version,
                };
                matches!(c.check(&s), Ok(r) if r.meets_share_target)
            }
            Hasher::Standard {
                prev_hash,
                merkle_root,
                nbits,
                target,
                midstate,
            } => {
                let mid = match midstate {
                    Some((v, m)) if *v == version => *m,
                    _ => {
                        let m = HeaderMidstate::from_parts(version, prev_hash, merkle_root);
                        *midstate = Some((version, m));
                        m
                    }
                };
                target.is_met_by(&mid.hash(ntime, *nbits, nonce))
            }
        }
    }
}

/// A job of either kind.
enum JobMsg {
    Extended(m::NewExtendedMiningJob),
    Standard(m::NewMiningJob),
}

impl JobMsg {
    fn job_id(&self) -> u32 {
        match self {
            JobMsg::Extended(j) => j.job_id,
            JobMsg::Standard(j) => j.job_id,
        }
    }
}

/// Jobs as they arrive: future ones wait for the SetNewPrevHash naming
/// them, the active one is hashed on the prev hash in force.
#[derive(Default)]
struct Jobs {
    future: Vec<JobMsg>,
    active: Option<JobMsg>,
    prev: Option<m::SetNewPrevHash>,
}

impl Jobs {
    /// Futures kept at most (a server sends one per template).
    const MAX_FUTURE: usize = 8;

    /// A job from the server: kept for its SetNewPrevHash if `future`,
    /// else current at once. True when the work changed.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        job: JobMsg,
        future: bool,
        stats: &MinerStats,
        arrivals: Option<&JobArrivals>,
        now: Instant,
        connect_at: Instant,
        got_job: &mut bool,
    ) -> bool {
        if future {
            if self.future.len() >= Self::MAX_FUTURE {
                self.future.remove(0);
            }
            self.future.push(job);
            return false;
        }
        note_job(stats, arrivals, job.job_id(), now, connect_at, got_job);
        self.active = Some(job);
        true
    }

    fn work(&self, ch: &Channel) -> Result<Option<Work>, MinerError> {
        let (Some(job), Some(prev)) = (&self.active, &self.prev) else {
            return Ok(None);
        };
        let protocol = |e: &dyn std::fmt::Display| MinerError::Protocol(e.to_string());
        let (hasher, version, rolling, min_ntime) = match job {
            JobMsg::Extended(job) => {
                let template = JobTemplate::new(
                    prev.prev_hash,
                    job.coinbase_tx_prefix.to_vec(),
                    job.coinbase_tx_suffix.to_vec(),
                    job.merkle_path.to_vec(),
                    prev.nbits,
                )
                .map_err(|e| protocol(&e))?;
                let checker = ShareChecker::new(
                    Arc::new(template),
                    &ch.prefix,
                    ch.extranonce_size,
                    ch.target,
                )
                .map_err(|e| protocol(&e))?;
                (
                    Hasher::Extended(Box::new(checker)),
                    job.version,
                    job.version_rolling_allowed,
                    job.min_ntime,
                )
            }
            // Standard channels roll the version when the connection
            // allows it (it asked for rolling at setup).
            JobMsg::Standard(job) => (
                Hasher::Standard {
                    prev_hash: prev.prev_hash,
                    merkle_root: job.merkle_root,
                    nbits: prev.nbits,
                    target: ch.target,
                    midstate: None,
                },
                job.version,
                true,
                job.min_ntime,
            ),
        };
        Ok(Some(Work {
            job_id: job.job_id(),
            hasher,
            version,
            rolling,
            ntime: min_ntime.unwrap_or(prev.min_ntime),
            difficulty: ch.target.difficulty(),
        }))
    }
}

/// Runs one V2 miner until cancelled (then drains) or the connection ends.
pub(crate) async fn mine(
    cfg: MinerConfig,
    v2: V2Config,
    stats: Arc<MinerStats>,
    arrivals: Option<JobArrivals>,
    cancel: CancellationToken,
) -> Result<(), MinerError> {
    let connect_at = Instant::now();
    let protocol = |e: &dyn std::fmt::Display| MinerError::Protocol(e.to_string());
    let mut stream = tokio::select! {
        s = connect(&cfg) => s?,
        _ = cancel.cancelled() => return Ok(()),
    };
    let _ = stream.set_nodelay(true);
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let mut codec: NoiseCodec = tokio::select! {
        c = codec::connect(&mut stream, Some(v2.authority), now_unix, DEFAULT_MAX_PAYLOAD) => c.map_err(|e| protocol(&e))?,
        _ = cancel.cancelled() => return Ok(()),
    };
    let (mut rd, mut wr) = stream.into_split();
    let peer_port = cfg
        .addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    let mut out = BytesMut::new();
    // In share-rate mode the hash rate follows the difficulty, so there is
    // no rate to state: the server's start applies.
    let nominal_hash_rate = if cfg.share_rate.is_some() {
        0.0
    } else {
        cfg.hashes_per_sec as f32
    };
    let hello: [Message; 2] = [
        m::SetupConnection {
            protocol: m::PROTOCOL_MINING,
            min_version: 2,
            max_version: 2,
            flags: m::setup_flags::REQUIRES_VERSION_ROLLING
                | if v2.standard {
                    m::setup_flags::REQUIRES_STANDARD_JOBS
                } else {
                    0
                },
            endpoint_host: Str0255::truncating(cfg.addr.rsplit_once(':').map_or("", |(h, _)| h)),
            endpoint_port: peer_port,
            vendor: Str0255::truncating("sluice-loadgen"),
            hardware_version: Str0255::truncating(""),
            firmware: Str0255::truncating(&cfg.user_agent),
            device_id: Str0255::truncating(""),
        }
        .into(),
        if v2.standard {
            m::OpenStandardMiningChannel {
                request_id: 1,
                user_identity: Str0255::truncating(&cfg.worker),
                nominal_hash_rate,
                max_target: [0xff; 32],
            }
            .into()
        } else {
            m::OpenExtendedMiningChannel {
                request_id: 1,
                user_identity: Str0255::truncating(&cfg.worker),
                nominal_hash_rate,
                max_target: [0xff; 32],
                min_extranonce_size: MIN_EXTRANONCE,
            }
            .into()
        },
    ];
    for msg in &hello {
        codec.encode(msg, &mut out).map_err(|e| protocol(&e))?;
    }
    wr.write_all(&out).await?;
    out.clear();

    let mut rbuf = BytesMut::with_capacity(8192);
    let mut channel: Option<Channel> = None;
    let mut jobs = Jobs::default();
    let mut work: Option<Work> = None;
    // The job a new prev hash replaced: shares on it are stale.
    let mut superseded: Option<u32> = None;
    let mut got_job = false;
    let mut seq: u32 = 0;
    // Sequence number → when sent and at what difficulty, until answered.
    let mut pending: BTreeMap<u32, (Instant, f64)> = BTreeMap::new();
    let mut forgot = false;
    // Independent hardware starts anywhere in its extranonce space.
    let mut en_counter: u64 = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let mut nonce: u32 = 0;
    let mut roll: u32 = 0;
    let mut bad = BadPicker::new(&cfg);
    let mut pace = Pacer::new(&cfg);
    let mut draining: Option<Instant> = None;

    loop {
        if draining.is_some_and(|until| pending.is_empty() || Instant::now() >= until) {
            return Ok(());
        }
        tokio::select! {
            r = rd.read_buf(&mut rbuf) => {
                if r? == 0 {
                    return if draining.is_some() { Ok(()) } else { Err(MinerError::Closed) };
                }
                let now = Instant::now();
                while let Some(frame) = codec.decode(&mut rbuf).map_err(|e| protocol(&e))? {
                    let msg = Message::decode(&frame).map_err(|e| protocol(&e))?;
                    // Whether the work to hash on changed with this message.
                    let mut rebuild = false;
                    match msg {
                        Message::SetupConnectionSuccess(_) => {}
                        Message::SetupConnectionError(e) => {
                            return Err(MinerError::Protocol(format!("setup refused: {}", e.error_code)));
                        }
                        Message::OpenExtendedMiningChannelSuccess(ok) => {
                            channel = Some(Channel::opened(&stats, ok.channel_id, &ok.extranonce_prefix, ok.extranonce_size, &ok.target));
                            rebuild = true;
                        }
                        Message::OpenStandardMiningChannelSuccess(ok) => {
                            // The whole extranonce is the channel's.
                            channel = Some(Channel::opened(&stats, ok.channel_id, &ok.extranonce_prefix, 0, &ok.target));
                            rebuild = true;
                        }
                        Message::OpenMiningChannelError(e) => {
                            return Err(MinerError::Protocol(format!("channel refused: {}", e.error_code)));
                        }
                        Message::NewExtendedMiningJob(j) => {
                            let future = j.min_ntime.is_none();
                            rebuild |= jobs.take(JobMsg::Extended(j), future, &stats, arrivals.as_ref(), now, connect_at, &mut got_job);
                        }
                        Message::NewMiningJob(j) => {
                            let future = j.min_ntime.is_none();
                            rebuild |= jobs.take(JobMsg::Standard(j), future, &stats, arrivals.as_ref(), now, connect_at, &mut got_job);
                        }
                        Message::SetNewPrevHash(p) => {
                            if let Some(i) = jobs.future.iter().position(|f| f.job_id() == p.job_id) {
                                jobs.active = Some(jobs.future.swap_remove(i));
                                jobs.future.clear();
                            } else if jobs.active.as_ref().is_some_and(|j| j.job_id() != p.job_id) {
                                // A prev hash for a job never sent: nothing
                                // to hash until one comes.
                                jobs.active = None;
                            }
                            superseded = work.as_ref().map(|w| w.job_id).filter(|&id| id != p.job_id);
                            note_job(&stats, arrivals.as_ref(), p.job_id, now, connect_at, &mut got_job);
                            stats.clean_jobs.fetch_add(1, Ordering::Relaxed);
                            jobs.prev = Some(p);
                            rebuild = true;
                        }
                        Message::SetTarget(t) => {
                            if let Some(ch) = channel.as_mut().filter(|c| c.id == t.channel_id) {
                                ch.target = Target::from_le_bytes(&t.maximum_target);
                                rebuild = true;
                            }
                        }
                        Message::SubmitSharesSuccess(ok) => {
                            let answered: Vec<(u32, (Instant, f64))> = pending
                                .range(..=ok.last_sequence_number)
                                .map(|(k, v)| (*k, *v))
                                .collect();
                            if !forgot && answered.len() != ok.new_submits_accepted_count as usize {
                                return Err(MinerError::Protocol(format!(
                                    "SubmitShares.Success counts {} shares up to {}, but {} were waiting",
                                    ok.new_submits_accepted_count, ok.last_sequence_number, answered.len()
                                )));
                            }
                            for (k, (t, d)) in answered {
                                pending.remove(&k);
                                record(&stats.latency_us, now.duration_since(t));
                                stats.add_accepted(d);
                            }
                        }
                        Message::SubmitSharesError(e) => {
                            let share = pending.remove(&e.sequence_number);
                            if let Some((t, _)) = share {
                                record(&stats.latency_us, now.duration_since(t));
                            }
                            let text = e.error_code.as_str().unwrap_or("(not utf-8)").to_owned();
                            let code = v1_code_of(&text);
                            stats.add_rejected(code, share.map_or(0.0, |(_, d)| d));
                            if let Ok(mut by) = stats.rejected_v2.lock() {
                                *by.entry(text).or_insert(0) += 1;
                            }
                        }
                        Message::CloseChannel(_) | Message::Reconnect(_) => return Err(MinerError::Closed),
                        _ => {}
                    }
                    if rebuild && let Some(ch) = &channel {
                        work = jobs.work(ch)?;
                        if let Some(w) = &work {
                            stats.difficulty_x2_32.store((w.difficulty * 4_294_967_296.0) as u64, Ordering::Relaxed);
                            stats.ready.store(1, Ordering::Relaxed);
                        }
                        nonce = 0;
                    }
                }
            }
            _ = pace.tick.tick() => {
                if draining.is_some() {
                    continue;
                }
                let (Some(w), Some(ch)) = (work.as_mut(), channel.as_ref()) else { continue };
                let now = Instant::now();
                let batch = pace.batch(&cfg, w.difficulty);
                if batch == 0 {
                    continue;
                }
                let mut en = vec![0u8; ch.extranonce_size];
                let k = en.len().min(8);
                let n = en.len();
                en[n - k..].copy_from_slice(&en_counter.to_be_bytes()[8 - k..]);
                let standard = v2.standard;
                let version = if w.rolling {
                    w.version & !VERSION_MASK | ((roll << 13) & VERSION_MASK)
                } else {
                    w.version
                };
                let (ntime, difficulty) = (w.ntime, w.difficulty);
                let mut submit = |job_id: u32, nonce: u32, out: &mut BytesMut| -> Result<(), MinerError> {
                    let share: Message = if standard {
                        m::SubmitSharesStandard {
                            channel_id: ch.id,
                            sequence_number: seq,
                            job_id,
                            nonce,
                            ntime,
                            version,
                        }
                        .into()
                    } else {
                        m::SubmitSharesExtended {
                            channel_id: ch.id,
                            sequence_number: seq,
                            job_id,
                            nonce,
                            ntime,
                            version,
                            extranonce: B032::new(en.clone()).map_err(|e| protocol(&e))?,
                        }
                        .into()
                    };
                    codec.encode(&share, out).map_err(|e| protocol(&e))?;
                    pending.insert(seq, (now, difficulty));
                    seq = seq.wrapping_add(1);
                    stats.submitted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                };
                for _ in 0..batch {
                    if w.hasher.meets(&en, ntime, nonce, version) {
                        match bad.pick(&stats) {
                            None => submit(w.job_id, nonce, &mut out)?,
                            Some(BadKind::Stale) => {
                                submit(superseded.unwrap_or(0xdead_beef), nonce, &mut out)?;
                            }
                            Some(BadKind::Duplicate) => {
                                submit(w.job_id, nonce, &mut out)?;
                                submit(w.job_id, nonce, &mut out)?;
                            }
                            Some(BadKind::LowDifficulty) => {
                                // The next nonce that misses the target.
                                let mut low = nonce.wrapping_add(1);
                                while w.hasher.meets(&en, ntime, low, version) {
                                    low = low.wrapping_add(1);
                                }
                                submit(w.job_id, low, &mut out)?;
                            }
                        }
                    }
                    nonce = nonce.wrapping_add(1);
                    if nonce == 0 {
                        en_counter += 1;
                    }
                }
                stats.hashes.fetch_add(batch, Ordering::Relaxed);
                // Like an ASIC: a new version roll per batch, a new
                // extranonce now and then.
                roll = roll.wrapping_add(1);
                if roll.is_multiple_of(64) {
                    en_counter += 1;
                }
                // Shares never answered must not pile up (then batches can
                // no longer be checked against what waits).
                if pending.len() > 100_000 {
                    pending.clear();
                    forgot = true;
                }
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                    out.clear();
                }
            }
            _ = cancel.cancelled(), if draining.is_none() => {
                draining = Some(Instant::now() + DRAIN_FOR);
            }
        }
    }
}

/// A job the miner can start on: counts it, and records first-job and
/// fan-out lag like the V1 miner.
fn note_job(
    stats: &MinerStats,
    arrivals: Option<&JobArrivals>,
    job_id: u32,
    now: Instant,
    connect_at: Instant,
    got_job: &mut bool,
) {
    stats.jobs.fetch_add(1, Ordering::Relaxed);
    let first_job = !std::mem::replace(got_job, true);
    if first_job {
        record(&stats.first_job_us, now.duration_since(connect_at));
    }
    if let Some(a) = arrivals {
        let first = *a.v2.entry(job_id).or_insert(now);
        if !first_job {
            record(&stats.fanout_us, now.saturating_duration_since(first));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_errors_count_under_the_v1_code_of_the_same_meaning() {
        assert_eq!(v1_code_of("stale-share"), 21);
        assert_eq!(v1_code_of("invalid-job-id"), 21);
        assert_eq!(v1_code_of("duplicate-share"), 22);
        assert_eq!(v1_code_of("difficulty-too-low"), 23);
        assert_eq!(v1_code_of("unknown-user"), 24);
        assert_eq!(v1_code_of("invalid-channel-id"), 25);
        assert_eq!(v1_code_of("pool-busy"), 20);
    }
}
