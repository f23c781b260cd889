//! Each MFA product, as it really calls an HTTP SMS gateway: the exact
//! request it sends, and the exact rule it judges the answer by.

use regex::Regex;
use smsbridge_tests::{Bridge, python};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Secrets the guides read from the environment, as the tests set them.
const SECRETS: &[(&str, &str)] = &[
    ("RSA_API_SECRET", "rsa-shared-secret-7f3a9c2e"),
    ("AA_GATEWAY_PASSWORD", "aa-basic-pass-41c8"),
    ("PRIVACYIDEA_GATEWAY_PASSWORD", "pi-basic-pass-93ab"),
    ("LINOTP_GATEWAY_PASSWORD", "lo-digest-pass-2b7d"),
    ("OKTA_HOOK_SECRET", "okta-hook-secret-5e1d7a"),
    ("SUPABASE_HOOK_SECRET", "v1,whsec_c21zYnJpZGdlLXN1cGFiYXNlLWhvb2stc2VjcmV0"),
    ("AUTH0_GATEWAY_SECRET", "auth0-gateway-secret-0123456789abcdef"),
    ("AUTHENTIK_GATEWAY_TOKEN", "authentik-token-8c2f41"),
    ("KEYCLOAK_GATEWAY_TOKEN", "keycloak-token-31b7e9"),
    ("FORTIAUTH_GATEWAY_PASSWORD", "fortiauth-pass-6a0c"),
    ("PINGONE_GATEWAY_TOKEN", "pingone-token-9d4e22"),
    ("ISE_GATEWAY_PASSWORD", "cisco-ise-pass-17f3"),
];

/// Every guide in docs/callers/, by file name.
const GUIDES: &[&str] = &[
    "rsa-authentication-manager",
    "advanced-authentication",
    "privacyidea",
    "linotp",
    "okta",
    "supabase",
    "auth0",
    "authentik",
    "keycloak",
    "fortiauthenticator",
    "pingone",
    "cisco-ise",
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
    let guides: String = GUIDES.iter().map(|g| guide_routes(g)).collect();
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

fn secret(var: &str) -> &'static str {
    SECRETS.iter().find(|(v, _)| *v == var).unwrap().1
}

/// Okta's documented sample request of the telephony inline hook.
fn okta_sample(channel: &str) -> serde_json::Value {
    serde_json::json!({
        "eventId": "2FP7Ay8UTJa4chOYa-1Zdw",
        "eventTime": "2022-01-28T21:57:43.000Z",
        "eventType": "com.okta.telephony.provider",
        "eventTypeVersion": "1.0",
        "contentType": "application/json",
        "cloudEventVersion": "0.1",
        "source": "https://example.okta.com/api/v1/inlineHooks/cal3ughy17pylLxQB357",
        "requestType": "com.okta.user.telephony.pre-enrollment",
        "data": {
            "context": {
                "request": {
                    "id": "reqRgSk8IBBRhuo0YdlEDTmUw",
                    "method": "POST",
                    "url": {"value": "/api/internal/v1/inlineHooks/com.okta.telephony.provider/generatePreview"},
                    "ipAddress": "127.0.0.1"
                }
            },
            "userProfile": {
                "firstName": "test",
                "lastName": "user",
                "login": "test.user@okta.com",
                "userId": "00uyxxSknGtK8022a2p6"
            },
            "messageProfile": {
                "msgTemplate": "(Preview) Your Okta verification code is 411435",
                "phoneNumber": "2015550123",
                "otpExpires": "2022-01-28T22:02:44.000Z",
                "deliveryChannel": channel,
                "otpCode": "411435",
                "locale": "EN-US"
            }
        }
    })
}

/// Okta's rule: a 200 whose first command is a telephony action with status
/// SUCCESSFUL or PENDING; an `error` object fails the OTP; anything else
/// sends Okta to its own providers.
#[derive(Debug, PartialEq)]
enum OktaReads {
    Delivered,
    FailsTheOtp,
    FallsBack,
}

fn okta_reads(status: u16, body: &serde_json::Value) -> OktaReads {
    let action = &body["commands"][0];
    let delivered = action["type"] == "com.okta.telephony.action"
        && ["SUCCESSFUL", "PENDING"].contains(&action["value"][0]["status"].as_str().unwrap_or(""));
    match status {
        200 if delivered => OktaReads::Delivered,
        200 if body["error"]["errorSummary"].is_string() => OktaReads::FailsTheOtp,
        _ => OktaReads::FallsBack,
    }
}

