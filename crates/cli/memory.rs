//! Giving freed heap back to the operating system.
//!
//! glibc keeps what a burst of allocations freed in its arenas, and RSS
//! stays at the burst's high-water mark. A pool failover is such a burst:
//! every miner moves at once, with the refusals of its shares in flight, a
//! move event and a clean job. In the hour soak (10,000 miners), RSS
//! stepped up 6.5 % at the first failover while tasks and open files stayed
//! flat. On 10,000 miners after two failovers, one `malloc_trim` gave back
//! 8.4 MB of 103 MB (measured with gdb on the quick soak). So [`trim_loop`]
//! trims once a minute, off the runtime's worker threads. Elsewhere than
//! glibc, [`trim`] does nothing.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often [`trim_loop`] trims.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// Hands free heap pages back to the operating system; true when any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: glibc's `malloc_trim` takes only a padding size, touches no
    // memory of ours, and is thread-safe (it locks each arena in turn).
    unsafe {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        malloc_trim(0) == 1
    }
}

/// Hands free heap pages back to the operating system (a no-op without
/// glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
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
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    kib.split_whitespace().next()?.parse().ok()
}

/// Trims every `every` until cancelled. The trim runs on a blocking
/// thread, so no worker thread's connections wait for the walk itself; a
/// worker that allocates from an arena while it is walked still waits for
/// that arena's lock (the debug log gives how long a trim took).
pub async fn trim_loop(every: Duration, cancel: CancellationToken) {
    let mut every = crate::every::Every::new(every, false, cancel);
    while every.next().await {
        let before = rss_kib();
        let started = Instant::now();
        let Ok(released) = tokio::task::spawn_blocking(trim).await else {
            continue;
        };
        tracing::debug!(
            released,
            took_us = started.elapsed().as_micros() as u64,
            rss_before_kib = before,
            rss_after_kib = rss_kib(),
            "heap trimmed"
        );
    }
}
