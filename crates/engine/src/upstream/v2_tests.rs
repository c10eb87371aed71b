//! The V2 pool client on decoded messages, without sockets.

use sluice_pow::Target;
use sluice_pow::version::RollingRule;
use sluice_sv2::binary::{B032, Str0255};
use sluice_sv2::frame::FrameDecoder;
use sluice_sv2::message::{self as m, Message};

use super::*;
use crate::job::fixtures::{synthetic_template, test_job, test_links, test_share};
use crate::job::{Extranonce, Job};
use crate::upstream::{PoolReject, UpstreamConfig, build_job};

/// The V1 tests' settings, for a V2 pool (and the OR rule, which V2
/// must not use: its shares carry the whole version).
fn cfg() -> Arc<UpstreamConfig> {
    let key = sluice_sv2::noise::AuthorityKeypair::generate()
        .unwrap()
        .public_key();
    Arc::new(UpstreamConfig {
        url: crate::url::PoolUrl::v2("127.0.0.1", 3336, key),
        rolling_rule: RollingRule::Or,
        ..(*crate::upstream::tests::cfg(false)).clone()
    })
}

fn sent(actions: &[ClientAction]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            ClientAction::Send(b) => Some(decode(b)),
            _ => None,
        })
        .collect()
}

fn decode(b: &Bytes) -> Message {
    let mut buf = bytes::BytesMut::from(&b[..]);
    let f = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "one frame");
    Message::decode(&f).unwrap()
}

const CHANNEL: u32 = 7;
const GROUP: u32 = 0x8000_0007;

