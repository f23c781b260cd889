//! Limits and repeats across instances.

use super::Postgres;
use crate::state::{Bucket, Claim, Full, SharedState};
use anyhow::Result;
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl SharedState for Postgres {
    /// One call of `smsbridge.admit`, which locks the keys and counts.
    async fn admit(&self, buckets: &[Bucket]) -> Result<Result<(), Full>> {
        let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        let limits: Vec<i32> = buckets.iter().map(|b| b.limit.min(i32::MAX as u32) as i32).collect();
        let windows: Vec<i64> = buckets.iter().map(|b| millis(b.window)).collect();
        let full = self
            .run("admit", async |c| {
                let stmt = c.prepare_cached("SELECT full_index, retry_ms FROM smsbridge.admit($1, $2, $3)").await?;
                c.query_opt(&stmt, &[&keys, &limits, &windows]).await
            })
            .await?;
        Ok(match full {
            None => Ok(()),
            Some(row) => Err(Full {
                index: row.get::<_, i32>(0) as usize,
                retry_after: Duration::from_millis(row.get::<_, i64>(1).max(0) as u64),
            }),
        })
    }

    async fn claim(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<Claim> {
        let ttl = millis(ttl);
        self.run("claim", async |c| {
            // A new key, or one whose entry expired, is taken over in one
            // statement; otherwise the entry as it stands says who has it.
            let take = c
                .prepare_cached(
                    "INSERT INTO smsbridge.repeats (key, fingerprint, result, expires_ms)
                     VALUES ($1, $2, NULL, smsbridge.now_ms() + $3)
                     ON CONFLICT (key) DO UPDATE
                         SET fingerprint = EXCLUDED.fingerprint, result = NULL, expires_ms = EXCLUDED.expires_ms
                         WHERE smsbridge.repeats.expires_ms <= smsbridge.now_ms()",
                )
                .await?;
            let look = c
                .prepare_cached(
                    "SELECT fingerprint, result FROM smsbridge.repeats
                     WHERE key = $1 AND expires_ms > smsbridge.now_ms()",
                )
                .await?;
            // The entry seen may go (released, expired) between the two
            // statements: then take it again.
            loop {
                if c.execute(&take, &[&key, &fingerprint, &ttl]).await? == 1 {
                    return Ok(Claim::New);
                }
                if let Some(row) = c.query_opt(&look, &[&key]).await? {
                    let (held, result): (String, Option<Vec<u8>>) = (row.get(0), row.get(1));
                    return Ok(match result {
                        _ if held != fingerprint => Claim::Conflict,
                        Some(result) => Claim::Done(result),
                        None => Claim::InFlight,
                    });
                }
            }
        })
        .await
    }

    async fn complete(&self, key: &str, result: Vec<u8>, ttl: Duration) -> Result<()> {
        let ttl = millis(ttl);
        self.run("complete", async |c| {
            let stmt = c
                .prepare_cached(
                    "UPDATE smsbridge.repeats SET result = $2, expires_ms = smsbridge.now_ms() + $3 WHERE key = $1",
                )
                .await?;
            c.execute(&stmt, &[&key, &result, &ttl]).await
        })
        .await?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<()> {
        self.run("release", async |c| {
            let stmt = c.prepare_cached("DELETE FROM smsbridge.repeats WHERE key = $1").await?;
            c.execute(&stmt, &[&key]).await
        })
        .await?;
        Ok(())
    }

    async fn session_open(&self, key: &str, idle: Duration, max: Duration) -> Result<()> {
        let (idle, max) = (millis(idle), millis(max));
        self.run("session", async |c| {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO smsbridge.console_sessions (key, idle_ms, ends_ms)
                     VALUES ($1, smsbridge.now_ms() + $2, smsbridge.now_ms() + $3)",
                )
                .await?;
            c.execute(&stmt, &[&key, &idle, &max]).await
        })
        .await?;
        Ok(())
    }

    async fn session_touch(&self, key: &str, idle: Duration) -> Result<bool> {
        let idle = millis(idle);
        let touched = self
            .run("session", async |c| {
                let stmt = c
                    .prepare_cached(
                        "UPDATE smsbridge.console_sessions SET idle_ms = smsbridge.now_ms() + $2
                         WHERE key = $1 AND idle_ms > smsbridge.now_ms() AND ends_ms > smsbridge.now_ms()",
                    )
                    .await?;
                c.execute(&stmt, &[&key, &idle]).await
            })
            .await?;
        Ok(touched == 1)
    }

    async fn session_close(&self, key: &str) -> Result<()> {
        self.run("session", async |c| {
            let stmt = c.prepare_cached("DELETE FROM smsbridge.console_sessions WHERE key = $1").await?;
            c.execute(&stmt, &[&key]).await
        })
        .await?;
        Ok(())
    }
}

pub(super) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
