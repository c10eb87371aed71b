//! Who a coinbase pays: addresses checked against the pool's network, solo
//! usernames (`ADDRESS` or `ADDRESS.WORKER`), and the outputs for a value.

use std::str::FromStr;

use bitcoin::address::{Address, NetworkUnchecked};

pub use bitcoin::Network;

use crate::coinbase::TxOut;

/// Why an address or username cannot be paid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PayoutError {
    /// Not an address at all.
    #[error("{0:?} is not a Bitcoin address")]
    NotAnAddress(String),
    /// An address of another network.
    #[error("{address:?} is not a {network} address")]
    WrongNetwork {
        /// The address.
        address: String,
        /// The pool's network.
        network: Network,
    },
    /// A network name the pool does not know.
    #[error("unknown network {0:?}: use mainnet, testnet4, testnet3, signet or regtest")]
    UnknownNetwork(String),
    /// The pool fee is not a fraction below 1.
    #[error("pool fee {0} must be at least 0 and below 1")]
    BadFee(f64),
}

/// Parses a network name as operators write it.
pub fn parse_network(name: &str) -> Result<Network, PayoutError> {
    Ok(match name {
        "mainnet" | "main" | "bitcoin" => Network::Bitcoin,
        "testnet4" => Network::Testnet4,
        "testnet3" | "testnet" | "test" => Network::Testnet,
        "signet" => Network::Signet,
        "regtest" => Network::Regtest,
        _ => return Err(PayoutError::UnknownNetwork(name.to_owned())),
    })
}

/// The chain name `getblockchaininfo` reports for `net`.
pub fn core_chain(net: Network) -> &'static str {
    match net {
        Network::Bitcoin => "main",
        Network::Testnet => "test",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

/// The output script paying `address`, refused unless it is for `net`.
pub fn address_script(address: &str, net: Network) -> Result<Vec<u8>, PayoutError> {
    let a = Address::<NetworkUnchecked>::from_str(address)
        .map_err(|_| PayoutError::NotAnAddress(address.to_owned()))?;
    let a = a
        .require_network(net)
        .map_err(|_| PayoutError::WrongNetwork {
            address: address.to_owned(),
            network: net,
        })?;
    Ok(a.script_pubkey().into_bytes())
}

/// A solo miner's username, split and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoloUser {
    /// The address part.
    pub address: String,
    /// The worker part, if any.
    pub worker: Option<String>,
    /// The script the coinbase pays.
    pub script: Vec<u8>,
}

/// Parses `ADDRESS` or `ADDRESS.WORKER` (no address form contains a dot).
pub fn solo_user(username: &str, net: Network) -> Result<SoloUser, PayoutError> {
    let (address, worker) = match username.split_once('.') {
        Some((a, w)) => (a, Some(w.to_owned())),
        None => (username, None),
    };
    Ok(SoloUser {
        script: address_script(address, net)?,
        address: address.to_owned(),
        worker,
    })
}

/// The coinbase outputs for `value_sat`: all to `payee`, less `fee` (a
/// fraction) to `pool` when both are given. The fee rounds down, so the
/// miner never gets less than its share.
pub fn outputs(
    value_sat: u64,
    payee: &[u8],
    fee: Option<(f64, &[u8])>,
) -> Result<Vec<TxOut>, PayoutError> {
    let mut out = Vec::with_capacity(2);
    let mut rest = value_sat;
    if let Some((f, pool)) = fee {
        if !(0.0..1.0).contains(&f) {
            return Err(PayoutError::BadFee(f));
        }
        // f64 is exact to 2^53 satoshi, beyond MAX_MONEY.
        let cut = (value_sat as f64 * f).floor() as u64;
        if cut > 0 {
            rest -= cut.min(rest);
            out.push(TxOut {
                value_sat: cut,
                script_pubkey: pool.to_vec(),
            });
        }
    }
    out.insert(
        0,
        TxOut {
            value_sat: rest,
            script_pubkey: payee.to_vec(),
        },
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGTEST_P2WPKH: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    const MAINNET_P2PKH: &str = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
    const MAINNET_P2TR: &str = "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297";
    const TESTNET_P2SH: &str = "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc";

    #[test]
    fn every_address_type_on_its_network() {
        let s = address_script(REGTEST_P2WPKH, Network::Regtest).unwrap();
        assert_eq!(&s[..2], &[0x00, 0x14]);
        let s = address_script(MAINNET_P2PKH, Network::Bitcoin).unwrap();
        assert_eq!(s[0], 0x76);
        let s = address_script(MAINNET_P2TR, Network::Bitcoin).unwrap();
        assert_eq!(&s[..2], &[0x51, 0x20]);
        let s = address_script(TESTNET_P2SH, Network::Testnet4).unwrap();
        assert_eq!(s[0], 0xa9);
    }

    #[test]
    fn a_wrong_network_or_garbage_is_refused_clearly() {
        let e = address_script(MAINNET_P2PKH, Network::Regtest).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{MAINNET_P2PKH:?} is not a regtest address")
        );
        assert!(matches!(
            address_script("bc1qnotreally", Network::Bitcoin),
            Err(PayoutError::NotAnAddress(_))
        ));
        assert!(matches!(
            solo_user("", Network::Bitcoin),
            Err(PayoutError::NotAnAddress(_))
        ));
    }

    #[test]
    fn solo_usernames_split_at_the_dot() {
        let u = solo_user(&format!("{REGTEST_P2WPKH}.rig7"), Network::Regtest).unwrap();
        assert_eq!(u.address, REGTEST_P2WPKH);
        assert_eq!(u.worker.as_deref(), Some("rig7"));
        let u = solo_user(REGTEST_P2WPKH, Network::Regtest).unwrap();
        assert_eq!(u.worker, None);
    }

    #[test]
    fn the_fee_rounds_down_and_the_rest_goes_to_the_miner() {
        let o = outputs(312_500_001, b"miner", Some((0.01, b"pool"))).unwrap();
        assert_eq!(o[0].value_sat + o[1].value_sat, 312_500_001);
        assert_eq!(o[1].value_sat, 3_125_000);
        assert_eq!(o[0].script_pubkey, b"miner");
        assert_eq!(outputs(99, b"m", Some((0.001, b"p"))).unwrap().len(), 1);
        assert_eq!(outputs(99, b"m", None).unwrap()[0].value_sat, 99);
        assert!(outputs(99, b"m", Some((1.0, b"p"))).is_err());
        assert!(outputs(99, b"m", Some((f64::NAN, b"p"))).is_err());
    }

    #[test]
    fn networks_by_name_and_their_core_chain() {
        for (n, c) in [
            ("mainnet", "main"),
            ("testnet4", "testnet4"),
            ("signet", "signet"),
            ("regtest", "regtest"),
        ] {
            assert_eq!(core_chain(parse_network(n).unwrap()), c);
        }
        assert!(parse_network("litecoin").is_err());
    }
}
