//! `FrameDecoder` (Stratum V2) on arbitrary bytes cut into arbitrary reads,
//! with a small payload limit; every frame it yields is decoded as a
//! message. What the decoder promises, whatever the chunking:
//! - frames come out in order and their headers and payloads, laid end to
//!   end, are exactly the bytes consumed;
//! - a header stating a payload over the limit is `TooLarge` and nothing
//!   after it is yielded; an incomplete frame is never yielded;
//! - decoding a frame as a message never panics, and an unknown type is
//!   `Unknown`, never an error.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_sv2::frame::{FrameDecoder, FrameError, HEADER_LEN, Header};
use sluice_sv2::Message;

fuzz_target!(|input: (u16, Vec<u8>, Vec<u8>)| {
    let (limit, cuts, data) = input;
    let max = usize::from(limit % 1024);
    let dec = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut failed = false;
    let mut cut = cuts.iter().cycle();
    'feed: while fed < data.len() {
        let n = cut.next().map_or(data.len(), |&c| 1 + usize::from(c % 64));
        let end = (fed + n).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= max);
                    assert_eq!(f.payload.len(), f.header.msg_length as usize);
                    if let Ok(m) = Message::decode(&f) {
                        if let Message::Unknown(u) = &m {
                            assert_eq!(u, &f);
                        }
                    }
                    out.extend_from_slice(&f.header.encode());
                    out.extend_from_slice(&f.payload);
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max: m }) => {
                    assert_eq!(m, max);
                    assert!(len > max);
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    // The consumed bytes are the input's prefix, frame for frame.
    assert_eq!(&data[..out.len()], &out[..]);
    if failed {
        let head: [u8; HEADER_LEN] = data[out.len()..out.len() + HEADER_LEN]
            .try_into()
            .expect("a refused header is whole");
        assert!(Header::decode(&head).msg_length as usize > max);
    } else {
        // What is left is less than a whole frame.
        let rest = &data[out.len()..];
        if rest.len() >= HEADER_LEN {
            let head: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().expect("6 bytes");
            assert!(rest.len() < HEADER_LEN + Header::decode(&head).msg_length as usize);
        }
    }
});
