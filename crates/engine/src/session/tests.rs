use std::time::Duration;

use serde_json::json;
use sluice_pow::version::RollingRule;
use sluice_pow::{JobTemplate, synthetic};
use tokio::sync::mpsc;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_pow::{ShareChecker, Submission, Target};

use super::channel::SET_TARGET_GRACE;
use super::*;
use crate::job::Job;
use crate::job::fixtures::{test_job, test_share};
use crate::limits::{NameQuota, Prefixes};
use crate::stats::Stats;

fn cfg() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        min_difficulty: 1e-9,
        start_difficulty: 1e-5,
        ..SessionConfig::default()
    })
}

struct Rig {
    s: Session,
    out: Vec<Output>,
    now: Instant,
    stats: Arc<Stats>,
    links: crate::job::JobLinks,
    _share_rx: mpsc::Receiver<ShareForward>,
    _block_rx: mpsc::UnboundedReceiver<crate::job::BlockForward>,
    next_job: u64,
    epoch: u64,
}

impl Rig {
    fn new() -> Self {
        let stats = Arc::new(Stats::default());
        let now = Instant::now();
        let (share_tx, share_rx) = mpsc::channel(16);
        let (block_tx, block_rx) = mpsc::unbounded_channel();
        Rig {
            s: Session::new(7, cfg(), stats.clone(), vec![0xab, 0xcd], 4, now),
            out: Vec::new(),
            now,
            stats,
            links: crate::job::JobLinks {
                share_tx,
                block_tx,
                up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            },
            _share_rx: share_rx,
            _block_rx: block_rx,
            next_job: 1,
            epoch: 0,
        }
    }

    fn line(&mut self, v: serde_json::Value) -> Vec<Output> {
        self.raw(v.to_string().as_bytes())
    }

    fn raw(&mut self, line: &[u8]) -> Vec<Output> {
        self.out.clear();
        self.s.on_line(line, self.now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    /// A job on a hard network target (no accidental blocks) unless `bits`.
    fn job(&mut self, clean: bool, bits: u32) -> Arc<Job> {
        let (t, _) = synthetic::job(synthetic::TYPICAL, self.next_job);
        let template = JobTemplate::new(
            *t.prev_hash(),
            t.coinb1().to_vec(),
            t.coinb2().to_vec(),
            t.branches().to_vec(),
            bits,
        )
        .unwrap();
        if clean {
            self.epoch += 1;
        }
        let id = self.next_job;
        self.next_job += 1;
        Arc::new(Job {
            id,
            upstream_job_id: format!("up{id}").into(),
            clean,
            epoch: self.epoch,
            received: self.now,
            ..test_job(template, self.links.clone())
        })
    }

    fn job_with(
        &mut self,
        clean: bool,
        epoch_bump: bool,
        version_mask: u32,
        rule: RollingRule,
        version: u32,
    ) -> Arc<Job> {
        let j = self.job(clean, 0x1d00ffff);
        let mut j = Arc::try_unwrap(j).unwrap();
        if epoch_bump {
            self.epoch += 1;
            j.epoch = self.epoch;
        }
        j.version_mask = version_mask;
        j.rolling_rule = rule;
        j.version = version;
        Arc::new(j)
    }

    fn push_job(&mut self, job: &Arc<Job>) -> Vec<Output> {
        self.out.clear();
        self.s.on_job(job.clone(), self.now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn ready(&mut self) -> Arc<Job> {
        self.line(json!({"id":1,"method":"mining.subscribe","params":["test/1.0"]}));
        self.line(json!({"id":2,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}));
        self.line(json!({"id":3,"method":"mining.authorize","params":["acct.w1","x"]}));
        let j = self.job(true, 0x1d00ffff);
        let out = self.push_job(&j);
        assert_eq!(sent(&out).len(), 2, "set_difficulty + notify");
        j
    }
}

fn sent(out: &[Output]) -> Vec<serde_json::Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(serde_json::from_slice(&b[..b.len() - 1]).unwrap()),
            _ => None,
        })
        .collect()
}

fn error_code(out: &[Output]) -> Option<i64> {
    sent(out).last().and_then(|v| v["error"][0].as_i64())
}

/// Finds a nonce whose hash meets (or, with `meet = false`, misses) the
/// target at `difficulty` for the given share fields.
fn find_nonce(job: &Job, en1: &[u8], en2: &[u8], version: u32, difficulty: f64, meet: bool) -> u32 {
    let target = Target::from_difficulty(difficulty).unwrap();
    let mut c = ShareChecker::new(job.template.clone(), en1, en2.len(), target).unwrap();
    (0u32..)
        .find(|&nonce| {
            let r = c
                .check(&Submission {
                    extranonce2: en2,
                    time: job.ntime,
                    nonce,
                    version,
                })
                .unwrap();
            r.meets_share_target == meet
        })
        .unwrap()
}

fn submit(job: &Job, en2: &str, ntime: u32, nonce: u32, vbits: Option<&str>) -> serde_json::Value {
    let mut p = vec![
        json!("acct.w1"),
        json!(job.wire_id()),
        json!(en2),
        json!(format!("{ntime:08x}")),
        json!(format!("{nonce:08x}")),
    ];
    if let Some(v) = vbits {
        p.push(json!(v));
    }
    json!({"id": 9, "method": "mining.submit", "params": p})
}

#[test]
fn handshake_sends_subscribe_result_then_difficulty_before_first_job() {
    let mut r = Rig::new();
    let out = r.line(json!({"id":1,"method":"mining.subscribe","params":["cgminer/4.11"]}));
    let v = &sent(&out)[0];
    assert_eq!(v["result"][1], "abcd");
    assert_eq!(v["result"][2], 4);
    assert_eq!(r.s.user_agent(), Some("cgminer/4.11"));
    // A job before authorize is held back.
    let j = r.job(false, 0x1d00ffff);
    assert!(r.push_job(&j).is_empty());
    let out = r.line(json!({"id":2,"method":"mining.authorize","params":["acct.w1","x"]}));
    let v = sent(&out);
    assert_eq!(v[0]["result"], true);
    assert_eq!(v[1]["method"], "mining.set_difficulty");
    assert_eq!(v[1]["params"][0], 1e-5);
    assert_eq!(v[2]["method"], "mining.notify");
    assert_eq!(v[2]["params"][8], true, "first job is sent clean");
    assert_eq!(v[2]["params"][0], j.wire_id());
}

#[test]
fn accepted_share_is_forwarded_and_answered_true() {
    let mut r = Rig::new();
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 1], j.version, 1e-5, true);
    let out = r.line(submit(&j, "00000001", j.ntime, nonce, None));
    assert!(
        matches!(out[0], Output::Forward(ref f) if f.extranonce2.as_slice() == [0xab, 0xcd, 0, 0, 0, 1] && f.worker.as_ref() == "acct.w1")
    );
    assert_eq!(sent(&out)[0]["result"], true);
    assert_eq!(r.s.counters().accepted, 1);
    assert_eq!(r.stats.get(&r.stats.accepted), 1);

    // The same share again is a duplicate (22).
    let out = r.line(submit(&j, "00000001", j.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(22));
    assert_eq!(r.stats.rejected(Reject::Duplicate), 1);
}

#[test]
fn low_difficulty_share_is_rejected_23() {
    let mut r = Rig::new();
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 2], j.version, 1e-5, false);
    let out = r.line(submit(&j, "00000002", j.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(23));
    assert!(!out.iter().any(|o| matches!(o, Output::Forward(_))));
    assert_eq!(r.stats.rejected(Reject::LowDifficulty), 1);
    assert!(r.s.counters().rejected_work > 0.0);
}

