//! The peer race: Kannel 1.4.5 (its HTTP SMSC, store-and-forward),
//! smsbridge (the bundled twilio adapter, answering once the provider did)
//! and the native baseline (the same job with no WebAssembly), each driven
//! by `ab -k -c 32 -n 20000` against the same instant mock provider in this
//! process; alternating, median of 3. Prints, per gateway, the messages the
//! mock got per second, the CPU its processes used per message, their peak
//! resident memory, and the ratios.
//!
//! Installs nothing: skipped unless Debian's `kannel` (bearerbox, smsbox)
//! and `apache2-utils` (ab) are installed. Not in CI.
//! `cargo bench -p smsbridge --bench peer`

mod common;

use axum::Router;
use axum::routing::{get, post};
use common::twilio::{self, median};
use common::{KillOnDrop, cpu, free_addr, kannel_config, rss_mib};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 20_000;
const CALLERS: usize = 32;
const RUNS: usize = 3;
const TEXT: &str = "Your code is 123456";

/// What the mock provider got: how many messages, and when the last came.
#[derive(Default)]
struct Delivered {
    n: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Delivered {
    fn count(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap() = Some(Instant::now());
    }
}

/// Twilio's Messages resource for smsbridge and the baseline, and a plain
/// `GET /kannel` for Kannel's HTTP SMSC, each answering at once.
async fn mock() -> (std::net::SocketAddr, Arc<Delivered>) {
    const CREATED: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","num_segments":"1"}"#;
    let delivered = Arc::new(Delivered::default());
    let (twilio_seen, kannel_seen) = (delivered.clone(), delivered.clone());
    let router = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(move || async move {
                twilio_seen.count();
                (axum::http::StatusCode::CREATED, [("content-type", "application/json")], CREATED)
            }),
        )
        .route(
            "/kannel",
            get(move || async move {
                kannel_seen.count();
                "OK"
            }),
        );
    (twilio::serve(router).await, delivered)
}

#[derive(Clone, Copy)]
struct Figures {
    /// Messages the mock got per second, from ab's start to the last one.
    rate: f64,
    cpu_us: f64,
    rss: f64,
}

