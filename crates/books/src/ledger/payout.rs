//! Payout arithmetic over ledger rows: PPLNS for a found block, FPPS for
//! a span of time. Pure: rows in, satoshis out, every satoshi accounted.

use std::collections::BTreeMap;

/// A worker's share of a payout.
#[derive(Clone, Debug, PartialEq)]
pub struct Payout {
    /// Worker name.
    pub worker: String,
    /// Σ difficulty it is paid for (PPLNS: inside the window).
    pub work: f64,
    /// Satoshi.
    pub sat: u64,
}

/// Splits `reward_sat` over the last `window` units of difficulty before
/// (and including) the block: `newest_first` yields `(worker, difficulty)`
/// newest first. The oldest share in the window counts only for the part
/// that fits, so the window holds exactly `window` (or everything, when the
/// ledger holds less). Satoshis go by the largest-remainder rule: each
/// worker gets ⌊reward · w / W⌋, and the satoshis left by the floors go
/// one each to the largest fractions (ties: name order). They sum to
/// `reward_sat` exactly.
pub fn pplns<'a>(
    newest_first: impl IntoIterator<Item = (&'a str, f64)>,
    window: f64,
    reward_sat: u64,
) -> Vec<Payout> {
    let mut w = Window::new(window);
    for (worker, d) in newest_first {
        if !w.add(worker, d) {
            break;
        }
    }
    w.pay(reward_sat)
}

/// A PPLNS window filled share by share, newest first: memory per worker,
/// not per share, so a ledger can be walked page by page.
#[derive(Debug)]
pub struct Window {
    work: BTreeMap<String, f64>,
    left: f64,
}

impl Window {
    /// An empty window of `size` units of difficulty.
    pub fn new(size: f64) -> Self {
        Self {
            work: BTreeMap::new(),
            left: if size.is_finite() { size.max(0.0) } else { 0.0 },
        }
    }

    /// Takes the next older share; false once the window is full.
    pub fn add(&mut self, worker: &str, d: f64) -> bool {
        if self.left <= 0.0 {
            return false;
        }
        if d.is_finite() && d > 0.0 {
            let take = d.min(self.left);
            match self.work.get_mut(worker) {
                Some(w) => *w += take,
                None => {
                    self.work.insert(worker.to_owned(), take);
                }
            }
            self.left -= take;
        }
        self.left > 0.0
    }

    /// The reward split over the window.
    pub fn pay(self, reward_sat: u64) -> Vec<Payout> {
        split(
            self.work.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            reward_sat,
        )
    }
}

/// Full pay per share: each accepted share is worth its expected share of
/// the block reward at the time, `d / D · reward`, less the pool's fee.
/// `rows` yields `(worker, difficulty, network difficulty, reward_sat)`.
pub fn fpps<'a>(rows: impl IntoIterator<Item = (&'a str, f64, f64, u64)>, fee: f64) -> Vec<Payout> {
    let mut acc: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (worker, d, net, reward) in rows {
        if !(d.is_finite() && d > 0.0 && net.is_finite() && net > 0.0) {
            continue;
        }
        let e = acc.entry(worker).or_default();
        e.0 += d;
        e.1 += d / net * reward as f64;
    }
    let keep = (1.0 - fee).clamp(0.0, 1.0);
    acc.into_iter()
        .map(|(w, (work, sat))| Payout {
            worker: w.to_owned(),
            work,
            // Expectations are fractional: paid down to the satoshi.
            sat: (sat * keep).floor() as u64,
        })
        .collect()
}

fn split(work: BTreeMap<&str, f64>, reward_sat: u64) -> Vec<Payout> {
    let total: f64 = work.values().sum();
    if work.is_empty() || total <= 0.0 {
        return Vec::new();
    }
    // Weights become integers out of 2^52 (an f64's precision), so
    // reward · weight / Σ is exact integer arithmetic in u128.
    let scale = |w: f64| (w / total * (1u64 << 52) as f64).round() as u128;
    let weights: Vec<(&str, f64, u128)> = work.iter().map(|(k, w)| (*k, *w, scale(*w))).collect();
    let denom: u128 = weights.iter().map(|(_, _, s)| s).sum();
    let mut out: Vec<(Payout, u128)> = weights
        .iter()
        .map(|(k, w, s)| {
            let num = u128::from(reward_sat) * s;
            (
                Payout {
                    worker: (*k).to_owned(),
                    work: *w,
                    sat: (num / denom) as u64,
                },
                num % denom,
            )
        })
        .collect();
    let paid: u64 = out.iter().map(|(p, _)| p.sat).sum();
    let mut dust = reward_sat - paid;
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| out[b].1.cmp(&out[a].1).then(a.cmp(&b)));
    for i in order {
        if dust == 0 {
            break;
        }
        out[i].0.sat += 1;
        dust -= 1;
    }
    out.into_iter().map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_share_set_pays_exactly() {
        // Newest first: c's share is the newest; the window of 10 takes
        // c 4, b 3, a 2 and one unit of a's older share of 5.
        let rows = [("c", 4.0), ("b", 3.0), ("a", 2.0), ("a", 5.0), ("b", 100.0)];
        let p = pplns(rows, 10.0, 312_500_000);
        let got: Vec<(&str, f64, u64)> = p
            .iter()
            .map(|x| (x.worker.as_str(), x.work, x.sat))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 3.0, 93_750_000),
                ("b", 3.0, 93_750_000),
                ("c", 4.0, 125_000_000),
            ]
        );
    }

    #[test]
    fn every_satoshi_is_paid_once() {
        // Thirds of 100 sat: 33 each and one left, to the first by name.
        let p = pplns([("x", 1.0), ("y", 1.0), ("z", 1.0)], 3.0, 100);
        let sats: Vec<u64> = p.iter().map(|x| x.sat).collect();
        assert_eq!(sats, vec![34, 33, 33]);
        // A ledger shorter than the window pays what it holds.
        let p = pplns([("x", 1.0)], 1e9, 7);
        assert_eq!(p[0].sat, 7);
        assert!(pplns([], 10.0, 7).is_empty());
    }

    #[test]
    fn bad_difficulties_are_skipped() {
        let p = pplns([("x", f64::NAN), ("y", -1.0), ("z", 2.0)], 10.0, 10);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].sat, 10);
    }

    #[test]
    fn fpps_pays_the_expectation_less_the_fee() {
        // Two shares of difficulty 1 at network difficulty 1000 and a
        // reward of 3.125 BTC: 2/1000 of it, less 2 %.
        let rows = [
            ("a", 1.0, 1000.0, 312_500_000),
            ("a", 1.0, 1000.0, 312_500_000),
        ];
        let p = fpps(rows, 0.02);
        assert_eq!(p[0].sat, 612_500);
        assert_eq!(p[0].work, 2.0);
    }

    proptest::proptest! {
        #[test]
        fn pplns_never_creates_or_loses_a_satoshi(
            shares in proptest::collection::vec((0u8..5, 1e-6f64..1e6), 1..200),
            window in 1e-3f64..1e7,
            reward in 0u64..2_100_000_000_000_000,
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let rows = shares.iter().map(|(w, d)| (names[usize::from(*w)], *d));
            let p = pplns(rows, window, reward);
            proptest::prop_assert_eq!(p.iter().map(|x| x.sat).sum::<u64>(), reward);
        }
    }
}
