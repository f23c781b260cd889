//! The caller-facing HTTP server: configured routes, request parsing and the
//! answers MFA servers judge.
//!
//! Success is 200 with JSON whose only `status` is `"pending"` (RSA AM's
//! published response regex captures it). A failure is a non-2xx status with
//! a JSON body that names the problem, never contains the success word, and
//! never echoes a secret.

mod fields;

use crate::auth;
use crate::config::{Answer, CallerAuth, Method as RouteMethod, Route};
use crate::delivery::Refusal;
use crate::delivery::admission::Repeat;
use crate::gateway::Gateway;
use crate::outcome::{Callback, Failure, ReceiptRefusal};
use crate::routing::Routing;
use crate::telemetry;
use axum::Router;
use axum::body::Body;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use fields::read_fields;

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

/// A failure answer: status, machine-readable code, and a sentence.
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Vec<(&'static str, Value)>,
    retry_after: Option<u32>,
    /// `WWW-Authenticate` values, for a 401.
    challenges: Vec<String>,
    /// The caller's shape the answer takes.
    shape: Answer,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
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

    fn with(mut self, key: &'static str, value: impl Into<Value>) -> Problem {
        self.extra.push((key, value.into()));
        self
    }
}

impl Problem {
    fn body(&self) -> Value {
        let mut body = json!({ "status": "failed", "error": self.code, "message": self.message });
        for (k, v) in &self.extra {
            body[*k] = v.clone();
        }
        body
    }
}

/// The HTTP status and JSON body a caller gets for `refusal`.
pub fn refusal_answer(route: &Route, refusal: Refusal) -> (u16, Value) {
    let problem = refusal_problem(route, refusal);
    (problem.status.as_u16(), problem.body())
}

/// Refusals about the user's number or its limits: Okta is told to fail
/// the OTP, not to send it through its own providers instead (which would
/// let a pumping attack through). Every other failure lets it fall back.
const OKTA_FAILS_THE_OTP: &[&str] =
    &["invalid_phone", "invalid_recipient", "limit_exceeded", "country_not_allowed", "number_type_not_allowed"];

impl Problem {
    /// The status and body in the caller's shape.
    fn shaped(&self) -> (StatusCode, Value) {
        match self.shape {
            Answer::Json => (self.status, self.body()),
            Answer::Okta => {
                let cause = json!({"errorSummary": self.message, "reason": self.code, "domain": "end-user"});
                let body = json!({"error": {"errorSummary": self.message, "errorCauses": [cause]}});
                // Okta reads an error object only in a 200; any other status
                // makes it fall back to its own providers.
                let status = if OKTA_FAILS_THE_OTP.contains(&self.code) { StatusCode::OK } else { self.status };
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

async fn handle(State(front): State<Arc<Front>>, req: Request) -> Response {
    let _in_flight = telemetry::InFlight::start();
    let path = req.uri().path().to_string();
    if let Some(problem) = browser_problem(&front.gateway.routing(), &req) {
        telemetry::refused(&path, problem.code);
        return problem.into_response();
    }
    if let Some(provider) = path.strip_prefix("/callbacks/")
        && front.gateway.routing().config.route(&path).is_none()
    {
        return receipt(&front.gateway, provider.to_string(), req).await;
    }
    match send(&front, req).await {
        Ok(resp) => resp,
        Err(problem) => {
            // Refused before any provider was tried; provider outcomes are
            // counted where they happen.
            if REFUSALS.contains(&problem.code) {
                telemetry::refused(&path, problem.code);
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
        return Some(Problem::new(StatusCode::MISDIRECTED_REQUEST, "unknown_host", why));
    }
    let why = crate::browser::cross_site(req.method(), req.uri(), req.headers(), false)?;
    tracing::warn!(path = %req.uri().path(), "refused: {why}");
    Some(Problem::new(StatusCode::FORBIDDEN, "cross_site", "requests started by a web page are refused"))
}

/// `/callbacks/{provider}`: a provider's delivery status callback, verified
/// by the provider's adapter. A bad or missing signature changes nothing.
async fn receipt(gateway: &Gateway, provider: String, req: Request) -> Response {
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
            "unknown_provider",
            format!("no provider `{provider}` whose adapter reads delivery callbacks"),
        )
        .into_response(),
        Err(ReceiptRefusal::BadSignature(why)) => {
            // Anyone can post a forgery: one line per period, not per post.
            if let Some(skipped) = BAD_SIGNATURES.allow() {
                tracing::warn!(provider, %remote, skipped, "delivery callback refused: {why}");
            }
            telemetry::refused("/callbacks", "bad_signature");
            Problem::new(StatusCode::FORBIDDEN, "bad_signature", "the callback's signature does not match")
                .into_response()
        }
        Err(ReceiptRefusal::Malformed(why)) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed_callback", why).into_response()
        }
        Err(ReceiptRefusal::Busy) => Problem {
            retry_after: Some(1),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "no sandbox is free; retry the callback")
        }
        .into_response(),
        Err(ReceiptRefusal::Unrecorded) => Problem {
            retry_after: Some(5),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_recorded", "the status could not be recorded; retry")
        }
        .into_response(),
        Err(ReceiptRefusal::Failed(why)) => {
            tracing::error!(provider, "delivery callback not read: {why}");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "callback_failed", "the callback could not be read")
                .into_response()
        }
    }
}

/// Refused callbacks' warnings: at most one each 10 s.
static BAD_SIGNATURES: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(10));

