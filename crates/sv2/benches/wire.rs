//! sluice-sv2 against the reference implementation (codec_sv2 7, noise_sv2
//! 2, mining_sv2 12 from crates.io), each line with the reference in the
//! same run; a summary of ratios and the targets is printed at the end
//! (from criterion's own estimates, so noise on the machine hits both
//! sides alike).
//!
//! `cargo bench -p sluice-sv2 --bench wire` (about two minutes); add
//! `-- --quick` for a rough pass in seconds.
//!
//! Lines:
//! - `handshake`: a whole Noise NX handshake, initiator and responder,
//!   certificate checked, from a per-server config built once.
//! - `transport_64` / `transport_1k`: one frame with a 64-byte (1 KiB)
//!   payload encrypted by one side and decrypted by the other.
//! - `encode_*` / `decode_*`: a plaintext frame of SubmitSharesExtended
//!   (the hot upstream message) and NewExtendedMiningJob (the fan-out
//!   message: a typical job with 12 branches and a 150-byte coinbase).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use criterion::{Criterion, criterion_group};
use sluice_sv2::Message;
use sluice_sv2::binary::{B032, B064K, Seq0255};
use sluice_sv2::frame::{FrameDecoder, Header};
use sluice_sv2::message::{NewExtendedMiningJob, SubmitSharesExtended};
use sluice_sv2::noise::{
    AuthorityKeypair, Initiator, Responder, ResponderConfig, StaticKeypair, Transport,
};

fn output_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion"))
}

const NOW: u32 = 1_800_000_000;

fn share() -> SubmitSharesExtended {
    SubmitSharesExtended {
        channel_id: 7,
        sequence_number: 1234,
        job_id: 42,
        nonce: 0xdead_beef,
        ntime: 0x6a00_0000,
        version: 0x2000_4000,
        extranonce: B032::new(vec![0x5a; 8]).expect("8 bytes"),
    }
}

fn job() -> NewExtendedMiningJob {
    NewExtendedMiningJob {
        channel_id: 7,
        job_id: 43,
        min_ntime: Some(0x6a00_0000),
        version: 0x2000_0000,
        version_rolling_allowed: true,
        merkle_path: Seq0255::new((0..12u8).map(|i| [i; 32]).collect()).expect("12"),
        coinbase_tx_prefix: B064K::new(vec![0x01; 60]).expect("60"),
        coinbase_tx_suffix: B064K::new(vec![0x02; 90]).expect("90"),
    }
}

mod reference {
    //! The same messages and sessions built with the reference crates.
    use binary_sv2::{Encodable, GetSize};
    use framing_sv2::framing::{EncodableFrame, MessageFrame};

    pub(crate) fn share(s: &super::SubmitSharesExtended) -> mining_sv2::SubmitSharesExtended<'_> {
        mining_sv2::SubmitSharesExtended {
            channel_id: s.channel_id,
            sequence_number: s.sequence_number,
            job_id: s.job_id,
            nonce: s.nonce,
            ntime: s.ntime,
            version: s.version,
            extranonce: (&s.extranonce[..]).try_into().expect("fits"),
        }
    }

    pub(crate) fn job(j: &super::NewExtendedMiningJob) -> mining_sv2::NewExtendedMiningJob<'_> {
        mining_sv2::NewExtendedMiningJob {
            channel_id: j.channel_id,
            job_id: j.job_id,
            min_ntime: binary_sv2::Sv2Option::new(j.min_ntime),
            version: j.version,
            version_rolling_allowed: j.version_rolling_allowed,
            merkle_path: binary_sv2::Seq0255::new(j.merkle_path.iter().map(|b| b.into()).collect())
                .expect("fits"),
            coinbase_tx_prefix: (&j.coinbase_tx_prefix[..]).try_into().expect("fits"),
            coinbase_tx_suffix: (&j.coinbase_tx_suffix[..]).try_into().expect("fits"),
        }
    }

    /// Frames `msg` into `out` the way the reference's encoder does.
    pub(crate) fn encode<T: Encodable + GetSize>(msg: T, msg_type: u8, out: &mut Vec<u8>) {
        let frame = MessageFrame::from_message(msg, msg_type, 0, true).expect("fits");
        out.resize(EncodableFrame::encoded_length(&frame), 0);
        frame.encode_into(out).expect("encodes");
    }
}

