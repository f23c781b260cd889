//! What one route's fsyncs cost another's callers: with `[record]` on
//! (`synchronous = FULL`, an fsync per write), 16 closed-loop callers on one
//! route, and the p99 of 4 callers on a second route beside their p99 with
//! the first route idle. A record that wrote on tokio's worker threads
//! stalled every task scheduled there for the length of each fsync.
//!
//! `cargo bench -p smsbridge --bench neighbours`; to compare with another
//! build, `SMSBRIDGE_BIN=/path/to/smsbridge` runs that binary instead.

mod common;

use common::twilio::{self, Load, Run, closed_loop, median};
use common::{KillOnDrop, free_addr, ms, start_smsbridge};
use std::time::Duration;

const RUNS: usize = 3;
const BUSY: Load = Load { clients: 16, messages: usize::MAX, longest: Duration::from_secs(8) };
const QUIET: Load = Load { clients: 4, messages: 4_000, longest: Duration::from_secs(6) };

fn route(path: &str) -> String {
    format!("\n[[route]]\npath = \"{path}\"\nproviders = [\"twilio\"]\n{}", common::QUIET)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (mock, _) = twilio::mock_twilio(0).await;
    let file = common::write_config(
        dir.path(),
        &format!(
            "[record]\npath = \"{d}/messages.db\"\n[adapters]\ncache_dir = \"{d}/cache\"\n{}{}{}{}",
            twilio::provider("twilio", mock, ""),
            route("/busy"),
            route("/quiet"),
            // Answers the start-up probe.
            route("/v1/send"),
            d = dir.path().display()
        ),
    );
    let addr = free_addr();
    let bridge = KillOnDrop(start_smsbridge(&file, addr).0);
    let pid = bridge.0.id();
    let client = twilio::client(BUSY.clients + QUIET.clients);
    let (busy, quiet) = (format!("http://{addr}/busy"), format!("http://{addr}/quiet"));
    // Warm-up: the adapter compiled, the pool and the record's file touched.
    closed_loop(&client, &quiet, Load { messages: 500, ..QUIET }, pid).await;

    let (mut alone, mut beside, mut loaders) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        eprintln!("run {}", run + 1);
        alone.push(closed_loop(&client, &quiet, QUIET, pid).await);
        let load = {
            let (client, busy) = (client.clone(), busy.clone());
            tokio::spawn(async move { closed_loop(&client, &busy, BUSY, pid).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        beside.push(closed_loop(&client, &quiet, QUIET, pid).await);
        loaders.push(load.await.unwrap());
    }
    drop(bridge);

    let summary = |runs: &[Run]| {
        let p50 = median(runs.iter().map(|r| r.p50).collect());
        let p99 = median(runs.iter().map(|r| r.p99).collect());
        let rps = median(runs.iter().map(|r| r.rps).collect());
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        (p50, p99, rps, errors)
    };
    println!("| the quiet route's 4 callers | p50 | p99 | msg/s | errors |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, runs) in [("first route idle", &alone), ("beside 16 callers on the first", &beside)] {
        let (p50, p99, rps, errors) = summary(runs);
        println!("| {name} | {} | {} | {rps:.0} | {errors} |", ms(p50), ms(p99));
    }
    let (p50, p99, rps, errors) = summary(&loaders);
    println!("\nthe busy route: {rps:.0} msg/s, p50 {}, p99 {}, {errors} errors", ms(p50), ms(p99));
    let ratio = summary(&beside).1.as_secs_f64() / summary(&alone).1.as_secs_f64();
    println!("quiet p99 beside the busy route ÷ quiet p99 alone: {ratio:.2}× (median of {RUNS} runs each)");
}
