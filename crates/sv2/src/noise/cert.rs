//! The server certificate: the authority's BIP 340 signature binding the
//! server's static key to a validity window.
//!
//! Wire form (74 bytes, integers little-endian): `version: u16`,
//! `valid_from: u32`, `not_valid_after: u32`, `signature: [u8; 64]`.
//! The signed message is
//! `SHA256(version ‖ valid_from ‖ not_valid_after ‖ server static x-only key)`,
//! i.e. the certificate's first 10 bytes followed by the key (this is what
//! the reference implementation signs and checks).

use bitcoin::secp256k1::{Message, schnorr};
use sha2::{Digest, Sha256};

use super::keys::{AuthorityKeypair, AuthorityPublicKey};
use super::{NoiseError, random32, secp};

/// Length of an encoded certificate.
pub const CERT_LEN: usize = 74;

/// The only certificate version defined.
pub const CERT_VERSION: u16 = 0;

/// Clock difference tolerated between server and client, in seconds (the
/// reference allows the same).
pub const CERT_LEEWAY_SECS: u32 = 10;

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A version this implementation does not know.
    #[error("certificate version {0} is not supported")]
    BadVersion(u16),
    /// Its window starts in the future (beyond the leeway).
    #[error("certificate not valid before {valid_from} (now {now})")]
    NotYetValid {
        /// Start of the window.
        valid_from: u32,
        /// The time checked.
        now: u32,
    },
    /// Its window ended (beyond the leeway).
    #[error("certificate expired at {not_valid_after} (now {now})")]
    Expired {
        /// End of the window.
        not_valid_after: u32,
        /// The time checked.
        now: u32,
    },
    /// The signature is not the authority's over this key and window.
    #[error("certificate signature does not verify against the authority key")]
    BadSignature,
}

/// A decoded certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate {
    /// Format version ([`CERT_VERSION`]).
    pub version: u16,
    /// First second of validity (unix time).
    pub valid_from: u32,
    /// Last second of validity (unix time).
    pub not_valid_after: u32,
    /// BIP 340 signature by the authority key.
    pub signature: [u8; 64],
}

impl Certificate {
    /// Signs a certificate for `server_static_xonly` valid from
    /// `valid_from` to `not_valid_after` (inclusive).
    pub fn sign(
        authority: &AuthorityKeypair,
        server_static_xonly: &[u8; 32],
        valid_from: u32,
        not_valid_after: u32,
    ) -> Result<Self, NoiseError> {
        let mut cert = Certificate {
            version: CERT_VERSION,
            valid_from,
            not_valid_after,
            signature: [0; 64],
        };
        let msg = cert.message(server_static_xonly);
        let aux = random32()?;
        let sig = secp().sign_schnorr_with_aux_rand(&msg, authority.keypair(), &aux);
        cert.signature = *sig.as_ref();
        Ok(cert)
    }

    fn message(&self, server_static_xonly: &[u8; 32]) -> Message {
        let mut m = [0u8; 10 + 32];
        m[..10].copy_from_slice(&self.encode()[..10]);
        m[10..].copy_from_slice(server_static_xonly);
        Message::from_digest(Sha256::digest(m).into())
    }

    /// The 74 wire bytes.
    pub fn encode(&self) -> [u8; CERT_LEN] {
        let mut b = [0u8; CERT_LEN];
        b[0..2].copy_from_slice(&self.version.to_le_bytes());
        b[2..6].copy_from_slice(&self.valid_from.to_le_bytes());
        b[6..10].copy_from_slice(&self.not_valid_after.to_le_bytes());
        b[10..].copy_from_slice(&self.signature);
        b
    }

