//! Clickatell, both APIs, chosen by `api`:
//! - `platform` (default): `POST https://platform.clickatell.com/messages`,
//!   `Authorization: <api key>`, JSON;
//! - `http`: the legacy `https://api.clickatell.com/http/sendmsg` with user,
//!   password and api_id, answering `ID: …` or `ERR: code, text`.

use smsbridge_sdk::http::{Request, Response};
use smsbridge_sdk::json::json;
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config};

struct Clickatell;

impl Adapter for Clickatell {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("clickatell", "Clickatell Platform and legacy HTTP APIs")
            .optional("api", "`platform` (default) or `http` (legacy sendmsg)")
            .optional_secret("api_key", "Platform: API key, Portal → SMS Integrations")
            .optional("user", "Legacy HTTP: account user name")
            .optional_secret("password", "Legacy HTTP: account password")
            .optional("api_id", "Legacy HTTP: API id of the HTTP connection")
            .optional("from", "Sender id or number, if your account has one")
            .optional("base_url", "Replaces https://platform.clickatell.com or https://api.clickatell.com")
            .host("platform.clickatell.com")
            .host("api.clickatell.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let from = msg.sender.clone().or_else(|| config::get("from"));
        match config::get("api").as_deref().unwrap_or("platform") {
            "platform" => platform(msg, from),
            "http" => legacy(msg, from),
            other => Err(SendError::Misconfigured(format!("`api` is `{other}`; use `platform` or `http`"))),
        }
    }
}

fn platform(msg: Message, from: Option<String>) -> Result<Accepted, SendError> {
    let key = config::require("api_key")?;
    let mut body = json!({
        "to": [msg.to.trim_start_matches('+')],
        "content": msg.body,
        "clientMessageId": msg.id,
    });
    if let Some(from) = from {
        body["from"] = from.into();
    }
    let url = format!("{}/messages", config::base_url("https://platform.clickatell.com"));
    let resp = Request::post(&url).header("Authorization", &key).json(&body).send()?;
    if resp.status() == 401 || resp.status() == 403 || resp.status() == 429 || resp.status() >= 500 {
        return Err(resp.error(resp.text()));
    }
    let v = resp.json()?;
    let message = &v["messages"][0];
    if resp.is_success() && message["accepted"] == true {
        let id = message["apiMessageId"].as_str().unwrap_or_default();
        return Ok(Accepted { provider_id: id.into(), status: Some("accepted".into()), segments: None });
    }
    let error = if message["error"].is_null() { &v["error"] } else { &message["error"] };
    let detail = match error {
        e if e.is_object() => format!("{} {}", e["code"], e["description"].as_str().unwrap_or_default()),
        e => e.as_str().map(Into::into).unwrap_or_else(|| resp.text()),
    };
    let lower = detail.to_lowercase();
    if lower.contains("destination") || lower.contains("number") || lower.contains("recipient") {
        return Err(SendError::InvalidRecipient(detail));
    }
    Err(SendError::Rejected(detail))
}

fn legacy(msg: Message, from: Option<String>) -> Result<Accepted, SendError> {
    let (user, password, api_id) = (config::require("user")?, config::require("password")?, config::require("api_id")?);
    let mut form = vec![
        ("user", user.as_str()),
        ("password", password.as_str()),
        ("api_id", api_id.as_str()),
        ("to", msg.to.trim_start_matches('+')),
        ("text", msg.body.as_str()),
        ("climsgid", msg.id.as_str()),
    ];
    if let Some(from) = &from {
        form.push(("from", from));
    }
    let url = format!("{}/http/sendmsg", config::base_url("https://api.clickatell.com"));
    let resp = Request::post(&url).form(&form).send()?;
    legacy_answer(&resp)
}

/// Reads `ID: <apimsgid>` or `ERR: <code>, <text>`.
fn legacy_answer(resp: &Response) -> Result<Accepted, SendError> {
    if !resp.is_success() {
        return Err(resp.error(resp.text()));
    }
    let text = resp.text();
    let text = text.trim();
    if let Some(id) = text.strip_prefix("ID:") {
        return Ok(Accepted { provider_id: id.trim().into(), status: None, segments: None });
    }
    let Some(err) = text.strip_prefix("ERR:") else {
        return Err(SendError::Unavailable(format!(
            "unexpected answer: {}",
            text.chars().take(200).collect::<String>()
        )));
    };
    let err = err.trim().to_string();
    let code = err.split(',').next().unwrap_or_default().trim();
    Err(match code {
        // Authentication failed, invalid api_id.
        "001" | "108" => SendError::Unauthorized(err),
        // Invalid destination, number blocked.
        "105" | "121" => SendError::InvalidRecipient(err),
        _ => SendError::Rejected(err),
    })
}

smsbridge_sdk::export_adapter!(Clickatell);
