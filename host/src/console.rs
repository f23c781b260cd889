//! The operator console at `/admin/` on the admin listener: is OTP delivery
//! working now, through which provider, what is refused, which adapters are
//! loaded, the latest messages (masked), and a test send.
//!
//! Server-rendered HTML and one embedded stylesheet: no script, nothing
//! fetched from elsewhere, a Content-Security-Policy that allows nothing
//! else. Signing in takes the admin token and sets a cookie holding a
//! random session id (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS);
//! the server keeps the session (in `[state]` when instances share one)
//! until sign-out, 30 idle minutes or 8 hours, and under the token, so
//! rotating the token signs everyone out. Every form carries a CSRF token
//! under a key made at random when the process starts, with or without an
//! admin token. No full number, no message text and no secret is ever put
//! on a page.

use crate::config::Route;
use crate::gateway::Gateway;
use crate::record::LoggedMessage;
use crate::stats::{Stats, View};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const COOKIE: &str = "smsbridge_console";
/// The sign-in form's CSRF value.
const LOGIN_COOKIE: &str = "smsbridge_login";
/// How long a sign-in lasts at most.
const SESSION: Duration = Duration::from_secs(8 * 3600);
/// A session unused for this long is over.
const IDLE: Duration = Duration::from_secs(30 * 60);
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

/// Whether `headers` carry a live console session under the admin token
/// in force (or there is no token); the API routes accept one too.
pub async fn signed_in(gateway: &Gateway, token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let Some(id) = session(headers) else { return false };
    match gateway.state.session_touch(&session_key(token, &id), IDLE).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!("console session not checked: {e:#}");
            false
        }
    }
}

fn admin_token(gateway: &Gateway) -> Option<String> {
    gateway.routing().config.admin.as_ref().and_then(|a| a.token.as_ref()).map(|t| t.value.clone())
}

fn mac(key: &[u8], purpose: &str, value: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"|");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A key made at random when the process starts: CSRF tokens stand for
/// this process, whether or not an admin token is set.
fn process_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        key
    })
}

/// Where a session id is kept: under the admin token, so that rotating the
/// token signs everyone out, and never as the cookie's own value.
fn session_key(token: &str, id: &str) -> String {
    format!("console|{}", mac(token.as_bytes(), "session", id))
}

fn session(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).filter(|id| !id.is_empty())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    cookies
        .flat_map(|c| c.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The CSRF token of a session (or, with no session, of none).
fn csrf(session: &str) -> String {
    mac(process_key(), "csrf", session)
}

fn csrf_ok(headers: &HeaderMap, offered: &str) -> bool {
    let expected = csrf(&session(headers).unwrap_or_default());
    subtle::ConstantTimeEq::ct_eq(offered.as_bytes(), expected.as_bytes()).into()
}

/// `Secure` on cookies set over HTTPS.
fn secure(gateway: &Gateway) -> &'static str {
    if gateway.routing().config.admin.as_ref().is_some_and(|a| a.tls.is_some()) { "; Secure" } else { "" }
}

/// Text for HTML: every dynamic value goes through it.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · smsbridge</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/admin/console.css\"></head><body>{body}</body></html>",
        esc(title)
    );
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
    let why = why.map(|w| format!("<p class=\"bad\">{}</p>", esc(w))).unwrap_or_default();
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    let login = hex::encode(bytes);
    let body = format!(
        "<main class=\"narrow\"><h1>smsbridge</h1><h2>Sign in</h2>{why}\
         <form method=\"post\" action=\"/admin/login\"><input type=\"hidden\" name=\"csrf\" value=\"{login}\">\
         <label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"quiet\">The token is <code>[admin] token</code> of smsbridge's config.</p></main>"
    );
    let mut resp = html(status, "Sign in", &body);
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
    if expected.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(form.csrf.as_bytes(), expected.as_bytes())) {
        return sign_in_page(&gateway, StatusCode::FORBIDDEN, Some("The sign-in form expired; try again."));
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(form.token.as_bytes(), token.as_bytes())) {
        tracing::warn!("console sign-in refused: wrong admin token");
        return sign_in_page(&gateway, StatusCode::UNAUTHORIZED, Some("That is not the admin token."));
    }
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).expect("the OS has randomness");
    let id = hex::encode(id);
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
    if let (Some(token), Some(id)) = (admin_token(&gateway), session(&headers))
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
    let csrf = csrf(&session(headers).unwrap_or_default());
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>smsbridge</h1><form method=\"post\" action=\"/admin/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Sign out</button></form></header><main>"
    );
    body.push_str(&now_section(gateway));
    body.push_str(&send_section(gateway, &csrf, None));
    body.push_str(&messages_section(gateway, number, &csrf).await);
    body.push_str(&adapters_section(gateway));
    body.push_str("</main>");
    html(StatusCode::OK, "Console", &body)
}

