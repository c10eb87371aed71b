//! The V2 adapter on decoded messages: setup, channels, jobs, shares and
//! every share error a miner can cause, without sockets.

use std::sync::Arc;
use std::time::Instant;

use sluice_pow::{ShareChecker, Submission, Target};
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::message::{self as m, Message};
use tokio::sync::mpsc;

use super::*;
use crate::job::fixtures::{synthetic_template, test_job, test_links};
use crate::job::{JobLinks, ShareForward};

struct Rig {
    c: V2Conn,
    now: Instant,
    prefixes: Arc<Prefixes>,
    links: JobLinks,
    _share_rx: mpsc::Receiver<ShareForward>,
    _block_rx: mpsc::UnboundedReceiver<crate::job::BlockForward>,
}

fn cfg() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        min_difficulty: 1e-9,
        start_difficulty: 1e-5,
        ..SessionConfig::default()
    })
}

impl Rig {
    fn new() -> Self {
        let prefixes = Arc::new(Prefixes::new(2));
        let l = test_links(16);
        Rig {
            c: V2Conn::new(9, cfg(), Arc::new(Stats::default()), prefixes.clone(), 6),
            now: Instant::now(),
            prefixes,
            links: l.links,
            _share_rx: l.shares,
            _block_rx: l.blocks,
        }
    }

    /// Feeds a message; returns the messages sent back and whether the
    /// connection was ended.
    fn feed(&mut self, msg: impl Into<Message>) -> (Vec<Message>, Option<Disconnect>) {
        let msg = msg.into();
        let frame = Frame {
            header: msg.header(),
            payload: {
                let mut b = bytes::BytesMut::new();
                msg.put_payload(&mut b);
                b.freeze()
            },
        };
        let mut out = Vec::new();
        self.c.on_frame(&frame, self.now, &mut out);
        decode(out)
    }

    fn flush(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        self.c.flush(&mut out);
        decode(out).0
    }

    fn job(&mut self, id: u64, block: u64, clean: bool) -> Arc<Job> {
        Arc::new(Job {
            id,
            clean,
            ..test_job(synthetic_template(block, 0x1d00ffff), self.links.clone())
        })
    }

    fn push(&mut self, job: &Arc<Job>) -> Vec<Message> {
        let mut out = Vec::new();
        self.c.on_job(job.clone(), self.now, &mut out);
        decode(out).0
    }

    fn ready(&mut self) -> (u32, Vec<u8>) {
        let (got, end) = self.feed(setup(0b100));
        assert!(end.is_none());
        assert!(
            matches!(got[..], [Message::SetupConnectionSuccess(_)]),
            "{got:?}"
        );
        let (got, _) = self.feed(open(1, "acct.rig1", 0));
        let Message::OpenExtendedMiningChannelSuccess(ok) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(ok.extranonce_size, 6);
        assert_eq!(ok.extranonce_prefix.len(), 2);
        assert_ne!(ok.group_channel_id, ok.channel_id);
        assert_ne!(ok.group_channel_id, u32::MAX);
        (ok.channel_id, ok.extranonce_prefix.to_vec())
    }
}

fn decode(out: Vec<Output>) -> (Vec<Message>, Option<Disconnect>) {
    let mut msgs = Vec::new();
    let mut end = None;
    for o in out {
        match o {
            Output::Send(b) => {
                let mut buf = bytes::BytesMut::from(&b[..]);
                let f = sluice_sv2::FrameDecoder::default()
                    .decode(&mut buf)
                    .unwrap()
                    .unwrap();
                assert!(buf.is_empty(), "one whole frame per Send");
                msgs.push(Message::decode(&f).unwrap());
            }
            Output::Disconnect(d) => end = Some(d),
            Output::Forward(_) => {}
        }
    }
    (msgs, end)
}

fn setup(flags: u32) -> m::SetupConnection {
    m::SetupConnection {
        protocol: m::PROTOCOL_MINING,
        min_version: 2,
        max_version: 2,
        flags,
        endpoint_host: Str0255::from("127.0.0.1"),
        endpoint_port: 3336,
        vendor: Str0255::from("bitaxe"),
        hardware_version: Str0255::from(""),
        firmware: Str0255::from("2.9"),
        device_id: Str0255::from(""),
    }
}

