//! Twilio's webhook signatures (`X-Twilio-Signature`), which SignalWire's
//! compatibility API uses too, and its message status callbacks.

use crate::{Callback, CallbackError, DeliveryStatus, StatusUpdate, hex_sha256, same};
use base64::Engine;
use hmac::{Hmac, Mac};

/// The signature Twilio sends for `url` and form `params`: Base64 of
/// HMAC-SHA1, keyed with the auth token, over the URL followed by every
/// parameter's name and value, sorted by name.
///
/// ```
/// let sig = smsbridge_receipts::twilio::signature("token", "https://example.com/cb", &[]);
/// assert_eq!(sig.len(), 28);
/// ```
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with the scheme's default port written out, and without any port:
/// Twilio signs whichever form it called, so both are tried.
///
/// ```
/// let (with, without) = smsbridge_receipts::twilio::port_forms("https://sms.example.com/cb?x=1");
/// assert_eq!(with, "https://sms.example.com:443/cb?x=1");
/// assert_eq!(without, "https://sms.example.com/cb?x=1");
/// ```
pub fn port_forms(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.into(), url.into()) };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_end = if authority.starts_with('[') { authority.find(']').map(|i| i + 1) } else { authority.rfind(':') };
    let (host, has_port) = match host_end {
        Some(i) if i < authority.len() && authority[i..].starts_with(':') => (&authority[..i], true),
        _ => (authority, false),
    };
    let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
    let with = if has_port { url.to_string() } else { format!("{scheme}://{host}:{default}{tail}") };
    (with, format!("{scheme}://{host}{tail}"))
}

/// Checks `cb`'s signature in `header` with `token`. A form body is signed
/// with its parameters; a JSON body with the URL alone, whose `bodySHA256`
/// query parameter must then be the body's SHA-256.
pub fn verify(token: &str, cb: &Callback, header: &str) -> Result<(), CallbackError> {
    let given = cb.header(header).ok_or_else(|| CallbackError::BadSignature(format!("no {header} header")))?;
    let query = cb.query();
    let params = match query.iter().find(|(k, _)| k == "bodySHA256") {
        Some((_, hash)) => {
            let actual = hex_sha256(&cb.body);
            if !same(&actual, &hash.to_ascii_lowercase()) {
                return Err(CallbackError::BadSignature("the body does not match bodySHA256".into()));
            }
            Vec::new()
        }
        None if cb.method.eq_ignore_ascii_case("POST") => cb.form(),
        None => Vec::new(),
    };
    let (with_port, without_port) = port_forms(&cb.url);
    if same(&signature(token, &with_port, &params), given) | same(&signature(token, &without_port, &params), given) {
        Ok(())
    } else {
        Err(CallbackError::BadSignature(format!("{header} does not match")))
    }
}

/// The normalised status for Twilio's `MessageStatus` word.
///
/// ```
/// use smsbridge_receipts::{DeliveryStatus, twilio::status};
/// assert!(matches!(status("delivered"), Some(DeliveryStatus::Delivered)));
/// assert!(matches!(status("sending"), Some(DeliveryStatus::Sent)));
/// assert!(status("receiving").is_none());
/// ```
pub fn status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "accepted" | "scheduled" | "queued" => DeliveryStatus::Queued,
        "sending" | "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Verifies a message status callback and reads it: `MessageSid`,
