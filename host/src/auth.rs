//! Caller authentication, the one place it is decided: HTTP Basic, HTTP
//! Digest (RFC 7616), a shared secret in the request's fields (RSA AM cannot
//! send Basic), a bearer token, and an allowlist of caller networks.
//!
//! Every secret is compared in constant time. A refusal carries a reason for
//! the audit log and nothing for the caller but the challenge to answer.

use crate::config::CallerAuth;
use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a Digest nonce may be used.
const NONCE_TTL: Duration = Duration::from_secs(300);

/// Why a caller was refused, for the audit log only.
#[derive(Debug)]
pub struct Refused {
    pub reason: &'static str,
    /// `WWW-Authenticate` values to send back.
    pub challenges: Vec<String>,
}

/// Digest nonces that carry their own proof: the time they were issued and
/// random bytes, with an HMAC over both. Issuing one stores nothing, so
/// refusing a flood of unauthenticated requests costs no memory; any
/// instance with the same key accepts another's nonce. Only after a request
/// proves the password is its `nc` remembered (to refuse replays), in a
/// bounded set that forgets nonces once they expire.
pub struct Nonces {
    key: Vec<u8>,
    /// Nonce → (when it expires, highest `nc` accepted).
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Nonces whose replays are tracked at once; past it, the oldest go first.
const MAX_TRACKED: usize = 100_000;
/// A nonce's parts: issue time (ms since the epoch), random bytes, MAC.
const NONCE_TIME: usize = 8;
const NONCE_RANDOM: usize = 8;
const NONCE_MAC: usize = 16;

impl Default for Nonces {
    /// Nonces under a random key: valid at this process only.
    fn default() -> Nonces {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        Nonces::with_key(&key)
    }
}

impl Nonces {
    /// Nonces under `key`, which instances behind one load balancer share.
    pub fn with_key(key: &[u8]) -> Nonces {
        Nonces { key: key.to_vec(), seen: Mutex::new(HashMap::new()) }
    }

    fn mac(&self, body: &[u8]) -> [u8; NONCE_MAC] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(body);
        mac.finalize().into_bytes()[..NONCE_MAC].try_into().expect("a SHA-256 MAC is long enough")
    }

    fn issue(&self) -> String {
        let mut body = [0u8; NONCE_TIME + NONCE_RANDOM];
        body[..NONCE_TIME].copy_from_slice(&now_ms().to_be_bytes());
        getrandom::fill(&mut body[NONCE_TIME..]).expect("the OS has randomness");
        let mut nonce = body.to_vec();
        nonce.extend_from_slice(&self.mac(&body));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce)
    }

    /// Whether `nonce` was issued under this key and has not expired.
    fn verify(&self, nonce: &str) -> Result<(), &'static str> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce).unwrap_or_default();
        if bytes.len() != NONCE_TIME + NONCE_RANDOM + NONCE_MAC {
            return Err("unknown digest nonce");
        }
        let (body, mac) = bytes.split_at(NONCE_TIME + NONCE_RANDOM);
        if !bool::from(self.mac(body)[..].ct_eq(mac)) {
            return Err("unknown digest nonce");
        }
        let issued = u64::from_be_bytes(body[..NONCE_TIME].try_into().expect("eight bytes"));
        let age = now_ms().saturating_sub(issued);
        // A little skew between instances' clocks is forgiven.
        if age >= NONCE_TTL.as_millis() as u64 || issued > now_ms() + 5_000 {
            return Err("expired digest nonce");
        }
        Ok(())
    }

    /// Accepts `nc` for an authenticated request with `nonce` if `nc` is new.
    fn accept(&self, nonce: &str, nc: u64) -> Result<(), &'static str> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, (expires, _)| *expires > now);
            if seen.len() >= MAX_TRACKED {
                // Still full of live nonces: forget the one expiring first.
                let oldest = seen.iter().min_by_key(|(_, (expires, _))| *expires).map(|(k, _)| k.clone());
                seen.remove(&oldest.expect("the set is full"));
            }
        }
        let (_, last) = seen.entry(nonce.to_string()).or_insert((now + NONCE_TTL, 0));
        if nc <= *last {
            return Err("replayed digest request");
        }
        *last = nc;
        Ok(())
    }
}

