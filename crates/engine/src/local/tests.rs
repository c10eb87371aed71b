use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use sluice_pow::synthetic;

use super::*;
use crate::blocks::{BlockLog, BlockStatus};
use crate::job::Extranonce;
use crate::job::fixtures::test_share;

/// A node that refuses the first `refusals` submissions of each block.
struct FlakyNode {
    refusals: u32,
    final_refusals: bool,
    /// Submissions never finish (a node that hangs).
    hang: bool,
    submissions: Arc<Mutex<Vec<[u8; 32]>>>,
}

impl TemplateSource for FlakyNode {
    fn job(&mut self, now_unix: u32, _extranonce_len: usize) -> Result<LocalJob, String> {
        let (t, _) = synthetic::job(synthetic::TYPICAL, 5);
        Ok(LocalJob {
            prev_hash: *t.prev_hash(),
            coinb1: t.coinb1().to_vec(),
            coinb2: t.coinb2().to_vec(),
            branches: t.branches().to_vec(),
            version: 0x2000_0000,
            nbits: t.bits(),
            ntime: now_unix,
            height: 7,
            coinbase_value_sat: 312_500_000,
            token: 42,
            payout: None,
        })
    }

    fn submit_block(&mut self, token: u64, header: &Header, _coinbase: &[u8]) -> BlockSubmit {
        assert_eq!(token, 42, "the job's own template");
        let mut s = self.submissions.lock().unwrap();
        s.push(header.block_hash());
        if self.hang {
            return Box::pin(std::future::pending());
        }
        let tries = s.iter().filter(|h| **h == header.block_hash()).count() as u32;
        let r = if tries <= self.refusals {
            Err(BlockRefused {
                reason: format!("node busy (try {tries})"),
                is_final: self.final_refusals,
            })
        } else {
            Ok(BlockAccepted {
                height: 7,
                hash: hex::encode_reversed(&header.block_hash()),
            })
        };
        Box::pin(std::future::ready(r))
    }

    fn poll(&mut self, _now_unix: u32) -> bool {
        false
    }
}

struct Rig {
    log: Arc<BlockLog>,
    job: Arc<Job>,
    block_tx: mpsc::UnboundedSender<BlockForward>,
    results: mpsc::UnboundedReceiver<UpstreamResult>,
    submissions: Arc<Mutex<Vec<[u8; 32]>>>,
    cancel: CancellationToken,
}

async fn start(refusals: u32) -> Rig {
    start_with(FlakyNode {
        refusals,
        final_refusals: false,
        hang: false,
        submissions: Arc::new(Mutex::new(Vec::new())),
    })
    .await
}

async fn start_with(node: FlakyNode) -> Rig {
    let stats = Arc::new(Stats::default());
    let log = Arc::new(BlockLog::in_memory(stats.clone()));
    let (jobs_tx, mut jobs_rx, _listeners) = crate::fanout::JobBoard::new(1);
    let (health_tx, _health_rx) = watch::channel(Health::Connecting);
    let (share_tx, share_rx) = mpsc::channel(16);
    let (block_tx, block_rx) = mpsc::unbounded_channel();
    let (results_tx, results) = mpsc::unbounded_channel();
    let submissions = node.submissions.clone();
    let cancel = CancellationToken::new();
    let task = LocalTask {
        id: 1,
        cfg: LocalConfig {
            refresh_interval: Duration::from_secs(3600),
            version_mask: 0x1fff_e000,
            extranonce_len: 6,
        },
        source: node,
        job_ids: Arc::new(JobIds::default()),
        stats,
        pool: 0,
        books: None,
        jobs: jobs_tx,
        health: health_tx,
        shares: share_rx,
        blocks: block_rx,
        links: JobLinks {
            share_tx,
            block_tx: block_tx.clone(),
            up: Arc::new(AtomicBool::new(false)),
        },
        block_log: log.clone(),
        results: results_tx,
        workers: Arc::new(DashMap::new()),
        found: Arc::new(std::sync::Mutex::new(Vec::new())),
        cancel: cancel.clone(),
        tokens: Default::default(),
        ledger: None,
        ledger_blocked: false,
        block_times: HashMap::new(),
    };
    tokio::spawn(task.run());
    let job = loop {
        jobs_rx.changed().await.unwrap();
        if let Some(j) = jobs_rx.borrow_and_update().clone() {
            break j;
        }
    };
    Rig {
        log,
        job,
        block_tx,
        results,
        submissions,
        cancel,
    }
}

