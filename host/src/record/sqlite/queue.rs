//! The embedded queue of queued routes, in the record's database: each
//! message's text and number sealed, and the providers that may have it.

use super::SqliteRecord;
use crate::record::{Queue, Queued, now_ms};
use anyhow::{Context, Result};
use async_trait::async_trait;
use rusqlite::params;
use std::collections::HashSet;
use std::time::Duration;

#[async_trait]
impl Queue for SqliteRecord {
    /// Accepts a message of a queued route, to be delivered within `validity`.
    async fn enqueue(&self, id: &str, route: &str, to: &str, body: &str, validity: Duration) -> Result<()> {
        let now = now_ms();
        let sealer = &self.inner.sealer;
        let row = (id.to_string(), route.to_string(), sealer.seal(id, to), sealer.seal(id, body));
        let sql = "INSERT INTO queue (id, route, to_e164, body, expires_ms, next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        self.execute(sql, (row.0, row.1, row.2, row.3, now + validity.as_millis() as u64, now)).await?;
        Ok(())
    }

    /// After a restart: a request that was on its way when the process
    /// stopped may have reached its provider, which must not get it again.
    async fn recover(&self) -> Result<usize> {
        self.run(|_, db| {
            let tx = db.transaction()?;
            let on_the_way: Vec<(String, String, String)> = tx
                .prepare("SELECT id, uncertain, sending FROM queue WHERE sending IS NOT NULL")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, uncertain, sending) in &on_the_way {
                let uncertain = stored_uncertain(uncertain, Some(sending.clone()))?;
                tx.execute(
                    "UPDATE queue SET uncertain = ?2, sending = NULL WHERE id = ?1",
                    params![id, serde_json::to_string(&uncertain)?],
                )?;
            }
            tx.commit()?;
            Ok(on_the_way.len())
        })
        .await
    }

    /// Queued messages due now, oldest first, leaving out `busy` ones.
    async fn due(&self, limit: usize, busy: &HashSet<String>) -> Result<Vec<Queued>> {
        let busy = busy.clone();
        self.run(move |inner, db| {
            let mut q = db.prepare_cached(
                "SELECT id, route, to_e164, body, expires_ms, tries, uncertain, sending, watching FROM queue
             WHERE next_ms <= ?1 ORDER BY next_ms, id LIMIT ?2",
            )?;
            let rows = q.query_map(params![now_ms(), (limit + busy.len()) as i64], |r| {
                // A provider still marked as sending (a crash before `recover`
                // could write) may have the message too.
                let uncertain = stored_uncertain(&r.get::<_, String>(6)?, r.get(7)?)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into()))?;
                let id: String = r.get(0)?;
                let open = |column: usize| -> rusqlite::Result<String> {
                    let sealed: String = r.get(column)?;
                    inner.sealer.open(&id, &sealed).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
                };
                Ok(Queued {
                    to: open(2)?,
                    body: open(3)?,
                    id,
                    route: r.get(1)?,
                    expires_ms: r.get(4)?,
                    tries: r.get(5)?,
                    uncertain,
                    watching: r.get(8)?,
                })
            })?;
            let mut out = Vec::new();
            for row in rows {
                let row = row?;
                if !busy.contains(&row.id) && out.len() < limit {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }

    /// `provider` may get the message from here on.
    async fn mark_sending(&self, id: &str, provider: &str) -> Result<()> {
        self.execute("UPDATE queue SET sending = ?2 WHERE id = ?1", (id.to_string(), provider.to_string())).await?;
        Ok(())
    }

    /// The attempt ended with an answer: no longer in doubt.
    async fn clear_sending(&self, id: &str) -> Result<()> {
        self.execute("UPDATE queue SET sending = NULL WHERE id = ?1", (id.to_string(),)).await?;
        Ok(())
    }

    /// Tries again after `wait`.
    async fn reschedule(&self, id: &str, wait: Duration, uncertain: &[String]) -> Result<()> {
        let uncertain = serde_json::to_string(uncertain)?;
        let sql = "UPDATE queue SET next_ms = ?2, tries = tries + 1, sending = NULL, uncertain = ?3 WHERE id = ?1";
        self.execute(sql, (id.to_string(), now_ms() + wait.as_millis() as u64, uncertain)).await?;
        Ok(())
    }

    async fn watch(
        &self,
        id: &str,
        route: &str,
        to: &str,
        body: &str,
        validity: Duration,
        after: Duration,
        had: &[String],
    ) -> Result<()> {
        let now = now_ms();
        let sealer = &self.inner.sealer;
        let row = (id.to_string(), route.to_string(), sealer.seal(id, to), sealer.seal(id, body));
        let (expires, due) = (now + validity.as_millis() as u64, now + after.as_millis() as u64);
        let (had, watching) = (serde_json::to_string(had)?, had.last().cloned());
        let sql = "INSERT INTO queue (id, route, to_e164, body, expires_ms, next_ms, uncertain, watching)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
        self.execute(sql, (row.0, row.1, row.2, row.3, expires, due, had, watching)).await?;
        Ok(())
    }

    async fn watch_next(&self, id: &str, after: Duration, had: &[String]) -> Result<()> {
        let (json, watching) = (serde_json::to_string(had)?, had.last().cloned());
        let sql = "UPDATE queue SET next_ms = ?2, sending = NULL, uncertain = ?3, watching = ?4 WHERE id = ?1";
        self.execute(sql, (id.to_string(), now_ms() + after.as_millis() as u64, json, watching)).await?;
        Ok(())
    }

    /// The message is done with: delivered, refused or expired.
    async fn dequeue(&self, id: &str) -> Result<()> {
        self.execute("DELETE FROM queue WHERE id = ?1", (id.to_string(),)).await?;
        Ok(())
    }
}

/// The providers that may have a queued message: the stored list (JSON, so
/// no name can split into two), an older file's comma list, and `sending`.
pub(super) fn stored_uncertain(stored: &str, sending: Option<String>) -> Result<Vec<String>> {
    let mut uncertain: Vec<String> = if stored.starts_with('[') {
        serde_json::from_str(stored).context("a queued message's uncertain providers")?
    } else {
        stored.split(',').filter(|p| !p.is_empty()).map(Into::into).collect()
    };
    if let Some(p) = sending.filter(|p| !uncertain.contains(p)) {
        uncertain.push(p);
    }
    Ok(uncertain)
}
