//! A [`Tally`]: the books of one worker, one pool, or the farm — rings of
//! time buckets and lifetime totals. Pools and the farm keep two rings
//! (10 s buckets for the 1 and 5 min windows, 5 min buckets for 1 h, 24 h
//! and the day's series). A worker — there may be 100,000 of them — keeps
//! 1 min buckets for the short windows, 5 min buckets for the last hour
//! only and 2-hour buckets for the day: 896 B instead of 10.2 KiB, with
//! the day's series in 2-hour points and 5 min ones only for the last
//! hour (the store keeps its 5 min buckets).

use serde::Serialize;

use crate::ring::{Acc, Bucket, Counts, Rings, Shape, Sums};

/// Hashes per difficulty-1 share.
pub const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

/// Number of reject reasons a tally keeps apart.
pub const MAX_REASONS: usize = 16;

/// Fine ring: 10 s buckets, 6 min.
pub const FINE_WIDTH_MS: u64 = 10_000;
const FINE_LEN: u32 = 37;
/// Coarse ring: 5 min buckets, a day and one more bucket.
pub const COARSE_WIDTH_MS: u64 = 300_000;
const COARSE_LEN: u32 = 290;
/// A worker's fine ring: 1 min buckets, 5 min and the current one (the 1
/// and 5 min windows, each reading its oldest bucket prorated). A worker
/// at a share per 5 s has a dozen shares a minute, ±30 % of noise on its
/// 1 min figure before any bucket is cut; 30 s buckets would take five
/// more slots (see `a_workers_rings_fit_in_896_bytes`).
pub const WORKER_FINE_WIDTH_MS: u64 = 60_000;
const WORKER_FINE_LEN: u32 = 6;
/// A worker's coarse ring: the last hour and one more bucket.
const WORKER_COARSE_LEN: u32 = 13;
/// A worker's day ring: 2-hour buckets, a day and one more bucket. Hour
/// buckets took 12 slots more (with a seventh fine slot, 45 slots in a
/// 1,280-byte allocation instead of 32 in 896: 384 bytes in each of
/// 100,000 workers' books). The price is a 24 h window whose oldest
/// bucket, prorated like any window's oldest, is a twelfth of it (as the
/// 1 h window's is), and a day's series at two hours' resolution before
/// its last hour.
pub const DAY_BUCKET_MS: u64 = 7_200_000;
const DAY_LEN: u32 = 13;

/// A pool's or the farm's rings: fine, then coarse (the day).
const POOL_RINGS: &[Shape] = &[
    Shape {
        width_ms: FINE_WIDTH_MS,
        len: FINE_LEN,
    },
    Shape {
        width_ms: COARSE_WIDTH_MS,
        len: COARSE_LEN,
    },
];
/// A worker's rings: fine, coarse (the last hour), then the day.
const WORKER_RINGS: &[Shape] = &[
    Shape {
        width_ms: WORKER_FINE_WIDTH_MS,
        len: WORKER_FINE_LEN,
    },
    Shape {
        width_ms: COARSE_WIDTH_MS,
        len: WORKER_COARSE_LEN,
    },
    Shape {
        width_ms: DAY_BUCKET_MS,
        len: DAY_LEN,
    },
];
const FINE: usize = 0;
const COARSE: usize = 1;
const DAY: usize = 2;

/// The windows figures are given over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Window {
    /// Last minute.
    #[serde(rename = "1m")]
    M1,
    /// Last 5 minutes.
    #[serde(rename = "5m")]
    M5,
    /// Last hour.
    #[serde(rename = "1h")]
    H1,
    /// Last 24 hours.
    #[serde(rename = "24h")]
    H24,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 4] = [Window::M1, Window::M5, Window::H1, Window::H24];

    /// Length in milliseconds.
    pub fn span_ms(self) -> u64 {
        match self {
            Window::M1 => 60_000,
            Window::M5 => 300_000,
            Window::H1 => 3_600_000,
            Window::H24 => 86_400_000,
        }
    }

    /// The label used in the API and CLI.
    pub fn label(self) -> &'static str {
        match self {
            Window::M1 => "1m",
            Window::M5 => "5m",
            Window::H1 => "1h",
            Window::H24 => "24h",
        }
    }

    /// Parses `1m`, `5m`, `1h` or `24h`.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.label() == s)
    }
}