#[test]
fn stale_and_unknown_jobs_are_rejected_21() {
    let mut r = Rig::new();
    let old = r.ready();
    let fresh = r.job(true, 0x1d00ffff);
    r.push_job(&fresh);
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 3], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000003", old.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(21));
    assert_eq!(r.stats.rejected(Reject::Stale), 1);
    let out = r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1","ffff","00000000","6b000000","00000000"]}));
    assert_eq!(error_code(&out), Some(21));
    let out = r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1","not-hex","00000000","6b000000","00000000"]}));
    assert_eq!(error_code(&out), Some(21));
    assert_eq!(r.stats.rejected(Reject::JobNotFound), 2);
}

#[test]
fn non_clean_job_keeps_older_jobs_valid() {
    let mut r = Rig::new();
    let old = r.ready();
    let next = r.job(false, 0x1d00ffff);
    r.push_job(&next);
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 4], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000004", old.ntime, nonce, None));
    assert_eq!(sent(&out)[0]["result"], true);
}

#[test]
fn field_errors_get_code_20_and_are_counted() {
    let mut r = Rig::new();
    let j = r.ready();
    // Wrong extranonce2 size.
    let out = r.line(submit(&j, "000001", j.ntime, 0, None));
    assert_eq!(error_code(&out), Some(20));
    assert_eq!(r.stats.rejected(Reject::BadExtranonce2Size), 1);
    // Bad hex.
    let out = r.line(submit(&j, "0000000g", j.ntime, 0, None));
    assert_eq!(error_code(&out), Some(20));
    let out = r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1", j.wire_id(),"00000000","6b00000","00000000"]}));
    assert_eq!(error_code(&out), Some(20));
    assert_eq!(r.stats.rejected(Reject::BadHex), 2);
    // ntime before the job and too far ahead.
    let out = r.line(submit(&j, "00000000", j.ntime - 1, 0, None));
    assert_eq!(error_code(&out), Some(20));
    let out = r.line(submit(&j, "00000000", j.ntime + 7001, 0, None));
    assert_eq!(error_code(&out), Some(20));
    assert_eq!(r.stats.rejected(Reject::NtimeOutOfRange), 2);
    // Version bits outside the negotiated mask (0x1fffe000).
    let out = r.line(submit(&j, "00000000", j.ntime, 0, Some("00001000")));
    assert_eq!(error_code(&out), Some(20));
    assert_eq!(r.stats.rejected(Reject::VersionOutsideMask), 1);
}

#[test]
fn rolled_version_bits_are_applied_and_forwarded() {
    let mut r = Rig::new();
    let j = r.ready();
    let bits = 0x0000_6000u32;
    let nonce = find_nonce(
        &j,
        &[0xab, 0xcd],
        &[0, 0, 0, 5],
        j.version | bits,
        1e-5,
        true,
    );
    let out = r.line(submit(&j, "00000005", j.ntime, nonce, Some("00006000")));
    match &out[0] {
        Output::Forward(f) => {
            assert_eq!(f.version, j.version | bits);
            assert_eq!(f.job.version_bits(f.version), Some(bits));
        }
        other => panic!("{other:?}"),
    }
    // Without the bits, the same nonce is (almost surely) a different hash.
    let out = r.line(submit(&j, "00000005", j.ntime, nonce, None));
    assert_ne!(sent(&out)[0]["result"], true);
}

#[test]
fn unauthorized_and_unsubscribed_get_24_and_25() {
    let mut r = Rig::new();
    let out = r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1","1","00000000","6b000000","00000000"]}));
    assert_eq!(error_code(&out), Some(25));
    let j = r.ready();
    let out = r.line(json!({"id":9,"method":"mining.submit","params":["acct.other", j.wire_id(),"00000000","6b000000","00000000"]}));
    assert_eq!(error_code(&out), Some(24));
    assert_eq!(r.stats.rejected(Reject::NotSubscribed), 1);
    assert_eq!(r.stats.rejected(Reject::Unauthorized), 1);
    // An empty worker name is refused.
    let out = r.line(json!({"id":4,"method":"mining.authorize","params":["", "x"]}));
    assert_eq!(error_code(&out), Some(24));
}

#[test]
fn many_workers_per_connection_up_to_the_cap() {
    let stats = Arc::new(Stats::default());
    let cfg = Arc::new(SessionConfig {
        max_workers_per_connection: 500,
        ..SessionConfig::default()
    });
    let mut s = Session::new(1, cfg, stats, vec![0, 1], 4, Instant::now());
    let mut out = Vec::new();
    s.on_line(
        br#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        Instant::now(),
        &mut out,
    );
    for i in 0..500 {
        out.clear();
        let line =
            json!({"id": 2, "method": "mining.authorize", "params": [format!("farm.w{i}"), "x"]})
                .to_string();
        s.on_line(line.as_bytes(), Instant::now(), &mut out);
        assert_eq!(sent(&out)[0]["result"], true, "worker {i}");
    }
    // Re-authorizing a known name is fine; a new one past the cap is not.
    out.clear();
    s.on_line(
        br#"{"id":3,"method":"mining.authorize","params":["farm.w7","x"]}"#,
        Instant::now(),
        &mut out,
    );
    assert_eq!(sent(&out)[0]["result"], true);
    out.clear();
    s.on_line(
        br#"{"id":4,"method":"mining.authorize","params":["farm.new","x"]}"#,
        Instant::now(),
        &mut out,
    );
    assert_eq!(error_code(&out), Some(24));
    assert_eq!(s.workers().count(), 500);
}

#[test]
fn malformed_lines_get_20_with_null_id_and_repeat_offenders_are_dropped() {
    let mut r = Rig::new();
    let out = r.raw(b"{this is not json");
    let v = sent(&out);
    assert_eq!(v[0]["id"], serde_json::Value::Null);
    assert_eq!(v[0]["error"][0], 20);
    let out = r.line(json!({"id":5,"method":"mining.frobnicate","params":[]}));
    assert_eq!(error_code(&out), Some(20));
    assert_eq!(r.stats.rejected(Reject::UnknownMethod), 1);
    let mut dropped = false;
    for _ in 0..40 {
        let out = r.raw(b"[1,2,3]");
        dropped |= out
            .iter()
            .any(|o| matches!(o, Output::Disconnect(Disconnect::RepeatOffender)));
    }
    assert!(dropped);
    assert!(r.stats.rejected(Reject::Malformed) >= 31);
}

