//! Typed Stratum V1 messages in both directions, their parsers and their
//! encoders.
//!
//! Parsing goes through `serde_json::Value`: every message here except
//! `mining.submit` (see [`crate::submit`]) is rare, so clarity wins.
//! Encoders write lines (terminated by `\n`) straight into `Bytes`, so a
//! `mining.notify` is encoded once and shared by every session.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::{Map, Value};
use sluice_pow::hex;

use crate::submit::SubmitRef;

/// Stratum V1 error codes in use (PROTOCOLS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 20: anything else (malformed request, bad parameters).
    Other = 20,
    /// 21: job not found (stale).
    JobNotFound = 21,
    /// 22: duplicate share.
    Duplicate = 22,
    /// 23: share above target.
    LowDifficulty = 23,
    /// 24: worker not authorized.
    Unauthorized = 24,
    /// 25: not subscribed.
    NotSubscribed = 25,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The conventional message for the code.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::Other => "Other/Unknown",
            ErrorCode::JobNotFound => "Job not found",
            ErrorCode::Duplicate => "Duplicate share",
            ErrorCode::LowDifficulty => "Low difficulty share",
            ErrorCode::Unauthorized => "Unauthorized worker",
            ErrorCode::NotSubscribed => "Not subscribed",
        }
    }
}

/// Why a line could not be understood. Each variant is a metrics label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid JSON (or not UTF-8).
    #[error("malformed JSON")]
    Json,
    /// Valid JSON, but not an object.
    #[error("message is not a JSON object")]
    NotObject,
    /// An object with neither `method` nor `result`/`error`.
    #[error("message has no method")]
    NoMethod,
    /// A known method with parameters of the wrong shape.
    #[error("bad params for {method}: {reason}")]
    BadParams {
        /// The method.
        method: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A field from a pool over its bound ([`MAX_MERKLE_BRANCHES`],
    /// [`MAX_COINBASE_BYTES`], [`MAX_JOB_ID_LEN`], [`MAX_EXTRANONCE1_LEN`]).
    #[error("{method}: {field} over the limit of {limit}")]
    TooLarge {
        /// The method (or the request whose result it is).
        method: &'static str,
        /// The field, with its unit.
        field: &'static str,
        /// The bound in force.
        limit: usize,
    },
}

impl ParseError {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Json => "malformed_json",
            ParseError::NotObject => "not_object",
            ParseError::NoMethod => "no_method",
            ParseError::BadParams { .. } => "bad_params",
            ParseError::TooLarge { .. } => "too_large",
        }
    }
}

/// Most merkle branches a pool's `mining.notify` may carry. A block holds
/// fewer than 2^15 transactions (4,000,000 weight units, at least 240 per
/// transaction), so real jobs carry at most 15 branches; 32 (room for 2^32
/// transactions) is beyond any block and keeps the per-share merkle work
/// bounded.
pub const MAX_MERKLE_BRANCHES: usize = 32;

/// Most coinbase bytes (`coinb1` + `coinb2`, decoded) a pool's
/// `mining.notify` may carry: 64 KiB, room for about 2,000 payout outputs.
/// `coinb2` is hashed for every share, so this bounds a share's cost; a
/// notify at the limit (128 KiB of hex) still fits
/// [`crate::DEFAULT_MAX_UPSTREAM_LINE`].
pub const MAX_COINBASE_BYTES: usize = 64 * 1024;

/// Longest job id a pool's `mining.notify` may carry, in bytes. Pools send
/// short hex or decimal ids (ckpool: 16 characters); we keep each one for
/// the life of the job and send it back with every share.
pub const MAX_JOB_ID_LEN: usize = 256;

/// Longest host a pool may redirect us to (a DNS name is at most 253).
pub const MAX_HOST_LEN: usize = 255;

/// Longest extranonce1 a pool may hand us (subscribe result,
/// `mining.set_extranonce`), in bytes: the same bound as extranonce2 sizes.
/// Pools use 4 to 8 bytes.
pub const MAX_EXTRANONCE1_LEN: usize = 32;

/// A request's id as raw JSON text (`4`, `"a7"`, `null`), echoed verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(Box<str>);

impl Id {
    /// The `null` id of notifications.
    pub fn null() -> Self {
        Id("null".into())
    }

    /// A numeric id.
    pub fn num(n: u64) -> Self {
        Id(n.to_string().into())
    }

    /// From raw JSON text already known to be a scalar.
    pub fn from_raw(raw: &[u8]) -> Self {
        Id(String::from_utf8_lossy(raw).into())
    }

    fn from_value(v: Option<&Value>) -> Self {
        match v {
            None | Some(Value::Null) => Id::null(),
            Some(v) => Id(v.to_string().into()),
        }
    }

    /// The raw JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The id as a number, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// True for `null` (a notification).
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }
}

/// An owned `mining.submit`, for lines the fast path declined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    /// Worker name.
    pub worker: String,
    /// Job id.
    pub job_id: String,
    /// extranonce2, hex.
    pub extranonce2: String,
    /// ntime, hex.
    pub ntime: String,
    /// nonce, hex.
    pub nonce: String,
    /// version bits, hex.
    pub version_bits: Option<String>,
}

