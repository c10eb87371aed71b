//! Mining messages (0x10–0x25): channels, jobs, shares, targets.

use super::message;
use crate::binary::{B032, B064K, B0255, Seq064K, Seq0255, Str0255, U256};

/// Error codes the Mining Protocol uses in its `*.Error` messages.
pub mod error_code {
    /// No channel of that id on this connection.
    pub const INVALID_CHANNEL_ID: &str = "invalid-channel-id";
    /// The share is for a job that is no longer current.
    pub const STALE_SHARE: &str = "stale-share";
    /// No job of that id on this channel.
    pub const INVALID_JOB_ID: &str = "invalid-job-id";
    /// The share's hash is above the channel's target.
    pub const DIFFICULTY_TOO_LOW: &str = "difficulty-too-low";
    /// The same share was sent before.
    pub const DUPLICATE_SHARE: &str = "duplicate-share";
    /// The extranonce is not the channel's extranonce size.
    pub const BAD_EXTRANONCE_SIZE: &str = "bad-extranonce-size";
    /// The version sets bits outside the rolling mask.
    pub const INVALID_NON_ROLLABLE_VERSION_BIT: &str = "invalid-non-rollable-version-bit";
    /// The user identity is not known or not allowed.
    pub const UNKNOWN_USER: &str = "unknown-user";
    /// The requested maximum target cannot be met.
    pub const MAX_TARGET_OUT_OF_RANGE: &str = "max-target-out-of-range";
    /// SetupConnection asked for flags the server does not support.
    pub const UNSUPPORTED_FEATURE_FLAGS: &str = "unsupported-feature-flags";
    /// SetupConnection asked for a protocol the server does not serve.
    pub const UNSUPPORTED_PROTOCOL: &str = "unsupported-protocol";
    /// No version in the requested range.
    pub const PROTOCOL_VERSION_MISMATCH: &str = "protocol-version-mismatch";
}

message! {
    /// Asks for a standard (header-only) channel.
    OpenStandardMiningChannel = 0x10, channel false {
        /// Echoed in the answer.
        request_id: u32,
        /// Who the work is for (account.worker).
        user_identity: Str0255,
        /// Expected hashes per second, to size the first target.
        nominal_hash_rate: f32,
        /// Largest target the device accepts.
        max_target: U256,
    }
}

message! {
    /// A standard channel is open.
    OpenStandardMiningChannelSuccess = 0x11, channel false {
        /// The request answered.
        request_id: u32,
        /// The new channel's id.
        channel_id: u32,
        /// Its first target.
        target: U256,
        /// The bytes the upstream fixed in the coinbase for it.
        extranonce_prefix: B032,
        /// The group the channel belongs to.
        group_channel_id: u32,
    }
}

message! {
    /// A channel could not be opened.
    OpenMiningChannelError = 0x12, channel false {
        /// The request answered.
        request_id: u32,
        /// `unknown-user`, `max-target-out-of-range`, or another code.
        error_code: Str0255,
    }
}

message! {
    /// Asks for an extended channel (the miner builds its coinbase).
    OpenExtendedMiningChannel = 0x13, channel false {
        /// Echoed in the answer.
        request_id: u32,
        /// Who the work is for.
        user_identity: Str0255,
        /// Expected hashes per second.
        nominal_hash_rate: f32,
        /// Largest target the device accepts.
        max_target: U256,
        /// Fewest extranonce bytes the downstream needs to roll.
        min_extranonce_size: u16,
    }
}

message! {
    /// An extended channel is open.
    OpenExtendedMiningChannelSuccess = 0x14, channel false {
        /// The request answered.
        request_id: u32,
        /// The new channel's id.
        channel_id: u32,
        /// Its first target.
        target: U256,
        /// Extranonce bytes the downstream rolls.
        extranonce_size: u16,
        /// The bytes fixed by the upstream ahead of them.
        extranonce_prefix: B032,
        /// The group the channel belongs to.
        group_channel_id: u32,
    }
}

message! {
    /// A job for a standard channel: the merkle root is fixed.
    NewMiningJob = 0x15, channel true {
        /// The channel it is for.
        channel_id: u32,
        /// The job's id on that channel.
        job_id: u32,
        /// Earliest ntime; `None` for a future job, activated by
        /// SetNewPrevHash.
        min_ntime: Option<u32>,
        /// Block header version.
        version: u32,
        /// Merkle root of the channel's coinbase and the block's
        /// transactions.
        merkle_root: U256,
    }
}

message! {
    /// The downstream's hashrate or maximum target changed.
    UpdateChannel = 0x16, channel true {
        /// The channel.
        channel_id: u32,
        /// Expected hashes per second.
        nominal_hash_rate: f32,
        /// Largest target the device accepts.
        maximum_target: U256,
    }
}

message! {
    /// UpdateChannel was refused.
    UpdateChannelError = 0x17, channel true {
        /// The channel.
        channel_id: u32,
        /// `max-target-out-of-range`, `invalid-channel-id`, or another code.
        error_code: Str0255,
    }
}

message! {
    /// Either side ends a channel.
    CloseChannel = 0x18, channel true {
        /// The channel.
        channel_id: u32,
        /// Why, free-form.
        reason_code: Str0255,
    }
}