#[test]
fn configure_answers_only_what_was_asked() {
    let mut r = Rig::new();
    let out = r.line(json!({"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"00fff000","version-rolling.min-bit-count":2}]}));
    let res = &sent(&out)[0]["result"];
    assert_eq!(res["version-rolling"], true);
    assert_eq!(res["version-rolling.mask"], "00ffe000");
    assert_eq!(res.as_object().unwrap().len(), 2, "{res}");
    let out = r.line(json!({"id":2,"method":"mining.configure","params":[["minimum-difficulty","subscribe-extranonce","info"],{"minimum-difficulty.value":0.5}]}));
    let res = &sent(&out)[0]["result"];
    assert_eq!(res["minimum-difficulty"], true);
    assert_eq!(res["subscribe-extranonce"], true);
    assert_eq!(res["info"], false);
    assert!(res.get("version-rolling").is_none());
    assert_eq!(r.s.difficulty(), 0.5, "minimum raised the start difficulty");
}

#[test]
fn new_difficulty_applies_from_the_next_job_and_old_shares_keep_theirs() {
    let mut r = Rig::new();
    let first = r.ready();
    // The miner suggests a harder difficulty: nothing is sent until a job.
    let out = r.line(json!({"id":null,"method":"mining.suggest_difficulty","params":[0.001]}));
    assert!(out.is_empty());
    let second = r.job(false, 0x1d00ffff);
    let out = r.push_job(&second);
    let v = sent(&out);
    assert_eq!(v[0]["method"], "mining.set_difficulty");
    assert_eq!(v[0]["params"][0], 0.001);
    assert_eq!(v[1]["method"], "mining.notify");
    // A share on the first job is judged at 1e-5 and credited at 1e-5.
    let nonce = find_nonce(
        &first,
        &[0xab, 0xcd],
        &[0, 0, 0, 6],
        first.version,
        1e-5,
        true,
    );
    let out = r.line(submit(&first, "00000006", first.ntime, nonce, None));
    match &out[0] {
        Output::Forward(f) => assert_eq!(f.difficulty, 1e-5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn password_difficulty_fixes_the_difficulty() {
    assert_eq!(password_difficulty("d=4096"), Some(4096.0));
    assert_eq!(password_difficulty("x,d=0.5"), Some(0.5));
    assert_eq!(password_difficulty("x"), None);
    assert_eq!(password_difficulty("d=-1"), None);
    let mut r = Rig::new();
    r.line(json!({"id":1,"method":"mining.subscribe","params":[]}));
    r.line(json!({"id":2,"method":"mining.authorize","params":["acct.w1","d=0.002"]}));
    assert_eq!(r.s.difficulty(), 0.002);
    // Fixed: a suggestion does not move it, nor does silence.
    r.line(json!({"id":3,"method":"mining.suggest_difficulty","params":[8]}));
    r.s.on_tick(r.now + Duration::from_secs(3600));
    assert_eq!(r.s.difficulty(), 0.002);
}

#[test]
fn block_is_forwarded_before_the_reply() {
    let mut r = Rig::new();
    r.ready();
    // Regtest bits: about half of all hashes are blocks.
    let j = r.job(true, 0x207fffff);
    r.push_job(&j);
    // A hash that is a block but misses the session's (harder) target.
    let share_target = Target::from_difficulty(1e-5).unwrap();
    let mut c = ShareChecker::new(j.template.clone(), &[0xab, 0xcd], 4, share_target).unwrap();
    let nonce = (0u32..)
        .find(|&n| {
            let r = c
                .check(&Submission {
                    extranonce2: &[0, 0, 0, 7],
                    time: j.ntime,
                    nonce: n,
                    version: j.version,
                })
                .unwrap();
            r.meets_network_target && !r.meets_share_target
        })
        .unwrap();
    let out = r.line(submit(&j, "00000007", j.ntime, nonce, None));
    assert!(matches!(&out[0], Output::Forward(f) if f.is_block));
    assert!(matches!(&out[1], Output::Send(_)));
    assert_eq!(r.s.counters().blocks, 1);
}

#[test]
fn moving_from_a_failed_upstream_stales_its_jobs_and_forces_clean() {
    let mut r = Rig::new();
    let old = r.ready();
    r.s.on_moved(1, true);
    let next = r.job(false, 0x1d00ffff);
    let out = r.push_job(&next);
    let v = sent(&out);
    assert_eq!(
        v.last().unwrap()["params"][8],
        true,
        "clean job after a move"
    );
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 8], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000008", old.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(21));
}

#[test]
fn a_long_multibyte_user_agent_does_not_panic() {
    let mut r = Rig::new();
    let ua = format!("{}é and more", "a".repeat(127));
    let out = r.line(json!({"id":1,"method":"mining.subscribe","params":[ua]}));
    assert_eq!(sent(&out)[0]["result"][1], "abcd");
    assert_eq!(r.s.user_agent().unwrap(), "a".repeat(127));
}

#[test]
fn the_miner_is_told_the_mask_it_may_really_roll() {
    let mut r = Rig::new();
    r.ready();
    // A pool that granted only 0x00ffe000: the miner hears so before the
    // job, and shares are judged against that.
    let j = r.job_with(true, false, 0x00ff_e000, RollingRule::Replace, 0x2000_0000);
    let v = sent(&r.push_job(&j));
    assert_eq!(v[0]["method"], "mining.set_version_mask");
    assert_eq!(v[0]["params"][0], "00ffe000");
    assert_eq!(v[1]["method"], "mining.notify");
    let out = r.line(submit(&j, "00000000", j.ntime, 0, Some("01000000")));
    assert_eq!(error_code(&out), Some(20));
    // Bits the job version already has are never rollable (under either
    // rule): a 0x30000000 job leaves bit 28 out of the mask.
    let j = r.job_with(true, false, 0x1fff_e000, RollingRule::Or, 0x3000_0000);
    let v = sent(&r.push_job(&j));
    assert_eq!(v[0]["params"][0], "0fffe000");
    let bits = 0x0000_4000;
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 9], 0x3000_4000, 1e-5, true);
    let out = r.line(submit(
        &j,
        "00000009",
        j.ntime,
        nonce,
        Some(&format!("{bits:08x}")),
    ));
    assert_eq!(sent(&out).last().unwrap()["result"], true);
}

#[test]
fn a_skipped_clean_job_is_detected_by_its_epoch() {
    let mut r = Rig::new();
    let old = r.ready();
    // The clean job was overwritten in the feed before the session saw it;
    // the next (non-clean) job carries the newer epoch.
    let next = r.job_with(
        false,
        true,
        sluice_pow::version::BIP320_MASK,
        RollingRule::Replace,
        0x2000_0000,
    );
    let v = sent(&r.push_job(&next));
    assert_eq!(v.last().unwrap()["params"][8], true, "sent clean");
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 1, 0], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000100", old.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(21));
    assert_eq!(r.stats.rejected(Reject::Stale), 1);
}

#[test]
fn a_block_on_a_stale_job_is_still_forwarded() {
    let mut r = Rig::new();
    r.ready();
    let old = r.job(true, 0x207fffff);
    r.push_job(&old);
    let fresh = r.job(true, 0x1d00ffff);
    r.push_job(&fresh);
    let target = *old.template.network_target();
    let mut c = ShareChecker::new(old.template.clone(), &[0xab, 0xcd], 4, target).unwrap();
    let nonce = (0u32..)
        .find(|&n| {
            c.check(&Submission {
                extranonce2: &[0, 0, 2, 0],
                time: old.ntime,
                nonce: n,
                version: old.version,
            })
            .unwrap()
            .meets_network_target
        })
        .unwrap();
    let out = r.line(submit(&old, "00000200", old.ntime, nonce, None));
    assert!(matches!(&out[0], Output::Forward(f) if f.is_block));
    // A non-block share on that stale job is stale.
    let nonce = (0u32..)
        .find(|&n| {
            !c.check(&Submission {
                extranonce2: &[0, 0, 2, 1],
                time: old.ntime,
                nonce: n,
                version: old.version,
            })
            .unwrap()
            .meets_network_target
        })
        .unwrap();
    let out = r.line(submit(&old, "00000201", old.ntime, nonce, None));
    assert_eq!(error_code(&out), Some(21));
}

#[test]
fn only_the_newest_job_keeps_a_built_checker_and_older_jobs_still_check() {
    let mut r = Rig::new();
    let mut jobs = vec![r.ready()];
    for _ in 0..4 {
        let j = r.job(false, 0x1d00ffff);
        r.push_job(&j);
        jobs.push(j);
    }
    let built = |r: &Rig| {
        (0..r.s.ch.jobs.len())
            .filter(|&i| r.s.ch.checker_of(i).is_some())
            .count()
    };
    // A share on every job, oldest first, then on the oldest again (its
    // checker was retired: it is rebuilt, and its duplicate set kept).
    let order = [0, 1, 2, 3, 4, 0];
    for (i, &k) in order.iter().enumerate() {
        let j = &jobs[k];
        let en2 = [0, 0, 5, i as u8];
        let nonce = find_nonce(j, &[0xab, 0xcd], &en2, j.version, 1e-5, true);
        let hex: String = en2.iter().map(|b| format!("{b:02x}")).collect();
        let out = r.line(submit(j, &hex, j.ntime, nonce, None));
        assert_eq!(sent(&out)[0]["result"], true, "share {i} on job {k}");
        assert_eq!(built(&r), 1, "checkers built");
    }
    let en2 = [0, 0, 5, 0];
    let nonce = find_nonce(&jobs[0], &[0xab, 0xcd], &en2, jobs[0].version, 1e-5, true);
    let out = r.line(submit(&jobs[0], "00000500", jobs[0].ntime, nonce, None));
    assert_eq!(
        error_code(&out),
        Some(22),
        "still a duplicate after a rebuild"
    );
}

#[test]
fn a_dropped_jobs_duplicate_tag_goes_to_a_new_job_without_its_shares() {
    let mut r = Rig::new();
    let first = r.ready();
    let accept = |r: &mut Rig, j: &Job, en2: [u8; 4]| {
        let nonce = find_nonce(j, &[0xab, 0xcd], &en2, j.version, 1e-5, true);
        let hex: String = en2.iter().map(|b| format!("{b:02x}")).collect();
        let out = r.line(submit(j, &hex, j.ntime, nonce, None));
        (sent(&out)[0]["result"] == true, error_code(&out))
    };
    assert_eq!(accept(&mut r, &first, [0, 0, 9, 0]), (true, None));
    let second = r.job(false, 0x1d00ffff);
    r.push_job(&second);
    assert_eq!(accept(&mut r, &second, [0, 0, 9, 1]), (true, None));
    // Six more jobs fill the ring (eight); one more drops the first.
    let mut newer = Vec::new();
    for _ in 0..7 {
        let j = r.job(false, 0x1d00ffff);
        r.push_job(&j);
        newer.push(j);
    }
    assert!(r.s.ch.jobs.iter().all(|e| e.job.id != first.id));
    let mut tags: Vec<u8> = r.s.ch.jobs.iter().map(|e| e.tag).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), 8, "tags unique among the live jobs");
    // The first job's share went with it; the second's stays.
    assert_eq!(r.s.ch.seen.len(), 1);
    assert_eq!(accept(&mut r, &second, [0, 0, 9, 1]), (false, Some(22)));
    // The newest job took the first one's tag, none of its shares.
    let newest = newer.last().unwrap();
    let tag_of = |r: &Rig, id: u64| r.s.ch.jobs.iter().find(|e| e.job.id == id).map(|e| e.tag);
    assert_eq!(tag_of(&r, newest.id), Some(0));
    assert_eq!(accept(&mut r, newest, [0, 0, 9, 0]), (true, None));
    assert_eq!(accept(&mut r, newest, [0, 0, 9, 0]), (false, Some(22)));
}

