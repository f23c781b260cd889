//! Nothing gives an OTP away, tried as an attacker would against the real
//! binary on loopback: a web page the operator opens (cross-site posts,
//! DNS rebinding, an `<img>` on the callers' port), a copy of the SQLite
//! record, an idempotency key replayed with guessed texts, a console cookie
//! kept after sign-out, files another user planted, and the admin token
//! over plain HTTP.

mod common;

use common::{Running, free_addr, holding_provider, serve};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One HTTP/1.1 request with the `Host` and header lines given: status,
/// header lines and body.
fn raw(addr: &str, request: &str) -> (u16, Vec<String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.lines().skip(1).map(String::from).collect(), body.to_string())
}

fn get(addr: &str, host: &str, path: &str, headers: &str) -> (u16, Vec<String>, String) {
    raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"))
}

fn post(addr: &str, host: &str, path: &str, headers: &str, form: &str) -> (u16, Vec<String>, String) {
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// The value of the hidden `csrf` field on a console page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// `name=value` of the `Set-Cookie` for `name` among `headers`.
fn set_cookie(headers: &[String], name: &str) -> Option<String> {
    headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn outbox(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("var/outbox/outbox.jsonl")).unwrap_or_default()
}

/// The embedded default, as `smsbridge serve` runs it with no config.
const EMBEDDED: &str = include_str!("../../config/smsbridge.toml");

#[test]
fn a_web_page_can_neither_send_nor_read_through_the_default_console_or_route() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, admin, _logs) = serve(dir.path(), EMBEDDED);
    let send = "route=%2Fv1%2Fsend&phone=%2B447400123456&message=Your+code+is+660011";

    // A form on evil.example posted to the console: no cookie, no token.
    let evil = "Origin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\n";
    let (status, _, body) = post(&admin, &admin, "/admin/console/send", evil, send);
    assert_eq!(status, 403, "a cross-site post: {body}");
    // An old browser that sends no Sec-Fetch-Site still sends its Origin.
    let (status, _, body) = post(&admin, &admin, "/admin/console/send", "Origin: http://evil.example\r\n", send);
    assert_eq!(status, 403, "a cross-origin post: {body}");
    // No Origin at all, but no CSRF token either: refused even without an
    // admin token.
    let (status, _, body) = post(&admin, &admin, "/admin/console/send", "", send);
    assert_eq!(status, 403, "a post without the form's CSRF token: {body}");

    // DNS rebinding: evil.example now resolves to 127.0.0.1, so the page is
    // same-origin with it, and asks for everything.
    for path in ["/admin/", "/admin/messages", "/admin/stats", "/admin/adapters", "/metrics", "/admin/health"] {
        let (status, _, body) = get(&admin, "evil.example:8081", path, "");
        assert_eq!(status, 421, "{path} for a rebound name: {body}");
    }
    let (status, _, page) = get(&admin, &admin, "/admin/", "");
    assert_eq!(status, 200);
    let rebound = format!("csrf={}&number=%2B447400123456", csrf_of(&page));
    let (status, _, _) = post(&admin, "evil.example:8081", "/admin/", "Origin: http://evil.example:8081\r\n", &rebound);
    assert_eq!(status, 421, "the number search for a rebound name");

    // The callers' port: an <img> is a GET, a form is a cross-site POST.
    let img = "/v1/send?phone=%2B447400123456&message=Your+code+is+660012";
    let (status, _, body) = get(&addr, &addr, img, "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n");
    assert!(status == 403 || status == 405, "an <img> on a page: {status} {body}");
    let (status, _, _) = get(&addr, &addr, img, "");
    assert_eq!(status, 405, "the default route takes POST only");
    let form = "phone=%2B447400123456&message=Your+code+is+660013";
    let (status, _, body) = post(&addr, &addr, "/v1/send", "Origin: http://evil.example\r\n", form);
    assert_eq!(status, 403, "a form on another site: {body}");
    assert!(outbox(dir.path()).is_empty(), "nothing was sent: {}", outbox(dir.path()));

    // The operator's own browser: same origin, the form's token.
    let own = format!("Origin: http://{admin}\r\nSec-Fetch-Site: same-origin\r\n");
    let test = format!("csrf={}&{send}", csrf_of(&page));
    let (status, _, body) = post(&admin, &admin, "/admin/console/send", &own, &test);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sent"), "{body}");
    // And a caller such as an MFA server, which sends no Origin.
    let (status, _, body) = post(&addr, &addr, "/v1/send", "", form);
    assert_eq!(status, 200, "{body}");
    let delivered = outbox(dir.path());
    assert!(delivered.contains("660011") && delivered.contains("660013"), "{delivered}");
    assert!(!delivered.contains("660012"), "{delivered}");

    // `check` says the console is open to every local user.
    let out = Command::new(env!("CARGO_BIN_EXE_smsbridge")).arg("check").current_dir(dir.path()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("has no token: every local user"), "{said}");
}