impl Submit {
    /// Borrows as the fast path's type, with the request id.
    pub fn as_ref<'a>(&'a self, id: &'a Id) -> SubmitRef<'a> {
        SubmitRef {
            id: id.as_bytes(),
            worker: &self.worker,
            job_id: &self.job_id,
            extranonce2: self.extranonce2.as_bytes(),
            ntime: self.ntime.as_bytes(),
            nonce: self.nonce.as_bytes(),
            version_bits: self.version_bits.as_deref().map(str::as_bytes),
        }
    }
}

/// What a miner asks of the server.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientRequest {
    /// `mining.subscribe [user_agent?, session_id?]`.
    Subscribe {
        /// Miner software and version.
        user_agent: Option<String>,
        /// A session id to resume (we do not resume; we answer fresh).
        session_id: Option<String>,
    },
    /// `mining.authorize [user, password?]`.
    Authorize {
        /// `account.worker`.
        username: String,
        /// Often carries options such as `d=4096`.
        password: Option<String>,
    },
    /// `mining.configure [[ext...], {params}]` (BIP 310).
    Configure {
        /// Extension names requested.
        extensions: Vec<String>,
        /// Their parameters (`"version-rolling.mask"` etc.).
        params: Map<String, Value>,
    },
    /// `mining.extranonce.subscribe []`.
    ExtranonceSubscribe,
    /// `mining.suggest_difficulty [d]`.
    SuggestDifficulty(f64),
    /// `mining.suggest_target ["hex"]`, converted to a difficulty.
    SuggestTarget(f64),
    /// `mining.submit`.
    Submit(Submit),
    /// Anything else (answered with error 20 and counted).
    Unknown(String),
}

/// A parsed line from a miner.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id to answer with.
    pub id: Id,
    /// The request.
    pub body: ClientRequest,
}

fn object(line: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ParseError::NotObject),
        Err(_) => Err(ParseError::Json),
    }
}

fn bad(method: &'static str, reason: &'static str) -> ParseError {
    ParseError::BadParams { method, reason }
}

fn too_large(method: &'static str, field: &'static str, limit: usize) -> ParseError {
    ParseError::TooLarge {
        method,
        field,
        limit,
    }
}

/// Decodes a pool's extranonce1, refusing more than [`MAX_EXTRANONCE1_LEN`]
/// bytes before decoding.
fn extranonce1(method: &'static str, v: Option<&Value>) -> Result<Vec<u8>, ParseError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or(bad(method, "extranonce1"))?;
    if s.len() > 2 * MAX_EXTRANONCE1_LEN {
        return Err(too_large(method, "extranonce1 bytes", MAX_EXTRANONCE1_LEN));
    }
    hex::decode(s).map_err(|_| bad(method, "extranonce1"))
}

fn opt_str(params: &[Value], i: usize) -> Option<String> {
    params.get(i).and_then(Value::as_str).map(str::to_owned)
}

/// A number, or a string holding one (some firmware quotes numbers).
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses a line from a miner.
pub fn parse_client(line: &[u8]) -> Result<Request, ParseError> {
    let mut m = object(line)?;
    let id = Id::from_value(m.get("id"));
    let method = match m.get("method") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ParseError::NoMethod),
    };
    let params = match m.remove("params") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => Vec::new(),
        // Some miners send an object for configure-less methods; treat a
        // non-array as no positional params.
        Some(_) => Vec::new(),
    };
    let body = match method.as_str() {
        "mining.subscribe" => ClientRequest::Subscribe {
            user_agent: opt_str(&params, 0),
            session_id: opt_str(&params, 1),
        },
        "mining.authorize" => ClientRequest::Authorize {
            username: opt_str(&params, 0).ok_or(bad("mining.authorize", "missing user"))?,
            password: opt_str(&params, 1),
        },
        "mining.configure" => {
            let extensions = match params.first() {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|e| e.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(bad("mining.configure", "extension names must be strings"))?,
                _ => return Err(bad("mining.configure", "first param must be a list")),
            };
            let params = match params.get(1) {
                Some(Value::Object(o)) => o.clone(),
                None | Some(Value::Null) => Map::new(),
                _ => return Err(bad("mining.configure", "second param must be an object")),
            };
            ClientRequest::Configure { extensions, params }
        }
        "mining.extranonce.subscribe" => ClientRequest::ExtranonceSubscribe,
        "mining.suggest_difficulty" => {
            let d =
                number(params.first()).ok_or(bad("mining.suggest_difficulty", "not a number"))?;
            if !(d.is_finite() && d > 0.0) {
                return Err(bad(
                    "mining.suggest_difficulty",
                    "difficulty must be positive",
                ));
            }
            ClientRequest::SuggestDifficulty(d)
        }
        "mining.suggest_target" => {
            let t = params
                .first()
                .and_then(Value::as_str)
                .ok_or(bad("mining.suggest_target", "not a string"))?;
            let t = format!("{t:0>64}");
            let bytes = hex::decode_array::<32>(t.as_bytes())
                .map_err(|_| bad("mining.suggest_target", "not a 256-bit hex target"))?;
            let d = sluice_pow::Target::from_be_bytes(&bytes).difficulty();
            if !(d.is_finite() && d > 0.0) {
                return Err(bad("mining.suggest_target", "target out of range"));
            }
            ClientRequest::SuggestTarget(d)
        }
        "mining.submit" => {
            if !(5..=6).contains(&params.len()) {
                return Err(bad("mining.submit", "expected 5 or 6 params"));
            }
            let s = |i: usize| {
                opt_str(&params, i).ok_or(bad("mining.submit", "params must be strings"))
            };
            ClientRequest::Submit(Submit {
                worker: s(0)?,
                job_id: s(1)?,
                extranonce2: s(2)?,
                ntime: s(3)?,
                nonce: s(4)?,
                version_bits: if params.len() == 6 { Some(s(5)?) } else { None },
            })
        }
        _ => ClientRequest::Unknown(method),
    };
    Ok(Request { id, body })
}

