//! The configuration file (`sluice run --config FILE`), its validation
//! (`sluice check-config FILE`), and the same structure built from the
//! quick `sluice proxy` / `sluice pool` flags.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sluice_engine::extranonce::Geometry;
use sluice_engine::session::SessionConfig;
use sluice_engine::upstream::PoolUrl;
use sluice_engine::vardiff::VardiffConfig;

/// What this instance does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Aggregate miners into connections to remote pools.
    Proxy,
    /// Build jobs locally (pool-node role) from the synthetic chain.
    Pool,
}

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `proxy` or `pool`.
    pub mode: Mode,
    /// The miner-facing listener.
    #[serde(default)]
    pub listen: ListenConfig,
    /// Share difficulty and vardiff.
    #[serde(default)]
    pub difficulty: DifficultyConfig,
    /// How extranonce space is split.
    #[serde(default)]
    pub extranonce: ExtranonceConfig,
    /// How hashrate is spread over pools (proxy mode).
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Upstream pools, proxy mode (at least one).
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// The pool-node role's chain (pool mode).
    #[serde(default)]
    pub pool_node: PoolNodeConfig,
    /// The HTTP API (JSON, health probes, Prometheus).
    #[serde(default)]
    pub api: ApiConfig,
    /// Per-worker books: store, BTC price, power.
    #[serde(default)]
    pub books: BooksSection,
    /// The block log.
    #[serde(default)]
    pub blocks: BlocksSection,
    /// The Stratum V2 listener (Noise); absent: V1 only.
    #[serde(default)]
    pub v2: V2Section,
    /// The threads that serve connections.
    #[serde(default)]
    pub runtime: RuntimeSection,
}

/// Most threads `runtime.worker_threads` may ask for: far more than any
/// machine this runs on has cores, and few enough that a typo is caught.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The async runtime's threads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Threads that serve miners and pools (1 to 1024); absent: the
    /// `TOKIO_WORKER_THREADS` environment variable if set, else one per
    /// core. Fewer threads wake each other less, so a share costs less
    /// CPU, but one thread answers more miners in turn, so the p99 rises
    /// (the README's "Memory and CPU per share" measures both). Give
    /// each of several instances on one machine a share of its cores.
    pub worker_threads: Option<usize>,
}

impl RuntimeSection {
    /// Why these settings cannot be used, if they cannot.
    fn check(&self) -> Result<(), String> {
        match self.worker_threads {
            Some(n) if !(1..=MAX_WORKER_THREADS).contains(&n) => Err(format!(
                "runtime.worker_threads is {n}: give 1 to {MAX_WORKER_THREADS}, or leave it out"
            )),
            _ => Ok(()),
        }
    }

    /// The runtime these settings describe. Checked here too (not only by
    /// [`Config::validate`]), as tokio would panic on 0.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        self.check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.worker_threads {
            b.worker_threads(n);
        }
        b.enable_all().build()
    }
}

/// Stratum V2 miners: where they connect and the identity they check.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct V2Section {
    /// Address V2 miners connect to (`0.0.0.0:3336`); absent: no V2
    /// listener.
    pub listen: Option<SocketAddr>,
    /// The server identity `sluice cert` wrote (static key and the
    /// authority's certificate): the authority secret stays elsewhere.
    pub identity: Option<std::path::PathBuf>,
    /// Or the authority key file `sluice keygen` wrote: a static key is
    /// made and signed at start, valid for a year.
    pub authority_key: Option<std::path::PathBuf>,
}

/// Where block candidates are recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocksSection {
    /// JSON-lines file every block candidate is written to (fsync'd)
    /// before its miner is answered, with each submission and verdict.
    /// Empty: kept in memory only (a crash forgets them).
    #[serde(default = "default_block_log")]
    pub log: Option<std::path::PathBuf>,
}

fn default_block_log() -> Option<std::path::PathBuf> {
    Some("sluice-blocks.jsonl".into())
}

impl Default for BlocksSection {
    fn default() -> Self {
        Self {
            log: default_block_log(),
        }
    }
}

/// The HTTP API.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to serve on (`127.0.0.1:8080`); absent: no API.
    pub listen: Option<SocketAddr>,
}

/// Books settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BooksSection {
    /// SQLite file the books are snapshotted to; absent: books live in
    /// memory only and start empty after a restart.
    pub store: Option<std::path::PathBuf>,
    /// Seconds between snapshots: the most a crash can lose.
    pub snapshot_interval_secs: f64,
    /// Worker names kept; later names share one "(overflow)" entry.
    pub max_workers: usize,
    /// Hours after which a worker with no connection and no share is
    /// dropped from the books.
    pub forget_after_hours: f64,
    /// Where the BTC price comes from.
    pub price: PriceSection,
    /// Electricity price and machine power.
    pub power: PowerSection,
}

impl Default for BooksSection {
    fn default() -> Self {
        Self {
            store: None,
            snapshot_interval_secs: 10.0,
            max_workers: 100_000,
            forget_after_hours: 24.0,
            price: PriceSection::default(),
            power: PowerSection::default(),
        }
    }
}

/// The BTC price: fixed, or polled from an HTTP feed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceSection {
    /// A fixed price in USD (used when no feed is set).
    pub usd: Option<f64>,
    /// URL returning JSON with the price (http:// or https://).
    pub feed_url: Option<String>,
    /// JSON pointer to the price in the feed's answer (`/bitcoin/usd`);
    /// a number or a numeric string.
    pub feed_pointer: String,
    /// Seconds between polls.
    pub poll_interval_secs: f64,
    /// Seconds after the last good poll when money figures are marked
    /// stale.
    pub max_age_secs: f64,
}

impl Default for PriceSection {
    fn default() -> Self {
        Self {
            usd: None,
            feed_url: None,
            feed_pointer: "/bitcoin/usd".into(),
            poll_interval_secs: 60.0,
            max_age_secs: 600.0,
        }
    }
}

