//! Stratum V2 miners end to end: a miner written here (Noise, extended
//! channel, real hashing with sluice-sv2 and sluice-pow) against the pool
//! node's V2 listener on 127.0.0.1, its shares accepted and in the
//! worker's books; bad shares answered with the spec's codes; and the real
//! binary announcing its V2 address with the authority key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::time::Duration;

use bytes::BytesMut;
use sluice::config::{Config, Mode};
use sluice_pow::{JobTemplate, ShareChecker, Submission, Target};
use sluice_sv2::Message;
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::codec::{self, CodecError, NoiseCodec};
use sluice_sv2::frame::DEFAULT_MAX_PAYLOAD;
use sluice_sv2::message as m;
use sluice_sv2::noise::AuthorityPublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder};

/// Every wait is bounded: a hang is a failure, not a stuck suite.
const DEADLINE: Duration = Duration::from_secs(30);

/// A V2 miner's connection: reads into a buffer, frames off the codec.
struct Wire {
    sock: TcpStream,
    codec: NoiseCodec,
    rbuf: BytesMut,
}

impl Wire {
    async fn connect(addr: std::net::SocketAddr, authority: AuthorityPublicKey) -> Self {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let now = sluice::keys::unix_now();
        let codec = codec::connect(&mut sock, Some(authority), now, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        Wire {
            sock,
            codec,
            rbuf: BytesMut::new(),
        }
    }

    async fn send(&mut self, msg: impl Into<Message>) {
        let mut out = BytesMut::new();
        self.codec.encode(&msg.into(), &mut out).unwrap();
        self.sock.write_all(&out).await.unwrap();
    }

    async fn recv(&mut self) -> Message {
        timeout(DEADLINE, async {
            loop {
                if let Some(f) = self.codec.decode(&mut self.rbuf).unwrap() {
                    return Message::decode(&f).unwrap();
                }
                let n = self.sock.read_buf(&mut self.rbuf).await.unwrap();
                assert!(n > 0, "the pool closed the connection");
            }
        })
        .await
        .expect("a message in time")
    }
}

/// What a V2 miner keeps of its channel.
struct Miner {
    wire: Wire,
    channel: u32,
    prefix: Vec<u8>,
    extranonce_size: usize,
    target: Target,
    job: Option<m::NewExtendedMiningJob>,
    future: Option<m::NewExtendedMiningJob>,
    prev: Option<m::SetNewPrevHash>,
}

impl Miner {
    async fn open(
        addr: std::net::SocketAddr,
        authority: AuthorityPublicKey,
        user: &'static str,
    ) -> Self {
        let mut wire = Wire::connect(addr, authority).await;
        wire.send(m::SetupConnection {
            protocol: m::PROTOCOL_MINING,
            min_version: 2,
            max_version: 2,
            flags: m::setup_flags::REQUIRES_VERSION_ROLLING,
            endpoint_host: Str0255::from("127.0.0.1"),
            endpoint_port: addr.port(),
            vendor: Str0255::from("sluice-test"),
            hardware_version: Str0255::from(""),
            firmware: Str0255::from("1"),
            device_id: Str0255::from(""),
        })
        .await;
        assert!(matches!(
            wire.recv().await,
            Message::SetupConnectionSuccess(_)
        ));
        wire.send(m::OpenExtendedMiningChannel {
            request_id: 1,
            user_identity: Str0255::from(user),
            nominal_hash_rate: 0.0,
            max_target: [0xff; 32],
            min_extranonce_size: 4,
        })
        .await;
        let Message::OpenExtendedMiningChannelSuccess(ok) = wire.recv().await else {
            panic!("channel refused")
        };
        Miner {
            wire,
            channel: ok.channel_id,
            prefix: ok.extranonce_prefix.to_vec(),
            extranonce_size: usize::from(ok.extranonce_size),
            target: Target::from_le_bytes(&ok.target),
            job: None,
            future: None,
            prev: None,
        }
    }

