//! A mock Twilio that answers after a set latency, the native baseline
//! (the same job as smsbridge + the twilio adapter, with no WebAssembly) and
//! a closed-loop load generator, for the benches that compare the two.

use axum::extract::State;
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
const CREATED: &str =
    r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447400123456","num_segments":"1"}"#;

/// What the mock is doing: its latency (settable while it runs) and the
/// requests it holds now and at most.
#[derive(Default)]
pub struct Mock {
    pub addr: Option<SocketAddr>,
    pub latency_ms: AtomicU64,
    pub in_flight: AtomicUsize,
    pub peak: AtomicUsize,
}

impl Mock {
    pub fn set_latency(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }
    /// Forgets the peak, for the next scenario.
    pub fn reset_peak(&self) {
        self.peak.store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Twilio's Messages resource on loopback, answering `201` after the
/// mock's latency.
pub async fn mock_twilio(latency_ms: u64) -> (SocketAddr, Arc<Mock>) {
    let mock = Arc::new(Mock { latency_ms: AtomicU64::new(latency_ms), ..Default::default() });
    let router = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(|State(m): State<Arc<Mock>>| async move {
                let now = m.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                m.peak.fetch_max(now, Ordering::Relaxed);
                let wait = m.latency_ms.load(Ordering::Relaxed);
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                m.in_flight.fetch_sub(1, Ordering::Relaxed);
                (axum::http::StatusCode::CREATED, [("content-type", "application/json")], CREATED)
            }),
        )
        .with_state(mock.clone());
    (serve(router).await, mock)
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A `[[provider]]` on the twilio adapter sending to `mock`.
pub fn provider(name: &str, mock: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[[provider]]
name = "{name}"
adapter = "twilio"
allow_hosts = ["http://{mock}"]
{extra}
[provider.config]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+15005550006"
base_url = "http://{mock}"
"#
    )
}

struct Baseline {
    client: reqwest::Client,
    url: String,
}

/// The native baseline: the same job as smsbridge + the twilio adapter.
async fn baseline_send(State(b): State<Arc<Baseline>>, Form(fields): Form<HashMap<String, String>>) -> Json<Value> {
    let to = smsbridge::phone::normalise(&fields["phone"], None).unwrap();
    let body = &fields["message"];
    let resp = b
        .client
        .post(&b.url)
        .basic_auth(SID, Some(TOKEN))
        .form(&[("To", to.as_str()), ("From", "+15005550006"), ("Body", body.as_str())])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let segments = smsbridge_segments::count(body).count;
    Json(
        json!({"status": "pending", "id": "baseline", "provider": "twilio", "provider_id": v["sid"], "segments": segments}),
    )
}

/// A bench's start: `None` in the re-run bench binary, once it has served
/// the baseline; else, with the TLS provider installed, an instant mock
/// Twilio and a temporary directory.
pub async fn start() -> Option<(SocketAddr, Arc<Mock>, tempfile::TempDir)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if serve_baseline_if_asked().await {
        return None;
    }
    let (mock, provider) = mock_twilio(0).await;
    Some((mock, provider, tempfile::tempdir().unwrap()))
}

/// In the re-run bench binary, serves the baseline until killed; `false`
/// in the bench itself.
pub async fn serve_baseline_if_asked() -> bool {
    let (Ok(mock), Ok(listen)) = (std::env::var("BASELINE_FOR_MOCK"), std::env::var("BASELINE_LISTEN")) else {
        return false;
    };
    let state = Arc::new(Baseline {
        client: reqwest::Client::new(),
        url: format!("http://{mock}/2010-04-01/Accounts/{SID}/Messages.json"),
    });
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    axum::serve(listener, Router::new().route("/v1/send", post(baseline_send)).with_state(state)).await.unwrap();
    true
}

