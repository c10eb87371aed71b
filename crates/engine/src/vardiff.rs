//! Variable difficulty: keep each connection near a target share rate.
//!
//! Pure state machine on a caller-supplied clock. The session feeds it
//! accepted shares and ticks; it answers with a new difficulty, which the
//! session applies from the next job (shares on older jobs are credited at
//! the difficulty they were mined at).
//!
//! The estimate is the work submitted over a window: `Σ difficulty /
//! elapsed`, which stays right across difficulty changes inside the window.
//! A retarget happens after `retarget_shares` shares or `retarget_after`
//! time, whichever comes first; with `n` shares the rate estimate has a
//! relative noise of about `1/√n`, so the dead band (no change while the
//! ideal difficulty is within a factor `dead_band` of the current one)
//! keeps a steady miner from flapping.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Vardiff settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VardiffConfig {
    /// Turn vardiff off: every connection keeps its start difficulty.
    pub enabled: bool,
    /// Wanted seconds between shares per connection.
    pub target_share_interval_secs: f64,
    /// Retarget after this many accepted shares …
    pub retarget_shares: u32,
    /// … or after this many seconds, whichever comes first.
    pub retarget_after_secs: f64,
    /// No change while ideal/current is within [1/dead_band, dead_band].
    pub dead_band: f64,
    /// Largest factor of one change (up or down).
    pub max_step: f64,
    /// Round difficulties to powers of two (some firmware prefers them).
    pub power_of_two: bool,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            target_share_interval_secs: 5.0,
            retarget_shares: 24,
            retarget_after_secs: 90.0,
            dead_band: 1.5,
            max_step: 16.0,
            power_of_two: false,
        }
    }
}

/// A listener's vardiff settings and difficulty ceiling, passed to each
/// call: every connection of the listener shares them, and a copy in each
/// connection's state was 56 of its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// The settings.
    pub cfg: &'a VardiffConfig,
    /// Highest difficulty.
    pub max: f64,
}

/// Per-connection vardiff state: only this connection's numbers (the
/// rules come with each call).
#[derive(Clone, Debug)]
pub struct Vardiff {
    /// This connection's floor: the listener's, raised by the miner's
    /// `minimum-difficulty`.
    min: f64,
    difficulty: f64,
    window_start: Instant,
    shares: u32,
    work: f64,
}

impl Vardiff {
    /// Starts at `start`, clamped to `[min, rules.max]`.
    pub fn new(rules: Rules<'_>, start: f64, min: f64, now: Instant) -> Self {
        let mut v = Self {
            min,
            difficulty: start,
            window_start: now,
            shares: 0,
            work: 0.0,
        };
        v.difficulty = v.clamp(rules, start);
        v
    }

    /// The difficulty vardiff currently wants.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Sets the difficulty by hand (suggest_difficulty, `d=` password) and
    /// restarts the window.
    pub fn set(&mut self, rules: Rules<'_>, difficulty: f64, now: Instant) -> f64 {
        self.difficulty = self.clamp(rules, difficulty);
        self.restart(now);
        self.difficulty
    }

    /// Raises the floor (the `minimum-difficulty` extension).
    pub fn set_min(&mut self, rules: Rules<'_>, min: f64) {
        self.min = min.max(self.min).min(self.max(rules));
        self.difficulty = self.clamp(rules, self.difficulty);
    }

    /// Records an accepted share of difficulty `d`; may return a new
    /// difficulty.
    pub fn on_share(&mut self, rules: Rules<'_>, d: f64, now: Instant) -> Option<f64> {
        self.shares += 1;
        self.work += d;
        if self.shares >= rules.cfg.retarget_shares {
            return self.retarget(rules, now);
        }
        self.on_tick(rules, now)
    }