/// Standard Webhooks: one of the `v1,` signatures in `webhook-signature` is
/// the HMAC-SHA256 of `id.timestamp.body`, and the timestamp is within
/// `tolerance` of now either way. A replayed id is caught by the route's
/// repeats, where it is the idempotency key.
fn webhook(
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
fn jwt(token: &str, key: &[u8], rules: &JwtRules<'_>) -> Result<Caller, &'static str> {
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

/// Milliseconds since the Unix epoch: nonces are compared across instances.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The credentials after `scheme` in an `Authorization` value; the scheme
/// is matched case-insensitively (RFC 9110, section 11.1).
pub fn scheme_value<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (named, rest) = authorization.trim_start().split_once(' ')?;
    named.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Who a request proved to be.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Caller {
    /// A user name, a token's subject, or empty when the route's one
    /// secret is all there is.
    pub name: String,
    /// A credential good for one request: its id, and how long the id must
    /// be remembered for a replay to be refused.
    pub single_use: Option<(String, Duration)>,
    /// How long a copy of this request stays acceptable: its idempotency
    /// key must be kept at least this long (a webhook's timestamp plus the
    /// tolerance).
    pub replay_window: Option<Duration>,
}

impl Caller {
    fn named(name: &str) -> Caller {
        Caller { name: name.to_string(), ..Caller::default() }
    }
}

/// The request as authentication sees it.
pub struct Request<'a> {
    pub method: &'a Method,
    /// Path and query, as sent.
    pub uri: &'a str,
    pub headers: &'a HeaderMap,
    /// The body as sent: webhook signatures cover it.
    pub body: &'a [u8],
}

/// Checks `req` against `auth`; who the caller is (a user name, a token's
/// subject, or empty when the route's one secret is all there is). For a
/// field secret, the credential fields are removed from `fields` whatever
/// the outcome, so nothing after this sees them.
pub fn check(
    auth: &CallerAuth,
    req: &Request<'_>,
    fields: &mut HashMap<String, String>,
    nonces: &Nonces,
) -> Result<Caller, Refused> {
    let authorization = req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let refuse = |reason, challenges| Err(Refused { reason, challenges });
    match auth {
        CallerAuth::Basic { user, password, realm } => {
            let challenge = vec![format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")];
            let Some(encoded) = scheme_value(authorization, "Basic") else {
                return refuse("no Basic credentials", challenge);
            };
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
            let decoded = String::from_utf8_lossy(&decoded);
            let (u, p) = decoded.split_once(':').unwrap_or(("", ""));
            // Both compared, always: timing tells nothing about which failed.
            if eq(u, user) & eq(p, &password.value) {
                Ok(Caller::named(user))
            } else {
                refuse("wrong Basic credentials", challenge)
            }
        }
        CallerAuth::Bearer { token } => match scheme_value(authorization, "Bearer") {
            Some(t) if eq(t.trim(), &token.value) => Ok(Caller::default()),
            Some(_) => refuse("wrong bearer token", vec!["Bearer".into()]),
            None => refuse("no bearer token", vec!["Bearer".into()]),
        },
        CallerAuth::Header { name, value } => match req.headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            Some(offered) if eq(offered.trim(), &value.value) => Ok(Caller::default()),
            Some(_) => refuse("wrong auth header", Vec::new()),
            None => refuse("no auth header", Vec::new()),
        },
        CallerAuth::Webhook { secret, tolerance } => {
            webhook(secret, *tolerance, req).map_err(|reason| Refused { reason, challenges: Vec::new() })
        }
        CallerAuth::Jwt { secret, base64, audience, subject, issuer, max_lifetime } => {
            let Some(token) = scheme_value(authorization, "Bearer") else {
                return refuse("no bearer token", vec!["Bearer".into()]);
            };
            let key = crate::config::jwt_key(&secret.value, *base64).unwrap_or_default();
            let rules = JwtRules {
                audience,
                subject: subject.as_deref(),
                issuer: issuer.as_deref(),
                max_lifetime: *max_lifetime,
            };
            jwt(token.trim(), &key, &rules).map_err(|reason| Refused { reason, challenges: vec!["Bearer".into()] })
        }
        CallerAuth::FormSecret { user_field, secret_field, user, secret } => {
            let u = fields.remove(user_field).unwrap_or_default();
            let s = fields.remove(secret_field).unwrap_or_default();
            if u.is_empty() && s.is_empty() {
                return refuse("no credential fields", Vec::new());
            }
            if eq(&u, user) & eq(&s, &secret.value) {
                Ok(Caller::named(user))
            } else {
                refuse("wrong credential fields", Vec::new())
            }
        }
        CallerAuth::Digest { user, password, realm } => {
            // A nonce count is good for one request at every instance that
            // shares the nonce key: a captured request replays nowhere.
            let used = digest(user, &password.value, realm, req, authorization, nonces)?;
            Ok(Caller { single_use: Some((used, NONCE_TTL)), ..Caller::named(user) })
        }
    }
}

fn digest_challenges(realm: &str, nonces: &Nonces, stale: bool) -> Vec<String> {
    let nonce = nonces.issue();
    let stale = if stale { ", stale=true" } else { "" };
    ["SHA-256", "MD5"]
        .iter()
        .map(|alg| {
            format!("Digest realm=\"{realm}\", qop=\"auth,auth-int\", algorithm={alg}, nonce=\"{nonce}\"{stale}")
        })
        .collect()
}

/// RFC 7616: the response is H(H(user:realm:password):nonce:nc:cnonce:qop:
/// H(method:uri)), with `qop=auth-int` H(method:uri:H(body)), so the body
/// is covered too. The nonce and its count, once accepted.
fn digest(
    user: &str,
    password: &str,
    realm: &str,
    req: &Request<'_>,
    authorization: &str,
    nonces: &Nonces,
) -> Result<String, Refused> {
    let refuse = |reason, stale| Err(Refused { reason, challenges: digest_challenges(realm, nonces, stale) });
    let Some(params) = scheme_value(authorization, "Digest") else { return refuse("no Digest credentials", false) };
    let p = parse_params(params);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let hash: fn(&[u8]) -> String = match get("algorithm") {
        "" | "MD5" => |s| hex::encode(md5::Md5::digest(s)),
        "SHA-256" => |s| hex::encode(sha2::Sha256::digest(s)),
        _ => return refuse("unsupported digest algorithm", false),
    };
    let qop = get("qop");
    if !matches!(qop, "auth" | "auth-int") || get("realm") != realm || get("uri") != req.uri || get("cnonce").is_empty()
    {
        return refuse("malformed digest credentials", false);
    }
    let Ok(nc) = u64::from_str_radix(get("nc"), 16) else { return refuse("malformed digest nc", false) };
    let ha1 = hash(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = match qop {
        "auth-int" => hash(format!("{}:{}:{}", req.method, req.uri, hash(req.body)).as_bytes()),
        _ => hash(format!("{}:{}", req.method, req.uri).as_bytes()),
    };
    let expected = hash(format!("{ha1}:{}:{}:{}:{qop}:{ha2}", get("nonce"), get("nc"), get("cnonce")).as_bytes());
    if !(eq(get("username"), user) & eq(get("response"), &expected)) {
        return refuse("wrong digest credentials", false);
    }
    if let Err(reason) = nonces.verify(get("nonce")) {
        return refuse(reason, true);
    }
    match nonces.accept(get("nonce"), nc) {
        Ok(()) => Ok(format!("digest\0{}\0{nc}", get("nonce"))),
        Err(reason) => refuse(reason, true),
    }
}

/// `k=v, k="v, with comma"` pairs of an auth header.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        out.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Setting;

    fn secret(v: &str) -> Setting {
        Setting { value: v.into(), from_env: false }
    }

    #[test]
    fn digest_follows_rfc_7616_and_refuses_replays() {
        // RFC 7616 section 3.9.1's example, with our own nonce.
        let auth = CallerAuth::Digest {
            user: "Mufasa".into(),
            password: secret("Circle of Life"),
            realm: "http-auth@example.org".into(),
        };
        let nonces = Nonces::default();
        let nonce = nonces.issue();
        let (method, uri) = (Method::GET, "/dir/index.html");
        let h = |s: &str| hex::encode(sha2::Sha256::digest(s.as_bytes()));
        let ha1 = h("Mufasa:http-auth@example.org:Circle of Life");
        let ha2 = h("GET:/dir/index.html");
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let response = h(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        let header = format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=SHA-256, nonce=\"{nonce}\", nc=00000001, cnonce=\"{cnonce}\", qop=auth, response=\"{response}\""
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, header.parse().unwrap());
        let req = Request { method: &method, uri, headers: &headers, body: b"" };
        assert!(check(&auth, &req, &mut HashMap::new(), &nonces).is_ok());
        let replay = check(&auth, &req, &mut HashMap::new(), &nonces).unwrap_err();
        assert_eq!(replay.reason, "replayed digest request");
        assert!(replay.challenges[0].contains("stale=true"));

        // Another instance with the same key takes the nonce; one with
        // another key does not.
        let key = b"shared-digest-key-5d1e9a";
        let (a, b, c) = (Nonces::with_key(key), Nonces::with_key(key), Nonces::with_key(b"another-key-0b7c33aa"));
        let nonce = a.issue();
        assert_eq!(b.verify(&nonce), Ok(()));
        assert_eq!(c.verify(&nonce), Err("unknown digest nonce"));
        let mut forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        forged[0] ^= 1;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        assert_eq!(a.verify(&forged), Err("unknown digest nonce"), "the issue time is covered by the MAC");
    }

    #[test]
    fn refusing_an_unauthenticated_request_stores_nothing() {
        let auth = CallerAuth::Digest { user: "u".into(), password: secret("a-long-password"), realm: "r".into() };
        let nonces = Nonces::default();
        let headers = HeaderMap::new();
        let req = Request { method: &Method::POST, uri: "/", headers: &headers, body: b"" };
        for _ in 0..1000 {
            let refused = check(&auth, &req, &mut HashMap::new(), &nonces).unwrap_err();
            assert!(refused.challenges[0].contains("nonce="));
        }
        assert!(nonces.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn field_secrets_are_removed_whatever_the_outcome() {
        let auth = CallerAuth::FormSecret {
            user_field: "verify_sid".into(),
            secret_field: "api_secret".into(),
            user: "VA1".into(),
            secret: secret("s3cret"),
        };
        let headers = HeaderMap::new();
        let req = Request { method: &Method::POST, uri: "/", headers: &headers, body: b"" };
        let mut fields: HashMap<String, String> =
            [("verify_sid", "VA1"), ("api_secret", "wrong"), ("To", "+1")].map(|(k, v)| (k.into(), v.into())).into();
        assert!(check(&auth, &req, &mut fields, &Nonces::default()).is_err());
        assert_eq!(fields.len(), 1, "{fields:?}");
    }

    #[test]
    fn auth_params_parse_quoted_and_bare_values() {
        let p = parse_params(r#"username="a, b", nc=00000001, qop=auth,realm="r""#);
        assert_eq!(p["username"], "a, b");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["qop"], "auth");
        assert_eq!(p["realm"], "r");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::config::Setting;
    use proptest::prelude::*;

    fn secret(v: &str) -> Setting {
        Setting { value: v.into(), from_env: false }
    }

    proptest! {
        /// Whatever a caller puts in `Authorization`, no scheme panics and
        /// none accepts a credential it was not given.
        #[test]
        fn no_header_is_a_forgery(header in "[ -~]{0,300}", prefix in prop::sample::select(vec!["", "Basic ", "Bearer ", "Digest "])) {
            let value = format!("{prefix}{header}");
            let Ok(value) = axum::http::HeaderValue::from_str(&value) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value);
            let nonces = Nonces::default();
            let _ = nonces.issue();
            let req = Request { method: &Method::POST, uri: "/v1/send", headers: &headers, body: b"" };
            for auth in [
                CallerAuth::Basic { user: "aa".into(), password: secret("s3cret-basic"), realm: "r".into() },
                CallerAuth::Bearer { token: secret("tok-7f3a9c2e") },
                CallerAuth::Digest { user: "linotp".into(), password: secret("s3cret-digest"), realm: "r".into() },
            ] {
                prop_assert!(check(&auth, &req, &mut HashMap::new(), &nonces).is_err());
            }
        }

        #[test]
        fn digest_parameters_never_panic(text in "\\PC{0,200}") {
            let _ = parse_params(&text);
        }
    }
}
