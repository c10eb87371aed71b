//! The allocator, and freed heap given back to the operating system.
//!
//! - **jemalloc is the global allocator.** With glibc's malloc, an hour
//!   of 10,000 miners with 1 % reconnecting every minute grew RSS by
//!   ~90 KiB a minute while the bytes in use (`mallinfo2`) stayed flat:
//!   the free space glibc held grew from 4.6 to 8.8 MB, holes between
//!   long-lived pieces that no trim can return. jemalloc keeps each size
//!   class in slabs of its own, so a connection that leaves frees slots
//!   the next one of the same shape reuses. In the same soak (three runs
//!   side by side, `benches/results/soak-2026-12-07-allocators.md`) it
//!   held RSS level where glibc's climbed.
//! - **[`trim_loop`] purges** once a minute, off the runtime's worker
//!   threads, and sooner when RSS has grown since the last purge. A pool
//!   failover is a burst: every miner moves at once, with the refusals of
//!   its shares in flight, a move event and a clean job. jemalloc returns
//!   freed pages by itself over ~10 s (its decay); a purge returns them at
//!   once, so a failover's burst does not sit in RSS.
//!
//! Elsewhere than Linux (no jemalloc on MSVC), [`trim`] does nothing and
//! [`heap_use`] is `None`.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// jemalloc for every allocation of the binary and of the tests that link
/// this library, so both run on the allocator the soak measured.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often [`trim_loop`] trims at the least.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(60);
/// How often [`trim_loop`] reads RSS (a read of `/proc/self/status`).
pub const TRIM_CHECK: Duration = Duration::from_secs(5);
/// RSS growth since the last trim, in parts per thousand, that brings a
/// trim forward: a burst (a failover moves every miner at once) is worth
/// returning, a few new connections are not.
pub const TRIM_GROWTH_PERMILLE: u64 = 20;
/// The least time between trims brought forward: pages a trim gave back
/// and the heap takes again (the connections' ordinary churn) can grow RSS
/// past [`TRIM_GROWTH_PERMILLE`] again, and a trim every check would walk
/// the arenas for nothing.
pub const TRIM_MIN_GAP: Duration = Duration::from_secs(30);

/// jemalloc's control interface (`mallctl`), for the few names used here.
#[cfg(not(target_env = "msvc"))]
mod ctl {
    use std::ffi::CStr;
    use std::ptr::null_mut;

    /// Runs a command: a name that takes and returns nothing.
    pub(super) fn command(name: &CStr) -> bool {
        #[allow(unsafe_code)]
        // SAFETY: both the old and the new value pointers are null, so
        // jemalloc reads and writes no memory of ours; `name` is a C string.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(name.as_ptr(), null_mut(), null_mut(), null_mut(), 0)
        };
        rc == 0
    }

    /// Reads a `size_t` value.
    pub(super) fn read_usize(name: &CStr) -> Option<usize> {
        let mut value: usize = 0;
        let mut len = size_of::<usize>();
        #[allow(unsafe_code)]
        // SAFETY: `value` and `len` are a `size_t` out-parameter and its
        // size, as the `stats.*` names read here require; jemalloc writes
        // at most `len` bytes and no new value is passed.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut value).cast(),
                &raw mut len,
                null_mut(),
                0,
            )
        };
        (rc == 0 && len == size_of::<usize>()).then_some(value)
    }

    /// Refreshes the statistics, which jemalloc caches until `epoch` is
    /// written.
    pub(super) fn refresh() -> bool {
        let mut epoch: u64 = 1;
        #[allow(unsafe_code)]
        // SAFETY: `epoch` takes a `uint64_t` new value, passed with its
        // size; no old value is read.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"epoch".as_ptr(),
                null_mut(),
                null_mut(),
                (&raw mut epoch).cast(),
                size_of::<u64>(),
            )
        };
        rc == 0
    }
}

/// Hands every arena's free pages back to the operating system now,
/// instead of over jemalloc's decay; true when the purge ran.
#[cfg(not(target_env = "msvc"))]
pub fn trim() -> bool {
    // 4096 is MALLCTL_ARENAS_ALL: every arena at once.
    ctl::command(c"arena.4096.purge")
}

/// The heap as the allocator sees it, in bytes: what the program has
/// allocated and what the allocator holds beside it. RSS growing with
/// `in_use` flat is the allocator's (fragmentation, pages not yet
/// returned); `in_use` growing is the program's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapUse {
    /// Bytes the program holds allocated (jemalloc's `stats.allocated`).
    pub in_use: u64,
    /// Resident bytes the allocator holds beyond those: free slots in
    /// slabs, freed pages not yet returned, and its own metadata
    /// (`stats.resident` − `stats.allocated`).
    pub free: u64,
}

