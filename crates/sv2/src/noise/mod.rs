//! Noise NX over secp256k1 with ElligatorSwift, ChaCha20-Poly1305 and
//! SHA-256 (`Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256`), as Stratum V2
//! specifies it, and the encrypted frame transport that follows.
//!
//! Sans-IO: every type here turns bytes into bytes; sockets belong to the
//! caller.
//!
//! - [`keys`]: authority and server static key pairs, the authority key's
//!   text form.
//! - [`Certificate`]: the 74-byte signed statement binding the server's
//!   static key to the authority key for a time window.
//! - [`Initiator`] / [`Responder`] (with its per-server [`ResponderConfig`]):
//!   the two-act handshake.
//! - [`Transport`]: encrypted frames, splittable into a [`TransportSend`]
//!   and a [`TransportRecv`].

mod cert;
mod cipher;
mod error;
mod handshake;
mod initiator;
mod keys;
mod responder;
mod transport;

pub use cert::{CERT_LEEWAY_SECS, CERT_LEN, CERT_VERSION, CertError, Certificate};
pub use error::NoiseError;
pub use initiator::Initiator;
pub use keys::{AuthorityKeypair, AuthorityPublicKey, KeyError, StaticKeypair};
pub use responder::{Responder, ResponderConfig};
pub use transport::{
    ENCRYPTED_HEADER_LEN, MAX_CHUNK_PLAINTEXT, Transport, TransportRecv, TransportSend,
    encrypted_len,
};

/// Length of a Poly1305 tag.
pub const MAC_LEN: usize = 16;

/// Length of an ElligatorSwift-encoded public key.
pub const ELLSWIFT_LEN: usize = 64;

/// Act 1 (initiator to responder): the initiator's ephemeral key.
pub const ACT1_LEN: usize = ELLSWIFT_LEN;

/// Act 2 (responder to initiator): ephemeral key, encrypted static key,
/// encrypted certificate.
pub const ACT2_LEN: usize = ELLSWIFT_LEN + (ELLSWIFT_LEN + MAC_LEN) + (CERT_LEN + MAC_LEN);

use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use std::sync::OnceLock;

/// The one secp256k1 context: building one costs far more than a
/// handshake, so it is made once and shared (it is read-only after
/// creation).
fn secp() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut ctx = Secp256k1::new();
        // Blinding against side channels; without randomness the context is
        // still correct, just unblinded, so a failure here is not fatal.
        if let Ok(seed) = random32() {
            ctx.seeded_randomize(&seed);
        }
        ctx
    })
}

/// 32 bytes from the operating system.
fn random32() -> Result<[u8; 32], NoiseError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(NoiseError::Random)?;
    Ok(b)
}