    /// Reads the 74 wire bytes. Every byte string decodes; whether it is
    /// acceptable is [`Certificate::verify`]'s question.
    pub fn decode(b: &[u8; CERT_LEN]) -> Self {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[10..]);
        Certificate {
            version: u16::from_le_bytes([b[0], b[1]]),
            valid_from: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            not_valid_after: u32::from_le_bytes([b[6], b[7], b[8], b[9]]),
            signature,
        }
    }

    /// Checks the version and the signature only, not the time: for a
    /// server loading a certificate signed elsewhere.
    pub fn verify_signature(
        &self,
        authority: &AuthorityPublicKey,
        server_static_xonly: &[u8; 32],
    ) -> Result<(), CertError> {
        if self.version != CERT_VERSION {
            return Err(CertError::BadVersion(self.version));
        }
        let sig =
            schnorr::Signature::from_slice(&self.signature).map_err(|_| CertError::BadSignature)?;
        secp()
            .verify_schnorr(&sig, &self.message(server_static_xonly), authority.xonly())
            .map_err(|_| CertError::BadSignature)
    }

    /// Checks the version, that `now` is within the window widened by
    /// `leeway` seconds each side, and the signature.
    pub fn verify(
        &self,
        authority: &AuthorityPublicKey,
        server_static_xonly: &[u8; 32],
        now_unix_secs: u32,
        leeway: u32,
    ) -> Result<(), CertError> {
        if self.version != CERT_VERSION {
            return Err(CertError::BadVersion(self.version));
        }
        if now_unix_secs < self.valid_from.saturating_sub(leeway) {
            return Err(CertError::NotYetValid {
                valid_from: self.valid_from,
                now: now_unix_secs,
            });
        }
        if now_unix_secs > self.not_valid_after.saturating_add(leeway) {
            return Err(CertError::Expired {
                not_valid_after: self.not_valid_after,
                now: now_unix_secs,
            });
        }
        self.verify_signature(authority, server_static_xonly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::StaticKeypair;

    fn setup() -> (AuthorityKeypair, [u8; 32], Certificate) {
        let a = AuthorityKeypair::generate().unwrap();
        let s = StaticKeypair::generate().unwrap().public_xonly();
        let c = Certificate::sign(&a, &s, 1_000, 2_000).unwrap();
        (a, s, c)
    }

    #[test]
    fn encode_decode_round_trip() {
        let (_, _, c) = setup();
        let b = c.encode();
        assert_eq!(&b[..10], &[0, 0, 0xe8, 0x03, 0, 0, 0xd0, 0x07, 0, 0]);
        assert_eq!(Certificate::decode(&b), c);
    }

    #[test]
    fn window_and_leeway() {
        let (a, s, c) = setup();
        let pk = a.public_key();
        for now in [990, 1_000, 1_500, 2_000, 2_010] {
            assert_eq!(c.verify(&pk, &s, now, CERT_LEEWAY_SECS), Ok(()), "{now}");
        }
        assert_eq!(
            c.verify(&pk, &s, 989, CERT_LEEWAY_SECS),
            Err(CertError::NotYetValid {
                valid_from: 1_000,
                now: 989
            })
        );
        assert_eq!(
            c.verify(&pk, &s, 2_011, CERT_LEEWAY_SECS),
            Err(CertError::Expired {
                not_valid_after: 2_000,
                now: 2_011
            })
        );
        assert!(c.verify(&pk, &s, 999, 0).is_err());
        assert!(c.verify(&pk, &s, 1_000, 0).is_ok());
    }

    #[test]
    fn wrong_authority_key_version_or_signature() {
        let (_, s, c) = setup();
        let other = AuthorityKeypair::generate().unwrap().public_key();
        assert_eq!(
            c.verify(&other, &s, 1_500, CERT_LEEWAY_SECS),
            Err(CertError::BadSignature)
        );
        let (a, s, c) = setup();
        let pk = a.public_key();
        let mut wrong_key = s;
        wrong_key[0] ^= 1;
        assert_eq!(
            c.verify(&pk, &wrong_key, 1_500, CERT_LEEWAY_SECS),
            Err(CertError::BadSignature)
        );
        let mut v1 = c;
        v1.version = 1;
        assert_eq!(
            v1.verify(&pk, &s, 1_500, CERT_LEEWAY_SECS),
            Err(CertError::BadVersion(1))
        );
        // The window is signed: stretching it breaks the signature.
        let mut longer = c;
        longer.not_valid_after += 1;
        assert_eq!(
            longer.verify(&pk, &s, 1_500, CERT_LEEWAY_SECS),
            Err(CertError::BadSignature)
        );
        let mut bad_sig = c;
        bad_sig.signature[63] ^= 0x80;
        assert_eq!(
            bad_sig.verify_signature(&pk, &s),
            Err(CertError::BadSignature)
        );
    }
}
