//! One upstream connection's protocol, Stratum V1 or V2, behind one face
//! for the connection task: the protocol state ([`Proto`]) and the wire
//! that frames it ([`PoolWire`]: JSON lines, or Noise-encrypted frames).
//! Which one a connection speaks is its URL's: a `stratum2+tcp://` URL
//! carries the pool's authority key.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_pow::version::RollingRule;
use sluice_sv1::{LineCodec, SubscribeResult};
use sluice_sv2::Message;
use sluice_sv2::codec::NoiseCodec;
use sluice_sv2::frame::{Frame, HEADER_LEN, Header};
use tokio_util::codec::{Decoder, Encoder};

use super::v2::V2Client;
use super::{ClientAction, ClientState, UpstreamConfig, UpstreamResult};
use crate::job::ShareForward;

/// The protocol state of one connection (one per connection, held by its
/// task: the size difference does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Proto {
    /// Stratum V1.
    V1(ClientState),
    /// Stratum V2, one extended channel.
    V2(V2Client),
}

/// Something the pool sent, framed.
#[derive(Debug)]
pub enum Input {
    /// A V1 line.
    Line(Bytes),
    /// A V2 message.
    Msg(Message),
}

impl Proto {
    /// The protocol for `cfg`'s pool (V1 resumes `resume`, a session id
    /// from the last connection).
    pub fn new(cfg: Arc<UpstreamConfig>, v2: bool, resume: Option<String>) -> Self {
        if v2 {
            Proto::V2(V2Client::new(cfg))
        } else {
            Proto::V1(ClientState::new(cfg).resuming(resume))
        }
    }

    /// What to send once connected.
    pub fn handshake(&mut self, now: Instant) -> Vec<ClientAction> {
        match self {
            Proto::V1(s) => s.handshake(now),
            Proto::V2(s) => s.handshake(now),
        }
    }

    /// Takes what the pool sent.
    pub fn on_input(&mut self, input: Input, now: Instant) -> Vec<ClientAction> {
        match (self, input) {
            (Proto::V1(s), Input::Line(l)) => s.on_line(&l, now),
            (Proto::V2(s), Input::Msg(m)) => s.on_message(m, now),
            _ => Vec::new(),
        }
    }

    /// The pool's extranonce: a subscription, or a channel.
    pub fn subscription(&self) -> Option<&SubscribeResult> {
        match self {
            Proto::V1(s) => s.subscription(),
            Proto::V2(s) => s.subscription(),
        }
    }

    /// Version bits miners may roll.
    pub fn version_mask(&self) -> u32 {
        match self {
            Proto::V1(s) => s.version_mask(),
            Proto::V2(s) => s.version_mask(),
        }
    }

    /// How the pool combines rolled bits with the job version: V2 shares
    /// carry the whole version, the replace rule's.
    pub fn rolling_rule(&self, cfg: &UpstreamConfig) -> RollingRule {
        match self {
            Proto::V1(_) => cfg.rolling_rule,
            Proto::V2(_) => RollingRule::Replace,
        }
    }

    /// The V1 session id to resume on the next connection.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Proto::V1(s) => s.session_id(),
            Proto::V2(_) => None,
        }
    }

    /// Whether a share should go to the pool.
    pub fn should_forward(&self, s: &ShareForward) -> bool {
        match self {
            Proto::V1(st) => st.should_forward(s),
            Proto::V2(st) => st.should_forward(s),
        }
    }

    /// A share, encoded.
    pub fn submit(&mut self, s: &ShareForward) -> Vec<Bytes> {
        match self {
            Proto::V1(st) => st.submit(s),
            Proto::V2(st) => st.submit(s),
        }
    }

    /// A block, encoded (its verdict comes back by `id`).
    pub fn submit_block(&mut self, id: u64, s: &ShareForward, now: Instant) -> Vec<Bytes> {
        match self {
            Proto::V1(st) => st.submit_block(id, s, now),
            Proto::V2(st) => st.submit_block(id, s, now),
        }
    }

    /// What to tell the pool about the difficulty the router wants.
    pub fn suggest(&mut self, difficulty: f64) -> Option<Bytes> {
        match self {
            Proto::V1(s) => s.suggest(difficulty),
            Proto::V2(s) => s.suggest(difficulty),
        }
    }

    /// Timers.
    pub fn on_tick(&self, now: Instant) -> Option<ClientAction> {
        match self {
            Proto::V1(s) => s.on_tick(now),
            Proto::V2(s) => s.on_tick(now),
        }
    }

    /// Shares the gone connection leaves unanswered.
    pub fn drain_pending(&mut self) -> (Vec<UpstreamResult>, Vec<u64>) {
        match self {
            Proto::V1(s) => s.drain_pending(),
            Proto::V2(s) => s.drain_pending(),
        }
    }
}

/// How a connection's bytes are framed.
pub enum PoolWire {
    /// JSON lines.
    Lines(LineCodec),
    /// Noise-encrypted V2 frames.
    Noise(Box<NoiseCodec>),
}

impl PoolWire {
    /// The next thing the pool sent, if a whole one is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Input>, String> {
        match self {
            PoolWire::Lines(c) => c
                .decode(buf)
                .map(|l| l.map(Input::Line))
                .map_err(|e| e.to_string()),
            PoolWire::Noise(c) => {
                let Some(f) = c.decode(buf).map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                Message::decode(&f)
                    .map(|m| Some(Input::Msg(m)))
                    .map_err(|e| format!("undecodable message from pool: {e}"))
            }
        }
    }

    /// What goes on the socket for one output: a V1 line as is, a V2
    /// plaintext frame encrypted.
    pub fn encode(&mut self, b: &Bytes, out: &mut BytesMut) -> Result<(), String> {
        match self {
            PoolWire::Lines(_) => {
                out.extend_from_slice(b);
                Ok(())
            }
            PoolWire::Noise(c) => {
                let head = b
                    .first_chunk::<HEADER_LEN>()
                    .ok_or("a frame shorter than its header")?;
                let frame = Frame {
                    header: Header::decode(head),
                    payload: b.slice(HEADER_LEN..),
                };
                c.encode(&frame, out).map_err(|e| e.to_string())
            }
        }
    }
}