#[test]
fn a_job_sent_again_after_moving_back_keeps_its_duplicate_set() {
    let mut r = Rig::new();
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 3, 0], j.version, 1e-5, true);
    let out = r.line(submit(&j, "00000300", j.ntime, nonce, None));
    assert_eq!(sent(&out)[0]["result"], true);
    // Away (without failure) and back: the same job is sent again, clean.
    r.s.on_moved(1, false);
    let v = sent(&r.push_job(&j));
    assert_eq!(v.last().unwrap()["params"][8], true);
    let out = r.line(submit(&j, "00000300", j.ntime, nonce, None));
    assert_eq!(
        error_code(&out),
        Some(22),
        "a replayed share is still a duplicate"
    );
}

pub(super) fn books() -> Arc<Books> {
    let cfg = sluice_books::BooksConfig {
        pools: vec![sluice_books::PoolBooksConfig {
            name: "pool".into(),
            fee: 0.02,
            scheme: sluice_books::Scheme::Fpps,
            reward: sluice_books::Reward::Coinbase,
        }],
        price: sluice_books::PriceConfig::Fixed(100_000.0),
        reasons: book_reasons(),
        ..sluice_books::BooksConfig::default()
    };
    Arc::new(Books::new(cfg, sluice_books::Clock::new()))
}

/// The pool refuses a share of difficulty 1e-5 the rig's session
/// forwarded, at pool difficulty `upstream_difficulty`.
fn refused(r: &mut Rig, j: &Job, upstream_difficulty: f64) {
    let now = r.now;
    r.s.on_upstream_result(
        &crate::upstream::UpstreamResult {
            session: 7,
            accepted: false,
            difficulty: 1e-5,
            latency: None,
            reject: Some(crate::stats::PoolReject::Other),
            share: crate::upstream::ShareInfo {
                worker: Some("acct.w1".into()),
                pool: 0,
                value: j.value,
                received: Some(now),
                upstream_difficulty,
            },
        },
        now,
    );
}

#[test]
fn shares_land_in_the_workers_books_by_outcome() {
    let books = books();
    let mut r = Rig::new();
    let peer: IpAddr = "127.0.0.9".parse().unwrap();
    r.s = Session::new(7, cfg(), r.stats.clone(), vec![0xab, 0xcd], 4, r.now)
        .with_books(books.clone(), Some(peer));
    let j = r.ready();
    assert!(
        books.find_worker("acct.w1").is_none(),
        "a worker enters the books at its first accepted share, not at authorize"
    );
    let ok = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 1], j.version, 1e-5, true);
    r.line(submit(&j, "00000001", j.ntime, ok, None));
    let w = books
        .find_worker("acct.w1")
        .expect("booked at its first share");
    assert_eq!(w.connections(), 1);
    {
        let s = w.state();
        assert_eq!(s.conn.ip, Some(peer));
        assert_eq!(s.conn.user_agent.as_deref(), Some("test/1.0"));
        // One copy of the agent, shared by the session and the books.
        let mine = r.s.user_agent().unwrap();
        assert!(std::ptr::eq(&**s.conn.user_agent.as_ref().unwrap(), mine));
        assert!(std::ptr::eq(&*books.agent("test/1.0"), mine));
    }
    // Duplicate, low difficulty, then a job id the session never issued.
    r.line(submit(&j, "00000001", j.ntime, ok, None));
    let low = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 2], j.version, 1e-5, false);
    r.line(submit(&j, "00000002", j.ntime, low, None));
    r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1","ffff","00000000","6b000000","00000000"]}));
    // Stale.
    let fresh = r.job(true, 0x1d00ffff);
    r.push_job(&fresh);
    let st = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 3], j.version, 1e-5, true);
    r.line(submit(&j, "00000003", j.ntime, st, None));
    // The first job, dropped after max_jobs newer ones: work done on a
    // stale job, at the session's difficulty.
    for _ in 0..8 {
        let next = r.job(false, 0x1d00ffff);
        r.push_job(&next);
    }
    let out = r.line(submit(&j, "00000004", j.ntime, st, None));
    assert_eq!(error_code(&out), Some(21));
    // An unknown worker name is refused and booked nowhere.
    r.line(json!({"id":9,"method":"mining.submit","params":["nobody","1","00000000","6b000000","00000000"]}));
    assert_eq!(books.worker_count(), 1);

    let t = w.state().tally.totals.clone();
    assert_eq!((t.accepted, t.rejected), (1, 5));
    assert!((t.accepted_work - 1e-5).abs() < 1e-12);
    // The stale share, the made-up id's and the dropped job's: work done
    // on jobs that no longer pay, at the session's difficulty.
    assert!((t.stale_work - 3e-5).abs() < 1e-12);
    assert!((t.rejected_work - 2e-5).abs() < 1e-12, "duplicate + low");
    assert_eq!(t.rejects.get(Reject::Duplicate as usize), 1);
    assert_eq!(t.rejects.get(Reject::LowDifficulty as usize), 1);
    assert_eq!(t.rejects.get(Reject::JobNotFound as usize), 2);
    assert_eq!(t.rejects.get(Reject::Stale as usize), 1);
    // Valued at the job's difficulty and reward, less the 2 % fee.
    let expect = 1e-5 / sluice_pow::target::nbits_difficulty(0x1d00ffff).unwrap() * 3.125 * 0.98;
    assert!(
        (t.earned_btc / expect - 1.0).abs() < 1e-9,
        "{} vs {expect}",
        t.earned_btc
    );
    assert_eq!(w.state().difficulty, 1e-5);
    // The farm saw the same.
    let f = books.farm().merged().totals;
    assert_eq!((f.accepted, f.rejected), (1, 5));
    // The pool refuses the accepted share: its credit is taken back.
    let earned = t.earned_btc;
    // The pool's difficulty is below the miner's here.
    refused(&mut r, &j, 1e-7);
    // Totals only grow (they feed Prometheus counters): the reversal is
    // counted on its own; the windows are net.
    let t = w.state().tally.totals.clone();
    assert_eq!((t.accepted, t.rare().upstream_rejected), (1, 1));
    assert!((t.rare().upstream_rejected_work - 1e-5).abs() < 1e-15);
    assert!((t.rare().upstream_rejected_btc - earned).abs() < earned * 1e-9);
    assert_eq!(t.rejects.get(REASON_UPSTREAM_REJECTED as usize), 1);
    // (The rig's clock stands still; read a minute later.)
    let later = books.clock().now_ms() + 60_000;
    let f = w.state().tally.figures(later, sluice_books::Window::H1);
    assert!(f.sums.accepted_work.abs() < 1e-10 && f.sums.earned_btc.abs() < earned * 1e-6);
    assert!(
        (f.sums.submitted_work() - 6e-5).abs() < 1e-10,
        "submitted work unchanged: {f:?}"
    );
    let farm = books.farm().figures(later, sluice_books::Window::H1);
    assert!(farm.sums.accepted_work.abs() < 1e-10);
    // Above the miner's difficulty, a refused share takes back the pool's
    // difficulty's worth (it stood for that much of the credited work).
    refused(&mut r, &j, 4e-5);
    assert!((w.state().tally.totals.rare().upstream_rejected_work - 5e-5).abs() < 1e-15);
    // Closing the connection leaves the books, not the connection count.
    drop(r);
    assert_eq!(w.connections(), 0);
    assert_eq!(books.worker("acct.w1").state().tally.totals.rejected, 5);
}

