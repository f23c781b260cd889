//! Writing an adapter, as an author does it, through the real binary:
//! `adapter new` → `cargo build` → `adapter inspect` → `adapter test` with the
//! scaffold's fixtures → copied into a running smsbridge → a send through it
//! reaches a mock provider. The JavaScript and Python examples pass the same
//! fixtures and serve a send the same way.

mod common;

use common::{request, serve};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn smsbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsbridge")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The fixtures `adapter new` writes, shared by every language's example.
fn scaffold(dir: &Path, name: &str) -> PathBuf {
    let crate_dir = dir.join(name);
    let out = smsbridge(&["adapter", "new", name, "--dir", crate_dir.to_str().unwrap()]);
    assert!(out.status.success(), "adapter new: {}", text(&out));
    crate_dir
}

fn passes_fixtures(wasm: &Path, fixtures: &Path) {
    for fixture in ["accepted", "invalid-number"] {
        let fixture = fixtures.join(format!("{fixture}.toml"));
        let out = smsbridge(&["adapter", "test", wasm.to_str().unwrap(), "--fixture", fixture.to_str().unwrap()]);
        let report = text(&out);
        assert!(out.status.success(), "{}: {report}", fixture.display());
        assert!(report.contains("request 1: POST https://api.example.com/v1/messages"), "{report}");
        assert!(report.contains("ok: every request and the result match the fixture"), "{report}");
    }
}

/// A provider on loopback that answers every request `201 {"id":"msg-N"}` and
/// keeps what it received, head and body.
struct MockProvider {
    addr: String,
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl MockProvider {
    fn start() -> MockProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut reader = BufReader::new(stream.unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push((head, String::from_utf8_lossy(&body).into_owned()));
                    log.len()
                };
                let answer = format!("{{\"id\":\"msg-{n}\"}}");
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        MockProvider { addr, received }
    }
}

/// Prints smsbridge's log when a test fails.
struct Report(std::sync::mpsc::Receiver<String>);

impl Drop for Report {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for line in self.0.try_iter() {
                eprintln!("smsbridge: {line}");
            }
        }
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes a file whole, so the watcher never reads half of it.
fn replace(path: &Path, contents: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

const BASE_CONFIG: &str = r#"
[adapters]
dir = "{dir}/adapters"
cache_dir = "{dir}/cache"
[admin]
[[provider]]
name = "box"
adapter = "outbox"
data_dir = "{dir}/box"
[[route]]
path = "/v1/send"
providers = ["box"]
"#;

/// Copies `wasm` into a running smsbridge's adapters folder as `name`, adds a
/// provider and a route for it to the live config, and sends through it: the
/// mock provider must get exactly the request the fixtures describe.
fn serves_a_send(name: &str, wasm: &Path) {
    let provider = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("adapters")).unwrap();
    let (_running, addr, admin, logs) = serve(root, BASE_CONFIG);
    // On failure, what smsbridge said.
    let _report = Report(logs);

    replace(&root.join(format!("adapters/{name}.wasm")), &std::fs::read(wasm).unwrap());
    wait_for("the adapter to load", Duration::from_secs(120), || {
        let (_, list) = request(&admin, "GET", "/admin/adapters", "", "");
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let entry = list["adapters"].as_array().unwrap().iter().find(|a| a["name"] == name)?.clone();
        assert!(entry["last_error"].is_null(), "{entry}");
        entry["sha256"].is_string().then_some(())
    });

    let config = format!(
        r#"{BASE_CONFIG}
[[provider]]
name = "{name}"
adapter = "{name}"
allow_hosts = ["http://{mock}"]
[provider.config]
api_key = "test-key"
from = "Bank"
base_url = "http://{mock}"
[[route]]
path = "/v1/{name}"
providers = ["{name}"]
"#,
        mock = provider.addr
    );
    replace(&root.join("smsbridge.toml"), config.replace("{dir}", root.to_str().unwrap()).as_bytes());
    let form = "phone=%2B447400123456&message=Your+code+is+123456";
    let (status, body) = wait_for("the config to reload", Duration::from_secs(30), || {
        let (status, body) = request(&addr, "POST", &format!("/v1/{name}"), "", form);
        (status != 404).then_some((status, body))
    });
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["provider"], name, "{answer}");
    assert_eq!(answer["provider_id"], "msg-1", "{answer}");

    let received = provider.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one send, one request: {received:?}");
    let (head, body) = &received[0];
    assert!(head.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nauthorization: bearer test-key\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"), "{head}");
    let id = answer["id"].as_str().unwrap();
    assert_eq!(body, &format!("to=%2B447400123456&text=Your+code+is+123456&reference={id}&from=Bank"));
}

#[test]
fn a_scaffolded_adapter_builds_passes_its_fixtures_and_serves_a_send() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = scaffold(work.path(), "acme-sms");

    // The one build command the scaffold's README gives. A target dir that
    // outlives the test keeps reruns quick.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo build: {}", text(&out));
    let wasm = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold/wasm32-wasip2/release/acme_sms.wasm");

    let out = smsbridge(&["adapter", "inspect", wasm.to_str().unwrap()]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for line in ["kind:     WebAssembly component", "adapter:  acme-sms 0.1.0 (acme-sms)", "loadable: yes"] {
        assert!(report.contains(line), "inspect lacks `{line}`: {report}");
    }
    assert!(report.contains("export:   smsbridge:adapter/sender@0.1.2"), "{report}");

    passes_fixtures(&wasm, &crate_dir.join("fixtures"));
    serves_a_send("acme-sms", &wasm);
}

/// The fixtures the JavaScript and Python examples are tested with.
const EXAMPLE_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters/examples/fixtures");

#[test]
fn the_examples_fixtures_are_the_ones_adapter_new_writes() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = scaffold(work.path(), "acme-sms");
    for fixture in ["accepted.toml", "invalid-number.toml"] {
        let written = std::fs::read_to_string(crate_dir.join("fixtures").join(fixture)).unwrap();
        let shared = std::fs::read_to_string(Path::new(EXAMPLE_FIXTURES).join(fixture)).unwrap();
        assert_eq!(written, shared, "adapters/examples/fixtures/{fixture} differs from what `adapter new` writes");
    }
}

/// An example adapter built by `adapters/examples/build.sh`.
fn example(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let wasm = target.join(format!("examples/{name}.wasm"));
    assert!(
        wasm.exists(),
        "{} is missing: build it with adapters/examples/build.sh (scripts/test runs it first)",
        wasm.display()
    );
    wasm
}

#[test]
fn the_javascript_example_passes_the_same_fixtures_and_serves_a_send() {
    let wasm = example("example-js");
    passes_fixtures(&wasm, Path::new(EXAMPLE_FIXTURES));
    serves_a_send("example-js", &wasm);
}

#[test]
fn the_python_example_passes_the_same_fixtures_and_serves_a_send() {
    let wasm = example("example-python");
    passes_fixtures(&wasm, Path::new(EXAMPLE_FIXTURES));
    serves_a_send("example-python", &wasm);
}
