//! The durable message record and the queue of queued routes: two small
//! async interfaces, [`MessageRecord`] and [`Queue`], with no storage types in
//! their signatures, so a shared database can serve several smsbridge
//! instances through them. [`sqlite::SqliteRecord`] is the embedded
//! implementation of both.
//!
//! The record keeps, for every send, its id, route, masked number, a keyed
//! hash of the full number (for lookups), the provider and its id, every
//! attempt, and the status timeline. Never the message text, never the
//! number in the clear.

pub mod sqlite;

use crate::outcome::{Attempt, DeliveryState, Outcome};
use anyhow::Result;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use sqlite::SqliteRecord;

/// One message as the record knows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordedMessage {
    pub id: String,
    pub route: String,
    /// Masked.
    pub to: String,
    pub provider: String,
    pub provider_id: Option<String>,
    pub segments: u32,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub attempts: Vec<Attempt>,
    pub statuses: Vec<StatusAt>,
    /// Each provider that took it, in order: the first, then fallbacks.
    pub handoffs: Vec<Handoff>,
}

/// One point of a message's status timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusAt {
    pub status: DeliveryState,
    pub at_ms: u64,
    /// The provider whose receipt it was; none for smsbridge's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One provider's acceptance of a message: the first, or a fallback.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Handoff {
    pub provider: String,
    pub provider_id: String,
    /// `first`, or what made smsbridge fall back to this provider.
    pub why: String,
    /// What it cost, in parts.
    pub segments: u32,
    pub at_ms: u64,
    /// The provider's latest receipt; `queued` before any.
    pub status: DeliveryState,
    /// When its first final receipt (delivered, undelivered, failed) came.
    pub settled_ms: Option<u64>,
}

/// A fallback's handoff, for [`MessageRecord::add_fallback`].
pub struct NewHandoff<'a> {
    pub provider: &'a str,
    pub provider_id: &'a str,
    pub why: &'a str,
    pub segments: u32,
    pub country: &'a str,
}

/// One handoff as the delivered-share figures read it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffFigure {
    pub provider: String,
    /// ISO 3166 region of the number; empty when unknown.
    pub country: String,
    pub at_ms: u64,
    pub status: DeliveryState,
    pub settled_ms: Option<u64>,
}

/// A message waiting in the queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub route: String,
    pub to: String,
    pub body: String,
    pub expires_ms: u64,
    pub tries: u32,
    /// Providers that may already have it.
    pub uncertain: Vec<String>,
    /// Set when the message was accepted and waits for a delivered receipt
    /// from this provider: due, it falls back to the next one.
    pub watching: Option<String>,
}

/// What one send came to, for [`MessageRecord::add`].
pub struct Entry<'a> {
    pub id: &'a str,
    pub route: &'a str,
    /// E.164; the record keeps it masked and hashed.
    pub to: &'a str,
    pub provider: &'a str,
    pub provider_id: Option<&'a str>,
    pub segments: u32,
    pub attempts: &'a [Attempt],
    /// `queued` when a provider took it, `failed` when none did.
    pub status: DeliveryState,
    /// ISO 3166 region of `to`; empty when unknown.
    pub country: &'a str,
}

