//! `/callbacks/{provider}`: providers' delivery status callbacks, read and
//! verified by the provider's adapter.

use super::fields::read_body;
use super::problem::{Code, Problem};
use crate::gateway::Gateway;
use crate::outcome::{Callback, ReceiptRefusal};
use crate::telemetry;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;

/// `/callbacks/{provider}`: a provider's delivery status callback, verified
/// by the provider's adapter. A bad or missing signature changes nothing.
pub(super) async fn receipt(gateway: &Gateway, provider: String, req: Request) -> Response {
    let routing = gateway.routing();
    let remote = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let body = match read_body(body, &routing.config.server).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // Signatures cover the URL the provider called: the public one.
    let url = match &routing.config.server.public_url {
        Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
        None => {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            // The listener's own scheme: a callback to the HTTPS listener
            // was signed for an https:// URL.
            let scheme =
                parts.extensions.get::<crate::listen::Scheme>().copied().unwrap_or(crate::listen::Scheme::Http);
            format!("{}://{host}{path_and_query}", scheme.as_str())
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let callback = Callback { method: parts.method.to_string(), url, headers, body: body.to_vec() };
    match gateway.receipt(&provider, callback).await {
        Ok(updated) => axum::Json(json!({"status": "ok", "updated": updated})).into_response(),
        Err(ReceiptRefusal::Unknown) => Problem::new(
            StatusCode::NOT_FOUND,
            Code::UnknownProvider,
            format!("no provider `{provider}` whose adapter reads delivery callbacks"),
        )
        .into_response(),
        Err(ReceiptRefusal::BadSignature(why)) => {
            // Anyone can post a forgery: one line per period, not per post.
            if let Some(skipped) = BAD_SIGNATURES.allow() {
                tracing::warn!(provider, %remote, skipped, "delivery callback refused: {why}");
            }
            telemetry::refused("/callbacks", Code::BadSignature.as_str());
            Problem::new(StatusCode::FORBIDDEN, Code::BadSignature, "the callback's signature does not match")
                .into_response()
        }
        Err(ReceiptRefusal::Malformed(why)) => {
            Problem::new(StatusCode::BAD_REQUEST, Code::MalformedCallback, why).into_response()
        }
        Err(ReceiptRefusal::Busy) => Problem {
            retry_after: Some(1),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, Code::Busy, "no sandbox is free; retry the callback")
        }
        .into_response(),
        Err(ReceiptRefusal::Unrecorded) => Problem {
            retry_after: Some(5),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::NotRecorded,
                "the status could not be recorded; retry",
            )
        }
        .into_response(),
        Err(ReceiptRefusal::Failed(why)) => {
            tracing::error!(provider, "delivery callback not read: {why}");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, Code::CallbackFailed, "the callback could not be read")
                .into_response()
        }
    }
}

/// Refused callbacks' warnings: at most one each 10 s.
static BAD_SIGNATURES: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(10));
