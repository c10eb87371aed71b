//! Wiring the books: the SQLite snapshot loop, the BTC price feed and the
//! API server of a running instance.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sluice_books::{Books, Store};
use tokio_util::sync::CancellationToken;

use crate::config::{PowerSection, PriceSection};

/// The books' store, shared by the snapshot loop and shutdown.
pub type SharedStore = Arc<Mutex<Store>>;

/// Opens the store and reads the books back into `books`.
pub fn open_store(path: &Path, books: &Books) -> anyhow::Result<SharedStore> {
    let mut store =
        Store::open(path).with_context(|| format!("opening books store {}", path.display()))?;
    let now = books.clock().now_ms();
    let r = store
        .load(books, now)
        .with_context(|| format!("reading books store {}", path.display()))?;
    tracing::info!(
        path = %path.display(),
        workers = r.workers,
        pools = r.pools,
        snapshot_age_s = r.saved_at_ms.map(|t| now.saturating_sub(t) / 1000),
        "books restored"
    );
    Ok(Arc::new(Mutex::new(store)))
}

/// Takes one snapshot now (blocking).
pub fn snapshot(store: &SharedStore, books: &Books) {
    let now = books.clock().now_ms();
    let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
    match s.save(books, now) {
        Ok(r) => tracing::debug!(
            entities = r.entities,
            buckets = r.buckets,
            ms = r.millis,
            "books snapshot"
        ),
        Err(e) => tracing::error!(error = %e, "books snapshot failed"),
    }
}

/// Snapshots every `interval` (and forgets long-idle workers) until
/// cancelled; the caller takes the last snapshot at shutdown.
pub async fn snapshot_loop(
    store: Option<SharedStore>,
    books: Arc<Books>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut every = crate::every::Every::new(interval, false, cancel);
    while every.next().await {
        let books = books.clone();
        let store = store.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let forgotten = books.forget_idle(books.clock().now_ms());
            if forgotten > 0 {
                tracing::info!(forgotten, "idle workers dropped from the books");
            }
            if let Some(s) = &store {
                snapshot(s, &books);
            }
        })
        .await;
    }
}

/// Reads a BTC price from a feed's JSON answer at `pointer` (a number or
/// a numeric string): positive.
pub fn price_from_json(body: &str, pointer: &str) -> Result<f64, String> {
    let p = number_from_json(body, pointer)?;
    if p > 0.0 {
        Ok(p)
    } else {
        Err(format!("feed price {p} is not a positive number"))
    }
}

/// Most a power price may be either way, USD per kWh: real-time markets
/// go negative (ERCOT), but never by this much.
pub const POWER_PRICE_BOUND: f64 = 10.0;

/// Reads a power price from a feed's JSON answer: negative prices are
/// real (a grid paying to take power), within ±[`POWER_PRICE_BOUND`].
pub fn power_price_from_json(body: &str, pointer: &str) -> Result<f64, String> {
    let p = number_from_json(body, pointer)?;
    if p.abs() <= POWER_PRICE_BOUND {
        Ok(p)
    } else {
        Err(format!(
            "feed power price {p} $/kWh is beyond ±{POWER_PRICE_BOUND}"
        ))
    }
}

fn number_from_json(body: &str, pointer: &str) -> Result<f64, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("feed answer is not JSON: {e}"))?;
    let x = v
        .pointer(pointer)
        .ok_or_else(|| format!("feed answer has nothing at {pointer}"))?;
    let p = match x {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("feed value at {pointer} is not a number: {x}"))?;
    if p.is_finite() {
        Ok(p)
    } else {
        Err(format!("feed value {p} is not a number"))
    }
}

fn fetch_price(
    agent: &ureq::Agent,
    url: &str,
    pointer: &str,
    parse: fn(&str, &str) -> Result<f64, String>,
) -> Result<f64, String> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("reading {url}: {e}"))?;
    parse(&body, pointer)
}

