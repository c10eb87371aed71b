//! Noise NX (placeholder while the handshake is written).
