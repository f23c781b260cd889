//! The binds to one provider instance's SMSC, owned by the host: each bind
//! is a transceiver kept up by its own task (bind, `enquire_link`, re-bind
//! with jittered backoff), with a window of outstanding `submit_sm`, a
//! bind-wide pause on `ESME_RTHROTTLED` and `ESME_RMSGQFUL` that resends in
//! order, and receipts written to the record before `deliver_sm_resp`.
//!
//! Sessions outlive adapter reloads: [`Sessions`] hands a provider the
//! session it had while its bind settings stay the same.

use super::inbound::Inbound;
use super::receipt::id_key;
use super::{SmppError, Submit, Submitted, encode, status};
use crate::config::SmppBinds;
use crate::egress::{Exchange, Interceptor};
use crate::record::MessageRecord;
use crate::telemetry;
use rusmppc::Client;
use rusmppc::error::Error as ClientError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// The sessions of every SMPP provider instance, kept across reloads.
pub struct Sessions {
    record: Option<Arc<dyn MessageRecord>>,
    open: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn new(record: Option<Arc<dyn MessageRecord>>) -> Sessions {
        Sessions { record, open: Mutex::default() }
    }

    /// Provider `name`'s session: the open one while `binds` is unchanged,
    /// else a new one (the old one drains with the sends still using it).
    pub fn session(&self, name: &str, binds: &SmppBinds) -> Arc<Session> {
        let mut open = self.open.lock().unwrap();
        if let Some(s) = open.get(name).filter(|s| &s.inner.settings == binds) {
            return s.clone();
        }
        let session = Session::open(name, binds.clone(), self.record.clone());
        open.insert(name.to_string(), session.clone());
        session
    }

    /// Closes the sessions of providers no longer configured for SMPP.
    pub fn keep_only(&self, names: &[&str]) {
        self.open.lock().unwrap().retain(|name, _| names.contains(&name.as_str()));
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = self.open.lock().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.inner.provider.cmp(&b.inner.provider));
        all
    }
}

/// One provider instance's binds.
pub struct Session {
    inner: Arc<Inner>,
    binds: Vec<Arc<Bind>>,
    next: AtomicUsize,
    /// Dropped with the session: its binds unbind and stop.
    _stop: watch::Sender<()>,
}

/// What the bind tasks share with the senders.
pub(super) struct Inner {
    pub(super) provider: String,
    pub(super) settings: SmppBinds,
    /// The next moment a part may go, when `tps` limits the rate.
    pace: tokio::sync::Mutex<Instant>,
    pub(super) inbound: Inbound,
}

/// One bind and what is known of it.
pub struct Bind {
    n: usize,
    pub(super) client: Mutex<Option<Client>>,
    pub(super) up: watch::Sender<bool>,
    window: Semaphore,
    /// Taken to write a part: parts leave in the order they take it.
    gate: tokio::sync::Mutex<()>,
    /// Throttled parts waiting to go again, before any other; and the
    /// signal that one went.
    resending: std::sync::atomic::AtomicUsize,
    resent: tokio::sync::Notify,
    paused_until: Mutex<Option<Instant>>,
    /// Why the last bind attempt failed: the SMSC's status, if it answered.
    pub(super) last_error: Mutex<Option<(Option<u32>, String)>>,
    pub stats: BindStats,
}

/// Counters per bind, for metrics and the console.
#[derive(Default)]
pub struct BindStats {
    pub submitted: AtomicU64,
    pub refused: AtomicU64,
    pub pauses: AtomicU64,
    pub receipts: AtomicU64,
    pub reconnects: AtomicU64,
}

/// What one bind is doing now.
pub struct BindView {
    pub up: bool,
    pub in_window: u32,
    pub window: u32,
    pub last_error: Option<String>,
}

impl Session {
    fn open(provider: &str, settings: SmppBinds, record: Option<Arc<dyn MessageRecord>>) -> Arc<Session> {
        let (stop, _) = watch::channel(());
        let inner = Arc::new(Inner {
            provider: provider.to_string(),
            pace: tokio::sync::Mutex::new(Instant::now()),
            inbound: Inbound::new(provider, &settings, record),
            settings,
        });
        let binds: Vec<Arc<Bind>> = (0..inner.settings.binds as usize)
            .map(|n| {
                Arc::new(Bind {
                    n,
                    client: Mutex::default(),
                    up: watch::channel(false).0,
                    window: Semaphore::new(inner.settings.window as usize),
                    gate: Default::default(),
                    resending: Default::default(),
                    resent: Default::default(),
                    paused_until: Mutex::default(),
                    last_error: Mutex::default(),
                    stats: BindStats::default(),
                })
            })
            .collect();
        for (n, bind) in binds.iter().enumerate() {
            tokio::spawn(super::bind::keep_bound(inner.clone(), bind.clone(), n, stop.subscribe()));
        }
        Arc::new(Session { inner, binds, next: AtomicUsize::new(0), _stop: stop })
    }

