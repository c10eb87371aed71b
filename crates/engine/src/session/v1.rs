//! The Stratum V1 adapter: a connection's lines in, lines, shares and a
//! disconnect out, around one [`Channel`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use sluice_books::Books;
use sluice_pow::hex;
use sluice_sv1::message::{self as msg, ClientRequest};
use sluice_sv1::{SubmitRef, parse_client, parse_submit};

use super::channel::{Channel, Share, Verdict, VersionIn};
use super::conn::ConnCore;
use super::{Output, SessionConfig, SessionCounters, SessionId};
use crate::job::{Job, ShareForward, UpstreamId};
use crate::limits::{NameQuota, Prefixes};
use crate::stats::{Disconnect, Reject, Stats};

/// One miner connection.
pub struct Session {
    /// What every protocol's connection has: identity, workers and their
    /// books, tallies.
    core: ConnCore,
    /// Where the prefix comes from (taken at subscribe, given back at
    /// drop); `None` when the prefix was fixed at construction.
    prefixes: Option<Arc<Prefixes>>,
    /// The connection's one channel (V1 has no others).
    pub(super) ch: Channel,
}

impl Session {
    /// A new session that will hand the miner `extranonce1` (its prefix)
    /// and `extranonce2_size`.
    pub fn new(
        id: SessionId,
        cfg: Arc<SessionConfig>,
        stats: Arc<Stats>,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        now: Instant,
    ) -> Self {
        let ch = Channel::new(extranonce1, extranonce2_size, &cfg, now);
        Self {
            core: ConnCore::new(id, cfg, stats),
            prefixes: None,
            ch,
        }
    }

    /// Keeps books for this session's workers; `peer` is shown with them.
    pub fn with_books(mut self, books: Arc<Books>, peer: Option<IpAddr>) -> Self {
        self.core.set_books(books, peer);
        self
    }

    /// Takes the miner's prefix from `prefixes` at subscribe (not at
    /// accept: a connection that never subscribes holds none).
    pub fn with_prefixes(mut self, prefixes: Arc<Prefixes>) -> Self {
        self.prefixes = Some(prefixes);
        self
    }

    /// Holds the worker names this session authorizes against `ip`'s
    /// share of `quota`.
    pub fn with_name_quota(mut self, quota: Arc<NameQuota>, ip: IpAddr) -> Self {
        self.core.set_name_quota(quota, ip);
        self
    }

    /// The session number.
    pub fn id(&self) -> SessionId {
        self.core.id
    }

    /// The miner's extranonce1 (its prefix).
    pub fn extranonce1(&self) -> &[u8] {
        &self.ch.extranonce1
    }

    /// Tallies so far.
    pub fn counters(&self) -> &SessionCounters {
        &self.core.counters
    }

