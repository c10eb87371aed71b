//! The downstream listener and the task that owns each miner connection.
//!
//! Limits are explicit: a global semaphore and a per-IP cap on accept, a
//! bounded line length, handshake and idle timeouts, and a write timeout —
//! a miner that stops reading is disconnected, never buffered for. Each
//! connection runs in its own task with a tracing span; nothing on the
//! share path takes a lock.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dashmap::DashMap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::blocks::BlockLog;
use crate::extranonce::Geometry;
use crate::limits::{NameQuota, Prefixes};
use crate::mailbox::Mailbox;
use crate::router::{Router, SessionEvent};
use crate::scratch::{self, poll_read_into};
use crate::session::{Output, Session, SessionConfig, V2Conn};
use crate::stats::{Disconnect, Stats};
use sluice_sv1::{LineCodec, LineError};
use sluice_sv2::codec::{NoiseDecoder, NoiseEncoder};
use sluice_sv2::frame::{DEFAULT_MAX_PAYLOAD, Frame, HEADER_LEN, Header};
use sluice_sv2::noise::ResponderConfig;

/// Listener limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections per source IP.
    pub max_per_ip: usize,
    /// Time to subscribe and authorize (checked on the session tick, so
    /// up to 5 s late).
    pub handshake_timeout: Duration,
    /// Time without any line before the connection is dropped (checked
    /// on the session tick, so up to 5 s late).
    pub idle_timeout: Duration,
    /// Time a write may take before the miner counts as a slow reader.
    pub write_timeout: Duration,
    /// Longest line from a miner.
    pub max_line: usize,
    /// Worker names held at once by all connections from one address.
    pub max_names_per_ip: usize,
    /// How long a session may sit on a failed upstream, with no other to
    /// move to, before its miner is disconnected (so that its own backup
    /// pools take over). Its shares are answered error 20 meanwhile.
    pub no_upstream_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_per_ip: 8_192,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
            max_line: sluice_sv1::DEFAULT_MAX_LINE,
            max_names_per_ip: 16_384,
            no_upstream_grace: Duration::from_secs(20),
        }
    }
}

/// Writes `data`, trying the socket without a timer first (it nearly always
/// has room); only a full socket waits, bounded by `timeout`, after which
/// the miner counts as a slow reader.
async fn write_bounded(
    wr: &mut tokio::net::tcp::WriteHalf<'_>,
    data: &[u8],
    timeout: Duration,
) -> Result<(), Disconnect> {
    let mut off = 0;
    while off < data.len() {
        match wr.try_write(&data[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return Err(Disconnect::Io),
        }
    }
    if off == data.len() {
        return Ok(());
    }
    // Boxed: the timer and write state would otherwise sit in every
    // connection's task for a path few of them ever take.
    match Box::pin(tokio::time::timeout(timeout, wr.write_all(&data[off..]))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Disconnect::Io),
        Err(_) => Err(Disconnect::SlowReader),
    }
}

