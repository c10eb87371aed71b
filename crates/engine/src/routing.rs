//! The routing task: every `interval` it reads each pool's pay from the
//! books ([`sluice_books::earnings::PoolPay`] over `window`), asks the
//! [`HashpricePolicy`] for a split and, under `policy = "hashprice"`,
//! hands the split to the router, which moves sessions with a clean job.
//! Under `policy = "weights"` the router keeps the configured weights and
//! the report still shows what each pool pays and what the hashprice
//! policy would do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sluice_books::earnings::{PoolPay, comparable_pays};
use sluice_books::{Books, Window};
use tokio_util::sync::CancellationToken;

use crate::policy::{HashpricePolicy, Measure, PolicyConfig, PolicyPool};
use crate::router::Router;

/// How often pool health is checked for a decision out of turn.
const HEALTH_CHECK: Duration = Duration::from_millis(250);

/// Which policy routes hashrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// The configured weights.
    Weights,
    /// Measured pay, within floors and ceilings.
    Hashprice,
}

/// Routing task settings.
#[derive(Clone, Debug)]
pub struct RoutingSettings {
    /// Which policy routes.
    pub policy: PolicyKind,
    /// Window each pool's pay is measured over.
    pub window: Window,
    /// How often the policy decides.
    pub interval: Duration,
    /// Its thresholds.
    pub cfg: PolicyConfig,
}

/// One pool in the report.
#[derive(Clone, Debug, Serialize)]
pub struct PoolRouting {
    /// Its name (URL).
    pub name: String,
    /// Failover level.
    pub level: u32,
    /// Configured weight.
    pub weight: f64,
    /// Least share while routable.
    pub floor: f64,
    /// Most share.
    pub ceiling: f64,
    /// Healthy and in the active level.
    pub routable: bool,
    /// Sessions on it now.
    pub sessions: u64,
    /// Its share of the sessions now.
    pub session_share: f64,
    /// Pay over the window as its books show it now.
    pub measured: PoolPay,
    /// What pools are compared by, BTC per PH/s per day: its quoted
    /// payout, or the network value common to all pools less its fee,
    /// times its accept rate (see `sluice_books::earnings`).
    pub pays_btc: Option<f64>,
    /// Its standard error.
    pub pays_sigma_btc: Option<f64>,
    /// `pays_btc` in USD per PH/s per day, when the BTC price is known.
    pub hashprice_usd: Option<f64>,
    /// Its standard error in USD.
    pub sigma_usd: Option<f64>,
    /// Age of the figure the policy used (it keeps a pool's last figure
    /// while the pool gets no work), seconds.
    pub figure_age_s: Option<f64>,
    /// Tier by pay (0 pays most).
    pub tier: Option<usize>,
    /// The hashprice policy's target share.
    pub policy_target: f64,
    /// What the router follows now (the policy's target, or the weight's
    /// share).
    pub target_share: f64,
    /// Why.
    pub why: String,
}

/// `/api/v1/routing` and `sluice routing`.
#[derive(Clone, Debug, Serialize)]
pub struct RoutingReport {
    /// The policy in force.
    pub policy: PolicyKind,
    /// Window pay is measured over.
    pub window: Window,
    /// When this decision was made (Unix seconds).
    pub decided_at: u64,
    /// Seconds between decisions.
    pub interval_s: f64,
    /// Margin a pool must pay more by, beyond the noise.
    pub margin: f64,
    /// Standard errors the difference must clear.
    pub confidence: f64,
    /// Shares before a pool's figure is used.
    pub min_shares: u64,
    /// BTC price used for the USD figures.
    pub price_usd: Option<f64>,
    /// Times the policy changed the split.
    pub split_changes: u64,
    /// Sessions moved to follow the split or weights.
    pub session_moves: u64,
    /// Sessions moved off failed pools.
    pub failover_moves: u64,
    /// Per pool, config order.
    pub pools: Vec<PoolRouting>,
}

/// The routing task's state.
pub struct Routing {
    settings: RoutingSettings,
    books: Arc<Books>,
    router: Arc<Router>,
    policy: Mutex<HashpricePolicy>,
    report: Mutex<Option<RoutingReport>>,
    /// Times the policy changed the router's split.
    pub split_changes: AtomicU64,
}

