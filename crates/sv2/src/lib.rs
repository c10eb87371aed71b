//! sluice-sv2: Stratum V2 on the wire. No sockets and no runtime here: the
//! engine owns them; this crate turns bytes into typed messages and back,
//! and runs the Noise handshake and transport as state machines over byte
//! buffers.
//!
//! Map of the crate:
//! - [`binary`]: the spec's binary types (U24, U256, STR0_255, B0_32 …
//!   B0_16M, SEQ0_255/SEQ0_64K, OPTION) and a bounds-checked reader.
//! - [`frame`]: the 6-byte header, the channel-message bit, a frame decoder
//!   with a size limit.
//! - [`message`]: every Common (0x00–0x04) and Mining (0x10–0x25) message
//!   as a typed struct, and [`Message`], the decoder by type.
//! - [`noise`]: `Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256`: keys and
//!   their text form, certificates, the initiator and responder handshakes,
//!   and the encrypted transport.
//! - `arb` (feature `arb`): value generators for tests, fuzzing, benches.
//! - `codec` (feature `tokio`): tokio-util codecs over the above.

#[cfg(any(test, feature = "arb"))]
pub mod arb;
pub mod binary;
#[cfg(feature = "tokio")]
pub mod codec;
pub mod frame;
pub mod message;
pub mod noise;

pub use binary::{B016M, B032, B064K, B0255, DecodeError, Seq064K, Seq0255, Str0255, U256};
pub use frame::{Frame, FrameDecoder, FrameError, HEADER_LEN, Header};
pub use message::Message;
