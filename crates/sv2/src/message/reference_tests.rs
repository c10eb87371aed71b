//! Differential tests against the reference implementation (the SRI crates
//! `binary_sv2`, `framing_sv2`, `codec_sv2`, `common_messages_sv2`,
//! `mining_sv2`).
//!
//! For every one of the 26 message types, from generated values:
//!
//! 1. our value converted field by field to the reference's struct and
//!    framed by `framing_sv2` gives the same frame bytes (header and payload)
//!    as ours, and our type number and channel bit are the reference's;
//! 2. the reference decodes our payload to that same value (compared by its
//!    `Debug` form, as most reference structs do not implement `PartialEq`)
//!    and re-encodes it to our exact bytes;
//! 3. we decode the reference's payload back to our value.
//!
//! A last test feeds a stream of our frames of every type to the
//! reference's whole-frame decoder (`codec_sv2::Decoder`), which proves the
//! header (extension type with the channel bit, message type, U24 length)
//! reads the same there too.

use super::*;
use crate::arb::{Gen, Source};
use crate::binary::{Seq064K, Seq0255, Str0255, U256};
use binary_sv2::{Encodable, GetSize};
use codec_sv2::Decoded;
use framing_sv2::framing::{EncodableFrame, MessageFrame};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use std::fmt::Debug;

/// The reference's whole frame for a message: header and payload.
fn reference_frame<R: Encodable + GetSize>(msg: R, msg_type: u8, channel_msg: bool) -> Vec<u8> {
    let frame = MessageFrame::from_message(msg, msg_type, 0, channel_msg).expect("fits a frame");
    let mut out = vec![0u8; EncodableFrame::encoded_length(&frame)];
    frame.encode_into(&mut out).expect("reference encodes");
    out
}

/// Where two byte strings first differ, with some bytes around it.
fn describe_diff(what: &str, ours: &[u8], theirs: &[u8]) -> String {
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let window = |b: &[u8]| {
        let lo = at.saturating_sub(8);
        let hi = (at + 16).min(b.len());
        b.get(lo..hi).map(hex).unwrap_or_default()
    };
    format!(
        "{what}: ours {} bytes, reference {} bytes, first difference at offset {at}: \
         ours …{}…, reference …{}… (windows start at offset {})",
        ours.len(),
        theirs.len(),
        window(ours),
        window(theirs),
        at.saturating_sub(8),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The reference decodes a payload of one type and re-encodes it, giving
/// the bytes and the `Debug` form of the value it read.
type Redecode = fn(&mut [u8]) -> Result<(Vec<u8>, String), binary_sv2::Error>;

/// Steps 1–3 for one value. `ref_frame` and `ref_debug` are the reference's
/// frame of, and `Debug` form of, our value converted to its struct.
fn check<T>(
    ours: &T,
    ref_type: u8,
    ref_channel: bool,
    ref_frame: &[u8],
    ref_debug: &str,
    redecode: Redecode,
) -> Result<(), TestCaseError>
where
    T: Sv2Message + Clone + PartialEq + Debug,
    Message: From<T>,
{
    prop_assert_eq!(T::MSG_TYPE, ref_type, "{} type number", T::NAME);
    prop_assert_eq!(T::CHANNEL_MSG, ref_channel, "{} channel bit", T::NAME);

    // 1. Same frame bytes.
    let frame = Message::from(ours.clone()).to_frame_bytes();
    if frame[..] != ref_frame[..] {
        return Err(TestCaseError::fail(describe_diff(
            &format!("{} frame", T::NAME),
            &frame,
            ref_frame,
        )));
    }
    let payload = &frame[HEADER_LEN..];

    // 2. The reference reads our payload as the same value, and writes it
    //    back byte for byte.
    let mut buf = payload.to_vec();
    let (again, debug) = redecode(&mut buf).map_err(|e| {
        TestCaseError::fail(format!("reference refuses our {} payload: {e:?}", T::NAME))
    })?;
    if again[..] != payload[..] {
        return Err(TestCaseError::fail(describe_diff(
            &format!("{} payload re-encoded by the reference", T::NAME),
            payload,
            &again,
        )));
    }
    prop_assert_eq!(debug, ref_debug, "{} as the reference reads it", T::NAME);

    // 3. We read the reference's payload as our value.
    let back = T::decode(&Bytes::copy_from_slice(&ref_frame[HEADER_LEN..]))
        .map_err(|e| TestCaseError::fail(format!("we refuse the reference's {}: {e}", T::NAME)))?;
    prop_assert!(&back == ours, "{} read back differs", T::NAME);
    Ok(())
}

// Field conversions to the reference's borrowed types.

fn str0255(s: &Str0255) -> binary_sv2::Str0255<'_> {
    binary_sv2::Str0255::new(s.as_bytes()).expect("STR0_255 fits")
}

/// B0_32, B0_255 and B0_64K alike.
fn bytes<'a, R>(b: &'a [u8]) -> R
where
    R: TryFrom<&'a [u8], Error = binary_sv2::Error>,
{
    R::try_from(b).expect("B0_* fits")
}

