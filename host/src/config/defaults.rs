//! The value of every setting the file leaves out.

use super::*;
pub fn listen() -> SocketAddr {
    "127.0.0.1:8080".parse().unwrap()
}
pub fn max_body_bytes() -> usize {
    64 * 1024
}
pub fn phone_field() -> String {
    "phone".into()
}
pub fn log_level() -> String {
    "info".into()
}
pub fn shutdown_grace_ms() -> u64 {
    10_000
}
pub fn tls_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
pub fn tls_days() -> u32 {
    3650
}
pub fn state_pool() -> usize {
    16
}
pub fn state_timeout_ms() -> u64 {
    2_000
}
pub fn lease_ms() -> u64 {
    30_000
}
pub fn admin_listen() -> SocketAddr {
    "127.0.0.1:8081".parse().unwrap()
}
pub fn message_field() -> String {
    "message".into()
}
pub fn methods() -> Vec<super::Method> {
    vec![super::Method::Get, super::Method::Post]
}
pub fn timeout_ms() -> u64 {
    10_000
}
pub fn cpu_ms() -> u64 {
    // Guest time is wall time outside host calls, so a loaded machine's
    // scheduling delays count: leave headroom over the ~1 ms a send needs.
    1000
}
pub fn validity_s() -> u64 {
    // An OTP older than this is useless to its user.
    600
}
pub fn retention_days() -> u64 {
    30
}
pub fn deadline_ms() -> u64 {
    10_000
}
pub fn retries() -> u32 {
    2
}
pub fn backoff_ms() -> u64 {
    200
}
pub fn idempotency_window_s() -> u64 {
    // Long enough for a caller's own retries after a timeout; short
    // enough that a user's "send again" a minute later sends again.
    60
}
pub fn circuit_failures() -> u32 {
    5
}
pub fn circuit_cooldown_ms() -> u64 {
    30_000
}
/// Room for 2,000 messages a second to a provider answering in 300 ms,
/// with headroom.
pub fn max_in_flight() -> i64 {
    1000
}
pub fn per_number() -> &'static str {
    "5/10m"
}
pub fn per_prefix() -> &'static str {
    "20/10m"
}
pub fn per_country() -> &'static str {
    "1000/10m"
}
pub fn per_route() -> &'static str {
    "10000/10m"
}
pub fn refuse_number_types() -> Vec<phonenumber::Type> {
    use phonenumber::Type::*;
    vec![PremiumRate, SharedCost, Unknown]
}
pub fn memory_mb() -> usize {
    32
}
pub fn max_response_bytes() -> usize {
    256 * 1024
}

pub fn explore_percent() -> u32 {
    // One send in twenty keeps the others' figures fresh.
    5
}

pub fn min_receipts() -> u32 {
    // Fewer receipts than this say little about a provider.
    20
}