    /// Takes one message into the miner's state; returns it. A job with
    /// no `min_ntime` waits for the SetNewPrevHash that names it; one
    /// with a `min_ntime` is current at once, on the prev hash in force.
    async fn step(&mut self) -> Message {
        let msg = self.wire.recv().await;
        match &msg {
            Message::NewExtendedMiningJob(j) if j.min_ntime.is_none() => {
                self.future = Some(j.clone());
            }
            Message::NewExtendedMiningJob(j) => self.job = Some(j.clone()),
            Message::SetNewPrevHash(p) => {
                if let Some(f) = self.future.take_if(|f| f.job_id == p.job_id) {
                    self.job = Some(f);
                }
                self.prev = Some(p.clone());
            }
            Message::SetTarget(t) => self.target = Target::from_le_bytes(&t.maximum_target),
            _ => {}
        }
        msg
    }

    /// Until there is a job to work on.
    async fn ready(&mut self) {
        while self.job.is_none() || self.prev.is_none() {
            self.step().await;
        }
    }

    /// Finds a share meeting the channel's target with extranonce `n`.
    fn mine(&self, n: u32) -> m::SubmitSharesExtended {
        let (job, prev) = (self.job.as_ref().unwrap(), self.prev.as_ref().unwrap());
        let template = JobTemplate::new(
            prev.prev_hash,
            job.coinbase_tx_prefix.to_vec(),
            job.coinbase_tx_suffix.to_vec(),
            job.merkle_path.to_vec(),
            prev.nbits,
        )
        .unwrap();
        let mut en = vec![0u8; self.extranonce_size];
        en[..4].copy_from_slice(&n.to_be_bytes());
        let mut c = ShareChecker::new(
            std::sync::Arc::new(template),
            &self.prefix,
            en.len(),
            self.target,
        )
        .unwrap();
        let ntime = job.min_ntime.unwrap_or(prev.min_ntime);
        let nonce = (0u32..)
            .find(|&nonce| {
                c.check(&Submission {
                    extranonce2: &en,
                    time: ntime,
                    nonce,
                    version: job.version,
                })
                .unwrap()
                .meets_share_target
            })
            .unwrap();
        m::SubmitSharesExtended {
            channel_id: self.channel,
            sequence_number: n,
            job_id: job.job_id,
            nonce,
            ntime,
            version: job.version,
            extranonce: B032::new(en).unwrap(),
        }
    }

