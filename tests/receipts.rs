//! Signed delivery receipts: a status callback signed by Twilio's own Python
//! helper library (an independent implementation) updates the message
//! record; the same callback with one byte changed, or unsigned, is refused
//! and changes nothing. And adapters built for the contract before receipts
//! keep loading.

use smsbridge_tests::{Bridge, artifacts, python};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
const PUBLIC: &str = "https://sms.example.com";

/// `X-Twilio-Signature` for `url` and `params`, computed by the `twilio`
/// package's `RequestValidator` (installed by scripts/test).
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let script = "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
                  token, url, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n\
                  print(RequestValidator(token).compute_signature(url, params))";
    let params: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
    python(script, &[TOKEN, url, &serde_json::Value::Object(params).to_string()])
}

/// The status words of message `id`'s timeline, from the admin listener.
async fn timeline(bridge: &Bridge, id: &str) -> Vec<String> {
    let (_, m) = bridge.admin(&format!("/admin/messages/{id}")).await;
    m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap().to_string()).collect()
}

fn form(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// smsbridge with a Twilio provider (a mock that accepts every message as
/// `SM5a1b`) and a record; `server` is the `[server]` table's extra lines.
async fn twilio_bridge(server: &str) -> (MockServer, Bridge) {
    let twilio = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(201).set_body_raw(r#"{"sid":"SM5a1b","status":"queued"}"#, "application/json"),
        )
        .mount(&twilio)
        .await;
    let config = format!(
        r#"
[server]
{server}
[record]
path = "{{dir}}/messages.db"
[[provider]]
name = "twilio"
adapter = "twilio"
allow_hosts = ["{mock}"]
[provider.config]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "{TOKEN}"
from = "+15005550006"
base_url = "{mock}"
[[route]]
path = "/v1/send"
providers = ["twilio"]
"#,
        mock = twilio.uri()
    );
    let bridge = Bridge::start(&config).await;
    (twilio, bridge)
}

#[tokio::test]
async fn a_twilio_callback_signed_by_twilios_library_updates_the_record_and_a_forgery_changes_nothing() {
    let (_twilio, bridge) = twilio_bridge(&format!("public_url = \"{PUBLIC}/\"")).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 246810")]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let id = sent.json["id"].as_str().unwrap().to_string();

    let params = [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("MessageSid", "SM5a1b"),
        ("MessageStatus", "delivered"),
        ("To", "+447400123456"),
        ("ApiVersion", "2010-04-01"),
    ];
    let url = format!("{PUBLIC}/callbacks/twilio");
    let signature = twilio_signature(&url, &params);
    let post = |body: String, signature: Option<String>| {
        let mut req = bridge
            .client
            .post(bridge.url("/callbacks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        req.send()
    };

    // One byte changed in the body: refused, nothing recorded.
    let forged = form(&params).replace("delivered", "delivereD");
    assert_eq!(post(forged, Some(signature.clone())).await.unwrap().status(), 403);
    // No signature at all.
    assert_eq!(post(form(&params), None).await.unwrap().status(), 403);
    // One byte changed in the signature.
    let mut bad = signature.clone().into_bytes();
    bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
    assert_eq!(post(form(&params), Some(String::from_utf8(bad).unwrap())).await.unwrap().status(), 403);
    assert_eq!(timeline(&bridge, &id).await, ["queued"]);

    // The genuine callback.
    let resp = post(form(&params), Some(signature)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["updated"], 1);
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);

    // The same callback with its fields in another order (the signature
    // still holds: Twilio signs the sorted fields) is the same callback.
    let mut reordered = params;
    reordered.reverse();
    let resp = post(form(&reordered), Some(twilio_signature(&url, &reordered))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["updated"], 0, "applied once");
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);

    // Twilio may sign the URL with its default port written out.
    let failed = [("MessageSid", "SM5a1b"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    let with_port = twilio_signature(&format!("{PUBLIC}:443/callbacks/twilio"), &failed);
    assert_eq!(post(form(&failed), Some(with_port)).await.unwrap().status(), 200);
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered", "undelivered"]);

    // No such provider.
    let unknown = bridge.client.post(bridge.url("/callbacks/nobody")).body("x").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_signalwire_callback_is_checked_with_the_signing_key_under_its_own_header() {
    let sw = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            r#"{"sid":"0e6d3ebc-6ed4-4a5a-a5a8-35f3fbb1a0e3","status":"queued","num_segments":1}"#,
            "application/json",
        ))
        .mount(&sw)
        .await;
    let config = format!(
        r#"
[server]
public_url = "{PUBLIC}"
[record]
path = "{{dir}}/messages.db"
[[provider]]
name = "sw"
adapter = "signalwire"
allow_hosts = ["{mock}"]
[provider.config]
space = "acme"
project_id = "p-1"
api_token = "PTsecret-token"
signing_key = "{TOKEN}"
from = "+15550100"
base_url = "{mock}"
[[route]]
path = "/v1/send"
providers = ["sw"]
"#,
        mock = sw.uri()
    );
    let bridge = Bridge::start(&config).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 112233")]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let params = [("MessageSid", "0e6d3ebc-6ed4-4a5a-a5a8-35f3fbb1a0e3"), ("MessageStatus", "delivered")];
    // The Twilio scheme, keyed by the Signing Key (TOKEN here), not the API token.
    let signature = twilio_signature(&format!("{PUBLIC}/callbacks/sw"), &params);
    let post = |header: &'static str, sig: String| {
        bridge
            .client
            .post(bridge.url("/callbacks/sw"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header, sig)
            .body(form(&params))
            .send()
    };
    assert_eq!(post("X-SignalWire-Signature", signature.replace('=', "A")).await.unwrap().status(), 403);
    let resp = post("X-SignalWire-Signature", signature.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["updated"], 1);
    // The alias header is read too.
    assert_eq!(post("X-Twilio-Signature", signature).await.unwrap().status(), 200);
}

/// A `MessageBird-Signature-JWT` for a GET of `url`, made with PyJWT, the
/// way MessageBird's own libraries make it.
fn messagebird_jwt(key: &str, url: &str, valid_from: i64, valid_for: i64) -> String {
    let script = "import hashlib, sys, time, jwt\n\
                  key, url, start, span = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n\
                  now = int(time.time()) + start\n\
                  claims = {'iss': 'MessageBird', 'nbf': now, 'exp': now + span, 'jti': 'j-1',\n\
                            'url_hash': hashlib.sha256(url.encode()).hexdigest()}\n\
                  print(jwt.encode(claims, key, algorithm='HS256'))";
    python(script, &[key, url, &valid_from.to_string(), &valid_for.to_string()])
}

#[tokio::test]
async fn a_messagebird_report_signed_with_a_jwt_updates_the_record_and_a_forgery_changes_nothing() {
    let mb = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(201).set_body_raw(r#"{"id":"mb-7c1e","recipients":{}}"#, "application/json"),
        )
        .mount(&mb)
        .await;
    let config = format!(
        r#"
[server]
public_url = "{PUBLIC}"
[record]
path = "{{dir}}/messages.db"
[[provider]]
name = "mb"
adapter = "messagebird"
allow_hosts = ["{mock}"]
[provider.config]
access_key = "live_secret_key"
originator = "MyBank"
signing_key = "mb-signing-key-2f9d"
base_url = "{mock}"
[[route]]
path = "/v1/send"
providers = ["mb"]
"#,
        mock = mb.uri()
    );
    let bridge = Bridge::start(&config).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 864200")]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.json["provider_id"], "mb-7c1e");
    let id = sent.json["id"].as_str().unwrap().to_string();
    let query = "id=mb-7c1e&recipient=447400123456&status=delivered&statusDatetime=2026-11-24T08%3A00%3A00%2B00%3A00";
    let path = format!("/callbacks/mb?{query}");
    let get = |path: String, token: Option<String>| {
        let mut req = bridge.client.get(bridge.url(&path));
        if let Some(token) = token {
            req = req.header("MessageBird-Signature-JWT", token);
        }
        req.send()
    };

    let key = "mb-signing-key-2f9d";
    let token = messagebird_jwt(key, &format!("{PUBLIC}{path}"), 0, 60);
    // The status changed in the URL the JWT covers; a wrong key; expired; none.
    let forged = path.replace("delivered", "delivereD");
    assert_eq!(get(forged, Some(token.clone())).await.unwrap().status(), 403);
    let wrong_key = messagebird_jwt("guess", &format!("{PUBLIC}{path}"), 0, 60);
    assert_eq!(get(path.clone(), Some(wrong_key)).await.unwrap().status(), 403);
    let expired = messagebird_jwt(key, &format!("{PUBLIC}{path}"), -600, 60);
    assert_eq!(get(path.clone(), Some(expired)).await.unwrap().status(), 403);
    assert_eq!(get(path.clone(), None).await.unwrap().status(), 403);
    assert_eq!(timeline(&bridge, &id).await, ["queued"]);

    let resp = get(path.clone(), Some(token)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);
}

/// Vonage's `sig` for `params`, from Vonage's own Python SDK (v3).
fn vonage_sig(secret: &str, params: &[(&str, String)]) -> String {
    let script = "import json, sys, warnings\nwarnings.simplefilter('ignore')\nimport vonage\n\
                  c = vonage.Client(key='k', secret='s', signature_secret=sys.argv[1], signature_method='sha256')\n\
                  print(c.signature(json.loads(sys.argv[2])))";
    let params: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str()))).collect();
    python(script, &[secret, &serde_json::Value::Object(params).to_string()])
}

