//! Queued routes: the message is on disk before the caller's 202, then
//! delivered in the background with the route's retries and failover, again
//! later while it is valid, and across restarts.
//!
//! Just before a request of a queued message leaves, the [`Marker`] (the
//! interceptor on every provider's outbound client) records that provider
//! as one that may have the message. After a crash, such a provider is
//! never sent that message again.

use super::{Courier, Refusal, Sent, Via, new_id};
use crate::config::Route;
use crate::outbound::{Exchange, Intercepted, Interceptor, Request};
use crate::outcome::{DeliveryState, Outcome};
use crate::phone;
use crate::record::{Entry, Queue, Queued, now_ms};
use crate::routing::Routes;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Queued messages delivered at once.
const WORKERS: usize = 8;

/// The queue of queued routes and its background delivery.
pub struct QueueWorker {
    queue: Arc<dyn Queue>,
    marker: Arc<Marker>,
    /// Wakes the worker when a message is queued or a slot frees.
    wake: Arc<Notify>,
}

/// Marks the provider a queued message's request is about to reach.
pub struct Marker {
    queue: Arc<dyn Queue>,
    /// Queued messages being delivered now; other sends pass unmarked.
    delivering: Mutex<HashSet<String>>,
}

#[async_trait]
impl Interceptor for Marker {
    async fn intercept(&self, exchange: Exchange<'_>, _req: &Request) -> Intercepted {
        let Some(id) = exchange.message_id else { return Intercepted::Continue };
        if self.delivering.lock().unwrap().contains(id)
            && let Err(e) = self.queue.mark_sending(id, exchange.provider).await
        {
            tracing::error!(%id, "queue not updated: {e:#}");
        }
        Intercepted::Continue
    }
}

impl QueueWorker {
    pub fn new(queue: Arc<dyn Queue>) -> QueueWorker {
        let marker = Arc::new(Marker { queue: queue.clone(), delivering: Default::default() });
        QueueWorker { queue, marker, wake: Default::default() }
    }

    /// The interceptor to install on every provider's outbound client.
    pub fn marker(&self) -> Arc<dyn Interceptor> {
        self.marker.clone()
    }

    /// Keeps the message for background delivery: the answer is given once
    /// it is on disk.
    pub async fn enqueue(&self, route: &Route, to: &str, body: &str) -> Result<Sent, Refusal> {
        let id = new_id();
        if let Err(e) = self.queue.enqueue(&id, &route.path, to, body, route.delivery.validity).await {
            tracing::error!(%id, "message not queued: {e:#}");
            let failure = crate::outcome::Failure::Fault("the message could not be queued".into());
            return Err(Refusal::Provider { provider: String::new(), failure, attempts: Vec::new() });
        }
        self.wake.notify_one();
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
            unconfirmed: false,
        })
    }

    /// Delivers queued messages in the background until the worker, the
    /// courier or the routes are dropped: first those a restart
    /// interrupted, then each as it comes due.
    pub fn start(self: &Arc<Self>, courier: &Arc<Courier>, routes: &Arc<Routes>) {
        let (worker, courier, routes) = (Arc::downgrade(self), Arc::downgrade(courier), Arc::downgrade(routes));
        tokio::spawn(async move {
            if let Some(w) = worker.upgrade() {
                match w.queue.recover().await {
                    Ok(n) if n > 0 => tracing::warn!("{n} queued messages were on their way when smsbridge stopped"),
                    Err(e) => tracing::error!("queue not recovered: {e:#}"),
                    _ => {}
                }
            }
            while let Some(w) = worker.upgrade() {
                w.dispatch(&courier, &routes).await;
                // Polls at least every 250 ms: a rescheduled message comes due
                // without a wake.
                let wake = w.wake.clone();
                drop(w);
                let _ = tokio::time::timeout(Duration::from_millis(250), wake.notified()).await;
            }
        });
    }

    /// Starts delivering the messages due now, as many as there is room for.
    async fn dispatch(self: &Arc<Self>, courier: &Weak<Courier>, routes: &Weak<Routes>) {
        let busy = self.marker.delivering.lock().unwrap().clone();
        let room = WORKERS.saturating_sub(busy.len());
        if room == 0 {
            return;
        }
        let due = match self.queue.due(room, &busy).await {
            Ok(due) => due,
            Err(e) => return tracing::error!("queue not read: {e:#}"),
        };
        for q in due {
            let (Some(courier), Some(routes)) = (courier.upgrade(), routes.upgrade()) else { return };
            self.marker.delivering.lock().unwrap().insert(q.id.clone());
            let worker = self.clone();
            tokio::spawn(async move {
                let id = q.id.clone();
                worker.deliver(&courier, &routes, q).await;
                worker.marker.delivering.lock().unwrap().remove(&id);
                worker.wake.notify_one();
            });
        }
    }

    async fn deliver(&self, courier: &Courier, routes: &Routes, q: Queued) {
        let routing = routes.current();
        let Some(route) = routing.config.route(&q.route) else {
            tracing::error!(id = %q.id, route = %q.route, "queued message dropped: its route is gone");
            return self.dequeue(&q.id).await;
        };
        let via = Via::Queue { queue: &*self.queue, uncertain: &q.uncertain };
        let (provider, failure, attempts) =
            match courier.deliver(&routing, route, q.id.clone(), &q.to, &q.body, via).await {
                Ok(_) => return self.dequeue(&q.id).await,
                Err(Refusal::Provider { provider, failure, attempts }) => (provider, failure, attempts),
                Err(_) => return self.dequeue(&q.id).await,
            };
        let maybe_sent = attempts.iter().any(|a| a.outcome == Outcome::MaybeSent);
        let expired = now_ms() >= q.expires_ms;
        if failure.is_transient() && !expired && !attempts.iter().all(|a| a.outcome == Outcome::MaybeSent) {
            // Later, within the message's validity: 2 s, doubling, up to a minute.
            let wait = Duration::from_secs(2u64.saturating_pow(q.tries.min(6) + 1).min(60));
            if let Err(e) = self.queue.reschedule(&q.id, wait).await {
                tracing::error!(id = %q.id, "queue not updated: {e:#}");
            }
            return;
        }
        let status = if maybe_sent { DeliveryState::Queued } else { DeliveryState::Failed };
        tracing::warn!(id = %q.id, provider = %provider, "queued message not delivered: {failure}");
        let entry = Entry {
            id: &q.id,
            route: &q.route,
            to: &q.to,
            provider: &provider,
            provider_id: None,
            segments: smsbridge_segments::count(&q.body).count,
            attempts: &attempts,
            status,
        };
        courier.remember(&entry).await;
        self.dequeue(&q.id).await;
    }

    async fn dequeue(&self, id: &str) {
        if let Err(e) = self.queue.dequeue(id).await {
            tracing::error!(%id, "queue not updated: {e:#}");
        }
    }
}
