//! smsbridge against Kannel 1.4.5's own SMPP client, both delivering to the
//! same SMSC simulator (npm's `smpp` package, `tests/smsc/smsc.js`) that
//! answers each `submit_sm` after 20 ms, one bind each with a window of 10
//! (Kannel's `max-pending-submits`). Measured at the SMSC, for both alike:
//! delivered msg/s, and the time from the HTTP request to the
//! `submit_sm_resp`; per message, the CPU the gateway's processes used; and
//! their peak RSS. Then smsbridge with 4 binds.
//!
//! Needs Debian's `kannel` (bearerbox, smsbox) and `tests/smsc/node_modules`
//! (`scripts/test` installs it). Not in CI.
//! `cargo bench -p smsbridge --bench kannel`.

mod common;

use common::{KillOnDrop, cpu, free_addr, kannel_config, rss_mib, start_smsbridge};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MESSAGES: usize = 3_000;
const CALLERS: usize = 50;
const RUNS: usize = 3;
const SMSC_DELAY_MS: u64 = 20;

/// The SMSC simulator and when it answered each text.
struct Smsc {
    _child: KillOnDrop,
    port: u16,
    answered: Arc<Mutex<HashMap<String, u64>>>,
}

fn start_smsc(system_id: &str) -> Smsc {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/smsc/smsc.js");
    let opts =
        format!(r#"{{"system_id":"{system_id}","password":"secret12","delay_ms":{SMSC_DELAY_MS},"quiet":true}}"#);
    let mut child =
        Command::new("node").args([script, &opts]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap().strip_prefix("listening ").unwrap().parse().unwrap();
    let answered = Arc::new(Mutex::new(HashMap::new()));
    let sink = answered.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["event"] == "answered" {
                sink.lock().unwrap().insert(v["text"].as_str().unwrap().to_string(), v["at"].as_u64().unwrap());
            }
        }
    });
    Smsc { _child: KillOnDrop(child), port, answered }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

struct Figures {
    rate: f64,
    p50: u64,
    p99: u64,
    cpu_us: f64,
    rss: f64,
}

/// Sends `MESSAGES` texts through `send` from `CALLERS` callers; waits until
/// the SMSC answered every one.
async fn race(
    label: &str,
    smsc: &Smsc,
    pids: &[u32],
    send: impl Fn(reqwest::Client, String) -> tokio::task::JoinHandle<bool> + Send + Sync + 'static,
) -> Figures {
    smsc.answered.lock().unwrap().clear();
    let client = reqwest::Client::builder().pool_max_idle_per_host(CALLERS).build().unwrap();
    let sent_at: Arc<Mutex<HashMap<String, u64>>> = Default::default();
    let next = Arc::new(AtomicUsize::new(0));
    let send = Arc::new(send);
    let (cpu_before, started, first) = (cpu(pids), Instant::now(), epoch_ms());
    let mut peak_rss: f64 = 0.0;
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, sent_at, next, send) = (client.clone(), sent_at.clone(), next.clone(), send.clone());
            let label = label.to_string();
            tokio::spawn(async move {
                let mut errors = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= MESSAGES {
                        return errors;
                    }
                    let text = format!("{label} {n}");
                    sent_at.lock().unwrap().insert(text.clone(), epoch_ms());
                    if !send(client.clone(), text).await.unwrap() {
                        errors += 1;
                    }
                }
            })
        })
        .collect();
    let mut errors = 0;
    for c in callers {
        errors += c.await.unwrap();
    }
    while smsc.answered.lock().unwrap().len() < MESSAGES - errors {
        peak_rss = peak_rss.max(pids.iter().map(|p| rss_mib(*p)).sum());
        assert!(started.elapsed() < Duration::from_secs(120), "{label}: the SMSC did not get every message");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak_rss = peak_rss.max(pids.iter().map(|p| rss_mib(*p)).sum());
    let used = cpu(pids) - cpu_before;
    let answered = smsc.answered.lock().unwrap().clone();
    let sent_at = sent_at.lock().unwrap();
    let mut latencies: Vec<u64> = answered.iter().map(|(t, at)| at.saturating_sub(sent_at[t])).collect();
    latencies.sort();
    let last = answered.values().max().copied().unwrap();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    assert_eq!(errors, 0, "{label}: {errors} requests failed");
    Figures {
        rate: answered.len() as f64 / ((last - first) as f64 / 1000.0),
        p50: at(0.50),
        p99: at(0.99),
        cpu_us: used.as_secs_f64() * 1e6 / MESSAGES as f64,
        rss: peak_rss,
    }
}

