//! What every simulated miner shares whatever its protocol: the hash
//! budget that keeps it at its rate, and the choice of deliberately bad
//! shares.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::miner::{BadKind, MinerConfig, MinerStats};

/// Hashes allowed so far, refilled by elapsed time at the current rate
/// (which follows the difficulty in share-rate mode), and the timer that
/// wakes the miner to spend them.
pub(crate) struct Pacer {
    budget: f64,
    last_refill: Instant,
    pub(crate) tick: tokio::time::Interval,
}

impl Pacer {
    pub(crate) fn new(cfg: &MinerConfig) -> Self {
        // Often enough to spread shares out, rarely enough that tens of
        // thousands of miners do not drown in timer wake-ups.
        let slice = match cfg.share_rate {
            Some(r) if r > 0.0 => (0.25 / r).clamp(0.01, 0.5),
            _ if cfg.hashes_per_sec < 50_000.0 => 0.05,
            _ => 0.01,
        };
        let mut tick = tokio::time::interval(Duration::from_secs_f64(slice));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self {
            budget: 0.0,
            last_refill: Instant::now(),
            tick,
        }
    }

    /// Hashes to compute now for work at `difficulty` (0: none due yet).
    pub(crate) fn batch(&mut self, cfg: &MinerConfig, difficulty: f64) -> u64 {
        let now = Instant::now();
        let rate = match cfg.share_rate {
            Some(r) => (r * difficulty * 4_294_967_296.0).min(cfg.hashes_per_sec),
            None => cfg.hashes_per_sec,
        };
        self.budget = (self.budget + now.duration_since(self.last_refill).as_secs_f64() * rate)
            .min(rate.max(1.0));
        self.last_refill = now;
        let batch = self.budget.floor();
        self.budget -= batch;
        batch as u64
    }
}

/// Which found shares to spoil, and how: stale, duplicate and low
/// difficulty in turn, a `bad_fraction` of them, deterministically from
/// the seed.
pub(crate) struct BadPicker {
    rng: u64,
    turn: usize,
    fraction: f64,
}

impl BadPicker {
    pub(crate) fn new(cfg: &MinerConfig) -> Self {
        Self {
            rng: cfg.seed | 1,
            turn: 0,
            fraction: cfg.bad_fraction,
        }
    }

    /// xorshift64*: cheap, deterministic.
    fn next_f64(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `Some(kind)` when this found share is to be sent bad (counted in
    /// `bad_sent`), `None` when it goes as found.
    pub(crate) fn pick(&mut self, stats: &MinerStats) -> Option<BadKind> {
        if !(self.fraction > 0.0 && self.next_f64() < self.fraction) {
            return None;
        }
        let kind = [BadKind::Stale, BadKind::Duplicate, BadKind::LowDifficulty][self.turn % 3];
        self.turn += 1;
        stats.bad_sent[kind as usize].fetch_add(1, Ordering::Relaxed);
        Some(kind)
    }
}
