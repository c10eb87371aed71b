//! One simulated ASIC over Stratum V1: subscribe, configure version
//! rolling, authorize, and real hashing at the difficulty it is given,
//! rolling version bits and extranonce2 as hardware does.
//!
//! Hashing is capped at `hashes_per_sec` so thousands of miners fit on a
//! small machine; the count of hashes actually computed is kept as ground
//! truth for hashrate estimates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
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
    /// Hashes per second to compute (a cap, not a promise).
    pub hashes_per_sec: f64,
    /// Sent in `mining.subscribe`.
    pub user_agent: String,
}

/// Counters one miner keeps (shared, so a caller can watch them live).
#[derive(Debug, Default)]
pub struct MinerStats {
    /// Hashes computed.
    pub hashes: AtomicU64,
    /// Shares submitted.
    pub submitted: AtomicU64,
    /// Shares answered `true`.
    pub accepted: AtomicU64,
    /// Shares answered with an error, by V1 code 20..=25 (index code−20).
    pub rejected: [AtomicU64; 6],
    /// Jobs received.
    pub jobs: AtomicU64,
    /// Jobs received with clean_jobs = true.
    pub clean_jobs: AtomicU64,
    /// Σ difficulty of accepted shares ×65536.
    pub accepted_work_x65536: AtomicU64,
    /// The extranonce1 the server gave (as a big-endian number; for
    /// uniqueness checks).
    pub extranonce1: AtomicU64,
    /// Set once the first job arrived.
    pub ready: AtomicU64,
}

impl MinerStats {
    /// Rejects with one code (20–25).
    pub fn rejected(&self, code: u8) -> u64 {
        self.rejected
            .get(usize::from(code.saturating_sub(20)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// All rejects.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
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

/// Runs one miner until cancelled or the connection ends.
pub async fn run(
    cfg: MinerConfig,
    stats: Arc<MinerStats>,
    cancel: CancellationToken,
) -> Result<(), MinerError> {
    let stream = TcpStream::connect(&cfg.addr).await?;
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
    let mut en2_counter: u64 = 0;
    let mut nonce: u32 = 0;
    let mut roll: u32 = 0;
    let started = Instant::now();
    // Hash in short slices, then let I/O in. Slow miners wake less often:
    // thousands of them share a small machine.
    let slice = if cfg.hashes_per_sec < 50_000.0 {
        0.05
    } else {
        0.01
    };
    let batch = ((cfg.hashes_per_sec * slice).ceil() as u64).clamp(1, 1 << 20);
    let mut pace = tokio::time::interval(Duration::from_secs_f64(slice));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        tokio::select! {
            r = rd.read_buf(&mut buf) => {
                if r? == 0 {
                    return Err(MinerError::Closed);
                }
                while let Some(line) = codec.decode(&mut buf).map_err(|e| MinerError::Protocol(e.to_string()))? {
                    let m = parse_server(&line).map_err(|e| MinerError::Protocol(e.to_string()))?;
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
                                match error {
                                    None if result.as_bool() == Some(true) => {
                                        stats.accepted.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Some(e) => {
                                        let code = e.code.clamp(20, 25) as usize - 20;
                                        stats.rejected[code].fetch_add(1, Ordering::Relaxed);
                                    }
                                    None => {
                                        stats.rejected[0].fetch_add(1, Ordering::Relaxed);
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
                            stats.jobs.fetch_add(1, Ordering::Relaxed);
                            if n.clean {
                                stats.clean_jobs.fetch_add(1, Ordering::Relaxed);
                            }
                            if en2_size == 0 {
                                return Err(MinerError::Protocol("notify before subscribe result".into()));
                            }
                            work = Some(new_work(&n, &extranonce1, en2_size, difficulty)?);
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
            _ = pace.tick() => {
                let Some(w) = work.as_mut() else { continue };
                // Stay under the hash budget over the miner's lifetime.
                let budget = (started.elapsed().as_secs_f64() * cfg.hashes_per_sec) as u64;
                if stats.hashes.load(Ordering::Relaxed) >= budget {
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
                for _ in 0..batch {
                    let s = Submission { extranonce2: en2, time: w.ntime, nonce, version };
                    if let Ok(r) = w.checker.check(&s) && r.meets_share_target {
                        let vbits = (mask != 0).then_some(version & mask);
                        out.extend_from_slice(&msg::encode_submit(next_id, &cfg.worker, &w.job_id, en2, w.ntime, nonce, vbits));
                        next_id += 1;
                        stats.submitted.fetch_add(1, Ordering::Relaxed);
                        stats.accepted_work_x65536.fetch_add((w.difficulty * 65536.0) as u64, Ordering::Relaxed);
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
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                }
            }
            _ = cancel.cancelled() => return Ok(()),
        }
    }
}

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
