//! Money on the command line: `sluice hashprice` (the calculator) and the
//! worker table of `sluice workers` and `sluice demo`.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;
use sluice_books::money;

/// Parses a difficulty with an optional SI suffix (`155.97T`, `1.2e14`).
pub fn parse_difficulty(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        Some('T') => (&s[..s.len() - 1], 1e12),
        Some('P') => (&s[..s.len() - 1], 1e15),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("not a difficulty: {s:?} (e.g. 155.97T or 1.5597e14)"))?;
    let v = v * mult;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("difficulty must be positive, got {s:?}"))
    }
}

/// What `sluice hashprice` computes.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HashpriceReport {
    /// Network difficulty.
    pub difficulty: f64,
    /// Block reward, BTC.
    pub reward_btc: f64,
    /// BTC price, USD.
    pub price_usd: f64,
    /// USD per PH/s per day.
    pub hashprice_usd_per_ph_day: f64,
    /// BTC per PH/s per day.
    pub hashprice_btc_per_ph_day: f64,
    /// USD per TH/s per day.
    pub hashprice_usd_per_th_day: f64,
    /// With an efficiency and a power price: the machine's economics.
    pub machine: Option<MachineReport>,
}

/// A machine's economics at the network hashprice.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MachineReport {
    /// J/TH.
    pub efficiency_j_per_th: f64,
    /// USD per kWh.
    pub power_price_usd_per_kwh: f64,
    /// Power cost of 1 PH/s per day (24 · E · c), the break-even hashprice.
    pub break_even_hashprice: f64,
    /// BTC price at which it breaks even.
    pub break_even_price_usd: f64,
    /// Hashprice − power cost, USD per PH/s per day.
    pub margin_usd_per_ph_day: f64,
    /// Margin / hashprice.
    pub margin_fraction: f64,
}

/// The calculator.
pub fn hashprice(
    difficulty: f64,
    reward_btc: f64,
    price_usd: f64,
    machine: Option<(f64, f64)>,
) -> Result<HashpriceReport, String> {
    for (name, v) in [("--reward", reward_btc), ("--price", price_usd)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{name} must be positive, got {v}"));
        }
    }
    let h = money::network_hashprice(difficulty, reward_btc, price_usd);
    let machine = match machine {
        None => None,
        Some((e, c)) => {
            if !(e.is_finite() && e > 0.0) {
                return Err(format!("--efficiency must be positive J/TH, got {e}"));
            }
            if !(c.is_finite() && c >= 0.0) {
                return Err(format!(
                    "--power-price must be 0 or positive USD/kWh, got {c}"
                ));
            }
            let b = money::break_even_hashprice(e, c);
            Some(MachineReport {
                efficiency_j_per_th: e,
                power_price_usd_per_kwh: c,
                break_even_hashprice: b,
                break_even_price_usd: money::break_even_price(price_usd, b, h)
                    .unwrap_or(f64::INFINITY),
                margin_usd_per_ph_day: h - b,
                margin_fraction: (h - b) / h,
            })
        }
    };
    Ok(HashpriceReport {
        difficulty,
        reward_btc,
        price_usd,
        hashprice_usd_per_ph_day: h,
        hashprice_btc_per_ph_day: money::network_hashprice_btc(difficulty, reward_btc),
        hashprice_usd_per_th_day: h / 1000.0,
        machine,
    })
}

impl HashpriceReport {
    /// Human text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "difficulty {:.4e}, reward {} BTC, BTC ${:.2}",
            self.difficulty, self.reward_btc, self.price_usd
        );
        let _ = writeln!(
            s,
            "network hashprice: ${:.2}/PH/s/day (${:.5}/TH/s/day, {:.8} BTC/PH/s/day)",
            self.hashprice_usd_per_ph_day,
            self.hashprice_usd_per_th_day,
            self.hashprice_btc_per_ph_day
        );
        if let Some(m) = &self.machine {
            let _ = writeln!(
                s,
                "at {} J/TH and ${}/kWh: break-even hashprice ${:.2}/PH/s/day, break-even BTC price ${:.0}",
                m.efficiency_j_per_th,
                m.power_price_usd_per_kwh,
                m.break_even_hashprice,
                m.break_even_price_usd
            );
            let _ = writeln!(
                s,
                "margin ${:.2}/PH/s/day ({:.1} % of revenue){}",
                m.margin_usd_per_ph_day,
                m.margin_fraction * 100.0,
                if m.margin_usd_per_ph_day < 0.0 {
                    ": below break-even, this machine loses money"
                } else {
                    ""
                }
            );
        }
        s
    }
}

/// Percent-encodes a query value.
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs JSON from a running instance's API; an API error's message is
/// passed on.
pub fn get_json(url: &str) -> anyhow::Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url}: {e} (is sluice running with --api-listen?)"))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{url}: not JSON ({e})"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{url}: {} {}",
            status.as_u16(),
            v["error"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}