#[tokio::test]
async fn a_vonage_receipt_signed_by_vonages_sdk_updates_the_record_and_a_forgery_or_replay_changes_nothing() {
    let vonage = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"message-count":"1","messages":[{"status":"0","message-id":"0B00000123ABCDEF"}]}"#,
            "application/json",
        ))
        .mount(&vonage)
        .await;
    let secret = "vonage-signature-secret-81c4";
    let config = format!(
        r#"
[record]
path = "{{dir}}/messages.db"
[[provider]]
name = "vonage"
adapter = "vonage"
allow_hosts = ["{mock}"]
[provider.config]
api_key = "abcd1234"
signature_secret = "{secret}"
signature_method = "sha256"
from = "MyBank"
base_url = "{mock}"
[[route]]
path = "/v1/send"
providers = ["vonage"]
"#,
        mock = vonage.uri()
    );
    let bridge = Bridge::start(&config).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 975310")]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let id = sent.json["id"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let receipt = |status: &str, timestamp: u64| {
        vec![
            ("msisdn", "447400123456".to_string()),
            ("to", "MyBank".to_string()),
            ("messageId", "0B00000123ABCDEF".to_string()),
            ("status", status.to_string()),
            ("err-code", "0".to_string()),
            ("message-timestamp", "2026-11-24 08:00:00".to_string()),
            ("timestamp", timestamp.to_string()),
        ]
    };
    let get = |params: Vec<(&str, String)>, sig: Option<String>| {
        let mut all: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Some(sig) = sig {
            all.push(("sig".into(), sig));
        }
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(all).finish();
        bridge.client.get(bridge.url(&format!("/callbacks/vonage?{query}"))).send()
    };

    let good = receipt("delivered", now);
    let sig = vonage_sig(secret, &good);
    // Another status under the same sig; no sig; a sig over an old timestamp.
    assert_eq!(get(receipt("failed", now), Some(sig.clone())).await.unwrap().status(), 403);
    assert_eq!(get(good.clone(), None).await.unwrap().status(), 403);
    let old = receipt("delivered", now - 3600);
    assert_eq!(get(old.clone(), Some(vonage_sig(secret, &old))).await.unwrap().status(), 403);
    assert_eq!(timeline(&bridge, &id).await, ["queued"]);

    assert_eq!(get(good.clone(), Some(sig.clone())).await.unwrap().status(), 200);
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);

    // A provider that posts the same signed callback again (or an attacker
    // who replays it) is acknowledged; the status is applied once.
    for _ in 0..100 {
        assert_eq!(get(good.clone(), Some(sig.clone())).await.unwrap().status(), 200);
    }
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);
}

