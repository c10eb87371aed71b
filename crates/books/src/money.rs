//! Hashprice and profitability: the definitions of ARCHITECTURE.md
//! ("Hashprice"), as plain functions of their inputs.
//!
//! Units: hashprice in USD per PH/s per day, difficulty as Bitcoin's
//! difficulty (difficulty-1 target = 2^32 hashes), reward in BTC, power
//! price in USD per kWh, efficiency in J/TH.

use serde::{Deserialize, Serialize};

use crate::tally::HASHES_PER_DIFF1;

const SECS_PER_DAY: f64 = 86_400.0;
const HASHES_PER_PH: f64 = 1e15;

/// Network hashprice: what 1 PH/s earns in a day at difficulty `d`,
/// reward `reward_btc` and BTC price `price_usd`
/// (`R · P · 86400 · 10^15 / (D · 2^32)`).
pub fn network_hashprice(difficulty: f64, reward_btc: f64, price_usd: f64) -> f64 {
    reward_btc * price_usd * SECS_PER_DAY * HASHES_PER_PH / (difficulty * HASHES_PER_DIFF1)
}

/// The same in BTC per PH/s per day.
pub fn network_hashprice_btc(difficulty: f64, reward_btc: f64) -> f64 {
    network_hashprice(difficulty, reward_btc, 1.0)
}

/// Expected BTC for one share of difficulty `d` (`d / D · R`).
pub fn share_value_btc(d: f64, difficulty: f64, reward_btc: f64) -> f64 {
    if difficulty > 0.0 {
        d / difficulty * reward_btc
    } else {
        0.0
    }
}

/// Daily power cost of 1 PH/s at `j_per_th` and `usd_per_kwh`
/// (`24 · E · c`): the break-even hashprice.
pub fn break_even_hashprice(j_per_th: f64, usd_per_kwh: f64) -> f64 {
    24.0 * j_per_th * usd_per_kwh
}

/// BTC price at which a machine earning `hashprice` at `price_usd` just
/// pays its power (`P · break-even / hashprice`).
pub fn break_even_price(price_usd: f64, break_even: f64, hashprice: f64) -> Option<f64> {
    (hashprice > 0.0).then(|| price_usd * break_even / hashprice)
}

/// USD per day earned from `earned_btc` over `span_s` seconds.
pub fn per_day(amount: f64, span_s: f64) -> f64 {
    if span_s > 0.0 {
        amount * SECS_PER_DAY / span_s
    } else {
        0.0
    }
}

/// Effective hashprice: earned USD per day over submitted PH/s. The span
/// cancels: earned BTC · P · 86400 · 10^15 / (submitted work · 2^32).
pub fn effective_hashprice(earned_btc: f64, submitted_work: f64, price_usd: f64) -> Option<f64> {
    (submitted_work > 0.0).then(|| {
        earned_btc * price_usd * SECS_PER_DAY * HASHES_PER_PH / (submitted_work * HASHES_PER_DIFF1)
    })
}

/// How a machine's power is known.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    /// Efficiency in J/TH: power follows the measured hashrate.
    EfficiencyJPerTh(f64),
    /// A fixed draw in W (measured at the wall, say).
    Watts(f64),
}

/// Power of the workers whose names match a pattern: one machine class.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerRule {
    /// Class name (advice is given per class).
    pub class: String,
    /// Worker-name pattern (`*` and `?`).
    pub pattern: String,
    /// Its power.
    pub power: Power,
    /// The machine's nominal hashrate, TH/s, for figures per machine at
    /// its real size (test rigs and the demo hash at kH/s).
    pub nominal_th_s: Option<f64>,
}

/// Profitability of one machine over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Profit {
    /// Power draw, W.
    pub power_w: f64,
    /// Power cost per day, USD.
    pub power_cost_usd_day: f64,
    /// Earnings per day, USD.
    pub revenue_usd_day: f64,
    /// Revenue minus power cost, USD per day.
    pub profit_usd_day: f64,
    /// Hashprice at which this machine just pays its power, USD/PH/day
    /// (`None`: no hashrate to spread a fixed draw over).
    pub break_even_hashprice: Option<f64>,
    /// BTC price at which it just pays its power, at its own effective
    /// hashprice.
    pub break_even_price_usd: Option<f64>,
    /// True when it loses money.
    pub below_break_even: bool,
}

