//! The Stratum V2 pool client's protocol state (sans-IO): decoded messages
//! and `now` in, [`ClientAction`]s out, for one upstream connection that
//! carries one extended channel. The connection task owns the socket and
//! the Noise transport; a [`ClientAction::Send`] holds one plaintext frame.
//!
//! The channel is the V2 form of a V1 subscription: its extranonce prefix
//! plays the pool's extranonce1 and its extranonce size the extranonce2
//! size, so jobs are built exactly as from a `mining.notify` (the session
//! prefix and the miner's extranonce after the pool's prefix, zeros after
//! them) and every miner behind the proxy, V1 or V2, is served from it.
//!
//! - Jobs: a future NewExtendedMiningJob waits for the SetNewPrevHash that
//!   names it and is then published clean; a job with a `min_ntime` is
//!   published at once on the prev hash in force.
//! - Targets: SetTarget applies at once, to the jobs already out as well.
//!   The current job is published again at the new difficulty, and until
//!   sessions move to it, shares of older jobs go up only if they meet the
//!   new target ([`V2Client::should_forward`]).
//! - Shares: SubmitSharesExtended with a sequence number each; a
//!   SubmitShares.Success accepts every share still waiting up to its
//!   sequence number, a SubmitShares.Error refuses one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sluice_pow::Target;
use sluice_sv1::{Notify, SubscribeResult};
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::message::{self as m, Message, setup_flags};

use super::{ClientAction, JobParts, Pending, PoolReject, UpstreamConfig, UpstreamResult, answer};
use crate::job::ShareForward;
use crate::upstream::{ShareInfo, pending_checks};

/// The request id of our one OpenExtendedMiningChannel.
const OPEN_REQUEST: u32 = 1;

/// Future jobs kept at most while waiting for their prev hash.
const MAX_FUTURE: usize = 8;

/// The bits V2 extended channels roll (BIP 320).
const V2_MASK: u32 = 0x1fff_e000;

/// What the pool said when it opened our channel.
#[derive(Debug)]
struct Opened {
    id: u32,
    /// The group the pool put it in (it may send jobs there).
    group: u32,
    sub: SubscribeResult,
}

/// Sans-IO protocol state of one V2 upstream connection.
#[derive(Debug)]
pub struct V2Client {
    cfg: Arc<UpstreamConfig>,
    channel: Option<Opened>,
    /// The channel's target, as a difficulty.
    difficulty: f64,
    future: Vec<m::NewExtendedMiningJob>,
    active: Option<m::NewExtendedMiningJob>,
    prev: Option<m::SetNewPrevHash>,
    /// The pool requires the job's version as is (no rolling).
    fixed_version: bool,
    /// Shares numbered since the channel opened; the wire carries the low
    /// 32 bits (the sequence number), which wrap.
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    last_job: Option<Instant>,
    consecutive_rejects: u32,
    /// The next job published must be clean (the prefix changed).
    force_clean: bool,
    /// The hashrate last stated with UpdateChannel.
    stated: Option<f64>,
}

impl V2Client {
    /// Fresh state; call [`V2Client::handshake`] once the Noise handshake
    /// is done.
    pub fn new(cfg: Arc<UpstreamConfig>) -> Self {
        Self {
            cfg,
            channel: None,
            difficulty: 1.0,
            future: Vec::new(),
            active: None,
            prev: None,
            fixed_version: false,
            next_seq: 0,
            pending: BTreeMap::new(),
            last_job: None,
            consecutive_rejects: 0,
            force_clean: true,
            stated: None,
        }
    }

