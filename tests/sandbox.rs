//! Hostile adapters, built from the test-only `hostile` guest crate: each
//! misbehaving send fails with a clear error within its limits, and the
//! gateway keeps serving good adapters.

use smsbridge_tests::{Bridge, artifacts, quiet_route};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Installs the hostile component as an adapter file and configures one
/// provider per misbehaviour, each behind its own route.
fn config(extra: &str) -> String {
    format!(
        r#"
[adapters]
dir = "{{dir}}/adapters"

[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{{dir}}/outbox"

[[provider]]
name = "spin"
adapter = "hostile"
cpu_ms = 50
timeout_ms = 5000
config = {{ mode = "spin" }}

[[provider]]
name = "hog"
adapter = "hostile"
memory_mb = 16
config = {{ mode = "hog" }}

[[provider]]
name = "trap"
adapter = "hostile"
config = {{ mode = "trap" }}

{extra}

{route_0}{route_1}{route_2}{route_3}"#,
        route_0 = quiet_route("/good", &["outbox"], ""),
        route_1 = quiet_route("/spin", &["spin"], ""),
        route_2 = quiet_route("/hog", &["hog"], ""),
        route_3 = quiet_route("/trap", &["trap"], ""),
    )
}

async fn start(extra: &str) -> Bridge {
    Bridge::start_with(&config(extra), |dir| {
        std::fs::create_dir_all(dir.join("adapters")).unwrap();
        std::fs::copy(artifacts::HOSTILE_WASM, dir.join("adapters/hostile.wasm")).unwrap();
    })
    .await
}

async fn good_send_still_works(bridge: &Bridge) {
    let before = bridge.outbox("outbox").len();
    let ok = bridge.post_form("/good", &[("phone", "+447400123456"), ("message", "still serving")]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(bridge.outbox("outbox").len(), before + 1);
}

fn send<'a>(bridge: &'a Bridge, route: &'a str) -> impl Future<Output = smsbridge_tests::Answer> + 'a {
    bridge.post_form(route, &[("phone", "+447400123456"), ("message", "Your code is 123456")])
}

#[tokio::test]
async fn an_adapter_that_loops_forever_is_stopped_by_its_cpu_budget() {
    let bridge = std::sync::Arc::new(start("").await);
    let started = Instant::now();
    let spinning = tokio::spawn({
        let bridge = bridge.clone();
        async move { send(&bridge, "/spin").await }
    });
    // While it spins, other sends are served: the guest yields the thread.
    good_send_still_works(&bridge).await;
    let a = spinning.await.unwrap();
    a.assert_failed(503, "unavailable");
    assert_eq!(a.message(), "adapter exceeded its CPU budget of 50 ms");
    assert_eq!(a.json["provider"], "spin");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped by the CPU budget, not the 5 s timeout");
    good_send_still_works(&bridge).await;
}

#[tokio::test]
async fn an_adapter_that_allocates_without_end_hits_its_memory_cap() {
    let bridge = start("").await;
    let a = send(&bridge, "/hog").await;
    a.assert_failed(503, "unavailable");
    assert_eq!(a.message(), "adapter exceeded its memory limit of 16 MiB");
    good_send_still_works(&bridge).await;
    // A second run gets a fresh instance and fails the same way.
    send(&bridge, "/hog").await.assert_failed(503, "unavailable");
}

#[tokio::test]
async fn an_adapter_that_traps_fails_that_send_only() {
    let bridge = start("").await;
    let a = send(&bridge, "/trap").await;
    a.assert_failed(503, "unavailable");
    assert!(a.message().starts_with("adapter trapped: "), "{a:?}");
    assert!(a.message().contains("hostile adapter traps on purpose"), "the panic message is kept: {a:?}");
    good_send_still_works(&bridge).await;
}

#[tokio::test]
async fn an_adapter_cannot_call_a_host_outside_its_allowlist() {
    let forbidden = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&forbidden).await;
    let allowed = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&allowed)
        .await;

    let extra = format!(
        r#"
[[provider]]
name = "sneaky"
adapter = "hostile"
allow_hosts = ["{allowed}"]
config = {{ mode = "fetch", url = "{forbidden}/steal?token=abc" }}

[[provider]]
name = "honest"
adapter = "hostile"
allow_hosts = ["{allowed}"]
config = {{ mode = "fetch", url = "{allowed}/ok" }}

{route_0}{route_1}"#,
        allowed = allowed.uri(),
        forbidden = forbidden.uri(),
        route_0 = quiet_route("/sneaky", &["sneaky"], ""),
        route_1 = quiet_route("/honest", &["honest"], ""),
    );
    let bridge = start(&extra).await;

    let a = send(&bridge, "/sneaky").await;
    a.assert_failed(502, "provider_misconfigured");
    assert_eq!(
        a.message(),
        format!("misconfigured: request refused: {} is not in this provider's allow_hosts", forbidden.uri())
    );
    assert!(!a.text.contains("token=abc"), "no path or query of a refused URL is shown");

    let a = send(&bridge, "/honest").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["provider_id"], "fetched 200");
    good_send_still_works(&bridge).await;
    // `expect` on both mocks is verified when they drop.
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_fails_in_time() {
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&slow)
        .await;
    let extra = format!(
        r#"
[[provider]]
name = "slow"
adapter = "hostile"
timeout_ms = 300
allow_hosts = ["{slow}"]
config = {{ mode = "fetch", url = "{slow}/sms" }}

{route_0}"#,
        slow = slow.uri(),
        route_0 = quiet_route("/slow", &["slow"], "on_unknown = \"failed\"\n"),
    );
    let bridge = start(&extra).await;
    let started = Instant::now();
    let a = send(&bridge, "/slow").await;
    // The request left, its answer never came: the provider may have it.
    a.assert_failed(503, "unconfirmed");
    assert_eq!(a.message(), "unavailable: provider did not answer in time; the provider may have the message");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    good_send_still_works(&bridge).await;
}