/// What happened to one share, as the books see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Accepted; `earned_btc` after the pool's fee.
    Accepted {
        /// BTC the share is expected to earn.
        earned_btc: f64,
        /// True when it met the network target.
        block: bool,
    },
    /// Stale: its job was superseded or is no longer known (reason index).
    Stale(u8),
    /// Rejected for its work (low difficulty, duplicate, …): reason index.
    RejectedWork(u8),
    /// Refused before any work could be credited (bad job id, malformed):
    /// counted by reason, no work.
    Refused(u8),
    /// An accepted share the pool then rejected (or that never reached
    /// it): its work moves from accepted to rejected and its earnings are
    /// taken back.
    UpstreamRejected {
        /// What it had been credited.
        earned_btc: f64,
        /// Reason index.
        reason: u8,
    },
}

/// Lifetime reject counts by reason index, kept as the reasons seen: most
/// workers have one or two (stale shares at each new block), and sixteen
/// counters in every worker entry were 128 of its bytes. Read as a whole
/// ([`Rejects::to_array`]), serialized as the sixteen counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rejects(Box<[(u8, u64)]>);

impl Rejects {
    /// From counts by reason index.
    pub fn from_array(counts: &[u64; MAX_REASONS]) -> Self {
        let seen: Vec<(u8, u64)> = (0u8..)
            .zip(counts.iter().copied())
            .filter(|&(_, n)| n > 0)
            .collect();
        Self(seen.into_boxed_slice())
    }

    /// Where a reason index is counted: reasons past the last share the
    /// last.
    fn slot(reason: usize) -> u8 {
        reason.min(MAX_REASONS - 1) as u8
    }

    /// The counts by reason index.
    pub fn to_array(&self) -> [u64; MAX_REASONS] {
        let mut a = [0u64; MAX_REASONS];
        for (r, n) in self.iter() {
            a[r] = n;
        }
        a
    }

    /// The reasons seen and their counts, by reason index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.0.iter().map(|&(r, n)| (usize::from(r), n))
    }

    /// The count for one reason (past the last: the last).
    pub fn get(&self, reason: usize) -> u64 {
        let r = Self::slot(reason);
        self.0.iter().find(|e| e.0 == r).map_or(0, |e| e.1)
    }

    /// Adds `n` to a reason (past the last: to the last).
    pub fn add(&mut self, reason: usize, n: u64) {
        if n == 0 {
            return;
        }
        let r = Self::slot(reason);
        if let Some(e) = self.0.iter_mut().find(|e| e.0 == r) {
            e.1 += n;
            return;
        }
        // A reason a worker has not had before: a few times in its life.
        let mut v = std::mem::take(&mut self.0).into_vec();
        let at = v.partition_point(|e| e.0 < r);
        v.insert(at, (r, n));
        self.0 = v.into_boxed_slice();
    }

    /// Adds another entity's counts.
    pub fn merge(&mut self, o: &Rejects) {
        for (r, n) in o.iter() {
            self.add(r, n);
        }
    }
}

impl Serialize for Rejects {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_array().serialize(s)
    }
}

/// Lifetime totals. They only ever grow (Prometheus counters are read
/// from them): a share the pool refuses after sluice accepted it stays in
/// `accepted_*` and is counted again in `upstream_rejected_*`; the net is
/// the difference (windows are net already).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Σ difficulty of accepted shares (as sluice judged them).
    pub accepted_work: f64,
    /// Σ difficulty of stale shares.
    pub stale_work: f64,
    /// Σ difficulty of other work rejects.
    pub rejected_work: f64,
    /// BTC earned after fee.
    pub earned_btc: f64,
    /// Network value of all submitted work.
    pub value_btc: f64,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares (every reason).
    pub rejected: u64,
    /// Rejected shares by reason index.
    pub rejects: Rejects,
    /// Blocks and the pool's refusals, which most workers never have:
    /// boxed, 8 bytes in every worker's entry instead of 32 (the entry
    /// fits a 256-byte allocation, see `a_worker_entry_fits_in_256_bytes`).
    /// `None` while all of them are zero, so equal totals compare equal.
    rare: Option<Box<Rare>>,
}

