//! Common messages (0x00–0x04): connection setup, endpoint changes,
//! reconnect.

use super::message;
use crate::binary::Str0255;

/// `SetupConnection.protocol` for the Mining Protocol.
pub const PROTOCOL_MINING: u8 = 0;
/// `SetupConnection.protocol` for the Job Declaration Protocol.
pub const PROTOCOL_JOB_DECLARATION: u8 = 1;
/// `SetupConnection.protocol` for the Template Distribution Protocol.
pub const PROTOCOL_TEMPLATE_DISTRIBUTION: u8 = 2;

/// The one protocol version there is.
pub const PROTOCOL_VERSION: u16 = 2;

/// `SetupConnection.flags` bits of the Mining Protocol.
pub mod setup_flags {
    /// The downstream will only use standard (header-only) jobs.
    pub const REQUIRES_STANDARD_JOBS: u32 = 1 << 0;
    /// The downstream will send SetCustomMiningJob.
    pub const REQUIRES_WORK_SELECTION: u32 = 1 << 1;
    /// The downstream rolls the version bits (BIP 320).
    pub const REQUIRES_VERSION_ROLLING: u32 = 1 << 2;
}

/// `SetupConnection.Success.flags` bits of the Mining Protocol.
pub mod success_flags {
    /// The upstream will not accept a rolled version.
    pub const REQUIRES_FIXED_VERSION: u32 = 1 << 0;
    /// The upstream accepts extended channels only.
    pub const REQUIRES_EXTENDED_CHANNELS: u32 = 1 << 1;
}

message! {
    /// The first message on a connection: which protocol, which versions,
    /// which features, and who is asking.
    SetupConnection = 0x00, channel false {
        /// 0 mining, 1 job declaration, 2 template distribution.
        protocol: u8,
        /// Lowest protocol version supported.
        min_version: u16,
        /// Highest protocol version supported.
        max_version: u16,
        /// Feature flags of the chosen protocol ([`setup_flags`]).
        flags: u32,
        /// The host the client connected to (after any proxy).
        endpoint_host: Str0255,
        /// The port the client connected to.
        endpoint_port: u16,
        /// Device vendor.
        vendor: Str0255,
        /// Hardware version.
        hardware_version: Str0255,
        /// Firmware version.
        firmware: Str0255,
        /// Device id, free-form.
        device_id: Str0255,
    }
}

message! {
    /// The server accepts the connection.
    SetupConnectionSuccess = 0x01, channel false {
        /// The version both sides will use.
        used_version: u16,
        /// Flags the server requires ([`success_flags`]).
        flags: u32,
    }
}

message! {
    /// The server refuses the connection.
    SetupConnectionError = 0x02, channel false {
        /// Flags it does not support, when that is the reason.
        flags: u32,
        /// `unsupported-feature-flags`, `unsupported-protocol`,
        /// `protocol-version-mismatch`, or another code.
        error_code: Str0255,
    }
}

message! {
    /// The channel's upstream endpoint changed: the downstream should
    /// expect new jobs and a new target.
    ChannelEndpointChanged = 0x03, channel true {
        /// The channel affected.
        channel_id: u32,
    }
}

message! {
    /// Connect to another host (empty host: the same one) and port.
    Reconnect = 0x04, channel false {
        /// Host to connect to; empty means the current one.
        new_host: Str0255,
        /// Port to connect to.
        new_port: u16,
    }
}
