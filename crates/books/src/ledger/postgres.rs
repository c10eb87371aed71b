//! The ledger in PostgreSQL: one ledger for many pool instances. A batch
//! is one `INSERT … SELECT FROM UNNEST(arrays)` per table in one
//! transaction: one round trip, however many rows.

use tokio_postgres::{Client, NoTls};

use super::payout::Window;
use super::{BlockRow, LedgerError, Rows};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shares (
    id BIGSERIAL PRIMARY KEY,
    uid BIGINT NOT NULL,
    instance TEXT NOT NULL,
    worker TEXT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    job BIGINT NOT NULL,
    height INTEGER NOT NULL,
    time_ms BIGINT NOT NULL,
    hash_prefix BIGINT NOT NULL,
    network_difficulty DOUBLE PRECISION NOT NULL,
    reward_sat BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_by_time ON shares (time_ms, id);
CREATE UNIQUE INDEX IF NOT EXISTS shares_once ON shares (instance, uid);
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    height INTEGER NOT NULL,
    worker TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    reward_sat BIGINT NOT NULL,
    network_difficulty DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL
);
";

/// Rows per page when walking a PPLNS window.
const PAGE: i64 = 50_000;

pub(super) struct Db {
    url: String,
    client: Client,
}

async fn connect(url: &str) -> Result<Client, LedgerError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "ledger connection to PostgreSQL ended");
        }
    });
    Ok(client)
}

impl Db {
    pub(super) async fn connect(url: &str) -> Result<Self, LedgerError> {
        Ok(Self {
            url: url.to_owned(),
            client: connect(url).await?,
        })
    }

    pub(super) async fn create_tables(&self) -> Result<(), LedgerError> {
        // Two instances starting at once may both create: the loser's
        // error is harmless once the tables exist.
        if let Err(e) = self.client.batch_execute(SCHEMA).await {
            self.client
                .query("SELECT 1 FROM shares LIMIT 0", &[])
                .await
                .map_err(|_| e)?;
        }
        Ok(())
    }

    /// After a commit that hung: a new connection (closing the old one
    /// rolls back its transaction on the server).
    pub(super) async fn drop_connection(&mut self) {
        match connect(&self.url).await {
            Ok(c) => self.client = c,
            Err(e) => tracing::warn!(error = %e, "ledger cannot reach PostgreSQL"),
        }
    }

    /// After a failed commit: a new connection if the old one is gone.
    pub(super) async fn reconnect(&mut self) {
        if self.client.is_closed() {
            match connect(&self.url).await {
                Ok(c) => self.client = c,
                Err(e) => tracing::warn!(error = %e, "ledger cannot reach PostgreSQL"),
            }
        }
    }

    pub(super) async fn write(&mut self, instance: &str, rows: &Rows) -> Result<(), LedgerError> {
        let tx = self.client.transaction().await?;
        let shares = &rows.shares;
        if !shares.is_empty() {
            let uid: Vec<i64> = shares.iter().map(|s| s.uid).collect();
            let worker: Vec<&str> = shares.iter().map(|s| &*s.row.worker).collect();
            let difficulty: Vec<f64> = shares.iter().map(|s| s.row.difficulty).collect();
            let job: Vec<i64> = shares.iter().map(|s| s.row.job as i64).collect();
            let height: Vec<i32> = shares.iter().map(|s| s.row.height as i32).collect();
            let time: Vec<i64> = shares.iter().map(|s| s.row.time_ms as i64).collect();
            let prefix: Vec<i64> = shares.iter().map(|s| s.row.hash_prefix as i64).collect();
            let net: Vec<f64> = shares.iter().map(|s| s.row.network_difficulty).collect();
            let reward: Vec<i64> = shares.iter().map(|s| s.row.reward_sat as i64).collect();
            // A batch written again after a lost commit reply: its rows
            // are already there, and stay there once.
            tx.execute(
                "INSERT INTO shares (instance, uid, worker, difficulty, job, height, time_ms, hash_prefix, network_difficulty, reward_sat)
                 SELECT $1, * FROM UNNEST($2::int8[], $3::text[], $4::float8[], $5::int8[], $6::int4[], $7::int8[], $8::int8[], $9::float8[], $10::int8[])
                 ON CONFLICT (instance, uid) DO NOTHING",
                &[&instance, &uid, &worker, &difficulty, &job, &height, &time, &prefix, &net, &reward],
            )
            .await?;
        }
        for b in rows.blocks.iter() {
            tx.execute(
                "INSERT INTO blocks (hash, instance, height, worker, time_ms, reward_sat, network_difficulty, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hash) DO NOTHING",
                &[
                    &b.hash,
                    &b.instance,
                    &(b.height as i32),
                    &&*b.worker,
                    &(b.time_ms as i64),
                    &(b.reward_sat as i64),
                    &b.network_difficulty,
                    &b.status,
                ],
            )
            .await?;
        }
        for v in rows.statuses.iter() {
            tx.execute(
                "UPDATE blocks SET status = $2 WHERE hash = $1",
                &[&v.hash, &v.status],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn share_count(&self) -> Result<u64, LedgerError> {
        let r = self
            .client
            .query_one("SELECT COUNT(*) FROM shares", &[])
            .await?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    pub(super) async fn blocks(&self) -> Result<Vec<BlockRow>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT hash, instance, height, worker, time_ms, reward_sat, network_difficulty, status FROM blocks ORDER BY time_ms DESC",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| BlockRow {
                hash: r.get(0),
                instance: r.get(1),
                height: r.get::<_, i32>(2) as u32,
                worker: r.get::<_, String>(3).into(),
                time_ms: r.get::<_, i64>(4) as u64,
                reward_sat: r.get::<_, i64>(5) as u64,
                network_difficulty: r.get(6),
                status: r.get(7),
            })
            .collect())
    }

    /// Fills `w` with shares newest first from `until_ms` back, a page at
    /// a time (keyset paging: each page starts below the last row seen).
    pub(super) async fn window(&self, until_ms: u64, mut w: Window) -> Result<Window, LedgerError> {
        let mut cursor = (until_ms as i64, i64::MAX);
        loop {
            let page = self
                .client
                .query(
                    "SELECT worker, difficulty, time_ms, id FROM shares WHERE (time_ms, id) < ($1, $2) ORDER BY time_ms DESC, id DESC LIMIT $3",
                    &[&cursor.0, &cursor.1, &PAGE],
                )
                .await?;
            let n = page.len() as i64;
            for r in page {
                cursor = (r.get(2), r.get(3));
                if !w.add(r.get::<_, &str>(0), r.get(1)) {
                    return Ok(w);
                }
            }
            if n < PAGE {
                return Ok(w);
            }
        }
    }

    pub(super) async fn span(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, f64, f64, u64)>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT worker, difficulty, network_difficulty, reward_sat FROM shares WHERE time_ms >= $1 AND time_ms < $2",
                &[&(from_ms as i64), &(to_ms as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) as u64))
            .collect())
    }
}
