use super::*;
use crate::testrng::Lcg;

fn pool(name: &str, floor: f64, ceiling: f64) -> PolicyPool {
    PolicyPool {
        name: name.into(),
        weight: 1.0,
        floor,
        ceiling,
    }
}

fn m(pay: f64, sigma: f64) -> Option<Measure> {
    Some(Measure {
        pay,
        sigma,
        shares: 1000,
    })
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

#[test]
fn equal_payers_keep_the_weights_however_the_noise_falls() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.1, 1.0), pool("b", 0.1, 1.0)],
    );
    let mut rng = Lcg(7);
    let mut changes = 0;
    for k in 0..2000u64 {
        let sigma = 0.004;
        let a = 1.0 + sigma * rng.normal();
        let b = 1.0 + sigma * rng.normal();
        let d = p.decide(&[m(a, sigma), m(b, sigma)], &[true, true], k * 10_000);
        if d.changed && k > 0 {
            changes += 1;
        }
        assert!(close(&d.split(), &[0.5, 0.5]), "step {k}: {:?}", d.split());
    }
    assert_eq!(changes, 0);
}

#[test]
fn the_better_payer_gets_all_but_the_others_floor() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.2, 1.0), pool("b", 0.2, 1.0)],
    );
    let d = p.decide(&[m(1.0, 0.005), m(1.1, 0.005)], &[true, true], 0);
    assert!(close(&d.split(), &[0.2, 0.8]), "{:?}", d.split());
    assert_eq!(d.pools[1].tier, Some(0));
    assert_eq!(d.pools[0].tier, Some(1));
    assert!(
        d.pools[0].why.contains("at its floor 20.0 %"),
        "{}",
        d.pools[0].why
    );
    assert!(d.pools[0].why.contains("b by 10.0 %"), "{}", d.pools[0].why);
    assert!(
        d.pools[1].why.contains("held ahead of a"),
        "{}",
        d.pools[1].why
    );
    assert!(d.changed);
    // The same figures again: nothing changes.
    let d = p.decide(&[m(1.0, 0.005), m(1.1, 0.005)], &[true, true], 10_000);
    assert!(!d.changed);
}

#[test]
fn a_gap_inside_the_noise_or_the_margin_moves_nothing() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.0, 1.0), pool("b", 0.0, 1.0)],
    );
    // 5 % apart, but σ 2 % each: 2 × 2.8 % + 2 % > 5 %.
    let d = p.decide(&[m(1.0, 0.02), m(1.05, 0.02)], &[true, true], 0);
    assert!(close(&d.split(), &[0.5, 0.5]), "{:?}", d.split());
    assert!(
        d.pools[0].why.contains("split by weight"),
        "{}",
        d.pools[0].why
    );
    // 1.5 % apart with no noise: inside the 2 % margin.
    let d = p.decide(&[m(1.0, 0.0), m(1.015, 0.0)], &[true, true], 1);
    assert!(close(&d.split(), &[0.5, 0.5]), "{:?}", d.split());
}

#[test]
fn a_lead_is_kept_until_it_falls_under_half_the_margin() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.0, 1.0), pool("b", 0.0, 1.0)],
    );
    let d = p.decide(&[m(1.10, 0.001), m(1.0, 0.001)], &[true, true], 0);
    assert!(close(&d.split(), &[1.0, 0.0]), "{:?}", d.split());
    // 1.5 % ahead: would not have moved anything, but holds the lead.
    let d = p.decide(&[m(1.015, 0.001), m(1.0, 0.001)], &[true, true], 1);
    assert!(close(&d.split(), &[1.0, 0.0]), "{:?}", d.split());
    assert!(!d.changed);
    // 0.5 % ahead: back to the weights.
    let d = p.decide(&[m(1.005, 0.001), m(1.0, 0.001)], &[true, true], 2);
    assert!(close(&d.split(), &[0.5, 0.5]), "{:?}", d.split());
    assert!(d.changed);
    // b now pays clearly more: it leads.
    p.decide(&[m(1.10, 0.001), m(1.0, 0.001)], &[true, true], 3);
    let d = p.decide(&[m(1.0, 0.001), m(1.2, 0.001)], &[true, true], 4);
    assert!(close(&d.split(), &[0.0, 1.0]), "{:?}", d.split());
}

