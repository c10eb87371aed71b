//! Every Common (0x00–0x04) and Mining (0x10–0x25) message.
//!
//! Each message is a plain struct whose fields are the spec's, in the
//! spec's order; [`Sv2Message`] gives its type number, channel bit and wire
//! form. [`Message`] decodes a frame by its type. Frames of other
//! extensions and of types this crate does not know (Job Declaration,
//! Template Distribution) decode to [`Message::Unknown`]: the stream stays
//! in step because the frame was already cut by its length.
//!
//! A message's trailing bytes after its last field are ignored, as the
//! spec lets newer versions append fields (extension TLVs).

mod common;
mod mining;

pub use common::*;
pub use mining::*;

use crate::binary::{DecodeError, Reader};
use crate::frame::{Frame, HEADER_LEN, Header};
use bytes::{Bytes, BytesMut};

/// A message of the base protocol (extension type 0).
pub trait Sv2Message: Sized {
    /// Its `msg_type`.
    const MSG_TYPE: u8;
    /// Whether its header carries the channel-message bit (its payload
    /// then starts with the channel id).
    const CHANNEL_MSG: bool;
    /// Its name in the spec, for logs and errors.
    const NAME: &'static str;

    /// Payload bytes on the wire.
    fn payload_len(&self) -> usize;
    /// Appends the payload.
    fn put_payload(&self, dst: &mut BytesMut);
    /// Reads the payload.
    fn get_payload(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Its frame header.
    fn header(&self) -> Header {
        // Every message's largest form is far below the U24 limit
        // (SetGroupChannel, the largest, is 262,146 bytes).
        Header::new(Self::MSG_TYPE, Self::CHANNEL_MSG, self.payload_len() as u32)
    }

    /// Appends the whole plaintext frame (header and payload).
    fn put_frame(&self, dst: &mut BytesMut) {
        let len = self.payload_len();
        dst.reserve(HEADER_LEN + len);
        dst.extend_from_slice(&self.header().encode());
        self.put_payload(dst);
    }

    /// The payload alone, e.g. for an encrypted transport that writes the
    /// header itself.
    fn payload(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.payload_len());
        self.put_payload(&mut b);
        b.freeze()
    }

    /// Decodes a payload of this type.
    fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        Self::get_payload(&mut Reader::new(payload))
    }
}