#[tokio::test]
async fn an_adapter_built_for_the_contract_before_receipts_still_loads_and_sends() {
    let config = r#"
[adapters]
dir = "{dir}/adapters"
[[provider]]
name = "old"
adapter = "contract-0-1-0"
[[route]]
path = "/v1/send"
providers = ["old"]
"#;
    let bridge = Bridge::start_with(config, |dir| {
        std::fs::create_dir_all(dir.join("adapters")).unwrap();
        std::fs::copy(artifacts::CONTRACT_0_1_0_WASM, dir.join("adapters/contract-0-1-0.wasm")).unwrap();
    })
    .await;
    let a = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 135790")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["provider_id"], format!("old-{}", a.json["id"].as_str().unwrap()));
    // It exports no receipts: its callbacks are not served.
    let resp = bridge.client.post(bridge.url("/callbacks/old")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// A status the record could not take is answered 503, so the provider
/// retries it, and the retry is applied: it was not marked seen.
#[tokio::test]
async fn a_receipt_the_record_could_not_take_is_retried_and_applied() {
    let (_twilio, bridge) = twilio_bridge(&format!("public_url = \"{PUBLIC}/\"")).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 135790")]).await;
    let id = sent.json["id"].as_str().unwrap().to_string();
    let params = [("MessageSid", "SM5a1b"), ("MessageStatus", "delivered")];
    let signature = twilio_signature(&format!("{PUBLIC}/callbacks/twilio"), &params);
    let post = || {
        bridge
            .client
            .post(bridge.url("/callbacks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", &signature)
            .body(form(&params))
            .send()
    };
    // The disk refuses the write of statuses.
    let db = rusqlite::Connection::open(bridge.dir.path().join("messages.db")).unwrap();
    db.execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON statuses BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), 503, "the provider must retry: {:?}", refused.text().await);
    db.execute_batch("DROP TRIGGER refuse;").unwrap();
    let retried = post().await.unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.json::<serde_json::Value>().await.unwrap()["updated"], 1, "the retry is applied");
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);
}

