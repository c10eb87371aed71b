//! The Stratum V2 reference translator, `translator_sv2` 0.6.0 (crates.io),
//! as the peer for V1 miners into a V2 pool: the job sluice's proxy does
//! with a `stratum2+tcp://` pool. Found as `$SLUICE_TRANSLATOR_BIN`,
//! `translator_sv2` on PATH or `~/.cargo/bin/translator_sv2` (`.ci/run`
//! installs it); without it this part of the bench is skipped, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Proc, free_port, wait_port};

/// The binary, if installed.
pub(crate) fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_TRANSLATOR_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = Command::new("translator_sv2")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some(PathBuf::from("translator_sv2"));
    }
    let home = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/translator_sv2");
    home.exists().then_some(home)
}

/// Starts it in front of the V2 pool at `port` with `authority`, all its
/// V1 miners on one aggregated channel (a farm's setup) at `difficulty`
/// (its vardiff off, as sluice's is in this bench). Returns it and the
/// URL its miners use.
pub(crate) fn start(
    bin: &Path,
    dir: &Path,
    port: u16,
    authority: &str,
    difficulty: f64,
) -> Result<(Proc, String), String> {
    let v1 = free_port();
    // With shares_per_minute = 60 its miners' difficulty is this / 2^32.
    let hashrate = difficulty * 4_294_967_296.0;
    // Only what a local setup needs: no monitoring server, no
    // [miner_telemetry] (its examples scan a LAN).
    let config = format!(
        r#"downstream_address = "127.0.0.1"
downstream_port = {v1}
max_supported_version = 2
min_supported_version = 2
downstream_extranonce2_size = 4
aggregate_channels = true

[downstream_difficulty_config]
min_individual_miner_hashrate = {hashrate:.3}
shares_per_minute = 60.0
enable_vardiff = false
job_keepalive_interval_secs = 60

[[upstreams]]
address = "127.0.0.1"
port = {port}
authority_pubkey = "{authority}"
user_identity = "benchacct.translator"
"#
    );
    let cfg = dir.join("translator.toml");
    std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("translator.log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .current_dir(dir)
        // Warnings only, like sluice in this bench: its info lines are one
        // per share.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("start translator_sv2: {e}"))?;
    let p = Proc {
        child,
        name: "translator_sv2".into(),
    };
    // It opens its V1 port once its upstream channel is up.
    if !wait_port(v1) {
        return Err("translator_sv2 did not open its port".into());
    }
    Ok((p, format!("stratum+tcp://127.0.0.1:{v1}")))
}
