//! The host's own types at the WebAssembly boundary: what one attempt at
//! one provider came to, the message it sends, the callbacks it verifies.
//!
//! The adapter's `send-error` is converted into a [`Failure`] once, at the
//! WebAssembly boundary (`wit.rs`); everything above speaks of [`Outcome`]
//! (a word, the same in answers, the record, logs and metrics) and
//! [`Failure`] (the outcome with its detail). This module uses nothing else
//! of the crate, so any module may use it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The kind of result of one attempt. Its snake-case name is its only
/// spelling: in answers, the message record, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    /// Permanent for this number.
    InvalidRecipient,
    /// Permanent: content, sender id, account state.
    Rejected,
    /// The provider refused smsbridge's credentials.
    Unauthorized,
    RateLimited,
    /// Transient: timeout, 5xx, connection.
    Unavailable,
    /// The adapter's settings are missing or wrong.
    Misconfigured,
    /// The sandbox stopped the adapter, or it broke.
    Fault,
    /// This host could not run the adapter (out of descriptors, say): not
    /// the provider's doing.
    HostFault,
    /// Skipped: the provider's circuit is open.
    CircuitOpen,
    /// Not tried: the provider had `max_in_flight` sends in flight.
    Busy,
    /// The route's deadline passed during the attempt.
    Deadline,
    /// The provider may have the message already: not sent to it again.
    MaybeSent,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::InvalidRecipient => "invalid_recipient",
            Outcome::Rejected => "rejected",
            Outcome::Unauthorized => "unauthorized",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unavailable => "unavailable",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Fault => "fault",
            Outcome::HostFault => "host_fault",
            Outcome::CircuitOpen => "circuit_open",
            Outcome::Busy => "busy",
            Outcome::Deadline => "deadline",
            Outcome::MaybeSent => "maybe_sent",
        }
    }

    /// The outcome named `word`: its own spelling, or the contract's
    /// kebab-case one (`invalid-recipient`), which adapter fixtures use.
    pub fn parse(word: &str) -> Option<Outcome> {
        let word = word.replace('-', "_");
        ALL.into_iter().find(|o| o.as_str() == word)
    }
}

const ALL: [Outcome; 13] = [
    Outcome::Accepted,
    Outcome::InvalidRecipient,
    Outcome::Rejected,
    Outcome::Unauthorized,
    Outcome::RateLimited,
    Outcome::Unavailable,
    Outcome::Misconfigured,
    Outcome::Fault,
    Outcome::HostFault,
    Outcome::CircuitOpen,
    Outcome::Busy,
    Outcome::Deadline,
    Outcome::MaybeSent,
];

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt did not end in `accepted`, with what the adapter or the
/// sandbox said (already scrubbed of secrets and numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    InvalidRecipient(String),
    Rejected(String),
    Unauthorized(String),
    /// Seconds to wait, when the provider says.
    RateLimited(Option<u32>),
    Unavailable(String),
    Misconfigured(String),
    Fault(String),
    /// This host could not set up the sandbox: counted against no
    /// provider's circuit, and told to callers in general terms only.
    Host(String),
    CircuitOpen,
    /// The provider's bulkhead had no free slot.
    Busy,
    Deadline,
    MaybeSent(String),
}

