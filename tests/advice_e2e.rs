//! Curtailment advice end to end: `sluice demo` (its farm of S21, S19 XP,
//! S19j Pro and S9 classes at $0.06/kWh) and `sluice advise` against its
//! API, at the all-time-low hashprice of 21 Nov 2025: $34.49/PH/day, BTC
//! about $86,000 that week (Hashrate Index; AMBCrypto, 23 Nov 2025).
//! Margins by hand: break-even = 24 · E · 0.06 = 1.44 · E $/PH/day.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the demo when the test ends, however it ends.
struct Demo(std::process::Child);
impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn advise(api: &str, json: bool) -> String {
    let mut args = vec![
        "advise",
        "--api",
        api,
        "--hashprice",
        "34.49",
        "--btc-price",
        "86000",
    ];
    if json {
        args.push("--json");
    }
    let out = common::output(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn advice_for_the_demo_farm_at_the_all_time_low_matches_the_hand_figures() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::scratch_dir())
        .args(["demo", "--miners", "16", "--duration", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _demo = Demo(child);
    let mut api = None;
    for _ in 0..5 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if let Some(rest) = line.strip_prefix("API on ") {
            api = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let api = api.expect("the demo prints its API address");
    // Keep draining the live view so the demo never blocks on stdout.
    std::thread::spawn(move || for _ in out.lines() {});
    // Every one of the 16 workers has a few accepted shares in the books
    // (one share that happened to be bad would make a worker look as if
    // it earned nothing).
    let start = Instant::now();
    loop {
        let out = common::output(["workers", "--api", &api, "--json", "--limit", "100"]);
        let page: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let rows = page["workers"].as_array().cloned().unwrap_or_default();
        if rows.len() == 16
            && rows
                .iter()
                .all(|w| w["accepted_shares"].as_u64().unwrap_or(0) >= 5)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{page:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let a: Value = serde_json::from_str(&advise(&api, true)).unwrap();
    let classes = a["classes"].as_array().cloned().unwrap_or_default();
    assert!(
        classes.len() == 4 && classes.iter().all(|c| c["workers"].as_u64() == Some(4)),
        "{a:#}"
    );
    assert_eq!(a["what_if"], true);
    assert_eq!(a["scenario"]["hashprice"], 34.49);
    let by_class = |name: &str| {
        a["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no class {name}: {a:#}"))
    };
    // At the network hashprice: the S21 and S19 XP earn, the S19j Pro and
    // S9 lose.
    for (class, e, loses_at_network) in [
        ("s21", 17.5, false),
        ("s19xp", 21.5, false),
        ("s19jpro", 29.5, true),
        ("s9", 98.0, true),
    ] {
        let c = by_class(class);
        let b = 1.44 * e;
        let f = |k: &str| c[k].as_f64().unwrap();
        assert!((f("break_even_hashprice") - b).abs() < 1e-9, "{c:#}");
        assert!((f("margin_at_network") - (34.49 - b)).abs() < 1e-9, "{c:#}");
        assert!(
            (f("break_even_power_price") * 24.0 * e - f("hashprice")).abs() < 1e-9,
            "{c:#}"
        );
        assert_eq!(f("margin_at_network") < 0.0, loses_at_network, "{c:#}");
        // What the class really earns here: the demo's 2 % fee, its 1 %
        // bad shares and stale work take some off the network hashprice
        // (over a few seconds of shares, by a noisy amount); the verdict
        // follows what it really earns.
        let eff = f("efficiency");
        assert!(eff > 0.5 && eff <= 0.98 + 1e-6, "{c:#}");
        assert!((f("margin") - (34.49 * eff - b)).abs() < 1e-9, "{c:#}");
        let loses = 34.49 * eff < b;
        assert_eq!(c["losing_now"], loses, "{c:#}");
        let hours: Vec<Value> = if loses { vec!["0-24".into()] } else { vec![] };
        assert_eq!(c["losing_hours"].as_array().unwrap(), &hours, "{c:#}");
    }
    // The S21 pays its power down to BTC = 86,000 · 25.20 / 34.49.
    let s21 = by_class("s21");
    let be = s21["break_even_btc_price_at_network"].as_f64().unwrap();
    assert!((be - 62_835.6).abs() < 0.1, "{be}");
    // Every S19j Pro and S9 is to be switched off (all day at $0.06), no
    // S21 is; an S19 XP only if it earns under 90 % of the network's rate.
    let workers = a["workers"].as_array().unwrap();
    let off = |class: &str| {
        workers
            .iter()
            .filter(|w| w["class"] == class && w["switch_off_now"] == true)
            .count()
    };
    assert_eq!((off("s19jpro"), off("s9"), off("s21")), (4, 4, 0), "{a:#}");
    for w in workers {
        let e = match w["class"].as_str().unwrap() {
            "s19xp" => 21.5,
            "s19jpro" => 29.5,
            "s9" => 98.0,
            c => panic!("{c} listed: {a:#}"),
        };
        let loses = 34.49 * w["efficiency"].as_f64().unwrap() < 1.44 * e;
        assert_eq!(w["switch_off_now"], loses, "{w:#}");
    }
    let saved: f64 = workers
        .iter()
        .map(|w| w["saved_usd_day"].as_f64().unwrap())
        .sum();
    assert!((saved - a["saved_usd_day"].as_f64().unwrap()).abs() < 1e-9);
    // The text says the same.
    let text = advise(&api, false);
    eprintln!("sluice advise:\n{text}");
    assert!(
        text.starts_with("WHAT-IF: hashprice 34.49 $/PH/day | BTC $86000"),
        "{text}"
    );
    assert!(text.contains("$62836"), "{text}");
    assert!(text.contains("OFF (loses at every hour)"), "{text}");
    // Without a what-if the advice uses the demo's own hashprice; bad
    // what-ifs are refused.
    let out = common::output(["advise", "--api", &api, "--hashprice=-3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hashprice must be a number"));
    let out = common::output(["advise", "--api", &api, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["what_if"], false);
    assert!(v["scenario"]["hashprice"].as_f64().unwrap() > 40.0, "{v:#}");
}

#[test]
fn check_config_explains_and_bounds_the_power_schedule() {
    let dir = common::scratch_dir();
    let text = common::check_config_passes(
        &dir,
        "power-ok.toml",
        "mode = \"pool\"\n[books.power]\nprice_usd_per_kwh = 0.05\nutc_offset_hours = -5.0\nfeed_url = \"http://127.0.0.1:9/p\"\n[[books.power.schedule]]\nfrom_hour = 22\nto_hour = 6\nprice_usd_per_kwh = 0.03\n[[books.power.rules]]\nclass = \"S21\"\npattern = \"*.s21-*\"\nefficiency_j_per_th = 17.5\n",
    );
    assert!(
        text.contains("power from 22:00 to 06:00 (UTC-5): $0.03/kWh"),
        "{text}"
    );
    assert!(
        text.contains("power price feed: http://127.0.0.1:9/p at /usd_per_kwh"),
        "{text}"
    );
    let power = |body: &str| format!("mode = \"pool\"\n[books.power]\n{body}\n");
    let period = |f: u32, t: u32, c: f64| {
        power(&format!(
            "[[books.power.schedule]]\nfrom_hour = {f}\nto_hour = {t}\nprice_usd_per_kwh = {c}"
        ))
    };
    common::check_config_refuses(
        &dir,
        &[
            (
                "p-from.toml",
                period(24, 2, 0.1),
                "hours are 0-23 (from) and 1-24 (to)",
            ),
            (
                "p-to.toml",
                period(3, 25, 0.1),
                "hours are 0-23 (from) and 1-24 (to)",
            ),
            ("p-same.toml", period(3, 3, 0.1), "not equal"),
            (
                "p-price.toml",
                period(3, 5, -11.0),
                "price_usd_per_kwh must be within ±10",
            ),
            (
                "p-offset.toml",
                power("utc_offset_hours = 15.0"),
                "utc_offset_hours",
            ),
            (
                "p-feed.toml",
                power("feed_url = \"ftp://x\""),
                "books.power.feed_url must be an http",
            ),
            (
                "p-ptr.toml",
                power("feed_url = \"http://x\"\nfeed_pointer = \"a.b\""),
                "JSON pointer",
            ),
            (
                "p-nominal.toml",
                power(
                    "[[books.power.rules]]\npattern = \"s9-*\"\nwatts = 1323.0\nnominal_th_s = 0.0",
                ),
                "nominal_th_s must be a positive number",
            ),
            (
                "p-key.toml",
                power("[[books.power.schedule]]\nfrom_hour = 1\nto_hour = 2\nprice = 0.1"),
                "unknown field",
            ),
        ],
    );
}
