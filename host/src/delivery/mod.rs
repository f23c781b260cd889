//! The rules of one send, from an admitted message to a provider's answer:
//! [`admission`] (is it allowed, is it a repeat), [`failover`] (retries,
//! backoff, the route's deadline, the next provider), [`circuit`] (skip an
//! unwell provider), [`bulkhead`] (a provider's sends in flight),
//! [`queue`] (accept now, deliver in the background), all
//! speaking the host's outcome types (`crate::outcome`). [`Courier`] carries a message through the
//! providers of a route, over the WebAssembly runtime.

pub mod admission;
pub mod bulkhead;
pub mod circuit;
pub mod failover;
pub mod queue;

use crate::config::{OnUnknown, Route};
use crate::learned::Learned;
use crate::outcome::{self, Attempt, DeliveryState, Failure, Outgoing};
use crate::phone::PhoneError;
use crate::record::{Entry, MessageRecord, NewHandoff, Queue};
use crate::routing::Routing;
use crate::runtime::Runtime;
use crate::telemetry;
use bulkhead::{Bulkheads, Wait};
use circuit::{Circuits, Trip};
use failover::{Carrier, Label, Policy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A message a provider accepted, or a queue took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    /// Never kept with a stored answer: a repeat is answered with its own.
    #[serde(skip)]
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
    /// `provider` may have it: its answer never came (see `on_unknown`).
    #[serde(default)]
    pub unconfirmed: bool,
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
    /// The caller's `Idempotency-Key` stands for another number or text.
    KeyReused,
    /// The shared state (limits, repeats, the queue) cannot be reached, and
    /// the route may not send without it.
    StateDown,
    /// The last provider tried, what went wrong there, and every try.
    Provider {
        provider: String,
        failure: Failure,
        attempts: Vec<Attempt>,
    },
}

/// Carries messages through routes' providers, and keeps the circuits and
/// the message log that sending touches.
pub struct Courier {
    runtime: Arc<Runtime>,
    circuits: Circuits,
    bulkheads: Bulkheads,
    record: Option<Arc<dyn MessageRecord>>,
    /// Which provider delivers where, for routes ordered by it.
    learned: Arc<Learned>,
}

impl Courier {
    pub fn new(runtime: Arc<Runtime>, record: Option<Arc<dyn MessageRecord>>, learned: Arc<Learned>) -> Courier {
        Courier { runtime, circuits: Circuits::default(), bulkheads: Bulkheads::default(), record, learned }
    }

    /// The message record, if there is one.
    pub fn record(&self) -> Option<&Arc<dyn MessageRecord>> {
        self.record.as_ref()
    }

    /// The providers' bulkheads, which status callbacks enter too.
    pub fn bulkheads(&self) -> &Bulkheads {
        &self.bulkheads
    }

    /// `provider` now: whether its circuit is open, and its sends in flight.
    pub fn provider_now(&self, provider: &str) -> (bool, u32) {
        (self.circuits.is_open(provider, Instant::now().into()), self.bulkheads.in_flight(provider))
    }