impl Failure {
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::InvalidRecipient(_) => Outcome::InvalidRecipient,
            Failure::Rejected(_) => Outcome::Rejected,
            Failure::Unauthorized(_) => Outcome::Unauthorized,
            Failure::RateLimited(_) => Outcome::RateLimited,
            Failure::Unavailable(_) => Outcome::Unavailable,
            Failure::Misconfigured(_) => Outcome::Misconfigured,
            Failure::Fault(_) => Outcome::Fault,
            Failure::Host(_) => Outcome::HostFault,
            Failure::CircuitOpen => Outcome::CircuitOpen,
            Failure::Busy => Outcome::Busy,
            Failure::Deadline => Outcome::Deadline,
            Failure::MaybeSent(_) => Outcome::MaybeSent,
        }
    }

    /// Worth another try at the same provider.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Unavailable(_) | Failure::RateLimited(_))
    }

    /// Not about the message: the provider (or its sandbox) is unwell, or
    /// was not tried. Worth trying the next provider for, or the same one
    /// later.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent_answer()
    }

    /// Says something about the provider's health: its circuit hears of
    /// it. A provider that was not tried (full) or that this host could not
    /// run is none the worse.
    pub fn counts_against_provider(&self) -> bool {
        self.is_transient() && !matches!(self, Failure::Busy | Failure::Host(_))
    }

    /// Permanent for this message at this provider; another provider may
    /// still take it, where the route says so.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Rejected(_) | Failure::InvalidRecipient(_))
    }

    /// The provider's own verdict on this message: whatever else happened
    /// to it, the provider answered and said no.
    pub fn is_permanent_answer(&self) -> bool {
        matches!(
            self,
            Failure::InvalidRecipient(_) | Failure::Rejected(_) | Failure::Unauthorized(_) | Failure::Misconfigured(_)
        )
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::RateLimited(Some(secs)) => Some(Duration::from_secs(u64::from(*secs))),
            _ => None,
        }
    }

    /// The same failure with `scrub` applied to its text.
    pub fn map_text(self, scrub: impl Fn(&str) -> String) -> Failure {
        match self {
            Failure::InvalidRecipient(t) => Failure::InvalidRecipient(scrub(&t)),
            Failure::Rejected(t) => Failure::Rejected(scrub(&t)),
            Failure::Unauthorized(t) => Failure::Unauthorized(scrub(&t)),
            Failure::Unavailable(t) => Failure::Unavailable(scrub(&t)),
            Failure::Misconfigured(t) => Failure::Misconfigured(scrub(&t)),
            Failure::Fault(t) => Failure::Fault(scrub(&t)),
            Failure::Host(t) => Failure::Host(scrub(&t)),
            Failure::MaybeSent(t) => Failure::MaybeSent(scrub(&t)),
            other @ (Failure::RateLimited(_) | Failure::CircuitOpen | Failure::Busy | Failure::Deadline) => other,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::InvalidRecipient(s) => write!(f, "invalid recipient: {s}"),
            Failure::Rejected(s) => write!(f, "rejected: {s}"),
            Failure::Unauthorized(s) => write!(f, "unauthorized: {s}"),
            Failure::RateLimited(Some(s)) => write!(f, "rate limited: retry after {s} s"),
            Failure::RateLimited(None) => f.write_str("rate limited"),
            Failure::Unavailable(s) => write!(f, "unavailable: {s}"),
            Failure::Misconfigured(s) => write!(f, "misconfigured: {s}"),
            Failure::Fault(s) => f.write_str(s),
            Failure::Host(s) => write!(f, "this host could not run the adapter: {s}"),
            Failure::CircuitOpen => f.write_str("skipped: its circuit is open after repeated failures"),
            Failure::Busy => f.write_str("busy: the provider has its `max_in_flight` sends in flight"),
            Failure::Deadline => f.write_str("unavailable: the route's deadline passed"),
            Failure::MaybeSent(s) => f.write_str(s),
        }
    }
}

/// A message on its way to one provider's adapter.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Host-assigned and unique: the provider's client reference.
    pub id: String,
    /// E.164.
    pub to: String,
    pub body: String,
    /// From / originator, when the route or provider sets one.
    pub sender: Option<String>,
}

/// A provider's status callback, as it arrived, for its adapter to verify.
#[derive(Debug, Clone)]
pub struct Callback {
    pub method: String,
    /// The URL the provider called: signatures cover it.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where a message stands, as providers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    /// A provider may have it; its answer never came.
    Unknown,
    Sent,
    Delivered,
    Undelivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Unknown => "unknown",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Undelivered => "undelivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(word: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Queued,
            DeliveryState::Unknown,
            DeliveryState::Sent,
            DeliveryState::Delivered,
            DeliveryState::Undelivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}

/// One status a verified callback reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider_id: String,
    pub state: DeliveryState,
}

/// Why a provider's status callback changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptRefusal {
    /// No such provider, or its adapter reads no callbacks.
    Unknown,
    BadSignature(String),
    Malformed(String),
    /// The adapter or its settings failed.
    Failed(String),
    /// No sandbox was free in time: the provider should retry.
    Busy,
    /// Verified, but the record could not take it: the provider should
    /// retry, and the retry is applied.
    Unrecorded,
}

/// One try at one provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub provider: String,
    pub outcome: Outcome,
    pub ms: u64,
}

/// What an adapter says of itself, from its `info()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    pub version: String,
    /// The provider it speaks to, e.g. `Twilio Programmable Messaging`.
    pub provider: String,
    pub config_keys: Vec<ConfigKey>,
    /// Hosts it calls when the operator sets no allowlist.
    pub default_hosts: Vec<String>,
}

/// A setting an adapter reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: String,
    pub required: bool,
    /// Never shown by the host.
    pub secret: bool,
    pub description: String,
}

impl ConfigKey {
    /// `secret`, `required` or `optional`, as `check` and `inspect` show it.
    pub fn kind(&self) -> &'static str {
        if self.secret {
            "secret"
        } else if self.required {
            "required"
        } else {
            "optional"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_one_spelling_that_reads_back() {
        for o in ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(Outcome::parse("invalid-recipient"), Some(Outcome::InvalidRecipient));
        assert_eq!(Outcome::parse("nonsense"), None);
    }

    #[test]
    fn transient_failures_are_the_ones_that_fail_over() {
        assert!(Failure::Unavailable("x".into()).is_retryable());
        assert!(!Failure::Fault("x".into()).is_retryable());
        assert!(Failure::Fault("x".into()).is_transient());
        assert!(Failure::Fault("x".into()).counts_against_provider());
        assert!(!Failure::Host("x".into()).counts_against_provider(), "the host's fault is not the provider's");
        assert!(!Failure::Busy.counts_against_provider());
        assert!(!Failure::Rejected("x".into()).is_transient());
        assert!(Failure::Rejected("x".into()).is_permanent());
        assert_eq!(Failure::RateLimited(Some(3)).retry_after(), Some(Duration::from_secs(3)));
    }
}
