//! The admin listener: which adapters are loaded (and which failed), and
//! whether every route can deliver. Kept apart from the callers' listener;
//! a bearer token guards it when configured.

use crate::gateway::Gateway;
use crate::runtime::Compiled;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The admin routes, behind the `[admin] token` of the config in force: a
/// token rotated by a reload applies to the next request.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/admin/adapters", get(adapters))
        .route("/admin/health", get(health))
        .route("/admin/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/admin/messages", get(messages_by_number))
        .route("/admin/messages/{id}", get(message))
        .layer(middleware::from_fn_with_state(gateway.clone(), require_token))
        .with_state(gateway.clone())
        .merge(crate::console::router(gateway.clone()))
        .layer(middleware::from_fn_with_state(gateway, browsers))
}

/// Every admin and console request: for one of our own host names, and
/// not started by another site's page (a link to the console aside).
async fn browsers(State(gateway): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let routing = gateway.routing();
    let hosts = routing.config.admin.as_ref().map(|a| a.hosts.as_slice()).unwrap_or_default();
    if !crate::browser::host_allowed(req.uri(), req.headers(), hosts) {
        tracing::warn!("admin request refused: a Host that is not this listener's");
        let why = "this listener answers to loopback addresses, localhost and [admin] hosts only";
        return (StatusCode::MISDIRECTED_REQUEST, axum::Json(json!({"error": "unknown_host", "message": why})))
            .into_response();
    }
    if let Some(why) = crate::browser::cross_site(req.method(), req.uri(), req.headers(), true) {
        tracing::warn!("admin request refused: {why}");
        let body = json!({"error": "cross_site", "message": "requests started by another site are refused"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

async fn require_token(State(gateway): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let routing = gateway.routing();
    if let Some(token) = routing.config.admin.as_ref().and_then(|a| a.token.as_ref()).map(|t| t.value.as_str()) {
        let offered = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let offered = crate::auth::scheme_value(offered, "Bearer").unwrap_or("");
        // A console session counts too: the console's pages read the API.
        if !bool::from(offered.as_bytes().ct_eq(token.as_bytes()))
            && !crate::console::signed_in(&gateway, Some(token), req.headers()).await
        {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "unauthorized"}))).into_response();
        }
    }
    next.run(req).await
}

/// The answer when the config keeps no record.
fn no_record() -> Response {
    let why = "no message record: add a [record] section to the config";
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no_record", "message": why}))).into_response()
}

fn record_failed(e: anyhow::Error) -> Response {
    tracing::error!("message record read failed: {e:#}");
    let body = json!({"error": "record_unavailable", "message": "the message record could not be read"});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// `GET /admin/messages/{id}`: one message, its attempts and status timeline.
async fn message(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let Some(record) = gateway.record.as_deref() else { return no_record() };
    match record.get(&id).await {
        Ok(Some(m)) => axum::Json(m).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": "not_found", "message": "no message with this id"})))
                .into_response()
        }
        Err(e) => record_failed(e),
    }
}

#[derive(serde::Deserialize)]
struct NumberQuery {
    number: Option<String>,
}

/// `GET /admin/messages?number=+447400123456`: the latest 50 messages to a
/// number, found by its keyed hash; without `number`, the latest 50 sends.
async fn messages_by_number(State(gateway): State<Arc<Gateway>>, Query(q): Query<NumberQuery>) -> Response {
    let Some(record) = gateway.record.as_deref() else { return no_record() };
    let Some(number) = q.number else {
        // No number: the latest messages to anyone, masked as always.
        return match record.recent(50).await {
            Ok(list) => axum::Json(json!({ "messages": list })).into_response(),
            Err(e) => record_failed(e),
        };
    };
    let number = match crate::phone::normalise(&number, None) {
        Ok(n) => n,
        Err(e) => {
            let body = json!({"error": "invalid_phone", "field": "number", "message": format!("`number` {e}")});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    match record.by_number(&number, 50).await {
        Ok(list) => axum::Json(json!({ "messages": list })).into_response(),
        Err(e) => record_failed(e),
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

async fn adapters(State(gateway): State<Arc<Gateway>>) -> axum::Json<Value> {
    let errors = gateway.registry.errors();
    let mut list: Vec<Value> = gateway
        .registry
        .list()
        .into_iter()
        .map(|(name, a)| {
            let compiled = match a.compiled {
                Compiled::Now(took) => json!({"from": "compiler", "ms": took.as_millis() as u64}),
                Compiled::Memory => json!({"from": "memory"}),
                Compiled::Disk => json!({"from": "cache"}),
            };
            json!({
                "name": name,
                "version": a.info.version,
                "provider": a.info.provider,
                "source": a.source,
                "sha256": a.sha256,
                "loaded_at": time(a.loaded_at),
                "compiled": compiled,
                "served": a.served.load(Ordering::Relaxed),
                "last_error": errors.get(&name).map(|e| json!({"message": e.message, "at": time(e.at)})),
            })
        })
        .collect();
    // Names that never loaded have only an error.
    for (name, e) in &errors {
        if gateway.registry.get(name).is_none() {
            list.push(json!({"name": name, "last_error": {"message": e.message, "at": time(e.at)}}));
        }
    }
    axum::Json(json!({ "adapters": list }))
}

/// `GET /admin/stats`: the last 5 and 60 minutes per provider and route,
/// from the process itself, each configured provider's circuit and sends
/// in flight against its limit, and the delivered-share table.
async fn stats(State(gateway): State<Arc<Gateway>>) -> axum::Json<Value> {
    let snapshot = crate::stats::Stats::global().snapshot();
    let routing = gateway.routing();
    let providers: Vec<Value> = routing
        .config
        .providers
        .iter()
        .map(|p| {
            let (circuit_open, in_flight) = gateway.provider_now(&p.name);
            json!({
                "name": p.name,
                "adapter": p.adapter,
                "circuit_open": circuit_open,
                "in_flight": in_flight,
                "max_in_flight": p.max_in_flight,
                "attempts": snapshot.providers.get(&p.name),
            })
        })
        .collect();
    let routes: Vec<Value> = routing
        .config
        .routes
        .iter()
        .map(|r| {
            json!({
                "path": r.path,
                "providers": r.providers,
                "sends": snapshot.routes.get(&r.path),
                "refusals": snapshot.refusals.get(&r.path),
            })
        })
        .collect();
    // Per provider and destination country, from the shared record.
    let delivered = gateway.learned().table_within(std::time::Duration::from_secs(1)).await;
    axum::Json(json!({ "providers": providers, "routes": routes, "delivered": *delivered }))
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::render()).into_response()
}

/// `GET /admin/health`: 200 when every route can deliver and the shared
/// state database (if any) answers; else 503, saying what is wrong. A load
/// balancer checks it.
async fn health(State(gateway): State<Arc<Gateway>>) -> Response {
    let unserved = gateway.routing().unserved_routes();
    let mut body = json!({"status": "ok"});
    let mut healthy = unserved.is_empty();
    if !unserved.is_empty() {
        body["unserved_routes"] = json!(unserved);
    }
    if let Some(shared) = gateway.shared() {
        let up = shared.is_up();
        healthy &= up;
        body["state"] = json!({"backend": shared.name(), "up": up});
        if up && let Ok(n) = shared.instances_alive().await {
            body["state"]["instances"] = json!(n);
        }
    }
    if healthy {
        axum::Json(body).into_response()
    } else {
        body["status"] = json!("degraded");
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}
