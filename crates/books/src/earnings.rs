//! What a pool really pays per unit of work done for it, and how sure the
//! books are of that figure.
//!
//! The figure is the pool's effective hashprice in BTC: earned BTC (after
//! its fee, its rejects, stale work and shares it refused) per PH/s of
//! submitted work per day. It is `r · p`, where `r` is what an accepted
//! unit of work earns (the pool's configured payout, or the job's reward
//! less its fee) and `p` the share of submitted work it accepted. `r` is
//! known from the config and the jobs; `p` is measured, so the
//! uncertainty is the binomial standard error of `p` over the window's
//! `n` shares: `σ = r · √(max(p(1 − p), 1/n) / n)`. The `1/n` floor keeps
//! a pool with no rejects yet from looking certain (with no reject in `n`
//! shares, a reject rate near `1/n` is still plausible).
//!
//! FPPS pays this figure; PPLNS and solo pay it only on average, and
//! their luck is not in `σ`.
//!
//! [`comparable_pays`] ranks pools by what we trust: a pool's quoted
//! payout per share (config), or else the network value of work common
//! to all pools (the highest difficulty any pool's jobs show, the median
//! reward they claim, or the configured reward) less the pool's fee, times
//! its measured accept rate. A pool cannot look better by what its own
//! jobs claim.

use serde::Serialize;

use crate::books::{Books, Reward};
use crate::money;
use crate::tally::{Figures, Window};

/// A pool's measured pay over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PoolPay {
    /// Seconds the figures cover.
    pub span_s: f64,
    /// Shares in the window (accepted and rejected).
    pub shares: u64,
    /// Accepted work / submitted work.
    pub accept_rate: Option<f64>,
    /// Effective hashprice, BTC per PH/s per day (None without work).
    pub hashprice_btc: Option<f64>,
    /// Its standard error, BTC per PH/s per day.
    pub sigma_btc: Option<f64>,
}

impl PoolPay {
    /// The pay a window's figures show.
    pub fn of(f: &Figures) -> Self {
        let s = &f.sums;
        let submitted = s.submitted_work();
        let n = (s.accepted + s.rejected).round().max(0.0);
        if submitted <= 0.0 || n < 1.0 {
            return Self {
                span_s: f.span_s,
                shares: n as u64,
                ..Self::default()
            };
        }
        let p = (s.accepted_work / submitted).clamp(0.0, 1.0);
        // What an accepted unit of work earns; with nothing accepted, its
        // network value stands in (the fee is then unknown, and moot).
        let per_work = if s.accepted_work > 0.0 {
            s.earned_btc / s.accepted_work
        } else {
            s.value_btc / submitted
        };
        let r = money::effective_hashprice(per_work, 1.0, 1.0).unwrap_or(0.0);
        let mut pay = Self {
            span_s: f.span_s,
            shares: n as u64,
            accept_rate: Some(p),
            hashprice_btc: money::effective_hashprice(s.earned_btc, submitted, 1.0),
            sigma_btc: None,
        };
        pay.sigma_btc = pay.at_rate(r).map(|(_, sigma)| sigma);
        pay
    }

    /// The pay and its standard error if an accepted unit of work earned
    /// `rate` (BTC per PH/s per day): `rate · p` and `rate · σ_p`. None
    /// without shares.
    pub fn at_rate(&self, rate: f64) -> Option<(f64, f64)> {
        let p = self.accept_rate?;
        let n = self.shares as f64;
        if n < 1.0 {
            return None;
        }
        let sigma_p = ((p * (1.0 - p)).max(1.0 / n) / n).sqrt();
        Some((rate * p, rate * sigma_p))
    }
}

