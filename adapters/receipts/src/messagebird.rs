//! MessageBird's delivery reports, signed with `MessageBird-Signature-JWT`:
//! an HS256 JWT keyed by the signing key whose claims bind it to the URL
//! called (`url_hash`) and the body (`payload_hash`), within `nbf`..`exp`.

use crate::{Callback, CallbackError, DeliveryStatus, StatusUpdate, hex_sha256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use smsbridge_sdk::json::Value;

/// The header MessageBird signs with.
pub const HEADER: &str = "MessageBird-Signature-JWT";
/// Clock difference tolerated on `nbf` and `exp`, in seconds.
const LEEWAY: u64 = 5;

fn bad(why: &str) -> CallbackError {
    CallbackError::BadSignature(why.into())
}

/// Checks `cb`'s JWT with `key` at time `now` (seconds since the epoch).
pub fn verify(key: &str, cb: &Callback, now: u64) -> Result<(), CallbackError> {
    let token = cb.header(HEADER).ok_or_else(|| bad("no MessageBird-Signature-JWT header"))?;
    let mut parts = token.trim().split('.');
    let (Some(header), Some(claims), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a JWT"));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| bad("not base64url"));
    let header: Value = smsbridge_sdk::json::from_slice(&decode(header)?).map_err(|_| bad("header is not JSON"))?;
    // Only HS256: `none` or another algorithm would let anyone sign.
    if header["alg"] != "HS256" {
        return Err(bad("the JWT is not HS256"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(&token.trim().as_bytes()[..token.trim().len() - sig.len() - 1]);
    mac.verify_slice(&decode(sig)?).map_err(|_| bad("the JWT signature does not match"))?;

    let claims: Value = smsbridge_sdk::json::from_slice(&decode(claims)?).map_err(|_| bad("claims are not JSON"))?;
    if claims["iss"] != "MessageBird" {
        return Err(bad("the JWT is not from MessageBird"));
    }
    let nbf = claims["nbf"].as_u64().ok_or_else(|| bad("no nbf"))?;
    let exp = claims["exp"].as_u64().ok_or_else(|| bad("no exp"))?;
    if now + LEEWAY < nbf || exp + LEEWAY <= now {
        return Err(bad("the JWT is not valid now"));
    }
    if claims["url_hash"].as_str() != Some(hex_sha256(cb.url.as_bytes()).as_str()) {
        return Err(bad("the JWT is for another URL"));
    }
    match (claims["payload_hash"].as_str(), cb.body.is_empty()) {
        (None, true) => Ok(()),
        (Some(hash), false) if hash == hex_sha256(&cb.body) => Ok(()),
        _ => Err(bad("the JWT is for another body")),
    }
}

/// The normalised status for MessageBird's `status` word.
///
/// ```
/// use smsbridge_receipts::{DeliveryStatus, messagebird::status};
/// assert!(matches!(status("delivery_failed"), Some(DeliveryStatus::Failed)));
/// assert!(matches!(status("expired"), Some(DeliveryStatus::Undelivered)));
/// ```
pub fn status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "scheduled" | "buffered" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "expired" => DeliveryStatus::Undelivered,
        "delivery_failed" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Verifies a delivery report and reads `id`, `status` and `statusErrorCode`
/// from its query string (GET) or form body.
pub fn read(key: &str, cb: &Callback, now: u64) -> Result<Vec<StatusUpdate>, CallbackError> {
    verify(key, cb, now)?;
    let mut fields = cb.query();
    fields.extend(cb.form());
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let id = field("id").ok_or_else(|| CallbackError::Malformed("no id".into()))?;
    let word = field("status").ok_or_else(|| CallbackError::Malformed("no status".into()))?;
    let status = status(&word).ok_or_else(|| CallbackError::Malformed(format!("unknown status `{word}`")))?;
    let detail = match field("statusErrorCode") {
        Some(code) => format!("{word} {code}"),
        None => word,
    };
    Ok(vec![StatusUpdate { provider_id: id, status, detail: Some(detail) }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(key: &str, header: &str, claims: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let c = URL_SAFE_NO_PAD.encode(claims);
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn report(url: &str, token: &str) -> Callback {
        Callback {
            method: "GET".into(),
            url: url.into(),
            headers: vec![(HEADER.into(), token.into())],
            body: Vec::new(),
        }
    }

    #[test]
    fn a_report_is_read_within_its_time_and_for_its_url_only() {
        let url = "https://sms.example.com/callbacks/mb?id=mb-1&status=delivered";
        let claims =
            format!(r#"{{"iss":"MessageBird","nbf":1000,"exp":1060,"url_hash":"{}"}}"#, hex_sha256(url.as_bytes()));
        let token = jwt("key", r#"{"alg":"HS256","typ":"JWT"}"#, &claims);
        let updates = read("key", &report(url, &token), 1010).unwrap();
        assert_eq!(updates[0].provider_id, "mb-1");
        assert!(matches!(updates[0].status, DeliveryStatus::Delivered));

        let refused = |cb: &Callback, now| matches!(read("key", cb, now), Err(CallbackError::BadSignature(_)));
        assert!(refused(&report(url, &token), 2000), "expired");
        assert!(refused(&report(url, &token), 900), "not yet valid");
        assert!(refused(&report(&url.replace("delivered", "failed"), &token), 1010), "another URL");
        assert!(matches!(read("other", &report(url, &token), 1010), Err(CallbackError::BadSignature(_))));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(&claims));
        assert!(refused(&report(url, &none), 1010), "alg none");
        let mut with_body = report(url, &token);
        with_body.body = b"id=mb-2".to_vec();
        assert!(refused(&with_body, 1010), "a body the JWT does not cover");
    }
}
