//! The tokio adapter on real loopback sockets: a Noise handshake, typed
//! messages both ways, the failures a server must survive (wrong
//! authority, a flipped bit in flight, an oversized frame, an unknown
//! message type).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use sluice_sv2::binary::{B032, Seq064K, Str0255};
use sluice_sv2::codec::{self, CodecError, NoiseCodec, PlainCodec};
use sluice_sv2::frame::{Frame, Header};
use sluice_sv2::message::*;
use sluice_sv2::noise::{AuthorityKeypair, NoiseError, ResponderConfig, StaticKeypair};
use sluice_sv2::{Message, frame::DEFAULT_MAX_PAYLOAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder};

/// A connection driven as the engine drives one: socket reads into a
/// buffer, the codec cuts frames off it; sends are encoded and written.
struct Framed<C> {
    sock: TcpStream,
    codec: C,
    rbuf: bytes::BytesMut,
}

impl<C> Framed<C>
where
    C: Decoder<Item = Frame, Error = CodecError> + for<'a> Encoder<&'a Message, Error = CodecError>,
{
    fn new(sock: TcpStream, codec: C) -> Self {
        Framed {
            sock,
            codec,
            rbuf: bytes::BytesMut::new(),
        }
    }

    /// The next frame, an error, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Result<Frame, CodecError>> {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(f)) => return Some(Ok(f)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.sock.read_buf(&mut self.rbuf).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    async fn send(&mut self, m: &Message) -> Result<(), CodecError> {
        let mut out = bytes::BytesMut::new();
        self.codec.encode(m, &mut out)?;
        self.sock.write_all(&out).await?;
        Ok(())
    }
}

/// Every wait in these tests is bounded by this, so a hang is a failure.
const DEADLINE: Duration = Duration::from_secs(20);

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn server_config() -> (AuthorityKeypair, ResponderConfig) {
    let authority = AuthorityKeypair::generate().unwrap();
    let t = now();
    let config = ResponderConfig::new(
        &authority,
        &StaticKeypair::generate().unwrap(),
        t - 60,
        t + 3600,
    )
    .unwrap();
    (authority, config)
}

async fn next(f: &mut Framed<NoiseCodec>) -> Message {
    let frame = timeout(DEADLINE, f.next())
        .await
        .expect("in time")
        .expect("a frame")
        .expect("decodes");
    Message::decode(&frame).expect("a message")
}

fn setup() -> SetupConnection {
    SetupConnection {
        protocol: PROTOCOL_MINING,
        min_version: 2,
        max_version: 2,
        flags: setup_flags::REQUIRES_VERSION_ROLLING,
        endpoint_host: Str0255::from("127.0.0.1"),
        endpoint_port: 3336,
        vendor: Str0255::from("sluice-test"),
        hardware_version: Str0255::from(""),
        firmware: Str0255::from(""),
        device_id: Str0255::from(""),
    }
}

