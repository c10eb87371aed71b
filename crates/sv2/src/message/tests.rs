//! Message tests: known bytes, unknown types, bad payloads, and a
//! round trip of every message from generated values.

use super::*;
use crate::binary::{B032, B064K, Seq0255, Str0255};
use crate::frame::FrameDecoder;

fn frame_of(m: &Message) -> Frame {
    let mut b = BytesMut::new();
    m.put_frame(&mut b);
    FrameDecoder::default()
        .decode(&mut b)
        .expect("frame")
        .expect("whole")
}

#[test]
fn submit_shares_extended_has_the_spec_layout() {
    let m = SubmitSharesExtended {
        channel_id: 1,
        sequence_number: 2,
        job_id: 3,
        nonce: 0xdead_beef,
        ntime: 0x6000_0000,
        version: 0x2000_0000,
        extranonce: B032::new(vec![0xaa, 0xbb]).unwrap(),
    };
    let bytes = Message::from(m.clone()).to_frame_bytes();
    let expect: Vec<u8> = [
        &[0x00, 0x80, 0x1b, 27, 0, 0][..],
        &1u32.to_le_bytes(),
        &2u32.to_le_bytes(),
        &3u32.to_le_bytes(),
        &0xdead_beefu32.to_le_bytes(),
        &0x6000_0000u32.to_le_bytes(),
        &0x2000_0000u32.to_le_bytes(),
        &[2, 0xaa, 0xbb],
    ]
    .concat();
    assert_eq!(&bytes[..], &expect[..]);
    let f = frame_of(&m.clone().into());
    assert_eq!(Message::decode(&f), Ok(Message::SubmitSharesExtended(m)));
}

#[test]
fn unknown_types_and_extensions_are_skipped_not_errors() {
    let f = Frame {
        header: Header::new(0x70, false, 3),
        payload: Bytes::from_static(&[1, 2, 3]),
    };
    assert!(matches!(Message::decode(&f), Ok(Message::Unknown(_))));
    let ext = Frame {
        header: Header {
            extension_type: 0x0001,
            msg_type: 0x00,
            msg_length: 0,
        },
        payload: Bytes::new(),
    };
    assert!(matches!(Message::decode(&ext), Ok(Message::Unknown(_))));
    // Passed on unchanged.
    assert_eq!(
        Message::Unknown(f.clone()).to_frame_bytes()[..6],
        f.header.encode()
    );
}

#[test]
fn truncated_and_overlong_payloads_are_clear_errors() {
    let f = Frame {
        header: Header::new(0x1a, true, 5),
        payload: Bytes::from_static(&[1, 0, 0, 0, 9]),
    };
    assert_eq!(
        Message::decode(&f),
        Err(DecodeError::Truncated {
            field: "SubmitSharesStandard.sequence_number",
            need: 4,
            have: 1
        })
    );
    // An extranonce claiming 33 bytes.
    let mut p = vec![0u8; 24];
    p.push(33);
    p.extend_from_slice(&[0; 33]);
    let f = Frame {
        header: Header::new(0x1b, true, p.len() as u32),
        payload: Bytes::from(p),
    };
    assert!(matches!(
        Message::decode(&f),
        Err(DecodeError::TooLong {
            len: 33,
            max: 32,
            ..
        })
    ));
}

#[test]
fn the_channel_bit_does_not_decide_decoding_or_the_channel_id() {
    // NewMiningJob and the custom-job messages travel with the bit set by
    // some peers and clear by others.
    let mut src = crate::arb::Source::new(5);
    use crate::arb::Gen;
    let msgs: Vec<Message> = vec![
        NewMiningJob::generate(&mut src).into(),
        SetCustomMiningJob::generate(&mut src).into(),
        SetCustomMiningJobSuccess::generate(&mut src).into(),
        SetCustomMiningJobError::generate(&mut src).into(),
    ];
    for m in msgs {
        let mut f = frame_of(&m);
        let id = f.payload.first_chunk::<4>().map(|b| u32::from_le_bytes(*b));
        for bit in [0, crate::frame::CHANNEL_MSG_BIT] {
            f.header.extension_type = bit;
            assert_eq!(Message::decode(&f).as_ref(), Ok(&m), "{}", m.name());
            assert_eq!(f.channel_id(), id, "{}", m.name());
        }
    }
    // Every generated message: a channel id exactly when the type has one
    // as its first field, and then it is that field.
    for seed in 0..500 {
        let m = Message::generate(&mut crate::arb::Source::new(seed));
        let f = frame_of(&m);
        assert_eq!(
            f.channel_id().is_some(),
            m.header().channel_msg()
                || matches!(
                    m,
                    Message::SetCustomMiningJob(_)
                        | Message::SetCustomMiningJobSuccess(_)
                        | Message::SetCustomMiningJobError(_)
                        | Message::NewMiningJob(_)
                ),
            "{}",
            m.name()
        );
    }
}

