//! `LineCodec` on arbitrary bytes cut into arbitrary chunks, with a small
//! limit. What the codec promises, checked exactly whatever the chunking:
//! - the input splits at each `\n`; a segment longer than the limit (its
//!   `\r` counted) ends the stream with `TooLong`, as does an unterminated
//!   tail longer than the limit, and nothing after it is yielded;
//! - every other terminated segment is yielded in order, without its `\n`
//!   and one trailing `\r`, unless it is only ASCII whitespace (skipped);
//! - an unterminated tail within the limit is never yielded; at EOF it is
//!   dropped and the buffer left empty.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_sv1::{LineCodec, LineError};
use tokio_util::codec::Decoder;


fuzz_target!(|input: (u8, Vec<u8>, Vec<u8>)| {
    let (limit, cuts, data) = input;
    let max = usize::from(limit % 64);
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut failed = false;
    let mut fed = 0;
    let mut cut = cuts.iter().cycle();
    'feed: while fed < data.len() {
        // Reads of 1 to 32 bytes; after each, decode until it wants more.
        let n = cut.next().map_or(data.len(), |&c| 1 + usize::from(c % 32));
        let end = (fed + n).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => {
                    assert!(line.len() <= max, "line over the limit");
                    assert!(!line.contains(&b'\n'));
                    got.push(line);
                }
                Ok(None) => break,
                Err(LineError::TooLong { limit }) => {
                    assert_eq!(limit, max);
                    failed = true;
                    break 'feed;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    if !failed {
        match codec.decode_eof(&mut buf) {
            Ok(None) => assert!(buf.is_empty(), "EOF left bytes buffered"),
            other => panic!("EOF after every line was taken: {other:?}"),
        }
    }
    let (want, want_fail) = sluice_sv1::codec::reference_lines(&data, max);
    assert_eq!(failed, want_fail, "TooLong");
    assert_eq!(got.len(), want.len(), "line count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(&g[..], *w);
    }
});