impl Routing {
    /// A routing task over the router's pools; `limits[i]` is pool i's
    /// (floor, ceiling).
    pub fn new(
        settings: RoutingSettings,
        books: Arc<Books>,
        router: Arc<Router>,
        names: Vec<String>,
        limits: Vec<(f64, f64)>,
    ) -> Arc<Self> {
        let pools = router
            .configured()
            .into_iter()
            .enumerate()
            .map(|(i, (_, weight))| {
                let (floor, ceiling) = limits.get(i).copied().unwrap_or((0.0, 1.0));
                PolicyPool {
                    name: names.get(i).cloned().unwrap_or_else(|| format!("pool {i}")),
                    weight,
                    floor,
                    ceiling,
                }
            })
            .collect();
        Arc::new(Self {
            policy: Mutex::new(HashpricePolicy::new(settings.cfg, pools)),
            settings,
            books,
            router,
            report: Mutex::new(None),
            split_changes: AtomicU64::new(0),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> PolicyKind {
        self.settings.policy
    }

    /// One decision at `now_ms`.
    pub fn step(&self, now_ms: u64) -> RoutingReport {
        let routable = self.router.routable();
        let pays = comparable_pays(&self.books, now_ms, self.settings.window);
        let measures: Vec<Option<Measure>> = pays
            .iter()
            .map(|(p, c)| {
                c.map(|(pay, sigma)| Measure {
                    pay,
                    sigma,
                    shares: p.shares,
                })
            })
            .collect();
        let mut policy = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        let decision = policy.decide(&measures, &routable, now_ms);
        // With no pool up there is nothing to split: the router keeps the
        // last split for when they return.
        if self.settings.policy == PolicyKind::Hashprice
            && decision.changed
            && routable.iter().any(|r| *r)
        {
            let split = decision.split();
            self.router.set_split(split.clone());
            self.split_changes.fetch_add(1, Ordering::Relaxed);
            let shown: Vec<String> = policy
                .pools()
                .iter()
                .zip(&split)
                .map(|(p, s)| format!("{} {:.1} %", p.name, s * 100.0))
                .collect();
            tracing::info!(split = %shown.join(", "), "hashprice routing: new split");
        }
        let targets = self.router.targets();
        let routable_weight: f64 = targets
            .iter()
            .zip(&routable)
            .filter(|(_, r)| **r)
            .map(|(t, _)| *t)
            .sum();
        let sessions = self.router.sessions_per_pool();
        let all_sessions: u64 = sessions.iter().sum();
        let price = self.books.price(now_ms).usd;
        let configured = self.router.configured();
        let pools = policy
            .pools()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let v = &decision.pools[i];
                let (pay, used) = pays.get(i).copied().unwrap_or_default();
                let target_share = match self.settings.policy {
                    PolicyKind::Hashprice => v.target,
                    PolicyKind::Weights if routable[i] && routable_weight > 0.0 => {
                        targets[i] / routable_weight
                    }
                    PolicyKind::Weights => 0.0,
                };
                let why = match self.settings.policy {
                    PolicyKind::Hashprice => v.why.clone(),
                    PolicyKind::Weights => format!(
                        "routed by weight (routing.policy = \"weights\"); the hashprice policy would give {:.1} %: {}",
                        v.target * 100.0,
                        v.why
                    ),
                };
                let n = sessions.get(i).copied().unwrap_or(0);
                PoolRouting {
                    name: p.name.clone(),
                    level: configured.get(i).map_or(0, |c| c.0),
                    weight: p.weight,
                    floor: p.floor,
                    ceiling: p.ceiling,
                    routable: routable[i],
                    sessions: n,
                    session_share: if all_sessions > 0 {
                        n as f64 / all_sessions as f64
                    } else {
                        0.0
                    },
                    measured: pay,
                    pays_btc: used.map(|u| u.0),
                    pays_sigma_btc: used.map(|u| u.1),
                    hashprice_usd: price.zip(used).map(|(u, h)| u * h.0),
                    sigma_usd: price.zip(used).map(|(u, s)| u * s.1),
                    figure_age_s: v.used.map(|(_, age)| age),
                    tier: v.tier,
                    policy_target: v.target,
                    target_share,
                    why,
                }
            })
            .collect();
        drop(policy);
        let report = RoutingReport {
            policy: self.settings.policy,
            window: self.settings.window,
            decided_at: now_ms / 1000,
            interval_s: self.settings.interval.as_secs_f64(),
            margin: self.settings.cfg.margin,
            confidence: self.settings.cfg.confidence,
            min_shares: self.settings.cfg.min_shares,
            price_usd: price,
            split_changes: self.split_changes.load(Ordering::Relaxed),
            session_moves: self.router.rebalance_moves.load(Ordering::Relaxed),
            failover_moves: self.router.failover_moves.load(Ordering::Relaxed),
            pools,
        };
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        report
    }

    /// The latest report (a decision now when there is none yet).
    pub fn report(&self) -> RoutingReport {
        let last = self
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match last {
            Some(r) => r,
            None => self.step(self.now_ms()),
        }
    }

    fn now_ms(&self) -> u64 {
        // tokio's clock, so paused-time tests drive decisions too.
        self.books
            .clock()
            .ms(tokio::time::Instant::now().into_std())
    }

    /// Decides every `interval`, and at once when a pool goes up or down,
    /// until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut t = tokio::time::interval(self.settings.interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = tokio::time::interval(HEALTH_CHECK);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.router.routable();
        loop {
            tokio::select! {
                _ = t.tick() => {}
                _ = health.tick() => {
                    let now = self.router.routable();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
                _ = cancel.cancelled() => return,
            }
            self.step(self.now_ms());
        }
    }
}

#[cfg(test)]
mod tests;