    /// SetupConnection and the channel request, sent together.
    pub fn handshake(&mut self, _now: Instant) -> Vec<ClientAction> {
        let g = self.cfg.geometry;
        let flags = if self.cfg.version_mask != 0 {
            setup_flags::REQUIRES_VERSION_ROLLING
        } else {
            0
        };
        vec![
            send(m::SetupConnection {
                protocol: m::PROTOCOL_MINING,
                min_version: m::PROTOCOL_VERSION,
                max_version: m::PROTOCOL_VERSION,
                flags,
                endpoint_host: Str0255::truncating(&self.cfg.url.host),
                endpoint_port: self.cfg.url.port,
                vendor: Str0255::truncating("sluice"),
                hardware_version: Str0255::truncating(""),
                firmware: Str0255::truncating(&self.cfg.user_agent),
                device_id: Str0255::truncating(""),
            }),
            send(m::OpenExtendedMiningChannel {
                request_id: OPEN_REQUEST,
                user_identity: Str0255::truncating(&self.cfg.user),
                // Not known until miners arrive; UpdateChannel follows.
                nominal_hash_rate: 0.0,
                max_target: [0xff; 32],
                min_extranonce_size: (g.prefix_len + g.downstream_len) as u16,
            }),
        ]
    }

    /// The channel as a V1 subscription (once open).
    pub fn subscription(&self) -> Option<&SubscribeResult> {
        self.channel.as_ref().map(|c| &c.sub)
    }

    /// The bits miners may roll on the current job.
    pub fn version_mask(&self) -> u32 {
        let allowed = !self.fixed_version
            && self
                .active
                .as_ref()
                .is_some_and(|j| j.version_rolling_allowed);
        if allowed {
            V2_MASK & self.cfg.version_mask
        } else {
            0
        }
    }

