//! The same adapter in Rust, JavaScript and Python, side by side: file size,
//! compile time, load time from the compiled-code cache, and the cost of one
//! send with the provider's answer canned (no network).
//!
//! `adapters/examples/build.sh && cargo bench -p smsbridge --bench languages`
//!
//! The Rust adapter is the one `smsbridge adapter new` writes; the other two
//! are `adapters/examples/`. All three pass the same fixtures.

use smsbridge::config::Config;
use smsbridge::outbound::Canned;
use smsbridge::outbound::Response as HttpResponse;
use smsbridge::outcome::Outgoing;
use smsbridge::routing::sandbox_spec;
use smsbridge::runtime::{ProviderContext, Runtime};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Builds the scaffolded Rust adapter (shared with the authoring test).
fn rust_adapter() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join("bench-scaffold");
    if !dir.join("Cargo.toml").exists() {
        let spec = smsbridge::scaffold::Scaffold { name: "acme-sms".into(), provider: None, host: None, sdk: None };
        smsbridge::scaffold::create(&spec, &dir).unwrap();
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", tmp.join("scaffold"))
        .status()
        .unwrap();
    assert!(status.success());
    tmp.join("scaffold/wasm32-wasip2/release/acme_sms.wasm")
}

fn example(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join(format!("examples/{name}.wasm"));
    assert!(path.exists(), "{} is missing: run adapters/examples/build.sh", path.display());
    path
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let runtime = Runtime::new().unwrap();
    let config = Config::parse(
        r#"
[[provider]]
name = "bench"
adapter = "bench"
[provider.config]
api_key = "bench-key"
from = "Bank"
"#,
        "bench.toml",
    )
    .unwrap();
    let msg = Outgoing {
        id: "01a20bcec41f733aa8b15b14d45f9319".into(),
        to: "+447700900123".into(),
        body: "Your code is 123456".into(),
        sender: None,
    };

    let adapters = [
        ("Rust", rust_adapter(), 5, 500),
        ("JavaScript (QuickJS)", example("example-js"), 3, 200),
        ("Python", example("example-python"), 3, 100),
    ];
    println!("| adapter | size | compile | load from cache | send (median) | send vs Rust |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut rust_send = None;
    for (label, path, compiles, sends) in adapters {
        let bytes = std::fs::read(&path).unwrap();
        let source = path.display().to_string();
        let compile = median(
            (0..compiles)
                .map(|_| {
                    // A fresh runtime: its in-memory cache would skip the compile.
                    let runtime = Runtime::new().unwrap();
                    let start = Instant::now();
                    rt.block_on(runtime.load(&bytes, &source, None)).unwrap();
                    start.elapsed()
                })
                .collect(),
        );
        let cache = tempfile::tempdir().unwrap();
        rt.block_on(runtime.load(&bytes, &source, Some(cache.path()))).unwrap();
        let from_cache = median(
            (0..5)
                .map(|_| {
                    let runtime = Runtime::new().unwrap();
                    let start = Instant::now();
                    rt.block_on(runtime.load(&bytes, &source, Some(cache.path()))).unwrap();
                    start.elapsed()
                })
                .collect(),
        );

        let adapter = rt.block_on(runtime.load(&bytes, &source, None)).unwrap();
        let canned = Canned(HttpResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id":"msg-1"}"#.to_vec(),
        });
        let mut spec = sandbox_spec(&config.providers[0], None, None);
        spec.responder = Some(Arc::new(canned));
        let ctx = ProviderContext::new(spec, &adapter.info).unwrap();
        let ctx = Arc::new(ctx);
        // Warm up, and check the canned answer goes through the real adapter.
        for _ in 0..5 {
            let accepted = rt.block_on(runtime.send(&adapter, &ctx, msg.clone(), Default::default())).unwrap();
            assert_eq!(accepted, "msg-1");
        }
        let send = median(
            (0..sends)
                .map(|_| {
                    let start = Instant::now();
                    rt.block_on(runtime.send(&adapter, &ctx, msg.clone(), Default::default())).unwrap();
                    start.elapsed()
                })
                .collect(),
        );
        let base = *rust_send.get_or_insert(send);
        println!(
            "| {label} | {:.2} MB | {:.0} ms | {:.1} ms | {:.0} µs | {:.1}× |",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64() * 1e3,
            from_cache.as_secs_f64() * 1e3,
            send.as_secs_f64() * 1e6,
            send.as_secs_f64() / base.as_secs_f64()
        );
    }
}