/// What a connection holds from its accept to its end, given back however
/// its task ends (a panic included): a place in its address's count and a
/// connection permit and, once the router took the session, its router
/// slot and its place in the session count (the session core gives back
/// its own prefix and names).
///
/// One value that the connection's task keeps once: the engine, the
/// session id and the mailbox were kept two or three times over (as the
/// task's arguments, in an address guard, in a session guard), bytes of
/// every connection's task.
struct Admission {
    engine: Arc<Engine>,
    id: u64,
    mailbox: Arc<Mailbox>,
    ip: IpAddr,
    /// The router holds the session: release it at the end.
    assigned: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Admission {
    /// Undoes the session's registrations, once.
    fn end_session(&mut self) {
        if !std::mem::take(&mut self.assigned) {
            return;
        }
        let engine = &self.engine;
        // Refusals that arrived as the session ended: their shares were
        // answered `true`, so the books still take them back.
        for ev in self.mailbox.close() {
            if let (SessionEvent::Result(r), Some(b)) = (ev, &engine.books)
                && let Some(w) = r.share.worker.as_deref().and_then(|n| b.find_worker(n))
            {
                crate::session::book_reversal(b, &w, &r, Instant::now());
            }
        }
        engine.router.release(self.id);
        engine.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.end_session();
        self.engine.per_ip.remove_if_mut(&self.ip, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

/// What woke a connection's task.
enum Wake {
    /// The socket: bytes read, its end, or an error.
    Read(std::io::Result<usize>),
    /// The mailbox.
    Event(SessionEvent),
}

/// A time as hundredths of a second since the engine began, wrapping: 4
/// bytes in every connection's task where an `Instant` takes 16.
/// Differences are right for spans under 497 days; a session's deadlines
/// are checked every few seconds.
type Stamp = u32;

/// Whether `span` has passed from `from` to `to`.
fn passed(from: Stamp, to: Stamp, span: Duration) -> bool {
    u128::from(to.wrapping_sub(from)) * 10 >= span.as_millis()
}

/// Everything sessions share.
pub struct Engine {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Session policy.
    pub session_cfg: Arc<SessionConfig>,
    /// Listener limits.
    pub server_cfg: ServerConfig,
    /// Extranonce split.
    pub geometry: Geometry,
    /// Routing.
    pub router: Arc<Router>,
    /// Extranonce prefixes (taken at subscribe).
    pub prefixes: Arc<Prefixes>,
    /// Worker names per source address.
    pub names: Arc<NameQuota>,
    /// Where blocks are recorded before anything else happens to them.
    pub blocks: Arc<BlockLog>,
    next_session: AtomicU64,
    /// What connections' time stamps count from.
    epoch: Instant,
    per_ip: DashMap<IpAddr, usize>,
    /// Stops everything.
    pub cancel: CancellationToken,
    /// Session tasks, for a clean shutdown.
    pub tracker: TaskTracker,
    /// Per-worker books, when kept.
    pub books: Option<Arc<sluice_books::Books>>,
    /// The sessions' clock, started with the first listener.
    ticks: std::sync::OnceLock<crate::ticks::Ticks>,
}

impl Engine {
    /// Assembles an engine around a router.
    #[allow(clippy::too_many_arguments)] // wiring: one of each part
    pub fn new(
        stats: Arc<Stats>,
        session_cfg: SessionConfig,
        server_cfg: ServerConfig,
        geometry: Geometry,
        router: Arc<Router>,
        cancel: CancellationToken,
        books: Option<Arc<sluice_books::Books>>,
        blocks: Arc<BlockLog>,
    ) -> Arc<Self> {
        Arc::new(Self {
            stats,
            session_cfg: Arc::new(session_cfg),
            prefixes: Arc::new(Prefixes::new(geometry.prefix_len)),
            names: Arc::new(NameQuota::new(server_cfg.max_names_per_ip)),
            blocks,
            server_cfg,
            geometry,
            router,
            next_session: AtomicU64::new(1),
            epoch: Instant::now(),
            per_ip: DashMap::new(),
            cancel,
            tracker: TaskTracker::new(),
            books,
            ticks: std::sync::OnceLock::new(),
        })
    }

    /// The sessions' clock (its timer tasks start on first use, in the
    /// runtime).
    fn ticks(&self) -> &crate::ticks::Ticks {
        self.ticks
            .get_or_init(|| crate::ticks::Ticks::start(tick_period(&self.server_cfg), &self.cancel))
    }

    /// `now` as a connection keeps it.
    fn stamp(&self, now: Instant) -> Stamp {
        // Wraps by design (see `Stamp`).
        (now.saturating_duration_since(self.epoch).as_millis() / 10) as Stamp
    }

    /// Connections held, those still in their handshake included.
    pub fn open_connections(&self) -> usize {
        self.per_ip.iter().map(|e| *e.value()).sum()
    }

    /// Accepts Stratum V1 miners until cancelled, then waits for sessions
    /// to close.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.accept_loop(listener, None).await;
    }

    /// Accepts Stratum V2 miners (Noise, with this identity) until
    /// cancelled, under the same limits as V1 and with the same books,
    /// routing and failover.
    pub async fn serve_v2(self: Arc<Self>, listener: TcpListener, identity: Arc<ResponderConfig>) {
        self.accept_loop(listener, Some(identity)).await;
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, v2: Option<Arc<ResponderConfig>>) {
        // Started before the first miner: its timer tasks are there from
        // the start, not counted as something a connection left behind.
        self.ticks();
        let sem = Arc::new(Semaphore::new(self.server_cfg.max_connections));
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.cancel.cancelled() => break,
            };
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                self.stats
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let ip = peer.ip();
            {
                let mut n = self.per_ip.entry(ip).or_insert(0);
                if *n >= self.server_cfg.max_per_ip {
                    drop(n);
                    self.stats
                        .refused_connections
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                *n += 1;
            }
            let id = self.next_session.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!("session", id, %peer);
            let admission = Admission {
                engine: self.clone(),
                id,
                mailbox: Arc::new(Mailbox::default()),
                ip,
                assigned: false,
                _permit: permit,
            };
            self.tracker
                .spawn(Engine::connection(stream, v2.clone(), admission).instrument(span));
        }
        // Sessions hear of the shutdown through their mailboxes.
        self.router.close_all();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// A V2 miner's Noise handshake, within the handshake deadline (the
    /// one subscribe/authorize has in V1).
    async fn handshake(
        &self,
        stream: &mut TcpStream,
        identity: &ResponderConfig,
    ) -> Result<Wire, Disconnect> {
        let shake = sluice_sv2::codec::accept(stream, identity, DEFAULT_MAX_PAYLOAD);
        let shake = tokio::time::timeout(self.server_cfg.handshake_timeout, shake);
        // A stop does not wait out a handshake (the session is not yet in
        // the router, whose mailboxes carry the stop).
        let shaken = tokio::select! {
            r = shake => r,
            _ = self.cancel.cancelled() => return Err(Disconnect::Shutdown),
        };
        match shaken {
            Ok(Ok(codec)) => {
                let (enc, dec) = codec.into_split();
                Ok(Wire::Noise(Box::new((dec, enc, BytesMut::new()))))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "noise handshake failed");
                Err(Disconnect::Protocol)
            }
            Err(_) => Err(Disconnect::HandshakeTimeout),
        }
    }

    /// A connection from accept to its end, in one future: it holds each
    /// of its parts once (a call into another async function would keep
    /// the caller's arguments beside the callee's copies for the
    /// connection's whole life).
    ///
    /// Every connection's task holds this future for its whole life, so
    /// what lives across its awaits is kept small: the wake-up's outputs
    /// and lines are lent by the thread and given back before any await,
    /// times are [`Stamp`]s, and the latest job is found by its number.
    #[allow(clippy::manual_async_fn)] // see the comment on the block
    fn connection(
        mut stream: TcpStream,
        v2: Option<Arc<ResponderConfig>>,
        mut admission: Admission,
    ) -> impl Future<Output = ()> + Send + 'static {
        // A block, not an `async fn`: an async fn's future keeps each
        // argument twice (as passed, and as the binding moved from it).
        async move {
            let reason = 'conn: {
                let _ = stream.set_nodelay(true);
                // A V2 miner shakes hands before it takes a router slot; the
                // handshake deadline is the one subscribe/authorize has in V1.
                let mut wire = match v2 {
                    None => Wire::Lines(LineCodec::new(admission.engine.server_cfg.max_line)),
                    // Boxed: the handshake's state is needed once, and
                    // inline it would stay in the task's size for the
                    // connection's whole life.
                    Some(identity) => {
                        match Box::pin(admission.engine.handshake(&mut stream, &identity)).await {
                            Ok(wire) => wire,
                            Err(d) => break 'conn d,
                        }
                    }
                };
                let Some(mut up) = admission
                    .engine
                    .router
                    .assign(admission.id, admission.mailbox.clone())
                else {
                    if admission.engine.cancel.is_cancelled() {
                        break 'conn Disconnect::Shutdown;
                    }
                    break 'conn Disconnect::NoUpstream;
                };
                admission.assigned = true;
                admission
                    .engine
                    .stats
                    .sessions
                    .fetch_add(1, Ordering::Relaxed);
                // The peer's address is in the span.
                tracing::debug!(upstream = up.id, "session assigned");
                let ip = admission.ip;
                // Borrowed halves: `into_split` shares the socket through
                // an allocation of its own (48 bytes a connection).
                let (mut rd, mut wr) = stream.split();
                // Only what a read brought and the lines did not use up (a partial
                // line, a partial frame); empty, it holds no memory (see
                // `poll_read_into`).
                let mut buf = BytesMut::new();
                let started = Instant::now();
                let mut core = match wire {
                    Wire::Lines(_) => {
                        let mut c = Session::new(
                            admission.id,
                            admission.engine.session_cfg.clone(),
                            admission.engine.stats.clone(),
                            Vec::new(),
                            admission.engine.geometry.downstream_len,
                            started,
                        )
                        .with_prefixes(admission.engine.prefixes.clone());
                        c = c.with_name_quota(admission.engine.names.clone(), ip);
                        if let Some(b) = &admission.engine.books {
                            c = c.with_books(b.clone(), Some(ip));
                        }
                        Conn::V1(c)
                    }
                    Wire::Noise(_) => {
                        let mut c = V2Conn::new(
                            admission.id,
                            admission.engine.session_cfg.clone(),
                            admission.engine.stats.clone(),
                            admission.engine.prefixes.clone(),
                            admission.engine.geometry.downstream_len,
                        );
                        c = c.with_name_quota(admission.engine.names.clone(), ip);
                        if let Some(b) = &admission.engine.books {
                            c = c.with_books(b.clone(), Some(ip));
                        }
                        Conn::V2(c)
                    }
                };
                // Jobs come as a flag in the mailbox (see `fanout`); the
                // upstream's channel holds the latest, and the session
                // keeps the number of the one it last took (process-wide
                // and never 0, so 0 takes whatever is there).
                let mut seen_job: u64 = 0;
                up.listeners
                    .add(&admission.mailbox, admission.mailbox.follow(up.id));
                // The last line once the session is ready; until then its
                // start, which the handshake deadline counts from (one
                // time kept instead of two).
                let mut last_line = admission.engine.stamp(started);
                // One tick for vardiff, the no-upstream grace and the handshake
                // and idle deadlines, which it checks: a deadline passes at most a
                // tick late (5 s, or a quarter of the shortest timeout). It comes
                // through the mailbox from the engine's clock (`ticks`), not a
                // timer in every connection's task.
                admission
                    .engine
                    .ticks()
                    .join(admission.id, &admission.mailbox);
                // Since when the session's upstream has been down (it is moved off
                // at once if another pool is up; otherwise the miner is told).
                let mut down_since: Option<Stamp> = None;
                loop {
                    // Everything a wake-up borrows is scoped to this block,
                    // which ends before the awaits below: a local that was
                    // borrowed is kept in the task's state across every
                    // await in its scope, moved out or not.
                    let (payload, blocks_sent, ended, disconnect) = {
                        let wake = tokio::select! {
                            r = std::future::poll_fn(|cx| poll_read_into(&mut rd, cx, &mut buf)) => Wake::Read(r),
                            ev = admission.mailbox.recv() => Wake::Event(ev),
                        };
                        // Here, not beside `admission`: a reference kept across the awaits
                        // below would be 8 bytes of the task's state for each.
                        let this = &admission.engine;
                        let mailbox = &admission.mailbox;
                        let now = Instant::now();
                        // What ends the connection once this wake-up's
                        // outputs are out: shares accepted before a bad
                        // line in the same read are booked, and a block
                        // among them must reach its pool, so they are not
                        // dropped with the connection.
                        let mut ended = None;
                        // Lent by the thread (`scratch`) for what the
                        // wake-up produces.
                        let mut out: Vec<Output> = Vec::new();
                        match wake {
                            Wake::Read(Ok(0) | Err(_)) => break 'conn Disconnect::PeerClosed,
                            Wake::Read(Ok(_)) => {
                                out = scratch::lend(&scratch::OUTPUTS);
                                if let Err(d) = read(&mut wire, &mut core, &mut buf, now, &mut out)
                                {
                                    ended = Some(d);
                                }
                                if core.is_ready() {
                                    last_line = this.stamp(now);
                                }
                                if buf.is_empty() {
                                    buf = BytesMut::new();
                                }
                            }
                            // A closed channel (the upstream task ended) is
                            // not read: the router moves the session.
                            Wake::Event(SessionEvent::JobReady) => {
                                if up.jobs.has_changed().is_ok() {
                                    // Cloned in a statement of its own: the
                                    // channel's read lock is let go before the
                                    // job is handled.
                                    let job = up.jobs.borrow().clone();
                                    if let Some(job) = job
                                        && job.id != seen_job
                                    {
                                        seen_job = job.id;
                                        out = scratch::lend(&scratch::OUTPUTS);
                                        core.on_job(job, now, &mut out);
                                    }
                                }
                            }
                            Wake::Event(SessionEvent::Move { to, old_failed }) => {
                                tracing::debug!(from = up.id, to = to.id, old_failed, "moved");
                                core.on_moved(up.id, old_failed);
                                up = to;
                                // The new upstream's latest job, whatever it is.
                                seen_job = 0;
                                up.listeners.add(mailbox, mailbox.follow(up.id));
                            }
                            Wake::Event(SessionEvent::Result(r)) => {
                                core.on_upstream_result(&r, now)
                            }
                            Wake::Event(SessionEvent::Close) => break 'conn Disconnect::Shutdown,
                            Wake::Event(SessionEvent::Tick) => {
                                let at = this.stamp(now);
                                if core.is_ready() {
                                    if passed(last_line, at, this.server_cfg.idle_timeout) {
                                        break 'conn Disconnect::IdleTimeout;
                                    }
                                } else if passed(last_line, at, this.server_cfg.handshake_timeout) {
                                    break 'conn Disconnect::HandshakeTimeout;
                                }
                                out = scratch::lend(&scratch::OUTPUTS);
                                core.on_tick(now, &mut out);
                                // Down is anything but ready: a pool that keeps
                                // failing spends much of its time "connecting".
                                if !matches!(*up.health.borrow(), crate::upstream::Health::Ready) {
                                    let since = *down_since.get_or_insert(at);
                                    if passed(since, at, this.server_cfg.no_upstream_grace) {
                                        tracing::info!(grace = ?this.server_cfg.no_upstream_grace, "no pool for the grace period; disconnecting so the miner's backup pools take over");
                                        break 'conn Disconnect::NoUpstream;
                                    }
                                } else {
                                    down_since = None;
                                }
                            }
                        }
                        // Forwards first (a block before anything else), then one write.
                        let mut disconnect = None;
                        let mut blocks_sent = false;
                        let mut sends: Vec<bytes::Bytes> = if out.is_empty() {
                            Vec::new()
                        } else {
                            scratch::lend(&scratch::SENDS)
                        };
                        for o in out.drain(..) {
                            match o {
                                Output::Send(b) => sends.push(b),
                                Output::Forward(f) => {
                                    let Some(block) = f.send() else { continue };
                                    // A block: recorded, sent at once on its own path
                                    // (no share queue in front of it), then made
                                    // durable before the miner hears anything.
                                    let id = this.blocks.found(&block);
                                    let tx = block.job.links.block_tx.clone();
                                    if let Err(e) =
                                        tx.send(crate::job::BlockForward { id, share: block })
                                    {
                                        this.blocks.set(
                                            id,
                                            crate::blocks::BlockStatus::Failed,
                                            Some("its upstream task is gone".into()),
                                        );
                                        core.on_upstream_result(
                                            &crate::upstream::UpstreamResult::undelivered(
                                                &e.0.share,
                                                &this.stats,
                                            ),
                                            Instant::now(),
                                        );
                                    }
                                    blocks_sent = true;
                                }
                                Output::Disconnect(d) => disconnect = Some(d),
                            }
                        }
                        scratch::give_back(&scratch::OUTPUTS, out);
                        if let Wire::Noise(noise) = &mut wire
                            && !sends.is_empty()
                        {
                            // Each frame is encrypted on its way out; a frame that does
                            // not encrypt ends the connection (the transport is spent),
                            // once a block among the forwards is durable.
                            let mut spent = false;
                            for b in sends.drain(..) {
                                let Some(head) = b.first_chunk::<HEADER_LEN>() else {
                                    continue;
                                };
                                let frame = Frame {
                                    header: Header::decode(head),
                                    payload: b.slice(HEADER_LEN..),
                                };
                                if tokio_util::codec::Encoder::encode(
                                    &mut noise.1,
                                    &frame,
                                    &mut noise.2,
                                )
                                .is_err()
                                {
                                    spent = true;
                                    break;
                                }
                            }
                            if spent {
                                sends.clear();
                                ended = Some(Disconnect::Protocol);
                            } else {
                                sends.push(noise.2.split().freeze());
                            }
                        }
                        // One line (a reply, a job) goes from its shared
                        // bytes; lines written together (a job with its
                        // difficulty, replies batched by one read) are
                        // copied into one buffer that is not kept: a
                        // kilobyte per idle connection costs more than an
                        // allocation every few seconds.
                        let payload = match sends.len() {
                            0 | 1 => sends.pop(),
                            _ => Some(bytes::Bytes::from(sends.concat())),
                        };
                        scratch::give_back(&scratch::SENDS, sends);
                        (payload, blocks_sent, ended, disconnect)
                    };
                    // Durable before the miner hears anything (nothing is
                    // sent until the write below).
                    if blocks_sent {
                        admission.engine.blocks.sync().await;
                    }
                    let written = match &payload {
                        None => Ok(()),
                        Some(p) => {
                            write_bounded(&mut wr, p, admission.engine.server_cfg.write_timeout)
                                .await
                        }
                    };
                    if let Some(d) = ended {
                        break 'conn d;
                    }
                    if let Err(d) = written {
                        break 'conn d;
                    }
                    let c = core.counters();
                    admission.mailbox.work().set(c.accepted_work, c.accepted);
                    if let Some(d) = disconnect {
                        break 'conn d;
                    }
                }
            };
            // The miner hears the end (a FIN) before the session's
            // registrations go, as when its write half was dropped.
            let _ = stream.shutdown().await;
            admission.end_session();
            admission.engine.stats.disconnect(reason);
            tracing::debug!(reason = reason.label(), "session closed");
            drop(admission);
        }
    }
}