fn summary_cells(view: Option<&View>, last_5m: bool) -> String {
    let Some(view) = view else { return "<td>0</td><td>0</td><td>–</td><td>–</td>".into() };
    let s = if last_5m { &view.last_5m } else { &view.last_60m };
    let failed = s.total - s.outcomes.get("accepted").copied().unwrap_or(0);
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "–".into());
    format!("<td>{}</td><td>{failed}</td><td>{}</td><td>{}</td>", s.total, ms(s.p50_ms), ms(s.p99_ms))
}

fn now_section(gateway: &Gateway) -> String {
    let snapshot = Stats::global().snapshot();
    let routing = gateway.routing();
    let mut out = String::from(
        "<section id=\"now\"><h2>Now</h2><table><thead><tr><th>provider</th><th>adapter</th><th>circuit</th>\
         <th>in flight</th><th>5 min: sends</th><th>failed</th><th>p50</th><th>p99</th>\
         <th>60 min: sends</th><th>failed</th><th>p50</th><th>p99</th></tr></thead><tbody>",
    );
    for p in &routing.config.providers {
        let (open, in_flight) = gateway.provider_now(&p.name);
        let view = snapshot.providers.get(&p.name);
        let circuit = if open { "<span class=\"bad\">open</span>" } else { "<span class=\"good\">closed</span>" };
        let _ = write!(
            out,
            "<tr class=\"provider\"><td>{}</td><td>{}</td><td>{circuit}</td><td>{in_flight} / {}</td>{}{}</tr>",
            esc(&p.name),
            esc(&p.adapter),
            p.max_in_flight,
            summary_cells(view, true),
            summary_cells(view, false)
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&chart(&snapshot.providers));
    out.push_str(
        "<table><thead><tr><th>route</th><th>providers</th><th>sends (60 min)</th><th>refused (60 min)</th></tr></thead><tbody>",
    );
    for r in &routing.config.routes {
        let sends = snapshot.routes.get(&r.path).map(|v| v.last_60m.total).unwrap_or(0);
        let refusals = snapshot
            .refusals
            .get(&r.path)
            .map(|v| v.last_60m.outcomes.iter().map(|(k, n)| format!("{} {n}", esc(k))).collect::<Vec<_>>().join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into());
        let _ = write!(
            out,
            "<tr class=\"route\"><td>{}</td><td>{}</td><td>{sends}</td><td>{refusals}</td></tr>",
            esc(&r.path),
            esc(&r.providers.join(", "))
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// Attempts per minute over the last hour, all providers, accepted and not:
/// an inline SVG, drawn with attributes only (the CSP allows no inline style).
fn chart(providers: &BTreeMap<String, View>) -> String {
    let now = now_s() / 60;
    let mut per_minute = [(0u64, 0u64); 60];
    for view in providers.values() {
        for m in &view.per_minute {
            let age = now.saturating_sub(m.at_ms / 60_000);
            if age < 60 {
                let slot = &mut per_minute[59 - age as usize];
                for (outcome, n) in &m.outcomes {
                    if *outcome == "accepted" { slot.0 += n } else { slot.1 += n }
                }
            }
        }
    }
    let top = per_minute.iter().map(|(a, f)| a + f).max().unwrap_or(0).max(1) as f64;
    let mut bars = String::new();
    for (i, (accepted, failed)) in per_minute.iter().enumerate() {
        let x = i * 10;
        let (ha, hf) = (*accepted as f64 / top * 80.0, *failed as f64 / top * 80.0);
        let _ = write!(
            bars,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"8\" height=\"{ha:.1}\" fill=\"#2e7d32\"/>\
             <rect x=\"{x}\" y=\"{:.1}\" width=\"8\" height=\"{hf:.1}\" fill=\"#c62828\"/>",
            80.0 - ha,
            80.0 - ha - hf
        );
    }
    format!(
        "<figure><svg viewBox=\"0 0 600 80\" width=\"600\" height=\"80\" role=\"img\" \
         aria-label=\"attempts per minute, last hour\">{bars}</svg>\
         <figcaption>Attempts per minute over the last hour: accepted (green), failed (red). Top: {top}.</figcaption></figure>"
    )
}

fn send_section(gateway: &Gateway, csrf: &str, result: Option<&str>) -> String {
    let routing = gateway.routing();
    let options: String = routing.config.routes.iter().map(|r| format!("<option>{}</option>", esc(&r.path))).collect();
    format!(
        "<section id=\"send\"><h2>Send a test message</h2>{}\
         <form method=\"post\" action=\"/admin/console/send\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Route <select name=\"route\">{options}</select></label>\
         <label>Number <input name=\"phone\" inputmode=\"tel\" required placeholder=\"+44…\"></label>\
         <label>Text <input name=\"message\" required value=\"smsbridge test message\"></label>\
         <button type=\"submit\">Send</button></form>\
         <p class=\"quiet\">Goes through the route's limits and providers like any send; the caller's auth is not asked.</p></section>",
        result.unwrap_or("")
    )
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
            let what = if sent.queued { "queued" } else { "sent" };
            format!(
                "<div class=\"result good\"><p>{what}: message <code>{}</code> to {} through {}</p>{}</div>",
                esc(&sent.id),
                esc(&crate::phone::mask(&sent.to)),
                esc(if sent.provider.is_empty() { "the queue" } else { &sent.provider }),
                attempts_list(sent.attempts.iter().map(|a| (a.provider.as_str(), a.outcome.as_str(), a.ms)))
            )
        }
        Err(refusal) => refused(route, refusal),
    };
    let csrf = csrf(&session(&headers).unwrap_or_default());
    let body = format!(
        "<main>{}<p><a href=\"/admin/\">Back to the console</a></p></main>",
        send_section(&gateway, &csrf, Some(&result))
    );
    html(StatusCode::OK, "Test send", &body)
}

/// A refusal as the caller would get it, without echoing what was sent.
fn refused(route: &Route, refusal: crate::delivery::Refusal) -> String {
    let (status, body) = crate::server::refusal_answer(route, refusal);
    let attempts: Vec<(String, String, u64)> = body["attempts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let word = |k: &str| a[k].as_str().unwrap_or("").to_string();
                    (word("provider"), word("outcome"), a["ms"].as_u64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "<div class=\"result bad\"><p>not sent: {status} <code>{}</code>, {}</p>{}</div>",
        esc(body["error"].as_str().unwrap_or("")),
        esc(&crate::phone::mask_in(body["message"].as_str().unwrap_or(""))),
        attempts_list(attempts.iter().map(|(p, o, ms)| (p.as_str(), o.as_str(), *ms)))
    )
}

fn attempts_list<'a>(attempts: impl Iterator<Item = (&'a str, &'a str, u64)>) -> String {
    let items: String = attempts.map(|(p, o, ms)| format!("<li>{} — {} in {ms} ms</li>", esc(p), esc(o))).collect();
    if items.is_empty() { String::new() } else { format!("<ol class=\"attempts\">{items}</ol>") }
}

async fn messages_section(gateway: &Gateway, number: Option<&str>, csrf: &str) -> String {
    let mut out = format!(
        "<section id=\"messages\"><h2>Messages</h2><form method=\"post\" action=\"/admin/\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Number <input name=\"number\" inputmode=\"tel\" placeholder=\"+44…\"></label>\
         <button type=\"submit\">Find</button></form>",
    );
    let Some(record) = gateway.record.as_deref() else {
        out.push_str("<p class=\"quiet\">No message record: add a [record] section to keep one.</p></section>");
        return out;
    };
    let list = match number.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => match crate::phone::normalise(n, None) {
            Ok(e164) => {
                let _ = write!(out, "<p>Messages to {}</p>", esc(&crate::phone::mask(&e164)));
                record.by_number(&e164, 50).await
            }
            Err(e) => {
                let _ = write!(out, "<p class=\"bad\">That number {}</p></section>", esc(&e.to_string()));
                return out;
            }
        },
        None => record.recent(20).await,
    };
    match list {
        Ok(list) if list.is_empty() => out.push_str("<p class=\"quiet\">No messages.</p>"),
        Ok(list) => {
            out.push_str(
                "<table><thead><tr><th>when</th><th>id</th><th>route</th><th>to</th><th>provider</th>\
                 <th>attempts</th><th>status</th></tr></thead><tbody>",
            );
            for m in &list {
                out.push_str(&message_row(m));
            }
            out.push_str("</tbody></table>");
        }
        Err(e) => {
            tracing::error!("message record read failed: {e:#}");
            out.push_str("<p class=\"bad\">The message record could not be read.</p>");
        }
    }
    out.push_str("</section>");
    out
}

fn message_row(m: &LoggedMessage) -> String {
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(m.created_ms));
    let attempts = attempts_list(m.attempts.iter().map(|a| (a.provider.as_str(), a.outcome.as_str(), a.ms)));
    let timeline: Vec<&str> = m.statuses.iter().map(|s| s.status.as_str()).collect();
    format!(
        "<tr class=\"message\"><td>{when}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{attempts}</td><td>{}</td></tr>",
        esc(&m.id),
        esc(&m.route),
        // The record keeps numbers masked; masked again in case.
        esc(&crate::phone::mask_in(&m.to)),
        esc(&m.provider),
        esc(&timeline.join(" → "))
    )
}

