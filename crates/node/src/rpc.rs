//! An async Bitcoin Core JSON-RPC client: the calls a pool node makes,
//! nothing else.
//!
//! One TCP connection per call: calls are rare (templates, blocks, tip
//! checks), a long poll holds its own connection for minutes anyway, and a
//! fresh connection reads a fresh cookie after the node restarts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Largest reply read: a 4 MWU block template is about 8 MB of hex.
pub const MAX_REPLY_BYTES: usize = 32 << 20;

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `rpcuser` / `rpcpassword`.
    UserPass {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// The `.cookie` file the node writes at start (read on every call,
    /// so a restarted node's new cookie is picked up).
    Cookie(PathBuf),
}

/// Why a call failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached (down, restarting, wrong address).
    #[error("cannot reach bitcoind at {addr}: {reason}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// What the socket said.
        reason: String,
    },
    /// No answer in time.
    #[error("bitcoind did not answer {method} within {secs} s")]
    Timeout {
        /// The call.
        method: &'static str,
        /// The limit.
        secs: u64,
    },
    /// The cookie file could not be read.
    #[error("cannot read the RPC cookie {path}: {reason}")]
    Cookie {
        /// Its path.
        path: String,
        /// Why.
        reason: String,
    },
    /// HTTP 401/403: wrong user, password or cookie.
    #[error("bitcoind refused the RPC credentials (HTTP {0})")]
    Auth(u16),
    /// The node answered with an RPC error.
    #[error("bitcoind error {code} on {method}: {message}")]
    Rpc {
        /// The call.
        method: &'static str,
        /// Core's error code (-28: warming up, -10: initial download…).
        code: i64,
        /// Its message.
        message: String,
    },
    /// An HTTP error without a JSON-RPC body: Core's "Work queue depth
    /// exceeded" (503) and the like.
    #[error("bitcoind is busy (HTTP {status} to {method})")]
    Busy {
        /// The call.
        method: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The reply was not a JSON-RPC reply.
    #[error("bad reply from bitcoind to {method}: {reason}")]
    BadReply {
        /// The call.
        method: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl RpcError {
    /// True when the same call may succeed later without a config change:
    /// the node is away, busy, warming up or still syncing.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Busy { .. } => true,
            // -28 warming up, -9 not connected, -10 initial block download.
            Self::Rpc { code, .. } => matches!(code, -28 | -9 | -10),
            Self::Cookie { .. } => true,
            Self::Auth(_) | Self::BadReply { .. } => false,
        }
    }
}

/// A Bitcoin Core RPC endpoint.
#[derive(Debug)]
pub struct RpcClient {
    addr: String,
    path: String,
    auth: Auth,
    timeout: Duration,
    ids: AtomicU64,
}