#[tokio::test]
async fn okta_telephony_inline_hook() {
    let (bridge, _verify) = start().await;
    let hook = |body: serde_json::Value, auth: &'static str| {
        let req = bridge.client.post(bridge.url("/v1/okta")).json(&body);
        async move {
            let resp = req.header("Authorization", auth).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let auth = secret("OKTA_HOOK_SECRET");
    let (status, body) = hook(okta_sample("SMS"), auth).await;
    assert_eq!(okta_reads(status, &body), OktaReads::Delivered, "{status} {body}");
    let action = &body["commands"][0]["value"][0];
    assert_eq!(action["status"], "SUCCESSFUL", "{body}");
    assert_eq!(action["provider"], "sms");
    let sent = bridge.outbox("outbox");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], "+12015550123", "the national number read in the route's default country");
    assert_eq!(sent[0]["body"], "(Preview) Your Okta verification code is 411435");
    assert_eq!(action["transactionId"], sent[0]["id"]);

    // A template Okta did not fill in: the route's own text, with the code.
    let mut unfilled = okta_sample("SMS");
    unfilled["data"]["messageProfile"]["msgTemplate"] = "Your code is ${code}".into();
    unfilled["data"]["messageProfile"]["otpCode"] = "902117".into();
    let (status, body) = hook(unfilled, auth).await;
    assert_eq!(okta_reads(status, &body), OktaReads::Delivered, "{status} {body}");
    assert_eq!(bridge.outbox("outbox")[1]["body"], "Your verification code is 902117");

    // A voice call: Okta places it through its own provider.
    let (status, body) = hook(okta_sample("CALL"), auth).await;
    assert_eq!(okta_reads(status, &body), OktaReads::FallsBack, "{status} {body}");
    // An invalid number fails the OTP rather than going to Okta's providers.
    let mut invalid = okta_sample("SMS");
    invalid["data"]["messageProfile"]["phoneNumber"] = "12".into();
    let (status, body) = hook(invalid, auth).await;
    assert_eq!(okta_reads(status, &body), OktaReads::FailsTheOtp, "{status} {body}");
    assert_eq!(body["error"]["errorCauses"][0]["reason"], "invalid_phone");
    let (status, _) = hook(okta_sample("SMS"), "wrong-secret").await;
    assert_eq!(status, 401);
    assert_eq!(bridge.outbox("outbox").len(), 2, "nothing else was sent");
}

/// A Supabase Send SMS hook request, signed by the `standardwebhooks`
/// package under `key` (`whsec_…`) with id `id` at `timestamp`.
fn supabase_signed(key: &str, id: &str, timestamp: u64, body: &str) -> String {
    let script = "import sys, datetime\nfrom standardwebhooks.webhooks import Webhook\nat = datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc)\nprint(Webhook(sys.argv[1]).sign(sys.argv[2], at, sys.argv[4]))";
    python(script, &[key, id, &timestamp.to_string(), body])
}

