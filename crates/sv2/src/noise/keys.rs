//! Key pairs: the pool authority's (signs certificates) and the server's
//! long-lived static key (proves, through the handshake, that the server
//! holds a certified key).

use std::fmt;
use std::str::FromStr;

use bitcoin::base58;
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey};

use super::{NoiseError, random_secret_key, secp};

/// The version prefix of the authority key's text form (spec §4.7: a LE
/// u16, currently 1).
const AUTHORITY_KEY_PREFIX: [u8; 2] = [1, 0];

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base58, or the checksum is wrong.
    #[error("authority key is not valid base58check")]
    Base58,
    /// Decoded to the wrong number of bytes.
    #[error("authority key has {0} bytes, expected 34 (2-byte prefix and 32-byte key)")]
    Length(usize),
    /// The version prefix is not `[1, 0]`.
    #[error("authority key has version prefix {0:?}, expected [1, 0]")]
    Prefix([u8; 2]),
    /// The 32 bytes are not the x coordinate of a curve point.
    #[error("not a valid x-only secp256k1 public key")]
    PublicKey,
    /// The 32 bytes are zero or not below the curve order.
    #[error("not a valid secp256k1 secret key")]
    SecretKey,
}

/// The pool authority's public key: what miners configure to trust a pool.
/// Its text form (spec §4.7) is base58check of `[1, 0] ‖ x-only key`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityPublicKey(XOnlyPublicKey);

impl AuthorityPublicKey {
    /// From the 32-byte x-only key.
    pub fn from_bytes(b: &[u8; 32]) -> Result<Self, KeyError> {
        XOnlyPublicKey::from_slice(b)
            .map(AuthorityPublicKey)
            .map_err(|_| KeyError::PublicKey)
    }

    /// The 32-byte x-only key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.serialize()
    }

    pub(crate) fn xonly(&self) -> &XOnlyPublicKey {
        &self.0
    }
}

impl fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 34];
        raw[..2].copy_from_slice(&AUTHORITY_KEY_PREFIX);
        raw[2..].copy_from_slice(&self.0.serialize());
        base58::encode_check_to_fmt(f, &raw)
    }
}

impl fmt::Debug for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityPublicKey({self})")
    }
}

impl FromStr for AuthorityPublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let raw = base58::decode_check(s.trim()).map_err(|_| KeyError::Base58)?;
        let raw: [u8; 34] = raw
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(raw.len()))?;
        let prefix = [raw[0], raw[1]];
        if prefix != AUTHORITY_KEY_PREFIX {
            return Err(KeyError::Prefix(prefix));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[2..]);
        AuthorityPublicKey::from_bytes(&key)
    }
}

fn keypair_from_secret(b: &[u8; 32]) -> Result<Keypair, KeyError> {
    let sk = SecretKey::from_slice(b).map_err(|_| KeyError::SecretKey)?;
    Ok(Keypair::from_secret_key(secp(), &sk))
}

/// The pool authority's key pair. Only needed where certificates are
/// signed; servers can run from a static key and a certificate signed
/// elsewhere.
#[derive(Clone)]
pub struct AuthorityKeypair(Keypair);

impl AuthorityKeypair {
    /// A new random key pair.
    pub fn generate() -> Result<Self, NoiseError> {
        Ok(AuthorityKeypair(Keypair::from_secret_key(
            secp(),
            &random_secret_key()?,
        )))
    }

    /// From the 32-byte secret key.
    pub fn from_secret_bytes(b: &[u8; 32]) -> Result<Self, KeyError> {
        keypair_from_secret(b).map(AuthorityKeypair)
    }

    /// The 32-byte secret key, for storing it.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.secret_bytes()
    }

    /// The public key miners configure.
    pub fn public_key(&self) -> AuthorityPublicKey {
        AuthorityPublicKey(self.0.x_only_public_key().0)
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.0
    }
}

impl fmt::Debug for AuthorityKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityKeypair({}, secret hidden)", self.public_key())
    }
}

/// A server's long-lived static key pair: the key the certificate names.
#[derive(Clone)]
pub struct StaticKeypair(Keypair);

impl StaticKeypair {
    /// A new random key pair.
    pub fn generate() -> Result<Self, NoiseError> {
        Ok(StaticKeypair(Keypair::from_secret_key(
            secp(),
            &random_secret_key()?,
        )))
    }

    /// From the 32-byte secret key.
    pub fn from_secret_bytes(b: &[u8; 32]) -> Result<Self, KeyError> {
        keypair_from_secret(b).map(StaticKeypair)
    }

    /// The 32-byte secret key, for storing it.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.secret_bytes()
    }

    /// The x-only public key: the bytes a certificate signs. The handshake
    /// carries the full key (ElligatorSwift-encoded) and the peer drops the
    /// parity, so no parity normalisation is needed here.
    pub fn public_xonly(&self) -> [u8; 32] {
        self.0.x_only_public_key().0.serialize()
    }

    pub(crate) fn secret_key(&self) -> SecretKey {
        self.0.secret_key()
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticKeypair(")?;
        for b in self.public_xonly() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ", secret hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sv2-spec §4.7.1.
    const SPEC_RAW: [u8; 32] = [
        118, 99, 112, 0, 151, 156, 28, 17, 175, 12, 48, 11, 205, 140, 127, 228, 134, 16, 252, 233,
        185, 193, 30, 61, 174, 227, 90, 224, 176, 138, 116, 85,
    ];
    const SPEC_TEXT: &str = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh";

    #[test]
    fn spec_4_7_1_vector_both_ways() {
        let k = AuthorityPublicKey::from_bytes(&SPEC_RAW).unwrap();
        assert_eq!(k.to_string(), SPEC_TEXT);
        let parsed: AuthorityPublicKey = SPEC_TEXT.parse().unwrap();
        assert_eq!(parsed, k);
        assert_eq!(parsed.to_bytes(), SPEC_RAW);
    }

    #[test]
    fn bad_text_forms_are_refused() {
        // Last character changed: checksum fails.
        let bad = format!("{}i", &SPEC_TEXT[..SPEC_TEXT.len() - 1]);
        assert_eq!(bad.parse::<AuthorityPublicKey>(), Err(KeyError::Base58));
        // Right checksum, wrong prefix.
        let mut raw = vec![2u8, 0];
        raw.extend_from_slice(&SPEC_RAW);
        let s = base58::encode_check(&raw);
        assert_eq!(
            s.parse::<AuthorityPublicKey>(),
            Err(KeyError::Prefix([2, 0]))
        );
        // Right checksum, too short.
        let s = base58::encode_check(&raw[..33]);
        assert_eq!(s.parse::<AuthorityPublicKey>(), Err(KeyError::Length(33)));
    }

    #[test]
    fn generated_keys_round_trip_through_secret_bytes() {
        let a = AuthorityKeypair::generate().unwrap();
        let b = AuthorityKeypair::from_secret_bytes(&a.secret_bytes()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let text = a.public_key().to_string();
        assert_eq!(text.parse::<AuthorityPublicKey>().unwrap(), a.public_key());
        let secret_hex: String = a
            .secret_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !format!("{a:?}").contains(&secret_hex),
            "Debug hides the secret"
        );
        let s = StaticKeypair::generate().unwrap();
        let s2 = StaticKeypair::from_secret_bytes(&s.secret_bytes()).unwrap();
        assert_eq!(s.public_xonly(), s2.public_xonly());
        assert_eq!(
            StaticKeypair::from_secret_bytes(&[0u8; 32]).unwrap_err(),
            KeyError::SecretKey
        );
    }
}
