//! A failure answer: its HTTP status, its machine-readable [`Code`] (one
//! spelling each, matched wherever behaviour depends on it), a sentence,
//! and what goes with it (a `Retry-After`, challenges, fields).

use crate::config::{Answer, Route};
use crate::delivery::Refusal;
use crate::outcome::Failure;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Declares [`Code`], each with its one spelling, and the list of all.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident => $word:literal,)*) => {
        /// Every error code a caller can get, in the `error` field of the body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $word,)*
                }
            }
        }
    };
}

codes! {
    // The request's own fault: counted in `smsbridge_refused_total`.
    Unauthorized => "unauthorized",
    CrossSite => "cross_site",
    UnknownHost => "unknown_host",
    MissingField => "missing_field",
    InvalidPhone => "invalid_phone",
    InvalidMessage => "invalid_message",
    InvalidJson => "invalid_json",
    InvalidXml => "invalid_xml",
    InvalidEncoding => "invalid_encoding",
    BodyTooLarge => "body_too_large",
    BodyTimeout => "body_timeout",
    UnsupportedMediaType => "unsupported_media_type",
    MethodNotAllowed => "method_not_allowed",
    InvalidIdempotencyKey => "invalid_idempotency_key",
    IdempotencyKeyReused => "idempotency_key_reused",
    LimitExceeded => "limit_exceeded",
    CountryNotAllowed => "country_not_allowed",
    NumberTypeNotAllowed => "number_type_not_allowed",
    // Not the request's fault, or counted where it happens.
    UnknownRoute => "unknown_route",
    VoiceNotSupported => "voice_not_supported",
    StateUnavailable => "state_unavailable",
    InFlight => "in_flight",
    InvalidRecipient => "invalid_recipient",
    Rejected => "rejected",
    ProviderUnauthorized => "provider_unauthorized",
    ProviderMisconfigured => "provider_misconfigured",
    RateLimited => "rate_limited",
    Unconfirmed => "unconfirmed",
    ProviderBusy => "provider_busy",
    HostUnavailable => "host_unavailable",
    Unavailable => "unavailable",
    // Delivery callbacks.
    UnknownProvider => "unknown_provider",
    BadSignature => "bad_signature",
    MalformedCallback => "malformed_callback",
    Busy => "busy",
    NotRecorded => "not_recorded",
    CallbackFailed => "callback_failed",
}

impl Code {
    /// Refused on the request's own account, before any provider was
    /// tried; provider outcomes are counted where they happen.
    pub fn is_refusal(self) -> bool {
        use Code::*;
        matches!(
            self,
            Unauthorized
                | CrossSite
                | UnknownHost
                | MissingField
                | InvalidPhone
                | InvalidMessage
                | InvalidJson
                | InvalidXml
                | InvalidEncoding
                | BodyTooLarge
                | BodyTimeout
                | UnsupportedMediaType
                | MethodNotAllowed
                | InvalidIdempotencyKey
                | IdempotencyKeyReused
                | LimitExceeded
                | CountryNotAllowed
                | NumberTypeNotAllowed
        )
    }

    /// About the user's number or its limits: Okta is told to fail the
    /// OTP, not to send it through its own providers instead (which would
    /// let a pumping attack through). Every other failure lets it fall back.
    pub fn fails_the_otp(self) -> bool {
        use Code::*;
        matches!(self, InvalidPhone | InvalidRecipient | LimitExceeded | CountryNotAllowed | NumberTypeNotAllowed)
    }
}

/// A failure answer: status, code, and a sentence.
pub struct Problem {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub extra: Vec<(&'static str, Value)>,
    pub retry_after: Option<u32>,
    /// `WWW-Authenticate` values, for a 401.
    pub challenges: Vec<String>,
    /// The caller's shape the answer takes.
    pub shape: Answer,
}

impl Problem {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            retry_after: None,
            challenges: Vec::new(),
            shape: Answer::Json,
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Problem {
        self.extra.push((key, value.into()));
        self
    }

    pub fn retry_after(self, secs: u32) -> Problem {
        Problem { retry_after: Some(secs), ..self }
    }

    /// smsbridge's own JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({ "status": "failed", "error": self.code.as_str(), "message": self.message });
        for (k, v) in &self.extra {
            body[*k] = v.clone();
        }
        body
    }
}

/// The answer for a field the request lacks: an object or array of JSON
/// where a text was expected, or nothing at all.
pub(super) fn missing(name: &str, fields: &HashMap<String, String>) -> Problem {
    let inside = format!("{name}.");
    if fields.keys().any(|k| k.starts_with(&inside)) {
        let why = format!("field `{name}` must be a string, not an array or object");
        return Problem::new(StatusCode::BAD_REQUEST, Code::InvalidJson, why).with("field", name);
    }
    Problem::new(StatusCode::BAD_REQUEST, Code::MissingField, format!("field `{name}` is required")).with("field", name)
}

