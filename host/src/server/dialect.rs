//! The answer in the caller's own shape: smsbridge's JSON (RSA AM,
//! OpenText, privacyIDEA, LinOTP and the other form posters), a route's
//! `success_body` text, Okta's telephony hook commands, or Supabase's hook.

use super::problem::Problem;
use crate::config::{Answer, Route};
use crate::delivery::Sent;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A message sent (or queued) on `route`.
pub(super) fn success(route: &Route, sent: &Sent) -> Response {
    let replayed = [(HeaderName::from_static("idempotent-replayed"), if sent.replayed { "true" } else { "false" })];
    match route.answer {
        Answer::Json => {}
        Answer::Okta => {
            // SUCCESSFUL once a provider took it; PENDING while only the
            // queue has it, or when the provider never confirmed it.
            let status = if sent.queued || sent.unconfirmed { "PENDING" } else { "SUCCESSFUL" };
            let provider = if sent.provider.is_empty() { "smsbridge" } else { sent.provider.as_str() };
            let action = json!({
                "status": status,
                "provider": provider,
                "transactionId": sent.id,
                "transactionMetadata": sent.provider_id,
            });
            let body = json!({"commands": [{"type": "com.okta.telephony.action", "value": [action]}]});
            return (replayed, axum::Json(body)).into_response();
        }
        Answer::Supabase => return (replayed, axum::Json(json!({}))).into_response(),
    }
    match &route.success_body {
        Some(template) => {
            let text = template
                .replace("{id}", &sent.id)
                .replace("{provider}", &sent.provider)
                .replace("{provider_id}", &sent.provider_id)
                .replace("{segments}", &sent.segments.to_string());
            (replayed, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        None if sent.queued => (
            StatusCode::ACCEPTED,
            replayed,
            axum::Json(json!({
                "status": "queued",
                "id": sent.id,
                "segments": sent.segments,
                "replayed": sent.replayed,
            })),
        )
            .into_response(),
        None => {
            let mut body = json!({
                "status": "pending",
                "id": sent.id,
                "provider": sent.provider,
                "provider_id": sent.provider_id,
                "segments": sent.segments,
                "attempts": sent.attempts,
                "replayed": sent.replayed,
            });
            if sent.unconfirmed {
                // The provider may have it; it never said so.
                body["unconfirmed"] = true.into();
            }
            (replayed, axum::Json(body)).into_response()
        }
    }
}

impl Problem {
    /// The status and body in the caller's shape.
    fn shaped(&self) -> (StatusCode, Value) {
        match self.shape {
            Answer::Json => (self.status, self.body()),
            Answer::Okta => {
                let cause = json!({"errorSummary": self.message, "reason": self.code.as_str(), "domain": "end-user"});
                let body = json!({"error": {"errorSummary": self.message, "errorCauses": [cause]}});
                // Okta reads an error object only in a 200; any other status
                // makes it fall back to its own providers.
                let status = if self.code.fails_the_otp() { StatusCode::OK } else { self.status };
                (status, body)
            }
            Answer::Supabase => {
                (self.status, json!({"error": {"http_code": self.status.as_u16(), "message": self.message}}))
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, body) = self.shaped();
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for challenge in &self.challenges {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                resp.headers_mut().append(header::WWW_AUTHENTICATE, value);
            }
        }
        resp
    }
}