#[test]
fn an_unknown_frame_is_written_with_its_true_length() {
    let f = Frame {
        header: Header::new(0x71, false, 99),
        payload: Bytes::from_static(&[1, 2, 3]),
    };
    let bytes = Message::Unknown(f).to_frame_bytes();
    assert_eq!(&bytes[..], &[0x00, 0x00, 0x71, 3, 0, 0, 1, 2, 3]);
}

#[test]
fn trailing_bytes_are_ignored_for_forward_compatibility() {
    let m = SetTarget {
        channel_id: 7,
        maximum_target: [0xff; 32],
    };
    let mut p = BytesMut::new();
    m.put_payload(&mut p);
    p.extend_from_slice(&[0x00, 0x01, 0x02]);
    assert_eq!(SetTarget::decode(&p.freeze()), Ok(m));
}

#[test]
fn new_extended_mining_job_future_and_active() {
    let job = NewExtendedMiningJob {
        channel_id: 9,
        job_id: 1,
        min_ntime: None,
        version: 0x2000_0000,
        version_rolling_allowed: true,
        merkle_path: Seq0255::new(vec![[1u8; 32], [2u8; 32]]).unwrap(),
        coinbase_tx_prefix: B064K::new(vec![0x01; 70]).unwrap(),
        coinbase_tx_suffix: B064K::new(vec![0x02; 300]).unwrap(),
    };
    let f = frame_of(&job.clone().into());
    assert!(f.header.channel_msg());
    assert_eq!(
        f.payload.len(),
        4 + 4 + 1 + 4 + 1 + 1 + 64 + 2 + 70 + 2 + 300
    );
    assert_eq!(Message::decode(&f), Ok(job.clone().into()));
    let active = NewExtendedMiningJob {
        min_ntime: Some(0x6000_0000),
        ..job
    };
    let f = frame_of(&active.clone().into());
    assert_eq!(Message::decode(&f), Ok(active.into()));
}

#[test]
fn setup_connection_is_not_a_channel_message() {
    let m = SetupConnection {
        protocol: PROTOCOL_MINING,
        min_version: 2,
        max_version: 2,
        flags: setup_flags::REQUIRES_VERSION_ROLLING,
        endpoint_host: Str0255::from("127.0.0.1"),
        endpoint_port: 3336,
        vendor: Str0255::from("sluice"),
        hardware_version: Str0255::from(""),
        firmware: Str0255::from("0.1"),
        device_id: Str0255::from("rig-1"),
    };
    let f = frame_of(&m.clone().into());
    assert!(!f.header.channel_msg());
    assert_eq!(f.header.msg_type, 0x00);
    assert_eq!(Message::decode(&f), Ok(m.into()));
}

mod round_trip {
    use super::*;
    use crate::arb::{Gen, Source};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every message type, generated values: encode, cut into a frame,
        /// decode, equal; the header states the payload length exactly.
        #[test]
        fn every_message_round_trips(seed in any::<u64>()) {
            let m = Message::generate(&mut Source::new(seed));
            let bytes = m.to_frame_bytes();
            let mut buf = BytesMut::from(&bytes[..]);
            let f = FrameDecoder::new(crate::frame::MAX_PAYLOAD_LEN)
                .decode(&mut buf)
                .expect("frame")
                .expect("whole");
            prop_assert!(buf.is_empty());
            prop_assert_eq!(f.header, m.header());
            prop_assert_eq!(f.payload.len() + HEADER_LEN, bytes.len());
            prop_assert_eq!(Message::decode(&f).expect("decodes"), m);
        }

        /// A payload cut short anywhere is an error, never a panic or a
        /// wrong value.
        #[test]
        fn every_prefix_of_a_payload_fails_cleanly(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
            let m = Message::generate(&mut Source::new(seed));
            let mut p = BytesMut::new();
            m.put_payload(&mut p);
            prop_assume!(!p.is_empty());
            let short = p.freeze().slice(..cut.index(p_len(&m)));
            let f = Frame { header: m.header(), payload: short };
            prop_assert!(Message::decode(&f).is_err());
        }
    }

    fn p_len(m: &Message) -> usize {
        m.header().msg_length as usize
    }

    #[test]
    fn every_type_is_generated() {
        let mut seen = std::collections::HashSet::new();
        let mut src = Source::new(1);
        for _ in 0..5000 {
            seen.insert(Message::generate(&mut src).name());
        }
        assert_eq!(seen.len(), 26, "{seen:?}");
    }
}
