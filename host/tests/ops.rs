//! Operating smsbridge, through the real binary: Prometheus metrics after a
//! known sequence of sends, JSON logs, graceful shutdown, the systemd unit.

mod common;

use common::{holding_provider, holding_provider_at, request, serve};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn sigterm(child: &Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
}

/// `name{k="v",…} value` lines of the Prometheus text format.
fn parse_prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"))),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name: {line}");
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in: {line}"));
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        samples.push((name.to_string(), map, value));
    }
    samples
}

fn sample(samples: &[(String, BTreeMap<String, String>, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

#[test]
fn metrics_count_a_known_sequence_and_json_logs_hide_numbers_and_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("adapters")).unwrap();
    std::fs::copy(smsbridge::artifacts::HOSTILE_WASM, dir.path().join("adapters/hostile.wasm")).unwrap();
    let config = r#"
[adapters]
dir = "{dir}/adapters"
cache_dir = "{dir}/cache"
[admin]
[[provider]]
name = "box"
adapter = "outbox"
data_dir = "{dir}/box"
[[provider]]
name = "broken"
adapter = "hostile"
config = { mode = "trap" }
[[route]]
path = "/ok"
providers = ["box"]
[[route]]
path = "/bad"
providers = ["broken"]
[[route]]
path = "/auth"
auth = { bearer = { token = "tok-metrics-1" } }
providers = ["box"]
"#;
    let (child, addr, admin, logs) = serve(dir.path(), config);
    let form = "phone=%2B447400123456&message=Your+code+is+482915";
    // Three codes: an identical request would be answered once.
    for code in ["482915", "482916", "482917"] {
        let form = format!("phone=%2B447400123456&message=Your+code+is+{code}");
        assert_eq!(request(&addr, "POST", "/ok", "", &form).0, 200);
    }
    for _ in 0..2 {
        assert_eq!(request(&addr, "POST", "/bad", "", form).0, 503);
    }
    assert_eq!(request(&addr, "POST", "/ok", "", "phone=12&message=x").0, 400);
    for _ in 0..2 {
        assert_eq!(request(&addr, "POST", "/auth", "Authorization: Bearer nope\r\n", form).0, 401);
    }

    let (status, text) = request(&admin, "GET", "/metrics", "", "");
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    let sends = "smsbridge_sends_total";
    assert_eq!(sample(&samples, sends, &[("route", "/ok"), ("provider", "box"), ("outcome", "accepted")]), 3.0);
    assert_eq!(sample(&samples, sends, &[("route", "/bad"), ("provider", "broken"), ("outcome", "fault")]), 2.0);
    let refusals = "smsbridge_refusals_total";
    assert_eq!(sample(&samples, refusals, &[("route", "/ok"), ("reason", "invalid_phone")]), 1.0);
    assert_eq!(sample(&samples, refusals, &[("route", "/auth"), ("reason", "unauthorized")]), 2.0);
    assert_eq!(sample(&samples, "smsbridge_send_duration_seconds_count", &[("route", "/ok")]), 3.0);
    assert_eq!(
        sample(&samples, "smsbridge_provider_attempts_total", &[("provider", "broken"), ("outcome", "fault")]),
        2.0
    );
    assert_eq!(sample(&samples, "smsbridge_in_flight_requests", &[]), 0.0);
    let total: f64 = samples.iter().filter(|(n, _, _)| n == sends).map(|(_, _, v)| v).sum();
    assert_eq!(total, 5.0, "every send counted once");
    // The same sequence in the process's own windows, which need no Prometheus.
    let (status, text) = request(&admin, "GET", "/admin/stats", "", "");
    assert_eq!(status, 200, "{text}");
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    let provider =
        |name: &str| stats["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    let route = |path: &str| stats["routes"].as_array().unwrap().iter().find(|r| r["path"] == path).unwrap().clone();
    let (box_, broken) = (provider("box"), provider("broken"));
    assert_eq!(box_["attempts"]["last_5m"]["outcomes"]["accepted"], 3, "{stats}");
    assert!(box_["attempts"]["last_60m"]["p99_ms"].as_f64().is_some(), "{stats}");
    assert_eq!(broken["attempts"]["last_60m"]["outcomes"]["fault"], 2, "{stats}");
    assert_eq!(
        (box_["circuit_open"].clone(), box_["in_flight"].clone(), box_["max_in_flight"].clone()),
        (false.into(), 0.into(), 1000.into())
    );
    assert_eq!(route("/ok")["sends"]["last_5m"]["total"], 3, "{stats}");
    assert_eq!(route("/ok")["refusals"]["last_5m"]["outcomes"]["invalid_phone"], 1, "{stats}");
    assert_eq!(route("/auth")["refusals"]["last_60m"]["outcomes"]["unauthorized"], 2, "{stats}");
    // One minute, or two if the sends straddled a minute's end.
    let minutes = route("/ok")["sends"]["per_minute"].as_array().unwrap().clone();
    assert!((1..=2).contains(&minutes.len()), "{stats}");
    let counted: u64 = minutes.iter().map(|m| m["outcomes"]["accepted"].as_u64().unwrap_or(0)).sum();
    assert_eq!(counted, 3, "{stats}");
    assert!(!text.contains("447400123456") && !text.contains("48291"), "no number or text in the stats");

    // The Grafana dashboard queries only what /metrics exposes.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/grafana/smsbridge.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let exposed: std::collections::BTreeSet<&str> = samples.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut queried = 0;
    for target in dashboard["panels"].as_array().unwrap().iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for (at, _) in expr.match_indices("smsbridge_") {
            let name: String = expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(exposed.contains(name.as_str()), "the dashboard queries {name}, which /metrics does not expose");
            queried += 1;
        }
    }
    assert!(queried >= 6, "the dashboard has its queries: {queried}");
    for (name, labels, _) in &samples {
        for value in labels.values() {
            let longest_digits = value.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
            assert!(longest_digits < 7, "{name} has a label that looks like a number: {value}");
        }
    }

    sigterm(&child.0);
    let mut child = child;
    assert!(child.0.wait().unwrap().success());
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(lines.len() > 5, "{lines:?}");
    let mut sent_events = 0;
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(!line.contains("447400123456"), "a number in the clear: {line}");
        assert!(!line.contains("48291") && !line.contains("Your code"), "message text in a log: {line}");
        if event["message"] == "sent" {
            assert_eq!(event["to"], "+4474****3456");
            assert_eq!(event["route"], "/ok");
            sent_events += 1;
        }
    }
    assert_eq!(sent_events, 3);
    assert!(
        lines.iter().any(|l| l.contains("caller authentication failed") && l.contains("/auth") && !l.contains("nope")),
        "an audit line without the offered credential"
    );
}

