//! Share outcomes and engine-wide counters.
//!
//! Every reject is a small `Copy` enum with a V1 error code and a fixed
//! label. Counters are plain atomics indexed by reason: cheap on the share
//! path and readable by tests and, later, the metrics exporter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_sv1::ErrorCode;

/// Why a share or request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The job id is unknown to this session.
    JobNotFound,
    /// The job was superseded by a clean job (or its upstream is gone).
    Stale,
    /// The same share was already accepted.
    Duplicate,
    /// The hash does not meet the session's target.
    LowDifficulty,
    /// The worker name was never authorized on this connection.
    Unauthorized,
    /// Submit before subscribe.
    NotSubscribed,
    /// extranonce2 of the wrong length.
    BadExtranonce2Size,
    /// A hex field that is not hex or has the wrong length.
    BadHex,
    /// ntime outside the allowed window around the job's time.
    NtimeOutOfRange,
    /// Version bits set outside the negotiated mask.
    VersionOutsideMask,
    /// A line that is not valid JSON-RPC or has bad parameters.
    Malformed,
    /// A method this server does not implement.
    UnknownMethod,
    /// Too many worker names on this connection or from this address.
    TooManyWorkers,
    /// The pool's share queue is full (it is not keeping up): the share
    /// is refused rather than answered `true` and dropped.
    PoolBusy,
    /// No pool can take the share now (its upstream is down and no other
    /// is up): error 20, so the miner's own backup pools take over.
    NoUpstream,
}

impl Reject {
    /// Every reason, in label order (index = `as usize`).
    pub const ALL: [Reject; 15] = [
        Reject::JobNotFound,
        Reject::Stale,
        Reject::Duplicate,
        Reject::LowDifficulty,
        Reject::Unauthorized,
        Reject::NotSubscribed,
        Reject::BadExtranonce2Size,
        Reject::BadHex,
        Reject::NtimeOutOfRange,
        Reject::VersionOutsideMask,
        Reject::Malformed,
        Reject::UnknownMethod,
        Reject::TooManyWorkers,
        Reject::PoolBusy,
        Reject::NoUpstream,
    ];

    /// The V1 error code the miner receives.
    pub fn code(self) -> ErrorCode {
        match self {
            Reject::JobNotFound | Reject::Stale => ErrorCode::JobNotFound,
            Reject::Duplicate => ErrorCode::Duplicate,
            Reject::LowDifficulty => ErrorCode::LowDifficulty,
            Reject::Unauthorized | Reject::TooManyWorkers => ErrorCode::Unauthorized,
            Reject::NotSubscribed => ErrorCode::NotSubscribed,
            Reject::BadExtranonce2Size
            | Reject::BadHex
            | Reject::NtimeOutOfRange
            | Reject::VersionOutsideMask
            | Reject::Malformed
            | Reject::UnknownMethod
            | Reject::PoolBusy
            | Reject::NoUpstream => ErrorCode::Other,
        }
    }

