//! Signed requests and tokens: Standard Webhooks signatures, and HS256
//! JWTs with the claims a route requires.

use super::{Caller, Request, eq, now_ms};
use base64::Engine;
use sha2::Digest as _;
use std::time::Duration;

/// Standard Webhooks: one of the `v1,` signatures in `webhook-signature` is
/// the HMAC-SHA256 of `id.timestamp.body`, and the timestamp is within
/// `tolerance` of now either way. A replayed id is caught by the route's
/// repeats, where it is the idempotency key.
pub(super) fn webhook(
    secret: &crate::config::Setting,
    tolerance: std::time::Duration,
    req: &Request<'_>,
) -> Result<Caller, &'static str> {
    use hmac::{Hmac, Mac};
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let (Some(id), Some(timestamp), Some(signatures)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err("no webhook signature");
    };
    let Ok(at) = timestamp.parse::<u64>() else { return Err("malformed webhook timestamp") };
    let now = now_ms() / 1000;
    if now.abs_diff(at) > tolerance.as_secs() {
        return Err("webhook timestamp outside the tolerance");
    }
    // Acceptable until its timestamp plus the tolerance: its id is kept
    // that long at least, however far ahead the timestamp is.
    let replay_window = Duration::from_secs((at + tolerance.as_secs()).saturating_sub(now).max(1));
    let key = crate::config::webhook_key(&secret.value).unwrap_or_default();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(req.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut found = false;
    for signature in signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")) {
        found |= eq(signature, &expected);
    }
    if found {
        Ok(Caller { replay_window: Some(replay_window), ..Caller::default() })
    } else {
        Err("wrong webhook signature")
    }
}

/// Clock difference tolerated on a JWT's `exp`, `nbf` and `iat`.
const JWT_LEEWAY_S: u64 = 30;

/// What a JWT must be, beside its signature.
pub struct JwtRules<'a> {
    pub audience: &'a str,
    pub subject: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub max_lifetime: Duration,
}

/// A compact JWS signed with HS256 under `key`: any other `alg` (`none`
/// first of all) is refused before the signature is looked at, and so is a
/// `crit` header (no extension is understood); `iat` and `exp` must be
/// there, at most `max_lifetime` apart, `exp` in the future, `nbf` (if any)
/// past; `aud` must name `audience`, and `sub` and `iss` must be `subject`
/// and `issuer` when those are configured. The token's subject, and the
/// token's one use: its id (`jti`, else a digest of the token) and how long
/// it must be remembered.
pub(super) fn jwt(token: &str, key: &[u8], rules: &JwtRules<'_>) -> Result<Caller, &'static str> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    let json =
        |part: &str| -> Option<serde_json::Value> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok() };
    let header = json(head).ok_or("malformed token")?;
    if header["alg"] != "HS256" {
        return Err("token algorithm is not HS256");
    }
    if header.get("crit").is_some() {
        return Err("token with critical extensions");
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "malformed token")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{head}.{body}").as_bytes());
    mac.verify_slice(&signature).map_err(|_| "wrong token signature")?;
    let claims = json(body).ok_or("malformed token")?;
    let now = (now_ms() / 1000) as f64;
    let leeway = JWT_LEEWAY_S as f64;
    let exp = claims["exp"].as_f64().ok_or("token without exp")?;
    if now >= exp + leeway {
        return Err("expired token");
    }
    let iat = claims["iat"].as_f64().ok_or("token without iat")?;
    if iat > now + leeway {
        return Err("token issued in the future");
    }
    if exp - iat > rules.max_lifetime.as_secs_f64() {
        return Err("token lives longer than max_lifetime_s");
    }
    if claims["nbf"].as_f64().is_some_and(|nbf| now + leeway < nbf) {
        return Err("token not valid yet");
    }
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == rules.audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a == rules.audience),
        _ => false,
    };
    if !aud_ok {
        return Err("wrong token audience");
    }
    if rules.subject.is_some_and(|s| claims["sub"] != s) {
        return Err("wrong token subject");
    }
    if rules.issuer.is_some_and(|i| claims["iss"] != i) {
        return Err("wrong token issuer");
    }
    let id = match claims["jti"].as_str() {
        Some(jti) => format!("jti\0{jti}"),
        None => format!("token\0{}", hex::encode(sha2::Sha256::digest(token.as_bytes()))),
    };
    let remember = Duration::from_secs_f64((exp + leeway - now).max(1.0));
    Ok(Caller {
        name: claims["sub"].as_str().unwrap_or("").to_string(),
        single_use: Some((id, remember)),
        replay_window: None,
    })
}
