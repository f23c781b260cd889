//! Several smsbridge instances sharing one PostgreSQL database, through the
//! real binary: limits exact across instances, one SMS for a key sent at
//! two, a killed instance's queued messages delivered by the others and
//! none twice, a Digest challenge answered at another instance, and the
//! database stopped and started under load.

mod common;

use common::pg::Postgres;
use common::{Running, exchange, holding_provider, request, serve};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PHONE: &str = "%2B447400123456";

/// One instance: its process, folder, callers' and admin addresses, logs.
struct Instance {
    child: Running,
    _dir: tempfile::TempDir,
    addr: String,
    admin: String,
    logs: Mutex<std::sync::mpsc::Receiver<String>>,
}

impl Instance {
    fn start(config: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr, admin, logs) = serve(dir.path(), config);
        let instance = Instance { child, _dir: dir, addr, admin, logs: Mutex::new(logs) };
        instance.wait_healthy(Duration::from_secs(30));
        instance
    }

    fn health(&self) -> (u16, String) {
        request(&self.admin, "GET", "/admin/health", "", "")
    }

    fn wait_healthy(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let (status, body) = self.health();
            if status == 200 {
                return;
            }
            assert!(Instant::now() < until, "instance never healthy: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send(&self, path: &str, code: &str, headers: &str) -> (u16, String) {
        let form = format!("phone={PHONE}&message={}", code.replace(' ', "+"));
        request(&self.addr, "POST", path, headers, &form)
    }

    /// Every log line so far; panics if one says smsbridge panicked.
    fn logs(&self) -> Vec<String> {
        let lines: Vec<String> = self.logs.lock().unwrap().try_iter().collect();
        assert!(!lines.iter().any(|l| l.contains("panicked")), "a panic: {lines:?}");
        lines
    }
}

/// A config whose state is in `pg`, with a `/v1/send` route (plus `route`
/// lines) and a queued `/v1/queued` route, both to a generic-http provider
/// at `provider`.
fn config(pg: &Postgres, provider: &str, route: &str, state: &str) -> String {
    format!(
        r#"
[admin]
[state]
url = "{url}"
lease_ms = 2000
timeout_ms = 1000
{state}
[record]
number_key = "shared-number-key-5d1c"
[auth]
digest_key = "shared-digest-key-77a1"
{provider}
[[route]]
path = "/v1/send"
providers = ["p"]
{route}
[[route]]
path = "/v1/queued"
providers = ["p"]
queued = true
idempotency_window_s = 0
limits = {{ per_number = "off", per_prefix = "off" }}
"#,
        url = pg.url(),
        provider = common::generic_provider(provider),
    )
}

fn sum(texts: &Mutex<BTreeMap<String, u32>>) -> u32 {
    texts.lock().unwrap().values().sum()
}

#[test]
fn a_per_number_limit_is_exact_across_three_instances() {
    let pg = Postgres::start();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let route = "limits = { per_number = \"5/10m\", per_prefix = \"off\" }\nidempotency_window_s = 0";
    let config = config(&pg, &provider, route, "");
    // Started together on an empty database: each migrates under the lock,
    // and the schema is created once.
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || Arc::new(Instance::start(&config)))
        })
        .collect();
    let instances: Vec<Arc<Instance>> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    let applied = pg.query_i64("SELECT count(*) FROM smsbridge.migrations");
    assert_eq!((applied, pg.query_i64("SELECT max(version) FROM smsbridge.migrations")), (3, 3), "each migration once");
    // Ten sends to one number at once, round-robin over the three.
    let sends: Vec<_> = (0..10)
        .map(|i| {
            let instance = instances[i % 3].clone();
            std::thread::spawn(move || instance.send("/v1/send", &format!("Your code is {i:06}"), "").0)
        })
        .collect();
    let mut statuses: Vec<u16> = sends.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
    assert_eq!(sum(&texts), 5, "{:?}", texts.lock().unwrap());
    // Another number has its own count, at any instance.
    let other = request(&instances[1].addr, "POST", "/v1/send", "", "phone=%2B447400123457&message=Your+code+is+1");
    assert_eq!(other.0, 200, "{}", other.1);
    // Every instance's record lookup by number sees all five sends.
    for instance in &instances {
        let (status, body) = request(&instance.admin, "GET", "/admin/messages?number=%2B447400123456", "", "");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["messages"].as_array().unwrap().len(), 5, "{body}");
    }
}

