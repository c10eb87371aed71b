//! Fixed rings of time buckets: constant memory per worker, O(window)
//! sums, and a window's oldest bucket prorated by how much of it the
//! window covers (shares are assumed spread evenly inside one bucket).
//!
//! A tally's rings ([`Rings`]) share one allocation, made on the first
//! record, and a slot does not carry its bucket number: each ring keeps
//! the number of its newest bucket, the slots behind it hold the buckets
//! before it, and the slots a ring steps over are cleared as it moves on.
//! With 100,000 workers the numbers and the two extra allocations were
//! ~300 B a name.

use std::ops::{Deref, DerefMut};

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

/// One bucket's tallies, as a ring slot holds them (lifetime totals are
/// kept in `f64` elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts<A: Acc = f32> {
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

impl<A: Acc> Counts<A> {
    /// Adds another bucket's tallies.
    pub fn add(&mut self, b: &Counts<A>) {
        self.accepted_work.add(b.accepted_work.get());
        self.stale_work.add(b.stale_work.get());
        self.rejected_work.add(b.rejected_work.get());
        self.earned_btc.add(b.earned_btc.get());
        self.value_btc.add(b.value_btc.get());
        self.accepted += b.accepted;
        self.rejected += b.rejected;
    }

    /// Takes away a part of this bucket's tallies (a coarser bucket less
    /// the finer ones it holds): nothing goes below zero, so `f32`
    /// rounding never shows as negative work.
    pub fn take(&mut self, b: &Counts<A>) {
        let less = |x: A, y: A| A::of((x.get() - y.get()).max(0.0));
        self.accepted_work = less(self.accepted_work, b.accepted_work);
        self.stale_work = less(self.stale_work, b.stale_work);
        self.rejected_work = less(self.rejected_work, b.rejected_work);
        self.earned_btc = less(self.earned_btc, b.earned_btc);
        self.value_btc = less(self.value_btc, b.value_btc);
        self.accepted = self.accepted.saturating_sub(b.accepted);
        self.rejected = self.rejected.saturating_sub(b.rejected);
    }

    fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// A bucket with its number (`time / width + 1`; 0 = none), as the store
/// and the series see it. Its tallies are reached through `Deref`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket<A: Acc = f32> {
    idx: u32,
    counts: Counts<A>,
}

impl<A: Acc> Deref for Bucket<A> {
    type Target = Counts<A>;
    fn deref(&self) -> &Counts<A> {
        &self.counts
    }
}

impl<A: Acc> DerefMut for Bucket<A> {
    fn deref_mut(&mut self) -> &mut Counts<A> {
        &mut self.counts
    }
}

impl<A: Acc> Bucket<A> {
    /// Bucket number (for the store).
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// When the bucket began, in a ring of `width_ms` buckets.
    pub fn start_ms(&self, width_ms: u64) -> u64 {
        u64::from(self.idx.saturating_sub(1)) * width_ms
    }

    /// A bucket with the given number (for the store).
    pub fn with_index(idx: u32) -> Self {
        Self {
            idx,
            counts: Counts::default(),
        }
    }

    /// The same bucket in another number type (the store reads `f64`).
    pub fn convert<B: Acc>(&self) -> Bucket<B> {
        let c = &self.counts;
        Bucket {
            idx: self.idx,
            counts: Counts {
                accepted_work: B::of(c.accepted_work.get()),
                stale_work: B::of(c.stale_work.get()),
                rejected_work: B::of(c.rejected_work.get()),
                earned_btc: B::of(c.earned_btc.get()),
                value_btc: B::of(c.value_btc.get()),
                accepted: c.accepted,
                rejected: c.rejected,
            },
        }
    }
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

    fn add_scaled<A: Acc>(&mut self, b: &Counts<A>, k: f64) {
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

/// One ring's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bucket width.
    pub width_ms: u64,
    /// Buckets kept (at least 2).
    pub len: u32,
}

/// The most rings one tally keeps.
pub const MAX_RINGS: usize = 3;

/// A tally's rings of `shape`, in one allocation made on the first record:
/// a name that authorizes and never shares costs no slots.
#[derive(Clone, Debug)]
pub struct Rings<A: Acc = f32> {
    /// Behind a second reference so that this one is thin (8 bytes, not a
    /// slice's 16): there is one per worker.
    shape: &'static &'static [Shape],
    /// Per ring, its newest bucket's number (0 = none yet). Its slots hold
    /// the buckets `head − len + 1 ..= head`; a bucket nothing was recorded
    /// in is a zero slot.
    heads: [u32; MAX_RINGS],
    slots: Box<[Counts<A>]>,
}

impl<A: Acc> Rings<A> {
    /// Rings of the given shape (at most [`MAX_RINGS`]; widths of at least
    /// 1 ms and lengths of at least 2, which the shapes in this crate are).
    pub fn new(shape: &'static &'static [Shape]) -> Self {
        debug_assert!(shape.len() <= MAX_RINGS);
        debug_assert!(shape.iter().all(|s| s.width_ms >= 1 && s.len >= 2));
        Self {
            shape,
            heads: [0; MAX_RINGS],
            slots: Box::default(),
        }
    }