/// Power: the electricity price (flat, by hour, or fed), and per machine
/// class an efficiency or a draw.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerSection {
    /// Electricity price, USD per kWh.
    pub price_usd_per_kwh: f64,
    /// Efficiency (J/TH) of workers no rule matches.
    pub default_efficiency_j_per_th: Option<f64>,
    /// Or their fixed draw, W.
    pub default_watts: Option<f64>,
    /// Rules by worker-name pattern (`*` and `?`); the first match wins.
    /// Each rule is a machine class for the curtailment advice. At most
    /// 4,096 rules.
    pub rules: Vec<PowerRule>,
    /// Time-of-use prices: local hours with their own price (the first
    /// period covering an hour wins; other hours cost `price_usd_per_kwh`).
    pub schedule: Vec<PowerPeriod>,
    /// Local time's offset from UTC for the schedule, hours (-5 for New
    /// York in winter).
    pub utc_offset_hours: f64,
    /// URL returning JSON with the current power price (http:// or
    /// https://); while fresh it overrides the schedule.
    pub feed_url: Option<String>,
    /// JSON pointer to the price (USD per kWh) in the feed's answer.
    pub feed_pointer: String,
    /// Seconds between polls.
    pub poll_interval_secs: f64,
    /// Seconds a fed price counts before the schedule applies again.
    pub max_age_secs: f64,
}

impl Default for PowerSection {
    fn default() -> Self {
        Self {
            price_usd_per_kwh: 0.0,
            default_efficiency_j_per_th: None,
            default_watts: None,
            rules: Vec::new(),
            schedule: Vec::new(),
            utc_offset_hours: 0.0,
            feed_url: None,
            feed_pointer: "/usd_per_kwh".into(),
            poll_interval_secs: 300.0,
            max_age_secs: 3_600.0,
        }
    }
}

/// One time-of-use period.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerPeriod {
    /// First local hour (0–23).
    pub from_hour: u8,
    /// Hour it ends, exclusive (1–24); at or before `from_hour` it runs
    /// past midnight.
    pub to_hour: u8,
    /// Price in the period, USD per kWh.
    pub price_usd_per_kwh: f64,
}

/// Power of the workers whose names match a pattern.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRule {
    /// Machine class shown in the advice (default: the pattern).
    #[serde(default)]
    pub class: Option<String>,
    /// Worker-name pattern, e.g. `farm.s21-*`.
    pub pattern: String,
    /// Efficiency, J/TH (power follows measured hashrate).
    pub efficiency_j_per_th: Option<f64>,
    /// Or a fixed draw, W.
    pub watts: Option<f64>,
    /// The machine's nominal hashrate, TH/s: the advice then shows one
    /// machine of the class at its real size (earnings, power, profit a
    /// day).
    #[serde(default)]
    pub nominal_th_s: Option<f64>,
}

/// How a pool pays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayoutScheme {
    /// Full pay per share (the books' expectation is what is paid).
    #[default]
    Fpps,
    /// Pay per share.
    Pps,
    /// Pay per last N shares (paid on average).
    Pplns,
    /// Solo (only blocks pay).
    Solo,
}

fn power_of(
    what: &str,
    e: Option<f64>,
    w: Option<f64>,
) -> anyhow::Result<Option<sluice_books::Power>> {
    match (e, w) {
        (Some(_), Some(_)) => bail!("{what}: give efficiency_j_per_th or watts, not both"),
        (Some(e), None) => {
            positive(&format!("{what} efficiency_j_per_th"), e)?;
            Ok(Some(sluice_books::Power::EfficiencyJPerTh(e)))
        }
        (None, Some(w)) => {
            positive(&format!("{what} watts"), w)?;
            Ok(Some(sluice_books::Power::Watts(w)))
        }
        (None, None) => Ok(None),
    }
}

/// The pool-node role's pool, as the books and the API name it.
pub const POOL_NODE_NAME: &str = "local synthetic chain";

/// Listener settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Address miners connect to (`0.0.0.0:3333`; port 0 picks one).
    pub address: SocketAddr,
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections per source IP.
    pub max_connections_per_ip: usize,
    /// Seconds a miner has to subscribe and authorize (checked every 5
    /// s, so up to 5 s more).
    pub handshake_timeout_secs: u64,
    /// Seconds without a line before a miner is dropped (checked every 5
    /// s, so up to 5 s more).
    pub idle_timeout_secs: u64,
    /// Seconds a write may block before the miner counts as a slow reader.
    pub write_timeout_secs: u64,
    /// Longest line accepted from a miner, bytes (512 to 4 GiB).
    pub max_line_bytes: usize,
    /// Distinct worker names one connection may authorize (a proxy in
    /// front of sluice passing names through carries many).
    pub max_workers_per_connection: usize,
    /// Worker names all connections from one address may hold at once.
    pub max_workers_per_ip: usize,
    /// Seconds a miner may sit with no pool to take its shares (answered
    /// error 20 meanwhile) before it is disconnected, so that its own
    /// backup pools take over.
    pub no_upstream_grace_secs: f64,
    /// Let several sluice processes listen on the same address (Linux
    /// `SO_REUSEPORT`; the V2 listener too): the kernel spreads new
    /// connections across them, for more miners than one process may hold
    /// open files for.
    pub reuse_port: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 3333)),
            max_connections: 65_536,
            // A farm behind one NAT is normal: thousands of machines from
            // one address. Raise it for bigger farms behind one address.
            max_connections_per_ip: 8_192,
            handshake_timeout_secs: 30,
            idle_timeout_secs: 600,
            write_timeout_secs: 10,
            max_line_bytes: sluice_sv1::DEFAULT_MAX_LINE,
            max_workers_per_connection: 1_024,
            max_workers_per_ip: 16_384,
            no_upstream_grace_secs: 20.0,
            reuse_port: false,
        }
    }
}

/// Difficulty settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DifficultyConfig {
    /// Difficulty of a new connection.
    pub start: f64,
    /// Lowest difficulty (fractional allowed).
    pub min: f64,
    /// Highest difficulty.
    pub max: f64,
    /// Seconds past a job's ntime a share's ntime may be.
    pub ntime_max_forward_secs: u32,
    /// Vardiff.
    pub vardiff: VardiffConfig,
}

impl Default for DifficultyConfig {
    fn default() -> Self {
        Self {
            start: 1024.0,
            min: 0.001,
            max: 1e15,
            ntime_max_forward_secs: 7000,
            vardiff: VardiffConfig::default(),
        }
    }
}

/// Extranonce split.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtranonceConfig {
    /// Bytes of the pool's extranonce2 that name a session (the miner's
    /// extranonce1): 2 allows 65,536 sessions, 3 allows 16.7 million.
    pub session_prefix_bytes: usize,
    /// extranonce2 bytes miners roll. In proxy mode the pool must give at
    /// least `session_prefix_bytes + downstream_extranonce2_size`.
    /// Default: 4 in proxy mode; 8 in pool mode, which leaves room for a
    /// proxy (prefix + 4) in front of the pool.
    pub downstream_extranonce2_size: Option<usize>,
}

impl Default for ExtranonceConfig {
    fn default() -> Self {
        Self {
            session_prefix_bytes: 2,
            downstream_extranonce2_size: None,
        }
    }
}

