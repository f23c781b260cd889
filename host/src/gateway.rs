//! One send, from a route and the caller's two fields to a provider's answer:
//! normalise the number, apply the route's limits against SMS pumping, answer
//! a repeated request with its first result, and try the route's providers in
//! order: retried with backoff and failed over on transient failures, within
//! the route's deadline, skipping providers whose circuit is open. Shared by
//! the HTTP server and `smsbridge send`.
//!
//! What a send uses — routes, provider settings, the adapter version of each
//! provider — is one immutable [`Routing`] snapshot, swapped whole when the
//! config or an adapter changes. A send in flight keeps the snapshot it
//! started with; every later send gets the new one.

use crate::config::{Config, Countries, Route};
use crate::phone::{self, PhoneError};
use crate::record::MessageRecord;
use crate::registry::{Change, Registry};
use crate::runtime::{Adapter, Failure, Message, ProviderContext, Runtime, SendError};
use crate::store::{Bucket, Claim, MemoryStore, Store};
use crate::telemetry;
use anyhow::{Result, anyhow};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest message accepted: ten concatenated GSM-7 parts.
pub const MAX_MESSAGE_CHARS: usize = 1530;

pub struct Gateway {
    pub runtime: Arc<Runtime>,
    pub registry: Registry,
    routing: ArcSwap<Routing>,
    /// Serialises rebuilding the snapshot, so no change is lost to a race.
    rebuild: tokio::sync::Mutex<()>,
    /// Digest nonces, which outlive config reloads.
    pub nonces: crate::auth::Nonces,
    /// Send counters and idempotent answers.
    pub store: Arc<dyn Store>,
    /// Circuit breakers by provider name; they outlive config reloads.
    circuits: std::sync::Mutex<HashMap<String, Circuit>>,
    /// The durable message record, when the config asks for one. Opened at
    /// start; a changed `[record]` takes a restart.
    pub record: Option<Arc<dyn crate::record::MessageRecord>>,
    /// Wakes the queue's worker when a message is queued or a slot frees.
    queue_wake: Arc<tokio::sync::Notify>,
}

/// Queued messages delivered at once.
const QUEUE_WORKERS: usize = 8;

/// A provider's circuit: closed while it answers; open (skipped) for a
/// cool-down after repeated transient failures; then one probe decides.
#[derive(Default)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    /// When the probe of an open circuit started; another may start if this
    /// one never reports (its caller went away).
    probe: Option<Instant>,
}

/// One try at one provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub provider: String,
    /// `accepted`, or what went wrong: `unavailable`, `circuit_open`, …
    pub outcome: String,
    pub ms: u64,
}

/// The config and each provider bound to its adapter's current version.
pub struct Routing {
    pub config: Config,
    providers: HashMap<String, Result<Bound, String>>,
}

struct Bound {
    ctx: Arc<ProviderContext>,
    adapter: Arc<Adapter>,
}

/// Why a status callback changed nothing.
#[derive(Debug)]
pub enum ReceiptRefusal {
    /// No such provider, or its adapter reads no callbacks.
    Unknown,
    BadSignature(String),
    Malformed(String),
    /// The adapter or its settings failed.
    Failed(String),
}

/// A message a provider accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    pub to: String,
    pub provider: String,
    pub provider_id: String,
    pub segments: u32,
    /// Every try, in order; the last one delivered.
    pub attempts: Vec<Attempt>,
    /// This is the stored answer to an earlier, identical request.
    #[serde(default)]
    pub replayed: bool,
    /// Accepted for background delivery; no provider has it yet.
    #[serde(default)]
    pub queued: bool,
}

/// Why a message was not sent.
#[derive(Debug, Clone)]
pub enum Refusal {
    Phone(PhoneError),
    Message(String),
    /// A limit against SMS pumping is reached: which, and when it has room.
    Limited {
        limit: &'static str,
        retry_after: Duration,
    },
    /// The number's country (region code) is not allowed on this route.
    Country(String),
    /// The number's type (`premium_rate`, `unknown`, …) is refused here.
    NumberType(String),
    /// An identical request is being sent right now and did not finish
    /// within the route's deadline.
    InFlight,
    /// The last provider tried, what went wrong there, and every try.
    Provider {
        provider: String,
        failure: Failure,
        attempts: Vec<Attempt>,
    },
}