message! {
    /// The channel's extranonce prefix changes from the next job on.
    SetExtranoncePrefix = 0x19, channel true {
        /// The channel.
        channel_id: u32,
        /// The new prefix.
        extranonce_prefix: B032,
    }
}

message! {
    /// A share on a standard channel.
    SubmitSharesStandard = 0x1a, channel true {
        /// The channel.
        channel_id: u32,
        /// Increases by one per submission; answers name it.
        sequence_number: u32,
        /// The job.
        job_id: u32,
        /// Header nonce.
        nonce: u32,
        /// Header time.
        ntime: u32,
        /// Header version, rolled bits included.
        version: u32,
    }
}

message! {
    /// A share on an extended channel.
    SubmitSharesExtended = 0x1b, channel true {
        /// The channel.
        channel_id: u32,
        /// Increases by one per submission.
        sequence_number: u32,
        /// The job.
        job_id: u32,
        /// Header nonce.
        nonce: u32,
        /// Header time.
        ntime: u32,
        /// Header version, rolled bits included.
        version: u32,
        /// The extranonce the downstream rolled (after the prefix).
        extranonce: B032,
    }
}

message! {
    /// Shares accepted, possibly a batch of them.
    SubmitSharesSuccess = 0x1c, channel true {
        /// The channel.
        channel_id: u32,
        /// The last submission this answer covers.
        last_sequence_number: u32,
        /// Submissions accepted since the previous answer.
        new_submits_accepted_count: u32,
        /// Their work, in shares of the channel's target.
        new_shares_sum: u64,
    }
}

message! {
    /// A share refused.
    SubmitSharesError = 0x1d, channel true {
        /// The channel.
        channel_id: u32,
        /// The submission refused.
        sequence_number: u32,
        /// One of [`error_code`]'s share errors, or another code.
        error_code: Str0255,
    }
}

message! {
    /// A job for an extended (or group) channel: the downstream builds the
    /// coinbase as prefix ‖ extranonce prefix ‖ extranonce ‖ suffix.
    NewExtendedMiningJob = 0x1f, channel true {
        /// The channel or group channel.
        channel_id: u32,
        /// The job's id.
        job_id: u32,
        /// Earliest ntime; `None` for a future job.
        min_ntime: Option<u32>,
        /// Block header version.
        version: u32,
        /// Whether the version bits may be rolled.
        version_rolling_allowed: bool,
        /// Merkle branches from the coinbase to the root.
        merkle_path: Seq0255<U256>,
        /// Coinbase bytes before the extranonce.
        coinbase_tx_prefix: B064K,
        /// Coinbase bytes after the extranonce.
        coinbase_tx_suffix: B064K,
    }
}

message! {
    /// A new block to build on; activates the future job it names.
    SetNewPrevHash = 0x20, channel true {
        /// The channel or group channel.
        channel_id: u32,
        /// The future job now active.
        job_id: u32,
        /// Previous block hash.
        prev_hash: U256,
        /// Earliest ntime.
        min_ntime: u32,
        /// Network target in compact form.
        nbits: u32,
    }
}

message! {
    /// The channel's target changes now.
    SetTarget = 0x21, channel true {
        /// The channel.
        channel_id: u32,
        /// Shares must hash at or below this.
        maximum_target: U256,
    }
}

message! {
    /// A downstream's own job (work selection), declared to the pool.
    SetCustomMiningJob = 0x22, channel true {
        /// The extended channel.
        channel_id: u32,
        /// Echoed in the answer.
        request_id: u32,
        /// The job declarator's token.
        token: B0255,
        /// Block header version.
        version: u32,
        /// Previous block hash.
        prev_hash: U256,
        /// Earliest ntime.
        min_ntime: u32,
        /// Network target in compact form.
        nbits: u32,
        /// Coinbase transaction version.
        coinbase_tx_version: u32,
        /// Coinbase input script up to the extranonce.
        coinbase_prefix: B0255,
        /// Coinbase input nSequence.
        coinbase_tx_input_n_sequence: u32,
        /// Serialized coinbase outputs.
        coinbase_tx_outputs: B064K,
        /// Coinbase lock time.
        coinbase_tx_locktime: u32,
        /// Merkle branches from the coinbase to the root.
        merkle_path: Seq0255<U256>,
    }
}

message! {
    /// The custom job is accepted under this job id.
    SetCustomMiningJobSuccess = 0x23, channel true {
        /// The channel.
        channel_id: u32,
        /// The request answered.
        request_id: u32,
        /// The job id to submit shares under.
        job_id: u32,
    }
}

message! {
    /// The custom job is refused.
    SetCustomMiningJobError = 0x24, channel true {
        /// The channel.
        channel_id: u32,
        /// The request answered.
        request_id: u32,
        /// Why.
        error_code: Str0255,
    }
}

message! {
    /// These channels now belong to this group (and get its jobs).
    SetGroupChannel = 0x25, channel false {
        /// The group channel.
        group_channel_id: u32,
        /// Its member channels.
        channel_ids: Seq064K<u32>,
    }
}
