//! SQLite snapshots of the books.
//!
//! Every snapshot writes, in one transaction, the entities (workers,
//! pools, farm) changed since the previous snapshot: lifetime totals and
//! the few buckets that changed. A crash therefore loses at most what was
//! recorded since the last snapshot (the snapshot interval); a clean
//! shutdown takes one last snapshot and loses nothing. WAL with
//! `synchronous=NORMAL`: a killed process loses no committed snapshot
//! (power loss may lose the last one or two).

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};

use crate::books::{Books, FARM};
use crate::ring::{Acc, Bucket};
use crate::tally::{
    COARSE_WIDTH_MS, FINE_WIDTH_MS, MAX_REASONS, Rare, Tally, Totals, WORKER_FINE_WIDTH_MS,
};

const KIND_WORKER: i64 = 0;
const KIND_POOL: i64 = 1;
const KIND_FARM: i64 = 2;
const RING_FINE: i64 = 0;
const RING_COARSE: i64 = 1;
/// A worker's fine ring (1 min buckets). Its 10 s buckets of schema 3,
/// under `RING_FINE`, and 30 s ones of schema 4, under
/// `RING_WORKER_FINE_30S`, are not loaded into it.
const RING_WORKER_FINE: i64 = 3;
/// Schema 4's worker fine ring (30 s buckets): deleted on upgrade.
const RING_WORKER_FINE_30S: i64 = 2;

/// The ring id a kind's fine buckets are stored under.
fn fine_ring(kind: i64) -> i64 {
    if kind == KIND_WORKER {
        RING_WORKER_FINE
    } else {
        RING_FINE
    }
}
/// Records timed just before a snapshot began may land after it
/// collected: look back this far for changes.
const SKEW_MS: u64 = 5_000;
/// 3: reject counts are indexed by the engine's reasons, which gained
/// three (too many workers, pool busy, no upstream) and moved the
/// upstream-rejected index: a version-2 file would read its counts under
/// the wrong reasons.
/// 4: a worker's fine buckets are 30 s, under their own ring id (2); a
/// version-3 build would read them as 5-min buckets, so it must refuse
/// the file. A version-3 file is read as is (its workers' 10 s buckets,
/// ring 0, are left out; their 5-min buckets rebuild the day ring) and
/// marked version 4.
/// 5: a worker's fine buckets are 1 min, under ring id 3. A version-3 or
/// -4 file is read as is, less its workers' fine buckets (ring 2 is
/// deleted; they only cover the last minutes, and the 5 min buckets keep
/// the hour and the day), and marked version 5.
const SCHEMA_VERSION: i64 = 5;

/// A store failure (always on our side: disk, permissions, corruption).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("books store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row that does not decode.
    #[error("books store: corrupt row for {0:?}")]
    Corrupt(String),
    /// Written by another schema version.
    #[error(
        "books store: written by schema version {0}, this build reads {SCHEMA_VERSION}; \
         move the file aside (or set [books] store to a new path) to start new books"
    )]
    Schema(i64),
}

/// What a snapshot wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Entities written.
    pub entities: usize,
    /// Buckets written.
    pub buckets: usize,
    /// Milliseconds it took.
    pub millis: u64,
}

/// What a start-up load read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Workers restored.
    pub workers: usize,
    /// Pools restored (matched by name).
    pub pools: usize,
    /// When the last snapshot was taken (ms since the Unix epoch).
    pub saved_at_ms: Option<u64>,
}

/// The on-disk books.
pub struct Store {
    conn: Connection,
    last_save_ms: Option<u64>,
}

struct Row {
    kind: i64,
    name: String,
    difficulty: f64,
    /// Totals and the buckets changed since the last snapshot.
    data: Stored,
}

/// One entity's totals and buckets, as written or read back.
struct Stored {
    first_ms: u64,
    last_share_ms: u64,
    last_change_ms: u64,
    totals: Totals,
    fine: Vec<Bucket<f64>>,
    coarse: Vec<Bucket<f64>>,
}