    /// The answer to a share (jobs and targets on the way are taken in).
    async fn answer(&mut self) -> Message {
        loop {
            let msg = self.step().await;
            if matches!(
                msg,
                Message::SubmitSharesSuccess(_) | Message::SubmitSharesError(_)
            ) {
                return msg;
            }
        }
    }
}

fn pool_config(dir: &std::path::Path) -> (Config, AuthorityPublicKey) {
    let auth = dir.join("authority.toml");
    let _ = std::fs::remove_file(&auth);
    let pk = sluice::keys::keygen(&auth).unwrap();
    let mut cfg = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    cfg.difficulty.min = 1e-9;
    cfg.difficulty.start = 1e-5;
    cfg.api.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.v2.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.v2.authority_key = Some(auth);
    (cfg, pk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_miners_get_shares_accepted_and_booked_and_bad_ones_refused() {
    let dir = common::scratch_dir().join("v2-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let (cfg, pk) = pool_config(&dir);
    let (_v1, mut running, cancel) = common::serve(&cfg).await;
    let (listener, identity, authority) = running.listener_v2.take().unwrap();
    assert_eq!(authority, pk);
    let addr = listener.local_addr().unwrap();
    tokio::spawn(running.engine.clone().serve_v2(listener, identity));

    let mut miner = Miner::open(addr, pk, "acct.v2rig").await;
    assert_eq!(miner.prefix.len(), cfg.extranonce.session_prefix_bytes);
    miner.ready().await;
    let shares = 12u32;
    let mut sent = Vec::new();
    for n in 0..shares {
        let s = miner.mine(n);
        miner.wire.send(s.clone()).await;
        match miner.answer().await {
            Message::SubmitSharesSuccess(ok) => {
                assert_eq!(ok.last_sequence_number, n);
                assert_eq!(ok.new_submits_accepted_count, 1);
            }
            other => panic!("share {n}: {other:?}"),
        }
        sent.push(s);
    }
    // The same share again, a channel that is not open, an unknown job.
    let dup = sent[0].clone();
    miner.wire.send(dup.clone()).await;
    assert!(
        matches!(miner.answer().await, Message::SubmitSharesError(e) if e.error_code.as_str() == Some("duplicate-share"))
    );
    miner
        .wire
        .send(m::SubmitSharesExtended {
            channel_id: 999,
            ..dup.clone()
        })
        .await;
    assert!(
        matches!(miner.answer().await, Message::SubmitSharesError(e) if e.error_code.as_str() == Some("invalid-channel-id"))
    );
    miner
        .wire
        .send(m::SubmitSharesExtended {
            job_id: dup.job_id.wrapping_add(1000),
            ..dup
        })
        .await;
    assert!(
        matches!(miner.answer().await, Message::SubmitSharesError(e) if e.error_code.as_str() == Some("invalid-job-id"))
    );

    // The worker's books hold exactly the accepted shares.
    let api = running.api.unwrap();
    let url = format!("http://{api}/api/v1/workers/acct.v2rig");
    common::wait_until_async("the V2 worker in the books", DEADLINE, || {
        let url = url.clone();
        async move {
            let v = tokio::task::spawn_blocking(move || sluice::money::get_json(&url))
                .await
                .unwrap();
            v.ok()
                .and_then(|v| v["windows"]["1h"]["accepted_shares"].as_u64())
                == Some(u64::from(shares))
        }
    })
    .await;

    // A client that trusts another authority refuses the pool.
    let other = sluice_sv2::noise::AuthorityKeypair::generate()
        .unwrap()
        .public_key();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let err = codec::connect(
        &mut sock,
        Some(other),
        sluice::keys::unix_now(),
        DEFAULT_MAX_PAYLOAD,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CodecError::Noise(_)), "{err}");

    // Garbage instead of a handshake costs the server one connection.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(&[0x5a; 64]).await.unwrap();
    junk.write_all(&[0x00; 40]).await.unwrap();
    let mut rest = Vec::new();
    let _ = timeout(DEADLINE, junk.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    // And the miner is still served.
    let s = miner.mine(shares + 1);
    miner.wire.send(s).await;
    assert!(matches!(
        miner.answer().await,
        Message::SubmitSharesSuccess(_)
    ));
    cancel.cancel();
}

#[test]
fn the_binary_announces_its_v2_address_and_authority() {
    let dir = common::scratch_dir().join("v2-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("authority.toml");
    let _ = std::fs::remove_file(&auth);
    let pk = sluice::keys::keygen(&auth).unwrap();
    let args = [
        "pool",
        "--listen",
        "127.0.0.1:0",
        "--listen-v2",
        "127.0.0.1:0",
        "--authority-key",
        auth.to_str().unwrap(),
        "--block-log",
        "",
    ];
    let out = common::output(args.iter().chain(&["--help"]));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--listen-v2") && help.contains("--authority-key"),
        "{help}"
    );
    // Running it: the second line is the V2 URL with the authority key.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("listening on stratum+tcp://127.0.0.1:"),
        "{first}"
    );
    let url = second
        .strip_prefix("listening on stratum2+tcp://127.0.0.1:")
        .expect(&second);
    let (_port, key) = url.split_once('/').unwrap();
    assert_eq!(key, pk.to_string());
}

#[test]
fn check_config_shows_the_v2_listener_and_wants_one_identity() {
    let dir = common::scratch_dir().join("v2-config");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, v2: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("mode = \"pool\"\n[v2]\nlisten = \"127.0.0.1:3336\"\n{v2}"),
        )
        .unwrap();
        p
    };
    let good = write("good.toml", "authority_key = \"a.toml\"\n");
    let out = common::output(["check-config", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("v2 listen: 127.0.0.1:3336 (Noise; authority key a.toml"),
        "{text}"
    );
    for (name, v2) in [
        (
            "both.toml",
            "authority_key = \"a.toml\"\nidentity = \"s.toml\"\n",
        ),
        ("none.toml", ""),
        ("typo.toml", "authority_keys = \"a.toml\"\n"),
    ] {
        let out = common::output(["check-config", write(name, v2).to_str().unwrap()]);
        assert!(!out.status.success(), "{name}");
    }
    // A V2 pool URL carries its authority key: without it, it does not
    // parse; with it, per-worker names (one channel) are refused.
    let key = sluice_sv2::noise::AuthorityKeypair::generate()
        .unwrap()
        .public_key();
    let pool = |name: &str, url: &str, extra: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("mode = \"proxy\"\n[[pools]]\nurl = \"{url}\"\nuser = \"u\"\n{extra}"),
        )
        .unwrap();
        common::output(["check-config", p.to_str().unwrap()])
    };
    let v2url = format!("stratum2+tcp://127.0.0.1:3336/{key}");
    let out = pool("v2pool.toml", &v2url, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&v2url));
    for (name, url, extra, why) in [
        (
            "v2nokey.toml",
            "stratum2+tcp://127.0.0.1:3336",
            "",
            "authority public key",
        ),
        (
            "v2names.toml",
            v2url.as_str(),
            "pass_through_workers = true\n",
            "pass_through_workers is for V1 pools",
        ),
    ] {
        let out = pool(name, url, extra);
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{name}: {err}");
    }
}

