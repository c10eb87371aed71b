//! [`Books::advice`]: curtailment advice from the books' figures.

use crate::advice::{Advice, ClassAdvice, Nominal, Scenario, class_advice, worker_advice};
use crate::money::Power;
use crate::tally::Window;

use super::Books;

/// Most worker rows one advice returns.
pub const MAX_ADVICE_WORKERS: usize = 1_000;

/// What-if overrides and the page size.
#[derive(Clone, Copy, Debug, Default)]
pub struct AdviceQuery {
    /// Network hashprice to advise at, USD per PH/s per day (default: now).
    pub hashprice: Option<f64>,
    /// BTC price, USD (default: now).
    pub btc_price: Option<f64>,
    /// Power price for every hour, USD per kWh (default: the schedule).
    pub power_price: Option<f64>,
    /// Worker rows to return (at most [`MAX_ADVICE_WORKERS`]).
    pub limit: usize,
}

/// Why no advice can be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdviceError {
    /// No hashprice yet and none given.
    #[error(
        "no network hashprice yet (no job seen, or no BTC price): give one with hashprice= (or --hashprice)"
    )]
    NoHashprice,
    /// A what-if figure that is not a number ≥ 0.
    #[error("{0} must be a number ≥ 0")]
    Bad(&'static str),
}

/// One class's running sums.
#[derive(Default)]
struct ClassSums {
    workers: usize,
    earned_btc: f64,
    value_btc: f64,
    hashrate: f64,
    watts: f64,
}

/// Earned / network value of the work (1 with no work yet).
fn earned_share(earned_btc: f64, value_btc: f64) -> f64 {
    if value_btc > 0.0 {
        earned_btc / value_btc
    } else {
        1.0
    }
}

impl Books {
    /// Advice at `now_ms`: efficiency over the last hour, hashrate over
    /// the last 5 minutes.
    pub fn advice(&self, q: &AdviceQuery, now_ms: u64) -> Result<Advice, AdviceError> {
        for (name, v) in [
            ("hashprice", q.hashprice),
            ("btc_price", q.btc_price),
            ("power_price", q.power_price),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(AdviceError::Bad(name));
            }
        }
        let price = self.price(now_ms);
        let hashprice = q
            .hashprice
            .or_else(|| self.network_hashprice(now_ms))
            .ok_or(AdviceError::NoHashprice)?;
        let schedule = self.power_schedule();
        let hour = schedule.hour(now_ms);
        let mut prices = schedule.day();
        prices[hour] = price.power_usd_per_kwh;
        if let Some(c) = q.power_price {
            prices = [c; 24];
        }
        let s = Scenario {
            hashprice,
            btc_price: q.btc_price.or(price.usd),
            hour,
            prices,
        };
        let rules = &self.cfg.power_rules;
        // Index rules.len(): workers no rule matches (the default power).
        let mut sums: Vec<ClassSums> = (0..=rules.len()).map(|_| ClassSums::default()).collect();
        let mut workers = Vec::new();
        for w in self.workers() {
            let Some(power) = self.power(&w) else {
                continue;
            };
            // What it earns of the network's rate from the hour; what it
            // hashes now from the last 5 minutes (a machine switched back
            // on a quarter of an hour ago is not a quarter as fast).
            let (f, now) = {
                let st = w.state();
                (
                    st.tally.figures(now_ms, Window::H1),
                    st.tally.figures(now_ms, Window::M5),
                )
            };
            let hashrate = now.hashrate_submitted();
            if hashrate <= 0.0 {
                continue;
            }
            let class = self.class_of(w.name());
            let watts = match power {
                Power::EfficiencyJPerTh(e) => e * hashrate / 1e12,
                Power::Watts(w) => w,
            };
            let c = &mut sums[class.unwrap_or(rules.len())];
            c.workers += 1;
            c.earned_btc += f.sums.earned_btc;
            c.value_btc += f.sums.value_btc;
            c.hashrate += hashrate;
            c.watts += watts;
            let efficiency = earned_share(f.sums.earned_btc, f.sums.value_btc);
            let a = worker_advice(
                w.name(),
                class.map(|i| rules[i].class.as_str()),
                hashrate,
                watts,
                efficiency,
                &s,
            );
            if a.saved_usd_day > 0.0 {
                workers.push(a);
            }
        }
        let class_row =
            |name: &str, pattern: &str, power: Option<Power>, c: &ClassSums| -> ClassAdvice {
                let e = match power {
                    Some(Power::EfficiencyJPerTh(e)) => Some(e),
                    // A fixed draw: J/TH from what its machines really hash.
                    Some(Power::Watts(_)) => {
                        (c.hashrate > 0.0).then(|| c.watts / (c.hashrate / 1e12))
                    }
                    None => None,
                };
                let efficiency = earned_share(c.earned_btc, c.value_btc);
                class_advice(name, pattern, e, efficiency, c.workers, &s)
            };
        let mut classes: Vec<ClassAdvice> = rules
            .iter()
            .zip(&sums)
            .map(|(r, c)| {
                let mut a = class_row(&r.class, &r.pattern, Some(r.power), c);
                a.nominal = r.nominal_th_s.map(|th| {
                    let watts = match r.power {
                        Power::EfficiencyJPerTh(e) => e * th,
                        Power::Watts(w) => w,
                    };
                    Nominal::at(th, watts, a.hashprice, s.price_now())
                });
                a
            })
            .collect();
        if let Some(p) = self.cfg.default_power {
            classes.push(class_row("default", "*", Some(p), &sums[rules.len()]));
        }
        workers.sort_by(|a, b| {
            b.saved_usd_day
                .total_cmp(&a.saved_usd_day)
                .then_with(|| a.name.cmp(&b.name))
        });
        let switch_off_now = workers.iter().filter(|w| w.switch_off_now).count();
        let saved_usd_day = workers.iter().map(|w| w.saved_usd_day).sum();
        let losing_workers = workers.len();
        workers.truncate(q.limit.min(MAX_ADVICE_WORKERS));
        Ok(Advice {
            at: now_ms / 1000,
            scenario: s,
            what_if: q.hashprice.is_some() || q.btc_price.is_some() || q.power_price.is_some(),
            classes,
            switch_off_now,
            saved_usd_day,
            losing_workers,
            workers,
        })
    }
}
