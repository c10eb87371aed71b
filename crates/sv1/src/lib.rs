//! sluice-sv1: Stratum V1 on the wire. No sockets here: the engine owns
//! them; this crate turns bytes into typed messages and back.
//!
//! Map of the crate:
//! - [`codec`]: newline framing with a hard line limit (tokio-util codec).
//! - [`submit`]: the allocation-free `mining.submit` fast path.
//! - [`message`]: every other message, both directions, parsers and
//!   encoders; error codes 20–25.

pub mod codec;
pub mod message;
pub mod submit;

pub use codec::{DEFAULT_MAX_LINE, DEFAULT_MAX_UPSTREAM_LINE, LineCodec, LineError};
pub use message::{
    ClientRequest, ErrorCode, Id, Notify, ParseError, Request, RpcError, ServerMessage, Submit,
    SubscribeResult, parse_client, parse_server,
};
pub use submit::{SubmitRef, parse_submit};
