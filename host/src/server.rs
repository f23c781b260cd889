//! The caller-facing HTTP server: configured routes, request parsing and the
//! answers MFA servers judge.
//!
//! Success is 200 with JSON whose only `status` is `"pending"` (RSA AM's
//! published response regex captures it). A failure is a non-2xx status with
//! a JSON body that names the problem, never contains the success word, and
//! never echoes a secret.

use crate::config::{Method as RouteMethod, Route};
use crate::gateway::{Gateway, Refusal};
use crate::runtime::{Failure, SendError};
use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

/// Serves `gateway` on `listener` until `shutdown` resolves.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(gateway).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A failure answer: status, machine-readable code, and a sentence.
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Vec<(&'static str, Value)>,
    retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            retry_after: None,
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

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

async fn handle(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    match send(&gateway, req).await {
        Ok(resp) => resp,
        Err(problem) => problem.into_response(),
    }
}

async fn send(gateway: &Gateway, req: Request) -> Result<Response, Problem> {
    let path = req.uri().path().to_string();
    let routing = gateway.routing();
    let route = routing
        .config
        .route(&path)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "unknown_route", format!("no route for {path}")))?;
    let method = match *req.method() {
        Method::GET => RouteMethod::Get,
        Method::POST => RouteMethod::Post,
        _ => return Err(method_not_allowed(route, req.method())),
    };
    if !route.methods.contains(&method) {
        return Err(method_not_allowed(route, req.method()));
    }
    let fields = read_fields(req, routing.config.server.max_body_bytes).await?;
    let field = |name: &str| {
        fields.get(name).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "missing_field",
                format!("field `{name}` is required"),
            )
            .with("field", name)
        })
    };
    let phone = field(&route.fields.phone)?;
    let message = field(&route.fields.message)?;

    match gateway.send(&routing, route, phone, message).await {
        Ok(sent) => Ok(axum::Json(json!({
            "status": "pending",
            "id": sent.id,
            "provider": sent.provider,
            "provider_id": sent.provider_id,
            "segments": sent.segments,
        }))
        .into_response()),
        Err(refusal) => Err(refusal_problem(route, refusal)),
    }
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
        format!(
            "{method} is not allowed on {}; use {}",
            route.path,
            allowed.join(" or ")
        ),
    )
}

/// The caller's fields: the query string, then the body's fields over it.
async fn read_fields(req: Request, max_body_bytes: usize) -> Result<HashMap<String, String>, Problem> {
    let mut fields: HashMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let content_type = content_type(req.headers());
    let body = to_bytes(req.into_body(), max_body_bytes).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {max_body_bytes} bytes"),
        )
    })?;
    if body.is_empty() {
        return Ok(fields);
    }
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => fields.extend(url::form_urlencoded::parse(&body).into_owned()),
        Some("application/json") => fields.extend(json_fields(&body)?),
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {} is not accepted; send application/x-www-form-urlencoded or application/json",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    }
    Ok(fields)
}

/// The media type alone, lower case, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// A JSON object's top-level strings, numbers and booleans.
fn json_fields(body: &[u8]) -> Result<HashMap<String, String>, Problem> {
    let bad = |why: String| Problem::new(StatusCode::BAD_REQUEST, "invalid_json", why);
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("body must be a JSON object".into()));
    };
    let mut fields = HashMap::new();
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(bad(format!("field `{k}` must be a string, not an array or object")).with("field", k));
            }
        };
        fields.insert(k, text);
    }
    Ok(fields)
}

fn refusal_problem(route: &Route, refusal: Refusal) -> Problem {
    match refusal {
        Refusal::Phone(e) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_phone",
            format!("field `{}` {e}", route.fields.phone),
        )
        .with("field", route.fields.phone.clone()),
        Refusal::Message(why) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_message",
            format!("field `{}` {why}", route.fields.message),
        )
        .with("field", route.fields.message.clone()),
        Refusal::Provider { provider, failure } => {
            let text = failure.to_string();
            let problem = match &failure {
                Failure::Adapter(SendError::InvalidRecipient(_)) => {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid_recipient", text)
                        .with("field", route.fields.phone.clone())
                }
                Failure::Adapter(SendError::Rejected(_)) => Problem::new(StatusCode::BAD_GATEWAY, "rejected", text),
                Failure::Adapter(SendError::Unauthorized(_)) => {
                    Problem::new(StatusCode::BAD_GATEWAY, "provider_unauthorized", text)
                }
                Failure::Adapter(SendError::Misconfigured(_)) => {
                    Problem::new(StatusCode::BAD_GATEWAY, "provider_misconfigured", text)
                }
                Failure::Adapter(SendError::RateLimited(secs)) => Problem {
                    retry_after: *secs,
                    ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", text)
                },
                Failure::Adapter(SendError::Unavailable(_)) | Failure::Fault(_) => {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", text)
                }
            };
            problem.with("provider", provider)
        }
    }
}
