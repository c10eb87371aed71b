//! Pool URLs: `stratum+tcp://HOST:PORT` for Stratum V1 and
//! `stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY` for Stratum V2, where the
//! key is the pool's authority public key in its base58check text form
//! (the form `sluice keygen` prints and the reference tools use). A V2 URL
//! without its key is refused: the key is what makes the encrypted
//! connection worth having.

use serde::{Deserialize, Serialize};
use sluice_sv2::noise::AuthorityPublicKey;

/// Where a pool is, and which protocol it speaks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Some` for a Stratum V2 pool: the authority key its certificate
    /// must be signed by.
    pub authority: Option<AuthorityPublicKey>,
}

impl PoolUrl {
    /// A Stratum V1 pool.
    pub fn v1(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            authority: None,
        }
    }

    /// A Stratum V2 pool whose certificate `authority` signs.
    pub fn v2(host: impl Into<String>, port: u16, authority: AuthorityPublicKey) -> Self {
        Self {
            host: host.into(),
            port,
            authority: Some(authority),
        }
    }

    /// `host:port`, for connecting.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a pool URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad pool URL {url:?}: {reason} (expected stratum+tcp://host:port or stratum2+tcp://host:port/AUTHORITY_PUBKEY)"
)]
pub struct UrlError {
    url: String,
    reason: &'static str,
}

impl std::str::FromStr for PoolUrl {
    type Err = UrlError;
    fn from_str(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        let (v2, rest) = if let Some(r) = url.strip_prefix("stratum2+tcp://") {
            (true, r)
        } else if let Some(r) = url
            .strip_prefix("stratum+tcp://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            (false, r)
        } else {
            return Err(err("scheme must be stratum+tcp or stratum2+tcp"));
        };
        let (hostport, key) = match rest.split_once('/') {
            Some((hp, k)) => (hp, k.trim_end_matches('/')),
            None => (rest, ""),
        };
        let authority = match (v2, key.is_empty()) {
            (true, true) => return Err(err("a V2 URL needs the pool's authority public key")),
            (true, false) => Some(
                key.parse::<AuthorityPublicKey>()
                    .map_err(|_| err("the authority public key does not parse"))?,
            ),
            (false, false) => return Err(err("a V1 URL has no path")),
            (false, true) => None,
        };
        let (host, port) = hostport.rsplit_once(':').ok_or(err("missing port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(err("bad port"))?;
        Ok(PoolUrl {
            host: host.to_owned(),
            port,
            authority,
        })
    }
}

impl std::fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.authority.is_some() {
            "stratum2+tcp"
        } else {
            "stratum+tcp"
        };
        write!(f, "{scheme}://{}", self.addr())?;
        if let Some(k) = &self.authority {
            write!(f, "/{k}")?;
        }
        Ok(())
    }
}

impl Serialize for PoolUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoolUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_urls_parse_and_print_back() {
        let key = sluice_sv2::noise::AuthorityKeypair::generate()
            .unwrap()
            .public_key();
        for (text, want) in [
            (
                "stratum+tcp://pool.example:3333",
                PoolUrl::v1("pool.example", 3333),
            ),
            ("stratum+tcp://[::1]:3333", PoolUrl::v1("::1", 3333)),
            (
                &format!("stratum2+tcp://127.0.0.1:3336/{key}"),
                PoolUrl::v2("127.0.0.1", 3336, key),
            ),
        ] {
            let url: PoolUrl = text.parse().unwrap();
            assert_eq!(url, want);
            assert_eq!(url.to_string(), text);
        }
        // Older configs wrote a bare tcp:// or a trailing slash.
        assert_eq!(
            "tcp://h:1/".parse::<PoolUrl>().unwrap(),
            PoolUrl::v1("h", 1)
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (text, why) in [
            ("http://h:1", "scheme"),
            ("stratum+tcp://h", "missing port"),
            ("stratum+tcp://:1", "missing host"),
            ("stratum+tcp://h:0", "bad port"),
            ("stratum+tcp://h:1/abc", "no path"),
            ("stratum2+tcp://h:1", "authority public key"),
            ("stratum2+tcp://h:1/", "authority public key"),
            ("stratum2+tcp://h:1/notakey", "does not parse"),
        ] {
            let e = text.parse::<PoolUrl>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
