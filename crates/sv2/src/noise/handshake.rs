//! The Noise SymmetricState shared by both roles: the handshake hash `h`,
//! the chaining key `ck`, and the current handshake cipher.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::cipher::CipherState;
use super::{MAC_LEN, NoiseError};

/// The protocol name; its hash seeds both `ck` and `h`.
const PROTOCOL_NAME: &[u8] = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256";

pub(crate) struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
    k: Option<CipherState>,
}

/// HMAC-SHA256 with a 32-byte key. HMAC pads short keys with zeros to the
/// block size, so padding here gives the same MAC and lets the
/// infallible fixed-size constructor be used.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Noise HKDF with two outputs.
fn hkdf2(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let temp = hmac(ck, &[ikm]);
    let out1 = hmac(&temp, &[&[1]]);
    let out2 = hmac(&temp, &[&out1, &[2]]);
    (out1, out2)
}

impl SymmetricState {
    /// InitializeSymmetric, then the (empty) prologue. The reference, and
    /// so the wire, sets `ck = SHA256(name)` and `h = SHA256(ck)`: the
    /// empty prologue's MixHash is what makes `h` differ from `ck`.
    pub(crate) fn new() -> Self {
        let ck: [u8; 32] = Sha256::digest(PROTOCOL_NAME).into();
        let h: [u8; 32] = Sha256::digest(ck).into();
        SymmetricState { h, ck, k: None }
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.k = Some(CipherState::new(&k));
    }

    /// EncryptAndHash in place: `buf` becomes ciphertext, the returned tag
    /// follows it on the wire, and both go into `h`. Only called once a key
    /// is set (every encrypted field of NX follows a MixKey).
    pub(crate) fn encrypt_and_hash(&mut self, buf: &mut [u8]) -> Result<[u8; MAC_LEN], NoiseError> {
        let h = self.h;
        let k = self.k.as_mut().ok_or(NoiseError::Failed)?;
        let tag = k.encrypt(&h, buf)?;
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(&*buf);
        d.update(tag);
        self.h = d.finalize().into();
        Ok(tag)
    }

    /// DecryptAndHash in place; `h` absorbs the ciphertext and tag.
    pub(crate) fn decrypt_and_hash(
        &mut self,
        buf: &mut [u8],
        tag: &[u8; MAC_LEN],
    ) -> Result<(), NoiseError> {
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(&*buf);
        d.update(tag);
        let next_h = d.finalize().into();
        let h = self.h;
        let k = self.k.as_mut().ok_or(NoiseError::Failed)?;
        k.decrypt(&h, buf, tag)?;
        self.h = next_h;
        Ok(())
    }

    /// Split: the first key encrypts initiator to responder.
    pub(crate) fn split(&self) -> (CipherState, CipherState) {
        let (k1, k2) = hkdf2(&self.ck, &[]);
        (CipherState::new(&k1), CipherState::new(&k2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_name_hash_matches_the_reference_constant() {
        // noise_sv2's NOISE_HASHED_PROTOCOL_NAME_CHACHA.
        let expected = [
            46, 180, 120, 129, 32, 142, 158, 238, 31, 102, 159, 103, 198, 110, 231, 14, 169, 234,
            136, 9, 13, 80, 63, 232, 48, 220, 75, 200, 62, 41, 191, 16,
        ];
        assert_eq!(SymmetricState::new().ck, expected);
    }

    #[test]
    fn padded_key_hmac_equals_variable_key_hmac() {
        // RFC 4231 test case 2 uses a 4-byte key; ours pads 32-byte keys the
        // same way HMAC pads any short key, so check padding equivalence
        // against the variable-length constructor.
        let key = [0x0bu8; 32];
        let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        reference.update(b"Hi There");
        let want: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(hmac(&key, &[b"Hi ", b"There"]), want);
    }

    #[test]
    fn encrypt_decrypt_and_hash_agree() {
        let mut a = SymmetricState::new();
        let mut b = SymmetricState::new();
        a.mix_key(&[5; 32]);
        b.mix_key(&[5; 32]);
        let mut m = *b"static key bytes";
        let tag = a.encrypt_and_hash(&mut m).unwrap();
        b.decrypt_and_hash(&mut m, &tag).unwrap();
        assert_eq!(&m, b"static key bytes");
        assert_eq!(a.h, b.h);
        let mut m2 = *b"x";
        let tag2 = a.encrypt_and_hash(&mut m2).unwrap();
        m2[0] ^= 1;
        let h_before = b.h;
        assert!(b.decrypt_and_hash(&mut m2, &tag2).is_err());
        assert_eq!(b.h, h_before);
    }
}