fn open(request_id: u32, user: &'static str, min_extranonce: u16) -> m::OpenExtendedMiningChannel {
    m::OpenExtendedMiningChannel {
        request_id,
        user_identity: Str0255::from(user),
        nominal_hash_rate: 0.0,
        max_target: [0xff; 32],
        min_extranonce_size: min_extranonce,
    }
}

/// A nonce for which the share meets (or misses) difficulty `d`.
fn mine(job: &Job, prefix: &[u8], en: &[u8], version: u32, d: f64, meet: bool) -> u32 {
    let t = Target::from_difficulty(d).unwrap();
    let mut c = ShareChecker::new(job.template.clone(), prefix, en.len(), t).unwrap();
    (0u32..)
        .find(|&nonce| {
            c.check(&Submission {
                extranonce2: en,
                time: job.ntime,
                nonce,
                version,
            })
            .unwrap()
            .meets_share_target
                == meet
        })
        .unwrap()
}

fn share(
    ch: u32,
    seq: u32,
    job: &Job,
    en: &[u8],
    nonce: u32,
    version: u32,
) -> m::SubmitSharesExtended {
    m::SubmitSharesExtended {
        channel_id: ch,
        sequence_number: seq,
        job_id: job.id as u32,
        nonce,
        ntime: job.ntime,
        version,
        extranonce: B032::new(en.to_vec()).unwrap(),
    }
}

