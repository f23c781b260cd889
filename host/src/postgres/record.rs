//! The message record and the queue, shared by every instance.
//!
//! A queued message is claimed by one instance at a time (`FOR UPDATE SKIP
//! LOCKED`) for a lease, which the owner renews while it delivers. Every
//! write about a claimed message names its owner: an instance whose lease
//! ran out (it stalled, or lost the database) can no longer mark, reschedule
//! or drop a message another instance has claimed since. A provider marked
//! as `sending` when the claim passed on may have the message: the new owner
//! counts it as uncertain and never sends it there.

use super::Postgres;
use super::state::millis;
use crate::outcome::Attempt;
use crate::outcome::DeliveryState;
use crate::record::{
    Entry, Handoff, HandoffFigure, MessageRecord, NewHandoff, Queue, Queued, RecordedMessage, assemble, is_final,
    now_ms, number_hash, stored_attempt, stored_state, stored_status,
};
use anyhow::{Result, bail};
use async_trait::async_trait;
use std::collections::HashSet;
use std::time::{Duration, Instant};

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

#[async_trait]
impl Queue for Postgres {
    async fn enqueue(&self, id: &str, route: &str, to: &str, body: &str, validity: Duration) -> Result<()> {
        let validity = millis(validity);
        self.run("enqueue", async |c| {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO smsbridge.queue (id, route, to_e164, body, expires_ms, next_ms)
                     VALUES ($1, $2, $3, $4, smsbridge.now_ms() + $5, smsbridge.now_ms())",
                )
                .await?;
            // Sealed: a backup, a replica or the WAL holds no number and no code.
            let (to, body) = (self.sealer.seal(id, to), self.sealer.seal(id, body));
            c.execute(&stmt, &[&id, &route, &to, &body, &validity]).await
        })
        .await?;
        Ok(())
    }

    /// Nothing to do: a claim counts the previous owner's `sending` as
    /// uncertain, so a message an instance left mid-send is safe as it is.
    async fn recover(&self) -> Result<usize> {
        Ok(0)
    }

    async fn due(&self, limit: usize, busy: &HashSet<String>) -> Result<Vec<Queued>> {
        let (owner, lease, limit) = (self.owner.as_str(), millis(self.lease), limit as i64);
        let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
        let rows = self
            .run("claim", async |c| {
                let stmt = c
                    .prepare_cached(
                        "WITH due AS (
                             SELECT id FROM smsbridge.queue
                             WHERE next_ms <= smsbridge.now_ms() AND lease_ms <= smsbridge.now_ms()
                                 AND NOT (id = ANY($4))
                             ORDER BY next_ms, id LIMIT $3
                             FOR UPDATE SKIP LOCKED
                         )
                         UPDATE smsbridge.queue q
                         SET owner = $1, lease_ms = smsbridge.now_ms() + $2, sending = NULL,
                             uncertain = CASE
                                 WHEN q.sending IS NULL OR q.sending = ANY(q.uncertain) THEN q.uncertain
                                 ELSE array_append(q.uncertain, q.sending) END
                         FROM due WHERE q.id = due.id
                         RETURNING q.id, q.route, q.to_e164, q.body, q.expires_ms - smsbridge.now_ms(), q.tries,
                             q.uncertain, q.next_ms, q.watching",
                    )
                    .await?;
                c.query(&stmt, &[&owner, &lease, &limit, &busy]).await
            })
            .await?;
        *self.renewed.lock().unwrap() = Some(Instant::now());
        let mut out: Vec<(i64, Queued)> = rows
            .iter()
            .filter_map(|r| {
                let left = r.get::<_, i64>(4).max(0) as u64;
                let id: String = r.get(0);
                let opened = self.sealer.open(&id, r.get(2)).and_then(|to| Ok((to, self.sealer.open(&id, r.get(3))?)));
                let (to, body) = match opened {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Another instance, with the right number_key, may open it.
                        tracing::error!("{e:#}; check that [record] number_key is the same on every instance");
                        return None;
                    }
                };
                let queued = Queued {
                    id,
                    route: r.get(1),
                    to,
                    body,
                    // The database's expiry, on this instance's clock.
                    expires_ms: now_ms() + left,
                    tries: r.get::<_, i32>(5).max(0) as u32,
                    uncertain: r.get(6),
                    watching: r.get(8),
                };
                Some((r.get::<_, i64>(7), queued))
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(out.into_iter().map(|(_, q)| q).collect())
    }

    /// Extends this instance's leases, a third of a lease after the last
    /// extension at most.
    async fn renew(&self, ids: &[String]) -> Result<()> {
        let due = self.renewed.lock().unwrap().is_none_or(|at| at.elapsed() >= self.lease / 3);
        if ids.is_empty() || !due {
            return Ok(());
        }
        let (owner, lease) = (self.owner.as_str(), millis(self.lease));
        self.run("renew", async |c| {
            c.execute(
                "UPDATE smsbridge.queue SET lease_ms = smsbridge.now_ms() + $2 WHERE owner = $1 AND id = ANY($3)",
                &[&owner, &lease, &ids],
            )
            .await
        })
        .await?;
        *self.renewed.lock().unwrap() = Some(Instant::now());
        Ok(())
    }

    /// Refused (so the request does not leave) unless this instance still
    /// holds the message's lease.
    async fn mark_sending(&self, id: &str, provider: &str) -> Result<()> {
        let (owner, lease) = (self.owner.as_str(), millis(self.lease));
        let marked = self
            .run("mark", async |c| {
                let stmt = c
                    .prepare_cached(
                        "UPDATE smsbridge.queue SET sending = $2,
                             lease_ms = greatest(lease_ms, smsbridge.now_ms() + $4)
                         WHERE id = $1 AND owner = $3 AND lease_ms > smsbridge.now_ms()",
                    )
                    .await?;
                c.execute(&stmt, &[&id, &provider, &owner, &lease]).await
            })
            .await?;
        if marked == 0 {
            bail!("queued message {id}: this instance's claim ran out; another may deliver it");
        }
        Ok(())
    }

    async fn clear_sending(&self, id: &str) -> Result<()> {
        let owner = self.owner.as_str();
        self.owned_write("clear", "UPDATE smsbridge.queue SET sending = NULL WHERE id = $1 AND owner = $2", id, owner)
            .await
    }

    async fn reschedule(&self, id: &str, wait: Duration, uncertain: &[String]) -> Result<()> {
        let (owner, wait) = (self.owner.as_str(), millis(wait));
        let n = self
            .run("reschedule", async |c| {
                let stmt = c
                    .prepare_cached(
                        "UPDATE smsbridge.queue SET next_ms = smsbridge.now_ms() + $3, tries = tries + 1,
                             sending = NULL, uncertain = $4, owner = NULL, lease_ms = 0
                         WHERE id = $1 AND owner = $2",
                    )
                    .await?;
                c.execute(&stmt, &[&id, &owner, &wait, &uncertain]).await
            })
            .await?;
        lost(id, n);
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
        let (validity, after, watching) = (millis(validity), millis(after), had.last());
        self.run("watch", async |c| {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO smsbridge.queue (id, route, to_e164, body, expires_ms, next_ms, uncertain, watching)
                     VALUES ($1, $2, $3, $4, smsbridge.now_ms() + $5, smsbridge.now_ms() + $6, $7, $8)",
                )
                .await?;
            let (to, body) = (self.sealer.seal(id, to), self.sealer.seal(id, body));
            c.execute(&stmt, &[&id, &route, &to, &body, &validity, &after, &had, &watching]).await
        })
        .await?;
        Ok(())
    }

    async fn watch_next(&self, id: &str, after: Duration, had: &[String]) -> Result<()> {
        let (owner, after, watching) = (self.owner.as_str(), millis(after), had.last());
        let n = self
            .run("watch", async |c| {
                let stmt = c
                    .prepare_cached(
                        "UPDATE smsbridge.queue SET next_ms = smsbridge.now_ms() + $3, sending = NULL, uncertain = $4,
                             watching = $5, owner = NULL, lease_ms = 0
                         WHERE id = $1 AND owner = $2",
                    )
                    .await?;
                c.execute(&stmt, &[&id, &owner, &after, &had, &watching]).await
            })
            .await?;
        lost(id, n);
        Ok(())
    }

    async fn dequeue(&self, id: &str) -> Result<()> {
        let owner = self.owner.as_str();
        self.owned_write("dequeue", "DELETE FROM smsbridge.queue WHERE id = $1 AND owner = $2", id, owner).await
    }
}

impl Postgres {
    /// A write about a message this instance claimed.
    async fn owned_write(&self, op: &'static str, sql: &'static str, id: &str, owner: &str) -> Result<()> {
        let n = self
            .run(op, async |c| {
                let stmt = c.prepare_cached(sql).await?;
                c.execute(&stmt, &[&id, &owner]).await
            })
            .await?;
        lost(id, n);
        Ok(())
    }
}

/// A write that found the message claimed by another instance (this one's
/// lease ran out): the other instance decides now.
fn lost(id: &str, rows: u64) {
    if rows == 0 {
        tracing::warn!(%id, "queued message claimed by another instance meanwhile; left to it");
    }
}
