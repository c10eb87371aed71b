//! `sluice advise`: the curtailment advice of a running instance as text.

use std::fmt::Write;

use serde_json::Value;

fn money(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        // The demo's kH/s machines earn and save fractions of a cent.
        Some(x) if x != 0.0 && x.abs() < 0.01 => format!("{x:.1e}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn usd(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |p| format!("${p:.0}"))
}

fn hours(v: &Value) -> String {
    let h: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if h.is_empty() {
        "never".into()
    } else {
        h.join(", ")
    }
}

/// The advice as text: the scenario, one row per machine class, then the
/// workers to switch off and what that saves.
pub fn advice_text(a: &Value) -> String {
    let mut s = String::new();
    let sc = &a["scenario"];
    let hour = sc["hour"].as_u64().unwrap_or(0) as usize;
    let _ = writeln!(
        s,
        "{}hashprice {} $/PH/day | BTC {} | power now {} $/kWh (local hour {hour})",
        if a["what_if"].as_bool().unwrap_or(false) {
            "WHAT-IF: "
        } else {
            ""
        },
        money(&sc["hashprice"]),
        sc["btc_price"]
            .as_f64()
            .map_or_else(|| "unknown".into(), |p| format!("${p:.0}")),
        sc["prices"][hour]
            .as_f64()
            .map_or_else(|| "-".into(), |c| format!("{c:.3}")),
    );
    let _ = writeln!(
        s,
        "\n{:<12} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}  {:<16} {:>10} {:>9} {:>9} {:>11}",
        "class",
        "J/TH",
        "workers",
        "earns",
        "costs",
        "margin",
        "margin@net",
        "loses at hours",
        "b/e $/kWh",
        "b/e BTC",
        "BTC@net",
        "saves/PH/d",
    );
    for c in a["classes"].as_array().cloned().unwrap_or_default() {
        let name: String = c["class"]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(12)
            .collect();
        let _ = writeln!(
            s,
            "{:<12} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}  {:<16} {:>10} {:>9} {:>9} {:>11}",
            name,
            c["efficiency_j_per_th"]
                .as_f64()
                .map_or_else(|| "-".into(), |e| format!("{e:.1}")),
            c["workers"].as_u64().unwrap_or(0),
            money(&c["hashprice"]),
            money(&c["break_even_hashprice"]),
            money(&c["margin"]),
            money(&c["margin_at_network"]),
            hours(&c["losing_hours"]),
            c["break_even_power_price"]
                .as_f64()
                .map_or_else(|| "-".into(), |p| format!("{p:.4}")),
            usd(&c["break_even_btc_price"]),
            usd(&c["break_even_btc_price_at_network"]),
            money(&c["saved_usd_per_ph_day"]),
        );
    }
    let _ = writeln!(
        s,
        "\n(per PH/s per day, USD; \"earns\" is the network hashprice times what the class really gets of it here; \"@net\": at the network hashprice, the machine alone)"
    );
    let losing = a["losing_workers"].as_u64().unwrap_or(0);
    let _ = writeln!(
        s,
        "\nswitch off now: {} workers | {} workers lose money at some hour | switching them off then saves ${}/day",
        a["switch_off_now"].as_u64().unwrap_or(0),
        losing,
        money(&a["saved_usd_day"]),
    );
    let workers = a["workers"].as_array().cloned().unwrap_or_default();
    if !workers.is_empty() {
        let _ = writeln!(
            s,
            "{:<24} {:<12} {:>9} {:>8} {:>11}  {:<28} {:>9}",
            "worker", "class", "TH/s", "W", "profit $/d", "advice", "saves $/d"
        );
    }
    for w in &workers {
        let advice = if w["switch_off_now"].as_bool().unwrap_or(false) {
            match w["back_on_at_hour"].as_u64() {
                Some(h) => format!("OFF now, back on at {h:02}:00"),
                None => "OFF (loses at every hour)".into(),
            }
        } else {
            format!("off at {}", hours(&w["off_hours"]))
        };
        let name: String = w["name"].as_str().unwrap_or("?").chars().take(24).collect();
        let class: String = w["class"]
            .as_str()
            .unwrap_or("-")
            .chars()
            .take(12)
            .collect();
        let _ = writeln!(
            s,
            "{:<24} {:<12} {:>9.1} {:>8.0} {:>11}  {:<28} {:>9}",
            name,
            class,
            w["hashrate"].as_f64().unwrap_or(0.0) / 1e12,
            w["power_w"].as_f64().unwrap_or(0.0),
            money(&w["profit_usd_day_now"]),
            advice,
            money(&w["saved_usd_day"]),
        );
    }
    if losing as usize > workers.len() {
        let _ = writeln!(s, "… and {} more", losing as usize - workers.len());
    }
    s.push_str("\nAdvice only: sluice never switches machines off.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_classes_hours_and_actions() {
        let a = serde_json::json!({
            "what_if": true,
            "scenario": {"hashprice": 34.49, "btc_price": 86000.0, "hour": 18, "prices": [0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12]},
            "classes": [{
                "class": "s19jpro", "efficiency_j_per_th": 29.5, "workers": 3, "hashprice": 34.49,
                "break_even_hashprice": 42.48, "margin": -7.99, "margin_at_network": -7.99,
                "losing_hours": ["0-24"], "break_even_power_price": 0.0487,
                "break_even_btc_price": 105922.0, "saved_usd_per_ph_day": 7.99
            }],
            "switch_off_now": 1, "losing_workers": 1, "saved_usd_day": 0.8,
            "workers": [{
                "name": "rig1", "class": "s19jpro", "hashrate": 100e12, "power_w": 2950.0,
                "profit_usd_day_now": -0.8, "switch_off_now": true, "back_on_at_hour": 21,
                "off_hours": ["17-21"], "saved_usd_day": 0.8
            }]
        });
        let t = advice_text(&a);
        assert!(t.starts_with("WHAT-IF: hashprice 34.49"), "{t}");
        assert!(t.contains("s19jpro"), "{t}");
        assert!(t.contains("-7.99"), "{t}");
        assert!(t.contains("0-24"), "{t}");
        assert!(t.contains("$105922"), "{t}");
        assert!(t.contains("OFF now, back on at 21:00"), "{t}");
        assert!(t.contains("switch off now: 1 workers"), "{t}");
    }
}