/// Each pool's pay over `w` (config order): as its books show it, and
/// the figure pools are compared by (pay, σ), BTC per PH/s per day.
pub fn comparable_pays(
    books: &Books,
    now_ms: u64,
    w: Window,
) -> Vec<(PoolPay, Option<(f64, f64)>)> {
    let n = books.pools().len();
    let nets: Vec<_> = (0..n).map(|i| books.pool_network(i)).collect();
    // A pool sending a lower difficulty than the others would look as if
    // it paid more: the hardest one seen is the network's.
    let d_common = nets
        .iter()
        .flatten()
        .map(|n| n.difficulty)
        .filter(|d| d.is_finite() && *d > 0.0)
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
    let mut claimed: Vec<f64> = books
        .pools()
        .iter()
        .zip(&nets)
        .filter(|(p, _)| p.cfg.reward == Reward::Coinbase)
        .filter_map(|(_, n)| n.and_then(|n| n.reward_btc))
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    claimed.sort_by(f64::total_cmp);
    // The lower median: one pool claiming more cannot raise it.
    let r_common = (!claimed.is_empty()).then(|| claimed[(claimed.len() - 1) / 2]);
    books
        .pools()
        .iter()
        .map(|p| {
            let pay = PoolPay::of(&p.tally.figures(now_ms, w));
            let fee = 1.0 - p.cfg.fee;
            let rate = match p.cfg.reward {
                Reward::PerShareBtc(x) => money::effective_hashprice(x, 1.0, 1.0),
                Reward::BlockBtc(r) => d_common.map(|d| money::network_hashprice_btc(d, r) * fee),
                Reward::Coinbase => d_common
                    .zip(r_common)
                    .map(|(d, r)| money::network_hashprice_btc(d, r) * fee),
            };
            (pay, rate.and_then(|r| pay.at_rate(r)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Sums;

    fn figures(accepted: f64, rejected: f64, earned_per_share: f64) -> Figures {
        Figures {
            span_s: 600.0,
            sums: Sums {
                accepted_work: accepted,
                rejected_work: rejected,
                earned_btc: accepted * earned_per_share,
                value_btc: (accepted + rejected) * earned_per_share,
                accepted,
                rejected,
                ..Sums::default()
            },
        }
    }

    #[test]
    fn pay_is_the_accepted_share_of_the_rate_with_a_binomial_error() {
        let x = 1e-12;
        let per_share = money::effective_hashprice(x, 1.0, 1.0).unwrap_or(0.0);
        let pay = PoolPay::of(&figures(900.0, 100.0, x));
        let h = pay.hashprice_btc.unwrap_or(0.0);
        assert!((h / per_share - 0.9).abs() < 1e-12, "{h} vs {per_share}");
        // σ_p = √(0.9 · 0.1 / 1000) = 0.009487.
        let s = pay.sigma_btc.unwrap_or(0.0) / per_share;
        assert!((s - 0.009_486_8).abs() < 1e-6, "{s}");
        assert_eq!(pay.shares, 1000);
    }

    #[test]
    fn a_pool_cannot_look_better_by_what_its_jobs_claim() {
        use crate::books::{BooksConfig, Clock, JobValue, PoolBooksConfig, Scheme, ShareKind};
        let pool = |name: &str, reward| PoolBooksConfig {
            name: name.into(),
            fee: 0.01,
            scheme: Scheme::Fpps,
            reward,
        };
        let t0 = 1_763_000_000_000;
        let books = Books::new(
            BooksConfig {
                pools: vec![
                    pool("honest", Reward::Coinbase),
                    pool("liar", Reward::Coinbase),
                    pool("quoted", Reward::PerShareBtc(1.1e-12)),
                ],
                ..BooksConfig::default()
            },
            Clock::at(std::time::Instant::now(), t0),
        );
        let honest = JobValue {
            difficulty: 150e12,
            reward_sat: Some(315_000_000),
        };
        // Half the difficulty and twice the reward: four times the pay
        // by its own books.
        let liar = JobValue {
            difficulty: 75e12,
            reward_sat: Some(630_000_000),
        };
        books.on_job(0, &honest, t0);
        books.on_job(1, &liar, t0);
        books.on_job(2, &honest, t0);
        let w = books.worker("w");
        for i in 0..200 {
            for (p, v) in [(0, &honest), (1, &liar), (2, &honest)] {
                books.record(
                    &w,
                    Some(p),
                    0,
                    t0 + i * 1000,
                    1.0,
                    v,
                    ShareKind::Accepted { block: false },
                );
            }
        }
        let now = t0 + 200_000;
        let pays = comparable_pays(&books, now, Window::M5);
        let (own, fair): (Vec<f64>, Vec<f64>) = pays
            .iter()
            .map(|(p, c)| (p.hashprice_btc.unwrap_or(0.0), c.map_or(0.0, |c| c.0)))
            .unzip();
        assert!((own[1] / own[0] - 4.0).abs() < 1e-6, "{own:?}");
        // Compared by the hardest difficulty and the lower median reward:
        // the liar pays what the honest pool pays.
        assert!((fair[1] / fair[0] - 1.0).abs() < 1e-9, "{fair:?}");
        // The honest pool at mainnet-like figures, and the quoted payout
        // as quoted.
        let net = money::network_hashprice_btc(150e12, 3.15) * 0.99;
        assert!((fair[0] / net - 1.0).abs() < 1e-9, "{fair:?} vs {net}");
        let quoted = money::effective_hashprice(1.1e-12, 1.0, 1.0).unwrap_or(0.0);
        assert!((fair[2] / quoted - 1.0).abs() < 1e-9, "{fair:?}");
    }

    #[test]
    fn no_rejects_is_not_certainty_and_no_work_is_no_figure() {
        let pay = PoolPay::of(&figures(400.0, 0.0, 1e-12));
        let per_share = money::effective_hashprice(1e-12, 1.0, 1.0).unwrap_or(0.0);
        // Floor: √(1/n / n) = 1/n.
        let s = pay.sigma_btc.unwrap_or(0.0) / per_share;
        assert!((s - 1.0 / 400.0).abs() < 1e-12, "{s}");
        let none = PoolPay::of(&figures(0.0, 0.0, 1e-12));
        assert_eq!(none.hashprice_btc, None);
        assert_eq!(none.sigma_btc, None);
        // Everything rejected: pays nothing, and says how sure that is.
        let all = PoolPay::of(&figures(0.0, 50.0, 1e-12));
        assert_eq!(all.hashprice_btc, Some(0.0));
        assert!(all.sigma_btc.unwrap_or(0.0) > 0.0);
    }
}
