//! `sluice keygen` and `sluice cert`: the Stratum V2 authority key pair and
//! a server certificate signed by it, as small TOML files.
//!
//! The text forms are the ones the reference implementation's config files
//! use, so keys move between the two: the authority public key is
//! base58check of `[1, 0] ‖ x-only key` (spec §4.7), a secret key
//! base58check of its 32 bytes. Splitting the two steps lets an operator
//! keep the authority secret off the server: sign a certificate on one
//! machine, copy only the certificate file (which holds the server's own
//! key, not the authority's) to the pool.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use bitcoin::base58;
use serde::Deserialize;
use sluice_sv2::noise::{
    AuthorityKeypair, AuthorityPublicKey, Certificate, ResponderConfig, StaticKeypair,
};

/// An authority key file, as `sluice keygen` writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityFile {
    /// base58check of the 32-byte secret key.
    authority_secret_key: String,
    /// base58check of `[1, 0] ‖ x-only public key`.
    authority_public_key: String,
}

/// A server identity file, as `sluice cert` writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    /// base58check of the server's static secret key.
    server_secret_key: String,
    /// The authority that signed the certificate.
    authority_public_key: String,
    /// First second of validity (Unix time).
    valid_from: u32,
    /// Last second of validity (Unix time).
    not_valid_after: u32,
    /// The 64-byte BIP 340 signature, hex.
    signature: String,
}

fn secret_text(b: &[u8; 32]) -> String {
    base58::encode_check(b)
}

fn secret_from_text(s: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let raw = base58::decode_check(s.trim()).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    raw.try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("{what}: {} bytes, not 32", v.len()))
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex<const N: usize>(s: &str, what: &str) -> anyhow::Result<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        bail!("{what}: expected {} hex digits", 2 * N);
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .with_context(|| format!("{what}: not hex"))?;
    }
    Ok(out)
}

/// Writes `text` to `path` readable by its owner only (it holds a secret);
/// refuses to overwrite.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The text of an authority key file.
pub fn authority_file_text(kp: &AuthorityKeypair) -> String {
    format!(
        "# sluice Stratum V2 authority key pair (`sluice keygen`). Keep this\n\
         # file secret: whoever holds it can sign certificates for your pool.\n\
         # Miners and proxies configure the public key.\n\
         authority_secret_key = \"{}\"\n\
         authority_public_key = \"{}\"\n",
        secret_text(&kp.secret_bytes()),
        kp.public_key()
    )
}

/// `sluice keygen`: a new authority key pair written to `out`; returns the
/// public key for the operator to hand out.
pub fn keygen(out: &Path) -> anyhow::Result<AuthorityPublicKey> {
    let kp = AuthorityKeypair::generate()?;
    write_secret(out, &authority_file_text(&kp))?;
    Ok(kp.public_key())
}

/// Reads an authority key file, checking that its two keys belong together.
pub fn load_authority(path: &Path) -> anyhow::Result<AuthorityKeypair> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: AuthorityFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let kp = AuthorityKeypair::from_secret_bytes(&secret_from_text(
        &f.authority_secret_key,
        "authority_secret_key",
    )?)?;
    let public: AuthorityPublicKey = f
        .authority_public_key
        .parse()
        .context("authority_public_key")?;
    if public != kp.public_key() {
        bail!(
            "{}: authority_public_key is not the secret key's public key ({})",
            path.display(),
            kp.public_key()
        );
    }
    Ok(kp)
}

/// The text of a server identity file.
pub fn server_file_text(
    static_key: &StaticKeypair,
    authority: &AuthorityPublicKey,
    cert: &Certificate,
) -> String {
    format!(
        "# sluice Stratum V2 server identity (`sluice cert`): the server's static\n\
         # key and the authority's certificate for it. Secret: holds the\n\
         # server's key (not the authority's).\n\
         server_secret_key = \"{}\"\n\
         authority_public_key = \"{}\"\n\
         valid_from = {}\n\
         not_valid_after = {}\n\
         signature = \"{}\"\n",
        secret_text(&static_key.secret_bytes()),
        authority,
        cert.valid_from,
        cert.not_valid_after,
        hex(&cert.signature)
    )
}

/// `sluice cert`: signs a new server static key (or the one in `server_key`,
/// an earlier identity file being renewed) for `valid_from ..=
/// not_valid_after` and writes the identity file to `out`.
pub fn cert(
    authority: &Path,
    renew: Option<&Path>,
    valid_from: u32,
    not_valid_after: u32,
    out: &Path,
) -> anyhow::Result<Certificate> {
    if not_valid_after < valid_from {
        bail!("the certificate would end before it starts");
    }
    let kp = load_authority(authority)?;
    let static_key = match renew {
        Some(p) => load_server_key(p)?,
        None => StaticKeypair::generate()?,
    };
    let cert = Certificate::sign(&kp, &static_key.public_xonly(), valid_from, not_valid_after)?;
    write_secret(out, &server_file_text(&static_key, &kp.public_key(), &cert))?;
    Ok(cert)
}

fn read_server_file(path: &Path) -> anyhow::Result<ServerFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn load_server_key(path: &Path) -> anyhow::Result<StaticKeypair> {
    let f = read_server_file(path)?;
    Ok(StaticKeypair::from_secret_bytes(&secret_from_text(
        &f.server_secret_key,
        "server_secret_key",
    )?)?)
}

/// Reads a server identity file into what the handshake needs, checking
/// the certificate's signature against the authority it names (and, when
/// given, the authority the operator expects).
pub fn load_server(
    path: &Path,
    expect: Option<&AuthorityPublicKey>,
) -> anyhow::Result<(ResponderConfig, Certificate)> {
    let f = read_server_file(path)?;
    let static_key = StaticKeypair::from_secret_bytes(&secret_from_text(
        &f.server_secret_key,
        "server_secret_key",
    )?)?;
    let authority: AuthorityPublicKey = f
        .authority_public_key
        .parse()
        .context("authority_public_key")?;
    if let Some(e) = expect
        && *e != authority
    {
        bail!("{}: signed by {authority}, not {e}", path.display());
    }
    let cert = Certificate {
        version: sluice_sv2::noise::CERT_VERSION,
        valid_from: f.valid_from,
        not_valid_after: f.not_valid_after,
        signature: unhex::<64>(&f.signature, "signature")?,
    };
    let config = ResponderConfig::from_signed(&static_key, cert, &authority)
        .with_context(|| format!("{}: certificate", path.display()))?;
    Ok((config, cert))
}

/// The current Unix time in seconds (0 if the clock is before 1970; past
/// 2106 it saturates).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_input() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex::<4>("0001abff", "x").unwrap(), b);
        assert!(unhex::<4>("0001abf", "x").is_err());
        assert!(unhex::<4>("0001abfg", "x").is_err());
    }

    #[test]
    fn secret_text_round_trip() {
        let b = [7u8; 32];
        assert_eq!(secret_from_text(&secret_text(&b), "k").unwrap(), b);
        assert!(secret_from_text("notbase58!", "k").is_err());
    }
}
