//! One simulated ASIC over Stratum V1: subscribe, configure version
//! rolling, authorize, and real hashing at the difficulty it is given,
//! rolling version bits and extranonce2 as hardware does.
//!
//! The hash rate is either fixed (`hashes_per_sec`) or set from a wanted
//! share rate (`share_rate` × difficulty × 2³²), so thousands of miners or
//! tens of thousands of shares per second fit on a small machine. The
//! hashes actually computed are counted: ground truth for hashrate
//! estimates. A fraction of shares can be deliberately bad (stale,
//! duplicate, low difficulty) to exercise reject paths.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pace::{BadPicker, Pacer};
use bytes::BytesMut;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sluice_pow::{JobTemplate, ShareChecker, Submission, Target};
use sluice_sv1::message::{self as msg, encode_request};
use sluice_sv1::{LineCodec, Notify, ServerMessage, parse_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// How a simulated miner behaves.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// `host:port` of the Stratum server.
    pub addr: String,
    /// Worker name (`account.worker`).
    pub worker: String,
    /// Password (`x`, or options such as `d=0.01`).
    pub password: String,
    /// Ask for version rolling (BIP 310) with BIP 320's mask.
    pub version_rolling: bool,
    /// Hashes per second to compute; with `share_rate`, the ceiling.
    pub hashes_per_sec: f64,
    /// Wanted shares per second: the hash rate follows the difficulty.
    pub share_rate: Option<f64>,
    /// Fraction of found shares sent deliberately bad (0–1).
    pub bad_fraction: f64,
    /// Seed for the bad-share choice.
    pub seed: u64,
    /// Sent in `mining.subscribe`.
    pub user_agent: String,
    /// Local address to connect from (a farm behind many addresses; on
    /// loopback any 127.x.y.z works). `None`: the system's choice.
    pub bind: Option<std::net::IpAddr>,
    /// `Some`: speak Stratum V2 instead of V1.
    pub v2: Option<crate::miner_v2::V2Config>,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3333".into(),
            worker: "loadgen.1".into(),
            password: "x".into(),
            version_rolling: true,
            hashes_per_sec: 100_000.0,
            share_rate: None,
            bad_fraction: 0.0,
            seed: 1,
            user_agent: format!("sluice-loadgen/{}", env!("CARGO_PKG_VERSION")),
            bind: None,
            v2: None,
        }
    }
}

/// Kinds of deliberately bad shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// A share on a job a clean job has superseded (expects 21); before
    /// the first clean job, a job id the server never sent (also 21).
    Stale = 0,
    /// A valid share sent twice (expects 22 for the second).
    Duplicate = 1,
    /// A hash above the target (expects 23).
    LowDifficulty = 2,
}

/// Counters one miner keeps (shared, so a caller can watch them live).
#[derive(Debug)]
pub struct MinerStats {
    /// Hashes computed.
    pub hashes: AtomicU64,
    /// Shares submitted (good and bad).
    pub submitted: AtomicU64,
    /// Shares answered `true`.
    pub accepted: AtomicU64,
    /// Shares answered with an error, by V1 code 20..=25 (index code−20);
    /// V2 errors are counted under the V1 code of the same meaning.
    pub rejected: [AtomicU64; 6],
    /// Σ difficulty of the rejected shares by the same codes, as `f64`
    /// bits (read with [`MinerStats::rejected_work`]).
    pub rejected_work_bits: [AtomicU64; 6],
    /// V2 errors by the error string the server sent.
    pub rejected_v2: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Bad shares sent on purpose, by [`BadKind`].
    pub bad_sent: [AtomicU64; 3],
    /// Jobs received.
    pub jobs: AtomicU64,
    /// Jobs received with clean_jobs = true.
    pub clean_jobs: AtomicU64,
    /// Σ difficulty of shares answered `true`, as `f64` bits (only the
    /// miner's own task writes it; read with [`MinerStats::accepted_work`]).
    pub accepted_work_bits: AtomicU64,
    /// The extranonce1 the server gave (first 8 bytes, big-endian).
    pub extranonce1: AtomicU64,
    /// Set once the first job arrived.
    pub ready: AtomicU64,
    /// Set when the miner has stopped (cancelled and drained, or its
    /// connection ended): its counts no longer change.
    pub finished: AtomicU64,
    /// Current difficulty ×2^32 (for display).
    pub difficulty_x2_32: AtomicU64,
    /// Submit → response, microseconds (shared with other miners of a
    /// farm: see [`Histograms`]).
    pub latency_us: Arc<Mutex<Histogram<u64>>>,
    /// Connect → first job, microseconds.
    pub first_job_us: Arc<Mutex<Histogram<u64>>>,
    /// Job arrival after the first miner of the farm got the same job,
    /// microseconds.
    pub fanout_us: Arc<Mutex<Histogram<u64>>>,
}