/// The session tick: vardiff, the no-upstream grace and the handshake and
/// idle deadlines are checked on it, so it is at most 5 s and a quarter of
/// the shortest of them (never under 100 ms).
fn tick_period(cfg: &ServerConfig) -> Duration {
    let shortest = cfg
        .no_upstream_grace
        .min(cfg.handshake_timeout / 4)
        .min(cfg.idle_timeout / 4);
    Duration::from_secs(5).min(shortest.max(Duration::from_millis(100)))
}

/// How a connection's bytes are framed (and, for V2, encrypted).
enum Wire {
    /// Stratum V1: newline-delimited JSON.
    Lines(LineCodec),
    /// Stratum V2 after its Noise handshake: the two directions, and the
    /// encrypted frames on their way out.
    Noise(Box<(NoiseDecoder, NoiseEncoder, BytesMut)>),
}

/// The protocol state machine of a connection, held in the connection's
/// task: one allocation (tokio's cell, 896 bytes) where a boxed session
/// took two (a 512-byte cell and a 448-byte session for V1; a V2
/// connection's state is smaller and takes the V1 session's room).
#[allow(clippy::large_enum_variant)]
enum Conn {
    V1(Session),
    V2(V2Conn),
}

impl Conn {
    fn on_job(&mut self, job: Arc<crate::job::Job>, now: Instant, out: &mut Vec<Output>) {
        match self {
            Conn::V1(c) => c.on_job(job, now, out),
            Conn::V2(c) => c.on_job(job, now, out),
        }
    }
    fn on_moved(&mut self, old: crate::job::UpstreamId, old_failed: bool) {
        match self {
            Conn::V1(c) => c.on_moved(old, old_failed),
            Conn::V2(c) => c.on_moved(old, old_failed),
        }
    }
    fn on_upstream_result(&mut self, r: &crate::upstream::UpstreamResult, now: Instant) {
        match self {
            Conn::V1(c) => c.on_upstream_result(r, now),
            Conn::V2(c) => c.on_upstream_result(r, now),
        }
    }
    fn on_tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self {
            Conn::V1(c) => c.on_tick(now),
            Conn::V2(c) => c.on_tick(now, out),
        }
    }
    fn is_ready(&self) -> bool {
        match self {
            Conn::V1(c) => c.is_ready(),
            Conn::V2(c) => c.is_ready(),
        }
    }
    fn counters(&self) -> &crate::session::SessionCounters {
        match self {
            Conn::V1(c) => c.counters(),
            Conn::V2(c) => c.counters(),
        }
    }
}

