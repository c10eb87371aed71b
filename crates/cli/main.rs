//! The `sluice` binary: the command line (clap) and logging. Everything it
//! runs lives in the `sluice` library (`crates/cli/lib.rs`) and the
//! `crates/*` it wires together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use sluice::{bench_hash, config, keys, load, run};

/// sluice: a Stratum V1/V2 mining proxy and pool node that validates every
/// share itself and reports what each worker really earns.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or
    /// `sluice=debug`); `RUST_LOG` is used when this is absent.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run from a configuration file (see deploy/sluice.toml).
    Run {
        /// The TOML file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and print what it sets up.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Proxy miners to one or more pools (no config file needed).
    Proxy(ProxyArgs),
    /// Run a pool node on the built-in synthetic chain (no config file
    /// needed).
    Pool(PoolArgs),
    /// Simulated miners doing real hashing against a Stratum server, with
    /// latency histograms and a report.
    Loadgen(LoadgenCli),
    /// Everything in one process: a pool node, a proxy in front of it and
    /// a farm of simulated miners, with a live view of the workers.
    Demo {
        /// Simulated miners.
        #[arg(long, default_value_t = 200)]
        miners: usize,
        /// Stop after this long (e.g. 60s); default: until Ctrl-C.
        #[arg(long, value_parser = load::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Per-worker hashrate, earnings and profit from a running instance's
    /// API, as a table.
    Workers(WorkersArgs),
    /// How hashrate is routed across pools: what each pays per unit of
    /// work, its uncertainty, the target split and why.
    Routing(ApiArgs),
    /// Curtailment advice from a running instance: which machines lose
    /// money at which hours, when to switch them off and on, and what
    /// that saves (advice only). What-ifs: --hashprice, --btc-price,
    /// --power-price.
    Advise(AdviseArgs),
    /// The hashprice calculator: network hashprice from difficulty, reward
    /// and price, and a machine's break-even (no running instance needed).
    Hashprice(HashpriceArgs),
    /// Blocks and payouts (PPLNS, FPPS) from a pool node's share ledger,
    /// as JSON.
    Ledger(LedgerArgs),
    /// Measure this machine's capacity.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Stratum V2: make the pool's authority key pair, write it to a file
    /// (owner-only, never overwritten) and print the public key that
    /// miners and proxies configure.
    Keygen {
        /// Where to write the key pair.
        #[arg(long, short, default_value = "sluice-authority.toml")]
        out: PathBuf,
    },
    /// Stratum V2: sign a server's static key with the authority key for a
    /// validity window; the file written is what the server loads.
    Cert(CertArgs),
}

#[derive(Debug, Args)]
struct CertArgs {
    /// The authority key file from `sluice keygen`.
    #[arg(long, value_name = "FILE")]
    authority_key: PathBuf,
    /// Keep the static key of this earlier certificate file (a renewal)
    /// instead of making a new one.
    #[arg(long, value_name = "FILE")]
    renew: Option<PathBuf>,
    /// Start of validity, Unix seconds (default: an hour ago, so clients
    /// whose clocks run slow accept it).
    #[arg(long)]
    valid_from: Option<u32>,
    /// Length of validity (e.g. 30d, 12h).
    #[arg(long, default_value = "365d", value_parser = load::parse_duration)]
    valid_for: std::time::Duration,
    /// Where to write the server's key and certificate.
    #[arg(long, short, default_value = "sluice-server.toml")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct LoadgenCli {
    /// The server to load: stratum+tcp://HOST:PORT for Stratum V1 miners,
    /// stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY for Stratum V2 miners
    /// (Noise, one extended channel each; the server's certificate must be
    /// signed by that key).
    #[arg(long)]
    url: sluice_engine::upstream::PoolUrl,
    /// Simulated miners.
    #[arg(long, default_value_t = 100)]
    miners: usize,
    /// Mining time after the ramp (30s, 2m, 500ms…).
    #[arg(long, default_value = "30s", value_parser = load::parse_duration)]
    duration: std::time::Duration,
    /// Shares per second per miner; the hash rate follows the difficulty.
    #[arg(long)]
    share_rate: Option<f64>,
    /// Hashes per second per miner (the ceiling with --share-rate).
    #[arg(long, default_value_t = 100_000.0)]
    hashrate: f64,
    /// Connections opened per second (default: all at once).
    #[arg(long)]
    ramp: Option<f64>,
    /// Fraction of shares sent bad on purpose (stale, duplicate,
    /// low difficulty, in turn).
    #[arg(long, default_value_t = 0.0)]
    bad_fraction: f64,
    /// steady, connect-storm, reconnect-storm or churn (1 % of the miners
    /// drop and rejoin each minute).
    #[arg(long, default_value = "steady")]
    scenario: sluice_loadgen::Scenario,
    /// Worker names are this plus a number.
    #[arg(long, default_value = "loadgen.m")]
    worker_prefix: String,
    /// Password for every miner (e.g. d=0.001).
    #[arg(long, default_value = "x")]
    password: String,
    /// Stratum V2 miners' channel: extended (the miner rolls extranonce
    /// and builds the coinbase) or standard (header-only, with a merkle
    /// root per job from the server).
    #[arg(long, default_value = "extended", value_parser = ["extended", "standard"])]
    channel: String,
    /// Local address the miners connect from (a farm behind another
    /// address; on loopback any 127.x.y.z): several generators, each from
    /// its own address, are not limited to one address's ~28,000
    /// ephemeral ports towards one server.
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Address miners connect to.
    #[arg(long, default_value = "0.0.0.0:3333")]
    listen: SocketAddr,
    /// Upstream pool URL (stratum+tcp://host:port); repeat for failover,
    /// in order.
    #[arg(long = "pool", required = true)]
    pools: Vec<sluice_engine::upstream::PoolUrl>,
    /// Pool account to authorize as.
    #[arg(long)]
    user: String,
    /// Pool password.
    #[arg(long, default_value = "x")]
    password: String,
    /// Lowest share difficulty (fractional allowed).
    #[arg(long)]
    min_difficulty: Option<f64>,
    /// Difficulty of a new connection.
    #[arg(long)]
    start_difficulty: Option<f64>,
    /// Submit as user.<worker> instead of under the user alone.
    #[arg(long)]
    pass_through_workers: bool,
    /// The pool's fee, a fraction (for the money figures).
    #[arg(long, default_value_t = 0.0)]
    fee: f64,
    /// How the pools combine rolled version bits with the job version:
    /// `replace` (BIP 310) or `or` (ckpool).
    #[arg(long, value_enum, default_value = "replace")]
    rolling: config::Rolling,
    /// Another host the pools' `client.reconnect` may send us to (their
    /// own host, any port, is always allowed); repeatable.
    #[arg(long = "reconnect-host", value_name = "HOST")]
    reconnect_hosts: Vec<String>,
    /// Do not send `mining.suggest_difficulty` (for pools that refuse it).
    #[arg(long)]
    no_suggest_difficulty: bool,
    #[command(flatten)]
    books: BooksFlags,
    #[command(flatten)]
    v2: V2Flags,
}

#[derive(Debug, Args)]
struct PoolArgs {
    /// Address miners connect to.
    #[arg(long, default_value = "0.0.0.0:3333")]
    listen: SocketAddr,
    /// Seconds between blocks found elsewhere on the network (0: never).
    #[arg(long, default_value_t = 600.0)]
    block_interval: f64,
    /// Network difficulty of the synthetic chain (fractional allowed).
    #[arg(long, default_value_t = 1.0)]
    network_difficulty: f64,
    /// Lowest share difficulty (fractional allowed).
    #[arg(long)]
    min_difficulty: Option<f64>,
    /// Difficulty of a new connection.
    #[arg(long)]
    start_difficulty: Option<f64>,
    /// Seconds between job refreshes without a new block.
    #[arg(long, default_value_t = 30.0)]
    refresh_interval: f64,
    /// Bitcoin Core's RPC (`http://127.0.0.1:8332`); absent: a synthetic
    /// chain.
    #[arg(long, value_name = "URL")]
    bitcoind: Option<String>,
    /// RPC user (with --rpc-password).
    #[arg(long, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// RPC password.
    #[arg(long, requires = "rpc_user")]
    rpc_password: Option<String>,
    /// Or the node's cookie file.
    #[arg(long, value_name = "FILE", conflicts_with = "rpc_user")]
    rpc_cookie: Option<PathBuf>,
    /// The node's ZMQ hashblock publisher (tcp://127.0.0.1:28332).
    #[arg(long, value_name = "URL")]
    zmq_hashblock: Option<String>,
    /// mainnet, testnet4, testnet3, signet or regtest (the node's).
    #[arg(long)]
    network: Option<String>,
    /// Solo: each miner's username is its payout address.
    #[arg(long)]
    solo: bool,
    /// The pool's address: the whole coinbase, or in solo mode the fee.
    #[arg(long, value_name = "ADDRESS")]
    payout_address: Option<String>,
    /// The pool's fee, a fraction (solo: an output to --payout-address).
    #[arg(long, default_value_t = 0.0)]
    fee: f64,
    /// The share ledger: sqlite:PATH or postgres://… (several instances
    /// can share one PostgreSQL ledger).
    #[arg(long, value_name = "URL")]
    ledger: Option<String>,
    /// This instance's name in the ledger.
    #[arg(long, default_value = "sluice")]
    instance: String,
    #[command(flatten)]
    books: BooksFlags,
    #[command(flatten)]
    v2: V2Flags,
}

#[derive(Debug, Args)]
struct WorkersArgs {
    /// The instance's API (its `--api-listen` address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Field to sort by (name, hashrate_submitted, effective_hashprice,
    /// profit_usd_day, efficiency, ...).
    #[arg(long, default_value = "hashrate_submitted")]
    sort: String,
    /// Smallest first (default: largest first; names A to Z).
    #[arg(long)]
    asc: bool,
    /// Window: 1m, 5m, 1h or 24h.
    #[arg(long, default_value = "1h")]
    window: String,
    /// Rows to show.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Only workers whose names start with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Only workers losing money.
    #[arg(long)]
    below_break_even: bool,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ApiArgs {
    /// The instance's API (its `--api-listen` address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct AdviseArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Advise at this network hashprice, USD per PH/s per day (default:
    /// the instance's).
    #[arg(long)]
    hashprice: Option<f64>,
    /// At this BTC price, USD.
    #[arg(long)]
    btc_price: Option<f64>,
    /// At this power price at every hour, USD per kWh.
    #[arg(long)]
    power_price: Option<f64>,
    /// Workers to list.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// `base` (with or without a scheme) joined with `path`.
fn api_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.contains("://") {
        format!("{base}{path}")
    } else {
        format!("http://{base}{path}")
    }
}

#[derive(Debug, Args)]
struct HashpriceArgs {
    /// Network difficulty (`155.97T` or `1.5597e14`).
    #[arg(long, value_parser = sluice::money::parse_difficulty)]
    difficulty: f64,
    /// Block reward in BTC, subsidy plus average fees (e.g. 3.1445).
    #[arg(long)]
    reward: f64,
    /// BTC price in USD.
    #[arg(long)]
    price: f64,
    /// Machine efficiency, J/TH (with --power-price: break-even).
    #[arg(long, requires = "power_price")]
    efficiency: Option<f64>,
    /// Electricity price, USD per kWh.
    #[arg(long, requires = "efficiency")]
    power_price: Option<f64>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// Flags shared by `proxy` and `pool` for the books and the API.
#[derive(Debug, Args)]
struct BooksFlags {
    /// Serve the HTTP API (JSON, /healthz, /readyz, /metrics) here.
    #[arg(long, value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// A fixed BTC price in USD for the money figures.
    #[arg(long, value_name = "USD")]
    btc_price: Option<f64>,
    /// SQLite file the books survive restarts in.
    #[arg(long, value_name = "PATH")]
    books_store: Option<PathBuf>,
    /// File every block candidate is recorded in (fsync'd) before its
    /// miner is answered; "" keeps them in memory only.
    #[arg(long, value_name = "PATH", default_value = "sluice-blocks.jsonl",
          value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from))]
    block_log: PathBuf,
}