#[test]
fn the_sqlite_record_holds_no_number_or_text_of_a_delivered_queued_message() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let config = format!(
        r#"
[record]
path = "{{dir}}/var/messages.db"
{}
[[route]]
path = "/v1/queued"
providers = ["p"]
queued = true
"#,
        common::generic_provider(&provider)
    );
    let (_child, addr, _admin, _logs) = serve(dir.path(), &config);
    let (status, _, body) = post(&addr, &addr, "/v1/queued", "", "phone=%2B447400123456&message=Your+code+is+908172");
    assert_eq!(status, 202, "{body}");
    let until = Instant::now() + Duration::from_secs(20);
    while texts.lock().unwrap().get("Your code is 908172").is_none() {
        assert!(Instant::now() < until, "the queued message is delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Dequeued by now, but no checkpoint yet: the WAL still has its pages.
    std::thread::sleep(Duration::from_millis(300));
    let var = dir.path().join("var");
    let mut seen = 0;
    for name in ["messages.db", "messages.db-wal", "messages.db-shm", "messages.db.key"] {
        let path = var.join(name);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        seen += 1;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is mode {mode:o}");
        for secret in ["447400123456", "908172"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{name} holds {secret}");
        }
    }
    assert!(seen >= 3, "the record, its WAL and its key are there");
}

#[test]
fn an_idempotency_key_replayed_with_guessed_texts_tells_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, texts) = holding_provider(Duration::ZERO);
    let config = format!(
        r#"
{}
[[route]]
path = "/v1/send"
providers = ["p"]
limits = {{ per_number = "5/10m", per_prefix = "off" }}
"#,
        common::generic_provider(&provider)
    );
    let (_child, addr, _admin, _logs) = serve(dir.path(), &config);
    let send = |number: &str, code: u32| {
        let form = format!("phone=%2B{number}&message=Your+code+is+{code:06}");
        post(&addr, &addr, "/v1/send", "Idempotency-Key: login-77\r\n", &form)
    };
    assert_eq!(send("447400123456", 908172).0, 200);
    // Wrong guesses: refused, and the third locks the key.
    for guess in [1, 2, 3] {
        assert_eq!(send("447400123456", guess).0, 409, "guess {guess}");
    }
    // The right text now tells nothing.
    let (status, _, body) = send("447400123456", 908172);
    assert_eq!(status, 409, "the right text after three guesses: {body}");
    assert!(!body.contains("replayed\":true"), "{body}");
    // Each refusal counted against the number like a send: five in all.
    let (status, _, body) = send("447400123456", 4);
    assert_eq!(status, 429, "guesses meet the number's limit: {body}");
    assert_eq!(texts.lock().unwrap().values().sum::<u32>(), 1, "one SMS, none for a guess");
}

const TOKEN: &str = "console-admin-token-5c1e";

/// Signs in to the console at `admin`; the session cookie.
fn sign_in(admin: &str) -> String {
    let (_, headers, page) = get(admin, admin, "/admin/", "");
    let login = set_cookie(&headers, "smsbridge_login").expect("a sign-in cookie");
    let login = login.split(';').next().unwrap();
    let form = format!("csrf={}&token={TOKEN}", csrf_of(&page));
    let (status, headers, _) = post(admin, admin, "/admin/login", &format!("Cookie: {login}\r\n"), &form);
    assert_eq!(status, 303);
    set_cookie(&headers, "smsbridge_console").expect("a session").split(';').next().unwrap().to_string()
}

