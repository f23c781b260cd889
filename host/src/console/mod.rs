//! The operator console at `/admin/` on the admin listener: is OTP delivery
//! working now, through which provider, what is refused, which adapters are
//! loaded, the latest messages (masked), and a test send.
//!
//! Server-rendered HTML (maud templates, in `views`) and one embedded
//! stylesheet: no script, nothing fetched from elsewhere, a
//! Content-Security-Policy that allows nothing else. Signing in takes the
//! admin token and sets a cookie holding a random session id (`HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS); the server keeps the session (in
//! `[state]` when instances share one) until sign-out, 30 idle minutes or 8
//! hours, and under the token, so rotating the token signs everyone out.
//! Every form carries a CSRF token (`session`). No full number, no message
//! text and no secret is ever put on a page.

mod session;
mod views;

pub use session::signed_in;

use crate::delivery::Refusal;
use crate::gateway::Gateway;
use crate::stats::Stats;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use session::{COOKIE, IDLE, LOGIN_COOKIE, SESSION, admin_token, cookie, csrf, csrf_ok, same, secure, session_key};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use views::Listing;

const CSS: &str = include_str!("console.css");
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's routes; they check the session themselves.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/admin/", get(page).post(search))
        .route("/admin/console.css", get(css))
        .route("/admin/login", post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/console/send", post(test_send))
        .with_state(gateway)
}

fn html(status: StatusCode, title: &str, body: Markup) -> Response {
    let page = views::page(title, body).into_string();
    let mut resp = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// The sign-in page, with a fresh CSRF value in a cookie and in the form
/// (double submit): another site cannot sign a browser in.
fn sign_in_page(gateway: &Gateway, status: StatusCode, why: Option<&str>) -> Response {
    let login = session::random_hex(16);
    let mut resp = html(status, "Sign in", views::sign_in(why, &login));
    let cookie =
        format!("{LOGIN_COOKIE}={login}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=600{}", secure(gateway));
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = admin_token(&gateway) else { return redirect("/admin/", None) };
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, &expected) {
        return sign_in_page(&gateway, StatusCode::FORBIDDEN, Some("The sign-in form expired; try again."));
    }
    if !same(&form.token, &token) {
        tracing::warn!("console sign-in refused: wrong admin token");
        return sign_in_page(&gateway, StatusCode::UNAUTHORIZED, Some("That is not the admin token."));
    }
    let id = session::random_hex(32);
    if let Err(e) = gateway.state.session_open(&session_key(&token, &id), IDLE, SESSION).await {
        tracing::error!("console session not kept: {e:#}");
        return sign_in_page(
            &gateway,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("Sessions cannot be kept now; try again."),
        );
    }
    let cookie = format!(
        "{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION.as_secs(),
        secure(&gateway)
    );
    redirect("/admin/", Some(cookie))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: the session is forgotten by the server, so a copy of the
/// cookie is worth nothing after.
async fn logout(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    if let (Some(token), Some(id)) = (admin_token(&gateway), session::session(&headers))
        && let Err(e) = gateway.state.session_close(&session_key(&token, &id)).await
    {
        tracing::error!("console session not closed: {e:#}");
        return (StatusCode::SERVICE_UNAVAILABLE, "the session could not be closed; try again").into_response();
    }
    let cookie = format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{}", secure(&gateway));
    redirect("/admin/", Some(cookie))
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    resp
}

async fn page(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    render(&gateway, &headers, None).await
}

#[derive(Deserialize)]
struct SearchForm {
    #[serde(default)]
    csrf: String,
    number: String,
}

/// The console with the messages to one number: a POST, so the number is
/// in no URL, no history and no proxy log.
async fn search(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, Form(form): Form<SearchForm>) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    render(&gateway, &headers, Some(&form.number)).await
}

