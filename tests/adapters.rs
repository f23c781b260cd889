//! Every bundled provider adapter, end to end: a caller posts to the real
//! `/v1/send`, the real component calls a mock provider (a real HTTP server
//! on loopback), the mock's received request is checked field by field, and
//! each answer shape the provider can give maps to the right answer.

use serde_json::{Value, json};
use smsbridge_tests::{Answer, Bridge, quiet_route};
use std::time::Duration;
use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::any};

/// What every test sends: a `+`, spaces and an `&` that must survive encoding.
const PHONE: &str = "+447400123456";
const MESSAGE: &str = "Your code is 123456 & keep it+safe";

/// The request a provider must receive.
enum Body {
    Form(&'static [(&'static str, &'static str)]),
    Json(Value),
}

/// One provider answer and what the caller must then see.
#[derive(Clone)]
struct Shape {
    name: &'static str,
    status: u16,
    body: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// smsbridge's HTTP status and error code.
    expect: (u16, &'static str),
}

struct Case {
    adapter: &'static str,
    /// `[provider.config]` lines; `{mock}` is the mock provider's base URL.
    settings: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// `{id}` in a value stands for the message id smsbridge assigned.
    body: Body,
    success: (u16, &'static str),
    provider_id: &'static str,
    failures: Vec<Shape>,
}

fn shape(name: &'static str, status: u16, body: &'static str, expect: (u16, &'static str)) -> Shape {
    Shape { name, status, body, headers: &[], expect }
}

/// Shapes every provider shares: throttling, outage, a garbled answer.
fn common(throttle_body: &'static str, garbled_status: u16) -> Vec<Shape> {
    common_with(throttle_body, garbled_status, (503, "unavailable"))
}

/// [`common`], where a garbled answer means `garbled` (a configured rule).
fn common_with(throttle_body: &'static str, garbled_status: u16, garbled: (u16, &'static str)) -> Vec<Shape> {
    vec![
        Shape {
            name: "429 with Retry-After",
            status: 429,
            body: throttle_body,
            headers: &[("Retry-After", "7")],
            expect: (429, "rate_limited"),
        },
        shape("500", 500, "<html>Internal Server Error</html>", (503, "unavailable")),
        shape("garbled success", garbled_status, "<html>proxy says hi", garbled),
    ]
}

async fn start(case: &Case, mock: &MockServer, timeout_ms: u64) -> Bridge {
    let config = format!(
        r#"
[[provider]]
name = "p"
adapter = "{adapter}"
allow_hosts = ["{mock}"]
timeout_ms = {timeout_ms}
[provider.config]
base_url = "{mock}"
{settings}

{route_0}"#,
        adapter = case.adapter,
        mock = mock.uri(),
        settings = case.settings.replace("{mock}", &mock.uri()),
        route_0 = quiet_route("/v1/send", &["p"], ""),
    );
    Bridge::start(&config).await
}

async fn send(bridge: &Bridge) -> Answer {
    bridge.post_form("/v1/send", &[("phone", PHONE), ("message", MESSAGE)]).await
}

fn respond(status: u16, body: &str, headers: &[(&str, &str)]) -> ResponseTemplate {
    let content_type = if body.starts_with('{') { "application/json" } else { "text/plain" };
    let mut t = ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), content_type);
    for (k, v) in headers {
        t = t.insert_header(*k, *v);
    }
    t
}

/// Asserts the provider got exactly the request `case` describes.
fn assert_request(case: &Case, req: &Request, id: &str) {
    let who = case.adapter;
    assert_eq!(req.method.as_str(), case.method, "{who}: method");
    assert_eq!(req.url.path(), case.path, "{who}: path");
    for (name, value) in case.headers {
        let got = req.headers.get(*name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(got.as_deref(), Some(*value), "{who}: header {name}");
    }
    let content_type = req.headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
    match &case.body {
        Body::Form(fields) => {
            assert_eq!(content_type.as_deref(), Some("application/x-www-form-urlencoded"), "{who}: content type");
            let expected: Vec<(String, String)> =
                fields.iter().map(|(k, v)| (k.to_string(), v.replace("{id}", id))).collect();
            let got: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
            assert_eq!(got, expected, "{who}: form fields, in order");
            // The encoding itself: `+` as %2B, spaces as `+`, `&` as %26.
            let raw = String::from_utf8_lossy(&req.body);
            if fields.iter().any(|(_, v)| v.contains("keep it+safe")) {
                assert!(raw.contains("Your+code+is+123456+%26+keep+it%2Bsafe"), "{who}: body encoding: {raw}");
            }
        }
        Body::Json(expected) => {
            assert_eq!(content_type.as_deref(), Some("application/json"), "{who}: content type");
            let expected: Value = serde_json::from_str(&expected.to_string().replace("{id}", id)).unwrap();
            let got: Value = serde_json::from_slice(&req.body).expect("a JSON body");
            assert_eq!(got, expected, "{who}: JSON body");
        }
    }
}

async fn check(case: Case) {
    // Success: the exact request, and the provider's id in the answer.
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(respond(case.success.0, case.success.1, &[])).expect(1).mount(&mock).await;
    let bridge = start(&case, &mock, 2000).await;
    let ok = send(&bridge).await;
    assert_eq!(ok.status, 200, "{}: {ok:?}", case.adapter);
    assert_eq!(ok.json["status"], "pending");
    assert_eq!(ok.json["provider_id"], case.provider_id, "{}: provider id", case.adapter);
    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_request(&case, &received[0], ok.json["id"].as_str().unwrap());

    // Every failure shape.
    for f in &case.failures {
        mock.reset().await;
        Mock::given(any()).respond_with(respond(f.status, f.body, f.headers)).mount(&mock).await;
        let a = send(&bridge).await;
        assert_eq!((a.status, a.json["error"].as_str().unwrap_or("")), f.expect, "{}: {}: {a:?}", case.adapter, f.name);
        a.assert_failed(f.expect.0, f.expect.1);
        if f.headers.iter().any(|(k, _)| *k == "Retry-After") {
            assert_eq!(a.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("7"), "{}", case.adapter);
        }
        assert!(!a.text.contains("secret"), "{}: {}: no secret in the answer: {}", case.adapter, f.name, a.text);
    }

    // A provider that does not answer in time.
    let slow = MockServer::start().await;
    Mock::given(any())
        .respond_with(respond(case.success.0, case.success.1, &[]).set_delay(Duration::from_secs(5)))
        .mount(&slow)
        .await;
    let bridge = start(&case, &slow, 300).await;
    // It may have the message: the caller hears "pending", unconfirmed.
    let a = send(&bridge).await;
    assert_eq!((a.status, &a.json["status"], &a.json["unconfirmed"]), (200, &"pending".into(), &true.into()), "{a:?}");
    assert_eq!(slow.received_requests().await.unwrap().len(), 1, "{}: sent once", case.adapter);

    // A provider that is not there at all: a loopback port nobody listens on.
    // Kept bound (never listening) so no server of this process takes it
    // meanwhile: one did, and the provider's request reached a bridge.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    let config = format!(
        "[[provider]]\nname = \"p\"\nadapter = \"{}\"\nallow_hosts = [\"http://127.0.0.1:{port}\"]\n[provider.config]\nbase_url = \"http://127.0.0.1:{port}\"\n{}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"p\"]\nretries = 0\nidempotency_window_s = 0\n",
        case.adapter, case.settings
    );
    let bridge = Bridge::start(&config).await;
    let a = send(&bridge).await;
    a.assert_failed(503, "unavailable");
    assert!(a.message().contains("cannot connect"), "{}: {a:?}", case.adapter);
}

const TWILIO_OK: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447400123456","num_segments":"1","error_code":null}"#;

fn twilio_case() -> Case {
    Case {
        adapter: "twilio",
        settings: r#"account_sid = "AC123"
auth_token = "tw-secret-token"
from = "+15005550006"
status_callback = "https://example.org/cb"
validity_period = 600"#,
        method: "POST",
        path: "/2010-04-01/Accounts/AC123/Messages.json",
        // base64("AC123:tw-secret-token")
        headers: &[("authorization", "Basic QUMxMjM6dHctc2VjcmV0LXRva2Vu")],
        body: Body::Form(&[
            ("To", PHONE),
            ("From", "+15005550006"),
            ("Body", MESSAGE),
            ("StatusCallback", "https://example.org/cb"),
            ("ValidityPeriod", "600"),
        ]),
        success: (201, TWILIO_OK),
        provider_id: "SM0123456789abcdef0123456789abcdef",
        failures: [
            vec![
                shape(
                    "invalid To",
                    400,
                    r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
                    (400, "invalid_recipient"),
                ),
                shape(
                    "bad credentials",
                    401,
                    r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
                    (502, "provider_unauthorized"),
                ),
                shape(
                    "region not enabled",
                    400,
                    r#"{"code":21408,"message":"Permission to send an SMS has not been enabled for the region","status":400}"#,
                    (502, "rejected"),
                ),
            ],
            common(r#"{"code":20429,"message":"Too Many Requests","status":429}"#, 201),
        ]
        .concat(),
    }
}

fn twilio_verify_case() -> Case {
    Case {
        adapter: "twilio-verify",
        settings: r#"service_sid = "VA123"
account_sid = "AC123"
auth_token = "tw-secret-token"
locale = "en""#,
        method: "POST",
        path: "/v2/Services/VA123/Verifications",
        headers: &[("authorization", "Basic QUMxMjM6dHctc2VjcmV0LXRva2Vu")],
        body: Body::Form(&[("To", PHONE), ("Channel", "sms"), ("CustomCode", "123456"), ("Locale", "en")]),
        success: (201, r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending","to":"+447400123456","channel":"sms"}"#),
        provider_id: "VE0123456789abcdef0123456789abcdef",
        failures: [
            vec![
                shape(
                    "invalid parameter",
                    400,
                    r#"{"code":60200,"message":"Invalid parameter `To`: +447400123456","status":400}"#,
                    (400, "invalid_recipient"),
                ),
                shape("bad credentials", 401, r#"{"code":20003,"message":"Authenticate","status":401}"#, (502, "provider_unauthorized")),
                shape(
                    "geo permissions",
                    403,
                    r#"{"code":60605,"message":"Verification delivery attempt blocked by geo permissions","status":403}"#,
                    (502, "rejected"),
                ),
                shape("max attempts", 429, r#"{"code":60203,"message":"Max send attempts reached","status":429}"#, (429, "rate_limited")),
            ],
            common(r#"{"code":60212,"message":"Too many concurrent requests for phone number","status":429}"#, 201),
        ]
        .concat(),
    }
}

fn signalwire_case() -> Case {
    Case {
        adapter: "signalwire",
        settings: r#"space = "acme"
project_id = "p-1"
api_token = "PTsecret-token"
from = "+15550100""#,
        method: "POST",
        path: "/api/laml/2010-04-01/Accounts/p-1/Messages.json",
        // base64("p-1:PTsecret-token")
        headers: &[("authorization", "Basic cC0xOlBUc2VjcmV0LXRva2Vu")],
        body: Body::Form(&[("To", PHONE), ("From", "+15550100"), ("Body", MESSAGE)]),
        success: (
            201,
            r#"{"sid":"0e6d3ebc-6ed4-4a5a-a5a8-35f3fbb1a0e3","status":"queued","num_segments":1,"to":"+447400123456"}"#,
        ),
        provider_id: "0e6d3ebc-6ed4-4a5a-a5a8-35f3fbb1a0e3",
        failures: [
            vec![
                shape(
                    "invalid To",
                    400,
                    r#"{"code":21211,"message":"Invalid To Phone Number","status":400}"#,
                    (400, "invalid_recipient"),
                ),
                shape(
                    "bad credentials",
                    401,
                    r#"{"code":20003,"message":"Unauthorized","status":401}"#,
                    (502, "provider_unauthorized"),
                ),
            ],
            common(r#"{"code":20429,"message":"Too Many Requests","status":429}"#, 201),
        ]
        .concat(),
    }
}

fn messagebird_case() -> Case {
    Case {
        adapter: "messagebird",
        settings: r#"access_key = "live_secret_key"
originator = "MyBank"
report_url = "https://example.org/dlr"
validity = 300"#,
        method: "POST",
        path: "/messages",
        headers: &[("authorization", "AccessKey live_secret_key")],
        body: Body::Json(json!({
            "originator": "MyBank",
            "recipients": ["447400123456"],
            "body": MESSAGE,
            "reference": "{id}",
            "reportUrl": "https://example.org/dlr",
            "validity": 300,
        })),
        success: (
            201,
            r#"{"id":"e8077d803532c0b5937c639b60216938","recipients":{"totalCount":1,"totalSentCount":1,"items":[{"recipient":447400123456,"status":"sent"}]}}"#,
        ),
        provider_id: "e8077d803532c0b5937c639b60216938",
        failures: [
            vec![
                shape(
                    "invalid recipient",
                    422,
                    r#"{"errors":[{"code":10,"description":"no (correct) recipients found","parameter":"recipients"}]}"#,
                    (400, "invalid_recipient"),
                ),
                shape(
                    "bad credentials",
                    401,
                    r#"{"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)","parameter":"access_key"}]}"#,
                    (502, "provider_unauthorized"),
                ),
                shape(
                    "no balance",
                    402,
                    r#"{"errors":[{"code":25,"description":"Not enough balance","parameter":null}]}"#,
                    (502, "rejected"),
                ),
            ],
            common(r#"{"errors":[{"code":429,"description":"Too many requests"}]}"#, 201),
        ]
        .concat(),
    }
}

fn clickatell_platform_case() -> Case {
    Case {
        adapter: "clickatell",
        settings: r#"api_key = "ck-secret-key""#,
        method: "POST",
        path: "/messages",
        headers: &[("authorization", "ck-secret-key")],
        body: Body::Json(json!({"to": ["447400123456"], "content": MESSAGE, "clientMessageId": "{id}"})),
        success: (
            202,
            r#"{"messages":[{"apiMessageId":"1d1ed7a3b8a84b6bb5c8d1c9fd6a0a1c","accepted":true,"to":"447400123456","error":null}],"error":null}"#,
        ),
        provider_id: "1d1ed7a3b8a84b6bb5c8d1c9fd6a0a1c",
        failures: [
            vec![
                shape(
                    "invalid destination",
                    202,
                    r#"{"messages":[{"apiMessageId":"","accepted":false,"to":"447400123456","error":{"code":105,"description":"Invalid destination address."}}],"error":null}"#,
                    (400, "invalid_recipient"),
                ),
                shape("bad credentials", 401, r#"{"messages":[],"error":{"code":1,"description":"Invalid or missing Integration API Key."}}"#, (502, "provider_unauthorized")),
                shape(
                    "no credit",
                    400,
                    r#"{"messages":[],"error":{"code":301,"description":"No credit left."}}"#,
                    (502, "rejected"),
                ),
            ],
            common(r#"{"messages":[],"error":"Too many requests"}"#, 202),
        ]
        .concat(),
    }
}

fn clickatell_http_case() -> Case {
    Case {
        adapter: "clickatell",
        settings: r#"api = "http"
user = "acme"
password = "ck-secret-pass"
api_id = "3456789"
from = "MyBank""#,
        method: "POST",
        path: "/http/sendmsg",
        headers: &[],
        body: Body::Form(&[
            ("user", "acme"),
            ("password", "ck-secret-pass"),
            ("api_id", "3456789"),
            ("to", "447400123456"),
            ("text", MESSAGE),
            ("climsgid", "{id}"),
            ("from", "MyBank"),
        ]),
        success: (200, "ID: 7a3f0e5c1b2d4e6f8a9b0c1d2e3f4a5b"),
        provider_id: "7a3f0e5c1b2d4e6f8a9b0c1d2e3f4a5b",
        failures: [
            vec![
                shape("invalid destination", 200, "ERR: 105, Invalid Destination Address", (400, "invalid_recipient")),
                shape("bad credentials", 200, "ERR: 001, Authentication failed", (502, "provider_unauthorized")),
                shape("no credit", 200, "ERR: 301, No Credit Left", (502, "rejected")),
            ],
            common("Too many requests", 200),
        ]
        .concat(),
    }
}

fn lox24_rest_case() -> Case {
    Case {
        adapter: "lox24",
        settings: r#"user = "12345"
token = "lx-secret-token"
from = "MyBank""#,
        method: "POST",
        path: "/sms",
        headers: &[("x-lox24-auth-token", "12345:lx-secret-token")],
        body: Body::Json(json!({"sender_id": "MyBank", "phone": PHONE, "text": MESSAGE, "service_code": "direct"})),
        success: (201, r#"{"uuid":"6f3c2a94-5d2b-4e1c-9a7d-0b3e8f6c1d22","phone":"+447400123456","status_code":0}"#),
        provider_id: "6f3c2a94-5d2b-4e1c-9a7d-0b3e8f6c1d22",
        failures: [
            vec![
                shape(
                    "invalid phone",
                    400,
                    r#"{"detail":"phone: This value is not a valid phone number."}"#,
                    (400, "invalid_recipient"),
                ),
                shape("bad credentials", 401, r#"{"detail":"Invalid credentials"}"#, (502, "provider_unauthorized")),
                shape("no funds", 402, r#"{"detail":"Insufficient funds"}"#, (502, "rejected")),
            ],
            common(r#"{"detail":"Too many requests"}"#, 201),
        ]
        .concat(),
    }
}

fn lox24_legacy_case() -> Case {
    Case {
        adapter: "lox24",
        settings: r#"api = "legacy"
user = "12345"
password = "lx-secret-pass"
service = "8461"
from = "MyBank""#,
        method: "POST",
        path: "/API/httpsms.php",
        headers: &[],
        body: Body::Form(&[
            ("konto", "12345"),
            // MD5 of "lx-secret-pass".
            ("password", "94a1fe75a4ec8122b5963de710365e16"),
            ("service", "8461"),
            ("text", MESSAGE),
            ("to", PHONE),
            ("from", "MyBank"),
            ("return", "xml"),
        ]),
        success: (
            200,
            "<answer><code>100</code><codetext>SMS sent</codetext><info><MSGID>b91b3a0c2f</MSGID></info></answer>",
        ),
        provider_id: "b91b3a0c2f",
        failures: [
            vec![shape(
                "refused",
                200,
                "<answer><code>403</code><codetext>Service not allowed</codetext></answer>",
                (502, "rejected"),
            )],
            common("Too many requests", 200),
        ]
        .concat(),
    }
}

fn vonage_case() -> Case {
    Case {
        adapter: "vonage",
        settings: r#"api_key = "abcd1234"
api_secret = "vn-secret-key"
from = "MyBank""#,
        method: "POST",
        path: "/sms/json",
        headers: &[],
        body: Body::Form(&[
            ("api_key", "abcd1234"),
            ("from", "MyBank"),
            ("to", "447400123456"),
            ("text", MESSAGE),
            ("client-ref", "{id}"),
            ("api_secret", "vn-secret-key"),
        ]),
        success: (
            200,
            r#"{"message-count":"1","messages":[{"to":"447400123456","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14","message-price":"0.03","network":"23410"}]}"#,
        ),
        provider_id: "0A0000000123ABCD1",
        failures: vec![
            // Vonage answers 200 whatever happened.
            shape(
                "barred",
                200,
                r#"{"message-count":"1","messages":[{"status":"7","error-text":"Number barred."}]}"#,
                (400, "invalid_recipient"),
            ),
            shape(
                "bad credentials",
                200,
                r#"{"message-count":"1","messages":[{"status":"4","error-text":"Bad Credentials"}]}"#,
                (502, "provider_unauthorized"),
            ),
            shape(
                "throttled",
                200,
                r#"{"message-count":"1","messages":[{"status":"1","error-text":"Throttled"}]}"#,
                (429, "rate_limited"),
            ),
            shape(
                "quota",
                200,
                r#"{"message-count":"1","messages":[{"status":"9","error-text":"Partner quota exceeded"}]}"#,
                (502, "rejected"),
            ),
            Shape {
                name: "429 with Retry-After",
                status: 429,
                body: "",
                headers: &[("Retry-After", "7")],
                expect: (429, "rate_limited"),
            },
            shape("500", 500, "", (503, "unavailable")),
            shape("garbled success", 200, "<html>proxy says hi", (503, "unavailable")),
        ],
    }
}

fn generic_case() -> Case {
    Case {
        adapter: "generic-http",
        settings: r#"url = "https://sms.example.net/api/v2/send"
params = "user=acme&password={config.password}&to={to_digits}&text={body}&ref={id}&from={sender}"
headers = "X-Api-Key: {config.api_key}"
password = "gh-secret-pass"
api_key = "gh-secret-key"
from = "MyBank"
id_pointer = "/result/message_id"
success_contains = "\"ok\":true""#,
        method: "POST",
        path: "/api/v2/send",
        headers: &[("x-api-key", "gh-secret-key")],
        body: Body::Form(&[
            ("user", "acme"),
            ("password", "gh-secret-pass"),
            ("to", "447400123456"),
            ("text", MESSAGE),
            ("ref", "{id}"),
            ("from", "MyBank"),
        ]),
        success: (200, r#"{"ok":true,"result":{"message_id":"gm-42"}}"#),
        provider_id: "gm-42",
        failures: [
            vec![
                shape("refused in a 200", 200, r#"{"ok":false,"error":"number blocked"}"#, (502, "rejected")),
                shape("bad credentials", 403, r#"{"ok":false,"error":"bad key"}"#, (502, "provider_unauthorized")),
                shape("bad request", 400, r#"{"ok":false,"error":"invalid"}"#, (502, "rejected")),
            ],
            // The configured success rule decides: not matching it is a refusal.
            common_with(r#"{"ok":false}"#, 200, (502, "rejected")),
        ]
        .concat(),
    }
}

#[tokio::test]
async fn twilio() {
    check(twilio_case()).await;
}

#[tokio::test]
async fn twilio_verify() {
    check(twilio_verify_case()).await;
}

#[tokio::test]
async fn signalwire() {
    check(signalwire_case()).await;
}

#[tokio::test]
async fn messagebird() {
    check(messagebird_case()).await;
}

#[tokio::test]
async fn clickatell_platform() {
    check(clickatell_platform_case()).await;
}

#[tokio::test]
async fn clickatell_legacy_http() {
    check(clickatell_http_case()).await;
}

#[tokio::test]
async fn lox24_rest() {
    check(lox24_rest_case()).await;
}

#[tokio::test]
async fn lox24_legacy() {
    check(lox24_legacy_case()).await;
}

#[tokio::test]
async fn vonage() {
    check(vonage_case()).await;
}

#[tokio::test]
async fn generic_http() {
    check(generic_case()).await;
}

#[tokio::test]
async fn twilio_verify_refuses_a_message_without_a_code() {
    let mock = MockServer::start().await;
    Mock::given(any()).respond_with(respond(201, "{}", &[])).expect(0).mount(&mock).await;
    let bridge = start(&twilio_verify_case(), &mock, 2000).await;
    let a = bridge.post_form("/v1/send", &[("phone", PHONE), ("message", "Hello, no code here")]).await;
    a.assert_failed(502, "rejected");
    assert_eq!(a.message(), "rejected: the message contains no code to send (see `code_pattern`)");
}

/// Fields each Twilio operation declares, and those it requires, from
/// Twilio's own OpenAPI specs.
fn twilio_operation(path: &str) -> (Vec<String>, Vec<String>) {
    let spec: Value = serde_json::from_str(include_str!("fixtures/twilio-openapi-subset.json")).unwrap();
    let schema = &spec["paths"][path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let names = |v: &Value| -> Vec<String> {
        match v {
            Value::Object(m) => m.keys().cloned().collect(),
            Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let declared = names(&schema["properties"]);
    assert!(!declared.is_empty(), "the spec declares the operation's fields");
    (declared, names(&schema["required"]))
}

#[test]
fn twilio_requests_use_only_fields_the_openapi_spec_declares() {
    for (case, path) in [
        (twilio_case(), "/2010-04-01/Accounts/{AccountSid}/Messages.json"),
        (twilio_verify_case(), "/v2/Services/{ServiceSid}/Verifications"),
    ] {
        let (declared, required) = twilio_operation(path);
        let Body::Form(fields) = case.body else { panic!("Twilio takes form bodies") };
        let sent: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        for field in &sent {
            assert!(declared.iter().any(|d| d == field), "{}: `{field}` is not in {path}", case.adapter);
        }
        for field in &required {
            assert!(sent.contains(&field.as_str()), "{}: required `{field}` is missing", case.adapter);
        }
    }
}

/// A setting named like a credential is declared secret, so the host masks
/// its value wherever it would show and `check` flags it when written inline.
#[tokio::test]
async fn every_credential_a_bundled_adapter_takes_is_declared_secret() {
    let runtime = smsbridge_tests::runtime();
    let mut checked = 0;
    for (name, bytes) in smsbridge_tests::artifacts::BUNDLED {
        let adapter = runtime.load(bytes, name, None).await.unwrap();
        for key in &adapter.info.config_keys {
            let last_word = key.name.rsplit('_').next().unwrap_or_default();
            if ["secret", "password", "token", "key"].contains(&last_word) {
                assert!(key.secret, "adapter `{name}`: `{}` is a credential but not declared secret", key.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} credentials found: are the bundled adapters all there?");
}
