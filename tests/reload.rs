//! Hot reload, end to end: adapter files replaced under load, broken files
//! refused, config edits applied, and compiled code reused across restarts.

use smsbridge_tests::{Bridge, artifacts, quiet_route};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Provider `swap` runs whatever `adapters/swap.wasm` is. Both versions used
/// here accept its settings: the outbox answers with the host's message id,
/// the hostile adapter in `echo` mode with the number and text.
static SWAP: LazyLock<String> = LazyLock::new(|| {
    [
        r#"
[adapters]
dir = "{dir}/adapters"

[[provider]]
name = "swap"
adapter = "swap"
data_dir = "{dir}/box"
config = { mode = "echo" }

[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{dir}/outbox"

"#,
        &quiet_route("/swap", &["swap"], ""),
        r#"
"#,
        &quiet_route("/v1/send", &["outbox"], ""),
    ]
    .concat()
});

const PHONE: &str = "+447400123456";

fn swap_file(dir: &Path) -> PathBuf {
    dir.join("adapters/swap.wasm")
}

fn install(dir: &Path, component: &str) {
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    std::fs::copy(component, swap_file(dir)).unwrap();
}

fn sha256(path: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `check` holds, or fails naming `what`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether provider `swap` now sends through the version with `sha`.
fn serving(bridge: &Bridge, sha: &str) -> bool {
    bridge.gateway.routing().adapter_of("swap").is_some_and(|a| a.sha256 == sha)
}

/// Which version produced an answer, or a description of what went wrong.
fn version_of(answer: &smsbridge_tests::Answer, body: &str) -> Result<&'static str, String> {
    if answer.status != 200 {
        return Err(format!("{answer:?}"));
    }
    let pid = answer.json["provider_id"].as_str().unwrap_or("");
    if pid == answer.json["id"].as_str().unwrap_or("-") {
        Ok("outbox")
    } else if pid == format!("{PHONE} {body}") {
        Ok("echo")
    } else {
        Err(format!("an answer from neither version: {answer:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_an_adapter_fifty_times_under_load_loses_no_request() {
    let bridge = Arc::new(Bridge::start_with(&SWAP, |dir| install(dir, artifacts::OUTBOX_WASM)).await);
    let versions = [
        (artifacts::HOSTILE_WASM, sha256(artifacts::HOSTILE_WASM)),
        (artifacts::OUTBOX_WASM, sha256(artifacts::OUTBOX_WASM)),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (bridge, stop) = (bridge.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("client {c} message {n}");
                let answer = bridge.post_form("/swap", &[("phone", PHONE), ("message", &body)]).await;
                seen.push(version_of(&answer, &body));
                n += 1;
            }
            seen
        }));
    }

    let file = swap_file(bridge.dir.path());
    for i in 0..50 {
        let (component, sha) = &versions[i % 2];
        if i % 4 < 2 {
            // Copied beside it, then renamed into place.
            let tmp = file.with_extension("wasm.part");
            std::fs::copy(component, &tmp).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        } else {
            // Rewritten in place.
            std::fs::write(&file, std::fs::read(component).unwrap()).unwrap();
        }
        eventually(&format!("swap {i} to be served"), || serving(&bridge, sha)).await;
    }
    // The 50th version is the outbox: from now on, every answer is its.
    let mut after = Vec::new();
    for n in 0..20 {
        let body = format!("after {n}");
        let answer = bridge.post_form("/swap", &[("phone", PHONE), ("message", &body)]).await;
        after.push(version_of(&answer, &body));
    }
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut by_version = std::collections::BTreeMap::new();
    for client in clients {
        for result in client.await.unwrap() {
            let version = result.unwrap_or_else(|e| panic!("a request failed during the swaps: {e}"));
            *by_version.entry(version).or_insert(0) += 1;
            total += 1;
        }
    }
    assert!(total >= 50, "the load kept running through the swaps: {total} requests");
    assert_eq!(by_version.len(), 2, "both versions served: {by_version:?}");
    assert!(after.iter().all(|v| v == &Ok("outbox")), "after the last swap only the final version answers: {after:?}");
}

#[tokio::test]
async fn broken_files_are_refused_and_the_old_version_keeps_serving() {
    let bridge = Bridge::start_with(&SWAP, |dir| install(dir, artifacts::HOSTILE_WASM)).await;
    let good = sha256(artifacts::HOSTILE_WASM);
    let file = swap_file(bridge.dir.path());

    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("garbage", b"\0asm this is not a component".to_vec(), "is not a loadable WebAssembly component"),
        (
            "a truncated component",
            std::fs::read(artifacts::OUTBOX_WASM).unwrap()[..5000].to_vec(),
            "is not a loadable WebAssembly component",
        ),
        ("info() traps", std::fs::read(artifacts::BAD_INFO_WASM).unwrap(), "info() failed: adapter trapped"),
        ("another world", std::fs::read(artifacts::WRONG_WORLD_WASM).unwrap(), "smsbridge:adapter"),
    ];
    for (what, bytes, expected) in cases {
        std::fs::write(&file, &bytes).unwrap();
        eventually(&format!("{what} to be refused"), || {
            bridge.gateway.registry.errors().get("swap").is_some_and(|e| e.message.contains(expected))
        })
        .await;
        assert!(serving(&bridge, &good), "{what}: the old version still serves");
        let answer = bridge.post_form("/swap", &[("phone", PHONE), ("message", "still here")]).await;
        assert_eq!(version_of(&answer, "still here"), Ok("echo"), "{what}");

        let (status, view) = bridge.admin("/admin/adapters").await;
        assert_eq!(status, 200);
        let entry = view["adapters"].as_array().unwrap().iter().find(|a| a["name"] == "swap").unwrap().clone();
        assert_eq!(entry["sha256"], good, "{what}: the admin view shows the serving version");
        let error = entry["last_error"]["message"].as_str().unwrap_or("");
        assert!(error.contains(expected), "{what}: the admin view shows the error: {entry}");
        // Remove the failure before the next case, so its error is its own.
        std::fs::copy(artifacts::HOSTILE_WASM, &file).unwrap();
        eventually("the error to clear", || !bridge.gateway.registry.errors().contains_key("swap")).await;
    }

    // Deleting the file unloads the adapter: its route answers 503 naming it.
    std::fs::remove_file(&file).unwrap();
    eventually("the adapter to unload", || bridge.gateway.registry.get("swap").is_none()).await;
    let a = bridge.post_form("/swap", &[("phone", PHONE), ("message", "hi")]).await;
    a.assert_failed(503, "unavailable");
    assert!(a.message().contains("adapter `swap`"), "{a:?}");
    let (status, health) = bridge.admin("/admin/health").await;
    assert_eq!(status, 503);
    assert_eq!(health["unserved_routes"], serde_json::json!(["/swap"]));
    // Other routes never noticed.
    let ok = bridge.post_form("/v1/send", &[("phone", PHONE), ("message", "hi")]).await;
    assert_eq!(ok.status, 200);

    std::fs::copy(artifacts::OUTBOX_WASM, &file).unwrap();
    eventually("the adapter to come back", || bridge.gateway.registry.get("swap").is_some()).await;
    let answer = bridge.post_form("/swap", &[("phone", PHONE), ("message", "back")]).await;
    assert_eq!(version_of(&answer, "back"), Ok("outbox"));
    assert_eq!(bridge.admin("/admin/health").await.0, 200);
}

