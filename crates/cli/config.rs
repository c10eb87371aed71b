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
}

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
    /// Seconds a miner has to subscribe and authorize.
    pub handshake_timeout_secs: u64,
    /// Seconds without a line before a miner is dropped.
    pub idle_timeout_secs: u64,
    /// Seconds a write may block before the miner counts as a slow reader.
    pub write_timeout_secs: u64,
    /// Longest line accepted from a miner, bytes.
    pub max_line_bytes: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 3333)),
            max_connections: 65_536,
            max_connections_per_ip: 65_536,
            handshake_timeout_secs: 30,
            idle_timeout_secs: 600,
            write_timeout_secs: 10,
            max_line_bytes: sluice_sv1::DEFAULT_MAX_LINE,
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
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_sessions_per_upstream: 1024,
            rebalance_interval_secs: 60.0,
            rebalance_tolerance: 0.05,
            failback_after_secs: 5.0,
        }
    }
}

/// How a pool combines rolled version bits with the job version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `stratum+tcp://host:port`.
    pub url: PoolUrl,
    /// Account to authorize as.
    pub user: String,
    /// Password.
    #[serde(default = "default_password")]
    pub password: String,
    /// Relative weight among pools of the same level.
    #[serde(default = "default_weight")]
    pub weight: f64,
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
}

fn default_password() -> String {
    "x".into()
}
fn default_weight() -> f64 {
    1.0
}
fn default_stall() -> u64 {
    120
}
fn default_rejects() -> u32 {
    50
}

/// The pool-node role's synthetic chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolNodeConfig {
    /// Network difficulty of the synthetic chain (fractional allowed).
    pub network_difficulty: f64,
    /// Seconds between blocks found elsewhere on the network (0: never).
    pub block_interval_secs: f64,
    /// Synthetic transactions per block.
    pub txs_per_block: usize,
    /// Seconds between job refreshes (new ntime) without a new block.
    pub refresh_interval_secs: f64,
    /// Coinbase payout script, hex (default: a regtest P2WPKH).
    pub payout_script_hex: Option<String>,
}

impl Default for PoolNodeConfig {
    fn default() -> Self {
        Self {
            network_difficulty: 1.0,
            block_interval_secs: 600.0,
            txs_per_block: 8,
            refresh_interval_secs: 30.0,
            payout_script_hex: None,
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
            level: 0,
            pass_through_workers: false,
            rolling: Rolling::default(),
            stall_timeout_secs: default_stall(),
            max_consecutive_rejects: default_rejects(),
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
        if self.listen.max_connections == 0 || self.listen.max_connections_per_ip == 0 {
            bail!("listen.max_connections and max_connections_per_ip must be at least 1");
        }
        if self.listen.max_line_bytes < 512 {
            bail!("listen.max_line_bytes must be at least 512");
        }
        match self.mode {
            Mode::Proxy => {
                if self.pools.is_empty() {
                    bail!("proxy mode needs at least one [[pools]] entry");
                }
                for p in &self.pools {
                    positive(&format!("weight of {}", p.url), p.weight)?;
                    if p.user.is_empty() {
                        bail!("pool {} has an empty user", p.url);
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
            }
        }
        Ok(())
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
            ..SessionConfig::default()
        }
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
        }
    }

    /// A short human summary (`check-config`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "mode: {:?}\nlisten: {}\ndifficulty: start {} min {} max {} (vardiff {}; target {} s/share)\nextranonce: {}-byte session prefix, miners roll {} bytes\n",
            self.mode,
            self.listen.address,
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
        match self.mode {
            Mode::Proxy => {
                for p in &self.pools {
                    s.push_str(&format!(
                        "pool: {} user {} weight {} level {}\n",
                        p.url, p.user, p.weight, p.level
                    ));
                }
            }
            Mode::Pool => s.push_str(&format!(
                "pool node: network difficulty {}, external block every {} s\n",
                self.pool_node.network_difficulty, self.pool_node.block_interval_secs
            )),
        }
        s
    }
}
