//! The heap trim gives freed memory back at once: jemalloc alone returns
//! it only over its decay (about 10 s), and RSS would sit at a burst's
//! high-water mark until then (see `crates/cli/memory.rs`). Its own test
//! binary, so that no other test allocates while RSS is read.

#[cfg(not(target_env = "msvc"))]
#[test]
fn a_freed_burst_is_given_back_to_the_os() {
    use sluice::memory::{heap_use, rss_kib, trim};

    const MIB: u64 = 1024;
    // A burst of 48 MiB in 64 KiB pieces, each followed by a small piece
    // that stays, so the pieces freed are interleaved with live ones
    // wherever the allocator put them.
    let mut burst = Vec::new();
    let mut pins = Vec::new();
    for i in 0..768u32 {
        burst.push(vec![i as u8; 64 * 1024]);
        pins.push(Box::new([i as u8; 64]));
    }
    let held = rss_kib().expect("VmRSS");
    drop(burst);
    assert!(trim(), "the purge did not run");
    let trimmed = rss_kib().expect("VmRSS");
    assert!(
        held.saturating_sub(trimmed) >= 32 * MIB,
        "RSS held {held} KiB with the burst, {trimmed} KiB after it was freed and trimmed"
    );
    // What stays allocated is the pins, not the burst.
    let heap = heap_use().expect("jemalloc's statistics");
    assert!(heap.in_use < 16 << 20, "{heap:?}");
    assert!(pins.iter().enumerate().all(|(i, p)| p[0] == i as u8));
}