    /// The message the miner receives.
    pub fn message(self) -> &'static str {
        match self {
            Reject::JobNotFound => "Job not found",
            Reject::Stale => "Stale share",
            Reject::Duplicate => "Duplicate share",
            Reject::LowDifficulty => "Low difficulty share",
            Reject::Unauthorized => "Unauthorized worker",
            Reject::NotSubscribed => "Not subscribed",
            Reject::BadExtranonce2Size => "Incorrect size of extranonce2",
            Reject::BadHex => "Malformed hex field",
            Reject::NtimeOutOfRange => "Ntime out of range",
            Reject::VersionOutsideMask => "Version bits outside negotiated mask",
            Reject::Malformed => "Malformed request",
            Reject::UnknownMethod => "Method not found",
            Reject::TooManyWorkers => "Too many worker names from this connection or address",
            Reject::PoolBusy => "Pool not keeping up",
            Reject::NoUpstream => "No pool available",
        }
    }

    /// The error code a Stratum V2 `SubmitShares.Error` (or
    /// `OpenMiningChannel.Error`) carries for this reason: the spec's
    /// strings where it has one, sluice's own, in the same style,
    /// where it has none (PROTOCOLS.md lists them).
    pub fn v2_error(self) -> &'static str {
        use sluice_sv2::message::error_code as e;
        match self {
            Reject::JobNotFound => e::INVALID_JOB_ID,
            Reject::Stale => e::STALE_SHARE,
            Reject::Duplicate => e::DUPLICATE_SHARE,
            Reject::LowDifficulty => e::DIFFICULTY_TOO_LOW,
            Reject::Unauthorized => e::UNKNOWN_USER,
            // V2 has no subscription: a share on a channel that is not
            // open is the nearest thing.
            Reject::NotSubscribed => e::INVALID_CHANNEL_ID,
            Reject::BadExtranonce2Size => e::BAD_EXTRANONCE_SIZE,
            Reject::VersionOutsideMask => e::INVALID_NON_ROLLABLE_VERSION_BIT,
            Reject::NtimeOutOfRange => "ntime-out-of-range",
            // Binary fields have no hex; a field that does not parse is a
            // malformed message either way.
            Reject::BadHex | Reject::Malformed => "malformed-message",
            Reject::UnknownMethod => "unsupported-message",
            Reject::TooManyWorkers => "too-many-channels",
            Reject::PoolBusy => "pool-busy",
            Reject::NoUpstream => "no-upstream",
        }
    }

    /// A fixed label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Reject::JobNotFound => "job_not_found",
            Reject::Stale => "stale",
            Reject::Duplicate => "duplicate",
            Reject::LowDifficulty => "low_difficulty",
            Reject::Unauthorized => "unauthorized",
            Reject::NotSubscribed => "not_subscribed",
            Reject::BadExtranonce2Size => "bad_extranonce2_size",
            Reject::BadHex => "bad_hex",
            Reject::NtimeOutOfRange => "ntime_out_of_range",
            Reject::VersionOutsideMask => "version_outside_mask",
            Reject::Malformed => "malformed",
            Reject::UnknownMethod => "unknown_method",
            Reject::TooManyWorkers => "too_many_workers",
            Reject::PoolBusy => "pool_busy",
            Reject::NoUpstream => "no_upstream",
        }
    }

    /// True for rejects of work the miner really did (it hashed a share
    /// that does not count); false for protocol errors. An unknown job id
    /// is a protocol error: a miner cannot have worked on a job it was
    /// never sent.
    pub fn is_work(self) -> bool {
        matches!(
            self,
            Reject::Stale
                | Reject::Duplicate
                | Reject::LowDifficulty
                | Reject::NtimeOutOfRange
                | Reject::VersionOutsideMask
                | Reject::PoolBusy
                | Reject::NoUpstream
        )
    }
}

/// Why a pool refused a share we forwarded, read from its error code and
/// text (pools word these freely; the raw text is logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolReject {
    /// Stale, or a job the pool no longer knows (code 21).
    Stale,
    /// Duplicate (code 22).
    Duplicate,
    /// Below the pool's target (code 23, ckpool's "Above target").
    LowDifficulty,
    /// The worker is not authorized (code 24, 25).
    Unauthorized,
    /// The connection went down before the pool answered.
    Unanswered,
    /// Could not be delivered (the upstream was down or its queue full).
    Undelivered,
    /// Anything else.
    Other,
}

impl PoolReject {
    /// Every reason (index = `as usize`).
    pub const ALL: [PoolReject; 7] = [
        PoolReject::Stale,
        PoolReject::Duplicate,
        PoolReject::LowDifficulty,
        PoolReject::Unauthorized,
        PoolReject::Unanswered,
        PoolReject::Undelivered,
        PoolReject::Other,
    ];

    /// A fixed label.
    pub fn label(self) -> &'static str {
        match self {
            PoolReject::Stale => "stale",
            PoolReject::Duplicate => "duplicate",
            PoolReject::LowDifficulty => "low_difficulty",
            PoolReject::Unauthorized => "unauthorized",
            PoolReject::Unanswered => "unanswered",
            PoolReject::Undelivered => "undelivered",
            PoolReject::Other => "other",
        }
    }

    /// A V2 pool's SubmitShares.Error code (the spec's strings).
    pub fn of_v2(code: &str) -> Self {
        match code {
            "stale-share" | "invalid-job-id" => PoolReject::Stale,
            "duplicate-share" => PoolReject::Duplicate,
            "difficulty-too-low" => PoolReject::LowDifficulty,
            "unknown-user" | "invalid-channel-id" => PoolReject::Unauthorized,
            _ => PoolReject::Other,
        }
    }

    /// Classifies a pool's answer: its V1 error code, else its text.
    pub fn classify(code: Option<i64>, text: &str) -> Self {
        match code {
            Some(21) => return PoolReject::Stale,
            Some(22) => return PoolReject::Duplicate,
            Some(23) => return PoolReject::LowDifficulty,
            Some(24 | 25) => return PoolReject::Unauthorized,
            _ => {}
        }
        let t = text.to_ascii_lowercase();
        if t.contains("stale") || t.contains("job not found") || t.contains("invalid job") {
            PoolReject::Stale
        } else if t.contains("duplicate") {
            PoolReject::Duplicate
        } else if t.contains("low difficulty")
            || t.contains("above target")
            || t.contains("high-hash")
        {
            PoolReject::LowDifficulty
        } else if t.contains("unauthori") || t.contains("not subscribed") {
            PoolReject::Unauthorized
        } else {
            PoolReject::Other
        }
    }
}

