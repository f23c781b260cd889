//! The schema, created and migrated at start by numbered migrations, each
//! applied once, in one transaction under an advisory lock: instances that
//! start together wait for each other instead of racing.

use anyhow::{Context, Result};

/// Migration `n` is `MIGRATIONS[n - 1]`. Append only: an applied migration
/// is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: everything the first shared version keeps.
    r#"
CREATE TABLE smsbridge.instances (owner text PRIMARY KEY, seen_ms bigint NOT NULL);

-- The database's clock, which every instance agrees on.
CREATE FUNCTION smsbridge.now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- One row per send counted, per limit key: exact sliding windows. A key's
-- expired rows go as it is next counted, so `limit_counts.n` (the rows a
-- key has) stays at most its limit, and a count is one row's update.
CREATE TABLE smsbridge.limit_events (
    key text NOT NULL,
    at_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE INDEX limit_events_by_key ON smsbridge.limit_events (key, at_ms);
CREATE TABLE smsbridge.limit_counts (key text PRIMARY KEY, n integer NOT NULL, expires_ms bigint NOT NULL);
CREATE INDEX limit_counts_by_expiry ON smsbridge.limit_counts (expires_ms);

-- Counts one send under every key if each has room; else counts nothing
-- and returns the first full key's index (from 0) and when it has room.
CREATE FUNCTION smsbridge.admit(keys text[], limits integer[], windows bigint[])
RETURNS TABLE (full_index integer, retry_ms bigint) LANGUAGE plpgsql AS $$
DECLARE
    t_now bigint := smsbridge.now_ms();
    h bigint;
    gone integer;
    n integer;
    oldest bigint;
BEGIN
    -- A count lost with the database's last moments is a send allowed
    -- twice, not a message lost: the commit need not wait for the disk,
    -- and the keys' locks are held that much shorter.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- The keys' locks, always in one order: two sends to one number
    -- count one after the other, never both into the last place.
    FOR h IN SELECT DISTINCT hashtextextended(k, 0) FROM unnest(keys) AS k ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(h);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        WITH expired AS (
            DELETE FROM smsbridge.limit_events e WHERE e.key = keys[i] AND e.at_ms <= t_now - windows[i] RETURNING 1
        ) SELECT count(*) INTO gone FROM expired;
        INSERT INTO smsbridge.limit_counts AS c (key, n, expires_ms) VALUES (keys[i], 0, t_now + windows[i])
            ON CONFLICT (key) DO UPDATE SET n = greatest(c.n - gone, 0)
            RETURNING c.n INTO n;
        IF n >= limits[i] THEN
            -- Room again when the oldest send still counted leaves the window.
            SELECT e.at_ms INTO oldest FROM smsbridge.limit_events e WHERE e.key = keys[i]
                ORDER BY e.at_ms OFFSET n - limits[i] LIMIT 1;
            full_index := i - 1;
            retry_ms := greatest(coalesce(oldest, t_now) + windows[i] - t_now, 0);
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
    INSERT INTO smsbridge.limit_events (key, at_ms, expires_ms)
        SELECT keys[i], t_now, t_now + windows[i] FROM generate_subscripts(keys, 1) AS i;
    UPDATE smsbridge.limit_counts c SET n = c.n + 1, expires_ms = t_now + w.window_ms
        FROM unnest(keys, windows) AS w(key, window_ms) WHERE c.key = w.key;
END $$;

-- Forgets up to 1000 keys whose every send has left its window, each under
-- its lock; how many it forgot.
CREATE FUNCTION smsbridge.purge_limits() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    k text;
    forgot integer := 0;
BEGIN
    FOR k IN SELECT c.key FROM smsbridge.limit_counts c WHERE c.expires_ms < smsbridge.now_ms() LIMIT 1000 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(k, 0));
        DELETE FROM smsbridge.limit_counts c WHERE c.key = k AND c.expires_ms < smsbridge.now_ms();
        IF FOUND THEN
            DELETE FROM smsbridge.limit_events e WHERE e.key = k;
            forgot := forgot + 1;
        END IF;
    END LOOP;
    RETURN forgot;
END $$;

-- Answers kept for repeated requests; `result` is null while in flight.
CREATE TABLE smsbridge.repeats (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    result bytea,
    expires_ms bigint NOT NULL
);
CREATE INDEX repeats_by_expiry ON smsbridge.repeats (expires_ms);