/// Error codes of requests refused on their own account.
const REFUSALS: &[&str] = &[
    "unauthorized",
    "cross_site",
    "unknown_host",
    "missing_field",
    "invalid_phone",
    "invalid_message",
    "invalid_json",
    "invalid_xml",
    "invalid_encoding",
    "body_too_large",
    "body_timeout",
    "unsupported_media_type",
    "method_not_allowed",
    "invalid_idempotency_key",
    "idempotency_key_reused",
    "limit_exceeded",
    "country_not_allowed",
    "number_type_not_allowed",
];

async fn send(front: &Front, req: Request) -> Result<Response, Problem> {
    let path = req.uri().path().to_string();
    let routing = front.gateway.routing();
    let route = routing
        .config
        .route(&path)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "unknown_route", format!("no route for {path}")))?;
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
        && !gateway.first_use(id, *ttl).await.map_err(|refusal| refusal_problem(route, refusal))?
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
            "voice_not_supported",
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
            Ok(k) if !k.trim().is_empty() && k.len() <= 255 => Some(k.trim()),
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_idempotency_key",
                    "header `Idempotency-Key` must be 1-255 visible ASCII characters".to_string(),
                ));
            }
        },
    };
    let sent = gateway
        .send(
            routing,
            route,
            phone,
            message,
            Repeat { caller: &caller.name, key: idempotency_key, keep_at_least: caller.replay_window },
        )
        .await
        .map_err(|refusal| refusal_problem(route, refusal))?;
    if webhook && sent.replayed {
        return Err(unauthorized(route, remote, "replayed webhook", Vec::new()));
    }
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
            return Ok((replayed, axum::Json(body)).into_response());
        }
        Answer::Supabase => return Ok((replayed, axum::Json(json!({}))).into_response()),
    }
    Ok(match &route.success_body {
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
    })
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

/// The answer for a field the request lacks: an object or array of JSON
/// where a text was expected, or nothing at all.
fn missing(name: &str, fields: &HashMap<String, String>) -> Problem {
    let inside = format!("{name}.");
    if fields.keys().any(|k| k.starts_with(&inside)) {
        let why = format!("field `{name}` must be a string, not an array or object");
        return Problem::new(StatusCode::BAD_REQUEST, "invalid_json", why).with("field", name);
    }
    Problem::new(StatusCode::BAD_REQUEST, "missing_field", format!("field `{name}` is required")).with("field", name)
}

/// A 401 that tells the caller nothing but the challenge; the audit log
/// gets the route, the caller's address and the reason, never the credential.
fn unauthorized(route: &Route, remote: Option<SocketAddr>, reason: &str, challenges: Vec<String>) -> Problem {
    let remote = remote.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into());
    tracing::warn!(route = %route.path, %remote, reason, "caller authentication failed");
    Problem { challenges, ..Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "authentication required") }
}