/// Why a connection was closed by us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disconnect {
    /// The peer closed it.
    PeerClosed,
    /// A line over the limit.
    LineTooLong,
    /// No subscribe/authorize within the handshake timeout.
    HandshakeTimeout,
    /// Nothing received for the idle timeout.
    IdleTimeout,
    /// The peer did not read what we sent in time.
    SlowReader,
    /// Too many bad requests in a row.
    RepeatOffender,
    /// No upstream could take the session, or none came back within the
    /// grace period (the miner's own backup pools take over).
    NoUpstream,
    /// Every extranonce prefix is taken.
    NoPrefix,
    /// Socket error.
    Io,
    /// The server is shutting down.
    Shutdown,
    /// The peer broke the protocol in a way that ends the connection (a
    /// V2 message that does not decode, or before SetupConnection).
    Protocol,
}

impl Disconnect {
    /// Every reason (index = `as usize`).
    pub const ALL: [Disconnect; 11] = [
        Disconnect::PeerClosed,
        Disconnect::LineTooLong,
        Disconnect::HandshakeTimeout,
        Disconnect::IdleTimeout,
        Disconnect::SlowReader,
        Disconnect::RepeatOffender,
        Disconnect::NoUpstream,
        Disconnect::NoPrefix,
        Disconnect::Io,
        Disconnect::Shutdown,
        Disconnect::Protocol,
    ];

    /// A fixed label.
    pub fn label(self) -> &'static str {
        match self {
            Disconnect::PeerClosed => "peer_closed",
            Disconnect::LineTooLong => "line_too_long",
            Disconnect::HandshakeTimeout => "handshake_timeout",
            Disconnect::IdleTimeout => "idle_timeout",
            Disconnect::SlowReader => "slow_reader",
            Disconnect::RepeatOffender => "repeat_offender",
            Disconnect::NoUpstream => "no_upstream",
            Disconnect::NoPrefix => "no_prefix",
            Disconnect::Io => "io",
            Disconnect::Protocol => "protocol_error",
            Disconnect::Shutdown => "shutdown",
        }
    }
}

/// An `f64` counter in an `AtomicU64` (its bits): work sums must not
/// truncate tiny fractional difficulties.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// Adds `v` (compare-and-swap loop; uncontended in practice).
    #[inline]
    pub fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Replaces the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Shares accepted locally.
    pub accepted: AtomicU64,
    /// Σ difficulty of accepted shares.
    pub accepted_work: AtomicF64,
    /// Rejects by [`Reject`] (index `as usize`).
    pub rejected: [AtomicU64; Reject::ALL.len()],
    /// Disconnects by [`Disconnect`].
    pub disconnects: [AtomicU64; Disconnect::ALL.len()],
    /// Connections refused at the global or per-IP limit.
    pub refused_connections: AtomicU64,
    /// Shares sent upstream.
    pub forwarded: AtomicU64,
    /// Upstream accepted.
    pub upstream_accepted: AtomicU64,
    /// Upstream rejected.
    pub upstream_rejected: AtomicU64,
    /// Block candidates found (shares meeting the network target).
    pub blocks_found: AtomicU64,
    /// Block submissions sent to a pool or node (retries included).
    pub blocks_submitted: AtomicU64,
    /// Blocks the pool or node accepted.
    pub blocks_accepted: AtomicU64,
    /// Blocks the pool or node refused.
    pub blocks_rejected: AtomicU64,
    /// Blocks given up on without a verdict.
    pub blocks_failed: AtomicU64,
    /// Failed writes to the block log.
    pub block_log_errors: AtomicU64,
    /// Upstream rejects by [`PoolReject`] (index `as usize`).
    pub upstream_rejects: [AtomicU64; PoolReject::ALL.len()],
    /// Shares not forwarded: below the stricter of the pool's old and new
    /// difficulty while a change is pending.
    pub upstream_withheld: AtomicU64,
    /// `mining.suggest_difficulty` sent to pools.
    pub difficulty_suggestions: AtomicU64,
    /// `client.reconnect` requests refused (a host not in the pool's
    /// config).
    pub reconnects_refused: AtomicU64,
    /// Upstream connections that failed: refused, a failed (V2)
    /// handshake, data that does not decode or decrypt, a stall. The
    /// reason is logged and shown in the pool's health.
    pub upstream_failures: AtomicU64,
    /// Sessions currently connected.
    pub sessions: AtomicU64,
    /// Time from a miner's submit to the pool's answer.
    pub submit_latency: LatencyHistogram,
    /// The same per pool (config index).
    pub pool_latency: dashmap::DashMap<usize, std::sync::Arc<LatencyHistogram>>,
}

