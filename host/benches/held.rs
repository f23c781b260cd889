//! What a send waiting on its provider keeps resident, by part, against the
//! native baseline.
//!
//! `cargo bench -p smsbridge --bench held`
//!
//! A mock Twilio in this process answers after 3 s. For 1,000 and then
//! 5,000 callers, each sending one message, a fresh smsbridge (the release
//! binary, or `SMSBRIDGE_BIN`) and a fresh native baseline (this binary
//! re-run) are started in turn, warmed by a few sends, and read from
//! `/proc/PID/smaps` idle and again once the mock holds every send (or
//! 2.5 s after the first caller, before the first answer). Median of 3 runs
//! of each, alternating.

mod common;

use common::smaps::Parts;
use common::twilio::{self, Load, closed_loop, median};
use common::{KillOnDrop, free_addr, start_smsbridge};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const HELD: [usize; 2] = [1000, 5000];
const LATENCY_MS: u64 = 3000;

/// One wave's reading: sends held at the reading, the parts idle and held.
struct Reading {
    held: usize,
    idle: Parts,
    busy: Parts,
    /// Callers not answered 200.
    errors: usize,
}

impl Reading {
    fn per_send(&self) -> f64 {
        (self.busy.total() as f64 - self.idle.total() as f64) / self.held.max(1) as f64
    }
}

#[tokio::main]
async fn main() {
    let Some((mock, provider, dir)) = twilio::start().await else {
        return;
    };
    let file = common::write_config(
        dir.path(),
        &format!(
            "[server]\nmax_connections = 12000\n[adapters]\ncache_dir = \"{d}/cache\"\n{p}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"twilio\"]\ndeadline_ms = 30000\n{q}",
            d = dir.path().display(),
            p = twilio::provider("twilio", mock, "max_in_flight = 6000\ntimeout_ms = 20000"),
            q = common::QUIET,
        ),
    );
    // Compiles the adapters into the cache once, outside the runs.
    drop(KillOnDrop(start_smsbridge(&file, free_addr()).0));

    let mut readings: Vec<(usize, usize, Vec<Reading>)> = Vec::new();
    for n in HELD {
        let mut runs = [Vec::new(), Vec::new()];
        for run in 0..RUNS {
            for (i, runs) in runs.iter_mut().enumerate() {
                eprintln!("{} run {run}: {n} sends held", ["native baseline", "smsbridge"][i]);
                provider.set_latency(0);
                let (child, addr) = if i == 0 {
                    twilio::start_baseline(mock)
                } else {
                    let addr = free_addr();
                    (start_smsbridge(&file, addr).0, addr)
                };
                let child = KillOnDrop(child);
                runs.push(wave(&provider, child.0.id(), &format!("http://{addr}/v1/send"), n).await);
            }
        }
        let [baseline, ours] = runs;
        readings.push((n, 0, baseline));
        readings.push((n, 1, ours));
    }

    println!("## Resident memory per send waiting on a provider that answers after {} s", LATENCY_MS / 1000);
    println!();
    println!("Median of {RUNS} fresh processes each; KiB of growth from idle, per send held.");
    println!();
    println!("| server | callers | held at the reading (median) | idle RSS | RSS per send held | errors (all runs) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (n, i, runs) in &readings {
        let held = median(runs.iter().map(|r| r.held).collect());
        let idle = median(runs.iter().map(|r| r.idle.total() as f64 / 1024.0).collect());
        let per = median(runs.iter().map(Reading::per_send).collect());
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        let name = ["native baseline", "smsbridge"][*i];
        println!("| {name} | {n} | {held} | {idle:.1} MiB | {per:.1} KiB | {errors} |");
    }
    println!();
    println!("smsbridge, KiB per send held by part (median of each part):");
    println!();
    println!("| callers | {} |", smsbridge_parts(&readings).join(" | "));
    println!("| --- |{}", " --- |".repeat(smsbridge_parts(&readings).len()));
    for (n, i, runs) in &readings {
        if *i != 1 {
            continue;
        }
        let cells: Vec<String> =
            smsbridge_parts(&readings).iter().map(|part| format!("{:.1}", part_per_send(runs, part))).collect();
        println!("| {n} | {} |", cells.join(" | "));
    }
    println!();
    for n in HELD {
        let of = |i| readings.iter().find(|r| r.0 == n && r.1 == i).map(|r| &r.2).unwrap();
        let base = median(of(0).iter().map(Reading::per_send).collect());
        let ours = median(of(1).iter().map(Reading::per_send).collect());
        let shared = part_per_send(of(1), common::smaps::MEMORY_IMAGE);
        println!(
            "{n} callers: smsbridge − baseline {:.1} KiB per send held; {:.1} KiB without the image pages every slot maps from one copy",
            ours - base,
            ours - base - shared
        );
    }
}

/// Median growth per send of `part` over `runs`.
fn part_per_send(runs: &[Reading], part: &str) -> f64 {
    median(
        runs.iter()
            .map(|r| r.busy.per(&r.idle, r.held).iter().find(|(k, _)| *k == part).map_or(0.0, |(_, v)| *v))
            .collect(),
    )
}

fn smsbridge_parts(readings: &[(usize, usize, Vec<Reading>)]) -> Vec<&'static str> {
    let mut parts: Vec<&'static str> =
        readings.iter().filter(|r| r.1 == 1).flat_map(|r| r.2.iter().flat_map(|x| x.busy.0.keys().copied())).collect();
    parts.sort();
    parts.dedup();
    parts
}

/// Warms the server at `url` (process `pid`), reads it idle, sends `n` at
/// once to the slow mock and reads it again while they are held.
async fn wave(provider: &twilio::Mock, pid: u32, url: &str, n: usize) -> Reading {
    let client = twilio::client(n);
    let warm = Load { clients: 4, messages: 200, longest: Duration::from_secs(10) };
    closed_loop(&client, url, warm, pid).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = Parts::of(pid);
    provider.set_latency(LATENCY_MS);
    provider.reset_peak();
    let load = Load { clients: n, messages: n, longest: Duration::from_secs(30) };
    let sends = tokio::spawn({
        let (client, url) = (client.clone(), url.to_string());
        async move { closed_loop(&client, &url, load, pid).await }
    });
    let started = Instant::now();
    while provider.in_flight.load(Ordering::Relaxed) < n && started.elapsed() < Duration::from_millis(2500) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = provider.in_flight.load(Ordering::Relaxed);
    let busy = Parts::of(pid);
    let errors = sends.await.unwrap().errors;
    Reading { held, idle, busy, errors }
}
