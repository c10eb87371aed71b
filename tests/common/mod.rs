//! Helpers shared by the tests that start the real binary.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod core_standin;
pub mod double;
pub mod pg;
pub mod v2node;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Proc {
    pub child: Child,
    pub port: u16,
    /// The API's address, when the instance printed one.
    pub api: Option<String>,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A working directory for the binary under test, so files it writes by
/// default (the block log) land outside the source tree.
pub fn scratch_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary to completion.
pub fn output<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(scratch_dir())
        .args(args)
        .output()
        .unwrap()
}

/// Starts the binary and reads the port (and API address) it prints.
pub fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(scratch_dir())
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let mut api = None;
    if args
        .iter()
        .any(|a| *a == "--api-listen" || a.ends_with(".toml"))
    {
        let mut second = String::new();
        out.read_line(&mut second).unwrap();
        api = second.trim().strip_prefix("api on ").map(str::to_string);
    }
    let port = first
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{first}"));
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    Proc {
        child,
        port,
        api,
        stderr,
    }
}

/// SIGKILL (a crash, as far as the process can tell) and wait for it.
pub fn kill9(mut p: Proc) {
    Command::new("kill")
        .args(["-KILL", &p.child.id().to_string()])
        .status()
        .unwrap();
    let _ = p.child.wait();
}

/// SIGTERM and wait (at most 15 s) for the exit.
pub fn sigterm(p: &mut Proc) -> std::process::ExitStatus {
    let pid = p.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cond` holds, checking every 20 ms; fails after `timeout`
/// saying what it waited for.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_until`] for conditions that need I/O (an API read).
pub async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts an instance in this process from `cfg` and serves its listener:
/// its miner address, the running parts, and the token that stops it.
pub async fn serve(
    cfg: &sluice::config::Config,
) -> (
    std::net::SocketAddr,
    sluice::run::Running,
    tokio_util::sync::CancellationToken,
) {
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut running = sluice::run::start(cfg, cancel.clone()).await.unwrap();
    let addr = running.listener.local_addr().unwrap();
    // The engine serves the bound listener; `Running` keeps a placeholder.
    let listener = std::mem::replace(
        &mut running.listener,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    tokio::spawn(running.engine.clone().serve(listener));
    (addr, running, cancel)
}

/// GET `url`: its status and body (any status; the body as text).
pub async fn http_get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&url).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    })
    .await
    .unwrap()
}

/// Runs a simulated miner until `stop` (a miner the server disconnects
/// just ends); its counters.
pub fn spawn_miner(
    cfg: sluice_loadgen::MinerConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> Arc<sluice_loadgen::MinerStats> {
    let stats = Arc::new(sluice_loadgen::MinerStats::default());
    let (s, c) = (stats.clone(), stop.clone());
    tokio::spawn(async move { sluice_loadgen::run(cfg, s, c).await });
    stats
}

/// A V1 miner rolling versions at `hashes_per_sec`.
pub fn v1_miner(
    addr: std::net::SocketAddr,
    worker: &str,
    hashes_per_sec: f64,
) -> sluice_loadgen::MinerConfig {
    sluice_loadgen::MinerConfig {
        addr: addr.to_string(),
        worker: worker.into(),
        password: "x".into(),
        version_rolling: true,
        hashes_per_sec,
        user_agent: "sluice-test/1".into(),
        ..sluice_loadgen::MinerConfig::default()
    }
}

/// `sluice check-config` on `body` (written to `dir/name`): its stdout,
/// after asserting it passed.
pub fn check_config_passes(dir: &std::path::Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    let out = output(["check-config", p.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sluice check-config` on each `(name, body, expected error text)`:
/// each must fail, saying so.
pub fn check_config_refuses<B: AsRef<str>>(dir: &std::path::Path, cases: &[(&str, B, &str)]) {
    for (name, body, expect) in cases {
        let p = dir.join(name);
        std::fs::write(&p, body.as_ref()).unwrap();
        let out = output(["check-config", p.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{name}: {err}");
    }
}
