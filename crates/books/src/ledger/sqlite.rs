//! The ledger in an embedded SQLite file (WAL, `synchronous = FULL`: a
//! commit is on disk before it returns).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use super::payout::Window;
use super::{BlockRow, LedgerError, Rows, Stamped};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shares (
    id INTEGER PRIMARY KEY,
    uid INTEGER NOT NULL,
    instance TEXT NOT NULL,
    worker TEXT NOT NULL,
    difficulty REAL NOT NULL,
    job INTEGER NOT NULL,
    height INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    hash_prefix INTEGER NOT NULL,
    network_difficulty REAL NOT NULL,
    reward_sat INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_by_time ON shares (time_ms, id);
CREATE UNIQUE INDEX IF NOT EXISTS shares_once ON shares (instance, uid);
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    height INTEGER NOT NULL,
    worker TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    reward_sat INTEGER NOT NULL,
    network_difficulty REAL NOT NULL,
    status TEXT NOT NULL
);
";

/// Rows per page when walking a PPLNS window.
const PAGE: i64 = 50_000;

/// Share rows per INSERT statement (10 values each).
const ROWS_PER_INSERT: usize = 64;

fn insert_shares(rows: usize) -> String {
    let mut q = String::from(
        "INSERT OR IGNORE INTO shares (uid, instance, worker, difficulty, job, height, time_ms, hash_prefix, network_difficulty, reward_sat) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            q.push(',');
        }
        q.push_str("(?,?,?,?,?,?,?,?,?,?)");
    }
    q
}

fn bind_shares(
    st: &mut rusqlite::CachedStatement<'_>,
    instance: &str,
    rows: &[Stamped],
) -> Result<(), rusqlite::Error> {
    for (i, r) in rows.iter().enumerate() {
        let (b, s) = (i * 10, &r.row);
        st.raw_bind_parameter(b + 1, r.uid)?;
        st.raw_bind_parameter(b + 2, instance)?;
        st.raw_bind_parameter(b + 3, &*s.worker)?;
        st.raw_bind_parameter(b + 4, s.difficulty)?;
        st.raw_bind_parameter(b + 5, s.job as i64)?;
        st.raw_bind_parameter(b + 6, s.height)?;
        st.raw_bind_parameter(b + 7, s.time_ms as i64)?;
        st.raw_bind_parameter(b + 8, s.hash_prefix as i64)?;
        st.raw_bind_parameter(b + 9, s.network_difficulty)?;
        st.raw_bind_parameter(b + 10, s.reward_sat as i64)?;
    }
    Ok(())
}

pub(super) struct Db {
    conn: Arc<Mutex<Connection>>,
}

fn lock(c: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Db {
    pub(super) async fn open(path: PathBuf) -> Result<Self, LedgerError> {
        let conn = blocking(move || {
            let c = Connection::open(&path)?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.execute_batch(SCHEMA)?;
            Ok(c)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let c = self.conn.clone();
        blocking(move || f(&mut lock(&c))).await
    }

    pub(super) async fn write(&mut self, instance: &str, rows: &Rows) -> Result<(), LedgerError> {
        let (instance, rows) = (instance.to_owned(), rows.clone());
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                // Many rows per statement: SQLite's cost is per statement
                // step far more than per value bound.
                let mut chunks = rows.shares.chunks_exact(ROWS_PER_INSERT);
                let mut st = tx.prepare_cached(&insert_shares(ROWS_PER_INSERT))?;
                for chunk in &mut chunks {
                    bind_shares(&mut st, &instance, chunk)?;
                    st.raw_execute()?;
                }
                let rest = chunks.remainder();
                if !rest.is_empty() {
                    let mut st = tx.prepare_cached(&insert_shares(rest.len()))?;
                    bind_shares(&mut st, &instance, rest)?;
                    st.raw_execute()?;
                }
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO blocks (hash, instance, height, worker, time_ms, reward_sat, network_difficulty, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for b in rows.blocks.iter() {
                    st.execute(params![
                        b.hash,
                        b.instance,
                        b.height,
                        &*b.worker,
                        b.time_ms as i64,
                        b.reward_sat as i64,
                        b.network_difficulty,
                        b.status,
                    ])?;
                }
                let mut st = tx.prepare_cached("UPDATE blocks SET status = ?2 WHERE hash = ?1")?;
                for v in rows.statuses.iter() {
                    st.execute(params![v.hash, v.status])?;
                }
            }
            tx.commit()
        })
        .await
    }

    pub(super) async fn share_count(&self) -> Result<u64, LedgerError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM shares", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }

    pub(super) async fn blocks(&self) -> Result<Vec<BlockRow>, LedgerError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT hash, instance, height, worker, time_ms, reward_sat, network_difficulty, status FROM blocks ORDER BY time_ms DESC",
            )?;
            let rows = st.query_map([], |r| {
                Ok(BlockRow {
                    hash: r.get(0)?,
                    instance: r.get(1)?,
                    height: r.get(2)?,
                    worker: r.get::<_, String>(3)?.into(),
                    time_ms: r.get::<_, i64>(4)? as u64,
                    reward_sat: r.get::<_, i64>(5)? as u64,
                    network_difficulty: r.get(6)?,
                    status: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Fills `w` with shares newest first from `until_ms` back, a page at
    /// a time (keyset paging: each page starts below the last row seen).
    pub(super) async fn window(&self, until_ms: u64, mut w: Window) -> Result<Window, LedgerError> {
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT worker, difficulty, time_ms, id FROM shares WHERE (time_ms, id) < (?1, ?2) ORDER BY time_ms DESC, id DESC LIMIT ?3",
            )?;
            let mut cursor = (until_ms as i64, i64::MAX);
            'pages: loop {
                let mut rows = st.query(params![cursor.0, cursor.1, PAGE])?;
                let mut n = 0;
                while let Some(r) = rows.next()? {
                    n += 1;
                    let worker: String = r.get(0)?;
                    cursor = (r.get(2)?, r.get(3)?);
                    if !w.add(&worker, r.get(1)?) {
                        break 'pages;
                    }
                }
                if n < PAGE {
                    break;
                }
            }
            Ok(w)
        })
        .await
    }

    /// `(worker, difficulty, network difficulty, reward)` in `[from, to)`.
    pub(super) async fn span(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, f64, f64, u64)>, LedgerError> {
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT worker, difficulty, network_difficulty, reward_sat FROM shares WHERE time_ms >= ?1 AND time_ms < ?2",
            )?;
            let rows = st.query_map(params![from_ms as i64, to_ms as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
            })?;
            rows.collect()
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LedgerError::Task(e.to_string()))?
        .map_err(LedgerError::from)
}