/// The totals few entities ever have (see [`Totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rare {
    /// Shares that met the network target.
    pub blocks: u64,
    /// Accepted shares the pool then refused (or never received).
    pub upstream_rejected: u64,
    /// Their work, at the larger of the share's and the pool's difficulty.
    pub upstream_rejected_work: f64,
    /// The earnings taken back for them.
    pub upstream_rejected_btc: f64,
}

impl Totals {
    /// Adds another entity's totals.
    pub fn add(&mut self, u: &Totals) {
        self.accepted_work += u.accepted_work;
        self.stale_work += u.stale_work;
        self.rejected_work += u.rejected_work;
        self.earned_btc += u.earned_btc;
        self.value_btc += u.value_btc;
        self.accepted += u.accepted;
        self.rejected += u.rejected;
        if let Some(o) = u.rare.as_deref() {
            let r = self.rare_mut();
            r.blocks += o.blocks;
            r.upstream_rejected += o.upstream_rejected;
            r.upstream_rejected_work += o.upstream_rejected_work;
            r.upstream_rejected_btc += o.upstream_rejected_btc;
        }
        self.rejects.merge(&u.rejects);
    }

    /// Blocks and the pool's refusals (zeros when there were none).
    pub fn rare(&self) -> Rare {
        self.rare.as_deref().copied().unwrap_or_default()
    }

    /// Sets them (the store), boxed only when one is not zero.
    pub fn set_rare(&mut self, r: Rare) {
        self.rare = (r != Rare::default()).then(|| Box::new(r));
    }

    /// For adding to them: only ever called with something to add, so a
    /// box holds something that is not zero.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// The API's shape: every total, the rare ones included, as fields of one
/// object.
impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            accepted_work: f64,
            stale_work: f64,
            rejected_work: f64,
            earned_btc: f64,
            value_btc: f64,
            accepted: u64,
            rejected: u64,
            rejects: &'a Rejects,
            blocks: u64,
            upstream_rejected: u64,
            upstream_rejected_work: f64,
            upstream_rejected_btc: f64,
        }
        let r = self.rare();
        View {
            accepted_work: self.accepted_work,
            stale_work: self.stale_work,
            rejected_work: self.rejected_work,
            earned_btc: self.earned_btc,
            value_btc: self.value_btc,
            accepted: self.accepted,
            rejected: self.rejected,
            rejects: &self.rejects,
            blocks: r.blocks,
            upstream_rejected: r.upstream_rejected,
            upstream_rejected_work: r.upstream_rejected_work,
            upstream_rejected_btc: r.upstream_rejected_btc,
        }
        .serialize(s)
    }
}

/// Books of one entity (`f32` buckets for workers, `f64` for pools and
/// the farm; see [`Acc`]).
#[derive(Clone, Debug)]
pub struct Tally<A: Acc = f32> {
    /// Fine and coarse rings, and a worker's day in 2-hour buckets (its
    /// coarse ring then holds only the last hour; a pool's or the farm's
    /// coarse ring holds the day).
    rings: Rings<A>,
    /// Lifetime totals (since the store was created).
    pub totals: Totals,
    /// First record (ms since the Unix epoch): windows never reach back
    /// past it, so a worker that joined 10 minutes ago is not diluted over
    /// an hour.
    pub first_ms: u64,
    /// Last share of any outcome.
    pub last_share_ms: u64,
    /// Last record of any kind (for snapshots).
    pub last_change_ms: u64,
}

/// Figures over one window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Seconds the figures cover (the window, or less for a newcomer).
    pub span_s: f64,
    /// Window sums.
    pub sums: Sums,
}

impl Figures {
    /// Accepted hashrate, H/s.
    pub fn hashrate_accepted(&self) -> f64 {
        if self.span_s <= 0.0 {
            return 0.0;
        }
        self.sums.accepted_work * HASHES_PER_DIFF1 / self.span_s
    }

    /// Submitted hashrate (accepted, stale and rejected work), H/s.
    pub fn hashrate_submitted(&self) -> f64 {
        if self.span_s <= 0.0 {
            return 0.0;
        }
        self.sums.submitted_work() * HASHES_PER_DIFF1 / self.span_s
    }

    /// Adds another entity's figures over the same window.
    pub fn merge(&mut self, o: &Figures) {
        self.span_s = self.span_s.max(o.span_s);
        self.sums.merge(&o.sums);
    }
}

