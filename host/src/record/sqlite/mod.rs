//! The embedded message record and queue: one SQLite database (WAL).

use super::{
    Entry, Handoff, HandoffFigure, MessageRecord, NewHandoff, RecordedMessage, assemble, is_final, now_ms,
    stored_attempt, stored_state, stored_status,
};
use crate::outcome::Attempt;
use crate::outcome::DeliveryState;
use anyhow::{Context, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod queue;
mod schema;

use schema::{PRAGMAS, migrate};

/// How long opening waits for another process's write lock.
const OPEN_WAIT: Duration = Duration::from_secs(60);

/// The record, whose every query runs on tokio's blocking pool: writes
/// fsync (`synchronous = FULL`), and a worker thread waiting on the disk
/// would stall every task scheduled on it.
pub struct SqliteRecord {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<Connection>,
    /// Keys the number hashes: without it, a hash of a phone number is a
    /// guessable lookup table away from the number.
    key: Vec<u8>,
    /// Seals queued messages' numbers and texts: the WAL and a copy of the
    /// file hold neither.
    sealer: crate::keyed::Sealer,
}

impl SqliteRecord {
    /// Opens (or creates) the database at `path`. The number-hash key is
    /// `key` when the operator gives one, else one made on first open and
    /// kept in the database.
    pub fn open(path: &Path, key: Option<&str>) -> Result<SqliteRecord> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        private_files(path)?;
        let mut db =
            Connection::open(path).with_context(|| format!("cannot open message record {}", path.display()))?;
        // Another process's write lock (a backup, say) is waited for briefly; the
        // queue holds its messages and retries a write that still fails.
        db.busy_timeout(Duration::from_secs(2))?;
        // Another process may hold the write lock for a while (a backup):
        // wait for it rather than fail to start.
        let started = std::time::Instant::now();
        while let Err(e) = db.execute_batch(PRAGMAS).map_err(anyhow::Error::from).and_then(|()| migrate(&mut db)) {
            let busy = matches!(
                e.downcast_ref::<rusqlite::Error>().and_then(|e| e.sqlite_error_code()),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            if !busy || started.elapsed() > OPEN_WAIT {
                return Err(e).with_context(|| format!("{}: not a message record", path.display()));
            }
            tracing::warn!("message record {} is locked by another process; waiting", path.display());
        }
        let key = match key {
            Some(k) => k.as_bytes().to_vec(),
            None => {
                // Kept apart from the hashes: a copy of the database alone
                // cannot be reversed into numbers. A key an older version
                // kept in the database moves out to the file.
                let stored: Option<Vec<u8>> =
                    db.query_row("SELECT value FROM meta WHERE name = 'number_key'", [], |r| r.get(0)).optional()?;
                let moved = stored.is_some();
                let key = crate::keyfile::load_or_create(&crate::keyfile::beside(path), || stored)?;
                if moved {
                    db.execute("DELETE FROM meta WHERE name = 'number_key'", [])?;
                }
                key
            }
        };
        let sealer = crate::keyed::Sealer::new(&crate::keyed::Keyed::new(&key).derive("queue"));
        Ok(SqliteRecord { inner: Arc::new(Inner { db: Mutex::new(db), key, sealer }) })
    }

    /// The keyed hash under which messages to `e164` are found.
    pub fn number_hash(&self, e164: &str) -> String {
        super::number_hash(&self.inner.key, e164)
    }

    /// Runs one statement, prepared once, off the async workers; the rows
    /// it changed.
    async fn execute<P: rusqlite::Params + Send + 'static>(&self, sql: &'static str, params: P) -> Result<usize> {
        self.run(move |_, db| Ok(db.prepare_cached(sql)?.execute(params)?)).await
    }

    /// Runs `work` on the connection, off the async workers.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic mid-query rolls its transaction back: the connection
            // is still sound.
            let mut db = inner.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&inner, &mut db)
        })
        .await
        .context("the message record's thread")?
    }
}

/// The record's file and SQLite's `-wal` and `-shm` beside it, readable by
/// this user only: SQLite gives the latter two the database file's mode, so
/// the file is made 0600 before SQLite opens it.
fn private_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open message record {}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if file.exists() {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", file.display()))?;
        }
    }
    Ok(())
}

