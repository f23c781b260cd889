//! The operator console in a real browser: headless Chromium (Debian's
//! package), driven by Playwright, against the real binary on loopback.

mod common;

use common::serve;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "console-admin-token-5c1e";

/// Signs in, sends a test message from the form, reads the console back and
/// takes a screenshot; prints what it saw as JSON.
const DRIVER: &str = r##"
import json, sys
from playwright.sync_api import sync_playwright
admin, token, shot = sys.argv[1], sys.argv[2], sys.argv[3]
seen = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    first = page.goto(admin + "/admin/")
    seen["csp"] = first.headers.get("content-security-policy", "")
    seen["sign_in"] = page.locator("input[name=token]").count() == 1 and page.locator("#now").count() == 0
    page.fill("input[name=token]", "not-the-token-000")
    page.click("button[type=submit]")
    seen["wrong_token_refused"] = page.locator("#now").count() == 0
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    seen["providers"] = page.locator("tr.provider td:first-child").all_inner_texts()
    seen["routes"] = page.locator("tr.route td:first-child").all_inner_texts()
    seen["cookies"] = page.context.cookies()
    page.select_option("select[name=route]", "/v1/send")
    page.fill("input[name=phone]", "+447400123456")
    page.fill("input[name=message]", "Console test 918273")
    page.click("#send button[type=submit]")
    seen["result"] = page.locator(".result").inner_text()
    seen["result_html"] = page.content()
    page.goto(admin + "/admin/")
    seen["messages"] = page.locator("tr.message").all_inner_texts()
    seen["delivered"] = page.locator("tr.delivered").all_inner_texts()
    seen["html"] = page.content()
    page.screenshot(path=shot, full_page=True)
    page.fill("#messages input[name=number]", "+447400123456")
    page.click("#messages button[type=submit]")
    seen["found"] = page.locator("tr.message").all_inner_texts()
    seen["search_url"] = page.url
    page.fill("#messages input[name=number]", "+447400999999")
    page.click("#messages button[type=submit]")
    seen["found_other"] = page.locator("tr.message").count()
    # Signed in, but without the form's CSRF token: refused.
    forged = page.request.post(admin + "/admin/console/send", form={"route": "/v1/send", "phone": "+447400123456", "message": "forged 1"})
    seen["no_csrf"] = forged.status
    browser.close()
print(json.dumps(seen))
"##;

#[test]
fn the_console_signs_in_shows_providers_and_routes_and_sends_a_test_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[admin]
token = "{TOKEN}"
[record]
path = "{{dir}}/messages.db"
[[provider]]
name = "box"
adapter = "outbox"
data_dir = "{{dir}}/box"
[[route]]
path = "/v1/send"
providers = ["box"]
[[route]]
path = "/v1/other"
providers = ["box"]
"#
    );
    let (_child, _addr, admin, _logs) = serve(dir.path(), &config);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    let python = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("venv/bin/python");
    let out = Command::new(&python)
        .args(["-c", DRIVER, &format!("http://{admin}"), TOKEN, shot.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; scripts/test installs it", python.display()));
    assert!(out.status.success(), "the browser run: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(seen["sign_in"], true, "without a cookie, the sign-in page");
    assert_eq!(seen["wrong_token_refused"], true);
    assert!(seen["csp"].as_str().unwrap().contains("default-src 'none'"), "{}", seen["csp"]);
    assert_eq!(seen["providers"], serde_json::json!(["box"]));
    assert_eq!(seen["routes"], serde_json::json!(["/v1/send", "/v1/other"]));
    let cookie = &seen["cookies"].as_array().unwrap()[0];
    assert_eq!((cookie["httpOnly"].clone(), cookie["sameSite"].clone()), (true.into(), "Strict".into()));
    let result = seen["result"].as_str().unwrap();
    assert!(result.contains("sent") && result.contains("+4474****3456") && result.contains("box"), "{result}");
    let messages = seen["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].as_str().unwrap().contains("+4474****3456"), "{messages:?}");
    // The outbox gives no receipts: its row says so.
    let delivered = seen["delivered"].as_array().unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let row = delivered[0].as_str().unwrap();
    assert!(row.starts_with("box\tGB\t1\t") && row.contains("no receipts"), "{row:?}");
    assert_eq!(seen["found"].as_array().unwrap().len(), 1, "search by number: {}", seen["found"]);
    assert_eq!(seen["found_other"], 0, "another number has no messages");
    assert!(!seen["search_url"].as_str().unwrap().contains("447400"), "the number is in no URL");
    for page in [&seen["html"], &seen["result_html"]] {
        let html = page.as_str().unwrap();
        assert!(!html.contains("447400123456"), "a full number on the page");
        assert!(!html.contains("918273"), "message text on the page");
        assert!(!html.contains(TOKEN), "the token on the page");
    }
    assert_eq!(seen["no_csrf"], 403, "a form without its CSRF token");
    // The message was really delivered.
    let outbox = std::fs::read_to_string(dir.path().join("box/outbox.jsonl")).unwrap_or_default();
    assert!(outbox.contains("Console test 918273") && !outbox.contains("forged"), "{outbox}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot at {}", shot.display());
}
