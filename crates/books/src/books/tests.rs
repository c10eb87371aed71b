#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::store::Store;
use crate::tally::HASHES_PER_DIFF1;

const T0: u64 = 1_763_000_000_000;
const D_NET: f64 = 150e12;
const REWARD_SAT: u64 = 315_000_000;

fn cfg(fee: f64) -> BooksConfig {
    BooksConfig {
        pools: vec![PoolBooksConfig {
            name: "stratum+tcp://pool-a:3333".into(),
            fee,
            scheme: Scheme::Fpps,
            reward: Reward::Coinbase,
        }],
        power_price_usd_per_kwh: 0.06,
        power_rules: vec![crate::money::PowerRule {
            class: "s19".into(),
            pattern: "s19-*".into(),
            power: Power::Watts(3_250.0),
            nominal_th_s: None,
        }],
        default_power: Some(Power::EfficiencyJPerTh(17.5)),
        price: PriceConfig::Fixed(90_000.0),
        reasons: vec!["job_not_found", "stale", "duplicate", "low_difficulty"],
        ..BooksConfig::default()
    }
}

fn books(c: BooksConfig) -> Books {
    Books::new(c, Clock::at(Instant::now(), T0))
}

const JOB: JobValue = JobValue {
    difficulty: D_NET,
    reward_sat: Some(REWARD_SAT),
};

fn accept(b: &Books, w: &Worker, t: u64, d: f64) {
    b.record(
        w,
        Some(0),
        0,
        t,
        d,
        &JOB,
        ShareKind::Accepted { block: false },
    );
}

#[test]
fn effective_hashprice_is_network_times_accept_rate_times_one_minus_fee() {
    let b = books(cfg(0.025));
    b.on_job(0, &JOB, T0);
    let w = b.worker("s21-a");
    // 90 accepted, 6 stale, 4 low difficulty, all difficulty 65536.
    for i in 0..100u64 {
        let kind = match i % 25 {
            0..=2 if i < 50 => ShareKind::Stale(1),
            3 if i < 100 => ShareKind::RejectedWork(3),
            _ => ShareKind::Accepted { block: false },
        };
        b.record(&w, Some(0), 1, T0 + i * 1_000, 65_536.0, &JOB, kind);
    }
    let price = b.price(T0 + 100_000);
    let row = b.worker_row(&w, T0 + 100_000, Window::H1, &price);
    let m = row.money;
    assert_eq!((m.accepted_shares, m.rejected_shares), (90, 10));
    let net = b.network_hashprice(T0 + 100_000).unwrap();
    let expect = net * 0.90 * (1.0 - 0.025);
    let eff = m.effective_hashprice.unwrap();
    // Buckets hold f32: a few parts per million of rounding.
    assert!((eff / expect - 1.0).abs() < 1e-5, "{eff} vs {expect}");
    assert!((m.efficiency.unwrap() - 0.90 * 0.975).abs() < 1e-5);
    assert!((m.accept_rate.unwrap() - 0.90).abs() < 1e-9);
    // The farm and the pool saw the same shares.
    let farm = b.farm().figures(T0 + 100_000, Window::H1);
    assert_eq!(farm.sums.accepted.round(), 90.0);
    assert!((farm.sums.earned_btc - m.earned_btc).abs() < 1e-12);
    assert_eq!(
        b.rejects_by_reason(&w.state().tally.totals.rejects)
            .get("stale"),
        Some(&6)
    );
}