/// A job as `mining.notify` carries it; byte fields decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Job id.
    pub job_id: String,
    /// Previous block hash in header (internal) byte order.
    pub prev_hash: [u8; 32],
    /// Coinbase before extranonce1.
    pub coinb1: Vec<u8>,
    /// Coinbase after extranonce2.
    pub coinb2: Vec<u8>,
    /// Merkle branches, internal byte order.
    pub branches: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact network target.
    pub nbits: u32,
    /// Block time.
    pub ntime: u32,
    /// Drop all earlier jobs.
    pub clean: bool,
}

impl Notify {
    /// Encodes the `mining.notify` line once; clone the `Bytes` per session.
    pub fn encode(&self) -> Bytes {
        let mut s = String::with_capacity(
            160 + 2 * (self.coinb1.len() + self.coinb2.len()) + 67 * self.branches.len(),
        );
        s.push_str(r#"{"id":null,"method":"mining.notify","params":["#);
        push_json_str(&mut s, &self.job_id);
        let _ = write!(
            s,
            r#","{}","{}","{}",["#,
            hex::encode(&hex::swap_words(&self.prev_hash)),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2)
        );
        for (i, b) in self.branches.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, r#""{}""#, hex::encode(b));
        }
        let _ = writeln!(
            s,
            r#"],"{:08x}","{:08x}","{:08x}",{}]}}"#,
            self.version, self.nbits, self.ntime, self.clean
        );
        Bytes::from(s)
    }

    fn from_params(p: &[Value]) -> Result<Self, ParseError> {
        const M: &str = "mining.notify";
        if p.len() < 9 {
            return Err(bad(M, "expected 9 params"));
        }
        let st = |i: usize| p[i].as_str().ok_or(bad(M, "params must be strings"));
        let job_id = match &p[0] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(bad(M, "job id")),
        };
        if job_id.len() > MAX_JOB_ID_LEN {
            return Err(too_large(M, "job id bytes", MAX_JOB_ID_LEN));
        }
        let prev = hex::decode_array::<32>(st(1)?.as_bytes()).map_err(|_| bad(M, "prevhash"))?;
        let branches = p[4].as_array().ok_or(bad(M, "branches must be a list"))?;
        if branches.len() > MAX_MERKLE_BRANCHES {
            return Err(too_large(M, "merkle branches", MAX_MERKLE_BRANCHES));
        }
        let (coinb1, coinb2) = (st(2)?, st(3)?);
        // Checked on the hex, before decoding; a valid pair decodes to
        // half its length.
        if coinb1.len() + coinb2.len() > 2 * MAX_COINBASE_BYTES {
            return Err(too_large(M, "coinb1+coinb2 bytes", MAX_COINBASE_BYTES));
        }
        let branches = branches
            .iter()
            .map(|b| {
                b.as_str()
                    .and_then(|b| hex::decode_array::<32>(b.as_bytes()).ok())
                    .ok_or(bad(M, "branch"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let word = |i: usize, what: &'static str| {
            st(i).and_then(|s| hex::decode_u32_be(s.as_bytes()).map_err(|_| bad(M, what)))
        };
        Ok(Notify {
            job_id,
            prev_hash: hex::swap_words(&prev),
            coinb1: hex::decode(coinb1).map_err(|_| bad(M, "coinb1"))?,
            coinb2: hex::decode(coinb2).map_err(|_| bad(M, "coinb2"))?,
            branches,
            version: word(5, "version")?,
            nbits: word(6, "nbits")?,
            ntime: word(7, "ntime")?,
            clean: p[8].as_bool().ok_or(bad(M, "clean_jobs must be a bool"))?,
        })
    }
}

/// An error object from a pool: `[code, "message", data]` or
/// `{"code":..,"message":..}` or a bare string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// Numeric code (20–25 usually; 0 when the pool sent none).
    pub code: i64,
    /// Message text.
    pub message: String,
}

impl RpcError {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => None,
            Value::Array(a) => Some(RpcError {
                code: a.first().and_then(Value::as_i64).unwrap_or(0),
                message: a.get(1).and_then(Value::as_str).unwrap_or("").to_owned(),
            }),
            Value::Object(o) => Some(RpcError {
                code: o.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: o
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
            other => Some(RpcError {
                code: 0,
                message: other
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| other.to_string()),
            }),
        }
    }
}