/// V2 miners behind a V1 pool: `sluice proxy` takes them over Noise and
/// sends their shares up to a V1 pool node, which validates every one
/// again with its own copy of the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_miners_through_the_proxy_into_a_v1_pool() {
    let dir = common::scratch_dir().join("v2-proxy");
    std::fs::create_dir_all(&dir).unwrap();
    // The pool: V1 only.
    let mut pool_cfg = Config::new(Mode::Pool, "127.0.0.1:0".parse().unwrap());
    pool_cfg.difficulty.min = 1e-9;
    pool_cfg.difficulty.start = 1e-6;
    let (pool_addr, pool, _pool_cancel) = common::serve(&pool_cfg).await;
    // The proxy: V2 miners in, the pool above.
    let (mut cfg, pk) = pool_config(&dir);
    cfg.mode = Mode::Proxy;
    cfg.api.listen = None;
    cfg.pools = vec![sluice::config::PoolConfig::new(
        sluice_engine::upstream::PoolUrl::v1("127.0.0.1", pool_addr.port()),
        "farm",
    )];
    let (_v1, mut proxy, cancel) = common::serve(&cfg).await;
    let (listener, identity, _) = proxy.listener_v2.take().unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.engine.clone().serve_v2(listener, identity));

    let mut miner = Miner::open(addr, pk, "farm.v2rig").await;
    miner.ready().await;
    let shares = 8u32;
    for n in 0..shares {
        let s = miner.mine(n);
        miner.wire.send(s).await;
        assert!(
            matches!(miner.answer().await, Message::SubmitSharesSuccess(_)),
            "share {n}"
        );
    }
    // The pool saw them under the proxy's user, each valid in its own
    // check (a share the pool refused would be taken back, not counted).
    let workers = pool.pool_workers.clone().unwrap();
    common::wait_until("the pool to credit the V2 miner's shares", DEADLINE, || {
        workers
            .get("farm")
            .is_some_and(|w| w.shares >= u64::from(shares))
    })
    .await;
    assert_eq!(
        proxy
            .engine
            .stats
            .upstream_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    cancel.cancel();
}

/// A stop does not wait out a handshake: a client still shaking hands
/// (not yet in the router, whose mailboxes carry the stop) is cut at once
/// and counted as a shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_does_not_wait_out_a_handshake() {
    use sluice_engine::stats::Disconnect;
    let dir = common::scratch_dir().join("v2-stop-in-handshake");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut cfg, _) = pool_config(&dir);
    cfg.listen.handshake_timeout_secs = 600;
    let (_v1, mut running, cancel) = common::serve(&cfg).await;
    let (listener, identity, _) = running.listener_v2.take().unwrap();
    let addr = listener.local_addr().unwrap();
    let engine = running.engine.clone();
    tokio::spawn(running.engine.clone().serve_v2(listener, identity));

    let mut silent = TcpStream::connect(addr).await.unwrap();
    common::wait_until("the connection accepted", DEADLINE, || {
        engine.open_connections() == 1
    })
    .await;
    cancel.cancel();
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, silent.read_to_end(&mut rest))
        .await
        .expect("cut at the stop, not at the handshake timeout");
    assert!(matches!(n, Ok(0) | Err(_)));
    common::wait_until("the stop counted", DEADLINE, || {
        engine.stats.disconnects(Disconnect::Shutdown) == 1
    })
    .await;
}

