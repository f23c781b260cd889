//! smsbridge against the native baseline when the provider takes its time,
//! and one provider stuck at its limit beside a healthy one.
//!
//! `cargo bench -p smsbridge --bench latency`
//!
//! A mock Twilio in this process answers after 0, 100 or 300 ms. smsbridge
//! (the release binary) and the native baseline (this binary re-run: parse,
//! normalise, reqwest to the mock, no WebAssembly) each run as their own
//! process; 1,000 closed-loop callers drive each in turn, median of three
//! runs. Then: resident memory with 1,000 and 5,000 sends waiting on the
//! provider, and the bulkhead scenario (a provider answering after 10 s, held
//! at its `max_in_flight`, while another route's p99 is measured beside its
//! unloaded p99).

mod common;

use common::twilio::{self, Load, Run, closed_loop, median};
use common::{KillOnDrop, free_addr, ms, rss_mib, start_smsbridge};
use std::sync::atomic::Ordering;
use std::time::Duration;

const CLIENTS: usize = 1000;
const RUNS: usize = 3;
const LATENCIES_MS: [u64; 3] = [0, 100, 300];
const HELD: [usize; 2] = [1000, 5000];
/// The stuck provider's latency and limit, and its callers.
const STUCK_MS: u64 = 10_000;
const STUCK_LIMIT: usize = 200;
const STUCK_CALLERS: usize = 400;
const PROBE: Load = Load { clients: 16, messages: 20_000, longest: Duration::from_secs(4) };

fn config(dir: &std::path::Path, providers: &str, routes: &str) -> std::path::PathBuf {
    common::write_config(
        dir,
        &format!(
            "[server]\nmax_connections = 12000\n[adapters]\ncache_dir = \"{d}/cache\"\n{providers}\n{routes}",
            d = dir.display()
        ),
    )
}

fn route(path: &str, provider: &str, extra: &str) -> String {
    format!("\n[[route]]\npath = \"{path}\"\nproviders = [\"{provider}\"]\n{extra}\n{}", common::QUIET)
}

fn row(name: &str, runs: &[Run]) -> String {
    let rps = median(runs.iter().map(|r| r.rps).collect());
    let p50 = median(runs.iter().map(|r| r.p50).collect());
    let p99 = median(runs.iter().map(|r| r.p99).collect());
    let rss = runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let errors: usize = runs.iter().map(|r| r.errors).sum();
    format!("| {name} | {rps:.0} | {} | {} | {rss:.0} MiB | {errors} |", ms(p50), ms(p99))
}

