//! The routing task with the real router and books on paused time:
//! simulated sessions send shares at random (Poisson) times, 1 % of them
//! rejected, and their pool is whichever the router has them on.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_books::{
    Books, BooksConfig, Clock, JobValue, PoolBooksConfig, PriceConfig, Reward, Scheme, ShareKind,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::job::UpstreamId;
use crate::mailbox::Mailbox;
use crate::router::{Connector, PoolEntry, RouterConfig};
use crate::stats::AtomicF64;
use crate::testrng::Lcg;
use crate::upstream::{Health, UpstreamHandle};

/// Upstreams that are ready at once and never fail.
#[derive(Default)]
struct Ready {
    keep: Mutex<Vec<watch::Sender<Health>>>,
}

impl Connector for Ready {
    fn spawn(&self, id: UpstreamId, pool: usize) -> Arc<UpstreamHandle> {
        let (_jobs_tx, jobs) = watch::channel(None);
        let (health_tx, health) = watch::channel(Health::Ready);
        self.keep
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(health_tx);
        Arc::new(UpstreamHandle {
            id,
            pool,
            jobs,
            listeners: Arc::default(),
            health,
            sessions: AtomicU64::new(0),
            cancel: CancellationToken::new(),
            suggest: Arc::new(AtomicF64::default()),
        })
    }

    fn unlimited(&self) -> bool {
        true
    }
}

const SESSIONS: u64 = 20;
/// Network difficulty the shares are valued at (any: FPPS pays per share).
const NET_DIFF: f64 = 1e12;

struct Sim {
    books: Arc<Books>,
    router: Arc<Router>,
    routing: Arc<Routing>,
    cancel: CancellationToken,
}

fn sim(payouts: [f64; 2], floors: [f64; 2]) -> Sim {
    let pools = payouts
        .iter()
        .enumerate()
        .map(|(i, x)| PoolBooksConfig {
            name: format!("pool{i}"),
            fee: 0.0,
            scheme: Scheme::Fpps,
            reward: Reward::PerShareBtc(*x),
        })
        .collect();
    let books = Arc::new(Books::new(
        BooksConfig {
            pools,
            price: PriceConfig::Fixed(86_000.0),
            reasons: vec!["low difficulty"],
            ..BooksConfig::default()
        },
        Clock::new(),
    ));
    let router = Router::new(
        RouterConfig {
            // Short windows: few shares each, so chance alone would
            // often put the split 5 % off.
            rebalance_interval: Duration::from_secs(10),
            ..RouterConfig::default()
        },
        (0..2)
            .map(|i| PoolEntry {
                name: format!("pool{i}"),
                weight: 1.0,
                level: 0,
                connector: Box::new(Ready::default()),
            })
            .collect(),
    );
    let routing = Routing::new(
        RoutingSettings {
            policy: PolicyKind::Hashprice,
            window: Window::M5,
            interval: Duration::from_secs(10),
            cfg: PolicyConfig::default(),
        },
        books.clone(),
        router.clone(),
        vec!["pool0".into(), "pool1".into()],
        floors.iter().map(|f| (*f, 1.0)).collect(),
    );
    let cancel = CancellationToken::new();
    tokio::spawn(router.clone().run(cancel.clone()));
    tokio::spawn(routing.clone().run(cancel.clone()));
    Sim {
        books,
        router,
        routing,
        cancel,
    }
}

/// Runs `secs` simulated seconds of shares; calls `each` once a second
/// with the seconds elapsed and sessions per pool.
async fn mine(s: &Sim, seed: u64, secs: u64, mut each: impl FnMut(u64, &[u64])) {
    let mut rng = Lcg(seed);
    let mut sessions = Vec::new();
    for id in 1..=SESSIONS {
        let rx = Arc::new(Mailbox::default());
        let tx = rx.clone();
        assert!(s.router.assign(id, tx).is_some());
        let worker = s.books.worker(&format!("w{id}"));
        sessions.push((id, rx, worker, 0.0f64, 0u64));
    }
    let pool_of: HashMap<UpstreamId, usize> = s
        .router
        .snapshot()
        .iter()
        .enumerate()
        .flat_map(|(p, snap)| {
            snap.connections
                .iter()
                .map(move |c| (c.0, p))
                .collect::<Vec<_>>()
        })
        .collect();
    let value = JobValue {
        difficulty: NET_DIFF,
        reward_sat: None,
    };
    for t in 1..=secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = s.books.clock().ms(tokio::time::Instant::now().into_std());
        for (id, rx, worker, w, n) in &mut sessions {
            while rx.try_recv().is_some() {}
            let up = s
                .router
                .sessions
                .get(id)
                .map(|slot| slot.upstream.load(std::sync::atomic::Ordering::Relaxed));
            let pool = up.and_then(|u| pool_of.get(&u)).copied();
            for _ in 0..rng.poisson1() {
                let kind = if rng.unit() < 0.01 {
                    ShareKind::RejectedWork(0)
                } else {
                    *w += 1.0;
                    *n += 1;
                    ShareKind::Accepted { block: false }
                };
                s.books.record(worker, pool, *id, now, 1.0, &value, kind);
            }
            rx.work().set(*w, *n);
        }
        each(t, &s.router.sessions_per_pool());
    }
}