/// What a pool sends us.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// A reply to one of our requests.
    Response {
        /// Our request's id.
        id: Id,
        /// The result (`true`, a subscribe tuple, …).
        result: Value,
        /// The error, if the request failed.
        error: Option<RpcError>,
    },
    /// `mining.set_difficulty [d]`.
    SetDifficulty(f64),
    /// `mining.notify`.
    Notify(Notify),
    /// `mining.set_version_mask [mask]`.
    SetVersionMask(u32),
    /// `mining.set_extranonce [en1, en2_size]`.
    SetExtranonce {
        /// New extranonce1.
        extranonce1: Vec<u8>,
        /// New extranonce2 size.
        extranonce2_size: usize,
    },
    /// `client.reconnect [host?, port?, wait?]`.
    Reconnect {
        /// Host to reconnect to (absent: same host).
        host: Option<String>,
        /// Port (absent: same port).
        port: Option<u16>,
        /// Seconds to wait first.
        wait: Option<u64>,
    },
    /// `client.show_message [text]`.
    ShowMessage(String),
    /// A request from the pool we must answer (e.g. `client.get_version`).
    Request {
        /// Its id.
        id: Id,
        /// Its method.
        method: String,
    },
    /// A notification we do not handle.
    Unknown(String),
}

/// Parses a line from a pool.
pub fn parse_server(line: &[u8]) -> Result<ServerMessage, ParseError> {
    let mut m = object(line)?;
    let id = Id::from_value(m.get("id"));
    let method = match m.get("method") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ParseError::NoMethod),
        None => {
            if !m.contains_key("result") && !m.contains_key("error") {
                return Err(ParseError::NoMethod);
            }
            let result = m.remove("result").unwrap_or(Value::Null);
            // ckpool answers a refused share with `"error": null` and its
            // reason in `reject-reason`: keep it, it says what went wrong.
            let error = m.get("error").and_then(RpcError::from_value).or_else(|| {
                m.get("reject-reason").map(|r| RpcError {
                    code: 0,
                    message: r.as_str().map_or_else(|| r.to_string(), str::to_owned),
                })
            });
            return Ok(ServerMessage::Response { id, result, error });
        }
    };
    let params = match m.remove("params") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    Ok(match method.as_str() {
        "mining.set_difficulty" => {
            let d = number(params.first()).ok_or(bad("mining.set_difficulty", "not a number"))?;
            if !(d.is_finite() && d > 0.0) {
                return Err(bad("mining.set_difficulty", "difficulty must be positive"));
            }
            ServerMessage::SetDifficulty(d)
        }
        "mining.notify" => ServerMessage::Notify(Notify::from_params(&params)?),
        "mining.set_version_mask" => {
            let s = params
                .first()
                .and_then(Value::as_str)
                .ok_or(bad("mining.set_version_mask", "not a string"))?;
            ServerMessage::SetVersionMask(
                u32::from_str_radix(s, 16)
                    .map_err(|_| bad("mining.set_version_mask", "not hex"))?,
            )
        }
        "mining.set_extranonce" => {
            let en1 = extranonce1("mining.set_extranonce", params.first())?;
            let size = params
                .get(1)
                .and_then(Value::as_u64)
                .filter(|&n| (1..=32).contains(&n))
                .ok_or(bad("mining.set_extranonce", "extranonce2 size"))?;
            ServerMessage::SetExtranonce {
                extranonce1: en1,
                extranonce2_size: size as usize,
            }
        }
        "client.reconnect" => ServerMessage::Reconnect {
            host: match opt_str(&params, 0).filter(|h| !h.is_empty()) {
                // A DNS name is at most 253 characters: longer is not a host.
                Some(h) if h.len() > MAX_HOST_LEN => {
                    return Err(too_large("client.reconnect", "host bytes", MAX_HOST_LEN));
                }
                h => h,
            },
            port: number(params.get(1))
                .and_then(|p| u16::try_from(p as u64).ok())
                .filter(|&p| p != 0),
            wait: number(params.get(2)).map(|w| w.max(0.0) as u64),
        },
        "client.show_message" => {
            ServerMessage::ShowMessage(opt_str(&params, 0).unwrap_or_default())
        }
        _ if !id.is_null() => ServerMessage::Request { id, method },
        _ => ServerMessage::Unknown(method),
    })
}

/// The `mining.subscribe` result a pool sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    /// extranonce1 for the connection.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 we roll.
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    /// Reads `[subscriptions, "en1hex", en2_size]`.
    pub fn from_value(v: &Value) -> Result<Self, ParseError> {
        const M: &str = "mining.subscribe";
        let a = v.as_array().ok_or(bad(M, "result must be a list"))?;
        let en1 = extranonce1(M, a.get(1))?;
        let size = a
            .get(2)
            .and_then(Value::as_u64)
            .filter(|&n| (1..=32).contains(&n))
            .ok_or(bad(M, "extranonce2 size"))?;
        Ok(SubscribeResult {
            extranonce1: en1,
            extranonce2_size: size as usize,
        })
    }
}

fn push_json_str(s: &mut String, v: &str) {
    // serde_json escapes correctly; strings here are short.
    s.push_str(&Value::String(v.to_owned()).to_string());
}