#[test]
fn replace_and_or_pools_hash_every_share_alike() {
    // A job version with a signalling bit inside the mask (ckpool's
    // 0x30000000): the miner is never offered bit 28, so the header the
    // session validates is the one an OR-rule pool and a replace-rule pool
    // both rebuild from the submitted bits.
    for rule in [RollingRule::Replace, RollingRule::Or] {
        let mut r = Rig::new();
        r.ready();
        let j = r.job_with(true, false, 0x1fff_e000, rule, 0x3000_0000);
        let v = sent(&r.push_job(&j));
        assert_eq!(v[0]["params"][0], "0fffe000", "{rule:?}");
        // Rolling bit 28 itself: outside what the miner was offered.
        let out = r.line(submit(&j, "00000003", j.ntime, 0, Some("10002000")));
        assert_eq!(sent(&out).last().unwrap()["error"][0], 20, "{rule:?}");
        let bits = 0x0000_6000u32;
        let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 4], 0x3000_6000, 1e-5, true);
        let out = r.line(submit(
            &j,
            "00000004",
            j.ntime,
            nonce,
            Some(&format!("{bits:08x}")),
        ));
        let Output::Forward(f) = &out[0] else {
            panic!("{out:?}")
        };
        let submitted = j.version_bits(f.version).unwrap();
        let replace = (j.version & !j.version_mask) | (submitted & j.version_mask);
        let or = j.version | submitted;
        assert_eq!((replace, or), (f.version, f.version), "{rule:?}");
    }
}

#[test]
fn a_new_upstream_mask_applies_to_older_jobs_at_once() {
    let mut r = Rig::new();
    let old = r.ready();
    // The pool narrows its mask: the same work comes back as a new job.
    let j = r.job_with(false, false, 0x0000_e000, RollingRule::Replace, 0x2000_0000);
    let v = sent(&r.push_job(&j));
    assert_eq!(v[0]["method"], "mining.set_version_mask");
    assert_eq!(v[0]["params"][0], "0000e000");
    // A share on the older job with a bit the new mask no longer allows.
    let out = r.line(submit(&old, "00000005", old.ntime, 0, Some("00100000")));
    assert_eq!(sent(&out).last().unwrap()["error"][0], 20);
    assert_eq!(r.stats.rejected(Reject::VersionOutsideMask), 1);
}

#[test]
fn a_miners_difficulty_never_exceeds_what_its_pool_credits() {
    let mut r = Rig::new();
    r.ready();
    // Vardiff says 1e-5; the pool credits shares of this job at 1e-7.
    let mut j = Arc::try_unwrap(r.job(false, 0x1d00ffff)).unwrap();
    j.pool_difficulty = 1e-7;
    let j = Arc::new(j);
    let v = sent(&r.push_job(&j));
    assert_eq!(v[0]["method"], "mining.set_difficulty");
    assert_eq!(v[0]["params"][0], 1e-7);
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 6], j.version, 1e-7, true);
    let out = r.line(submit(&j, "00000006", j.ntime, nonce, None));
    assert!(
        matches!(&out[0], Output::Forward(f) if f.difficulty == 1e-7),
        "{out:?}"
    );
    // A pool above the miner's vardiff changes nothing.
    let mut j2 = Arc::try_unwrap(r.job(false, 0x1d00ffff)).unwrap();
    j2.pool_difficulty = 1.0;
    let v = sent(&r.push_job(&Arc::new(j2)));
    assert_eq!(v[0]["params"][0], 1e-5);
}

#[test]
fn shares_that_can_go_nowhere_get_20_not_true() {
    let mut r = Rig::new();
    let j = r.ready();
    r.links.up.store(false, Ordering::Release);
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 1], j.version, 1e-5, true);
    let out = r.line(submit(&j, "00000001", j.ntime, nonce, None));
    assert!(!out.iter().any(|o| matches!(o, Output::Forward(_))));
    let v = sent(&out);
    assert_eq!(v[0]["error"][0], 20);
    assert_eq!(v[0]["error"][1], "No pool available");
    assert_eq!(r.stats.rejected(Reject::NoUpstream), 1);
    assert_eq!(r.s.counters().accepted, 0);
    // Back up: the same share is taken (it was never marked seen).
    r.links.up.store(true, Ordering::Release);
    let out = r.line(submit(&j, "00000001", j.ntime, nonce, None));
    assert_eq!(sent(&out).last().unwrap()["result"], true);
}

#[test]
fn handshake_messages_do_not_forgive_bad_requests() {
    let mut r = Rig::new();
    r.ready();
    let mut dropped = false;
    for i in 0..40 {
        r.raw(b"[1,2,3]");
        // Interleaved handshakes used to reset the strike counter.
        let out = r.line(json!({"id":1,"method":"mining.authorize","params":["acct.w1","x"]}));
        let out2 = r.line(json!({"id":2,"method":"mining.configure","params":[[],{}]}));
        let out3 = r.line(json!({"id":3,"method":"mining.subscribe","params":[]}));
        dropped |= [out, out2, out3]
            .iter()
            .flatten()
            .any(|o| matches!(o, Output::Disconnect(Disconnect::RepeatOffender)));
        if dropped {
            assert!(i <= 31, "dropped only after {i} bad lines");
            break;
        }
    }
    assert!(dropped);
}

