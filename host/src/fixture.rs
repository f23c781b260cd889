//! `smsbridge adapter test`: runs an adapter with its `http` import served
//! from a fixture instead of the network, so adapter authors can test in
//! their own CI. Each request the adapter makes is compared with the next
//! expected one (method, URL, required headers, body fields) and answered
//! with that one's canned response; every difference is reported by name.

use crate::config::{SandboxLimits, Setting};
use crate::outbound::{Error as HttpError, Request as HttpRequest, Responder, Response as HttpResponse};
use crate::outcome::{Outcome as SendOutcome, Outgoing};
use crate::runtime::{ProviderContext, Runtime, SandboxSpec};
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The adapter instance's settings.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    pub message: FixtureMessage,
    /// The requests the adapter must make, in order.
    #[serde(default, rename = "request")]
    pub requests: Vec<Expected>,
    pub expect: Outcome,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureMessage {
    pub to: String,
    pub body: String,
    #[serde(default = "default_id")]
    pub id: String,
    pub sender: Option<String>,
}

fn default_id() -> String {
    "fixture-message-1".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub method: String,
    pub url: String,
    /// Headers that must be present with these values (others may be too).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Form fields that must be present with these values.
    pub form: Option<BTreeMap<String, String>>,
    /// The JSON body, exactly.
    pub json: Option<serde_json::Value>,
    /// The raw body, exactly.
    pub body: Option<String>,
    pub response: Canned,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canned {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What the send must end in: `accepted` with this provider id, or `error`
/// with this kind (`invalid-recipient`, `rejected`, `unauthorized`,
/// `rate-limited`, `unavailable`, `misconfigured`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub accepted: Option<String>,
    pub error: Option<String>,
}

/// What a run found: every request the adapter made, and every mismatch.
#[derive(Debug, Default)]
pub struct Report {
    pub requests: Vec<String>,
    pub mismatches: Vec<String>,
    pub result: String,
}

impl Fixture {
    pub fn load(path: &std::path::Path) -> Result<Fixture> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }
}

/// Runs `bytes` against `fixture`.
pub async fn run(runtime: &Runtime, bytes: &[u8], fixture: Fixture) -> Result<Report> {
    let adapter = runtime.load(bytes, "adapter under test", None).await?;
    // Every host the fixture names is allowed, as the operator would allow it.
    let mut hosts: Vec<String> = Vec::new();
    for r in &fixture.requests {
        let url = url::Url::parse(&r.url).with_context(|| format!("fixture URL `{}`", r.url))?;
        hosts.push(url.origin().ascii_serialization());
    }
    let settings = fixture
        .config
        .iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Setting { value, from_env: false })
        })
        .collect();
    let expected = Arc::new(fixture.requests);
    let answers =
        Arc::new(Answers { expected: expected.clone(), report: Default::default(), next: Default::default() });
    let spec = SandboxSpec {
        name: "fixture".into(),
        settings,
        limits: SandboxLimits {
            allow_hosts: Some(hosts),
            timeout: Duration::from_secs(10),
            cpu: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            max_response_bytes: 1 << 20,
            data_dir: None,
        },
        interceptor: None,
        responder: Some(answers.clone()),
        smpp: None,
    };
    let ctx = Arc::new(ProviderContext::new(spec, &adapter.info)?);
    let m = fixture.message;
    let msg = Outgoing { id: m.id, to: m.to, body: m.body, sender: m.sender };
    let result = runtime.send(&adapter, &ctx, msg, Default::default()).await;

    let mut report = std::mem::take(&mut *answers.report.lock().unwrap());
    let made = *answers.next.lock().unwrap();
    if made < expected.len() {
        report.mismatches.push(format!("the adapter made {made} requests; the fixture expects {}", expected.len()));
    }
    let (kind, detail) = match &result {
        Ok(id) => (SendOutcome::Accepted, id.clone()),
        Err(failure) => (failure.outcome(), failure.to_string()),
    };
    report.result = format!("{kind}: {detail}");
    match (&fixture.expect.accepted, &fixture.expect.error) {
        (Some(id), _) if kind != SendOutcome::Accepted || &detail != id => {
            report.mismatches.push(format!("result: expected accepted `{id}`, got {kind}: {detail}"))
        }
        (None, Some(want)) if SendOutcome::parse(want) != Some(kind) => {
            report.mismatches.push(format!("result: expected error `{want}`, got {kind}: {detail}"))
        }
        (None, None) => report.mismatches.push("the fixture's [expect] names neither `accepted` nor `error`".into()),
        _ => {}
    }
    Ok(report)
}

/// Answers the adapter's requests from the fixture, in order, noting each
/// request and every difference from what the fixture expects.
struct Answers {
    expected: Arc<Vec<Expected>>,
    report: Mutex<Report>,
    next: Mutex<usize>,
}

#[async_trait::async_trait]
impl Responder for Answers {
    async fn respond(&self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.answer(req)
    }
}

impl Answers {
    fn answer(&self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let mut report = self.report.lock().unwrap();
        let mut n = self.next.lock().unwrap();
        report.requests.push(format!("{} {}\n{}", req.method, req.url, String::from_utf8_lossy(&req.body)));
        let Some(want) = self.expected.get(*n) else {
            let expected = self.expected.len();
            report.mismatches.push(format!("request {}: unexpected; the fixture expects {expected} requests", *n + 1));
            return Err(HttpError::Protocol("unexpected request (fixture)".into()));
        };
        *n += 1;
        let before = report.mismatches.len();
        compare(*n, want, req, &mut report.mismatches);
        if report.mismatches.len() > before {
            return Err(HttpError::Protocol(format!("request {} does not match the fixture", *n)));
        }
        Ok(HttpResponse {
            status: want.response.status,
            headers: want.response.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: want.response.body.clone().into_bytes(),
        })
    }
}

/// Appends a line per difference between `want` and the request `got`.
fn compare(n: usize, want: &Expected, got: &HttpRequest, out: &mut Vec<String>) {
    let mut differ = |what: String, expected: &str, actual: &str| {
        if expected != actual {
            out.push(format!("request {n}: {what}\n    expected: {expected}\n    got:      {actual}"));
        }
    };
    differ("method".into(), &want.method.to_uppercase(), &got.method.to_uppercase());
    differ("url".into(), &want.url, &got.url);
    for (name, value) in &want.headers {
        let actual = got.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        differ(format!("header `{name}`"), value, actual.unwrap_or("(absent)"));
    }
    if let Some(form) = &want.form {
        let fields: BTreeMap<String, String> = url::form_urlencoded::parse(&got.body).into_owned().collect();
        for (name, value) in form {
            differ(format!("form field `{name}`"), value, fields.get(name).map(String::as_str).unwrap_or("(absent)"));
        }
    }
    if let Some(json) = &want.json {
        let actual = serde_json::from_slice::<serde_json::Value>(&got.body)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| format!("(not JSON) {}", String::from_utf8_lossy(&got.body)));
        differ("JSON body".into(), &json.to_string(), &actual);
    }
    if let Some(body) = &want.body {
        differ("body".into(), body, &String::from_utf8_lossy(&got.body));
    }
}
