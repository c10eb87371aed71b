//! Fixed rings of time buckets: constant memory per worker, O(window)
//! sums, and a window's oldest bucket prorated by how much of it the
//! window covers (shares are assumed spread evenly inside one bucket).

/// A bucket's number type. Workers use `f32`: a day of buckets stays under
/// 10 KiB and one worker's bucket sums a few hundred shares at most, far
/// inside its precision. Pools and the farm sum thousands of miners into
/// one bucket, where `f32` rounding would add up: they use `f64`.
pub trait Acc: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// Adds `v` (negative to take back).
    fn add(&mut self, v: f64);
    /// The value.
    fn get(self) -> f64;
    /// From an `f64` (the store).
    fn of(v: f64) -> Self;
}

impl Acc for f32 {
    #[inline]
    fn add(&mut self, v: f64) {
        *self += v as f32;
    }
    #[inline]
    fn get(self) -> f64 {
        f64::from(self)
    }
    fn of(v: f64) -> Self {
        v as f32
    }
}

impl Acc for f64 {
    #[inline]
    fn add(&mut self, v: f64) {
        *self += v;
    }
    #[inline]
    fn get(self) -> f64 {
        self
    }
    fn of(v: f64) -> Self {
        v
    }
}

/// One bucket's tallies (lifetime totals are kept in `f64` elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket<A: Acc = f32> {
    /// Bucket number (`time / width`); 0 = never used.
    pub(crate) idx: u32,
    /// Σ difficulty of accepted shares.
    pub accepted_work: A,
    /// Σ difficulty of stale shares.
    pub stale_work: A,
    /// Σ difficulty of other shares rejected for their work (low
    /// difficulty, duplicate, ntime, version bits).
    pub rejected_work: A,
    /// BTC earned by the accepted shares, after the pool's fee.
    pub earned_btc: A,
    /// What all submitted work was worth at the network rate (d / D · R,
    /// no fee, nothing rejected): the 100 % line efficiency is measured
    /// against.
    pub value_btc: A,
    /// Accepted shares.
    pub accepted: u32,
    /// Rejected shares (all reasons, stale included).
    pub rejected: u32,
}

/// Sums over a window (prorated, hence `f64` counts).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sums {
    /// Σ difficulty of accepted shares.
    pub accepted_work: f64,
    /// Σ difficulty of stale shares.
    pub stale_work: f64,
    /// Σ difficulty of other work rejects.
    pub rejected_work: f64,
    /// BTC earned, after fee.
    pub earned_btc: f64,
    /// Network value of the submitted work (BTC, before fee).
    pub value_btc: f64,
    /// Accepted shares.
    pub accepted: f64,
    /// Rejected shares.
    pub rejected: f64,
}

impl Sums {
    /// Work the machine did: accepted, stale and rejected alike.
    pub fn submitted_work(&self) -> f64 {
        self.accepted_work + self.stale_work + self.rejected_work
    }

    fn add_scaled<A: Acc>(&mut self, b: &Bucket<A>, k: f64) {
        self.accepted_work += b.accepted_work.get() * k;
        self.stale_work += b.stale_work.get() * k;
        self.rejected_work += b.rejected_work.get() * k;
        self.earned_btc += b.earned_btc.get() * k;
        self.value_btc += b.value_btc.get() * k;
        self.accepted += f64::from(b.accepted) * k;
        self.rejected += f64::from(b.rejected) * k;
    }

    /// Adds another window's sums (farm and pool shards).
    pub fn merge(&mut self, o: &Sums) {
        self.accepted_work += o.accepted_work;
        self.stale_work += o.stale_work;
        self.rejected_work += o.rejected_work;
        self.earned_btc += o.earned_btc;
        self.value_btc += o.value_btc;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
    }
}

/// `N` buckets of `width_ms` each, allocated on the first record: a name
/// that authorizes and never shares costs no ring.
#[derive(Clone, Debug)]
pub struct Ring<A: Acc = f32> {
    width_ms: u64,
    len: usize,
    buckets: Box<[Bucket<A>]>,
}

impl<A: Acc> Ring<A> {
    /// A ring covering `n × width_ms`.
    pub fn new(width_ms: u64, n: usize) -> Self {
        Self {
            width_ms: width_ms.max(1),
            len: n.max(2),
            buckets: Box::default(),
        }
    }

    fn alloc(&mut self) {
        if self.buckets.is_empty() {
            self.buckets = vec![Bucket::default(); self.len].into_boxed_slice();
        }
    }

    /// Bucket width.
    pub fn width_ms(&self) -> u64 {
        self.width_ms
    }