    /// How many rings.
    pub fn count(&self) -> usize {
        self.shape.len()
    }

    /// Ring `r`'s bucket width.
    pub fn width_ms(&self, r: usize) -> u64 {
        self.shape[r].width_ms
    }

    /// Ring `r`'s first slot and length.
    fn span(&self, r: usize) -> (usize, u32) {
        let off = self.shape[..r].iter().map(|s| s.len as usize).sum();
        (off, self.shape[r].len)
    }

    fn alloc(&mut self) {
        if self.slots.is_empty() {
            let n = self.shape.iter().map(|s| s.len as usize).sum();
            self.slots = vec![Counts::default(); n].into_boxed_slice();
        }
    }

    /// Ring `r`'s bucket number for `t_ms`: +1 so that 0 means none; u32
    /// numbers of ≥ 1 s buckets last past the year 2100.
    fn index(&self, r: usize, t_ms: u64) -> u32 {
        u32::try_from(t_ms / self.shape[r].width_ms + 1).unwrap_or(u32::MAX)
    }

    /// Whether ring `r` holds bucket `idx`.
    fn holds(&self, r: usize, idx: u32) -> bool {
        let head = self.heads[r];
        idx != 0 && idx <= head && u64::from(idx) + u64::from(self.shape[r].len) > u64::from(head)
    }

    /// The slot of bucket `idx` in ring `r` (whether or not it holds it).
    fn slot(&self, r: usize, idx: u32) -> usize {
        let (off, n) = self.span(r);
        off + (idx % n) as usize
    }

    /// Moves ring `r`'s head to `idx`, clearing the slots it steps over.
    fn advance(&mut self, r: usize, idx: u32) {
        let (off, n) = self.span(r);
        let head = self.heads[r];
        if idx <= head {
            return;
        }
        for i in head.max(idx.saturating_sub(n)) + 1..=idx {
            self.slots[off + (i % n) as usize] = Counts::default();
        }
        self.heads[r] = idx;
    }

    /// Ring `r`'s bucket for time `t_ms`, begun if it is newer than the
    /// ring's newest; `None` for a record older than the ring holds
    /// (lifetime totals still count it).
    pub fn at(&mut self, r: usize, t_ms: u64) -> Option<&mut Counts<A>> {
        self.alloc();
        let idx = self.index(r, t_ms);
        self.advance(r, idx);
        if !self.holds(r, idx) {
            return None;
        }
        let s = self.slot(r, idx);
        Some(&mut self.slots[s])
    }

    /// Ring `r`'s bucket `idx`, if it holds it.
    fn get(&self, r: usize, idx: u32) -> Option<&Counts<A>> {
        if self.slots.is_empty() || !self.holds(r, idx) {
            return None;
        }
        Some(&self.slots[self.slot(r, idx)])
    }

    /// Ring `r`'s bucket for time `t_ms` (zeros when it holds none).
    pub fn bucket(&self, r: usize, t_ms: u64) -> Bucket<A> {
        let idx = self.index(r, t_ms);
        let counts = self.get(r, idx).copied().unwrap_or_default();
        Bucket { idx, counts }
    }