impl RpcClient {
    /// A client for `url` (`http://host:port[/path]` or `host:port`).
    pub fn new(url: &str, auth: Auth, timeout: Duration) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.contains("://") {
            return Err(format!("bitcoind URL {url:?}: only http:// is supported"));
        }
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if addr.is_empty() || !addr.contains(':') {
            return Err(format!("bitcoind URL {url:?}: give host:port"));
        }
        if addr.contains('@') {
            return Err(format!(
                "bitcoind URL {url:?}: give credentials with --rpc-user/--rpc-password or --rpc-cookie, not in the URL"
            ));
        }
        Ok(Self {
            addr: addr.to_owned(),
            path: path.to_owned(),
            auth,
            timeout,
            ids: AtomicU64::new(1),
        })
    }

    /// host:port.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn authorization(&self) -> Result<String, RpcError> {
        let pair = match &self.auth {
            Auth::UserPass { user, password } => format!("{user}:{password}"),
            Auth::Cookie(path) => std::fs::read_to_string(path)
                .map_err(|e| RpcError::Cookie {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
                .trim()
                .to_owned(),
        };
        Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// Calls `method` with `params`, waiting at most `timeout` (or the
    /// client's default).
    pub async fn call(
        &self,
        method: &'static str,
        params: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let limit = timeout.unwrap_or(self.timeout);
        tokio::time::timeout(limit, self.call_inner(method, params))
            .await
            .map_err(|_| RpcError::Timeout {
                method,
                secs: limit.as_secs(),
            })?
    }

    async fn call_inner(&self, method: &'static str, params: Value) -> Result<Value, RpcError> {
        let unreachable = |e: &dyn std::fmt::Display| RpcError::Unreachable {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        // Drives the connection; ends when the sender is dropped.
        let driver = tokio::spawn(conn);
        let req = Request::post(self.path.as_str())
            .header(HOST, self.addr.as_str())
            .header(AUTHORIZATION, self.authorization()?)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| RpcError::BadReply {
                method,
                reason: e.to_string(),
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            driver.abort();
            return Err(RpcError::Auth(status));
        }
        // A connection that drops mid-reply is the node going away, not a
        // verdict; an oversized reply is refused like one.
        let bytes = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| RpcError::Unreachable {
                addr: self.addr.clone(),
                reason: format!("reply cut short (HTTP {status}): {e}"),
            })?
            .to_bytes();
        driver.abort();
        let reply: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if status >= 500 => return Err(RpcError::Busy { method, status }),
            Err(_) => {
                return Err(RpcError::BadReply {
                    method,
                    reason: format!("HTTP {status}, {} bytes that are not JSON", bytes.len()),
                });
            }
        };
        match reply.get("error") {
            None | Some(Value::Null) => {}
            Some(err) => {
                return Err(RpcError::Rpc {
                    method,
                    code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .chars()
                        .take(200)
                        .collect(),
                });
            }
        }
        if reply.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(RpcError::BadReply {
                method,
                reason: "reply id does not match the request".into(),
            });
        }
        reply
            .get("result")
            .cloned()
            .ok_or_else(|| RpcError::BadReply {
                method,
                reason: format!("HTTP {status} without a result"),
            })
    }

    /// `getblocktemplate` with the segwit rule; with `longpollid`, waits
    /// (up to `wait`) until the node has a newer template.
    pub async fn get_block_template(
        &self,
        longpollid: Option<&str>,
        wait: Duration,
    ) -> Result<Value, RpcError> {
        let mut req = json!({"rules": ["segwit"]});
        if let Some(id) = longpollid {
            req["longpollid"] = json!(id);
        }
        self.call("getblocktemplate", json!([req]), Some(wait))
            .await
    }

    /// `submitblock`: `Ok(None)` when the node took it, `Ok(Some(reason))`
    /// when it answered why not (`duplicate`, `high-hash`, `inconclusive`…).
    pub async fn submit_block(&self, block_hex: &str) -> Result<Option<String>, RpcError> {
        match self.call("submitblock", json!([block_hex]), None).await? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.chars().take(200).collect())),
            other => Err(RpcError::BadReply {
                method: "submitblock",
                reason: format!("unexpected result {}", truncate(&other)),
            }),
        }
    }

    /// `getblockchaininfo`.
    pub async fn get_blockchain_info(&self) -> Result<ChainInfo, RpcError> {
        let v = self.call("getblockchaininfo", json!([]), None).await?;
        let bad = |reason: &str| RpcError::BadReply {
            method: "getblockchaininfo",
            reason: reason.to_owned(),
        };
        Ok(ChainInfo {
            chain: v
                .get("chain")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no chain"))?
                .to_owned(),
            blocks: v
                .get("blocks")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no blocks"))?,
            best_block_hash: v
                .get("bestblockhash")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no bestblockhash"))?
                .to_owned(),
            initial_block_download: v
                .get("initialblockdownload")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// `getbestblockhash`, display hex.
    pub async fn get_best_block_hash(&self) -> Result<String, RpcError> {
        match self.call("getbestblockhash", json!([]), None).await? {
            Value::String(s) if s.len() == 64 => Ok(s),
            other => Err(RpcError::BadReply {
                method: "getbestblockhash",
                reason: format!("not a block hash: {}", truncate(&other)),
            }),
        }
    }

    /// `getblockheader`'s confirmations: 0 or more on the best chain, −1
    /// off it.
    pub async fn block_confirmations(&self, hash: &str) -> Result<i64, RpcError> {
        let v = self
            .call("getblockheader", json!([hash, true]), None)
            .await?;
        v.get("confirmations")
            .and_then(Value::as_i64)
            .ok_or_else(|| RpcError::BadReply {
                method: "getblockheader",
                reason: "no confirmations".into(),
            })
    }

    /// `validateaddress`: whether the node calls `address` valid.
    pub async fn validate_address(&self, address: &str) -> Result<bool, RpcError> {
        let v = self.call("validateaddress", json!([address]), None).await?;
        v.get("isvalid")
            .and_then(Value::as_bool)
            .ok_or_else(|| RpcError::BadReply {
                method: "validateaddress",
                reason: "no isvalid".into(),
            })
    }
}

/// What `getblockchaininfo` says that the pool node uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// Height of the tip.
    pub blocks: u64,
    /// The tip, display hex.
    pub best_block_hash: String,
    /// Still syncing: templates would be for an old tip.
    pub initial_block_download: bool,
}

fn truncate(v: &Value) -> String {
    v.to_string().chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let a = || Auth::Cookie("/nonexistent".into());
        let t = Duration::from_secs(1);
        let c = RpcClient::new("http://127.0.0.1:18443", a(), t).unwrap();
        assert_eq!((c.addr(), c.path.as_str()), ("127.0.0.1:18443", "/"));
        let c = RpcClient::new("127.0.0.1:18443/wallet/x", a(), t).unwrap();
        assert_eq!(c.path, "/wallet/x");
        for bad in [
            "https://127.0.0.1:8332",
            "http://127.0.0.1",
            "http://u:p@127.0.0.1:8332",
            "",
        ] {
            assert!(RpcClient::new(bad, a(), t).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_missing_cookie_is_a_clear_retryable_error() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = RpcClient::new(
            &l.local_addr().unwrap().to_string(),
            Auth::Cookie("/nonexistent/.cookie".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let e = c.get_best_block_hash().await.unwrap_err();
        assert!(matches!(e, RpcError::Cookie { .. }), "{e}");
        assert!(e.retryable());
    }

    /// One canned HTTP reply (`status`, `body`, the length it claims)
    /// to whoever connects.
    async fn canned(status: &str, body: &str, claimed_len: usize) -> String {
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {claimed_len}\r\nConnection: close\r\n\r\n{body}"
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    async fn client_for(status: &str, body: &str, claimed_len: usize) -> RpcClient {
        let addr = canned(status, body, claimed_len).await;
        let auth = Auth::UserPass {
            user: "u".into(),
            password: "p".into(),
        };
        RpcClient::new(&addr, auth, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn a_busy_node_is_retryable_not_a_verdict() {
        let body = "Work queue depth exceeded";
        let c = client_for("503 Service Unavailable", body, body.len()).await;
        let e = c.submit_block("00").await.unwrap_err();
        assert!(matches!(e, RpcError::Busy { status: 503, .. }), "{e}");
        assert!(e.retryable());
    }

    #[tokio::test]
    async fn a_reply_cut_short_is_the_node_going_away() {
        let c = client_for("200 OK", "{\"result\":", 100).await;
        let e = c.get_best_block_hash().await.unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e}");
        assert!(e.retryable());
    }

    #[tokio::test]
    async fn an_rpc_error_and_a_reply_for_another_call_are_told_apart() {
        let body = r#"{"result":null,"error":{"code":-28,"message":"Loading"},"id":1}"#;
        let c = client_for("500 Internal Server Error", body, body.len()).await;
        let e = c.get_best_block_hash().await.unwrap_err();
        assert!(matches!(e, RpcError::Rpc { code: -28, .. }), "{e}");
        assert!(e.retryable(), "warming up");
        let body = r#"{"result":"x","error":null,"id":999}"#;
        let c = client_for("200 OK", body, body.len()).await;
        let e = c.get_best_block_hash().await.unwrap_err();
        assert!(matches!(e, RpcError::BadReply { .. }), "{e}");
        assert!(!e.retryable());
    }

    #[tokio::test]
    async fn nobody_listening_is_unreachable_and_retryable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let auth = Auth::UserPass {
            user: "u".into(),
            password: "p".into(),
        };
        let c = RpcClient::new(&addr, auth, Duration::from_secs(5)).unwrap();
        let e = c.get_best_block_hash().await.unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e}");
        assert!(e.retryable());
    }
}
