//! Each MFA product, as it really calls an HTTP SMS gateway: the exact
//! request it sends, and the exact rule it judges the answer by.

use regex::Regex;
use smsbridge_tests::Bridge;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Secrets the guides read from the environment, as the tests set them.
const SECRETS: &[(&str, &str)] = &[
    ("RSA_API_SECRET", "rsa-shared-secret-7f3a9c2e"),
    ("AA_GATEWAY_PASSWORD", "aa-basic-pass-41c8"),
    ("PRIVACYIDEA_GATEWAY_PASSWORD", "pi-basic-pass-93ab"),
    ("LINOTP_GATEWAY_PASSWORD", "lo-digest-pass-2b7d"),
];

/// The `[[route]]` tables of a guide in docs/callers/, pasted as written,
/// with its environment secrets filled in.
fn guide_routes(guide: &str) -> String {
    let file = format!("{}/../docs/callers/{guide}.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap();
    let mut routes = String::new();
    for block in text.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()) {
        if let Some(at) = block.find("[[route]]") {
            // As written, but for the per-number limits: these tests send one
            // number more codes than a user would get in an hour.
            let relaxed = "[[route]]\nlimits = { per_number = \"off\", per_prefix = \"off\" }\n";
            routes.push_str(&block[at..].replace("[[route]]\n", relaxed));
        }
    }
    assert!(!routes.is_empty(), "{file} has a [[route]] block");
    for (var, value) in SECRETS {
        routes = routes.replace(&format!("{{ env = \"{var}\" }}"), &format!("\"{value}\""));
    }
    routes
}

/// The guides' routes, with a mock Twilio Verify as provider `verify` and an
/// outbox as provider `sms`, plus routes for bearer tokens and networks.
fn config(verify: &MockServer) -> String {
    let guides: String = ["rsa-authentication-manager", "advanced-authentication", "privacyidea", "linotp"]
        .iter()
        .map(|g| guide_routes(g))
        .collect();
    format!(
        r#"
[[provider]]
name = "verify"
adapter = "twilio-verify"
allow_hosts = ["{mock}"]
[provider.config]
service_sid = "VA0123456789abcdef0123456789abcdef"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "verify-auth-token"
base_url = "{mock}"

[[provider]]
name = "sms"
adapter = "outbox"
data_dir = "{{dir}}/outbox"

{guides}

[[route]]
path = "/v1/bearer"
auth = {{ bearer = {{ token = "tok-authentik-6e0f" }} }}
providers = ["sms"]

[[route]]
path = "/v1/internal"
allow_networks = ["10.0.0.0/8", "192.168.0.0/16"]
providers = ["sms"]
"#,
        mock = verify.uri()
    )
}

async fn start() -> (Bridge, MockServer) {
    let verify = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/Services/VA0123456789abcdef0123456789abcdef/Verifications"))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending","to":"+12015550123","channel":"sms"}"#,
            "application/json",
        ))
        .mount(&verify)
        .await;
    (Bridge::start(&config(&verify)).await, verify)
}

/// RSA AM's judgement: its Response Format regex (Java, `find`) applied to
/// the body; the first group must equal the Success Response Code.
fn rsa_success(body: &str, response_format: &str, success_code: &str) -> bool {
    let re = Regex::new(response_format).unwrap();
    match re.captures(body) {
        Some(c) => c.get(1).or_else(|| c.get(0)).map(|m| m.as_str()) == Some(success_code),
        None => false,
    }
}

/// RSA AM's Parameters string with `$msg.address`, `$msg.message`,
/// `$cfg.user` and `$cfg.password` filled in, as the plug-in sends it.
fn rsa_parameters(address: &str, secret: &str, code: &str) -> String {
    format!(
        "To={address}&Custommessage=Your tokencode is {code}&Channel=sms&verify_sid=VA0123456789abcdef0123456789abcdef&api_secret={secret}"
    )
}

const RSA_FORMAT: &str = r#".*status":\s?"([a-zA-Z]*)"#;

