//! The Noise responder and the encrypted transport on hostile input.
//!
//! The input drives three things:
//! - act 1 is the first 64 bytes, whatever they are (every 64-byte string
//!   is some ElligatorSwift encoding): the responder must answer or refuse,
//!   never panic;
//! - then a real initiator completes a handshake with the same responder
//!   configuration and encrypts frames whose sizes and bytes come from the
//!   input, and the input may flip one bit of the ciphertext and cut the
//!   stream into arbitrary reads. The responder's decoder must yield
//!   exactly the frames sent, in order, when nothing was flipped; when a
//!   bit was flipped it must fail at or before that frame, never yield a
//!   frame that differs from the one sent, and stay failed;
//! - the rest of the input goes raw into a fresh session's decoder: it
//!   must fail (a forged MAC) or want more bytes, never panic or yield.

#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_sv2::frame::Header;
use sluice_sv2::noise::{
    AuthorityKeypair, AuthorityPublicKey, Initiator, NoiseError, Responder, ResponderConfig,
    StaticKeypair, encrypted_len,
};

const NOW: u32 = 1_800_000_000;

fn config() -> &'static (AuthorityPublicKey, ResponderConfig) {
    static C: OnceLock<(AuthorityPublicKey, ResponderConfig)> = OnceLock::new();
    C.get_or_init(|| {
        let a = AuthorityKeypair::from_secret_bytes(&[0x11; 32]).expect("key");
        let s = StaticKeypair::from_secret_bytes(&[0x22; 32]).expect("key");
        let c = ResponderConfig::new(&a, &s, NOW - 60, NOW + 60).expect("config");
        (a.public_key(), c)
    })
}

fuzz_target!(|data: &[u8]| {
    let (pk, cfg) = config();
    let Some((act1, rest)) = data.split_first_chunk::<64>() else {
        return;
    };

    // 1. Any act 1.
    if let Ok(r) = Responder::new(cfg) {
        let _ = r.respond(act1);
    }

    // 2. A real session with fuzzed frames, corruption and read sizes.
    let Ok(initiator) = Initiator::new(Some(*pk)) else {
        return;
    };
    let Ok((act2, mut server)) = Responder::new(cfg).and_then(|r| r.respond(&initiator.act1()))
    else {
        panic!("our own act 1 is refused");
    };
    let mut client = initiator.finish(&act2, NOW).expect("our own act 2 is refused");
    let (spec, raw) = rest.split_at(rest.len().min(32));
    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    let mut ends = Vec::new();
    for (i, &b) in spec.iter().take(8).enumerate() {
        // Sizes around the chunk boundary as well as small ones.
        let len = match b % 4 {
            0 => usize::from(b),
            1 => 65_519 + usize::from(b % 3) - 1,
            2 => 0,
            _ => usize::from(b) * 300,
        };
        let payload: Vec<u8> = (0..len).map(|j| (j as u8) ^ b).collect();
        let h = Header::new(i as u8, b & 1 == 1, len as u32);
        client.encrypt_frame(&h, &payload, &mut wire).expect("encrypts");
        ends.push(wire.len());
        sent.push((h, payload));
        let start = ends.len().checked_sub(2).map_or(0, |i| ends[i]);
        assert_eq!(wire.len() - start, encrypted_len(len));
    }
    let flip = spec.get(8..12).map(|b| u32::from_le_bytes(b.try_into().expect("4")));
    let flipped_at = flip
        .filter(|f| f & 1 == 1 && !wire.is_empty())
        .map(|f| (f as usize >> 1) % wire.len());
    if let Some(at) = flipped_at {
        wire[at] ^= 1 << (spec.get(12).copied().unwrap_or(0) % 8);
    }
    let step = 1 + usize::from(spec.get(13).copied().unwrap_or(255)) * 97;
    let mut src = BytesMut::new();
    let mut got = 0;
    let mut failed = false;
    let mut fed = 0;
    'feed: while fed < wire.len() {
        let end = (fed + step).min(wire.len());
        src.extend_from_slice(&wire[fed..end]);
        fed = end;
        loop {
            match server.decode(&mut src, 1 << 20) {
                Ok(Some(f)) => {
                    let (h, p) = &sent[got];
                    assert_eq!(f.header, *h, "frame {got}");
                    assert!(f.payload[..] == p[..], "frame {got}");
                    if let Some(at) = flipped_at {
                        assert!(at >= ends[got], "a frame with a flipped bit was accepted");
                    }
                    got += 1;
                }
                Ok(None) => break,
                Err(NoiseError::Decrypt | NoiseError::TooLarge { .. }) => {
                    assert!(flipped_at.is_some(), "an intact stream failed");
                    failed = true;
                    break 'feed;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    if failed {
        assert!(matches!(
            server.decode(&mut BytesMut::from(&[0u8; 64][..]), 1 << 20),
            Err(NoiseError::Failed)
        ));
    } else if flipped_at.is_none() {
        assert_eq!(got, sent.len(), "every frame delivered");
    }

    // 3. Raw bytes into a fresh session.
    let initiator = Initiator::new(None).expect("initiator");
    let (act2, mut fresh) = Responder::new(cfg)
        .and_then(|r| r.respond(&initiator.act1()))
        .expect("act 2");
    let _ = initiator.finish(&act2, NOW).expect("finish");
    let mut src = BytesMut::from(raw);
    match fresh.decode(&mut src, 1 << 20) {
        Ok(None) | Err(NoiseError::Decrypt | NoiseError::TooLarge { .. }) => {}
        Ok(Some(_)) => panic!("a frame without a key"),
        Err(e) => panic!("unexpected {e}"),
    }
});