    /// Tries `route`'s providers in order until one accepts, within the
    /// route's deadline, as message `id`. `country` is the number's region,
    /// which a route ordered by delivered share orders by.
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver(
        &self,
        routing: &Routing,
        route: &Route,
        id: String,
        to: &str,
        country: &str,
        body: &str,
        via: Via<'_>,
    ) -> Result<Sent, Refusal> {
        let segments = smsbridge_segments::count(body).count;
        let masked = crate::phone::mask(to);
        let started = Instant::now();
        let d = &route.delivery;
        let deadline = match via {
            Via::Direct => d.deadline,
            Via::Queue { valid_for, .. } => d.deadline.min(valid_for),
        };
        let policy = Policy {
            deadline,
            retries: d.retries,
            backoff: d.backoff,
            failover_on_permanent: d.failover_on_permanent,
            failover_on_unknown: d.failover_on_unknown,
        };
        let carrier = RouteCarrier {
            runtime: &self.runtime,
            bulkheads: &self.bulkheads,
            routing,
            route,
            id: &id,
            to,
            body,
            via,
            in_doubt: Default::default(),
        };
        let label = Label { id: &id, route: &route.path, masked: &masked };
        let mut providers = self.learned.order(route, country);
        let (skip, fallback) = match via {
            Via::Direct => (&[][..], None),
            // A fallback goes only to providers that never had the message.
            Via::Queue { uncertain, fallback: Some(fallback), .. } => {
                providers.retain(|p| !uncertain.contains(p));
                (&[][..], Some(fallback))
            }
            Via::Queue { uncertain, .. } => (uncertain, None),
        };
        match failover::deliver(&policy, &providers, skip, &self.circuits, &carrier, label).await {
            Ok(done) => {
                let outcome = outcome::Outcome::Accepted;
                let ms = started.elapsed().as_millis() as u64;
                telemetry::send(&route.path, &done.provider, outcome.as_str(), started.elapsed());
                if let Some(Fallback { why, reason }) = fallback {
                    tracing::info!(%id, route = %route.path, provider = %done.provider, to = %masked, %outcome, segments, ms, "fallback sent: {why}");
                    telemetry::fallback(&route.path, &done.provider, reason);
                    let handoff =
                        NewHandoff { provider: &done.provider, provider_id: &done.provider_id, why, segments, country };
                    self.remember_fallback(&id, &done.attempts, Some(handoff)).await;
                } else {
                    tracing::info!(%id, route = %route.path, provider = %done.provider, to = %masked, %outcome, segments, ms, "sent");
                    let entry = Entry {
                        id: &id,
                        route: &route.path,
                        to,
                        provider: &done.provider,
                        provider_id: Some(&done.provider_id),
                        segments,
                        attempts: &done.attempts,
                        status: DeliveryState::Queued,
                        country,
                    };
                    self.remember(&entry).await;
                }
                Ok(Sent {
                    id,
                    to: to.into(),
                    provider: done.provider,
                    provider_id: done.provider_id,
                    segments,
                    attempts: done.attempts,
                    replayed: false,
                    queued: false,
                    unconfirmed: false,
                })
            }
            Err(failed) => {
                telemetry::send(&route.path, &failed.provider, failed.failure.outcome().as_str(), started.elapsed());
                // A provider may have it: the caller must not hear "failed"
                // unless the route says so.
                let maybe = failed.attempts.iter().rev().find(|a| a.outcome == outcome::Outcome::MaybeSent);
                let unconfirmed = matches!(via, Via::Direct) && maybe.is_some() && d.on_unknown == OnUnknown::Pending;
                if fallback.is_some() {
                    self.remember_fallback(&id, &failed.attempts, None).await;
                }
                if let Via::Direct = via {
                    let entry = Entry {
                        id: &id,
                        route: &route.path,
                        to,
                        provider: maybe.map_or(&failed.provider, |a| &a.provider),
                        provider_id: None,
                        segments,
                        attempts: &failed.attempts,
                        status: if maybe.is_some() { DeliveryState::Unknown } else { DeliveryState::Failed },
                        country,
                    };
                    self.remember(&entry).await;
                }
                if unconfirmed {
                    let provider = maybe.map(|a| a.provider.clone()).unwrap_or_default();
                    tracing::warn!(%id, route = %route.path, %provider, to = %masked, "unconfirmed: the provider may have the message");
                    return Ok(Sent {
                        id,
                        to: to.into(),
                        provider,
                        provider_id: String::new(),
                        segments,
                        attempts: failed.attempts,
                        replayed: false,
                        queued: false,
                        unconfirmed: true,
                    });
                }
                Err(Refusal::Provider { provider: failed.provider, failure: failed.failure, attempts: failed.attempts })
            }
        }
    }

    /// Writes a send to the message log, if there is one. A log that cannot
    /// be written is logged, and the send's answer stands.
    pub async fn remember(&self, entry: &Entry<'_>) {
        if let Some(record) = &self.record
            && let Err(e) = record.add(entry).await
        {
            tracing::error!(id = %entry.id, "message record not written: {e:#}");
        }
    }