#[test]
fn sigterm_lets_a_send_in_flight_finish() {
    // A provider that takes 1.5 s to answer.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_addr = slow.local_addr().unwrap();
    let (arrived_tx, arrived) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in slow.incoming() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = arrived_tx.send(());
            std::thread::sleep(Duration::from_millis(1500));
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 25\r\nConnection: close\r\n\r\n{\"id\":\"slow-1\",\"ok\":true}",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[[provider]]
name = "slow"
adapter = "generic-http"
allow_hosts = ["http://{slow_addr}"]
[provider.config]
url = "http://{slow_addr}/send"
params = "to={{to}}&text={{body}}"
id_pointer = "/id"
[[route]]
path = "/v1/send"
providers = ["slow"]
"#
    );
    let (child, addr, _admin, _logs) = serve(dir.path(), &config);
    let caller = std::thread::spawn(move || request(&addr, "POST", "/v1/send", "", "phone=%2B447400123456&message=hi"));
    // SIGTERM once the send is at the provider, in flight.
    arrived.recv_timeout(Duration::from_secs(20)).expect("the send reaches the provider");
    sigterm(&child.0);
    let (status, body) = caller.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"provider_id\":\"slow-1\""), "{body}");
    let mut child = child;
    assert!(child.0.wait().unwrap().success(), "exits 0 after the send finished");
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/smsbridge.service")).unwrap();
    // `verify` checks that ExecStart exists: point it at the binary just built.
    let unit = unit.replace("/usr/local/bin/smsbridge", env!("CARGO_BIN_EXE_smsbridge"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smsbridge.service");
    std::fs::write(&file, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", file.to_str().unwrap()])
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn queued_messages_survive_kill_9_and_none_reaches_the_provider_twice() {
    kill_9_mid_delivery(false);
}

#[test]
fn queued_messages_survive_kill_9_with_the_database_locked_and_none_reaches_the_provider_twice() {
    kill_9_mid_delivery(true);
}

/// Holds the write lock of the SQLite database at `path` for `hold` from a
/// second process, as a backup would; returns once the lock is taken.
fn lock_database(path: &std::path::Path, hold: Duration) -> std::process::Child {
    use std::io::BufRead;
    let script = format!(
        "import sqlite3, time\nc = sqlite3.connect({path:?}, isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep({secs})\nc.execute('COMMIT')\n",
        path = path.to_str().unwrap(),
        secs = hold.as_secs_f64()
    );
    let mut child =
        Command::new("python3").args(["-c", &script]).stdout(std::process::Stdio::piped()).spawn().expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// Twelve queued messages, eight of them held at the provider when
/// smsbridge is killed (with the database locked from before the kill until
/// after the restart, when `locked`); after a restart every message has
/// reached the provider exactly once.
fn kill_9_mid_delivery(locked: bool) {
    let (provider, texts) = holding_provider(Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let config = queued_config(&provider, "limits = { per_number = \"off\", per_prefix = \"off\" }\n");
    let (mut child, addr, _admin, _logs) = serve(dir.path(), &config);
    let codes: Vec<String> = (0..12).map(|i| format!("Your code is 4{i:05}")).collect();
    for code in &codes {
        let form = format!("phone=%2B447400123456&message={}", code.replace(' ', "+"));
        let (status, body) = request(&addr, "POST", "/v1/send", "", &form);
        assert_eq!(status, 202, "{body}");
        assert!(body.contains("\"status\":\"queued\""), "{body}");
    }
    // Eight deliveries at the provider, held there: kill -9 mid-delivery.
    let deadline = Instant::now() + Duration::from_secs(20);
    while texts.lock().unwrap().values().sum::<u32>() < 8 {
        assert!(Instant::now() < deadline, "deliveries never started: {:?}", texts.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let lock = locked.then(|| lock_database(&dir.path().join("messages.db"), Duration::from_secs(5)));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let at_kill = texts.lock().unwrap().values().sum::<u32>();
    assert!(at_kill < 12, "the kill came after every delivery began: {at_kill}");

    // Restart on the same database: the rest are delivered, none twice.
    let (_child, _addr, _admin, _logs) = serve(dir.path(), &config);
    if let Some(mut lock) = lock {
        lock.wait().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while texts.lock().unwrap().len() < codes.len() {
        assert!(Instant::now() < deadline, "not every message arrived: {:?}", texts.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let texts = texts.lock().unwrap();
    for code in &codes {
        assert_eq!(texts.get(code), Some(&1), "{code} reached the provider {:?} times: {texts:?}", texts.get(code));
    }
}

#[test]
fn a_queued_message_that_expires_while_smsbridge_is_down_is_never_delivered() {
    // The provider is not there at first: the message waits in the queue.
    let provider = common::free_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = queued_config(&provider, "validity_s = 1\n");
    let (mut child, addr, _admin, _logs) = serve(dir.path(), &format!("[admin]\n{config}"));
    let (status, body) = request(&addr, "POST", "/v1/send", "", "phone=%2B447400123456&message=Your+code+is+777001");
    assert_eq!(status, 202, "{body}");
    let id = body.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    // Down past the message's validity; back with the provider up.
    std::thread::sleep(Duration::from_millis(1500));
    let (_provider, texts) = holding_provider_at(&provider, Duration::ZERO);
    let (_child, _addr, admin_after, _logs) = serve(dir.path(), &format!("[admin]\n{config}"));
    std::thread::sleep(Duration::from_millis(2000));
    assert!(texts.lock().unwrap().is_empty(), "an expired OTP was delivered: {:?}", texts.lock().unwrap());
    let (status, message) = request(&admin_after, "GET", &format!("/admin/messages/{id}"), "", "");
    assert_eq!(status, 200, "{message}");
    assert!(message.contains("\"status\":\"failed\""), "{message}");
}

/// A config with a message record and a queued route through a
/// generic-http provider at `provider`; `extra` adds lines to the route.
fn queued_config(provider: &str, extra: &str) -> String {
    format!(
        r#"
[record]
path = "{{dir}}/messages.db"
{}
[[route]]
path = "/v1/send"
providers = ["p"]
queued = true
idempotency_window_s = 0
{extra}"#,
        common::generic_provider(provider)
    )
}

#[test]
fn a_sighup_the_moment_it_says_it_listens_reloads_the_config_and_kills_nothing() {
    // Ready is when it says where it listens (what systemd's and the
    // tests' readiness checks wait for); a reload sent then must be one.
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let config = "[[provider]]\nname = \"box\"\nadapter = \"outbox\"\ndata_dir = \"{dir}/box\"\n[[route]]\npath = \"/v1/send\"\nproviders = [\"box\"]\n";
        let (mut child, _addr, _admin, logs) = serve(dir.path(), config);
        Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reloaded = false;
        while !reloaded && Instant::now() < deadline {
            match logs.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => reloaded = line.contains("config reloaded") || line.contains("config not reloaded"),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        assert_eq!(child.0.try_wait().unwrap(), None, "a SIGHUP killed smsbridge");
        assert!(reloaded, "the SIGHUP reloaded the config");
    }
}
