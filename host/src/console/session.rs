//! Who is signed in to the console: a random session id in a cookie, kept
//! by the server under the admin token (rotating the token signs everyone
//! out), and the CSRF token every form carries, under a key made at random
//! when the process starts.

use crate::gateway::Gateway;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use std::time::Duration;

pub(super) const COOKIE: &str = "smsbridge_console";
/// The sign-in form's CSRF value.
pub(super) const LOGIN_COOKIE: &str = "smsbridge_login";
/// How long a sign-in lasts at most.
pub(super) const SESSION: Duration = Duration::from_secs(8 * 3600);
/// A session unused for this long is over.
pub(super) const IDLE: Duration = Duration::from_secs(30 * 60);

/// Whether `headers` carry a live console session under the admin token
/// in force (or there is no token); the API routes accept one too.
pub async fn signed_in(gateway: &Gateway, token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let Some(id) = session(headers) else { return false };
    match gateway.state.session_touch(&session_key(token, &id), IDLE).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!("console session not checked: {e:#}");
            false
        }
    }
}

pub(super) fn admin_token(gateway: &Gateway) -> Option<String> {
    gateway.routing().config.admin.as_ref().and_then(|a| a.token.as_ref()).map(|t| t.value.clone())
}

fn mac(key: &[u8], purpose: &str, value: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"|");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A key made at random when the process starts: CSRF tokens stand for
/// this process, whether or not an admin token is set.
fn process_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        key
    })
}

/// `bytes` random bytes, in hex.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    hex::encode(buf)
}

/// Where a session id is kept: under the admin token, so that rotating the
/// token signs everyone out, and never as the cookie's own value.
pub(super) fn session_key(token: &str, id: &str) -> String {
    format!("console|{}", mac(token.as_bytes(), "session", id))
}

pub(super) fn session(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).filter(|id| !id.is_empty())
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    cookies
        .flat_map(|c| c.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The CSRF token of the session `headers` carry (or, with none, of none).
pub(super) fn csrf(headers: &HeaderMap) -> String {
    csrf_of(&session(headers).unwrap_or_default())
}

fn csrf_of(session: &str) -> String {
    mac(process_key(), "csrf", session)
}

pub(super) fn csrf_ok(headers: &HeaderMap, offered: &str) -> bool {
    same(offered, &csrf(headers))
}

/// Compares secrets in constant time.
pub(super) fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

/// `Secure` on cookies set over HTTPS.
pub(super) fn secure(gateway: &Gateway) -> &'static str {
    if gateway.routing().config.admin.as_ref().is_some_and(|a| a.tls.is_some()) { "; Secure" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_sessions_are_kept_under_the_token() {
        assert_ne!(csrf_of("a"), csrf_of("b"), "one CSRF token per session");
        assert_eq!(csrf_of(""), csrf_of(""), "with no session, one per process");
        assert_ne!(session_key("tok-1", "id"), session_key("tok-2", "id"), "a rotated token signs everyone out");
        assert!(!session_key("tok-1", "id").contains("id"));
    }
}