/// A client whose channel is open: prefix `0a0b0c0d`, 8 bytes to roll,
/// at difficulty 1e-4.
fn opened() -> (V2Client, Instant) {
    let now = Instant::now();
    let mut c = V2Client::new(cfg());
    let out = sent(&c.handshake(now));
    let [
        Message::SetupConnection(s),
        Message::OpenExtendedMiningChannel(o),
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!((s.protocol, s.min_version, s.max_version), (0, 2, 2));
    assert_eq!(s.flags, m::setup_flags::REQUIRES_VERSION_ROLLING);
    assert_eq!(o.user_identity.as_str(), Some("acct"));
    assert_eq!(o.min_extranonce_size, 6, "session prefix + miner part");
    assert!(
        c.on_message(
            m::SetupConnectionSuccess {
                used_version: 2,
                flags: 0
            }
            .into(),
            now
        )
        .is_empty()
    );
    let a = c.on_message(
        m::OpenExtendedMiningChannelSuccess {
            request_id: o.request_id,
            channel_id: CHANNEL,
            target: Target::from_difficulty(1e-4).unwrap().to_le_bytes(),
            extranonce_size: 8,
            extranonce_prefix: B032::new(vec![0x0a, 0x0b, 0x0c, 0x0d]).unwrap(),
            group_channel_id: GROUP,
        }
        .into(),
        now,
    );
    assert!(
        matches!(&a[..], [ClientAction::Subscribed(s)] if s.extranonce1 == [0x0a, 0x0b, 0x0c, 0x0d] && s.extranonce2_size == 8),
        "{a:?}"
    );
    (c, now)
}

fn ext_job(channel_id: u32, job_id: u32, min_ntime: Option<u32>) -> Message {
    let t = synthetic_template(1, 0x1d00_ffff);
    m::NewExtendedMiningJob {
        channel_id,
        job_id,
        min_ntime,
        version: 0x2000_0000,
        version_rolling_allowed: true,
        merkle_path: sluice_sv2::binary::Seq0255::new(vec![]).unwrap(),
        coinbase_tx_prefix: sluice_sv2::binary::B064K::new(t.coinb1().to_vec()).unwrap(),
        coinbase_tx_suffix: sluice_sv2::binary::B064K::new(t.coinb2().to_vec()).unwrap(),
    }
    .into()
}

fn prev_hash(channel_id: u32, job_id: u32) -> Message {
    m::SetNewPrevHash {
        channel_id,
        job_id,
        prev_hash: [7; 32],
        min_ntime: 0x6b00_0000,
        nbits: 0x1d00_ffff,
    }
    .into()
}

fn parts(a: &[ClientAction]) -> Vec<&JobParts> {
    a.iter()
        .filter_map(|a| match a {
            ClientAction::Job(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_future_job_waits_for_its_prev_hash_then_goes_out_clean() {
    let (mut c, now) = opened();
    // On the group channel: ours too.
    assert!(c.on_message(ext_job(GROUP, 5, None), now).is_empty());
    // Another channel's job is not ours.
    assert!(c.on_message(ext_job(99, 6, Some(1)), now).is_empty());
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let p = parts(&a);
    assert_eq!(p.len(), 1, "{a:?}");
    assert!(p[0].clean);
    assert_eq!(p[0].notify.job_id, "5");
    assert_eq!(p[0].notify.prev_hash, [7; 32]);
    assert_eq!(p[0].notify.ntime, 0x6b00_0000);
    assert_eq!(p[0].difficulty, 1e-4);
    assert_eq!(c.version_mask(), 0x1fff_e000);
    // A job on the same block: at once, not clean.
    let a = c.on_message(ext_job(CHANNEL, 6, Some(0x6b00_0010)), now);
    let p = parts(&a);
    assert!(!p[0].clean && p[0].notify.job_id == "6" && p[0].notify.ntime == 0x6b00_0010);
    // A prev hash for a job never sent: nothing to mine until one comes.
    let a = c.on_message(prev_hash(CHANNEL, 42), now);
    assert!(parts(&a).is_empty());
}

/// A target applies at once in V2: the current job goes out again at the
/// new difficulty, and shares of jobs made at the old, easier one go up
/// only if they meet the new target.
#[test]
fn set_target_republishes_and_holds_back_shares_below_it() {
    let (mut c, now) = opened();
    c.on_message(ext_job(CHANNEL, 5, None), now);
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let old = parts(&a)[0].clone();
    let a = c.on_message(
        m::SetTarget {
            channel_id: CHANNEL,
            maximum_target: Target::from_difficulty(1e-2).unwrap().to_le_bytes(),
        }
        .into(),
        now,
    );
    let p = parts(&a);
    assert!(
        !p[0].clean && (p[0].difficulty - 1e-2).abs() < 1e-12,
        "{a:?}"
    );
    // A share of the old job (difficulty 1e-4) whose hash meets only
    // that: held back. One whose hash meets 1e-2: goes.
    let links = test_links(4);
    let job = Arc::new(Job {
        pool_difficulty: old.difficulty,
        ..test_job(synthetic_template(1, 0x1d00_ffff), links.links)
    });
    let mut s = test_share(job);
    s.hash = Target::from_difficulty(1e-3).unwrap().to_le_bytes();
    assert!(!c.should_forward(&s));
    s.hash = Target::from_difficulty(1e-1).unwrap().to_le_bytes();
    assert!(c.should_forward(&s));
    s.is_block = true;
    s.hash = [0xff; 32];
    assert!(c.should_forward(&s), "a block always goes");
}

fn submitted(c: &mut V2Client, job: Arc<Job>, session: u64) -> m::SubmitSharesExtended {
    let s = ShareForward {
        session,
        extranonce2: Extranonce::from_parts(&[&[0xab, 0xcd], &[1, 2, 3, 4]]).unwrap(),
        ntime: 0x6b00_0001,
        nonce: 0xdead_beef,
        version: 0x2000_2000,
        difficulty: 2.0,
        ..test_share(job)
    };
    let out = c.submit(&s);
    let [b] = &out[..] else { panic!("{out:?}") };
    let Message::SubmitSharesExtended(x) = decode(b) else {
        panic!()
    };
    x
}

/// The job as the task builds it from the parts (the pool's prefix in
/// the coinbase, two bytes of padding after the session's extranonce).
fn built(c: &V2Client, p: &JobParts) -> Arc<Job> {
    let l = test_links(4);
    Arc::new(
        build_job(
            p,
            c.subscription().unwrap(),
            cfg().geometry,
            1,
            0,
            1,
            1,
            c.version_mask(),
            RollingRule::Replace,
            l.links,
            Instant::now(),
        )
        .unwrap(),
    )
}

#[test]
fn shares_go_up_with_sequence_numbers_and_batched_answers_come_back_per_share() {
    let (mut c, now) = opened();
    c.on_message(ext_job(CHANNEL, 5, None), now);
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let job = built(&c, parts(&a)[0]);
    assert_eq!(job.extranonce_pad, 2);
    let x = submitted(&mut c, job.clone(), 11);
    assert_eq!(x.channel_id, CHANNEL);
    assert_eq!(x.sequence_number, 0);
    assert_eq!(x.job_id, 5);
    assert_eq!(
        (x.nonce, x.ntime, x.version),
        (0xdead_beef, 0x6b00_0001, 0x2000_2000)
    );
    assert_eq!(
        x.extranonce.to_vec(),
        [0xab, 0xcd, 1, 2, 3, 4, 0, 0],
        "the session's extranonce and the pad: the pool's 8 bytes"
    );
    for seq in 1..4 {
        assert_eq!(
            submitted(&mut c, job.clone(), 11 + u64::from(seq)).sequence_number,
            seq
        );
    }
    assert_eq!(c.pending(), 4);
    // One refused (before the batch that follows it), then the batch.
    let a = c.on_message(
        m::SubmitSharesError {
            channel_id: CHANNEL,
            sequence_number: 1,
            error_code: Str0255::from("stale-share"),
        }
        .into(),
        now,
    );
    assert!(
        matches!(&a[..], [ClientAction::Result(r)] if r.session == 12 && !r.accepted && r.reject == Some(PoolReject::Stale)),
        "{a:?}"
    );
    let a = c.on_message(
        m::SubmitSharesSuccess {
            channel_id: CHANNEL,
            last_sequence_number: 2,
            new_submits_accepted_count: 2,
            new_shares_sum: 4,
        }
        .into(),
        now,
    );
    let sessions: Vec<u64> = a
        .iter()
        .filter_map(|a| match a {
            ClientAction::Result(r) if r.accepted => Some(r.session),
            _ => None,
        })
        .collect();
    assert_eq!(sessions, [11, 13], "each share up to 2 not refused");
    assert_eq!(c.pending(), 1);
    // The connection goes: what is left is reported unanswered.
    let (left, blocks) = c.drain_pending();
    assert!(blocks.is_empty());
    assert!(
        matches!(&left[..], [r] if r.session == 14 && r.reject == Some(PoolReject::Unanswered))
    );
}

#[test]
fn a_block_is_answered_by_number_and_rejects_in_a_row_fail_the_connection() {
    let (mut c, now) = opened();
    c.on_message(ext_job(CHANNEL, 5, None), now);
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let job = built(&c, parts(&a)[0]);
    let s = test_share(job.clone());
    let out = c.submit_block(77, &s, now);
    assert_eq!(out.len(), 1);
    let a = c.on_message(
        m::SubmitSharesSuccess {
            channel_id: CHANNEL,
            last_sequence_number: 0,
            new_submits_accepted_count: 1,
            new_shares_sum: 1,
        }
        .into(),
        now,
    );
    assert!(
        matches!(
            &a[0],
            ClientAction::Block {
                id: 77,
                accepted: true,
                ..
            }
        ),
        "{a:?}"
    );
    for i in 1..=3 {
        submitted(&mut c, job.clone(), 1);
        let a = c.on_message(
            m::SubmitSharesError {
                channel_id: CHANNEL,
                sequence_number: i,
                error_code: Str0255::from("difficulty-too-low"),
            }
            .into(),
            now,
        );
        let failed = a.iter().any(|a| matches!(a, ClientAction::Fail(_)));
        assert_eq!(failed, i == 3, "max_consecutive_rejects is 3: {a:?}");
    }
}

#[test]
fn what_the_pool_may_do_to_the_connection() {
    // Refusals end the connection, saying why.
    let now = Instant::now();
    let mut c = V2Client::new(cfg());
    let a = c.on_message(
        m::SetupConnectionError {
            flags: 0,
            error_code: Str0255::from("unsupported-feature-flags"),
        }
        .into(),
        now,
    );
    assert!(matches!(&a[..], [ClientAction::Fail(r)] if r.contains("unsupported-feature-flags")));
    let a = c.on_message(
        m::OpenMiningChannelError {
            request_id: 1,
            error_code: Str0255::from("unknown-user"),
        }
        .into(),
        now,
    );
    assert!(matches!(&a[..], [ClientAction::Fail(r)] if r.contains("unknown-user")));
    // Too little extranonce for our geometry.
    let mut c = V2Client::new(cfg());
    let a = c.on_message(
        m::OpenExtendedMiningChannelSuccess {
            request_id: 1,
            channel_id: 1,
            target: [0xff; 32],
            extranonce_size: 4,
            extranonce_prefix: B032::new(vec![1]).unwrap(),
            group_channel_id: 2,
        }
        .into(),
        now,
    );
    assert!(matches!(&a[..], [ClientAction::Fail(_)]), "{a:?}");

    let (mut c, now) = opened();
    // Reconnect: only to the configured host or one listed for it.
    let to = |host: &'static str| -> Message {
        m::Reconnect {
            new_host: Str0255::from(host),
            new_port: 4444,
        }
        .into()
    };
    assert!(
        matches!(&c.on_message(to("backup.example"), now)[..], [ClientAction::Reconnect(u, _)] if u.host == "backup.example" && u.port == 4444 && u.authority.is_some())
    );
    assert!(matches!(
        &c.on_message(to("evil.example"), now)[..],
        [ClientAction::RefusedReconnect(_)]
    ));
    assert!(
        matches!(&c.on_message(to(""), now)[..], [ClientAction::Reconnect(u, _)] if u.host == "127.0.0.1")
    );
    // A new prefix: the subscription changes and the next job is clean.
    c.on_message(ext_job(CHANNEL, 5, None), now);
    c.on_message(prev_hash(CHANNEL, 5), now);
    let a = c.on_message(
        m::SetExtranoncePrefix {
            channel_id: CHANNEL,
            extranonce_prefix: B032::new(vec![9, 9, 9, 9]).unwrap(),
        }
        .into(),
        now,
    );
    assert!(matches!(&a[0], ClientAction::Subscribed(s) if s.extranonce1 == [9, 9, 9, 9]));
    assert!(parts(&a)[0].clean);
    // The pool closing the channel ends the connection.
    let a = c.on_message(
        m::CloseChannel {
            channel_id: CHANNEL,
            reason_code: Str0255::from("shutdown"),
        }
        .into(),
        now,
    );
    assert!(matches!(&a[..], [ClientAction::Fail(r)] if r.contains("shutdown")));
}

#[test]
fn the_hashrate_behind_the_channel_is_stated_when_it_moves() {
    let (mut c, _) = opened();
    let Some(b) = c.suggest(1e-3) else { panic!() };
    let Message::UpdateChannel(u) = decode(&b) else {
        panic!()
    };
    assert_eq!(u.channel_id, CHANNEL);
    assert!((f64::from(u.nominal_hash_rate) - 1e-3 * 4_294_967_296.0 * 2.0).abs() < 100.0);
    assert!(c.suggest(1.5e-3).is_none(), "within 2x: nothing new");
    assert!(c.suggest(5e-3).is_some());
}

/// Sequence numbers wrap at 2^32: a batch names its last share by the
/// low 32 bits, and the shares before the wrap are still the ones it
/// acknowledges (not the ones after it).
#[test]
fn sequence_numbers_wrap_without_mixing_shares_up() {
    let (mut c, now) = opened();
    c.on_message(ext_job(CHANNEL, 5, None), now);
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let job = built(&c, parts(&a)[0]);
    c.next_seq = u64::from(u32::MAX) - 1;
    let seqs: Vec<u32> = (0..4)
        .map(|i| submitted(&mut c, job.clone(), 100 + i).sequence_number)
        .collect();
    assert_eq!(seqs, [u32::MAX - 1, u32::MAX, 0, 1]);
    // The two before the wrap accepted...
    let a = c.on_message(
        m::SubmitSharesSuccess {
            channel_id: CHANNEL,
            last_sequence_number: u32::MAX,
            new_submits_accepted_count: 2,
            new_shares_sum: 4,
        }
        .into(),
        now,
    );
    let ok: Vec<u64> = a
        .iter()
        .filter_map(|a| match a {
            ClientAction::Result(r) if r.accepted => Some(r.session),
            _ => None,
        })
        .collect();
    assert_eq!(ok, [100, 101]);
    // ...then one after it refused, by its wire number.
    let a = c.on_message(
        m::SubmitSharesError {
            channel_id: CHANNEL,
            sequence_number: 0,
            error_code: Str0255::from("duplicate-share"),
        }
        .into(),
        now,
    );
    assert!(matches!(&a[..], [ClientAction::Result(r)] if r.session == 102 && !r.accepted));
    assert_eq!(c.pending(), 1);
}

/// A pool that lets miners roll nothing: the jobs say so.
#[test]
fn a_job_without_rolling_is_published_with_no_mask() {
    let (mut c, now) = opened();
    let Message::NewExtendedMiningJob(mut j) = ext_job(CHANNEL, 5, None) else {
        panic!()
    };
    j.version_rolling_allowed = false;
    c.on_message(j.into(), now);
    c.on_message(prev_hash(CHANNEL, 5), now);
    assert_eq!(c.version_mask(), 0);
}

/// A block found on a job of an earlier V2 connection cannot go on this
/// one (its job id belongs to the old channel): it is marked for a manual
/// submission instead of sent to be refused. One of this connection's
/// jobs goes.
#[test]
fn a_block_from_an_earlier_channel_is_not_sent_on_this_one() {
    let (mut c, now) = opened();
    c.on_message(ext_job(CHANNEL, 5, None), now);
    let a = c.on_message(prev_hash(CHANNEL, 5), now);
    let job = built(&c, parts(&a)[0]);
    let st = super::super::proto::Proto::V2(c);
    let block = |epoch: u64| crate::job::BlockForward {
        id: 1,
        share: test_share(Arc::new(Job {
            epoch,
            upstream_extranonce1: job.upstream_extranonce1.clone(),
            ..test_job(synthetic_template(1, 0x1d00_ffff), test_links(1).links)
        })),
    };
    assert!(
        crate::upstream::unsendable(&st, &block(3), Some(4))
            .is_some_and(|w| w.contains("earlier connection"))
    );
    assert_eq!(crate::upstream::unsendable(&st, &block(4), Some(4)), None);
}