/// The baseline as its own process (this bench binary, re-run), so that it
/// pays the same cross-process costs as smsbridge.
pub fn start_baseline(mock: SocketAddr) -> (Child, SocketAddr) {
    let addr = super::free_addr();
    let child = Command::new(std::env::current_exe().unwrap())
        .env("BASELINE_FOR_MOCK", mock.to_string())
        .env("BASELINE_LISTEN", addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while super::probe(addr).map_or(true, |s| s != 200) {
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, addr)
}

/// One load run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub errors: usize,
    pub peak_rss_mib: f64,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The next number a closed loop sends to, across runs.
static NUMBERS: AtomicUsize = AtomicUsize::new(0);

/// What a closed loop does: `clients` callers, each sending as soon as its
/// last answer came, to numbers that differ per message.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub clients: usize,
    /// Stop after this many answers…
    pub messages: usize,
    /// …or after this long, whichever is first.
    pub longest: Duration,
}

/// Runs `load` against `url`, sampling the resident memory of `pid` every
/// 20 ms. Throughput counts 200 answers; every other answer is an error.
pub async fn closed_loop(client: &reqwest::Client, url: &str, load: Load, pid: u32) -> Run {
    closed_loop_over(client, &[url], load, &[pid]).await
}

/// [`closed_loop`] over several instances: caller `i` sends to `urls[i %
/// n]`, as a load balancer spreads connections; the memory is the sum of
/// `pids`.
pub async fn closed_loop_over(client: &reqwest::Client, urls: &[&str], load: Load, pids: &[u32]) -> Run {
    let issued = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak_rss, pids) = (stop.clone(), peak_rss.clone(), pids.to_vec());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss: f64 = pids.iter().map(|p| super::rss_mib(*p)).sum();
                peak_rss.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..load.clients {
        let url = urls[i % urls.len()].to_string();
        let (client, issued, stop) = (client.clone(), issued.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= load.messages || stop.load(Ordering::Relaxed) {
                    break;
                }
                // A number no earlier run used: a repeat would be answered
                // from the stored answers, not sent.
                let phone = format!("+4474{:08}", NUMBERS.fetch_add(1, Ordering::Relaxed) % 100_000_000);
                let sent = Instant::now();
                let ok = match client
                    .post(&url)
                    .form(&[("phone", phone.as_str()), ("message", "Your code is 123456")])
                    .send()
                    .await
                {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok { latencies.push(sent.elapsed()) } else { errors += 1 }
            }
            (latencies, errors)
        }));
    }
    let deadline = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(load.longest).await;
            stop.store(true, Ordering::Relaxed);
        }
    });
    let (all, errors) = gather(workers).await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    deadline.abort();
    sampler.await.unwrap();
    Run::of(all, errors, elapsed, peak_rss.load(Ordering::Relaxed) as f64 / 1024.0)
}

/// Every worker's latencies and error count, together.
pub async fn gather(workers: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>) -> (Vec<Duration>, usize) {
    let (mut all, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.unwrap();
        all.extend(l);
        errors += e;
    }
    (all, errors)
}

impl Run {
    /// The figures of answers that took `latencies`, over `elapsed`; no
    /// answer at all reads as zeros.
    pub fn of(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration, peak_rss_mib: f64) -> Run {
        latencies.sort();
        let n = latencies.len();
        let at = |q: f64| latencies.get(((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1).copied();
        Run {
            rps: n as f64 / elapsed.as_secs_f64(),
            p50: at(0.50).unwrap_or_default(),
            p99: at(0.99).unwrap_or_default(),
            max: latencies.last().copied().unwrap_or_default(),
            errors,
            peak_rss_mib,
            elapsed,
        }
    }
}

/// A client for `clients` callers on their own connections.
pub fn client(clients: usize) -> reqwest::Client {
    // A lost answer counts as an error instead of stalling the run.
    reqwest::Client::builder().pool_max_idle_per_host(clients).timeout(Duration::from_secs(60)).build().unwrap()
}

pub fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