#[tokio::test]
async fn a_transient_failure_fails_over_to_the_next_provider() {
    let extra = [
        r#"
"#,
        &quiet_route("/failover", &["trap", "outbox"], ""),
    ]
    .concat();
    let bridge = start(&extra).await;
    let a = send(&bridge, "/failover").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["provider"], "outbox");
}

#[tokio::test]
async fn a_secret_of_one_provider_is_invisible_to_another_adapter() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("SMSBRIDGE_TEST_VAULT_TOKEN", "tok-7f3a9c2e51") };
    let extra = [
        r#"
[[provider]]
name = "vault"
adapter = "hostile"
config = { mode = "peek", key = "api_token", api_token = { env = "SMSBRIDGE_TEST_VAULT_TOKEN" } }

[[provider]]
name = "plain"
adapter = "hostile"
config = { mode = "peek", key = "label", label = "plain-label" }

[[provider]]
name = "snoop"
adapter = "hostile"
config = { mode = "peek", key = "api_token" }

"#,
        &quiet_route("/vault", &["vault"], ""),
        r#""#,
        &quiet_route("/snoop", &["snoop"], ""),
        r#""#,
        &quiet_route("/plain", &["plain"], ""),
    ]
    .concat();
    let bridge = start(&extra).await;
    // An instance reads its own settings (the control)...
    let plain = send(&bridge, "/plain").await;
    assert_eq!(plain.json["provider_id"], "plain-label", "{plain:?}");
    // ...and its own secret, which the host never lets out in an answer...
    let own = send(&bridge, "/vault").await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json["provider_id"], "***");
    assert!(!own.text.contains("tok-7f3a9c2e51"));
    // ...while another adapter instance sees nothing under the same key.
    let other = send(&bridge, "/snoop").await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json["provider_id"], "<none>");
}