#[test]
fn worker_names_are_capped_per_address_across_connections() {
    let stats = Arc::new(Stats::default());
    let quota = Arc::new(NameQuota::new(3));
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let open = |id| {
        let mut s = Session::new(
            id,
            cfg(),
            stats.clone(),
            vec![0, id as u8],
            4,
            Instant::now(),
        )
        .with_name_quota(quota.clone(), ip);
        let mut out = Vec::new();
        s.on_line(
            br#"{"id":1,"method":"mining.subscribe","params":[]}"#,
            Instant::now(),
            &mut out,
        );
        s
    };
    let auth = |s: &mut Session, name: &str| {
        let mut out = Vec::new();
        let line =
            json!({"id": 2, "method": "mining.authorize", "params": [name, "x"]}).to_string();
        s.on_line(line.as_bytes(), Instant::now(), &mut out);
        sent(&out)[0].clone()
    };
    let mut a = open(1);
    let mut b = open(2);
    assert_eq!(auth(&mut a, "x.1")["result"], true);
    assert_eq!(auth(&mut a, "x.2")["result"], true);
    assert_eq!(
        auth(&mut a, "x.2")["result"],
        true,
        "a known name takes nothing"
    );
    assert_eq!(auth(&mut b, "x.3")["result"], true);
    let refused = auth(&mut b, "x.4");
    assert_eq!(refused["error"][0], 24);
    assert!(
        refused["error"][1]
            .as_str()
            .unwrap()
            .contains("Too many worker names")
    );
    assert_eq!(stats.rejected(Reject::TooManyWorkers), 1);
    // A connection going away gives its names back.
    drop(a);
    assert_eq!(quota.held(ip), 1);
    assert_eq!(auth(&mut b, "x.4")["result"], true);
}

#[test]
fn the_prefix_is_taken_at_subscribe_and_given_back() {
    let stats = Arc::new(Stats::default());
    let prefixes = Arc::new(Prefixes::new(1));
    let mut sessions: Vec<Session> = (0..256)
        .map(|i| {
            Session::new(i, cfg(), stats.clone(), Vec::new(), 4, Instant::now())
                .with_prefixes(prefixes.clone())
        })
        .collect();
    // Connected but not subscribed: no prefix taken.
    assert_eq!(prefixes.in_use(), 0);
    let mut seen = std::collections::HashSet::new();
    for s in &mut sessions {
        let mut out = Vec::new();
        s.on_line(
            br#"{"id":1,"method":"mining.subscribe","params":[]}"#,
            Instant::now(),
            &mut out,
        );
        assert!(seen.insert(sent(&out)[0]["result"][1].as_str().unwrap().to_string()));
    }
    assert_eq!(prefixes.in_use(), 256);
    // One more: told, and dropped.
    let mut late = Session::new(999, cfg(), stats.clone(), Vec::new(), 4, Instant::now())
        .with_prefixes(prefixes.clone());
    let mut out = Vec::new();
    late.on_line(
        br#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        Instant::now(),
        &mut out,
    );
    assert_eq!(sent(&out)[0]["error"][0], 20);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Disconnect(Disconnect::NoPrefix)))
    );
    drop(sessions.pop());
    assert_eq!(prefixes.in_use(), 255);
}

#[test]
fn a_submit_that_is_not_json_is_never_credited() {
    // Found against the release binary: the fast parser took these ids,
    // echoed them raw (the reply was not JSON) and credited the share.
    let mut r = Rig::new();
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 1], j.version, 1e-5, true);
    let params = format!(
        r#""params":["acct.w1","{}","00000001","{:08x}","{nonce:08x}"]"#,
        j.wire_id(),
        j.ntime
    );
    for id in ["1.2.3", "--", "01", "+1", "1."] {
        let line = format!(r#"{{"id":{id},"method":"mining.submit",{params}}}"#);
        let out = r.raw(line.as_bytes());
        let v = sent(&out);
        assert_eq!(v.len(), 1, "{id}");
        assert_eq!(v[0]["id"], serde_json::Value::Null, "{id}");
        assert_eq!(v[0]["error"][0], 20, "{id}");
        assert!(!out.iter().any(|o| matches!(o, Output::Forward(_))), "{id}");
    }
    assert_eq!(r.s.counters().accepted, 0);
    assert_eq!(r.stats.rejected(Reject::Malformed), 5);
    // The same share as valid JSON is taken.
    let line = format!(r#"{{"id":7,"method":"mining.submit",{params}}}"#);
    assert_eq!(sent(&r.raw(line.as_bytes()))[0]["result"], true);
}

#[test]
fn stale_work_on_a_failed_pools_job_is_booked_to_that_pool() {
    let books_cfg = sluice_books::BooksConfig {
        pools: ["a", "b"]
            .map(|name| sluice_books::PoolBooksConfig {
                name: name.into(),
                fee: 0.0,
                scheme: sluice_books::Scheme::Fpps,
                reward: sluice_books::Reward::Coinbase,
            })
            .to_vec(),
        reasons: book_reasons(),
        ..sluice_books::BooksConfig::default()
    };
    let books = Arc::new(Books::new(books_cfg, sluice_books::Clock::new()));
    let mut r = Rig::new();
    r.s = Session::new(7, cfg(), r.stats.clone(), vec![0xab, 0xcd], 4, r.now)
        .with_books(books.clone(), None);
    let old = r.ready();
    let ok = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 1], old.version, 1e-5, true);
    r.line(submit(&old, "00000001", old.ntime, ok, None));
    // Pool a (index 0) failed: the session moves to pool b's jobs.
    r.s.on_moved(1, true);
    let mut next = Arc::try_unwrap(r.job(false, 0x1d00ffff)).unwrap();
    next.upstream = 2;
    next.pool = 1;
    r.push_job(&Arc::new(next));
    // A share still in flight on pool a's job: stale, and pool a's.
    let st = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 2], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000002", old.ntime, st, None));
    assert_eq!(error_code(&out), Some(21));
    let later = books.clock().now_ms() + 60_000;
    let stale = |i: usize| {
        books.pools()[i]
            .tally
            .figures(later, sluice_books::Window::H1)
            .sums
            .stale_work
    };
    assert!(stale(0) > 0.0, "the failed pool's stale work");
    assert_eq!(stale(1), 0.0, "not held against the pool it moved to");
    // A job id nobody issued: valued at the latest job (pool b's).
    r.line(json!({"id":9,"method":"mining.submit","params":["acct.w1","ffff","00000000","6b000000","00000000"]}));
    assert!(stale(1) > 0.0);
}

#[test]
fn a_session_moved_by_rebalancing_keeps_its_older_jobs_credited_upstream() {
    let mut r = Rig::new();
    let old = r.ready();
    // Moved for balance (the old pool is fine): its jobs stay good, and
    // their shares still go to the old job's own upstream.
    r.s.on_moved(1, false);
    let mut next = Arc::try_unwrap(r.job(false, 0x1d00ffff)).unwrap();
    next.upstream = 2;
    let out = r.push_job(&Arc::new(next));
    assert_eq!(
        sent(&out).last().unwrap()["params"][8],
        true,
        "clean job from the new pool"
    );
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 9], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000009", old.ntime, nonce, None));
    match &out[0] {
        Output::Forward(f) => assert_eq!(f.job.upstream, 1, "to the job's own pool"),
        o => panic!("not forwarded: {o:?}"),
    }
    assert_eq!(sent(&out).last().unwrap()["result"], true);
}