/// Polls the BTC price feed until cancelled. A failed poll is logged and
/// counted; the last good price ages until the books mark it stale.
pub async fn price_feed(cfg: PriceSection, books: Arc<Books>, cancel: CancellationToken) {
    let Some(url) = cfg.feed_url.clone() else {
        return;
    };
    let (ok, err) = (books.clone(), books.clone());
    poll_feed(
        Feed {
            what: "price feed",
            url,
            pointer: cfg.feed_pointer.clone(),
            interval: Duration::from_secs_f64(cfg.poll_interval_secs.max(0.05)),
            parse: price_from_json,
        },
        move |p| ok.set_price(p, ok.clock().now_ms()),
        move || err.price_error(),
        cancel,
    )
    .await;
}

/// Polls the power-price feed until cancelled; while its price is fresh
/// it overrides the schedule.
pub async fn power_feed(cfg: PowerSection, books: Arc<Books>, cancel: CancellationToken) {
    let Some(url) = cfg.feed_url.clone() else {
        return;
    };
    let (ok, err) = (books.clone(), books.clone());
    poll_feed(
        Feed {
            what: "power price feed",
            url,
            pointer: cfg.feed_pointer.clone(),
            interval: Duration::from_secs_f64(cfg.poll_interval_secs.max(0.05)),
            parse: power_price_from_json,
        },
        move |p| ok.set_power_price(p, ok.clock().now_ms()),
        move || err.power_price_error(),
        cancel,
    )
    .await;
}

/// A JSON feed of one number.
struct Feed {
    what: &'static str,
    url: String,
    pointer: String,
    interval: Duration,
    parse: fn(&str, &str) -> Result<f64, String>,
}

async fn poll_feed(
    feed: Feed,
    on_value: impl Fn(f64),
    on_error: impl Fn(),
    cancel: CancellationToken,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(
            feed.interval
                .clamp(Duration::from_millis(200), Duration::from_secs(30)),
        ))
        .build()
        .into();
    let mut every = crate::every::Every::new(feed.interval, true, cancel);
    let mut failing = false;
    while every.next().await {
        let (agent, url, pointer, parse) = (
            agent.clone(),
            feed.url.clone(),
            feed.pointer.clone(),
            feed.parse,
        );
        let r = tokio::task::spawn_blocking(move || fetch_price(&agent, &url, &pointer, parse))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match r {
            Ok(p) => {
                on_value(p);
                if failing {
                    tracing::info!(feed = feed.what, value = p, "feed back");
                }
                failing = false;
            }
            Err(e) => {
                on_error();
                // Once per outage at warn; the rest at debug.
                if failing {
                    tracing::debug!(feed = feed.what, error = %e, "feed poll failed");
                } else {
                    tracing::warn!(feed = feed.what, error = %e, "feed poll failed");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_answers_are_read_defensively() {
        assert_eq!(
            price_from_json(r#"{"bitcoin":{"usd":91234.5}}"#, "/bitcoin/usd"),
            Ok(91234.5)
        );
        assert_eq!(
            price_from_json(r#"{"data":{"amount":"90000.10"}}"#, "/data/amount"),
            Ok(90000.1)
        );
        assert!(
            price_from_json("<html>", "/x")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            price_from_json(r#"{"a":1}"#, "/b")
                .unwrap_err()
                .contains("nothing at /b")
        );
        assert!(
            price_from_json(r#"{"a":"cheap"}"#, "/a")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            price_from_json(r#"{"a":-5}"#, "/a")
                .unwrap_err()
                .contains("positive")
        );
        assert!(price_from_json(r#"{"a":[1]}"#, "/a").is_err());
        // Power may cost less than nothing, within reason.
        assert_eq!(power_price_from_json(r#"{"p":-0.02}"#, "/p"), Ok(-0.02));
        assert_eq!(power_price_from_json(r#"{"p":"0"}"#, "/p"), Ok(0.0));
        assert!(
            power_price_from_json(r#"{"p":55}"#, "/p")
                .unwrap_err()
                .contains("beyond")
        );
    }
}