/// Profitability from a machine's submitted hashrate (H/s), its daily
/// revenue, its effective hashprice, power and the prices.
pub fn profit(
    hashrate_submitted: f64,
    revenue_usd_day: f64,
    effective: Option<f64>,
    power: Power,
    usd_per_kwh: f64,
    price_usd: f64,
) -> Profit {
    let th = hashrate_submitted / 1e12;
    let (power_w, j_per_th) = match power {
        Power::EfficiencyJPerTh(e) => (e * th, Some(e)),
        Power::Watts(w) => (w, (th > 0.0).then(|| w / th)),
    };
    let power_cost_usd_day = power_w / 1000.0 * 24.0 * usd_per_kwh;
    let break_even_hashprice = j_per_th.map(|e| break_even_hashprice(e, usd_per_kwh));
    let profit_usd_day = revenue_usd_day - power_cost_usd_day;
    Profit {
        power_w,
        power_cost_usd_day,
        revenue_usd_day,
        profit_usd_day,
        break_even_hashprice,
        break_even_price_usd: match (break_even_hashprice, effective) {
            (Some(b), Some(h)) => break_even_price(price_usd, b, h),
            _ => None,
        },
        below_break_even: profit_usd_day < 0.0,
    }
}

/// Matches `*` (any run) and `?` (one character) against a worker name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Last `*` seen and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s21_breaks_even_at_25_20() {
        // ARCHITECTURE.md's check: 17.5 J/TH at $0.06/kWh.
        assert!((break_even_hashprice(17.5, 0.06) - 25.20).abs() < 1e-9);
        // And a 1 PH/s fleet of them costs exactly that per day.
        let p = profit(
            1e15,
            25.20,
            Some(25.20),
            Power::EfficiencyJPerTh(17.5),
            0.06,
            1.0,
        );
        assert!((p.power_w - 17_500.0).abs() < 1e-6);
        assert!((p.power_cost_usd_day - 25.20).abs() < 1e-9);
        assert!(p.profit_usd_day.abs() < 1e-9);
    }

    #[test]
    fn published_hashprice_reproduced() {
        // Hashrate Index Roundup, 3 Nov 2025: $43.33/PH/day at BTC
        // $106,935, fees 0.62 % of rewards, difficulty 155.97 T.
        let r = 3.125 / (1.0 - 0.0062);
        let h = network_hashprice(155.97e12, r, 106_935.0);
        assert!((h / 43.33 - 1.0).abs() < 0.005, "{h}");
    }

    #[test]
    fn break_even_price_scales_with_hashprice() {
        // A machine earning exactly its break-even hashprice breaks even
        // at today's price; earning twice that, at half the price.
        assert_eq!(break_even_price(90_000.0, 25.2, 25.2), Some(90_000.0));
        assert_eq!(break_even_price(90_000.0, 25.2, 50.4), Some(45_000.0));
        assert_eq!(break_even_price(90_000.0, 25.2, 0.0), None);
    }

    #[test]
    fn fixed_draw_loses_money_without_hashrate() {
        let p = profit(0.0, 0.0, None, Power::Watts(3_500.0), 0.06, 90_000.0);
        assert!((p.power_cost_usd_day - 5.04).abs() < 1e-9);
        assert!(p.below_break_even);
        assert_eq!(p.break_even_hashprice, None);
        // 200 TH/s at 3500 W is 17.5 J/TH.
        let p = profit(
            200e12,
            10.0,
            Some(50.0),
            Power::Watts(3_500.0),
            0.06,
            90_000.0,
        );
        assert!((p.break_even_hashprice.unwrap_or(0.0) - 25.2).abs() < 1e-9);
        assert!(!p.below_break_even);
    }

    #[test]
    fn effective_hashprice_is_network_times_accept_rate_times_fee() {
        let (d, r, p) = (150e12, 3.15, 90_000.0);
        let net = network_hashprice(d, r, p);
        // 100 shares of difficulty 1e6, 97 accepted, 2 % fee.
        let earned = 97.0 * share_value_btc(1e6, d, r) * 0.98;
        let eff = effective_hashprice(earned, 100.0 * 1e6, p).unwrap_or(0.0);
        assert!((eff / (net * 0.97 * 0.98) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn globs() {
        assert!(glob_match("s21-*", "s21-rack4.07"));
        assert!(glob_match("*.07", "s21-rack4.07"));
        assert!(glob_match("s?1-*", "s21-x"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("s19-*", "s21-rack4"));
        assert!(!glob_match("s21", "s21-rack4"));
    }
}
