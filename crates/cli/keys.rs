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

use std::path::Path;

use anyhow::{Context, bail};
use bitcoin::base58;
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use serde::Deserialize;
use sluice_sv2::noise::{
    AuthorityKeypair, AuthorityPublicKey, Certificate, ResponderConfig, StaticKeypair,
};

/// An authority key file, as `sluice keygen` writes it. No `Debug`: it
/// holds a secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityFile {
    /// base58check of the 32-byte secret key.
    authority_secret_key: String,
    /// base58check of `[1, 0] ‖ x-only public key`.
    authority_public_key: String,
}

/// A server identity file, as `sluice cert` writes it. No `Debug`: it
/// holds a secret.
#[derive(Deserialize)]
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
    let f: AuthorityFile = read_secret_toml(path)?;
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
        cert.signature.to_lower_hex_string()
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
    read_secret_toml(path)
}

/// Reads a TOML file that holds a secret. Parse errors give the line and
/// the reason but not the text, which could be the secret; a file others
/// can read is warned about, as ssh does for its keys.
fn read_secret_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{} holds a secret key but others can read it (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|r| text[..r.start.min(text.len())].lines().count().max(1));
        match line {
            Some(l) => anyhow::anyhow!("{}: line {l}: {}", path.display(), e.message()),
            None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
        }
    })
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
    load_identity(path, expect).map(|(config, cert, _)| (config, cert))
}

/// [`load_server`], with the authority that signed the certificate (the
/// key miners configure).
pub fn load_identity(
    path: &Path,
    expect: Option<&AuthorityPublicKey>,
) -> anyhow::Result<(ResponderConfig, Certificate, AuthorityPublicKey)> {
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
        signature: <[u8; 64]>::from_hex(f.signature.trim())
            .map_err(|e| anyhow::anyhow!("{}: signature: {e}", path.display()))?,
    };
    let config = ResponderConfig::from_signed(&static_key, cert, &authority)
        .with_context(|| format!("{}: certificate", path.display()))?;
    // Clients would refuse every handshake; better to refuse to start.
    let now = unix_now();
    if now > cert.not_valid_after {
        bail!(
            "{}: the certificate expired at {} (now {now}); renew it with `sluice cert --renew`",
            path.display(),
            cert.not_valid_after
        );
    }
    if cert.not_valid_after - now < EXPIRY_WARNING_SECS {
        tracing::warn!(
            "{}: the certificate expires in {} h; renew it with `sluice cert --renew`",
            path.display(),
            (cert.not_valid_after - now) / 3600
        );
    }
    Ok((config, cert, authority))
}

pub use sluice_engine::local::unix_now;

/// The identity a V2 listener serves: from a `sluice cert` file, or made
/// at start from an authority key file (a fresh static key, signed for a
/// year from an hour ago).
pub fn server_identity(
    identity: Option<&Path>,
    authority_key: Option<&Path>,
) -> anyhow::Result<(ResponderConfig, AuthorityPublicKey)> {
    match (identity, authority_key) {
        (Some(f), _) => load_identity(f, None).map(|(c, _, a)| (c, a)),
        (None, Some(f)) => {
            let kp = load_authority(f)?;
            let from = unix_now().saturating_sub(DEFAULT_BACKDATE_SECS);
            let config = ResponderConfig::new(
                &kp,
                &StaticKeypair::generate()?,
                from,
                from.saturating_add(365 * 86_400),
            )?;
            Ok((config, kp.public_key()))
        }
        (None, None) => bail!("a V2 listener needs an identity or an authority key"),
    }
}

/// A server starting with less validity than this left says so.
const EXPIRY_WARNING_SECS: u32 = 14 * 86_400;

/// How far back `sluice cert` starts a certificate by default: clients
/// allow only seconds of clock error, and a miner whose clock runs a few
/// minutes slow would refuse a certificate valid from "now".
pub const DEFAULT_BACKDATE_SECS: u32 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_round_trip() {
        let b = [7u8; 32];
        assert_eq!(secret_from_text(&secret_text(&b), "k").unwrap(), b);
        assert!(secret_from_text("notbase58!", "k").is_err());
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        let d = std::env::temp_dir().join(format!("sluice-keys-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("bad.toml");
        std::fs::write(&p, "authority_secret_key = \"SECRETSECRET\n").unwrap();
        let err = format!("{:#}", load_authority(&p).err().unwrap());
        assert!(!err.contains("SECRETSECRET"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn an_expired_certificate_is_refused_at_load() {
        let d = std::env::temp_dir().join(format!("sluice-keys-exp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let auth = d.join("a.toml");
        keygen(&auth).unwrap();
        let server = d.join("s.toml");
        cert(&auth, None, 1_000, 2_000, &server).unwrap();
        let err = format!("{:#}", load_server(&server, None).err().unwrap());
        assert!(err.contains("expired"), "{err}");
    }
}
