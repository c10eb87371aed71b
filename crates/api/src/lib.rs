//! sluice's HTTP surface.
//!
//! - `dashboard`: the browser dashboard at `/` (compiled in, no CDN).
//! - [`router`]: the axum routes — `/api/v1/{workers, workers/{name},
//!   pools, farm, hashprice, blocks, routing, advice}`, `/healthz`, `/readyz`, `/metrics`.
//! - [`views`]: the JSON shapes of pools, farm, hashprice and one worker.
//! - [`prom`]: the Prometheus text exposition.
//!
//! Handlers only read: the books and the engine's counters are the state,
//! so the API can never slow a share (a sorted page of 10,000 workers is
//! 10,000 short per-worker locks).

mod dashboard;
pub mod prom;
pub mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sluice_books::books::WorkerQuery;
use sluice_books::{Books, Window};
use sluice_engine::blocks::BlockLog;
use sluice_engine::router::Router;
use sluice_engine::stats::Stats;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the handlers read.
pub struct ApiState {
    /// The books.
    pub books: Arc<Books>,
    /// Engine counters.
    pub stats: Arc<Stats>,
    /// Upstream health.
    pub router: Arc<Router>,
    /// Block candidates and their fate.
    pub blocks: Arc<BlockLog>,
    /// `"proxy"` or `"pool"` (build info).
    pub mode: &'static str,
    /// Requests refused as bad (400/404).
    pub bad_requests: AtomicU64,
    /// Pool node: the share ledger's counters, when kept.
    pub ledger: Option<Arc<sluice_books::ledger::LedgerStats>>,
    /// Pool node on Bitcoin Core: its RPC and template counters.
    pub node: Option<Arc<sluice_node::core::CoreStats>>,
    /// The routing task, for its report.
    pub routing: Option<Arc<sluice_engine::routing::Routing>>,
}

impl ApiState {
    /// State over an engine's parts.
    pub fn new(
        books: Arc<Books>,
        stats: Arc<Stats>,
        router: Arc<Router>,
        blocks: Arc<BlockLog>,
        mode: &'static str,
        ledger: Option<Arc<sluice_books::ledger::LedgerStats>>,
        node: Option<Arc<sluice_node::core::CoreStats>>,
    ) -> Self {
        Self {
            books,
            stats,
            router,
            blocks,
            mode,
            bad_requests: AtomicU64::new(0),
            ledger,
            node,
            routing: None,
        }
    }

    /// The same with the routing task's report served.
    pub fn with_routing(mut self, routing: Arc<sluice_engine::routing::Routing>) -> Self {
        self.routing = Some(routing);
        self
    }

    fn bad(&self, status: StatusCode, msg: String) -> Response {
        self.bad_requests.fetch_add(1, Ordering::Relaxed);
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

/// The routes.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(dashboard::index))
        .route("/app.js", get(dashboard::script))
        .route("/app.css", get(dashboard::style))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/workers/{name}", get(worker))
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/farm", get(farm))
        .route("/api/v1/hashprice", get(hashprice))
        .route("/api/v1/blocks", get(blocks))
        .route("/api/v1/routing", get(routing))
        .route("/api/v1/advice", get(advice))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// Binds `addr` and serves in the background; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    state: Arc<ApiState>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, state, cancel).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok(bound)
}

async fn not_found(State(st): State<Arc<ApiState>>) -> Response {
    st.bad(StatusCode::NOT_FOUND, "no such endpoint".into())
}

fn parse_window(q: &HashMap<String, String>) -> Result<Window, String> {
    match q.get("window") {
        None => Ok(Window::H1),
        Some(w) => {
            Window::parse(w).ok_or_else(|| format!("window must be 1m, 5m, 1h or 24h, not {w:?}"))
        }
    }
}

fn parse_num(q: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, String> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{key} must be a non-negative integer, not {v:?}")),
    }
}