CREATE TABLE smsbridge.messages (
    id text PRIMARY KEY,
    created_ms bigint NOT NULL,
    route text NOT NULL,
    to_masked text NOT NULL,
    number_hash text NOT NULL,
    provider text NOT NULL,
    provider_id text,
    segments integer NOT NULL
);
CREATE INDEX messages_by_number ON smsbridge.messages (number_hash, created_ms);
CREATE INDEX messages_by_provider_id ON smsbridge.messages (provider, provider_id);
CREATE INDEX messages_by_age ON smsbridge.messages (created_ms);
CREATE TABLE smsbridge.attempts (
    message_id text NOT NULL REFERENCES smsbridge.messages (id) ON DELETE CASCADE,
    n integer NOT NULL,
    provider text NOT NULL,
    outcome text NOT NULL,
    ms bigint NOT NULL,
    PRIMARY KEY (message_id, n)
);
CREATE TABLE smsbridge.statuses (
    seq bigserial PRIMARY KEY,
    message_id text NOT NULL REFERENCES smsbridge.messages (id) ON DELETE CASCADE,
    status text NOT NULL,
    at_ms bigint NOT NULL
);
CREATE INDEX statuses_by_message ON smsbridge.statuses (message_id);
CREATE TABLE smsbridge.callbacks_seen (key text PRIMARY KEY, at_ms bigint NOT NULL);

-- Queued messages not yet delivered. An instance claims a row for a lease
-- (owner, lease_ms); `sending` names the provider a request may be on its
-- way to, `uncertain` the providers that may have the message.
CREATE TABLE smsbridge.queue (
    id text PRIMARY KEY,
    route text NOT NULL,
    to_e164 text NOT NULL,
    body text NOT NULL,
    expires_ms bigint NOT NULL,
    next_ms bigint NOT NULL,
    tries integer NOT NULL DEFAULT 0,
    sending text,
    uncertain text[] NOT NULL DEFAULT '{}',
    owner text,
    lease_ms bigint NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON smsbridge.queue (next_ms);

-- Jobs that one instance runs for all (the retention purge), by last run.
CREATE TABLE smsbridge.jobs (name text PRIMARY KEY, last_ms bigint NOT NULL);
"#,
    // 2: no number, code or unkeyed digest of either at rest. Limit and
    // repeat keys are now keyed MACs, so the old rows (numbers in clear,
    // unkeyed fingerprints) match nothing and go; queued messages are
    // sealed from now on. Console sessions are kept server-side.
    r#"
DELETE FROM smsbridge.repeats;
DELETE FROM smsbridge.limit_events;
DELETE FROM smsbridge.limit_counts;
CREATE TABLE smsbridge.console_sessions (key text PRIMARY KEY, idle_ms bigint NOT NULL, ends_ms bigint NOT NULL);
"#,
    // 3: fallbacks. A message may be taken by several providers, each with
    // its own id, receipts and cost; the handoffs feed the delivered-share
    // figures. A delivered message's queue row waits on `watching`.
    r#"
CREATE TABLE smsbridge.handoffs (
    message_id text NOT NULL REFERENCES smsbridge.messages (id) ON DELETE CASCADE,
    n integer NOT NULL,
    provider text NOT NULL,
    provider_id text NOT NULL,
    country text NOT NULL,
    why text NOT NULL,
    segments integer NOT NULL,
    at_ms bigint NOT NULL,
    status text NOT NULL,
    settled_ms bigint,
    PRIMARY KEY (message_id, n)
);
CREATE INDEX handoffs_by_provider_id ON smsbridge.handoffs (provider, provider_id);
CREATE INDEX handoffs_by_age ON smsbridge.handoffs (at_ms);
INSERT INTO smsbridge.handoffs (message_id, n, provider, provider_id, country, why, segments, at_ms, status)
    SELECT m.id, 0, m.provider, m.provider_id, '', 'first', m.segments, m.created_ms,
        coalesce((SELECT s.status FROM smsbridge.statuses s WHERE s.message_id = m.id ORDER BY s.seq DESC LIMIT 1),
            'queued')
    FROM smsbridge.messages m WHERE m.provider_id IS NOT NULL;
ALTER TABLE smsbridge.statuses ADD COLUMN provider text;
ALTER TABLE smsbridge.queue ADD COLUMN watching text;
"#,
];

/// Brings the schema up to the newest migration this build knows.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await?;
    // Any constant: smsbridge's migrations, one at a time across instances.
    tx.execute("SELECT pg_advisory_xact_lock(7013386)", &[]).await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS smsbridge;
         CREATE TABLE IF NOT EXISTS smsbridge.migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now());",
    )
    .await
    .context("state schema")?;
    let applied: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM smsbridge.migrations", &[]).await?.get(0);
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        // A newer smsbridge migrated it: migrations only add, so an older
        // one rolling out beside it still works.
        tracing::warn!(applied, known, "the state schema is newer than this smsbridge");
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let version = n as i32 + 1;
        tx.batch_execute(sql).await.with_context(|| format!("state schema migration {version}"))?;
        tx.execute("INSERT INTO smsbridge.migrations (version) VALUES ($1)", &[&version]).await?;
        tracing::info!(version, "state schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