#[test]
fn ceilings_send_the_rest_down_the_tiers() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![
            pool("a", 0.0, 0.6),
            pool("b", 0.05, 1.0),
            pool("c", 0.05, 1.0),
        ],
    );
    // a best, b second, c third, each clearly apart.
    let d = p.decide(
        &[m(1.3, 0.001), m(1.15, 0.001), m(1.0, 0.001)],
        &[true; 3],
        0,
    );
    assert!(close(&d.split(), &[0.6, 0.35, 0.05]), "{:?}", d.split());
    assert_eq!(
        d.pools.iter().map(|v| v.tier).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)]
    );
    assert!(
        d.pools[0].why.contains("at its ceiling 60.0 %"),
        "{}",
        d.pools[0].why
    );
    // Ceilings that cannot hold everything: the rest by weight.
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.0, 0.3), pool("b", 0.0, 0.3)],
    );
    let d = p.decide(&[m(1.3, 0.001), m(1.0, 0.001)], &[true; 2], 0);
    assert!(close(&d.split(), &[0.5, 0.5]), "{:?}", d.split());
    assert!(d.pools[0].why.contains("unplaced"), "{}", d.pools[0].why);
}

#[test]
fn unmeasured_pools_rank_with_the_best_and_down_pools_get_nothing() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![
            pool("a", 0.0, 1.0),
            pool("b", 0.0, 1.0),
            pool("c", 0.3, 1.0),
        ],
    );
    let few = Some(Measure {
        pay: 9.0,
        sigma: 0.0,
        shares: 10,
    });
    let d = p.decide(
        &[m(1.2, 0.001), few, m(1.0, 0.001)],
        &[true, true, false],
        0,
    );
    // c is down: no floor held for it; b (10 shares) is not measured yet.
    assert!(close(&d.split(), &[0.5, 0.5, 0.0]), "{:?}", d.split());
    assert!(
        d.pools[1].why.contains("not measured yet"),
        "{}",
        d.pools[1].why
    );
    assert!(
        d.pools[2].why.contains("not routable"),
        "{}",
        d.pools[2].why
    );
    assert_eq!(d.pools[2].tier, None);
    // c back: it is measured and pays less; it gets its floor.
    let d = p.decide(&[m(1.2, 0.001), None, None], &[true, true, true], 60_000);
    assert!(close(&d.split(), &[0.35, 0.35, 0.3]), "{:?}", d.split());
    // Its figure is the last one measured, a minute old.
    assert_eq!(d.pools[2].used.map(|(_, age)| age), Some(60.0));
}

#[test]
fn floors_over_everything_shrink_in_proportion() {
    let mut p = HashpricePolicy::new(
        PolicyConfig::default(),
        vec![pool("a", 0.8, 1.0), pool("b", 0.6, 1.0)],
    );
    let d = p.decide(&[m(1.0, 0.0), m(2.0, 0.0)], &[true, true], 0);
    let s = d.split();
    assert!(
        (s[0] - 0.8 / 1.4).abs() < 1e-9 && (s[1] - 0.6 / 1.4).abs() < 1e-9,
        "{s:?}"
    );
}

#[test]
fn weights_split_a_tier() {
    let mut pools = vec![
        pool("a", 0.0, 1.0),
        pool("b", 0.0, 1.0),
        pool("c", 0.0, 1.0),
    ];
    pools[0].weight = 3.0;
    let mut p = HashpricePolicy::new(PolicyConfig::default(), pools);
    let d = p.decide(
        &[m(1.2, 0.001), m(1.2, 0.001), m(1.0, 0.001)],
        &[true; 3],
        0,
    );
    assert!(close(&d.split(), &[0.75, 0.25, 0.0]), "{:?}", d.split());
}

#[test]
fn a_figure_expires_and_the_pool_is_measured_again() {
    let mut p = HashpricePolicy::new(
        PolicyConfig {
            expire_after_ms: 120_000,
            ..PolicyConfig::default()
        },
        vec![pool("a", 0.0, 1.0), pool("b", 0.0, 1.0)],
    );
    let d = p.decide(&[m(1.2, 0.001), m(1.0, 0.001)], &[true; 2], 0);
    assert!(close(&d.split(), &[1.0, 0.0]), "{:?}", d.split());
    // b gets no work: its figure stands for two minutes…
    let d = p.decide(&[m(1.2, 0.001), None], &[true; 2], 120_000);
    assert!(close(&d.split(), &[1.0, 0.0]), "{:?}", d.split());
    // …then b is unmeasured, ranked with the best, and gets work again.
    let d = p.decide(&[m(1.2, 0.001), None], &[true; 2], 120_001);
    assert!(close(&d.split(), &[0.5, 0.5]), "{:?}", d.split());
    assert!(
        d.pools[1].why.contains("not measured yet"),
        "{}",
        d.pools[1].why
    );
    // The only routable pool is said to be so.
    let d = p.decide(&[m(1.2, 0.001), None], &[true, false], 130_000);
    assert!(close(&d.split(), &[1.0, 0.0]), "{:?}", d.split());
    assert!(
        d.pools[0].why.contains("the only pool"),
        "{}",
        d.pools[0].why
    );
}
