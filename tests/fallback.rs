//! Receipt-timeout failover and routes that learn, end to end: two Twilio
//! mocks as real HTTP servers, receipts signed by Twilio's own helper
//! library posted to `/callbacks/…`, the message record read back from the
//! admin listener.

use serde_json::Value;
use smsbridge_tests::{Bridge, python, quiet_route};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
const PUBLIC: &str = "https://sms.example.com";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const GB: &str = "+447400123456";
const US: &str = "+12025550123";

/// A Twilio mock that accepts every message, as `{prefix}1`, `{prefix}2`, ….
async fn twilio(prefix: &str) -> MockServer {
    let server = MockServer::start().await;
    let prefix = prefix.to_string();
    let n = std::sync::atomic::AtomicU32::new(0);
    Mock::given(method("POST"))
        .and(path_regex(format!("^/2010-04-01/Accounts/{SID}/Messages.json$")))
        .respond_with(move |_: &wiremock::Request| {
            let sid = format!("{prefix}{}", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
            ResponseTemplate::new(201)
                .set_body_raw(format!(r#"{{"sid":"{sid}","status":"queued"}}"#), "application/json")
        })
        .mount(&server)
        .await;
    server
}

fn provider(name: &str, mock: &MockServer) -> String {
    format!(
        r#"
[[provider]]
name = "{name}"
adapter = "twilio"
allow_hosts = ["{uri}"]
[provider.config]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+15005550006"
base_url = "{uri}"
"#,
        uri = mock.uri()
    )
}

/// smsbridge with providers `a` and `b` (Twilio mocks) and `routes`.
async fn bridge(routes: &str) -> (MockServer, MockServer, Bridge) {
    let (a, b) = (twilio("SMa").await, twilio("SMb").await);
    let config = format!(
        "[server]\npublic_url = \"{PUBLIC}/\"\n[record]\npath = \"{{dir}}/messages.db\"\n{}{}{routes}",
        provider("a", &a),
        provider("b", &b)
    );
    (a, b, Bridge::start(&config).await)
}

/// The texts and numbers a mock was sent, in order.
async fn sent_to(mock: &MockServer) -> Vec<(String, String)> {
    let requests = mock.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            (form["To"].clone(), form["Body"].clone())
        })
        .collect()
}

/// Waits until `mock` was sent `n` messages, or fails.
async fn wait_sent(mock: &MockServer, n: usize, within: Duration) -> Vec<(String, String)> {
    let until = Instant::now() + within;
    loop {
        let sent = sent_to(mock).await;
        if sent.len() >= n {
            return sent;
        }
        assert!(Instant::now() < until, "{n} sends expected, {} came: {sent:?}", sent.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Posts a status callback for `sid` from provider `name`, signed by the
/// `twilio` package's `RequestValidator`.
async fn receipt(bridge: &Bridge, name: &str, sid: &str, status: &str) {
    let url = format!("{PUBLIC}/callbacks/{name}");
    let params = [("AccountSid", SID), ("MessageSid", sid), ("MessageStatus", status)];
    let script = "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
                  token, url, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n\
                  print(RequestValidator(token).compute_signature(url, params))";
    let json: serde_json::Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let signature = python(script, &[TOKEN, &url, &Value::Object(json).to_string()]);
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let resp = bridge
        .client
        .post(bridge.url(&format!("/callbacks/{name}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the receipt is taken");
}

async fn message(bridge: &Bridge, id: &str) -> Value {
    bridge.admin(&format!("/admin/messages/{id}")).await.1
}

/// Each handoff as (provider, provider id, why).
fn handoffs(m: &Value) -> Vec<(String, String, String)> {
    let list = m["handoffs"].as_array().unwrap_or_else(|| panic!("handoffs in {m}"));
    let text = |h: &Value, k: &str| h[k].as_str().unwrap().to_string();
    list.iter().map(|h| (text(h, "provider"), text(h, "provider_id"), text(h, "why"))).collect()
}

async fn send(bridge: &Bridge, path: &str, to: &str, text: &str) -> String {
    let sent = bridge.post_form(path, &[("phone", to), ("message", text)]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.json["provider"], "a", "{sent:?}");
    sent.json["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_delivered_receipt_in_time_sends_the_text_once_through_the_next_provider_and_no_more() {
    let routes =
        quiet_route("/v1/send", &["a", "b"], "fallback_after_s = 1") + &quiet_route("/v1/once", &["a", "b"], "");
    let (a, b, bridge) = bridge(&routes).await;
    let started = Instant::now();
    let id = send(&bridge, "/v1/send", GB, "Your code is 135790").await;
    // A route without fallback_after_s never sends twice.
    send(&bridge, "/v1/once", GB, "Your code is 246802").await;
    assert_eq!(sent_to(&b).await, [], "nothing at b before the timeout");

    let at_b = wait_sent(&b, 1, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "not before the timeout: {:?}", started.elapsed());
    assert_eq!(at_b, [(GB.to_string(), "Your code is 135790".to_string())], "the same text, to the same number");
    receipt(&bridge, "b", "SMb1", "delivered").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let texts = |sent: Vec<(String, String)>| sent.into_iter().map(|(_, t)| t).collect::<Vec<_>>();
    assert_eq!(texts(sent_to(&a).await), ["Your code is 135790", "Your code is 246802"], "a once each");
    assert_eq!(texts(sent_to(&b).await), ["Your code is 135790"], "b once, and never the other route's");

    let m = message(&bridge, &id).await;
    assert_eq!(
        handoffs(&m),
        [
            ("a".into(), "SMa1".into(), "first".into()),
            ("b".into(), "SMb1".into(), "no delivered receipt from a within 1 s".into())
        ]
    );
    assert_eq!(m["handoffs"][1]["status"], "delivered");
    assert_eq!((m["handoffs"][0]["segments"].as_u64(), m["handoffs"][1]["segments"].as_u64()), (Some(1), Some(1)));
    let tried: Vec<&str> = m["attempts"].as_array().unwrap().iter().map(|a| a["provider"].as_str().unwrap()).collect();
    assert_eq!(tried, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_receipt_falls_back_at_once_and_a_late_delivered_one_is_recorded_and_sends_nothing() {
    let (a, b, bridge) = bridge(&quiet_route("/v1/send", &["a", "b"], "fallback_after_s = 60")).await;
    let id = send(&bridge, "/v1/send", GB, "Your code is 864200").await;
    let started = Instant::now();
    receipt(&bridge, "a", "SMa1", "undelivered").await;
    wait_sent(&b, 1, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(10), "long before the timeout: {:?}", started.elapsed());

    // a's delivered comes after all: recorded, nothing sent.
    receipt(&bridge, "a", "SMa1", "delivered").await;
    receipt(&bridge, "b", "SMb1", "undelivered").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((sent_to(&a).await.len(), sent_to(&b).await.len()), (1, 1));
    let m = message(&bridge, &id).await;
    assert_eq!(handoffs(&m)[1].2, "a reported it undelivered");
    assert_eq!(
        (m["handoffs"][0]["status"].as_str(), m["handoffs"][1]["status"].as_str()),
        (Some("delivered"), Some("undelivered"))
    );
    let timeline: Vec<(String, String)> = m["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["provider"].as_str().unwrap_or("").to_string(), s["status"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("", "queued"), ("a", "undelivered"), ("b", "queued"), ("a", "delivered"), ("b", "undelivered")];
    let expected: Vec<(String, String)> = expected.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect();
    assert_eq!(timeline, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_receipt_in_time_stops_the_fallback() {
    let (_a, b, bridge) = bridge(&quiet_route("/v1/send", &["a", "b"], "fallback_after_s = 1")).await;
    send(&bridge, "/v1/send", GB, "Your code is 112233").await;
    receipt(&bridge, "a", "SMa1", "delivered").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sent_to(&b).await, [], "delivered: no fallback");
}

/// Sends `n` texts to `to` through `path`; how many each provider took.
async fn spread(bridge: &Bridge, path: &str, to: &str, n: usize) -> (usize, usize) {
    let mut took = (0, 0);
    for i in 0..n {
        let sent = bridge.post_form(path, &[("phone", to), ("message", &format!("Your code is {i:06}"))]).await;
        assert_eq!(sent.status, 200, "{sent:?}");
        match sent.json["provider"].as_str() {
            Some("a") => took.0 += 1,
            Some("b") => took.1 += 1,
            other => panic!("an unknown provider {other:?}"),
        }
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stops_delivering_in_one_country_goes_behind_there_only_and_keeps_a_small_share() {
    let extra = "order = \"delivered\"\nmin_receipts = 5\nexplore_percent = 20";
    let routes = quiet_route("/v1/send", &["a", "b"], extra) + &quiet_route("/v1/b", &["b"], "");
    // The recorder, before any ratio is set.
    smsbridge::telemetry::metrics();
    let (_a, _b, bridge) = bridge(&routes).await;
    // Before any figures, the listed order, with no exploration.
    assert_eq!(spread(&bridge, "/v1/send", GB, 5).await, (5, 0));
    assert_eq!(spread(&bridge, "/v1/send", US, 5).await, (5, 0));
    assert_eq!(spread(&bridge, "/v1/b", GB, 5).await, (0, 5));
    // a delivers nothing to GB and everything to the US; b delivers to GB.
    for n in 1..=5 {
        receipt(&bridge, "a", &format!("SMa{n}"), "undelivered").await;
        receipt(&bridge, "a", &format!("SMa{}", n + 5), "delivered").await;
        receipt(&bridge, "b", &format!("SMb{n}"), "delivered").await;
    }
    bridge.gateway.learned().refresh().await;

    // GB: b first, a keeps the exploratory share (20 %: about 8 in 40).
    let (a_gb, b_gb) = spread(&bridge, "/v1/send", GB, 40).await;
    assert!((1..=20).contains(&a_gb), "a kept a small share of GB: {a_gb} of 40");
    assert!(b_gb >= 20, "b leads for GB: {b_gb} of 40");
    // The US: a still leads.
    let (a_us, _) = spread(&bridge, "/v1/send", US, 20).await;
    assert!(a_us >= 10, "a leads for the US: {a_us} of 20");

    let (_, stats) = bridge.admin("/admin/stats").await;
    let rows = stats["delivered"]["rows"].as_array().unwrap_or_else(|| panic!("the table in /admin/stats: {stats}"));
    let row = |p: &str, c: &str| rows.iter().find(|r| r["provider"] == p && r["country"] == c).cloned().unwrap();
    let day = |r: Value, k: &str| r["day"][k].as_u64().unwrap();
    assert_eq!((day(row("a", "GB"), "delivered"), day(row("a", "GB"), "failed")), (0, 5));
    assert_eq!((day(row("a", "US"), "delivered"), day(row("b", "GB"), "delivered")), (5, 5));
    assert!(row("b", "GB")["day"]["p50_ms"].as_u64().is_some(), "time to delivered: {}", row("b", "GB"));
    let metrics = bridge.client.get(format!("http://{}/metrics", bridge.admin_addr)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains(r#"smsbridge_delivered_ratio{provider="a",country="GB"} 0"#), "{metrics}");
    assert!(metrics.contains(r#"smsbridge_delivered_ratio{provider="a",country="US"} 1"#), "{metrics}");
}
