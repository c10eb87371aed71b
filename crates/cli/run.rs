//! Wiring a [`Config`] into a running engine: connectors, router, result
//! delivery, listener, and a clean shutdown on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use anyhow::Context;
use sluice_books::{Books, Clock};

use crate::books::SharedStore;
use dashmap::DashMap;
use sluice_engine::blocks::BlockLog;
use sluice_engine::connect::{LocalConnector, RemoteConnector, Shared, deliver_results};
use sluice_engine::local::{
    BlockAccepted, BlockRefused, BlockSubmit, LocalConfig, LocalJob, TemplateSource, WorkerTally,
    unix_now,
};
use sluice_engine::router::{PoolEntry, Router, RouterConfig};
use sluice_engine::routing::Routing;
use sluice_engine::server::Engine;
use sluice_engine::stats::Stats;
use sluice_engine::upstream::UpstreamConfig;
use sluice_node::coinbase;
use sluice_node::synthetic::{SyntheticChain, SyntheticConfig};
use sluice_pow::version::RollingRule;
use sluice_pow::{Header, hex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, Rolling};

/// The synthetic chain as a template source.
pub struct SyntheticSource {
    chain: SyntheticChain,
    block_interval: Option<Duration>,
    next_external: Instant,
    /// The tip moved since the last poll.
    tip_moved: bool,
}

impl SyntheticSource {
    /// A chain shaped by the `[pool_node]` settings, its clock at now.
    pub fn new(cfg: &crate::config::PoolNodeConfig) -> anyhow::Result<Self> {
        let now = unix_now();
        let mut sc = SyntheticConfig {
            network_difficulty: cfg.network_difficulty,
            txs_per_block: cfg.txs_per_block,
            start_time: now.saturating_sub(3600),
            ..SyntheticConfig::default()
        };
        if let Some(h) = &cfg.payout_script_hex {
            sc.payout_script = hex::decode(h).context("payout_script_hex")?;
        }
        let mut chain =
            SyntheticChain::new(sc).map_err(|e| anyhow::anyhow!("synthetic chain: {e}"))?;
        chain.set_time(now);
        let block_interval = (cfg.block_interval_secs > 0.0)
            .then(|| Duration::from_secs_f64(cfg.block_interval_secs));
        Ok(Self {
            chain,
            next_external: Instant::now() + block_interval.unwrap_or(Duration::ZERO),
            block_interval,
            tip_moved: false,
        })
    }
}

impl TemplateSource for SyntheticSource {
    fn job(&mut self, now_unix: u32, extranonce_len: usize) -> Result<LocalJob, String> {
        self.chain.set_time(now_unix.max(self.chain.now()));
        let parts = coinbase::build(&self.chain.coinbase_spec(extranonce_len))
            .map_err(|e| e.to_string())?;
        let t = self.chain.template();
        Ok(LocalJob {
            prev_hash: t.prev_hash,
            coinb1: parts.coinb1,
            coinb2: parts.coinb2,
            branches: self.chain.merkle_branches().to_vec(),
            version: t.version,
            nbits: t.bits,
            ntime: t.cur_time,
            height: t.height,
            coinbase_value_sat: t.coinbase_value_sat,
            payout: None,
            // One template per tip: a block on an older tip is stale anyway.
            token: u64::from(t.height),
        })
    }

    fn submit_block(&mut self, _token: u64, header: &Header, coinbase: &[u8]) -> BlockSubmit {
        // Every refusal of the synthetic chain is a verdict on the block.
        let r = self
            .chain
            .submit_block(header, coinbase)
            .map(|f| BlockAccepted {
                height: f.height,
                hash: hex::encode_reversed(&f.hash),
            })
            .map_err(|e| BlockRefused {
                reason: e.to_string(),
                is_final: true,
            });
        if r.is_ok() {
            self.tip_moved = true;
            if let Some(iv) = self.block_interval {
                self.next_external = Instant::now() + iv;
            }
        }
        Box::pin(std::future::ready(r))
    }

    fn poll(&mut self, now_unix: u32) -> bool {
        if std::mem::take(&mut self.tip_moved) {
            return true;
        }
        match self.block_interval {
            Some(iv) if Instant::now() >= self.next_external => {
                self.chain.advance_external(now_unix.max(self.chain.now()));
                self.next_external = Instant::now() + iv;
                tracing::info!(
                    height = self.chain.height(),
                    "new block from elsewhere on the network"
                );
                true
            }
            _ => false,
        }
    }
}