fn report(label: &str, f: &Figures, baseline: Option<&Figures>) {
    let ratio = baseline.map(|b| format!("  ({:.2}× Kannel's rate)", f.rate / b.rate)).unwrap_or_default();
    println!(
        "{label:<28} {:>8.0} msg/s  p50 {:>5} ms  p99 {:>5} ms  CPU {:>6.0} µs/msg  RSS {:>6.1} MiB{ratio}",
        f.rate, f.p50, f.p99, f.cpu_us, f.rss
    );
}

fn median_of(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by(|a, b| a.rate.partial_cmp(&b.rate).unwrap());
    runs.swap_remove(runs.len() / 2)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("bearerbox").arg("--version").output().is_err() {
        println!("kannel: skipped, Debian's `kannel` (bearerbox, smsbox) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Kannel: bearerbox holds the bind, smsbox takes HTTP.
    let kannel_smsc = start_smsc("kannel");
    let sendsms = free_addr().port();
    let smsc = format!(
        "smsc = smpp\nhost = 127.0.0.1\nport = {}\ntransceiver-mode = true\nsmsc-username = \"kannel\"\n\
         smsc-password = \"secret12\"\nsystem-type = \"\"\nmax-pending-submits = 10\nsource-addr-ton = 5\n\
         source-addr-npi = 0\ndest-addr-ton = 1\ndest-addr-npi = 1\n",
        kannel_smsc.port
    );
    let conf = kannel_config(dir.path(), &smsc, sendsms, 4);
    let bearerbox =
        KillOnDrop(Command::new("bearerbox").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let smsbox =
        KillOnDrop(Command::new("smsbox").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let kannel_pids = [bearerbox.0.id(), smsbox.0.id()];
    let kannel_send = move |client: reqwest::Client, text: String| {
        tokio::spawn(async move {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("username", "bench"),
                    ("password", "bench"),
                    ("from", "Bank"),
                    ("to", "447400123456"),
                    ("text", text.as_str()),
                ])
                .finish();
            let url = format!("http://127.0.0.1:{sendsms}/cgi-bin/sendsms?{query}");
            matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
        })
    };

    // smsbridge: one bind, the same window; then four binds.
    let bridge_smsc = start_smsc("smsbridge");
    let bridge_with = |binds: u32, port: u16| {
        let file = common::write_config(
            dir.path(),
            &format!(
                r#"[adapters]
cache_dir = "{d}/cache"
[[provider]]
name = "smsc"
adapter = "smpp"
sender = "Bank"
timeout_ms = 30000
[provider.smpp]
url = "smpp://127.0.0.1:{port}"
system_id = "smsbridge"
password = "secret12"
binds = {binds}
window = 10
[[route]]
path = "/v1/send"
providers = ["smsc"]
{quiet}"#,
                d = dir.path().display(),
                quiet = common::QUIET
            ),
        );
        let addr = free_addr();
        (KillOnDrop(start_smsbridge(&file, addr).0), addr)
    };
    let bridge_send = |addr: std::net::SocketAddr| {
        move |client: reqwest::Client, text: String| {
            tokio::spawn(async move {
                let form = [("phone", "+447400123456"), ("message", text.as_str())];
                matches!(client.post(format!("http://{addr}/v1/send")).form(&form).send().await, Ok(r) if r.status() == 200)
            })
        }
    };
    let (one, one_addr) = bridge_with(1, bridge_smsc.port);
    let one_pid = [one.0.id()];

    let (mut kannel, mut bridge) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        eprintln!("run {}", run + 1);
        kannel.push(race("kannel", &kannel_smsc, &kannel_pids, kannel_send).await);
        bridge.push(race("smsbridge", &bridge_smsc, &one_pid, bridge_send(one_addr)).await);
    }
    drop(one);
    let four_smsc = start_smsc("smsbridge");
    let (four, four_addr) = bridge_with(4, four_smsc.port);
    let four_pid = [four.0.id()];
    let mut fours = Vec::new();
    for _ in 0..RUNS {
        fours.push(race("smsbridge-4", &four_smsc, &four_pid, bridge_send(four_addr)).await);
    }

    println!(
        "{MESSAGES} messages from {CALLERS} callers, SMSC answers after {SMSC_DELAY_MS} ms, window 10; median of {RUNS} runs"
    );
    let k = median_of(kannel);
    report("Kannel 1.4.5, 1 bind", &k, None);
    report("smsbridge, 1 bind", &median_of(bridge), Some(&k));
    report("smsbridge, 4 binds", &median_of(fours), Some(&k));
}
