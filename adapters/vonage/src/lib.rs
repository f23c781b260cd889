//! Vonage (Nexmo) SMS API: `POST https://rest.nexmo.com/sms/json`, form.
//!
//! The answer is HTTP 200 whatever happened: success is read per message
//! (`messages[0].status == "0"`). With a `signature_secret`, requests are
//! signed (`timestamp`, `sig`) instead of carrying the API secret.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use smsbridge_receipts::{Callback, CallbackError, DeliveryStatus, Receipts, StatusUpdate};
use smsbridge_sdk::http::Request;
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config};
use std::time::{SystemTime, UNIX_EPOCH};

struct Vonage;

impl Adapter for Vonage {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("vonage", "Vonage (Nexmo) SMS API")
            .secret("api_key", "API key, Dashboard → API settings")
            .optional_secret("api_secret", "API secret, Dashboard → API settings")
            .optional_secret("signature_secret", "Signature secret: sign requests instead of sending api_secret")
            .optional("signature_method", "md5hash (default), md5, sha1, sha256 or sha512, as set in the Dashboard")
            .optional("from", "Sender id or number")
            .optional("callback", "URL for delivery receipts")
            .optional("base_url", "Replaces https://rest.nexmo.com (proxy, test mock)")
            .host("rest.nexmo.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let from = msg
            .sender
            .clone()
            .or_else(|| config::get("from"))
            .ok_or_else(|| SendError::Misconfigured("set `from`".into()))?;
        let mut params = vec![
            ("api_key".to_string(), config::require("api_key")?),
            ("from".into(), from),
            ("to".into(), msg.to.trim_start_matches('+').into()),
            ("text".into(), msg.body.clone()),
            ("client-ref".into(), msg.id.clone()),
        ];
        if smsbridge_segments::count(&msg.body).encoding == smsbridge_segments::Encoding::Ucs2 {
            params.push(("type".into(), "unicode".into()));
        }
        if let Some(url) = config::get("callback") {
            params.push(("callback".into(), url));
        }
        match (config::get("signature_secret"), config::get("api_secret")) {
            (Some(secret), _) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                params.push(("timestamp".into(), now.to_string()));
                let method = config::get("signature_method").unwrap_or_else(|| "md5hash".into());
                let sig = signature(&params, &secret, &method)?;
                params.push(("sig".into(), sig));
            }
            (None, Some(secret)) => params.push(("api_secret".into(), secret)),
            (None, None) => {
                return Err(SendError::Misconfigured("set `api_secret` or `signature_secret`".into()));
            }
        }

        let url = format!("{}/sms/json", config::base_url("https://rest.nexmo.com"));
        let resp = Request::post(&url).form(&params).send()?;
        if !resp.is_success() {
            return Err(resp.error(resp.text()));
        }
        let v = resp.json()?;
        let message = &v["messages"][0];
        let status = message["status"].as_str().unwrap_or("");
        if status == "0" {
            let id = message["message-id"].as_str().unwrap_or_default();
            let parts = v["message-count"].as_str().and_then(|n| n.parse().ok());
            return Ok(Accepted { provider_id: id.into(), status: Some("accepted".into()), segments: parts });
        }
        let detail = format!("{status} {}", message["error-text"].as_str().unwrap_or_default());
        Err(match status {
            "1" => SendError::RateLimited(None),
            "4" => SendError::Unauthorized(detail),
            "5" => SendError::Unavailable(detail),
            // Number barred; non-whitelisted destination; invalid destination.
            "7" | "29" | "33" => SendError::InvalidRecipient(detail),
            "" => SendError::Unavailable(format!("answer has no message status: {}", resp.text())),
            _ => SendError::Rejected(detail),
        })
    }
}

/// The `sig` for `params`: `&key=value` for each, sorted by key, with `&`
/// and `=` in values replaced by `_`; then MD5 of that plus the secret
/// (`md5hash`), or an HMAC of it keyed by the secret, in hex.
fn signature(params: &[(String, String)], secret: &str, method: &str) -> Result<String, SendError> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let text: String = sorted.iter().map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_"))).collect();
    fn hmac_hex<M: Mac + hmac::digest::KeyInit>(secret: &str, text: &str) -> String {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
    Ok(match method {
        "md5hash" => hex::encode(Md5::digest(format!("{text}{secret}").as_bytes())),
        "md5" => hmac_hex::<Hmac<Md5>>(secret, &text),
        "sha1" => hmac_hex::<Hmac<sha1::Sha1>>(secret, &text),
        "sha256" => hmac_hex::<Hmac<sha2::Sha256>>(secret, &text),
        "sha512" => hmac_hex::<Hmac<sha2::Sha512>>(secret, &text),
        other => {
            return Err(SendError::Misconfigured(format!("unknown `signature_method` `{other}`")));
        }
    })
}

