//! The error of every Noise operation.

use super::cert::CertError;
use super::keys::KeyError;

/// Why a handshake or a transport operation failed. Any error from a
/// [`Transport`](super::Transport) half ends that half: later calls return
/// [`NoiseError::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// A tag did not verify: the peer is not who the handshake said, or the
    /// bytes were altered or misaligned.
    #[error("decryption failed (bad MAC)")]
    Decrypt,
    /// An earlier error ended this session.
    #[error("the encrypted session already failed")]
    Failed,
    /// The decrypted header states a payload over the connection's limit.
    #[error("frame payload of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Stated payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header's `msg_length` is not the payload's length.
    #[error("header states {stated} payload bytes but {actual} were given")]
    LengthMismatch {
        /// `msg_length` from the header.
        stated: u32,
        /// Bytes actually given.
        actual: usize,
    },
    /// The AEAD refused to encrypt (a message beyond its size limit).
    #[error("encryption failed")]
    Encrypt,
    /// 2^64 - 1 messages in one direction: the key may not be used again.
    #[error("nonce space exhausted")]
    NonceExhausted,
    /// The server's certificate was refused.
    #[error("certificate refused: {0}")]
    Certificate(#[from] CertError),
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(getrandom::Error),
    /// The randomness gave no valid secret key in several tries.
    #[error("randomness gave no valid secret key")]
    BadRandomness,
}
