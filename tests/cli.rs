//! The `sluice` binary as users run it: help, version, and the hash bench's
//! JSON contract (keys and invariants, not speed: speed lives in benches).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

#[test]
fn help_and_version() {
    let out = sluice(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bench"), "{text}");

    let out = sluice(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sluice {}", env!("CARGO_PKG_VERSION"))
    );

    let out = sluice(&["bench", "hash", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--json"));
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let out = sluice(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

#[test]
fn bench_hash_json_contract() {
    let out = sluice(&["bench", "hash", "--quick", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    for key in [
        "compress256_per_sec",
        "compress256_independent_per_sec",
        "header_check_per_sec",
        "naive_header_check_per_sec",
        "full_share_check_per_sec",
        "naive_full_share_check_per_sec",
        "rolled_share_check_per_sec",
        "header_check_speedup",
        "full_share_check_speedup",
        "header_check_of_compress_limit",
        "full_share_check_of_compress_limit",
        "rolled_share_check_of_compress_limit",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // The workload is fixed, so its compression count is too:
    // 250-byte coinbase (5 blocks, none cached, +1), 12 branches × 3, header 3.
    assert_eq!(v["full_share_compressions"], 45);
    assert_eq!(v["coinbase_bytes"], 250);
    assert_eq!(v["merkle_branches"], 12);
    assert_eq!(v["sha_ni"], sluice_pow_sha_ni());
    // Ratios are consistent with the rates they are made of.
    let ratio = v["header_check_per_sec"].as_f64().unwrap()
        / v["naive_header_check_per_sec"].as_f64().unwrap();
    assert!((ratio / v["header_check_speedup"].as_f64().unwrap() - 1.0).abs() < 1e-9);
}

fn sluice_pow_sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("sha") && std::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn bench_hash_table_names_the_backend() {
    let out = sluice(&["bench", "hash", "--quick"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SHA-NI:"), "{text}");
    assert!(text.contains("shares/s"), "{text}");
}
