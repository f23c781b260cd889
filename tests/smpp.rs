//! SMPP end to end: smsbridge's binds against an SMSC it did not write (npm's
//! `smpp` package, scripted by `tests/smsc/smsc.js`), over loopback.

use serde_json::{Value, json};
use smsbridge_tests::{Answer, Bridge, quiet_route};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted SMSC process and every event it printed.
struct Smsc {
    child: Child,
    stdin: ChildStdin,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Smsc {
    fn start(script: Value) -> Smsc {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/smsc");
        let mut child = Command::new("node")
            .arg(format!("{dir}/smsc.js"))
            .arg(script.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs (Node.js 20+; scripts/test installs tests/smsc)");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the SMSC starts").unwrap();
        let port = first.strip_prefix("listening ").expect("the SMSC says where it listens").parse().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(serde_json::from_str(&line).expect("each SMSC line is JSON"));
            }
        });
        Smsc { child, stdin, port, events }
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.events.lock().unwrap().iter().filter(|e| e["event"] == kind).cloned().collect()
    }

    /// Waits until `n` events of `kind` came, or fails saying how many did.
    fn wait_for(&self, kind: &str, n: usize, within: Duration) -> Vec<Value> {
        let until = Instant::now() + within;
        loop {
            let seen = self.of(kind);
            if seen.len() >= n {
                return seen;
            }
            assert!(Instant::now() < until, "{n} `{kind}` events expected, {} came", seen.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cuts every connection the SMSC has.
    fn drop_connections(&mut self) {
        writeln!(self.stdin, "drop").unwrap();
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SMPP provider `p` bound to `smsc`, with `extra` lines in `[provider.smpp]`.
fn provider(smsc: &Smsc, extra: &str) -> String {
    format!(
        r#"
[[provider]]
name = "p"
adapter = "smpp"
timeout_ms = 3000
sender = "Bank"
[provider.smpp]
url = "smpp://127.0.0.1:{port}"
system_id = "smsbridge"
password = "secret12"
{extra}
"#,
        port = smsc.port
    )
}

const RECORD: &str = "[record]\npath = \"{dir}/var/messages.db\"\n";

async fn send(bridge: &Bridge, path: &str, to: &str, message: &str) -> Answer {
    bridge.post_form(path, &[("phone", to), ("message", message)]).await
}

/// Waits for the bind the bridge makes at start.
async fn bound(smsc: &Smsc) {
    let until = Instant::now() + Duration::from_secs(10);
    while smsc.of("bind").iter().all(|b| b["status"] != 0) {
        assert!(Instant::now() < until, "smsbridge binds to the SMSC");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn credentials() -> Value {
    json!({"system_id": "smsbridge", "password": "secret12"})
}

fn script(extra: Value) -> Value {
    let mut s = credentials();
    s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otp_goes_as_one_submit_sm_with_the_addresses_the_adapter_chose() {
    let smsc = Smsc::start(credentials());
    let bridge = Bridge::start(&format!("{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""))).await;
    bound(&smsc).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 123456").await;
    assert_eq!(a.status, 200, "{a:?}");
    let submits = smsc.wait_for("submit", 1, Duration::from_secs(5));
    let s = &submits[0];
    assert_eq!((s["destination"].as_str(), s["dest_ton"].as_u64()), (Some("447400123456"), Some(1)), "{s}");
    // An alphanumeric sender goes as TON 5.
    assert_eq!((s["source"].as_str(), s["source_ton"].as_u64()), (Some("Bank"), Some(5)), "{s}");
    assert_eq!((s["text"].as_str(), s["data_coding"].as_u64()), (Some("Your code is 123456"), Some(0)), "{s}");
    assert_eq!(s["registered_delivery"], 1, "a receipt is asked for: {s}");
    assert_eq!(smsc.of("bind").len(), 1, "one bind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_otps_through_one_bind_each_arrive_once_and_the_window_holds() {
    let smsc = Smsc::start(script(json!({"delay_ms": 20})));
    let bridge = Bridge::start(&format!(
        "{}{}",
        provider(&smsc, "window = 10").replace("timeout_ms = 3000", "timeout_ms = 10000\nmax_in_flight = 64"),
        quiet_route("/v1/send", &["p"], "")
    ))
    .await;
    bound(&smsc).await;
    let bridge = Arc::new(bridge);
    let sends: Vec<_> = (0..500)
        .map(|i| {
            let bridge = bridge.clone();
            tokio::spawn(
                async move { send(&bridge, "/v1/send", "+447400123456", &format!("Your code is {i:06}")).await },
            )
        })
        .collect();
    for s in sends {
        let a = s.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
    }
    let submits = smsc.wait_for("submit", 500, Duration::from_secs(5));
    let mut texts: Vec<&str> = submits.iter().map(|s| s["text"].as_str().unwrap()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 500, "each once");
    let most = submits.iter().map(|s| s["outstanding"].as_u64().unwrap()).max().unwrap();
    assert!(most <= 10, "at most 10 submits outstanding, saw {most}");
    assert!(most >= 5, "the window is used, not one at a time: {most}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_bind_pauses_and_resends_in_order_nothing_lost_or_doubled() {
    // The 3rd submit is answered 0x58: it and everything after wait out the pause.
    let smsc = Smsc::start(script(json!({"throttle": [3]})));
    let bridge = Bridge::start(&format!(
        "{}{}",
        provider(&smsc, "throttle_pause_ms = 300"),
        quiet_route("/v1/send", &["p"], "")
    ))
    .await;
    bound(&smsc).await;
    for i in 1..=5 {
        let started = Instant::now();
        let a = send(&bridge, "/v1/send", "+447400123456", &format!("Your code is {i}")).await;
        assert_eq!(a.status, 200, "{a:?}");
        if i == 3 {
            assert!(started.elapsed() >= Duration::from_millis(300), "the throttled message waited the pause");
        }
    }
    let texts: Vec<String> = smsc
        .wait_for("message", 5, Duration::from_secs(5))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=5).map(|i| format!("Your code is {i}")).collect();
    assert_eq!(texts, expected, "each taken once, in order");
    assert_eq!(smsc.of("submit").len(), 6, "the throttled one was sent twice, taken once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_submit_sm_resp_leaves_the_message_in_doubt_and_it_is_not_sent_again() {
    let smsc = Smsc::start(script(json!({"silent_from": 1})));
    let config = format!(
        "{RECORD}{}{}",
        provider(&smsc, "").replace("timeout_ms = 3000", "timeout_ms = 1000"),
        quiet_route("/v1/send", &["p"], "on_unknown = \"failed\"\n").replace("retries = 0", "retries = 2")
    );
    let bridge = Bridge::start(&config).await;
    bound(&smsc).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 424242").await;
    assert_eq!((a.status, a.json["error"].as_str()), (503, Some("unconfirmed")), "{a:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smsc.of("submit").len(), 1, "sent once, never retried to the SMSC that may have it");
    assert_eq!(a.json["attempts"][0]["outcome"], "maybe_sent", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_gsm_and_ucs2_texts_arrive_as_parts_that_join_to_the_exact_text() {
    let smsc = Smsc::start(credentials());
    let bridge = Bridge::start(&format!("{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""))).await;
    bound(&smsc).await;
    let gsm: String = "Your code is 123456. Keep it {secret} and ~safe~ €. ".chars().cycle().take(300).collect();
    let cyrillic: String = "Ваш код 123456, никому его не сообщайте. ".chars().cycle().take(120).collect();
    let arabic: String = "رمز التحقق الخاص بك هو 123456 ".chars().cycle().take(120).collect();
    for text in [&gsm, &cyrillic, &arabic] {
        let a = send(&bridge, "/v1/send", "+447400123456", text).await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let messages = smsc.wait_for("message", 3, Duration::from_secs(5));
    assert_eq!(messages[0]["text"].as_str(), Some(gsm.as_str()));
    assert_eq!(messages[0]["parts"], 3, "300 GSM septets with extension characters: 3 parts");
    assert_eq!(messages[1]["text"].as_str(), Some(cyrillic.as_str()));
    assert_eq!(messages[1]["parts"], 2, "120 UCS-2 characters: 2 parts of 67");
    assert_eq!(messages[2]["text"].as_str(), Some(arabic.as_str()));
    let codings: Vec<u64> = smsc.of("submit").iter().map(|s| s["data_coding"].as_u64().unwrap()).collect();
    assert_eq!(codings, vec![0, 0, 0, 8, 8, 8, 8]);
}

/// Waits for the message `id`'s latest status to be `status`.
async fn wait_status(bridge: &Bridge, id: &str, status: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
        let last = m["statuses"].as_array().and_then(|s| s.last()).map(|s| s["status"].clone());
        if last.as_ref().and_then(Value::as_str) == Some(status) {
            return m;
        }
        assert!(Instant::now() < until, "message {id} never became {status}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_with_hex_ids_update_the_right_message_and_are_acknowledged() {
    // submit_sm_resp in decimal with leading zeros; receipts in hex, text only.
    let smsc = Smsc::start(script(json!({"zeros": 10, "receipts": {"form": "hex", "text": true, "tlv": false}})));
    let config = format!(
        "{RECORD}{}{}",
        provider(&smsc, "submit_ids = \"decimal\"\nreceipt_ids = \"hex\""),
        quiet_route("/v1/send", &["p"], "")
    );
    let bridge = Bridge::start(&config).await;
    bound(&smsc).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let a = send(&bridge, "/v1/send", "+447400123456", &format!("Your code is 5000{i:02}")).await;
        assert_eq!(a.status, 200, "{a:?}");
        ids.push(a.json["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_status(&bridge, id, "delivered").await;
    }
    smsc.wait_for("receipt_acked", 12, Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_is_delivered_once_each_of_its_parts_is() {
    let smsc = Smsc::start(script(json!({"receipts": {"form": "decimal", "tlv": true, "text": false}})));
    let config = format!("{RECORD}{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""));
    let bridge = Bridge::start(&config).await;
    bound(&smsc).await;
    let text: String = "Your code is 123456. ".chars().cycle().take(400).collect();
    let a = send(&bridge, "/v1/send", "+447400123456", &text).await;
    assert_eq!(a.status, 200, "{a:?}");
    let m = wait_status(&bridge, a.json["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(m["segments"], 3, "{m}");
    assert_eq!(smsc.wait_for("receipt_acked", 3, Duration::from_secs(5)).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_bound_again_and_sends_go_on() {
    let mut smsc = Smsc::start(credentials());
    let bridge = Bridge::start(&format!("{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""))).await;
    bound(&smsc).await;
    assert_eq!(send(&bridge, "/v1/send", "+447400123456", "Your code is 1").await.status, 200);
    smsc.drop_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next send waits for the bind to come back, within its deadline.
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 2").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(smsc.of("bind").len(), 2, "bound again once");
    assert_eq!(smsc.wait_for("message", 2, Duration::from_secs(2)).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_refused_for_its_password_is_unauthorized_and_not_a_reconnect_storm() {
    let smsc = Smsc::start(json!({"system_id": "smsbridge", "password": "other123"}));
    let bridge = Bridge::start(&format!("{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""))).await;
    smsc.wait_for("bind", 1, Duration::from_secs(5));
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 777777").await;
    assert_eq!(a.status, 502, "{a:?}");
    let said = a.json.to_string();
    assert!(said.contains("password") && !said.contains("secret12"), "names the cause, not the secret: {said}");
    // Backoff from 1 s, doubling: a handful of binds in 3 s, not hundreds.
    let binds = smsc.of("bind").len();
    assert!((2..=4).contains(&binds), "{binds} bind attempts in about 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_bind_trusts_the_smsc_through_its_ca_file_and_refuses_without_it() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("smsc.pem"), certs.path().join("smsc.key"));
    smsbridge::tls::generate_self_signed(&["localhost".into()], 30, &cert, &key).unwrap();
    let smsc = Smsc::start(script(json!({"tls": {"key": key, "cert": cert}})));
    let tls = |ca: &str| {
        provider(&smsc, ca)
            .replace(&format!("smpp://127.0.0.1:{}", smsc.port), &format!("smpps://localhost:{}", smsc.port))
    };
    let trusted = format!("{}{}", tls(&format!("ca_file = {:?}", cert)), quiet_route("/v1/send", &["p"], ""));
    let bridge = Bridge::start(&trusted).await;
    bound(&smsc).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 808080").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(smsc.wait_for("message", 1, Duration::from_secs(5))[0]["text"], "Your code is 808080");
    drop(bridge);

    // The system's roots do not hold the SMSC's certificate: no bind, no send.
    let binds = smsc.of("bind").len();
    let untrusted = format!("{}{}", tls(""), quiet_route("/v1/send", &["p"], ""));
    let bridge = Bridge::start(&untrusted).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 818181").await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.text.contains("certificate") || a.text.contains("TLS"), "{a:?}");
    assert_eq!(smsc.of("bind").len(), binds, "no bind without a trusted certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_wait_out_a_dead_smsc_and_are_delivered_once_when_it_returns() {
    let smsc = Smsc::start(credentials());
    let port = smsc.port;
    // The circuit would open after 5 failures and skip the SMSC for 30 s.
    let provider =
        provider(&smsc, "reconnect_max_s = 2").replace("timeout_ms = 3000", "timeout_ms = 3000\ncircuit_failures = 50");
    let config = format!("{RECORD}{provider}{}", quiet_route("/q", &["p"], "queued = true\n"));
    let bridge = Bridge::start(&config).await;
    bound(&smsc).await;
    drop(smsc);
    for i in 0..5 {
        let a = send(&bridge, "/q", "+447400123456", &format!("Your code is 90000{i}")).await;
        assert_eq!(a.status, 202, "{a:?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let smsc = Smsc::start(script(json!({"port": port})));
    let messages = smsc.wait_for("message", 5, Duration::from_secs(30));
    let mut texts: Vec<&str> = messages.iter().map(|m| m["text"].as_str().unwrap()).collect();
    texts.sort();
    assert_eq!(texts, (0..5).map(|i| format!("Your code is 90000{i}")).collect::<Vec<_>>(), "each once");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smsc.of("submit").len(), 5, "nothing sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_reloaded_adapter_keeps_the_bind_and_loses_no_send() {
    let smsc = Smsc::start(script(json!({"delay_ms": 5})));
    let config = format!(
        "[adapters]\ndir = \"{{dir}}/adapters\"\n{}{}",
        provider(&smsc, ""),
        quiet_route("/v1/send", &["p"], "")
    );
    let bridge =
        Arc::new(Bridge::start_with(&config, |dir| std::fs::create_dir_all(dir.join("adapters")).unwrap()).await);
    bound(&smsc).await;
    let load = {
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..60 {
                statuses.push(send(&bridge, "/v1/send", "+447400123456", &format!("Your code is {i:06}")).await.status);
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let file = bridge.path("adapters/smpp.wasm");
    std::fs::copy(smsbridge_tests::artifacts::SMPP_WASM, &file).unwrap();
    bridge.gateway.reload_adapter(&file).await;
    let statuses = load.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(smsc.wait_for("message", 60, Duration::from_secs(5)).len(), 60);
    assert_eq!(smsc.of("bind").len(), 1, "the reload did not bind again");
    let source = bridge.gateway.routing().adapter_of("p").unwrap().source.clone();
    assert!(source.contains("smpp.wasm"), "the dropped-in file serves: {source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bind_is_in_the_metrics() {
    smsbridge::telemetry::metrics();
    let smsc = Smsc::start(credentials());
    // Its own name: metrics are the process's, and other tests bind as `p`.
    let named = provider(&smsc, "").replace("name = \"p\"", "name = \"metered\"");
    let bridge = Bridge::start(&format!("[admin]\n{named}{}", quiet_route("/v1/send", &["metered"], ""))).await;
    bound(&smsc).await;
    assert_eq!(send(&bridge, "/v1/send", "+447400123456", "Your code is 1").await.status, 200);
    let metrics = bridge.client.get(format!("http://{}/metrics", bridge.admin_addr)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for line in [
        "smsbridge_smpp_bound{provider=\"metered\",bind=\"0\"} 1",
        "smsbridge_smpp_submits_total{provider=\"metered\",command_status=\"0x00\"} 1",
        "smsbridge_smpp_submit_seconds_count{provider=\"metered\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let binds = bridge.gateway.smpp_sessions()[0].binds();
    assert!(binds[0].up && binds[0].last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_message_keeps_its_place_ahead_of_those_waiting_behind_it() {
    // Window 1: every message waits for the one before it. The 2nd submit
    // is throttled; it must go again before the 3rd, 4th and 5th go at all.
    let smsc = Smsc::start(script(json!({"throttle": [2], "delay_ms": 50})));
    let bridge = Arc::new(
        Bridge::start(&format!(
            "{}{}",
            provider(&smsc, "window = 1\nthrottle_pause_ms = 200"),
            quiet_route("/v1/send", &["p"], "")
        ))
        .await,
    );
    bound(&smsc).await;
    let sends: Vec<_> = (1..=5)
        .map(|i| {
            let bridge = bridge.clone();
            tokio::spawn(async move { send(&bridge, "/v1/send", "+447400123456", &format!("Your code is {i}")).await })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap().status, 200);
    }
    let mut first_seen: Vec<String> = Vec::new();
    for s in smsc.of("submit") {
        let text = s["text"].as_str().unwrap().to_string();
        if !first_seen.contains(&text) {
            first_seen.push(text);
        }
    }
    let taken: Vec<String> = smsc
        .wait_for("message", 5, Duration::from_secs(5))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(taken, first_seen, "taken in the order first sent: the throttled one was not overtaken");
    assert_eq!(smsc.of("submit").len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_no_coding_can_carry_is_refused_naming_why_and_nothing_is_sent() {
    let smsc = Smsc::start(credentials());
    let bridge = Bridge::start(&format!("{}{}", provider(&smsc, ""), quiet_route("/v1/send", &["p"], ""))).await;
    bound(&smsc).await;
    // Outside the Basic Multilingual Plane: UCS-2 has no code for it.
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 123456 🔐").await;
    assert_eq!(a.status, 502, "{a:?}");
    assert!(a.text.contains("UCS-2"), "{a:?}");
    let b = send(&bridge, "/v1/send", "+447400123456", "Your code is 123456").await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(smsc.wait_for("submit", 1, Duration::from_secs(2)).len(), 1, "only the second went");
    assert_eq!(smsc.of("bind").len(), 1, "no reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_bind_settings_bind_anew_and_the_old_bind_unbinds() {
    let smsc = Smsc::start(credentials());
    let config = |window: u32| {
        format!("{}{}", provider(&smsc, &format!("window = {window}")), quiet_route("/v1/send", &["p"], ""))
    };
    let bridge = Bridge::start_from_file(&config(10), |_| {}).await;
    bound(&smsc).await;
    assert_eq!(send(&bridge, "/v1/send", "+447400123456", "Your code is 1").await.status, 200);
    // The same settings: no new bind.
    bridge.gateway.reload_config().await;
    std::fs::write(bridge.path("smsbridge.toml"), config(5)).unwrap();
    bridge.gateway.reload_config().await;
    smsc.wait_for("unbind", 1, Duration::from_secs(5));
    assert_eq!(smsc.of("bind").len(), 2, "one new bind for the new settings");
    assert_eq!(send(&bridge, "/v1/send", "+447400123456", "Your code is 2").await.status, 200);
    assert_eq!(bridge.gateway.smpp_sessions()[0].settings().window, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_receipt_from_the_bind_falls_back_to_an_http_provider_at_once() {
    let smsc = Smsc::start(script(json!({"receipts": {"form": "decimal", "tlv": true, "stat": "UNDELIV"}})));
    let http = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(r#"{"id":"h1"}"#, "application/json"))
        .mount(&http)
        .await;
    let b = format!(
        "[[provider]]\nname = \"b\"\nadapter = \"generic-http\"\nallow_hosts = [\"{uri}\"]\n[provider.config]\n\
         url = \"{uri}/send\"\nparams = \"to={{to}}&text={{body}}\"\nid_pointer = \"/id\"\n",
        uri = http.uri()
    );
    let route = quiet_route("/v1/send", &["p", "b"], "fallback_after_s = 60");
    let bridge = Bridge::start(&format!("{RECORD}{}{b}{route}", provider(&smsc, ""))).await;
    bound(&smsc).await;
    let a = send(&bridge, "/v1/send", "+447400123456", "Your code is 975310").await;
    assert_eq!((a.status, a.json["provider"].as_str()), (200, Some("p")), "{a:?}");
    smsc.wait_for("receipt_acked", 1, Duration::from_secs(5));
    let until = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let got = http.received_requests().await.unwrap_or_default();
        if let Some(r) = got.first() {
            break String::from_utf8_lossy(&r.body).to_string();
        }
        assert!(Instant::now() < until, "no fallback after the bind's undelivered receipt");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(body, "to=%2B447400123456&text=Your+code+is+975310");
    let m = wait_status(&bridge, a.json["id"].as_str().unwrap(), "queued").await;
    let why: Vec<&str> = m["handoffs"].as_array().unwrap().iter().map(|h| h["why"].as_str().unwrap()).collect();
    assert_eq!(why, ["first", "p reported it undelivered"]);
    assert_eq!(smsc.of("submit").len(), 1, "the bind had it once");
}