#[test]
fn a_console_session_is_over_once_signed_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[admin]
token = "{TOKEN}"
[record]
path = "{{dir}}/var/messages.db"
[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{{dir}}/var/outbox"
[[route]]
path = "/v1/send"
providers = ["outbox"]
"#
    );
    let (_child, _addr, admin, _logs) = serve(dir.path(), &config);
    let session = sign_in(&admin);
    let cookie = format!("Cookie: {session}\r\n");
    assert_eq!(get(&admin, &admin, "/admin/messages", &cookie).0, 200);
    assert_eq!(get(&admin, &admin, "/admin/messages", "Cookie: smsbridge_console=forged\r\n").0, 401);
    let (_, _, page) = get(&admin, &admin, "/admin/", &cookie);
    let csrf = csrf_of(&page);
    let (status, _, _) = post(&admin, &admin, "/admin/logout", &cookie, &format!("csrf={csrf}"));
    assert_eq!(status, 303);
    // The same cookie, kept by whoever copied it: worth nothing now.
    assert_eq!(get(&admin, &admin, "/admin/messages", &cookie).0, 401, "the API after sign-out");
    let send = format!("csrf={csrf}&route=%2Fv1%2Fsend&phone=%2B447400123456&message=after+logout");
    let (status, _, _) = post(&admin, &admin, "/admin/console/send", &cookie, &send);
    assert_eq!(status, 401, "a test send after sign-out");
    assert!(outbox(dir.path()).is_empty());
}

/// `smsbridge serve` on `config` in `dir`: its exit status and what it said,
/// when it refuses to start.
fn refused_start(dir: &Path, config: &str) -> String {
    std::fs::write(dir.join("smsbridge.toml"), config.replace("{dir}", dir.to_str().unwrap())).unwrap();
    let (addr, admin) = (free_addr().to_string(), free_addr().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsbridge"))
        .args(["serve", "--config", "smsbridge.toml", "--listen", &addr, "--admin-listen", &admin])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = Running(child);
            panic!("smsbridge started on files another user planted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn files_another_user_planted_are_refused() {
    let outbox_config = "[[provider]]\nname = \"outbox\"\nadapter = \"outbox\"\ndata_dir = \"{dir}/var/outbox\"\n\
                         [[route]]\npath = \"/v1/send\"\nproviders = [\"outbox\"]\n";
    // A var/outbox link to a folder the planter reads.
    let dir = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    std::os::unix::fs::symlink(theirs.path(), dir.path().join("var/outbox")).unwrap();
    let said = refused_start(dir.path(), outbox_config);
    assert!(said.contains("data_dir") && said.contains("symbolic link"), "{said}");

    // A compiled-code key others can read (and so seal code with): not
    // used, and the cache is off.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let key = dir.path().join("var/cache.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = format!("[adapters]\ncache_dir = \"{{dir}}/var/cache\"\n{outbox_config}");
    let (child, _addr, _admin, logs) = serve(dir.path(), &config);
    drop(child);
    let said: Vec<String> = logs.iter().collect();
    assert!(said.iter().any(|l| l.contains("cache off") && l.contains("read by other users")), "{said:?}");
    let sealed = std::fs::read_dir(dir.path().join("var/cache")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sealed, 0, "nothing sealed under a planted key");

    // An adapters folder anyone may write to.
    let dir = tempfile::tempdir().unwrap();
    let adapters = dir.path().join("adapters");
    std::fs::create_dir(&adapters).unwrap();
    std::fs::set_permissions(&adapters, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!("[adapters]\ndir = \"{{dir}}/adapters\"\n{outbox_config}");
    let said = refused_start(dir.path(), &config);
    assert!(said.contains("adapters folder") && said.contains("written by other users"), "{said}");
}

#[test]
fn the_admin_listener_speaks_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[admin]
token = "{TOKEN}"
[admin.tls]
cert = "{{dir}}/tls/admin.pem"
key = "{{dir}}/tls/admin.key"
self_signed = {{ names = ["127.0.0.1"] }}
[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{{dir}}/var/outbox"
[[route]]
path = "/v1/send"
providers = ["outbox"]
"#
    );
    let (_child, _addr, admin, logs) = serve(dir.path(), &config);
    let listening = logs.iter().find(|l| l.contains("admin on http")).unwrap();
    assert!(listening.contains("admin on https://"), "{listening}");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-i", "--max-time", "10", "--cacert"])
            .arg(dir.path().join("tls/admin.pem"))
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (code, answer) = curl(&["-H", &auth, &format!("https://{admin}/admin/health")]);
    assert_eq!(code, Some(0), "{answer}");
    assert!(answer.starts_with("HTTP/2 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Plain HTTP gets no answer.
    let (_, answer) = curl(&["-H", &auth, &format!("http://{admin}/admin/health")]);
    assert!(!answer.contains("200"), "plain HTTP: {answer}");
    // The console's cookies are Secure.
    let (_, answer) = curl(&[&format!("https://{admin}/admin/")]);
    let cookie = answer.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_default();
    assert!(cookie.contains("Secure"), "{answer}");
}