/// One set of latency histograms. An HDR histogram over 1 µs – 1 h at 3
/// significant digits is ~190 KB, so a farm's miners share a few sets
/// (three per miner took 8 GB for 19,000 miners).
#[derive(Clone, Debug)]
pub struct Histograms {
    /// Submit → response.
    pub latency_us: Arc<Mutex<Histogram<u64>>>,
    /// Connect → first job.
    pub first_job_us: Arc<Mutex<Histogram<u64>>>,
    /// Fan-out lag.
    pub fanout_us: Arc<Mutex<Histogram<u64>>>,
}

impl Default for Histograms {
    fn default() -> Self {
        Self {
            latency_us: Arc::new(histogram()),
            first_job_us: Arc::new(histogram()),
            fanout_us: Arc::new(histogram()),
        }
    }
}

/// 1 µs to 1 hour at 3 significant digits.
pub(crate) fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds"))
}

impl Default for MinerStats {
    fn default() -> Self {
        Self {
            hashes: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: Default::default(),
            rejected_work_bits: Default::default(),
            rejected_v2: Mutex::default(),
            bad_sent: Default::default(),
            jobs: AtomicU64::new(0),
            clean_jobs: AtomicU64::new(0),
            accepted_work_bits: AtomicU64::new(0),
            extranonce1: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            difficulty_x2_32: AtomicU64::new(0),
            latency_us: Arc::new(histogram()),
            first_job_us: Arc::new(histogram()),
            fanout_us: Arc::new(histogram()),
        }
    }
}

impl MinerStats {
    /// Counters of its own, latency histograms shared with other miners.
    pub fn sharing(h: &Histograms) -> Self {
        Self {
            latency_us: h.latency_us.clone(),
            first_job_us: h.first_job_us.clone(),
            fanout_us: h.fanout_us.clone(),
            ..Self::default()
        }
    }

    /// Rejects with one code (20–25).
    pub fn rejected(&self, code: u8) -> u64 {
        self.rejected
            .get(usize::from(code.saturating_sub(20)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Σ difficulty of the shares rejected with one code (20–25).
    pub fn rejected_work(&self, code: u8) -> f64 {
        self.rejected_work_bits
            .get(usize::from(code.saturating_sub(20)))
            .map_or(0.0, |c| f64::from_bits(c.load(Ordering::Relaxed)))
    }

    /// One share rejected with `code` (20–25) at difficulty `d`.
    pub(crate) fn add_rejected(&self, code: u8, d: f64) {
        let i = usize::from(code.clamp(20, 25) - 20);
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.rejected_work_bits[i], d);
    }

    /// Σ difficulty of accepted shares.
    pub fn accepted_work(&self) -> f64 {
        f64::from_bits(self.accepted_work_bits.load(Ordering::Relaxed))
    }

    /// One share answered `true` at difficulty `d`.
    pub(crate) fn add_accepted(&self, d: f64) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.accepted_work_bits, d);
    }

