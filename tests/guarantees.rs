//! What smsbridge guarantees about each OTP, under faults: at most once per
//! provider (a provider that may have the message never gets it again), an
//! answer that never says "failed" while an SMS may be on its way, and an
//! `Idempotency-Key` that stands for one request only.

use smsbridge_tests::{Answer, Bridge, pairs, quiet_route};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TWILIO_CREATED: &str =
    r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447400123456","num_segments":"1"}"#;

/// A Twilio provider `name` at `mock` whose sends time out after 1 s.
fn twilio(name: &str, mock: &MockServer) -> String {
    format!(
        r#"
[[provider]]
name = "{name}"
adapter = "twilio"
timeout_ms = 1000
allow_hosts = ["{mock}"]
[provider.config]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "f00dfeedf00dfeedf00dfeedf00dfeed"
from = "+15005550006"
base_url = "{mock}"
"#,
        mock = mock.uri()
    )
}

/// A mock Twilio that takes the message and answers after `delay`.
async fn slow_twilio(delay: Duration) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(201).set_body_raw(TWILIO_CREATED, "application/json").set_delay(delay))
        .mount(&mock)
        .await;
    mock
}

async fn send(bridge: &Bridge, path: &str, message: &str) -> Answer {
    bridge.post_form(path, &[("phone", "+447400123456"), ("message", message)]).await
}

const RECORD: &str = "[record]\npath = \"{dir}/var/messages.db\"\n";

#[tokio::test]
async fn a_provider_that_answers_after_its_timeout_gets_the_message_once() {
    let slow = slow_twilio(Duration::from_millis(1500)).await;
    // Retries on (2): a timed-out request may have reached the provider all
    // the same, so it is not sent again.
    let route = quiet_route("/v1/send", &["tw"], "retries = 2\n");
    let config = format!("{RECORD}{}{}", twilio("tw", &slow), route.replace("retries = 0\n", ""));
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/v1/send", "Your code is 610001").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(slow.received_requests().await.unwrap().len(), 1, "the provider got the message once");
    // The caller is not told "failed" while an SMS may be on its way.
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["status"], "pending", "{a:?}");
    assert_eq!(a.json["unconfirmed"], true, "{a:?}");
    assert_eq!(a.attempts(), pairs(&[("tw", "maybe_sent")]));
    let id = a.json["id"].as_str().unwrap();
    let (_, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
    assert_eq!(m["statuses"][0]["status"], "unknown", "{m}");
    assert_eq!(m["attempts"][0]["outcome"], "maybe_sent", "{m}");
}