#[test]
fn power_rules_and_break_even_flag() {
    let mut c = cfg(0.0);
    // A price so low that an S21 at 17.5 J/TH loses money.
    c.price = PriceConfig::Fixed(10_000.0);
    let b = books(c);
    let s21 = b.worker("s21-rack1");
    let s19 = b.worker("s19-rack1");
    assert_eq!(b.power(&s21), Some(Power::EfficiencyJPerTh(17.5)));
    assert_eq!(b.power(&s19), Some(Power::Watts(3_250.0)));
    // With no default, a name no rule matches has no power.
    let bare = books(BooksConfig {
        default_power: None,
        ..cfg(0.0)
    });
    assert_eq!(bare.power(&bare.worker("s21-rack1")), None);
    assert_eq!(
        bare.power(&bare.worker("s19-rack1")),
        Some(Power::Watts(3_250.0))
    );
    // Past the most rules a worker's class can name, the rest are not
    // kept (the config check refuses such a config): the default applies,
    // not another rule's power.
    let mut many = cfg(0.0);
    many.power_rules = (0..=crate::books::MAX_POWER_RULES)
        .map(|i| crate::money::PowerRule {
            class: format!("c{i}"),
            pattern: format!("m{i}-*"),
            power: Power::Watts(1.0 + i as f64),
            nominal_th_s: None,
        })
        .collect();
    let many = books(many);
    let last = format!("m{}-rack1", crate::books::MAX_POWER_RULES);
    assert_eq!(
        many.power(&many.worker(&last)),
        Some(Power::EfficiencyJPerTh(17.5))
    );
    assert_eq!(
        many.power(&many.worker("m7-rack1")),
        Some(Power::Watts(8.0))
    );
    // ~200 TH/s for 10 minutes: difficulty-d shares every 10 s.
    let d = 200e12 * 10.0 / HASHES_PER_DIFF1;
    for i in 0..60 {
        accept(&b, &s21, T0 + i * 10_000, d);
    }
    let now = T0 + 600_000;
    let price = b.price(now);
    let r = b.worker_row(&s21, now, Window::H1, &price);
    let p = r.money.profit.unwrap();
    assert!((p.break_even_hashprice.unwrap() - 25.2).abs() < 1e-9);
    assert!((p.power_w / 3_500.0 - 1.0).abs() < 0.02, "{p:?}");
    assert!(p.below_break_even, "{p:?}");
    // Below break-even means effective hashprice under 24·E·c.
    assert!(r.money.effective_hashprice.unwrap() < 25.2);
    let page = b
        .workers_page(
            &WorkerQuery {
                below_break_even: true,
                ..WorkerQuery::default()
            },
            now,
        )
        .unwrap();
    // s19 has a fixed draw but did no work in the window (off, or just
    // connected): no profit figure, not flagged.
    let names: Vec<&str> = page.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["s21-rack1"]);
    assert_eq!(
        b.worker_row(&s19, now, Window::H1, &price).money.profit,
        None
    );
    // Biggest losers first, workers without the figure last either way.
    let _ = b.worker("no-shares");
    for desc in [false, true] {
        let q = WorkerQuery {
            sort: "profit_usd_day".into(),
            desc,
            ..WorkerQuery::default()
        };
        let page = b.workers_page(&q, now).unwrap();
        assert_eq!(page.workers[0].name, "s21-rack1", "desc = {desc}");
    }
}

