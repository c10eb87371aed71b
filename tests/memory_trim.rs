//! The heap trim gives freed memory back: RSS stays at a burst's
//! high-water mark without it (see `crates/cli/memory.rs`). Its own test
//! binary, so that no other test allocates while RSS is read.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_burst_is_given_back_to_the_os() {
    use sluice::memory::{rss_kib, trim};

    const MIB: u64 = 1024;
    // A burst of 48 MiB in 1 KiB pieces, then one small allocation after
    // it, so the freed memory is a hole inside the heap that free() alone
    // never returns.
    let burst: Vec<Box<[u8; 1024]>> = (0..48 * 1024).map(|i| Box::new([i as u8; 1024])).collect();
    let pin = Box::new([7u8; 64]);
    let held = rss_kib().expect("VmRSS");
    drop(burst);
    let freed = rss_kib().expect("VmRSS");
    assert!(trim(), "malloc_trim released nothing");
    let trimmed = rss_kib().expect("VmRSS");
    assert!(
        freed.saturating_sub(trimmed) >= 32 * MIB,
        "RSS held {held} KiB, {freed} KiB after the free, {trimmed} KiB after the trim"
    );
    assert_eq!(pin[0], 7);
}