/// A 401 that tells the caller nothing but the challenge; the audit log
/// gets the route, the caller's address and the reason, never the credential.
pub(super) fn unauthorized(
    route: &Route,
    remote: Option<SocketAddr>,
    reason: &str,
    challenges: Vec<String>,
) -> Problem {
    let remote = remote.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into());
    tracing::warn!(route = %route.path, %remote, reason, "caller authentication failed");
    Problem { challenges, ..Problem::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, "authentication required") }
}

pub(super) fn method_not_allowed(route: &Route, method: &Method) -> Problem {
    let allowed: Vec<&str> = route
        .methods
        .iter()
        .map(|m| match m {
            crate::config::Method::Get => "GET",
            crate::config::Method::Post => "POST",
        })
        .collect();
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}; use {}", route.path, allowed.join(" or ")),
    )
}

/// What a caller of `route` is told of `refusal`.
pub fn refusal(route: &Route, refusal: Refusal) -> Problem {
    let phone = || route.fields.phone.clone();
    match refusal {
        Refusal::Phone(e) => {
            Problem::new(StatusCode::BAD_REQUEST, Code::InvalidPhone, format!("field `{}` {e}", route.fields.phone))
                .with("field", phone())
        }
        Refusal::Message(why) => Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidMessage,
            format!("field `{}` {why}", route.fields.message),
        )
        .with("field", route.fields.message.clone()),
        Refusal::Limited { limit, retry_after } => {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::LimitExceeded,
                format!("too many messages: the route's `{limit}` limit is reached; retry after {secs} s"),
            )
            .retry_after(secs.min(u64::from(u32::MAX)) as u32)
            .with("limit", limit)
        }
        Refusal::Country(country) => Problem::new(
            StatusCode::FORBIDDEN,
            Code::CountryNotAllowed,
            format!("field `{}`: numbers in {country} are not allowed on this route", route.fields.phone),
        )
        .with("field", phone())
        .with("country", country),
        Refusal::NumberType(kind) => Problem::new(
            StatusCode::FORBIDDEN,
            Code::NumberTypeNotAllowed,
            format!("field `{}`: {kind} numbers are not allowed on this route", route.fields.phone),
        )
        .with("field", phone())
        .with("number_type", kind),
        Refusal::KeyReused => Problem::new(
            StatusCode::CONFLICT,
            Code::IdempotencyKeyReused,
            "header `Idempotency-Key` was used for another request on this route: use a new key per message",
        ),
        Refusal::StateDown => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StateUnavailable,
            "smsbridge cannot reach its state (limits, repeats or queue) now; retry shortly",
        )
        .retry_after(5),
        Refusal::InFlight => Problem::new(
            StatusCode::CONFLICT,
            Code::InFlight,
            "an identical request is still being sent; retry for its answer",
        ),
        Refusal::Provider { provider, failure, attempts } => {
            let text = failure.to_string();
            let problem = match &failure {
                Failure::InvalidRecipient(_) => {
                    Problem::new(StatusCode::BAD_REQUEST, Code::InvalidRecipient, text).with("field", phone())
                }
                Failure::Rejected(_) => Problem::new(StatusCode::BAD_GATEWAY, Code::Rejected, text),
                Failure::Unauthorized(_) => Problem::new(StatusCode::BAD_GATEWAY, Code::ProviderUnauthorized, text),
                Failure::Misconfigured(_) => Problem::new(StatusCode::BAD_GATEWAY, Code::ProviderMisconfigured, text),
                Failure::RateLimited(secs) => Problem {
                    retry_after: *secs,
                    ..Problem::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, text)
                },
                Failure::MaybeSent(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unconfirmed, text),
                Failure::Busy => Problem::new(StatusCode::SERVICE_UNAVAILABLE, Code::ProviderBusy, text).retry_after(1),
                // The detail is in the log; the caller learns it was this host.
                Failure::Host(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::HostUnavailable,
                    "smsbridge could not run the provider's adapter just now; retry shortly",
                )
                .retry_after(1),
                Failure::Unavailable(_) | Failure::Fault(_) | Failure::CircuitOpen | Failure::Deadline => {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, text)
                }
            };
            problem.with("provider", provider).with("attempts", serde_json::to_value(attempts).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_fails_the_otp_only_for_refusals_about_the_number_or_its_limits() {
        let fails: Vec<&str> = Code::ALL.iter().filter(|c| c.fails_the_otp()).map(|c| c.as_str()).collect();
        assert_eq!(
            fails,
            ["invalid_phone", "limit_exceeded", "country_not_allowed", "number_type_not_allowed", "invalid_recipient"]
        );
        let spellings: std::collections::HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(spellings.len(), Code::ALL.len(), "one spelling per code");
        assert!(!Code::UnknownRoute.is_refusal() && Code::CrossSite.is_refusal());
    }
}
