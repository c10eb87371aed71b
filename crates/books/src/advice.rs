//! Curtailment advice: which machines lose money at which hours, and what
//! switching them off then saves. Advice only: sluice never powers a
//! machine off.
//!
//! - [`PowerSchedule`]: the electricity price by local hour (a base price
//!   and time-of-use periods); a feed's fresh price overrides the current
//!   hour.
//! - [`Scenario`]: the hashprice, BTC price and the day's power prices the
//!   advice is computed at (now, or a what-if).
//! - [`class_advice`] and [`worker_advice`]: the arithmetic, as
//!   ARCHITECTURE.md defines it: a machine of efficiency `E` J/TH costs
//!   `24 · E · c` USD per PH/s per day at `c` USD/kWh, and earns the
//!   network hashprice times its efficiency (accept rate, fee, stale work:
//!   earned / network value of its work, from the books).

use serde::Serialize;

use crate::money;

/// One time-of-use period: `[from_hour, to_hour)` in local time, wrapping
/// past midnight when `to_hour <= from_hour`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TouPeriod {
    /// First hour (0–23).
    pub from_hour: u8,
    /// Hour it ends (1–24, exclusive).
    pub to_hour: u8,
    /// Price in the period, USD per kWh.
    pub usd_per_kwh: f64,
}

impl TouPeriod {
    /// True when local `hour` is in the period.
    pub fn covers(&self, hour: usize) -> bool {
        let (f, t, h) = (usize::from(self.from_hour), usize::from(self.to_hour), hour);
        if f < t {
            (f..t).contains(&h)
        } else {
            h >= f || h < t
        }
    }
}

/// The electricity price by hour.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PowerSchedule {
    /// Price outside every period, USD per kWh.
    pub base_usd_per_kwh: f64,
    /// Time-of-use periods; the first that covers an hour wins.
    pub periods: Vec<TouPeriod>,
    /// Local time's offset from UTC, minutes.
    pub utc_offset_min: i32,
}

impl PowerSchedule {
    /// Local hour (0–23) at `now_ms`.
    pub fn hour(&self, now_ms: u64) -> usize {
        let min = (now_ms / 60_000) as i64 + i64::from(self.utc_offset_min);
        (min.div_euclid(60)).rem_euclid(24) as usize
    }

    /// The price at local `hour`.
    pub fn at_hour(&self, hour: usize) -> f64 {
        self.periods
            .iter()
            .find(|p| p.covers(hour))
            .map_or(self.base_usd_per_kwh, |p| p.usd_per_kwh)
    }

    /// The day's prices by local hour.
    pub fn day(&self) -> [f64; 24] {
        std::array::from_fn(|h| self.at_hour(h))
    }
}

/// What the advice is computed at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Network hashprice, USD per PH/s per day.
    pub hashprice: f64,
    /// BTC price, USD (for break-even prices).
    pub btc_price: Option<f64>,
    /// Local hour now.
    pub hour: usize,
    /// Power price by local hour, USD per kWh (the current hour's may
    /// come from a feed).
    pub prices: [f64; 24],
}

impl Scenario {
    /// Power price now.
    pub fn price_now(&self) -> f64 {
        self.prices[self.hour % 24]
    }
}

