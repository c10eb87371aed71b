//! The responder (server) side of the handshake.

use bitcoin::secp256k1::SecretKey;
use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};

use super::cert::{CERT_LEN, Certificate};
use super::handshake::SymmetricState;
use super::keys::{AuthorityKeypair, AuthorityPublicKey, StaticKeypair};
use super::transport::Transport;
use super::{
    ACT1_LEN, ACT2_LEN, ELLSWIFT_LEN, MAC_LEN, NoiseError, random_secret_key, random32, secp,
};

/// What a server needs for every handshake: its static key (with its
/// ElligatorSwift encoding computed once) and its certificate (signed
/// once). Cheap to clone; build it once and share it.
#[derive(Clone)]
pub struct ResponderConfig {
    static_secret: SecretKey,
    static_ellswift: [u8; ELLSWIFT_LEN],
    cert: Certificate,
}

impl std::fmt::Debug for ResponderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderConfig")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl ResponderConfig {
    /// Signs a certificate for `static_key` valid from `valid_from` to
    /// `not_valid_after` (unix seconds, inclusive).
    pub fn new(
        authority: &AuthorityKeypair,
        static_key: &StaticKeypair,
        valid_from: u32,
        not_valid_after: u32,
    ) -> Result<Self, NoiseError> {
        let cert = Certificate::sign(
            authority,
            &static_key.public_xonly(),
            valid_from,
            not_valid_after,
        )?;
        Self::with_certificate(static_key, cert)
    }

    /// From a static key and a certificate signed elsewhere, checking the
    /// signature against `authority` so a mismatched pair fails at start-up
    /// rather than at every client.
    pub fn from_signed(
        static_key: &StaticKeypair,
        cert: Certificate,
        authority: &AuthorityPublicKey,
    ) -> Result<Self, NoiseError> {
        cert.verify_signature(authority, &static_key.public_xonly())?;
        Self::with_certificate(static_key, cert)
    }

    fn with_certificate(static_key: &StaticKeypair, cert: Certificate) -> Result<Self, NoiseError> {
        let static_secret = static_key.secret_key();
        // One random encoding reused for every connection is fine: it
        // travels encrypted, so it cannot link connections.
        let static_ellswift =
            ElligatorSwift::from_seckey(secp(), static_secret, Some(random32()?)).to_array();
        Ok(ResponderConfig {
            static_secret,
            static_ellswift,
            cert,
        })
    }

    /// The certificate sent to clients.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
}

/// One connection's handshake on the server.
pub struct Responder {
    config: ResponderConfig,
    e_secret: SecretKey,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder {
    /// A handshake with a fresh ephemeral key.
    pub fn new(config: &ResponderConfig) -> Result<Self, NoiseError> {
        Ok(Responder {
            config: config.clone(),
            e_secret: random_secret_key()?,
        })
    }

    /// Answers the client's 64 bytes: returns the 234 bytes to send and the
    /// transport. The server authenticates itself here; the client is
    /// anonymous, so nothing in act 1 can be refused.
    pub fn respond(self, act1: &[u8; ACT1_LEN]) -> Result<([u8; ACT2_LEN], Transport), NoiseError> {
        let mut sym = SymmetricState::new();
        sym.mix_hash(act1);
        sym.mix_hash(&[]);
        let re = ElligatorSwift::from_array(*act1);

        let mut out = [0u8; ACT2_LEN];
        let e = ElligatorSwift::from_seckey(secp(), self.e_secret, Some(random32()?));
        let e_bytes = e.to_array();
        out[..ELLSWIFT_LEN].copy_from_slice(&e_bytes);
        sym.mix_hash(&e_bytes);
        let ee = ElligatorSwift::shared_secret(re, e, self.e_secret, ElligatorSwiftParty::B, None);
        sym.mix_key(&ee.to_secret_bytes());

        let (s_field, cert_field) = out[ELLSWIFT_LEN..].split_at_mut(ELLSWIFT_LEN + MAC_LEN);
        let (s_ct, s_tag) = s_field.split_at_mut(ELLSWIFT_LEN);
        s_ct.copy_from_slice(&self.config.static_ellswift);
        s_tag.copy_from_slice(&sym.encrypt_and_hash(s_ct)?);
        let s = ElligatorSwift::from_array(self.config.static_ellswift);
        let es = ElligatorSwift::shared_secret(
            re,
            s,
            self.config.static_secret,
            ElligatorSwiftParty::B,
            None,
        );
        sym.mix_key(&es.to_secret_bytes());

        let (c_ct, c_tag) = cert_field.split_at_mut(CERT_LEN);
        c_ct.copy_from_slice(&self.config.cert.encode());
        c_tag.copy_from_slice(&sym.encrypt_and_hash(c_ct)?);

        let (i_to_r, r_to_i) = sym.split();
        Ok((out, Transport::new(r_to_i, i_to_r)))
    }
}