#[tokio::test]
async fn a_route_can_say_failed_or_fail_over_when_the_outcome_is_unknown() {
    let slow = slow_twilio(Duration::from_millis(1500)).await;
    let fast = slow_twilio(Duration::ZERO).await;
    let config = format!(
        "{}{}{}{}",
        twilio("slow", &slow),
        twilio("fast", &fast),
        quiet_route("/strict", &["slow", "fast"], "on_unknown = \"failed\"\n"),
        quiet_route("/twice", &["slow", "fast"], "failover_on_unknown = true\n"),
    );
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/strict", "Your code is 620001").await;
    a.assert_failed(503, "unconfirmed");
    assert_eq!(a.attempts(), pairs(&[("slow", "maybe_sent")]));
    assert!(fast.received_requests().await.unwrap().is_empty(), "no failover unless the route opts in");

    let a = send(&bridge, "/twice", "Your code is 620002").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["provider"], "fast");
    assert_eq!(a.attempts(), pairs(&[("slow", "maybe_sent"), ("fast", "accepted")]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(slow.received_requests().await.unwrap().len(), 2, "once per send, never retried");
    assert_eq!(fast.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let config = "[[provider]]\nname = \"outbox\"\nadapter = \"outbox\"\ndata_dir = \"{dir}/outbox\"\n[[route]]\npath = \"/v1/send\"\nproviders = [\"outbox\"]\nlimits = { per_number = \"off\", per_prefix = \"off\" }\n";
    let bridge = Bridge::start(config).await;
    let post = |phone: &'static str, message: &'static str| {
        let req = bridge.client.post(bridge.url("/v1/send")).header("idempotency-key", "login-7f3a");
        async move {
            let resp = req.form(&[("phone", phone), ("message", message)]).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, first) = post("+447400123456", "Your code is 630001").await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = post("+447400123456", "Your code is 630001").await;
    assert_eq!((status, &again["id"], &again["replayed"]), (200, &first["id"], &serde_json::json!(true)));
    for (phone, message) in [("+447400654321", "Your code is 630001"), ("+447400123456", "Your code is 630002")] {
        let (status, other) = post(phone, message).await;
        assert_eq!(status, 409, "{other}");
        assert_eq!(other["error"], "idempotency_key_reused", "{other}");
    }
    assert_eq!(bridge.outbox("outbox").len(), 1, "nothing else was sent");
}

/// Text that breaks naive encodings: separators, escapes and non-ASCII.
const AWKWARD: &str = "Code 123456 & #2 + a=b 100% ü — 验证码";

#[tokio::test]
async fn a_generic_http_provider_gets_the_text_byte_for_byte_in_every_encoding() {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"id":"g-1"}"#, "application/json"))
        .mount(&mock)
        .await;
    let provider = |name: &str, settings: &str| {
        format!(
            "[[provider]]\nname = \"{name}\"\nadapter = \"generic-http\"\nallow_hosts = [\"{m}\"]\n[provider.config]\nid_pointer = \"/id\"\n{settings}\n",
            m = mock.uri()
        )
    };
    let m = mock.uri();
    let config = [
        provider("in_url", &format!("method = \"GET\"\nurl = \"{m}/url?to={{to}}&text={{body}}\"")),
        provider("query", &format!("method = \"GET\"\nurl = \"{m}/query\"\nparams = \"to={{to}}\\ntext={{body}}\"")),
        provider("form", &format!("url = \"{m}/form\"\nparams = \"to={{to}}\\ntext={{body}}\"")),
        provider("json", &format!("url = \"{m}/json\"\nencoding = \"json\"\nparams = \"to={{to}}\\ntext={{body}}\"")),
        ["in_url", "query", "form", "json"].map(|p| quiet_route(&format!("/{p}"), &[p], "")).concat(),
    ]
    .concat();
    let bridge = Bridge::start(&config).await;
    for route in ["/in_url", "/query", "/form", "/json"] {
        let a = send(&bridge, route, AWKWARD).await;
        assert_eq!(a.status, 200, "{route}: {a:?}");
    }
    let requests = mock.received_requests().await.unwrap();
    let fields = |path: &str| -> Vec<(String, String)> {
        let r = requests.iter().find(|r| r.url.path() == path).unwrap_or_else(|| panic!("no request to {path}"));
        match path {
            "/form" => url::form_urlencoded::parse(&r.body).into_owned().collect(),
            "/json" => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
            }
            _ => r.url.query_pairs().into_owned().collect(),
        }
    };
    for path in ["/url", "/query", "/form", "/json"] {
        let got = fields(path);
        let text = got.iter().find(|(k, _)| k == "text").map(|(_, v)| v.as_str());
        assert_eq!(text, Some(AWKWARD), "{path}: {got:?}");
        let to = got.iter().find(|(k, _)| k == "to").map(|(_, v)| v.as_str());
        assert_eq!(to, Some("+447400123456"), "{path}: {got:?}");
        assert_eq!(got.len(), 2, "{path}: no parameter injected: {got:?}");
    }
}

#[tokio::test]
async fn a_reload_that_queues_a_route_without_a_record_is_refused() {
    let outbox = "[[provider]]\nname = \"outbox\"\nadapter = \"outbox\"\ndata_dir = \"{dir}/outbox\"\n";
    let bridge =
        Bridge::start_from_file(&format!("{outbox}{}", quiet_route("/v1/send", &["outbox"], "")), |_| {}).await;
    // The record is opened at start: a reload cannot add the queue.
    let queued = format!(
        "{RECORD}{outbox}{}{}",
        quiet_route("/v1/send", &["outbox"], ""),
        quiet_route("/later", &["outbox"], "queued = true\n")
    )
    .replace("{dir}", bridge.dir.path().to_str().unwrap());
    std::fs::write(bridge.path("smsbridge.toml"), queued).unwrap();
    bridge.gateway.reload_config().await;
    assert_eq!(send(&bridge, "/later", "Your code is 640001").await.status, 404, "the old config serves");
    assert_eq!(send(&bridge, "/v1/send", "Your code is 640002").await.status, 200);
}

/// A generic-http provider `name` at `mock`, answering with the message id.
fn generic(name: &str, mock: &MockServer) -> String {
    format!(
        "[[provider]]\nname = \"{name}\"\nadapter = \"generic-http\"\nallow_hosts = [\"{m}\"]\n[provider.config]\nurl = \"{m}/send\"\nparams = \"to={{to}}&text={{body}}&ref={{id}}\"\n",
        m = mock.uri()
    )
}

/// Holds the write lock of the SQLite database at `path` for `hold`, as a
/// backup or another writer would; returns once the lock is taken.
fn lock_database(path: &std::path::Path, hold: Duration) -> std::process::Child {
    let script = format!(
        "import sqlite3, sys, time\nc = sqlite3.connect({path:?}, isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep({secs})\nc.execute('COMMIT')\n",
        path = path.to_str().unwrap(),
        secs = hold.as_secs_f64()
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[tokio::test]
async fn a_database_that_cannot_be_written_never_makes_a_message_go_twice() {
    let mock = MockServer::start().await;
    // Slow enough for the lock to be taken while the requests are out.
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"id":"g-1"}"#, "application/json")
                .set_delay(Duration::from_millis(500)),
        )
        .mount(&mock)
        .await;
    let config = format!("{RECORD}{}{}", generic("p", &mock), quiet_route("/q", &["p"], "queued = true\n"));
    let bridge = Bridge::start(&config).await;
    for i in 0..5 {
        let a = send(&bridge, "/q", &format!("Your code is 65000{i}")).await;
        assert_eq!(a.status, 202, "{a:?}");
    }
    // The deliveries are under way; their answers come while the database
    // is locked, so the queue cannot drop the delivered messages yet.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut lock = lock_database(&bridge.path("var/messages.db"), Duration::from_secs(6));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(mock.received_requests().await.unwrap().len(), 5, "each message once while the database is locked");
    lock.wait().unwrap();
    // Once it can be written again, the queue settles and sends nothing more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let refs: Vec<String> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).find(|(k, _)| k == "ref").unwrap().1.into_owned())
        .collect();
    let unique: std::collections::HashSet<&String> = refs.iter().collect();
    assert_eq!((refs.len(), unique.len()), (5, 5), "no message twice: {refs:?}");
}

#[tokio::test]
async fn a_queued_message_past_its_validity_is_never_delivered() {
    let mock = MockServer::start().await;
    // Down for the first try; up by the retry, which comes after the
    // message's validity (1 s) has passed.
    Mock::given(any()).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&mock).await;
    Mock::given(any()).respond_with(ResponseTemplate::new(200)).mount(&mock).await;
    let config =
        format!("{RECORD}{}{}", generic("p", &mock), quiet_route("/q", &["p"], "queued = true\nvalidity_s = 1\n"));
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/q", "Your code is 660001").await;
    assert_eq!(a.status, 202, "{a:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(mock.received_requests().await.unwrap().len(), 1, "tried once, in time; never after");
    let id = a.json["id"].as_str().unwrap();
    let (_, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
    assert_eq!(m["statuses"][0]["status"], "failed", "{m}");
}

#[tokio::test]
async fn a_queued_message_whose_send_cannot_be_marked_waits_and_is_delivered_once() {
    let mock = MockServer::start().await;
    // Down for the first try, so the message waits 2 s for its second,
    // which comes while the database is locked: its mark cannot be written.
    Mock::given(any()).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&mock).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"id":"g-1"}"#, "application/json"))
        .mount(&mock)
        .await;
    let config = format!("{RECORD}{}{}", generic("p", &mock), quiet_route("/q", &["p"], "queued = true\n"));
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge, "/q", "Your code is 670001").await;
    assert_eq!(a.status, 202, "{a:?}");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while mock.received_requests().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < until, "the first try was made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lock = lock_database(&bridge.path("var/messages.db"), Duration::from_secs(5));
    tokio::task::spawn_blocking(move || lock.wait().unwrap()).await.unwrap();
    // The queue could not record the send, so it held the message rather
    // than count it failed: it goes once the database can be written.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while mock.received_requests().await.unwrap().len() < 2 {
        assert!(std::time::Instant::now() < until, "the message was delivered after the database came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mock.received_requests().await.unwrap().len(), 2, "and only once");
    let id = a.json["id"].as_str().unwrap();
    let (_, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
    assert_eq!(m["provider"], "p", "{m}");
}