#[tokio::test]
async fn a_config_edit_applies_without_a_restart_and_a_bad_one_is_refused() {
    let bridge = Bridge::start_from_file(&SWAP, |dir| install(dir, artifacts::OUTBOX_WASM)).await;
    let file = bridge.dir.path().join("smsbridge.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let send = |path: &'static str| bridge.post_form(path, &[("phone", PHONE), ("message", "hi")]);
    send("/new").await.assert_failed(404, "unknown_route");

    std::fs::write(&file, format!("{original}\n[[route]]\npath = \"/new\"\nproviders = [\"outbox\"]\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while send("/new").await.status != 200 {
        assert!(Instant::now() < deadline, "the new route never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A route naming a provider that does not exist: refused whole.
    std::fs::write(&file, format!("{original}\n[[route]]\npath = \"/broken\"\nproviders = [\"nobody\"]\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(send("/new").await.status, 200, "the old config keeps serving");
    send("/broken").await.assert_failed(404, "unknown_route");

    // The watch is still alive: a good edit after a bad one applies.
    std::fs::write(&file, &original).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while send("/new").await.status != 404 {
        assert!(Instant::now() < deadline, "the route removal never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(send("/v1/send").await.status, 200);
}

#[tokio::test]
async fn a_restart_with_unchanged_adapters_uses_the_compiled_code_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        format!("[adapters]\ncache_dir = \"{}/cache\"\n{}", dir.path().display(), SWAP.replace("[adapters]\n", ""))
            .replace("{dir}", dir.path().to_str().unwrap());
    install(dir.path(), artifacts::OUTBOX_WASM);
    let parse = || smsbridge::config::Config::parse(&config, "test.toml").unwrap();
    // Fresh runtimes, as two processes would have: nothing shared in memory.
    let compiled_from = |view: &serde_json::Value| -> Vec<String> {
        view["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["compiled"]["from"].as_str().unwrap().to_string())
            .collect()
    };

    let first =
        Bridge::launch(parse(), smsbridge::runtime::Runtime::new().unwrap(), tempfile::tempdir().unwrap()).await;
    let (_, view) = first.admin("/admin/adapters").await;
    // `swap` has the outbox's bytes: compiled once, found in memory.
    assert!(compiled_from(&view).iter().all(|f| f == "compiler" || f == "memory"), "{view}");
    drop(first);

    let second =
        Bridge::launch(parse(), smsbridge::runtime::Runtime::new().unwrap(), tempfile::tempdir().unwrap()).await;
    let (_, view) = second.admin("/admin/adapters").await;
    assert!(compiled_from(&view).iter().all(|f| f == "cache" || f == "memory"), "{view}");
    assert!(compiled_from(&view).iter().filter(|f| *f == "cache").count() >= 9, "{view}");
    let answer = second.post_form("/swap", &[("phone", PHONE), ("message", "cached")]).await;
    assert_eq!(version_of(&answer, "cached"), Ok("outbox"));
    drop(second);

    // Whoever can write the cache folder cannot plant code: a changed file
    // (or one sealed under another key) is compiled again, never loaded.
    let cache = dir.path().join("cache");
    assert!(dir.path().join("cache.key").is_file(), "the key is kept beside the folder, not in it");
    let mut tampered = 0;
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        let mut code = std::fs::read(&path).unwrap();
        let middle = code.len() / 2;
        code[middle] ^= 0x01;
        std::fs::write(&path, code).unwrap();
        tampered += 1;
    }
    assert!(tampered >= 9, "{tampered} cache files");
    let third =
        Bridge::launch(parse(), smsbridge::runtime::Runtime::new().unwrap(), tempfile::tempdir().unwrap()).await;
    let (_, view) = third.admin("/admin/adapters").await;
    assert!(compiled_from(&view).iter().all(|f| f == "compiler" || f == "memory"), "{view}");
    let answer = third.post_form("/swap", &[("phone", PHONE), ("message", "recompiled")]).await;
    assert_eq!(version_of(&answer, "recompiled"), Ok("outbox"));
}

#[tokio::test]
async fn a_drop_in_that_declares_new_hosts_is_refused_while_the_old_version_serves() {
    // `tw` takes the bundled Twilio adapter's default hosts as its allowlist.
    let twilio = r#"
[adapters]
dir = "{dir}/adapters"

[[provider]]
name = "tw"
adapter = "twilio"
[provider.config]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "f00dfeedf00dfeedf00dfeedf00dfeed"
from = "+15005550006"
access_key = "mb-access-key-0123"
"#;
    let config = format!("{twilio}{}", quiet_route("/v1/send", &["tw"], ""));
    let bridge = Bridge::start_with(&config, |dir| std::fs::create_dir_all(dir.join("adapters")).unwrap()).await;
    let bundled = bridge.gateway.routing().adapter_of("tw").unwrap().sha256.clone();
    // A file named twilio.wasm that declares rest.messagebird.com.
    let file = bridge.path("adapters/twilio.wasm");
    std::fs::copy(artifacts::MESSAGEBIRD_WASM, &file).unwrap();
    bridge.gateway.reload_adapter(&file).await;
    let error = bridge.gateway.registry.errors().get("twilio").map(|e| e.message.clone()).unwrap_or_default();
    assert!(error.contains("rest.messagebird.com") && error.contains("provider(s) tw "), "{error}");
    assert_eq!(bridge.gateway.routing().adapter_of("tw").unwrap().sha256, bundled, "the old version serves");
    let (_, view) = bridge.admin("/admin/adapters").await;
    let listed = view["adapters"].as_array().unwrap().iter().find(|a| a["name"] == "twilio").unwrap().clone();
    assert!(listed["last_error"]["message"].as_str().unwrap().contains("allow_hosts"), "{listed}");

    // Allowed in the config, the same file loads.
    let allowing = config.replace(
        "adapter = \"twilio\"\n",
        "adapter = \"twilio\"\nallow_hosts = [\"api.twilio.com\", \"rest.messagebird.com\"]\n",
    );
    let bridge = Bridge::start_with(&allowing, |dir| {
        std::fs::create_dir_all(dir.join("adapters")).unwrap();
        std::fs::copy(artifacts::MESSAGEBIRD_WASM, dir.join("adapters/twilio.wasm")).unwrap();
    })
    .await;
    assert_ne!(bridge.gateway.routing().adapter_of("tw").unwrap().sha256, bundled);
    assert!(bridge.gateway.registry.errors().is_empty());
}

#[tokio::test]
async fn the_admin_listener_requires_its_token_when_one_is_set() {
    let config = format!("[admin]\ntoken = \"adm-7c1e2b9d4f\"\n{}", *SWAP);
    let bridge = Bridge::start_from_file(&config, |dir| install(dir, artifacts::OUTBOX_WASM)).await;
    let url = format!("http://{}/admin/adapters", bridge.admin_addr);
    let status = |auth: Option<&'static str>| {
        let mut req = bridge.client.get(&url);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for (auth, expected) in
        [(None, 401), (Some("Bearer wrong"), 401), (Some("adm-7c1e2b9d4f"), 401), (Some("Bearer adm-7c1e2b9d4f"), 200)]
    {
        assert_eq!(status(auth).await, expected, "{auth:?}");
    }
    // A rotated token applies from the reload on; the old one no longer does.
    let file = bridge.path("smsbridge.toml");
    let rotated = std::fs::read_to_string(&file).unwrap().replace("adm-7c1e2b9d4f", "adm-0a55e1c3b7");
    std::fs::write(&file, rotated).unwrap();
    bridge.gateway.reload_config().await;
    assert_eq!(status(Some("Bearer adm-7c1e2b9d4f")).await, 401);
    assert_eq!(status(Some("Bearer adm-0a55e1c3b7")).await, 200);
    // An empty token is refused on reload, and the one in force stays.
    let emptied = std::fs::read_to_string(&file).unwrap().replace("adm-0a55e1c3b7", "");
    std::fs::write(&file, emptied).unwrap();
    bridge.gateway.reload_config().await;
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("Bearer adm-0a55e1c3b7")).await, 200);
}

/// A provider on loopback that answers every request on a connection kept
/// alive, and counts the connections it accepted.
fn counting_provider() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = r#"{"id":"pooled-1"}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        answer.len()
                    );
                    if writer.write_all(format!("{head}{answer}").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, connections)
}

#[tokio::test]
async fn a_config_reload_keeps_the_connections_to_providers() {
    let (mock, connections) = counting_provider();
    let provider = format!(
        "[[provider]]\nname = \"p\"\nadapter = \"generic-http\"\nallow_hosts = [\"{mock}\"]\n[provider.config]\n\
         url = \"{mock}/send\"\nparams = \"to={{to}}&text={{body}}\"\nid_pointer = \"/id\"\n"
    );
    let config = format!("{provider}{}", quiet_route("/v1/send", &["p"], ""));
    let bridge = Bridge::start(&config).await;
    let send = || bridge.post_form("/v1/send", &[("phone", PHONE), ("message", "hi")]);
    assert_eq!(send().await.status, 200);
    // A reload that changes a route, not the provider: its connection stays.
    let edited = format!("{config}{}", quiet_route("/v1/other", &["p"], ""));
    let edited =
        smsbridge::config::Config::parse(&edited.replace("{dir}", bridge.dir.path().to_str().unwrap()), "edit")
            .unwrap();
    bridge.gateway.apply_config(edited).await.unwrap();
    assert_eq!(send().await.status, 200);
    assert_eq!(bridge.post_form("/v1/other", &[("phone", PHONE), ("message", "hi")]).await.status, 200);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "a reload dropped the pooled connection to the provider");
}