/// `1.23 TH/s` and the like.
pub fn fmt_hashrate(h: f64) -> String {
    const UNITS: [(&str, f64); 6] = [
        ("EH/s", 1e18),
        ("PH/s", 1e15),
        ("TH/s", 1e12),
        ("GH/s", 1e9),
        ("MH/s", 1e6),
        ("kH/s", 1e3),
    ];
    for (u, m) in UNITS {
        if h >= m {
            return format!("{:.2} {u}", h / m);
        }
    }
    format!("{h:.0} H/s")
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn money_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// The worker table from a `/api/v1/workers` page (JSON).
pub fn workers_table(page: &Value) -> String {
    let mut s = String::new();
    let price = &page["price"];
    let stale = price["stale"].as_bool().unwrap_or(false);
    let _ = writeln!(
        s,
        "window {} | BTC {}{} | network hashprice {} $/PH/day | {} of {} workers, sorted by {} {}",
        page["window"].as_str().unwrap_or("?"),
        price["usd"]
            .as_f64()
            .map_or_else(|| "unknown".into(), |p| format!("${p:.0}")),
        if stale { " (STALE)" } else { "" },
        money_cell(page["network_hashprice"].as_f64()),
        page["workers"].as_array().map_or(0, Vec::len),
        page["total"].as_u64().unwrap_or(0),
        page["sort"].as_str().unwrap_or("?"),
        if page["desc"].as_bool().unwrap_or(false) {
            "desc"
        } else {
            "asc"
        },
    );
    let _ = writeln!(
        s,
        "{:<20} {:>12} {:>7} {:>12} {:>7} {:>10} {:>10} {:>11} {:>11} {:>9}  status",
        "worker",
        "hashrate",
        "accept",
        "eff $/PH/d",
        "effic.",
        "power W",
        "b/e $/PH",
        "margin $/PH",
        "profit $/d",
        "shares",
    );
    for w in page["workers"].as_array().into_iter().flatten() {
        let profit = w.get("profit").filter(|p| !p.is_null());
        let below = profit
            .and_then(|p| p["below_break_even"].as_bool())
            .unwrap_or(false);
        let name = w["name"].as_str().unwrap_or("?");
        let name: String = if name.chars().count() > 20 {
            name.chars().take(19).chain(['…']).collect()
        } else {
            name.into()
        };
        let _ = writeln!(
            s,
            "{:<20} {:>12} {:>7} {:>12} {:>7} {:>10} {:>10} {:>11} {:>11} {:>9}  {}",
            name,
            fmt_hashrate(num(w, "hashrate_submitted").unwrap_or(0.0)),
            num(w, "accept_rate").map_or_else(|| "-".into(), |a| format!("{:.1}%", a * 100.0)),
            money_cell(num(w, "effective_hashprice")),
            num(w, "efficiency").map_or_else(|| "-".into(), |a| format!("{:.1}%", a * 100.0)),
            profit
                .and_then(|p| num(p, "power_w"))
                .map_or_else(|| "-".into(), |x| format!("{x:.0}")),
            money_cell(profit.and_then(|p| num(p, "break_even_hashprice"))),
            money_cell(
                num(w, "effective_hashprice")
                    .zip(profit.and_then(|p| num(p, "break_even_hashprice")))
                    .map(|(e, b)| e - b)
            ),
            profit
                .and_then(|p| num(p, "profit_usd_day"))
                .map_or_else(|| "-".into(), |x| format!("{x:.4}")),
            w["accepted_shares"].as_u64().unwrap_or(0),
            if profit.is_none() {
                ""
            } else if below {
                "BELOW BREAK-EVEN"
            } else {
                "ok"
            },
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculator_reproduces_published_hashprice_and_s21_break_even() {
        // Hashrate Index, 3 Nov 2025: $43.33/PH/day; BTC $106,935,
        // difficulty 155.97 T, fees 0.62 % of the reward.
        let r = hashprice(
            155.97e12,
            3.125 / (1.0 - 0.0062),
            106_935.0,
            Some((17.5, 0.06)),
        )
        .unwrap();
        assert!((r.hashprice_usd_per_ph_day / 43.33 - 1.0).abs() < 0.005);
        let m = r.machine.clone().unwrap();
        assert!((m.break_even_hashprice - 25.20).abs() < 1e-9);
        assert!(
            (m.break_even_price_usd - 106_935.0 * 25.2 / r.hashprice_usd_per_ph_day).abs() < 1e-6
        );
        assert!(r.render().contains("$25.20/PH/s/day"));
    }

    #[test]
    fn difficulties_and_bad_inputs() {
        assert_eq!(parse_difficulty("155.97T"), Ok(155.97e12));
        assert_eq!(parse_difficulty("1.5e14"), Ok(1.5e14));
        assert!(parse_difficulty("lots").is_err());
        assert!(parse_difficulty("-3T").is_err());
        assert!(hashprice(1e14, 0.0, 1.0, None).is_err());
        assert!(hashprice(1e14, 3.125, 1e5, Some((0.0, 0.06))).is_err());
        assert!(hashprice(1e14, 3.125, 1e5, Some((17.5, -1.0))).is_err());
    }

    #[test]
    fn table_flags_workers_below_break_even() {
        let page = serde_json::json!({
            "window": "1h", "total": 2, "sort": "profit_usd_day", "desc": false,
            "price": {"usd": 90000.0, "stale": true, "source": "feed"},
            "network_hashprice": 38.2,
            "workers": [
                {"name": "s9-01", "hashrate_submitted": 13.5e12, "accept_rate": 0.99, "effective_hashprice": 37.0,
                 "efficiency": 0.97, "accepted_shares": 10,
                 "profit": {"power_w": 1323.0, "break_even_hashprice": 141.12, "profit_usd_day": -1.4, "below_break_even": true}},
                {"name": "s21-01", "hashrate_submitted": 200e12, "accept_rate": 0.995, "effective_hashprice": 37.5,
                 "efficiency": 0.98, "accepted_shares": 99, "profit": null}
            ]
        });
        let t = workers_table(&page);
        assert!(t.contains("(STALE)"));
        let s9 = t.lines().find(|l| l.starts_with("s9-01")).unwrap();
        assert!(
            s9.contains("BELOW BREAK-EVEN") && s9.contains("13.50 TH/s") && s9.contains("141.12")
        );
        let s21 = t.lines().find(|l| l.starts_with("s21-01")).unwrap();
        assert!(!s21.contains("BELOW"));
    }
}