/// Declares a message struct and its wire form from its field list.
macro_rules! message {
    (
        $(#[$doc:meta])*
        $name:ident = $ty:literal, channel $ch:literal {
            $( $(#[$fdoc:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: $fty, )*
        }

        impl $crate::message::Sv2Message for $name {
            const MSG_TYPE: u8 = $ty;
            const CHANNEL_MSG: bool = $ch;
            const NAME: &'static str = stringify!($name);

            fn payload_len(&self) -> usize {
                0 $( + $crate::binary::Field::wire_len(&self.$field) )*
            }

            fn put_payload(&self, _dst: &mut ::bytes::BytesMut) {
                $( $crate::binary::Field::put(&self.$field, _dst); )*
            }

            fn get_payload(
                _r: &mut $crate::binary::Reader<'_>,
            ) -> Result<Self, $crate::binary::DecodeError> {
                Ok($name {
                    $( $field: <$fty as $crate::binary::Field>::get(
                        _r,
                        concat!(stringify!($name), ".", stringify!($field)),
                    )?, )*
                })
            }
        }

        #[cfg(any(test, feature = "arb"))]
        impl $crate::arb::Gen for $name {
            fn generate(_src: &mut $crate::arb::Source) -> Self {
                $name { $( $field: <$fty as $crate::arb::Gen>::generate(_src), )* }
            }
        }
    };
}
pub(crate) use message;

/// Declares [`Message`] over every message type.
macro_rules! message_enum {
    ($($name:ident),* $(,)?) => {
        /// Any message this crate knows, or a frame it skips.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Message {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                $name($name),
            )*
            /// A frame of another extension or an unknown type, kept whole
            /// so a proxy can log it or pass it on.
            Unknown(Frame),
        }

        impl Message {
            /// Decodes a frame. Unknown types are not an error; a known
            /// type whose payload does not parse is.
            pub fn decode(frame: &Frame) -> Result<Message, DecodeError> {
                if frame.header.extension() != 0 {
                    return Ok(Message::Unknown(frame.clone()));
                }
                Ok(match frame.header.msg_type {
                    $( <$name as Sv2Message>::MSG_TYPE =>
                        Message::$name(<$name as Sv2Message>::decode(&frame.payload)?), )*
                    _ => Message::Unknown(frame.clone()),
                })
            }

            /// Appends the whole plaintext frame.
            pub fn put_frame(&self, dst: &mut BytesMut) {
                match self {
                    $( Message::$name(m) => m.put_frame(dst), )*
                    Message::Unknown(f) => {
                        // The header's length is the payload's, whatever a
                        // caller put in the public field: a wrong one would
                        // desynchronise the stream.
                        let mut h = f.header;
                        h.msg_length = f.payload.len() as u32;
                        dst.extend_from_slice(&h.encode());
                        dst.extend_from_slice(&f.payload);
                    }
                }
            }

            /// Its frame header.
            pub fn header(&self) -> Header {
                match self {
                    $( Message::$name(m) => m.header(), )*
                    Message::Unknown(f) => Header {
                        msg_length: f.payload.len() as u32,
                        ..f.header
                    },
                }
            }

            /// Appends the payload alone.
            pub fn put_payload(&self, dst: &mut BytesMut) {
                match self {
                    $( Message::$name(m) => m.put_payload(dst), )*
                    Message::Unknown(f) => dst.extend_from_slice(&f.payload),
                }
            }

            /// The spec's name of its type.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Message::$name(_) => <$name as Sv2Message>::NAME, )*
                    Message::Unknown(_) => "Unknown",
                }
            }
        }

        #[cfg(any(test, feature = "arb"))]
        impl $crate::arb::Gen for Message {
            fn generate(src: &mut $crate::arb::Source) -> Self {
                const TYPES: &[fn(&mut $crate::arb::Source) -> Message] = &[
                    $( |s| Message::$name(<$name as $crate::arb::Gen>::generate(s)), )*
                ];
                TYPES[src.upto(TYPES.len() - 1)](src)
            }
        }

        $(
            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*
    };
}

message_enum!(
    SetupConnection,
    SetupConnectionSuccess,
    SetupConnectionError,
    ChannelEndpointChanged,
    Reconnect,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    OpenMiningChannelError,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    NewMiningJob,
    UpdateChannel,
    UpdateChannelError,
    CloseChannel,
    SetExtranoncePrefix,
    SubmitSharesStandard,
    SubmitSharesExtended,
    SubmitSharesSuccess,
    SubmitSharesError,
    NewExtendedMiningJob,
    SetNewPrevHash,
    SetTarget,
    SetCustomMiningJob,
    SetCustomMiningJobSuccess,
    SetCustomMiningJobError,
    SetGroupChannel,
);

/// Whether a base-protocol message type's payload starts with the `u32`
/// channel id: every channel message, and the custom-job messages and
/// NewMiningJob whose channel bit peers disagree on.
pub fn starts_with_channel_id(msg_type: u8) -> bool {
    matches!(msg_type, 0x03 | 0x15..=0x1d | 0x1f..=0x24)
}

impl Message {
    /// Decodes a frame from its parts.
    pub fn from_parts(header: Header, payload: Bytes) -> Result<Message, DecodeError> {
        Message::decode(&Frame { header, payload })
    }

    /// The whole plaintext frame as bytes.
    pub fn to_frame_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(HEADER_LEN + self.header().msg_length as usize);
        self.put_frame(&mut b);
        b.freeze()
    }
}

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;