/// The keyed hash under which messages to `e164` are found: without the
/// key, a hash of a phone number is a guessable lookup table away from it.
pub fn number_hash(key: &[u8], e164: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(e164.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An attempt as stored; an outcome word from an older version reads as
/// the closest one.
pub fn stored_attempt(provider: String, outcome: &str, ms: u64) -> Attempt {
    let outcome = match Outcome::parse(outcome) {
        Some(o) => o,
        None if outcome.starts_with("maybe_sent") => Outcome::MaybeSent,
        None => Outcome::Fault,
    };
    Attempt { provider, outcome, ms }
}

/// A point of a timeline as stored. Only the backends write the column,
/// from [`DeliveryState`], so a word they cannot read is not expected.
pub fn stored_status(status: &str, at_ms: u64, provider: Option<String>) -> StatusAt {
    StatusAt { status: stored_state(status), at_ms, provider }
}

/// A delivery state as stored.
pub fn stored_state(status: &str) -> DeliveryState {
    DeliveryState::parse(status).unwrap_or(DeliveryState::Queued)
}

/// Whether a receipt says how a handoff ended.
pub fn is_final(status: DeliveryState) -> bool {
    matches!(status, DeliveryState::Delivered | DeliveryState::Undelivered | DeliveryState::Failed)
}

/// Messages read in three batches (the messages, then all their attempts,
/// then all their statuses, each ordered within its message), put together
/// in the order of `ids`; ids not found are left out. The one row mapper
/// of every backend, so that none reads a row per message.
pub fn assemble(
    ids: &[String],
    messages: Vec<RecordedMessage>,
    attempts: Vec<(String, Attempt)>,
    statuses: Vec<(String, StatusAt)>,
    handoffs: Vec<(String, Handoff)>,
) -> Vec<RecordedMessage> {
    let mut found: std::collections::HashMap<String, RecordedMessage> =
        messages.into_iter().map(|m| (m.id.clone(), m)).collect();
    for (id, attempt) in attempts {
        if let Some(m) = found.get_mut(&id) {
            m.attempts.push(attempt);
        }
    }
    for (id, status) in statuses {
        if let Some(m) = found.get_mut(&id) {
            m.statuses.push(status);
        }
    }
    for (id, handoff) in handoffs {
        if let Some(m) = found.get_mut(&id) {
            m.handoffs.push(handoff);
        }
    }
    ids.iter().filter_map(|id| found.remove(id)).collect()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Every send and its delivery-status timeline.
#[async_trait]
pub trait MessageRecord: Send + Sync {
    /// Records one send and its first status.
    async fn add(&self, entry: &Entry<'_>) -> Result<()>;
    /// Records a fallback of message `id`: its `attempts`, and the
    /// provider that took it, if one did.
    async fn add_fallback(&self, id: &str, attempts: &[Attempt], handoff: Option<NewHandoff<'_>>) -> Result<()>;
    /// Adds `status` to the timeline of the message `provider` knows as
    /// `provider_id`; false when there is no such message. In the same
    /// write, a fallback waiting on the message hears of it: `delivered`
    /// (from any provider) ends the chain, `undelivered` or `failed` from
    /// the provider it waits on makes it due now.
    async fn update_status(&self, provider: &str, provider_id: &str, status: DeliveryState) -> Result<bool>;
    /// Every handoff since `since_ms`, for the delivered-share figures.
    async fn handoffs_since(&self, since_ms: u64) -> Result<Vec<HandoffFigure>>;
    async fn get(&self, id: &str) -> Result<Option<RecordedMessage>>;
    /// The latest `limit` messages to `e164`, newest first.
    async fn by_number(&self, e164: &str, limit: usize) -> Result<Vec<RecordedMessage>>;
    /// The latest `limit` messages to any number, newest first.
    async fn recent(&self, limit: usize) -> Result<Vec<RecordedMessage>>;
    /// The messages `ids` name, in that order; ids not found are left out.
    async fn get_all(&self, ids: Vec<String>) -> Result<Vec<RecordedMessage>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.get(&id).await?);
        }
        Ok(out)
    }
    /// Deletes messages (and callbacks seen) older than `age`; returns how
    /// many messages.
    async fn purge(&self, age: Duration) -> Result<usize>;
    /// Notes a verified callback by `key` (a digest of its provider and
    /// signed content); false when it was noted before, and is not to be
    /// applied again.
    async fn first_callback(&self, key: &str) -> Result<bool>;
    /// Forgets callback `key`, noted but not applied: its retry is applied.
    async fn forget_callback(&self, key: &str) -> Result<()>;
}

/// Messages of queued routes, accepted and not yet delivered, with the
/// marks that keep a provider that may have one from getting it twice.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Accepts a message, to be delivered within `validity`.
    async fn enqueue(&self, id: &str, route: &str, to: &str, body: &str, validity: Duration) -> Result<()>;
    /// After a restart, marks requests that were on their way as uncertain.
    async fn recover(&self) -> Result<usize>;
    /// Claims messages due now, oldest first, leaving out `busy` ones: a
    /// shared queue gives each to one instance, for a lease.
    async fn due(&self, limit: usize, busy: &HashSet<String>) -> Result<Vec<Queued>>;
    /// Keeps the claims on `ids` (being delivered, or with a write owed)
    /// from running out; called often, it writes only when due.
    async fn renew(&self, _ids: &[String]) -> Result<()> {
        Ok(())
    }
    /// `provider` may get the message from here on.
    async fn mark_sending(&self, id: &str, provider: &str) -> Result<()>;
    /// The attempt ended with a refusal: no longer in doubt.
    async fn clear_sending(&self, id: &str) -> Result<()>;
    /// Tries again after `wait`, never again at the `uncertain` providers
    /// (they may have it).
    async fn reschedule(&self, id: &str, wait: Duration, uncertain: &[String]) -> Result<()>;
    /// Keeps message `id`, which the providers `had` took (the last one
    /// now), until `validity`: due after `after` unless a `delivered`
    /// receipt comes first (see [`MessageRecord::update_status`]).
    #[allow(clippy::too_many_arguments)]
    async fn watch(
        &self,
        id: &str,
        route: &str,
        to: &str,
        body: &str,
        validity: Duration,
        after: Duration,
        had: &[String],
    ) -> Result<()>;
    /// A claimed message goes on waiting, now for the last of `had`.
    async fn watch_next(&self, id: &str, after: Duration, had: &[String]) -> Result<()>;
    /// The message is done with: delivered, refused or expired.
    async fn dequeue(&self, id: &str) -> Result<()>;
}
