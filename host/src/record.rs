//! The durable message record, in an embedded SQLite database (WAL): for
//! every send, its id, route, masked number, a keyed hash of the full number
//! (for lookups), the provider and its id, every attempt, and the status
//! timeline. Never the message text, never the number in the clear.

use crate::gateway::Attempt;
use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::Sha256;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Record {
    db: Mutex<Connection>,
    /// Keys the number hashes: without it, a hash of a phone number is a
    /// guessable lookup table away from the number.
    key: Vec<u8>,
}

/// One message as the record knows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub id: String,
    pub route: String,
    pub to: String,
    pub provider: String,
    pub provider_id: Option<String>,
    pub segments: u32,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub attempts: Vec<Attempt>,
    pub statuses: Vec<Status>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// `queued`, `sent`, `delivered`, `undelivered` or `failed`.
    pub status: String,
    pub at_ms: u64,
}

/// A message waiting in the queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub route: String,
    pub to: String,
    pub body: String,
    pub expires_ms: u64,
    pub tries: u32,
    /// Providers that may already have it.
    pub uncertain: Vec<String>,
}

/// What one send came to, for [`Record::add`].
pub struct Entry<'a> {
    pub id: &'a str,
    pub route: &'a str,
    pub to: &'a str,
    pub provider: &'a str,
    pub provider_id: Option<&'a str>,
    pub segments: u32,
    pub attempts: &'a [Attempt],
    /// `queued` when a provider took it, `failed` when none did.
    pub status: &'a str,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    route TEXT NOT NULL,
    to_masked TEXT NOT NULL,
    number_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_id TEXT,
    segments INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_number ON messages (number_hash, created_ms);
