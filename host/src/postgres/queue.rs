//! The queue of queued routes and of fallbacks waiting for a receipt,
//! shared by every instance.
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
use crate::record::{Queue, Queued, now_ms};
use anyhow::{Result, bail};
use async_trait::async_trait;
use std::collections::HashSet;
use std::time::{Duration, Instant};

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
