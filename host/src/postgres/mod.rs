//! State that several smsbridge instances share, in one PostgreSQL
//! database: the limit counters, the answers kept for repeated requests,
//! the message record and the queue of queued routes.
//!
//! Every operation takes a pooled connection and must finish within
//! `[state] timeout_ms`; one that fails marks the database down (logged
//! once, `smsbridge_state_up` 0, `/admin/health` 503) until the probe, which
//! writes this instance's heartbeat every second, succeeds again. Times that
//! instances must agree on (limit windows, leases, expiries) are the
//! database's clock, not each instance's.

mod queue;
mod record;
mod schema;
mod state;

use crate::config::StateConfig;
use crate::telemetry;
use anyhow::{Context, Result, anyhow};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How often the heartbeat probes the database.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The longest the retention purge may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(600);

/// An instance seen within this is counted as alive in `/admin/health`.
const ALIVE_WITHIN: Duration = Duration::from_secs(10);

pub struct Postgres {
    pool: Pool,
    timeout: Duration,
    lease: Duration,
    /// Names this process's claims on queued messages and its heartbeat.
    owner: String,
    /// Keys the number hashes of the record; the same on every instance.
    number_key: Vec<u8>,
    /// Seals queued messages' numbers and texts, under a key derived from
    /// `number_key`.
    sealer: crate::keyed::Sealer,
    /// `UNKNOWN` until the first operation, then `UP` or `DOWN`.
    health: AtomicU8,
    /// Failed operations so far: a success that began before the latest
    /// failure (a query the database finished as it stopped) says nothing
    /// of now, and does not mark it up.
    failures: std::sync::atomic::AtomicU64,
    /// The schema is migrated (done once, by the first operation that can).
    migrated: tokio::sync::OnceCell<()>,
    /// When this instance last extended the leases of its claimed messages.
    renewed: Mutex<Option<Instant>>,
}

impl Postgres {
    /// A pool to the database of `[state]`. Connects lazily: an instance
    /// starts while the database is down, and serves as `on_failure` says
    /// until it is back.
    pub fn open(config: &StateConfig, number_key: &str) -> Result<Arc<Postgres>> {
        let mut pg: tokio_postgres::Config =
            config.url.value.parse().map_err(|e| anyhow!("state `url` is not a PostgreSQL URL: {e}"))?;
        pg.connect_timeout(config.timeout).application_name("smsbridge");
        // A database host that vanished is noticed without waiting for TCP.
        pg.keepalives(true).keepalives_idle(Duration::from_secs(10));
        let tls = MakeRustlsConnect::new(crate::tls::client_config("state `ca`", config.ca.as_deref())?);
        let manager = Manager::from_config(pg, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.pool)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .build()
            .context("state database pool")?;
        telemetry::state_up(false);
        Ok(Arc::new(Postgres {
            pool,
            timeout: config.timeout,
            lease: config.lease,
            owner: uuid::Uuid::now_v7().to_string(),
            number_key: number_key.as_bytes().to_vec(),
            sealer: crate::keyed::Sealer::new(&crate::keyed::Keyed::new(number_key.as_bytes()).derive("queue")),
            health: AtomicU8::new(UNKNOWN),
            failures: Default::default(),
            migrated: tokio::sync::OnceCell::new(),
            renewed: Mutex::new(None),
        }))
    }

    /// Probes the database every second while `this` lives, so that health
    /// follows it even with no traffic.
    pub fn start_probe(this: &Arc<Postgres>) {
        let weak: Weak<Postgres> = Arc::downgrade(this);
        tokio::spawn(async move {
            while let Some(pg) = weak.upgrade() {
                pg.probe().await;
                drop(pg);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    /// Writes this instance's heartbeat: a write, so a database that only
    /// reads (a standby after a failover) is not taken as up.
    async fn probe(&self) -> bool {
        let owner = self.owner.as_str();
        self.run("probe", async |c| {
            c.execute(
                "INSERT INTO smsbridge.instances (owner, seen_ms) VALUES ($1, smsbridge.now_ms())
                 ON CONFLICT (owner) DO UPDATE SET seen_ms = EXCLUDED.seen_ms",
                &[&owner],
            )
            .await
        })
        .await
        .is_ok()
    }

    /// Runs `f` on a pooled connection, migrating the schema first if no
    /// operation has yet, within the timeout; records whether the database
    /// answered.
    async fn run<T>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let failures_before = self.failures.load(Ordering::Relaxed);
        let work = async {
            let mut client = self.pool.get().await.map_err(|e| anyhow!("no connection to the state database: {e}"))?;
            self.migrated.get_or_try_init(|| schema::migrate(&mut client)).await?;
            f(&mut client).await.map_err(|e| anyhow!("{}", describe(&e)))
        };
        // The hourly purge may delete a day of messages: minutes, not seconds.
        let limit = if op == "purge" { PURGE_TIMEOUT } else { self.timeout };
        let result = match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(anyhow!("the state database did not answer within {} ms", limit.as_millis())),
        };
        match &result {
            Ok(_) if self.failures.load(Ordering::Relaxed) != failures_before => {}
            Ok(_) => self.mark(true, op, None),
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.mark(false, op, Some(e))
            }
        }
        result.with_context(|| format!("state {op}"))
    }

    /// Logs each change between up and down once, and keeps the gauge.
    fn mark(&self, up: bool, op: &'static str, error: Option<&anyhow::Error>) {
        let was = self.health.swap(if up { UP } else { DOWN }, Ordering::Relaxed);
        if let Some(e) = error {
            telemetry::state_error(op);
            if was != DOWN {
                tracing::error!(
                    op,
                    "state database unreachable; non-queued routes follow [state] on_failure, queued routes answer 503: {e:#}"
                );
            }
        } else if was != UP {
            tracing::info!("state database reachable");
        }
        telemetry::state_up(up);
    }
}

#[async_trait::async_trait]
impl crate::state::SharedBackend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn is_up(&self) -> bool {
        self.health.load(Ordering::Relaxed) == UP
    }

    /// Instances whose heartbeat the database saw in the last 10 s.
    async fn instances_alive(&self) -> Result<i64> {
        let within = ALIVE_WITHIN.as_millis() as i64;
        self.run("health", async |c| {
            let row = c
                .query_one(
                    "SELECT count(*) FROM smsbridge.instances WHERE seen_ms > smsbridge.now_ms() - $1",
                    &[&within],
                )
                .await?;
            Ok(row.get::<_, i64>(0))
        })
        .await
    }
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A driver error as an operator should read it: the server's own message
/// and code when it sent one. Never a parameter (a number, a text).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