#[tokio::test]
async fn a_session_over_noise_on_loopback() {
    let (authority, config) = server_config();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let codec = codec::accept(&mut sock, &config, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        let mut f = Framed::new(sock, codec);
        let Message::SetupConnection(s) = next(&mut f).await else {
            panic!("expected SetupConnection")
        };
        assert_eq!(s.flags, setup_flags::REQUIRES_VERSION_ROLLING);
        f.send(&Message::from(SetupConnectionSuccess {
            used_version: 2,
            flags: 0,
        }))
        .await
        .unwrap();
        // Shares until the client stops, each acknowledged.
        let mut n = 0u32;
        loop {
            match next(&mut f).await {
                Message::SubmitSharesExtended(s) => {
                    assert_eq!(s.sequence_number, n);
                    n += 1;
                    f.send(&Message::from(SubmitSharesSuccess {
                        channel_id: s.channel_id,
                        last_sequence_number: s.sequence_number,
                        new_submits_accepted_count: 1,
                        new_shares_sum: 1,
                    }))
                    .await
                    .unwrap();
                }
                // A message over the 65,519-byte chunk: echoed back.
                m @ Message::SetGroupChannel(_) => f.send(&m).await.unwrap(),
                Message::CloseChannel(_) => return n,
                other => panic!("unexpected {}", other.name()),
            }
        }
    });

    let mut sock = TcpStream::connect(addr).await.unwrap();
    let codec = codec::connect(
        &mut sock,
        Some(authority.public_key()),
        now(),
        DEFAULT_MAX_PAYLOAD,
    )
    .await
    .unwrap();
    let mut f = Framed::new(sock, codec);
    f.send(&Message::from(setup())).await.unwrap();
    assert!(matches!(
        next(&mut f).await,
        Message::SetupConnectionSuccess(_)
    ));
    for seq in 0..200u32 {
        f.send(&Message::from(SubmitSharesExtended {
            channel_id: 1,
            sequence_number: seq,
            job_id: 1,
            nonce: seq,
            ntime: 0x6a00_0000,
            version: 0x2000_0000,
            extranonce: B032::new(vec![1, 2, 3, 4]).unwrap(),
        }))
        .await
        .unwrap();
        let Message::SubmitSharesSuccess(ok) = next(&mut f).await else {
            panic!("expected success")
        };
        assert_eq!(ok.last_sequence_number, seq);
    }
    let group = SetGroupChannel {
        group_channel_id: 9,
        channel_ids: Seq064K::new((0..65_535).collect()).unwrap(),
    };
    f.send(&Message::from(group.clone())).await.unwrap();
    assert_eq!(next(&mut f).await, Message::from(group));
    f.send(&Message::from(CloseChannel {
        channel_id: 1,
        reason_code: Str0255::from("done"),
    }))
    .await
    .unwrap();
    assert_eq!(timeout(DEADLINE, server).await.unwrap().unwrap(), 200);
}

#[tokio::test]
async fn a_client_refuses_a_server_of_another_authority() {
    let (_, config) = server_config();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let codec = codec::accept(&mut sock, &config, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        // The client hangs up: the server sees the end of the stream.
        let mut f = Framed::new(sock, codec);
        timeout(DEADLINE, f.next()).await.unwrap().is_none()
    });
    let other = AuthorityKeypair::generate().unwrap().public_key();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let err = codec::connect(&mut sock, Some(other), now(), DEFAULT_MAX_PAYLOAD)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CodecError::Noise(NoiseError::Certificate(_))),
        "{err}"
    );
    drop(sock);
    assert!(timeout(DEADLINE, server).await.unwrap().unwrap());
}

#[tokio::test]
async fn a_flipped_bit_in_flight_ends_the_session() {
    let (authority, config) = server_config();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let codec = codec::accept(&mut sock, &config, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        let mut f = Framed::new(sock, codec);
        let first = timeout(DEADLINE, f.next()).await.unwrap();
        // The decoder stays failed: a reader that tried again gets an
        // error, never a frame from a misaligned stream.
        let after = timeout(DEADLINE, f.next()).await.unwrap();
        let again = matches!(after, Some(Err(CodecError::Noise(NoiseError::Failed))));
        (first.map(|r| r.map_err(|e| e.to_string())), again)
    });
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut codec = codec::connect(&mut sock, Some(authority.public_key()), now(), 1 << 20)
        .await
        .unwrap();
    // Encrypt a frame, flip one bit of its payload, send it raw.
    let mut wire = bytes::BytesMut::new();
    Encoder::encode(&mut codec, &Message::from(setup()), &mut wire).unwrap();
    wire[30] ^= 0x04;
    sock.write_all(&wire).await.unwrap();
    let (first, still_failed) = timeout(DEADLINE, server).await.unwrap().unwrap();
    let err = first.expect("an item").unwrap_err();
    assert!(err.contains("decryption failed"), "{err}");
    assert!(still_failed, "nothing usable after a failed MAC");
}