/// The pool node's one upstream over `source`, booking into `ledger`.
fn local_connector<S: TemplateSource>(
    source: S,
    cfg: &LocalConfig,
    shared: &Shared,
    ledger: &Option<Arc<sluice_books::ledger::Ledger>>,
) -> LocalConnector<S> {
    let mut local = LocalConnector::new(source, cfg.clone(), shared.clone());
    local.ledger = ledger.clone();
    local
}

/// Connects to Bitcoin Core (waiting while it is away or syncing) and
/// checks the payout address with it.
async fn core_source(
    n: &crate::config::PoolNodeConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<crate::core_source::CoreSource> {
    use sluice_node::rpc::RpcClient;
    let url = n.bitcoind.as_deref().unwrap_or_default();
    let rpc = RpcClient::new(url, n.rpc_auth()?, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!(e))?;
    let net = n.network()?;
    let core_cfg = sluice_node::CoreConfig {
        poll_interval: Duration::from_secs_f64(n.tip_poll_secs),
        refresh_interval: Duration::from_secs_f64(n.refresh_interval_secs),
        zmq_hashblock: n.zmq_hashblock.clone(),
        ..Default::default()
    };
    let core = sluice_node::CoreTemplates::connect(
        rpc,
        core_cfg,
        sluice_node::payout::core_chain(net),
        cancel,
    )
    .await
    .with_context(|| format!("bitcoind at {url}"))?;
    let script = n.payout_script()?;
    if let Some(a) = &n.payout_address
        && !core.rpc().validate_address(a).await?
    {
        anyhow::bail!("bitcoind calls pool_node.payout_address {a:?} invalid");
    }
    let payout = match (n.solo, script) {
        (true, pool) => crate::core_source::Payout::Solo { fee: n.fee, pool },
        (false, Some(s)) => crate::core_source::Payout::Pool(s),
        (false, None) => anyhow::bail!("pool_node.payout_address is needed in pool mode"),
    };
    core.spawn(cancel.clone());
    tracing::info!(url, network = %net, solo = n.solo, "jobs from bitcoind");
    Ok(crate::core_source::CoreSource::new(
        core,
        payout,
        // The instance's name in every coinbase: instances of one pool
        // (one ledger) never hand out the same work.
        format!("{}{}/", n.coinbase_tag, n.instance).into_bytes(),
    ))
}

/// A running instance (for the binary and for tests of the wiring).
pub struct Running {
    /// The engine (counters, router).
    pub engine: Arc<Engine>,
    /// The bound listener; pass it to [`Engine::serve`].
    pub listener: TcpListener,
    /// The V2 listener when configured, with the identity it serves and
    /// the authority key miners check it against ([`Engine::serve_v2`]).
    pub listener_v2: Option<(
        TcpListener,
        Arc<sluice_sv2::noise::ResponderConfig>,
        sluice_sv2::noise::AuthorityPublicKey,
    )>,
    /// Pool-node role: accepted shares per worker as the pool booked them.
    pub pool_workers: Option<Arc<DashMap<Arc<str>, WorkerTally>>>,
    /// Pool-node role: blocks found.
    pub blocks: Option<Arc<std::sync::Mutex<Vec<BlockAccepted>>>>,
    /// Pool-node role: the share ledger, when kept.
    pub ledger: Option<Arc<sluice_books::ledger::Ledger>>,
    /// Per-worker books.
    pub books: Arc<Books>,
    /// Their store, when configured.
    pub store: Option<SharedStore>,
    /// Where the HTTP API listens, when enabled.
    pub api: Option<SocketAddr>,
    /// The routing task (its report).
    pub routing: Arc<Routing>,
}

/// A miners' listener. With `reuse_port`, other processes that set it too
/// may listen on the same address, and the kernel spreads new connections
/// across them (how several instances share one port: each holds its own
/// open-files limit's worth of miners).
fn bind_listener(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does on Unix: a restart need not wait for
    // TIME_WAIT (on Windows the option would let others take the port).
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        #[cfg(not(unix))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "listen.reuse_port needs SO_REUSEPORT (Linux, BSD)",
        ));
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Builds everything a config describes and binds the listener.
pub async fn start(cfg: &Config, cancel: CancellationToken) -> anyhow::Result<Running> {
    let stats = Arc::new(Stats::default());
    let books = Arc::new(Books::new(cfg.books_config(), Clock::new()));
    let store = match &cfg.books.store {
        Some(path) => Some(crate::books::open_store(path, &books)?),
        None => None,
    };
    let (mut shared, results_rx) = Shared::new(stats.clone(), cancel.clone());
    shared.books = Some(books.clone());
    // The pool node's one local upstream takes every session's shares (a
    // remote pool connection takes at most max_sessions_per_upstream):
    // its queue is sized for that, so a busy moment is not refused work.
    shared.share_queue = match cfg.mode {
        Mode::Proxy => cfg.routing.share_queue,
        Mode::Pool => cfg.routing.share_queue.saturating_mul(16),
    };
    if let Some(path) = cfg
        .blocks
        .log
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        shared.block_log = Arc::new(BlockLog::open(path, stats.clone())?);
    }
    let block_log = shared.block_log.clone();
    let geometry = cfg.geometry();
    let session_cfg = cfg.session_config();
    let r = &cfg.routing;
    let router_cfg = RouterConfig {
        max_sessions_per_upstream: r.max_sessions_per_upstream.max(1),
        rebalance_interval: Duration::from_secs_f64(r.rebalance_interval_secs.max(0.1)),
        rebalance_tolerance: r.rebalance_tolerance,
        failback_after: Duration::from_secs_f64(r.failback_after_secs.max(0.0)),
        ..RouterConfig::default()
    };
    let mut pool_workers = None;
    let mut blocks = None;
    let mut ledger = None;
    let mut node_stats = None;
    let pools: Vec<PoolEntry> = match cfg.mode {
        Mode::Proxy => cfg
            .pools
            .iter()
            .map(|p| PoolEntry {
                name: p.url.to_string(),
                weight: p.weight,
                level: p.level,
                connector: Box::new(RemoteConnector {
                    cfg: Arc::new(UpstreamConfig {
                        url: p.url.clone(),
                        user: p.user.clone(),
                        password: p.password.clone(),
                        pass_through_workers: p.pass_through_workers,
                        rolling_rule: match p.rolling {
                            Rolling::Replace => RollingRule::Replace,
                            Rolling::Or => RollingRule::Or,
                        },
                        version_mask: session_cfg.version_mask,
                        geometry,
                        stall_timeout: Duration::from_secs(p.stall_timeout_secs.max(1)),
                        connect_timeout: Duration::from_secs(5),
                        max_consecutive_rejects: p.max_consecutive_rejects.max(1),
                        max_line: sluice_sv1::DEFAULT_MAX_UPSTREAM_LINE,
                        user_agent: format!("sluice/{}", env!("CARGO_PKG_VERSION")),
                        reconnect_hosts: p.reconnect_hosts.clone(),
                        suggest_difficulty: p.suggest_difficulty,
                    }),
                    shared: shared.clone(),
                }) as Box<dyn sluice_engine::router::Connector>,
            })
            .collect(),
        Mode::Pool => {
            let local_cfg = LocalConfig {
                refresh_interval: Duration::from_secs_f64(cfg.pool_node.refresh_interval_secs),
                version_mask: session_cfg.version_mask,
                extranonce_len: geometry.prefix_len + geometry.downstream_len,
            };
            if let Some(url) = &cfg.pool_node.ledger {
                let l = sluice_books::ledger::Ledger::open(sluice_books::ledger::LedgerConfig {
                    url: url.clone(),
                    instance: cfg.pool_node.instance.clone(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("opening the ledger {url}"))?;
                ledger = Some(l);
            }
            let connector: Box<dyn sluice_engine::router::Connector> =
                if cfg.pool_node.bitcoind.is_some() {
                    let source = core_source(&cfg.pool_node, &cancel).await?;
                    node_stats = Some(source.node_stats());
                    let l = local_connector(source, &local_cfg, &shared, &ledger);
                    (pool_workers, blocks) = (Some(l.workers.clone()), Some(l.found.clone()));
                    Box::new(l)
                } else {
                    let source = SyntheticSource::new(&cfg.pool_node)?;
                    let l = local_connector(source, &local_cfg, &shared, &ledger);
                    (pool_workers, blocks) = (Some(l.workers.clone()), Some(l.found.clone()));
                    Box::new(l)
                };
            vec![PoolEntry {
                name: crate::config::POOL_NODE_NAME.into(),
                weight: 1.0,
                level: 0,
                connector,
            }]
        }
    };
    let router = Router::new(router_cfg, pools);
    tokio::spawn(deliver_results(
        router.clone(),
        results_rx,
        Some(books.clone()),
    ));
    tokio::spawn(router.clone().run(cancel.clone()));
    let routing = {
        let (names, limits) = match cfg.mode {
            Mode::Proxy => cfg
                .pools
                .iter()
                .map(|p| (p.url.to_string(), (p.floor, p.ceiling)))
                .unzip(),
            Mode::Pool => (
                vec![crate::config::POOL_NODE_NAME.to_string()],
                vec![(0.0, 1.0)],
            ),
        };
        let routing = Routing::new(
            cfg.routing_settings(),
            books.clone(),
            router.clone(),
            names,
            limits,
        );
        tokio::spawn(routing.clone().run(cancel.clone()));
        routing
    };
    let listener = bind_listener(cfg.listen.address, cfg.listen.reuse_port)
        .with_context(|| format!("binding {}", cfg.listen.address))?;
    let listener_v2 = match cfg.v2.listen {
        Some(addr) => {
            let (identity, authority) = crate::keys::server_identity(
                cfg.v2.identity.as_deref(),
                cfg.v2.authority_key.as_deref(),
            )?;
            let l = bind_listener(addr, cfg.listen.reuse_port)
                .with_context(|| format!("binding {addr} (v2)"))?;
            Some((l, Arc::new(identity), authority))
        }
        None => None,
    };
    let engine = Engine::new(
        stats.clone(),
        session_cfg,
        cfg.server_config(),
        geometry,
        router.clone(),
        cancel.clone(),
        Some(books.clone()),
        block_log.clone(),
    );
    tokio::spawn(crate::memory::trim_loop(
        crate::memory::TRIM_CHECK,
        crate::memory::TRIM_INTERVAL,
        cancel.clone(),
    ));
    tokio::spawn(crate::books::snapshot_loop(
        store.clone(),
        books.clone(),
        Duration::from_secs_f64(cfg.books.snapshot_interval_secs),
        cancel.clone(),
    ));
    tokio::spawn(crate::books::price_feed(
        cfg.books.price.clone(),
        books.clone(),
        cancel.clone(),
    ));
    tokio::spawn(crate::books::power_feed(
        cfg.books.power.clone(),
        books.clone(),
        cancel.clone(),
    ));
    let api = match cfg.api.listen {
        Some(addr) => {
            let mode = match cfg.mode {
                Mode::Proxy => "proxy",
                Mode::Pool => "pool",
            };
            let state = sluice_api::ApiState::new(
                books.clone(),
                stats,
                router,
                block_log,
                mode,
                ledger.as_ref().map(|l| l.stats().clone()),
                node_stats,
            )
            .with_routing(routing.clone());
            let state = Arc::new(state);
            Some(
                sluice_api::spawn(addr, state, cancel)
                    .await
                    .with_context(|| format!("binding the API on {addr}"))?,
            )
        }
        None => None,
    };
    Ok(Running {
        engine,
        listener,
        listener_v2,
        pool_workers,
        blocks,
        ledger,
        books,
        store,
        api,
        routing,
    })
}

/// Runs a config until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let running = start(&cfg, cancel.clone()).await?;
    let addr = running.listener.local_addr()?;
    // Signal handlers go in before the address is printed: a supervisor
    // (or a test) may send SIGTERM the moment it reads it.
    let shutdown = Shutdown::install();
    // Machine-readable lines on stdout: tests and scripts read the ports.
    // Whoever started us may have stopped reading (a closed pipe): that
    // must not bring down a proxy, so write errors are ignored.
    let mut lines = format!("listening on stratum+tcp://{addr}\n");
    if let Some((l, _, authority)) = &running.listener_v2 {
        lines.push_str(&format!(
            "listening on stratum2+tcp://{}/{authority}\n",
            l.local_addr()?
        ));
    }
    if let Some(api) = running.api {
        lines.push_str(&format!("api on http://{api}\n"));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(%addr, api = ?running.api, mode = ?cfg.mode, "sluice is up");
    let engine = running.engine.clone();
    let serve = tokio::spawn(engine.serve(running.listener));
    let serve_v2 = running
        .listener_v2
        .map(|(l, identity, _)| tokio::spawn(running.engine.clone().serve_v2(l, identity)));
    shutdown.wait().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), serve).await;
    if let Some(v2) = serve_v2 {
        let _ = tokio::time::timeout(Duration::from_secs(10), v2).await;
    }
    // Whatever the block log was told last (submissions, verdicts) is on
    // disk before the process ends.
    running.engine.blocks.sync().await;
    // Every share answered before the stop is in the ledger.
    if let Some(l) = &running.ledger {
        match tokio::time::timeout(Duration::from_secs(30), l.flush()).await {
            Ok(Ok(())) => tracing::info!("ledger flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "ledger flush failed"),
            Err(_) => tracing::error!("ledger flush timed out after 30 s"),
        }
    }
    if let Some(store) = running.store {
        let books = running.books;
        let _ = tokio::task::spawn_blocking(move || crate::books::snapshot(&store, &books)).await;
    }
    Ok(())
}

/// SIGINT and SIGTERM, registered at once.
struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                signals: signal(SignalKind::terminate())
                    .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