/// Messages `ids` with their attempts and statuses, in three statements
/// prepared once, whatever the number of messages.
fn read_messages(db: &Connection, ids: &[String]) -> Result<Vec<RecordedMessage>> {
    let wanted = serde_json::to_string(ids)?;
    let messages = db
        .prepare_cached(
            "SELECT id, route, to_masked, provider, provider_id, segments, created_ms FROM messages
             WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([&wanted], |r| {
            Ok(RecordedMessage {
                id: r.get(0)?,
                route: r.get(1)?,
                to: r.get(2)?,
                provider: r.get(3)?,
                provider_id: r.get(4)?,
                segments: r.get(5)?,
                created_ms: r.get(6)?,
                attempts: Vec::new(),
                statuses: Vec::new(),
                handoffs: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let attempts = db
        .prepare_cached(
            "SELECT message_id, provider, outcome, ms FROM attempts
             WHERE message_id IN (SELECT value FROM json_each(?1)) ORDER BY message_id, n",
        )?
        .query_map([&wanted], |r| {
            let outcome: String = r.get(2)?;
            Ok((r.get(0)?, stored_attempt(r.get(1)?, &outcome, r.get(3)?)))
        })?
        .collect::<Result<_, _>>()?;
    let statuses = db
        .prepare_cached(
            "SELECT message_id, status, at_ms, provider FROM statuses
             WHERE message_id IN (SELECT value FROM json_each(?1)) ORDER BY message_id, rowid",
        )?
        .query_map([&wanted], |r| {
            let status: String = r.get(1)?;
            Ok((r.get(0)?, stored_status(&status, r.get(2)?, r.get(3)?)))
        })?
        .collect::<Result<_, _>>()?;
    let handoffs = db
        .prepare_cached(
            "SELECT message_id, provider, provider_id, why, segments, at_ms, status, settled_ms FROM handoffs
             WHERE message_id IN (SELECT value FROM json_each(?1)) ORDER BY message_id, n",
        )?
        .query_map([&wanted], |r| {
            let status: String = r.get(6)?;
            let handoff = Handoff {
                provider: r.get(1)?,
                provider_id: r.get(2)?,
                why: r.get(3)?,
                segments: r.get(4)?,
                at_ms: r.get(5)?,
                status: stored_state(&status),
                settled_ms: r.get(7)?,
            };
            Ok((r.get(0)?, handoff))
        })?
        .collect::<Result<_, _>>()?;
    Ok(assemble(ids, messages, attempts, statuses, handoffs))
}

#[async_trait]
impl MessageRecord for SqliteRecord {
    /// Records one send and its first status.
    async fn add(&self, entry: &Entry<'_>) -> Result<()> {
        let now = now_ms();
        let hash = self.number_hash(entry.to);
        let masked = crate::phone::mask(entry.to);
        let (id, route, provider) = (entry.id.to_string(), entry.route.to_string(), entry.provider.to_string());
        let (provider_id, segments, status) = (entry.provider_id.map(String::from), entry.segments, entry.status);
        let attempts = entry.attempts.to_vec();
        let country = entry.country.to_string();
        self.run(move |_, db| {
            let tx = db.transaction()?;
            tx.execute(
                "INSERT INTO messages (id, created_ms, route, to_masked, number_hash, provider, provider_id, segments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, now, route, masked, hash, provider, provider_id, segments],
            )?;
            for (n, a) in attempts.iter().enumerate() {
                tx.execute(
                    "INSERT INTO attempts (message_id, n, provider, outcome, ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, n as i64, a.provider, a.outcome.as_str(), a.ms],
                )?;
            }
            tx.execute(
                "INSERT INTO statuses (message_id, status, at_ms) VALUES (?1, ?2, ?3)",
                params![id, status.as_str(), now],
            )?;
            if let Some(provider_id) = &provider_id {
                tx.execute(
                    "INSERT INTO handoffs (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
                     VALUES (?1, 0, ?2, ?3, ?4, 'first', ?5, ?6, ?7)",
                    params![id, provider, provider_id, country, segments, now, status.as_str()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn add_fallback(&self, id: &str, attempts: &[Attempt], handoff: Option<NewHandoff<'_>>) -> Result<()> {
        let (id, attempts) = (id.to_string(), attempts.to_vec());
        let handoff = handoff.map(|h| {
            (h.provider.to_string(), h.provider_id.to_string(), h.why.to_string(), h.segments, h.country.to_string())
        });
        self.run(move |_, db| {
            let now = now_ms();
            let tx = db.transaction()?;
            let first: i64 =
                tx.query_row("SELECT coalesce(max(n) + 1, 0) FROM attempts WHERE message_id = ?1", [&id], |r| {
                    r.get(0)
                })?;
            for (n, a) in attempts.iter().enumerate() {
                tx.execute(
                    "INSERT INTO attempts (message_id, n, provider, outcome, ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, first + n as i64, a.provider, a.outcome.as_str(), a.ms],
                )?;
            }
            if let Some((provider, provider_id, why, segments, country)) = &handoff {
                tx.execute(
                    "INSERT INTO handoffs (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
                     SELECT ?1, coalesce(max(n) + 1, 0), ?2, ?3, ?4, ?5, ?6, ?7, 'queued'
                     FROM handoffs WHERE message_id = ?1",
                    params![id, provider, provider_id, country, why, segments, now],
                )?;
                tx.execute(
                    "INSERT INTO statuses (message_id, status, at_ms, provider) VALUES (?1, 'queued', ?2, ?3)",
                    params![id, now, provider],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn handoffs_since(&self, since_ms: u64) -> Result<Vec<HandoffFigure>> {
        self.run(move |_, db| {
            let figures = db
                .prepare_cached("SELECT provider, country, at_ms, status, settled_ms FROM handoffs WHERE at_ms >= ?1")?
                .query_map([since_ms], |r| {
                    let status: String = r.get(3)?;
                    Ok(HandoffFigure {
                        provider: r.get(0)?,
                        country: r.get(1)?,
                        at_ms: r.get(2)?,
                        status: stored_state(&status),
                        settled_ms: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(figures)
        })
        .await
    }

    /// Adds `status` to the timeline of the message `provider` knows as
    /// `provider_id`; false when there is no such message.
    async fn update_status(&self, provider: &str, provider_id: &str, status: DeliveryState) -> Result<bool> {
        let (provider, provider_id) = (provider.to_string(), provider_id.to_string());
        self.run(move |_, db| {
            let now = now_ms();
            let tx = db.transaction()?;
            let found: Option<(String, i64)> = tx
                .query_row(
                    "SELECT message_id, n FROM handoffs WHERE provider = ?1 AND provider_id = ?2",
                    params![provider, provider_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, n)) = found else { return Ok(false) };
            tx.execute(
                "INSERT INTO statuses (message_id, status, at_ms, provider) VALUES (?1, ?2, ?3, ?4)",
                params![id, status.as_str(), now, provider],
            )?;
            let settled = is_final(status).then_some(now);
            tx.execute(
                "UPDATE handoffs SET status = ?3, settled_ms = coalesce(settled_ms, ?4) WHERE message_id = ?1 AND n = ?2",
                params![id, n, status.as_str(), settled],
            )?;
            match status {
                DeliveryState::Delivered => {
                    tx.execute("DELETE FROM queue WHERE id = ?1 AND watching IS NOT NULL", [&id])?;
                }
                DeliveryState::Undelivered | DeliveryState::Failed => {
                    tx.execute(
                        "UPDATE queue SET next_ms = ?3 WHERE id = ?1 AND watching = ?2",
                        params![id, provider, now],
                    )?;
                }
                _ => {}
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<RecordedMessage>> {
        let id = id.to_string();
        self.run(move |_, db| Ok(read_messages(db, &[id])?.pop())).await
    }

    /// All of `ids` in one trip to the record's thread.
    async fn get_all(&self, ids: Vec<String>) -> Result<Vec<RecordedMessage>> {
        self.run(move |_, db| read_messages(db, &ids)).await
    }

    /// The latest `limit` messages to `e164`, newest first.
    async fn by_number(&self, e164: &str, limit: usize) -> Result<Vec<RecordedMessage>> {
        let hash = self.number_hash(e164);
        self.run(move |_, db| {
            let ids: Vec<String> = db
                .prepare_cached(
                    "SELECT id FROM messages WHERE number_hash = ?1 ORDER BY created_ms DESC, id DESC LIMIT ?2",
                )?
                .query_map(params![hash, limit as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            read_messages(db, &ids)
        })
        .await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<RecordedMessage>> {
        self.run(move |_, db| {
            let ids: Vec<String> = db
                .prepare_cached("SELECT id FROM messages ORDER BY created_ms DESC, id DESC LIMIT ?1")?
                .query_map(params![limit as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            read_messages(db, &ids)
        })
        .await
    }

    /// Deletes messages older than `age`; returns how many.
    async fn purge(&self, age: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        self.run(move |_, db| {
            db.execute("DELETE FROM callbacks_seen WHERE at_ms < ?1", [cutoff])?;
            Ok(db.execute("DELETE FROM messages WHERE created_ms < ?1", [cutoff])?)
        })
        .await
    }

    async fn forget_callback(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.run(move |_, db| {
            db.execute("DELETE FROM callbacks_seen WHERE key = ?1", [key])?;
            Ok(())
        })
        .await
    }

    async fn first_callback(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.run(move |_, db| {
            let sql = "INSERT OR IGNORE INTO callbacks_seen (key, at_ms) VALUES (?1, ?2)";
            Ok(db.prepare_cached(sql)?.execute(params![key, now_ms()])? == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
