//! The generic send endpoint, end to end: a real HTTP caller, the real
//! outbox component, and the file it writes.

use serde_json::json;
use smsbridge_tests::{Bridge, quiet_route};
use std::sync::LazyLock;

static OUTBOX: LazyLock<String> = LazyLock::new(|| {
    [r#"
[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{dir}/outbox"

"#, &quiet_route("/v1/send", &["outbox"], ""), r#"
"#, &quiet_route("/v1/gb", &["outbox"], "methods = [\"POST\"]\nfields = { phone = \"To\", message = \"Custommessage\" }\ndefault_country = \"GB\"\n")].concat()
});

#[tokio::test]
async fn get_form_and_json_each_deliver_one_line() {
    let bridge = Bridge::start(&OUTBOX).await;

    let get = bridge.get("/v1/send?phone=%2B447400123456&message=Your%20code%20is%20111111").await;
    // An unencoded `+` (as `curl -d phone=+44…` sends it) still reads as `+`.
    let form = bridge
        .post_raw("/v1/send", "application/x-www-form-urlencoded", "phone=+447400123456&message=Your code is 222222")
        .await;
    let json =
        bridge.post_json("/v1/send", json!({"phone": "+1 (201) 555-0123", "message": "Your code is 333333"})).await;

    for (answer, expected) in [(&get, "111111"), (&form, "222222"), (&json, "333333")] {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json["status"], "pending");
        assert_eq!(answer.json["provider"], "outbox");
        assert_eq!(answer.json["segments"], 1);
        assert_eq!(answer.json["provider_id"], answer.json["id"], "outbox reports the host's id");
        // RSA AM's published Response Format must capture `pending`.
        let at = answer.text.find("status\":").unwrap() + "status\":".len();
        assert!(answer.text[at..].trim_start().starts_with("\"pending\""), "{}", answer.text);
        assert!(!answer.text.contains(expected), "the answer never echoes the message");
    }

    let lines = bridge.outbox("outbox");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let ids: Vec<_> = lines.iter().map(|l| l["id"].clone()).collect();
    assert_eq!(ids, [get.json["id"].clone(), form.json["id"].clone(), json.json["id"].clone()]);
    assert_eq!(lines[0]["to"], "+447400123456");
    assert_eq!(lines[1]["to"], "+447400123456");
    assert_eq!(lines[2]["to"], "+12015550123");
    assert_eq!(lines[1]["body"], "Your code is 222222");
    assert_eq!(lines[2]["segments"], 1);
}

#[tokio::test]
async fn national_numbers_take_the_route_default_country() {
    let bridge = Bridge::start(&OUTBOX).await;
    for number in ["07400 123456", "(07400) 123-456", "447400123456", "0044 7400 123456"] {
        let answer =
            bridge.post_form("/v1/gb", &[("To", number), ("Custommessage", "Your tokencode is 12345678")]).await;
        assert_eq!(answer.status, 200, "{number}: {answer:?}");
    }
    let lines = bridge.outbox("outbox");
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["to"] == "+447400123456"), "{lines:?}");

    // The same national number on a route with no default country is refused.
    let answer = bridge.post_form("/v1/send", &[("phone", "07400 123456"), ("message", "x")]).await;
    answer.assert_failed(400, "invalid_phone");
    assert!(answer.message().contains("default_country"), "{answer:?}");
}