/// Routing settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Sessions per upstream connection before another is opened.
    pub max_sessions_per_upstream: u64,
    /// Seconds between checks of the work split against the weights.
    pub rebalance_interval_secs: f64,
    /// Allowed gap between a pool's work share and its weight share.
    pub rebalance_tolerance: f64,
    /// Seconds a better pool must stay healthy before sessions return.
    pub failback_after_secs: f64,
    /// Shares waiting to be written to one upstream connection. When a
    /// pool does not keep up and the queue is full, shares are answered
    /// error 20 rather than `true` and dropped. Blocks never wait here.
    /// In pool mode the node's own queue holds 16 times this.
    pub share_queue: usize,
    /// `"weights"` (the configured weights) or `"hashprice"` (toward the
    /// pools that pay more per unit of work, within each pool's floor and
    /// ceiling).
    pub policy: RoutingPolicy,
    /// Window each pool's pay is measured over: `5m`, `1h` or `24h`.
    pub window: String,
    /// Seconds between routing decisions.
    pub decide_interval_secs: f64,
    /// Fraction a pool must pay more by, beyond the noise, to be ranked
    /// ahead (0.02 = 2 %).
    pub margin: f64,
    /// Standard errors the difference must clear (2 ≈ 95 %).
    pub confidence: f64,
    /// Shares in the window before a pool's pay is used.
    pub min_shares: u64,
}

/// Which policy routes hashrate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingPolicy {
    /// The configured weights.
    #[default]
    Weights,
    /// Measured pay per unit of work.
    Hashprice,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_sessions_per_upstream: 1024,
            rebalance_interval_secs: 60.0,
            rebalance_tolerance: 0.05,
            failback_after_secs: 5.0,
            share_queue: 4096,
            policy: RoutingPolicy::Weights,
            window: "1h".into(),
            decide_interval_secs: 60.0,
            margin: 0.02,
            confidence: 2.0,
            min_shares: 100,
        }
    }
}

/// How a pool combines rolled version bits with the job version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Rolling {
    /// BIP 310: replace the bits inside the mask.
    #[default]
    Replace,
    /// ckpool: OR the bits into the job version.
    Or,
}

/// One upstream pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `stratum+tcp://host:port`, or `stratum2+tcp://host:port/KEY` for a
    /// Stratum V2 pool whose certificate KEY (its authority public key)
    /// signs.
    pub url: PoolUrl,
    /// Account to authorize as.
    pub user: String,
    /// Password.
    #[serde(default = "default_password")]
    pub password: String,
    /// Relative weight among pools of the same level.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Hashprice routing: least share of the hashrate while the pool is up
    /// (a contract, a hedge, and enough work to keep measuring it).
    #[serde(default)]
    pub floor: f64,
    /// Hashprice routing: most share of the hashrate.
    #[serde(default = "default_ceiling")]
    pub ceiling: f64,
    /// Failover level: 0 is used first; higher levels only when every pool
    /// of the lower levels is down.
    #[serde(default)]
    pub level: u32,
    /// Submit as `user.<worker>` (each worker authorized upstream).
    #[serde(default)]
    pub pass_through_workers: bool,
    /// The pool's version-rolling convention.
    #[serde(default)]
    pub rolling: Rolling,
    /// Seconds without a job before the pool counts as stalled.
    #[serde(default = "default_stall")]
    pub stall_timeout_secs: u64,
    /// Rejects in a row before the pool counts as rejecting everything.
    #[serde(default = "default_rejects")]
    pub max_consecutive_rejects: u32,
    /// The pool's fee, a fraction (0.025 = 2.5 %).
    #[serde(default)]
    pub fee: f64,
    /// How the pool pays.
    #[serde(default)]
    pub payout: PayoutScheme,
    /// Block reward to value shares at, BTC; absent: read from each job's
    /// coinbase outputs (subsidy plus the pool's fees).
    #[serde(default)]
    pub reward_btc: Option<f64>,
    /// Or the pool's quoted payout per difficulty-1 share, BTC after fee
    /// (FPPS pools publish this); overrides `reward_btc` and `fee`.
    #[serde(default)]
    pub payout_btc_per_share: Option<f64>,
    /// Hosts besides this pool's own that its `client.reconnect` may send
    /// us to (with its credentials). Its own host, any port, is always
    /// allowed; every other redirect is refused, logged and counted.
    #[serde(default)]
    pub reconnect_hosts: Vec<String>,
    /// Send `mining.suggest_difficulty` so the pool's difficulty fits the
    /// miners behind this connection. Turn off for pools that refuse it.
    #[serde(default = "default_true")]
    pub suggest_difficulty: bool,
}

fn default_true() -> bool {
    true
}

fn default_password() -> String {
    "x".into()
}
fn default_weight() -> f64 {
    1.0
}
fn default_ceiling() -> f64 {
    1.0
}
fn default_stall() -> u64 {
    120
}
fn default_rejects() -> u32 {
    50
}

/// The pool-node role: Bitcoin Core, or a synthetic chain without one.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolNodeConfig {
    /// Bitcoin Core's RPC address (`http://127.0.0.1:8332`); absent: a
    /// synthetic chain (demo, tests, benches).
    pub bitcoind: Option<String>,
    /// RPC user (with `rpc_password`).
    pub rpc_user: Option<String>,
    /// RPC password.
    pub rpc_password: Option<String>,
    /// Or the node's cookie file (`~/.bitcoin/.cookie`), read afresh on
    /// every call so a restarted node's new cookie is used.
    pub rpc_cookie: Option<std::path::PathBuf>,
    /// The network: mainnet, testnet4, testnet3, signet or regtest. Must
    /// match the node's; addresses are checked against it.
    pub network: Option<String>,
    /// Solo mining: each miner's username is `ADDRESS` or
    /// `ADDRESS.WORKER`, and the coinbase of its jobs pays that address
    /// (less `fee` to `payout_address`).
    pub solo: bool,
    /// The pool's address: the whole coinbase in pool mode, the fee in
    /// solo mode.
    pub payout_address: Option<String>,
    /// Text put after the extranonce in every coinbase.
    pub coinbase_tag: String,
    /// Seconds between checks of the node's best block, a fallback to the
    /// template long poll.
    pub tip_poll_secs: f64,
    /// The node's ZMQ `hashblock` publisher (its `-zmqpubhashblock`,
    /// e.g. `tcp://127.0.0.1:28332`): new tips the moment it has them.
    pub zmq_hashblock: Option<String>,
    /// The share ledger: `sqlite:PATH` (embedded) or `postgres://…` (one
    /// ledger for several instances). Absent: no ledger.
    pub ledger: Option<String>,
    /// This instance's name: in the ledger's rows and, with Bitcoin Core,
    /// in every coinbase (after `coinbase_tag`). Instances of one pool must
    /// have different names: then they never hand out the same work, and
    /// their ledger rows never collide.
    pub instance: String,
    /// Synthetic chain: its network difficulty (fractional allowed).
    pub network_difficulty: f64,
    /// Synthetic chain: seconds between blocks found elsewhere on the
    /// network (0: never).
    pub block_interval_secs: f64,
    /// Synthetic chain: transactions per block.
    pub txs_per_block: usize,
    /// Seconds between job refreshes (new ntime, and with Bitcoin Core a
    /// new template for fees) without a new block.
    pub refresh_interval_secs: f64,
    /// Synthetic chain: coinbase payout script, hex (default: a regtest
    /// P2WPKH).
    pub payout_script_hex: Option<String>,
    /// Fee the node's miners pay, a fraction (their books show earnings
    /// after it).
    pub fee: f64,
}