fn error_of(got: &[Message]) -> String {
    match got.last() {
        Some(Message::SubmitSharesError(e)) => e.error_code.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn setup_is_first_and_refuses_what_it_cannot_serve() {
    let mut r = Rig::new();
    let (got, end) = r.feed(open(1, "a", 0));
    assert!(got.is_empty());
    assert_eq!(
        end,
        Some(Disconnect::Protocol),
        "nothing before SetupConnection"
    );

    let mut r = Rig::new();
    let mut s = setup(0);
    s.protocol = m::PROTOCOL_TEMPLATE_DISTRIBUTION;
    let (got, end) = r.feed(s);
    assert!(
        matches!(&got[0], Message::SetupConnectionError(e) if e.error_code.as_str() == Some("unsupported-protocol"))
    );
    assert_eq!(end, Some(Disconnect::Protocol));

    let mut r = Rig::new();
    let (got, _) = r.feed(setup(m::setup_flags::REQUIRES_WORK_SELECTION | 0b100));
    let Message::SetupConnectionError(e) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(e.error_code.as_str(), Some("unsupported-feature-flags"));
    assert_eq!(
        e.flags,
        m::setup_flags::REQUIRES_WORK_SELECTION,
        "names the flag"
    );

    let mut r = Rig::new();
    let mut s = setup(0);
    s.min_version = 3;
    s.max_version = 4;
    let (got, _) = r.feed(s);
    assert!(
        matches!(&got[0], Message::SetupConnectionError(e) if e.error_code.as_str() == Some("protocol-version-mismatch"))
    );

    // An undecodable message ends the connection.
    let mut r = Rig::new();
    r.ready();
    let bad = Frame {
        header: sluice_sv2::Header::new(0x1b, true, 3),
        payload: bytes::Bytes::from_static(&[1, 2, 3]),
    };
    let mut out = Vec::new();
    r.c.on_frame(&bad, r.now, &mut out);
    assert_eq!(decode(out).1, Some(Disconnect::Protocol));
}

#[test]
fn jobs_go_out_as_future_plus_prev_hash_on_a_new_block_else_at_once() {
    let mut r = Rig::new();
    let (ch, _) = r.ready();
    let j1 = r.job(1, 1, true);
    let got = r.push(&j1);
    let [
        Message::NewExtendedMiningJob(nj),
        Message::SetNewPrevHash(p),
    ] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!((nj.channel_id, nj.job_id, nj.min_ntime), (ch, 1, None));
    assert!(nj.version_rolling_allowed);
    assert_eq!(&nj.coinbase_tx_prefix[..], j1.template.coinb1());
    assert_eq!(&nj.coinbase_tx_suffix[..], j1.template.coinb2());
    assert_eq!(nj.merkle_path.to_vec(), j1.template.branches().to_vec());
    assert_eq!(
        (p.job_id, p.prev_hash, p.nbits),
        (1, *j1.template.prev_hash(), 0x1d00ffff)
    );
    // The same block, a new job: valid at once, no SetNewPrevHash.
    let j2 = Arc::new(Job {
        id: 2,
        clean: false,
        ..test_job((*j1.template).clone(), r.links.clone())
    });
    let got = r.push(&j2);
    let [Message::NewExtendedMiningJob(nj)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(nj.min_ntime, Some(j2.ntime));
    // A channel opened later gets the current job straight away.
    let (got, _) = r.feed(open(2, "acct.rig2", 0));
    assert!(
        matches!(
            &got[..],
            [
                Message::OpenExtendedMiningChannelSuccess(_),
                Message::NewExtendedMiningJob(_),
                Message::SetNewPrevHash(_)
            ]
        ),
        "{got:?}"
    );
    assert_eq!(r.c.channel_count(), 2);
}

#[test]
fn shares_are_checked_batched_and_refused_with_the_specs_codes() {
    let mut r = Rig::new();
    let (ch, prefix) = r.ready();
    let j = r.job(1, 1, true);
    r.push(&j);
    let en = [0u8, 0, 0, 0, 0, 7];
    let v = j.version | 0x0000_6000;
    let n1 = mine(&j, &prefix, &en, v, 1e-5, true);
    let (got, end) = r.feed(share(ch, 1, &j, &en, n1, v));
    assert!(
        got.is_empty() && end.is_none(),
        "accepted shares wait for the batch"
    );
    let en2 = [0u8, 0, 0, 0, 0, 8];
    let n2 = mine(&j, &prefix, &en2, j.version, 1e-5, true);
    r.feed(share(ch, 2, &j, &en2, n2, j.version));
    let got = r.flush();
    let [Message::SubmitSharesSuccess(ok)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(
        (
            ok.channel_id,
            ok.last_sequence_number,
            ok.new_submits_accepted_count
        ),
        (ch, 2, 2)
    );
    assert_eq!(r.c.counters().accepted, 2);
    assert!(r.flush().is_empty(), "nothing more to acknowledge");

    // Each refusal, with its code.
    let (got, _) = r.feed(share(ch, 3, &j, &en, n1, v));
    assert_eq!(error_of(&got), "duplicate-share");
    let (got, _) = r.feed(share(ch + 100, 4, &j, &en, n1, v));
    assert_eq!(error_of(&got), "invalid-channel-id");
    let mut unknown = share(ch, 5, &j, &en, n1, v);
    unknown.job_id = 99;
    assert_eq!(error_of(&r.feed(unknown).0), "invalid-job-id");
    let low = mine(&j, &prefix, &en, j.version, 1e-5, false);
    assert_eq!(
        error_of(&r.feed(share(ch, 6, &j, &en, low, j.version)).0),
        "difficulty-too-low"
    );
    assert_eq!(
        error_of(&r.feed(share(ch, 7, &j, &en, n1, j.version | 0x0000_0001)).0),
        "invalid-non-rollable-version-bit"
    );
    assert_eq!(
        error_of(&r.feed(share(ch, 8, &j, &en[..4], n1, v)).0),
        "bad-extranonce-size"
    );

    // An accepted share before a refusal is acknowledged first.
    let en3 = [0u8, 0, 0, 0, 0, 9];
    let n3 = mine(&j, &prefix, &en3, j.version, 1e-5, true);
    r.feed(share(ch, 9, &j, &en3, n3, j.version));
    let (got, _) = r.feed(share(ch, 10, &j, &en3, n3, j.version));
    assert!(
        matches!(
            &got[..],
            [Message::SubmitSharesSuccess(s), Message::SubmitSharesError(_)] if s.last_sequence_number == 9
        ),
        "{got:?}"
    );

    // A clean job on a new block stales the old one's shares.
    let j2 = r.job(2, 2, true);
    r.push(&j2);
    let en4 = [0u8, 0, 0, 0, 1, 0];
    let n4 = mine(&j, &prefix, &en4, j.version, 1e-5, true);
    assert_eq!(
        error_of(&r.feed(share(ch, 11, &j, &en4, n4, j.version)).0),
        "stale-share"
    );
}

#[test]
fn channels_hold_a_prefix_each_until_closed_or_dropped() {
    let mut r = Rig::new();
    let (ch, _) = r.ready();
    r.feed(open(2, "acct.rig2", 0));
    assert_eq!(r.prefixes.in_use(), 2);
    r.feed(m::CloseChannel {
        channel_id: ch,
        reason_code: Str0255::from("bye"),
    });
    assert_eq!(r.prefixes.in_use(), 1);
    assert_eq!(r.c.channel_count(), 1);
    // More extranonce than we give: refused with the spec's code.
    let (got, _) = r.feed(open(3, "acct.rig3", 7));
    assert!(
        matches!(&got[0], Message::OpenMiningChannelError(e) if e.error_code.as_str() == Some("bad-extranonce-size"))
    );
    // A name that is not text.
    let mut o = open(4, "x", 0);
    o.user_identity = Str0255::new(vec![0xff, 0xfe]).unwrap();
    let (got, _) = r.feed(o);
    assert!(
        matches!(&got[0], Message::OpenMiningChannelError(e) if e.error_code.as_str() == Some("unknown-user"))
    );
    let prefixes = r.prefixes.clone();
    drop(r);
    assert_eq!(prefixes.in_use(), 0);
}

#[test]
fn a_closed_connection_gives_back_its_names_and_leaves_its_workers() {
    // As a V1 session does: a V2 farm behind one address that reconnects
    // must not use up its name quota, and its workers must not stay
    // connected in the books.
    let quota = Arc::new(crate::limits::NameQuota::new(4));
    let books = crate::session::tests::books();
    let ip = std::net::IpAddr::from([10, 0, 0, 7]);
    let mut r = Rig::new();
    r.c = V2Conn::new(9, cfg(), Arc::new(Stats::default()), r.prefixes.clone(), 6)
        .with_name_quota(quota.clone(), ip)
        .with_books(books.clone(), Some(ip));
    let (ch, prefix) = r.ready();
    r.feed(open(2, "acct.rig2", 0));
    assert_eq!(quota.held(ip), 2);
    let j = r.job(1, 1, true);
    r.push(&j);
    let en = [0u8, 0, 0, 0, 0, 7];
    let n = mine(&j, &prefix, &en, j.version, 1e-5, true);
    r.feed(share(ch, 1, &j, &en, n, j.version));
    r.flush();
    let w = books.find_worker("acct.rig1").expect("booked at its share");
    assert_eq!(w.connections(), 1);
    drop(r);
    assert_eq!(quota.held(ip), 0, "names given back");
    assert_eq!(w.connections(), 0, "the worker left with its connection");
}

#[test]
fn the_target_follows_the_stated_hashrate_and_moves_at_once() {
    let mut r = Rig::new();
    r.feed(setup(0));
    let mut o = open(1, "acct.big", 0);
    // 100 TH/s: six shares a minute is difficulty ~233,000.
    o.nominal_hash_rate = 1e14;
    let (got, _) = r.feed(o);
    let Message::OpenExtendedMiningChannelSuccess(ok) = &got[0] else {
        panic!("{got:?}")
    };
    let d = Target::from_le_bytes(&ok.target).difficulty();
    assert!((d / 232_830.6 - 1.0).abs() < 0.01, "{d}");
    let ch = ok.channel_id;
    // UpdateChannel to a tenth: SetTarget at once.
    let (got, _) = r.feed(m::UpdateChannel {
        channel_id: ch,
        nominal_hash_rate: 1e13,
        maximum_target: [0xff; 32],
    });
    let [Message::SetTarget(t)] = &got[..] else {
        panic!("{got:?}")
    };
    let d2 = Target::from_le_bytes(&t.maximum_target).difficulty();
    assert!((d2 / 23_283.06 - 1.0).abs() < 0.01, "{d2}");
    let (got, _) = r.feed(m::UpdateChannel {
        channel_id: ch + 1,
        nominal_hash_rate: 1e13,
        maximum_target: [0xff; 32],
    });
    assert!(
        matches!(&got[0], Message::UpdateChannelError(e) if e.error_code.as_str() == Some("invalid-channel-id"))
    );
}

#[test]
fn what_is_not_served_is_refused_with_a_code() {
    let mut r = Rig::new();
    r.ready();
    // A second SetupConnection ends the connection.
    let (got, end) = r.feed(setup(0));
    assert!(
        matches!(&got[0], Message::SetupConnectionError(_)),
        "{got:?}"
    );
    assert_eq!(end, Some(Disconnect::Protocol));
    // Channels per connection are capped like V1 worker names.
    let mut r = Rig::new();
    r.c = V2Conn::new(
        9,
        Arc::new(SessionConfig {
            max_workers_per_connection: 1,
            ..(*cfg()).clone()
        }),
        Arc::new(Stats::default()),
        r.prefixes.clone(),
        6,
    );
    r.ready();
    let (got, _) = r.feed(open(2, "acct.rig2", 0));
    assert!(
        matches!(&got[0], Message::OpenMiningChannelError(e) if e.error_code.as_str() == Some("too-many-channels")),
        "{got:?}"
    );
    assert_eq!(
        r.prefixes.in_use(),
        1,
        "the refused channel holds no prefix"
    );
}

/// Blocks found = blocks submitted, for V2 too: a share meeting the
/// network target is handed on (the connection task logs and submits it)
/// before the miner hears anything.
#[test]
fn a_v2_block_goes_out_before_any_answer() {
    let mut r = Rig::new();
    let (ch, prefix) = r.ready();
    let j = Arc::new(Job {
        id: 1,
        ..test_job(synthetic_template(1, 0x207f_ffff), r.links.clone())
    });
    r.push(&j);
    let en = [0u8, 0, 0, 0, 0, 1];
    let nonce = mine(&j, &prefix, &en, j.version, 1e-5, true);
    let mut out = Vec::new();
    let s = share(ch, 1, &j, &en, nonce, j.version);
    let frame = Frame {
        header: Message::from(s.clone()).header(),
        payload: Message::from(s).to_frame_bytes().slice(6..),
    };
    r.c.on_frame(&frame, r.now, &mut out);
    assert!(
        matches!(&out[..], [Output::Forward(f)] if f.is_block),
        "the block alone, before any reply"
    );
    assert_eq!(r.c.counters().blocks, 1);
    assert!(matches!(&r.flush()[..], [Message::SubmitSharesSuccess(_)]));
}

fn open_standard(request_id: u32, user: &'static str) -> m::OpenStandardMiningChannel {
    m::OpenStandardMiningChannel {
        request_id,
        user_identity: Str0255::from(user),
        nominal_hash_rate: 0.0,
        max_target: [0xff; 32],
    }
}

fn standard_share(
    ch: u32,
    seq: u32,
    job_id: u32,
    ntime: u32,
    nonce: u32,
    version: u32,
) -> m::SubmitSharesStandard {
    m::SubmitSharesStandard {
        channel_id: ch,
        sequence_number: seq,
        job_id,
        nonce,
        ntime,
        version,
    }
}

/// A header-only miner: its channel's whole extranonce is the prefix the
/// server gave (the server's own prefix and zeros), and each job comes as
/// a merkle root made for its channel.
#[test]
fn standard_channels_get_their_own_merkle_root_and_are_checked_header_only() {
    let mut r = Rig::new();
    let (got, _) = r.feed(setup(m::setup_flags::REQUIRES_STANDARD_JOBS | 0b100));
    assert!(
        matches!(&got[..], [Message::SetupConnectionSuccess(ok)] if ok.flags == 0),
        "{got:?}"
    );
    let (got, _) = r.feed(open_standard(3, "acct.bitaxe"));
    let Message::OpenStandardMiningChannelSuccess(ok) = &got[0] else {
        panic!("{got:?}")
    };
    let (ch, full) = (ok.channel_id, ok.extranonce_prefix.to_vec());
    assert_eq!(ok.request_id, 3);
    assert_eq!(
        full.len(),
        2 + 6,
        "the server's prefix and the miner's part, zeros"
    );
    assert_eq!(&full[2..], &[0u8; 6]);
    assert_ne!(ok.group_channel_id, ch);
    assert_ne!(ok.group_channel_id, u32::MAX);
    // Another channel gets another extranonce, so another root.
    let (got, _) = r.feed(open_standard(4, "acct.bitaxe2"));
    let Message::OpenStandardMiningChannelSuccess(ok2) = &got[0] else {
        panic!("{got:?}")
    };
    assert_ne!(ok2.extranonce_prefix.to_vec(), full);

    let j = r.job(1, 1, true);
    let got = r.push(&j);
    let roots: Vec<(u32, [u8; 32], Option<u32>)> = got
        .iter()
        .filter_map(|m| match m {
            Message::NewMiningJob(n) => Some((n.channel_id, n.merkle_root, n.min_ntime)),
            _ => None,
        })
        .collect();
    assert_eq!(roots.len(), 2, "{got:?}");
    assert!(
        roots.iter().all(|r| r.2.is_none()),
        "future jobs on a new block"
    );
    assert_eq!(
        got.iter()
            .filter(|m| matches!(m, Message::SetNewPrevHash(_)))
            .count(),
        2
    );
    assert!(
        !got.iter()
            .any(|m| matches!(m, Message::NewExtendedMiningJob(_)))
    );
    // The root is the one of a coinbase with the channel's whole
    // extranonce in it.
    let root = roots.iter().find(|r| r.0 == ch).unwrap().1;
    // (The checker wants at least one byte after its prefix: split the
    // same bytes there.)
    let (head, tail) = full.split_at(full.len() - 1);
    let whole = ShareChecker::new(j.template.clone(), head, 1, Target::MAX).unwrap();
    assert_eq!(root, whole.merkle_root(tail));

    // Header-only hashing: version, prev hash, that root, time, bits.
    let d = 1e-5;
    let t = Target::from_difficulty(d).unwrap();
    let mid =
        sluice_pow::header::HeaderMidstate::from_parts(j.version, j.template.prev_hash(), &root);
    let nonce = (0u32..)
        .find(|&n| t.is_met_by(&mid.hash(j.ntime, j.template.bits(), n)))
        .unwrap();
    let good = standard_share(ch, 0, 1, j.ntime, nonce, j.version);
    r.feed(good.clone());
    assert!(
        matches!(&r.flush()[..], [Message::SubmitSharesSuccess(s)] if s.channel_id == ch && s.new_submits_accepted_count == 1)
    );
    // The same share again; the share on the other channel (another
    // extranonce: its hash misses); an extended share on a standard
    // channel.
    let (got, _) = r.feed(m::SubmitSharesStandard {
        sequence_number: 1,
        ..good.clone()
    });
    assert_eq!(error_of(&got), "duplicate-share");
    let (got, _) = r.feed(m::SubmitSharesStandard {
        channel_id: ok2.channel_id,
        ..good.clone()
    });
    assert_eq!(error_of(&got), "difficulty-too-low");
    let (got, _) = r.feed(share(ch, 3, &j, &[0; 6], nonce, j.version));
    assert_eq!(error_of(&got), Reject::Malformed.v2_error());

    // A job on the same block: valid at once, no prev hash.
    let j2 = r.job(2, 1, false);
    let got = r.push(&j2);
    assert!(
        got.iter().all(|m| !matches!(m, Message::SetNewPrevHash(_))),
        "{got:?}"
    );
    assert!(got.iter().any(
        |m| matches!(m, Message::NewMiningJob(n) if n.channel_id == ch && n.min_ntime == Some(j2.ntime))
    ));
}

/// A standard channel builds a checker for every job it is sent (its
/// merkle root comes from it). As for shares, only the newest job's stays
/// built, and a share on an older job is still checked against the root
/// it was sent.
#[test]
fn a_standard_channel_keeps_one_checker_built() {
    let mut r = Rig::new();
    r.feed(setup(m::setup_flags::REQUIRES_STANDARD_JOBS | 0b100));
    let (got, _) = r.feed(open_standard(3, "acct.bitaxe"));
    let Message::OpenStandardMiningChannelSuccess(ok) = &got[0] else {
        panic!("{got:?}")
    };
    let ch = ok.channel_id;
    let mut sent = Vec::new();
    for id in 1..=6 {
        let j = r.job(id, 1, id == 1);
        let got = r.push(&j);
        let root = got
            .iter()
            .find_map(|m| match m {
                Message::NewMiningJob(n) if n.channel_id == ch => Some(n.merkle_root),
                _ => None,
            })
            .expect("a job for the channel");
        sent.push((j, root));
        let ch = &r.c.channels[0].ch;
        let built = (0..ch.jobs.len())
            .filter(|&i| ch.checker_of(i).is_some())
            .count();
        assert_eq!(built, 1, "checkers built after job {id}");
    }
    let (j, root) = &sent[0];
    assert!(r.c.channels[0].ch.checker_of(0).is_none(), "retired");
    let t = Target::from_difficulty(1e-5).unwrap();
    let mid =
        sluice_pow::header::HeaderMidstate::from_parts(j.version, j.template.prev_hash(), root);
    let nonce = (0u32..)
        .find(|&n| t.is_met_by(&mid.hash(j.ntime, j.template.bits(), n)))
        .unwrap();
    r.feed(standard_share(ch, 0, 1, j.ntime, nonce, j.version));
    assert!(
        matches!(&r.flush()[..], [Message::SubmitSharesSuccess(s)] if s.new_submits_accepted_count == 1)
    );
}

/// Standard channels of a miner that did not ask for standard jobs (a
/// proxy, say) share one extended job per job on their group channel,
/// and make each channel's merkle root from it themselves.
#[test]
fn standard_channels_in_a_group_get_one_extended_job_for_all() {
    let mut r = Rig::new();
    r.feed(setup(0b100));
    let mut chans = Vec::new();
    for (i, name) in ["acct.s1", "acct.s2"].into_iter().enumerate() {
        let (got, _) = r.feed(open_standard(i as u32, name));
        let Message::OpenStandardMiningChannelSuccess(ok) = &got[0] else {
            panic!("{got:?}")
        };
        chans.push((
            ok.channel_id,
            ok.extranonce_prefix.to_vec(),
            ok.group_channel_id,
        ));
    }
    let group = chans[0].2;
    assert_eq!(group, chans[1].2, "one group");
    let j = r.job(1, 1, true);
    let got = r.push(&j);
    let jobs: Vec<&m::NewExtendedMiningJob> = got
        .iter()
        .filter_map(|m| match m {
            Message::NewExtendedMiningJob(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(jobs.len(), 1, "once for the group: {got:?}");
    assert_eq!(jobs[0].channel_id, group);
    assert!(!got.iter().any(|m| matches!(m, Message::NewMiningJob(_))));
    let prev = got
        .iter()
        .find_map(|m| match m {
            Message::SetNewPrevHash(p) if p.channel_id == group => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    // The second channel mines from the group's job with its own prefix.
    let (ch, full, _) = &chans[1];
    let template = Arc::new(
        sluice_pow::JobTemplate::new(
            prev.prev_hash,
            jobs[0].coinbase_tx_prefix.to_vec(),
            jobs[0].coinbase_tx_suffix.to_vec(),
            jobs[0].merkle_path.to_vec(),
            prev.nbits,
        )
        .unwrap(),
    );
    let t = Target::from_difficulty(1e-5).unwrap();
    let (head, tail) = full.split_at(full.len() - 1);
    let mut c = ShareChecker::new(template, head, 1, t).unwrap();
    let nonce = (0u32..)
        .find(|&nonce| {
            c.check(&Submission {
                extranonce2: tail,
                time: prev.min_ntime,
                nonce,
                version: j.version,
            })
            .unwrap()
            .meets_share_target
        })
        .unwrap();
    r.feed(standard_share(*ch, 0, 1, prev.min_ntime, nonce, j.version));
    assert!(
        matches!(&r.flush()[..], [Message::SubmitSharesSuccess(s)] if s.channel_id == *ch),
        "a root made from the group job is the channel's"
    );
    // A channel opened later gets nothing new: the group has the job.
    let (got, _) = r.feed(open_standard(9, "acct.s3"));
    assert!(
        !got.iter()
            .any(|m| matches!(m, Message::NewExtendedMiningJob(_))),
        "{got:?}"
    );
}
