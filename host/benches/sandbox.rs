//! The cost of the sandbox itself, with no network: a fresh store,
//! instantiation from the pre-linked component, and one call.
//!
//! `cargo bench -p smsbridge --bench sandbox`
//!
//! - `send/twilio`: the Twilio adapter sending one message, its `http`
//!   import answered at once by a canned 201 (form encoding, Basic auth,
//!   JSON parsing and the component boundary all included);
//! - `info/<adapter>`: `info()` of every bundled adapter;
//! - `phone/*`: what every send does to its number before the sandbox:
//!   normalise it, then classify it (country and type), for a number not
//!   seen before.

use criterion::{Criterion, criterion_group, criterion_main};
use smsbridge::artifacts::BUNDLED;
use smsbridge::config::Config;
use smsbridge::outbound::Canned;
use smsbridge::outbound::Response as HttpResponse;
use smsbridge::outcome::Outgoing;
use smsbridge::routing::sandbox_spec;
use smsbridge::runtime::{ProviderContext, Runtime};
use std::sync::Arc;
use std::time::Duration;

const TWILIO_CREATED: &str =
    r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447700900123","num_segments":"1"}"#;

fn bench(c: &mut Criterion) {
    // One thread: the sandbox's cost, not the executor's cross-thread wakeups.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let runtime = Runtime::new().unwrap();
    let load = |name: &str| {
        let bytes = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
        rt.block_on(runtime.load(bytes, name, None)).unwrap()
    };

    let twilio = load("twilio");
    let config = Config::parse(
        r#"
[[provider]]
name = "twilio"
adapter = "twilio"
[provider.config]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "f00dfeedf00dfeedf00dfeedf00dfeed"
from = "+15005550006"
"#,
        "bench.toml",
    )
    .unwrap();
    let canned = Canned(HttpResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: TWILIO_CREATED.as_bytes().to_vec(),
    });
    let mut spec = sandbox_spec(&config.providers[0], None, None);
    spec.responder = Some(Arc::new(canned));
    let ctx = ProviderContext::new(spec, &twilio.info).unwrap();
    let ctx = Arc::new(ctx);
    let msg = Outgoing {
        id: "01a20bcec41f733aa8b15b14d45f9319".into(),
        to: "+447700900123".into(),
        body: "Your code is 123456".into(),
        sender: None,
    };
    // Sanity: the canned answer goes through the real adapter.
    let accepted = rt.block_on(runtime.send(&twilio, &ctx, msg.clone(), Default::default())).unwrap();
    assert_eq!(accepted, "SM0123456789abcdef0123456789abcdef");

    let mut group = c.benchmark_group("send");
    group.measurement_time(Duration::from_secs(3)).sample_size(50);
    group.bench_function("twilio", |b| {
        b.iter(|| rt.block_on(runtime.send(&twilio, &ctx, msg.clone(), Default::default())).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("phone");
    group.measurement_time(Duration::from_secs(2)).sample_size(30);
    let mut n = 0u64;
    let mut next = move || {
        n += 1;
        format!("+447400{:06}", n % 1_000_000)
    };
    group.bench_function("normalise", |b| b.iter(|| smsbridge::phone::normalise(&next(), None).unwrap()));
    let mut n = 0u64;
    let mut next = move || {
        // A number the classification cache has not seen.
        n += 1;
        format!("+4474{:08}", n)
    };
    group.bench_function("classify_new_number", |b| b.iter(|| smsbridge::phone::classify(&next())));
    group.finish();

    // What the console's windows add to every send: one attempt and one
    // finished send recorded, beside the send itself (send/twilio above).
    let mut group = c.benchmark_group("stats");
    group.measurement_time(Duration::from_secs(2)).sample_size(30);
    let stats = smsbridge::stats::Stats::default();
    let took = Duration::from_millis(12);
    group.bench_function("record_send", |b| {
        b.iter(|| {
            stats.attempt("twilio", "accepted", took);
            stats.send("/v1/send", "accepted", took);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("info");
    group.measurement_time(Duration::from_secs(1)).sample_size(20);
    for (name, _) in BUNDLED {
        let adapter = load(name);
        group.bench_function(*name, |b| b.iter(|| rt.block_on(runtime.info(&adapter)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
