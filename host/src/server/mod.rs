//! The caller-facing HTTP server: configured routes, request parsing and the
//! answers MFA servers judge.
//!
//! Success is 200 with JSON whose only `status` is `"pending"` (RSA AM's
//! published response regex captures it). A failure is a non-2xx status with
//! a JSON body that names the problem, never contains the success word, and
//! never echoes a secret.

mod dialect;
mod fields;
pub mod problem;
mod receipts;

use crate::auth;
use crate::config::{Answer, CallerAuth, Method as RouteMethod, Route};
use crate::delivery::Refusal;
use crate::delivery::admission::Repeat;
use crate::gateway::Gateway;
use crate::routing::Routing;
use crate::telemetry;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use fields::{read_body, read_fields};
use problem::{Code, Problem, method_not_allowed, missing, unauthorized};

/// What the callers' listener serves from: the gateway, and the Digest
/// nonces it has handed out (which outlive config reloads).
struct Front {
    gateway: Arc<Gateway>,
    nonces: auth::Nonces,
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    let config = &gateway.routing().config;
    // A nonce is good where its counts are kept: with [state], at every
    // instance that shares it; without, at this process alone, so neither
    // another instance nor this one after a restart takes a used count.
    let nonces = match (&config.digest_key, &config.state) {
        (Some(key), Some(_)) => auth::Nonces::with_key(key.value.as_bytes()),
        _ => auth::Nonces::default(),
    };
    Router::new().fallback(handle).with_state(Arc::new(Front { gateway, nonces }))
}

/// Serves `gateway` on `listener` until `shutdown` resolves, within the
/// connection limits of the config it started with.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::listen::Limits::of(&gateway.routing().config.server);
    serve_within(gateway, listener, None, limits, shutdown).await
}

/// Serves `gateway` over TLS on `listener` until `shutdown` resolves, then
/// lets the requests in flight on its connections finish.
pub async fn serve_tls(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::listen::Limits::of(&gateway.routing().config.server);
    serve_within(gateway, listener, Some(tls), limits, shutdown).await
}

/// [`serve`] or [`serve_tls`] within `limits`.
pub async fn serve_within(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: crate::listen::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    crate::listen::serve(listener, router(gateway), acceptor, limits, shutdown).await
}

/// The HTTP status and JSON body a caller gets for `refusal`.
pub fn refusal_answer(route: &Route, refusal: Refusal) -> (u16, Value) {
    let problem = problem::refusal(route, refusal);
    (problem.status.as_u16(), problem.body())
}

async fn handle(State(front): State<Arc<Front>>, req: Request) -> Response {
    let _in_flight = telemetry::InFlight::start();
    let path = req.uri().path().to_string();
    if let Some(problem) = browser_problem(&front.gateway.routing(), &req) {
        telemetry::refused(&path, problem.code.as_str());
        return problem.into_response();
    }
    if let Some(provider) = path.strip_prefix("/callbacks/")
        && front.gateway.routing().config.route(&path).is_none()
    {
        return receipts::receipt(&front.gateway, provider.to_string(), req).await;
    }
    match send(&front, req).await {
        Ok(resp) => resp,
        Err(problem) => {
            if problem.code.is_refusal() {
                telemetry::refused(&path, problem.code.as_str());
            }
            problem.into_response()
        }
    }
}

/// A request a web page made a browser send (no MFA server sends `Origin`
/// or `Sec-Fetch-Site`), or one for a host name not in `[server] hosts`.
fn browser_problem(routing: &Routing, req: &Request) -> Option<Problem> {
    let hosts = &routing.config.server.hosts;
    if !hosts.is_empty() && !crate::browser::host_allowed(req.uri(), req.headers(), hosts) {
        let why = "this listener answers to its [server] hosts only";
        return Some(Problem::new(StatusCode::MISDIRECTED_REQUEST, Code::UnknownHost, why));
    }
    let why = crate::browser::cross_site(req.method(), req.uri(), req.headers(), false)?;
    tracing::warn!(path = %req.uri().path(), "refused: {why}");
    Some(Problem::new(StatusCode::FORBIDDEN, Code::CrossSite, "requests started by a web page are refused"))
}

async fn send(front: &Front, req: Request) -> Result<Response, Problem> {
    let path = req.uri().path().to_string();
    let routing = front.gateway.routing();
    let route = routing
        .config
        .route(&path)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, Code::UnknownRoute, format!("no route for {path}")))?;
    send_on(front, &routing, route, req).await.map_err(|p| Problem { shape: route.answer, ..p })
}