impl Gateway {
    /// Loads the adapters and binds each provider instance to its adapter,
    /// checking that the adapter exists and has its required settings.
    pub async fn new(config: Config, runtime: Arc<Runtime>) -> Result<Gateway> {
        let registry =
            Registry::load(runtime.clone(), config.adapters.dir.as_deref(), config.adapters.cache_dir.as_deref())
                .await?;
        for (name, e) in registry.errors() {
            tracing::error!(adapter = %name, "adapter not loaded: {}", e.message);
        }
        let record = match &config.record {
            None => None,
            Some(r) => {
                let record =
                    Arc::new(crate::record::Record::open(&r.path, r.number_key.as_ref().map(|k| k.value.as_str()))?);
                // Retention: purge now, then hourly.
                let (purging, retention) = (Arc::downgrade(&record), r.retention);
                tokio::spawn(async move {
                    while let Some(record) = purging.upgrade() {
                        match tokio::task::spawn_blocking(move || record.purge(retention)).await {
                            Ok(Ok(n)) if n > 0 => tracing::info!("message record: {n} messages past retention removed"),
                            Ok(Err(e)) => tracing::error!("message record purge failed: {e:#}"),
                            _ => {}
                        }
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                });
                Some(record as Arc<dyn MessageRecord>)
            }
        };
        let routing = Routing::bind(config, &registry, true)?;
        Ok(Gateway {
            record,
            queue_wake: Default::default(),
            runtime,
            registry,
            routing: ArcSwap::from_pointee(routing),
            rebuild: Default::default(),
            nonces: Default::default(),
            store: Arc::new(MemoryStore::default()),
            circuits: Default::default(),
        })
    }

    /// The snapshot a send should use.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// Replaces the config if it binds; otherwise the old one keeps serving.
    pub async fn apply_config(&self, config: Config) -> Result<()> {
        let _guard = self.rebuild.lock().await;
        let old = self.routing();
        if config.server.listen != old.config.server.listen
            || config.admin.as_ref().map(|a| a.listen) != old.config.admin.as_ref().map(|a| a.listen)
            || config.adapters.dir != old.config.adapters.dir
        {
            tracing::warn!("listen addresses and adapters.dir change only on restart");
        }
        let level = config.log.level.clone();
        let routing = Routing::bind(config, &self.registry, true)?;
        self.routing.store(Arc::new(routing));
        telemetry::set_log_level(&level);
        tracing::info!("config reloaded");
        Ok(())
    }

    /// Re-reads the config file, keeping the old config if the new one fails.
    pub async fn reload_config(&self) {
        let Some(path) = self.routing().config.path.clone() else {
            tracing::warn!("running on the embedded default: there is no config file to reload");
            return;
        };
        let result = match Config::load(&path) {
            Ok(config) => self.apply_config(config).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!("config not reloaded; the old config keeps serving: {e:#}");
        }
    }

    /// Loads, replaces or unloads the adapter of one file in the adapters
    /// folder, then rebinds the providers that use it.
    pub async fn reload_adapter(&self, path: &Path) -> Change {
        let change = self.registry.reload(path).await;
        if let Change::Loaded(_) | Change::Unloaded(_) = change {
            let _guard = self.rebuild.lock().await;
            let config = self.routing().config.clone();
            // Lenient: a provider whose adapter is gone answers 503 naming it.
            match Routing::bind(config, &self.registry, false) {
                Ok(routing) => self.routing.store(Arc::new(routing)),
                Err(e) => tracing::error!("providers not rebound: {e:#}"),
            }
        }
        change
    }

    /// Sends `body` to `phone` through `route`, a route of `routing`.
    /// `idempotency_key` is the caller's `Idempotency-Key`, if it sent one.
    pub async fn send(
        &self,
        routing: &Routing,
        route: &Route,
        phone: &str,
        body: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, Refusal> {
        let to = phone::normalise(phone, route.default_country).map_err(Refusal::Phone)?;
        if body.trim().is_empty() {
            return Err(Refusal::Message("is empty".into()));
        }
        if body.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Refusal::Message(format!("is longer than {MAX_MESSAGE_CHARS} characters")));
        }
        let (country, kind) = phone::classify(&to);
        let region = country.map(|c| c.as_ref().to_string()).unwrap_or_else(|| "unknown".into());
        let masked = phone::mask(&to);
        let limits = &route.limits;
        if limits.refuse_number_types.contains(&kind) {
            let kind = phone::type_name(kind);
            tracing::warn!(route = %route.path, to = %masked, number_type = %kind, "refused: number type");
            return Err(Refusal::NumberType(kind));
        }
        let country_allowed = match &limits.countries {
            Countries::Any => true,
            Countries::Allow(list) => country.is_some_and(|c| list.contains(&c)),
            Countries::Deny(list) => !country.is_some_and(|c| list.contains(&c)),
        };
        if !country_allowed {
            tracing::warn!(route = %route.path, to = %masked, country = %region, "refused: country");
            return Err(Refusal::Country(region));
        }

        let window = route.delivery.idempotency_window;
        let key = (!window.is_zero()).then(|| idempotency_key_of(route, &to, body, idempotency_key));
        if let Some(key) = &key
            && let Some(earlier) = self.claim(key, window, route.delivery.deadline).await?
        {
            tracing::info!(id = %earlier.id, route = %route.path, to = %masked, "repeated request: first answer given again");
            return Ok(earlier);
        }
        let result = self.admit_and_deliver(routing, route, &to, body, &region).await;
        if let Some(key) = &key {
            match &result {
                Ok(sent) => self.store.complete(key, serde_json::to_vec(sent).unwrap_or_default(), window).await,
                Err(_) => self.store.release(key).await,
            }
        }
        result
    }