/// Over the HTTPS listener without `public_url`, the URL the adapter checks
/// the signature against is the `https://` one the provider called.
#[tokio::test]
async fn a_callback_over_https_is_checked_against_its_https_url() {
    let tls = "[server.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{dir}/tls/cert.pem\"\nkey = \"{dir}/tls/key.pem\"\n\
               self_signed = { names = [\"localhost\"], days = 30 }";
    let (_twilio, bridge) = twilio_bridge(tls).await;
    let sent = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Your code is 975310")]).await;
    let id = sent.json["id"].as_str().unwrap().to_string();
    let tls = bridge.gateway.routing().config.server.tls.clone().unwrap();
    smsbridge::tls::prepare(&tls).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = smsbridge::tls::server_config(&tls).unwrap();
    tokio::spawn(smsbridge::server::serve_tls(bridge.gateway.clone(), listener, server, std::future::pending()));
    let pem = std::fs::read(bridge.dir.path().join("tls/cert.pem")).unwrap();
    let client =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]).build().unwrap();
    let params = [("MessageSid", "SM5a1b"), ("MessageStatus", "delivered")];
    let url = format!("https://localhost:{port}/callbacks/twilio");
    let resp = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", twilio_signature(&url, &params))
        .body(form(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(timeline(&bridge, &id).await, ["queued", "delivered"]);
}