    async fn remember_fallback(&self, id: &str, attempts: &[Attempt], handoff: Option<NewHandoff<'_>>) {
        if let Some(record) = &self.record
            && let Err(e) = record.add_fallback(id, attempts, handoff).await
        {
            tracing::error!(%id, "fallback not written to the message record: {e:#}");
        }
    }
}

/// Why a delivered message goes to another provider: the record's words,
/// and the metric's.
#[derive(Clone, Copy)]
pub struct Fallback<'a> {
    pub why: &'a str,
    pub reason: &'static str,
}

/// How a message came to be delivered.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// A caller waits for the answer; a failure is recorded here.
    Direct,
    /// From the queue, which records a failure (it may try again later).
    /// The providers in `uncertain` may already have the message: they are
    /// passed over. A provider's mark is cleared after an attempt it
    /// answered with a refusal. No attempt starts after `valid_for`. A
    /// `fallback` goes to the providers not in `uncertain` (all of which
    /// took it), recorded as a handoff of the message.
    Queue { queue: &'a dyn Queue, uncertain: &'a [String], valid_for: Duration, fallback: Option<Fallback<'a>> },
}

/// Sends one message through the providers of one route, each through the
/// adapter version it is bound to in the snapshot.
struct RouteCarrier<'a> {
    runtime: &'a Runtime,
    bulkheads: &'a Bulkheads,
    routing: &'a Routing,
    route: &'a Route,
    id: &'a str,
    to: &'a str,
    body: &'a str,
    via: Via<'a>,
    /// The latest attempt's requests that may have reached its provider;
    /// `None` while it waits for a slot in the provider's bulkhead.
    in_doubt: std::sync::Mutex<Option<Arc<AtomicU32>>>,
}

impl Carrier for RouteCarrier<'_> {
    async fn send(&self, provider: &str, wait: Wait) -> Result<String, Failure> {
        let bound = self.routing.bound(provider).map_err(Failure::Fault)?;
        *self.in_doubt.lock().unwrap() = None;
        let Some(_slot) = self.bulkheads.enter(provider, bound.config.max_in_flight, wait).await else {
            return Err(Failure::Busy);
        };
        let sender = self.route.sender.clone().or_else(|| bound.config.sender.clone());
        let msg = Outgoing { id: self.id.into(), to: self.to.into(), body: self.body.into(), sender };
        bound.adapter.served.fetch_add(1, Ordering::Relaxed);
        let in_doubt = Arc::new(AtomicU32::new(0));
        *self.in_doubt.lock().unwrap() = Some(in_doubt.clone());
        let result = self.runtime.send(&bound.adapter, &bound.ctx, msg, in_doubt).await;
        // The provider answered "not sent" (or nothing left): the mark goes.
        // After a success or an unknown outcome it stays until the message
        // leaves the queue: a crash before then never sends it there again.
        if let Via::Queue { queue, .. } = self.via
            && matches!(&result, Err(f) if !matches!(f, Failure::MaybeSent(_)))
            && let Err(e) = queue.clear_sending(self.id).await
        {
            tracing::warn!(id = %self.id, "queue mark not cleared (kept: the provider is skipped after a restart): {e:#}");
        }
        result
    }

    fn cut_short(&self, _provider: &str) -> Failure {
        match &*self.in_doubt.lock().unwrap() {
            None => Failure::Busy,
            Some(doubt) if doubt.load(Ordering::SeqCst) > 0 => {
                Failure::MaybeSent("the route's deadline passed while the provider had the request".into())
            }
            Some(_) => Failure::Deadline,
        }
    }

    fn trip(&self, provider: &str) -> Trip {
        match self.routing.config.provider(provider) {
            Some(p) => Trip { failures: p.circuit_failures, cooldown: p.circuit_cooldown },
            None => Trip { failures: u32::MAX, cooldown: Duration::ZERO },
        }
    }
}

/// A fresh message id: unique, and ordered by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
