//! The embedded record's schema and its versioned migrations.

use anyhow::Result;
use rusqlite::Connection;

/// Set on every open: they belong to the connection, not the file.
pub(super) const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
-- A message answered 202 survives a power failure, and so does the mark
-- that keeps it from being sent twice.
PRAGMA synchronous = FULL;
-- Deleted rows (a delivered message's text) are overwritten, not left in
-- free pages.
PRAGMA secure_delete = ON;
PRAGMA foreign_keys = ON;
";

/// The schema's migrations, in order; a file's `user_version` counts those
/// applied. They only add, so an older smsbridge refuses a newer file
/// rather than misread it. The first creates what files from before
/// versioning already hold, so those adopt it as they are.
pub(super) const MIGRATIONS: &[&str] = &[SCHEMA_1, HANDOFFS_2];

const SCHEMA_1: &str = "
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
-- Verified callbacks already applied, by a digest of provider and content.
CREATE TABLE IF NOT EXISTS callbacks_seen (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
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
    uncertain TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (next_ms);
";

/// Fallbacks: a message may be taken by several providers, each with its
/// own id, receipts and cost; the handoffs feed the delivered-share figures.
const HANDOFFS_2: &str = "
CREATE TABLE handoffs (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    country TEXT NOT NULL,
    why TEXT NOT NULL,
    segments INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    settled_ms INTEGER,
    PRIMARY KEY (message_id, n)
);
CREATE INDEX handoffs_by_provider_id ON handoffs (provider, provider_id);
CREATE INDEX handoffs_by_age ON handoffs (at_ms);
INSERT INTO handoffs (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
    SELECT m.id, 0, m.provider, m.provider_id, '', 'first', m.segments, m.created_ms,
        coalesce((SELECT s.status FROM statuses s WHERE s.message_id = m.id ORDER BY s.rowid DESC LIMIT 1), 'queued')
    FROM messages m WHERE m.provider_id IS NOT NULL;
ALTER TABLE statuses ADD COLUMN provider TEXT;
-- The provider a delivered message's fallback waits on; NULL for messages
-- not yet delivered.
ALTER TABLE queue ADD COLUMN watching TEXT;
";

/// Applies the migrations `db` lacks, in one transaction that holds the
/// write lock; refuses a file a newer smsbridge migrated further.
pub(super) fn migrate(db: &mut Connection) -> Result<()> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        anyhow::bail!("its schema is version {applied}, from a newer smsbridge; this one knows {}", MIGRATIONS.len());
    }
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    tx.commit()?;
    Ok(())
}