/// A send on `route`, answered in smsbridge's shape (the caller's is put on
/// by [`send`]).
async fn send_on(front: &Front, routing: &Routing, route: &Route, req: Request) -> Result<Response, Problem> {
    let gateway = &front.gateway;
    let method = match *req.method() {
        Method::GET => RouteMethod::Get,
        Method::POST => RouteMethod::Post,
        _ => return Err(method_not_allowed(route, req.method())),
    };
    if !route.methods.contains(&method) {
        return Err(method_not_allowed(route, req.method()));
    }
    let remote = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if !route.allow_networks.is_empty()
        && !remote.is_some_and(|r| route.allow_networks.iter().any(|n| n.contains(&r.ip().to_canonical())))
    {
        return Err(unauthorized(route, remote, "caller network not allowed", Vec::new()));
    }
    let (parts, body) = req.into_parts();
    let body = read_body(body, &routing.config.server).await?;
    let mut fields = read_fields(&parts, &body)?;
    let mut caller = auth::Caller::default();
    if let Some(auth) = &route.auth {
        let uri = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = auth::Request { method: &parts.method, uri, headers: &parts.headers, body: &body };
        caller = auth::check(auth, &request, &mut fields, &front.nonces)
            .map_err(|refused| unauthorized(route, remote, refused.reason, refused.challenges))?;
    }
    // A token good for one request authorises one request.
    if let Some((id, ttl)) = &caller.single_use
        && !gateway.first_use(id, *ttl).await.map_err(|refusal| problem::refusal(route, refusal))?
    {
        return Err(unauthorized(route, remote, "replayed token", Vec::new()));
    }
    let field = |name: &str| fields.get(name).ok_or_else(|| missing(name, &fields));
    let mut phone = field(&route.fields.phone)?.clone();
    if route.international_numbers && !phone.trim_start().starts_with('+') {
        phone = format!("+{}", phone.trim_start());
    }
    let phone = phone.as_str();
    let message = text(route, &fields)?;
    let message = message.as_str();
    if route.answer == Answer::Okta
        && fields.get("data.messageProfile.deliveryChannel").is_some_and(|c| c.eq_ignore_ascii_case("call"))
    {
        // No voice provider here: any status but 200 has Okta place the
        // call through its own.
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            Code::VoiceNotSupported,
            "smsbridge delivers SMS only; Okta places this call through its own provider",
        ));
    }

    // A webhook's id is its idempotency key: a caller's retry is not sent
    // twice, and a replayed request is refused below.
    let webhook = matches!(route.auth, Some(CallerAuth::Webhook { .. }));
    let key_header = if webhook { "webhook-id" } else { "idempotency-key" };
    let idempotency_key = match parts.headers.get(key_header) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.trim().is_empty() && k.len() <= 255 => Some(k.trim().to_string()),
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidIdempotencyKey,
                    "header `Idempotency-Key` must be 1-255 visible ASCII characters".to_string(),
                ));
            }
        },
    };
    // The head and body point into the connection's first read buffer:
    // let it go before the provider's answer, which can take seconds.
    drop((parts, body));
    let sent = gateway
        .send(
            routing,
            route,
            phone,
            message,
            Repeat { caller: &caller.name, key: idempotency_key.as_deref(), keep_at_least: caller.replay_window },
        )
        .await
        .map_err(|refusal| problem::refusal(route, refusal))?;
    if webhook && sent.replayed {
        return Err(unauthorized(route, remote, "replayed webhook", Vec::new()));
    }
    Ok(dialect::success(route, &sent))
}

/// The message: the caller's own text; or, when it sends only a code (or a
/// text without the code in it, such as a template it did not fill in), the
/// route's template filled with the code.
fn text(route: &Route, fields: &HashMap<String, String>) -> Result<String, Problem> {
    // A blank text is the caller's own: admission refuses it as empty.
    let own = fields.get(&route.fields.message);
    let code = route.fields.code.as_ref().and_then(|name| fields.get(name)).filter(|c| !c.trim().is_empty());
    match (own, code, &route.template) {
        (Some(own), Some(code), _) if own.contains(code.as_str()) => Ok(own.clone()),
        (_, Some(code), Some(template)) => Ok(template.replace("{code}", code)),
        (Some(own), _, _) => Ok(own.clone()),
        _ => Err(missing(route.fields.code.as_ref().unwrap_or(&route.fields.message), fields)),
    }
}