impl<A: Acc> Tally<A> {
    /// Empty books starting at `now_ms`, for a pool or the farm.
    pub fn new(now_ms: u64) -> Self {
        Self {
            rings: Rings::new(&POOL_RINGS),
            totals: Totals::default(),
            first_ms: now_ms,
            last_share_ms: 0,
            last_change_ms: now_ms,
        }
    }

    /// Empty books starting at `now_ms`, for a worker: the same windows
    /// in under a tenth of the memory (the 24 h window from 2-hour
    /// buckets).
    pub fn worker(now_ms: u64) -> Self {
        Self {
            rings: Rings::new(&WORKER_RINGS),
            ..Self::new(now_ms)
        }
    }

    /// Records one share of difficulty `d` worth `value_btc` at the
    /// network rate.
    pub fn record(&mut self, t_ms: u64, d: f64, value_btc: f64, outcome: Outcome) {
        let t = &mut self.totals;
        match outcome {
            Outcome::Accepted { earned_btc, block } => {
                t.accepted += 1;
                t.accepted_work += d;
                t.earned_btc += earned_btc;
                t.value_btc += value_btc;
                if block {
                    t.rare_mut().blocks += 1;
                }
            }
            Outcome::Stale(_) => {
                t.rejected += 1;
                t.stale_work += d;
                t.value_btc += value_btc;
            }
            Outcome::RejectedWork(_) => {
                t.rejected += 1;
                t.rejected_work += d;
                t.value_btc += value_btc;
            }
            Outcome::Refused(_) => t.rejected += 1,
            Outcome::UpstreamRejected { earned_btc, .. } => {
                let r = t.rare_mut();
                r.upstream_rejected += 1;
                r.upstream_rejected_work += d;
                r.upstream_rejected_btc += earned_btc;
            }
        }
        let reason = match outcome {
            Outcome::UpstreamRejected { reason, .. } => Some(usize::from(reason)),
            Outcome::Stale(r) | Outcome::RejectedWork(r) | Outcome::Refused(r) => {
                Some(usize::from(r))
            }
            Outcome::Accepted { .. } => None,
        };
        if let Some(r) = reason {
            t.rejects.add(r, 1);
        }
        self.last_share_ms = self.last_share_ms.max(t_ms);
        self.last_change_ms = self.last_change_ms.max(t_ms);
        for ring in 0..self.rings.count() {
            let Some(b) = self.rings.at(ring, t_ms) else {
                continue;
            };
            match outcome {
                Outcome::Accepted { earned_btc, .. } => {
                    b.accepted += 1;
                    b.accepted_work.add(d);
                    b.earned_btc.add(earned_btc);
                    b.value_btc.add(value_btc);
                }
                Outcome::Stale(_) => {
                    b.rejected += 1;
                    b.stale_work.add(d);
                    b.value_btc.add(value_btc);
                }
                Outcome::RejectedWork(_) => {
                    b.rejected += 1;
                    b.rejected_work.add(d);
                    b.value_btc.add(value_btc);
                }
                Outcome::Refused(_) => b.rejected += 1,
                Outcome::UpstreamRejected { earned_btc, .. } => {
                    b.accepted = b.accepted.saturating_sub(1);
                    b.accepted_work.add(-d);
                    b.earned_btc.add(-earned_btc);
                    b.rejected += 1;
                    b.rejected_work.add(d);
                }
            }
        }
    }

    /// Figures over `w` as of `now_ms`.
    pub fn figures(&self, now_ms: u64, w: Window) -> Figures {
        let span = w.span_ms().min(now_ms.saturating_sub(self.first_ms));
        let ring = match w {
            Window::M1 | Window::M5 => FINE,
            Window::H1 => COARSE,
            Window::H24 if self.has_day() => DAY,
            Window::H24 => COARSE,
        };
        Figures {
            span_s: span as f64 / 1000.0,
            sums: if span == 0 {
                Sums::default()
            } else {
                self.rings.sum(ring, now_ms, span, self.first_ms)
            },
        }
    }

