//! What the benches read of processes and the machine: a process's
//! resident memory from /proc, and a free loopback port.

/// Resident set size of a process, KiB (0 when unreadable).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    sluice::memory::rss_kib_of(pid).unwrap_or(0)
}

/// A process's resident memory with its file-backed part (zeros when
/// unreadable).
pub(crate) fn resident(pid: u32) -> sluice::memory::Resident {
    sluice::memory::resident_of(pid).unwrap_or_default()
}

/// A port free on 127.0.0.1 now (0 if none could be had).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
