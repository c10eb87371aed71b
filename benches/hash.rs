//! Criterion benches for the share-validation core, each group with its
//! baseline in the same run; a summary of ratios is printed at the end
//! (from criterion's own estimates, so noise hits both sides alike).
//!
//! `cargo bench --bench hash` (about a minute); add `-- --quick` for a
//! rough pass in a few seconds.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bitcoin::hashes::{Hash as _, sha256d};
use criterion::{Criterion, criterion_group};
use sluice_pow::{DIFF1, Header, ShareChecker, Submission, baseline, sha, synthetic};

fn output_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion"))
}

fn sample_header() -> Header {
    Header {
        version: 0x2000_0000,
        prev_hash: [0x11; 32],
        merkle_root: [0x22; 32],
        time: 0x6b01_5b89,
        bits: 0x1703_4219,
        nonce: 0,
    }
}

fn bench_compress(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress256");
    let block = [0x5au8; 64];
    let mut state = sha::H0;
    g.bench_function("chained", |b| {
        b.iter(|| sha::compress(&mut state, std::slice::from_ref(black_box(&block))))
    });
    g.bench_function("independent", |b| {
        b.iter(|| {
            let mut s = black_box(sha::H0);
            sha::compress(&mut s, std::slice::from_ref(black_box(&block)));
            s
        })
    });
    g.finish();
}

fn bench_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    let h = sample_header();
    let mut bytes = h.to_bytes();
    let mut nonce = 0u32;
    g.bench_function("naive_sha2_digest_twice", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            bytes[76..].copy_from_slice(&nonce.to_le_bytes());
            DIFF1.is_met_by(&baseline::header_hash(black_box(&bytes)))
        })
    });
    g.bench_function("bitcoin_hashes_sha256d", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            bytes[76..].copy_from_slice(&nonce.to_le_bytes());
            DIFF1.is_met_by(&sha256d::Hash::hash(black_box(&bytes)).to_byte_array())
        })
    });
    let mid = h.midstate();
    g.bench_function("midstate", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            DIFF1.is_met_by(&black_box(&mid).hash(h.time, h.bits, nonce))
        })
    });
    g.finish();
}

fn bench_share(c: &mut Criterion) {
    let mut g = c.benchmark_group("share");
    let shape = synthetic::TYPICAL;
    let (job, en1) = synthetic::job(shape, 1);
    let mut checker = ShareChecker::new(job.clone(), &en1, shape.extranonce2_len, DIFF1)
        .expect("synthetic job is valid");
    let mut n = 0u32;
    g.bench_function("naive_from_scratch", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let en2 = n.to_le_bytes();
            let s = Submission {
                extranonce2: &en2,
                time: 1,
                nonce: n,
                version: 0x2000_0000,
            };
            DIFF1.is_met_by(&baseline::share_hash(&job, &en1, black_box(&s)))
        })
    });
    g.bench_function("fresh_extranonce2", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let en2 = n.to_le_bytes();
            let s = Submission {
                extranonce2: &en2,
                time: 1,
                nonce: n,
                version: 0x2000_0000,
            };
            checker.check(black_box(&s)).map(|r| r.meets_share_target)
        })
    });
    g.bench_function("repeat_extranonce2_rolled_version", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let s = Submission {
                extranonce2: &[7; 4],
                time: 1,
                nonce: n,
                version: 0x2000_0000 | ((n & 0xffff) << 13),
            };
            checker.check(black_box(&s)).map(|r| r.meets_share_target)
        })
    });
    g.bench_function("repeat_extranonce2_same_version", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let s = Submission {
                extranonce2: &[7; 4],
                time: 1,
                nonce: n,
                version: 0x2000_0000,
            };
            checker.check(black_box(&s)).map(|r| r.meets_share_target)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().output_directory(&output_dir());
    targets = bench_compress, bench_header, bench_share
}

/// Mean ns/iteration criterion estimated for one benchmark.
fn mean_ns(group: &str, function: &str) -> Option<f64> {
    let path = output_dir()
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary() {
    let get = |g, f| mean_ns(g, f);
    let compressions_fresh = {
        let (job, en1) = synthetic::job(synthetic::TYPICAL, 1);
        ShareChecker::new(job, &en1, 4, DIFF1)
            .map(|c| c.compressions_fresh_extranonce2())
            .unwrap_or(0)
    };
    println!("\n== ratios (same run) ==");
    println!("SHA-NI in use: {}", sha::sha_ni_available());
    let Some(chained) = get("compress256", "chained") else {
        println!("(no estimates found under {})", output_dir().display());
        return;
    };
    let ratio = |name: &str, base: Option<f64>, cand: Option<f64>| {
        if let (Some(b), Some(c)) = (base, cand) {
            println!("{name:<56} {:>6.2}×", b / c);
        }
    };
    let limit = |name: &str, cand: Option<f64>, compressions: usize| {
        if let Some(c) = cand {
            println!(
                "{name:<56} {:>6.1} %",
                100.0 * chained * compressions as f64 / c
            );
        }
    };
    ratio(
        "header midstate vs naive Sha256::digest twice",
        get("header", "naive_sha2_digest_twice"),
        get("header", "midstate"),
    );
    ratio(
        "header midstate vs bitcoin_hashes sha256d",
        get("header", "bitcoin_hashes_sha256d"),
        get("header", "midstate"),
    );
    ratio(
        "share (fresh extranonce2) vs naive from scratch",
        get("share", "naive_from_scratch"),
        get("share", "fresh_extranonce2"),
    );
    limit(
        "header midstate, of chained compress256 limit (2)",
        get("header", "midstate"),
        2,
    );
    limit(
        &format!("share fresh extranonce2, of limit ({compressions_fresh})"),
        get("share", "fresh_extranonce2"),
        compressions_fresh,
    );
    limit(
        "share repeat extranonce2 + rolled version, of limit (3)",
        get("share", "repeat_extranonce2_rolled_version"),
        3,
    );
    limit(
        "share repeat extranonce2 + same version, of limit (3)",
        get("share", "repeat_extranonce2_same_version"),
        // The header midstate is no longer cached (see `ShareChecker`):
        // the same version costs what a rolled one does.
        3,
    );
    if let Some(ind) = get("compress256", "independent") {
        println!(
            "compress256 independent calls vs chained                 {:>6.2}×",
            chained / ind
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test` runs each bench once without `--bench`; no estimates then.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
