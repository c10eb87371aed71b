//! Encrypted frames after the handshake.
//!
//! On the wire a frame is its 6-byte header encrypted on its own (22
//! bytes), then the payload in chunks of at most [`MAX_CHUNK_PLAINTEXT`]
//! bytes, each encrypted with its own tag (so no ciphertext is over 65,535
//! bytes). An empty payload sends nothing after the header. Every AEAD call
//! takes the next nonce of its direction.

use bytes::{Buf, BytesMut};

use super::cipher::CipherState;
use super::{MAC_LEN, NoiseError};
use crate::frame::{Frame, HEADER_LEN, Header, MAX_PAYLOAD_LEN, reserve_toward};

/// Length of an encrypted frame header.
pub const ENCRYPTED_HEADER_LEN: usize = HEADER_LEN + MAC_LEN;

/// Largest plaintext in one payload chunk: 65,535 bytes with its tag.
pub const MAX_CHUNK_PLAINTEXT: usize = 65_535 - MAC_LEN;

const MAX_CHUNK_CIPHERTEXT: usize = MAX_CHUNK_PLAINTEXT + MAC_LEN;

/// Bytes on the wire for a payload of `payload_len` bytes, header included.
pub const fn encrypted_len(payload_len: usize) -> usize {
    ENCRYPTED_HEADER_LEN + encrypted_payload_len(payload_len)
}

const fn encrypted_payload_len(payload_len: usize) -> usize {
    payload_len + payload_len.div_ceil(MAX_CHUNK_PLAINTEXT) * MAC_LEN
}

/// Both directions of an encrypted session.
#[derive(Debug)]
pub struct Transport {
    send: TransportSend,
    recv: TransportRecv,
}

impl Transport {
    pub(crate) fn new(send: CipherState, recv: CipherState) -> Self {
        Transport {
            send: TransportSend {
                cipher: send,
                failed: false,
            },
            recv: TransportRecv {
                cipher: recv,
                pending: None,
                failed: false,
            },
        }
    }

    /// See [`TransportSend::encrypt_frame`].
    pub fn encrypt_frame(
        &mut self,
        header: &Header,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), NoiseError> {
        self.send.encrypt_frame(header, payload, dst)
    }

    /// See [`TransportRecv::decode`].
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Result<Option<Frame>, NoiseError> {
        self.recv.decode(src, max_payload)
    }

    /// The two directions, for a writer task and a reader task.
    pub fn into_split(self) -> (TransportSend, TransportRecv) {
        (self.send, self.recv)
    }
}

/// The sending direction.
#[derive(Debug)]
pub struct TransportSend {
    cipher: CipherState,
    failed: bool,
}

impl TransportSend {
    /// Appends the encrypted frame, [`encrypted_len`]`(payload.len())`
    /// bytes, to `dst`, encrypting in place there. `header.msg_length`
    /// must equal `payload.len()`, at most [`MAX_PAYLOAD_LEN`] (a U24). On
    /// error nothing is appended.
    pub fn encrypt_frame(
        &mut self,
        header: &Header,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), NoiseError> {
        if self.failed {
            return Err(NoiseError::Failed);
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(NoiseError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        if header.msg_length as usize != payload.len() {
            return Err(NoiseError::LengthMismatch {
                stated: header.msg_length,
                actual: payload.len(),
            });
        }
        let start = dst.len();
        dst.reserve(encrypted_len(payload.len()));
        let result = self.seal(&header.encode(), dst).and_then(|()| {
            payload
                .chunks(MAX_CHUNK_PLAINTEXT)
                .try_for_each(|chunk| self.seal(chunk, dst))
        });
        if result.is_err() {
            // Only nonce exhaustion gets here; this direction is done.
            dst.truncate(start);
            self.failed = true;
        }
        result
    }

    fn seal(&mut self, plain: &[u8], dst: &mut BytesMut) -> Result<(), NoiseError> {
        let at = dst.len();
        dst.extend_from_slice(plain);
        let tag = self.cipher.encrypt(&[], &mut dst[at..])?;
        dst.extend_from_slice(&tag);
        Ok(())
    }
}

/// The receiving direction.
#[derive(Debug)]
pub struct TransportRecv {
    cipher: CipherState,
    /// A header already decrypted whose payload has not fully arrived:
    /// decrypting it again would use the wrong nonce.
    pending: Option<Header>,
    failed: bool,
}

impl TransportRecv {
    /// Whether a frame's header has been read and its payload not yet: a
    /// stream that ends now ended inside a frame.
    pub fn mid_frame(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes one frame off the front of `src`. `Ok(None)` while the frame is
    /// incomplete; a header that has arrived is decrypted and consumed at
    /// once, and its stated length checked against `max_payload` before
    /// any payload is waited for. Any error ends this direction: later
    /// calls return [`NoiseError::Failed`].
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Result<Option<Frame>, NoiseError> {
        if self.failed {
            return Err(NoiseError::Failed);
        }
        let result = self.try_decode(src, max_payload);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn try_decode(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Result<Option<Frame>, NoiseError> {
        let header = match self.pending {
            Some(h) => h,
            None => {
                let Some(enc) = src.first_chunk::<ENCRYPTED_HEADER_LEN>() else {
                    return Ok(None);
                };
                let mut head = [0u8; HEADER_LEN];
                head.copy_from_slice(&enc[..HEADER_LEN]);
                let mut tag = [0u8; MAC_LEN];
                tag.copy_from_slice(&enc[HEADER_LEN..]);
                self.cipher.decrypt(&[], &mut head, &tag)?;
                src.advance(ENCRYPTED_HEADER_LEN);
                let h = Header::decode(&head);
                let len = h.msg_length as usize;
                if len > max_payload {
                    return Err(NoiseError::TooLarge {
                        len,
                        max: max_payload,
                    });
                }
                self.pending = Some(h);
                h
            }
        };
        let enc_len = encrypted_payload_len(header.msg_length as usize);
        if src.len() < enc_len {
            reserve_toward(src, enc_len);
            return Ok(None);
        }
        let mut buf = src.split_to(enc_len);
        // Decrypt each chunk in place, then slide its plaintext down over
        // the earlier tags so the payload ends up contiguous without a copy
        // into a new buffer (a single-chunk payload does not move at all).
        let mut read = 0;
        let mut write = 0;
        while read < enc_len {
            let plain_len = MAX_CHUNK_CIPHERTEXT.min(enc_len - read) - MAC_LEN;
            let (chunk, rest) = buf[read..].split_at_mut(plain_len);
            let mut tag = [0u8; MAC_LEN];
            tag.copy_from_slice(&rest[..MAC_LEN]);
            self.cipher.decrypt(&[], chunk, &tag)?;
            if write != read {
                buf.copy_within(read..read + plain_len, write);
            }
            read += plain_len + MAC_LEN;
            write += plain_len;
        }
        buf.truncate(write);
        self.pending = None;
        Ok(Some(Frame {
            header,
            payload: buf.freeze(),
        }))
    }
}
