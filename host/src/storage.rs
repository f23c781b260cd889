//! The one place that chooses where smsbridge keeps what it keeps: limit
//! counters and repeated answers ([`SharedState`]), the message record
//! ([`MessageRecord`]) and the queue of queued routes ([`Queue`]). Embedded by
//! default (memory, and SQLite with `[record]`), one PostgreSQL database for
//! all three with `[state]`. Everything above sees only the traits, and
//! health asks the shared backend, if any, for its name and whether it
//! answers.

use crate::config::Config;
use crate::postgres::Postgres;
use crate::record::{MessageRecord, Queue, SqliteRecord};
use crate::state::{MemoryState, SharedBackend, SharedState};
use anyhow::Result;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Where this instance keeps its state, record and queue.
pub struct Storage {
    pub state: Arc<dyn SharedState>,
    /// With `[record]` (or `[state]`).
    pub record: Option<Arc<dyn MessageRecord>>,
    pub queue: Option<Arc<dyn Queue>>,
    /// With `[state]`: the backend the instances share.
    pub shared: Option<Arc<dyn SharedBackend>>,
}

impl Storage {
    /// Opens what `config` asks for; with a record, purges it hourly of
    /// what is past retention.
    pub fn open(config: &Config) -> Result<Storage> {
        let key = config.record.as_ref().and_then(|r| r.number_key.as_ref()).map(|k| k.value.as_str());
        let storage = match (&config.state, &config.record) {
            (Some(state), _) => {
                // Checked by the config: a shared record has a shared key.
                let pg = Postgres::open(state, key.unwrap_or_default())?;
                Postgres::start_probe(&pg);
                Storage { state: pg.clone(), record: Some(pg.clone()), queue: Some(pg.clone()), shared: Some(pg) }
            }
            (None, Some(record)) => {
                let Some(path) = &record.path else { anyhow::bail!("[record] needs `path`") };
                let sqlite = Arc::new(SqliteRecord::open(path, key)?);
                let state = Arc::new(MemoryState::default());
                Storage { state, record: Some(sqlite.clone()), queue: Some(sqlite), shared: None }
            }
            (None, None) => {
                Storage { state: Arc::new(MemoryState::default()), record: None, queue: None, shared: None }
            }
        };
        if let (Some(log), Some(config)) = (&storage.record, &config.record) {
            purge_hourly(Arc::downgrade(log), config.retention);
        }
        Ok(storage)
    }
}

/// Purges the record of messages older than `retention`, hourly, while it
/// is open.
fn purge_hourly(record: Weak<dyn MessageRecord>, retention: Duration) {
    tokio::spawn(async move {
        while let Some(record) = record.upgrade() {
            match record.purge(retention).await {
                Ok(n) if n > 0 => tracing::info!("message record: {n} messages past retention removed"),
                Ok(_) => {}
                Err(e) => tracing::error!("message record purge failed: {e:#}"),
            }
            drop(record);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}