/// One line of `parts` and a newline, in one allocation of exactly its
/// length: a `Bytes` made from a vector with no spare room takes it over
/// as it is, where spare room would cost a second allocation (and a
/// growing buffer a third), for every reply to every share.
fn line(parts: &[&[u8]]) -> Bytes {
    let len = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
    let mut v = Vec::with_capacity(len);
    for p in parts {
        v.extend_from_slice(p);
    }
    v.push(b'\n');
    Bytes::from(v)
}

/// `{"id":<id>,"result":true,"error":null}` — the accepted-share reply.
pub fn encode_true(id: &[u8]) -> Bytes {
    line(&[b"{\"id\":", id, b",\"result\":true,\"error\":null}"])
}

/// `{"id":<id>,"result":false,"error":null}`.
pub fn encode_false(id: &[u8]) -> Bytes {
    line(&[b"{\"id\":", id, b",\"result\":false,\"error\":null}"])
}

/// A reply with any serialisable result.
pub fn encode_result(id: &[u8], result: &Value) -> Bytes {
    let r = result.to_string();
    line(&[
        b"{\"id\":",
        id,
        b",\"result\":",
        r.as_bytes(),
        b",\"error\":null}",
    ])
}

/// An error reply: `{"id":..,"result":null,"error":[code,"msg",null]}`.
pub fn encode_error(id: &[u8], code: ErrorCode, message: &str) -> Bytes {
    let mut msg = String::new();
    push_json_str(&mut msg, message);
    line(&[
        b"{\"id\":",
        id,
        b",\"result\":null,\"error\":[",
        code.code().to_string().as_bytes(),
        b",",
        msg.as_bytes(),
        b",null]}",
    ])
}

/// The `mining.subscribe` reply we give miners.
pub fn encode_subscribe_result(
    id: &[u8],
    subscription_id: &str,
    extranonce1: &[u8],
    extranonce2_size: usize,
) -> Bytes {
    let sub = Value::String(subscription_id.to_owned());
    let result = Value::Array(vec![
        Value::Array(vec![
            Value::Array(vec![Value::from("mining.set_difficulty"), sub.clone()]),
            Value::Array(vec![Value::from("mining.notify"), sub]),
        ]),
        Value::from(hex::encode(extranonce1)),
        Value::from(extranonce2_size),
    ]);
    encode_result(id, &result)
}