    pub fn provider(&self) -> &str {
        &self.inner.provider
    }

    pub fn settings(&self) -> &SmppBinds {
        &self.inner.settings
    }

    pub fn binds(&self) -> Vec<BindView> {
        let window = self.inner.settings.window;
        self.binds
            .iter()
            .map(|b| BindView {
                up: *b.up.borrow(),
                in_window: window - b.window.available_permits() as u32,
                window,
                last_error: b.last_error.lock().unwrap().as_ref().map(|e| e.1.clone()),
            })
            .collect()
    }

    /// The binds once all are up, or as they are after `within`.
    pub async fn wait_bound(&self, within: Duration) -> Vec<BindView> {
        let until = Instant::now() + within;
        for bind in &self.binds {
            let mut up = bind.up.subscribe();
            let _ = tokio::time::timeout_at(until, up.wait_for(|up| *up)).await;
        }
        self.binds()
    }

    pub fn stats(&self) -> impl Iterator<Item = &BindStats> {
        self.binds.iter().map(|b| &b.stats)
    }

    /// Sends `submit` as one or more parts through one bind, all before
    /// `deadline`. `interceptor` sees the message before its first part
    /// leaves; `exchange` counts it in doubt from then until the SMSC
    /// answers every part.
    pub async fn submit(
        &self,
        submit: &Submit,
        deadline: Instant,
        exchange: Exchange<'_>,
        interceptor: Option<&dyn Interceptor>,
    ) -> Result<Submitted, SmppError> {
        let reference = rand_u8();
        let parts = encode::parts(submit, reference).map_err(SmppError::Unencodable)?;
        let bind = self.pick(deadline).await?;
        if let Some(i) = interceptor {
            i.before_leaving(exchange).await.map_err(|d| SmppError::Denied(d.0))?;
        }
        let mut leaving = exchange.leaving();
        let mut ids = Vec::with_capacity(parts.len());
        for part in parts {
            let sent = !ids.is_empty();
            let mut held = None;
            loop {
                match self.submit_part(&bind, part.clone(), deadline, held.take()).await {
                    Part::Taken(id) => {
                        ids.push(id);
                        break;
                    }
                    Part::Paused(turn) => held = Some(turn),
                    // Nothing of this message left: it can go elsewhere.
                    Part::NotSent(e) if !sent => {
                        leaving.settled();
                        return Err(e);
                    }
                    // Earlier parts were taken: the recipient may see them.
                    Part::NotSent(_) => return Err(SmppError::Timeout),
                    Part::Refused(code) => {
                        if !sent {
                            leaving.settled();
                        }
                        bind.stats.refused.fetch_add(1, Ordering::Relaxed);
                        return Err(SmppError::Status(code));
                    }
                    Part::InDoubt => return Err(SmppError::Timeout),
                }
            }
        }
        leaving.settled();
        bind.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let form = self.inner.settings.submit_ids;
        let reference = id_key(&ids[0], form);
        if ids.len() > 1 {
            self.inner.inbound.long_message(ids.iter().map(|id| id_key(id, form)).collect());
        }
        Ok(Submitted { parts: ids.len() as u32, message_ids: ids, reference })
    }

    /// A bind that is up, taking turns; waits for one until `deadline`.
    async fn pick(&self, deadline: Instant) -> Result<Arc<Bind>, SmppError> {
        loop {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for k in 0..self.binds.len() {
                let bind = &self.binds[(start + k) % self.binds.len()];
                if *bind.up.borrow() {
                    return Ok(bind.clone());
                }
            }
            let mut ups: Vec<_> = self.binds.iter().map(|b| b.up.subscribe()).collect();
            let any_up = futures_util::future::select_all(ups.iter_mut().map(|w| Box::pin(w.changed())));
            if tokio::time::timeout_at(deadline, any_up).await.is_err() {
                let last = self.binds.iter().find_map(|b| b.last_error.lock().unwrap().clone());
                let (code, why) = last.unwrap_or((None, "the bind is not up yet".into()));
                return Err(SmppError::Unbound(code, why));
            }
        }
    }