    /// All rejects.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Adds to an `f64` kept as bits. A compare-and-swap: a miner dropped by
/// the churn scenario drains while its replacement writes the same stats.
fn add_f64(a: &AtomicU64, d: f64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
        Some((f64::from_bits(b) + d).to_bits())
    });
}

pub(crate) fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    if let Ok(mut h) = h.lock() {
        let _ = h.record((d.as_micros() as u64).clamp(1, 3_600_000_000));
    }
}

/// Why a miner stopped.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// Could not connect or the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server sent something unusable.
    #[error("protocol: {0}")]
    Protocol(String),
}

struct Work {
    job_id: String,
    checker: ShareChecker,
    version: u32,
    ntime: u32,
    difficulty: f64,
}

/// Per job across a farm: when the first miner got it (fan-out lag), and
/// for V1 the notify parsed once (thousands of miners need not each parse
/// the same line).
#[derive(Debug, Default)]
pub struct Arrivals {
    /// V1, by the whole notify line: first receipt and the parsed notify.
    /// Not by job id: a farm spread over several servers behind one
    /// address (instances sharing a port) gets the same id from each for
    /// different work (each instance's own coinbase), and a miner handed
    /// another server's job has every share refused.
    pub(crate) v1: DashMap<Box<[u8]>, (Instant, Arc<Notify>)>,
    /// V2, by job id: when the first miner could start on it.
    pub(crate) v2: DashMap<u32, Instant>,
}

/// Shared among a farm's miners.
pub type JobArrivals = Arc<Arrivals>;

