//! The hashprice routing policy: what share of the hashrate each pool
//! gets, from what each one really pays per unit of work.
//!
//! Sans-IO: [`HashpricePolicy::decide`] takes each pool's measured pay,
//! which pools can take work now, and the time; it returns the target
//! split and, per pool, why. The router moves sessions to follow it.
//!
//! - Pools are ranked in tiers. Pool A is held ahead of pool B once A
//!   pays more by more than the noise (`confidence` × the combined
//!   standard error) plus `margin` (a fraction of B's pay); it stays
//!   ahead until its lead falls under half the margin. Equal payers stay
//!   in one tier however the noise falls, so they never flap.
//! - Every routable pool gets its floor; what is left goes to the best
//!   tier, split by weight within it, each pool up to its ceiling; what
//!   the tier cannot take goes to the next.
//! - A pool not yet measured (fewer than `min_shares` shares) is ranked
//!   with the best, so it gets work and is measured. A pool that has had
//!   no work keeps its last measured figure until `expire_after_ms`, then
//!   is measured again the same way (a floor keeps it measured instead).

use serde::Serialize;

/// One pool as the policy sees it.
#[derive(Clone, Debug)]
pub struct PolicyPool {
    /// Name (URL), for explanations.
    pub name: String,
    /// Relative weight within a tier.
    pub weight: f64,
    /// Least share of the hashrate while it is routable (0–1).
    pub floor: f64,
    /// Most share of the hashrate (0–1).
    pub ceiling: f64,
}

/// Policy settings.
#[derive(Clone, Copy, Debug)]
pub struct PolicyConfig {
    /// A pool must pay this fraction more than another, beyond the noise,
    /// to be ranked ahead of it.
    pub margin: f64,
    /// Standard errors the difference must clear (2 ≈ 95 %).
    pub confidence: f64,
    /// Shares in the window before a pool's figure is used.
    pub min_shares: u64,
    /// A pool's last figure is forgotten this long after it was measured
    /// (it is then ranked with the best until measured again).
    pub expire_after_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            margin: 0.02,
            confidence: 2.0,
            min_shares: 100,
            expire_after_ms: u64::MAX,
        }
    }
}

/// A pool's measured pay (any unit, the same for every pool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Measure {
    /// Pay per unit of work.
    pub pay: f64,
    /// Its standard error.
    pub sigma: f64,
    /// Shares it rests on.
    pub shares: u64,
}

/// The policy's verdict on one pool.
#[derive(Clone, Debug, Serialize)]
pub struct PoolVerdict {
    /// Target share of the hashrate (0–1).
    pub target: f64,
    /// Tier (0 pays most); None when not routable.
    pub tier: Option<usize>,
    /// The figure the decision used, and its age in seconds.
    pub used: Option<(Measure, f64)>,
    /// Why it gets what it gets.
    pub why: String,
}

/// The target split and its reasons.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Per pool, in config order.
    pub pools: Vec<PoolVerdict>,
    /// True when the split differs from the previous decision's.
    pub changed: bool,
}

impl Decision {
    /// Target shares in config order.
    pub fn split(&self) -> Vec<f64> {
        self.pools.iter().map(|p| p.target).collect()
    }
}

/// The policy's state: last figures and which pools are held ahead.
#[derive(Debug)]
pub struct HashpricePolicy {
    cfg: PolicyConfig,
    pools: Vec<PolicyPool>,
    last: Vec<Option<(Measure, u64)>>,
    /// `ahead[i][j]`: pool i is held as paying more than pool j.
    ahead: Vec<Vec<bool>>,
    split: Vec<f64>,
}

const EPS: f64 = 1e-9;

impl HashpricePolicy {
    /// A policy over `pools` (config order).
    pub fn new(cfg: PolicyConfig, pools: Vec<PolicyPool>) -> Self {
        let n = pools.len();
        Self {
            cfg,
            pools,
            last: vec![None; n],
            ahead: vec![vec![false; n]; n],
            split: Vec::new(),
        }
    }

    /// The pools.
    pub fn pools(&self) -> &[PolicyPool] {
        &self.pools
    }