    /// Writes one part. `held` is the turn of a part the SMSC throttled: it
    /// keeps its place in the window and goes before any part not yet sent.
    async fn submit_part<'a>(
        &self,
        bind: &'a Bind,
        part: rusmpp::pdus::SubmitSm,
        deadline: Instant,
        held: Option<Turn<'a>>,
    ) -> Part<'a> {
        let not_sent = || Part::NotSent(SmppError::Busy);
        let (permit, retry) = match held {
            Some(turn) => (turn.permit, Some(turn.retry)),
            None => match tokio::time::timeout_at(deadline, bind.window.acquire()).await {
                Ok(Ok(permit)) => (permit, None),
                _ => return not_sent(),
            },
        };
        let gate = loop {
            let waiting = bind.resent.notified();
            tokio::pin!(waiting);
            waiting.as_mut().enable();
            let Ok(gate) = tokio::time::timeout_at(deadline, bind.gate.lock()).await else { return not_sent() };
            if retry.is_some() || bind.resending.load(Ordering::SeqCst) == 0 {
                break gate;
            }
            // A throttled part goes first.
            drop(gate);
            if tokio::time::timeout_at(deadline, waiting).await.is_err() {
                return not_sent();
            }
        };
        drop(retry);
        let paused = *bind.paused_until.lock().unwrap();
        if let Some(until) = paused.filter(|u| *u > Instant::now()) {
            if until >= deadline {
                return Part::NotSent(SmppError::Status(status::THROTTLED));
            }
            tokio::time::sleep_until(until).await;
        }
        if self.inner.settings.tps > 0 {
            let mut next = self.inner.pace.lock().await;
            let at = (*next).max(Instant::now());
            if at >= deadline {
                return not_sent();
            }
            *next = at + Duration::from_secs(1) / self.inner.settings.tps;
            drop(next);
            tokio::time::sleep_until(at).await;
        }
        let Some(client) = bind.client.lock().unwrap().clone() else {
            return Part::NotSent(SmppError::Unbound(None, "the bind went down".into()));
        };
        let provider = self.inner.provider.as_str();
        let window = self.inner.settings.window as usize;
        telemetry::smpp_window(provider, bind.n, window - bind.window.available_permits());
        let written = Instant::now();
        let request = client.no_response_timeout();
        let mut answer = Box::pin(request.submit_sm(part));
        // Polled once under the gate: the part is queued for writing in turn.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(answer.as_mut().poll(cx))).await;
        drop(gate);
        let answer = match first {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => match tokio::time::timeout_at(deadline, answer).await {
                Ok(r) => r,
                Err(_) => return Part::InDoubt,
            },
        };
        let code = match &answer {
            Ok(_) => 0,
            Err(ClientError::UnexpectedResponse { response }) => u32::from(response.status()),
            Err(_) => return Part::InDoubt,
        };
        telemetry::smpp_submit(provider, code, written.elapsed());
        // This part's slot is freed on return, unless it is to go again.
        let in_window = window - bind.window.available_permits() - usize::from(!status::is_pause(code));
        telemetry::smpp_window(provider, bind.n, in_window);
        match answer {
            Ok(resp) => Part::Taken(resp.message_id().as_str().trim_end_matches('\0').to_string()),
            Err(ClientError::UnexpectedResponse { response }) => {
                let code = u32::from(response.status());
                if status::is_pause(code) {
                    let until = Instant::now() + self.inner.settings.throttle_pause;
                    *bind.paused_until.lock().unwrap() = Some(until);
                    bind.stats.pauses.fetch_add(1, Ordering::Relaxed);
                    telemetry::smpp_pause(provider);
                    tracing::warn!(provider = %self.inner.provider, "SMSC asked to slow down (command_status {code:#x}); the bind pauses");
                    if until >= deadline {
                        return Part::NotSent(SmppError::Status(code));
                    }
                    bind.resending.fetch_add(1, Ordering::SeqCst);
                    Part::Paused(Turn { permit, retry: Resending(bind) })
                } else {
                    Part::Refused(code)
                }
            }
            // The part was handed to the connection: it may have left.
            Err(_) => Part::InDoubt,
        }
    }
}

/// How one part fared.
enum Part<'a> {
    Taken(String),
    /// Throttled: nothing taken; send it again after the pause, in its turn.
    Paused(Turn<'a>),
    /// Never left.
    NotSent(SmppError),
    /// Answered with a non-zero status.
    Refused(u32),
    /// Left, and no answer came.
    InDoubt,
}

/// A throttled part's place: its slot in the window, and its claim to go
/// before parts not yet sent.
struct Turn<'a> {
    permit: tokio::sync::SemaphorePermit<'a>,
    retry: Resending<'a>,
}

/// Counts a throttled part waiting to go again; dropped once it passed the
/// gate (or gave up), it lets the others through.
struct Resending<'a>(&'a Bind);

impl Drop for Resending<'_> {
    fn drop(&mut self) {
        self.0.resending.fetch_sub(1, Ordering::SeqCst);
        self.0.resent.notify_waiters();
    }
}

pub(super) fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}