impl Default for PoolNodeConfig {
    fn default() -> Self {
        Self {
            network_difficulty: 1.0,
            block_interval_secs: 600.0,
            txs_per_block: 8,
            refresh_interval_secs: 30.0,
            payout_script_hex: None,
            fee: 0.0,
            bitcoind: None,
            rpc_user: None,
            rpc_password: None,
            rpc_cookie: None,
            network: None,
            solo: false,
            payout_address: None,
            coinbase_tag: "/sluice/".into(),
            tip_poll_secs: 0.5,
            zmq_hashblock: None,
            ledger: None,
            instance: "sluice".into(),
        }
    }
}

impl PoolNodeConfig {
    /// The network, parsed.
    pub fn network(&self) -> anyhow::Result<sluice_node::payout::Network> {
        let name = self
            .network
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("pool_node.network is needed with bitcoind"))?;
        Ok(sluice_node::payout::parse_network(name)?)
    }

    /// The pool's payout script, when an address is set.
    pub fn payout_script(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.payout_address {
            Some(a) => Ok(Some(
                sluice_node::payout::address_script(a, self.network()?)
                    .context("pool_node.payout_address")?,
            )),
            None => Ok(None),
        }
    }

    fn validate_node(&self) -> anyhow::Result<()> {
        if !(0.0..1.0).contains(&self.fee) {
            bail!("pool_node.fee must be at least 0 and below 1");
        }
        let Some(url) = &self.bitcoind else {
            if self.solo || self.payout_address.is_some() || self.network.is_some() {
                bail!("pool_node.solo, payout_address and network need pool_node.bitcoind");
            }
            return Ok(());
        };
        sluice_node::rpc::RpcClient::new(url, self.rpc_auth()?, Duration::from_secs(1))
            .map_err(|e| anyhow::anyhow!("pool_node.bitcoind: {e}"))?;
        self.network()?;
        let has_address = self.payout_script()?.is_some();
        if !self.solo && !has_address {
            bail!("pool_node: give payout_address (pool mode) or solo = true");
        }
        if self.solo && self.fee > 0.0 && !has_address {
            bail!("pool_node: a solo fee needs payout_address to pay it to");
        }
        if !(0.01..=3600.0).contains(&self.tip_poll_secs) {
            bail!("pool_node.tip_poll_secs must be 0.01–3600");
        }
        if let Some(z) = &self.zmq_hashblock
            && !z.starts_with("tcp://")
        {
            bail!("pool_node.zmq_hashblock {z:?}: give tcp://HOST:PORT");
        }
        if let Some(l) = &self.ledger
            && !(l.starts_with("sqlite:")
                || l.starts_with("postgres://")
                || l.starts_with("postgresql://"))
        {
            bail!("pool_node.ledger {l:?}: use sqlite:PATH or postgres://…");
        }
        let cb = sluice_node::coinbase::MAX_SCRIPT_SIG_LEN;
        if self.coinbase_tag.len() + self.instance.len() + 1 > cb / 2 {
            bail!(
                "pool_node.coinbase_tag and instance (both go in the coinbase) must be at most {} bytes together",
                cb / 2 - 1
            );
        }
        if self.instance.is_empty() || !self.instance.chars().all(|c| c.is_ascii_graphic()) {
            bail!("pool_node.instance must be a non-empty printable name");
        }
        Ok(())
    }

    /// How to log in to the node.
    pub fn rpc_auth(&self) -> anyhow::Result<sluice_node::rpc::Auth> {
        use sluice_node::rpc::Auth;
        match (&self.rpc_user, &self.rpc_password, &self.rpc_cookie) {
            (Some(u), Some(p), None) => Ok(Auth::UserPass {
                user: u.clone(),
                password: p.clone(),
            }),
            (None, None, Some(c)) => Ok(Auth::Cookie(c.clone())),
            _ => bail!("pool_node: give rpc_user and rpc_password, or rpc_cookie (not both)"),
        }
    }
}

fn positive(name: &str, v: f64) -> anyhow::Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{name} must be a positive number, got {v}");
    }
    Ok(())
}

impl PoolConfig {
    /// A pool with every optional setting at its file default.
    pub fn new(url: PoolUrl, user: impl Into<String>) -> Self {
        Self {
            url,
            user: user.into(),
            password: default_password(),
            weight: default_weight(),
            floor: 0.0,
            ceiling: default_ceiling(),
            level: 0,
            pass_through_workers: false,
            rolling: Rolling::default(),
            stall_timeout_secs: default_stall(),
            max_consecutive_rejects: default_rejects(),
            fee: 0.0,
            payout: PayoutScheme::default(),
            reward_btc: None,
            payout_btc_per_share: None,
            reconnect_hosts: Vec::new(),
            suggest_difficulty: true,
        }
    }
}

impl Config {
    /// A config with every section at its file default, listening on
    /// `address` (what the quick `proxy`/`pool` flags start from).
    pub fn new(mode: Mode, address: SocketAddr) -> Self {
        Self {
            mode,
            listen: ListenConfig {
                address,
                ..Default::default()
            },
            difficulty: Default::default(),
            extranonce: Default::default(),
            routing: Default::default(),
            pools: Vec::new(),
            pool_node: Default::default(),
            api: Default::default(),
            books: Default::default(),
            // Built in code (tests, the demo): in memory unless set.
            blocks: BlocksSection { log: None },
            v2: V2Section::default(),
            runtime: RuntimeSection::default(),
        }
    }

