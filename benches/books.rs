//! Memory of the books for many worker names: 100,000 names, each
//! connected once and with shares of every outcome over a day, in the
//! real `Books` (no store), measured as the RSS a fresh process gains.
//!
//! The baseline in the same run is the same books with every worker's
//! tally in the layout workers had before (a day of 5-minute buckets
//! beside the 10-second ring, as pools keep), put in through the same
//! `restore_worker` the store uses: the ratio is what the compact layout
//! saves. Each measurement runs in a child process of its own, so one's
//! freed memory cannot hide in the other's RSS.
//!
//! `cargo bench --bench books` (100,000 names) or `-- --quick` (10,000).
//! Target: 100,000 names in ≤ 200 MiB. Report: target/books-bench/
//! report.{json,md}.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use serde_json::json;
use sluice_books::tally::Tally;
use sluice_books::{
    Books, BooksConfig, Clock, JobValue, PoolBooksConfig, Reward, Scheme, ShareKind,
};

/// 2026-12-01 00:00 UTC: a day of shares before "now".
const T0: u64 = 1_796_083_200_000;
const DAY_MS: u64 = 86_400_000;

#[path = "common/procfs.rs"]
#[allow(dead_code)]
mod procfs;

fn rss_kib() -> u64 {
    procfs::rss_kib(std::process::id())
}

fn books(names: usize) -> Books {
    Books::new(
        BooksConfig {
            pools: vec![PoolBooksConfig {
                name: "stratum+tcp://pool:3333".into(),
                fee: 0.02,
                scheme: Scheme::Fpps,
                reward: Reward::Coinbase,
            }],
            max_workers: names + 1,
            reasons: vec!["job_not_found", "stale", "duplicate", "low_difficulty"],
            ..BooksConfig::default()
        },
        Clock::at(Instant::now(), T0 + DAY_MS),
    )
}

/// Builds the books for `names` workers in this process and prints the
/// RSS gained, KiB. `old_layout`: each worker's tally as workers kept it
/// before (put in with `restore_worker`).
fn child(names: usize, old_layout: bool) {
    let job = JobValue {
        difficulty: 1.5e14,
        reward_sat: Some(313_000_000),
    };
    let before = rss_kib();
    let b = books(names);
    let kinds = [
        ShareKind::Accepted { block: false },
        ShareKind::Stale(1),
        ShareKind::RejectedWork(3),
    ];
    for i in 0..names {
        let name = format!("farm-{:02}.rack{:03}.s21-{:06}", i % 40, i % 997, i);
        if old_layout {
            b.restore_worker(&name, Tally::new(T0), 0.0);
        }
        let ip = IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8));
        let w = b.connect_worker(&name, Some(ip), Some("bmminer/2.0.0"), T0);
        // Shares across the day: every ring of the worker holds buckets.
        for k in 0..24u64 {
            let t = T0 + k * DAY_MS / 24 + (i as u64 % 3_600) * 1_000;
            b.record(
                &w,
                Some(0),
                i as u64,
                t,
                65_536.0,
                &job,
                kinds[k as usize % 3],
            );
        }
    }
    let after = rss_kib();
    // Keep the books alive until measured.
    assert_eq!(b.worker_count(), names);
    println!("{}", after.saturating_sub(before));
}

fn measure(names: usize, old_layout: bool) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--child",
            &names.to_string(),
            if old_layout { "old" } else { "new" },
        ])
        .output()
        .expect("run the child");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("child said {:?}", String::from_utf8_lossy(&out.stderr)))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let names = args[i + 1].parse().expect("names");
        child(names, args[i + 2] == "old");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo test --benches` runs this without --bench: nothing to do.
    if !args.iter().any(|a| a == "--bench" || a == "--quick") {
        return;
    }
    let names = if quick { 10_000 } else { 100_000 };
    let new = measure(names, false);
    let old = measure(names, true);
    let per = |kib: u64| kib as f64 * 1024.0 / names as f64;
    let mib_100k = |kib: u64| kib as f64 / 1024.0 * 100_000.0 / names as f64;
    let met = mib_100k(new) <= 200.0;
    let md = format!(
        "# Books memory ({})\n\n{names} worker names, each connected once with 24 shares over a day, no store; RSS gained by a fresh process.\n\n| layout | RSS gained | per name | for 100,000 names |\n|---|---|---|---|\n| compact (this build) | {:.1} MiB | {:.0} B | {:.1} MiB |\n| day of 5-min buckets (before) | {:.1} MiB | {:.0} B | {:.1} MiB |\n\nBefore/after: {:.2}×. Target 100,000 names ≤ 200 MiB: {}.\n",
        if quick { "quick" } else { "full" },
        new as f64 / 1024.0,
        per(new),
        mib_100k(new),
        old as f64 / 1024.0,
        per(old),
        mib_100k(old),
        old as f64 / new.max(1) as f64,
        if met { "met" } else { "missed" },
    );
    let dir = std::path::PathBuf::from("target/books-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.md"), &md).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json!({
            "quick": quick,
            "names": names,
            "compact_kib": new,
            "before_kib": old,
            "bytes_per_name": per(new),
            "mib_for_100k": mib_100k(new),
            "ratio": old as f64 / new.max(1) as f64,
            "target_met": met,
        }))
        .unwrap(),
    )
    .unwrap();
    println!("{md}");
}