/// The heap's use, over all arenas; `None` where jemalloc is not the
/// allocator or its statistics cannot be read.
#[cfg(not(target_env = "msvc"))]
pub fn heap_use() -> Option<HeapUse> {
    if !ctl::refresh() {
        return None;
    }
    let allocated = ctl::read_usize(c"stats.allocated")? as u64;
    let resident = ctl::read_usize(c"stats.resident")? as u64;
    Some(HeapUse {
        in_use: allocated,
        free: resident.saturating_sub(allocated),
    })
}

/// The heap's use (`None` without jemalloc).
#[cfg(target_env = "msvc")]
pub fn heap_use() -> Option<HeapUse> {
    None
}

/// Hands free heap pages back to the operating system (a no-op without
/// jemalloc).
#[cfg(target_env = "msvc")]
pub fn trim() -> bool {
    false
}

/// This process's resident memory in KiB (Linux).
pub fn rss_kib() -> Option<u64> {
    rss_kib_of("self")
}

/// A process's resident memory in KiB (Linux): `pid` is a process id, or
/// `self`.
pub fn rss_kib_of(pid: impl std::fmt::Display) -> Option<u64> {
    resident_of(pid).map(|r| r.total_kib)
}

/// A process's resident memory and what it is made of, KiB, from one
/// read of `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`: all of it.
    pub total_kib: u64,
    /// `RssAnon`: the heap, stacks and other private memory.
    pub anon_kib: u64,
    /// `RssFile`: pages of mapped files, mostly the binary's and its
    /// libraries' code. The first connections run code the process had
    /// not run yet, and its pages count here once, whatever the number of
    /// connections: a fixed cost that a per-connection figure over few
    /// connections carries, and the reason to read it apart.
    pub file_kib: u64,
}