    /// Shares awaiting an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handles a message from the pool.
    pub fn on_message(&mut self, msg: Message, now: Instant) -> Vec<ClientAction> {
        let mut out = Vec::new();
        match msg {
            Message::SetupConnectionSuccess(ok) => {
                self.fixed_version = ok.flags & m::success_flags::REQUIRES_FIXED_VERSION != 0;
            }
            Message::SetupConnectionError(e) => out.push(ClientAction::Fail(format!(
                "pool refused the V2 setup: {}",
                e.error_code
            ))),
            Message::OpenExtendedMiningChannelSuccess(ok) if ok.request_id == OPEN_REQUEST => {
                let size = usize::from(ok.extranonce_size);
                if let Err(e) = self.cfg.geometry.fits(size) {
                    out.push(ClientAction::Fail(e.to_string()));
                    return out;
                }
                let sub = SubscribeResult {
                    extranonce1: ok.extranonce_prefix.to_vec(),
                    extranonce2_size: size,
                };
                self.difficulty = Target::from_le_bytes(&ok.target).difficulty();
                self.channel = Some(Opened {
                    id: ok.channel_id,
                    group: ok.group_channel_id,
                    sub: sub.clone(),
                });
                out.push(ClientAction::Subscribed(sub));
            }
            Message::OpenMiningChannelError(e) => out.push(ClientAction::Fail(format!(
                "pool refused the channel for {}: {}",
                self.cfg.user, e.error_code
            ))),
            Message::NewExtendedMiningJob(j) if self.ours(j.channel_id) => {
                if j.min_ntime.is_none() {
                    if self.future.len() >= MAX_FUTURE {
                        self.future.remove(0);
                    }
                    self.future.push(j);
                } else {
                    self.active = Some(j);
                    self.publish(false, now, &mut out);
                }
            }
            Message::SetNewPrevHash(p) if self.ours(p.channel_id) => {
                match self.future.iter().position(|f| f.job_id == p.job_id) {
                    Some(i) => self.active = Some(self.future.swap_remove(i)),
                    // A prev hash for a job we never had: nothing to mine
                    // until one comes.
                    None if self.active.as_ref().is_none_or(|j| j.job_id != p.job_id) => {
                        self.active = None;
                    }
                    None => {}
                }
                self.future.clear();
                self.prev = Some(p);
                self.publish(true, now, &mut out);
            }
            Message::SetTarget(t) if self.ours(t.channel_id) => {
                let d = Target::from_le_bytes(&t.maximum_target).difficulty();
                if d.is_finite() && d > 0.0 && d != self.difficulty {
                    self.difficulty = d;
                    // The current job again, at the new difficulty.
                    self.publish(false, now, &mut out);
                }
            }
            Message::SetExtranoncePrefix(p) if self.ours(p.channel_id) => {
                if let Some(c) = self.channel.as_mut() {
                    c.sub.extranonce1 = p.extranonce_prefix.to_vec();
                    out.push(ClientAction::Subscribed(c.sub.clone()));
                }
                // Jobs out so far carry the old prefix.
                self.force_clean = true;
                self.publish(true, now, &mut out);
            }
            Message::SubmitSharesSuccess(ok) if self.ours(ok.channel_id) => {
                let Some(last) = self.unwrap_seq(ok.last_sequence_number) else {
                    return out;
                };
                let upto: Vec<u64> = self.pending.range(..=last).map(|(k, _)| *k).collect();
                if upto.len() != ok.new_submits_accepted_count as usize {
                    tracing::warn!(
                        said = ok.new_submits_accepted_count,
                        waiting = upto.len(),
                        "pool's SubmitShares.Success count differs from the shares it covers"
                    );
                }
                for k in upto {
                    if let Some(p) = self.pending.remove(&k) {
                        self.consecutive_rejects = 0;
                        answer(p, None, None, now, &mut out);
                    }
                }
            }
            Message::SubmitSharesError(e) if self.ours(e.channel_id) => {
                let seq = self.unwrap_seq(e.sequence_number);
                if let Some(p) = seq.and_then(|n| self.pending.remove(&n)) {
                    let code = e.error_code.to_string();
                    let reject = PoolReject::of_v2(&code);
                    self.consecutive_rejects += 1;
                    tracing::debug!(%code, "pool rejected a share");
                    answer(p, Some(reject), Some(code), now, &mut out);
                    if self.consecutive_rejects >= self.cfg.max_consecutive_rejects {
                        out.push(ClientAction::Fail(format!(
                            "pool rejected {} shares in a row",
                            self.consecutive_rejects
                        )));
                    }
                }
            }
            Message::Reconnect(r) => {
                let host = r.new_host.as_str().unwrap_or("").to_owned();
                let url = crate::url::PoolUrl {
                    host: if host.is_empty() {
                        self.cfg.url.host.clone()
                    } else {
                        host
                    },
                    port: if r.new_port == 0 {
                        self.cfg.url.port
                    } else {
                        r.new_port
                    },
                    authority: self.cfg.url.authority,
                };
                if self.cfg.reconnect_allowed(&url.host) {
                    out.push(ClientAction::Reconnect(url, std::time::Duration::ZERO));
                } else {
                    out.push(ClientAction::RefusedReconnect(url));
                }
            }
            Message::CloseChannel(c) if self.ours(c.channel_id) => out.push(ClientAction::Fail(
                format!("pool closed the channel: {}", c.reason_code),
            )),
            Message::ChannelEndpointChanged(_) => out.push(ClientAction::Fail(
                "pool moved the channel to another endpoint".into(),
            )),
            // Group settings, answers to UpdateChannel and extensions'
            // messages change nothing here.
            other => tracing::debug!(message = other.name(), "unhandled message from pool"),
        }
        out
    }

    /// The share number a wire sequence number names: the latest sent
    /// whose low 32 bits are `seq` (`None` before any was sent).
    fn unwrap_seq(&self, seq: u32) -> Option<u64> {
        let latest = self.next_seq.checked_sub(1)?;
        latest.checked_sub(u64::from((latest as u32).wrapping_sub(seq)))
    }

    /// Whether a channel id names our channel, or the group it is in
    /// (the pool may send jobs there).
    fn ours(&self, id: u32) -> bool {
        self.channel
            .as_ref()
            .is_some_and(|c| c.id == id || c.group == id)
    }