    /// The last 24 h, oldest first, as (start, width, bucket), all in
    /// milliseconds: 5 min buckets for pools and the farm; for a worker,
    /// 2-hour buckets before the current one, then the 5 min buckets its
    /// coarse ring still holds, with one point for the part of the current
    /// 2 hours before them (its day bucket less those 5 min buckets).
    pub fn series(&self, now_ms: u64) -> Vec<(u64, u64, Bucket<A>)> {
        if !self.has_day() {
            return self
                .rings
                .series(COARSE, now_ms, Window::H24.span_ms())
                .into_iter()
                .map(|(start, b)| (start, COARSE_WIDTH_MS, b))
                .collect();
        }
        let day_start = now_ms - now_ms % DAY_BUCKET_MS;
        let mut v: Vec<_> = self
            .rings
            .series(DAY, now_ms, Window::H24.span_ms())
            .into_iter()
            .filter(|(start, _)| *start < day_start)
            .map(|(start, b)| (start, DAY_BUCKET_MS, b))
            .collect();
        let fine: Vec<_> = self
            .rings
            .series(COARSE, now_ms, now_ms - day_start)
            .into_iter()
            .filter(|(start, _)| *start >= day_start)
            .collect();
        // The coarse ring holds the last hour: of a 2-hour bucket begun
        // before it, the part it no longer holds is what the day bucket
        // has beyond the 5 min buckets it still does.
        let held_from = fine.first().map_or(now_ms, |(start, _)| *start);
        if held_from > day_start {
            let mut rest = self.rings.bucket(DAY, now_ms);
            // Summed first, taken once: a 5 min bucket may be negative
            // (a reversal larger than what it held), and clamping after
            // each would depend on their order.
            let mut held = Counts::<A>::default();
            for (_, b) in &fine {
                held.add(b);
            }
            rest.take(&held);
            v.push((day_start, held_from - day_start, rest));
        }
        v.extend(
            fine.into_iter()
                .map(|(start, b)| (start, COARSE_WIDTH_MS, b)),
        );
        v
    }

    /// Buckets changed at or after `since_ms`: (fine, coarse).
    pub fn touched_since(&self, since_ms: u64) -> (Vec<Bucket<A>>, Vec<Bucket<A>>) {
        (
            self.rings.touched_since(FINE, since_ms),
            self.rings.touched_since(COARSE, since_ms),
        )
    }

    /// Adds another tally of the same entity (shards).
    pub fn absorb(&mut self, o: &Tally<A>) {
        self.rings.absorb(&o.rings);
        self.totals.add(&o.totals);
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_share_ms = self.last_share_ms.max(o.last_share_ms);
        self.last_change_ms = self.last_change_ms.max(o.last_change_ms);
    }

    /// Puts back buckets read from the store, into fresh books only: a
    /// worker's day buckets are summed from its 5 min ones, so a second
    /// call would count them twice (the store calls it once per tally it
    /// builds).
    pub fn restore(&mut self, fine: &[Bucket<A>], coarse: &[Bucket<A>]) {
        for b in fine {
            self.rings.restore(FINE, *b);
        }
        for b in coarse {
            self.rings.restore(COARSE, *b);
            if self.has_day() {
                self.rings.add_bucket(DAY, b.start_ms(COARSE_WIDTH_MS), b);
            }
        }
    }

