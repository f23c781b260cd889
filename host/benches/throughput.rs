//! smsbridge against a native baseline, in one run on one machine.
//!
//! `cargo bench -p smsbridge --bench throughput`
//!
//! A mock Twilio answers `201` on loopback. smsbridge (the release binary, its
//! own process) sends through the bundled twilio adapter to it; the baseline
//! is a plain Rust server doing the same job with no WebAssembly: parse the
//! form, normalise the number, form-encode the Twilio request with reqwest,
//! read the answer, answer the same JSON. It runs as its own process too (this
//! binary, re-run with `BASELINE_FOR_MOCK` set), so both pay the same
//! cross-process costs. One closed-loop load generator drives both,
//! alternating, three runs each.
//! Also: start to first send (cold and warm compiled-code cache) and
//! smsbridge's resident memory idle and after the load.

mod common;

use common::twilio::{self, Run, median};
use common::{free_addr, ms, rss_mib, start_smsbridge};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const RUNS: usize = 3;

/// Closed loop: `CONCURRENCY` workers, each sending as soon as its last
/// answer came; warm-up first, then latencies over `MEASURE`.
async fn load(url: &str) -> Run {
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, measuring, stop) = (client.clone(), url.to_string(), measuring.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = match client
                    .post(&url)
                    .form(&[("phone", "+447400123456"), ("message", "Your code is 123456")])
                    .send()
                    .await
                {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok { latencies.push(started.elapsed()) } else { errors += 1 }
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(MEASURE).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (all, errors) = twilio::gather(workers).await;
    Run::of(all, errors, elapsed, 0.0)
}

#[tokio::main]
async fn main() {
    let Some((mock, _, dir)) = twilio::start().await else {
        return;
    };
    let config = common::write_config(
        dir.path(),
        &format!(
            "[adapters]\ncache_dir = \"{d}/cache\"\n{twilio}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"twilio\"]\n\
             # One number and text, sent again and again: measure sends, not replays or refusals.\n{quiet}",
            d = dir.path().display(),
            twilio = twilio::provider("twilio", mock, ""),
            quiet = common::QUIET,
        ),
    );
    let addr = free_addr();

    // Start to first send, cold then warm compiled-code cache.
    let (mut child, cold) = start_smsbridge(&config, addr);
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, warm) = start_smsbridge(&config, addr);
    let idle_rss = rss_mib(child.id());

    let (mut baseline, baseline_addr) = twilio::start_baseline(mock);

    let (mut base_runs, mut bridge_runs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        base_runs.push(load(&format!("http://{baseline_addr}/v1/send")).await);
        bridge_runs.push(load(&format!("http://{addr}/v1/send")).await);
    }
    let loaded_rss = rss_mib(child.id());
    for process in [&mut child, &mut baseline] {
        process.kill().unwrap();
        process.wait().unwrap();
    }

    println!(
        "closed loop, {CONCURRENCY} clients, {}s measured after {}s warm-up, median of {RUNS} runs:",
        MEASURE.as_secs(),
        WARMUP.as_secs()
    );
    println!("| server | req/s | p50 | p99 | max | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut summary = Vec::new();
    for (name, runs) in [("native baseline", &base_runs), ("smsbridge", &bridge_runs)] {
        let rps = median(runs.iter().map(|r| r.rps).collect());
        let p50 = median(runs.iter().map(|r| r.p50).collect());
        let p99 = median(runs.iter().map(|r| r.p99).collect());
        let max = median(runs.iter().map(|r| r.max).collect());
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        println!("| {name} | {rps:.0} | {} | {} | {} | {errors} |", ms(p50), ms(p99), ms(max));
        summary.push((rps, p99));
    }
    println!(
        "smsbridge / baseline: throughput {:.0}%, p99 {:+.2} ms",
        summary[1].0 / summary[0].0 * 100.0,
        (summary[1].1.as_secs_f64() - summary[0].1.as_secs_f64()) * 1000.0
    );
    println!("start to first send: cold cache {}, warm cache {}", ms(cold), ms(warm));
    println!("smsbridge resident memory: idle {idle_rss:.1} MiB, after the load {loaded_rss:.1} MiB");
}