#[tokio::main]
async fn main() {
    let Some((mock, provider, dir)) = twilio::start().await else {
        return;
    };
    let file = config(
        dir.path(),
        &twilio::provider("twilio", mock, "max_in_flight = 6000"),
        &route("/v1/send", "twilio", "deadline_ms = 30000"),
    );
    let addr = free_addr();
    // Started twice: the figures are of a start from a warm compiled-code cache.
    drop(KillOnDrop(start_smsbridge(&file, addr).0));
    let bridge = KillOnDrop(start_smsbridge(&file, addr).0);
    let (baseline, baseline_addr) = twilio::start_baseline(mock);
    let baseline = KillOnDrop(baseline);
    let servers = [("native baseline", baseline_addr, baseline.0.id()), ("smsbridge", addr, bridge.0.id())];
    let idle: Vec<f64> = servers.iter().map(|s| rss_mib(s.2)).collect();

    let client = twilio::client(CLIENTS);
    let mut table = Vec::new();
    for latency in LATENCIES_MS {
        provider.set_latency(latency);
        let messages = if latency == 0 { 30_000 } else { 10_000 };
        let load = Load { clients: CLIENTS, messages, longest: Duration::from_secs(20) };
        let warm = Load { messages: 2 * CLIENTS, ..load };
        eprintln!("provider latency {latency} ms");
        for (_, addr, pid) in servers {
            closed_loop(&client, &format!("http://{addr}/v1/send"), warm, pid).await;
        }
        let mut runs = [Vec::new(), Vec::new()];
        let mut in_flight = 0;
        for _ in 0..RUNS {
            for (i, (_, addr, pid)) in servers.iter().enumerate() {
                provider.reset_peak();
                runs[i].push(closed_loop(&client, &format!("http://{addr}/v1/send"), load, *pid).await);
                if i == 1 {
                    in_flight = in_flight.max(provider.peak.load(Ordering::Relaxed));
                }
            }
        }
        table.push((latency, runs, in_flight));
    }

    drop(client);
    // Sends held waiting on the provider: resident memory per thousand.
    provider.set_latency(3000);
    let mut held = Vec::new();
    for n in HELD {
        for (i, (_, addr, pid)) in servers.iter().enumerate() {
            provider.reset_peak();
            let wave = Load { clients: n, messages: n, longest: Duration::from_secs(60) };
            eprintln!("{} with {n} sends held", servers[i].0);
            // Its own connections, closed after: file descriptors run short.
            let client = twilio::client(n);
            let run = closed_loop(&client, &format!("http://{addr}/v1/send"), wave, *pid).await;
            let reached = provider.peak.load(Ordering::Relaxed);
            held.push((i, n, reached, run.peak_rss_mib, run.errors));
        }
    }
    drop((bridge, baseline));

    eprintln!("bulkhead");
    let bulkhead = bulkhead_scenario(dir.path()).await;

    println!("## Provider latency: {CLIENTS} closed-loop callers, median of {RUNS} runs");
    println!();
    println!("| provider latency | server | msg/s delivered | p50 | p99 | peak RSS | errors |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (latency, runs, _) in &table {
        for (i, (name, _, _)) in servers.iter().enumerate() {
            println!("| {latency} ms {}", row(name, &runs[i]));
        }
    }
    println!();
    for (latency, runs, in_flight) in &table {
        let base = median(runs[0].iter().map(|r| r.rps).collect());
        let ours = median(runs[1].iter().map(|r| r.rps).collect());
        println!(
            "{latency} ms: smsbridge / baseline throughput {:.0}%, most sends in flight at the provider {in_flight}",
            ours / base * 100.0
        );
    }
    println!();
    println!("## Resident memory with sends waiting on a provider that answers after 3 s");
    println!();
    println!("| server | sends in flight | idle RSS | peak RSS | (peak − idle) per 1,000 in flight | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (i, n, reached, peak, errors) in held {
        let per = (peak - idle[i]) / reached.max(1) as f64 * 1000.0;
        println!(
            "| {} | {reached} of {n} | {:.0} MiB | {peak:.0} MiB | {per:.0} MiB | {errors} |",
            servers[i].0, idle[i]
        );
    }
    println!();
    println!(
        "## Bulkhead: a provider answering after {} s held at max_in_flight = {STUCK_LIMIT} by {STUCK_CALLERS} callers",
        STUCK_MS / 1000
    );
    println!();
    println!("| another route ({} callers, provider answering at once) | msg/s | p50 | p99 | errors |", PROBE.clients);
    println!("| --- | --- | --- | --- | --- |");
    for (name, run) in [("unloaded", &bulkhead.0), ("beside the stuck provider", &bulkhead.1)] {
        println!("| {name} | {:.0} | {} | {} | {} |", run.rps, ms(run.p50), ms(run.p99), run.errors);
    }
    println!(
        "p99 beside the stuck provider − unloaded p99: {:+.2} ms; the stuck provider held at most {} sends; its callers' answers: p50 {}, {} not 200",
        (bulkhead.1.p99.as_secs_f64() - bulkhead.0.p99.as_secs_f64()) * 1000.0,
        bulkhead.2,
        ms(bulkhead.3.p50),
        bulkhead.3.errors,
    );
}

/// Another route's figures unloaded, then beside a provider stuck at its
/// limit; the most the stuck provider held, and its callers' run.
async fn bulkhead_scenario(dir: &std::path::Path) -> (Run, Run, usize, Run) {
    let (stuck_addr, stuck) = twilio::mock_twilio(STUCK_MS).await;
    let (fast_addr, _) = twilio::mock_twilio(0).await;
    let file = config(
        dir,
        &format!(
            "{}{}",
            twilio::provider("stuck", stuck_addr, &format!("max_in_flight = {STUCK_LIMIT}\ntimeout_ms = 30000")),
            twilio::provider("fast", fast_addr, "")
        ),
        // `/v1/send` answers the start-up probe.
        &format!(
            "{}{}{}",
            route("/stuck", "stuck", "deadline_ms = 15000"),
            route("/fast", "fast", ""),
            route("/v1/send", "fast", "")
        ),
    );
    let addr = free_addr();
    let bridge = KillOnDrop(start_smsbridge(&file, addr).0);
    let pid = bridge.0.id();
    let client = twilio::client(STUCK_CALLERS + PROBE.clients);
    let fast = format!("http://{addr}/fast");
    closed_loop(&client, &fast, PROBE, pid).await;
    let unloaded = closed_loop(&client, &fast, PROBE, pid).await;

    let stuck_load = {
        let (client, url) = (client.clone(), format!("http://{addr}/stuck"));
        let load = Load { clients: STUCK_CALLERS, messages: usize::MAX, longest: Duration::from_secs(12) };
        tokio::spawn(async move { closed_loop(&client, &url, load, pid).await })
    };
    // A build without bulkheads may never hold that many: 5 s at most.
    let filling = std::time::Instant::now();
    while stuck.in_flight.load(Ordering::Relaxed) < STUCK_LIMIT && filling.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let beside = closed_loop(&client, &fast, PROBE, pid).await;
    let held = stuck.peak.load(Ordering::Relaxed);
    let stuck_run = stuck_load.await.unwrap();
    drop(bridge);
    (unloaded, beside, held, stuck_run)
}