impl Stored {
    /// The stored books, in a worker's layout or a pool's (the farm's).
    fn tally<A: Acc>(&self, kind: i64) -> Tally<A> {
        let mut t = if kind == KIND_WORKER {
            Tally::worker(self.first_ms)
        } else {
            Tally::new(self.first_ms)
        };
        t.totals = self.totals.clone();
        t.last_share_ms = self.last_share_ms;
        t.last_change_ms = self.last_change_ms;
        let conv = |v: &[Bucket<f64>]| v.iter().map(Bucket::convert).collect::<Vec<Bucket<A>>>();
        t.restore(&conv(&self.fine), &conv(&self.coarse));
        t
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS entities (
                kind INTEGER NOT NULL, name TEXT NOT NULL,
                first_ms INTEGER NOT NULL, last_share_ms INTEGER NOT NULL,
                last_change_ms INTEGER NOT NULL, difficulty REAL NOT NULL,
                totals BLOB NOT NULL,
                PRIMARY KEY (kind, name));
             CREATE TABLE IF NOT EXISTS buckets (
                kind INTEGER NOT NULL, name TEXT NOT NULL, ring INTEGER NOT NULL,
                idx INTEGER NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (kind, name, ring, idx)) WITHOUT ROWID;",
        )?;
        let v: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match v {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(3 | 4) => {
                let tx = conn.transaction()?;
                tx.execute(
                    "DELETE FROM buckets WHERE ring = ?1",
                    [RING_WORKER_FINE_30S],
                )?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                    [SCHEMA_VERSION],
                )?;
                tx.commit()?;
            }
            Some(other) => return Err(StoreError::Schema(other)),
        }
        Ok(Self {
            conn,
            last_save_ms: None,
        })
    }

    /// Reads the books back (entities that changed within the books'
    /// `forget_after_ms` of `now_ms`).
    pub fn load(&mut self, books: &Books, now_ms: u64) -> Result<LoadReport, StoreError> {
        let mut report = LoadReport {
            saved_at_ms: self
                .conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'saved_at_ms'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(|v| v as u64),
            ..LoadReport::default()
        };
        let since = now_ms.saturating_sub(books.config().forget_after_ms) as i64;
        // Pools and the farm always come back, however long sluice was
        // down; workers idle past the forget limit do not.
        let entities: Vec<(i64, String, f64)> = self
            .conn
            .prepare(
                "SELECT kind, name, difficulty FROM entities
                 WHERE kind != ?2 OR last_change_ms >= ?1",
            )?
            .query_map(params![since, KIND_WORKER], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        for (kind, name, difficulty) in entities {
            let Some(stored) = self.stored(kind, &name)? else {
                continue;
            };
            match kind {
                KIND_WORKER => {
                    books.restore_worker(&name, stored.tally(kind), difficulty);
                    report.workers += 1;
                }
                KIND_POOL => {
                    if let Some(p) = books.pools().iter().find(|p| p.cfg.name == name) {
                        p.tally.restore(stored.tally(kind));
                        report.pools += 1;
                    }
                }
                KIND_FARM => books.farm().restore(stored.tally(kind)),
                _ => return Err(StoreError::Corrupt(name)),
            }
        }
        Ok(report)
    }

    /// One stored entity, whatever its age.
    fn stored(&self, kind: i64, name: &str) -> Result<Option<Stored>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT first_ms, last_share_ms, last_change_ms, totals FROM entities
                 WHERE kind = ?1 AND name = ?2",
                params![kind, name],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((first, last_share, last_change, totals)) = row else {
            return Ok(None);
        };
        let totals = decode_totals(&totals).ok_or_else(|| StoreError::Corrupt(name.into()))?;
        let mut st = self
            .conn
            .prepare_cached("SELECT ring, idx, data FROM buckets WHERE kind = ?1 AND name = ?2")?;
        let (mut fine, mut coarse) = (Vec::new(), Vec::new());
        let rows = st.query_map(params![kind, name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        for b in rows {
            let (ring, idx, data) = b?;
            let b = decode_bucket(idx, &data).ok_or_else(|| StoreError::Corrupt(name.into()))?;
            if ring == RING_COARSE {
                coarse.push(b)
            } else if ring == fine_ring(kind) {
                fine.push(b)
            }
        }
        Ok(Some(Stored {
            first_ms: first as u64,
            last_share_ms: last_share as u64,
            last_change_ms: last_change as u64,
            totals,
            fine,
            coarse,
        }))
    }

    /// A worker that came back after being forgotten (or was never
    /// loaded) gets its stored history back before anything overwrites
    /// it. The flag is cleared only once merged: a failed lookup fails the
    /// snapshot and leaves it for the next.
    fn merge_history(&self, w: &crate::books::Worker) -> Result<(), StoreError> {
        if !w.history_pending.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(stored) = self.stored(KIND_WORKER, w.name())? {
            let mut s = w.state();
            // Only history from before this worker's books began: anything
            // later is already in memory.
            if stored.last_change_ms < s.tally.first_ms {
                s.tally.absorb(&stored.tally(KIND_WORKER));
            }
        }
        w.history_pending
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes what changed since the previous snapshot.
    pub fn save(&mut self, books: &Books, now_ms: u64) -> Result<SaveReport, StoreError> {
        let started = Instant::now();
        let since = self.last_save_ms.map_or(0, |t| t.saturating_sub(SKEW_MS));
        let mut rows = Vec::new();
        for w in books.workers() {
            self.merge_history(&w)?;
            let s = w.state();
            if s.tally.last_change_ms < since {
                continue;
            }
            rows.push(row(KIND_WORKER, w.name(), &s.tally, s.difficulty, since));
        }
        for p in books.pools() {
            rows.push(row(KIND_POOL, &p.cfg.name, &p.tally.merged(), 0.0, since));
        }
        rows.push(row(KIND_FARM, FARM, &books.farm().merged(), 0.0, since));

        let mut report = SaveReport::default();
        let tx = self.conn.transaction()?;
        {
            let mut ent = tx.prepare_cached(
                "INSERT OR REPLACE INTO entities
                 (kind, name, first_ms, last_share_ms, last_change_ms, difficulty, totals)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut bk = tx.prepare_cached(
                "INSERT OR REPLACE INTO buckets (kind, name, ring, idx, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in &rows {
                ent.execute(params![
                    r.kind,
                    r.name,
                    r.data.first_ms as i64,
                    r.data.last_share_ms as i64,
                    r.data.last_change_ms as i64,
                    r.difficulty,
                    encode_totals(&r.data.totals),
                ])?;
                for (ring, list) in [
                    (fine_ring(r.kind), &r.data.fine),
                    (RING_COARSE, &r.data.coarse),
                ] {
                    for b in list {
                        bk.execute(params![
                            r.kind,
                            r.name,
                            ring,
                            i64::from(b.index()),
                            encode_bucket(b)
                        ])?;
                        report.buckets += 1;
                    }
                }
                report.entities += 1;
            }
            // Buckets older than their ring, and entities idle for a week.
            // 5 min buckets are kept for 26 h: a worker's day ring is
            // rebuilt from them on load, and the oldest 2-hour bucket its
            // 24 h window touches (begun at most 26 h ago) must be whole.
            let fine_floor = (now_ms / FINE_WIDTH_MS) as i64 - 40;
            let worker_fine_floor = (now_ms / WORKER_FINE_WIDTH_MS) as i64 - 9;
            let coarse_floor = (now_ms / COARSE_WIDTH_MS) as i64 - 312;
            tx.execute(
                "DELETE FROM buckets WHERE (ring = ?1 AND idx < ?2) OR (ring = ?3 AND idx < ?4)
                 OR (ring = ?5 AND idx < ?6)",
                params![
                    RING_FINE,
                    fine_floor,
                    RING_COARSE,
                    coarse_floor,
                    RING_WORKER_FINE,
                    worker_fine_floor
                ],
            )?;
            tx.execute(
                "DELETE FROM entities WHERE last_change_ms < ?1",
                [now_ms.saturating_sub(7 * 86_400_000) as i64],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('saved_at_ms', ?1)",
                [now_ms as i64],
            )?;
        }
        tx.commit()?;
        self.last_save_ms = Some(now_ms);
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}

/// What a snapshot writes of one tally: its totals and the buckets
/// changed since `since` (never the whole rings).
fn row<A: Acc>(kind: i64, name: &str, t: &Tally<A>, difficulty: f64, since: u64) -> Row {
    let (fine, coarse) = t.touched_since(since);
    let conv = |v: Vec<Bucket<A>>| v.iter().map(Bucket::convert).collect();
    let (fine, coarse) = (conv(fine), conv(coarse));
    Row {
        kind,
        name: name.to_string(),
        difficulty,
        data: Stored {
            first_ms: t.first_ms,
            last_share_ms: t.last_share_ms,
            last_change_ms: t.last_change_ms,
            totals: t.totals.clone(),
            fine,
            coarse,
        },
    }
}

const TOTALS_LEN: usize = 8 * (5 + 3 + MAX_REASONS + 3);

fn encode_totals(t: &Totals) -> Vec<u8> {
    let mut v = Vec::with_capacity(TOTALS_LEN);
    for f in [
        t.accepted_work,
        t.stale_work,
        t.rejected_work,
        t.earned_btc,
        t.value_btc,
    ] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    let rejects = t.rejects.to_array();
    let r = t.rare();
    for n in [t.accepted, t.rejected, r.blocks]
        .iter()
        .chain(rejects.iter())
    {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v.extend_from_slice(&r.upstream_rejected.to_le_bytes());
    v.extend_from_slice(&r.upstream_rejected_work.to_le_bytes());
    v.extend_from_slice(&r.upstream_rejected_btc.to_le_bytes());
    v
}

fn decode_totals(b: &[u8]) -> Option<Totals> {
    if b.len() != TOTALS_LEN {
        return None;
    }
    let word = |i: usize| -> [u8; 8] {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        w
    };
    let f = |i| f64::from_le_bytes(word(i));
    let n = |i| u64::from_le_bytes(word(i));
    let mut rejects = [0u64; MAX_REASONS];
    for (k, r) in rejects.iter_mut().enumerate() {
        *r = n(8 + k);
    }
    let tail = 8 + MAX_REASONS;
    let mut t = Totals::default();
    t.accepted_work = f(0);
    t.stale_work = f(1);
    t.rejected_work = f(2);
    t.earned_btc = f(3);
    t.value_btc = f(4);
    t.accepted = n(5);
    t.rejected = n(6);
    t.rejects = crate::tally::Rejects::from_array(&rejects);
    t.set_rare(Rare {
        blocks: n(7),
        upstream_rejected: n(tail),
        upstream_rejected_work: f(tail + 1),
        upstream_rejected_btc: f(tail + 2),
    });
    Some(t)
}

/// Buckets are stored as `f64` whatever they are in memory.
const BUCKET_LEN: usize = 5 * 8 + 2 * 4;

fn encode_bucket(b: &Bucket<f64>) -> Vec<u8> {
    let mut v = Vec::with_capacity(BUCKET_LEN);
    for f in [
        b.accepted_work,
        b.stale_work,
        b.rejected_work,
        b.earned_btc,
        b.value_btc,
    ] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v.extend_from_slice(&b.accepted.to_le_bytes());
    v.extend_from_slice(&b.rejected.to_le_bytes());
    v
}

fn decode_bucket(idx: i64, d: &[u8]) -> Option<Bucket<f64>> {
    if d.len() != BUCKET_LEN {
        return None;
    }
    let f = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i * 8..i * 8 + 8]);
        f64::from_le_bytes(w)
    };
    let n = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&d[at..at + 4]);
        u32::from_le_bytes(w)
    };
    let mut b = Bucket::with_index(u32::try_from(idx).ok()?);
    b.accepted_work = f(0);
    b.stale_work = f(1);
    b.rejected_work = f(2);
    b.earned_btc = f(3);
    b.value_btc = f(4);
    b.accepted = n(40);
    b.rejected = n(44);
    Some(b)
}