fn block(job: &Arc<Job>, nonce: u32) -> ShareForward {
    ShareForward {
        session: 3,
        worker: "farm.s21".into(),
        extranonce2: Extranonce::from_parts(&[&[0, 1], &[2, 3, 4, 5]]).unwrap(),
        nonce,
        is_block: true,
        ..test_share(job.clone())
    }
}

async fn status_of(log: &BlockLog, id: u64, want: BlockStatus) -> crate::blocks::BlockRecord {
    loop {
        if let Some(r) = log
            .list()
            .into_iter()
            .find(|r| r.id == id && r.status == want)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_block_is_submitted_again_until_the_node_takes_it() {
    let mut r = start(2).await;
    let b = block(&r.job, 11);
    let id = r.log.found(&b);
    r.block_tx.send(BlockForward { id, share: b }).unwrap();
    let rec = status_of(&r.log, id, BlockStatus::Accepted).await;
    assert_eq!(rec.attempts, 3, "refused twice, taken the third time");
    assert_eq!(r.submissions.lock().unwrap().len(), 3);
    // Its share is booked by the pool once.
    let res = r.results.recv().await.unwrap();
    assert!(res.accepted);
    assert!(r.results.try_recv().is_err());
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_block_the_node_cannot_take_is_offered_for_ten_minutes_then_given_up() {
    let r = start(u32::MAX).await;
    let b = block(&r.job, 12);
    let id = r.log.found(&b);
    r.block_tx.send(BlockForward { id, share: b }).unwrap();
    // Still offered a minute on (a node restarting takes that long).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let rec = r.log.list().into_iter().find(|x| x.id == id).unwrap();
    assert_ne!(rec.status, BlockStatus::Rejected);
    let rec = status_of(&r.log, id, BlockStatus::Rejected).await;
    assert!(rec.detail.unwrap().contains("node busy"));
    // Every 10 s at most once backed off: about 60 tries in 10 minutes.
    let tries = r.submissions.lock().unwrap().len();
    assert!((50..=80).contains(&tries), "{tries} tries");
    // None after giving up.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(r.submissions.lock().unwrap().len(), tries);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_verdict_on_the_block_is_not_tried_again() {
    let r = start_with(FlakyNode {
        refusals: u32::MAX,
        final_refusals: true,
        hang: false,
        submissions: Arc::new(Mutex::new(Vec::new())),
    })
    .await;
    let b = block(&r.job, 13);
    let id = r.log.found(&b);
    r.block_tx.send(BlockForward { id, share: b }).unwrap();
    let rec = status_of(&r.log, id, BlockStatus::Rejected).await;
    assert_eq!(rec.attempts, 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.submissions.lock().unwrap().len(), 1);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_node_that_hangs_on_a_block_does_not_hold_up_shares() {
    let mut r = start_with(FlakyNode {
        refusals: 0,
        final_refusals: false,
        hang: true,
        submissions: Arc::new(Mutex::new(Vec::new())),
    })
    .await;
    let b = block(&r.job, 14);
    let id = r.log.found(&b);
    r.block_tx.send(BlockForward { id, share: b }).unwrap();
    // The block's own share and a plain one are both answered while the
    // submission is still out.
    let share = ShareForward {
        nonce: 15,
        is_block: false,
        ..block(&r.job, 15)
    };
    r.job.links.share_tx.send(share).await.unwrap();
    for _ in 0..2 {
        let res = tokio::time::timeout(Duration::from_secs(10), r.results.recv())
            .await
            .expect("answered while the block is out")
            .unwrap();
        assert!(res.accepted);
    }
    assert_eq!(r.submissions.lock().unwrap().len(), 1);
    let rec = r.log.list().into_iter().find(|x| x.id == id).unwrap();
    assert_eq!(rec.status, BlockStatus::Submitted);
    r.cancel.cancel();
}