/// Seconds a signed delivery receipt stays acceptable: older ones are replays.
const RECEIPT_MAX_AGE: u64 = 300;

impl Receipts for Vonage {
    /// Delivery receipts signed like requests: `sig` over every other field,
    /// with a `timestamp` no older than five minutes.
    fn verify(cb: Callback) -> Result<Vec<StatusUpdate>, CallbackError> {
        let secret = config::get("signature_secret")
            .ok_or_else(|| CallbackError::Misconfigured("set `signature_secret` to check delivery receipts".into()))?;
        let method = config::get("signature_method").unwrap_or_else(|| "md5hash".into());
        let fields = receipt_fields(&cb)?;
        let given = fields.iter().find(|(k, _)| k == "sig").map(|(_, v)| v.to_ascii_lowercase());
        let given = given.ok_or_else(|| CallbackError::BadSignature("no sig".into()))?;
        let signed: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "sig").cloned().collect();
        let expected = signature(&signed, &secret, &method)
            .map_err(|_| CallbackError::Misconfigured(format!("unknown `signature_method` `{method}`")))?;
        if !smsbridge_receipts::same(&expected, &given) {
            return Err(CallbackError::BadSignature("sig does not match".into()));
        }
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let sent_at: u64 = field("timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| CallbackError::BadSignature("no timestamp".into()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now.abs_diff(sent_at) > RECEIPT_MAX_AGE {
            return Err(CallbackError::BadSignature("timestamp is not recent: a replay?".into()));
        }
        let id = field("messageId").ok_or_else(|| CallbackError::Malformed("no messageId".into()))?;
        let word = field("status").ok_or_else(|| CallbackError::Malformed("no status".into()))?;
        let status = match word {
            "buffered" => DeliveryStatus::Queued,
            "accepted" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "expired" => DeliveryStatus::Undelivered,
            "failed" | "rejected" => DeliveryStatus::Failed,
            // `unknown`: nothing learned, nothing to record.
            _ => return Ok(Vec::new()),
        };
        let detail = match field("err-code") {
            Some(code) => format!("{word} {code}"),
            None => word.to_string(),
        };
        Ok(vec![StatusUpdate { provider_id: id.to_string(), status, detail: Some(detail) }])
    }
}

/// A receipt's fields: the query string, then a form or JSON body.
fn receipt_fields(cb: &Callback) -> Result<Vec<(String, String)>, CallbackError> {
    let mut fields = cb.query();
    let json = cb.header("content-type").is_some_and(|t| t.contains("json"));
    if json && !cb.body.is_empty() {
        let body: smsbridge_sdk::json::Value = smsbridge_sdk::json::from_slice(&cb.body)
            .map_err(|e| CallbackError::Malformed(format!("body is not JSON: {e}")))?;
        let object = body.as_object().ok_or_else(|| CallbackError::Malformed("body is not a JSON object".into()))?;
        for (k, v) in object {
            let text = v.as_str().map(Into::into).unwrap_or_else(|| v.to_string());
            fields.push((k.clone(), text));
        }
    } else {
        fields.extend(cb.form());
    }
    Ok(fields)
}

smsbridge_receipts::export_adapter_with_receipts!(Vonage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_sorted_params_with_separators_replaced() {
        let params = vec![("b".to_string(), "x&y=z".to_string()), ("a".to_string(), "1".to_string())];
        // &a=1&b=x_y_z, then the secret.
        assert_eq!(signature(&params, "s", "md5hash").unwrap(), hex::encode(Md5::digest(b"&a=1&b=x_y_zs")));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s").unwrap();
        mac.update(b"&a=1&b=x_y_z");
        assert_eq!(signature(&params, "s", "sha256").unwrap(), hex::encode(mac.finalize().into_bytes()));
        assert!(signature(&params, "s", "crc32").is_err());
    }
}
