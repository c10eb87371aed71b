//! The ledger in PostgreSQL: one ledger for many pool instances. A batch
//! is one `INSERT … SELECT FROM UNNEST(arrays)` per table in one
//! transaction: one round trip, however many rows.

use tokio_postgres::{Client, NoTls};

use super::{BlockRow, LedgerError, ShareRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shares (
    id BIGSERIAL PRIMARY KEY,
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
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    height INTEGER NOT NULL,
    worker TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    reward_sat BIGINT NOT NULL,
    network_difficulty DOUBLE PRECISION NOT NULL
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

    /// After a failed commit: a new connection if the old one is gone.
    pub(super) async fn reconnect(&mut self) {
        if self.client.is_closed() {
            match connect(&self.url).await {
                Ok(c) => self.client = c,
                Err(e) => tracing::warn!(error = %e, "ledger cannot reach PostgreSQL"),
            }
        }
    }

    pub(super) async fn write(
        &mut self,
        instance: &str,
        shares: &[ShareRow],
        blocks: &[BlockRow],
    ) -> Result<(), LedgerError> {
        // (Slices of the batch's shared vectors: nothing is copied.)
        let tx = self.client.transaction().await?;
        if !shares.is_empty() {
            let worker: Vec<&str> = shares.iter().map(|s| &*s.worker).collect();
            let difficulty: Vec<f64> = shares.iter().map(|s| s.difficulty).collect();
            let job: Vec<i64> = shares.iter().map(|s| s.job as i64).collect();
            let height: Vec<i32> = shares.iter().map(|s| s.height as i32).collect();
            let time: Vec<i64> = shares.iter().map(|s| s.time_ms as i64).collect();
            let prefix: Vec<i64> = shares.iter().map(|s| s.hash_prefix as i64).collect();
            let net: Vec<f64> = shares.iter().map(|s| s.network_difficulty).collect();
            let reward: Vec<i64> = shares.iter().map(|s| s.reward_sat as i64).collect();
            tx.execute(
                "INSERT INTO shares (instance, worker, difficulty, job, height, time_ms, hash_prefix, network_difficulty, reward_sat)
                 SELECT $1, * FROM UNNEST($2::text[], $3::float8[], $4::int8[], $5::int4[], $6::int8[], $7::int8[], $8::float8[], $9::int8[])",
                &[&instance, &worker, &difficulty, &job, &height, &time, &prefix, &net, &reward],
            )
            .await?;
        }
        for b in blocks {
            tx.execute(
                "INSERT INTO blocks (hash, instance, height, worker, time_ms, reward_sat, network_difficulty)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
                &[
                    &b.hash,
                    &b.instance,
                    &(b.height as i32),
                    &&*b.worker,
                    &(b.time_ms as i64),
                    &(b.reward_sat as i64),
                    &b.network_difficulty,
                ],
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
                "SELECT hash, instance, height, worker, time_ms, reward_sat, network_difficulty FROM blocks ORDER BY time_ms DESC",
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
            })
            .collect())
    }

    pub(super) async fn window(
        &self,
        until_ms: u64,
        window: f64,
    ) -> Result<Vec<(String, f64)>, LedgerError> {
        let mut out = Vec::new();
        let mut covered = 0.0;
        let mut offset = 0i64;
        while covered < window {
            let page = self
                .client
                .query(
                    "SELECT worker, difficulty FROM shares WHERE time_ms <= $1 ORDER BY time_ms DESC, id DESC LIMIT $2 OFFSET $3",
                    &[&(until_ms as i64), &PAGE, &offset],
                )
                .await?;
            let n = page.len() as i64;
            for r in page {
                let d: f64 = r.get(1);
                covered += d;
                out.push((r.get(0), d));
            }
            if n < PAGE {
                break;
            }
            offset += PAGE;
        }
        Ok(out)
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