/// Seeds of the share arrivals each case runs with.
const SEEDS: [u64; 4] = [1, 42, 1_000_003, 0xdead_beef];

#[tokio::test(start_paused = true)]
async fn equal_payers_never_flap_over_an_hour() {
    for seed in SEEDS {
        equal_payers(seed).await;
    }
}

async fn equal_payers(seed: u64) {
    let s = sim([1e-12, 1e-12], [0.1, 0.1]);
    let mut split_seen = Vec::new();
    mine(&s, seed, 3600, |t, per_pool| {
        assert_eq!(
            per_pool,
            [SESSIONS / 2, SESSIONS / 2],
            "seed {seed}, at {t} s"
        );
        if t % 60 == 0 {
            split_seen.push(s.router.targets());
        }
    })
    .await;
    let r = s.routing.report();
    // One split set (the first decision), never another; nothing moved.
    assert_eq!(r.split_changes, 1, "{r:#?}");
    assert_eq!(r.session_moves, 0, "{r:#?}");
    assert!(
        split_seen.iter().all(|t| t == &vec![0.5, 0.5]),
        "{split_seen:?}"
    );
    // Both pools measured, and their pay agrees within the noise.
    let (a, b) = (&r.pools[0], &r.pools[1]);
    let (ha, hb) = (
        a.measured.hashprice_btc.unwrap_or(0.0),
        b.measured.hashprice_btc.unwrap_or(0.0),
    );
    assert!(
        ha > 0.0
            && (ha - hb).abs()
                < 4.0
                    * a.measured
                        .sigma_btc
                        .unwrap_or(0.0)
                        .hypot(b.measured.sigma_btc.unwrap_or(0.0)),
        "{r:#?}"
    );
    assert!(a.why.contains("split by weight"), "{}", a.why);
    s.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_split_moves_to_the_better_payer_and_never_below_the_floor() {
    for seed in SEEDS {
        better_payer(seed).await;
    }
}

async fn better_payer(seed: u64) {
    // Pool 1 pays 10 % more per share.
    let s = sim([1e-12, 1.1e-12], [0.2, 0.2]);
    let floor_sessions = (0.2 * SESSIONS as f64) as u64;
    let mut settled_at = None;
    mine(&s, seed, 600, |t, per_pool| {
        assert!(
            per_pool[0] >= floor_sessions,
            "seed {seed}: pool 0 under its floor at {t} s: {per_pool:?}"
        );
        // Within the router's tolerance (5 %, one session here) of 20/80.
        let settled = per_pool[0] <= floor_sessions + 1;
        if settled_at.is_none() && settled {
            settled_at = Some(t);
        }
        if let Some(at) = settled_at {
            assert!(
                settled,
                "seed {seed}: moved back at {t} s (settled at {at} s): {per_pool:?}"
            );
        }
    })
    .await;
    let r = s.routing.report();
    let at = settled_at.unwrap_or(u64::MAX);
    // The first decision with 100 shares per pool (10–20 s), then the
    // router's next rebalance (every 10 s) moves the sessions.
    assert!(at <= 40, "seed {seed}: settled at {at} s: {r:#?}");
    assert!((r.pools[1].target_share - 0.8).abs() < 1e-9, "{r:#?}");
    assert!((r.pools[0].target_share - 0.2).abs() < 1e-9, "{r:#?}");
    assert_eq!(r.pools[1].tier, Some(0));
    assert!(
        r.pools[0].why.contains("at its floor 20.0 %"),
        "{}",
        r.pools[0].why
    );
    // At most: weights while unmeasured, then 20/80.
    assert!(r.split_changes <= 2, "{r:#?}");
    let moved = SESSIONS / 2 - r.pools[0].sessions;
    assert_eq!(r.session_moves, moved, "{r:#?}");
    // USD figures at the fixed price.
    let usd = r.pools[1].hashprice_usd.unwrap_or(0.0);
    let btc = r.pools[1].measured.hashprice_btc.unwrap_or(0.0);
    assert!((usd - btc * 86_000.0).abs() < 1e-9 * usd.abs().max(1.0));
    s.cancel.cancel();
}
