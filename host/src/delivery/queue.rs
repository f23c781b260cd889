//! Queued routes: the message is on disk before the caller's 202, then
//! delivered in the background with the route's retries and failover, again
//! later while it is valid, and across restarts.
//!
//! Just before a request of a queued message leaves, the [`Marker`] (the
//! interceptor on every provider's outbound client) records that provider
//! as one that may have the message; a request whose mark cannot be written
//! does not leave. After a crash, such a provider is never sent that message
//! again.
//!
//! A queue write that fails (a full disk, a lock held by a backup) holds its
//! message: it is not delivered again until the write succeeds, which is
//! retried with backoff. Each failing operation is logged once, and counted
//! (`smsbridge_queue_faults_total`).

use super::{Courier, Fallback, Refusal, Sent, Via, new_id};
use crate::config::Route;
use crate::egress::{Denied, Exchange, Interceptor};
use crate::outcome::{Attempt, DeliveryState, Failure, Outcome};
use crate::phone;
use crate::record::{Entry, Queue, Queued, now_ms};
use crate::routing::LiveRouting;
use crate::telemetry;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Queued messages delivered at once.
const WORKERS: usize = 8;

/// Longest wait before a failed queue write is tried again.
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);

/// The queue of queued routes and its background delivery.
pub struct QueueWorker {
    queue: Arc<dyn Queue>,
    marker: Arc<Marker>,
    /// Wakes the worker when a message is queued or a slot frees.
    wake: Arc<Notify>,
    /// Writes the queue still owes, by message: until one succeeds, its
    /// message is not delivered again.
    owed: Mutex<HashMap<String, Owed>>,
}

/// A write that failed, and when to try it again.
struct Owed {
    write: Write,
    retry_at: Instant,
    failures: u32,
}

#[derive(Clone)]
enum Write {
    Dequeue,
    Reschedule {
        wait: Duration,
        uncertain: Vec<String>,
    },
    /// Delivered to the last of `had`: wait for its receipt.
    Watch {
        after: Duration,
        had: Vec<String>,
    },
}

/// Marks the provider a queued message's request is about to reach.
pub struct Marker {
    queue: Arc<dyn Queue>,
    /// Queued messages being delivered now; other sends pass unmarked.
    delivering: Mutex<HashSet<String>>,
    /// Those of them whose mark could not be written: a request was held
    /// back by the queue, not refused by a provider.
    unmarked: Mutex<HashSet<String>>,
    faults: Faults,
}

#[async_trait]
impl Interceptor for Marker {
    async fn before_leaving(&self, exchange: Exchange<'_>) -> Result<(), Denied> {
        let Some(id) = exchange.message_id else { return Ok(()) };
        if !self.delivering.lock().unwrap().contains(id) {
            return Ok(());
        }
        let marked = self.queue.mark_sending(id, exchange.provider).await;
        // No send without a recorded mark.
        self.faults.check("mark", marked).map_err(|()| {
            self.unmarked.lock().unwrap().insert(id.to_string());
            Denied("the queue could not record the send".into())
        })
    }
}

/// The queue operations failing now: each is logged when it starts and
/// stops failing, and counted every time.
#[derive(Default)]
struct Faults {
    failing: Mutex<HashSet<&'static str>>,
}

impl Faults {
    fn check<T>(&self, op: &'static str, result: anyhow::Result<T>) -> Result<T, ()> {
        match result {
            Ok(value) => {
                if self.failing.lock().unwrap().remove(op) {
                    tracing::info!(op, "queue works again");
                }
                Ok(value)
            }
            Err(e) => {
                telemetry::queue_fault(op);
                if self.failing.lock().unwrap().insert(op) {
                    tracing::error!(op, "queue failed; its messages wait until it works: {e:#}");
                }
                Err(())
            }
        }
    }
}