/// Refuses a parameter the endpoint does not know (a typo must not be
/// silently ignored).
fn only_known(q: &HashMap<String, String>, known: &[&str]) -> Result<(), String> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter {k:?} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn parse_query(q: &HashMap<String, String>) -> Result<WorkerQuery, String> {
    const KNOWN: [&str; 7] = [
        "window",
        "sort",
        "order",
        "offset",
        "limit",
        "prefix",
        "below_break_even",
    ];
    only_known(q, &KNOWN)?;
    let desc = match q.get("order").map(String::as_str) {
        None => None,
        Some("asc") => Some(false),
        Some("desc") => Some(true),
        Some(o) => return Err(format!("order must be asc or desc, not {o:?}")),
    };
    let sort = q.get("sort").cloned().unwrap_or_else(|| "name".into());
    let below_break_even = match q.get("below_break_even").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(v) => return Err(format!("below_break_even must be true or false, not {v:?}")),
    };
    Ok(WorkerQuery {
        window: parse_window(q)?,
        // Figures read best largest first; names A to Z.
        desc: desc.unwrap_or(sort != "name"),
        sort,
        offset: parse_num(q, "offset", 0)?,
        limit: parse_num(q, "limit", 100)?,
        prefix: q.get("prefix").cloned().filter(|p| !p.is_empty()),
        below_break_even,
    })
}

async fn workers(
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match parse_query(&q) {
        Ok(q) => q,
        Err(e) => return st.bad(StatusCode::BAD_REQUEST, e),
    };
    let books = st.books.clone();
    let now = books.clock().now_ms();
    // Sorting thousands of rows is CPU work: keep it off the I/O threads.
    match blocking(move || books.workers_page(&query, now)).await {
        Ok(Ok(p)) => Json(p).into_response(),
        Ok(Err(e)) => st.bad(StatusCode::BAD_REQUEST, e.to_string()),
        Err(r) => r,
    }
}

async fn worker(State(st): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    match views::worker_detail(&st.books, &name) {
        Some(d) => Json(d).into_response(),
        None => st.bad(StatusCode::NOT_FOUND, format!("no worker {name:?}")),
    }
}

async fn pools(State(st): State<Arc<ApiState>>) -> Response {
    Json(views::pools(&st.books, &st.router, &st.stats)).into_response()
}

/// Runs a view that walks every worker off the I/O threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response()
    })
}

async fn farm(State(st): State<Arc<ApiState>>) -> Response {
    match blocking(move || views::farm(&st.books, &st.stats)).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

fn parse_advice(q: &HashMap<String, String>) -> Result<sluice_books::books::AdviceQuery, String> {
    only_known(q, &["hashprice", "btc_price", "power_price", "limit"])?;
    let num = |key: &str| -> Result<Option<f64>, String> {
        q.get(key)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("{key} must be a number ≥ 0, not {v:?}"))
            })
            .transpose()
    };
    Ok(sluice_books::books::AdviceQuery {
        hashprice: num("hashprice")?,
        btc_price: num("btc_price")?,
        power_price: num("power_price")?,
        limit: parse_num(q, "limit", 100)?,
    })
}