CREATE INDEX IF NOT EXISTS messages_by_provider_id ON messages (provider, provider_id);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (created_ms);
CREATE TABLE IF NOT EXISTS attempts (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ms INTEGER NOT NULL,
    PRIMARY KEY (message_id, n)
);
CREATE TABLE IF NOT EXISTS statuses (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS statuses_by_message ON statuses (message_id);
-- Messages of queued routes, accepted and not yet delivered. The text and the
-- number are needed to deliver after a restart; the row goes once delivered.
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    to_e164 TEXT NOT NULL,
    body TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    next_ms INTEGER NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    -- The provider a request was about to reach, while it may be on its way.
    sending TEXT,
    -- Providers that may have the message from before a crash: never again.
    uncertain TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (next_ms);
PRAGMA foreign_keys = ON;
";

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The message record and the queue of a queued route, as the gateway and
/// the admin listener use them. [`Record`] (SQLite, embedded) is the default;
/// a shared database can serve several smsbridge instances through it.
pub trait MessageRecord: Send + Sync {
    /// Records one send and its first status.
    fn add(&self, entry: &Entry) -> Result<()>;
    /// Adds `status` to the timeline of the message `provider` knows as
    /// `provider_id`; false when there is no such message.
    fn update_status(&self, provider: &str, provider_id: &str, status: &str) -> Result<bool>;
    fn get(&self, id: &str) -> Result<Option<Message>>;
    /// The latest `limit` messages to `e164`, newest first.
    fn by_number(&self, e164: &str, limit: usize) -> Result<Vec<Message>>;
    /// Deletes messages older than `age`; returns how many.
    fn purge(&self, age: Duration) -> Result<usize>;
    /// Accepts a message of a queued route, to be delivered within `validity`.
    fn enqueue(&self, id: &str, route: &str, to: &str, body: &str, validity: Duration) -> Result<()>;
    /// After a restart, marks requests that were on their way as uncertain.
    fn recover(&self) -> Result<usize>;
    /// Queued messages due now, oldest first, leaving out `busy` ones.
    fn due(&self, limit: usize, busy: &std::collections::HashSet<String>) -> Result<Vec<Queued>>;
    /// `provider` may get the message from here on.
    fn mark_sending(&self, id: &str, provider: &str) -> Result<()>;
    /// The attempt ended with an answer: no longer in doubt.
    fn clear_sending(&self, id: &str) -> Result<()>;
    /// Tries again after `wait`.
    fn reschedule(&self, id: &str, wait: Duration) -> Result<()>;
    /// The message is done with: delivered, refused or expired.
    fn dequeue(&self, id: &str) -> Result<()>;
}

impl Record {
    /// Opens (or creates) the database at `path`. The number-hash key is
    /// `key` when the operator gives one, else one made on first open and
    /// kept in the database.
    pub fn open(path: &Path, key: Option<&str>) -> Result<Record> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let db = Connection::open(path).with_context(|| format!("cannot open message record {}", path.display()))?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.execute_batch(SCHEMA).with_context(|| format!("{}: not a message record", path.display()))?;
        let key = match key {
            Some(k) => k.as_bytes().to_vec(),
            None => {
                let stored: Option<Vec<u8>> =
                    db.query_row("SELECT value FROM meta WHERE name = 'number_key'", [], |r| r.get(0)).optional()?;
                match stored {
                    Some(k) => k,
                    None => {
                        let mut k = vec![0u8; 32];
                        getrandom::fill(&mut k)
                            .map_err(|e| anyhow::anyhow!("no randomness for the number key: {e}"))?;
                        db.execute("INSERT INTO meta (name, value) VALUES ('number_key', ?1)", [&k])?;
                        k
                    }
                }
            }
        };
        Ok(Record { db: Mutex::new(db), key })
    }

    /// The keyed hash under which messages to `e164` are found.
    pub fn number_hash(&self, e164: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(e164.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl MessageRecord for Record {
    /// Records one send and its first status.
    fn add(&self, entry: &Entry) -> Result<()> {
        let now = now_ms();
        let hash = self.number_hash(entry.to);
        let mut db = self.db.lock().unwrap();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO messages (id, created_ms, route, to_masked, number_hash, provider, provider_id, segments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.id,
                now,
                entry.route,
                crate::phone::mask(entry.to),
                hash,
                entry.provider,
                entry.provider_id,
                entry.segments
            ],
        )?;
        for (n, a) in entry.attempts.iter().enumerate() {
            tx.execute(
                "INSERT INTO attempts (message_id, n, provider, outcome, ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![entry.id, n as i64, a.provider, a.outcome, a.ms],
            )?;
        }
        tx.execute(
            "INSERT INTO statuses (message_id, status, at_ms) VALUES (?1, ?2, ?3)",
            params![entry.id, entry.status, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Adds `status` to the timeline of the message `provider` knows as
    /// `provider_id`; false when there is no such message.
    fn update_status(&self, provider: &str, provider_id: &str, status: &str) -> Result<bool> {
        let db = self.db.lock().unwrap();
        let id: Option<String> = db
            .query_row(
                "SELECT id FROM messages WHERE provider = ?1 AND provider_id = ?2",
                params![provider, provider_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(false) };
        db.execute(
            "INSERT INTO statuses (message_id, status, at_ms) VALUES (?1, ?2, ?3)",
            params![id, status, now_ms()],
        )?;
        Ok(true)
    }

    fn get(&self, id: &str) -> Result<Option<Message>> {
        let db = self.db.lock().unwrap();
        let row = db
            .query_row(
                "SELECT id, route, to_masked, provider, provider_id, segments, created_ms FROM messages WHERE id = ?1",
                [id],
                |r| {
                    Ok(Message {
                        id: r.get(0)?,
                        route: r.get(1)?,
                        to: r.get(2)?,
                        provider: r.get(3)?,
                        provider_id: r.get(4)?,
                        segments: r.get(5)?,
                        created_ms: r.get(6)?,
                        attempts: Vec::new(),
                        statuses: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut message) = row else { return Ok(None) };
        let mut q = db.prepare("SELECT provider, outcome, ms FROM attempts WHERE message_id = ?1 ORDER BY n")?;
        message.attempts = q
            .query_map([id], |r| Ok(Attempt { provider: r.get(0)?, outcome: r.get(1)?, ms: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
        let mut q = db.prepare("SELECT status, at_ms FROM statuses WHERE message_id = ?1 ORDER BY rowid")?;
        message.statuses =
            q.query_map([id], |r| Ok(Status { status: r.get(0)?, at_ms: r.get(1)? }))?.collect::<Result<_, _>>()?;
        Ok(Some(message))
    }

    /// The latest `limit` messages to `e164`, newest first.
    fn by_number(&self, e164: &str, limit: usize) -> Result<Vec<Message>> {
        let hash = self.number_hash(e164);
        let ids: Vec<String> = {
            let db = self.db.lock().unwrap();
            let mut q = db
                .prepare("SELECT id FROM messages WHERE number_hash = ?1 ORDER BY created_ms DESC, id DESC LIMIT ?2")?;
            q.query_map(params![hash, limit as i64], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.get(&id)?);
        }
        Ok(out)
    }

    /// Accepts a message of a queued route, to be delivered within `validity`.
    fn enqueue(&self, id: &str, route: &str, to: &str, body: &str, validity: Duration) -> Result<()> {
        let now = now_ms();
        self.db.lock().unwrap().execute(
            "INSERT INTO queue (id, route, to_e164, body, expires_ms, next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, route, to, body, now + validity.as_millis() as u64, now],
        )?;
        Ok(())
    }

    /// After a restart: a request that was on its way when the process
    /// stopped may have reached its provider, which must not get it again.
    fn recover(&self) -> Result<usize> {
        Ok(self.db.lock().unwrap().execute(
            "UPDATE queue SET uncertain = uncertain || sending || ',', sending = NULL WHERE sending IS NOT NULL",
            [],
        )?)
    }

    /// Queued messages due now, oldest first, leaving out `busy` ones.
    fn due(&self, limit: usize, busy: &std::collections::HashSet<String>) -> Result<Vec<Queued>> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(
            "SELECT id, route, to_e164, body, expires_ms, tries, uncertain FROM queue WHERE next_ms <= ?1 ORDER BY next_ms, id LIMIT ?2",
        )?;
        let rows = q.query_map(params![now_ms(), (limit + busy.len()) as i64], |r| {
            let uncertain: String = r.get(6)?;
            Ok(Queued {
                id: r.get(0)?,
                route: r.get(1)?,
                to: r.get(2)?,
                body: r.get(3)?,
                expires_ms: r.get(4)?,
                tries: r.get(5)?,
                uncertain: uncertain.split(',').filter(|p| !p.is_empty()).map(Into::into).collect(),
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
    }

    /// `provider` may get the message from here on.
    fn mark_sending(&self, id: &str, provider: &str) -> Result<()> {
        self.db.lock().unwrap().execute("UPDATE queue SET sending = ?2 WHERE id = ?1", params![id, provider])?;
        Ok(())
    }

    /// The attempt ended with an answer: no longer in doubt.
    fn clear_sending(&self, id: &str) -> Result<()> {
        self.db.lock().unwrap().execute("UPDATE queue SET sending = NULL WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Tries again after `wait`.
    fn reschedule(&self, id: &str, wait: Duration) -> Result<()> {
        self.db.lock().unwrap().execute(
            "UPDATE queue SET next_ms = ?2, tries = tries + 1, sending = NULL WHERE id = ?1",
            params![id, now_ms() + wait.as_millis() as u64],
        )?;
        Ok(())
    }

    /// The message is done with: delivered, refused or expired.
    fn dequeue(&self, id: &str) -> Result<()> {
        self.db.lock().unwrap().execute("DELETE FROM queue WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Deletes messages older than `age`; returns how many.
    fn purge(&self, age: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM messages WHERE created_ms < ?1", [cutoff])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: &'a str, to: &'a str, attempts: &'a [Attempt]) -> Entry<'a> {
        Entry {
            id,
            route: "/v1/send",
            to,
            provider: "twilio",
            provider_id: Some("SM1"),
            segments: 1,
            attempts,
            status: "queued",
        }
    }

    #[test]
    fn a_message_is_found_by_id_and_number_and_keeps_its_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/messages.db");
        let attempts = [Attempt { provider: "twilio".into(), outcome: "accepted".into(), ms: 12 }];
        let record = Record::open(&path, None).unwrap();
        record.add(&entry("m1", "+447400123456", &attempts)).unwrap();
        assert!(record.update_status("twilio", "SM1", "delivered").unwrap());
        assert!(!record.update_status("twilio", "SM-unknown", "delivered").unwrap());

        let m = record.get("m1").unwrap().unwrap();
        assert_eq!(m.to, "+4474****3456");
        assert_eq!(m.attempts, attempts);
        let timeline: Vec<&str> = m.statuses.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(timeline, ["queued", "delivered"]);
        assert_eq!(record.by_number("+447400123456", 10).unwrap(), vec![m]);
        assert!(record.by_number("+447400123457", 10).unwrap().is_empty());
        drop(record);

        // The key survives a restart, so lookups keep working; the file holds
        // no number in the clear.
        let record = Record::open(&path, None).unwrap();
        assert_eq!(record.by_number("+447400123456", 10).unwrap().len(), 1);
        drop(record);
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for file in [&bytes, &wal] {
            assert!(!file.windows(12).any(|w| w == b"447400123456"), "the number is in the file");
        }
    }

    #[test]
    fn purge_removes_old_messages_with_their_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record::open(&dir.path().join("m.db"), Some("operator-key")).unwrap();
        record.add(&entry("old", "+447400123456", &[])).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(record.purge(Duration::from_millis(10)).unwrap(), 1);
        assert_eq!(record.get("old").unwrap(), None);
        record.add(&entry("new", "+447400123456", &[])).unwrap();
        assert_eq!(record.purge(Duration::from_secs(3600)).unwrap(), 0);
    }
}
