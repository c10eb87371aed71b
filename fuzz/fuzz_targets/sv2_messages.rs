//! Every Stratum V2 message decoder on arbitrary payloads: the first byte
//! picks the message type (all 26 are reached), the rest is the payload.
//! What the decoders promise:
//! - no panic, no allocation sized by a length the payload cannot hold;
//! - what decodes re-encodes to at most the bytes it was read from, and
//!   the re-encoding decodes to a value that encodes the same again (a
//!   decode is a function of the bytes it reads; trailing bytes are
//!   ignored; a BOOL's seven high bits are dropped).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_sv2::frame::{Frame, Header};
use sluice_sv2::Message;

/// The message types of the Common and Mining protocols.
const TYPES: [u8; 26] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
    0x1a, 0x1b, 0x1c, 0x1d, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let msg_type = TYPES[usize::from(pick) % TYPES.len()];
    let frame = Frame {
        header: Header::new(msg_type, false, payload.len() as u32),
        payload: Bytes::copy_from_slice(payload),
    };
    let Ok(m) = Message::decode(&frame) else {
        return;
    };
    assert!(!matches!(m, Message::Unknown(_)), "type {msg_type:#x} is known");
    let again = m.to_frame_bytes();
    let len = m.header().msg_length as usize;
    assert!(len <= payload.len(), "re-encoding is longer than its source");
    let f2 = Frame {
        header: m.header(),
        payload: again.slice(6..),
    };
    assert_eq!(f2.header.msg_type, msg_type);
    // Compared as bytes: an F32 may be NaN, which is not equal to itself.
    let m2 = Message::decode(&f2).expect("re-encoding decodes");
    assert_eq!(m2.to_frame_bytes(), again);
});
