//! Differential tests against the reference implementation (`noise_sv2`
//! and `codec_sv2` from crates.io): complete handshakes with each of ours
//! facing each of theirs, then frames both ways on the real wire (header
//! encrypted on its own, payload in 65,519-byte chunks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use codec_sv2::{
    Decrypted, Handshake, NoiseDecoder, NoiseEncoder, TransportDecryptState, TransportEncryptState,
};
use framing_sv2::framing::SerializedFrame;
use sluice_sv2::frame::Header;
use sluice_sv2::noise::{
    ACT2_LEN, AuthorityKeypair, AuthorityPublicKey, Initiator, MAX_CHUNK_PLAINTEXT, Responder,
    ResponderConfig, StaticKeypair, Transport, encrypted_len,
};

const SIZES: [usize; 8] = [
    0,
    1,
    64,
    MAX_CHUNK_PLAINTEXT - 1,
    MAX_CHUNK_PLAINTEXT,
    MAX_CHUNK_PLAINTEXT + 1,
    2 * MAX_CHUNK_PLAINTEXT + 7,
    200_000,
];

/// The reference reads the clock itself; ours is told the same clock, and
/// certificates are valid for an hour, so the two never disagree.
fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A frame as the reference encrypts it.
fn theirs_encrypt(enc: &mut TransportEncryptState, header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut plain = header.encode().to_vec();
    plain.extend_from_slice(payload);
    let frame = SerializedFrame::from_bytes(plain).unwrap();
    let mut encoder = NoiseEncoder::new();
    let out: Vec<u8> = encoder.encode_transport(frame, enc).unwrap();
    out
}

/// A frame as the reference decrypts it, fed exactly the bytes it asks
/// for; returns the plaintext header and payload.
fn theirs_decrypt(
    dec: TransportDecryptState,
    wire: &[u8],
) -> (TransportDecryptState, [u8; 6], Vec<u8>) {
    let mut decoder = NoiseDecoder::new();
    let mut state = dec;
    let mut pos = 0;
    loop {
        let w = decoder.writable();
        let n = w.len();
        w.copy_from_slice(&wire[pos..pos + n]);
        pos += n;
        match decoder.next_transport_frame(state).unwrap() {
            Decrypted::Frame(frame, st) => {
                assert_eq!(pos, wire.len(), "reference consumed the whole frame");
                let bytes = frame.as_bytes();
                let mut h = [0u8; 6];
                h.copy_from_slice(&bytes[..6]);
                return (st, h, bytes[6..].to_vec());
            }
            Decrypted::Incomplete(_, st) => state = st,
        }
    }
}

/// Frames in both directions between our transport and the reference's.
fn exchange(mut ours: Transport, theirs: codec_sv2::Transport) {
    let (mut their_enc, mut their_dec) = theirs.split();
    for (i, &len) in SIZES.iter().enumerate() {
        let seed = i as u8;
        let header = Header::new(0x20 + seed, i % 2 == 0, len as u32);
        let payload = body(len, seed);

        // Ours to theirs.
        let mut wire = BytesMut::new();
        ours.encrypt_frame(&header, &payload, &mut wire).unwrap();
        assert_eq!(wire.len(), encrypted_len(len));
        let (dec, h, p) = theirs_decrypt(their_dec, &wire);
        their_dec = dec;
        assert_eq!(h, header.encode(), "{len}");
        assert!(p == payload, "ours to theirs, {len} bytes");

        // Theirs to ours.
        let wire = theirs_encrypt(&mut their_enc, &header, &payload);
        assert_eq!(wire.len(), encrypted_len(len), "same wire length, {len}");
        let mut src = BytesMut::from(&wire[..]);
        let frame = ours.decode(&mut src, 1 << 20).unwrap().unwrap();
        assert_eq!(frame.header, header);
        assert!(
            frame.payload[..] == payload[..],
            "theirs to ours, {len} bytes"
        );
        assert!(src.is_empty());
    }
}

#[test]
fn our_initiator_with_their_responder() {
    let authority = AuthorityKeypair::generate().unwrap();
    let pk = authority.public_key();
    let responder = noise_sv2::Responder::from_authority_kp(
        &pk.to_bytes(),
        &authority.secret_bytes(),
        Duration::from_secs(3_600),
    )
    .unwrap();

    let initiator = Initiator::new(Some(pk)).unwrap();
    let (act2, theirs) = Handshake::responder(responder)
        .step_1(initiator.act1())
        .unwrap();
    let act2: [u8; ACT2_LEN] = act2.payload().try_into().unwrap();
    // The certificate the reference signed verifies with ours.
    let ours = initiator.finish(&act2, now()).unwrap();
    exchange(ours, theirs);
}

#[test]
fn their_initiator_with_our_responder() {
    let authority = AuthorityKeypair::generate().unwrap();
    let static_key = StaticKeypair::generate().unwrap();
    let t = now();
    let config = ResponderConfig::new(&authority, &static_key, t - 60, t + 3_600).unwrap();

    let initiator = noise_sv2::Initiator::from_raw_k(authority.public_key().to_bytes()).unwrap();
    let (act1, sent) = Handshake::initiator(initiator).step_0().unwrap();
    let act1: [u8; 64] = act1.payload().try_into().unwrap();
    let (act2, ours) = Responder::new(&config).unwrap().respond(&act1).unwrap();
    // The certificate we signed verifies with theirs.
    let theirs = sent.step_2_with_now(act2, now()).unwrap();
    exchange(ours, theirs);
}

#[test]
fn their_initiator_refuses_our_certificate_under_another_authority() {
    let authority = AuthorityKeypair::generate().unwrap();
    let other = AuthorityKeypair::generate().unwrap();
    let static_key = StaticKeypair::generate().unwrap();
    let t = now();
    let config = ResponderConfig::new(&authority, &static_key, t - 60, t + 3_600).unwrap();
    let initiator = noise_sv2::Initiator::from_raw_k(other.public_key().to_bytes()).unwrap();
    let (act1, sent) = Handshake::initiator(initiator).step_0().unwrap();
    let act1: [u8; 64] = act1.payload().try_into().unwrap();
    let (act2, _) = Responder::new(&config).unwrap().respond(&act1).unwrap();
    assert!(sent.step_2_with_now(act2, now()).is_err());
}

#[test]
fn our_initiator_refuses_their_certificate_under_another_authority() {
    let authority = AuthorityKeypair::generate().unwrap();
    let other = AuthorityKeypair::generate().unwrap();
    let responder = noise_sv2::Responder::from_authority_kp(
        &authority.public_key().to_bytes(),
        &authority.secret_bytes(),
        Duration::from_secs(3_600),
    )
    .unwrap();
    let initiator = Initiator::new(Some(other.public_key())).unwrap();
    let (act2, _) = Handshake::responder(responder)
        .step_1(initiator.act1())
        .unwrap();
    let act2: [u8; ACT2_LEN] = act2.payload().try_into().unwrap();
    assert!(initiator.finish(&act2, now()).is_err());
}

#[test]
fn authority_key_text_form_is_the_specs() {
    // The reference's own tests and the spec use this key (§4.7.1).
    let text = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh";
    let k: AuthorityPublicKey = text.parse().unwrap();
    assert_eq!(k.to_string(), text);
    // And the reference accepts the raw bytes behind our text form.
    assert!(noise_sv2::Initiator::from_raw_k(k.to_bytes()).is_ok());
}