#[tokio::test]
async fn segments_follow_gsm7_and_ucs2() {
    let bridge = Bridge::start(&OUTBOX).await;
    let long = "a".repeat(161);
    let answer = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", &long)]).await;
    assert_eq!(answer.json["segments"], 2, "{answer:?}");
    let answer = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "Код: 123456 😀")]).await;
    assert_eq!(answer.json["segments"], 1, "{answer:?}");
    let answer = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", &"ж".repeat(71))]).await;
    assert_eq!(answer.json["segments"], 2, "{answer:?}");
    assert_eq!(bridge.outbox("outbox")[2]["segments"], 2);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let bridge = Bridge::start(&OUTBOX).await;

    let a = bridge.post_form("/v1/send", &[("message", "hi")]).await;
    a.assert_failed(400, "missing_field");
    assert_eq!(a.json["field"], "phone");

    let a = bridge.post_form("/v1/gb", &[("To", "+447400123456")]).await;
    a.assert_failed(400, "missing_field");
    assert_eq!(a.json["field"], "Custommessage", "the route's own field name");

    let a = bridge.post_form("/v1/send", &[("phone", "+44 7700 CALLME"), ("message", "hi")]).await;
    a.assert_failed(400, "invalid_phone");
    assert_eq!(a.json["field"], "phone");
    assert!(a.message().contains("'C'"), "{a:?}");

    let a = bridge.post_form("/v1/send", &[("phone", "+44 12"), ("message", "hi")]).await;
    a.assert_failed(400, "invalid_phone");
    assert_eq!(a.message(), "field `phone` is not a valid phone number");

    let a = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "   ")]).await;
    a.assert_failed(400, "invalid_message");
    assert_eq!(a.json["field"], "message");

    let a = bridge.post_form("/v1/nowhere", &[("phone", "+447400123456"), ("message", "hi")]).await;
    a.assert_failed(404, "unknown_route");
    assert_eq!(a.message(), "no route for /v1/nowhere");

    let a = bridge.get("/v1/gb?To=%2B447400123456&Custommessage=hi").await;
    a.assert_failed(405, "method_not_allowed");
    assert!(a.message().contains("use POST"), "{a:?}");

    let huge = format!("phone=%2B447400123456&message={}", "a".repeat(70_000));
    let a = bridge.post_raw("/v1/send", "application/x-www-form-urlencoded", huge).await;
    a.assert_failed(413, "body_too_large");

    let a = bridge.post_raw("/v1/send", "text/plain", "phone=+447400123456").await;
    a.assert_failed(415, "unsupported_media_type");
    assert!(a.message().contains("text/plain"), "{a:?}");

    let a = bridge.post_raw("/v1/send", "application/json", "{\"phone\": ").await;
    a.assert_failed(400, "invalid_json");

    let a = bridge.post_json("/v1/send", json!({"phone": ["+447400123456"], "message": "hi"})).await;
    a.assert_failed(400, "invalid_json");
    assert_eq!(a.json["field"], "phone");

    let a = bridge.post_json("/v1/send", json!(["+447400123456", "hi"])).await;
    a.assert_failed(400, "invalid_json");

    assert!(bridge.outbox("outbox").is_empty(), "nothing refused was delivered");
    let ok = bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", "still here")]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(bridge.outbox("outbox").len(), 1);
}

#[tokio::test]
async fn text_the_phone_should_not_get_is_refused_naming_its_field() {
    let bridge = Bridge::start(&OUTBOX).await;
    let form = "application/x-www-form-urlencoded";
    // Latin-1, as an old caller sends it: refused unless it says so.
    let latin1 = "phone=%2B447400123456&message=C%F3digo+123456";
    let a = bridge.post_raw("/v1/send", form, latin1).await;
    a.assert_failed(400, "invalid_encoding");
    assert_eq!(a.json["field"], "message");
    assert!(a.message().contains("UTF-8") && a.message().contains("charset"), "{a:?}");
    let a = bridge.get("/v1/send?phone=%2B447400123456&message=C%F3digo+123457").await;
    a.assert_failed(400, "invalid_encoding");
    let a = bridge.post_raw("/v1/send", "application/x-www-form-urlencoded; charset=ISO-8859-1", latin1).await;
    assert_eq!(a.status, 200, "a declared charset is honoured: {a:?}");
    let a = bridge.post_raw("/v1/send", "application/x-www-form-urlencoded; charset=koi8-r", latin1).await;
    a.assert_failed(415, "unsupported_media_type");
    assert!(a.message().contains("koi8-r"), "{a:?}");

    for (text, named) in [("Code\u{0}123456", "U+0000"), ("Code \u{202E}654321", "U+202E"), ("Code\t1", "U+0009")] {
        let a = bridge.post_json("/v1/send", json!({"phone": "+447400123456", "message": text})).await;
        a.assert_failed(400, "invalid_message");
        assert_eq!(a.json["field"], "message");
        assert!(a.message().contains(named), "{a:?}");
    }
    let a = bridge.post_json("/v1/send", json!({"phone": "+447400123456", "message": "Your code:\n123456"})).await;
    assert_eq!(a.status, 200, "a newline is text: {a:?}");

    let twice = r#"{"phone": "+447400123456", "message": "Code 111111", "message": "Code 222222"}"#;
    let a = bridge.post_raw("/v1/send", "application/json", twice).await;
    a.assert_failed(400, "invalid_json");
    assert!(a.message().contains("`message` more than once"), "{a:?}");
    let nested = r#"{"data": {"phone": "+447400123456", "phone": "+447400999999"}, "message": "x"}"#;
    bridge.post_raw("/v1/send", "application/json", nested).await.assert_failed(400, "invalid_json");

    let bodies: Vec<_> = bridge.outbox("outbox").iter().map(|l| l["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(bodies, ["Código 123456", "Your code:\n123456"]);
}

#[tokio::test]
async fn concurrent_sends_each_write_one_whole_line() {
    let bridge = std::sync::Arc::new(Bridge::start(&OUTBOX).await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let bridge = bridge.clone();
        tasks.push(tokio::spawn(async move {
            let msg = format!("Your code is {i:06}");
            bridge.post_form("/v1/send", &[("phone", "+447400123456"), ("message", &msg)]).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut bodies: Vec<String> =
        bridge.outbox("outbox").iter().map(|l| l["body"].as_str().unwrap().to_string()).collect();
    bodies.sort();
    let expected: Vec<String> = (0..40).map(|i| format!("Your code is {i:06}")).collect();
    assert_eq!(bodies, expected);
}