    /// Publishes the current job (`clean`: earlier jobs are dead).
    fn publish(&mut self, clean: bool, now: Instant, out: &mut Vec<ClientAction>) {
        let (Some(j), Some(p)) = (&self.active, &self.prev) else {
            return;
        };
        // Taken whatever `clean` says: left set, it would make the next
        // job on the same block clean as well.
        let forced = std::mem::take(&mut self.force_clean);
        let clean = clean || forced;
        self.last_job = Some(now);
        out.push(ClientAction::Job(JobParts {
            notify: Notify {
                job_id: j.job_id.to_string(),
                prev_hash: p.prev_hash,
                coinb1: j.coinbase_tx_prefix.to_vec(),
                coinb2: j.coinbase_tx_suffix.to_vec(),
                branches: j.merkle_path.to_vec(),
                version: j.version,
                nbits: p.nbits,
                ntime: j.min_ntime.unwrap_or(p.min_ntime),
                clean,
            },
            difficulty: self.difficulty,
            clean,
        }));
    }

    /// True when a share should go to the pool: a target applies at once
    /// in V2, so a share of a job made at an easier one goes only if it
    /// meets the target in force (below it the pool would refuse it).
    pub fn should_forward(&self, s: &ShareForward) -> bool {
        s.is_block
            || s.job.pool_difficulty >= self.difficulty
            || Target::from_difficulty(self.difficulty).is_ok_and(|t| t.is_met_by(&s.hash))
    }

    /// Encodes a share for the pool.
    pub fn submit(&mut self, s: &ShareForward) -> Vec<Bytes> {
        let Some(c) = &self.channel else {
            return Vec::new();
        };
        let Ok(job_id) = s.job.upstream_job_id.parse::<u32>() else {
            return Vec::new();
        };
        // The session's extranonce, then the zeros its geometry leaves.
        let mut en = s.extranonce2.as_slice().to_vec();
        en.resize(en.len() + s.job.extranonce_pad, 0);
        let Ok(extranonce) = B032::new(en) else {
            return Vec::new();
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(
            seq,
            Pending {
                session: s.session,
                difficulty: s.difficulty,
                sent: s.received,
                share: ShareInfo::of(s),
                block: None,
            },
        );
        vec![frame(m::SubmitSharesExtended {
            channel_id: c.id,
            sequence_number: seq as u32,
            job_id,
            nonce: s.nonce,
            ntime: s.ntime,
            version: s.version,
            extranonce,
        })]
    }

    /// Encodes a block for the pool (an ordinary share in V2: the pool
    /// sees it meets the network target); its verdict comes back as
    /// [`ClientAction::Block`].
    pub fn submit_block(&mut self, id: u64, s: &ShareForward, now: Instant) -> Vec<Bytes> {
        let seq = self.next_seq;
        let out = self.submit(s);
        if let Some(p) = self.pending.get_mut(&seq) {
            p.block = Some((id, now));
        }
        out
    }

    /// States the hashrate behind the channel (UpdateChannel) when the
    /// difficulty the router would like differs from the last by more
    /// than half or double: the pool sets its target from it.
    pub fn suggest(&mut self, difficulty: f64) -> Option<Bytes> {
        let c = self.channel.as_ref()?;
        let due = self.cfg.suggest_difficulty
            && difficulty.is_finite()
            && difficulty > 0.0
            && super::suggestion_due(&mut self.stated, difficulty);
        if !due {
            return None;
        }
        // The router asks for about two shares a second at `difficulty`.
        let hashrate = difficulty * 4_294_967_296.0 * 2.0;
        Some(frame(m::UpdateChannel {
            channel_id: c.id,
            nominal_hash_rate: hashrate as f32,
            maximum_target: [0xff; 32],
        }))
    }

    /// Forgets shares still waiting (the connection is gone).
    pub fn drain_pending(&mut self) -> (Vec<UpstreamResult>, Vec<u64>) {
        super::drain(std::mem::take(&mut self.pending).into_values())
    }

    /// The stall timer, and that the pool answers what we submit.
    pub fn on_tick(&self, now: Instant) -> Option<ClientAction> {
        pending_checks(
            self.pending.values(),
            self.pending.len(),
            self.last_job,
            self.cfg.stall_timeout,
            now,
        )
    }
}

fn frame(msg: impl Into<Message>) -> Bytes {
    msg.into().to_frame_bytes()
}

fn send(msg: impl Into<Message>) -> ClientAction {
    ClientAction::Send(frame(msg))
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