    /// Owns `key`, or waits for the identical request that owns it and
    /// returns its answer.
    async fn claim(&self, key: &str, window: Duration, deadline: Duration) -> Result<Option<Sent>, Refusal> {
        let until = Instant::now() + deadline;
        loop {
            match self.store.claim(key, window).await {
                Claim::New => return Ok(None),
                Claim::Done(stored) => {
                    if let Ok(mut sent) = serde_json::from_slice::<Sent>(&stored) {
                        sent.replayed = true;
                        return Ok(Some(sent));
                    }
                    // Unreadable: better a second send than none.
                    self.store.release(key).await;
                }
                Claim::InFlight if Instant::now() < until => tokio::time::sleep(Duration::from_millis(25)).await,
                Claim::InFlight => return Err(Refusal::InFlight),
            }
        }
    }

    /// Counts the send against the route's limits, then delivers it.
    async fn admit_and_deliver(
        &self,
        routing: &Routing,
        route: &Route,
        to: &str,
        body: &str,
        region: &str,
    ) -> Result<Sent, Refusal> {
        let l = &route.limits;
        let path = &route.path;
        // A prefix is the number without its last 4 digits: 10 000 numbers.
        let prefix = &to[..to.len().saturating_sub(4)];
        let mut buckets = Vec::new();
        let mut names = Vec::new();
        for (name, rate, key) in [
            ("per_number", l.per_number, format!("number|{path}|{to}")),
            ("per_prefix", l.per_prefix, format!("prefix|{path}|{prefix}")),
            ("per_country", l.per_country, format!("country|{path}|{region}")),
            ("per_route", l.per_route, format!("route|{path}")),
        ] {
            if let Some(rate) = rate {
                buckets.push(Bucket { key, limit: rate.limit, window: rate.window });
                names.push(name);
            }
        }
        if let Err(full) = self.store.admit(&buckets).await {
            let limit = names[full.index];
            tracing::warn!(route = %path, to = %phone::mask(to), limit, "refused: limit reached");
            return Err(Refusal::Limited { limit, retry_after: full.retry_after });
        }
        if route.delivery.queued {
            return self.enqueue(route, to, body);
        }
        self.deliver(routing, route, to, body, None).await
    }

    /// Keeps the message for background delivery: the answer is given once
    /// it is on disk.
    fn enqueue(&self, route: &Route, to: &str, body: &str) -> Result<Sent, Refusal> {
        let record = self.record.as_ref().expect("config checks that queued routes have a record");
        let id = uuid::Uuid::now_v7().simple().to_string();
        if let Err(e) = record.enqueue(&id, &route.path, to, body, route.delivery.validity) {
            tracing::error!(%id, "message not queued: {e:#}");
            let failure = Failure::Fault("the message could not be queued".into());
            return Err(Refusal::Provider { provider: String::new(), failure, attempts: Vec::new() });
        }
        self.queue_wake.notify_one();
        tracing::info!(%id, route = %route.path, to = %phone::mask(to), "queued");
        Ok(Sent {
            id,
            to: to.into(),
            provider: String::new(),
            provider_id: String::new(),
            segments: smsbridge_segments::count(body).count,
            attempts: Vec::new(),
            replayed: false,
            queued: true,
        })
    }