/// A client that connects and never shakes hands is cut at the handshake
/// timeout (it never gets a router slot), and a failed handshake is
/// counted as a protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_broken_handshake_is_cut_and_counted() {
    use sluice_engine::stats::Disconnect;
    let dir = common::scratch_dir().join("v2-silent");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut cfg, _) = pool_config(&dir);
    cfg.listen.handshake_timeout_secs = 1;
    let (_v1, mut running, cancel) = common::serve(&cfg).await;
    let (listener, identity, _) = running.listener_v2.take().unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(running.engine.clone().serve_v2(listener, identity));
    let stats = running.engine.stats.clone();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, silent.read_to_end(&mut rest))
        .await
        .expect("cut in time");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "nothing sent to a silent client"
    );
    common::wait_until("the timeout counted", DEADLINE, || {
        stats.disconnects(Disconnect::HandshakeTimeout) == 1
    })
    .await;

    // Half an act 1, then the end of the stream.
    let mut broken = TcpStream::connect(addr).await.unwrap();
    broken.write_all(&[7; 20]).await.unwrap();
    broken.shutdown().await.unwrap();
    common::wait_until("the broken handshake counted", DEADLINE, || {
        stats.disconnects(Disconnect::Protocol) == 1
    })
    .await;
    cancel.cancel();
}

/// A miner whose encrypted stream goes bad after the handshake (a bit
/// flipped on the way: the MAC fails) is cut and counted as a protocol
/// error; another miner on the same pool is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mac_cuts_only_that_miner_and_is_counted() {
    use sluice_engine::stats::Disconnect;
    let dir = common::scratch_dir().join("v2-mac");
    std::fs::create_dir_all(&dir).unwrap();
    let (cfg, pk) = pool_config(&dir);
    let (_v1, mut running, cancel) = common::serve(&cfg).await;
    let (listener, identity, _) = running.listener_v2.take().unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(running.engine.clone().serve_v2(listener, identity));
    let stats = running.engine.stats.clone();

    let mut good = Miner::open(addr, pk, "acct.good").await;
    good.ready().await;
    // The bad one: a real SetupConnection, encrypted, one bit flipped.
    let mut bad = Wire::connect(addr, pk).await;
    let mut out = BytesMut::new();
    bad.codec
        .encode(
            &Message::from(m::SetupConnection {
                protocol: m::PROTOCOL_MINING,
                min_version: 2,
                max_version: 2,
                flags: 0,
                endpoint_host: Str0255::from("127.0.0.1"),
                endpoint_port: addr.port(),
                vendor: Str0255::from("x"),
                hardware_version: Str0255::from(""),
                firmware: Str0255::from(""),
                device_id: Str0255::from(""),
            }),
            &mut out,
        )
        .unwrap();
    let last = out.len() - 1;
    out[last] ^= 0x01;
    bad.sock.write_all(&out).await.unwrap();
    let mut rest = Vec::new();
    let _ = timeout(DEADLINE, bad.sock.read_to_end(&mut rest))
        .await
        .expect("cut in time");
    assert!(
        rest.is_empty(),
        "nothing answered to a frame that failed its MAC"
    );
    common::wait_until("the failed MAC counted", DEADLINE, || {
        stats.disconnects(Disconnect::Protocol) == 1
    })
    .await;
    // The good miner still mines.
    let s = good.mine(1);
    good.wire.send(s).await;
    assert!(matches!(
        good.answer().await,
        Message::SubmitSharesSuccess(_)
    ));
    cancel.cancel();
}