#[tokio::test]
async fn rsa_authentication_manager_through_twilio_verify() {
    let (bridge, verify) = start().await;
    let secret = "rsa-shared-secret-7f3a9c2e";
    // The number with `+` percent-encoded, with `+` unencoded (it arrives as a
    // space), without `+`, and with separators.
    // A new code each time: a repeated identical request is answered once.
    let mut codes = Vec::new();
    for address in ["%2B12015550123", "+12015550123", "12015550123", "(201) 555-0123"] {
        let code = format!("123456{:02}", codes.len());
        let post = bridge
            .post_raw("/v1/rsa", "application/x-www-form-urlencoded", rsa_parameters(address, secret, &code))
            .await;
        assert!(rsa_success(&post.text, RSA_FORMAT, "pending"), "POST {address}: {post:?}");
        codes.push(code);
        let code = format!("123456{:02}", codes.len());
        let params = rsa_parameters(address, secret, &code);
        let get = bridge.get(&format!("/v1/rsa?{}", params.replace(' ', "%20"))).await;
        assert!(rsa_success(&get.text, RSA_FORMAT, "pending"), "GET {address}: {get:?}");
        codes.push(code);
    }
    // Verify got the code alone, for the E.164 number, and no RSA credential.
    let requests = verify.received_requests().await.unwrap();
    assert_eq!(requests.len(), 8);
    for (r, code) in requests.iter().zip(&codes) {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(
            form,
            [("To", "+12015550123"), ("Channel", "sms"), ("CustomCode", code.as_str())]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    // A wrong secret: judged a failure, and no SMS.
    let wrong = bridge
        .post_raw("/v1/rsa", "application/x-www-form-urlencoded", rsa_parameters("%2B12015550123", "guess", "12345678"))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(!rsa_success(&wrong.text, RSA_FORMAT, "pending"), "{wrong:?}");
    assert!(!wrong.text.contains("guess") && !wrong.text.contains(secret), "reveals nothing: {}", wrong.text);
    let missing =
        bridge.post_raw("/v1/rsa", "application/x-www-form-urlencoded", "To=%2B12015550123&Custommessage=x").await;
    assert_eq!(missing.status, 401);
    assert_eq!(verify.received_requests().await.unwrap().len(), 8);
}

#[tokio::test]
async fn rsa_authentication_manager_xml_method() {
    let (bridge, verify) = start().await;
    // The guide's XML Request Body, filled in.
    let body = |secret: &str| {
        format!(
            "<?xml version=\"1.0\"?><sms><user>VA0123456789abcdef0123456789abcdef</user><password>{secret}</password><to>+44 7400 123456</to><text>Your tokencode is 87654321 &amp; more</text></sms>"
        )
    };
    let ok = bridge.post_raw("/v1/rsa-xml", "application/xml", body("rsa-shared-secret-7f3a9c2e")).await;
    // Success Response Code and Response Format `RESULT:OK`.
    assert!(rsa_success(&ok.text, "RESULT:OK", "RESULT:OK"), "{ok:?}");
    assert_eq!(ok.status, 200);
    let requests = verify.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&requests[0].body).into_owned().collect();
    assert_eq!(form[0], ("To".to_string(), "+447400123456".to_string()));
    assert_eq!(form[2], ("CustomCode".to_string(), "87654321".to_string()));

    let wrong = bridge.post_raw("/v1/rsa-xml", "text/xml", body("nope")).await;
    assert!(!rsa_success(&wrong.text, "RESULT:OK", "RESULT:OK"), "{wrong:?}");
    let broken = bridge.post_raw("/v1/rsa-xml", "application/xml", "<sms><to>+447400123456</text></sms>").await;
    broken.assert_failed(400, "invalid_xml");
    assert_eq!(verify.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn advanced_authentication_generic_sender() {
    let (bridge, _verify) = start().await;
    // Clickatell-style names, with the "Add secure" password parameter.
    let form = [
        ("user", "acme"),
        ("password", "clickatell-pass"),
        ("api_id", "3456789"),
        ("to", "+447400123456"),
        ("text", "Your code is 246810"),
        ("from", "MyBank"),
    ];
    let send = |user: &'static str, pass: &'static str| {
        bridge.client.post(bridge.url("/v1/aa")).basic_auth(user, Some(pass)).form(&form).send()
    };
    let ok = send("netiq-aa", "aa-basic-pass-41c8").await.unwrap();
    assert!(ok.status().is_success(), "AA judges success by a 2xx: {ok:?}");
    let wrong = send("netiq-aa", "wrong").await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic realm="));
    let anonymous = bridge.client.post(bridge.url("/v1/aa")).form(&form).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(bridge.outbox("outbox").len(), 1);
}

#[tokio::test]
async fn privacyidea_http_sms_provider() {
    let (bridge, _verify) = start().await;
    // privacyIDEA: status 200, 201 or 202, then RETURN_SUCCESS as a substring.
    let judged = |status: u16, body: &str| [200, 201, 202].contains(&status) && body.contains("\"status\":\"pending\"");
    for json in [false, true] {
        let mut req =
            bridge.client.post(bridge.url("/v1/privacyidea")).basic_auth("privacyidea", Some("pi-basic-pass-93ab"));
        let fields = [("phone", "+4917612345678"), ("text", "123456")];
        req = if json {
            req.json(&serde_json::json!({"phone": fields[0].1, "text": fields[1].1}))
        } else {
            req.form(&fields)
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(judged(status, &body), "json={json}: {status} {body}");
    }
    let resp = bridge
        .client
        .post(bridge.url("/v1/privacyidea"))
        .basic_auth("privacyidea", Some("x"))
        .form(&[("phone", "+4917612345678"), ("text", "1")])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(!judged(status, &resp.text().await.unwrap()));
}

#[tokio::test]
async fn linotp_with_digest_auth_from_curl() {
    let (bridge, _verify) = start().await;
    let url = bridge.url("/v1/linotp");
    let curl = |password: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args([
                    "-sS",
                    "--digest",
                    "-u",
                    &format!("linotp:{password}"),
                    "--data-urlencode",
                    "phone=+447400123456",
                ])
                .args(["--data-urlencode", "sms=Your OTP is 135790", &url])
                .output()
                .expect("curl is installed (.ci/run installs it)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    // LinOTP: RETURN_SUCCESS matched as a prefix of the body.
    let body = curl("lo-digest-pass-2b7d").await.unwrap();
    assert!(body.starts_with("RESULT:OK"), "{body}");
    let body = curl("wrong-password").await.unwrap();
    assert!(!body.starts_with("RESULT:OK"), "{body}");
    assert_eq!(bridge.outbox("outbox").len(), 1);
}

#[tokio::test]
async fn bearer_tokens_and_caller_networks() {
    let (bridge, _verify) = start().await;
    let form = [("phone", "+447400123456"), ("message", "hi")];
    let ok = bridge
        .client
        .post(bridge.url("/v1/bearer"))
        .bearer_auth("tok-authentik-6e0f")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let wrong = bridge.client.post(bridge.url("/v1/bearer")).bearer_auth("tok-other").form(&form).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // This test calls from 127.0.0.1, which the route does not allow.
    let outside = bridge.post_form("/v1/internal", &form).await;
    outside.assert_failed(401, "unauthorized");
    assert_eq!(bridge.outbox("outbox").len(), 1);
}