    /// Delivers queued messages in the background until the process ends:
    /// first those a restart interrupted, then each as it comes due.
    pub fn start_queue(self: &Arc<Self>) {
        let Some(record) = self.record.clone() else { return };
        match record.recover() {
            Ok(n) if n > 0 => tracing::warn!("{n} queued messages were on their way when smsbridge stopped"),
            Err(e) => tracing::error!("queue not recovered: {e:#}"),
            _ => {}
        }
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            let busy = Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
            while let Some(gw) = gateway.upgrade() {
                let room = QUEUE_WORKERS.saturating_sub(busy.lock().unwrap().len());
                let due = if room == 0 { Ok(Vec::new()) } else { record.due(room, &busy.lock().unwrap()) };
                match due {
                    Ok(due) => {
                        for q in due {
                            busy.lock().unwrap().insert(q.id.clone());
                            let (gw, busy) = (gw.clone(), busy.clone());
                            tokio::spawn(async move {
                                let id = q.id.clone();
                                gw.deliver_queued(q).await;
                                busy.lock().unwrap().remove(&id);
                                gw.queue_wake.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::error!("queue not read: {e:#}"),
                }
                let wake = gw.queue_wake.clone();
                drop(gw);
                let _ = tokio::time::timeout(Duration::from_millis(250), wake.notified()).await;
            }
        });
    }

    async fn deliver_queued(&self, q: crate::record::Queued) {
        let Some(record) = self.record.clone() else { return };
        let routing = self.routing();
        let segments = smsbridge_segments::count(&q.body).count;
        let Some(route) = routing.config.route(&q.route) else {
            tracing::error!(id = %q.id, route = %q.route, "queued message dropped: its route is gone");
            let _ = record.dequeue(&q.id);
            return;
        };
        match self.deliver(&routing, route, &q.to, &q.body, Some(&q)).await {
            Ok(_) => {
                let _ = record.dequeue(&q.id);
            }
            Err(Refusal::Provider { provider, failure, attempts }) => {
                let maybe_sent = attempts.iter().any(|a| a.outcome == "maybe_sent_before_restart");
                let expired = crate::record::now_ms() >= q.expires_ms;
                if is_transient(&failure) && !expired && !attempts.iter().all(|a| a.outcome.starts_with("maybe_sent")) {
                    // Later, within the message's validity: 2 s, doubling, up to a minute.
                    let wait = Duration::from_secs(2u64.saturating_pow(q.tries.min(6) + 1).min(60));
                    let _ = record.reschedule(&q.id, wait);
                    return;
                }
                let status = if maybe_sent { "queued" } else { "failed" };
                tracing::warn!(id = %q.id, provider = %provider, "queued message not delivered: {failure}");
                self.remember(&crate::record::Entry {
                    id: &q.id,
                    route: &q.route,
                    to: &q.to,
                    provider: &provider,
                    provider_id: None,
                    segments,
                    attempts: &attempts,
                    status,
                });
                let _ = record.dequeue(&q.id);
            }
            Err(_) => {
                let _ = record.dequeue(&q.id);
            }
        }
    }

    /// Tries the route's providers in order until one accepts, within the
    /// route's deadline.
    /// A `queued` message keeps its id, skips the providers that may already
    /// have it, and marks each provider it is about to reach; its failures
    /// are recorded by the queue, which may try again later.
    async fn deliver(
        &self,
        routing: &Routing,
        route: &Route,
        to: &str,
        body: &str,
        queued: Option<&crate::record::Queued>,
    ) -> Result<Sent, Refusal> {
        let id = queued.map(|q| q.id.clone()).unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        let segments = smsbridge_segments::count(body).count;
        let masked = phone::mask(to);
        let delivery = &route.delivery;
        let route_started = Instant::now();
        let deadline = route_started + delivery.deadline;
        let mut attempts = Vec::new();
        let mut last: Option<(String, &'static str, Failure)> = None;
        'providers: for name in &route.providers {
            let provider = routing.config.provider(name);
            if queued.is_some_and(|q| q.uncertain.contains(name)) {
                // A request to it was on its way when smsbridge stopped.
                attempts.push(Attempt { provider: name.clone(), outcome: "maybe_sent_before_restart".into(), ms: 0 });
                let why = "may have the message from before a restart; not sent again";
                last.get_or_insert((name.clone(), "maybe_sent", Failure::Fault(why.into())));
                continue;
            }
            let hook: Option<crate::runtime::BeforeRequest> = match (queued, &self.record) {
                (Some(_), Some(record)) => {
                    let (record, id, name) = (record.clone(), id.clone(), name.clone());
                    Some(Arc::new(move || {
                        if let Err(e) = record.mark_sending(&id, &name) {
                            tracing::error!(%id, "queue not updated: {e:#}");
                        }
                    }))
                }
                _ => None,
            };
            if !self.circuit_allows(name) {
                attempts.push(Attempt { provider: name.clone(), outcome: "circuit_open".into(), ms: 0 });
                if last.is_none() {
                    let why = "skipped: its circuit is open after repeated failures";
                    last = Some((name.clone(), "circuit_open", Failure::Fault(why.into())));
                }
                continue;
            }
            let mut retries = 0;
            loop {
                let started = Instant::now();
                let remaining = deadline.saturating_duration_since(started);
                let attempt = self.send_via(routing, name, route, &id, to, body, hook.clone());
                let result = match tokio::time::timeout(remaining, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(Failure::Adapter(SendError::Unavailable("the route's deadline passed".into()))),
                };
                // Alive to see the answer: the attempt's outcome is known.
                if let (Some(_), Some(record)) = (queued, &self.record) {
                    let _ = record.clear_sending(&id);
                }
                let took = started.elapsed();
                let ms = took.as_millis() as u64;
                let outcome = outcome(&result);
                telemetry::attempt(name, outcome, took);
                attempts.push(Attempt { provider: name.clone(), outcome: outcome.into(), ms });
                if let Some(p) = provider {
                    self.circuit_record(name, p.circuit_failures, p.circuit_cooldown, &result);
                }
                let failure = match result {
                    Ok(provider_id) => {
                        tracing::info!(%id, route = %route.path, provider = %name, to = %masked, outcome, segments, ms, "sent");
                        telemetry::send(&route.path, name, outcome, route_started.elapsed());
                        self.remember(&crate::record::Entry {
                            id: &id,
                            route: &route.path,
                            to,
                            provider: name,
                            provider_id: Some(&provider_id),
                            segments,
                            attempts: &attempts,
                            status: "queued",
                        });
                        return Ok(Sent {
                            id,
                            to: to.into(),
                            provider: name.clone(),
                            provider_id,
                            segments,
                            attempts,
                            replayed: false,
                            queued: false,
                        });
                    }
                    Err(failure) => failure,
                };
                tracing::warn!(%id, route = %route.path, provider = %name, to = %masked, outcome, ms, "not sent: {failure}");
                let retryable =
                    matches!(failure, Failure::Adapter(SendError::Unavailable(_) | SendError::RateLimited(_)));
                let wait = match &failure {
                    Failure::Adapter(SendError::RateLimited(Some(secs))) => Duration::from_secs(u64::from(*secs)),
                    _ => backoff(delivery.backoff, retries),
                };
                let fail_over = is_transient(&failure)
                    || (delivery.failover_on_permanent
                        && matches!(
                            failure,
                            Failure::Adapter(SendError::Rejected(_) | SendError::InvalidRecipient(_))
                        ));
                last = Some((name.clone(), outcome, failure));
                if retryable && retries < delivery.retries && Instant::now() + wait < deadline {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                if fail_over && Instant::now() < deadline {
                    continue 'providers;
                }
                break 'providers;
            }
        }
        let (provider, outcome, failure) = last.expect("a route names at least one provider");
        telemetry::send(&route.path, &provider, outcome, route_started.elapsed());
        if queued.is_none() {
            self.remember(&crate::record::Entry {
                id: &id,
                route: &route.path,
                to,
                provider: &provider,
                provider_id: None,
                segments,
                attempts: &attempts,
                status: "failed",
            });
        }
        Err(Refusal::Provider { provider, failure, attempts })
    }

    /// Has `provider`'s adapter verify a status callback and records the
    /// statuses it reads; how many messages it updated.
    pub async fn receipt(&self, provider: &str, callback: crate::runtime::Callback) -> Result<usize, ReceiptRefusal> {
        use crate::runtime::{CallbackError, DeliveryStatus};
        let routing = self.routing();
        let bound = match routing.providers.get(provider) {
            Some(Ok(bound)) => bound,
            _ => return Err(ReceiptRefusal::Unknown),
        };
        let updates = match self.runtime.verify(&bound.adapter, &bound.ctx, callback).await {
            None => return Err(ReceiptRefusal::Unknown),
            Some(Err(failure)) => return Err(ReceiptRefusal::Failed(failure.to_string())),
            Some(Ok(Err(CallbackError::BadSignature(why)))) => return Err(ReceiptRefusal::BadSignature(why)),
            Some(Ok(Err(CallbackError::Malformed(why)))) => return Err(ReceiptRefusal::Malformed(why)),
            Some(Ok(Err(CallbackError::Misconfigured(why)))) => return Err(ReceiptRefusal::Failed(why)),
            Some(Ok(Ok(updates))) => updates,
        };
        let mut updated = 0;
        for update in updates {
            let status = match update.status {
                DeliveryStatus::Queued => "queued",
                DeliveryStatus::Sent => "sent",
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Undelivered => "undelivered",
                DeliveryStatus::Failed => "failed",
            };
            tracing::info!(provider, provider_id = %update.provider_id, status, "delivery status");
            if let Some(record) = &self.record {
                match record.update_status(provider, &update.provider_id, status) {
                    Ok(true) => updated += 1,
                    Ok(false) => tracing::debug!(provider, "status for a message not in the record"),
                    Err(e) => tracing::error!("message record not updated: {e:#}"),
                }
            }
        }
        Ok(updated)
    }

    /// Writes the send to the message record, if there is one. A record that
    /// cannot be written is logged, and the send's answer stands.
    fn remember(&self, entry: &crate::record::Entry) {
        if let Some(record) = &self.record
            && let Err(e) = record.add(entry)
        {
            tracing::error!(id = %entry.id, "message record not written: {e:#}");
        }
    }

    /// Whether `provider` may be tried now; claims the probe of an open
    /// circuit whose cool-down is over.
    fn circuit_allows(&self, provider: &str) -> bool {
        let mut circuits = self.circuits.lock().unwrap();
        let circuit = circuits.entry(provider.to_string()).or_default();
        let now = Instant::now();
        match circuit.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => {
                // One probe at a time; a probe that never reported is
                // replaced after another cool-down.
                if circuit.probe.is_some_and(|p| now.duration_since(p) < circuit.cooldown) {
                    return false;
                }
                circuit.probe = Some(now);
                true
            }
        }
    }

    fn circuit_record(&self, provider: &str, threshold: u32, cooldown: Duration, result: &Result<String, Failure>) {
        let mut circuits = self.circuits.lock().unwrap();
        let circuit = circuits.entry(provider.to_string()).or_default();
        let was_open = circuit.open_until.is_some();
        match result {
            Err(failure) if is_transient(failure) => {
                circuit.failures += 1;
                if circuit.probe.is_some() || circuit.failures >= threshold {
                    circuit.open_until = Some(Instant::now() + cooldown);
                    circuit.cooldown = cooldown;
                    circuit.probe = None;
                    if !was_open {
                        tracing::warn!(
                            provider,
                            failures = circuit.failures,
                            "circuit open: provider skipped for {cooldown:?}"
                        );
                        telemetry::circuit(provider, true);
                    }
                }
            }
            // An answer, even a refusal, means the provider is up.
            _ => {
                *circuit = Circuit::default();
                if was_open {
                    tracing::info!(provider, "circuit closed: provider answered");
                    telemetry::circuit(provider, false);
                }
            }
        }
    }

    async fn send_via(
        &self,
        routing: &Routing,
        provider: &str,
        route: &Route,
        id: &str,
        to: &str,
        body: &str,
        before_request: Option<crate::runtime::BeforeRequest>,
    ) -> Result<String, Failure> {
        let bound = routing.providers[provider].as_ref().map_err(|why| Failure::Fault(why.clone()))?;
        let sender = route.sender.clone().or_else(|| routing.config.provider(provider).and_then(|p| p.sender.clone()));
        let msg = Message { id: id.into(), to: to.into(), body: body.into(), sender, params: Vec::new() };
        bound.adapter.served.fetch_add(1, Ordering::Relaxed);
        self.runtime.send_with(&bound.adapter, &bound.ctx, msg, before_request).await.map(|a| a.provider_id)
    }
}

impl Routing {
    /// Binds every provider of `config` to its adapter in `registry`. With
    /// `strict`, a missing adapter or setting is an error; without, that
    /// provider is left unbound with the reason.
    fn bind(config: Config, registry: &Registry, strict: bool) -> Result<Routing> {
        let mut providers = HashMap::new();
        for p in &config.providers {
            let bound = match registry.get(&p.adapter) {
                None => {
                    let known: Vec<String> = registry.list().into_iter().map(|(n, _)| n).collect();
                    Err(format!(
                        "{}: provider `{}`: adapter `{}` is not bundled and not in the adapters folder (known: {})",
                        config.source,
                        p.name,
                        p.adapter,
                        known.join(", ")
                    ))
                }
                Some(adapter) => {
                    match adapter.info.config_keys.iter().find(|k| k.required && !p.settings.contains_key(&k.name)) {
                        Some(key) => Err(format!(
                            "{}: provider `{}`: adapter `{}` requires `config.{}` ({})",
                            config.source, p.name, p.adapter, key.name, key.description
                        )),
                        None => Ok(Bound { ctx: Arc::new(ProviderContext::new(p, &adapter.info)?), adapter }),
                    }
                }
            };
            match bound {
                Err(why) if strict => return Err(anyhow!(why)),
                Err(why) => {
                    tracing::error!("{why}");
                    providers.insert(p.name.clone(), Err(why));
                }
                Ok(b) => {
                    providers.insert(p.name.clone(), Ok(b));
                }
            }
        }
        Ok(Routing { config, providers })
    }

    /// The adapter version provider `name` sends through in this snapshot.
    pub fn adapter_of(&self, name: &str) -> Option<Arc<Adapter>> {
        self.providers.get(name)?.as_ref().ok().map(|b| b.adapter.clone())
    }

    /// Routes none of whose providers is bound to a loaded adapter.
    pub fn unserved_routes(&self) -> Vec<String> {
        self.config
            .routes
            .iter()
            .filter(|r| !r.providers.iter().any(|p| self.providers.get(p).is_some_and(|b| b.is_ok())))
            .map(|r| r.path.clone())
            .collect()
    }
}

/// The outcome word of one attempt, for logs and metrics.
fn outcome(result: &Result<String, Failure>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(Failure::Fault(_)) => "fault",
        Err(Failure::Adapter(e)) => match e {
            SendError::InvalidRecipient(_) => "invalid_recipient",
            SendError::Rejected(_) => "rejected",
            SendError::Unauthorized(_) => "unauthorized",
            SendError::RateLimited(_) => "rate_limited",
            SendError::Unavailable(_) => "unavailable",
            SendError::Misconfigured(_) => "misconfigured",
        },
    }
}

/// The wait before retry number `retries + 1`: `base` doubled per retry,
/// with full jitter so callers that failed together do not retry together.
fn backoff(base: Duration, retries: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << retries.min(16));
    let fraction = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
    ceiling.mul_f64(fraction)
}

/// The key under which a repeated request finds its first answer: the
/// caller's own key, or the number and the text, within one route.
fn idempotency_key_of(route: &Route, to: &str, body: &str, caller_key: Option<&str>) -> String {
    let mut hash = Sha256::new();
    match caller_key {
        Some(k) => hash.update(format!("key\0{}\0{k}", route.path)),
        None => hash.update(format!("message\0{}\0{to}\0{body}", route.path)),
    }
    format!("idempotency|{:x}", hash.finalize())
}

/// Failures worth trying the next provider for.
fn is_transient(failure: &Failure) -> bool {
    matches!(failure, Failure::Fault(_) | Failure::Adapter(SendError::Unavailable(_) | SendError::RateLimited(_)))
}