/// Flags shared by `proxy` and `pool` for Stratum V2 miners.
#[derive(Debug, Args)]
struct V2Flags {
    /// Serve Stratum V2 miners (Noise) here.
    #[arg(long, value_name = "ADDR")]
    listen_v2: Option<SocketAddr>,
    /// The server identity from `sluice cert` for the V2 listener.
    #[arg(long, value_name = "FILE", conflicts_with = "authority_key")]
    v2_identity: Option<PathBuf>,
    /// Or the authority key from `sluice keygen`: a static key is made and
    /// signed at start.
    #[arg(long, value_name = "FILE")]
    authority_key: Option<PathBuf>,
}

impl V2Flags {
    fn apply(self, cfg: &mut config::Config) {
        cfg.v2.listen = self.listen_v2;
        cfg.v2.identity = self.v2_identity;
        cfg.v2.authority_key = self.authority_key;
    }
}

impl BooksFlags {
    fn apply(self, cfg: &mut config::Config) {
        cfg.api.listen = self.api_listen;
        cfg.books.price.usd = self.btc_price;
        cfg.books.store = self.books_store;
        cfg.blocks.log = Some(self.block_log);
    }
}

#[derive(Debug, Args)]
struct LedgerArgs {
    /// The ledger: sqlite:PATH or postgres://…
    #[arg(long, value_name = "URL")]
    ledger: String,
    #[command(subcommand)]
    what: LedgerCommand,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Every block found, newest first.
    Blocks,
    /// A block's PPLNS payouts.
    Pplns {
        /// The block's hash.
        #[arg(long)]
        block: String,
        /// Window: this many times the block's network difficulty.
        #[arg(long, default_value_t = 2.0)]
        window: f64,
    },
    /// FPPS earnings per worker over a span.
    Fpps {
        /// The span, ending now (1h, 24h, 7d…).
        #[arg(long, default_value = "24h", value_parser = load::parse_duration)]
        since: std::time::Duration,
        /// Pool fee, a fraction.
        #[arg(long, default_value_t = 0.0)]
        fee: f64,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Share-validation throughput per core against the naive baseline and
    /// the raw SHA-256 compression rate (about 7 s; `--quick` for a smoke
    /// run).
    Hash(BenchHashArgs),
}

#[derive(Debug, Args)]
struct BenchHashArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Short measurement slices (well under a second; figures are noisy).
    #[arg(long)]
    quick: bool,
}