fn notification(method: &str, params: Value) -> Bytes {
    let mut s = format!(r#"{{"id":null,"method":"{method}","params":"#);
    s.push_str(&params.to_string());
    s.push_str("}\n");
    Bytes::from(s)
}

/// Formats a difficulty the way miners parse it: integers without a
/// fraction, fractions with enough digits to round-trip.
fn difficulty_value(d: f64) -> Value {
    if d.fract() == 0.0 && d.abs() < 9.0e15 {
        Value::from(d as u64)
    } else {
        Value::from(d)
    }
}

/// `mining.set_difficulty [d]`.
pub fn encode_set_difficulty(d: f64) -> Bytes {
    notification(
        "mining.set_difficulty",
        Value::Array(vec![difficulty_value(d)]),
    )
}

/// `mining.set_version_mask ["1fffe000"]`.
pub fn encode_set_version_mask(mask: u32) -> Bytes {
    notification(
        "mining.set_version_mask",
        Value::Array(vec![Value::from(format!("{mask:08x}"))]),
    )
}

/// `mining.set_extranonce ["en1", size]`.
pub fn encode_set_extranonce(extranonce1: &[u8], extranonce2_size: usize) -> Bytes {
    notification(
        "mining.set_extranonce",
        Value::Array(vec![
            Value::from(hex::encode(extranonce1)),
            Value::from(extranonce2_size),
        ]),
    )
}

/// `client.reconnect [host, port, wait]`.
pub fn encode_reconnect(host: &str, port: u16, wait_secs: u64) -> Bytes {
    notification(
        "client.reconnect",
        Value::Array(vec![
            Value::from(host),
            Value::from(port),
            Value::from(wait_secs),
        ]),
    )
}

/// `client.show_message [text]`.
pub fn encode_show_message(text: &str) -> Bytes {
    notification("client.show_message", Value::Array(vec![Value::from(text)]))
}

/// A request from us (as a client of a pool).
pub fn encode_request(id: u64, method: &str, params: Value) -> Bytes {
    let mut s = format!(r#"{{"id":{id},"method":"{method}","params":"#);
    s.push_str(&params.to_string());
    s.push_str("}\n");
    Bytes::from(s)
}

/// `mining.submit` to a pool, written without a JSON tree.
#[allow(clippy::too_many_arguments)]
pub fn encode_submit(
    id: u64,
    worker: &str,
    job_id: &str,
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
) -> Bytes {
    let mut s = String::with_capacity(128 + worker.len() + job_id.len() + 2 * extranonce2.len());
    let _ = write!(s, r#"{{"id":{id},"method":"mining.submit","params":["#);
    push_json_str(&mut s, worker);
    s.push(',');
    push_json_str(&mut s, job_id);
    let _ = write!(
        s,
        r#","{}","{ntime:08x}","{nonce:08x}""#,
        hex::encode(extranonce2)
    );
    if let Some(v) = version_bits {
        let _ = write!(s, r#","{v:08x}""#);
    }
    s.push_str("]}\n");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_methods_parse() {
        let r = parse_client(
            br#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#,
        )
        .unwrap();
        assert_eq!(r.id, Id::num(1));
        assert_eq!(
            r.body,
            ClientRequest::Subscribe {
                user_agent: Some("cpuminer/2.5.1".into()),
                session_id: None
            }
        );
        let r =
            parse_client(br#"{"id":2,"method":"mining.authorize","params":["acct.w1","d=4096"]}"#)
                .unwrap();
        assert_eq!(
            r.body,
            ClientRequest::Authorize {
                username: "acct.w1".into(),
                password: Some("d=4096".into())
            }
        );
        let r = parse_client(
            br#"{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#,
        )
        .unwrap();
        match r.body {
            ClientRequest::Configure { extensions, params } => {
                assert_eq!(extensions, vec!["version-rolling".to_owned()]);
                assert_eq!(params["version-rolling.mask"], "1fffe000");
            }
            other => panic!("{other:?}"),
        }
        let r = parse_client(br#"{"id":4,"method":"mining.suggest_difficulty","params":[0.5]}"#)
            .unwrap();
        assert_eq!(r.body, ClientRequest::SuggestDifficulty(0.5));
        let r = parse_client(
            br#"{"id":5,"method":"mining.suggest_target","params":["00000000ffff0000000000000000000000000000000000000000000000000000"]}"#,
        )
        .unwrap();
        assert_eq!(r.body, ClientRequest::SuggestTarget(1.0));
        let r = parse_client(br#"{"id":"x","method":"mining.extranonce.subscribe","params":[]}"#)
            .unwrap();
        assert_eq!(
            (r.id.as_bytes(), r.body),
            (&br#""x""#[..], ClientRequest::ExtranonceSubscribe)
        );
        let r =
            parse_client(br#"{"id":6,"method":"mining.get_transactions","params":[]}"#).unwrap();
        assert_eq!(
            r.body,
            ClientRequest::Unknown("mining.get_transactions".into())
        );
    }

    #[test]
    fn bad_client_input_is_classified() {
        assert_eq!(parse_client(b"{not json"), Err(ParseError::Json));
        assert_eq!(parse_client(b"\xff\xfe"), Err(ParseError::Json));
        assert_eq!(parse_client(b"[1,2,3]"), Err(ParseError::NotObject));
        assert_eq!(parse_client(br#"{"id":1}"#), Err(ParseError::NoMethod));
        assert_eq!(
            parse_client(br#"{"id":1,"method":7}"#),
            Err(ParseError::NoMethod)
        );
        for line in [
            &br#"{"id":1,"method":"mining.authorize","params":[]}"#[..],
            br#"{"id":1,"method":"mining.authorize","params":[42]}"#,
            br#"{"id":1,"method":"mining.configure","params":["version-rolling"]}"#,
            br#"{"id":1,"method":"mining.configure","params":[[1],{}]}"#,
            br#"{"id":1,"method":"mining.suggest_difficulty","params":["abc"]}"#,
            br#"{"id":1,"method":"mining.suggest_difficulty","params":[-1]}"#,
            br#"{"id":1,"method":"mining.suggest_difficulty","params":[0]}"#,
            br#"{"id":1,"method":"mining.suggest_target","params":["zz"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w","j","00","00"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w","j","00","00",5]}"#,
        ] {
            let e = parse_client(line).unwrap_err();
            assert_eq!(e.label(), "bad_params", "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn notify_round_trips() {
        let n = Notify {
            job_id: "6b01596d00000013".into(),
            prev_hash: core::array::from_fn(|i| i as u8),
            coinb1: vec![1, 2, 3],
            coinb2: vec![4, 5],
            branches: vec![[9; 32], [8; 32]],
            version: 0x2000_0000,
            nbits: 0x207f_ffff,
            ntime: 0x6b01_5b89,
            clean: true,
        };
        let line = n.encode();
        assert!(line.ends_with(b"\n"));
        match parse_server(&line[..line.len() - 1]).unwrap() {
            ServerMessage::Notify(back) => assert_eq!(back, n),
            other => panic!("{other:?}"),
        }
        let text = std::str::from_utf8(&line).unwrap();
        assert!(
            text.contains(r#""03020100"#),
            "prevhash words swapped: {text}"
        );
    }

    fn notify_line(job_id: &str, coinb1: &str, coinb2: &str, branches: usize) -> String {
        let branches = vec![format!("{:064x}", 7); branches];
        serde_json::json!({
            "id": null,
            "method": "mining.notify",
            "params": [job_id, format!("{:064x}", 1), coinb1, coinb2, branches,
                       "20000000", "207fffff", "6b015b89", true],
        })
        .to_string()
    }

    fn notify(line: &str) -> Result<Notify, ParseError> {
        match parse_server(line.as_bytes())? {
            ServerMessage::Notify(n) => Ok(n),
            other => panic!("{other:?}"),
        }
    }

    /// A pool is untrusted: a notify's branches, coinbase and job id are
    /// bounded, each up to and including its limit.
    #[test]
    fn notify_sizes_are_bounded() {
        let n = notify(&notify_line("j", "01", "02", MAX_MERKLE_BRANCHES)).unwrap();
        assert_eq!(n.branches.len(), MAX_MERKLE_BRANCHES);
        assert_eq!(
            notify(&notify_line("j", "01", "02", MAX_MERKLE_BRANCHES + 1)),
            Err(ParseError::TooLarge {
                method: "mining.notify",
                field: "merkle branches",
                limit: MAX_MERKLE_BRANCHES
            })
        );

        let half = "ab".repeat(MAX_COINBASE_BYTES / 2);
        let n = notify(&notify_line("j", &half, &half, 0)).unwrap();
        assert_eq!(n.coinb1.len() + n.coinb2.len(), MAX_COINBASE_BYTES);
        // The largest notify still fits the upstream line limit.
        assert!(
            notify_line(
                &"j".repeat(MAX_JOB_ID_LEN),
                &half,
                &half,
                MAX_MERKLE_BRANCHES
            )
            .len()
                < crate::DEFAULT_MAX_UPSTREAM_LINE
        );
        for (c1, c2) in [
            (format!("{half}cd"), half.clone()),
            (half.clone(), format!("cd{half}")),
        ] {
            let e = notify(&notify_line("j", &c1, &c2, 0)).unwrap_err();
            assert_eq!(
                e,
                ParseError::TooLarge {
                    method: "mining.notify",
                    field: "coinb1+coinb2 bytes",
                    limit: MAX_COINBASE_BYTES
                }
            );
            assert_eq!(e.label(), "too_large");
        }
        // Odd hex within the bound is malformed, not too large.
        let odd = &half[1..];
        let e = notify(&notify_line("j", odd, &half, 0)).unwrap_err();
        assert_eq!(e.label(), "bad_params");

        let n = notify(&notify_line(&"j".repeat(MAX_JOB_ID_LEN), "01", "02", 1)).unwrap();
        assert_eq!(n.job_id.len(), MAX_JOB_ID_LEN);
        assert_eq!(
            notify(&notify_line(&"j".repeat(MAX_JOB_ID_LEN + 1), "01", "02", 1)),
            Err(ParseError::TooLarge {
                method: "mining.notify",
                field: "job id bytes",
                limit: MAX_JOB_ID_LEN
            })
        );
    }

    #[test]
    fn pool_extranonce1_is_bounded() {
        let ok = "ab".repeat(MAX_EXTRANONCE1_LEN);
        let over = "ab".repeat(MAX_EXTRANONCE1_LEN + 1);
        let set = |en1: &str| {
            parse_server(
                serde_json::json!({"id":null,"method":"mining.set_extranonce","params":[en1, 4]})
                    .to_string()
                    .as_bytes(),
            )
        };
        assert_eq!(
            set(&ok),
            Ok(ServerMessage::SetExtranonce {
                extranonce1: vec![0xab; MAX_EXTRANONCE1_LEN],
                extranonce2_size: 4
            })
        );
        assert_eq!(
            set(&over),
            Err(ParseError::TooLarge {
                method: "mining.set_extranonce",
                field: "extranonce1 bytes",
                limit: MAX_EXTRANONCE1_LEN
            })
        );
        let sub = |en1: &str| SubscribeResult::from_value(&serde_json::json!([[], en1, 4]));
        assert_eq!(sub(&ok).unwrap().extranonce1.len(), MAX_EXTRANONCE1_LEN);
        assert_eq!(
            sub(&over),
            Err(ParseError::TooLarge {
                method: "mining.subscribe",
                field: "extranonce1 bytes",
                limit: MAX_EXTRANONCE1_LEN
            })
        );
        assert_eq!(sub("zz").unwrap_err().label(), "bad_params");
    }

    #[test]
    fn server_messages_parse() {
        let r = parse_server(
            br#"{"result":[[["mining.notify","6b01596e"]],"6e59016b",8],"id":1,"error":null}"#,
        )
        .unwrap();
        match r {
            ServerMessage::Response {
                id,
                result,
                error: None,
            } => {
                assert_eq!(id.as_u64(), Some(1));
                let s = SubscribeResult::from_value(&result).unwrap();
                assert_eq!(
                    s,
                    SubscribeResult {
                        extranonce1: vec![0x6e, 0x59, 0x01, 0x6b],
                        extranonce2_size: 8
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let r = parse_server(br#"{"id":4,"result":null,"error":[23,"Low difficulty share",null]}"#)
            .unwrap();
        assert!(matches!(
            r,
            ServerMessage::Response {
                error: Some(RpcError { code: 23, .. }),
                ..
            }
        ));
        let long = format!(
            r#"{{"id":null,"method":"client.reconnect","params":["{}",3333,0]}}"#,
            "h".repeat(MAX_HOST_LEN + 1)
        );
        assert!(matches!(
            parse_server(long.as_bytes()),
            Err(ParseError::TooLarge { .. })
        ));
        // ckpool: no error, the reason in `reject-reason`.
        let r =
            parse_server(br#"{"result":false,"error":null,"id":7,"reject-reason":"Above target"}"#)
                .unwrap();
        assert!(
            matches!(&r, ServerMessage::Response { error: Some(RpcError { code: 0, message }), .. } if message == "Above target"),
            "{r:?}"
        );
        let r = parse_server(br#"{"id":4,"result":false,"error":{"code":21,"message":"stale"}}"#)
            .unwrap();
        assert!(matches!(
            r,
            ServerMessage::Response {
                error: Some(RpcError { code: 21, .. }),
                ..
            }
        ));
        assert_eq!(
            parse_server(
                br#"{"params":[0.023282709326846177],"id":null,"method":"mining.set_difficulty"}"#
            )
            .unwrap(),
            ServerMessage::SetDifficulty(0.023282709326846177)
        );
        assert_eq!(
            parse_server(
                br#"{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}"#
            )
            .unwrap(),
            ServerMessage::SetVersionMask(0x1fffe000)
        );
        assert_eq!(
            parse_server(br#"{"id":null,"method":"mining.set_extranonce","params":["0102",4]}"#)
                .unwrap(),
            ServerMessage::SetExtranonce {
                extranonce1: vec![1, 2],
                extranonce2_size: 4
            }
        );
        assert_eq!(
            parse_server(
                br#"{"id":null,"method":"client.reconnect","params":["pool.example",3333,5]}"#
            )
            .unwrap(),
            ServerMessage::Reconnect {
                host: Some("pool.example".into()),
                port: Some(3333),
                wait: Some(5)
            }
        );
        assert_eq!(
            parse_server(br#"{"id":9,"method":"client.get_version","params":[]}"#).unwrap(),
            ServerMessage::Request {
                id: Id::num(9),
                method: "client.get_version".into()
            }
        );
        assert!(
            parse_server(br#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#).is_err()
        );
        assert!(
            parse_server(br#"{"id":null,"method":"mining.notify","params":["1","zz"]}"#).is_err()
        );
        assert!(
            parse_server(br#"{"id":null,"method":"mining.set_extranonce","params":["01",99]}"#)
                .is_err()
        );
    }

    #[test]
    fn encoders_produce_parseable_lines() {
        let check = |b: Bytes| -> Value {
            assert!(b.ends_with(b"\n"));
            serde_json::from_slice(&b[..b.len() - 1]).unwrap()
        };
        assert_eq!(
            &encode_true(b"4")[..],
            b"{\"id\":4,\"result\":true,\"error\":null}\n"
        );
        assert_eq!(
            check(encode_true(b"4")),
            serde_json::json!({"id":4,"result":true,"error":null})
        );
        assert_eq!(check(encode_false(br#""a""#))["result"], false);
        let e = check(encode_error(
            b"7",
            ErrorCode::Duplicate,
            "Duplicate \"share\"",
        ));
        assert_eq!(
            e["error"],
            serde_json::json!([22, "Duplicate \"share\"", null])
        );
        let s = check(encode_subscribe_result(b"1", "ab", &[1, 2, 3, 4], 4));
        assert_eq!(s["result"][1], "01020304");
        assert_eq!(s["result"][2], 4);
        assert_eq!(check(encode_set_difficulty(4096.0))["params"][0], 4096);
        assert_eq!(check(encode_set_difficulty(0.001))["params"][0], 0.001);
        assert_eq!(
            check(encode_set_version_mask(0x1fffe000))["params"][0],
            "1fffe000"
        );
        assert_eq!(
            check(encode_set_extranonce(&[0xab], 4))["params"],
            serde_json::json!(["ab", 4])
        );
        assert_eq!(
            check(encode_reconnect("h", 1, 0))["method"],
            "client.reconnect"
        );
        assert_eq!(check(encode_show_message("hi"))["params"][0], "hi");
        let sub = encode_submit(
            5,
            "u.w",
            "j1",
            &[0, 0, 0, 1],
            0x6b01_5b89,
            0x8d80_df11,
            Some(0x2000),
        );
        let line = &sub[..sub.len() - 1];
        let fast = crate::submit::parse_submit(line).unwrap();
        assert_eq!(
            (
                fast.worker,
                fast.job_id,
                fast.extranonce2,
                fast.ntime,
                fast.nonce,
                fast.version_bits
            ),
            (
                "u.w",
                "j1",
                &b"00000001"[..],
                &b"6b015b89"[..],
                &b"8d80df11"[..],
                Some(&b"00002000"[..])
            )
        );
        let r = check(encode_request(
            1,
            "mining.subscribe",
            serde_json::json!(["sluice/0.1"]),
        ));
        assert_eq!(r["params"][0], "sluice/0.1");
    }

    #[test]
    fn general_and_fast_submit_agree() {
        let line = br#"{"params": ["w", "1", "00000000", "6b0162f2", "76f4b813"], "id": 4, "method": "mining.submit"}"#;
        let fast = crate::submit::parse_submit(line).unwrap();
        let r = parse_client(line).unwrap();
        match &r.body {
            ClientRequest::Submit(s) => assert_eq!(s.as_ref(&r.id), fast),
            other => panic!("{other:?}"),
        }
    }
}
