//! Driving the real `smsbridge` binary: start `serve`, talk HTTP to it.

#![allow(dead_code)]

pub mod pg;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request over a plain socket: status and body.
pub fn request(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange(addr, method, path, headers, body);
    (status, body)
}

/// [`request`], with the answer's header lines too.
pub fn exchange(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, Vec<String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.lines().skip(1).map(String::from).collect(), body.to_string())
}

/// A `[[provider]]` named `p`: generic-http, posting `to` and `text` to a
/// [`holding_provider`] at `addr`, which answers `{"id": …}`.
pub fn generic_provider(addr: &str) -> String {
    generic_provider_named("p", addr)
}

/// [`generic_provider`], named `name`.
pub fn generic_provider_named(name: &str, addr: &str) -> String {
    format!(
        r#"[[provider]]
name = "{name}"
adapter = "generic-http"
allow_hosts = ["http://{addr}"]
[provider.config]
url = "http://{addr}/send"
params = "to={{to}}&text={{body}}"
id_pointer = "/id"
"#
    )
}

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts `smsbridge serve` on `config` with JSON logs; returns the child,
/// its callers' and admin addresses, and its log lines so far.
pub fn serve(dir: &Path, config: &str) -> (Running, String, String, std::sync::mpsc::Receiver<String>) {
    serve_with(dir, config, &[], &free_addr().to_string())
}

/// [`serve`], run by `wrapper` (`prlimit …`, say) with the admin listener
/// on `admin`.
pub fn serve_with(
    dir: &Path,
    config: &str,
    wrapper: &[&str],
    admin: &str,
) -> (Running, String, String, std::sync::mpsc::Receiver<String>) {
    let file = dir.join("smsbridge.toml");
    std::fs::write(&file, config.replace("{dir}", dir.to_str().unwrap())).unwrap();
    let (addr, admin) = (free_addr().to_string(), admin.to_string());
    let bin = env!("CARGO_BIN_EXE_smsbridge");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            &addr,
            "--admin-listen",
            &admin,
            "--log-format",
            "json",
        ])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Ready when it says where it listens, the admin listener included.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let (mut callers, mut admin_up) = (false, !config.contains("[admin]"));
    while !(callers && admin_up) {
        let line = rx
            .recv_timeout(deadline - Instant::now())
            .unwrap_or_else(|e| panic!("smsbridge did not start ({e}); it said: {seen:#?}"));
        callers |= line.contains("listening on http://");
        admin_up |= line.contains("admin on http");
        seen.push(line);
    }
    let (replay_tx, replay_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in seen.into_iter().chain(rx.iter()) {
            let _ = replay_tx.send(line);
        }
    });
    (Running(child), addr, admin, replay_rx)
}

/// `smsbridge serve`, killed however the test ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A provider on loopback that holds every request `hold` before answering
/// 200, counting each message text it gets.
pub fn holding_provider(hold: Duration) -> (String, std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>) {
    holding_provider_at("127.0.0.1:0", hold)
}

/// [`holding_provider`] on `addr`.
pub fn holding_provider_at(
    addr: &str,
    hold: Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>) {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let texts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let seen = texts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                loop {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            let fields: BTreeMap<String, String> =
                                url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                            let n = {
                                let mut seen = seen.lock().unwrap();
                                *seen.entry(fields.get("text").cloned().unwrap_or_default()).or_insert(0) += 1;
                                seen.values().sum::<u32>()
                            };
                            std::thread::sleep(hold);
                            let answer = format!("{{\"id\":\"p-{n}\"}}");
                            let _ = write!(
                                stream,
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                                answer.len()
                            );
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, texts)
}