fn init_logging(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colours only on a terminal: logs piped to files or journald stay clean.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo draws a live table on the terminal: keep logs to warnings
    // unless asked otherwise.
    let default_demo =
        matches!(cli.command, Command::Demo { .. }) && std::env::var_os("RUST_LOG").is_none();
    init_logging(cli.log.as_deref().or(default_demo.then_some("warn")));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(config::RuntimeSection::default().build()?)
}

fn difficulty_flags(cfg: &mut config::Config, min: Option<f64>, start: Option<f64>) {
    if let Some(m) = min {
        cfg.difficulty.min = m;
        if start.is_none() {
            cfg.difficulty.start = cfg.difficulty.start.max(m);
        }
    }
    if let Some(s) = start {
        cfg.difficulty.start = s;
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let cfg = config::Config::load(&config)?;
            cfg.runtime.build()?.block_on(run::run(cfg))
        }
        Command::Loadgen(a) => {
            if !(0.0..=1.0).contains(&a.bad_fraction) {
                anyhow::bail!("--bad-fraction must be between 0 and 1");
            }
            if a.channel == "standard" && a.url.authority.is_none() {
                anyhow::bail!("--channel standard is for Stratum V2 (a stratum2+tcp:// URL)");
            }
            let args = load::LoadgenArgs {
                url: a.url,
                miners: a.miners,
                duration: a.duration,
                share_rate: a.share_rate,
                hashrate: a.hashrate,
                ramp: a.ramp,
                bad_fraction: a.bad_fraction,
                scenario: a.scenario,
                worker_prefix: a.worker_prefix,
                password: a.password,
                standard_channel: a.channel == "standard",
                bind: a.bind,
            };
            let report = runtime()?.block_on(load::loadgen(args));
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(())
        }
        Command::Demo { miners, duration } => runtime()?.block_on(load::demo(miners, duration)),
        Command::CheckConfig { file } => {
            let cfg = config::Config::load(&file)?;
            print!("{}", cfg.summary());
            println!("ok");
            Ok(())
        }
        Command::Proxy(a) => {
            let mut cfg = config::Config::new(config::Mode::Proxy, a.listen);
            // Each --pool is its own failover level, in the given order.
            cfg.pools = a
                .pools
                .iter()
                .enumerate()
                .map(|(i, url)| config::PoolConfig {
                    password: a.password.clone(),
                    level: i as u32,
                    pass_through_workers: a.pass_through_workers,
                    fee: a.fee,
                    rolling: a.rolling,
                    reconnect_hosts: a.reconnect_hosts.clone(),
                    suggest_difficulty: !a.no_suggest_difficulty,
                    ..config::PoolConfig::new(url.clone(), a.user.clone())
                })
                .collect();
            a.books.apply(&mut cfg);
            a.v2.apply(&mut cfg);
            difficulty_flags(&mut cfg, a.min_difficulty, a.start_difficulty);
            cfg.validate()?;
            runtime()?.block_on(run::run(cfg))
        }
        Command::Pool(a) => {
            let mut cfg = config::Config::new(config::Mode::Pool, a.listen);
            cfg.pool_node = config::PoolNodeConfig {
                network_difficulty: a.network_difficulty,
                block_interval_secs: a.block_interval,
                refresh_interval_secs: a.refresh_interval,
                bitcoind: a.bitcoind,
                rpc_user: a.rpc_user,
                rpc_password: a.rpc_password,
                rpc_cookie: a.rpc_cookie,
                network: a.network,
                solo: a.solo,
                payout_address: a.payout_address,
                fee: a.fee,
                ledger: a.ledger,
                zmq_hashblock: a.zmq_hashblock,
                instance: a.instance,
                ..Default::default()
            };
            a.books.apply(&mut cfg);
            a.v2.apply(&mut cfg);
            difficulty_flags(&mut cfg, a.min_difficulty, a.start_difficulty);
            cfg.validate()?;
            runtime()?.block_on(run::run(cfg))
        }
        Command::Advise(a) => {
            let mut url = api_url(&a.api.api, &format!("/api/v1/advice?limit={}", a.limit));
            for (k, v) in [
                ("hashprice", a.hashprice),
                ("btc_price", a.btc_price),
                ("power_price", a.power_price),
            ] {
                if let Some(v) = v {
                    url.push_str(&format!("&{k}={v}"));
                }
            }
            let v = sluice::money::get_json(&url)?;
            if a.api.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", sluice::advise::advice_text(&v));
            }
            Ok(())
        }
        Command::Routing(a) => {
            let r = sluice::money::get_json(&api_url(&a.api, "/api/v1/routing"))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", sluice::routing::routing_table(&r));
            }
            Ok(())
        }
        Command::Workers(a) => {
            let mut url = api_url(&a.api, "/api/v1/workers");
            url.push_str(&format!(
                "?sort={}&order={}&window={}&limit={}&offset={}",
                a.sort,
                if a.asc { "asc" } else { "desc" },
                a.window,
                a.limit,
                a.offset
            ));
            if let Some(p) = &a.prefix {
                url.push_str(&format!("&prefix={}", sluice::money::url_escape(p)));
            }
            if a.below_break_even {
                url.push_str("&below_break_even=true");
            }
            let page = sluice::money::get_json(&url)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", sluice::money::workers_table(&page));
            }
            Ok(())
        }
        Command::Ledger(a) => {
            use sluice::ledger::Query;
            let q = match a.what {
                LedgerCommand::Blocks => Query::Blocks,
                LedgerCommand::Pplns { block, window } => Query::Pplns { block, window },
                LedgerCommand::Fpps { since, fee } => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis() as u64;
                    Query::Fpps {
                        from_ms: now.saturating_sub(since.as_millis() as u64),
                        to_ms: now + 1,
                        fee,
                    }
                }
            };
            let v = runtime()?.block_on(sluice::ledger::query(&a.ledger, q))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Hashprice(a) => {
            let machine = a.efficiency.zip(a.power_price);
            let r = sluice::money::hashprice(a.difficulty, a.reward, a.price, machine)
                .map_err(anyhow::Error::msg)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.render());
            }
            Ok(())
        }
        Command::Keygen { out } => {
            let public = keys::keygen(&out)?;
            println!("authority_public_key = \"{public}\"");
            println!("# secret key written to {} (owner-only)", out.display());
            Ok(())
        }
        Command::Cert(a) => {
            let from = a
                .valid_from
                .unwrap_or_else(|| keys::unix_now().saturating_sub(keys::DEFAULT_BACKDATE_SECS));
            let secs = u32::try_from(a.valid_for.as_secs()).unwrap_or(u32::MAX);
            let until = from.saturating_add(secs);
            let cert = keys::cert(&a.authority_key, a.renew.as_deref(), from, until, &a.out)?;
            println!(
                "certificate valid from {} to {} (Unix seconds) written to {}",
                cert.valid_from,
                cert.not_valid_after,
                a.out.display()
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Hash(args)) => {
            let (slice, rounds) = if args.quick {
                (Duration::from_millis(10), 2)
            } else {
                (Duration::from_millis(200), 5)
            };
            let report = bench_hash::run(slice, rounds);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", bench_hash::render(&report));
            }
            Ok(())
        }
    }
}