/// Cuts what a read brought into lines or frames and hands them to the
/// connection's state machine.
fn read(
    wire: &mut Wire,
    core: &mut Conn,
    buf: &mut BytesMut,
    now: Instant,
    out: &mut Vec<Output>,
) -> Result<(), Disconnect> {
    match (wire, core) {
        (Wire::Lines(codec), Conn::V1(core)) => loop {
            match codec.decode(buf) {
                Ok(Some(line)) => core.on_line(&line, now, out),
                Ok(None) => return Ok(()),
                Err(LineError::TooLong { limit }) => {
                    tracing::info!(limit, "line too long; disconnecting");
                    return Err(Disconnect::LineTooLong);
                }
                Err(LineError::Io(_)) => return Err(Disconnect::Io),
            }
        },
        (Wire::Noise(noise), Conn::V2(core)) => {
            let ended = loop {
                match noise.0.decode(buf) {
                    Ok(Some(frame)) => core.on_frame(&frame, now, out),
                    Ok(None) => break Ok(()),
                    Err(e) => {
                        tracing::info!(error = %e, "bad V2 frame; disconnecting");
                        break Err(Disconnect::Protocol);
                    }
                }
            };
            // One acknowledgement per channel for the shares this read
            // brought, those before a bad frame included: they are booked
            // and go to the pool.
            core.flush(out);
            ended
        }
        // The two are made together in `Engine::connection`.
        _ => Err(Disconnect::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of tokio's task cell for what `f` returns, without
    /// calling it: a 32-byte header; the scheduler handle and the task id
    /// (16); the stage, the future in its span and a tag (8); a 48-byte
    /// trailer; aligned to 128 bytes (tokio 1.54, read with
    /// `-Zprint-type-sizes`).
    fn cell<F, R>(_: F) -> (usize, usize)
    where
        F: FnOnce(TcpStream, Option<Arc<ResponderConfig>>, Admission) -> R,
    {
        let future = std::mem::size_of::<R>();
        let spanned = std::mem::size_of::<tracing::instrument::Instrumented<R>>();
        (future, (32 + 16 + 8 + spanned + 48).next_multiple_of(128))
    }

    #[test]
    fn a_connection_and_its_session_fit_an_896_byte_cell() {
        // Every connection's task holds this future for its whole life,
        // in tokio's cell, which jemalloc serves from a size class
        // (…, 512, 640, 768, 896, 1024, …). The future was 552 bytes (a
        // 768 cell) while the task awaited its upstream's job channel and
        // kept a timer, and 424 (640) while a wake-up's outputs, a guard
        // and 16-byte instants lived across its awaits; 336 (512) with the
        // session boxed apart (448 more). The session is in it now: 8
        // bytes more and the cell is 1,024. Inspect a change with
        // `RUSTC_BOOTSTRAP=1 cargo rustc -p sluice-engine --release --lib
        // -- -Zprint-type-sizes`.
        let (future, cell) = cell(Engine::connection);
        assert!(
            cell <= 896,
            "the connection future is {future} bytes, its cell {cell}"
        );
    }
}
