//! Connections held open by a hostile caller, against the real binary: a
//! thousand half-sent requests do not stop a normal send, and each is
//! dropped once its header is overdue; an idle kept-alive connection is
//! closed.

mod common;

use common::{request, serve};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
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
