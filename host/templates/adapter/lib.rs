//! smsbridge adapter for {{provider}}.
//!
//! `info()` tells the host who this adapter is and which settings it reads;
//! `send()` turns one message into the provider's API call and maps the
//! answer to the contract's result. Everything else (auth of the caller,
//! phone number normalisation, retries, failover) is the host's job.

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, http, log};

struct Provider;

impl Adapter for Provider {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("{{name}}", "{{provider}}")
            .secret("api_key", "API key, from the provider's dashboard")
            .optional("from", "Sender id or number in E.164; the route's `sender` wins")
            .optional("base_url", "Replaces https://{{host}} (a regional endpoint or a test mock)")
            .host("{{host}}")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let key = config::require("api_key")?;
        let url = format!("{}/v1/messages", config::base_url("https://{{host}}"));

        // Form encoding: the SDK escapes `+`, spaces and `&`.
        let mut form = vec![("to", msg.to.as_str()), ("text", msg.body.as_str()), ("reference", msg.id.as_str())];
        let from = msg.sender.clone().or_else(|| config::get("from"));
        if let Some(from) = &from {
            form.push(("from", from));
        }
        let resp = http::Request::post(&url).bearer(&key).form(&form).send()?;

        if resp.is_success() {
            // No id in a 2xx answer means we cannot prove the message was taken.
            let id = resp.json_str("/id")?;
            return Ok(Accepted { provider_id: id, status: Some("queued".into()), segments: None });
        }

        // Error mapping: the provider's own code first, then the HTTP status
        // (401/403 unauthorized, 429 rate-limited, 5xx unavailable, else rejected).
        let answer = resp.json().unwrap_or_default();
        let code = answer["code"].as_str().unwrap_or_default();
        let detail = format!("{code}: {}", answer["message"].as_str().unwrap_or_default());
        log::debug(&format!("{{name}} refused the message: HTTP {}", resp.status()));
        match code {
            "invalid_number" | "unreachable" => Err(SendError::InvalidRecipient(detail)),
            _ => Err(resp.error(detail)),
        }
    }
}

smsbridge_sdk::export_adapter!(Provider);