/// `MessageStatus` and `ErrorCode` (or the older `SmsSid`/`SmsStatus`).
pub fn read(token: &str, cb: &Callback, header: &str) -> Result<Vec<StatusUpdate>, CallbackError> {
    verify(token, cb, header)?;
    let fields = cb.form();
    let field = |names: &[&str]| {
        names.iter().find_map(|n| fields.iter().find(|(k, _)| k == n)).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    };
    let sid = field(&["MessageSid", "SmsSid"]).ok_or_else(|| CallbackError::Malformed("no MessageSid".into()))?;
    let word =
        field(&["MessageStatus", "SmsStatus"]).ok_or_else(|| CallbackError::Malformed("no MessageStatus".into()))?;
    let status = status(&word).ok_or_else(|| CallbackError::Malformed(format!("unknown MessageStatus `{word}`")))?;
    let detail = match field(&["ErrorCode"]) {
        Some(code) => format!("{word} {code}"),
        None => word,
    };
    Ok(vec![StatusUpdate { provider_id: sid, status, detail: Some(detail) }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(url: &str, body: &str, sig: &str) -> Callback {
        Callback {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("X-Twilio-Signature".into(), sig.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_signed_callback_is_read_and_any_change_is_refused() {
        let url = "https://sms.example.com/callbacks/twilio";
        let body = "MessageSid=SM1&MessageStatus=delivered&To=%2B447400123456";
        let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let sig = signature("tok", url, &params);
        let updates = read("tok", &callback(url, body, &sig), "X-Twilio-Signature").unwrap();
        assert_eq!(updates[0].provider_id, "SM1");
        assert!(matches!(updates[0].status, DeliveryStatus::Delivered));
        // Signed with the port, checked without it, and the other way round.
        let (with_port, _) = port_forms(url);
        let sig_port = signature("tok", &with_port, &params);
        assert!(verify("tok", &callback(url, body, &sig_port), "X-Twilio-Signature").is_ok());
        assert!(verify("tok", &callback(&with_port, body, &sig), "X-Twilio-Signature").is_ok());

        for (url2, body2, token) in [
            (url, "MessageSid=SM1&MessageStatus=delivered&To=%2B447400123457", "tok"),
            ("https://sms.example.com/callbacks/twilio2", body, "tok"),
            (url, body, "other-token"),
        ] {
            let refused = read(token, &callback(url2, body2, &sig), "X-Twilio-Signature");
            assert!(matches!(refused, Err(CallbackError::BadSignature(_))));
        }
        let mut unsigned = callback(url, body, &sig);
        unsigned.headers.clear();
        assert!(matches!(read("tok", &unsigned, "X-Twilio-Signature"), Err(CallbackError::BadSignature(_))));
    }

    #[test]
    fn a_json_body_is_signed_through_its_hash() {
        let body = r#"{"MessageSid":"SM1"}"#;
        let hash = hex_sha256(body.as_bytes());
        let url = format!("https://sms.example.com/cb?bodySHA256={hash}");
        let sig = signature("tok", &url, &[]);
        assert!(verify("tok", &callback(&url, body, &sig), "X-Twilio-Signature").is_ok());
        let tampered = callback(&url, r#"{"MessageSid":"SM2"}"#, &sig);
        assert!(matches!(verify("tok", &tampered, "X-Twilio-Signature"), Err(CallbackError::BadSignature(_))));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn callback(url: String, body: Vec<u8>, sig: String) -> Callback {
        Callback { method: "POST".into(), url, headers: vec![("X-Twilio-Signature".into(), sig)], body }
    }

    proptest! {
        /// Any URL, body and signature header: no panic, and no acceptance
        /// without the token's signature.
        #[test]
        fn nothing_unsigned_is_accepted(url in "\\PC{0,80}", body in proptest::collection::vec(any::<u8>(), 0..200), sig in "[A-Za-z0-9+/=]{0,40}") {
            let cb = callback(url, body, sig);
            let accepted = read("tok", &cb, "X-Twilio-Signature").is_ok();
            let params = if cb.url.contains("bodySHA256") { Vec::new() } else { cb.form() };
            let (a, b) = port_forms(&cb.url);
            let given = cb.header("X-Twilio-Signature").unwrap();
            let genuine = signature("tok", &a, &params) == given || signature("tok", &b, &params) == given;
            prop_assert!(!accepted || genuine);
        }

        /// A signed callback with any one byte of its body changed is refused.
        #[test]
        fn one_changed_byte_is_refused(status in "[a-z]{1,12}", at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let url = "https://sms.example.com/callbacks/twilio";
            let body = format!("MessageSid=SM1&MessageStatus={status}");
            let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let sig = signature("tok", url, &params);
            let mut changed = body.into_bytes();
            let i = at.index(changed.len());
            changed[i] ^= flip;
            let cb = callback(url.into(), changed.clone(), sig);
            // Bytes that Twilio's scheme signs the same are the same callback:
            // `+` and `%20`, and (as it joins names and values with nothing
            // between) `Status=ab` and `Status&ab`.
            let signed = |fields: &[(String, String)]| {
                let mut sorted = fields.to_vec();
                sorted.sort();
                sorted.into_iter().map(|(k, v)| k + &v).collect::<String>()
            };
            let changed_fields: Vec<(String, String)> = form_urlencoded::parse(&changed).into_owned().collect();
            let same_signed = signed(&changed_fields) == signed(&params);
            prop_assert!(same_signed || matches!(verify("tok", &cb, "X-Twilio-Signature"), Err(CallbackError::BadSignature(_))));
        }
    }
}