fn u256(v: &U256) -> binary_sv2::U256<'_> {
    v.into()
}

fn merkle_path(p: &Seq0255<U256>) -> binary_sv2::Seq0255<'_, binary_sv2::U256<'_>> {
    binary_sv2::Seq0255::new(p.iter().map(u256).collect()).expect("SEQ0_255 fits")
}

fn u32s(s: &Seq064K<u32>) -> binary_sv2::Seq064K<'_, u32> {
    binary_sv2::Seq064K::new(s.to_vec()).expect("SEQ0_64K fits")
}

fn option(v: Option<u32>) -> binary_sv2::Sv2Option<'static, u32> {
    binary_sv2::Sv2Option::new(v)
}

/// Our generators, except where a field has fewer values than its type.
mod generate {
    use super::*;

    /// `protocol` is one of the three the spec defines (0 mining, 1 job
    /// declaration, 2 template distribution): the reference decodes it into
    /// an enum and has no representation for any other byte, while ours is a
    /// plain `u8`.
    pub(super) fn setup_connection(src: &mut Source) -> SetupConnection {
        let mut m = SetupConnection::generate(src);
        m.protocol %= 3;
        m
    }
}

/// A fixed RNG seed, so every run tests the same values, and no regression
/// files: a failure prints the `seed` of our generator to replay it.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x5c1c_e5e2),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Our generator for a type, the reference's decode-and-re-encode of it.
type Entry = (u8, fn(&mut Source) -> Message, Redecode);