/// Runs `ab` with `args` against one gateway (`pids`), until the mock got
/// every message.
async fn race(label: &str, pids: &[u32], args: &[String], delivered: &Delivered) -> Figures {
    delivered.n.store(0, Ordering::Relaxed);
    let (cpu_before, started) = (cpu(pids), Instant::now());
    let ab = Command::new("ab")
        .args(["-q", "-k", "-c", &CALLERS.to_string(), "-n", &MESSAGES.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak: f64 = 0.0;
    while delivered.n.load(Ordering::Relaxed) < MESSAGES {
        peak = peak.max(pids.iter().map(|p| rss_mib(*p)).sum());
        assert!(started.elapsed() < Duration::from_secs(180), "{label}: the mock did not get every message");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = ab.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    // ab counts an answer of another length as failed: ids and times vary.
    let failed = report.lines().find(|l| l.starts_with("Failed requests:")).unwrap_or("");
    let why = report.lines().find(|l| l.trim_start().starts_with("(Connect:")).unwrap_or("");
    let real = ["Connect: 0,", "Receive: 0,", "Exceptions: 0)"].iter().all(|k| why.contains(k));
    assert!(failed.ends_with(" 0") || real, "{label}: {report}");
    assert!(!report.contains("Non-2xx"), "{label}: {report}");
    let used = cpu(pids) - cpu_before;
    let last = delivered.last.lock().unwrap().unwrap();
    Figures {
        rate: MESSAGES as f64 / last.duration_since(started).as_secs_f64(),
        cpu_us: used.as_secs_f64() * 1e6 / MESSAGES as f64,
        rss: peak.max(pids.iter().map(|p| rss_mib(*p)).sum()),
    }
}

/// Starts smsbridge on the twilio adapter to `mock`, logging at `level`.
fn smsbridge(dir: &std::path::Path, mock: std::net::SocketAddr, level: &str) -> (KillOnDrop, std::net::SocketAddr) {
    let config = common::write_config(
        dir,
        &format!(
            "[adapters]\ncache_dir = \"{d}/cache\"\n{twilio}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"twilio\"]\n{quiet}",
            d = dir.display(),
            twilio = twilio::provider("twilio", mock, ""),
            quiet = common::QUIET,
        ),
    );
    let addr = free_addr();
    let (child, _) = common::start_smsbridge_logging(&config, addr, level);
    (KillOnDrop(child), addr)
}

fn median_of(runs: &[Figures]) -> Figures {
    Figures {
        rate: median(runs.iter().map(|f| f.rate).collect()),
        cpu_us: median(runs.iter().map(|f| f.cpu_us).collect()),
        rss: median(runs.iter().map(|f| f.rss).collect()),
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if twilio::serve_baseline_if_asked().await {
        return;
    }
    let missing: Vec<&str> = [("bearerbox", "--version"), ("ab", "-V")]
        .into_iter()
        .filter(|(p, arg)| Command::new(p).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_err())
        .map(|(p, _)| p)
        .collect();
    if !missing.is_empty() {
        println!("peer: skipped, not installed: {} (Debian's kannel and apache2-utils)", missing.join(", "));
        return;
    }
    let (mock, delivered) = mock().await;
    let dir = tempfile::tempdir().unwrap();

    let sendsms = free_addr().port();
    let smsc = format!(
        "smsc = http\nsystem-type = generic\nsend-url = \"http://{mock}/kannel?to=%p&text=%a\"\nport = {}\n\
         status-success-regex = \"OK\"\n",
        free_addr().port()
    );
    let conf = kannel_config(dir.path(), &smsc, sendsms, 2);
    let bearerbox =
        KillOnDrop(Command::new("bearerbox").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let smsbox =
        KillOnDrop(Command::new("smsbox").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let kannel_pids = [bearerbox.0.id(), smsbox.0.id()];
    let kannel_url = format!(
        "http://127.0.0.1:{sendsms}/cgi-bin/sendsms?username=bench&password=bench&from=Bank&to=447400123456&text={}",
        TEXT.replace(' ', "+")
    );

    let (bridge, bridge_addr) = smsbridge(dir.path(), mock, "warn");
    let bridge_pid = [bridge.0.id()];
    let (baseline, baseline_addr) = twilio::start_baseline(mock);
    let baseline = KillOnDrop(baseline);
    let baseline_pid = [baseline.0.id()];
    let form = dir.path().join("form.txt");
    std::fs::write(&form, format!("phone=%2B447400123456&message={}", TEXT.replace(' ', "+"))).unwrap();
    let post = |addr: std::net::SocketAddr| {
        vec![
            "-p".to_string(),
            form.display().to_string(),
            "-T".into(),
            "application/x-www-form-urlencoded".into(),
            format!("http://{addr}/v1/send"),
        ]
    };

    let (mut kannel, mut ours, mut native) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        eprintln!("run {} of {RUNS}", run + 1);
        kannel.push(race("kannel", &kannel_pids, std::slice::from_ref(&kannel_url), &delivered).await);
        ours.push(race("smsbridge", &bridge_pid, &post(bridge_addr), &delivered).await);
        native.push(race("baseline", &baseline_pid, &post(baseline_addr), &delivered).await);
    }
    drop(bridge);
    // The same smsbridge with a log line per send, as `info` writes.
    let (logging, logging_addr) = smsbridge(dir.path(), mock, "info");
    let logging_pid = [logging.0.id()];
    let mut logged = Vec::new();
    for _ in 0..RUNS {
        logged.push(race("smsbridge-info", &logging_pid, &post(logging_addr), &delivered).await);
    }

    // PEER_PERF=file: one more smsbridge run, under `perf record --call-graph dwarf`.
    if let Some(file) = std::env::var_os("PEER_PERF") {
        let (profiled, profiled_addr) = smsbridge(dir.path(), mock, "warn");
        race("warm-up", &[profiled.0.id()], &post(profiled_addr), &delivered).await;
        let perf = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-p", &profiled.0.id().to_string(), "-o"])
            .arg(&file)
            .args(["--", "sleep", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        race("profiled", &[profiled.0.id()], &post(profiled_addr), &delivered).await;
        perf.wait_with_output().unwrap();
        eprintln!("profile written to {}", std::path::Path::new(&file).display());
    }

    let (k, s, b, l) = (median_of(&kannel), median_of(&ours), median_of(&native), median_of(&logged));
    println!("ab -k -c {CALLERS} -n {MESSAGES}, instant mock provider, median of {RUNS} runs, alternating:");
    println!("| gateway | delivered msg/s | CPU per message | peak RSS | vs Kannel | vs baseline |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, f) in [
        ("Kannel 1.4.5 (HTTP SMSC)", k),
        ("smsbridge (twilio adapter)", s),
        ("smsbridge, info logs", l),
        ("native baseline", b),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.1} MiB | {:.2}× | {:.0} % |",
            f.rate,
            f.cpu_us,
            f.rss,
            f.rate / k.rate,
            f.rate / b.rate * 100.0
        );
    }
}
