//! The message record, shared by every instance. A send's and a receipt's
//! write is one statement each: one round trip, all or nothing.

use super::Postgres;
use super::state::millis;
use crate::outcome::Attempt;
use crate::outcome::DeliveryState;
use crate::record::{
    Entry, Handoff, HandoffFigure, MessageRecord, NewHandoff, RecordedMessage, assemble, is_final, number_hash,
    stored_attempt, stored_state, stored_status,
};
use anyhow::Result;
use async_trait::async_trait;
use std::time::Duration;

/// The retention purge runs at most this often, across all instances.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

#[async_trait]
impl MessageRecord for Postgres {
    async fn add(&self, entry: &Entry<'_>) -> Result<()> {
        let hash = number_hash(&self.number_key, entry.to);
        let masked = crate::phone::mask(entry.to);
        let segments = entry.segments as i32;
        let providers: Vec<&str> = entry.attempts.iter().map(|a| a.provider.as_str()).collect();
        let outcomes: Vec<&str> = entry.attempts.iter().map(|a| a.outcome.as_str()).collect();
        let took: Vec<i64> = entry.attempts.iter().map(|a| a.ms as i64).collect();
        self.run("record", async |c| {
            // One statement, so one round trip and all or nothing.
            let stmt = c
                .prepare_cached(
                    "WITH m AS (
                         INSERT INTO smsbridge.messages
                             (id, created_ms, route, to_masked, number_hash, provider, provider_id, segments)
                         VALUES ($1, smsbridge.now_ms(), $2, $3, $4, $5, $6, $7)
                         RETURNING id, created_ms
                     ), a AS (
                         INSERT INTO smsbridge.attempts (message_id, n, provider, outcome, ms)
                         SELECT m.id, t.n - 1, t.provider, t.outcome, t.ms
                         FROM m, unnest($9::text[], $10::text[], $11::bigint[]) WITH ORDINALITY
                             AS t(provider, outcome, ms, n)
                     ), h AS (
                         INSERT INTO smsbridge.handoffs
                             (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
                         SELECT m.id, 0, $5, $6, $12, 'first', $7, m.created_ms, $8 FROM m WHERE $6::text IS NOT NULL
                     )
                     INSERT INTO smsbridge.statuses (message_id, status, at_ms) SELECT m.id, $8, m.created_ms FROM m",
                )
                .await?;
            let status = entry.status.as_str();
            c.execute(
                &stmt,
                &[
                    &entry.id,
                    &entry.route,
                    &masked,
                    &hash,
                    &entry.provider,
                    &entry.provider_id,
                    &segments,
                    &status,
                    &providers,
                    &outcomes,
                    &took,
                    &entry.country,
                ],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn add_fallback(&self, id: &str, attempts: &[Attempt], handoff: Option<NewHandoff<'_>>) -> Result<()> {
        let providers: Vec<&str> = attempts.iter().map(|a| a.provider.as_str()).collect();
        let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
        let took: Vec<i64> = attempts.iter().map(|a| a.ms as i64).collect();
        let (provider, provider_id) = (handoff.as_ref().map(|h| h.provider), handoff.as_ref().map(|h| h.provider_id));
        let (why, country) = (handoff.as_ref().map(|h| h.why), handoff.as_ref().map(|h| h.country));
        let segments = handoff.as_ref().map(|h| h.segments as i32);
        self.run("record", async |c| {
            let stmt = c
                .prepare_cached(
                    "WITH a AS (
                         INSERT INTO smsbridge.attempts (message_id, n, provider, outcome, ms)
                         SELECT $1, (SELECT coalesce(max(n) + 1, 0) FROM smsbridge.attempts WHERE message_id = $1)
                                 + t.n - 1, t.provider, t.outcome, t.ms
                         FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY AS t(provider, outcome, ms, n)
                     ), h AS (
                         INSERT INTO smsbridge.handoffs
                             (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
                         SELECT $1, coalesce(max(n) + 1, 0), $5, $6, $7, $8, $9, smsbridge.now_ms(), 'queued'
                         FROM smsbridge.handoffs WHERE message_id = $1 HAVING $5::text IS NOT NULL
                         RETURNING message_id, provider
                     )
                     INSERT INTO smsbridge.statuses (message_id, status, at_ms, provider)
                     SELECT message_id, 'queued', smsbridge.now_ms(), provider FROM h",
                )
                .await?;
            c.execute(&stmt, &[&id, &providers, &outcomes, &took, &provider, &provider_id, &country, &why, &segments])
                .await
                .map(|_| ())
        })
        .await
    }

    /// One statement: the receipt, its handoff and the fallback waiting on
    /// the message change together.
    async fn update_status(&self, provider: &str, provider_id: &str, status: DeliveryState) -> Result<bool> {
        let found: i64 = self
            .run("record", async |c| {
                let stmt = c
                    .prepare_cached(
                        "WITH h AS (
                             UPDATE smsbridge.handoffs SET status = $3,
                                 settled_ms = CASE WHEN $4 THEN coalesce(settled_ms, smsbridge.now_ms())
                                     ELSE settled_ms END
                             WHERE provider = $1 AND provider_id = $2 RETURNING message_id
                         ), s AS (
                             INSERT INTO smsbridge.statuses (message_id, status, at_ms, provider)
                             SELECT message_id, $3, smsbridge.now_ms(), $1 FROM h
                         ), d AS (
                             DELETE FROM smsbridge.queue q USING h
                             WHERE q.id = h.message_id AND q.watching IS NOT NULL AND $3 = 'delivered'
                         ), u AS (
                             UPDATE smsbridge.queue q SET next_ms = smsbridge.now_ms() FROM h
                             WHERE q.id = h.message_id AND q.watching = $1 AND $3 IN ('undelivered', 'failed')
                         )
                         SELECT count(*) FROM h",
                    )
                    .await?;
                let row = c.query_one(&stmt, &[&provider, &provider_id, &status.as_str(), &is_final(status)]).await?;
                Ok(row.get(0))
            })
            .await?;
        Ok(found > 0)
    }

    async fn handoffs_since(&self, since_ms: u64) -> Result<Vec<HandoffFigure>> {
        let since = since_ms as i64;
        self.run("record", async |c| {
            let stmt = c
                .prepare_cached(
                    "SELECT provider, country, at_ms, status, settled_ms FROM smsbridge.handoffs WHERE at_ms >= $1",
                )
                .await?;
            let rows = c.query(&stmt, &[&since]).await?;
            Ok(rows
                .iter()
                .map(|r| HandoffFigure {
                    provider: r.get(0),
                    country: r.get(1),
                    at_ms: r.get::<_, i64>(2) as u64,
                    status: stored_state(r.get(3)),
                    settled_ms: r.get::<_, Option<i64>>(4).map(|ms| ms as u64),
                })
                .collect())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<RecordedMessage>> {
        Ok(self.get_all(vec![id.to_string()]).await?.pop())
    }

    /// Three prepared statements in one trip to the pool, whatever the
    /// number of messages.
    async fn get_all(&self, ids: Vec<String>) -> Result<Vec<RecordedMessage>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run("record", async |c| {
            let messages = c
                .prepare_cached(
                    "SELECT id, route, to_masked, provider, provider_id, segments, created_ms
                     FROM smsbridge.messages WHERE id = ANY($1)",
                )
                .await?;
            let attempts = c
                .prepare_cached(
                    "SELECT message_id, provider, outcome, ms FROM smsbridge.attempts
                     WHERE message_id = ANY($1) ORDER BY message_id, n",
                )
                .await?;
            let statuses = c
                .prepare_cached(
                    "SELECT message_id, status, at_ms, provider FROM smsbridge.statuses
                     WHERE message_id = ANY($1) ORDER BY message_id, seq",
                )
                .await?;
            let handoffs = c
                .prepare_cached(
                    "SELECT message_id, provider, provider_id, why, segments, at_ms, status, settled_ms
                     FROM smsbridge.handoffs WHERE message_id = ANY($1) ORDER BY message_id, n",
                )
                .await?;
            let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&ids];
            // Pipelined on the one connection: one round trip for the four.
            let (messages, attempts, statuses, handoffs) = tokio::try_join!(
                c.query(&messages, params),
                c.query(&attempts, params),
                c.query(&statuses, params),
                c.query(&handoffs, params)
            )?;
            let messages = messages
                .iter()
                .map(|r| RecordedMessage {
                    id: r.get(0),
                    route: r.get(1),
                    to: r.get(2),
                    provider: r.get(3),
                    provider_id: r.get(4),
                    segments: r.get::<_, i32>(5) as u32,
                    created_ms: r.get::<_, i64>(6) as u64,
                    attempts: Vec::new(),
                    statuses: Vec::new(),
                    handoffs: Vec::new(),
                })
                .collect();
            let attempts =
                attempts.iter().map(|r| (r.get(0), stored_attempt(r.get(1), r.get(2), r.get::<_, i64>(3) as u64)));
            let statuses =
                statuses.iter().map(|r| (r.get(0), stored_status(r.get(1), r.get::<_, i64>(2) as u64, r.get(3))));
            let handoffs = handoffs.iter().map(|r| {
                let handoff = Handoff {
                    provider: r.get(1),
                    provider_id: r.get(2),
                    why: r.get(3),
                    segments: r.get::<_, i32>(4) as u32,
                    at_ms: r.get::<_, i64>(5) as u64,
                    status: stored_state(r.get(6)),
                    settled_ms: r.get::<_, Option<i64>>(7).map(|ms| ms as u64),
                };
                (r.get(0), handoff)
            });
            Ok(assemble(&ids, messages, attempts.collect(), statuses.collect(), handoffs.collect()))
        })
        .await
    }

    async fn by_number(&self, e164: &str, limit: usize) -> Result<Vec<RecordedMessage>> {
        let hash = number_hash(&self.number_key, e164);
        let limit = limit.min(10_000) as i64;
        let ids: Vec<String> = self
            .run("record", async |c| {
                let rows = c
                    .query(
                        "SELECT id FROM smsbridge.messages WHERE number_hash = $1
                         ORDER BY created_ms DESC, id DESC LIMIT $2",
                        &[&hash, &limit],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await?;
        self.get_all(ids).await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<RecordedMessage>> {
        let limit = limit.min(10_000) as i64;
        let ids: Vec<String> = self
            .run("record", async |c| {
                let rows = c
                    .query("SELECT id FROM smsbridge.messages ORDER BY created_ms DESC, id DESC LIMIT $1", &[&limit])
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await?;
        self.get_all(ids).await
    }

    /// Purges for every instance, at most hourly: the instance that finds
    /// the job due runs it, the others return 0.
    async fn purge(&self, age: Duration) -> Result<usize> {
        let (age, every) = (millis(age), millis(PURGE_EVERY));
        self.run("purge", async |c| {
            c.execute("INSERT INTO smsbridge.jobs (name, last_ms) VALUES ('purge', 0) ON CONFLICT DO NOTHING", &[])
                .await?;
            let won = c
                .execute(
                    "UPDATE smsbridge.jobs SET last_ms = smsbridge.now_ms()
                     WHERE name = 'purge' AND last_ms <= smsbridge.now_ms() - $1",
                    &[&every],
                )
                .await?;
            if won == 0 {
                return Ok(0);
            }
            let cutoff = "smsbridge.now_ms() - $1";
            c.execute(&format!("DELETE FROM smsbridge.callbacks_seen WHERE at_ms < {cutoff}"), &[&age]).await?;
            // A thousand keys a call: each holds a lock until the call ends.
            while c.query_one("SELECT smsbridge.purge_limits()", &[]).await?.get::<_, i32>(0) == 1000 {}
            c.execute("DELETE FROM smsbridge.repeats WHERE expires_ms < smsbridge.now_ms()", &[]).await?;
            c.execute("DELETE FROM smsbridge.console_sessions WHERE ends_ms < smsbridge.now_ms()", &[]).await?;
            c.execute("DELETE FROM smsbridge.instances WHERE seen_ms < smsbridge.now_ms() - 86400000", &[]).await?;
            let n = c.execute(&format!("DELETE FROM smsbridge.messages WHERE created_ms < {cutoff}"), &[&age]).await?;
            Ok(n as usize)
        })
        .await
    }

    async fn forget_callback(&self, key: &str) -> Result<()> {
        self.run("record", async |c| {
            let stmt = c.prepare_cached("DELETE FROM smsbridge.callbacks_seen WHERE key = $1").await?;
            c.execute(&stmt, &[&key]).await
        })
        .await?;
        Ok(())
    }

    async fn first_callback(&self, key: &str) -> Result<bool> {
        let inserted = self
            .run("record", async |c| {
                let stmt = c
                    .prepare_cached(
                        "INSERT INTO smsbridge.callbacks_seen (key, at_ms) VALUES ($1, smsbridge.now_ms())
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                c.execute(&stmt, &[&key]).await
            })
            .await?;
        Ok(inserted == 1)
    }
}