    fn index(&self, t_ms: u64) -> u32 {
        // +1 so that 0 means "never used"; u32 buckets of ≥ 1 s last
        // past the year 2100.
        u32::try_from(t_ms / self.width_ms + 1).unwrap_or(u32::MAX)
    }

    /// The bucket for time `t_ms`, reset if it held an older bucket;
    /// `None` when the slot already holds something newer (a record far
    /// older than the ring: lifetime totals still count it).
    pub fn at(&mut self, t_ms: u64) -> Option<&mut Bucket<A>> {
        self.alloc();
        let idx = self.index(t_ms);
        let n = self.buckets.len();
        let b = &mut self.buckets[idx as usize % n];
        if b.idx > idx {
            return None;
        }
        if b.idx < idx {
            *b = Bucket {
                idx,
                ..Bucket::default()
            };
        }
        Some(b)
    }

    /// Sums over `[now − span, now]`, prorating the oldest bucket; nothing
    /// was recorded before `floor_ms` (the entity's first record), so a
    /// bucket it cuts is prorated over its recorded part only.
    pub fn sum(&self, now_ms: u64, span_ms: u64, floor_ms: u64) -> Sums {
        let mut s = Sums::default();
        if self.buckets.is_empty() {
            return s;
        }
        let n = self.buckets.len() as u64;
        let w = self.width_ms;
        // The span cannot reach past what the ring holds.
        let span_ms = span_ms.min((n - 1) * w);
        let start_ms = now_ms.saturating_sub(span_ms);
        let now_idx = self.index(now_ms);
        let first_idx = self.index(start_ms);
        for idx in first_idx..=now_idx {
            let b = &self.buckets[idx as usize % n as usize];
            if b.idx != idx {
                continue;
            }
            let k = if idx == first_idx && idx != now_idx {
                // Share of this bucket inside the window.
                let bucket_end = u64::from(idx) * w;
                let data_start = (bucket_end - w).max(floor_ms);
                if start_ms <= data_start {
                    1.0
                } else {
                    (bucket_end.saturating_sub(start_ms)) as f64
                        / (bucket_end.saturating_sub(data_start)).max(1) as f64
                }
            } else {
                1.0
            };
            s.add_scaled(b, k);
        }
        s
    }

    /// Buckets in `[now − span, now]` with their start times, oldest first
    /// (empty buckets included, so a series has no holes).
    pub fn series(&self, now_ms: u64, span_ms: u64) -> Vec<(u64, Bucket<A>)> {
        let n = self.len as u64;
        let span_ms = span_ms.min((n - 1) * self.width_ms);
        let now_idx = self.index(now_ms);
        let first_idx = self.index(now_ms.saturating_sub(span_ms));
        (first_idx..=now_idx)
            .map(|idx| {
                let b = self
                    .buckets
                    .get(idx as usize % n as usize)
                    .copied()
                    .unwrap_or_default();
                let start = u64::from(idx - 1) * self.width_ms;
                (start, if b.idx == idx { b } else { Bucket::default() })
            })
            .collect()
    }

    /// Used buckets at or after `since_ms` (what a snapshot must write).
    pub fn touched_since(&self, since_ms: u64) -> impl Iterator<Item = &Bucket<A>> {
        let since = self.index(since_ms);
        self.buckets
            .iter()
            .filter(move |b| b.idx >= since && b.idx != 0)
    }

    /// Adds another ring of the same shape (shards of one tally).
    pub fn absorb(&mut self, other: &Ring<A>) {
        if other.buckets.is_empty() {
            return;
        }
        self.alloc();
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            if b.idx > a.idx {
                *a = *b;
            } else if b.idx == a.idx && b.idx != 0 {
                a.add(b);
            }
        }
    }

    /// Adds a finer ring's bucket `b`, which began at `t_ms`, into this
    /// ring's bucket for that time (ignored if the slot holds something
    /// newer).
    pub fn add_bucket(&mut self, t_ms: u64, b: &Bucket<A>) {
        if b.idx == 0 {
            return;
        }
        if let Some(a) = self.at(t_ms) {
            a.add(b);
        }
    }

    /// Puts back a bucket read from the store (ignored if the slot holds
    /// something newer).
    pub fn restore(&mut self, b: Bucket<A>) {
        self.alloc();
        let n = self.buckets.len();
        let slot = &mut self.buckets[b.idx as usize % n];
        if slot.idx <= b.idx && b.idx != 0 {
            *slot = b;
        }
    }
}

impl<A: Acc> Bucket<A> {
    /// Bucket number (for the store).
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Adds another bucket's tallies (its number is not looked at).
    fn add(&mut self, b: &Bucket<A>) {
        self.accepted_work.add(b.accepted_work.get());
        self.stale_work.add(b.stale_work.get());
        self.rejected_work.add(b.rejected_work.get());
        self.earned_btc.add(b.earned_btc.get());
        self.value_btc.add(b.value_btc.get());
        self.accepted += b.accepted;
        self.rejected += b.rejected;
    }