    /// Authorized worker names.
    pub fn workers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.core.workers.keys()
    }

    /// The user agent from `mining.subscribe`.
    pub fn user_agent(&self) -> Option<&str> {
        self.core.user_agent.as_deref()
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.ch.vardiff.difficulty()
    }

    /// True once subscribed and authorized: jobs flow.
    pub fn is_ready(&self) -> bool {
        self.ch.subscribed && !self.core.workers.is_empty()
    }

    /// Handles one line from the miner.
    pub fn on_line(&mut self, line: &[u8], now: Instant, out: &mut Vec<Output>) {
        if let Some(s) = parse_submit(line) {
            self.on_submit(&s, now, out);
        } else {
            match parse_client(line) {
                Ok(req) => self.on_request(req, now, out),
                Err(e) => {
                    tracing::debug!(session = self.core.id, error = %e, "bad request");
                    self.bad(Reject::Malformed, b"null", out);
                }
            }
        }
        if self.core.consecutive_bad > self.core.cfg.max_consecutive_bad {
            out.push(Output::Disconnect(Disconnect::RepeatOffender));
        }
    }

    /// Solo mining: the script `username` is paid at, refused when it is
    /// not an address of the pool's network, or not the address this
    /// connection already mines for (one coinbase per connection).
    fn solo_payout(&self, username: &str) -> Result<Option<Arc<[u8]>>, String> {
        let Some(solo) = &self.core.cfg.solo else {
            return Ok(None);
        };
        let script = (solo.0)(username)?;
        match &self.ch.payout {
            Some(p) if *p != script => Err(
                "This connection already mines for another address: one payout address per connection"
                    .into(),
            ),
            _ => Ok(Some(script)),
        }
    }

    fn bad(&mut self, r: Reject, id: &[u8], out: &mut Vec<Output>) {
        self.core.consecutive_bad += 1;
        self.reject(r, id, out);
    }

    fn reject(&mut self, r: Reject, id: &[u8], out: &mut Vec<Output>) {
        self.core.count_reject(r);
        out.push(Output::Send(msg::encode_error(id, r.code(), r.message())));
    }

    fn on_request(&mut self, req: msg::Request, now: Instant, out: &mut Vec<Output>) {
        let id = req.id.as_bytes();
        match req.body {
            ClientRequest::Subscribe { user_agent, .. } => {
                if self.ch.extranonce1.is_empty()
                    && let Some(p) = &self.prefixes
                {
                    match p.alloc() {
                        Some(prefix) => self.ch.extranonce1 = prefix.into_boxed_slice(),
                        None => {
                            tracing::warn!(
                                "extranonce prefixes exhausted; raise session_prefix_bytes"
                            );
                            out.push(Output::Send(msg::encode_error(
                                id,
                                sluice_sv1::ErrorCode::Other,
                                "Server full",
                            )));
                            out.push(Output::Disconnect(Disconnect::NoPrefix));
                            return;
                        }
                    }
                }
                if self.ch.subscribed {
                    // Subscribed again on the same connection: the miner
                    // starts over, so tell it everything again.
                    self.ch.restart();
                }
                self.ch.subscribed = true;
                let user_agent = user_agent.map(|mut u| {
                    // Cut on a character boundary: the agent is untrusted text.
                    let mut n = u.len().min(128);
                    while !u.is_char_boundary(n) {
                        n -= 1;
                    }
                    u.truncate(n);
                    u
                });
                self.core.set_user_agent(user_agent.as_deref());
                let sub_id = format!("{:x}", self.core.id);
                out.push(Output::Send(msg::encode_subscribe_result(
                    id,
                    &sub_id,
                    &self.ch.extranonce1,
                    self.ch.extranonce2_size,
                )));
                self.maybe_start(now, out);
            }
            ClientRequest::Authorize { username, password } => {
                if !ConnCore::valid_name(&username, &self.core.cfg) {
                    self.bad(Reject::Unauthorized, id, out);
                    return;
                }
                if let Some(d) = password.as_deref().and_then(password_difficulty) {
                    self.ch.vardiff.set(self.core.cfg.vardiff_rules(), d, now);
                    self.ch.fixed_difficulty = true;
                }
                let payout = match self.solo_payout(&username) {
                    Ok(p) => p,
                    Err(why) => {
                        self.core.consecutive_bad += 1;
                        self.core.count_reject(Reject::Unauthorized);
                        let code = Reject::Unauthorized.code();
                        out.push(Output::Send(msg::encode_error(id, code, &why)));
                        return;
                    }
                };
                if let Err(r) = self.core.authorize(&username) {
                    self.bad(r, id, out);
                    return;
                }
                if payout.is_some() {
                    self.ch.payout = payout;
                }
                out.push(Output::Send(msg::encode_true(id)));
                self.maybe_start(now, out);
            }
            ClientRequest::Configure { extensions, params } => {
                let result = self.configure(&extensions, &params);
                out.push(Output::Send(msg::encode_result(id, &Value::Object(result))));
            }
            ClientRequest::ExtranonceSubscribe => {
                self.ch.extranonce_subscribed = true;
                out.push(Output::Send(msg::encode_true(id)));
            }
            ClientRequest::SuggestDifficulty(d) | ClientRequest::SuggestTarget(d) => {
                if !self.ch.fixed_difficulty {
                    self.ch.vardiff.set(self.core.cfg.vardiff_rules(), d, now);
                }
                if !req.id.is_null() {
                    out.push(Output::Send(msg::encode_true(id)));
                }
            }
            ClientRequest::Submit(s) => {
                let s = s.as_ref(&req.id);
                self.on_submit(&s, now, out);
            }
            ClientRequest::Unknown(method) => {
                tracing::debug!(session = self.core.id, %method, "unknown method");
                self.bad(Reject::UnknownMethod, id, out);
            }
        }
    }

    /// BIP 310: answer only what was asked.
    fn configure(
        &mut self,
        extensions: &[String],
        params: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut result = Map::new();
        for ext in extensions {
            match ext.as_str() {
                "version-rolling" => {
                    let theirs = params
                        .get("version-rolling.mask")
                        .and_then(Value::as_str)
                        .and_then(|m| u32::from_str_radix(m, 16).ok())
                        .unwrap_or(u32::MAX);
                    let min_bits = params
                        .get("version-rolling.min-bit-count")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let mask = theirs & self.core.cfg.version_mask;
                    let ok = mask != 0 && u64::from(mask.count_ones()) >= min_bits;
                    self.ch.version_mask = if ok { mask } else { 0 };
                    self.ch.sent_mask = Some(self.ch.version_mask);
                    result.insert(ext.clone(), Value::Bool(ok));
                    result.insert(
                        "version-rolling.mask".into(),
                        Value::from(format!("{:08x}", self.ch.version_mask)),
                    );
                }
                "minimum-difficulty" => {
                    let v = params
                        .get("minimum-difficulty.value")
                        .and_then(Value::as_f64);
                    match v {
                        Some(v) if v.is_finite() && v > 0.0 => {
                            self.ch.vardiff.set_min(self.core.cfg.vardiff_rules(), v);
                            result.insert(ext.clone(), Value::Bool(true));
                        }
                        _ => {
                            result.insert(ext.clone(), Value::Bool(false));
                        }
                    }
                }
                "subscribe-extranonce" => {
                    self.ch.extranonce_subscribed = true;
                    result.insert(ext.clone(), Value::Bool(true));
                }
                _ => {
                    result.insert(ext.clone(), Value::Bool(false));
                }
            }
        }
        result
    }

    /// A new job from the session's upstream.
    pub fn on_job(&mut self, job: Arc<Job>, now: Instant, out: &mut Vec<Output>) {
        self.ch.on_job(job);
        self.maybe_start(now, out);
    }

    /// The session was moved to another upstream; if the old one failed,
    /// its jobs are stale (their shares have nowhere to go).
    pub fn on_moved(&mut self, old: UpstreamId, old_failed: bool) {
        self.ch.on_moved(old, old_failed);
    }

    /// The pool's verdict on a share this session forwarded.
    pub fn on_upstream_result(&mut self, r: &crate::upstream::UpstreamResult, now: Instant) {
        self.core.on_upstream_result(r, now);
    }

    /// Lets time pass (vardiff for quiet miners).
    pub fn on_tick(&mut self, now: Instant) {
        self.ch.on_tick(&self.core.cfg, now);
    }

    fn maybe_start(&mut self, _now: Instant, out: &mut Vec<Output>) {
        if !self.is_ready() {
            return;
        }
        let Some(started) = self.ch.start_job(self.core.cfg.max_jobs) else {
            return;
        };
        if let Some(d) = started.new_difficulty {
            out.push(Output::Send(msg::encode_set_difficulty(d)));
        }
        if let Some(mask) = started.new_mask {
            out.push(Output::Send(msg::encode_set_version_mask(mask)));
        }
        out.push(Output::Send(started.job.v1_notify(started.clean)));
    }

    fn on_submit(&mut self, s: &SubmitRef<'_>, now: Instant, out: &mut Vec<Output>) {
        // One lookup of the worker per share: its name for the share, its
        // books for the outcome.
        let (name, book) = match self.core.workers.get_key_value(s.worker) {
            Some((k, b)) => (Some(k.clone()), b.clone()),
            None => (None, None),
        };
        let checked = self.check_submit(s, name, now);
        let reply = match self.core.settle(&mut self.ch, checked, book, now, out) {
            Verdict::Accepted { .. } => msg::encode_true(s.id),
            Verdict::Rejected(r) => msg::encode_error(s.id, r.code(), r.message()),
        };
        out.push(Output::Send(reply));
    }

    /// Validates a V1 submit: the connection checks, the job lookup, the
    /// hex fields decoded, then the channel's check. On failure, the
    /// reason and the difficulty the miner was working at.
    fn check_submit(
        &mut self,
        s: &SubmitRef<'_>,
        worker: Option<Arc<str>>,
        now: Instant,
    ) -> Result<ShareForward, (Reject, f64)> {
        if !self.ch.subscribed {
            return Err((Reject::NotSubscribed, 0.0));
        }
        let Some(worker) = worker else {
            return Err((Reject::Unauthorized, 0.0));
        };
        let ch = &mut self.ch;
        let job_id = u64::from_str_radix(s.job_id, 16).map_err(|_| ch.unknown_job())?;
        let slot = ch.find_job(job_id)?;
        let en2_size = ch.extranonce2_size;
        if s.extranonce2.len() != 2 * en2_size {
            return Err((Reject::BadExtranonce2Size, 0.0));
        }
        let mut en2 = [0u8; 32];
        hex::decode_to_slice(s.extranonce2, &mut en2[..en2_size])
            .map_err(|_| (Reject::BadHex, 0.0))?;
        let ntime = hex::decode_u32_be(s.ntime).map_err(|_| (Reject::BadHex, 0.0))?;
        let nonce = hex::decode_u32_be(s.nonce).map_err(|_| (Reject::BadHex, 0.0))?;
        let version = match s.version_bits {
            None => VersionIn::Job,
            Some(v) => match hex::decode_u32_be(v) {
                Ok(bits) => VersionIn::Bits(bits),
                Err(_) => {
                    // Bad version hex has always been found after the
                    // time check: a share failing both stays out of range.
                    ch.check_ntime(slot, ntime)?;
                    return Err((Reject::BadHex, 0.0));
                }
            },
        };
        let share = Share {
            extranonce: &en2[..en2_size],
            ntime,
            nonce,
            version,
        };
        ch.check(slot, &share, worker, self.core.id, now)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(p) = &self.prefixes
            && !self.ch.extranonce1.is_empty()
        {
            p.release(&self.ch.extranonce1);
        }
    }
}

/// Reads `d=N` from a password such as `x`, `d=4096` or `x,d=0.5`.
pub fn password_difficulty(password: &str) -> Option<f64> {
    password
        .split([',', ';', ' ', '&'])
        .filter_map(|kv| kv.strip_prefix("d="))
        .filter_map(|v| v.parse::<f64>().ok())
        .find(|d| d.is_finite() && *d > 0.0)
}