fn adapters_section(gateway: &Gateway) -> String {
    let errors = gateway.registry.errors();
    let mut out = String::from(
        "<section id=\"adapters\"><h2>Adapters</h2><table><thead><tr><th>name</th><th>version</th><th>source</th>\
         <th>SHA-256</th><th>loaded</th><th>last error</th></tr></thead><tbody>",
    );
    for (name, a) in gateway.registry.list() {
        let error = errors.get(&name).map(|e| esc(&e.message)).unwrap_or_default();
        let _ = write!(
            out,
            "<tr class=\"adapter\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{error}</td></tr>",
            esc(&name),
            esc(&a.info.version),
            esc(&a.source),
            esc(&a.sha256[..a.sha256.len().min(16)]),
            humantime::format_rfc3339_seconds(a.loaded_at),
        );
    }
    for (name, e) in errors.iter().filter(|(n, _)| gateway.registry.get(n).is_none()) {
        let _ = write!(
            out,
            "<tr class=\"adapter\"><td>{}</td><td colspan=\"4\">not loaded</td><td class=\"bad\">{}</td></tr>",
            esc(name),
            esc(&e.message)
        );
    }
    out.push_str("</tbody></table><h3>Recent reloads</h3>");
    let reloads = Stats::global().reloads();
    if reloads.is_empty() {
        out.push_str("<p class=\"quiet\">None since start.</p>");
    } else {
        out.push_str("<ol class=\"reloads\">");
        for (at, adapter, result) in reloads.iter().rev() {
            let _ = write!(out, "<li>{} {} {}</li>", humantime::format_rfc3339_seconds(*at), esc(adapter), esc(result));
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_sessions_are_kept_under_the_token() {
        assert_ne!(csrf("a"), csrf("b"), "one CSRF token per session");
        assert_eq!(csrf(""), csrf(""), "with no session, one per process");
        assert_ne!(session_key("tok-1", "id"), session_key("tok-2", "id"), "a rotated token signs everyone out");
        assert!(!session_key("tok-1", "id").contains("id"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href='x'>&\""), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
    }
}
