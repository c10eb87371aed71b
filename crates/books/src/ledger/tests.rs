use super::*;

fn share(worker: &str, difficulty: f64, time_ms: u64) -> ShareRow {
    ShareRow {
        worker: worker.into(),
        difficulty,
        job: 1,
        height: 100,
        time_ms,
        hash_prefix: 0x0000_ffff_0000_0001,
        network_difficulty: 1000.0,
        reward_sat: 312_500_000,
    }
}

fn block(hash: &str, time_ms: u64) -> BlockRow {
    BlockRow {
        hash: hash.into(),
        height: 100,
        worker: "c".into(),
        time_ms,
        reward_sat: 312_500_000,
        network_difficulty: 10.0,
        instance: String::new(),
        status: "accepted".into(),
    }
}

async fn open(dir: &std::path::Path) -> Arc<Ledger> {
    Ledger::open(LedgerConfig {
        url: format!("sqlite:{}", dir.join("ledger.db").display()),
        instance: "a".into(),
        ..LedgerConfig::default()
    })
    .await
    .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-ledger-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn shares_and_blocks_survive_a_reopen_and_pay_pplns_exactly() {
    let dir = scratch("pplns");
    let l = open(&dir).await;
    // Oldest first in time; the window of 1.0 × D = 10 covers c 4, b 3,
    // a 2 and 1 of a's older 5 (the same set the arithmetic test uses).
    for (i, (w, d)) in [("b", 100.0), ("a", 5.0), ("a", 2.0), ("b", 3.0), ("c", 4.0)]
        .into_iter()
        .enumerate()
    {
        l.append(share(w, d, 1_000 + i as u64)).unwrap();
    }
    // A share after the block is not in its window.
    l.append(share("late", 50.0, 2_000)).unwrap();
    l.record_block(block("00ab", 1_004));
    l.flush().await.unwrap();
    drop(l);
    let l = open(&dir).await;
    assert_eq!(l.share_count().await.unwrap(), 6);
    let blocks = l.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].instance, "a");
    let p = l.pplns("00ab", 1.0).await.unwrap();
    let got: Vec<(&str, u64)> = p.iter().map(|x| (x.worker.as_str(), x.sat)).collect();
    assert_eq!(
        got,
        vec![("a", 93_750_000), ("b", 93_750_000), ("c", 125_000_000)]
    );
    assert!(matches!(
        l.pplns("ffff", 1.0).await,
        Err(LedgerError::NoBlock(_))
    ));
    // A block recorded when found, then refused by the node, pays nothing.
    l.record_block(BlockRow {
        status: "submitted".into(),
        ..block("00cd", 1_003)
    });
    l.block_status("00cd", "rejected");
    l.flush().await.unwrap();
    assert_eq!(l.blocks().await.unwrap().len(), 2);
    assert!(matches!(
        l.pplns("00cd", 1.0).await,
        Err(LedgerError::Rejected(_))
    ));
    // FPPS over the five shares before the late one: Σd = 114 at D = 1000.
    let f = l.fpps(1_000, 1_005, 0.0).await.unwrap();
    let total: u64 = f.iter().map(|x| x.sat).sum();
    assert_eq!(total, 114 * 312_500);
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_dropping() {
    let dir = scratch("full");
    let l = Ledger::open(LedgerConfig {
        url: format!("sqlite:{}", dir.join("ledger.db").display()),
        queue: 4,
        ..LedgerConfig::default()
    })
    .await
    .unwrap();
    let mut ok = 0u64;
    let mut refused = 0u64;
    for i in 0..10_000 {
        match l.append(share("a", 1.0, i)) {
            Ok(()) => ok += 1,
            Err(LedgerFull) => refused += 1,
        }
    }
    l.flush().await.unwrap();
    assert!(refused > 0, "a 4-row queue fills");
    assert_eq!(l.stats().refused.load(Ordering::Relaxed), refused);
    // Every row taken is written; none refused is.
    assert_eq!(l.share_count().await.unwrap(), ok);
    assert_eq!(l.stats().pending.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error() {
    for u in ["mysql://x", "sqlite:"] {
        let e = Ledger::open(LedgerConfig {
            url: u.into(),
            ..LedgerConfig::default()
        })
        .await
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("use sqlite:PATH or postgres://"),
            "{e}"
        );
    }
}
