//! Hostile callers, end to end: Digest nonces good once, at the instance
//! that issued them, that cost nothing to refuse, and caller networks
//! matched however the listener sees the address.

use sha2::{Digest, Sha256};
use smsbridge_tests::{Bridge, quiet_route, runtime};
use std::sync::Arc;

const PASSWORD: &str = "lo-digest-pass-2b7d";

fn config(key: &str) -> String {
    let route = quiet_route(
        "/v1/linotp",
        &["sms"],
        &format!("auth = {{ digest = {{ user = \"linotp\", password = \"{PASSWORD}\" }} }}\n"),
    );
    format!(
        "[auth]\ndigest_key = \"{key}\"\n[[provider]]\nname = \"sms\"\nadapter = \"outbox\"\ndata_dir = \"{{dir}}/outbox\"\n{route}"
    )
}

fn h(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 challenge's nonce from a 401.
async fn challenge(bridge: &Bridge) -> String {
    let resp = bridge.client.post(bridge.url("/v1/linotp")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let header = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.contains("SHA-256"))
        .expect("a SHA-256 challenge");
    header.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

/// Answers `nonce` at `bridge` as a client that knows the password would.
async fn answer(bridge: &Bridge, nonce: &str, nc: u32) -> u16 {
    let (realm, uri, cnonce, nc) = ("smsbridge", "/v1/linotp", "0a4f113b", format!("{nc:08x}"));
    let ha1 = h(&format!("linotp:{realm}:{PASSWORD}"));
    let ha2 = h(&format!("POST:{uri}"));
    let response = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let authorization = format!(
        "Digest username=\"linotp\", realm=\"{realm}\", uri=\"{uri}\", algorithm=SHA-256, nonce=\"{nonce}\", nc={nc}, cnonce=\"{cnonce}\", qop=auth, response=\"{response}\""
    );
    let form = [("phone", "+447400123456"), ("message", "Your OTP is 135790")];
    let resp =
        bridge.client.post(bridge.url(uri)).header("authorization", authorization).form(&form).send().await.unwrap();
    resp.status().as_u16()
}

/// Without `[state]`, the counts live in one process, and so do its nonces:
/// an instance sharing the key does not take them, where a used count would
/// pass (host/tests/shared.rs has instances that share the counts).
#[tokio::test]
async fn without_shared_state_a_digest_nonce_is_good_once_and_at_its_own_instance_only() {
    let a = Bridge::start(&config("shared-digest-key-4c2e9b71")).await;
    let b = Bridge::start(&config("shared-digest-key-4c2e9b71")).await;
    let nonce = challenge(&a).await;
    assert_eq!(answer(&b, &nonce, 1).await, 401, "B does not take A's nonce");
    assert_eq!(answer(&a, &nonce, 1).await, 200, "A does");
    assert_eq!(answer(&a, &nonce, 1).await, 401, "a replay is refused");
    assert_eq!(answer(&a, &nonce, 2).await, 200, "the next nc is fine");
    assert_eq!((a.outbox("outbox").len(), b.outbox("outbox").len()), (2, 0));
}

#[tokio::test]
async fn an_ipv4_caller_on_a_dual_stack_listener_matches_an_ipv4_network() {
    let text = format!(
        "[[provider]]\nname = \"sms\"\nadapter = \"outbox\"\ndata_dir = \"{}\"\n{}",
        tempfile::tempdir().unwrap().keep().display(),
        quiet_route("/v1/internal", &["sms"], "allow_networks = [\"127.0.0.1\"]\n")
    );
    let config = smsbridge::config::Config::parse(&text, "test.toml").unwrap();
    let gateway = Arc::new(smsbridge::gateway::Gateway::new(config, runtime()).await.unwrap());
    // `[::]` takes IPv4 callers too, as `::ffff:127.0.0.1`.
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(smsbridge::server::serve(gateway, listener, std::future::pending()));
    let form = [("phone", "+447400123456"), ("message", "hi")];
    let resp =
        reqwest::Client::new().post(format!("http://127.0.0.1:{port}/v1/internal")).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
}