/// The job id of a `mining.notify` line, cheaply: the first string in
/// `params`. `None` for anything else (which is then parsed in full).
fn notify_job_id(line: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains("\"mining.notify\"") {
        return None;
    }
    let rest = &text[text.find("\"params\"")? + 8..];
    let rest = &rest[rest.find('[')? + 1..];
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

pub(crate) async fn connect(cfg: &MinerConfig) -> std::io::Result<TcpStream> {
    let Some(ip) = cfg.bind else {
        return TcpStream::connect(&cfg.addr).await;
    };
    let mut last = None;
    for addr in tokio::net::lookup_host(&cfg.addr).await? {
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // The port is picked at connect time, by the whole 4-tuple. A bare
        // bind(ip, 0) reserves a port for any destination and searches for
        // one: past ~14,000 of a generator's miners (half the ephemeral
        // range, the half bind prefers) every new bind scanned the range in
        // the kernel, and the four generators of the instances bench spent
        // a minute at 95 % system CPU connecting. A kernel without the
        // option (before 4.2) refuses it, and bind is left as it was.
        #[cfg(target_os = "linux")]
        let _ = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        sock.bind(std::net::SocketAddr::new(ip, 0))?;
        match sock.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

/// Runs one miner until cancelled or the connection ends.
pub async fn run(
    cfg: MinerConfig,
    stats: Arc<MinerStats>,
    cancel: CancellationToken,
) -> Result<(), MinerError> {
    run_in_farm(cfg, stats, None, cancel).await
}

/// Like [`run`], recording job fan-out lag against `arrivals`.
pub async fn run_in_farm(
    cfg: MinerConfig,
    stats: Arc<MinerStats>,
    arrivals: Option<JobArrivals>,
    cancel: CancellationToken,
) -> Result<(), MinerError> {
    let r = if let Some(v2) = cfg.v2.clone() {
        crate::miner_v2::mine(cfg, v2, stats.clone(), arrivals, cancel).await
    } else {
        mine(cfg, stats.clone(), arrivals, cancel).await
    };
    stats.finished.store(1, Ordering::Release);
    r
}

async fn mine(
    cfg: MinerConfig,
    stats: Arc<MinerStats>,
    arrivals: Option<JobArrivals>,
    cancel: CancellationToken,
) -> Result<(), MinerError> {
    let connect_at = Instant::now();
    let stream = tokio::select! {
        s = connect(&cfg) => s?,
        _ = cancel.cancelled() => return Ok(()),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut next_id = 1u64;
    let mut send = Vec::new();
    let subscribe_id = next_id;
    send.extend_from_slice(&encode_request(
        next_id,
        "mining.subscribe",
        json!([cfg.user_agent]),
    ));
    next_id += 1;
    if cfg.version_rolling {
        send.extend_from_slice(&encode_request(
            next_id,
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]),
        ));
        next_id += 1;
    }
    send.extend_from_slice(&encode_request(
        next_id,
        "mining.authorize",
        json!([cfg.worker, cfg.password]),
    ));
    next_id += 1;
    wr.write_all(&send).await?;
    // Ids from here on are shares.
    let first_share_id = next_id;

    let mut codec = LineCodec::new(sluice_sv1::DEFAULT_MAX_UPSTREAM_LINE);
    let mut buf = BytesMut::with_capacity(8192);
    let mut extranonce1: Vec<u8> = Vec::new();
    let mut en2_size = 0usize;
    let mut mask = 0u32;
    let mut difficulty = 1.0f64;
    let mut work: Option<Work> = None;
    // Independent hardware starts anywhere in its extranonce2 space: miners
    // behind a proxy that shares one extranonce1 among them (a naive one)
    // must not all submit the same shares.
    let mut en2_counter: u64 = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let mut nonce: u32 = 0;
    let mut roll: u32 = 0;
    let mut bad = BadPicker::new(&cfg);
    let mut got_job = false;
    // The last job before the latest clean job: shares on it are stale.
    let mut superseded: Option<String> = None;
    let mut sent_at: HashMap<u64, (Instant, f64)> = HashMap::new();
    let mut pace = Pacer::new(&cfg);
    // Once cancelled, a miner stops hashing and waits (bounded) for the
    // answers to what it already submitted, like hardware that finishes
    // its in-flight shares: its counts then match what the server booked.
    let mut draining: Option<Instant> = None;

    loop {
        if draining.is_some_and(|until| sent_at.is_empty() || Instant::now() >= until) {
            return Ok(());
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => {
                if r? == 0 {
                    if draining.is_some() {
                        return Ok(());
                    }
                    return Err(MinerError::Closed);
                }
                let now = Instant::now();
                while let Some(line) = codec.decode(&mut buf).map_err(|e| MinerError::Protocol(e.to_string()))? {
                    // A notify another miner of the farm already parsed.
                    let cached = arrivals.as_ref().and_then(|a| {
                        notify_job_id(&line)?;
                        a.v1.get(&line[..]).map(|e| (e.0, e.1.clone()))
                    });
                    // When the farm first got this job, if it had.
                    let first_seen = cached.as_ref().map(|c| c.0);
                    let m = match cached {
                        Some((_, n)) => ServerMessage::Notify((*n).clone()),
                        None => parse_server(&line).map_err(|e| MinerError::Protocol(e.to_string()))?,
                    };
                    match m {
                        ServerMessage::Response { id, result, error } => {
                            let id = id.as_u64().unwrap_or(0);
                            if id == subscribe_id {
                                let s = sluice_sv1::SubscribeResult::from_value(&result)
                                    .map_err(|e| MinerError::Protocol(e.to_string()))?;
                                extranonce1 = s.extranonce1;
                                en2_size = s.extranonce2_size;
                                let v = extranonce1.iter().take(8).fold(0u64, |a, &b| (a << 8) | u64::from(b));
                                stats.extranonce1.store(v, Ordering::Relaxed);
                            } else if let Some(mk) = result.get("version-rolling.mask").and_then(Value::as_str) {
                                mask = u32::from_str_radix(mk, 16).unwrap_or(0);
                            } else if id >= first_share_id {
                                let share = sent_at.remove(&id);
                                if let Some((t, _)) = share {
                                    record(&stats.latency_us, now.duration_since(t));
                                }
                                match error {
                                    None if result.as_bool() == Some(true) => {
                                        stats.add_accepted(share.map_or(0.0, |(_, d)| d));
                                    }
                                    Some(e) => {
                                        let code = e.code.clamp(20, 25) as u8;
                                        stats.add_rejected(code, share.map_or(0.0, |(_, d)| d));
                                    }
                                    None => {
                                        stats.add_rejected(20, share.map_or(0.0, |(_, d)| d));
                                    }
                                }
                            }
                        }
                        ServerMessage::SetDifficulty(d) => difficulty = d,
                        ServerMessage::SetVersionMask(m) => mask = m,
                        ServerMessage::SetExtranonce { extranonce1: e, extranonce2_size } => {
                            extranonce1 = e;
                            en2_size = extranonce2_size;
                        }
                        ServerMessage::Notify(n) => {
                            // First job of this connection (a miner that
                            // rejoins starts over).
                            let first_job = !got_job;
                            got_job = true;
                            stats.jobs.fetch_add(1, Ordering::Relaxed);
                            if first_job {
                                record(&stats.first_job_us, now.duration_since(connect_at));
                            }
                            // Fan-out lag: how long after the farm's first
                            // receipt of a job this miner got it. A miner's
                            // first job is excluded: it arrives on connect,
                            // so its lag is the ramp, not the fan-out.
                            if let Some(a) = &arrivals {
                                // Found when the line came in, or added now: the key
                                // is copied only by the first miner to get the job.
                                let first = first_seen.unwrap_or_else(|| a.v1.entry(Box::from(&line[..])).or_insert_with(|| (now, Arc::new(n.clone()))).0);
                                if !first_job {
                                    record(&stats.fanout_us, now.saturating_duration_since(first));
                                }
                            }
                            if n.clean {
                                stats.clean_jobs.fetch_add(1, Ordering::Relaxed);
                            }
                            if en2_size == 0 {
                                return Err(MinerError::Protocol("notify before subscribe result".into()));
                            }
                            if n.clean
                                && let Some(old) = &work
                            {
                                superseded = Some(old.job_id.clone());
                            }
                            work = Some(new_work(&n, &extranonce1, en2_size, difficulty)?);
                            stats.difficulty_x2_32.store((difficulty * 4_294_967_296.0) as u64, Ordering::Relaxed);
                            stats.ready.store(1, Ordering::Relaxed);
                            nonce = 0;
                        }
                        ServerMessage::Reconnect { .. } => return Err(MinerError::Closed),
                        ServerMessage::Request { id, .. } => {
                            wr.write_all(&msg::encode_result(id.as_bytes(), &json!("sluice-loadgen"))).await?;
                        }
                        ServerMessage::ShowMessage(_) | ServerMessage::Unknown(_) => {}
                    }
                }
            }
            _ = pace.tick.tick() => {
                if draining.is_some() {
                    continue;
                }
                let Some(w) = work.as_mut() else { continue };
                let now = Instant::now();
                let batch = pace.batch(&cfg, w.difficulty);
                if batch == 0 {
                    continue;
                }
                let mut out = Vec::new();
                let mut en2_buf = [0u8; 32];
                let n = en2_size.min(32);
                let k = n.min(8);
                en2_buf[n - k..n].copy_from_slice(&en2_counter.to_be_bytes()[8 - k..]);
                let en2 = &en2_buf[..n];
                let version = if mask != 0 {
                    w.version & !mask | ((roll << 13) & mask)
                } else {
                    w.version
                };
                let vbits = (mask != 0).then_some(version & mask);
                for _ in 0..batch {
                    let s = Submission { extranonce2: en2, time: w.ntime, nonce, version };
                    let hit = matches!(w.checker.check(&s), Ok(r) if r.meets_share_target);
                    if hit {
                        let spoil = bad.pick(&stats);
                        match spoil {
                            Some(BadKind::Stale) => {
                                let job = superseded.as_deref().unwrap_or("deadbeefdeadbeef");
                                out.extend_from_slice(&msg::encode_submit(next_id, &cfg.worker, job, en2, w.ntime, nonce, vbits));
                                sent_at.insert(next_id, (now, w.difficulty));
                                next_id += 1;
                            }
                            Some(BadKind::LowDifficulty) => {
                                // The next nonce that misses the target.
                                let mut low = nonce.wrapping_add(1);
                                while matches!(w.checker.check(&Submission { extranonce2: en2, time: w.ntime, nonce: low, version }), Ok(r) if r.meets_share_target) {
                                    low = low.wrapping_add(1);
                                }
                                out.extend_from_slice(&msg::encode_submit(next_id, &cfg.worker, &w.job_id, en2, w.ntime, low, vbits));
                                sent_at.insert(next_id, (now, w.difficulty));
                                next_id += 1;
                            }
                            Some(BadKind::Duplicate) | None => {
                                let copies = if spoil.is_some() { 2 } else { 1 };
                                for _ in 0..copies {
                                    out.extend_from_slice(&msg::encode_submit(next_id, &cfg.worker, &w.job_id, en2, w.ntime, nonce, vbits));
                                    sent_at.insert(next_id, (now, w.difficulty));
                                    next_id += 1;
                                }
                            }
                        }
                        stats.submitted.fetch_add(if spoil == Some(BadKind::Duplicate) { 2 } else { 1 }, Ordering::Relaxed);
                    }
                    nonce = nonce.wrapping_add(1);
                    if nonce == 0 {
                        en2_counter += 1;
                    }
                }
                stats.hashes.fetch_add(batch, Ordering::Relaxed);
                // Like an ASIC: a new version roll per batch, a new
                // extranonce2 now and then.
                roll = roll.wrapping_add(1);
                if roll.is_multiple_of(64) {
                    en2_counter += 1;
                }
                // Requests never answered must not pile up.
                if sent_at.len() > 100_000 {
                    sent_at.clear();
                }
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                }
            }
            _ = cancel.cancelled(), if draining.is_none() => {
                draining = Some(Instant::now() + DRAIN_FOR);
            }
        }
    }
}

/// Longest a cancelled miner waits for answers to its in-flight shares.
pub(crate) const DRAIN_FOR: Duration = Duration::from_secs(5);

fn new_work(n: &Notify, en1: &[u8], en2_size: usize, difficulty: f64) -> Result<Work, MinerError> {
    let template = JobTemplate::new(
        n.prev_hash,
        n.coinb1.clone(),
        n.coinb2.clone(),
        n.branches.clone(),
        n.nbits,
    )
    .map_err(|e| MinerError::Protocol(e.to_string()))?;
    let target =
        Target::from_difficulty(difficulty).map_err(|e| MinerError::Protocol(e.to_string()))?;
    let checker = ShareChecker::new(Arc::new(template), en1, en2_size, target)
        .map_err(|e| MinerError::Protocol(e.to_string()))?;
    Ok(Work {
        job_id: n.job_id.clone(),
        checker,
        version: n.version,
        ntime: n.ntime,
        difficulty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_job_id_is_read_without_parsing() {
        assert_eq!(
            notify_job_id(br#"{"id":null,"method":"mining.notify","params":["4d","00"]}"#),
            Some("4d")
        );
        assert_eq!(
            notify_job_id(br#"{"params": [ "j7", "00"], "id": null, "method": "mining.notify"}"#),
            Some("j7")
        );
        assert_eq!(
            notify_job_id(br#"{"id":1,"result":true,"error":null}"#),
            None
        );
        assert_eq!(
            notify_job_id(br#"{"method":"mining.notify","params":[5]}"#),
            None
        );
    }
}
