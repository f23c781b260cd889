//! Metrics and logs for operators: Prometheus counters and histograms (the
//! `metrics` facade, rendered by `metrics-exporter-prometheus` on the admin
//! listener) and the `tracing` subscriber, human or JSON, whose level a
//! config reload can change.
//!
//! No label carries a phone number, a message or a secret: labels are route
//! paths, provider and adapter names, and fixed outcome words.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Latency buckets, in seconds: an OTP send is milliseconds to seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process's metrics recorder (once) and returns its handle.
pub fn metrics() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("buckets are valid")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    metrics().render()
}

/// One finished send through a route: the provider that took it (or the
/// last one tried) and the outcome word.
pub fn send(route: &str, provider: &str, outcome: &'static str, took: Duration) {
    counter!("smsbridge_sends_total", "route" => route.to_string(), "provider" => provider.to_string(), "outcome" => outcome)
        .increment(1);
    crate::stats::Stats::global().send(route, outcome, took);
    histogram!("smsbridge_send_duration_seconds", "route" => route.to_string()).record(took);
}

/// One attempt at one provider.
pub fn attempt(provider: &str, outcome: &'static str, took: Duration) {
    counter!("smsbridge_provider_attempts_total", "provider" => provider.to_string(), "outcome" => outcome)
        .increment(1);
    crate::stats::Stats::global().attempt(provider, outcome, took);
    histogram!("smsbridge_provider_duration_seconds", "provider" => provider.to_string()).record(took);
}

/// A provider's circuit opened (skipped for a cool-down) or closed again.
pub fn circuit(provider: &str, open: bool) {
    gauge!("smsbridge_circuit_open", "provider" => provider.to_string()).set(if open { 1.0 } else { 0.0 });
}

/// A provider's delivered share for one destination country over the last
/// day; `None` (a row gone from the figures) exports 0.
pub fn delivered_ratio(provider: &str, country: &str, share: Option<f64>) {
    let labels = [("provider", provider.to_string()), ("country", country.to_string())];
    gauge!("smsbridge_delivered_ratio", &labels).set(share.unwrap_or(0.0));
}

/// A fallback sent: a message went to another provider, and why.
pub fn fallback(route: &str, provider: &str, reason: &'static str) {
    let labels = [("route", route.to_string()), ("provider", provider.to_string()), ("reason", reason.to_string())];
    counter!("smsbridge_fallbacks_total", &labels).increment(1);
}

/// Whether an SMPP bind is up.
pub fn smpp_bound(provider: &str, bind: usize, up: bool) {
    let labels = [("provider", provider.to_string()), ("bind", bind.to_string())];
    gauge!("smsbridge_smpp_bound", &labels).set(if up { 1.0 } else { 0.0 });
}

/// `submit_sm` outstanding on an SMPP bind now.
pub fn smpp_window(provider: &str, bind: usize, in_use: usize) {
    let labels = [("provider", provider.to_string()), ("bind", bind.to_string())];
    gauge!("smsbridge_smpp_window_in_use", &labels).set(in_use as f64);
}

/// One `submit_sm_resp`, by `command_status`, and how long it took.
pub fn smpp_submit(provider: &str, status: u32, took: Duration) {
    let labels = [("provider", provider.to_string()), ("command_status", format!("{status:#04x}"))];
    counter!("smsbridge_smpp_submits_total", &labels).increment(1);
    histogram!("smsbridge_smpp_submit_seconds", "provider" => provider.to_string()).record(took.as_secs_f64());
}

/// A bind paused by `ESME_RTHROTTLED` or `ESME_RMSGQFUL`.
pub fn smpp_pause(provider: &str) {
    counter!("smsbridge_smpp_pauses_total", "provider" => provider.to_string()).increment(1);
}

/// A receipt recorded, by the status it gave.
pub fn smpp_receipt(provider: &str, status: &'static str) {
    counter!("smsbridge_smpp_receipts_total", "provider" => provider.to_string(), "status" => status).increment(1);
}

/// A bind made again after it had been up.
pub fn smpp_reconnect(provider: &str) {
    counter!("smsbridge_smpp_reconnects_total", "provider" => provider.to_string()).increment(1);
}

/// A request refused before any provider was tried: `auth`, `invalid_phone`…
pub fn refused(route: &str, reason: &'static str) {
    counter!("smsbridge_refusals_total", "route" => route.to_string(), "reason" => reason).increment(1);
    crate::stats::Stats::global().refused(route, reason);
}

/// A queue write or read that failed; `op` names it.
pub fn queue_fault(op: &'static str) {
    metrics::counter!("smsbridge_queue_faults_total", "op" => op).increment(1);
}

/// Whether the shared state database answers (1) or not (0).
pub fn state_up(up: bool) {
    gauge!("smsbridge_state_up").set(if up { 1.0 } else { 0.0 });
}

/// A shared state operation that failed; `op` names it.
pub fn state_error(op: &'static str) {
    counter!("smsbridge_state_errors_total", "op" => op).increment(1);
}

/// An adapter load from a file: `loaded`, `failed` or `unloaded`.
pub fn reload(adapter: &str, result: &'static str) {
    counter!("smsbridge_adapter_reloads_total", "adapter" => adapter.to_string(), "result" => result).increment(1);
    crate::stats::Stats::global().reload(adapter, result);
}

/// Counts a request in flight while it lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        gauge!("smsbridge_in_flight_requests").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("smsbridge_in_flight_requests").decrement(1.0);
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Starts logging to stderr at `level` (an `EnvFilter` directive such as
/// `info` or `smsbridge=debug`); `SMSBRIDGE_LOG` overrides it.
pub fn init_logging(format: LogFormat, level: &str) {
    let directive = std::env::var("SMSBRIDGE_LOG").unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match format {
        LogFormat::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).init()
        }
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .init(),
    }
}

/// Changes the log level, as a config reload asks.
pub fn set_log_level(level: &str) {
    if std::env::var("SMSBRIDGE_LOG").is_ok() {
        return;
    }
    let Some(handle) = LOG_FILTER.get() else { return };
    match EnvFilter::try_new(level) {
        Ok(filter) => {
            if handle.reload(filter).is_ok() {
                tracing::debug!(level, "log level set");
            }
        }
        Err(e) => tracing::warn!("log level `{level}` not understood: {e}"),
    }
}

/// Lets a log line through at most once per period; the lines it held back
/// are counted in the next one.
pub struct Throttle {
    every: std::time::Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
    held: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Throttle {
        Throttle { every, last: std::sync::Mutex::new(None), held: std::sync::atomic::AtomicU64::new(0) }
    }

    /// `Some(lines held back since the last)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&self, now: std::time::Instant) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last = self.last.lock().unwrap();
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            self.held.fetch_add(1, Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::Throttle;

    #[test]
    fn one_line_a_period_and_the_rest_counted() {
        let (period, start) = (std::time::Duration::from_secs(10), std::time::Instant::now());
        let throttle = Throttle::new(period);
        assert_eq!(throttle.allow_at(start), Some(0));
        assert_eq!((throttle.allow_at(start), throttle.allow_at(start + period / 2)), (None, None));
        assert_eq!(throttle.allow_at(start + period), Some(2));
        assert_eq!(throttle.allow_at(start + period), None);
    }
}