impl QueueWorker {
    pub fn new(queue: Arc<dyn Queue>) -> QueueWorker {
        let marker = Arc::new(Marker {
            queue: queue.clone(),
            delivering: Default::default(),
            unmarked: Default::default(),
            faults: Faults::default(),
        });
        QueueWorker { queue, marker, wake: Default::default(), owed: Default::default() }
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
            return Err(Refusal::StateDown);
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

    /// Keeps a message a provider took on a route that falls back, until
    /// its delivered receipt or its fallback. Kept in the queue before the
    /// caller's answer, so a restart or an instance's death loses no timer;
    /// a queue that cannot keep it costs the fallback, not the send.
    pub async fn watch(&self, route: &Route, sent: &Sent, body: &str) {
        let Some(after) = route.delivery.fallback_after else { return };
        if sent.queued || sent.replayed || sent.unconfirmed {
            return;
        }
        let Some(had) = had_after(route, &[], sent) else { return };
        let d = &route.delivery;
        if let Err(e) = self.queue.watch(&sent.id, &route.path, &sent.to, body, d.validity, after, &had).await {
            self.marker.faults.check("watch", Err::<(), _>(e)).ok();
            tracing::error!(id = %sent.id, "no fallback for this message: the queue could not keep it");
        }
    }

    /// Delivers queued messages in the background until the worker, the
    /// courier or the routes are dropped: first those a restart
    /// interrupted, then each as it comes due.
    pub fn start(self: &Arc<Self>, courier: &Arc<Courier>, live: &Arc<LiveRouting>) {
        let (worker, courier, live) = (Arc::downgrade(self), Arc::downgrade(courier), Arc::downgrade(live));
        tokio::spawn(async move {
            if let Some(w) = worker.upgrade() {
                // Tidying only: `due` counts a leftover mark as uncertain too.
                match w.marker.faults.check("recover", w.queue.recover().await) {
                    Ok(n) if n > 0 => tracing::warn!("{n} queued messages were on their way when smsbridge stopped"),
                    _ => {}
                }
            }
            while let Some(w) = worker.upgrade() {
                w.dispatch(&courier, &live).await;
                // Polls at least every 250 ms: a rescheduled message comes due
                // without a wake.
                let wake = w.wake.clone();
                drop(w);
                let _ = tokio::time::timeout(Duration::from_millis(250), wake.notified()).await;
            }
        });
    }

    /// Retries the writes owed, then starts delivering the messages due
    /// now, as many as there is room for.
    async fn dispatch(self: &Arc<Self>, courier: &Weak<Courier>, live: &Weak<LiveRouting>) {
        self.pay_owed().await;
        let mut busy = self.marker.delivering.lock().unwrap().clone();
        busy.extend(self.owed.lock().unwrap().keys().cloned());
        // Messages this instance holds keep their claims; failing, another
        // instance takes them over when the leases run out, and the marks
        // keep it from a provider that may have them.
        let held: Vec<String> = busy.iter().cloned().collect();
        let _ = self.marker.faults.check("renew", self.queue.renew(&held).await);
        let room = WORKERS.saturating_sub(self.marker.delivering.lock().unwrap().len());
        if room == 0 {
            return;
        }
        let due = self.queue.due(room, &busy).await;
        let Ok(due) = self.marker.faults.check("read", due) else { return };
        for q in due {
            let (Some(courier), Some(live)) = (courier.upgrade(), live.upgrade()) else { return };
            self.marker.delivering.lock().unwrap().insert(q.id.clone());
            let worker = self.clone();
            tokio::spawn(async move {
                let id = q.id.clone();
                worker.deliver(&courier, &live, q).await;
                worker.marker.delivering.lock().unwrap().remove(&id);
                worker.marker.unmarked.lock().unwrap().remove(&id);
                worker.wake.notify_one();
            });
        }
    }

    async fn deliver(&self, courier: &Courier, live: &LiveRouting, q: Queued) {
        let routing = live.current();
        let Some(route) = routing.config.route(&q.route) else {
            tracing::error!(id = %q.id, route = %q.route, "queued message dropped: its route is gone");
            return self.settle(&q.id, Write::Dequeue).await;
        };
        let country = region(&q.to);
        if let Some(watching) = q.watching.clone() {
            return self.fall_back(courier, &routing, route, &country, q, &watching).await;
        }
        if now_ms() >= q.expires_ms {
            // Checked before every delivery, after a restart too, and no
            // attempt starts past it: a late OTP is useless to its user.
            tracing::warn!(id = %q.id, route = %q.route, "queued message expired before delivery");
            let failure = Failure::Deadline;
            return self.finish(courier, &q, "", &failure, &[]).await;
        }
        let valid_for = Duration::from_millis(q.expires_ms.saturating_sub(now_ms()));
        let via = Via::Queue { queue: &*self.queue, uncertain: &q.uncertain, valid_for, fallback: None };
        let (provider, failure, attempts) =
            match courier.deliver(&routing, route, q.id.clone(), &q.to, &country, &q.body, via).await {
                Ok(sent) => {
                    let write = match (route.delivery.fallback_after, had_after(route, &q.uncertain, &sent)) {
                        (Some(after), Some(had)) => Write::Watch { after, had },
                        _ => Write::Dequeue,
                    };
                    return self.settle(&q.id, write).await;
                }
                Err(Refusal::Provider { provider, failure, attempts }) => (provider, failure, attempts),
                Err(_) => return self.settle(&q.id, Write::Dequeue).await,
            };
        // Providers that may have it now, from before a restart or this try.
        let mut uncertain = q.uncertain.clone();
        for a in attempts.iter().filter(|a| a.outcome == Outcome::MaybeSent) {
            if !uncertain.contains(&a.provider) {
                uncertain.push(a.provider.clone());
            }
        }
        let untried = route.providers.iter().any(|p| !uncertain.contains(p));
        // A provider the queue kept the message from (its mark could not be
        // written) said nothing about it: the message waits for the queue.
        let held_back = self.marker.unmarked.lock().unwrap().contains(&q.id);
        if (failure.is_transient() || held_back) && untried && now_ms() < q.expires_ms {
            // Later, within the message's validity: 2 s, doubling, up to a minute.
            let wait = Duration::from_secs(2u64.saturating_pow(q.tries.min(6) + 1).min(60));
            return self.settle(&q.id, Write::Reschedule { wait, uncertain }).await;
        }
        self.finish(courier, &q, &provider, &failure, &attempts).await;
    }

    /// A delivered message whose receipt did not come in time, or said it
    /// was not delivered: the next provider that never had it gets it,
    /// unless a `delivered` receipt (from any provider) came meanwhile.
    async fn fall_back(
        &self,
        courier: &Courier,
        routing: &crate::routing::Routing,
        route: &Route,
        country: &str,
        q: Queued,
        watching: &str,
    ) {
        let Some(after) = route.delivery.fallback_after else {
            tracing::info!(id = %q.id, route = %q.route, "no fallback: the route no longer falls back");
            return self.settle(&q.id, Write::Dequeue).await;
        };
        if now_ms() >= q.expires_ms {
            tracing::info!(id = %q.id, route = %q.route, "no fallback: the message's validity is over");
            return self.settle(&q.id, Write::Dequeue).await;
        }
        // The route may have changed since: every provider left had it.
        if route.providers.iter().all(|p| q.uncertain.contains(p)) {
            tracing::info!(id = %q.id, route = %q.route, "no fallback: every provider of the route had the message");
            return self.settle(&q.id, Write::Dequeue).await;
        }
        let read = match courier.record() {
            Some(record) => record.get(&q.id).await,
            None => Ok(None),
        };
        let Ok(message) = self.marker.faults.check("read", read) else {
            let write = Write::Watch { after: Duration::from_secs(5), had: q.uncertain.clone() };
            return self.settle(&q.id, write).await;
        };
        let handoffs = message.map(|m| m.handoffs).unwrap_or_default();
        if handoffs.iter().any(|h| h.status == DeliveryState::Delivered) {
            return self.settle(&q.id, Write::Dequeue).await;
        }
        let (why, reason) = match handoffs.iter().rev().find(|h| h.provider == watching).map(|h| h.status) {
            Some(s @ (DeliveryState::Undelivered | DeliveryState::Failed)) => {
                (format!("{watching} reported it {}", s.as_str()), "undelivered")
            }
            _ => (format!("no delivered receipt from {watching} within {} s", after.as_secs()), "no_receipt"),
        };
        let valid_for = Duration::from_millis(q.expires_ms.saturating_sub(now_ms()));
        let fallback = Some(Fallback { why: &why, reason });
        let via = Via::Queue { queue: &*self.queue, uncertain: &q.uncertain, valid_for, fallback };
        let mut had = q.uncertain.clone();
        let write = match courier.deliver(routing, route, q.id.clone(), &q.to, country, &q.body, via).await {
            Ok(sent) => match had_after(route, &q.uncertain, &sent) {
                Some(had) => Write::Watch { after, had },
                None => Write::Dequeue,
            },
            Err(Refusal::Provider { failure, attempts, .. }) => {
                for a in attempts.iter().filter(|a| a.outcome == Outcome::MaybeSent) {
                    if !had.contains(&a.provider) {
                        had.push(a.provider.clone());
                    }
                }
                let untried = route.providers.iter().any(|p| !had.contains(p));
                let held_back = self.marker.unmarked.lock().unwrap().contains(&q.id);
                if (failure.is_transient() || held_back) && untried {
                    // The first provider's receipt may still come meanwhile.
                    let wait = Duration::from_secs(2u64.saturating_pow(q.tries.min(6) + 1).min(60));
                    Write::Watch { after: wait, had: q.uncertain.clone() }
                } else {
                    tracing::warn!(id = %q.id, route = %q.route, "no provider took the fallback: {failure}");
                    Write::Dequeue
                }
            }
            Err(_) => Write::Dequeue,
        };
        self.settle(&q.id, write).await;
    }

    /// Records a queued message that will not be delivered, and drops it.
    async fn finish(&self, courier: &Courier, q: &Queued, provider: &str, failure: &Failure, attempts: &[Attempt]) {
        let maybe_sent = attempts.iter().any(|a| a.outcome == Outcome::MaybeSent);
        let status = if maybe_sent { DeliveryState::Unknown } else { DeliveryState::Failed };
        tracing::warn!(id = %q.id, provider = %provider, "queued message not delivered: {failure}");
        let entry = Entry {
            id: &q.id,
            route: &q.route,
            to: &q.to,
            provider,
            provider_id: None,
            segments: smsbridge_segments::count(&q.body).count,
            attempts,
            status,
            country: &region(&q.to),
        };
        courier.remember(&entry).await;
        self.settle(&q.id, Write::Dequeue).await;
    }

    /// Writes what became of message `id`; if the write fails, the message
    /// is held (never picked up again) until a retry of the write succeeds.
    async fn settle(&self, id: &str, write: Write) {
        if self.try_write(id, &write).await {
            return;
        }
        let backoff = Duration::from_secs(1);
        let owed = Owed { write, retry_at: Instant::now() + backoff, failures: 1 };
        self.owed.lock().unwrap().insert(id.to_string(), owed);
    }

    /// Retries the owed writes that are due.
    async fn pay_owed(&self) {
        let now = Instant::now();
        let due: Vec<(String, Write)> = self
            .owed
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| o.retry_at <= now)
            .map(|(id, o)| (id.clone(), o.write.clone()))
            .collect();
        for (id, write) in due {
            let paid = self.try_write(&id, &write).await;
            let mut owed = self.owed.lock().unwrap();
            if paid {
                owed.remove(&id);
            } else if let Some(o) = owed.get_mut(&id) {
                o.failures += 1;
                let backoff = Duration::from_secs(1 << o.failures.min(5)).min(MAX_WRITE_BACKOFF);
                o.retry_at = Instant::now() + backoff;
            }
        }
    }