    /// One decision: `measured[i]` is pool i's pay over the window (None
    /// or too few shares: not measured now), `routable[i]` whether it can
    /// take work now (healthy, in the active failover level).
    pub fn decide(
        &mut self,
        measured: &[Option<Measure>],
        routable: &[bool],
        now_ms: u64,
    ) -> Decision {
        let n = self.pools.len();
        for (i, m) in measured.iter().enumerate().take(n) {
            if let Some(m) = m.filter(|m| m.shares >= self.cfg.min_shares && m.pay.is_finite()) {
                self.last[i] = Some((m, now_ms));
            }
        }
        for last in &mut self.last {
            if last.is_some_and(|(_, at)| now_ms.saturating_sub(at) > self.cfg.expire_after_ms) {
                *last = None;
            }
        }
        self.update_ranks();
        let routable: Vec<bool> = (0..n)
            .map(|i| routable.get(i).copied().unwrap_or(false))
            .collect();
        let tiers = self.tiers(&routable);
        let mut pools: Vec<PoolVerdict> = (0..n)
            .map(|i| PoolVerdict {
                target: 0.0,
                tier: None,
                used: self.last[i].map(|(m, at)| (m, now_ms.saturating_sub(at) as f64 / 1000.0)),
                why: String::new(),
            })
            .collect();
        let mut unplaced = self.allocate(&tiers, &mut pools);
        if unplaced > EPS {
            // Ceilings cannot take it all: spread the rest by weight.
            let members: Vec<usize> = (0..n).filter(|&i| routable[i]).collect();
            let w: f64 = members.iter().map(|&i| self.pools[i].weight.max(0.0)).sum();
            for &i in &members {
                let share = if w > 0.0 {
                    self.pools[i].weight.max(0.0) / w
                } else {
                    1.0 / members.len() as f64
                };
                pools[i].target += unplaced * share;
                pools[i].why.push_str(&format!(
                    "; the ceilings leave {:.1} % unplaced, spread by weight",
                    unplaced * 100.0
                ));
            }
            unplaced = 0.0;
        }
        debug_assert!(unplaced <= EPS);
        for (t, tier) in tiers.iter().enumerate() {
            for &i in tier {
                pools[i].tier = Some(t);
            }
        }
        self.explain(&tiers, &routable, &mut pools);
        let split: Vec<f64> = pools.iter().map(|p| p.target).collect();
        let changed = split.len() != self.split.len()
            || split
                .iter()
                .zip(&self.split)
                .any(|(a, b)| (a - b).abs() > 1e-6);
        self.split = split;
        Decision { pools, changed }
    }

    /// Updates who is held ahead of whom from the last figures.
    fn update_ranks(&mut self) {
        let n = self.pools.len();
        for i in 0..n {
            for j in (i + 1)..n {
                let (Some((a, _)), Some((b, _))) = (self.last[i], self.last[j]) else {
                    continue;
                };
                // (hi, lo): the one paying more now first.
                let (hi, lo, mh, ml) = if a.pay >= b.pay {
                    (i, j, a, b)
                } else {
                    (j, i, b, a)
                };
                let gap = mh.pay - ml.pay;
                let base = ml.pay.abs().max(mh.pay.abs() * EPS).max(f64::MIN_POSITIVE);
                let noise = self.cfg.confidence * (mh.sigma.powi(2) + ml.sigma.powi(2)).sqrt();
                let clears = gap > noise + self.cfg.margin * base;
                if self.ahead[lo][hi] {
                    // The one held ahead no longer pays more.
                    self.ahead[lo][hi] = false;
                    self.ahead[hi][lo] = clears;
                } else if self.ahead[hi][lo] {
                    self.ahead[hi][lo] = gap > self.cfg.margin / 2.0 * base;
                } else {
                    self.ahead[hi][lo] = clears;
                }
            }
        }
    }

