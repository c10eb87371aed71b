use std::io::Write as _;

use super::*;
use crate::job::fixtures::{synthetic_template, test_job, test_links, test_share};
use crate::job::{Extranonce, Job};

fn block_share() -> ShareForward {
    let template = synthetic_template(1, 0x207f_ffff);
    let links = test_links(1).links;
    let job = Arc::new(Job {
        upstream: 3,
        upstream_job_id: "pool-job-9".into(),
        version_mask: 0x1fff_e000,
        pool_difficulty: 1.0,
        upstream_extranonce1: vec![1, 2, 3, 4],
        pool: 2,
        value: sluice_books::JobValue::default(),
        ..test_job(template, links)
    });
    ShareForward {
        session: 11,
        worker: "farm.rig7".into(),
        extranonce2: Extranonce::from_parts(&[&[1, 2], &[3, 4, 5, 6]]).unwrap(),
        ntime: 0x6b00_0001,
        nonce: 0x0102_0304,
        version: 0x2000_4000,
        pool_mask: 0x1fff_e000,
        hash: [0x11; 32],
        is_block: true,
        ..test_share(job)
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-blocks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("blocks.jsonl")
}

#[tokio::test]
async fn a_block_is_recorded_with_what_rebuilds_it_and_its_fate() {
    let stats = Arc::new(Stats::default());
    let path = temp("fate");
    let log = BlockLog::open(&path, stats.clone()).unwrap();
    let s = block_share();
    let id = log.found(&s);
    log.sync().await;
    // On disk before anything else happens to it.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    let r = &log.list()[0];
    assert_eq!(
        (r.id, r.status, r.pool, r.upstream),
        (id, BlockStatus::Found, 2, 3)
    );
    assert_eq!(
        (r.worker.as_str(), r.job_id.as_str()),
        ("farm.rig7", "pool-job-9")
    );
    // The header and coinbase rebuild the block: the header's merkle root
    // is the coinbase's txid folded with the job's branches.
    let header = hex::decode(&r.header).unwrap();
    assert_eq!(header.len(), 80);
    let (h, cb) = s.block_parts();
    assert_eq!(header, h.to_bytes());
    assert_eq!(hex::decode(&r.coinbase).unwrap(), cb);
    assert_eq!(
        u32::from_le_bytes(header[0..4].try_into().unwrap()),
        0x2000_4000
    );

    log.set(id, BlockStatus::Submitted, None);
    log.set(id, BlockStatus::Rejected, Some("stale-prevblk".into()));
    log.sync().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    let r = &log.list()[0];
    assert_eq!((r.status, r.attempts), (BlockStatus::Rejected, 1));
    assert_eq!(r.detail.as_deref(), Some("stale-prevblk"));
    assert_eq!(stats.blocks_found.load(Ordering::Relaxed), 1);
    assert_eq!(stats.blocks_submitted.load(Ordering::Relaxed), 1);
    assert_eq!(stats.blocks_rejected.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn records_survive_a_restart_and_a_torn_last_line() {
    let stats = Arc::new(Stats::default());
    let path = temp("restart");
    {
        let log = BlockLog::open(&path, stats.clone()).unwrap();
        let a = log.found(&block_share());
        let b = log.found(&block_share());
        log.set(a, BlockStatus::Accepted, None);
        assert_eq!(b, a + 1);
        log.sync().await;
    }
    // A crash mid-write leaves a torn last line, cut inside a multi-byte
    // character (worker names are untrusted text).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"event\":\"found\",\"id\":3,\"worker\":\"\xe2\x82")
        .unwrap();
    drop(f);
    let third = {
        let log = BlockLog::open(&path, stats.clone()).unwrap();
        let recs = log.list();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].status, BlockStatus::Accepted);
        assert_eq!(recs[1].status, BlockStatus::Found);
        // Numbers continue after the ones on file.
        let third = log.found(&block_share());
        assert_eq!(third, recs[1].id + 1);
        log.sync().await;
        third
    };
    // The record written after the torn line is whole on the next start.
    let log = BlockLog::open(&path, stats).unwrap();
    let recs = log.list();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2].id, third);
}

#[test]
fn an_unwritable_log_is_an_error_at_open_not_a_lost_block() {
    let stats = Arc::new(Stats::default());
    let dir = temp("dir");
    // A directory where the file should be.
    let path = dir.parent().unwrap().to_path_buf();
    let e = BlockLog::open(&path, stats.clone()).unwrap_err();
    assert!(e.to_string().contains("block log"), "{e}");
    // In memory it still records and counts.
    let log = BlockLog::in_memory(stats.clone());
    log.found(&block_share());
    assert_eq!(log.list().len(), 1);
    assert_eq!(stats.blocks_found.load(Ordering::Relaxed), 1);
}