    /// When the bucket began, in a ring of `width_ms` buckets.
    pub fn start_ms(&self, width_ms: u64) -> u64 {
        u64::from(self.idx.saturating_sub(1)) * width_ms
    }

    /// A bucket with the given number (for the store).
    pub fn with_index(idx: u32) -> Self {
        Self {
            idx,
            ..Self::default()
        }
    }

    /// The same bucket in another number type (the store reads `f64`).
    pub fn convert<B: Acc>(&self) -> Bucket<B> {
        Bucket {
            idx: self.idx,
            accepted_work: B::of(self.accepted_work.get()),
            stale_work: B::of(self.stale_work.get()),
            rejected_work: B::of(self.rejected_work.get()),
            earned_btc: B::of(self.earned_btc.get()),
            value_btc: B::of(self.value_btc.get()),
            accepted: self.accepted,
            rejected: self.rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(r: &mut Ring, t: u64, work: f32) {
        if let Some(b) = r.at(t) {
            b.accepted_work += work;
            b.accepted += 1;
        }
    }

    #[test]
    fn window_prorates_the_oldest_bucket_only() {
        let mut r = Ring::new(10_000, 8);
        // Buckets [0,10s) [10,20s) [20,30s): 1, 2, 4 work.
        add(&mut r, 5_000, 1.0);
        add(&mut r, 15_000, 2.0);
        add(&mut r, 25_000, 4.0);
        // Window [7.5 s, 27.5 s]: a quarter of the first bucket.
        let s = r.sum(27_500, 20_000, 0);
        assert!((s.accepted_work - (0.25 + 2.0 + 4.0)).abs() < 1e-9, "{s:?}");
        // The current bucket counts whole even when only half elapsed.
        let s = r.sum(25_000, 5_000, 0);
        assert!((s.accepted_work - 4.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_bucket_cut_by_the_first_record_is_prorated_over_its_recorded_part() {
        let mut r = Ring::new(10_000, 8);
        // Recording began at 6 s; 4 work in [6 s, 10 s), 3 after.
        add(&mut r, 7_000, 4.0);
        add(&mut r, 12_000, 3.0);
        // Window [8 s, 18 s]: half the recorded part of the first bucket.
        let s = r.sum(18_000, 10_000, 6_000);
        assert!((s.accepted_work - (2.0 + 3.0)).abs() < 1e-9, "{s:?}");
        // A window starting before the first record takes it whole.
        let s = r.sum(18_000, 13_000, 6_000);
        assert!((s.accepted_work - 7.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn old_buckets_are_reused_and_never_counted_again() {
        let mut r = Ring::new(1_000, 4);
        add(&mut r, 500, 1.0);
        // 4 s later the same slot is reused.
        add(&mut r, 4_500, 8.0);
        assert_eq!(r.sum(4_900, 3_000, 0).accepted_work, 8.0);
        // A record older than the ring holds is refused, not mixed in.
        assert!(r.at(600).is_none());
        assert_eq!(r.sum(4_900, 3_000, 0).accepted_work, 8.0);
    }

    #[test]
    fn window_is_capped_at_what_the_ring_holds() {
        let mut r = Ring::new(1_000, 4);
        for t in 0..10 {
            add(&mut r, t * 1_000, 1.0);
        }
        // 3 whole buckets back plus the current one.
        assert_eq!(r.sum(9_000, 100_000, 0).accepted_work, 4.0);
    }

    #[test]
    fn rings_cost_nothing_until_the_first_record() {
        let mut r = Ring::new(1_000, 100);
        assert!(r.buckets.is_empty());
        assert_eq!(r.sum(5_000, 3_000, 0), Sums::default());
        assert_eq!(r.series(5_000, 3_000).len(), 4);
        add(&mut r, 4_500, 1.0);
        assert_eq!(r.buckets.len(), 100);
        assert_eq!(r.sum(5_000, 3_000, 0).accepted_work, 1.0);
    }

    #[test]
    fn series_has_no_holes() {
        let mut r = Ring::new(1_000, 10);
        add(&mut r, 1_000, 1.0);
        add(&mut r, 4_000, 2.0);
        let s = r.series(4_500, 4_000);
        let starts: Vec<u64> = s.iter().map(|(t, _)| *t).collect();
        assert_eq!(starts, vec![0, 1_000, 2_000, 3_000, 4_000]);
        let work: Vec<f32> = s.iter().map(|(_, b)| b.accepted_work).collect();
        assert_eq!(work, vec![0.0, 1.0, 0.0, 0.0, 2.0]);
    }
}