async fn advice(
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match parse_advice(&q) {
        Ok(q) => q,
        Err(e) => return st.bad(StatusCode::BAD_REQUEST, e),
    };
    let books = st.books.clone();
    let now = books.clock().now_ms();
    match blocking(move || books.advice(&query, now)).await {
        Ok(Ok(a)) => Json(a).into_response(),
        // No hashprice yet: the request is fine, the answer is not ready.
        Ok(Err(e @ sluice_books::books::AdviceError::NoHashprice)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
        Ok(Err(e)) => st.bad(StatusCode::BAD_REQUEST, e.to_string()),
        Err(r) => r,
    }
}

async fn routing(State(st): State<Arc<ApiState>>) -> Response {
    match &st.routing {
        Some(r) => {
            let r = r.clone();
            match blocking(move || r.report()).await {
                Ok(v) => Json(v).into_response(),
                Err(e) => e,
            }
        }
        None => st.bad(StatusCode::NOT_FOUND, "routing is not running here".into()),
    }
}

async fn blocks(State(st): State<Arc<ApiState>>) -> Response {
    Json(views::blocks(&st.blocks, &st.stats)).into_response()
}

async fn hashprice(State(st): State<Arc<ApiState>>) -> Response {
    Json(views::hashprice(&st.books)).into_response()
}

async fn readyz(State(st): State<Arc<ApiState>>) -> Response {
    let pools = st.router.snapshot();
    let up = pools
        .iter()
        .filter(|p| {
            p.connections
                .iter()
                .any(|(_, h, _)| matches!(h, sluice_engine::upstream::Health::Ready))
        })
        .count();
    let body = Json(json!({ "ready": up > 0, "pools_up": up, "pools": pools.len() }));
    let status = if up > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

async fn metrics(State(st): State<Arc<ApiState>>) -> Response {
    match blocking(move || views::metrics(&st)).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<WorkerQuery, String> {
        parse_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn totals_give_every_reason_count_in_json() {
        // Kept sparse in memory, the reject counts reach API clients as
        // before: sixteen counts by reason index.
        let mut t = sluice_books::tally::Totals::default();
        t.rejects.add(2, 5);
        let v = serde_json::to_value(&t).unwrap();
        let r = v["rejects"].as_array().unwrap();
        assert_eq!(r.len(), sluice_books::tally::MAX_REASONS);
        assert_eq!((r[2].as_u64(), r[0].as_u64()), (Some(5), Some(0)));
        // Blocks and the pool's refusals are kept boxed (most workers have
        // none) and reach clients as fields like the others, zero or not.
        assert_eq!(v["blocks"].as_u64(), Some(0));
        assert_eq!(v["upstream_rejected_btc"].as_f64(), Some(0.0));
        t.set_rare(sluice_books::tally::Rare {
            blocks: 2,
            upstream_rejected: 3,
            upstream_rejected_work: 0.5,
            upstream_rejected_btc: 1e-8,
        });
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["blocks"].as_u64(), Some(2));
        assert_eq!(v["upstream_rejected"].as_u64(), Some(3));
        assert_eq!(v["upstream_rejected_work"].as_f64(), Some(0.5));
        assert_eq!(v["upstream_rejected_btc"].as_f64(), Some(1e-8));
        assert_eq!(v["accepted"].as_u64(), Some(0));
        // In the order clients have always had them.
        let text = serde_json::to_string(&t).unwrap();
        let keys: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            keys,
            [
                "accepted_work",
                "stale_work",
                "rejected_work",
                "earned_btc",
                "value_btc",
                "accepted",
                "rejected",
                "rejects",
                "blocks",
                "upstream_rejected",
                "upstream_rejected_work",
                "upstream_rejected_btc"
            ]
        );
    }

    #[test]
    fn worker_queries_are_parsed_strictly() {
        let ok = q(&[
            ("window", "24h"),
            ("sort", "profit_usd_day"),
            ("order", "asc"),
            ("limit", "7"),
            ("prefix", "rack1."),
        ])
        .unwrap();
        assert_eq!((ok.window, ok.desc, ok.limit), (Window::H24, false, 7));
        assert_eq!(ok.prefix.as_deref(), Some("rack1."));
        // Figures sort largest first by default, names A to Z.
        assert!(q(&[("sort", "efficiency")]).unwrap().desc);
        assert!(!q(&[]).unwrap().desc);
        assert!(q(&[("below_break_even", "")]).unwrap().below_break_even);
        for (bad, why) in [
            (("window", "2h"), "window"),
            (("order", "sideways"), "order"),
            (("limit", "-1"), "limit"),
            (("offset", "x"), "offset"),
            (("below_break_even", "maybe"), "below_break_even"),
            (("sortby", "name"), "unknown parameter"),
        ] {
            let e = q(&[bad]).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn advice_queries_are_parsed_strictly() {
        let p = |pairs: &[(&str, &str)]| {
            parse_advice(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let ok = p(&[
            ("hashprice", "34.49"),
            ("power_price", "0.06"),
            ("limit", "5"),
        ])
        .unwrap();
        assert_eq!(
            (ok.hashprice, ok.power_price, ok.btc_price, ok.limit),
            (Some(34.49), Some(0.06), None, 5)
        );
        for (bad, why) in [
            (("hashprice", "-1"), "hashprice must be a number"),
            (("btc_price", "lots"), "btc_price must be a number"),
            (("power_price", "NaN"), "power_price must be a number"),
            (("limit", "x"), "limit"),
            (("hashrate", "1"), "unknown parameter"),
        ] {
            let e = p(&[bad]).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
