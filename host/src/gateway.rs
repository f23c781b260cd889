//! The front door of one send, shared by the HTTP server and `smsbridge
//! send`: find the route's snapshot, admit the message (number, text,
//! limits, repeats), then deliver it now or queue it; and the provider
//! status callbacks that follow.
//!
//! The rules live in `delivery`; the routes and adapters in `routing`.

use crate::config::OnStateFailure;
use crate::config::{Config, Route};
use crate::delivery::admission::Repeat;
use crate::delivery::bulkhead::Wait;
use crate::delivery::queue::QueueWorker;
use crate::delivery::{Courier, Refusal, Sent, Via, admission, new_id};
use crate::keyed::Keyed;
use crate::learned::Learned;
use crate::outcome::{Callback, ReceiptRefusal};
use crate::record::MessageRecord;
use crate::registry::{Change, Registry};
use crate::routing::{LiveRouting, Routing};
use crate::runtime::Runtime;
use crate::state::{SharedBackend, SharedState};
use crate::storage::Storage;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    live: Arc<LiveRouting>,
    /// Send counters and repeated-request answers.
    pub state: Arc<dyn SharedState>,
    /// The MAC key of every limit and repeat key in `state`.
    keys: Keyed,
    /// The backend of `[state]`, which `state`, `record` and the queue are
    /// then kept in.
    shared: Option<Arc<dyn SharedBackend>>,
    courier: Arc<Courier>,
    /// The durable message record, when the config asks for one. Opened at
    /// start; a changed `[record]` takes a restart.
    pub record: Option<Arc<dyn MessageRecord>>,
    queue: Option<Arc<QueueWorker>>,
    /// Which provider delivers where, read from the record.
    learned: Arc<Learned>,
}

impl Gateway {
    /// Loads the adapters and binds each provider instance to its adapter,
    /// checking that the adapter exists and has its required settings.
    pub async fn new(config: Config, runtime: Arc<Runtime>) -> Result<Gateway> {
        let registry = {
            let (adapters, followers) = (&config.adapters, crate::routing::followers(&config));
            let dirs = (adapters.dir.as_deref(), adapters.cache_dir.as_deref());
            Arc::new(Registry::load(runtime.clone(), dirs.0, dirs.1, &followers).await?)
        };
        for (name, e) in registry.errors() {
            tracing::error!(adapter = %name, "adapter not loaded: {}", e.message);
        }
        let storage = Storage::open(&config)?;
        let queue = storage.queue.map(|q| Arc::new(QueueWorker::new(q)));
        let record = storage.record;
        let keys = state_keys(&config);
        let sessions = Arc::new(crate::smpp::Sessions::new(record.clone()));
        let live = LiveRouting::new(config, registry.clone(), queue.as_ref().map(|q| q.marker()), sessions)?;
        let learned = Arc::new(Learned::new(record.clone()));
        Ok(Gateway {
            courier: Arc::new(Courier::new(runtime.clone(), record.clone(), learned.clone())),
            learned,
            runtime,
            registry,
            live: Arc::new(live),
            state: storage.state,
            keys,
            shared: storage.shared,
            record,
            queue,
        })
    }

    /// `provider` now: whether its circuit is open, and its sends in flight.
    pub fn provider_now(&self, provider: &str) -> (bool, u32) {
        self.courier.provider_now(provider)
    }

    /// The SMPP sessions of the providers that bind to an SMSC.
    pub fn smpp_sessions(&self) -> Vec<Arc<crate::smpp::Session>> {
        self.live.sessions.all()
    }

    /// The backend instances share, when there is one.
    pub fn shared(&self) -> Option<&Arc<dyn SharedBackend>> {
        self.shared.as_ref()
    }

    /// The snapshot a send should use.
    pub fn routing(&self) -> Arc<Routing> {
        self.live.current()
    }

    /// Replaces the config if it binds; otherwise the old one keeps serving.
    pub async fn apply_config(&self, config: Config) -> Result<()> {
        self.live.apply_config(config).await
    }

    /// Notes the address the admin listener was bound to at start.
    pub fn admin_bound(&self, addr: std::net::SocketAddr) {
        self.live.admin_bound(addr);
    }

    /// Re-reads the config file, keeping the old config if the new one fails.
    pub async fn reload_config(&self) {
        self.live.reload_config().await
    }

    /// Loads, replaces or unloads the adapter of one file in the adapters
    /// folder, then rebinds the providers that use it.
    pub async fn reload_adapter(&self, path: &Path) -> Change {
        self.live.reload_adapter(path).await
    }

    /// Delivers queued messages in the background, as long as the gateway
    /// lives.
    pub fn start_queue(&self) {
        if let Some(queue) = &self.queue {
            queue.start(&self.courier, &self.live);
        }
        let live = Arc::downgrade(&self.live);
        self.learned.start(move || {
            let Some(live) = live.upgrade() else { return false };
            live.current().config.routes.iter().any(|r| r.delivery.order != crate::config::Order::Listed)
        });
    }

    /// The delivered-share figures.
    pub fn learned(&self) -> &Arc<Learned> {
        &self.learned
    }

