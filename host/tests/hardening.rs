//! Connections held open by a hostile caller, against the real binary: a
//! thousand half-sent requests do not stop a normal send, and each is
//! dropped once its header is overdue; an idle kept-alive connection is
//! closed.

mod common;

use common::{request, serve};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[server]
header_read_timeout_ms = 1500
idle_timeout_ms = 1000

[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{dir}/outbox"

[[route]]
path = "/v1/send"
providers = ["outbox"]
idempotency_window_s = 0
limits = { per_number = "off", per_prefix = "off" }
"#;

const SEND: &str = "phone=%2B447400123456&message=Your+code+is+123456";

/// Whether the server closed `stream`: it reads to the end within `wait`.
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_thousand_half_open_connections_neither_block_a_send_nor_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, _admin, _logs) = serve(dir.path(), CONFIG);
    let mut held: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(b"POST /v1/send HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    let (status, body) = request(&addr, "POST", "/v1/send", "", SEND);
    assert_eq!(status, 200, "a send is answered while 1000 connections hang: {body}");

    // Every half-sent request is dropped once its header is overdue.
    std::thread::sleep(Duration::from_millis(2000));
    let still_open =
        held.iter_mut().map(|s| closed_by_server(s, Duration::from_millis(500))).filter(|closed| !closed).count();
    assert_eq!(still_open, 0, "connections left open after the header timeout");
    let (status, _) = request(&addr, "POST", "/v1/send", "", SEND);
    assert_eq!(status, 200);
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, _admin, _logs) = serve(dir.path(), CONFIG);
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{SEND}",
        SEND.len()
    )
    .unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    // Kept alive, then closed once idle (1 s here; the header timeout would
    // close it after 1.5 s, so this is the idle timeout at work).
    let started = Instant::now();
    assert!(closed_by_server(&mut stream, Duration::from_secs(5)));
    assert!(started.elapsed() < Duration::from_millis(1450), "closed after {:?}", started.elapsed());
}

/// Opens `n` connections to `addr`, each sending half a request header.
fn half_open(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(addr).ok()?;
            stream.write_all(b"POST /v1/send HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(stream)
        })
        .collect()
}

#[test]
fn a_descriptor_flood_under_a_low_file_limit_fails_no_send_and_opens_no_circuit() {
    let dir = tempfile::tempdir().unwrap();
    // The soft and hard limits many hosts give a process.
    let config = CONFIG.replace("header_read_timeout_ms = 1500", "header_read_timeout_ms = 3000");
    let wrapper = ["prlimit", "--nofile=1024:1024", "--"];
    let (_child, addr, _admin, logs) =
        common::serve_with(dir.path(), &config, &wrapper, &common::free_addr().to_string());
    let capped = logs.iter().find(|l| l.contains("max_connections")).unwrap();
    assert!(capped.contains("open-file limit is 1024"), "the effective cap is logged: {capped}");
    let held = half_open(&addr, 1000);
    // Every send is answered once a slot frees, none fails for want of a
    // descriptor, and none counts against the provider.
    for i in 0..8 {
        let (status, body) = request(&addr, "POST", "/v1/send", "", SEND);
        assert_eq!(status, 200, "send {i} during the flood: {body}");
    }
    drop(held);
    let (status, body) = request(&addr, "POST", "/v1/send", "", SEND);
    assert_eq!(status, 200, "{body}");
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(!lines.iter().any(|l| l.contains("Too many open files")), "{lines:?}");
}

#[test]
fn a_fault_of_this_host_opens_no_providers_circuit_and_tells_the_caller_no_path() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, _admin, _logs) = serve(dir.path(), CONFIG);
    assert_eq!(request(&addr, "POST", "/v1/send", "", SEND).0, 200);
    // The provider's folder goes away: this host cannot set up a sandbox.
    let outbox = dir.path().join("outbox");
    std::fs::rename(&outbox, dir.path().join("elsewhere")).unwrap();
    for _ in 0..8 {
        let (status, body) = request(&addr, "POST", "/v1/send", "", SEND);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("host_unavailable"), "{body}");
        assert!(!body.contains(dir.path().to_str().unwrap()), "a host path told to the caller: {body}");
        assert!(!body.contains("os error"), "{body}");
    }
    // Back again: the provider's circuit never opened.
    std::fs::rename(dir.path().join("elsewhere"), &outbox).unwrap();
    let (status, body) = request(&addr, "POST", "/v1/send", "", SEND);
    assert_eq!(status, 200, "the circuit stayed closed: {body}");
}