    async fn try_write(&self, id: &str, write: &Write) -> bool {
        let (op, result) = match write {
            Write::Dequeue => ("dequeue", self.queue.dequeue(id).await),
            Write::Reschedule { wait, uncertain } => ("reschedule", self.queue.reschedule(id, *wait, uncertain).await),
            Write::Watch { after, had } => ("watch", self.queue.watch_next(id, *after, had).await),
        };
        self.marker.faults.check(op, result).is_ok()
    }
}

/// The providers that may have a message once `sent` was taken (`before`,
/// those it answered "may have" about, then the one that took it), when
/// one of `route`'s providers has not had it yet; `None` when none is left
/// to fall back to.
fn had_after(route: &Route, before: &[String], sent: &Sent) -> Option<Vec<String>> {
    let mut had = before.to_vec();
    let maybe = sent.attempts.iter().filter(|a| a.outcome == Outcome::MaybeSent).map(|a| &a.provider);
    for p in maybe.chain(std::iter::once(&sent.provider)) {
        if !had.contains(p) {
            had.push(p.clone());
        }
    }
    route.providers.iter().any(|p| !had.contains(p)).then_some(had)
}

/// The ISO 3166 region of an E.164 number, or `unknown`.
pub fn region(e164: &str) -> String {
    phone::classify(e164).0.map(|c| c.as_ref().to_string()).unwrap_or_else(|| "unknown".into())
}
