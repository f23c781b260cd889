//! The one place that chooses where smsbridge keeps what it keeps: limit
//! counters and repeated answers ([`SharedState`]), the message record
//! ([`MessageLog`]) and the queue of queued routes ([`Queue`]). Embedded by
//! default (memory, and SQLite with `[record]`), one PostgreSQL database for
//! all three with `[state]`. Everything above sees only the traits, and
//! health asks the shared backend, if any, for its name and whether it
//! answers.

use crate::config::Config;
use crate::postgres::Postgres;
use crate::record::{MessageLog, Queue, SqliteRecord};
use crate::state::{MemoryState, SharedState};
use anyhow::Result;
use async_trait::async_trait;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A backend that several instances share, as health reports it.
#[async_trait]
pub trait SharedBackend: Send + Sync {
    /// Its name in `/admin/health`.
    fn name(&self) -> &'static str;
    /// Whether its last operation succeeded.
    fn is_up(&self) -> bool;
    /// The instances that share it and were seen alive lately.
    async fn instances_alive(&self) -> Result<i64>;
}

/// Where this instance keeps its state, record and queue.
pub struct Storage {
    pub state: Arc<dyn SharedState>,
    /// With `[record]` (or `[state]`).
    pub log: Option<Arc<dyn MessageLog>>,
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
                Storage { state: pg.clone(), log: Some(pg.clone()), queue: Some(pg.clone()), shared: Some(pg) }
            }
            (None, Some(record)) => {
                let Some(path) = &record.path else { anyhow::bail!("[record] needs `path`") };
                let sqlite = Arc::new(SqliteRecord::open(path, key)?);
                let state = Arc::new(MemoryState::default());
                Storage { state, log: Some(sqlite.clone()), queue: Some(sqlite), shared: None }
            }
            (None, None) => Storage { state: Arc::new(MemoryState::default()), log: None, queue: None, shared: None },
        };
        if let (Some(log), Some(record)) = (&storage.log, &config.record) {
            purge_hourly(Arc::downgrade(log), record.retention);
        }
        Ok(storage)
    }
}

/// Purges the record of messages older than `retention`, hourly, while it
/// is open.
fn purge_hourly(record: Weak<dyn MessageLog>, retention: Duration) {
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