    /// Lets time pass without shares (a miner that went quiet, or whose
    /// difficulty is far too high); may return a new difficulty.
    pub fn on_tick(&mut self, rules: Rules<'_>, now: Instant) -> Option<f64> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs_f64(rules.cfg.retarget_after_secs) {
            return self.retarget(rules, now);
        }
        None
    }

    fn retarget(&mut self, rules: Rules<'_>, now: Instant) -> Option<f64> {
        let cfg = rules.cfg;
        if !cfg.enabled {
            self.restart(now);
            return None;
        }
        let elapsed = now
            .saturating_duration_since(self.window_start)
            .as_secs_f64();
        if elapsed <= 0.0 {
            return None;
        }
        // Work per second divided by wanted shares per second. With no
        // shares at all, assume one was about to arrive: that bounds the
        // drop per window and still moves a stuck miner down quickly.
        let work = if self.shares == 0 {
            self.difficulty
        } else {
            self.work
        };
        let ideal = work / elapsed * cfg.target_share_interval_secs;
        let step = cfg.max_step.max(1.0);
        let ratio = (ideal / self.difficulty).clamp(1.0 / step, step);
        self.restart(now);
        if ratio < cfg.dead_band && ratio > 1.0 / cfg.dead_band {
            return None;
        }
        let next = self.clamp(rules, self.difficulty * ratio);
        if (next - self.difficulty).abs() <= f64::EPSILON * self.difficulty {
            return None;
        }
        self.difficulty = next;
        Some(next)
    }

    fn restart(&mut self, now: Instant) {
        self.window_start = now;
        self.shares = 0;
        self.work = 0.0;
    }

    /// The ceiling: the listener's, or this connection's floor if that is
    /// higher (a configuration with min above max keeps min).
    fn max(&self, rules: Rules<'_>) -> f64 {
        rules.max.max(self.min)
    }

    fn clamp(&self, rules: Rules<'_>, d: f64) -> f64 {
        let d = if rules.cfg.power_of_two {
            2f64.powi(d.log2().round() as i32)
        } else {
            d
        };
        d.clamp(self.min, self.max(rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic exponential share arrivals.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
    }

    /// Simulates a miner of `hashrate` H/s for `secs`; returns the share
    /// intervals seen over the last `tail` seconds and the final difficulty.
    fn simulate(
        cfg: VardiffConfig,
        hashrate: f64,
        start: f64,
        secs: f64,
        tail: f64,
        seed: u64,
    ) -> (f64, f64) {
        let t0 = Instant::now();
        let r = Rules {
            cfg: &cfg,
            max: 1e12,
        };
        let mut v = Vardiff::new(r, start, 1e-6, t0);
        let mut rng = Rng(seed);
        let mut t = 0.0;
        let (mut tail_shares, mut d) = (0u32, start);
        'arrival: while t < secs {
            // Shares at difficulty d arrive at rate H / (d · 2^32); arrivals
            // are memoryless, so after a change the next one is redrawn.
            let rate = hashrate / (d * 4_294_967_296.0);
            let dt = -rng.uniform().ln() / rate;
            let mut tick = t.floor() + 1.0;
            while tick < t + dt && tick < secs {
                if let Some(n) = v.on_tick(r, t0 + Duration::from_secs_f64(tick)) {
                    d = n;
                    t = tick;
                    continue 'arrival;
                }
                tick += 1.0;
            }
            t += dt;
            if t >= secs {
                break;
            }
            if t > secs - tail {
                tail_shares += 1;
            }
            if let Some(n) = v.on_share(r, d, t0 + Duration::from_secs_f64(t)) {
                d = n;
            }
        }
        (tail / f64::from(tail_shares.max(1)), v.difficulty())
    }

    #[test]
    fn converges_from_far_below_and_far_above() {
        let cfg = VardiffConfig::default();
        // A 100 TH/s ASIC wants d ≈ 1e14 · 5 / 2^32 ≈ 116,415.
        let want = 100e12 * 5.0 / 4_294_967_296.0;
        for (start, seed) in [(1.0, 1), (1e9, 2), (want, 3)] {
            let (interval, d) = simulate(cfg.clone(), 100e12, start, 3600.0, 1800.0, seed);
            assert!(
                (3.5..7.0).contains(&interval),
                "start {start}: interval {interval}"
            );
            assert!(
                (d / want - 1.0).abs() < 0.5,
                "start {start}: d {d} vs {want}"
            );
        }
    }

    #[test]
    fn fractional_difficulty_for_tiny_miners() {
        // A 1 MH/s test rig wants d ≈ 1e6 · 5 / 2^32 ≈ 0.00116.
        let (interval, d) = simulate(VardiffConfig::default(), 1e6, 1.0, 3600.0, 1800.0, 4);
        assert!(d < 0.01, "{d}");
        assert!((3.5..7.0).contains(&interval), "{interval}");
    }

    #[test]
    fn dead_band_holds_a_steady_miner() {
        let cfg = VardiffConfig::default();
        let want = 10e12 * 5.0 / 4_294_967_296.0;
        let t0 = Instant::now();
        let r = Rules {
            cfg: &cfg,
            max: 1e12,
        };
        let mut v = Vardiff::new(r, want, 1e-6, t0);
        // Exactly on target: 24 shares in 120 s.
        let mut changes = 0;
        for i in 1..=240u64 {
            if v.on_share(r, want, t0 + Duration::from_secs(5 * i))
                .is_some()
            {
                changes += 1;
            }
        }
        assert_eq!(changes, 0);
    }

    #[test]
    fn silence_lowers_difficulty_stepwise_and_clamps() {
        let cfg = VardiffConfig::default();
        let t0 = Instant::now();
        let r = Rules {
            cfg: &cfg,
            max: 1e6,
        };
        let mut v = Vardiff::new(r, 1024.0, 1.0, t0);
        let mut t = t0;
        let mut last = 1024.0;
        for _ in 0..20 {
            t += Duration::from_secs_f64(cfg.retarget_after_secs);
            if let Some(d) = v.on_tick(r, t) {
                assert!(d < last && d >= last / cfg.max_step);
                last = d;
            }
        }
        assert_eq!(v.difficulty(), 1.0, "clamped at min");
    }

    #[test]
    fn powers_of_two_and_manual_settings() {
        let cfg = VardiffConfig {
            power_of_two: true,
            ..VardiffConfig::default()
        };
        let t0 = Instant::now();
        let r = Rules {
            cfg: &cfg,
            max: 1e6,
        };
        let mut v = Vardiff::new(r, 1000.0, 1.0, t0);
        assert_eq!(v.difficulty(), 1024.0);
        assert_eq!(v.set(r, 2500.0, t0), 2048.0);
        assert_eq!(v.set(r, 3000.0, t0), 4096.0);
        v.set_min(r, 8192.0);
        assert_eq!(v.difficulty(), 8192.0);
        let off = VardiffConfig {
            enabled: false,
            ..VardiffConfig::default()
        };
        let r = Rules {
            cfg: &off,
            max: 1e6,
        };
        let mut v = Vardiff::new(r, 8.0, 1.0, t0);
        for i in 1..100 {
            assert!(v.on_share(r, 8.0, t0 + Duration::from_millis(i)).is_none());
        }
    }
}