#[test]
fn a_widened_pool_mask_submits_the_new_bits_on_older_jobs() {
    let mut r = Rig::new();
    r.ready();
    // The pool starts with a narrow mask …
    let old = r.job_with(true, false, 0x00ff_e000, RollingRule::Replace, 0x2000_0000);
    r.push_job(&old);
    // … then widens it (the same work re-issued under the new mask).
    let mut wide =
        Arc::try_unwrap(r.job_with(false, false, 0x1fff_e000, RollingRule::Replace, 0x2000_0000))
            .unwrap();
    // The same work: the same template and time.
    wide.template = old.template.clone();
    wide.ntime = old.ntime;
    wide.republish_of = Some(old.id);
    let wide = Arc::new(wide);
    let v = sent(&r.push_job(&wide));
    assert_eq!(v[0]["params"][0], "1fffe000");
    // A share on the older id rolling bit 24, now allowed: the bits sent
    // upstream carry it (with the old job's mask they would drop it and
    // the pool would hash another header).
    let version = 0x2100_0000;
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 3], version, 1e-5, true);
    let out = r.line(submit(&old, "00000003", old.ntime, nonce, Some("01000000")));
    let Output::Forward(f) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(f.version, version);
    assert_eq!(f.version_bits(), Some(0x0100_0000));
}

#[test]
fn a_job_reissued_under_a_new_mask_keeps_one_duplicate_set_and_difficulty() {
    let mut r = Rig::new();
    let old = r.ready();
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 4], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000004", old.ntime, nonce, None));
    assert_eq!(sent(&out).last().unwrap()["result"], true);
    // Vardiff would now give another difficulty; the re-issued job keeps
    // the one the work was sent at.
    r.s.on_line(
        json!({"id":5,"method":"mining.suggest_difficulty","params":[0.5]})
            .to_string()
            .as_bytes(),
        r.now,
        &mut Vec::new(),
    );
    let mut again =
        Arc::try_unwrap(r.job_with(false, false, 0x00ff_e000, RollingRule::Replace, old.version))
            .unwrap();
    again.template = old.template.clone();
    again.ntime = old.ntime;
    again.republish_of = Some(old.id);
    let again = Arc::new(again);
    let v = sent(&r.push_job(&again));
    assert!(
        v.iter().all(|m| m["method"] != "mining.set_difficulty"),
        "{v:?}"
    );
    // The same share under the new id is a duplicate, and the old id still
    // works for new shares.
    let mut dup = submit(&old, "00000004", old.ntime, nonce, None);
    dup["params"][1] = json!(again.wire_id());
    assert_eq!(error_code(&r.line(dup)), Some(22));
    let n2 = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 5], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000005", old.ntime, n2, None));
    assert!(matches!(&out[0], Output::Forward(f) if f.difficulty == 1e-5));
}

#[test]
fn a_pool_flipping_its_mask_does_not_grow_the_jobs_alias_list() {
    let mut r = Rig::new();
    let old = r.ready();
    let mut last = old.clone();
    // A hostile or broken pool: the mask flips a thousand times on the
    // same work, each flip a re-issue naming the one before.
    for i in 0..1000u32 {
        let mask = if i % 2 == 0 { 0x1fff_e000 } else { 0x00ff_e000 };
        let mut again =
            Arc::try_unwrap(r.job_with(false, false, mask, RollingRule::Replace, old.version))
                .unwrap();
        again.template = old.template.clone();
        again.ntime = old.ntime;
        again.republish_of = Some(last.id);
        last = Arc::new(again);
        r.push_job(&last);
    }
    assert_eq!(r.s.ch.jobs.len(), 1, "one entry for the one work");
    assert_eq!(
        r.s.ch.aliases.as_ref().map_or(0, |a| a.len()),
        super::channel::MAX_ALIASES,
        "the last few ids only"
    );
    // The newest id takes shares; the first is forgotten.
    let nonce = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 7], old.version, 1e-5, true);
    let mut on_last = submit(&old, "00000007", old.ntime, nonce, None);
    on_last["params"][1] = json!(last.wire_id());
    assert_eq!(sent(&r.line(on_last)).last().unwrap()["result"], true);
    let n2 = find_nonce(&old, &[0xab, 0xcd], &[0, 0, 0, 8], old.version, 1e-5, true);
    let out = r.line(submit(&old, "00000008", old.ntime, n2, None));
    assert_eq!(error_code(&out), Some(21), "job not found: {out:?}");
}

#[test]
fn a_share_refused_for_a_full_queue_is_not_a_duplicate_later() {
    let mut r = Rig::new();
    // A queue of one, already full.
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(block_forward_filler()).unwrap();
    r.links.share_tx = tx;
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 6], j.version, 1e-5, true);
    let out = r.line(submit(&j, "00000006", j.ntime, nonce, None));
    let v = sent(&out);
    assert_eq!(v[0]["error"][0], 20);
    assert_eq!(v[0]["error"][1], "Pool not keeping up");
    assert_eq!(r.stats.rejected(Reject::PoolBusy), 1);
    assert_eq!(r.s.counters().accepted, 0);
    // Room again: the same share is taken, not called a duplicate.
    rx.try_recv().unwrap();
    let out = r.line(submit(&j, "00000006", j.ntime, nonce, None));
    assert!(matches!(&out[0], Output::Forward(_)));
    assert_eq!(sent(&out).last().unwrap()["result"], true);
}

fn block_forward_filler() -> ShareForward {
    let mut r = Rig::new();
    let j = r.ready();
    ShareForward {
        extranonce2: crate::job::Extranonce::from_parts(&[&[0]]).unwrap(),
        ntime: 0,
        version: 0,
        pool_mask: 0,
        ..test_share(j)
    }
}

#[test]
fn a_second_subscribe_hears_difficulty_mask_and_job_again() {
    let mut r = Rig::new();
    let j = r.ready();
    let out = r.line(json!({"id":9,"method":"mining.subscribe","params":["test/1.0"]}));
    let v = sent(&out);
    assert_eq!(v[0]["result"][1], "abcd", "the same prefix");
    let methods: Vec<&str> = v.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "mining.set_difficulty",
            "mining.set_version_mask",
            "mining.notify"
        ],
        "{v:?}"
    );
    assert_eq!(v.last().unwrap()["params"][0], j.wire_id());
    assert_eq!(v.last().unwrap()["params"][8], true);
}

#[tokio::test]
async fn a_refusal_for_a_session_that_is_gone_is_still_taken_back() {
    let books = books();
    let mut r = Rig::new();
    r.s = Session::new(7, cfg(), r.stats.clone(), vec![0xab, 0xcd], 4, r.now)
        .with_books(books.clone(), None);
    let j = r.ready();
    let nonce = find_nonce(&j, &[0xab, 0xcd], &[0, 0, 0, 7], j.version, 1e-5, true);
    r.line(submit(&j, "00000007", j.ntime, nonce, None));
    let w = books.find_worker("acct.w1").unwrap();
    assert_eq!(w.state().tally.totals.accepted, 1);
    drop(r);
    // The pool refuses it after the miner left: the router has no session
    // to give it to, and takes it back in the books itself.
    let router = crate::router::Router::new(crate::router::RouterConfig::default(), Vec::new());
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(crate::upstream::UpstreamResult {
        session: 7,
        accepted: false,
        difficulty: 1e-5,
        latency: None,
        reject: Some(crate::stats::PoolReject::Unanswered),
        share: crate::upstream::ShareInfo {
            worker: Some("acct.w1".into()),
            pool: 0,
            value: j.value,
            received: Some(Instant::now()),
            upstream_difficulty: 1e-7,
        },
    })
    .unwrap();
    drop(tx);
    crate::connect::deliver_results(router, rx, Some(books.clone())).await;
    let t = w.state().tally.totals.clone();
    assert_eq!((t.accepted, t.rare().upstream_rejected), (1, 1));
}