/// One property test per message (steps 1–3), and [`all`], the table of
/// every type for the whole-frame test.
macro_rules! differential {
    ($(
        $(#[$attr:meta])*
        $name:ident: $ours:ident => $theirs:ty,
            type $mt:expr, channel $ch:expr, cases $cases:expr, gen $gen:expr,
            |$m:ident| $to_ref:expr;
    )*) => {
        $(
            proptest! {
                #![proptest_config(config($cases))]

                $(#[$attr])*
                #[test]
                fn $name(seed in any::<u64>()) {
                    let generate: fn(&mut Source) -> $ours = $gen;
                    let ours = generate(&mut Source::new(seed));
                    let $m = &ours;
                    let theirs: $theirs = $to_ref;
                    let ref_debug = format!("{theirs:?}");
                    let ref_frame = reference_frame(theirs, $mt, $ch);
                    check(&ours, $mt, $ch, &ref_frame, &ref_debug, |buf: &mut [u8]| {
                        let d: $theirs = binary_sv2::from_bytes(buf)?;
                        let debug = format!("{d:?}");
                        Ok((binary_sv2::to_bytes(d)?, debug))
                    })?;
                }
            }
        )*

        /// Every type: its number, our generator, the reference's decoder.
        fn all() -> Vec<Entry> {
            vec![$(
                (
                    $mt,
                    |src: &mut Source| {
                        let generate: fn(&mut Source) -> $ours = $gen;
                        Message::from(generate(src))
                    },
                    |buf: &mut [u8]| {
                        let d: $theirs = binary_sv2::from_bytes(buf)?;
                        let debug = format!("{d:?}");
                        Ok((binary_sv2::to_bytes(d)?, debug))
                    },
                ),
            )*]
        }
    };
}

use common_messages_sv2 as common;
use mining_sv2 as mining;

differential! {
    // Common messages.

    setup_connection: SetupConnection => common::SetupConnection<'_>,
        type common::MESSAGE_TYPE_SETUP_CONNECTION,
        channel common::CHANNEL_BIT_SETUP_CONNECTION,
        cases 1000, gen generate::setup_connection,
        |m| common::SetupConnection {
            protocol: common::Protocol::try_from(m.protocol).expect("0, 1 or 2"),
            min_version: m.min_version,
            max_version: m.max_version,
            flags: m.flags,
            endpoint_host: str0255(&m.endpoint_host),
            endpoint_port: m.endpoint_port,
            vendor: str0255(&m.vendor),
            hardware_version: str0255(&m.hardware_version),
            firmware: str0255(&m.firmware),
            device_id: str0255(&m.device_id),
        };

    setup_connection_success: SetupConnectionSuccess => common::SetupConnectionSuccess,
        type common::MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
        channel common::CHANNEL_BIT_SETUP_CONNECTION_SUCCESS,
        cases 1000, gen SetupConnectionSuccess::generate,
        |m| common::SetupConnectionSuccess {
            used_version: m.used_version,
            flags: m.flags,
        };

    setup_connection_error: SetupConnectionError => common::SetupConnectionError<'_>,
        type common::MESSAGE_TYPE_SETUP_CONNECTION_ERROR,
        channel common::CHANNEL_BIT_SETUP_CONNECTION_ERROR,
        cases 1000, gen SetupConnectionError::generate,
        |m| common::SetupConnectionError {
            flags: m.flags,
            error_code: str0255(&m.error_code),
        };

    channel_endpoint_changed: ChannelEndpointChanged => common::ChannelEndpointChanged,
        type common::MESSAGE_TYPE_CHANNEL_ENDPOINT_CHANGED,
        channel common::CHANNEL_BIT_CHANNEL_ENDPOINT_CHANGED,
        cases 1000, gen ChannelEndpointChanged::generate,
        |m| common::ChannelEndpointChanged {
            channel_id: m.channel_id,
        };

    reconnect: Reconnect => common::Reconnect<'_>,
        type common::MESSAGE_TYPE_RECONNECT,
        channel common::CHANNEL_BIT_RECONNECT,
        cases 1000, gen Reconnect::generate,
        |m| common::Reconnect {
            new_host: str0255(&m.new_host),
            new_port: m.new_port,
        };

    // Mining messages.

    open_standard_mining_channel: OpenStandardMiningChannel
        => mining::OpenStandardMiningChannel<'_>,
        type mining::MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL,
        channel mining::CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL,
        cases 1000, gen OpenStandardMiningChannel::generate,
        |m| mining::OpenStandardMiningChannel {
            request_id: m.request_id,
            user_identity: str0255(&m.user_identity),
            nominal_hash_rate: m.nominal_hash_rate,
            max_target: u256(&m.max_target),
        };

    open_standard_mining_channel_success: OpenStandardMiningChannelSuccess
        => mining::OpenStandardMiningChannelSuccess<'_>,
        type mining::MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
        channel mining::CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
        cases 1000, gen OpenStandardMiningChannelSuccess::generate,
        |m| mining::OpenStandardMiningChannelSuccess {
            request_id: m.request_id,
            channel_id: m.channel_id,
            target: u256(&m.target),
            extranonce_prefix: bytes(&m.extranonce_prefix),
            group_channel_id: m.group_channel_id,
        };

    open_mining_channel_error: OpenMiningChannelError => mining::OpenMiningChannelError<'_>,
        type mining::MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR,
        channel mining::CHANNEL_BIT_OPEN_MINING_CHANNEL_ERROR,
        cases 1000, gen OpenMiningChannelError::generate,
        |m| mining::OpenMiningChannelError {
            request_id: m.request_id,
            error_code: str0255(&m.error_code),
        };

    open_extended_mining_channel: OpenExtendedMiningChannel
        => mining::OpenExtendedMiningChannel<'_>,
        type mining::MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
        channel mining::CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL,
        cases 1000, gen OpenExtendedMiningChannel::generate,
        |m| mining::OpenExtendedMiningChannel {
            request_id: m.request_id,
            user_identity: str0255(&m.user_identity),
            nominal_hash_rate: m.nominal_hash_rate,
            max_target: u256(&m.max_target),
            min_extranonce_size: m.min_extranonce_size,
        };

    open_extended_mining_channel_success: OpenExtendedMiningChannelSuccess
        => mining::OpenExtendedMiningChannelSuccess<'_>,
        type mining::MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
        channel mining::CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
        cases 1000, gen OpenExtendedMiningChannelSuccess::generate,
        |m| mining::OpenExtendedMiningChannelSuccess {
            request_id: m.request_id,
            channel_id: m.channel_id,
            target: u256(&m.target),
            extranonce_size: m.extranonce_size,
            extranonce_prefix: bytes(&m.extranonce_prefix),
            group_channel_id: m.group_channel_id,
        };

    new_mining_job: NewMiningJob => mining::NewMiningJob<'_>,
        type mining::MESSAGE_TYPE_NEW_MINING_JOB,
        channel mining::CHANNEL_BIT_NEW_MINING_JOB,
        cases 1000, gen NewMiningJob::generate,
        |m| mining::NewMiningJob {
            channel_id: m.channel_id,
            job_id: m.job_id,
            min_ntime: option(m.min_ntime),
            version: m.version,
            merkle_root: u256(&m.merkle_root),
        };

    update_channel: UpdateChannel => mining::UpdateChannel<'_>,
        type mining::MESSAGE_TYPE_UPDATE_CHANNEL,
        channel mining::CHANNEL_BIT_UPDATE_CHANNEL,
        cases 1000, gen UpdateChannel::generate,
        |m| mining::UpdateChannel {
            channel_id: m.channel_id,
            nominal_hash_rate: m.nominal_hash_rate,
            maximum_target: u256(&m.maximum_target),
        };

    update_channel_error: UpdateChannelError => mining::UpdateChannelError<'_>,
        type mining::MESSAGE_TYPE_UPDATE_CHANNEL_ERROR,
        channel mining::CHANNEL_BIT_UPDATE_CHANNEL_ERROR,
        cases 1000, gen UpdateChannelError::generate,
        |m| mining::UpdateChannelError {
            channel_id: m.channel_id,
            error_code: str0255(&m.error_code),
        };

    close_channel: CloseChannel => mining::CloseChannel<'_>,
        type mining::MESSAGE_TYPE_CLOSE_CHANNEL,
        channel mining::CHANNEL_BIT_CLOSE_CHANNEL,
        cases 1000, gen CloseChannel::generate,
        |m| mining::CloseChannel {
            channel_id: m.channel_id,
            reason_code: str0255(&m.reason_code),
        };

    set_extranonce_prefix: SetExtranoncePrefix => mining::SetExtranoncePrefix<'_>,
        type mining::MESSAGE_TYPE_SET_EXTRANONCE_PREFIX,
        channel mining::CHANNEL_BIT_SET_EXTRANONCE_PREFIX,
        cases 1000, gen SetExtranoncePrefix::generate,
        |m| mining::SetExtranoncePrefix {
            channel_id: m.channel_id,
            extranonce_prefix: bytes(&m.extranonce_prefix),
        };

    submit_shares_standard: SubmitSharesStandard => mining::SubmitSharesStandard,
        type mining::MESSAGE_TYPE_SUBMIT_SHARES_STANDARD,
        channel mining::CHANNEL_BIT_SUBMIT_SHARES_STANDARD,
        cases 1000, gen SubmitSharesStandard::generate,
        |m| mining::SubmitSharesStandard {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            job_id: m.job_id,
            nonce: m.nonce,
            ntime: m.ntime,
            version: m.version,
        };

    submit_shares_extended: SubmitSharesExtended => mining::SubmitSharesExtended<'_>,
        type mining::MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
        channel mining::CHANNEL_BIT_SUBMIT_SHARES_EXTENDED,
        cases 1000, gen SubmitSharesExtended::generate,
        |m| mining::SubmitSharesExtended {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            job_id: m.job_id,
            nonce: m.nonce,
            ntime: m.ntime,
            version: m.version,
            extranonce: bytes(&m.extranonce),
        };

    submit_shares_success: SubmitSharesSuccess => mining::SubmitSharesSuccess,
        type mining::MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS,
        channel mining::CHANNEL_BIT_SUBMIT_SHARES_SUCCESS,
        cases 1000, gen SubmitSharesSuccess::generate,
        |m| mining::SubmitSharesSuccess {
            channel_id: m.channel_id,
            last_sequence_number: m.last_sequence_number,
            new_submits_accepted_count: m.new_submits_accepted_count,
            new_shares_sum: m.new_shares_sum,
        };

    submit_shares_error: SubmitSharesError => mining::SubmitSharesError<'_>,
        type mining::MESSAGE_TYPE_SUBMIT_SHARES_ERROR,
        channel mining::CHANNEL_BIT_SUBMIT_SHARES_ERROR,
        cases 1000, gen SubmitSharesError::generate,
        |m| mining::SubmitSharesError {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            error_code: str0255(&m.error_code),
        };

    new_extended_mining_job: NewExtendedMiningJob => mining::NewExtendedMiningJob<'_>,
        type mining::MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB,
        channel mining::CHANNEL_BIT_NEW_EXTENDED_MINING_JOB,
        cases 1000, gen NewExtendedMiningJob::generate,
        |m| mining::NewExtendedMiningJob {
            channel_id: m.channel_id,
            job_id: m.job_id,
            min_ntime: option(m.min_ntime),
            version: m.version,
            version_rolling_allowed: m.version_rolling_allowed,
            merkle_path: merkle_path(&m.merkle_path),
            coinbase_tx_prefix: bytes(&m.coinbase_tx_prefix),
            coinbase_tx_suffix: bytes(&m.coinbase_tx_suffix),
        };

    set_new_prev_hash: SetNewPrevHash => mining::SetNewPrevHash<'_>,
        type mining::MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
        channel mining::CHANNEL_BIT_MINING_SET_NEW_PREV_HASH,
        cases 1000, gen SetNewPrevHash::generate,
        |m| mining::SetNewPrevHash {
            channel_id: m.channel_id,
            job_id: m.job_id,
            prev_hash: u256(&m.prev_hash),
            min_ntime: m.min_ntime,
            nbits: m.nbits,
        };

    set_target: SetTarget => mining::SetTarget<'_>,
        type mining::MESSAGE_TYPE_SET_TARGET,
        channel mining::CHANNEL_BIT_SET_TARGET,
        cases 1000, gen SetTarget::generate,
        |m| mining::SetTarget {
            channel_id: m.channel_id,
            maximum_target: u256(&m.maximum_target),
        };

    set_custom_mining_job: SetCustomMiningJob => mining::SetCustomMiningJob<'_>,
        type mining::MESSAGE_TYPE_SET_CUSTOM_MINING_JOB,
        channel mining::CHANNEL_BIT_SET_CUSTOM_MINING_JOB,
        cases 1000, gen SetCustomMiningJob::generate,
        |m| mining::SetCustomMiningJob {
            channel_id: m.channel_id,
            request_id: m.request_id,
            token: bytes(&m.token),
            version: m.version,
            prev_hash: u256(&m.prev_hash),
            min_ntime: m.min_ntime,
            nbits: m.nbits,
            coinbase_tx_version: m.coinbase_tx_version,
            coinbase_prefix: bytes(&m.coinbase_prefix),
            coinbase_tx_input_n_sequence: m.coinbase_tx_input_n_sequence,
            coinbase_tx_outputs: bytes(&m.coinbase_tx_outputs),
            coinbase_tx_locktime: m.coinbase_tx_locktime,
            merkle_path: merkle_path(&m.merkle_path),
        };

    set_custom_mining_job_success: SetCustomMiningJobSuccess
        => mining::SetCustomMiningJobSuccess,
        type mining::MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS,
        channel mining::CHANNEL_BIT_SET_CUSTOM_MINING_JOB_SUCCESS,
        cases 1000, gen SetCustomMiningJobSuccess::generate,
        |m| mining::SetCustomMiningJobSuccess {
            channel_id: m.channel_id,
            request_id: m.request_id,
            job_id: m.job_id,
        };

    set_custom_mining_job_error: SetCustomMiningJobError
        => mining::SetCustomMiningJobError<'_>,
        type mining::MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_ERROR,
        channel mining::CHANNEL_BIT_SET_CUSTOM_MINING_JOB_ERROR,
        cases 1000, gen SetCustomMiningJobError::generate,
        |m| mining::SetCustomMiningJobError {
            channel_id: m.channel_id,
            request_id: m.request_id,
            error_code: str0255(&m.error_code),
        };

    set_group_channel: SetGroupChannel => mining::SetGroupChannel<'_>,
        type mining::MESSAGE_TYPE_SET_GROUP_CHANNEL,
        channel mining::CHANNEL_BIT_SET_GROUP_CHANNEL,
        cases 1000, gen SetGroupChannel::generate,
        |m| mining::SetGroupChannel {
            group_channel_id: m.group_channel_id,
            channel_ids: u32s(&m.channel_ids),
        };
}

#[test]
fn the_table_covers_every_type_once() {
    let table = all();
    assert_eq!(table.len(), 26);
    let mut types: Vec<u8> = table.iter().map(|e| e.0).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 26);
    for (mt, generate, _) in table {
        assert_eq!(generate(&mut Source::new(1)).header().msg_type, mt);
    }
}

/// Our frames of every type, back to back, read by the reference's frame
/// decoder: each header (extension type with the channel bit, type, U24
/// length) and payload reads as we wrote it, and the reference decodes each
/// payload by its type to our bytes.
#[test]
fn reference_frame_decoder_reads_a_stream_of_our_frames() {
    let table = all();
    let mut frames = Vec::new();
    let mut stream = Vec::new();
    for round in 0..4u64 {
        for (i, (_, generate, redecode)) in table.iter().enumerate() {
            let m = generate(&mut Source::new(round << 8 | i as u64));
            let bytes = m.to_frame_bytes();
            stream.extend_from_slice(&bytes);
            frames.push((m, bytes, *redecode));
        }
    }

    let mut decoder = codec_sv2::Decoder::new();
    let mut read = 0;
    let mut got = 0;
    while got < frames.len() {
        let n = decoder.writable_len();
        assert!(read + n <= stream.len(), "decoder wants bytes past the end");
        decoder.writable().copy_from_slice(&stream[read..read + n]);
        read += n;
        match decoder.next_frame().expect("reference decodes the frame") {
            Decoded::Incomplete(_) => continue,
            Decoded::Frame(mut f) => {
                let (m, bytes, redecode) = &frames[got];
                let ours = m.header();
                let theirs = f.header();
                assert_eq!(theirs.msg_type(), ours.msg_type, "{}", m.name());
                assert_eq!(theirs.ext_type(), ours.extension_type, "{}", m.name());
                assert_eq!(theirs.ext_type_without_channel_msg(), 0, "{}", m.name());
                assert_eq!(theirs.channel_msg(), ours.channel_msg(), "{}", m.name());
                assert_eq!(
                    theirs.payload_length(),
                    ours.msg_length as usize,
                    "{}",
                    m.name()
                );
                assert_eq!(f.as_bytes(), &bytes[..], "{}", m.name());
                let channel_id = ours
                    .channel_msg()
                    .then(|| u32::from_le_bytes(bytes[6..10].try_into().expect("4 bytes")));
                assert_eq!(f.channel_id(), channel_id, "{}", m.name());
                let (again, _) = redecode(f.payload()).expect("reference decodes the payload");
                assert_eq!(again, bytes[HEADER_LEN..], "{}", m.name());
                got += 1;
            }
        }
    }
    assert_eq!(read, stream.len(), "the whole stream read");
}

/// Known bytes the reference produces for a fixed SetupConnection, in case
/// both sides ever change together.
#[test]
fn setup_connection_known_bytes_match_the_reference() {
    let m = SetupConnection {
        protocol: PROTOCOL_MINING,
        min_version: 2,
        max_version: 2,
        flags: setup_flags::REQUIRES_VERSION_ROLLING,
        endpoint_host: Str0255::from("pool"),
        endpoint_port: 3333,
        vendor: Str0255::from("v"),
        hardware_version: Str0255::from(""),
        firmware: Str0255::from("f"),
        device_id: Str0255::from(""),
    };
    let theirs = common::SetupConnection {
        protocol: common::Protocol::MiningProtocol,
        min_version: 2,
        max_version: 2,
        flags: 0b100,
        endpoint_host: binary_sv2::Str0255::new(b"pool").expect("fits"),
        endpoint_port: 3333,
        vendor: binary_sv2::Str0255::new(b"v").expect("fits"),
        hardware_version: binary_sv2::Str0255::new(b"").expect("fits"),
        firmware: binary_sv2::Str0255::new(b"f").expect("fits"),
        device_id: binary_sv2::Str0255::new(b"").expect("fits"),
    };
    let expect: &[u8] = &[
        0x00, 0x00, 0x00, 22, 0, 0, // header
        0, 2, 0, 2, 0, 4, 0, 0, 0, // protocol, versions, flags
        4, b'p', b'o', b'o', b'l', 0x05, 0x0d, // host, port
        1, b'v', 0, 1, b'f', 0, // vendor, hardware, firmware, device
    ];
    assert_eq!(
        reference_frame(theirs, common::MESSAGE_TYPE_SETUP_CONNECTION, false),
        expect
    );
    assert_eq!(&Message::from(m).to_frame_bytes()[..], expect);
}
