//! The initiator (client) side of the handshake.

use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use bitcoin::secp256k1::{PublicKey, SecretKey};

use super::cert::{CERT_LEEWAY_SECS, CERT_LEN, Certificate};
use super::handshake::SymmetricState;
use super::keys::AuthorityPublicKey;
use super::transport::Transport;
use super::{
    ACT1_LEN, ACT2_LEN, ELLSWIFT_LEN, MAC_LEN, NoiseError, random_secret_key, random32, secp,
};

/// A client's handshake: [`Initiator::act1`] goes to the server, its
/// 234-byte answer goes to [`Initiator::finish`].
pub struct Initiator {
    sym: SymmetricState,
    e_secret: SecretKey,
    e_ellswift: ElligatorSwift,
    authority: Option<AuthorityPublicKey>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// A handshake with a fresh ephemeral key. With `Some(authority)` the
    /// server's certificate must be signed by that key and current; with
    /// `None` any server is accepted, which gives encryption without
    /// authentication: only for tests and links already trusted.
    pub fn new(authority: Option<AuthorityPublicKey>) -> Result<Self, NoiseError> {
        let e_secret = random_secret_key()?;
        // Randomised encoding, so the same key never looks the same twice
        // on the wire (the point of ElligatorSwift).
        let e_ellswift = ElligatorSwift::from_seckey(secp(), e_secret, Some(random32()?));
        let mut sym = SymmetricState::new();
        sym.mix_hash(&e_ellswift.to_array());
        // The empty payload of act 1, hashed with no key yet.
        sym.mix_hash(&[]);
        Ok(Initiator {
            sym,
            e_secret,
            e_ellswift,
            authority,
        })
    }

    /// The 64 bytes to send first.
    pub fn act1(&self) -> [u8; ACT1_LEN] {
        self.e_ellswift.to_array()
    }

    /// Reads the server's answer at time `now_unix_secs`, checks its
    /// certificate (see [`Initiator::new`]) and returns the transport.
    pub fn finish(
        mut self,
        act2: &[u8; ACT2_LEN],
        now_unix_secs: u32,
    ) -> Result<Transport, NoiseError> {
        let (re, rest) = act2.split_at(ELLSWIFT_LEN);
        let (enc_s, enc_cert) = rest.split_at(ELLSWIFT_LEN + MAC_LEN);

        let mut re_bytes = [0u8; ELLSWIFT_LEN];
        re_bytes.copy_from_slice(re);
        let re = ElligatorSwift::from_array(re_bytes);
        self.sym.mix_hash(&re_bytes);
        let ee = ElligatorSwift::shared_secret(
            self.e_ellswift,
            re,
            self.e_secret,
            ElligatorSwiftParty::A,
            None,
        );
        self.sym.mix_key(&ee.to_secret_bytes());

        let mut rs_bytes = [0u8; ELLSWIFT_LEN];
        rs_bytes.copy_from_slice(&enc_s[..ELLSWIFT_LEN]);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&enc_s[ELLSWIFT_LEN..]);
        self.sym.decrypt_and_hash(&mut rs_bytes, &tag)?;
        let rs = ElligatorSwift::from_array(rs_bytes);
        let es = ElligatorSwift::shared_secret(
            self.e_ellswift,
            rs,
            self.e_secret,
            ElligatorSwiftParty::A,
            None,
        );
        self.sym.mix_key(&es.to_secret_bytes());

        let mut cert_bytes = [0u8; CERT_LEN];
        cert_bytes.copy_from_slice(&enc_cert[..CERT_LEN]);
        tag.copy_from_slice(&enc_cert[CERT_LEN..]);
        self.sym.decrypt_and_hash(&mut cert_bytes, &tag)?;

        if let Some(authority) = &self.authority {
            let rs_xonly = PublicKey::from_ellswift(rs)
                .x_only_public_key()
                .0
                .serialize();
            Certificate::decode(&cert_bytes).verify(
                authority,
                &rs_xonly,
                now_unix_secs,
                CERT_LEEWAY_SECS,
            )?;
        }

        let (send, recv) = self.sym.split();
        Ok(Transport::new(send, recv))
    }
}