    /// Routable pools in tiers, best first: sorted by pay (unmeasured
    /// first), a pool starts a new tier when one already in the current
    /// tier is held ahead of it.
    fn tiers(&self, routable: &[bool]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.pools.len()).filter(|&i| routable[i]).collect();
        let pay = |i: usize| self.last[i].map_or(f64::INFINITY, |(m, _)| m.pay);
        order.sort_by(|&a, &b| pay(b).total_cmp(&pay(a)).then(a.cmp(&b)));
        let mut tiers: Vec<Vec<usize>> = Vec::new();
        for i in order {
            match tiers.last_mut() {
                Some(t) if !t.iter().any(|&q| self.ahead[q][i]) => t.push(i),
                _ => tiers.push(vec![i]),
            }
        }
        tiers
    }

    /// Floors first, then tier by tier by weight up to the ceilings.
    /// Returns what could not be placed.
    fn allocate(&self, tiers: &[Vec<usize>], out: &mut [PoolVerdict]) -> f64 {
        let members: Vec<usize> = tiers.iter().flatten().copied().collect();
        if members.is_empty() {
            return 0.0;
        }
        let floors: f64 = members.iter().map(|&i| self.pools[i].floor.max(0.0)).sum();
        // Floors over 100 % (config allows it only across levels) shrink
        // in proportion.
        let scale = if floors > 1.0 { 1.0 / floors } else { 1.0 };
        for &i in &members {
            out[i].target = self.pools[i].floor.max(0.0) * scale;
        }
        let mut left = (1.0 - floors * scale).max(0.0);
        for tier in tiers {
            left = self.fill(tier, out, left);
            if left <= EPS {
                return 0.0;
            }
        }
        left
    }

    /// Pool i's ceiling, never under its floor.
    fn ceiling(&self, i: usize) -> f64 {
        self.pools[i].ceiling.max(self.pools[i].floor).min(1.0)
    }

    /// Water-fills `amount` over `tier` by weight up to the ceilings.
    fn fill(&self, tier: &[usize], out: &mut [PoolVerdict], mut amount: f64) -> f64 {
        let ceiling = |i: usize| self.ceiling(i);
        let mut open: Vec<usize> = tier
            .iter()
            .copied()
            .filter(|&i| out[i].target < ceiling(i) - EPS)
            .collect();
        while amount > EPS && !open.is_empty() {
            let wsum: f64 = open.iter().map(|&i| self.pools[i].weight.max(0.0)).sum();
            let mut used = 0.0;
            let mut still = Vec::new();
            for &i in &open {
                let w = if wsum > 0.0 {
                    self.pools[i].weight.max(0.0) / wsum
                } else {
                    1.0 / open.len() as f64
                };
                let want = amount * w;
                let room = ceiling(i) - out[i].target;
                let give = want.min(room).max(0.0);
                out[i].target += give;
                used += give;
                if room - give > EPS {
                    still.push(i);
                }
            }
            amount -= used;
            if still.len() == open.len() {
                break;
            }
            open = still;
        }
        amount.max(0.0)
    }

    fn explain(&self, tiers: &[Vec<usize>], routable: &[bool], out: &mut [PoolVerdict]) {
        let pct = |x: f64| format!("{:.1} %", x * 100.0);
        for i in 0..self.pools.len() {
            let p = &self.pools[i];
            let mut why = if !routable[i] {
                "not routable now (down, or not in the active failover level)".to_string()
            } else {
                let t = out[i].tier.unwrap_or(0);
                let figure = match self.last[i] {
                    None => format!(
                        "not measured yet (fewer than {} shares): ranked with the best so it gets measured",
                        self.cfg.min_shares
                    ),
                    Some((m, _)) => format!(
                        "pays {:.6e} ± {:.1e} over {} shares",
                        m.pay, m.sigma, m.shares
                    ),
                };
                let rank = if tiers.iter().map(Vec::len).sum::<usize>() == 1 {
                    "the only pool that can take work now".to_string()
                } else if tiers.len() == 1 {
                    "no pool pays measurably more (gaps within the noise or the margin): split by weight".to_string()
                } else if t == 0 {
                    let behind: Vec<&str> = tiers[1..]
                        .iter()
                        .flatten()
                        .filter(|&&j| self.ahead[i][j])
                        .map(|&j| self.pools[j].name.as_str())
                        .collect();
                    if behind.is_empty() {
                        "in the best tier".to_string()
                    } else {
                        format!("in the best tier, held ahead of {}", behind.join(", "))
                    }
                } else {
                    let above: Vec<String> = tiers[..t]
                        .iter()
                        .flatten()
                        .filter(|&&j| self.ahead[j][i])
                        .map(|&j| {
                            let rel = match (self.last[j], self.last[i]) {
                                (Some((a, _)), Some((b, _))) if b.pay.abs() > 0.0 => {
                                    format!(" by {}", pct((a.pay - b.pay) / b.pay.abs()))
                                }
                                _ => String::new(),
                            };
                            format!("{}{rel}", self.pools[j].name)
                        })
                        .collect();
                    format!(
                        "tier {t}: {} pays more beyond the noise and the {} margin; gets what the better tiers leave",
                        above.join(", "),
                        pct(self.cfg.margin)
                    )
                };
                format!("{figure}; {rank}")
            };
            if routable[i] {
                let ceiling = self.ceiling(i);
                if out[i].target <= p.floor + 1e-6 && p.floor > 0.0 {
                    why.push_str(&format!("; at its floor {}", pct(out[i].target)));
                } else if (out[i].target - ceiling).abs() <= 1e-6 && ceiling < 1.0 {
                    why.push_str(&format!("; at its ceiling {}", pct(ceiling)));
                }
            }
            out[i].why = format!("{why}{}", std::mem::take(&mut out[i].why));
        }
    }
}

#[cfg(test)]
mod tests;