fn bench_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    let dec = FrameDecoder::default();
    for (name, msg) in [
        ("share", Message::from(share())),
        ("job", Message::from(job())),
    ] {
        let wire = msg.to_frame_bytes();
        let mut buf = BytesMut::with_capacity(4096);
        g.bench_function(format!("encode_{name}/sluice"), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&msg).put_frame(&mut buf);
                black_box(buf.len())
            })
        });
        g.bench_function(format!("decode_{name}/sluice"), |b| {
            b.iter(|| {
                // A socket read lands in the buffer, then frame and message.
                buf.clear();
                buf.extend_from_slice(black_box(&wire));
                let f = dec.decode(&mut buf).expect("ok").expect("whole");
                black_box(Message::decode(&f).expect("decodes"))
            })
        });
    }

    let (s, j) = (share(), job());
    let mut out = Vec::with_capacity(4096);
    g.bench_function("encode_share/reference", |b| {
        b.iter(|| {
            reference::encode(reference::share(black_box(&s)), 0x1b, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("encode_job/reference", |b| {
        b.iter(|| {
            reference::encode(reference::job(black_box(&j)), 0x1f, &mut out);
            black_box(out.len())
        })
    });
    let share_wire = Message::from(share()).to_frame_bytes();
    let job_wire = Message::from(job()).to_frame_bytes();
    g.bench_function("decode_share/reference", |b| {
        b.iter(|| {
            let mut d = codec_sv2::Decoder::new();
            feed(&mut d, black_box(&share_wire), |p| {
                black_box(
                    binary_sv2::from_bytes::<mining_sv2::SubmitSharesExtended<'_>>(p)
                        .expect("decodes")
                        .nonce,
                );
            })
        })
    });
    g.bench_function("decode_job/reference", |b| {
        b.iter(|| {
            let mut d = codec_sv2::Decoder::new();
            feed(&mut d, black_box(&job_wire), |p| {
                black_box(
                    binary_sv2::from_bytes::<mining_sv2::NewExtendedMiningJob<'_>>(p)
                        .expect("decodes")
                        .job_id,
                );
            })
        })
    });
    g.finish();
}

/// Drives the reference's frame decoder over `wire` (it asks for the bytes
/// it wants, header first) and hands the payload of the frame to `f`.
fn feed(d: &mut codec_sv2::Decoder, wire: &[u8], f: impl FnOnce(&mut [u8])) {
    let mut read = 0;
    loop {
        let n = d.writable_len();
        d.writable().copy_from_slice(&wire[read..read + n]);
        read += n;
        if let codec_sv2::Decoded::Frame(mut fr) = d.next_frame().expect("frame") {
            f(fr.payload());
            return;
        }
    }
}

fn handshake_ours(
    config: &ResponderConfig,
    authority: sluice_sv2::noise::AuthorityPublicKey,
) -> (Transport, Transport) {
    let initiator = Initiator::new(Some(authority)).expect("initiator");
    let (act2, server) = Responder::new(config)
        .expect("responder")
        .respond(&initiator.act1())
        .expect("act 2");
    (initiator.finish(&act2, NOW).expect("finish"), server)
}

fn bench_noise(c: &mut Criterion) {
    let authority = AuthorityKeypair::generate().expect("key");
    let static_key = StaticKeypair::generate().expect("key");
    let config = ResponderConfig::new(&authority, &static_key, NOW - 10, NOW + 3600).expect("cert");
    let pk = authority.public_key();

    let mut g = c.benchmark_group("noise");
    g.bench_function("handshake/sluice", |b| {
        b.iter(|| black_box(handshake_ours(&config, pk)))
    });
    let (mut client, mut server) = handshake_ours(&config, pk);
    for (name, len) in [("transport_64", 64usize), ("transport_1k", 1024)] {
        let payload = vec![0x33u8; len];
        let header = Header::new(0x1b, true, len as u32);
        let mut wire = BytesMut::with_capacity(4096);
        g.bench_function(format!("{name}/sluice"), |b| {
            b.iter(|| {
                client
                    .encrypt_frame(&header, black_box(&payload), &mut wire)
                    .expect("encrypts");
                black_box(
                    server
                        .decode(&mut wire, 1 << 20)
                        .expect("ok")
                        .expect("whole"),
                )
            })
        });
    }
    reference_noise::bench(&mut g, &authority, &static_key);
    // The floor under any implementation on this libsecp256k1: a handshake
    // is 4 of the first and 2 of the second, plus a BIP 340 check.
    {
        use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        let secp = Secp256k1::new();
        let a = SecretKey::from_slice(&[3; 32]).expect("key");
        let b = SecretKey::from_slice(&[4; 32]).expect("key");
        let (ea, eb) = (
            ElligatorSwift::from_seckey(&secp, a, None),
            ElligatorSwift::from_seckey(&secp, b, None),
        );
        g.bench_function("floor_ecdh/libsecp256k1", |bch| {
            bch.iter(|| {
                black_box(ElligatorSwift::shared_secret(
                    black_box(ea),
                    eb,
                    a,
                    ElligatorSwiftParty::A,
                    None,
                ))
            })
        });
        g.bench_function("floor_ephemeral_key/libsecp256k1", |bch| {
            bch.iter(|| {
                black_box(ElligatorSwift::from_seckey(
                    &secp,
                    black_box(a),
                    Some([1; 32]),
                ))
            })
        });
    }
    g.finish();
}

mod reference_noise {
    //! The reference's handshake and transport, driven as its own roles
    //! drive them (codec_sv2's Handshake, NoiseEncoder, NoiseDecoder).
    use super::{NOW, black_box};
    use codec_sv2::{Decrypted, Handshake, NoiseDecoder, NoiseEncoder};
    use criterion::BenchmarkGroup;
    use criterion::measurement::WallTime;
    use framing_sv2::framing::SerializedFrame;
    use sluice_sv2::frame::Header;
    use sluice_sv2::noise::{AuthorityKeypair, StaticKeypair};
    use std::time::Duration;

    fn handshake(a: &AuthorityKeypair) -> (codec_sv2::Transport, codec_sv2::Transport) {
        let pk = a.public_key().to_bytes();
        // The reference's responder is built per connection (it makes a
        // static key and signs a certificate there): that is its API.
        let r = noise_sv2::Responder::from_authority_kp(
            &pk,
            &a.secret_bytes(),
            Duration::from_secs(3600),
        )
        .expect("responder");
        let i = noise_sv2::Initiator::from_raw_k(pk).expect("initiator");
        let (act1, sent) = Handshake::initiator(i).step_0().expect("act 1");
        let act1: [u8; 64] = act1.payload().try_into().expect("64");
        let (act2, server) = Handshake::responder(r).step_1(act1).expect("act 2");
        let client = sent
            .step_2_with_now(act2.payload().try_into().expect("234"), now())
            .expect("finish");
        (client, server)
    }

    fn now() -> u32 {
        let _ = NOW;
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32)
    }

    pub(crate) fn bench(
        g: &mut BenchmarkGroup<'_, WallTime>,
        a: &AuthorityKeypair,
        _s: &StaticKeypair,
    ) {
        g.bench_function("handshake/reference", |b| {
            b.iter(|| black_box(handshake(a)))
        });

        // The same with the responder built outside the timing (as if its
        // per-connection key and certificate were free): what is left is
        // the protocol work itself.
        g.bench_function("handshake_prebuilt/reference", |b| {
            b.iter_batched(
                || {
                    let pk = a.public_key().to_bytes();
                    noise_sv2::Responder::from_authority_kp(
                        &pk,
                        &a.secret_bytes(),
                        Duration::from_secs(3600),
                    )
                    .expect("responder")
                },
                |r| {
                    let pk = a.public_key().to_bytes();
                    let i = noise_sv2::Initiator::from_raw_k(pk).expect("initiator");
                    let (act1, sent) = Handshake::initiator(i).step_0().expect("act 1");
                    let act1: [u8; 64] = act1.payload().try_into().expect("64");
                    let (act2, server) = Handshake::responder(r).step_1(act1).expect("act 2");
                    let client = sent
                        .step_2_with_now(act2.payload().try_into().expect("234"), now())
                        .expect("finish");
                    black_box((client, server))
                },
                criterion::BatchSize::SmallInput,
            )
        });
        let (client, server) = handshake(a);
        let (mut enc, _) = client.split();
        let (_, dec) = server.split();
        let mut dec = Some(dec);
        let mut encoder = NoiseEncoder::new();
        let mut decoder = NoiseDecoder::new();
        for (name, len) in [("transport_64", 64usize), ("transport_1k", 1024)] {
            let mut plain = Header::new(0x1b, true, len as u32).encode().to_vec();
            plain.extend_from_slice(&vec![0x33u8; len]);
            g.bench_function(format!("{name}/reference"), |b| {
                b.iter(|| {
                    let frame =
                        SerializedFrame::from_bytes(black_box(&plain).clone()).expect("frame");
                    let out: Vec<u8> = encoder.encode_transport(frame, &mut enc).expect("encrypts");
                    let mut pos = 0;
                    let mut st = dec.take().expect("state");
                    loop {
                        let w = decoder.writable();
                        let k = w.len();
                        w.copy_from_slice(&out[pos..pos + k]);
                        pos += k;
                        match decoder.next_transport_frame(st).expect("decrypts") {
                            Decrypted::Frame(f, next) => {
                                dec = Some(next);
                                return black_box(f.as_bytes().len());
                            }
                            Decrypted::Incomplete(_, next) => st = next,
                        }
                    }
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().output_directory(&output_dir());
    targets = bench_frames, bench_noise
}

/// Mean ns/iteration criterion estimated for one benchmark.
fn mean_ns(group: &str, function: &str) -> Option<f64> {
    let path = output_dir()
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary() {
    println!("\n== sluice-sv2 vs the reference (same run) ==");
    println!(
        "{:<16} {:>12} {:>14} {:>8}   target",
        "line", "sluice", "reference", "ratio"
    );
    let lines: [(&str, &str, Option<f64>); 7] = [
        ("noise", "handshake", Some(100_000.0)),
        ("noise", "transport_64", Some(1_500.0)),
        ("noise", "transport_1k", None),
        ("frames", "encode_share", None),
        ("frames", "decode_share", None),
        ("frames", "encode_job", None),
        ("frames", "decode_job", None),
    ];
    let mut missed = Vec::new();
    for (group, line, abs) in lines {
        let ours = mean_ns(group, &format!("{line}_sluice"));
        let theirs = mean_ns(group, &format!("{line}_reference"));
        let (Some(o), Some(t)) = (ours, theirs) else {
            println!("{line:<16} (no estimates under {})", output_dir().display());
            continue;
        };
        let ratio = t / o;
        let mut target = "≥ 2×".to_string();
        let mut met = ratio >= 2.0;
        if let Some(limit) = abs {
            target.push_str(&format!(", ≤ {}", fmt_ns(limit)));
            met &= o <= limit;
        }
        println!(
            "{line:<16} {:>12} {:>14} {:>7.2}×   {target}: {}",
            fmt_ns(o),
            fmt_ns(t),
            ratio,
            if met { "met" } else { "MISSED" }
        );
        if !met {
            missed.push(line);
        }
    }
    if let (Some(o), Some(t)) = (
        mean_ns("noise", "handshake_sluice"),
        mean_ns("noise", "handshake_prebuilt_reference"),
    ) {
        println!(
            "{:<16} {:>12} {:>14} {:>7.2}×   (reference responder built outside the timing)",
            "handshake*",
            fmt_ns(o),
            fmt_ns(t),
            t / o
        );
    }
    for (line, what) in [
        ("floor_ecdh", "one ElligatorSwift ECDH"),
        ("floor_ephemeral_key", "one ephemeral key, encoded"),
    ] {
        if let Some(v) = mean_ns("noise", &format!("{line}_libsecp256k1")) {
            println!("{what:<34} {:>12}   (floor, libsecp256k1)", fmt_ns(v));
        }
    }
    if !missed.is_empty() {
        println!("missed: {}", missed.join(", "));
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test` runs each bench once without `--bench`; no estimates then.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