fn method_not_allowed(route: &Route, method: &Method) -> Problem {
    let allowed: Vec<&str> = route
        .methods
        .iter()
        .map(|m| match m {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
        })
        .collect();
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}; use {}", route.path, allowed.join(" or ")),
    )
}

/// The whole body, within `[server]`'s size cap and read deadline.
async fn read_body(body: Body, server: &crate::config::Server) -> Result<axum::body::Bytes, Problem> {
    let max = server.max_body_bytes;
    let deadline = std::time::Duration::from_millis(server.body_read_timeout_ms);
    match tokio::time::timeout(deadline, to_bytes(body, max)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {max} bytes"),
        )),
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} ms", deadline.as_millis()),
        )),
    }
}

fn refusal_problem(route: &Route, refusal: Refusal) -> Problem {
    match refusal {
        Refusal::Phone(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_phone", format!("field `{}` {e}", route.fields.phone))
                .with("field", route.fields.phone.clone())
        }
        Refusal::Message(why) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_message", format!("field `{}` {why}", route.fields.message))
                .with("field", route.fields.message.clone())
        }
        Refusal::Limited { limit, retry_after } => {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            Problem {
                retry_after: Some(secs.min(u64::from(u32::MAX)) as u32),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "limit_exceeded",
                    format!("too many messages: the route's `{limit}` limit is reached; retry after {secs} s"),
                )
            }
            .with("limit", limit)
        }
        Refusal::Country(country) => Problem::new(
            StatusCode::FORBIDDEN,
            "country_not_allowed",
            format!("field `{}`: numbers in {country} are not allowed on this route", route.fields.phone),
        )
        .with("field", route.fields.phone.clone())
        .with("country", country),
        Refusal::NumberType(kind) => Problem::new(
            StatusCode::FORBIDDEN,
            "number_type_not_allowed",
            format!("field `{}`: {kind} numbers are not allowed on this route", route.fields.phone),
        )
        .with("field", route.fields.phone.clone())
        .with("number_type", kind),
        Refusal::KeyReused => Problem::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "header `Idempotency-Key` was used for another request on this route: use a new key per message"
                .to_string(),
        ),
        Refusal::StateDown => Problem {
            retry_after: Some(5),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_unavailable",
                "smsbridge cannot reach its state (limits, repeats or queue) now; retry shortly".to_string(),
            )
        },
        Refusal::InFlight => Problem::new(
            StatusCode::CONFLICT,
            "in_flight",
            "an identical request is still being sent; retry for its answer".to_string(),
        ),
        Refusal::Provider { provider, failure, attempts } => {
            let text = failure.to_string();
            let problem = match &failure {
                Failure::InvalidRecipient(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_recipient", text)
                    .with("field", route.fields.phone.clone()),
                Failure::Rejected(_) => Problem::new(StatusCode::BAD_GATEWAY, "rejected", text),
                Failure::Unauthorized(_) => Problem::new(StatusCode::BAD_GATEWAY, "provider_unauthorized", text),
                Failure::Misconfigured(_) => Problem::new(StatusCode::BAD_GATEWAY, "provider_misconfigured", text),
                Failure::RateLimited(secs) => {
                    Problem { retry_after: *secs, ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", text) }
                }
                Failure::MaybeSent(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unconfirmed", text),
                Failure::Busy => Problem {
                    retry_after: Some(1),
                    ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "provider_busy", text)
                },
                // The detail is in the log; the caller learns it was this host.
                Failure::Host(_) => Problem {
                    retry_after: Some(1),
                    ..Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "host_unavailable",
                        "smsbridge could not run the provider's adapter just now; retry shortly",
                    )
                },
                Failure::Unavailable(_) | Failure::Fault(_) | Failure::CircuitOpen | Failure::Deadline => {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", text)
                }
            };
            problem.with("provider", provider).with("attempts", serde_json::to_value(attempts).unwrap_or_default())
        }
    }
}
