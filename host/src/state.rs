//! State that must be shared by every smsbridge instance that serves the same
//! callers: send counters for the limits against SMS pumping, and the answers
//! kept for idempotent retries. One small interface, so that a shared backend
//! (PostgreSQL) can replace the embedded one; the embedded [`MemoryState`]
//! serves a single instance.

use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` under `key`.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub key: String,
    pub limit: u32,
    pub window: Duration,
}

/// Bucket number `index` is full; it has room again after `retry_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Full {
    pub index: usize,
    pub retry_after: Duration,
}

/// Who owns an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Nobody did: the caller now does and must `complete` or `release` it.
    New,
    /// A send with this key is running.
    InFlight,
    /// A send with this key finished; its stored result.
    Done(Vec<u8>),
    /// The key stands for another request (another fingerprint).
    Conflict,
}

#[async_trait]
pub trait SharedState: Send + Sync {
    /// Counts one event in every bucket if all have room; else counts
    /// nothing and names the first full one. An error: the store cannot be
    /// reached, and nothing is known.
    async fn admit(&self, buckets: &[Bucket]) -> anyhow::Result<Result<(), Full>>;

    /// Claims `key`, for the request whose fingerprint is `fingerprint`,
    /// for `ttl`, unless it is claimed or done.
    async fn claim(&self, key: &str, fingerprint: &str, ttl: Duration) -> anyhow::Result<Claim>;

    /// Stores the result for `key`, kept for `ttl`.
    async fn complete(&self, key: &str, result: Vec<u8>, ttl: Duration) -> anyhow::Result<()>;

    /// Gives `key` up: the send failed, and a retry may send.
    async fn release(&self, key: &str) -> anyhow::Result<()>;

    /// Keeps a console session under `key`: over after `idle` unused, or
    /// `max` after it opened.
    async fn session_open(&self, key: &str, idle: Duration, max: Duration) -> anyhow::Result<()>;

    /// Whether the session under `key` is live; if it is, its idle time
    /// starts again.
    async fn session_touch(&self, key: &str, idle: Duration) -> anyhow::Result<bool>;

    /// Ends the session under `key`.
    async fn session_close(&self, key: &str) -> anyhow::Result<()>;
}

/// A backend that several instances share, as health reports it.
#[async_trait]
pub trait SharedBackend: Send + Sync {
    /// Its name in `/admin/health`.
    fn name(&self) -> &'static str;
    /// Whether its last operation succeeded.
    fn is_up(&self) -> bool;
    /// The instances that share it and were seen alive lately.
    async fn instances_alive(&self) -> anyhow::Result<i64>;
}

/// The embedded store: exact sliding windows (one timestamp per event) and
/// idempotency entries, in memory, swept as they expire.
#[derive(Default)]
pub struct MemoryState {
    /// Per key: its window and the times of the events still in it.
    windows: Mutex<HashMap<String, Window>>,
    /// Per key: the request's fingerprint, the stored answer (none while in
    /// flight) and its expiry.
    claims: Mutex<HashMap<String, Held>>,
    /// Per console session: when it goes idle, and when it ends anyway.
    sessions: Mutex<HashMap<String, (Instant, Instant)>>,
    calls: std::sync::atomic::AtomicU64,
}

type Window = (Duration, VecDeque<Instant>);
type Held = (String, Option<Vec<u8>>, Instant);

/// Sweep expired entries once per this many calls, so memory follows traffic.
const SWEEP_EVERY: u64 = 1024;

impl MemoryState {
    fn maybe_sweep(&self, now: Instant) {
        if !self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(SWEEP_EVERY) {
            return;
        }
        // A key whose newest event has left its window counts nothing.
        self.windows
            .lock()
            .unwrap()
            .retain(|_, (window, events)| events.back().is_some_and(|t| now.duration_since(*t) < *window));
        self.claims.lock().unwrap().retain(|_, (_, _, expires)| *expires > now);
        self.sessions.lock().unwrap().retain(|_, (idle, end)| *idle > now && *end > now);
    }
}

#[async_trait]
impl SharedState for MemoryState {
    async fn admit(&self, buckets: &[Bucket]) -> anyhow::Result<Result<(), Full>> {
        let now = Instant::now();
        self.maybe_sweep(now);
        let mut windows = self.windows.lock().unwrap();
        for (index, bucket) in buckets.iter().enumerate() {
            let Some((_, events)) = windows.get_mut(&bucket.key) else { continue };
            while events.front().is_some_and(|t| now.duration_since(*t) >= bucket.window) {
                events.pop_front();
            }
            if events.len() >= bucket.limit as usize {
                // Room again when the oldest event counted leaves the window.
                let oldest = events[events.len() - bucket.limit as usize];
                let retry_after = bucket.window.saturating_sub(now.duration_since(oldest));
                return Ok(Err(Full { index, retry_after }));
            }
        }
        for bucket in buckets {
            windows.entry(bucket.key.clone()).or_insert_with(|| (bucket.window, VecDeque::new())).1.push_back(now);
        }
        Ok(Ok(()))
    }

    async fn claim(&self, key: &str, fingerprint: &str, ttl: Duration) -> anyhow::Result<Claim> {
        let now = Instant::now();
        self.maybe_sweep(now);
        let mut claims = self.claims.lock().unwrap();
        Ok(match claims.get(key) {
            Some((held, _, expires)) if *expires > now && held != fingerprint => Claim::Conflict,
            Some((_, result, expires)) if *expires > now => match result {
                Some(result) => Claim::Done(result.clone()),
                None => Claim::InFlight,
            },
            _ => {
                claims.insert(key.to_string(), (fingerprint.to_string(), None, now + ttl));
                Claim::New
            }
        })
    }

    async fn complete(&self, key: &str, result: Vec<u8>, ttl: Duration) -> anyhow::Result<()> {
        if let Some((_, held, expires)) = self.claims.lock().unwrap().get_mut(key) {
            *held = Some(result);
            *expires = Instant::now() + ttl;
        }
        Ok(())
    }

    async fn release(&self, key: &str) -> anyhow::Result<()> {
        self.claims.lock().unwrap().remove(key);
        Ok(())
    }

    async fn session_open(&self, key: &str, idle: Duration, max: Duration) -> anyhow::Result<()> {
        let now = Instant::now();
        self.maybe_sweep(now);
        self.sessions.lock().unwrap().insert(key.to_string(), (now + idle, now + max));
        Ok(())
    }

    async fn session_touch(&self, key: &str, idle: Duration) -> anyhow::Result<bool> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap();
        match sessions.get_mut(key) {
            Some((idle_at, end)) if *idle_at > now && *end > now => {
                *idle_at = now + idle;
                Ok(true)
            }
            Some(_) => {
                sessions.remove(key);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    async fn session_close(&self, key: &str) -> anyhow::Result<()> {
        self.sessions.lock().unwrap().remove(key);
        Ok(())
    }
}