/// The core without V1: a decoded share checked against the channel,
/// with the whole version as V2 states it.
#[test]
fn the_channel_checks_decoded_shares_with_full_versions() {
    let mut r = Rig::new();
    let j = r.ready();
    let mask = r.s.ch.jobs.back().unwrap().mask;
    assert_ne!(mask, 0, "the rig's miner rolls");
    let slot = r.s.ch.find_job(j.id).unwrap();
    let worker: Arc<str> = Arc::from("acct.w1");
    let bits = 0x0000_6000u32 & mask;
    let version = j.version | bits;
    let en2 = [0u8, 0, 0, 9];
    let nonce = find_nonce(&j, &[0xab, 0xcd], &en2, version, 1e-5, true);
    let share = Share {
        extranonce: &en2,
        ntime: j.ntime,
        nonce,
        version: VersionIn::Full(version),
    };
    let fwd =
        r.s.ch
            .check(slot, &share, worker.clone(), 7, r.now)
            .expect("accepted");
    assert_eq!(fwd.version, version);
    assert_eq!(fwd.nonce, nonce);
    // The same share again is a duplicate; the job's ids are the core's.
    assert_eq!(
        r.s.ch
            .check(slot, &share, worker.clone(), 7, r.now)
            .unwrap_err()
            .0,
        Reject::Duplicate
    );
    // A full version that changes a bit outside the mask is refused, and
    // so is a version with the job's own bits cleared.
    for v in [version | !mask & 0x0000_0001, version & !j.version] {
        let bad = Share {
            version: VersionIn::Full(v),
            ..share
        };
        assert_eq!(
            r.s.ch
                .check(slot, &bad, worker.clone(), 7, r.now)
                .unwrap_err()
                .0,
            Reject::VersionOutsideMask,
            "{v:#x}"
        );
    }
    // Wrong extranonce size, ntime out of the window, unknown job.
    let short = Share {
        extranonce: &en2[..3],
        ..share
    };
    assert_eq!(
        r.s.ch
            .check(slot, &short, worker.clone(), 7, r.now)
            .unwrap_err(),
        (Reject::BadExtranonce2Size, 0.0)
    );
    let early = Share {
        ntime: j.ntime - 1,
        ..share
    };
    assert_eq!(
        r.s.ch.check(slot, &early, worker, 7, r.now).unwrap_err().0,
        Reject::NtimeOutOfRange
    );
    assert_eq!(
        r.s.ch.find_job(j.id + 1000).unwrap_err().0,
        Reject::JobNotFound
    );
}

/// SetTarget semantics in the core: a new difficulty applies to the live
/// jobs at once (their shares are judged and credited at it), still
/// capped by what each job's pool credits.
#[test]
fn a_difficulty_set_now_applies_to_live_jobs_at_once() {
    let mut r = Rig::new();
    let j = r.ready();
    let worker: Arc<str> = Arc::from("acct.w1");
    let slot = r.s.ch.find_job(j.id).unwrap();
    let en2 = [0u8, 0, 0, 3];
    // A share that meets 1e-5 but not 1e-3.
    let target_low = Target::from_difficulty(1e-5).unwrap();
    let target_high = Target::from_difficulty(1e-3).unwrap();
    let mut c = ShareChecker::new(j.template.clone(), &[0xab, 0xcd], 4, target_low).unwrap();
    // The first nonce from `from` whose share falls between the two.
    let mut between = |from: u32| {
        (from..)
            .find(|&n| {
                let h = c
                    .check(&Submission {
                        extranonce2: &en2,
                        time: j.ntime,
                        nonce: n,
                        version: j.version,
                    })
                    .unwrap()
                    .hash;
                target_low.is_met_by(&h) && !target_high.is_met_by(&h)
            })
            .unwrap()
    };
    let nonce = between(0);
    let nonce2 = between(nonce + 1);
    let share = Share {
        extranonce: &en2,
        ntime: j.ntime,
        nonce,
        version: VersionIn::Job,
    };
    let before = r.s.ch.sent_difficulty.unwrap();
    assert!(before < 1e-3 && Target::from_difficulty(before).unwrap() >= target_low);
    assert_eq!(r.s.ch.set_difficulty_now(1e-3, r.now), Some(1e-3));
    assert_eq!(
        r.s.ch.set_difficulty_now(1e-3, r.now),
        None,
        "unchanged: nothing to say"
    );
    // Past the grace a share at the old target is too easy...
    let late = r.now + SET_TARGET_GRACE;
    assert_eq!(
        r.s.ch
            .check(slot, &share, worker.clone(), 7, late)
            .unwrap_err(),
        (Reject::LowDifficulty, 1e-3)
    );
    // ...but one in flight when the miner heard of the raise is its work,
    // credited at the target it was found at.
    let fwd =
        r.s.ch
            .check(slot, &share, worker.clone(), 7, r.now)
            .unwrap();
    assert_eq!(fwd.difficulty, before);
    // Back down: a share at the new, easier target is credited at it.
    assert_eq!(r.s.ch.set_difficulty_now(1e-5, late), Some(1e-5));
    assert_eq!(r.s.ch.grace, None, "lowering leaves nothing to grace");
    let fwd =
        r.s.ch
            .check(
                slot,
                &Share {
                    nonce: nonce2,
                    ..share
                },
                worker,
                7,
                late,
            )
            .unwrap();
    assert_eq!(fwd.difficulty, 1e-5);
    assert_eq!(r.s.ch.set_difficulty_now(f64::NAN, late), None);
}

/// Two raises in a row: shares found at the target before the first are
/// still taken (the grace keeps the easiest target, for as long as the
/// latest raise's); a fall below it ends the grace.
#[test]
fn two_raises_in_a_row_keep_the_first_target_in_grace() {
    let mut r = Rig::new();
    r.ready();
    let before = r.s.ch.sent_difficulty.unwrap();
    let t1 = r.now + Duration::from_secs(1);
    r.s.ch.set_difficulty_now(before * 2.0, r.now);
    r.s.ch.set_difficulty_now(before * 4.0, t1);
    assert_eq!(
        r.s.ch.grace.as_deref(),
        Some(&(before, t1 + SET_TARGET_GRACE))
    );
    // Easing to a target still harder than the first: the grace stays.
    r.s.ch.set_difficulty_now(before * 3.0, t1);
    assert_eq!(r.s.ch.grace.as_deref().map(|g| g.0), Some(before));
    r.s.ch.set_difficulty_now(before / 2.0, t1);
    assert_eq!(r.s.ch.grace, None);
}

#[test]
fn a_session_fits_in_432_bytes() {
    // Every V1 connection holds one for its whole life, in its task's
    // cell (see `server::tests::a_connection_and_its_session_fit_an_896_byte_cell`):
    // 8 bytes more and the cell is 1,024. The listener's vardiff rules are
    // passed in, not copied into each; the value a rejected share is
    // booked at is read from its job, not copied into the channel (80
    // bytes); the subscribe flags sit in the channel's padding.
    let n = std::mem::size_of::<Session>();
    assert!(n <= 432, "a V1 session is {n} bytes");
}

#[test]
fn eight_remembered_jobs_fit_in_256_bytes() {
    // At a production cadence (a job every 30 s, a share every 5 s) a
    // connection remembers all eight, in one allocation sized once to
    // them: 33 bytes an entry would put it in the 320-byte size class
    // (the built checker is the channel's, not an entry's).
    let n = std::mem::size_of::<super::channel::JobEntry>();
    assert!(8 * n <= 256, "a job entry is {n} bytes");
}
