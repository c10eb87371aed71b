//! `sluice bench hash`: how many shares one core of this machine validates
//! per second, next to the naive baseline and the raw compression limit,
//! measured in one run so the ratios hold on a noisy machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_pow::{DIFF1, HeaderMidstate, ShareChecker, Submission, baseline, sha, synthetic};

/// Everything the command measures; field names are the JSON keys.
#[derive(Debug, Serialize)]
pub struct HashReport {
    /// The CPU model from /proc/cpuinfo, when readable.
    pub cpu: Option<String>,
    /// Whether the SHA-NI backend is in use.
    pub sha_ni: bool,
    /// Raw `compress256` calls per second, one 64-byte block each, each
    /// call chained on the previous state: the latency bound that the
    /// dependent compressions inside one share check face. The "of limit"
    /// fractions divide by this.
    pub compress256_per_sec: f64,
    /// The same calls on independent states, which the CPU overlaps: the
    /// throughput a multi-buffer batch checker could approach.
    pub compress256_independent_per_sec: f64,
    /// Header checks from a cached first-block midstate (2 compressions).
    pub header_check_per_sec: f64,
    /// The naive header check: `Sha256::digest` twice over 80 bytes.
    pub naive_header_check_per_sec: f64,
    /// `header_check_per_sec / naive_header_check_per_sec`.
    pub header_check_speedup: f64,
    /// Fraction of `compress256_per_sec / 2` the header check reaches.
    pub header_check_of_compress_limit: f64,
    /// Shares with a fresh extranonce2 each (coinbase, merkle, header).
    pub full_share_check_per_sec: f64,
    /// Compressions one fresh-extranonce2 share costs.
    pub full_share_compressions: usize,
    /// Fraction of `compress256_per_sec / full_share_compressions` reached.
    pub full_share_check_of_compress_limit: f64,
    /// The same share checked naively (coinbase and merkle from scratch).
    pub naive_full_share_check_per_sec: f64,
    /// `full_share_check_per_sec / naive_full_share_check_per_sec`.
    pub full_share_check_speedup: f64,
    /// Shares that reuse a recent extranonce2 with a newly rolled version
    /// (3 compressions): what an ASIC mostly sends.
    pub rolled_share_check_per_sec: f64,
    /// Fraction of `compress256_per_sec / 3` the rolled share check reaches.
    pub rolled_share_check_of_compress_limit: f64,
    /// The workload: coinbase bytes and merkle branches.
    pub coinbase_bytes: usize,
    /// Merkle branches in the workload.
    pub merkle_branches: usize,
    /// Wall time the measurement took.
    pub elapsed_sec: f64,
}

/// Measures a loop body's rate (calls per second), best of `rounds` slices
/// of `slice` each. Bodies run interleaved by the caller, so drift on a
/// shared machine hits baseline and candidate alike.
struct Meter {
    slice: Duration,
    best: f64,
}

impl Meter {
    fn new(slice: Duration) -> Self {
        Self { slice, best: 0.0 }
    }

    fn round(&mut self, mut body: impl FnMut(u32)) {
        // Batches of growing size until the slice is spent; timer calls stay
        // a negligible share of the time.
        let start = Instant::now();
        let mut done: u64 = 0;
        let mut batch: u32 = 64;
        let mut i: u32 = 0;
        while start.elapsed() < self.slice {
            for _ in 0..batch {
                body(i);
                i = i.wrapping_add(1);
            }
            done += u64::from(batch);
            batch = batch.saturating_mul(2).min(1 << 16);
        }
        let rate = done as f64 / start.elapsed().as_secs_f64();
        self.best = self.best.max(rate);
    }
}

