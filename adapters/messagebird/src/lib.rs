//! MessageBird REST v1: `POST https://rest.messagebird.com/messages`,
//! `Authorization: AccessKey <key>`, JSON.

use smsbridge_receipts::{Callback, CallbackError, Receipts, StatusUpdate, messagebird};
use smsbridge_sdk::http::Request;
use smsbridge_sdk::json::json;
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config};

struct MessageBird;

impl Adapter for MessageBird {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("messagebird", "MessageBird REST v1")
            .secret("access_key", "Live access key, Dashboard → Developers → API access")
            .optional("originator", "Sender: a number or up to 11 alphanumeric characters")
            .optional("report_url", "URL for delivery reports (sent with the message id as `reference`)")
            .optional("validity", "Seconds the message stays valid")
            .optional_secret("signing_key", "Signing key for delivery reports, Dashboard → Developers → API access")
            .optional("base_url", "Replaces https://rest.messagebird.com (proxy, test mock)")
            .host("rest.messagebird.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let key = config::require("access_key")?;
        let originator = msg
            .sender
            .or_else(|| config::get("originator"))
            .ok_or_else(|| SendError::Misconfigured("set `originator`".into()))?;
        let mut body = json!({
            "originator": originator,
            "recipients": [msg.to.trim_start_matches('+')],
            "body": msg.body,
            "reference": msg.id,
        });
        if let Some(url) = config::get("report_url") {
            body["reportUrl"] = url.into();
        }
        if let Some(validity) = config::get("validity") {
            let secs: u64 = validity
                .parse()
                .map_err(|_| SendError::Misconfigured("`validity` must be a number of seconds".into()))?;
            body["validity"] = secs.into();
        }
        let url = format!("{}/messages", config::base_url("https://rest.messagebird.com"));
        let resp = Request::post(&url).header("Authorization", &format!("AccessKey {key}")).json(&body).send()?;
        if resp.is_success() {
            let id = resp.json_str("/id")?;
            return Ok(Accepted { provider_id: id, status: Some("sent".into()), segments: None });
        }
        let v = resp.json().unwrap_or_default();
        let first = &v["errors"][0];
        let (code, text) = (first["code"].as_u64(), first["description"].as_str().unwrap_or_default());
        let detail = format!("{} {text}", code.unwrap_or_default());
        Err(match (code, first["parameter"].as_str()) {
            (Some(2), _) => SendError::Unauthorized(detail),
            (Some(9 | 10), Some("recipients" | "recipient")) => SendError::InvalidRecipient(detail),
            (Some(25), _) => SendError::Rejected(detail),
            _ if resp.status() == 429 || resp.status() >= 500 => resp.error(detail),
            (Some(_), _) => SendError::Rejected(detail),
            (None, _) => resp.error(resp.text()),
        })
    }
}

impl Receipts for MessageBird {
    /// Delivery reports, signed with a JWT keyed by the signing key.
    fn verify(cb: Callback) -> Result<Vec<StatusUpdate>, CallbackError> {
        let key = config::get("signing_key")
            .ok_or_else(|| CallbackError::Misconfigured("set `signing_key` to check delivery reports".into()))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        messagebird::read(&key, &cb, now)
    }
}

smsbridge_receipts::export_adapter_with_receipts!(MessageBird);