    /// Sums of ring `r` over `[now − span, now]`, prorating the oldest
    /// bucket; nothing was recorded before `floor_ms` (the entity's first
    /// record), so a bucket it cuts is prorated over its recorded part
    /// only.
    pub fn sum(&self, r: usize, now_ms: u64, span_ms: u64, floor_ms: u64) -> Sums {
        let mut s = Sums::default();
        let n = u64::from(self.shape[r].len);
        let w = self.shape[r].width_ms;
        // The span cannot reach past what the ring holds.
        let span_ms = span_ms.min((n - 1) * w);
        let start_ms = now_ms.saturating_sub(span_ms);
        let now_idx = self.index(r, now_ms);
        let first_idx = self.index(r, start_ms);
        for idx in first_idx..=now_idx {
            let Some(b) = self.get(r, idx) else { continue };
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

    /// Ring `r`'s buckets in `[now − span, now]` with their start times,
    /// oldest first (empty buckets included, so a series has no holes).
    pub fn series(&self, r: usize, now_ms: u64, span_ms: u64) -> Vec<(u64, Bucket<A>)> {
        let Shape { width_ms, len } = self.shape[r];
        let span_ms = span_ms.min(u64::from(len - 1) * width_ms);
        let now_idx = self.index(r, now_ms);
        let first_idx = self.index(r, now_ms.saturating_sub(span_ms));
        (first_idx..=now_idx)
            .map(|idx| {
                let counts = self.get(r, idx).copied().unwrap_or_default();
                (u64::from(idx - 1) * width_ms, Bucket { idx, counts })
            })
            .collect()
    }

    /// Ring `r`'s non-empty buckets at or after `since_ms` (what a
    /// snapshot must write).
    pub fn touched_since(&self, r: usize, since_ms: u64) -> Vec<Bucket<A>> {
        let head = self.heads[r];
        let from = self
            .index(r, since_ms)
            .max(head.saturating_sub(self.shape[r].len - 1))
            .max(1);
        (from..=head)
            .filter_map(|idx| {
                let counts = *self.get(r, idx)?;
                (!counts.is_empty()).then_some(Bucket { idx, counts })
            })
            .collect()
    }

    /// Adds other rings of the same shape (shards of one tally); rings of
    /// another shape are not added.
    pub fn absorb(&mut self, other: &Rings<A>) {
        if other.slots.is_empty() || self.shape != other.shape {
            return;
        }
        self.alloc();
        for r in 0..self.count() {
            let head = other.heads[r];
            self.advance(r, head);
            let from = head.saturating_sub(self.shape[r].len - 1).max(1);
            for idx in from..=head {
                if let (true, Some(b)) = (self.holds(r, idx), other.get(r, idx)) {
                    let s = self.slot(r, idx);
                    self.slots[s].add(b);
                }
            }
        }
    }

    /// Adds a finer ring's bucket `b`, which began at `t_ms`, into ring
    /// `r`'s bucket for that time (ignored if the ring has moved past it).
    pub fn add_bucket(&mut self, r: usize, t_ms: u64, b: &Bucket<A>) {
        if b.idx == 0 {
            return;
        }
        if let Some(a) = self.at(r, t_ms) {
            a.add(&b.counts);
        }
    }

    /// Puts back a bucket read from the store into ring `r` (ignored if
    /// the ring has moved past it).
    pub fn restore(&mut self, r: usize, b: Bucket<A>) {
        if b.idx == 0 {
            return;
        }
        self.alloc();
        self.advance(r, b.idx);
        if self.holds(r, b.idx) {
            let s = self.slot(r, b.idx);
            self.slots[s] = b.counts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R8: &[Shape] = &[Shape {
        width_ms: 10_000,
        len: 8,
    }];
    const R4: &[Shape] = &[Shape {
        width_ms: 1_000,
        len: 4,
    }];
    const R10: &[Shape] = &[Shape {
        width_ms: 1_000,
        len: 10,
    }];

    fn add(r: &mut Rings, t: u64, work: f32) {
        if let Some(b) = r.at(0, t) {
            b.accepted_work += work;
            b.accepted += 1;
        }
    }

    #[test]
    fn window_prorates_the_oldest_bucket_only() {
        let mut r = Rings::new(&R8);
        // Buckets [0,10s) [10,20s) [20,30s): 1, 2, 4 work.
        add(&mut r, 5_000, 1.0);
        add(&mut r, 15_000, 2.0);
        add(&mut r, 25_000, 4.0);
        // Window [7.5 s, 27.5 s]: a quarter of the first bucket.
        let s = r.sum(0, 27_500, 20_000, 0);
        assert!((s.accepted_work - (0.25 + 2.0 + 4.0)).abs() < 1e-9, "{s:?}");
        // The current bucket counts whole even when only half elapsed.
        let s = r.sum(0, 25_000, 5_000, 0);
        assert!((s.accepted_work - 4.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_bucket_cut_by_the_first_record_is_prorated_over_its_recorded_part() {
        let mut r = Rings::new(&R8);
        // Recording began at 6 s; 4 work in [6 s, 10 s), 3 after.
        add(&mut r, 7_000, 4.0);
        add(&mut r, 12_000, 3.0);
        // Window [8 s, 18 s]: half the recorded part of the first bucket.
        let s = r.sum(0, 18_000, 10_000, 6_000);
        assert!((s.accepted_work - (2.0 + 3.0)).abs() < 1e-9, "{s:?}");
        // A window starting before the first record takes it whole.
        let s = r.sum(0, 18_000, 13_000, 6_000);
        assert!((s.accepted_work - 7.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn old_buckets_are_reused_and_never_counted_again() {
        let mut r = Rings::new(&R4);
        add(&mut r, 500, 1.0);
        // 4 s later the same slot is reused.
        add(&mut r, 4_500, 8.0);
        assert_eq!(r.sum(0, 4_900, 3_000, 0).accepted_work, 8.0);
        // A record older than the ring holds is refused, not mixed in.
        assert!(r.at(0, 600).is_none());
        assert_eq!(r.sum(0, 4_900, 3_000, 0).accepted_work, 8.0);
        // A slot stepped over is cleared, though nothing reused it: 2 s
        // (slot 3) is three buckets behind 4.5 s, 6.5 s lands in its slot.
        add(&mut r, 2_500, 5.0);
        assert_eq!(r.sum(0, 4_900, 3_000, 0).accepted_work, 13.0);
        add(&mut r, 7_500, 1.0);
        assert_eq!(r.sum(0, 7_900, 2_000, 0).accepted_work, 1.0);
        assert_eq!(r.touched_since(0, 0).len(), 2);
    }

    #[test]
    fn window_is_capped_at_what_the_ring_holds() {
        let mut r = Rings::new(&R4);
        for t in 0..10 {
            add(&mut r, t * 1_000, 1.0);
        }
        // 3 whole buckets back plus the current one.
        assert_eq!(r.sum(0, 9_000, 100_000, 0).accepted_work, 4.0);
    }

    #[test]
    fn rings_cost_nothing_until_the_first_record_then_share_one_allocation() {
        const TWO: &[Shape] = &[
            Shape {
                width_ms: 1_000,
                len: 100,
            },
            Shape {
                width_ms: 60_000,
                len: 7,
            },
        ];
        let mut r: Rings = Rings::new(&TWO);
        assert!(r.slots.is_empty());
        assert_eq!(r.sum(0, 5_000, 3_000, 0), Sums::default());
        assert_eq!(r.series(0, 5_000, 3_000).len(), 4);
        add(&mut r, 4_500, 1.0);
        assert_eq!(r.slots.len(), 107);
        assert_eq!(r.sum(0, 5_000, 3_000, 0).accepted_work, 1.0);
        // The second ring is apart from the first.
        assert_eq!(r.sum(1, 5_000, 3_000, 0), Sums::default());
        r.at(1, 4_500).unwrap().accepted_work = 3.0;
        assert_eq!(r.sum(0, 5_000, 3_000, 0).accepted_work, 1.0);
        assert_eq!(r.sum(1, 5_000, 60_000, 0).accepted_work, 3.0);
        assert_eq!(std::mem::size_of::<Counts<f32>>(), 28);
    }

    #[test]
    fn series_has_no_holes() {
        let mut r = Rings::new(&R10);
        add(&mut r, 1_000, 1.0);
        add(&mut r, 4_000, 2.0);
        let s = r.series(0, 4_500, 4_000);
        let starts: Vec<u64> = s.iter().map(|(t, _)| *t).collect();
        assert_eq!(starts, vec![0, 1_000, 2_000, 3_000, 4_000]);
        let work: Vec<f32> = s.iter().map(|(_, b)| b.accepted_work).collect();
        assert_eq!(work, vec![0.0, 1.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn shards_absorb_and_restored_buckets_land_in_place() {
        let (mut a, mut b) = (Rings::new(&R4), Rings::new(&R4));
        add(&mut a, 1_500, 1.0);
        add(&mut b, 1_200, 2.0);
        add(&mut b, 3_500, 4.0);
        a.absorb(&b);
        assert_eq!(a.sum(0, 3_900, 3_000, 0).accepted_work, 7.0);
        let stored = a.touched_since(0, 0);
        assert_eq!(stored.iter().map(Bucket::index).collect::<Vec<_>>(), [2, 4]);
        let mut c = Rings::new(&R4);
        for bk in stored {
            c.restore(0, bk);
        }
        assert_eq!(c.series(0, 3_900, 3_000), a.series(0, 3_900, 3_000));
        // Only buckets at or after `since` are written again.
        assert_eq!(a.touched_since(0, 3_000).len(), 1);
    }
}