    /// Whether the day is kept in 2-hour buckets (a worker's books).
    fn has_day(&self) -> bool {
        self.rings.count() > DAY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomer_windows_cover_only_its_own_time() {
        let mut t: Tally = Tally::new(1_000_000);
        // 10 shares of difficulty 100 over 100 s.
        for i in 0..10 {
            t.record(
                1_000_000 + i * 10_000,
                100.0,
                0.0,
                Outcome::Accepted {
                    earned_btc: 0.0,
                    block: false,
                },
            );
        }
        let f = t.figures(1_100_000, Window::H1);
        assert_eq!(f.span_s, 100.0);
        let expect = 1000.0 * HASHES_PER_DIFF1 / 100.0;
        assert!((f.hashrate_accepted() / expect - 1.0).abs() < 1e-6);
        // The 1 min window sees the last 6 or 7 shares (10 s buckets).
        let m1 = t.figures(1_100_000, Window::M1);
        assert_eq!(m1.span_s, 60.0);
        assert!(m1.sums.accepted >= 6.0 && m1.sums.accepted <= 7.0, "{m1:?}");
    }

    #[test]
    fn reject_counts_keep_the_reasons_seen() {
        let mut r = Rejects::default();
        assert_eq!(r.to_array(), [0; MAX_REASONS]);
        r.add(3, 2);
        r.add(1, 1);
        r.add(3, 1);
        r.add(99, 1); // past the last reason: counted in the last
        assert_eq!((r.get(1), r.get(3), r.get(MAX_REASONS - 1)), (1, 3, 1));
        let mut a = [0; MAX_REASONS];
        (a[1], a[3], a[MAX_REASONS - 1]) = (1, 3, 1);
        assert_eq!(r.to_array(), a);
        assert_eq!(Rejects::from_array(&a), r, "the same list either way");
        let mut m = Rejects::default();
        m.merge(&r);
        m.merge(&r);
        assert_eq!(m.get(3), 6);
    }

    #[test]
    fn a_workers_rings_fit_in_896_bytes() {
        // One allocation per worker that ever shared: jemalloc serves
        // 769–896 bytes from one size class and 897–1,024 from the next,
        // 128 bytes more for each of 100,000 names.
        let slots: usize = WORKER_RINGS.iter().map(|s| s.len as usize).sum();
        let bytes = slots * std::mem::size_of::<crate::ring::Counts<f32>>();
        assert!(bytes <= 896, "{slots} slots, {bytes} bytes");
    }

    fn accepted(t: &mut Tally, t_ms: u64, d: f64) {
        t.record(
            t_ms,
            d,
            d,
            Outcome::Accepted {
                earned_btc: d / 2.0,
                block: false,
            },
        );
    }

    #[test]
    fn a_workers_compact_books_give_the_same_windows_and_a_days_series() {
        const MIN: u64 = 60_000;
        const DAYS2: u64 = 48 * 60 * MIN;
        // (into the current 2 hours, idle before the read, since the first
        // share): on a 2-hour boundary; 20 min in (the coarse ring holds
        // all of it); 62 min in (its 5 min points begin with it); 90 min
        // in (the part before the last hour is one point); a moment
        // before the next; idle for 40 min; the first share 80 min ago.
        for (into_ms, idle_ms, age_ms) in [
            (0, 0, DAYS2),
            (1_234_567, 0, DAYS2),
            (62 * MIN, 0, DAYS2),
            (5_434_567, 0, DAYS2),
            (DAY_BUCKET_MS - 1, 0, DAYS2),
            (5_434_567, 40 * MIN, DAYS2),
            (5_434_567, 0, 80 * MIN),
        ] {
            compact_books_match(into_ms, idle_ms, age_ms);
        }
    }

    /// A worker's windows and series against the exact sums of the shares
    /// it was fed (one every 7 s, difficulty 1 to 5), read `into_ms` into
    /// a 2-hour bucket; then the same books rebuilt from stored 5 min
    /// buckets.
    fn compact_books_match(into_ms: u64, idle_ms: u64, age_ms: u64) {
        let end = 1_000 * DAY_BUCKET_MS + into_ms;
        let first = end - age_ms;
        let case = format!("{into_ms} ms in, idle {idle_ms} ms, age {age_ms} ms");
        let mut w: Tally = Tally::worker(first);
        let mut shares = Vec::new();
        let (mut t, mut i) = (first, 0u64);
        while t < end - idle_ms {
            let d = 1.0 + (i % 5) as f64;
            accepted(&mut w, t, d);
            shares.push((t, d));
            t += 7_000;
            i += 1;
        }
        let exact = |from: u64, to: u64| -> (f64, u32) {
            let mut sum = (0.0, 0);
            for (_, d) in shares.iter().filter(|(t, _)| (from..to).contains(t)) {
                sum = (sum.0 + d, sum.1 + 1);
            }
            sum
        };
        for win in Window::ALL {
            let f = w.figures(end, win);
            let span = (f.span_s * 1000.0).round() as u64;
            let (want, _) = exact(end - span, end + 1);
            // A window's oldest bucket is prorated: with shares evenly
            // spread, that is off by a share or two (difficulty ≤ 5), the
            // 2-hour bucket of the 24 h window included.
            let got = f.sums.accepted_work;
            assert!(
                (got - want).abs() <= 10.0,
                "{case}, {win:?}: {got} vs {want}"
            );
            assert!((f.sums.earned_btc - got / 2.0).abs() <= 1e-4 * got.max(1.0));
        }
        let s = w.series(end);
        let day_start = end - end % DAY_BUCKET_MS;
        assert!(
            s.first()
                .is_some_and(|(st, _, _)| *st + 24 * 3_600_000 <= end)
        );
        assert!(
            s.last()
                .is_some_and(|(st, wd, _)| (*st..st + wd).contains(&end))
        );
        assert!(
            s.windows(2).all(|p| p[0].0 + p[0].1 == p[1].0),
            "{case}: holes"
        );
        for (st, wd, b) in &s {
            let (want, n) = exact(*st, st + wd);
            let got = b.accepted_work.get();
            assert!(
                (got - want).abs() <= 2e-4 * want + 1e-3,
                "{case}, point at {st} of {wd} ms: {got} vs {want}"
            );
            assert!((b.earned_btc.get() - got / 2.0).abs() <= 1e-4 * want + 1e-3);
            assert_eq!(b.accepted, n, "{case}, point at {st}");
            // 2-hour points, then the current 2 hours: 5 min points, after
            // one for the part the coarse ring no longer holds.
            if *st < day_start {
                assert_eq!(*wd, DAY_BUCKET_MS, "{case}");
            } else if *wd != COARSE_WIDTH_MS {
                assert_eq!(*st, day_start, "{case}");
                assert_eq!(st + wd, end - end % COARSE_WIDTH_MS - 12 * COARSE_WIDTH_MS);
            }
        }
        // Restored from its 5 min buckets (the store keeps 26 h of them),
        // the day ring is rebuilt: the same 24 h figures and series, to
        // f32's rounding.
        const STORED: &[Shape] = &[Shape {
            width_ms: COARSE_WIDTH_MS,
            len: 312,
        }];
        let mut stored = Rings::<f32>::new(&STORED);
        for &(t, d) in &shares {
            if let Some(b) = stored.at(0, t) {
                b.accepted_work.add(d);
                b.earned_btc.add(d / 2.0);
                b.value_btc.add(d);
                b.accepted += 1;
            }
        }
        let mut r: Tally = Tally::worker(first);
        r.restore(&[], &stored.touched_since(0, 0));
        let (a, b) = (
            r.figures(end, Window::H24).sums,
            w.figures(end, Window::H24).sums,
        );
        assert!(
            (a.accepted_work / b.accepted_work - 1.0).abs() < 1e-5,
            "{case}: {a:?} vs {b:?}"
        );
        let rs = r.series(end);
        assert_eq!(rs.len(), s.len(), "{case}");
        for ((st, wd, x), (st2, wd2, y)) in s.iter().zip(&rs) {
            assert_eq!((st, wd, x.accepted), (st2, wd2, y.accepted), "{case}");
            let (x, y) = (x.accepted_work.get(), y.accepted_work.get());
            assert!((x - y).abs() <= 1e-5 * x + 1e-3, "{case}, {st}: {x} vs {y}");
        }
    }

    #[test]
    fn outcomes_land_in_their_columns() {
        let mut t: Tally = Tally::new(0);
        t.record(
            1_000,
            10.0,
            1.0,
            Outcome::Accepted {
                earned_btc: 0.9,
                block: true,
            },
        );
        t.record(2_000, 20.0, 2.0, Outcome::Stale(1));
        t.record(3_000, 40.0, 4.0, Outcome::RejectedWork(3));
        t.record(4_000, 0.0, 0.0, Outcome::Refused(0));
        let s = t.figures(5_000, Window::M5).sums;
        assert_eq!(
            (s.accepted_work, s.stale_work, s.rejected_work),
            (10.0, 20.0, 40.0)
        );
        assert_eq!(s.submitted_work(), 70.0);
        assert_eq!((s.accepted, s.rejected), (1.0, 3.0));
        assert!((s.earned_btc - 0.9).abs() < 1e-6 && (s.value_btc - 7.0).abs() < 1e-6);
        assert_eq!(t.totals.rejects.get(1), 1);
        assert_eq!(t.totals.rejects.get(3), 1);
        assert_eq!(t.totals.rejects.get(0), 1);
        assert_eq!(t.totals.rare().blocks, 1);
        assert_eq!(t.last_share_ms, 4_000);
    }
}
