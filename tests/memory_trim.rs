//! The heap trim gives freed memory back: RSS stays at a burst's
//! high-water mark without it (see `crates/cli/memory.rs`). Its own test
//! binary, so that no other test allocates while RSS is read.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_burst_is_given_back_to_the_os() {
    use sluice::memory::{rss_kib, trim};

    const MIB: u64 = 1024;
    // A burst of 48 MiB in 64 KiB pieces, each followed by a small piece
    // that stays: once the big ones are freed, the heap is full of holes
    // that free() alone never returns (none is at its top), wherever the
    // allocator put the first piece.
    let mut burst = Vec::new();
    let mut pins = Vec::new();
    for i in 0..768u32 {
        burst.push(vec![i as u8; 64 * 1024]);
        pins.push(Box::new([i as u8; 64]));
    }
    let held = rss_kib().expect("VmRSS");
    drop(burst);
    let freed = rss_kib().expect("VmRSS");
    assert!(trim(), "malloc_trim released nothing");
    let trimmed = rss_kib().expect("VmRSS");
    assert!(
        freed.saturating_sub(trimmed) >= 32 * MIB,
        "RSS held {held} KiB, {freed} KiB after the free, {trimmed} KiB after the trim"
    );
    assert!(pins.iter().enumerate().all(|(i, p)| p[0] == i as u8));
}