/// Hours as ranges, `["17-21", "23-1"]` (end exclusive).
pub fn hour_ranges(hours: &[bool; 24]) -> Vec<String> {
    if hours.iter().all(|h| *h) {
        return vec!["0-24".into()];
    }
    // Start at an hour that is off, so a run across midnight stays whole.
    let Some(start) = (0..24).find(|&h| !hours[h]) else {
        return Vec::new();
    };
    let mut run: Option<usize> = None;
    let mut out: Vec<(usize, String)> = Vec::new();
    for k in 1..=24 {
        let h = (start + k) % 24;
        match (hours[h], run) {
            (true, None) => run = Some(h),
            (false, Some(f)) => {
                out.push((f, format!("{f}-{}", if h == 0 { 24 } else { h })));
                run = None;
            }
            _ => {}
        }
    }
    // In order of the clock, from midnight.
    out.sort_by_key(|(f, _)| *f);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Advice for one machine class.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassAdvice {
    /// Class name.
    pub class: String,
    /// Worker-name pattern.
    pub pattern: String,
    /// J/TH (configured, or for a fixed draw, from its workers' hashrate).
    pub efficiency_j_per_th: Option<f64>,
    /// Workers of this class with work in the window.
    pub workers: usize,
    /// Earned / network value of their work (accept rate, fee, stale);
    /// 1 when no worker has work yet.
    pub efficiency: f64,
    /// What a PH/s of this class earns: network hashprice × efficiency.
    pub hashprice: f64,
    /// Its power cost per PH/s per day at the current power price.
    pub break_even_hashprice: Option<f64>,
    /// Network hashprice − power cost, USD per PH/s per day (the machine
    /// alone, as a calculator gives it).
    pub margin_at_network: Option<f64>,
    /// What it earns here − power cost, USD per PH/s per day.
    pub margin: Option<f64>,
    /// Margin / what it earns.
    pub margin_fraction: Option<f64>,
    /// Losing money now.
    pub losing_now: bool,
    /// Local hours it loses money at (end exclusive).
    pub losing_hours: Vec<String>,
    /// Power price at which it just breaks even, USD per kWh.
    pub break_even_power_price: Option<f64>,
    /// BTC price at which it just pays its power now, at the network
    /// hashprice (the calculator's figure).
    pub break_even_btc_price_at_network: Option<f64>,
    /// The same at what it earns here.
    pub break_even_btc_price: Option<f64>,
    /// Switching it off at its losing hours saves this per PH/s per day.
    pub saved_usd_per_ph_day: Option<f64>,
    /// One machine of the class at its nominal size, when configured.
    pub nominal: Option<Nominal>,
}

/// One machine at its nominal size: what it earns, costs and makes a day
/// at the class's hashprice and this hour's power price.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Nominal {
    /// Hashrate, TH/s.
    pub th_s: f64,
    /// Power draw, W.
    pub power_w: f64,
    /// Revenue, USD per day.
    pub revenue_usd_day: f64,
    /// Power cost, USD per day.
    pub power_cost_usd_day: f64,
    /// Profit, USD per day.
    pub profit_usd_day: f64,
}

impl Nominal {
    /// A machine of `th_s` TH/s drawing `power_w` W, earning `hashprice`
    /// USD per PH/s per day, at `usd_per_kwh`.
    pub fn at(th_s: f64, power_w: f64, hashprice: f64, usd_per_kwh: f64) -> Self {
        let revenue_usd_day = hashprice * th_s / 1000.0;
        let power_cost_usd_day = power_w / 1000.0 * 24.0 * usd_per_kwh;
        Self {
            th_s,
            power_w,
            revenue_usd_day,
            power_cost_usd_day,
            profit_usd_day: revenue_usd_day - power_cost_usd_day,
        }
    }
}

/// The class arithmetic: `e` J/TH, `efficiency` earned/value, `workers`
/// with work.
pub fn class_advice(
    class: &str,
    pattern: &str,
    e: Option<f64>,
    efficiency: f64,
    workers: usize,
    s: &Scenario,
) -> ClassAdvice {
    let h = s.hashprice * efficiency;
    let cost = |c: f64| e.map(|e| money::break_even_hashprice(e, c));
    let b = cost(s.price_now());
    let losing: [bool; 24] = std::array::from_fn(|hr| cost(s.prices[hr]).is_some_and(|b| b > h));
    let saved = e.map(|_| {
        (0..24)
            .filter_map(|hr| cost(s.prices[hr]).map(|b| (b - h).max(0.0) / 24.0))
            .sum()
    });
    ClassAdvice {
        class: class.into(),
        pattern: pattern.into(),
        efficiency_j_per_th: e,
        workers,
        efficiency,
        hashprice: h,
        break_even_hashprice: b,
        margin_at_network: b.map(|b| s.hashprice - b),
        margin: b.map(|b| h - b),
        margin_fraction: b.filter(|_| h > 0.0).map(|b| (h - b) / h),
        losing_now: losing[s.hour % 24],
        losing_hours: hour_ranges(&losing),
        break_even_power_price: e.filter(|e| *e > 0.0).map(|e| h / (24.0 * e)),
        break_even_btc_price_at_network: s
            .btc_price
            .zip(b)
            .and_then(|(p, b)| money::break_even_price(p, b, s.hashprice)),
        break_even_btc_price: s
            .btc_price
            .zip(b)
            .and_then(|(p, b)| money::break_even_price(p, b, h)),
        saved_usd_per_ph_day: saved,
        nominal: None,
    }
}