/// Upper bounds (seconds) of the submit latency buckets.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket latency histogram of atomics (Prometheus-shaped:
/// rendering makes the buckets cumulative).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket; the last one is above every bound.
    pub counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    /// Σ latency, microseconds.
    pub sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound (seconds) of the bucket holding quantile `q`
    /// (None with no observation; infinity above the last bound).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counts a reject.
    #[inline]
    pub fn reject(&self, r: Reject) {
        self.rejected[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Rejects so far for one reason.
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r as usize].load(Ordering::Relaxed)
    }

    /// One share's time from the miner's submit to `pool`'s answer.
    pub fn observe_submit_latency(&self, pool: usize, d: Duration) {
        self.submit_latency.observe(d);
        match self.pool_latency.get(&pool) {
            Some(h) => h.observe(d),
            None => self.pool_latency.entry(pool).or_default().observe(d),
        }
    }

    /// Counts a pool's reject.
    pub fn upstream_reject(&self, r: PoolReject) {
        self.upstream_rejected.fetch_add(1, Ordering::Relaxed);
        self.upstream_rejects[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a disconnect.
    pub fn disconnect(&self, d: Disconnect) {
        self.disconnects[d as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Disconnects so far for one reason.
    pub fn disconnects(&self, d: Disconnect) -> u64 {
        self.disconnects[d as usize].load(Ordering::Relaxed)
    }

    /// Counts an accepted share.
    #[inline]
    pub fn accept(&self, difficulty: f64) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.accepted_work.add(difficulty);
    }

    /// A value by name, for tests and logs.
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reject_has_a_v2_error_code_in_the_specs_style() {
        use sluice_sv2::message::error_code as e;
        // The spec's own strings where it has them (PROTOCOLS.md).
        assert_eq!(Reject::JobNotFound.v2_error(), e::INVALID_JOB_ID);
        assert_eq!(Reject::Stale.v2_error(), "stale-share");
        assert_eq!(Reject::Duplicate.v2_error(), "duplicate-share");
        assert_eq!(Reject::LowDifficulty.v2_error(), "difficulty-too-low");
        assert_eq!(Reject::BadExtranonce2Size.v2_error(), "bad-extranonce-size");
        assert_eq!(
            Reject::VersionOutsideMask.v2_error(),
            "invalid-non-rollable-version-bit"
        );
        for r in Reject::ALL {
            let code = r.v2_error();
            assert!(
                !code.is_empty()
                    && code.len() <= 255
                    && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{r:?}: {code:?}"
            );
        }
    }

    #[test]
    fn indices_match_all() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, d) in Disconnect::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
        let s = Stats::default();
        s.reject(Reject::Duplicate);
        // Tiny fractional difficulties add up (no truncation).
        for _ in 0..1000 {
            s.accept(1e-9);
        }
        assert!((s.accepted_work.get() - 1e-6).abs() < 1e-15);
        assert_eq!(s.rejected(Reject::Duplicate), 1);
        assert_eq!(Reject::Duplicate.code().code(), 22);
        assert_eq!(Reject::Stale.code().code(), 21);
        assert_eq!(Reject::LowDifficulty.code().code(), 23);
        assert_eq!(Reject::BadExtranonce2Size.code().code(), 20);
    }
}
