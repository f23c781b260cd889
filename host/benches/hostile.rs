//! What hostile callers cost smsbridge, against the release binary.
//!
//! `cargo bench -p smsbridge --bench hostile`
//!
//! - Digest flood: requests without credentials to a Digest route, from 16
//!   closed-loop clients. Refusals per second over the first and the tenth
//!   100,000, with resident memory before and after: a refusal stores
//!   nothing, so neither may get worse.
//! - Half-open connections: a normal send's latency (200 sends, one at a
//!   time) with no other connection, then while 1,000 connections each hold
//!   half a request header.

mod common;

use common::{free_addr, ms, rss_mib, start_smsbridge};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BATCH: usize = 100_000;
const BATCHES: usize = 10;
const CLIENTS: usize = 16;
const SENDS: usize = 200;

/// Sends `count` requests without credentials from `CLIENTS` clients;
/// refusals per second.
async fn flood(url: &str, count: usize) -> f64 {
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let left = Arc::new(AtomicUsize::new(count));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, left) = (client.clone(), url.to_string(), left.clone());
            tokio::spawn(async move {
                while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                    let resp = client.post(&url).form(&[("phone", "+447400123456")]).send().await.unwrap();
                    assert_eq!(resp.status(), 401);
                    resp.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Median and 99th percentile of `SENDS` sends, one at a time.
async fn send_latency(url: &str) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    for i in 0..SENDS {
        let started = Instant::now();
        let resp = client
            .post(url)
            .form(&[("phone", "+447400123456"), ("message", format!("Your code is {i:06}").as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        took.push(started.elapsed());
    }
    took.sort();
    (took[SENDS / 2], took[SENDS * 99 / 100 - 1])
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"
[server]
max_connections = 4096
[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{d}/outbox"
[[route]]
path = "/v1/digest"
providers = ["outbox"]
auth = {{ digest = {{ user = "linotp", password = "bench-digest-pass" }} }}
[[route]]
path = "/v1/send"
providers = ["outbox"]
{quiet}"#,
            d = dir.path().display(),
            quiet = common::QUIET,
        ),
    );
    let addr = free_addr();
    let (mut child, _) = start_smsbridge(&config, addr);

    println!("## Digest flood: {BATCHES} × {BATCH} requests without credentials, {CLIENTS} clients\n");
    let before = rss_mib(child.id());
    let url = format!("http://{addr}/v1/digest");
    let mut rates = Vec::new();
    for _ in 0..BATCHES {
        rates.push(flood(&url, BATCH).await);
    }
    let after = rss_mib(child.id());
    println!("| | refusals/s | RSS |");
    println!("| --- | --- | --- |");
    println!("| before | — | {before:.1} MiB |");
    println!("| first 100,000 | {:.0} | — |", rates[0]);
    println!("| tenth 100,000 | {:.0} | {after:.1} MiB |", rates[BATCHES - 1]);
    println!("\ntenth / first: {:.0} %\n", rates[BATCHES - 1] / rates[0] * 100.0);

    println!("## A send while connections hang: {SENDS} sends, one at a time\n");
    let url = format!("http://{addr}/v1/send");
    let (quiet50, quiet99) = send_latency(&url).await;
    let held: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /v1/send HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let (held50, held99) = send_latency(&url).await;
    println!("| | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!("| no other connection | {} | {} |", ms(quiet50), ms(quiet99));
    println!("| 1,000 half-open connections held | {} | {} |", ms(held50), ms(held99));
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}
