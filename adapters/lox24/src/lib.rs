//! LOX24, both APIs, chosen by `api`:
//! - `rest` (default): `POST https://api.lox24.eu/sms`,
//!   `X-LOX24-AUTH-TOKEN: <user>:<token>`, JSON, `201` with a `uuid`;
//! - `legacy`: `https://www.lox24.eu/API/httpsms.php` with the MD5 of the
//!   password, answering XML whose `<code>` below 200 means success.

use md5::{Digest, Md5};
use smsbridge_sdk::http::Request;
use smsbridge_sdk::json::json;
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config};

struct Lox24;

impl Adapter for Lox24 {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("lox24", "LOX24 REST and legacy httpsms.php APIs")
            .optional("api", "`rest` (default) or `legacy`")
            .required("user", "REST: client number; legacy: account (`konto`)")
            .optional_secret("token", "REST: API token, Portal → API → Tokens")
            .optional_secret("password", "Legacy: account password, sent as its MD5")
            .optional("service", "Legacy: service id of the route")
            .optional("service_code", "REST: `direct` (default) or `economy`")
            .optional("from", "Sender id or number")
            .optional("base_url", "Replaces https://api.lox24.eu or https://www.lox24.eu")
            .host("api.lox24.eu")
            .host("www.lox24.eu")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let from = msg.sender.clone().or_else(|| config::get("from"));
        match config::get("api").as_deref().unwrap_or("rest") {
            "rest" => rest(msg, from),
            "legacy" => legacy(msg, from),
            other => Err(SendError::Misconfigured(format!("`api` is `{other}`; use `rest` or `legacy`"))),
        }
    }
}

fn rest(msg: Message, from: Option<String>) -> Result<Accepted, SendError> {
    let auth = format!("{}:{}", config::require("user")?, config::require("token")?);
    let body = json!({
        "sender_id": from.unwrap_or_default(),
        "phone": msg.to,
        "text": msg.body,
        "service_code": config::get("service_code").unwrap_or_else(|| "direct".into()),
    });
    let url = format!("{}/sms", config::base_url("https://api.lox24.eu"));
    let resp = Request::post(&url).header("X-LOX24-AUTH-TOKEN", &auth).json(&body).send()?;
    if resp.is_success() {
        let id = resp.json_str("/uuid")?;
        return Ok(Accepted { provider_id: id, status: None, segments: None });
    }
    let detail = resp.json().ok().and_then(|v| v["detail"].as_str().map(String::from)).unwrap_or_else(|| resp.text());
    if resp.status() == 400 && detail.to_lowercase().contains("phone") {
        return Err(SendError::InvalidRecipient(detail));
    }
    Err(resp.error(detail))
}

fn legacy(msg: Message, from: Option<String>) -> Result<Accepted, SendError> {
    let password = config::require("password")?;
    let hash = hex::encode(Md5::digest(password.as_bytes()));
    let (user, service) = (config::require("user")?, config::require("service")?);
    let from = from.unwrap_or_default();
    let form = [
        ("konto", user.as_str()),
        ("password", hash.as_str()),
        ("service", service.as_str()),
        ("text", msg.body.as_str()),
        ("to", msg.to.as_str()),
        ("from", from.as_str()),
        ("return", "xml"),
    ];
    let url = format!("{}/API/httpsms.php", config::base_url("https://www.lox24.eu"));
    let resp = Request::post(&url).form(&form).send()?;
    if !resp.is_success() {
        return Err(resp.error(resp.text()));
    }
    let xml = resp.text();
    let code: u32 = element(&xml, "code")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| SendError::Unavailable("answer has no <code>".into()))?;
    let text = element(&xml, "codetext").unwrap_or_default();
    if code < 200 {
        let id = element(&xml, "MSGID").unwrap_or_default();
        return Ok(Accepted { provider_id: id.trim().into(), status: None, segments: None });
    }
    Err(SendError::Rejected(format!("{code} {}", text.trim())))
}

/// The text of the first `<name>…</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

smsbridge_sdk::export_adapter!(Lox24);
