//! Caller authentication, the one place it is decided: HTTP Basic, HTTP
//! Digest (RFC 7616), a shared secret in the request's fields (RSA AM cannot
//! send Basic), a bearer token, and an allowlist of caller networks.
//!
//! Every secret is compared in constant time. A refusal carries a reason for
//! the audit log and nothing for the caller but the challenge to answer.

use crate::config::CallerAuth;
use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use std::collections::HashMap;
use std::time::Duration;
use subtle::ConstantTimeEq;

mod digest;
mod tokens;

pub use digest::Nonces;
use digest::{NONCE_TTL, digest};
pub use tokens::JwtRules;
use tokens::{jwt, webhook};

/// Why a caller was refused, for the audit log only.
#[derive(Debug)]
pub struct Refused {
    pub reason: &'static str,
    /// `WWW-Authenticate` values to send back.
    pub challenges: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::digest::parse_params;
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
        use sha2::Digest as _;
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
    use super::digest::parse_params;
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