/// Runs every measurement, interleaved over `rounds` rounds of `slice`.
pub fn run(slice: Duration, rounds: u32) -> HashReport {
    let started = Instant::now();
    let shape = synthetic::TYPICAL;
    let (job, en1) = synthetic::job(shape, 1);
    let bits = job.bits();
    let target = DIFF1;

    let header = sluice_pow::Header {
        version: 0x2000_0000,
        prev_hash: *job.prev_hash(),
        merkle_root: synthetic::bytes(9, 32).try_into().unwrap_or([0; 32]),
        time: 0x6b01_5b89,
        bits,
        nonce: 0,
    };
    let mid = HeaderMidstate::from_parts(header.version, &header.prev_hash, &header.merkle_root);
    let mut header_bytes = header.to_bytes();

    let mut checker = match ShareChecker::new(job.clone(), &en1, shape.extranonce2_len, target) {
        Ok(c) => c,
        Err(e) => unreachable!("synthetic job rejected: {e}"),
    };
    let full_compressions = checker.compressions_fresh_extranonce2();

    let mut compress = Meter::new(slice);
    let mut compress_indep = Meter::new(slice);
    let mut naive_header = Meter::new(slice);
    let mut header_check = Meter::new(slice);
    let mut full = Meter::new(slice);
    let mut naive_full = Meter::new(slice);
    let mut rolled = Meter::new(slice);

    let mut state = sha::H0;
    let block = [0x5au8; 64];
    let mut hits = 0u64;
    for round in 0..rounds {
        compress.round(|_| sha::compress(&mut state, std::slice::from_ref(black_box(&block))));
        compress_indep.round(|_| {
            let mut s = black_box(sha::H0);
            sha::compress(&mut s, std::slice::from_ref(black_box(&block)));
            black_box(s);
        });
        naive_header.round(|n| {
            header_bytes[76..80].copy_from_slice(&n.to_le_bytes());
            let h = baseline::header_hash(black_box(&header_bytes));
            hits += u64::from(target.is_met_by(&h));
        });
        header_check.round(|n| {
            let h = black_box(&mid).hash(header.time, bits, n);
            hits += u64::from(target.is_met_by(&h));
        });
        // A fresh extranonce2 per share: the worst case for the cache.
        full.round(|n| {
            let en2 = (n ^ (round << 28)).to_le_bytes();
            let s = Submission {
                extranonce2: &en2,
                time: header.time,
                nonce: n,
                version: 0x2000_0000,
            };
            if let Ok(r) = checker.check(black_box(&s)) {
                hits += u64::from(r.meets_share_target);
            }
        });
        naive_full.round(|n| {
            let en2 = n.to_le_bytes();
            let s = Submission {
                extranonce2: &en2,
                time: header.time,
                nonce: n,
                version: 0x2000_0000,
            };
            let h = baseline::share_hash(&job, &en1, black_box(&s));
            hits += u64::from(target.is_met_by(&h));
        });
        // One extranonce2, a new rolled version per share (BIP 320 bits).
        rolled.round(|n| {
            let s = Submission {
                extranonce2: &[7, 7, 7, 7],
                time: header.time,
                nonce: n,
                version: 0x2000_0000 | ((n & 0xffff) << 13),
            };
            if let Ok(r) = checker.check(black_box(&s)) {
                hits += u64::from(r.meets_share_target);
            }
        });
    }
    black_box((state, hits));

    let c = compress.best;
    HashReport {
        cpu: cpu_model(),
        sha_ni: sha::sha_ni_available(),
        compress256_per_sec: c,
        compress256_independent_per_sec: compress_indep.best,
        header_check_per_sec: header_check.best,
        naive_header_check_per_sec: naive_header.best,
        header_check_speedup: header_check.best / naive_header.best,
        header_check_of_compress_limit: header_check.best * 2.0 / c,
        full_share_check_per_sec: full.best,
        full_share_compressions: full_compressions,
        full_share_check_of_compress_limit: full.best * full_compressions as f64 / c,
        naive_full_share_check_per_sec: naive_full.best,
        full_share_check_speedup: full.best / naive_full.best,
        rolled_share_check_per_sec: rolled.best,
        rolled_share_check_of_compress_limit: rolled.best * 3.0 / c,
        coinbase_bytes: shape.coinbase_len(),
        merkle_branches: shape.branches,
        elapsed_sec: started.elapsed().as_secs_f64(),
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// The human-readable table.
pub fn render(r: &HashReport) -> String {
    let m = |x: f64| format!("{:>8.2} M/s", x / 1e6);
    let pct = |x: f64| format!("{:>5.1} %", x * 100.0);
    let mut out = String::new();
    out.push_str(&format!(
        "cpu: {}\nSHA-NI: {}\nworkload: {}-byte coinbase, {} merkle branches; one core\n\n",
        r.cpu.as_deref().unwrap_or("unknown"),
        if r.sha_ni {
            "in use"
        } else {
            "not available (portable backend)"
        },
        r.coinbase_bytes,
        r.merkle_branches,
    ));
    out.push_str(&format!(
        "{:<34} {:>12} {:>13} {:>14} {:>9}\n",
        "check", "rate", "compressions", "of limit", "vs naive"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>9}\n",
        "compress256, chained (the limit)",
        m(r.compress256_per_sec),
        1,
        "100.0 %",
        "-"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>9}\n",
        "compress256, independent calls",
        m(r.compress256_independent_per_sec),
        1,
        pct(r.compress256_independent_per_sec / r.compress256_per_sec),
        "-"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>9}\n",
        "header, naive (digest twice)",
        m(r.naive_header_check_per_sec),
        3,
        "-",
        "1.00×"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>8.2}×\n",
        "header, midstate",
        m(r.header_check_per_sec),
        2,
        pct(r.header_check_of_compress_limit),
        r.header_check_speedup
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>9}\n",
        "share, rolled version, known en2",
        m(r.rolled_share_check_per_sec),
        3,
        pct(r.rolled_share_check_of_compress_limit),
        "-"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>9}\n",
        "share, naive (from scratch)",
        m(r.naive_full_share_check_per_sec),
        r.full_share_compressions,
        "-",
        "1.00×"
    ));
    out.push_str(&format!(
        "{:<34} {} {:>13} {:>14} {:>8.2}×\n",
        "share, fresh extranonce2",
        m(r.full_share_check_per_sec),
        r.full_share_compressions,
        pct(r.full_share_check_of_compress_limit),
        r.full_share_check_speedup
    ));
    out.push_str(&format!(
        "\nper core: {:.0} shares/s worst case (fresh extranonce2), {:.0} shares/s typical (rolled version)\n",
        r.full_share_check_per_sec, r.rolled_share_check_per_sec
    ));
    out.push_str(&format!("measured in {:.1} s\n", r.elapsed_sec));
    out
}
