//! Reload benchmark: how long a new adapter file takes to serve, and what the
//! compiled-code cache saves.
//!
//! `cargo bench -p smsbridge --bench reload`
//!
//! 1. Compile time per bundled adapter with a cold cache (Cranelift) and a
//!    warm one (deserialise), each in a fresh runtime, as a restart would.
//! 2. Reload latency: from a completed rename of a new version into the
//!    adapters folder to the first HTTP answer from that version, through the
//!    real server, watcher and registry; versions alternate so every swap is
//!    a real change, and both are in the cache (the warm case).

mod common;

use common::ms;
use smsbridge::artifacts::{BUNDLED, HOSTILE_WASM, OUTBOX_WASM};
use smsbridge::config::Config;
use smsbridge::gateway::Gateway;
use smsbridge::runtime::Runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RELOADS: usize = 40;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    // 1. Cold and warm compile of every bundled adapter.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    // A fresh runtime each pass, as a restart has: the first fills the cache.
    for runs in [&mut cold, &mut warm] {
        let runtime = Runtime::new().unwrap();
        for (name, bytes) in BUNDLED {
            let started = Instant::now();
            runtime.load(bytes, name, Some(&cache)).await.unwrap();
            runs.push(started.elapsed());
        }
    }
    println!("compile + link + info(), per bundled adapter ({} adapters):", BUNDLED.len());
    println!("  cold cache (Cranelift): median {}, max {}", ms(median(&mut cold)), ms(*cold.last().unwrap()));
    println!("  warm cache (deserialise): median {}, max {}", ms(median(&mut warm)), ms(*warm.last().unwrap()));
    println!("  ratio cold / warm: {:.0}x", median(&mut cold).as_secs_f64() / median(&mut warm).as_secs_f64());

    // 2. Reload latency through the real server.
    let adapters = dir.path().join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    let file = adapters.join("swap.wasm");
    std::fs::copy(OUTBOX_WASM, &file).unwrap();
    let text = format!(
        r#"
[adapters]
dir = "{d}/adapters"
cache_dir = "{d}/cache"
[[provider]]
name = "swap"
adapter = "swap"
data_dir = "{d}/box"
config = {{ mode = "echo" }}
[[route]]
path = "/swap"
providers = ["swap"]
{quiet}"#,
        d = dir.path().display(),
        quiet = common::QUIET,
    );
    let config = Config::parse(&text, "bench.toml").unwrap();
    let gateway = Arc::new(Gateway::new(config, Runtime::new().unwrap()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/swap", listener.local_addr().unwrap());
    tokio::spawn(smsbridge::server::serve(gateway.clone(), listener, std::future::pending()));
    let _watch = smsbridge::watch::start(gateway.clone()).unwrap();
    let client = reqwest::Client::new();
    let versions = [HOSTILE_WASM, OUTBOX_WASM];

    let mut latencies = Vec::new();
    for i in 0..RELOADS {
        let echo = i % 2 == 0;
        let tmp = adapters.join("swap.wasm.part");
        std::fs::copy(versions[i % 2], &tmp).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let written = Instant::now();
        loop {
            let resp = client.post(&url).form(&[("phone", "+447400123456"), ("message", "v")]).send().await.unwrap();
            let v: serde_json::Value = resp.json().await.unwrap();
            let is_echo = v["provider_id"] == "+447400123456 v";
            if is_echo == echo {
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(10), "reload {i} never served");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(written.elapsed());
        // Let the watcher settle so each reload is measured alone.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    println!("reload, file renamed into place -> first answer from the new version ({RELOADS} reloads, warm cache):");
    println!(
        "  median {}, p99 {}, max {}",
        ms(median(&mut latencies)),
        ms(p99(&mut latencies)),
        ms(*latencies.last().unwrap())
    );
}