#[tokio::test]
async fn supabase_send_sms_hook() {
    let (bridge, _verify) = start().await;
    let key = secret("SUPABASE_HOOK_SECRET").trim_start_matches("v1,");
    let body = serde_json::json!({
        "user": {"id": "8f3a2c1e-0000-4000-8000-000000000001", "aud": "authenticated", "role": "authenticated",
                 "phone": "447400123456", "app_metadata": {"provider": "phone", "providers": ["phone"]},
                 "user_metadata": {}, "identities": [], "created_at": "2024-05-01T10:00:00Z"},
        "sms": {"otp": "561166"}
    })
    .to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let post = |id: &str, at: u64, signature: String| {
        let req = bridge
            .client
            .post(bridge.url("/v1/supabase"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", at.to_string())
            .header("webhook-signature", signature)
            .body(body.clone());
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, answer) = post("msg_1", now, supabase_signed(key, "msg_1", now, &body)).await;
    assert_eq!((status, answer.as_str()), (200, "{}"));
    let sent = bridge.outbox("outbox");
    assert_eq!(
        (sent[0]["to"].as_str(), sent[0]["body"].as_str()),
        (Some("+447400123456"), Some("Your code is 561166"))
    );

    // Refused, each with nothing sent.
    let stranger = "whsec_c29tZW9uZS1lbHNlcy13ZWJob29rLXNlY3JldA==";
    let cases = [
        ("a replayed webhook-id", post("msg_1", now, supabase_signed(key, "msg_1", now, &body)).await),
        ("another secret's signature", post("msg_2", now, supabase_signed(stranger, "msg_2", now, &body)).await),
        ("a stale timestamp", post("msg_3", now - 600, supabase_signed(key, "msg_3", now - 600, &body)).await),
        ("a signature for another id", post("msg_4", now, supabase_signed(key, "msg_5", now, &body)).await),
        ("no signature", post("msg_6", now, String::new()).await),
    ];
    for (what, (status, answer)) in cases {
        assert_eq!(status, 401, "{what}: {answer}");
        let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(error["error"]["http_code"], 401, "{what}: Supabase's error shape");
    }
    assert_eq!(bridge.outbox("outbox").len(), 1);
}

/// A gateway token as Auth0 makes it, by PyJWT.
fn auth0_token(claims: serde_json::Value, key: &str, alg: &str) -> String {
    token_with_header(claims, key, alg, serde_json::json!({}))
}

/// A token by PyJWT with `header` fields added to its JOSE header.
fn token_with_header(claims: serde_json::Value, key: &str, alg: &str, header: serde_json::Value) -> String {
    let script = "import sys, json, jwt\nkey = None if sys.argv[3] == 'none' else sys.argv[2]\nprint(jwt.encode(json.loads(sys.argv[1]), key, algorithm=sys.argv[3], headers=json.loads(sys.argv[4])))";
    python(script, &[&claims.to_string(), key, alg, &header.to_string()])
}

#[tokio::test]
async fn auth0_passwordless_sms_gateway() {
    let (bridge, _verify) = start().await;
    let key = secret("AUTH0_GATEWAY_SECRET");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |aud: &str, exp: u64| serde_json::json!({"sub": "urn:Auth0", "aud": aud, "iat": now, "exp": exp});
    let body = serde_json::json!({"recipient": "+447400123456", "body": "Your verification code is: 730551", "sender": "MyBank"});
    let post = |token: String| {
        let req = bridge.client.post(bridge.url("/v1/auth0")).bearer_auth(token).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Auth0 counts any 2xx.
    let status = post(auth0_token(claims("urn:smsbridge", now + 60), key, "HS256")).await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(bridge.outbox("outbox")[0]["body"], "Your verification code is: 730551");
    let refused = [
        ("wrong audience", auth0_token(claims("urn:other", now + 60), key, "HS256")),
        ("expired", auth0_token(claims("urn:smsbridge", now - 120), key, "HS256")),
        ("alg none", auth0_token(claims("urn:smsbridge", now + 60), key, "none")),
        ("another key", auth0_token(claims("urn:smsbridge", now + 60), "another-secret-0123456789abcdef", "HS256")),
        ("wrong subject", {
            let mut c = claims("urn:smsbridge", now + 60);
            c["sub"] = "urn:someone".into();
            auth0_token(c, key, "HS256")
        }),
    ];
    for (what, token) in refused {
        assert_eq!(post(token).await, 401, "{what}");
    }
    assert_eq!(bridge.outbox("outbox").len(), 1, "nothing sent for a refused token");
}

#[tokio::test]
async fn a_captured_jwt_authorises_one_request_and_no_more() {
    let (bridge, _verify) = start().await;
    let key = secret("AUTH0_GATEWAY_SECRET");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |iat: Option<u64>, exp: u64, jti: &str| {
        let mut c = serde_json::json!({"sub": "urn:Auth0", "aud": "urn:smsbridge", "exp": exp, "jti": jti});
        if let Some(iat) = iat {
            c["iat"] = iat.into();
        }
        c
    };
    let post = |scheme: &'static str, token: String, to: &'static str, text: &'static str| {
        let body = serde_json::json!({"recipient": to, "body": text});
        let req = bridge.client.post(bridge.url("/v1/auth0")).header("authorization", format!("{scheme} {token}"));
        let req = req.json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let captured = auth0_token(claims(Some(now), now + 60, "t1"), key, "HS256");
    assert_eq!(post("Bearer", captured.clone(), "+447400123456", "Your code is 404111").await, 200);
    // The same token again, for another number and text: refused.
    assert_eq!(post("Bearer", captured, "+447400654321", "Your code is 404112").await, 401, "a replayed token");
    let refused = [
        ("no iat", auth0_token(claims(None, now + 60, "t2"), key, "HS256")),
        ("a lifetime of a day", auth0_token(claims(Some(now), now + 86_400, "t3"), key, "HS256")),
        ("a crit header", {
            let header = serde_json::json!({"crit": ["exp"]});
            token_with_header(claims(Some(now), now + 60, "t4"), key, "HS256", header)
        }),
    ];
    for (what, token) in refused {
        assert_eq!(post("Bearer", token, "+447400654322", "Your code is 404113").await, 401, "{what}");
    }
    // The scheme's name is not case-sensitive (RFC 9110).
    let fresh = auth0_token(claims(Some(now), now + 60, "t5"), key, "HS256");
    assert_eq!(post("bearer", fresh, "+447400654323", "Your code is 404114").await, 200);
    let texts: Vec<String> = bridge.outbox("outbox").iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["Your code is 404111", "Your code is 404114"]);
}

/// A Standard Webhooks request stays acceptable until its timestamp plus
/// the tolerance, and its id is refused for as long: a request dated ahead
/// is not sent again once the route's own window has passed.
#[tokio::test]
async fn a_webhook_dated_ahead_is_not_sent_again_after_the_window() {
    let config = r#"
[[provider]]
name = "sms"
adapter = "outbox"
data_dir = "{dir}/outbox"
[[route]]
path = "/v1/hook"
caller = "supabase"
auth = { webhook = { secret = "v1,whsec_c21zYnJpZGdlLXN1cGFiYXNlLWhvb2stc2VjcmV0", tolerance_s = 5 } }
idempotency_window_s = 5
limits = { per_number = "off", per_prefix = "off" }
providers = ["sms"]
"#;
    let bridge = Bridge::start(config).await;
    let key = secret("SUPABASE_HOOK_SECRET").trim_start_matches("v1,");
    let body = serde_json::json!({"user": {"phone": "447400123456"}, "sms": {"otp": "771203"}}).to_string();
    let ahead = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 4;
    let signature = supabase_signed(key, "msg_ahead", ahead, &body);
    let post = || {
        bridge
            .client
            .post(bridge.url("/v1/hook"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_ahead")
            .header("webhook-timestamp", ahead.to_string())
            .header("webhook-signature", signature.clone())
            .body(body.clone())
            .send()
    };
    assert_eq!(post().await.unwrap().status().as_u16(), 200);
    // Past the route's 5 s window, still within the timestamp's tolerance.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(post().await.unwrap().status().as_u16(), 401, "the replay");
    assert_eq!(bridge.outbox("outbox").len(), 1, "one SMS");
}

#[tokio::test]
async fn authentik_keycloak_pingone_fortiauthenticator_and_cisco_ise() {
    let (bridge, _verify) = start().await;
    let ok = |status: u16| (200..300).contains(&status);
    // Authentik's generic provider: Body is the code, Message the text.
    let authentik = serde_json::json!({"From": "MyBank", "To": "+447400123456", "Body": "220814", "Message": "Your authentik code is 220814"});
    let status = bridge
        .client
        .post(bridge.url("/v1/authentik"))
        .bearer_auth(secret("AUTHENTIK_GATEWAY_TOKEN"))
        .json(&authentik)
        .send()
        .await
        .unwrap()
        .status();
    assert!(ok(status.as_u16()), "authentik: {status}");
    // Keycloak: the admin's field names, JSON, a token header.
    let keycloak = serde_json::json!({"to": "+447400123457", "text": "Your Keycloak code is 775100"});
    let send = |key: &'static str| {
        bridge.client.post(bridge.url("/v1/keycloak")).header("X-Api-Key", key).json(&keycloak).send()
    };
    assert!(ok(send(secret("KEYCLOAK_GATEWAY_TOKEN")).await.unwrap().status().as_u16()));
    assert_eq!(send("wrong-token").await.unwrap().status().as_u16(), 401);
    // PingOne: the guide's body template, filled in.
    let pingone = r#"{"to": "+447400123458", "message": "Your PingOne code is 118902"}"#;
    let status = bridge
        .client
        .post(bridge.url("/v1/pingone"))
        .bearer_auth(secret("PINGONE_GATEWAY_TOKEN"))
        .header("content-type", "application/json")
        .body(pingone)
        .send()
        .await
        .unwrap()
        .status();
    assert!(ok(status.as_u16()), "pingone: {status}");
    // FortiAuthenticator and Cisco ISE: the guides' URL templates, filled in.
    let get = |url: &str, user: &'static str, var: &str| {
        bridge.client.get(bridge.url(url)).basic_auth(user, Some(secret(var))).send()
    };
    let forti = "/v1/fortiauthenticator?to=%2B447400123459&text=Your%20FortiToken%20code%20is%20650113";
    let status = get(forti, "fortiauthenticator", "FORTIAUTH_GATEWAY_PASSWORD").await.unwrap().status();
    assert!(ok(status.as_u16()), "fortiauthenticator: {status}");
    let ise = "/v1/ise?to=%2B447400123450&text=Your%20guest%20password%20is%20k7Q2p";
    let status = get(ise, "cisco-ise", "ISE_GATEWAY_PASSWORD").await.unwrap().status();
    assert!(ok(status.as_u16()), "cisco ise: {status}");
    let refused = bridge.client.get(bridge.url(ise)).basic_auth("cisco-ise", Some("wrong")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let texts: Vec<String> = bridge.outbox("outbox").iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        texts,
        [
            "Your authentik code is 220814",
            "Your Keycloak code is 775100",
            "Your PingOne code is 118902",
            "Your FortiToken code is 650113",
            "Your guest password is k7Q2p",
        ]
    );
}