#[test]
fn retention_purges_once_an_hour_for_all_instances() {
    let pg = Postgres::start();
    let (provider, _texts) = holding_provider(Duration::ZERO);
    let config = config(&pg, &provider, "", "");
    let _a = Instance::start(&config);
    let old = |id: &str| {
        format!(
            "INSERT INTO smsbridge.messages (id, created_ms, route, to_masked, number_hash, provider, segments) \
             VALUES ('{id}', 0, '/v1/send', '+4474****3456', 'h', 'p', 1)"
        )
    };
    let count = |id: &str| pg.query_i64(&format!("SELECT count(*) FROM smsbridge.messages WHERE id = '{id}'"));
    // As if the last purge were long ago: the next instance to start purges.
    pg.execute(&old("old-1"));
    pg.execute("UPDATE smsbridge.jobs SET last_ms = 0 WHERE name = 'purge'");
    let _b = Instance::start(&config);
    let until = Instant::now() + Duration::from_secs(10);
    while count("old-1") == 1 {
        assert!(Instant::now() < until, "B never purged");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Within the hour, another instance's start does not purge again.
    pg.execute(&old("old-2"));
    let c = Instance::start(&config);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count("old-2"), 1, "purged a second time within the hour");
    c.logs();
}

#[test]
fn one_idempotency_key_sent_at_two_instances_at_once_sends_one_sms() {
    let pg = Postgres::start();
    // Slow enough that the second request arrives while the first is sent.
    let (provider, texts) = holding_provider(Duration::from_millis(700));
    let config = config(&pg, &provider, "", "");
    let (a, b) = (Arc::new(Instance::start(&config)), Arc::new(Instance::start(&config)));
    let key = "Idempotency-Key: login-7f3a-0001\r\n";
    let answers: Vec<(u16, String)> = [a.clone(), b.clone()]
        .into_iter()
        .map(|instance| std::thread::spawn(move || instance.send("/v1/send", "Your code is 424242", key)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(sum(&texts), 1, "{:?}", texts.lock().unwrap());
    let json: Vec<serde_json::Value> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    for field in ["id", "provider_id", "provider"] {
        assert_eq!(json[0][field], json[1][field], "{field}: {answers:?}");
    }
    // Later, at a third instance: the same first answer.
    let c = Instance::start(&config);
    let (status, body) = c.send("/v1/send", "Your code is 424242", key);
    assert_eq!(status, 200, "{body}");
    let again: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((again["id"].clone(), again["replayed"].clone()), (json[0]["id"].clone(), true.into()));
    assert_eq!(sum(&texts), 1);
}

#[test]
fn queued_messages_of_a_killed_instance_are_delivered_by_the_others_and_none_twice() {
    let pg = Postgres::start();
    let (provider, texts) = holding_provider(Duration::from_millis(1500));
    let config = config(&pg, &provider, "", "");
    let mut a = Instance::start(&config);
    let codes: Vec<String> = (0..50).map(|i| format!("Your code is 5{i:05}")).collect();
    let mut ids = Vec::new();
    for code in &codes {
        let (status, body) = a.send("/v1/queued", code, "");
        assert_eq!(status, 202, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        ids.push(json["id"].as_str().unwrap().to_string());
    }
    // A delivers eight at a time, each held at the provider: kill -9 then.
    let until = Instant::now() + Duration::from_secs(20);
    while sum(&texts) < 8 {
        assert!(Instant::now() < until, "A never delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.child.0.kill().unwrap();
    a.child.0.wait().unwrap();
    let at_kill = sum(&texts);
    assert!(at_kill < 50, "A delivered everything before the kill: {at_kill}");

    let (b, c) = (Instance::start(&config), Instance::start(&config));
    let until = Instant::now() + Duration::from_secs(60);
    while texts.lock().unwrap().len() < codes.len() {
        assert!(Instant::now() < until, "not every message arrived: {} of 50", texts.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the leases of what A held: nothing arrives a second time.
    std::thread::sleep(Duration::from_millis(3000));
    let seen = texts.lock().unwrap().clone();
    for code in &codes {
        assert_eq!(seen.get(code), Some(&1), "{code} reached the provider {:?} times", seen.get(code));
    }
    // Every message is in the record, read at either instance, and none
    // is left in the queue.
    for (n, id) in ids.iter().enumerate() {
        let at = if n % 2 == 0 { &b } else { &c };
        let (status, body) = request(&at.admin, "GET", &format!("/admin/messages/{id}"), "", "");
        assert_eq!(status, 200, "{id}: {body}");
    }
    let (status, body) = request(&c.admin, "GET", "/admin/messages", "", "");
    assert_eq!(status, 200, "{body}");
    let recent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(recent["messages"].as_array().unwrap().len(), 50, "the latest sends of every instance");
    assert!(!body.contains("447400123456"), "masked");
    let left = pg.query_i64("SELECT count(*) FROM smsbridge.queue");
    assert_eq!(left, 0, "messages left in the queue");
    b.logs();
    c.logs();
}

#[test]
fn a_fallback_due_after_its_instance_was_killed_is_sent_once_by_one_of_the_others() {
    let pg = Postgres::start();
    let ((a, a_texts), (b, b_texts)) = (holding_provider(Duration::ZERO), holding_provider(Duration::ZERO));
    let config = format!(
        r#"
[admin]
[state]
url = "{url}"
lease_ms = 2000
timeout_ms = 1000
[record]
number_key = "shared-number-key-5d1c"
{a}{b}
[[route]]
path = "/v1/send"
providers = ["a", "b"]
fallback_after_s = 3
idempotency_window_s = 0
limits = {{ per_number = "off", per_prefix = "off" }}
"#,
        url = pg.url(),
        a = common::generic_provider_named("a", &a),
        b = common::generic_provider_named("b", &b),
    );
    let instances: Vec<Instance> = (0..3).map(|_| Instance::start(&config)).collect();
    let mut instances = instances.into_iter();
    let mut first = instances.next().unwrap();
    let (status, body) = first.send("/v1/send", "Your code is 468024", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(sum(&a_texts), 1);
    // The instance that accepted it dies before the timeout.
    first.child.0.kill().unwrap();
    first.child.0.wait().unwrap();
    let sent = Instant::now();
    let until = sent + Duration::from_secs(15);
    while sum(&b_texts) < 1 {
        assert!(Instant::now() < until, "no fallback came");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sent.elapsed() >= Duration::from_millis(2500), "not before its time: {:?}", sent.elapsed());
    // Past another timeout and a lease: one fallback, from one instance.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!((sum(&a_texts), sum(&b_texts)), (1, 1));
    assert_eq!(b_texts.lock().unwrap().get("Your code is 468024"), Some(&1));
    let others: Vec<Instance> = instances.collect();
    let fallbacks: usize = others.iter().map(|i| i.logs().iter().filter(|l| l.contains("fallback sent")).count()).sum();
    assert_eq!(fallbacks, 1, "exactly one instance acted");
    assert_eq!(pg.query_i64("SELECT count(*) FROM smsbridge.queue"), 0, "nothing left waiting: b was the last");
    assert_eq!(pg.query_i64("SELECT count(*) FROM smsbridge.handoffs"), 2);
}

#[test]
fn a_digest_challenge_from_one_instance_is_answered_at_another() {
    let pg = Postgres::start();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let password = "digest-pass-shared-9e2a";
    let route = format!("auth = {{ digest = {{ user = \"linotp\", password = \"{password}\" }} }}");
    let config = config(&pg, &provider, &route, "");
    let (a, b) = (Instance::start(&config), Instance::start(&config));
    let (status, _) = a.send("/v1/send", "Your code is 1", "");
    assert_eq!(status, 401);
    let (_, headers, _) = exchange(&a.addr, "POST", "/v1/send", "", &format!("phone={PHONE}&message=x"));
    let challenge = headers.iter().find(|h| h.to_ascii_lowercase().starts_with("www-authenticate: digest")).unwrap();
    let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let h = |text: String| hex(&Sha256::digest(text.as_bytes()));
    let (realm, uri, cnonce, nc) = ("smsbridge", "/v1/send", "0a4f113b", "00000001");
    let ha1 = h(format!("linotp:{realm}:{password}"));
    let ha2 = h(format!("POST:{uri}"));
    let response = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let authorization = format!(
        "Authorization: Digest username=\"linotp\", realm=\"{realm}\", uri=\"{uri}\", algorithm=SHA-256, nonce=\"{nonce}\", nc={nc}, cnonce=\"{cnonce}\", qop=auth, response=\"{response}\"\r\n"
    );
    let (status, body) = b.send("/v1/send", "Your code is 2", &authorization);
    assert_eq!(status, 200, "{body}");
    // The request captured and replayed at the other instance, with
    // another text: its nonce count was used once, across both.
    let (status, _) = a.send("/v1/send", "Your code is 3", &authorization);
    assert_eq!(status, 401, "a replayed nonce count at another instance");
    assert_eq!(sum(&texts), 1);

    // qop=auth-int is offered, and covers the body: the same credentials
    // with another body are refused.
    assert!(challenge.contains("qop=\"auth,auth-int\""), "{challenge}");
    let with_body = |nc: &str, signed: &str| {
        let ha2 = h(format!("POST:{uri}:{}", h(signed.to_string())));
        let response = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth-int:{ha2}"));
        format!(
            "Authorization: Digest username=\"linotp\", realm=\"{realm}\", uri=\"{uri}\", algorithm=SHA-256, nonce=\"{nonce}\", nc={nc}, cnonce=\"{cnonce}\", qop=auth-int, response=\"{response}\"\r\n"
        )
    };
    let signed = format!("phone={PHONE}&message=Your+code+is+4");
    assert_eq!(exchange(&b.addr, "POST", "/v1/send", &with_body("00000002", &signed), &signed).0, 200);
    let other = format!("phone={PHONE}&message=Your+code+is+5");
    assert_eq!(exchange(&a.addr, "POST", "/v1/send", &with_body("00000003", &signed), &other).0, 401);
    assert_eq!(sum(&texts), 2);
}

#[test]
fn the_database_stopped_and_started_under_load() {
    let pg = Postgres::start();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let route = "limits = { per_number = \"off\", per_prefix = \"off\" }";
    let closed = Arc::new(Instance::start(&config(&pg, &provider, route, "")));
    let open = Arc::new(Instance::start(&config(&pg, &provider, route, "on_failure = \"open\"")));

    // Load on both instances, both routes, throughout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    type Seen = Arc<Mutex<Vec<(&'static str, &'static str, u16, String, String)>>>;
    let seen: Seen = Default::default();
    let load: Vec<_> = [("closed", closed.clone()), ("open", open.clone())]
        .into_iter()
        .flat_map(|(name, instance)| {
            ["/v1/send", "/v1/queued"].map(|path| {
                let (instance, stop, seen) = (instance.clone(), stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let code = format!("{name}{path} {n}");
                        let (status, body) = instance.send(path, &code, "");
                        let path = if path == "/v1/send" { "send" } else { "queued" };
                        seen.lock().unwrap().push((name, path, status, code, body));
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    pg.stop();
    let stopped_at = seen.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(3000));
    let (status, body) = closed.health();
    assert_eq!(status, 503, "health while the database is down: {body}");
    assert!(body.contains("\"up\":false"), "{body}");
    let (_, metrics) = request(&closed.admin, "GET", "/metrics", "", "");
    assert!(metrics.contains("smsbridge_state_up 0"), "{metrics}");
    let down_len = seen.lock().unwrap().len();
    pg.start_again();
    let restarted_at = Instant::now();
    closed.wait_healthy(Duration::from_secs(20));
    open.wait_healthy(Duration::from_secs(20));
    let recovered = restarted_at.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();

    // While down (answers well after the stop, before the restart): the
    // documented behaviour of each kind of route.
    let settle = stopped_at + (down_len - stopped_at) / 2;
    let down = &seen[settle..down_len];
    let of = |name: &str, path: &str| -> Vec<u16> {
        down.iter().filter(|s| s.0 == name && s.1 == path).map(|s| s.2).collect()
    };
    assert!(!of("closed", "send").is_empty() && !of("open", "send").is_empty(), "load ran while down");
    assert!(of("closed", "send").iter().all(|s| *s == 503), "closed: {:?}", of("closed", "send"));
    assert!(of("open", "send").iter().all(|s| *s == 200), "open: {:?}", of("open", "send"));
    for name in ["closed", "open"] {
        assert!(of(name, "queued").iter().all(|s| *s == 503), "{name} queued: {:?}", of(name, "queued"));
    }
    for s in down.iter().filter(|s| s.2 == 503) {
        assert!(s.4.contains("state_unavailable"), "{s:?}");
    }
    // After: full service on both.
    let last: Vec<_> = seen.iter().rev().take(8).collect();
    assert!(last.iter().all(|s| s.2 == 200 || s.2 == 202), "after recovery ({recovered:?}): {last:?}");
    // No accepted queued message is lost.
    let until = Instant::now() + Duration::from_secs(20);
    let accepted: Vec<String> = seen.iter().filter(|s| s.2 == 202).map(|s| s.3.clone()).collect();
    while accepted.iter().any(|code| !texts.lock().unwrap().contains_key(code)) {
        assert!(Instant::now() < until, "an accepted queued message never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = closed.logs();
    let outages = logs.iter().filter(|l| l.contains("state database unreachable")).count();
    assert_eq!(outages, 1, "the outage is logged once: {outages}");
    assert!(logs.iter().any(|l| l.contains("state database reachable")));
    open.logs();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_database_is_reached_over_tls_and_its_certificate_is_verified() {
    let (pg, ca) = Postgres::start_tls();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let tls = |ca: &std::path::Path| {
        config(&pg, &provider, "", &format!("ca = \"{}\"", ca.display()))
            .replace(&format!("url = \"{}\"", pg.url()), &format!("url = \"{}?sslmode=require\"", pg.url()))
    };
    let a = Instance::start(&tls(&ca));
    let (status, body) = a.send("/v1/send", "Your code is 1", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(sum(&texts), 1);
    let encrypted = pg.query_i64(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'smsbridge' AND s.ssl",
    );
    assert!(encrypted > 0, "no TLS connection from smsbridge");

    // A certificate the configured CA did not sign: never trusted.
    let other = tempfile::tempdir().unwrap();
    let stranger = other.path().join("stranger.pem");
    let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&stranger, pair.cert.pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, admin, logs) = serve(dir.path(), &tls(&stranger));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = request(&admin, "GET", "/admin/health", "", "");
    assert_eq!(status, 503, "{body}");
    let (status, body) = request(&addr, "POST", "/v1/send", "", &format!("phone={PHONE}&message=Your+code+is+2"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("state_unavailable"), "{body}");
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(lines.iter().any(|l| l.contains("state database unreachable")), "{lines:?}");
    assert_eq!(sum(&texts), 1);
}

/// Every byte of the files under `dir`, for what a copy of them holds.
fn files_under(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

#[test]
fn a_copy_of_the_database_holds_no_number_no_code_and_no_unkeyed_digest() {
    let pg = Postgres::start();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let limits = "limits = { per_number = \"5/10m\", per_prefix = \"20/10m\", per_country = \"100/10m\" }";
    let a = Instance::start(&config(&pg, &provider, limits, ""));
    let (status, body) = a.send("/v1/send", "Your code is 908172", "Idempotency-Key: login-4711\r\n");
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.send("/v1/queued", "Your code is 551834", "");
    assert_eq!(status, 202, "{body}");
    let until = Instant::now() + Duration::from_secs(20);
    while texts.lock().unwrap().get("Your code is 551834").is_none()
        || pg.query_i64("SELECT count(*) FROM smsbridge.queue") > 0
    {
        assert!(Instant::now() < until, "the queued message is delivered and dequeued");
        std::thread::sleep(Duration::from_millis(50));
    }
    pg.checkpoint();
    let digest = hex(&Sha256::digest("+447400123456\0Your code is 908172"));
    let secrets = ["447400123456", "+44740012", "908172", "551834", digest.as_str()];
    // What a pg_dump of the schema holds.
    let dump = pg.dump("smsbridge");
    for secret in secrets {
        assert!(!dump.contains(secret), "the dump holds {secret}");
    }
    assert!(dump.contains("+4474****3456"), "the dump is of the record: {dump}");
    // What the table files and the WAL (a base backup, a replica) hold.
    let mut files = Vec::new();
    files_under(&pg.data_dir().join("base"), &mut files);
    files_under(&pg.data_dir().join("pg_wal"), &mut files);
    assert!(files.len() > 10, "{} files", files.len());
    for (path, bytes) in &files {
        for secret in ["447400123456", "551834", "908172"] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds {secret}", path.display());
        }
    }
    a.logs();
}
