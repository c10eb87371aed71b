//! A Bitcoin Core JSON-RPC stand-in serving the real templates in
//! shared/fixtures: `getblocktemplate` (with long poll), `submitblock`
//! (checked with the `bitcoin` crate and recorded byte for byte),
//! `getblockchaininfo`, `getbestblockhash`, `validateaddress`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bitcoin::consensus::deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const USER: &str = "sluice";
pub const PASSWORD: &str = "hunter2";

/// A regtest P2WPKH (BIP173's vector) the pool pays.
pub const POOL_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v.get("result").cloned().unwrap_or(v)
}

#[derive(Default)]
pub struct State {
    /// The template served now.
    pub template: Value,
    /// Bumped with each new template (the long poll id).
    pub generation: u64,
    /// The node's tip, display hex.
    pub best: String,
    /// Every `submitblock`, as the raw bytes received.
    pub submitted: Vec<Vec<u8>>,
    /// Answer every call with -28 (a node warming up).
    pub warming: bool,
    /// Answer `submitblock` with this instead of judging the block.
    pub submit_answer: Option<Value>,
    /// Calls by method.
    pub calls: std::collections::HashMap<String, u64>,
    /// Leave `longpollid` out of templates (a node without long polls).
    pub no_longpoll: bool,
    /// Blocks on the best chain (display hex).
    pub chain: Vec<String>,
    /// Answer every call with HTTP 503 "Work queue depth exceeded".
    pub busy: bool,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

pub struct Standin {
    pub addr: SocketAddr,
    shared: Shared,
}

impl Standin {
    /// Serves `gbt` (a fixture name) on 127.0.0.1.
    pub async fn start(gbt: &str) -> Self {
        let template = fixture(gbt);
        let best = template["previousblockhash"].as_str().unwrap().to_owned();
        let shared = Shared {
            state: Arc::new(Mutex::new(State {
                template,
                best,
                ..State::default()
            })),
            changed: Arc::new(Notify::new()),
        };
        let app = axum::Router::new()
            .route("/", axum::routing::post(rpc))
            .with_state(shared.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A pool node on this stand-in: regtest, paying [`POOL_ADDRESS`],
    /// polling the tip every 0.1 s.
    pub fn pool_node(&self) -> sluice::config::PoolNodeConfig {
        sluice::config::PoolNodeConfig {
            bitcoind: Some(self.url()),
            rpc_user: Some(USER.into()),
            rpc_password: Some(PASSWORD.into()),
            network: Some("regtest".into()),
            payout_address: Some(POOL_ADDRESS.into()),
            tip_poll_secs: 0.1,
            ..Default::default()
        }
    }

    /// Serves another fixture template (a new tip when its parent differs).
    pub fn set_template(&self, gbt: &str) {
        let t = fixture(gbt);
        self.set(|s| {
            s.best = t["previousblockhash"].as_str().unwrap().to_owned();
            s.template = t;
            s.generation += 1;
        });
        self.shared.changed.notify_waiters();
    }

    pub fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.shared.state.lock().unwrap());
    }

    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.state.lock().unwrap())
    }

    pub fn submitted(&self) -> Vec<Vec<u8>> {
        self.read(|s| s.submitted.clone())
    }

    pub fn calls(&self, method: &str) -> u64 {
        self.read(|s| s.calls.get(method).copied().unwrap_or(0))
    }
}

fn reply(id: &Value, result: Result<Value, (i64, &str)>) -> Response {
    match result {
        Ok(r) => Json(json!({"result": r, "error": null, "id": id})).into_response(),
        // Core's JSON-RPC 1.0 errors come with HTTP 500.
        Err((code, msg)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"result": null, "error": {"code": code, "message": msg}, "id": id})),
        )
            .into_response(),
    }
}

async fn rpc(AxState(sh): AxState<Shared>, headers: HeaderMap, body: String) -> Response {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = req["id"].clone();
    let method = req["method"].as_str().unwrap_or_default().to_owned();
    let params = req["params"].clone();
    {
        let mut s = sh.state.lock().unwrap();
        *s.calls.entry(method.clone()).or_default() += 1;
        if s.warming {
            return reply(&id, Err((-28, "Loading block index…")));
        }
        if s.busy {
            return (StatusCode::SERVICE_UNAVAILABLE, "Work queue depth exceeded").into_response();
        }
    }
    match method.as_str() {
        "getblocktemplate" => {
            let p = &params[0];
            if !p["rules"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == "segwit"))
            {
                return reply(
                    &id,
                    Err((
                        -8,
                        "getblocktemplate must be called with the segwit rule set",
                    )),
                );
            }
            if let Some(lp) = p["longpollid"].as_str() {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let notified = sh.changed.notified();
                    if sh.state.lock().unwrap().generation.to_string() != lp {
                        break;
                    }
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        break;
                    }
                }
            }
            let s = sh.state.lock().unwrap();
            let mut t = s.template.clone();
            if !s.no_longpoll {
                t["longpollid"] = json!(s.generation.to_string());
            } else if let Some(o) = t.as_object_mut() {
                o.remove("longpollid");
            }
            reply(&id, Ok(t))
        }
        "submitblock" => {
            let Some(bytes) = params[0].as_str().and_then(hex_decode) else {
                return reply(&id, Err((-22, "Block decode failed")));
            };
            let mut s = sh.state.lock().unwrap();
            s.submitted.push(bytes.clone());
            if let Some(a) = s.submit_answer.clone() {
                return reply(&id, Ok(a));
            }
            let Ok(block) = deserialize::<bitcoin::Block>(&bytes) else {
                return reply(&id, Err((-22, "Block decode failed")));
            };
            let hash = block.block_hash().to_string();
            let verdict = if block.header.validate_pow(block.header.target()).is_err() {
                json!("high-hash")
            } else if !block.check_merkle_root() {
                json!("bad-txnmrklroot")
            } else if !block.check_witness_commitment() {
                json!("bad-witness-merkle-match")
            } else if hash == s.best {
                json!("duplicate")
            } else if block.header.prev_blockhash.to_string()
                != s.template["previousblockhash"].as_str().unwrap_or_default()
            {
                json!("prev-blk-not-found")
            } else if s.best != s.template["previousblockhash"].as_str().unwrap_or_default() {
                // A sibling of a block already taken: stored, not the tip.
                json!("inconclusive")
            } else {
                s.chain.push(hash.clone());
                s.best = hash;
                Value::Null
            };
            reply(&id, Ok(verdict))
        }
        "getblockchaininfo" => {
            let mut v = fixture("getblockchaininfo-regtest.json");
            let s = sh.state.lock().unwrap();
            v["bestblockhash"] = json!(s.best);
            reply(&id, Ok(v))
        }
        "getblockheader" => {
            let s = sh.state.lock().unwrap();
            let h = params[0].as_str().unwrap_or_default();
            if s.chain.iter().any(|c| c == h) {
                reply(&id, Ok(json!({"hash": h, "confirmations": 1})))
            } else {
                reply(&id, Err((-5, "Block not found")))
            }
        }
        "getbestblockhash" => {
            let s = sh.state.lock().unwrap();
            reply(&id, Ok(json!(s.best)))
        }
        "validateaddress" => {
            let a = params[0].as_str().unwrap_or_default();
            let ok = bitcoin::Address::from_str(a)
                .is_ok_and(|a| a.require_network(bitcoin::Network::Regtest).is_ok());
            reply(&id, Ok(json!({"isvalid": ok})))
        }
        _ => reply(&id, Err((-32601, "Method not found"))),
    }
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    sluice_pow::hex::decode(h).ok()
}
