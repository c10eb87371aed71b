use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::job::Extranonce;
use crate::job::fixtures::test_share;

pub(super) fn cfg(pass_through: bool) -> Arc<UpstreamConfig> {
    Arc::new(UpstreamConfig {
        url: "stratum+tcp://127.0.0.1:3333".parse().unwrap(),
        user: "acct".into(),
        password: "x".into(),
        pass_through_workers: pass_through,
        rolling_rule: RollingRule::Replace,
        version_mask: 0x1fff_e000,
        geometry: Geometry {
            prefix_len: 2,
            downstream_len: 4,
        },
        stall_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        max_consecutive_rejects: 3,
        max_line: 1 << 16,
        user_agent: "sluice/test".into(),
        suggest_difficulty: true,
        reconnect_hosts: vec!["backup.example".into()],
    })
}

fn sent(actions: &[ClientAction]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            ClientAction::Send(b) => Some(serde_json::from_slice(&b[..b.len() - 1]).unwrap()),
            _ => None,
        })
        .collect()
}

fn line(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn notify(job: &str, prev: &str, clean: bool) -> Vec<u8> {
    line(
        json!({"id":null,"method":"mining.notify","params":[job, prev, "01000000", "ffffffff", [], "20000000", "1d00ffff", "6b000000", clean]}),
    )
}

const PREV_A: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const PREV_B: &str = "0000000000000000000000000000000000000000000000000000000000000002";

fn subscribed(pass_through: bool) -> (ClientState, Instant) {
    let now = Instant::now();
    let mut st = ClientState::new(cfg(pass_through));
    let v = sent(&st.handshake(now));
    assert_eq!(v[0]["method"], "mining.configure");
    assert_eq!(v[0]["params"][1]["version-rolling.mask"], "1fffe000");
    assert_eq!(v[1]["method"], "mining.subscribe");
    assert_eq!(v[2]["method"], "mining.authorize");
    assert_eq!(v[2]["params"], json!(["acct", "x"]));
    let sub_id = v[1]["id"].as_u64().unwrap();
    let a = st.on_line(&line(json!({"id": v[0]["id"], "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null})), now);
    assert!(a.is_empty());
    assert_eq!(st.version_mask(), 0x1fff_e000);
    let a = st.on_line(&line(json!({"id": sub_id, "result": [[["mining.notify","x"]], "0a0b0c0d", 8], "error": null})), now);
    assert!(matches!(&a[0], ClientAction::Subscribed(s) if s.extranonce2_size == 8));
    (st, now)
}

#[test]
fn urls_parse_and_print() {
    let u: PoolUrl = "stratum+tcp://pool.example:3333".parse().unwrap();
    assert_eq!((u.host.as_str(), u.port), ("pool.example", 3333));
    assert_eq!(u.to_string(), "stratum+tcp://pool.example:3333");
    let v6: PoolUrl = "stratum+tcp://[::1]:4000".parse().unwrap();
    assert_eq!(v6.host, "::1");
    assert_eq!(v6.to_string(), "stratum+tcp://[::1]:4000");
    for bad in [
        "http://x:1",
        "stratum+tcp://x",
        "stratum+tcp://:1",
        "stratum+tcp://x:0",
        "stratum+tcp://x:99999",
    ] {
        assert!(bad.parse::<PoolUrl>().is_err(), "{bad}");
    }
}

#[test]
fn too_small_extranonce_space_fails_clearly() {
    let now = Instant::now();
    let mut st = ClientState::new(cfg(false));
    let v = sent(&st.handshake(now));
    let a = st.on_line(
        &line(json!({"id": v[1]["id"], "result": [[], "00", 4], "error": null})),
        now,
    );
    match &a[0] {
        ClientAction::Fail(r) => assert!(r.contains("downstream_extranonce2_size"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn difficulty_applies_to_next_job_and_new_prev_hash_is_clean() {
    let (mut st, now) = subscribed(false);
    st.on_line(
        &line(json!({"id":null,"method":"mining.set_difficulty","params":[512]})),
        now,
    );
    let a = st.on_line(&notify("j1", PREV_A, false), now);
    let ClientAction::Job(p1) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(p1.difficulty, 512.0);
    assert!(p1.clean, "the first job of a connection is clean");
    st.on_line(
        &line(json!({"id":null,"method":"mining.set_difficulty","params":[1024]})),
        now,
    );
    let a = st.on_line(&notify("j2", PREV_B, false), now);
    let ClientAction::Job(p2) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(p2.difficulty, 1024.0);
    assert!(
        p2.clean,
        "a new prev hash makes the job clean even if the pool says otherwise"
    );
}

fn share(job: Arc<Job>, session: SessionId, worker: &str) -> ShareForward {
    ShareForward {
        session,
        worker: worker.into(),
        extranonce2: Extranonce::from_parts(&[&[0xab, 0xcd], &[1, 2, 3, 4]]).unwrap(),
        ntime: 0x6b00_0001,
        nonce: 0xdead_beef,
        version: 0x2000_2000,
        difficulty: 2.0,
        pool_mask: 0x1fff_e000,
        ..test_share(job)
    }
}

fn job_from(st: &mut ClientState, now: Instant) -> Arc<Job> {
    let a = st.on_line(&notify("j1", PREV_A, true), now);
    let ClientAction::Job(p) = &a[0] else {
        panic!()
    };
    let (share_tx, _rx) = mpsc::channel(1);
    let (block_tx, _brx) = mpsc::unbounded_channel();
    let links = JobLinks {
        share_tx,
        block_tx,
        up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    let sub = st.subscription().unwrap().clone();
    Arc::new(
        build_job(
            p,
            &sub,
            Geometry {
                prefix_len: 2,
                downstream_len: 4,
            },
            3,
            0,
            77,
            1,
            st.version_mask(),
            RollingRule::Replace,
            links,
            now,
        )
        .unwrap(),
    )
}

#[test]
fn jobs_carry_pool_extranonce1_in_coinb1_and_pad_in_coinb2() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    assert_eq!(job.template.coinb1(), &[1, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d]);
    assert_eq!(job.template.coinb2(), &[0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(job.wire_id(), "4d");
    assert_eq!(&*job.upstream_job_id, "j1");
    let notify = job.v1_notify(false);
    let v: Value = serde_json::from_slice(&notify[..notify.len() - 1]).unwrap();
    assert_eq!(v["params"][0], "4d");
    assert_eq!(v["params"][2], "010000000a0b0c0d");
    assert_eq!(v["params"][3], "0000ffffffff");
}

#[test]
fn shares_go_up_with_padded_extranonce2_and_results_come_back() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    let sh = share(job.clone(), 42, "farm.rig1");
    let lines = st.submit(&sh);
    assert_eq!(lines.len(), 1);
    let v: Value = serde_json::from_slice(&lines[0][..lines[0].len() - 1]).unwrap();
    assert_eq!(
        v["params"],
        json!([
            "acct",
            "j1",
            "abcd010203040000",
            "6b000001",
            "deadbeef",
            "00002000"
        ])
    );
    assert_eq!(st.pending(), 1);
    let a = st.on_line(
        &line(json!({"id": v["id"], "result": true, "error": null})),
        now,
    );
    assert_eq!(
        a,
        vec![ClientAction::Result(UpstreamResult {
            session: 42,
            accepted: true,
            difficulty: 2.0,
            latency: Some(Duration::ZERO),
            reject: None,
            // Worker, pool and value come back with the verdict.
            share: ShareInfo {
                worker: Some("farm.rig1".into()),
                pool: job.pool,
                value: job.value,
                received: Some(sh.received),
                upstream_difficulty: job.upstream_target.difficulty(),
            },
        })]
    );
    assert_eq!(st.pending(), 0);
}

#[test]
fn pass_through_authorizes_each_worker_once() {
    let (mut st, now) = subscribed(true);
    let job = job_from(&mut st, now);
    let lines = st.submit(&share(job.clone(), 1, "farm.rig1"));
    let v: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(&l[..l.len() - 1]).unwrap())
        .collect();
    assert_eq!(v[0]["method"], "mining.authorize");
    assert_eq!(v[0]["params"][0], "acct.rig1");
    assert_eq!(v[1]["params"][0], "acct.rig1");
    assert_eq!(st.submit(&share(job, 1, "farm.rig1")).len(), 1);
}

#[test]
fn a_pool_that_rejects_everything_is_failed() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    let mut failed = false;
    for _ in 0..3 {
        let l = st.submit(&share(job.clone(), 1, "w"));
        let v: Value = serde_json::from_slice(&l[0][..l[0].len() - 1]).unwrap();
        let a = st.on_line(
            &line(json!({"id": v["id"], "result": null, "error": [23, "Low difficulty", null]})),
            now,
        );
        assert!(matches!(
            a[0],
            ClientAction::Result(UpstreamResult {
                accepted: false,
                ..
            })
        ));
        failed |= a.iter().any(|x| matches!(x, ClientAction::Fail(_)));
    }
    assert!(failed);
}

#[test]
fn a_stalled_pool_is_failed_after_the_timeout() {
    let (mut st, now) = subscribed(false);
    st.on_line(&notify("j1", PREV_A, true), now);
    assert!(st.on_tick(now + Duration::from_secs(59)).is_none());
    assert!(matches!(
        st.on_tick(now + Duration::from_secs(61)),
        Some(ClientAction::Fail(_))
    ));
}

#[test]
fn reconnect_and_get_version_are_handled() {
    let (mut st, now) = subscribed(false);
    let a = st.on_line(
        &line(json!({"id":null,"method":"client.reconnect","params":["backup.example", 4444, 3]})),
        now,
    );
    assert_eq!(
        a,
        vec![ClientAction::Reconnect(
            "stratum+tcp://backup.example:4444".parse().unwrap(),
            Duration::from_secs(3)
        )]
    );
    let a = st.on_line(
        &line(json!({"id":null,"method":"client.reconnect","params":[]})),
        now,
    );
    assert_eq!(
        a,
        vec![ClientAction::Reconnect(
            "stratum+tcp://127.0.0.1:3333".parse().unwrap(),
            Duration::ZERO
        )]
    );
    let a = st.on_line(
        &line(json!({"id":5,"method":"client.get_version","params":[]})),
        now,
    );
    assert_eq!(sent(&a)[0]["result"], "sluice/test");
    // Garbage from the pool is logged, not fatal.
    assert!(st.on_line(b"{garbage", now).is_empty());
}

#[test]
fn a_refused_authorization_fails_the_connection() {
    let now = Instant::now();
    let mut st = ClientState::new(cfg(false));
    let v = sent(&st.handshake(now));
    let auth_id = v[2]["id"].clone();
    let a = st.on_line(
        &line(json!({"id": auth_id, "result": false, "error": [24, "Unauthorized worker", null]})),
        now,
    );
    match &a[0] {
        ClientAction::Fail(r) => assert!(r.contains("authorization"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn first_job_and_jobs_after_set_extranonce_are_clean() {
    let (mut st, now) = subscribed(false);
    let a = st.on_line(&notify("j1", PREV_A, false), now);
    assert!(
        matches!(&a[0], ClientAction::Job(p) if p.clean),
        "first job of a connection"
    );
    let a = st.on_line(&notify("j2", PREV_A, false), now);
    assert!(matches!(&a[0], ClientAction::Job(p) if !p.clean));
    st.on_line(
        &line(json!({"id":null,"method":"mining.set_extranonce","params":["0102030405", 8]})),
        now,
    );
    let a = st.on_line(&notify("j3", PREV_A, false), now);
    assert!(
        matches!(&a[0], ClientAction::Job(p) if p.clean),
        "after set_extranonce"
    );
}

#[test]
fn unanswered_shares_are_reported_when_the_connection_ends() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    st.submit(&share(job.clone(), 5, "w"));
    st.submit(&share(job.clone(), 6, "w"));
    let mut block = share(job, 8, "w");
    block.is_block = true;
    st.submit_block(99, &block, now);
    let (mut lost, blocks) = st.drain_pending();
    lost.sort_by_key(|r| r.session);
    assert_eq!(lost.len(), 2);
    assert!(
        lost.iter()
            .all(|r| !r.accepted && r.reject == Some(PoolReject::Unanswered))
    );
    assert_eq!((lost[0].session, lost[1].session), (5, 6));
    assert_eq!(
        blocks,
        vec![99],
        "an unanswered block comes back to be sent again"
    );
    assert_eq!(st.pending(), 0);
}

#[test]
fn a_clean_first_job_does_not_make_the_next_one_clean() {
    // The forced flag was left set when the pool's first job was already
    // clean, so its second job reached miners as clean: every miner lost
    // a share on every new connection, reconnect and failover.
    let (mut st, now) = subscribed(false);
    let a = st.on_line(&notify("j1", PREV_A, true), now);
    assert!(matches!(&a[0], ClientAction::Job(p) if p.clean));
    let a = st.on_line(&notify("j2", PREV_A, false), now);
    assert!(
        matches!(&a[0], ClientAction::Job(p) if !p.clean),
        "same prev hash, pool said not clean: {a:?}"
    );
}

#[test]
fn reconnect_is_followed_only_to_the_configured_or_listed_hosts() {
    let (mut st, now) = subscribed(false);
    let redirect = |st: &mut ClientState, host: &str, port: u16| {
        st.on_line(
            &line(json!({"id":null,"method":"client.reconnect","params":[host, port, 0]})),
            now,
        )
    };
    // Same host, another port: followed.
    assert_eq!(
        redirect(&mut st, "127.0.0.1", 4444),
        vec![ClientAction::Reconnect(
            "stratum+tcp://127.0.0.1:4444".parse().unwrap(),
            Duration::ZERO
        )]
    );
    // A host listed in the pool's config (any case): followed.
    assert!(matches!(
        &redirect(&mut st, "BACKUP.example", 3333)[0],
        ClientAction::Reconnect(u, _) if u.host == "BACKUP.example"
    ));
    // Anything else: refused, with where it wanted us to go.
    for host in [
        "evil.example",
        "127.0.0.2",
        "localhost",
        "127.0.0.1.evil.example",
    ] {
        assert_eq!(
            redirect(&mut st, host, 3333),
            vec![ClientAction::RefusedReconnect(PoolUrl::v1(host, 3333))],
            "{host}"
        );
    }
}

#[test]
fn pool_rejects_carry_their_reason_and_blocks_their_verdict() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    let cases = [
        (
            json!({"id": 0, "result": null, "error": [21, "Stale share", null]}),
            PoolReject::Stale,
        ),
        (
            json!({"id": 0, "result": false, "error": null, "reject-reason": "Above target"}),
            PoolReject::LowDifficulty,
        ),
        (
            json!({"id": 0, "result": null, "error": {"code": 22, "message": "dup"}}),
            PoolReject::Duplicate,
        ),
        (
            json!({"id": 0, "result": false, "error": null}),
            PoolReject::Other,
        ),
    ];
    for (mut answer, want) in cases {
        let v: Value = {
            let l = st.submit(&share(job.clone(), 1, "w")).pop().unwrap();
            serde_json::from_slice(&l[..l.len() - 1]).unwrap()
        };
        answer["id"] = v["id"].clone();
        let a = st.on_line(&line(answer), now);
        // (The third reject in a row also fails the connection here.)
        assert!(
            matches!(&a[0], ClientAction::Result(r) if !r.accepted && r.reject == Some(want)),
            "{want:?}: {a:?}"
        );
    }
    let mut b = share(job, 2, "w");
    b.is_block = true;
    let l = st.submit_block(7, &b, now).pop().unwrap();
    let v: Value = serde_json::from_slice(&l[..l.len() - 1]).unwrap();
    let a = st.on_line(
        &line(json!({"id": v["id"], "result": true, "error": null})),
        now,
    );
    assert!(
        matches!(
            &a[0],
            ClientAction::Block {
                id: 7,
                accepted: true,
                ..
            }
        ),
        "{a:?}"
    );
    assert!(matches!(&a[1], ClientAction::Result(r) if r.accepted));
}

#[test]
fn a_raised_difficulty_is_enforced_on_older_jobs_until_the_next_job() {
    let (mut st, now) = subscribed(false);
    // The job was issued at difficulty 1 (the default before any
    // set_difficulty).
    let job = job_from(&mut st, now);
    assert_eq!(job.pool_difficulty, 1.0);
    let mut easy = share(job.clone(), 1, "w");
    // A hash meeting difficulty 1 but not 1,000.
    // Little-endian hashes: 0x0100 << 208 is difficulty ~256, 0x0010 << 208
    // is ~4,096 (difficulty 1 is 0xffff << 208).
    easy.hash = [0; 32];
    easy.hash[27] = 0x01;
    let mut hard = easy.clone();
    hard.hash[27] = 0;
    hard.hash[26] = 0x10;
    assert!(st.should_forward(&easy) && st.should_forward(&hard));
    st.on_line(
        &line(json!({"id":null,"method":"mining.set_difficulty","params":[1000]})),
        now,
    );
    assert!(!st.should_forward(&easy), "below the new, stricter target");
    assert!(st.should_forward(&hard));
    let mut block = easy.clone();
    block.is_block = true;
    assert!(st.should_forward(&block), "a block always goes");
    // The pool's next job applies the new difficulty: from then on the
    // older job's shares go at their own job's difficulty, as pools
    // credit them.
    st.on_line(&notify("j2", PREV_A, false), now);
    assert!(st.should_forward(&easy), "job j1's own difficulty again");
    // A lower difficulty announced: nothing stricter than each job's own.
    st.on_line(
        &line(json!({"id":null,"method":"mining.set_difficulty","params":[0.5]})),
        now,
    );
    assert!(st.should_forward(&easy));
}

#[test]
fn a_new_version_mask_is_announced_at_once() {
    let (mut st, now) = subscribed(false);
    let a = st.on_line(
        &line(json!({"id":null,"method":"mining.set_version_mask","params":["00ffe000"]})),
        now,
    );
    assert_eq!(a, vec![ClientAction::VersionMask(0x00ff_e000)]);
    assert_eq!(st.version_mask(), 0x00ff_e000);
    // Bits we never asked for are not granted.
    let a = st.on_line(
        &line(json!({"id":null,"method":"mining.set_version_mask","params":["ffffffff"]})),
        now,
    );
    assert_eq!(a, vec![ClientAction::VersionMask(0x1fff_e000)]);
}

#[test]
fn difficulty_is_suggested_on_big_changes_until_the_pool_refuses() {
    let (mut st, now) = subscribed(false);
    assert!(st.suggest(0.0).is_none(), "nothing known yet");
    let l = st.suggest(512.0).expect("first suggestion");
    let v: Value = serde_json::from_slice(&l[..l.len() - 1]).unwrap();
    assert_eq!(v["method"], "mining.suggest_difficulty");
    assert_eq!(v["params"], json!([512.0]));
    assert!(st.suggest(700.0).is_none(), "within 2x of the last ask");
    assert!(st.suggest(2048.0).is_some());
    let l = st.suggest(100.0).unwrap();
    let v: Value = serde_json::from_slice(&l[..l.len() - 1]).unwrap();
    st.on_line(
        &line(json!({"id": v["id"], "result": null, "error": [20, "Method not found", null]})),
        now,
    );
    assert!(
        st.suggest(100_000.0).is_none(),
        "the pool refused: not asked again"
    );
}

#[test]
fn a_pool_that_never_answers_is_failed() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    st.on_line(&notify("j9", PREV_A, false), now);
    for i in 0..=MAX_PENDING as u64 {
        st.submit(&share(job.clone(), i, "w"));
    }
    assert!(matches!(st.on_tick(now), Some(ClientAction::Fail(r)) if r.contains("unanswered")));
}

#[test]
fn a_block_left_unanswered_fails_the_connection() {
    let (mut st, now) = subscribed(false);
    let job = job_from(&mut st, now);
    let mut b = share(job, 2, "w");
    b.is_block = true;
    st.submit_block(7, &b, now);
    assert!(st.on_tick(now + BLOCK_ANSWER_TIMEOUT / 2).is_none());
    assert!(matches!(
        st.on_tick(now + BLOCK_ANSWER_TIMEOUT * 2),
        Some(ClientAction::Fail(r)) if r.contains("block unanswered")
    ));
    // It comes back to be sent again on the next connection.
    let (_, blocks) = st.drain_pending();
    assert_eq!(blocks, vec![7]);
}

#[test]
fn pass_through_names_upstream_are_capped() {
    let (mut st, now) = subscribed(true);
    let job = job_from(&mut st, now);
    for i in 0..MAX_UPSTREAM_NAMES {
        st.submit(&share(job.clone(), 1, &format!("farm.w{i}")));
    }
    // Past the cap: no new authorize, the share goes under the account.
    let lines = st.submit(&share(job, 1, "farm.one-too-many"));
    assert_eq!(lines.len(), 1);
    let v: Value = serde_json::from_slice(&lines[0][..lines[0].len() - 1]).unwrap();
    assert_eq!(v["method"], "mining.submit");
    assert_eq!(v["params"][0], "acct");
}

#[test]
fn an_unchanged_version_mask_is_not_announced_again() {
    let (mut st, now) = subscribed(false);
    let set = |st: &mut ClientState, m: &str| {
        st.on_line(
            &line(json!({"id":null,"method":"mining.set_version_mask","params":[m]})),
            now,
        )
    };
    assert!(
        set(&mut st, "1fffe000").is_empty(),
        "the mask already in force"
    );
    assert_eq!(set(&mut st, "0000e000").len(), 1);
    assert!(set(&mut st, "0000e000").is_empty());
}

#[test]
fn the_next_connection_asks_to_resume_the_session() {
    let now = Instant::now();
    let mut st = ClientState::new(cfg(false));
    let v = sent(&st.handshake(now));
    assert_eq!(
        v[1]["params"],
        json!(["sluice/test"]),
        "nothing to resume yet"
    );
    st.on_line(
        &line(json!({"id": v[1]["id"], "result": [[["mining.set_difficulty","s1"],["mining.notify","ab12cd"]], "0a0b0c0d", 8], "error": null})),
        now,
    );
    assert_eq!(st.session_id(), Some("ab12cd"));
    let mut next = ClientState::new(cfg(false)).resuming(st.session_id().map(str::to_owned));
    let v = sent(&next.handshake(now));
    assert_eq!(v[1]["params"], json!(["sluice/test", "ab12cd"]));
}
