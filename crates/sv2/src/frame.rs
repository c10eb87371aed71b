//! Frames: the 6-byte header and a payload of `msg_length` bytes.
//!
//! The header is `extension_type: u16 LE`, `msg_type: u8`,
//! `msg_length: u24 LE`. The most significant bit of `extension_type` is the
//! channel-message bit; when it is set, the payload starts with the `u32`
//! channel id (every channel message declares it as its first field).

use bytes::{Buf, Bytes, BytesMut};

/// Length of a frame header on the wire.
pub const HEADER_LEN: usize = 6;

/// The channel-message bit of `extension_type`.
pub const CHANNEL_MSG_BIT: u16 = 0x8000;

/// Largest payload a U24 length can state.
pub const MAX_PAYLOAD_LEN: usize = 0xff_ffff;

/// Default largest payload accepted. The largest mining messages are a
/// SetGroupChannel naming 65,535 channels (262,146 bytes) and a
/// NewExtendedMiningJob with two full 64 KiB coinbase halves and 255
/// branches (about 136 KiB); 512 KiB fits both without letting a peer make
/// us buffer 16 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 512 * 1024;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Extension type, channel-message bit included.
    pub extension_type: u16,
    /// Message type within the extension.
    pub msg_type: u8,
    /// Payload length in bytes (a U24 on the wire).
    pub msg_length: u32,
}

impl Header {
    /// A header for a message of the base protocol (extension 0).
    pub fn new(msg_type: u8, channel_msg: bool, msg_length: u32) -> Self {
        debug_assert!(msg_length as usize <= MAX_PAYLOAD_LEN);
        Header {
            extension_type: if channel_msg { CHANNEL_MSG_BIT } else { 0 },
            msg_type,
            msg_length,
        }
    }

    /// Reads a header. Every 6-byte string is a header; whether its length
    /// is acceptable is the caller's limit to apply.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        Header {
            extension_type: u16::from_le_bytes([b[0], b[1]]),
            msg_type: b[2],
            msg_length: u32::from_le_bytes([b[3], b[4], b[5], 0]),
        }
    }

    /// The header's 6 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let e = self.extension_type.to_le_bytes();
        let l = self.msg_length.to_le_bytes();
        [e[0], e[1], self.msg_type, l[0], l[1], l[2]]
    }

    /// Whether the channel-message bit is set.
    pub fn channel_msg(&self) -> bool {
        self.extension_type & CHANNEL_MSG_BIT != 0
    }

    /// The extension type without the channel-message bit.
    pub fn extension(&self) -> u16 {
        self.extension_type & !CHANNEL_MSG_BIT
    }
}

/// Most a decoder reserves ahead of bytes that have arrived. A header alone
/// must not make a connection hold its whole payload limit: ten thousand
/// peers each stating 512 KiB and sending nothing more would pin 5 GiB.
/// The buffer still grows as the payload arrives.
pub(crate) const RESERVE_STEP: usize = 16 * 1024;

/// Makes room toward `needed` bytes in `src`, at most [`RESERVE_STEP`] more
/// than it holds.
pub(crate) fn reserve_toward(src: &mut BytesMut, needed: usize) {
    src.reserve(needed.saturating_sub(src.len()).min(RESERVE_STEP));
}

/// A whole plaintext frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its header.
    pub header: Header,
    /// Exactly `header.msg_length` bytes.
    pub payload: Bytes,
}

impl Frame {
    /// A frame whose header states exactly its payload's length.
    pub fn new(msg_type: u8, channel_msg: bool, payload: Bytes) -> Result<Self, FrameError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(FrameError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        Ok(Frame {
            header: Header::new(msg_type, channel_msg, payload.len() as u32),
            payload,
        })
    }

    /// The channel a base-protocol message is for: its first four payload
    /// bytes, for the message types that start with a channel id. Decided
    /// by type, not by the header's channel bit, because peers disagree on
    /// that bit for NewMiningJob and the custom-job messages (the spec's
    /// table and the reference changed it in opposite directions in 2026).
    pub fn channel_id(&self) -> Option<u32> {
        if self.header.extension() != 0
            || !crate::message::starts_with_channel_id(self.header.msg_type)
        {
            return None;
        }
        let b = self.payload.first_chunk::<4>()?;
        Some(u32::from_le_bytes(*b))
    }
}

/// Why a byte stream cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The header states a payload larger than the connection allows. The
    /// stream cannot be resynchronised without reading it, so the
    /// connection ends.
    #[error("frame payload of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Stated payload length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Splits a plaintext byte stream into frames, bounding the payload length
/// before buffering any of it. Sans-IO: feed it the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_payload: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl FrameDecoder {
    /// A decoder that refuses payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        FrameDecoder {
            max_payload: max_payload.min(MAX_PAYLOAD_LEN),
        }
    }

    /// The payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Takes one frame off the front of `src`, or `Ok(None)` when the frame
    /// is not complete yet (nothing is consumed then).
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(head) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::decode(head);
        let len = header.msg_length as usize;
        if len > self.max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_payload,
            });
        }
        if src.len() < HEADER_LEN + len {
            reserve_toward(src, HEADER_LEN + len);
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let payload = src.split_to(len).freeze();
        Ok(Some(Frame { header, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stated_length_reserves_only_a_step_ahead() {
        let dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&Header::new(0x25, false, 400_000).encode());
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(
            buf.capacity() <= HEADER_LEN + RESERVE_STEP + 64,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn header_round_trip_and_channel_bit() {
        let h = Header::new(0x1b, true, 0x01_0203);
        let b = h.encode();
        assert_eq!(b, [0x00, 0x80, 0x1b, 0x03, 0x02, 0x01]);
        let d = Header::decode(&b);
        assert_eq!(d, h);
        assert!(d.channel_msg());
        assert_eq!(d.extension(), 0);
    }

    #[test]
    fn decoder_waits_for_whole_frames_and_bounds_length_first() {
        let dec = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0x10, 3, 0][..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[0, 1, 2]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 8, "nothing consumed while incomplete");
        buf.extend_from_slice(&[3, 0xaa]);
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.header.msg_type, 0x10);
        assert_eq!(&f.payload[..], &[1, 2, 3]);
        assert_eq!(&buf[..], &[0xaa]);

        // Exactly the limit is accepted.
        let mut at = BytesMut::from(&[0u8, 0, 0x10, 10, 0, 0][..]);
        at.extend_from_slice(&[7; 10]);
        assert_eq!(dec.decode(&mut at).unwrap().unwrap().payload.len(), 10);

        // Length 11 > 10: refused from the header alone.
        let mut big = BytesMut::from(&[0u8, 0, 0x10, 11, 0, 0][..]);
        assert_eq!(
            dec.decode(&mut big),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
    }
}