/// A fresh secret key. A random 32-byte string is a valid key except with
/// probability about 2^-128, so a few tries are plenty.
fn random_secret_key() -> Result<SecretKey, NoiseError> {
    for _ in 0..8 {
        if let Ok(sk) = SecretKey::from_slice(&random32()?) {
            return Ok(sk);
        }
    }
    Err(NoiseError::BadRandomness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Header};
    use bytes::BytesMut;

    const NOW: u32 = 1_700_000_000;

    fn config() -> (AuthorityKeypair, ResponderConfig) {
        let authority = AuthorityKeypair::generate().unwrap();
        let static_key = StaticKeypair::generate().unwrap();
        let config = ResponderConfig::new(&authority, &static_key, NOW - 60, NOW + 3_600).unwrap();
        (authority, config)
    }

    fn handshake(
        authority: Option<AuthorityPublicKey>,
        config: &ResponderConfig,
        now: u32,
    ) -> Result<(Transport, Transport), NoiseError> {
        let initiator = Initiator::new(authority)?;
        let (act2, server) = Responder::new(config)?.respond(&initiator.act1())?;
        let client = initiator.finish(&act2, now)?;
        Ok((client, server))
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + len) as u8).collect()
    }

    fn send(t: &mut Transport, msg_type: u8, body: &[u8]) -> BytesMut {
        let mut dst = BytesMut::new();
        let h = Header::new(msg_type, false, body.len() as u32);
        t.encrypt_frame(&h, body, &mut dst).unwrap();
        assert_eq!(dst.len(), encrypted_len(body.len()));
        dst
    }

    #[test]
    fn frames_both_ways_across_chunk_boundaries() {
        let (authority, config) = config();
        let (mut client, mut server) =
            handshake(Some(authority.public_key()), &config, NOW).unwrap();
        for len in [
            0,
            1,
            64,
            MAX_CHUNK_PLAINTEXT,
            MAX_CHUNK_PLAINTEXT + 1,
            2 * MAX_CHUNK_PLAINTEXT,
            200_000,
        ] {
            let body = payload(len);
            for upstream in [true, false] {
                let (a, b) = if upstream {
                    (&mut client, &mut server)
                } else {
                    (&mut server, &mut client)
                };
                let mut wire = send(a, 0x1f, &body);
                let f = b.decode(&mut wire, 1 << 20).unwrap().unwrap();
                assert_eq!(f.header, Header::new(0x1f, false, len as u32));
                assert_eq!(&f.payload[..], &body[..], "{len}");
                assert!(wire.is_empty());
            }
        }
        assert_eq!(encrypted_len(0), 22);
        assert_eq!(encrypted_len(MAX_CHUNK_PLAINTEXT), 22 + 65_535);
        assert_eq!(encrypted_len(MAX_CHUNK_PLAINTEXT + 1), 22 + 65_535 + 17);
        assert_eq!(encrypted_len(200_000), 22 + 200_000 + 4 * 16);
    }

    #[test]
    fn several_frames_in_one_buffer_and_split_halves() {
        let (_, config) = config();
        let (client, server) = handshake(None, &config, NOW).unwrap();
        let (mut c_send, _c_recv) = client.into_split();
        let (_s_send, mut s_recv) = server.into_split();
        let mut wire = BytesMut::new();
        for i in 0..5u8 {
            let body = payload(i as usize * 30_000);
            c_send
                .encrypt_frame(&Header::new(i, true, body.len() as u32), &body, &mut wire)
                .unwrap();
        }
        for i in 0..5u8 {
            let f = s_recv.decode(&mut wire, 1 << 20).unwrap().unwrap();
            assert_eq!(f.header.msg_type, i);
            assert_eq!(&f.payload[..], &payload(i as usize * 30_000)[..]);
        }
        assert_eq!(s_recv.decode(&mut wire, 1 << 20).unwrap(), None);
    }

    #[test]
    fn fed_byte_by_byte_the_frame_completes_on_the_last_byte() {
        let (_, config) = config();
        let (mut client, mut server) = handshake(None, &config, NOW).unwrap();
        for len in [0, 5, MAX_CHUNK_PLAINTEXT + 3] {
            let body = payload(len);
            let wire = send(&mut client, 2, &body);
            let mut src = BytesMut::new();
            let mut got: Option<Frame> = None;
            for (i, b) in wire.iter().enumerate() {
                src.extend_from_slice(&[*b]);
                let r = server.decode(&mut src, 1 << 20).unwrap();
                if i + 1 < wire.len() {
                    assert_eq!(r, None, "byte {i} of {}", wire.len());
                } else {
                    got = r;
                }
            }
            assert_eq!(&got.unwrap().payload[..], &body[..]);
        }
    }

    #[test]
    fn too_large_is_refused_from_the_header_alone() {
        let (_, config) = config();
        let (mut client, mut server) = handshake(None, &config, NOW).unwrap();
        let wire = send(&mut client, 3, &payload(1_000));
        let mut src = BytesMut::from(&wire[..ENCRYPTED_HEADER_LEN]);
        assert!(matches!(
            server.decode(&mut src, 999),
            Err(NoiseError::TooLarge {
                len: 1_000,
                max: 999
            })
        ));
        let mut rest = BytesMut::from(&wire[ENCRYPTED_HEADER_LEN..]);
        assert!(matches!(
            server.decode(&mut rest, 1 << 20),
            Err(NoiseError::Failed)
        ));
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_and_stays_failed() {
        let (_, config) = config();
        let len = MAX_CHUNK_PLAINTEXT + 100;
        // Header, first payload chunk, second chunk's tag.
        for at in [3, ENCRYPTED_HEADER_LEN + 10, encrypted_len(len) - 1] {
            let (mut client, mut server) = handshake(None, &config, NOW).unwrap();
            let mut wire = send(&mut client, 4, &payload(len));
            wire[at] ^= 0x01;
            assert!(
                matches!(server.decode(&mut wire, 1 << 20), Err(NoiseError::Decrypt)),
                "{at}"
            );
            let mut good = send(&mut client, 4, &payload(1));
            assert!(matches!(
                server.decode(&mut good, 1 << 20),
                Err(NoiseError::Failed)
            ));
            // The other direction is independent.
            let mut back = send(&mut server, 5, b"still here");
            assert_eq!(
                &client.decode(&mut back, 100).unwrap().unwrap().payload[..],
                b"still here"
            );
        }
    }

    #[test]
    fn header_length_must_match_payload() {
        let (_, config) = config();
        let (mut client, _) = handshake(None, &config, NOW).unwrap();
        let mut dst = BytesMut::new();
        assert!(matches!(
            client.encrypt_frame(&Header::new(1, false, 3), b"four", &mut dst),
            Err(NoiseError::LengthMismatch {
                stated: 3,
                actual: 4
            })
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn certificate_checks_in_the_handshake() {
        let (authority, config) = config();
        let pk = authority.public_key();
        // Within the leeway on both ends.
        assert!(handshake(Some(pk), &config, NOW - 60 - CERT_LEEWAY_SECS).is_ok());
        assert!(handshake(Some(pk), &config, NOW + 3_600 + CERT_LEEWAY_SECS).is_ok());
        assert!(matches!(
            handshake(Some(pk), &config, NOW - 60 - CERT_LEEWAY_SECS - 1),
            Err(NoiseError::Certificate(CertError::NotYetValid { .. }))
        ));
        assert!(matches!(
            handshake(Some(pk), &config, NOW + 3_600 + CERT_LEEWAY_SECS + 1),
            Err(NoiseError::Certificate(CertError::Expired { .. }))
        ));
        let other = AuthorityKeypair::generate().unwrap().public_key();
        assert!(matches!(
            handshake(Some(other), &config, NOW),
            Err(NoiseError::Certificate(CertError::BadSignature))
        ));
        // No authority: any server, any time.
        assert!(handshake(None, &config, 0).is_ok());
    }

    #[test]
    fn signed_elsewhere_config_and_mismatched_pairs() {
        let authority = AuthorityKeypair::generate().unwrap();
        let static_key = StaticKeypair::generate().unwrap();
        let cert =
            Certificate::sign(&authority, &static_key.public_xonly(), NOW, NOW + 10).unwrap();
        let decoded = Certificate::decode(&cert.encode());
        let config =
            ResponderConfig::from_signed(&static_key, decoded, &authority.public_key()).unwrap();
        assert!(handshake(Some(authority.public_key()), &config, NOW).is_ok());
        let other_static = StaticKeypair::generate().unwrap();
        assert!(matches!(
            ResponderConfig::from_signed(&other_static, decoded, &authority.public_key()),
            Err(NoiseError::Certificate(CertError::BadSignature))
        ));
    }

    #[test]
    fn tampered_act2_is_refused() {
        let (authority, config) = config();
        for at in [0, 70, ACT2_LEN - 1] {
            let initiator = Initiator::new(Some(authority.public_key())).unwrap();
            let (mut act2, _) = Responder::new(&config)
                .unwrap()
                .respond(&initiator.act1())
                .unwrap();
            act2[at] ^= 0x40;
            assert!(
                matches!(initiator.finish(&act2, NOW), Err(NoiseError::Decrypt)),
                "{at}"
            );
        }
    }

    #[test]
    fn wire_sizes() {
        assert_eq!(ACT1_LEN, 64);
        assert_eq!(ACT2_LEN, 234);
        assert_eq!(MAX_CHUNK_PLAINTEXT, 65_519);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any payloads, the wire cut anywhere: frames come out whole and
        /// in order.
        #[test]
        fn any_payloads_any_cuts(
            lens in proptest::collection::vec(0usize..140_000, 1..4),
            cuts in proptest::collection::vec(1usize..70_000, 1..8),
        ) {
            let (_, config) = config();
            let (mut client, mut server) = handshake(None, &config, NOW).unwrap();
            let mut wire = BytesMut::new();
            for (i, len) in lens.iter().enumerate() {
                let b = payload(*len);
                client
                    .encrypt_frame(&Header::new(i as u8, false, *len as u32), &b, &mut wire)
                    .unwrap();
            }
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            let mut cut = cuts.iter().cycle();
            while !wire.is_empty() {
                let n = (*cut.next().unwrap()).min(wire.len());
                src.extend_from_slice(&wire.split_to(n));
                while let Some(f) = server.decode(&mut src, 1 << 20).unwrap() {
                    got.push(f);
                }
            }
            proptest::prop_assert_eq!(got.len(), lens.len());
            for (i, f) in got.iter().enumerate() {
                proptest::prop_assert_eq!(f.header.msg_type, i as u8);
                proptest::prop_assert_eq!(&f.payload[..], &payload(lens[i])[..]);
            }
        }
    }
}