async fn render(gateway: &Gateway, headers: &HeaderMap, number: Option<&str>) -> Response {
    let token = admin_token(gateway);
    if !signed_in(gateway, token.as_deref(), headers).await {
        return sign_in_page(gateway, StatusCode::OK, None);
    }
    let csrf = csrf(headers);
    let routing = gateway.routing();
    let config = &routing.config;
    let sessions = gateway.smpp_sessions();
    let providers: Vec<views::ProviderNow> = config
        .providers
        .iter()
        .map(|p| {
            let (circuit_open, in_flight) = gateway.provider_now(&p.name);
            let binds = sessions.iter().find(|s| s.provider() == p.name).map(|s| {
                let binds = s.binds();
                let up = binds.iter().filter(|b| b.up).count();
                let why = binds.iter().find_map(|b| b.last_error.clone());
                let window: u32 = binds.iter().map(|b| b.in_window).sum();
                match why {
                    Some(why) if up < binds.len() => format!("SMPP binds {up}/{} up: {why}", binds.len()),
                    _ => format!("SMPP binds {up}/{} up, {window} in window", binds.len()),
                }
            });
            views::ProviderNow {
                binds,
                name: &p.name,
                adapter: &p.adapter,
                circuit_open,
                in_flight,
                max_in_flight: p.max_in_flight,
            }
        })
        .collect();
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let listing = listing(gateway, number).await;
    let delivered = gateway.learned().table_within(Duration::ZERO).await;
    let sections = [
        views::now(&Stats::global().snapshot(), &providers, config, now_s),
        views::send(config, &csrf, None),
        views::messages(&listing, &csrf),
        views::delivered(&delivered),
        views::adapters(&gateway.registry.list(), &gateway.registry.errors(), &Stats::global().reloads()),
    ];
    html(StatusCode::OK, "Console", views::console(&csrf, sections))
}

/// The latest messages, or those to `number`.
async fn listing(gateway: &Gateway, number: Option<&str>) -> Listing {
    let Some(record) = gateway.record.as_deref() else { return Listing::NoRecord };
    let listing = match number.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => match crate::phone::normalise(n, None) {
            Ok(e164) => Listing::To(crate::phone::mask(&e164), record.by_number(&e164, 50).await),
            Err(e) => return Listing::BadNumber(e.to_string()),
        },
        None => Listing::Recent(record.recent(20).await),
    };
    if let Listing::Recent(Err(e)) | Listing::To(_, Err(e)) = &listing {
        tracing::error!("message record read failed: {e:#}");
    }
    listing
}

#[derive(Deserialize)]
struct SendForm {
    #[serde(default)]
    csrf: String,
    route: String,
    phone: String,
    message: String,
}

async fn test_send(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, Form(form): Form<SendForm>) -> Response {
    let token = admin_token(&gateway);
    if !signed_in(&gateway, token.as_deref(), &headers).await {
        return sign_in_page(&gateway, StatusCode::UNAUTHORIZED, Some("Sign in first."));
    }
    if !csrf_ok(&headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let routing = gateway.routing();
    let Some(route) = routing.config.route(&form.route) else {
        return (StatusCode::BAD_REQUEST, "no such route").into_response();
    };
    tracing::info!(route = %route.path, to = %crate::phone::mask(&form.phone), "console test send");
    let result = match gateway.send(&routing, route, &form.phone, &form.message, Default::default()).await {
        Ok(sent) => {
            let via = if sent.provider.is_empty() { "the queue" } else { &sent.provider };
            views::sent(sent.queued, &sent.id, &crate::phone::mask(&sent.to), via, &sent.attempts)
        }
        Err(refusal) => {
            // As the caller would be told, without echoing what was sent.
            let attempts = match &refusal {
                Refusal::Provider { attempts, .. } => attempts.clone(),
                _ => Vec::new(),
            };
            let problem = crate::server::problem::refusal(route, refusal);
            let message = crate::phone::mask_in(&problem.message);
            views::refused(problem.status.as_u16(), problem.code.as_str(), &message, &attempts)
        }
    };
    let body = maud::html! {
        main {
            (views::send(&routing.config, &csrf(&headers), Some(result)))
            p { a href="/admin/" { "Back to the console" } }
        }
    };
    html(StatusCode::OK, "Test send", body)
}