    /// Reads and validates a file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.runtime.check().map_err(anyhow::Error::msg)?;
        let d = &self.difficulty;
        positive("difficulty.min", d.min)?;
        positive("difficulty.max", d.max)?;
        positive("difficulty.start", d.start)?;
        if d.min > d.max {
            bail!(
                "difficulty.min ({}) is above difficulty.max ({})",
                d.min,
                d.max
            );
        }
        positive(
            "difficulty.vardiff.target_share_interval_secs",
            d.vardiff.target_share_interval_secs,
        )?;
        if d.vardiff.dead_band < 1.0 || d.vardiff.max_step < 1.0 {
            bail!("difficulty.vardiff.dead_band and max_step must be at least 1");
        }
        let e = &self.extranonce;
        if !(1..=3).contains(&e.session_prefix_bytes) {
            bail!("extranonce.session_prefix_bytes must be 1–3 (3 allows 16.7 million sessions)");
        }
        let l = &self.listen;
        for (name, v) in [
            ("handshake_timeout_secs", l.handshake_timeout_secs),
            ("idle_timeout_secs", l.idle_timeout_secs),
            ("write_timeout_secs", l.write_timeout_secs),
        ] {
            if !(1..=86_400).contains(&v) {
                bail!("listen.{name} must be 1–86400 seconds");
            }
        }
        if !(1..=8).contains(&self.downstream_extranonce2_size()) {
            bail!(
                "extranonce.downstream_extranonce2_size must be 1–8 (WhatsMiner firmware allows at most 8)"
            );
        }
        self.validate_routing()?;
        if self.routing.share_queue == 0 {
            bail!("routing.share_queue must be at least 1");
        }
        if self.listen.max_workers_per_connection == 0 || self.listen.max_workers_per_ip == 0 {
            bail!("listen.max_workers_per_connection and max_workers_per_ip must be at least 1");
        }
        let g = self.listen.no_upstream_grace_secs;
        if !(g.is_finite() && (0.0..=86_400.0).contains(&g)) {
            bail!("listen.no_upstream_grace_secs must be between 0 and 86400, got {g}");
        }
        if self.listen.max_connections == 0 || self.listen.max_connections_per_ip == 0 {
            bail!("listen.max_connections and max_connections_per_ip must be at least 1");
        }
        if self.v2.listen.is_some() && self.v2.identity.is_some() == self.v2.authority_key.is_some()
        {
            bail!(
                "v2.listen needs exactly one of v2.identity (from `sluice cert`) or v2.authority_key (from `sluice keygen`)"
            );
        }
        if self.listen.max_line_bytes < 512 {
            bail!("listen.max_line_bytes must be at least 512");
        }
        // The line codec keeps its limit in 32 bits.
        if self.listen.max_line_bytes > u32::MAX as usize {
            bail!("listen.max_line_bytes must be at most {}", u32::MAX);
        }
        self.validate_books()?;
        match self.mode {
            Mode::Proxy => {
                if self.pools.is_empty() {
                    bail!("proxy mode needs at least one [[pools]] entry");
                }
                let mut seen = std::collections::HashSet::new();
                for p in &self.pools {
                    // The books, the store and the metrics name pools by URL.
                    if !seen.insert(p.url.to_string()) {
                        bail!("pool {} is listed twice", p.url);
                    }
                    positive(&format!("weight of {}", p.url), p.weight)?;
                    if p.user.is_empty() {
                        bail!("pool {} has an empty user", p.url);
                    }
                    if p.url.authority.is_some() && p.pass_through_workers {
                        bail!(
                            "pool {}: pass_through_workers is for V1 pools (a V2 pool sees one channel per connection, named by user)",
                            p.url
                        );
                    }
                }
            }
            Mode::Pool => {
                positive(
                    "pool_node.network_difficulty",
                    self.pool_node.network_difficulty,
                )?;
                positive(
                    "pool_node.refresh_interval_secs",
                    self.pool_node.refresh_interval_secs,
                )?;
                if self.pool_node.block_interval_secs < 0.0 {
                    bail!("pool_node.block_interval_secs must be 0 (never) or positive");
                }
                if let Some(h) = &self.pool_node.payout_script_hex {
                    sluice_pow::hex::decode(h).context("pool_node.payout_script_hex")?;
                }
                self.pool_node.validate_node()?;
            }
        }
        Ok(())
    }

    fn validate_routing(&self) -> anyhow::Result<()> {
        let r = &self.routing;
        sluice_books::Window::parse(&r.window)
            .filter(|w| *w != sluice_books::Window::M1)
            .with_context(|| format!("routing.window must be 5m, 1h or 24h, not {:?}", r.window))?;
        positive("routing.decide_interval_secs", r.decide_interval_secs)?;
        // A margin of 0 would let equal pools trade places on noise.
        if !(r.margin.is_finite() && r.margin > 0.0 && r.margin < 1.0) {
            bail!(
                "routing.margin must be a fraction in (0, 1), got {}",
                r.margin
            );
        }
        if !(r.confidence.is_finite() && r.confidence >= 0.0) {
            bail!(
                "routing.confidence must be 0 or positive, got {}",
                r.confidence
            );
        }
        let mut levels: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
        for p in &self.pools {
            let (f, c) = (p.floor, p.ceiling);
            if !(0.0..=1.0).contains(&f) {
                bail!("floor of {} must be a fraction in [0, 1], got {f}", p.url);
            }
            if !(c > 0.0 && c <= 1.0) {
                bail!("ceiling of {} must be a fraction in (0, 1], got {c}", p.url);
            }
            if f > c {
                bail!("floor of {} ({f}) is above its ceiling ({c})", p.url);
            }
            let e = levels.entry(p.level).or_default();
            e.0 += f;
            e.1 += c;
        }
        let hashprice = r.policy == RoutingPolicy::Hashprice;
        for (level, (floors, ceilings)) in levels {
            if !hashprice {
                // Floors and ceilings are only used by the hashprice policy.
                continue;
            }
            if floors > 1.0 + 1e-9 {
                bail!(
                    "the floors of level {level} add up to {:.0} %, more than all the hashrate",
                    floors * 100.0
                );
            }
            if ceilings < 1.0 - 1e-9 {
                bail!(
                    "the ceilings of level {level} add up to {:.0} %: the rest of the hashrate would have nowhere to go",
                    ceilings * 100.0
                );
            }
        }
        Ok(())
    }

    /// The routing task's settings.
    pub fn routing_settings(&self) -> sluice_engine::routing::RoutingSettings {
        use sluice_engine::routing::{PolicyKind, RoutingSettings};
        let r = &self.routing;
        RoutingSettings {
            policy: match r.policy {
                RoutingPolicy::Weights => PolicyKind::Weights,
                RoutingPolicy::Hashprice => PolicyKind::Hashprice,
            },
            window: sluice_books::Window::parse(&r.window).unwrap_or(sluice_books::Window::H1),
            interval: Duration::from_secs_f64(r.decide_interval_secs.max(0.05)),
            cfg: sluice_engine::policy::PolicyConfig {
                margin: r.margin,
                confidence: r.confidence,
                min_shares: r.min_shares,
                // Two windows: by then none of the figure's shares is left.
                expire_after_ms: 2 * sluice_books::Window::parse(&r.window)
                    .unwrap_or(sluice_books::Window::H1)
                    .span_ms(),
            },
        }
    }

    fn validate_books(&self) -> anyhow::Result<()> {
        let b = &self.books;
        positive("books.snapshot_interval_secs", b.snapshot_interval_secs)?;
        positive("books.forget_after_hours", b.forget_after_hours)?;
        if b.max_workers == 0 {
            bail!("books.max_workers must be at least 1");
        }
        let p = &b.price;
        if let Some(u) = p.usd {
            positive("books.price.usd", u)?;
        }
        if let Some(url) = &p.feed_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("books.price.feed_url must be an http:// or https:// URL, got {url:?}");
            }
            if !p.feed_pointer.is_empty() && !p.feed_pointer.starts_with('/') {
                bail!("books.price.feed_pointer must be a JSON pointer such as /bitcoin/usd");
            }
            positive("books.price.poll_interval_secs", p.poll_interval_secs)?;
            positive("books.price.max_age_secs", p.max_age_secs)?;
        }
        let pw = &b.power;
        if !(pw.price_usd_per_kwh.is_finite() && pw.price_usd_per_kwh >= 0.0) {
            bail!("books.power.price_usd_per_kwh must be 0 or positive");
        }
        power_of(
            "books.power default",
            pw.default_efficiency_j_per_th,
            pw.default_watts,
        )?;
        if pw.rules.len() > sluice_books::MAX_POWER_RULES {
            bail!(
                "books.power.rules: {} rules, at most {} (one per machine class)",
                pw.rules.len(),
                sluice_books::MAX_POWER_RULES
            );
        }
        for r in &pw.rules {
            if r.pattern.is_empty() {
                bail!("books.power.rules: empty pattern");
            }
            if let Some(th) = r.nominal_th_s {
                positive(
                    &format!("books.power rule {:?} nominal_th_s", r.pattern),
                    th,
                )?;
            }
            if power_of(
                &format!("books.power rule {:?}", r.pattern),
                r.efficiency_j_per_th,
                r.watts,
            )?
            .is_none()
            {
                bail!(
                    "books.power rule {:?}: give efficiency_j_per_th or watts",
                    r.pattern
                );
            }
        }
        for p in &pw.schedule {
            if p.from_hour > 23 || !(1..=24).contains(&p.to_hour) || p.from_hour == p.to_hour {
                bail!(
                    "books.power.schedule: from_hour {} to_hour {}: hours are 0-23 (from) and 1-24 (to), not equal",
                    p.from_hour,
                    p.to_hour
                );
            }
            // Negative is real (a grid paying to take power), within reason.
            if !(p.price_usd_per_kwh.is_finite()
                && p.price_usd_per_kwh.abs() <= crate::books::POWER_PRICE_BOUND)
            {
                bail!(
                    "books.power.schedule: price_usd_per_kwh must be within ±{} $/kWh",
                    crate::books::POWER_PRICE_BOUND
                );
            }
        }
        if !(-14.0..=14.0).contains(&pw.utc_offset_hours) {
            bail!("books.power.utc_offset_hours must be between -14 and 14");
        }
        if let Some(url) = &pw.feed_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("books.power.feed_url must be an http:// or https:// URL, got {url:?}");
            }
            if !pw.feed_pointer.is_empty() && !pw.feed_pointer.starts_with('/') {
                bail!("books.power.feed_pointer must be a JSON pointer such as /usd_per_kwh");
            }
            positive("books.power.poll_interval_secs", pw.poll_interval_secs)?;
            positive("books.power.max_age_secs", pw.max_age_secs)?;
        }
        let fees = self
            .pools
            .iter()
            .map(|p| (p.url.to_string(), p.fee))
            .chain([("pool_node".to_string(), self.pool_node.fee)]);
        for (name, fee) in fees {
            if !(0.0..1.0).contains(&fee) {
                bail!("fee of {name} must be a fraction in [0, 1), got {fee}");
            }
        }
        for pc in &self.pools {
            if let Some(r) = pc.reward_btc {
                positive(&format!("reward_btc of {}", pc.url), r)?;
            }
            if let Some(r) = pc.payout_btc_per_share {
                positive(&format!("payout_btc_per_share of {}", pc.url), r)?;
            }
        }
        Ok(())
    }

    /// The books' settings (pools in config order; the pool node is pool 0).
    pub fn books_config(&self) -> sluice_books::BooksConfig {
        use sluice_books::{PoolBooksConfig, PriceConfig, Reward, Scheme};
        let scheme = |s: PayoutScheme| match s {
            PayoutScheme::Fpps => Scheme::Fpps,
            PayoutScheme::Pps => Scheme::Pps,
            PayoutScheme::Pplns => Scheme::Pplns,
            PayoutScheme::Solo => Scheme::Solo,
        };
        let pools = match self.mode {
            Mode::Proxy => self
                .pools
                .iter()
                .map(|p| PoolBooksConfig {
                    name: p.url.to_string(),
                    fee: p.fee,
                    scheme: scheme(p.payout),
                    reward: match (p.payout_btc_per_share, p.reward_btc) {
                        (Some(x), _) => Reward::PerShareBtc(x),
                        (None, Some(r)) => Reward::BlockBtc(r),
                        (None, None) => Reward::Coinbase,
                    },
                })
                .collect(),
            Mode::Pool => vec![PoolBooksConfig {
                name: POOL_NODE_NAME.into(),
                fee: self.pool_node.fee,
                scheme: Scheme::Fpps,
                reward: Reward::Coinbase,
            }],
        };
        let b = &self.books;
        let pw = &b.power;
        sluice_books::BooksConfig {
            pools,
            power_price_usd_per_kwh: pw.price_usd_per_kwh,
            power_periods: pw
                .schedule
                .iter()
                .map(|p| sluice_books::advice::TouPeriod {
                    from_hour: p.from_hour,
                    to_hour: p.to_hour,
                    usd_per_kwh: p.price_usd_per_kwh,
                })
                .collect(),
            power_utc_offset_min: (pw.utc_offset_hours * 60.0).round() as i32,
            power_feed_max_age_ms: if pw.feed_url.is_some() {
                (pw.max_age_secs * 1000.0) as u64
            } else {
                0
            },
            power_rules: pw
                .rules
                .iter()
                .filter_map(|r| {
                    power_of("", r.efficiency_j_per_th, r.watts)
                        .ok()
                        .flatten()
                        .map(|power| sluice_books::money::PowerRule {
                            class: r.class.clone().unwrap_or_else(|| r.pattern.clone()),
                            pattern: r.pattern.clone(),
                            power,
                            nominal_th_s: r.nominal_th_s,
                        })
                })
                .collect(),
            default_power: power_of("", pw.default_efficiency_j_per_th, pw.default_watts)
                .ok()
                .flatten(),
            price: match (&b.price.feed_url, b.price.usd) {
                (Some(_), _) => PriceConfig::Feed {
                    max_age_ms: (b.price.max_age_secs * 1000.0) as u64,
                },
                (None, Some(u)) => PriceConfig::Fixed(u),
                (None, None) => PriceConfig::None,
            },
            max_workers: b.max_workers,
            reasons: sluice_engine::session::book_reasons(),
            forget_after_ms: (b.forget_after_hours * 3_600_000.0) as u64,
        }
    }

    /// extranonce2 bytes miners roll (mode-dependent default).
    pub fn downstream_extranonce2_size(&self) -> usize {
        self.extranonce
            .downstream_extranonce2_size
            .unwrap_or(match self.mode {
                Mode::Proxy => 4,
                Mode::Pool => 8,
            })
    }

    /// The extranonce split.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            prefix_len: self.extranonce.session_prefix_bytes,
            downstream_len: self.downstream_extranonce2_size(),
        }
    }

    /// Session policy for the engine.
    pub fn session_config(&self) -> SessionConfig {
        let d = &self.difficulty;
        SessionConfig {
            min_difficulty: d.min,
            max_difficulty: d.max,
            start_difficulty: d.start.clamp(d.min, d.max),
            vardiff: d.vardiff.clone(),
            ntime_max_forward_secs: d.ntime_max_forward_secs,
            max_workers_per_connection: self.listen.max_workers_per_connection,
            solo: self.solo_check(),
            ..SessionConfig::default()
        }
    }

    /// Solo pool node on Bitcoin Core: usernames are payout addresses of
    /// its network.
    fn solo_check(&self) -> Option<sluice_engine::session::SoloCheck> {
        let n = &self.pool_node;
        if self.mode != Mode::Pool || !n.solo || n.bitcoind.is_none() {
            return None;
        }
        let net = n.network().ok()?;
        Some(sluice_engine::session::SoloCheck(std::sync::Arc::new(
            move |username: &str| {
                sluice_node::payout::solo_user(username, net)
                    .map(|u| std::sync::Arc::from(u.script))
                    .map_err(|e| {
                        format!(
                            "{e}: solo mining here needs ADDRESS or ADDRESS.WORKER as the username"
                        )
                    })
            },
        )))
    }

    /// Listener limits for the engine.
    pub fn server_config(&self) -> sluice_engine::server::ServerConfig {
        let l = &self.listen;
        sluice_engine::server::ServerConfig {
            max_connections: l.max_connections,
            max_per_ip: l.max_connections_per_ip,
            handshake_timeout: Duration::from_secs(l.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(l.idle_timeout_secs),
            write_timeout: Duration::from_secs(l.write_timeout_secs),
            max_line: l.max_line_bytes,
            max_names_per_ip: l.max_workers_per_ip,
            no_upstream_grace: Duration::from_secs_f64(l.no_upstream_grace_secs),
        }
    }

    /// A short human summary (`check-config`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "mode: {:?}\nlisten: {}{}\ndifficulty: start {} min {} max {} (vardiff {}; target {} s/share)\nextranonce: {}-byte session prefix, miners roll {} bytes\n",
            self.mode,
            self.listen.address,
            if self.listen.reuse_port {
                " (port shared with other instances: reuse_port)"
            } else {
                ""
            },
            self.difficulty.start,
            self.difficulty.min,
            self.difficulty.max,
            if self.difficulty.vardiff.enabled {
                "on"
            } else {
                "off"
            },
            self.difficulty.vardiff.target_share_interval_secs,
            self.extranonce.session_prefix_bytes,
            self.downstream_extranonce2_size(),
        );
        if let Some(n) = self.runtime.worker_threads {
            s.push_str(&format!("runtime: worker_threads = {n}\n"));
        }
        match self.mode {
            Mode::Proxy => {
                let r = &self.routing;
                s.push_str(&match r.policy {
                    RoutingPolicy::Weights => "routing: by weight\n".to_string(),
                    RoutingPolicy::Hashprice => format!(
                        "routing: by hashprice over {} (decided every {} s; a pool must pay {} % more beyond {} standard errors; {} shares before a pool's pay is used)\n",
                        r.window,
                        r.decide_interval_secs,
                        r.margin * 100.0,
                        r.confidence,
                        r.min_shares
                    ),
                });
                for p in &self.pools {
                    s.push_str(&format!(
                        "pool: {} user {} weight {} floor {} % ceiling {} % level {} fee {} % {:?}; version rolling: {}; suggest difficulty: {}; reconnect: same host{}\n",
                        p.url,
                        p.user,
                        p.weight,
                        p.floor * 100.0,
                        p.ceiling * 100.0,
                        p.level,
                        p.fee * 100.0,
                        p.payout,
                        match p.rolling {
                            Rolling::Replace => "replace (BIP 310)",
                            Rolling::Or => "or (ckpool)",
                        },
                        if p.suggest_difficulty { "on" } else { "off" },
                        if p.reconnect_hosts.is_empty() {
                            String::new()
                        } else {
                            format!(" or {}", p.reconnect_hosts.join(", "))
                        }
                    ));
                }
            }
            Mode::Pool => match &self.pool_node.bitcoind {
                Some(url) => {
                    let n = &self.pool_node;
                    s.push_str(&format!(
                        "pool node: bitcoind {url} ({}), {}\n",
                        n.network.as_deref().unwrap_or("?"),
                        match (n.solo, &n.payout_address) {
                            (true, Some(a)) => format!("solo, fee {} to {a}", n.fee),
                            (true, None) => "solo".into(),
                            (false, a) => format!("pool, paying {}", a.as_deref().unwrap_or("?")),
                        }
                    ))
                }
                None => s.push_str(&format!(
                    "pool node: synthetic chain, network difficulty {}, external block every {} s\n",
                    self.pool_node.network_difficulty, self.pool_node.block_interval_secs
                )),
            },
        }
        if let Some(a) = self.v2.listen {
            let id = match (&self.v2.identity, &self.v2.authority_key) {
                (Some(f), _) => format!("identity {}", f.display()),
                (_, Some(f)) => {
                    format!("authority key {} (static key signed at start)", f.display())
                }
                _ => "no identity".into(),
            };
            s.push_str(&format!("v2 listen: {a} (Noise; {id})\n"));
        }
        let l = &self.listen;
        s.push_str(&format!(
            "limits: {} connections ({} per address), {} worker names per connection ({} per address), no-pool grace {} s, share queue {} per upstream\n",
            l.max_connections,
            l.max_connections_per_ip,
            l.max_workers_per_connection,
            l.max_workers_per_ip,
            l.no_upstream_grace_secs,
            self.routing.share_queue
        ));
        s.push_str(&match self
            .blocks
            .log
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(p) => format!("blocks: logged to {}\n", p.display()),
            None => {
                "blocks: in memory only (set [blocks] log to keep them across a crash)\n".into()
            }
        });
        match self.api.listen {
            Some(a) => s.push_str(&format!("api: http://{a}\n")),
            None => s.push_str("api: off\n"),
        }
        let b = &self.books;
        s.push_str(&format!(
            "books: {}, snapshot every {} s\n",
            b.store.as_ref().map_or_else(
                || "in memory only".to_string(),
                |p| format!("store {}", p.display())
            ),
            b.snapshot_interval_secs
        ));
        s.push_str(&match (&b.price.feed_url, b.price.usd) {
            (Some(u), _) => format!(
                "price: feed {u} at {} every {} s, stale after {} s\n",
                b.price.feed_pointer, b.price.poll_interval_secs, b.price.max_age_secs
            ),
            (None, Some(p)) => format!("price: fixed ${p}\n"),
            (None, None) => "price: none (no USD figures)\n".to_string(),
        });
        s.push_str(&format!(
            "power: ${}/kWh, {} rule(s), default {}\n",
            b.power.price_usd_per_kwh,
            b.power.rules.len(),
            match (b.power.default_efficiency_j_per_th, b.power.default_watts) {
                (Some(e), _) => format!("{e} J/TH"),
                (None, Some(w)) => format!("{w} W"),
                _ => "none".into(),
            }
        ));
        for p in &b.power.schedule {
            s.push_str(&format!(
                "power from {:02}:00 to {:02}:00 (UTC{:+}): ${}/kWh\n",
                p.from_hour, p.to_hour, b.power.utc_offset_hours, p.price_usd_per_kwh
            ));
        }
        if let Some(url) = &b.power.feed_url {
            s.push_str(&format!(
                "power price feed: {url} at {}, every {} s, fresh for {} s\n",
                b.power.feed_pointer, b.power.poll_interval_secs, b.power.max_age_secs
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(toml_text: &str) -> String {
        let c: Config = toml::from_str(toml_text).unwrap();
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_runtime_has_the_threads_asked_for() {
        assert!(
            err("mode = \"proxy\"\n[runtime]\nworker_threads = 0").contains("worker_threads is 0")
        );
        assert!(
            err("mode = \"proxy\"\n[runtime]\nworker_threads = 1025")
                .contains("worker_threads is 1025")
        );
        let one: Config =
            toml::from_str("mode = \"proxy\"\n[runtime]\nworker_threads = 1").unwrap();
        assert_eq!(one.runtime.build().unwrap().metrics().num_workers(), 1);
        assert!(one.summary().contains("runtime: worker_threads = 1\n"));
        assert!(
            !Config::new(Mode::Proxy, one.listen.address)
                .summary()
                .contains("runtime")
        );
        let three: Config =
            toml::from_str("mode = \"proxy\"\n[runtime]\nworker_threads = 3").unwrap();
        assert_eq!(three.runtime.build().unwrap().metrics().num_workers(), 3);
        // A file is refused at load, before any runtime is built, and a
        // runtime is never built with none.
        let file = std::env::temp_dir().join(format!("sluice-runtime-{}.toml", std::process::id()));
        std::fs::write(&file, "mode = \"proxy\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\nuser = \"u\"\n[runtime]\nworker_threads = 0\n").unwrap();
        let loaded = Config::load(&file);
        std::fs::remove_file(&file).unwrap();
        assert!(format!("{:#}", loaded.unwrap_err()).contains("worker_threads is 0"));
        assert!(
            RuntimeSection {
                worker_threads: Some(0)
            }
            .build()
            .is_err()
        );
        let typo: Result<Config, _> =
            toml::from_str("mode = \"proxy\"\n[runtime]\nworker_thread = 1");
        assert!(typo.unwrap_err().to_string().contains("worker_thread"));
    }

    #[test]
    fn bad_books_settings_are_refused_by_name() {
        for (text, expect) in [
            (
                "[books]\nsnapshot_interval_secs = 0.0",
                "snapshot_interval_secs",
            ),
            ("[books]\nmax_workers = 0", "max_workers"),
            ("[books.price]\nusd = -5.0", "books.price.usd"),
            (
                "[books.price]\nfeed_url = \"http://x\"\nfeed_pointer = \"bitcoin.usd\"",
                "JSON pointer",
            ),
            (
                "[books.power]\nprice_usd_per_kwh = -0.1",
                "price_usd_per_kwh",
            ),
            ("[books.power]\ndefault_watts = 0.0", "watts"),
            (
                "[[books.power.rules]]\npattern = \"s9-*\"",
                "give efficiency_j_per_th or watts",
            ),
            (
                "[[books.power.rules]]\npattern = \"\"\nwatts = 1.0",
                "empty pattern",
            ),
            (
                "[listen]\nmax_line_bytes = 5000000000",
                "at most 4294967295",
            ),
            (
                "[[books.power.rules]]\npattern = \"s*\"\nwatts = 1.0\n"
                    .repeat(4_097)
                    .as_str(),
                "at most 4096",
            ),
        ] {
            let e = err(&format!("mode = \"pool\"\n{text}\n"));
            assert!(e.contains(expect), "{text}: {e}");
        }
        let e = err(
            "mode = \"proxy\"\n[[pools]]\nurl = \"stratum+tcp://x:1\"\nuser = \"u\"\nreward_btc = -1.0\n",
        );
        assert!(e.contains("reward_btc"), "{e}");
    }
}
