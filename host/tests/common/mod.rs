//! Driving the real `smsbridge` binary: start `serve`, talk HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request over a plain socket: status and body.
pub fn request(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
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
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts `smsbridge serve` on `config` with JSON logs; returns the child,
/// its callers' and admin addresses, and its log lines so far.
pub fn serve(dir: &Path, config: &str) -> (Running, String, String, std::sync::mpsc::Receiver<String>) {
    let file = dir.join("smsbridge.toml");
    std::fs::write(&file, config.replace("{dir}", dir.to_str().unwrap())).unwrap();
    let (addr, admin) = (free_addr().to_string(), free_addr().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsbridge"))
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
        let line = rx.recv_timeout(deadline - Instant::now()).expect("smsbridge starts");
        callers |= line.contains("listening on http://");
        admin_up |= line.contains("admin on http://");
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