/// An HTTP/2 frame: length, type, flags, stream 0, payload.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0, 0, 0, 0, 0];
    out.extend_from_slice(payload);
    out
}

/// Whether a prior-knowledge HTTP/2 connection that sends a PING every
/// 300 ms is closed within `within`; the first bytes it got back.
fn pinging_connection_closed(addr: &str, within: Duration) -> (bool, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    stream.write_all(&frame(4, &[])).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let (started, mut first) = (Instant::now(), Vec::new());
    let mut buf = [0u8; 1024];
    while started.elapsed() < within {
        match stream.read(&mut buf) {
            Ok(0) => return (true, first),
            Ok(n) if first.is_empty() => first = buf[..n].to_vec(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (true, first),
            Err(_) => {}
        }
        if stream.write_all(&frame(6, &[0u8; 8])).is_err() {
            return (true, first);
        }
    }
    (false, first)
}

#[test]
fn http2_pings_keep_no_connection_open_and_h2c_is_off_unless_configured() {
    // Off by default: the preface is no HTTP/1 request.
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, _admin, _logs) = serve(dir.path(), CONFIG);
    let (closed, first) = pinging_connection_closed(&addr, Duration::from_secs(5));
    assert!(closed, "h2c off: the connection is refused");
    assert!(first.is_empty() || first.starts_with(b"HTTP/1.1 4"), "{}", String::from_utf8_lossy(&first));
    // On where configured, and closed once idle whatever PINGs it sends.
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace("[server]\n", "[server]\nh2c = true\n");
    let (_child, addr, _admin, _logs) = serve(dir.path(), &config);
    let (closed, first) = pinging_connection_closed(&addr, Duration::from_secs(6));
    assert!(first.len() >= 9 && first[3] == 4, "an HTTP/2 SETTINGS frame first: {first:?}");
    assert!(closed, "a connection that only PINGs is idle (1 s) and closed");
}

#[test]
fn half_open_connections_do_not_keep_health_checks_from_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let slow = CONFIG.replace("header_read_timeout_ms = 1500", "header_read_timeout_ms = 30000");
    let config = format!("[admin]\n{}", slow.replace("idle_timeout_ms = 1000", "idle_timeout_ms = 30000"));
    let (_child, _addr, admin, _logs) = serve(dir.path(), &config);
    let _held = half_open(&admin, 64);
    // The load balancer checks from its own address.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(admin.parse().unwrap()).await.unwrap();
        let ask = format!("GET /admin/health HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, ask.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer);
        // Within HAProxy's `inter 2s` of the HA guide.
        tokio::time::timeout(Duration::from_millis(1500), read).await.map(|_| answer)
    });
    let answer = answer.expect("a health check is answered while 64 connections hang");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn a_reload_cannot_take_the_token_off_an_admin_listener_bound_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_addr().port();
    let with_token = format!("[admin]\ntoken = \"reload-admin-token-8e21\"\n{CONFIG}");
    let (child, _addr, _admin, logs) = common::serve_with(dir.path(), &with_token, &[], &format!("0.0.0.0:{port}"));
    let admin = format!("127.0.0.1:{port}");
    assert_eq!(request(&admin, "GET", "/admin/adapters", "", "").0, 401);
    // The token taken out of the file, and then [admin] as a whole.
    for edit in [format!("[admin]\n{CONFIG}"), CONFIG.to_string()] {
        std::fs::write(dir.path().join("smsbridge.toml"), edit.replace("{dir}", dir.path().to_str().unwrap())).unwrap();
        Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap();
        let refused = logs.iter().find(|l| l.contains("config not reloaded") || l.contains("config reloaded")).unwrap();
        assert!(refused.contains("config not reloaded") && refused.contains("not loopback"), "{refused}");
        assert_eq!(request(&admin, "GET", "/admin/adapters", "", "").0, 401, "still behind its token");
    }
    let authorised = "Authorization: Bearer reload-admin-token-8e21\r\n";
    assert_eq!(request(&admin, "GET", "/admin/adapters", authorised, "").0, 200);
}
