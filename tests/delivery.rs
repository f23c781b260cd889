//! Delivery a bank can trust: failover and retries within a deadline,
//! circuit breakers, one SMS for a repeated request, and limits against SMS
//! pumping, through the real `/v1/send` to mock providers.

use smsbridge_tests::{Answer, Bridge, pairs, quiet_route};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A provider instance named `name` on the generic-http adapter, sending to `mock`.
fn provider(name: &str, mock: &MockServer, extra: &str) -> String {
    format!(
        r#"
[[provider]]
name = "{name}"
adapter = "generic-http"
allow_hosts = ["{mock}"]
{extra}
[provider.config]
url = "{mock}/send"
params = "to={{to}}&text={{body}}"
id_pointer = "/id"
"#,
        mock = mock.uri()
    )
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(format!(r#"{{"id":"{id}"}}"#), "application/json")
}

async fn send(bridge: &Bridge, path: &str, phone: &str, message: &str) -> Answer {
    bridge.post_form(path, &[("phone", phone), ("message", message)]).await
}

#[tokio::test]
async fn a_failing_primary_is_retried_then_failed_over_and_its_circuit_opens_and_closes() {
    let (primary, secondary) = (MockServer::start().await, MockServer::start().await);
    Mock::given(any()).respond_with(ResponseTemplate::new(503)).mount(&primary).await;
    Mock::given(any()).respond_with(accepted("second-1")).mount(&secondary).await;
    let config = format!(
        "{}{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"primary\", \"secondary\"]\nretries = 1\nbackoff_ms = 10\n",
        provider("primary", &primary, "circuit_failures = 2\ncircuit_cooldown_ms = 500"),
        provider("secondary", &secondary, "")
    );
    let bridge = Bridge::start(&config).await;

    // 503 twice at the primary (one retry), then the secondary delivers.
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 100001").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["provider"], "secondary");
    assert_eq!(a.json["provider_id"], "second-1");
    let expected = [("primary", "unavailable"), ("primary", "unavailable"), ("secondary", "accepted")];
    assert_eq!(a.attempts(), pairs(&expected));
    assert_eq!(primary.received_requests().await.unwrap().len(), 2);

    // Two failures in a row opened the primary's circuit: it is skipped.
    let a = send(&bridge, "/v1/send", "+447400123457", "Your code is 100002").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.attempts(), pairs(&[("primary", "circuit_open"), ("secondary", "accepted")]));
    assert_eq!(primary.received_requests().await.unwrap().len(), 2, "an open circuit sends nothing");

    // The primary recovers; after the cool-down one probe closes the circuit.
    primary.reset().await;
    Mock::given(any()).respond_with(accepted("first-1")).mount(&primary).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let a = send(&bridge, "/v1/send", "+447400123458", "Your code is 100003").await;
    assert_eq!(a.attempts(), pairs(&[("primary", "accepted")]), "{a:?}");
    let a = send(&bridge, "/v1/send", "+447400123459", "Your code is 100004").await;
    assert_eq!(a.attempts(), pairs(&[("primary", "accepted")]), "{a:?}");
    assert_eq!(secondary.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let (primary, secondary) = (MockServer::start().await, MockServer::start().await);
    Mock::given(any()).respond_with(ResponseTemplate::new(500)).mount(&primary).await;
    Mock::given(any()).respond_with(accepted("s")).mount(&secondary).await;
    let config = format!(
        "{}{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"primary\", \"secondary\"]\nretries = 0\n",
        provider("primary", &primary, "circuit_failures = 1\ncircuit_cooldown_ms = 300"),
        provider("secondary", &secondary, "")
    );
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 200001").await;
    assert_eq!(a.attempts(), pairs(&[("primary", "unavailable"), ("secondary", "accepted")]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    // The probe fails: open again at once, no second failure needed.
    let a = send(&bridge, "/v1/send", "+447400123457", "Your code is 200002").await;
    assert_eq!(a.attempts(), pairs(&[("primary", "unavailable"), ("secondary", "accepted")]));
    let a = send(&bridge, "/v1/send", "+447400123458", "Your code is 200003").await;
    assert_eq!(a.attempts(), pairs(&[("primary", "circuit_open"), ("secondary", "accepted")]));
    assert_eq!(primary.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn permanent_failures_fail_over_only_where_the_route_says_so() {
    let (primary, secondary) = (MockServer::start().await, MockServer::start().await);
    Mock::given(any()).respond_with(ResponseTemplate::new(400).set_body_string("bad sender id")).mount(&primary).await;
    Mock::given(any()).respond_with(accepted("s")).mount(&secondary).await;
    let config = format!(
        "{}{}
[[route]]
path = \"/strict\"
providers = [\"primary\", \"secondary\"]
[[route]]
path = \"/lenient\"
providers = [\"primary\", \"secondary\"]
failover_on_permanent = true
",
        provider("primary", &primary, ""),
        provider("secondary", &secondary, "")
    );
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/strict", "+447400123456", "Your code is 300001").await;
    a.assert_failed(502, "rejected");
    assert_eq!(a.attempts(), pairs(&[("primary", "rejected")]));
    assert_eq!(secondary.received_requests().await.unwrap().len(), 0);

    let a = send(&bridge, "/lenient", "+447400123456", "Your code is 300002").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.attempts(), pairs(&[("primary", "rejected"), ("secondary", "accepted")]));
}

#[tokio::test]
async fn the_route_deadline_bounds_every_retry() {
    let slow = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(300)))
        .mount(&slow)
        .await;
    let config = format!(
        "{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"slow\"]\nretries = 10\nbackoff_ms = 1\ndeadline_ms = 1000\non_unknown = \"failed\"\n",
        provider("slow", &slow, "")
    );
    let bridge = Bridge::start(&config).await;
    let started = std::time::Instant::now();
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 400001").await;
    let took = started.elapsed();
    // The deadline usually cuts a request short: the provider may have it.
    assert_eq!(a.status, 503, "{a:?}");
    assert!(["unavailable", "unconfirmed"].contains(&a.json["error"].as_str().unwrap()), "{a:?}");
    let tries = a.attempts().len();
    assert!((3..=4).contains(&tries), "about deadline / delay attempts, got {tries}: {a:?}");
    assert!(took < Duration::from_millis(1600), "the deadline held: {took:?}");
}

const OUTBOX: &str = r#"
[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{dir}/outbox"
"#;

#[tokio::test]
async fn the_sixth_send_to_one_number_within_the_window_is_refused() {
    let bridge = Bridge::start(&format!("{OUTBOX}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"outbox\"]\n")).await;
    for code in 0..5 {
        let a = send(&bridge, "/v1/send", "+447400123456", &format!("Your code is 50000{code}")).await;
        assert_eq!(a.status, 200, "send {code}: {a:?}");
    }
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 500005").await;
    a.assert_failed(429, "limit_exceeded");
    assert_eq!(a.json["limit"], "per_number");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "retry after the 10-minute window: {retry}");
    assert_eq!(bridge.outbox("outbox").len(), 5, "the refused message was not sent");
    // Another number is its own count.
    let a = send(&bridge, "/v1/send", "+447400654321", "Your code is 500006").await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn a_run_through_a_number_range_hits_the_prefix_limit() {
    let config = format!(
        "{OUTBOX}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"outbox\"]\nlimits = {{ per_prefix = \"3/1h\" }}\n"
    );
    let bridge = Bridge::start(&config).await;
    for n in 0..3 {
        let a = send(&bridge, "/v1/send", &format!("+44740012345{n}"), "Your code is 600001").await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let a = send(&bridge, "/v1/send", "+447400123459", "Your code is 600001").await;
    a.assert_failed(429, "limit_exceeded");
    assert_eq!(a.json["limit"], "per_prefix");
}

#[tokio::test]
async fn denied_countries_and_premium_rate_numbers_are_refused_with_their_reasons() {
    let config = format!(
        r#"{OUTBOX}
[[route]]
path = "/deny"
providers = ["outbox"]
limits = {{ deny_countries = ["NG"] }}
[[route]]
path = "/allow"
providers = ["outbox"]
limits = {{ allow_countries = ["GB", "IE"] }}
"#
    );
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/deny", "+2348031234567", "Your code is 700001").await;
    a.assert_failed(403, "country_not_allowed");
    assert_eq!((a.json["country"].as_str(), a.json["field"].as_str()), (Some("NG"), Some("phone")));
    let a = send(&bridge, "/allow", "+12025550143", "Your code is 700002").await;
    a.assert_failed(403, "country_not_allowed");
    assert_eq!(a.json["country"], "US");

    let a = send(&bridge, "/deny", "+449098765432", "Your code is 700003").await;
    a.assert_failed(403, "number_type_not_allowed");
    assert_eq!(a.json["number_type"], "premium_rate");
    let a = send(&bridge, "/deny", "+34901123456", "Your code is 700004").await;
    assert_eq!(a.json["number_type"], "shared_cost", "{a:?}");
    // A number that fits no known range of its country.
    let a = send(&bridge, "/deny", "+447700900123", "Your code is 700005").await;
    assert_eq!(a.json["number_type"], "unknown", "{a:?}");
    assert!(bridge.outbox("outbox").is_empty(), "nothing refused was sent");

    // The controls: an allowed country and a mobile number go through.
    assert_eq!(send(&bridge, "/allow", "+353851234567", "Your code is 700006").await.status, 200);
    assert_eq!(send(&bridge, "/deny", "+447400123456", "Your code is 700007").await.status, 200);
}

#[tokio::test]
async fn a_repeated_request_gets_the_first_answer_and_no_second_sms() {
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(accepted("m-1").set_delay(Duration::from_millis(300))).mount(&mock).await;
    let config = format!("{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"p\"]\n", provider("p", &mock, ""));
    let bridge = Bridge::start(&config).await;

    // The caller timed out and sent it again, four times at once.
    let repeat = || send(&bridge, "/v1/send", "+447400123456", "Your code is 800001");
    let (a, b, c, d) = tokio::join!(repeat(), repeat(), repeat(), repeat());
    let answers = [a, b, c, d];
    let first_id = answers[0].json["id"].clone();
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json["id"], first_id, "every repeat gets the first answer");
    }
    assert_eq!(answers.iter().filter(|a| a.json["replayed"] == true).count(), 3);
    assert_eq!(mock.received_requests().await.unwrap().len(), 1, "one SMS");

    // Later, the same again: the stored answer, marked as such.
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 800001").await;
    assert_eq!((a.json["id"].clone(), a.json["replayed"].clone()), (first_id, true.into()));
    assert_eq!(a.headers["idempotent-replayed"], "true");

    // A new code is a new message.
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 800002").await;
    assert_eq!(a.json["replayed"], false);
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);

    // The same Idempotency-Key: the first answer for the same request; a
    // key reused for another one is refused, and nothing is sent.
    let keyed = |message: &'static str| {
        bridge
            .client
            .post(bridge.url("/v1/send"))
            .header("Idempotency-Key", "retry-7f3a")
            .form(&[("phone", "+447400123457"), ("message", message)])
            .send()
    };
    let first: serde_json::Value = keyed("Your code is 800003").await.unwrap().json().await.unwrap();
    let again: serde_json::Value = keyed("Your code is 800003").await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["replayed"], true);
    let reused = keyed("Your code is 800004").await.unwrap();
    assert_eq!(reused.status().as_u16(), 409);
    assert_eq!(mock.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_failed_send_is_not_remembered_so_a_retry_sends() {
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&mock).await;
    Mock::given(any()).respond_with(accepted("m-2")).mount(&mock).await;
    let config =
        format!("{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"p\"]\nretries = 0\n", provider("p", &mock, ""));
    let bridge = Bridge::start(&config).await;
    send(&bridge, "/v1/send", "+447400123456", "Your code is 900001").await.assert_failed(503, "unavailable");
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 900001").await;
    assert_eq!((a.status, a.json["replayed"].clone()), (200, false.into()), "{a:?}");
}

#[tokio::test]
async fn every_send_is_recorded_without_its_text_and_found_by_id_and_number() {
    let down = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(503)).mount(&down).await;
    let config = format!(
        "{OUTBOX}{}
[record]
path = \"{{dir}}/var/messages.db\"
[[route]]
path = \"/v1/send\"
providers = [\"outbox\"]
[[route]]
path = \"/down\"
providers = [\"down\"]
retries = 0
",
        provider("down", &down, "")
    );
    let bridge = Bridge::start(&config).await;
    let sent = send(&bridge, "/v1/send", "+447400123456", "Your code is 990001").await;
    assert_eq!(sent.status, 200, "{sent:?}");
    send(&bridge, "/down", "+447400123456", "Your code is 990002").await.assert_failed(503, "unavailable");

    let id = sent.json["id"].as_str().unwrap();
    let (status, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["to"], "+4474****3456");
    assert_eq!((m["route"].as_str(), m["provider"].as_str()), (Some("/v1/send"), Some("outbox")));
    assert_eq!(m["provider_id"], sent.json["provider_id"]);
    assert_eq!(m["attempts"][0]["outcome"], "accepted");
    assert_eq!(m["statuses"][0]["status"], "queued");

    let (status, list) = bridge.admin("/admin/messages?number=%2B447400123456").await;
    assert_eq!(status, 200, "{list}");
    let list = list["messages"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let failed = list.iter().find(|m| m["route"] == "/down").unwrap();
    assert_eq!(failed["statuses"][0]["status"], "failed");
    assert_eq!(failed["attempts"][0]["outcome"], "unavailable");
    assert_eq!(bridge.admin("/admin/messages?number=%2B447400999999").await.1["messages"], serde_json::json!([]));
    assert_eq!(bridge.admin("/admin/messages/nope").await.0, 404);
    assert_eq!(bridge.admin("/admin/messages?number=abc").await.0, 400);

    // Neither the number in the clear nor the text is ever written.
    for file in ["var/messages.db", "var/messages.db-wal"] {
        let bytes = std::fs::read(bridge.path(file)).unwrap_or_default();
        assert!(!bytes.windows(12).any(|w| w == b"447400123456"), "{file} holds the number");
        assert!(!bytes.windows(9).any(|w| w == b"Your code"), "{file} holds the text");
    }
}

/// A provider whose mock never answers, with `limit` sends in flight at most,
/// and a healthy one; routes `/stuck`, `/healthy` and `/both` (stuck first).
async fn bulkhead_config(limit: u32, deadline_ms: u64) -> (MockServer, MockServer, String) {
    let (stuck, healthy) = (MockServer::start().await, MockServer::start().await);
    Mock::given(any()).respond_with(accepted("late").set_delay(Duration::from_secs(600))).mount(&stuck).await;
    Mock::given(any()).respond_with(accepted("ok")).mount(&healthy).await;
    let config = format!(
        "{}{}{}{}{}",
        provider("stuck", &stuck, &format!("max_in_flight = {limit}\ntimeout_ms = 600000")),
        provider("healthy", &healthy, ""),
        quiet_route("/stuck", &["stuck"], &format!("deadline_ms = {deadline_ms}\n")),
        quiet_route("/healthy", &["healthy"], ""),
        quiet_route("/both", &["stuck", "healthy"], ""),
    );
    (stuck, healthy, config)
}

/// Starts `n` sends to `path` that never finish, and waits until `mock` has
/// all `n` requests.
async fn hang(bridge: &Bridge, path: &str, n: usize, mock: &MockServer) {
    let total = n + mock.received_requests().await.unwrap().len();
    for i in 0..n {
        let (client, url) = (bridge.client.clone(), bridge.url(path));
        let phone = format!("+4474001{i:05}");
        tokio::spawn(
            async move { client.post(url).form(&[("phone", phone.as_str()), ("message", "hi")]).send().await },
        );
    }
    let started = std::time::Instant::now();
    while mock.received_requests().await.unwrap().len() < total {
        assert!(started.elapsed() < Duration::from_secs(30), "the stuck provider got its requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_provider_stuck_at_its_limit_holds_only_its_own_slots() {
    // More than the whole process could once have in flight (128).
    let (stuck, healthy, config) = bulkhead_config(150, 600_000).await;
    let bridge = Bridge::start(&config).await;
    hang(&bridge, "/stuck", 150, &stuck).await;

    let bridge = std::sync::Arc::new(bridge);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let bridge = bridge.clone();
        sends.spawn(async move { send(&bridge, "/healthy", &format!("+4474002{i:05}"), "Your code is 300001").await });
    }
    for a in sends.join_all().await {
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.attempts(), pairs(&[("healthy", "accepted")]));
    }
    assert_eq!(healthy.received_requests().await.unwrap().len(), 40);

    // The stuck provider is full: the route with another provider fails over
    // at once, and the stuck one got no 151st request.
    let a = send(&bridge, "/both", "+447400300001", "Your code is 300002").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.attempts(), pairs(&[("stuck", "busy"), ("healthy", "accepted")]));
    assert_eq!(stuck.received_requests().await.unwrap().len(), 150);
}

#[tokio::test]
async fn a_full_provider_with_nothing_to_fail_over_to_answers_503_with_retry_after() {
    let (stuck, _healthy, config) = bulkhead_config(3, 300).await;
    let bridge = Bridge::start(&config).await;
    hang(&bridge, "/both", 3, &stuck).await;
    let a = send(&bridge, "/stuck", "+447400300002", "Your code is 300003").await;
    a.assert_failed(503, "provider_busy");
    assert_eq!(a.headers["retry-after"], "1", "{a:?}");
    assert_eq!(a.attempts(), pairs(&[("stuck", "busy")]));
    assert!(a.message().contains("max_in_flight"), "{a:?}");
    assert_eq!(stuck.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_send_waits_for_a_slot_within_the_deadline_and_the_limit_reloads() {
    let (stuck, healthy, config) = bulkhead_config(2, 300).await;
    let bridge = Bridge::start_from_file(&config, |_| {}).await;
    hang(&bridge, "/both", 2, &stuck).await;
    send(&bridge, "/stuck", "+447400300003", "Your code is 300004").await.assert_failed(503, "provider_busy");

    // Raised from 2 to 4: two more fit, the fifth does not.
    std::fs::write(bridge.path("smsbridge.toml"), config.replace("max_in_flight = 2", "max_in_flight = 4")).unwrap();
    bridge.gateway.reload_config().await;
    hang(&bridge, "/both", 2, &stuck).await;
    assert_eq!(stuck.received_requests().await.unwrap().len(), 4);
    let a = send(&bridge, "/both", "+447400300004", "Your code is 300005").await;
    assert_eq!(a.attempts(), pairs(&[("stuck", "busy"), ("healthy", "accepted")]));

    // Lowered to 1 with 4 in flight: still full; nothing new reaches it.
    std::fs::write(bridge.path("smsbridge.toml"), config.replace("max_in_flight = 2", "max_in_flight = 1")).unwrap();
    bridge.gateway.reload_config().await;
    let a = send(&bridge, "/both", "+447400300005", "Your code is 300006").await;
    assert_eq!(a.attempts(), pairs(&[("stuck", "busy"), ("healthy", "accepted")]));
    assert_eq!(stuck.received_requests().await.unwrap().len(), 4);
    assert_eq!(healthy.received_requests().await.unwrap().len(), 2);
}
