//! `sluice routing`: the routing report of a running instance as a table.

use std::fmt::Write;

use serde_json::Value;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1} %", x * 100.0))
}

/// The report as text: one row per pool, then each pool's reason.
pub fn routing_table(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "policy {} | window {} | margin {} | {} σ | split changes {} | sessions moved {} (failover {}) | BTC {}",
        r["policy"].as_str().unwrap_or("?"),
        r["window"].as_str().unwrap_or("?"),
        pct(r["margin"].as_f64()),
        r["confidence"].as_f64().unwrap_or(0.0),
        r["split_changes"].as_u64().unwrap_or(0),
        r["session_moves"].as_u64().unwrap_or(0),
        r["failover_moves"].as_u64().unwrap_or(0),
        r["price_usd"]
            .as_f64()
            .map_or_else(|| "unknown".into(), |p| format!("${p:.0}")),
    );
    let _ = writeln!(
        s,
        "{:<32} {:>5} {:>4} {:>18} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "pool", "up", "tier", "pays $/PH/d", "accept", "shares", "target", "now", "sessions"
    );
    let pools = r["pools"].as_array().cloned().unwrap_or_default();
    for p in &pools {
        let m = &p["measured"];
        let pays = match (p["hashprice_usd"].as_f64(), p["sigma_usd"].as_f64()) {
            (Some(h), Some(e)) => format!("{h:.2} ± {e:.2}"),
            (Some(h), None) => format!("{h:.2}"),
            _ => "-".into(),
        };
        let name: String = p["name"].as_str().unwrap_or("?").chars().take(32).collect();
        let _ = writeln!(
            s,
            "{:<32} {:>5} {:>4} {:>18} {:>8} {:>8} {:>8} {:>8} {:>8}",
            name,
            if p["routable"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            p["tier"]
                .as_u64()
                .map_or_else(|| "-".into(), |t| t.to_string()),
            pays,
            pct(m["accept_rate"].as_f64()),
            m["shares"].as_u64().unwrap_or(0),
            pct(p["target_share"].as_f64()),
            pct(p["session_share"].as_f64()),
            p["sessions"].as_u64().unwrap_or(0),
        );
    }
    s.push('\n');
    for p in &pools {
        let _ = writeln!(
            s,
            "{}: {}",
            p["name"].as_str().unwrap_or("?"),
            p["why"].as_str().unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_pool_and_why() {
        let r = serde_json::json!({
            "policy": "hashprice", "window": "1h", "margin": 0.02, "confidence": 2.0,
            "split_changes": 3, "session_moves": 12, "failover_moves": 0, "price_usd": 86000.0,
            "pools": [{
                "name": "stratum+tcp://a:3333", "routable": true, "tier": 0,
                "hashprice_usd": 37.9, "sigma_usd": 0.12,
                "measured": {"accept_rate": 0.995, "shares": 4000},
                "target_share": 0.8, "session_share": 0.75, "sessions": 15,
                "why": "in the best tier"
            }]
        });
        let t = routing_table(&r);
        assert!(t.contains("policy hashprice"), "{t}");
        assert!(t.contains("37.90 ± 0.12"), "{t}");
        assert!(t.contains("80.0 %"), "{t}");
        assert!(t.contains("stratum+tcp://a:3333: in the best tier"), "{t}");
    }
}
