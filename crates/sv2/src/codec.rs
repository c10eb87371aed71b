//! The thin tokio adapter: tokio-util codecs over the sans-IO frame decoder
//! and Noise transport, and the two handshake acts over an async stream.
//!
//! A connection runs [`accept`] (server) or [`connect`] (client) on its
//! stream, then wraps the stream in `Framed` with the [`NoiseCodec`] they
//! return; [`PlainCodec`] is the same without encryption, for links the
//! operator trusts (and tests). Handshake deadlines are the caller's
//! (`tokio::time::timeout`), as only it knows its limits.

use crate::frame::{Frame, FrameDecoder, FrameError};
use crate::message::Message;
use crate::noise::{
    ACT1_LEN, ACT2_LEN, AuthorityPublicKey, Initiator, NoiseError, Responder, ResponderConfig,
    Transport, TransportRecv, TransportSend,
};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// Why a V2 connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A plaintext frame over the limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The handshake or an encrypted frame failed.
    #[error("noise: {0}")]
    Noise(#[from] NoiseError),
}

/// Plaintext frames: decodes [`Frame`]s; encodes [`Message`]s, or frames
/// already encoded once for many connections.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainCodec {
    frames: FrameDecoder,
}

impl PlainCodec {
    /// A codec refusing payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        PlainCodec {
            frames: FrameDecoder::new(max_payload),
        }
    }
}

impl Decoder for PlainCodec {
    type Item = Frame;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.frames.decode(src)?)
    }
}

impl Encoder<&Message> for PlainCodec {
    type Error = CodecError;
    fn encode(&mut self, m: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        m.put_frame(dst);
        Ok(())
    }
}

impl Encoder<&Frame> for PlainCodec {
    type Error = CodecError;
    fn encode(&mut self, f: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        check_length(f)?;
        dst.extend_from_slice(&f.header.encode());
        dst.extend_from_slice(&f.payload);
        Ok(())
    }
}

/// A frame's public fields could disagree; on the wire that would
/// desynchronise the peer, so it is refused here.
fn check_length(f: &Frame) -> Result<(), CodecError> {
    if f.header.msg_length as usize != f.payload.len() {
        return Err(NoiseError::LengthMismatch {
            stated: f.header.msg_length,
            actual: f.payload.len(),
        }
        .into());
    }
    Ok(())
}

/// Encrypted frames after a handshake, both directions.
#[derive(Debug)]
pub struct NoiseCodec {
    encoder: NoiseEncoder,
    decoder: NoiseDecoder,
}

impl NoiseCodec {
    /// A codec over a finished handshake, refusing payloads over
    /// `max_payload` bytes.
    pub fn new(transport: Transport, max_payload: usize) -> Self {
        let (send, recv) = transport.into_split();
        NoiseCodec {
            encoder: NoiseEncoder {
                send,
                scratch: BytesMut::new(),
            },
            decoder: NoiseDecoder { recv, max_payload },
        }
    }

    /// The two directions, for a writer task and a reader task.
    pub fn into_split(self) -> (NoiseEncoder, NoiseDecoder) {
        (self.encoder, self.decoder)
    }
}

impl Decoder for NoiseCodec {
    type Item = Frame;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        self.decoder.decode(src)
    }
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        self.decoder.decode_eof(src)
    }
}

impl<'a> Encoder<&'a Message> for NoiseCodec {
    type Error = CodecError;
    fn encode(&mut self, m: &'a Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encoder.encode(m, dst)
    }
}

impl<'a> Encoder<&'a Frame> for NoiseCodec {
    type Error = CodecError;
    fn encode(&mut self, f: &'a Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encoder.encode(f, dst)
    }
}

/// The receiving half of a [`NoiseCodec`].
#[derive(Debug)]
pub struct NoiseDecoder {
    recv: TransportRecv,
    max_payload: usize,
}

impl Decoder for NoiseDecoder {
    type Item = Frame;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.recv.decode(src, self.max_payload)?)
    }

    /// The stream ended: anything but a clean frame boundary is an error.
    /// The header of a frame is consumed as soon as it arrives, so an
    /// empty buffer alone does not prove the peer stopped between frames.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if let Some(f) = self.decode(src)? {
            return Ok(Some(f));
        }
        if !src.is_empty() || self.recv.mid_frame() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stream ended inside an encrypted frame",
            )
            .into());
        }
        Ok(None)
    }
}

/// The sending half of a [`NoiseCodec`].
#[derive(Debug)]
pub struct NoiseEncoder {
    send: TransportSend,
    /// The payload being encrypted, kept to reuse its allocation.
    scratch: BytesMut,
}

impl Encoder<&Message> for NoiseEncoder {
    type Error = CodecError;
    fn encode(&mut self, m: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.scratch.clear();
        m.put_payload(&mut self.scratch);
        Ok(self.send.encrypt_frame(&m.header(), &self.scratch, dst)?)
    }
}

/// A frame encoded once (a job fanned out to many connections) is only
/// encrypted per connection.
impl Encoder<&Frame> for NoiseEncoder {
    type Error = CodecError;
    fn encode(&mut self, f: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(self.send.encrypt_frame(&f.header, &f.payload, dst)?)
    }
}

/// The server's side of the handshake: reads act 1, writes act 2.
///
/// The responder's work is one ephemeral key and two ECDHs, about 0.1 ms
/// of CPU on the development machine, done on the calling task. A server
/// facing reconnect storms bounds how many run at once and puts a deadline
/// on each (the client may send act 1 slowly), so share handling on the
/// same runtime is not starved.
pub async fn accept<S>(
    io: &mut S,
    config: &ResponderConfig,
    max_payload: usize,
) -> Result<NoiseCodec, CodecError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut act1 = [0u8; ACT1_LEN];
    io.read_exact(&mut act1).await?;
    let (act2, transport) = Responder::new(config)?.respond(&act1)?;
    io.write_all(&act2).await?;
    io.flush().await?;
    Ok(NoiseCodec::new(transport, max_payload))
}

/// The client's side: writes act 1, reads act 2, checks the server's
/// certificate against `authority` at `now` (Unix seconds). `None` skips
/// that check: only for links where the server is known some other way.
pub async fn connect<S>(
    io: &mut S,
    authority: Option<AuthorityPublicKey>,
    now: u32,
    max_payload: usize,
) -> Result<NoiseCodec, CodecError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let initiator = Initiator::new(authority)?;
    io.write_all(&initiator.act1()).await?;
    io.flush().await?;
    let mut act2 = [0u8; ACT2_LEN];
    io.read_exact(&mut act2).await?;
    Ok(NoiseCodec::new(initiator.finish(&act2, now)?, max_payload))
}