#[test]
fn pages_sort_filter_and_refuse_unknown_fields() {
    let b = books(cfg(0.0));
    for i in 0..50u64 {
        let w = b.worker(&format!(
            "{}-{i:02}",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
        for k in 0..=i {
            accept(&b, &w, T0 + k * 100, 1_000.0 * (i + 1) as f64);
        }
    }
    let now = T0 + 60_000;
    let q = WorkerQuery {
        sort: "effective_hashprice".into(),
        desc: true,
        limit: 5,
        offset: 0,
        prefix: Some("odd-".into()),
        ..WorkerQuery::default()
    };
    let p = b.workers_page(&q, now).unwrap();
    assert_eq!(p.total, 25);
    assert_eq!(p.workers.len(), 5);
    assert!(p.workers.iter().all(|w| w.name.starts_with("odd-")));
    let q = WorkerQuery {
        sort: "hashrate_accepted".into(),
        desc: true,
        limit: 3,
        offset: 2,
        prefix: None,
        ..WorkerQuery::default()
    };
    let p = b.workers_page(&q, now).unwrap();
    let names: Vec<&str> = p.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["odd-47", "even-46", "odd-45"]);
    let hr: Vec<f64> = p
        .workers
        .iter()
        .map(|w| w.money.hashrate_accepted)
        .collect();
    assert!(hr.windows(2).all(|w| w[0] >= w[1]));
    let bad = WorkerQuery {
        sort: "hashrate; drop table".into(),
        ..WorkerQuery::default()
    };
    assert!(matches!(
        b.workers_page(&bad, now),
        Err(QueryError::UnknownSort(_))
    ));
}

#[test]
fn feed_price_goes_stale_instead_of_freezing() {
    let mut c = cfg(0.0);
    c.price = PriceConfig::Feed { max_age_ms: 60_000 };
    let b = books(c);
    let p = b.price(T0);
    assert!(p.stale && p.usd.is_none(), "no price yet: {p:?}");
    b.set_price(91_000.0, T0);
    let p = b.price(T0 + 30_000);
    assert!(!p.stale && p.usd == Some(91_000.0));
    let w = b.worker("w");
    accept(&b, &w, T0 + 1_000, 1e6);
    let p = b.price(T0 + 61_000);
    assert!(p.stale, "{p:?}");
    let row = b.worker_row(&w, T0 + 61_000, Window::H1, &p);
    assert!(row.money.money_stale);
    // Figures still there, but flagged.
    assert!(row.money.earned_usd.is_some());
    // Garbage prices are ignored.
    b.set_price(f64::NAN, T0 + 62_000);
    b.set_price(-1.0, T0 + 62_000);
    assert!(b.price(T0 + 62_000).stale);
}

#[test]
fn worker_names_past_the_cap_share_one_entry() {
    let mut c = cfg(0.0);
    c.max_workers = 3;
    let b = books(c);
    for i in 0..10 {
        let _ = b.worker(&format!("w{i}"));
    }
    assert_eq!(b.worker_count(), 4);
    assert_eq!(b.worker("w9").name(), OVERFLOW_WORKER);
    // A known name is still its own.
    assert_eq!(b.worker("w1").name(), "w1");
}

#[test]
fn idle_workers_are_forgotten_connected_ones_kept() {
    let b = books(cfg(0.0));
    let a = b.worker("a");
    let c = b.worker("c");
    accept(&b, &a, T0, 1.0);
    accept(&b, &c, T0, 1.0);
    c.connected(None, None, T0);
    assert_eq!(b.forget_idle(T0 + 86_400_001), 1);
    assert_eq!(b.worker_count(), 1);
    assert_eq!(b.workers()[0].name(), "c");
}

/// Share arrivals of a miner of known hashrate are a Poisson process of
/// rate H / (d · 2^32). Over a window of T seconds the share count N has
/// mean and variance λ = H·T/(d·2^32), so the hashrate estimate
/// N·d·2^32/T has relative standard deviation 1/√λ. We allow 4σ
/// (false-alarm odds ~6e-5 per check) plus 2 % for the prorated oldest
/// bucket (≤ one 5 min bucket's Poisson noise on a 1 h window's share).
#[test]
fn one_hour_hashrate_within_its_statistical_bound() {
    let b = books(cfg(0.0));
    let w = b.worker("sim");
    let h = 110e12; // 110 TH/s
    let d = 8_192.0 * 16.0;
    let rate = h / (d * HASHES_PER_DIFF1); // shares per second
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut t = 0.0f64;
    let lambda = rate * 3600.0;
    let bound = 4.0 / lambda.sqrt() + 0.02;
    for k in 1..=3 {
        // Figures are read as of now, at the end of each hour.
        let end = k as f64 * 3600.0;
        loop {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let u = ((rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let next = t - u.ln() / rate;
            if next >= end {
                break;
            }
            t = next;
            accept(&b, &w, T0 + (t * 1000.0) as u64, d);
        }
        let now = T0 + (end * 1000.0) as u64;
        let f = w.state().tally.figures(now, Window::H1);
        let err = f.hashrate_accepted() / h - 1.0;
        assert!(
            err.abs() < bound,
            "hour {k}: error {err:.4}, bound {bound:.4}"
        );
    }
}

#[test]
fn store_round_trip_and_incremental_snapshots() {
    let dir = std::env::temp_dir().join(format!("sluice-books-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("round-trip.sqlite");
    let _ = std::fs::remove_file(&path);
    let b = books(cfg(0.01));
    b.on_job(0, &JOB, T0);
    for i in 0..20u64 {
        let w = b.worker(&format!("w{i}"));
        for k in 0..30 {
            accept(&b, &w, T0 + k * 20_000 + i, 512.0);
        }
        b.record(
            &w,
            Some(0),
            i,
            T0 + 600_000,
            512.0,
            &JOB,
            ShareKind::Stale(1),
        );
    }
    // The totals most workers never have (kept boxed) go to the store
    // and back too.
    let w5 = b.worker("w5");
    for kind in [
        ShareKind::Accepted { block: true },
        ShareKind::UpstreamRejected(2),
    ] {
        b.record(&w5, Some(0), 5, T0 + 600_000, 512.0, &JOB, kind);
    }
    let rare = w5.state().tally.totals.rare();
    assert_eq!((rare.blocks, rare.upstream_rejected), (1, 1));
    assert!(rare.upstream_rejected_work > 0.0 && rare.upstream_rejected_btc > 0.0);
    let now = T0 + 610_000;
    let mut s = Store::open(&path).unwrap();
    let r = s.save(&b, now).unwrap();
    assert_eq!(r.entities, 22, "20 workers, 1 pool, the farm");
    // Nothing changed: only the pool and farm rows are rewritten.
    let r2 = s.save(&b, now + 20_000).unwrap();
    assert_eq!(r2.entities, 2);
    accept(&b, &b.worker("w3"), now + 21_000, 512.0);
    let r3 = s.save(&b, now + 30_000).unwrap();
    assert_eq!(r3.entities, 3);
    drop(s);

    // Long after: idle workers are not loaded, the pool's and farm's
    // lifetime totals always are.
    let late = books(cfg(0.01));
    let lr = Store::open(&path)
        .unwrap()
        .load(&late, now + 3 * 86_400_000)
        .unwrap();
    assert_eq!((lr.workers, lr.pools), (0, 1));
    // 30 shares from each of 20 workers, w3's later one and w5's block.
    assert_eq!(late.farm().totals().accepted, 20 * 30 + 2);
    assert_eq!(late.farm().totals().rare().blocks, 1);

    let b2 = books(cfg(0.01));
    let mut s2 = Store::open(&path).unwrap();
    let lr = s2.load(&b2, now + 30_000).unwrap();
    assert_eq!((lr.workers, lr.pools), (20, 1));
    assert_eq!(lr.saved_at_ms, Some(now + 30_000));
    for w in [Window::M1, Window::M5, Window::H1, Window::H24] {
        let p = b.price(now + 30_000);
        for name in ["w0", "w3", "w19"] {
            let a = b.worker_row(&b.worker(name), now + 30_000, w, &p);
            let c = b2.worker_row(&b2.worker(name), now + 30_000, w, &p);
            if w == Window::H24 {
                // A worker's 2-hour buckets are summed again from the
                // stored 5 min ones: the same figures to f32's rounding.
                let (x, y) = (a.money.earned_btc, c.money.earned_btc);
                assert!((x / y - 1.0).abs() < 1e-5, "{name} {w:?}: {x} vs {y}");
                assert_eq!(a.money.accepted_work, c.money.accepted_work, "{name}");
                assert_eq!(a.money.accepted_shares, c.money.accepted_shares);
            } else {
                assert_eq!(a.money, c.money, "{name} {w:?}");
            }
            assert_eq!(a.difficulty, c.difficulty);
        }
        let fa = b.farm().figures(now + 30_000, w);
        let fb = b2.farm().figures(now + 30_000, w);
        assert!((fa.sums.accepted_work - fb.sums.accepted_work).abs() < 1e-6);
    }
    for name in ["w5", "w3"] {
        assert_eq!(
            b.worker(name).state().tally.totals,
            b2.worker(name).state().tally.totals,
            "{name}"
        );
    }
    assert_eq!(b2.worker("w5").state().tally.totals.rare(), rare);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn store_refuses_a_corrupt_row() {
    let dir = std::env::temp_dir().join(format!("sluice-books-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("corrupt.sqlite");
    let _ = std::fs::remove_file(&path);
    let b = books(cfg(0.0));
    accept(&b, &b.worker("w"), T0, 1.0);
    Store::open(&path).unwrap().save(&b, T0 + 1_000).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE entities SET totals = x'00' WHERE name = 'w'", [])
        .unwrap();
    drop(c);
    let err = Store::open(&path)
        .unwrap()
        .load(&books(cfg(0.0)), T0 + 2_000)
        .unwrap_err();
    assert!(
        matches!(err, crate::StoreError::Corrupt(ref n) if n == "w"),
        "{err}"
    );
    let _ = std::fs::remove_file(&path);
}

/// A farm's bucket sums thousands of miners' shares: in `f32` the rounding
/// of 100,000 equal additions would drift by about half a percent; the
/// pool and farm buckets are `f64`.
#[test]
fn farm_buckets_keep_their_precision_over_many_shares() {
    let b = books(cfg(0.0));
    let w = b.worker("many");
    let d = 65_536.0 * 3.0;
    for i in 0..100_000u64 {
        // All in one 5-minute bucket, one shard.
        b.record(
            &w,
            Some(0),
            0,
            T0 + i % 60_000,
            d,
            &JOB,
            ShareKind::Accepted { block: false },
        );
    }
    let f = b.farm().figures(T0 + 60_000, Window::H1);
    let exact = 100_000.0 * d;
    assert!(
        (f.sums.accepted_work / exact - 1.0).abs() < 1e-12,
        "{}",
        f.sums.accepted_work / exact
    );
    let p = b.pools()[0].tally.figures(T0 + 60_000, Window::M5);
    assert!((p.sums.accepted_work / exact - 1.0).abs() < 1e-12);
}

/// A worker idle past the forget limit is not loaded at start; when it
/// comes back its stored history is merged before anything overwrites it.
#[test]
fn a_returning_worker_gets_its_history_back() {
    let dir = std::env::temp_dir().join(format!("sluice-books-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("returning.sqlite");
    let _ = std::fs::remove_file(&path);
    let day = 86_400_000;
    let old = Books::new(cfg(0.0), Clock::at(Instant::now(), T0 - 3 * day));
    let w = old.worker("rig7");
    for k in 0..10 {
        accept(&old, &w, T0 - 3 * day + k * 1_000, 100.0);
    }
    Store::open(&path)
        .unwrap()
        .save(&old, T0 - 3 * day + 20_000)
        .unwrap();

    let b = books(cfg(0.0));
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.load(&b, T0).unwrap().workers, 0, "idle for 3 days");
    let w = b.connect_worker("rig7", None, None, T0);
    accept(&b, &w, T0 + 1_000, 100.0);
    assert_eq!(w.state().tally.totals.accepted, 1);
    s.save(&b, T0 + 2_000).unwrap();
    assert_eq!(w.state().tally.totals.accepted, 11, "history merged");
    // Merged once: later snapshots do not add it again.
    accept(&b, &w, T0 + 3_000, 100.0);
    s.save(&b, T0 + 4_000).unwrap();
    let b2 = books(cfg(0.0));
    Store::open(&path).unwrap().load(&b2, T0 + 5_000).unwrap();
    assert_eq!(b2.worker("rig7").state().tally.totals.accepted, 12);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn store_refuses_corrupt_buckets_and_other_schemas() {
    let dir = std::env::temp_dir().join(format!("sluice-books-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("corrupt-bucket.sqlite");
    let _ = std::fs::remove_file(&path);
    let b = books(cfg(0.0));
    accept(&b, &b.worker("w"), T0, 1.0);
    Store::open(&path).unwrap().save(&b, T0 + 1_000).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE buckets SET data = x'0102' WHERE name = 'w'", [])
        .unwrap();
    let err = Store::open(&path)
        .unwrap()
        .load(&books(cfg(0.0)), T0 + 2_000)
        .unwrap_err();
    assert!(
        matches!(err, crate::StoreError::Corrupt(ref n) if n == "w"),
        "{err}"
    );
    // A file written by another schema is refused, saying what to do.
    c.execute("UPDATE meta SET value = 1 WHERE key = 'schema'", [])
        .unwrap();
    drop(c);
    let err = Store::open(&path).err().unwrap();
    assert!(matches!(err, crate::StoreError::Schema(1)), "{err}");
    assert!(err.to_string().contains("move the file aside"), "{err}");
    // A version-3 file (10 s worker buckets under ring 0) or version-4 one
    // (30 s worker buckets under ring 2) is read, its workers' fine
    // buckets left out (ring 2 deleted), and marked version 5: an older
    // build then refuses it rather than misread the 1 min buckets.
    for old in [3, 4] {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute("UPDATE meta SET value = ?1 WHERE key = 'schema'", [old])
            .unwrap();
        c.execute("DELETE FROM buckets", []).unwrap();
        c.execute(
            "INSERT INTO buckets (kind, name, ring, idx, data) SELECT kind, name, ?1, 1, x'00' FROM entities",
            [if old == 3 { 0 } else { 2 }],
        )
        .unwrap();
        drop(c);
        Store::open(&path).unwrap();
        let c = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, 5, "from version {old}");
        let ring2: i64 = c
            .query_row("SELECT COUNT(*) FROM buckets WHERE ring = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(ring2, 0, "schema 4's 30 s buckets are gone");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_worker_entry_fits_in_256_bytes() {
    // One per worker name that ever shared (100,000 on a big farm), behind
    // an `Arc` (16 bytes of counts): jemalloc serves 225–256 bytes from one
    // size class and 257–320 from the next. It was 312 bytes: the power
    // (16 bytes, now a 2-byte class index), the rare totals (32, now an
    // 8-byte box), the last pool (16, now 4) and the rings' shape (a slice
    // reference, now a thin one) put it in the 320 class.
    let n = std::mem::size_of::<Worker>() + 16;
    assert!(n <= 256, "a worker entry is {n} bytes");
}

#[test]
fn connection_info_is_bounded() {
    let b = books(cfg(0.0));
    let ua = "é".repeat(10_000);
    let w = b.connect_worker("w", None, Some(&ua), T0);
    assert_eq!(
        w.state().conn.user_agent.as_ref().unwrap().chars().count(),
        256
    );
    assert_eq!(w.connections(), 1);
    w.disconnected();
    w.disconnected();
    assert_eq!(w.connections(), 0, "never below zero");
}

#[test]
fn advice_names_the_losing_machines_their_hours_and_the_savings() {
    let mut c = cfg(0.0);
    // Power: $0.04 off-peak, $0.12 from 17:00 to 21:00 (UTC).
    c.power_price_usd_per_kwh = 0.04;
    c.power_periods = vec![crate::advice::TouPeriod {
        from_hour: 17,
        to_hour: 21,
        usd_per_kwh: 0.12,
    }];
    let b = books(c);
    // An S21 (default, 17.5 J/TH) and an S19 at 3,250 W, both ~100 TH/s
    // for 10 minutes.
    let s21 = b.worker("s21-a");
    let s19 = b.worker("s19-a");
    let d = 100e12 * 10.0 / HASHES_PER_DIFF1;
    for i in 0..60 {
        accept(&b, &s21, T0 + i * 10_000, d);
        accept(&b, &s19, T0 + i * 10_000, d);
    }
    let now = T0 + 600_000;
    // T0 is 02:13 UTC: off-peak.
    assert_eq!(b.power_price(now), (0.04, "config"));
    let q = AdviceQuery {
        hashprice: Some(34.49),
        limit: 10,
        ..AdviceQuery::default()
    };
    let a = b.advice(&q, now).unwrap();
    assert!(a.what_if);
    assert_eq!(a.scenario.hour, 2);
    let names: Vec<&str> = a.classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(names, vec!["s19", "default"]);
    // The S19's J/TH comes from its draw and measured hashrate: 3,250 W
    // over ~100 TH/s is ~32.5 J/TH, 31.2 $/PH/day at $0.04 (earns), 93.6
    // at $0.12 (loses from 17 to 21).
    let s19c = &a.classes[0];
    let e = s19c.efficiency_j_per_th.unwrap();
    assert!((e / 32.5 - 1.0).abs() < 0.02, "{s19c:?}");
    assert_eq!(s19c.losing_hours, vec!["17-21".to_string()]);
    assert!(!s19c.losing_now);
    assert_eq!(s19c.workers, 1);
    // The S21 class, 17.5 J/TH: 16.8 $/PH/day at $0.04, 50.4 at $0.12.
    let s21c = &a.classes[1];
    assert_eq!(s21c.losing_hours, vec!["17-21".to_string()]);
    // Both workers are listed (they lose at peak), neither is off now.
    assert_eq!(a.losing_workers, 2);
    assert_eq!(a.switch_off_now, 0);
    let s19w = a.workers.iter().find(|w| w.name == "s19-a").unwrap();
    assert_eq!(s19w.off_hours, vec!["17-21".to_string()]);
    // Saved per day: 4 h × (3.25 kW · $0.12 − earnings per hour).
    let earn_h = 34.49 * s19w.hashrate / 1e15 / 24.0;
    let saved = 4.0 * (3.25 * 0.12 - earn_h);
    assert!((s19w.saved_usd_day - saved).abs() < 1e-9, "{s19w:?}");
    assert!(
        (a.saved_usd_day - a.workers.iter().map(|w| w.saved_usd_day).sum::<f64>()).abs() < 1e-12
    );
    // At 18:00 the schedule's peak price applies.
    assert_eq!(b.power_price(T0 + 16 * 3_600_000), (0.12, "schedule"));
    // A feed price overrides the hour's.
    let mut c = cfg(0.0);
    c.power_feed_max_age_ms = 60_000;
    let b = books(c);
    b.set_power_price(0.2, T0);
    assert_eq!(b.power_price(T0 + 1_000), (0.2, "feed"));
    assert_eq!(b.power_price(T0 + 61_000), (0.06, "config"));
    // Without a hashprice there is no advice; bad what-ifs are refused.
    let b = books(cfg(0.0));
    assert_eq!(
        b.advice(&AdviceQuery::default(), T0).unwrap_err(),
        AdviceError::NoHashprice
    );
    let bad = AdviceQuery {
        hashprice: Some(f64::NAN),
        ..AdviceQuery::default()
    };
    assert_eq!(
        b.advice(&bad, T0).unwrap_err(),
        AdviceError::Bad("hashprice")
    );
}
