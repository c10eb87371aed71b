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

/// A fresh directory per test (tests in one binary run in parallel).
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn value_of(file_text: &str, key: &str) -> String {
    file_text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} in {file_text}"))
        .trim_matches('"')
        .to_string()
}

/// A client handshake against the identity in `server_file`, checking
/// the certificate against `authority` at `now`.
fn handshake(
    server_file: &std::path::Path,
    authority: &str,
    now: u32,
) -> Result<(), sluice_sv2::noise::NoiseError> {
    use sluice_sv2::noise::{AuthorityPublicKey, Initiator, Responder};
    let (config, _) = sluice::keys::load_server(server_file, None).unwrap();
    let pk: AuthorityPublicKey = authority.parse().unwrap();
    let initiator = Initiator::new(Some(pk))?;
    let (act2, _) = Responder::new(&config)?.respond(&initiator.act1())?;
    initiator.finish(&act2, now).map(|_| ())
}

#[test]
fn keygen_and_cert_make_an_identity_clients_accept() {
    let dir = fresh_dir("keys");
    let auth = dir.join("authority.toml");
    let out = sluice(&["keygen", "--out", auth.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = value_of(&text(&out.stdout), "authority_public_key");
    let file = std::fs::read_to_string(&auth).unwrap();
    assert_eq!(value_of(&file, "authority_public_key"), printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&auth).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret is owner-only");
    }
    // Never overwritten.
    let again = sluice(&["keygen", "--out", auth.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("must not exist"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&auth).unwrap(), file);

    let server = dir.join("server.toml");
    let out = sluice(&[
        "cert",
        "--authority-key",
        auth.to_str().unwrap(),
        "--valid-for",
        "30d",
        "--out",
        server.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = sluice::keys::unix_now();
    handshake(&server, &printed, now).expect("a client with the authority key accepts it");
    // 30 days, then not.
    assert!(handshake(&server, &printed, now + 31 * 86_400).is_err());
    let other = sluice_sv2::noise::AuthorityKeypair::generate()
        .unwrap()
        .public_key();
    assert!(handshake(&server, &other.to_string(), now).is_err());

    // A renewal keeps the server's key and moves the window.
    let renewed = dir.join("renewed.toml");
    let from = (now + 100).to_string();
    let out = sluice(&[
        "cert",
        "--authority-key",
        auth.to_str().unwrap(),
        "--renew",
        server.to_str().unwrap(),
        "--valid-from",
        &from,
        "--valid-for",
        "1h",
        "--out",
        renewed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (a, b) = (
        std::fs::read_to_string(&server).unwrap(),
        std::fs::read_to_string(&renewed).unwrap(),
    );
    assert_eq!(
        value_of(&a, "server_secret_key"),
        value_of(&b, "server_secret_key")
    );
    assert_eq!(value_of(&b, "valid_from"), from);
    assert_eq!(value_of(&b, "not_valid_after"), (now + 3700).to_string());
    assert!(handshake(&renewed, &printed, now + 200).is_ok());
    assert!(handshake(&renewed, &printed, now).is_err(), "not valid yet");

    // The default start is an hour back, for clients whose clocks run slow.
    let default_from: u32 = value_of(&a, "valid_from").parse().unwrap();
    assert!(default_from + 3600 <= now && now <= default_from + 3600 + 60);
}

#[test]
fn bad_key_files_are_refused_with_the_reason() {
    let dir = fresh_dir("badkeys");
    let auth = dir.join("authority.toml");
    assert!(
        sluice(&["keygen", "--out", auth.to_str().unwrap()])
            .status
            .success()
    );
    let good = std::fs::read_to_string(&auth).unwrap();

    // A public key that is not the secret's.
    let other = sluice_sv2::noise::AuthorityKeypair::generate()
        .unwrap()
        .public_key();
    let swapped = dir.join("swapped.toml");
    let line = format!(
        "authority_public_key = \"{}\"",
        value_of(&good, "authority_public_key")
    );
    std::fs::write(
        &swapped,
        good.replace(&line, &format!("authority_public_key = \"{other}\"")),
    )
    .unwrap();
    let out = sluice(&[
        "cert",
        "--authority-key",
        swapped.to_str().unwrap(),
        "--out",
        dir.join("x.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not the secret key's public key"),
        "{}",
        text(&out.stderr)
    );

    // A corrupted certificate signature is caught when the server loads it.
    let server = dir.join("server.toml");
    assert!(
        sluice(&[
            "cert",
            "--authority-key",
            auth.to_str().unwrap(),
            "--out",
            server.to_str().unwrap()
        ])
        .status
        .success()
    );
    let s = std::fs::read_to_string(&server).unwrap();
    let sig = value_of(&s, "signature");
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, s.replace(&sig, &flipped)).unwrap();
    let err = sluice::keys::load_server(&bad, None).unwrap_err();
    assert!(format!("{err:#}").contains("signature"), "{err:#}");
    // And an unknown key in the file is refused, not ignored.
    std::fs::write(&bad, format!("{s}extra = 1\n")).unwrap();
    assert!(sluice::keys::load_server(&bad, None).is_err());
}