/// [`Resident`] of a process (Linux): `pid` is a process id, or `self`.
pub fn resident_of(pid: impl std::fmt::Display) -> Option<Resident> {
    parse_resident(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// [`Resident`] from the text of a `/proc/PID/status`; `None` without
/// `VmRSS` (kernels before 4.5 have no `RssAnon` and `RssFile`: 0 then).
fn parse_resident(status: &str) -> Option<Resident> {
    let field = |name: &str| -> Option<u64> {
        let v = status.lines().find_map(|l| l.strip_prefix(name))?;
        v.split_whitespace().next()?.parse().ok()
    };
    Some(Resident {
        total_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:").unwrap_or(0),
        file_kib: field("RssFile:").unwrap_or(0),
    })
}

/// Trims at least every `every`, and sooner when RSS has grown by
/// [`TRIM_GROWTH_PERMILLE`] since the last trim (read every `check`, at
/// least [`TRIM_MIN_GAP`] after it), until cancelled. A trim brought forward is followed by another one
/// check later: a burst still in use at the first gives its memory back at
/// the second. The trim runs on a blocking thread, so no worker thread's
/// connections wait for the walk itself; a worker that allocates from an
/// arena while it is walked still waits for that arena's lock (the debug
/// log gives how long a trim took).
pub async fn trim_loop(check: Duration, every: Duration, cancel: CancellationToken) {
    let mut tick = crate::every::Every::new(check, false, cancel);
    let mut plan = TrimPlan::new(rss_kib(), Instant::now(), every);
    while tick.next().await {
        let before = rss_kib();
        if !plan.due(before, Instant::now()) {
            continue;
        }
        // Timed on the blocking thread: the walk itself, which is what the
        // arenas' other users may wait for, not this task's wake-up.
        let Ok((released, took, heap)) = tokio::task::spawn_blocking(|| {
            let started = Instant::now();
            let released = trim();
            (released, started.elapsed(), heap_use())
        })
        .await
        else {
            continue;
        };
        let after = rss_kib();
        plan.trimmed(after, Instant::now());
        let heap = heap.unwrap_or_default();
        tracing::debug!(
            released,
            took_us = took.as_micros() as u64,
            rss_before_kib = before,
            rss_after_kib = after,
            heap_in_use_kib = heap.in_use / 1024,
            heap_free_kib = heap.free / 1024,
            "heap trimmed"
        );
    }
}

/// When to trim: the decisions of [`trim_loop`], without its clock.
#[derive(Debug)]
pub struct TrimPlan {
    every: Duration,
    /// RSS after the last trim (or at the start).
    base_kib: Option<u64>,
    last: Instant,
    /// The last trim was brought forward: the next check trims again.
    follow_up: bool,
}

impl TrimPlan {
    /// A plan whose last trim was `now`, at `rss_kib`.
    pub fn new(rss_kib: Option<u64>, now: Instant, every: Duration) -> Self {
        Self {
            every,
            base_kib: rss_kib,
            last: now,
            follow_up: false,
        }
    }

    /// Whether to trim now, with RSS at `rss_kib`. A trim it says is due
    /// and then made is reported with [`TrimPlan::trimmed`].
    pub fn due(&mut self, rss_kib: Option<u64>, now: Instant) -> bool {
        if self.follow_up || now.duration_since(self.last) >= self.every {
            self.follow_up = false;
            return true;
        }
        let grown = now.duration_since(self.last) >= TRIM_MIN_GAP
            && matches!(
                (rss_kib, self.base_kib),
                (Some(r), Some(b)) if r * 1000 > b * (1000 + TRIM_GROWTH_PERMILLE)
            );
        // The follow-up is for a trim brought forward, not for the
        // minute's.
        self.follow_up = grown;
        grown
    }

    /// A trim was made at `now`, leaving RSS at `rss_kib`.
    pub fn trimmed(&mut self, rss_kib: Option<u64>, now: Instant) {
        self.base_kib = rss_kib;
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const S5: Duration = Duration::from_secs(5);

    #[test]
    fn a_burst_is_trimmed_twice_at_once_and_quiet_growth_waits_for_the_minute() {
        let t0 = Instant::now();
        let mut p = TrimPlan::new(Some(100_000), t0, MIN);
        // 1 % more: a few connections, not worth a trim.
        assert!(!p.due(Some(101_000), t0 + 7 * S5));
        // A failover's burst: trimmed at the next check...
        assert!(p.due(Some(104_000), t0 + 8 * S5));
        p.trimmed(Some(103_500), t0 + 8 * S5);
        // ...and once more, though RSS did not grow again since.
        assert!(p.due(Some(103_500), t0 + 9 * S5));
        p.trimmed(Some(100_200), t0 + 9 * S5);
        // Then quiet until growth or the minute, and growth right after
        // a trim waits for the gap.
        assert!(!p.due(Some(101_500), t0 + 10 * S5));
        assert!(!p.due(Some(103_000), t0 + 11 * S5));
        assert!(p.due(Some(103_000), t0 + 9 * S5 + TRIM_MIN_GAP));
        p.trimmed(Some(101_000), t0 + 9 * S5 + TRIM_MIN_GAP);
        assert!(
            p.due(Some(101_000), t0 + 10 * S5 + TRIM_MIN_GAP),
            "follow-up"
        );
        p.trimmed(Some(101_000), t0 + 10 * S5 + TRIM_MIN_GAP);
        let last = t0 + 10 * S5 + TRIM_MIN_GAP;
        assert!(!p.due(Some(101_500), last + MIN - S5));
        assert!(p.due(Some(101_500), last + MIN));
        p.trimmed(Some(101_000), last + MIN);
        // The minute's trim has no follow-up.
        assert!(!p.due(Some(101_000), last + MIN + S5));
    }

    #[cfg(not(target_env = "msvc"))]
    #[test]
    fn heap_use_sees_what_the_program_allocates_and_frees() {
        // 32 MiB in 1 KiB pieces: slab slots, not large extents. Other
        // tests allocate meanwhile, so the bounds leave them half.
        const MIB: u64 = 1 << 20;
        let before = heap_use().expect("jemalloc");
        let held: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let during = heap_use().expect("jemalloc");
        assert!(
            during.in_use >= before.in_use + 16 * MIB,
            "{before:?} -> {during:?}"
        );
        drop(held);
        let after = heap_use().expect("jemalloc");
        assert!(
            after.in_use + 16 * MIB <= during.in_use,
            "{during:?} -> {after:?}"
        );
    }

    #[test]
    fn resident_memory_is_read_with_its_parts() {
        let status = "Name:\tsluice\nVmHWM:\t   16020 kB\nVmRSS:\t   15692 kB\nRssAnon:\t    6556 kB\nRssFile:\t    9136 kB\nRssShmem:\t       0 kB\n";
        assert_eq!(
            parse_resident(status),
            Some(Resident {
                total_kib: 15692,
                anon_kib: 6556,
                file_kib: 9136
            })
        );
        // An old kernel's status has VmRSS alone.
        assert_eq!(
            parse_resident("VmRSS:\t 100 kB\n"),
            Some(Resident {
                total_kib: 100,
                anon_kib: 0,
                file_kib: 0
            })
        );
        assert_eq!(parse_resident("Name:\tx\nVmRSS:\tkB\n"), None);
        assert_eq!(parse_resident(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_code_pages_and_a_heap() {
        let r = resident_of("self").expect("/proc/self/status");
        assert!(r.file_kib > 0 && r.anon_kib > 0, "{r:?}");
        // The parts are read from the same text as the whole (shared
        // memory is the rest).
        assert!(r.anon_kib + r.file_kib <= r.total_kib, "{r:?}");
    }

    #[test]
    fn without_a_reading_it_trims_on_the_minute() {
        let t0 = Instant::now();
        let mut p = TrimPlan::new(None, t0, MIN);
        assert!(!p.due(None, t0 + S5));
        assert!(!p.due(Some(1 << 30), t0 + S5));
        assert!(p.due(None, t0 + MIN));
    }
}