/// Advice for one worker.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerAdvice {
    /// Worker name.
    pub name: String,
    /// Its class (the power rule it matched), if any.
    pub class: Option<String>,
    /// Submitted hashrate over the window, H/s.
    pub hashrate: f64,
    /// Power draw, W.
    pub power_w: f64,
    /// Earned / network value of its work.
    pub efficiency: f64,
    /// What it earns per PH/s per day at the scenario's hashprice.
    pub hashprice: f64,
    /// Profit now, USD per day at this hour's power price.
    pub profit_usd_day_now: f64,
    /// Switch it off now.
    pub switch_off_now: bool,
    /// Local hour to switch it back on (None: it loses money all day at
    /// this hashprice, or never loses).
    pub back_on_at_hour: Option<u8>,
    /// Local hours to keep it off.
    pub off_hours: Vec<String>,
    /// What keeping it off at those hours saves, USD per day.
    pub saved_usd_day: f64,
}

/// The worker arithmetic: `hashrate` H/s at `power_w` W (both measured or
/// configured), `efficiency` earned/value.
pub fn worker_advice(
    name: &str,
    class: Option<&str>,
    hashrate: f64,
    power_w: f64,
    efficiency: f64,
    s: &Scenario,
) -> WorkerAdvice {
    let h = s.hashprice * efficiency;
    let ph = hashrate / 1e15;
    let profit = |hr: usize| h * ph - power_w / 1000.0 * 24.0 * s.prices[hr];
    let losing: [bool; 24] = std::array::from_fn(|hr| profit(hr) < 0.0);
    let now = s.hour % 24;
    let back_on = (losing[now] && !losing.iter().all(|l| *l))
        .then(|| (1..24).map(|k| (now + k) % 24).find(|&hr| !losing[hr]))
        .flatten()
        .map(|hr| hr as u8);
    WorkerAdvice {
        name: name.into(),
        class: class.map(str::to_string),
        hashrate,
        power_w,
        efficiency,
        hashprice: h,
        profit_usd_day_now: profit(now),
        switch_off_now: losing[now],
        back_on_at_hour: back_on,
        off_hours: hour_ranges(&losing),
        saved_usd_day: (0..24).map(|hr| (-profit(hr)).max(0.0) / 24.0).sum(),
    }
}

/// `/api/v1/advice` and `sluice advise`.
#[derive(Clone, Debug, Serialize)]
pub struct Advice {
    /// When (Unix seconds).
    pub at: u64,
    /// The scenario: hashprice, BTC price, local hour, power prices.
    pub scenario: Scenario,
    /// True when the hashprice, BTC price or power price was given (a
    /// what-if) rather than read from the books.
    pub what_if: bool,
    /// Per machine class.
    pub classes: Vec<ClassAdvice>,
    /// Workers losing money now.
    pub switch_off_now: usize,
    /// What switching every losing worker off at its losing hours saves,
    /// USD per day.
    pub saved_usd_day: f64,
    /// Workers that lose money at some hour.
    pub losing_workers: usize,
    /// The first of them, most saved first.
    pub workers: Vec<WorkerAdvice>,
}

#[cfg(test)]
mod tests;