    /// Sends `body` to `phone` through `route`, a route of `routing`.
    /// `repeat` says who the caller is and the `Idempotency-Key` it sent.
    pub async fn send(
        &self,
        routing: &Routing,
        route: &Route,
        phone: &str,
        body: &str,
        repeat: Repeat<'_>,
    ) -> Result<Sent, Refusal> {
        let admitted = admission::check(route, phone, body)?;
        let key = admission::repeat_key(&self.keys, route, &admitted.to, body, &repeat);
        let on_failure = routing.config.state.as_ref().map_or(OnStateFailure::Closed, |s| s.on_failure);
        if let Some(key) = &key {
            match admission::claim(&*self.state, on_failure, key, route).await {
                Ok(None) => {}
                Ok(Some(mut earlier)) => {
                    earlier.to = admitted.to.clone();
                    let masked = crate::phone::mask(&admitted.to);
                    tracing::info!(id = %earlier.id, route = %route.path, to = %masked, "repeated request: first answer given again");
                    return Ok(earlier);
                }
                // A key replayed with another text costs what a send costs:
                // guessing a code this way meets the number's limits.
                Err(Refusal::KeyReused) => {
                    admission::count(&*self.state, &self.keys, on_failure, route, &admitted).await?;
                    return Err(Refusal::KeyReused);
                }
                Err(refused) => return Err(refused),
            }
        }
        let result = match admission::count(&*self.state, &self.keys, on_failure, route, &admitted).await {
            Err(refused) => Err(refused),
            Ok(()) => match (&self.queue, route.delivery.queued) {
                (Some(queue), true) => queue.enqueue(route, &admitted.to, body).await,
                // A queued route without a queue is refused at start and reload.
                _ => {
                    let (to, country) = (&admitted.to, &admitted.region);
                    let sent = self.courier.deliver(routing, route, new_id(), to, country, body, Via::Direct).await;
                    if let (Ok(sent), Some(queue)) = (&sent, &self.queue) {
                        queue.watch(route, sent, body).await;
                    }
                    sent
                }
            },
        };
        if let Some(key) = &key {
            admission::settle(&*self.state, key, route, &result).await;
        }
        result
    }

    /// Whether this is the first use of a single-use credential `id`,
    /// remembered for `ttl` (by every instance, with `[state]`).
    pub async fn first_use(&self, id: &str, ttl: Duration) -> Result<bool, Refusal> {
        let key = format!("once|{}", self.keys.hex(&["single-use", id]));
        match self.state.claim(&key, "", ttl).await {
            Ok(claim) => Ok(claim == crate::state::Claim::New),
            Err(e) => {
                tracing::debug!("shared state unreachable for single-use credentials: {e:#}");
                Err(Refusal::StateDown)
            }
        }
    }

    /// Has `provider`'s adapter verify a status callback and records the
    /// statuses it reads; how many messages it updated.
    pub async fn receipt(&self, provider: &str, callback: Callback) -> Result<usize, ReceiptRefusal> {
        let routing = self.routing();
        let bound = routing.bound(provider).map_err(|_| ReceiptRefusal::Unknown)?;
        // A provider retries a callback; a caller waiting for its OTP does not.
        let wait = Wait::Until(tokio::time::Instant::now() + crate::runtime::CALLBACK_SLOT_WAIT);
        // Callbacks have slots of their own: a flood of them, signed or
        // not, never takes a send's.
        let (bulkhead, limit) = (format!("{provider}/callbacks"), bound.config.max_in_flight.min(CALLBACK_SLOTS));
        let Some(_slot) = self.courier.bulkheads().enter(&bulkhead, limit, wait).await else {
            return Err(ReceiptRefusal::Busy);
        };
        let receipts = self.runtime.verify(&bound.adapter, &bound.ctx, callback).await?;
        for receipt in &receipts {
            let status = receipt.state.as_str();
            tracing::info!(provider, provider_id = %receipt.provider_id, status, "delivery status");
        }
        let Some(record) = &self.record else { return Ok(0) };
        // Noted first, so two deliveries of one callback apply it once;
        // forgotten again if it could not be applied, so the retry is.
        let seen = callback_key(provider, &receipts);
        let noted = match record.first_callback(&seen).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(provider, "delivery callback seen before; not applied again");
                return Ok(0);
            }
            Err(e) => {
                tracing::error!("message record not read: {e:#}");
                false
            }
        };
        let mut updated = 0;
        for receipt in receipts {
            match record.update_status(provider, &receipt.provider_id, receipt.state).await {
                Ok(true) => updated += 1,
                Ok(false) => tracing::debug!(provider, "status for a message not in the record"),
                Err(e) => {
                    tracing::error!(provider, "delivery status not recorded; the provider is asked to retry: {e:#}");
                    if noted && let Err(e) = record.forget_callback(&seen).await {
                        tracing::error!("a callback not applied stays noted: {e:#}");
                    }
                    return Err(ReceiptRefusal::Unrecorded);
                }
            }
        }
        Ok(updated)
    }
}

/// Sandboxes one provider's status callbacks may hold at once.
const CALLBACK_SLOTS: u32 = 8;

/// The key of limit and repeat keys: with `[state]`, from `[record]
/// number_key (the same on every instance, and never in the database);
/// otherwise the store lives in this process, and so does its key.
fn state_keys(config: &Config) -> Keyed {
    match (&config.state, config.record.as_ref().and_then(|r| r.number_key.as_ref())) {
        (Some(_), Some(key)) => Keyed::new(key.value.as_bytes()).derive("state"),
        _ => Keyed::random(),
    }
}

/// A digest of what the adapter read from a verified callback: the same
/// statuses posted twice, in whatever order or encoding, are one callback.
fn callback_key(provider: &str, receipts: &[crate::outcome::Receipt]) -> String {
    use sha2::{Digest, Sha256};
    let mut read: Vec<(&str, &str)> = receipts.iter().map(|r| (r.provider_id.as_str(), r.state.as_str())).collect();
    read.sort_unstable();
    let mut hash = Sha256::new();
    for part in std::iter::once(provider).chain(read.iter().flat_map(|(id, state)| [*id, *state])) {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}