#[tokio::test]
async fn plaintext_frames_over_the_limit_and_unknown_types() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut f = Framed::new(sock, PlainCodec::new(1024));
        let mut seen = Vec::new();
        while let Some(item) = timeout(DEADLINE, f.next()).await.unwrap() {
            match item {
                Ok(frame) => seen.push(Message::decode(&frame).unwrap().name()),
                Err(e) => {
                    seen.push(if matches!(e, CodecError::Frame(_)) {
                        "TooLarge"
                    } else {
                        "other"
                    });
                    break;
                }
            }
        }
        seen
    });
    let mut sock = TcpStream::connect(addr).await.unwrap();
    // A Template Distribution message (0x71): skipped by length.
    let unknown = Frame {
        header: Header::new(0x71, false, 3),
        payload: bytes::Bytes::from_static(&[1, 2, 3]),
    };
    sock.write_all(&Message::Unknown(unknown).to_frame_bytes())
        .await
        .unwrap();
    sock.write_all(&Message::from(setup()).to_frame_bytes())
        .await
        .unwrap();
    // A header claiming 2,000 bytes against a 1,024-byte limit.
    sock.write_all(&Header::new(0x1f, true, 2000).encode())
        .await
        .unwrap();
    let seen = timeout(DEADLINE, server).await.unwrap().unwrap();
    assert_eq!(seen, ["Unknown", "SetupConnection", "TooLarge"]);
    // The server dropped the connection after the oversized header.
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, sock.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
}

/// A finished handshake without sockets: (client, server) codecs.
fn codec_pair() -> (NoiseCodec, NoiseCodec) {
    use sluice_sv2::noise::{Initiator, Responder};
    let (authority, config) = server_config();
    let i = Initiator::new(Some(authority.public_key())).unwrap();
    let (act2, server) = Responder::new(&config).unwrap().respond(&i.act1()).unwrap();
    let client = i.finish(&act2, now()).unwrap();
    (
        NoiseCodec::new(client, DEFAULT_MAX_PAYLOAD),
        NoiseCodec::new(server, DEFAULT_MAX_PAYLOAD),
    )
}

#[test]
fn a_stream_ending_inside_a_frame_is_an_error_not_a_clean_close() {
    let (mut client, mut server) = codec_pair();
    let mut wire = bytes::BytesMut::new();
    Encoder::encode(&mut client, &Message::from(setup()), &mut wire).unwrap();
    // Only the encrypted header arrives: it is consumed, the buffer is
    // empty, and yet the peer stopped mid-frame.
    let mut src = wire.split_to(22);
    assert!(server.decode(&mut src).unwrap().is_none());
    assert!(src.is_empty());
    let err = server.decode_eof(&mut src).unwrap_err();
    assert!(
        matches!(err, CodecError::Io(ref e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{err}"
    );

    // Between frames, the end is clean.
    let (mut client, mut server) = codec_pair();
    let mut wire = bytes::BytesMut::new();
    Encoder::encode(&mut client, &Message::from(setup()), &mut wire).unwrap();
    assert!(server.decode(&mut wire).unwrap().is_some());
    assert!(server.decode_eof(&mut wire).unwrap().is_none());
}

#[test]
fn a_frame_encoded_once_goes_to_many_sessions_and_halves_work_apart() {
    let job = Message::from(SetTarget {
        channel_id: 3,
        maximum_target: [0x7f; 32],
    });
    // Encoded once, as a fan-out would.
    let once = job.to_frame_bytes();
    let frame = Frame {
        header: job.header(),
        payload: once.slice(6..),
    };
    for _ in 0..3 {
        let (client, server) = codec_pair();
        let (_, mut rx) = client.into_split();
        let (mut tx, _) = server.into_split();
        let mut wire = bytes::BytesMut::new();
        Encoder::encode(&mut tx, &frame, &mut wire).unwrap();
        let got = rx.decode(&mut wire).unwrap().unwrap();
        assert_eq!(Message::decode(&got).unwrap(), job);
    }
    // A frame whose header lies about its length is refused, not sent.
    let bad = Frame {
        header: Header::new(0x21, true, 5),
        payload: frame.payload.clone(),
    };
    let mut out = bytes::BytesMut::new();
    assert!(Encoder::encode(&mut PlainCodec::default(), &bad, &mut out).is_err());
    assert!(out.is_empty());
}
