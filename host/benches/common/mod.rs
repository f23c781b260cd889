//! Shared by the benches that run the release binary.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Route lines that turn repeated-request answers and every limit off, so
/// that each request is a real send.
pub const QUIET: &str = "idempotency_window_s = 0\nlimits = { per_number = \"off\", per_prefix = \"off\", per_country = \"off\", per_route = \"off\" }\n";

/// Resident memory of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

/// Writes `text` as `dir/bench.toml`; its path.
pub fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let file = dir.join("bench.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The smsbridge binary the benches run: this build's, or another build's
/// named by `SMSBRIDGE_BIN` (to compare before and after a change).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("SMSBRIDGE_BIN").map_or_else(|| env!("CARGO_BIN_EXE_smsbridge").into(), Into::into)
}

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Starts the release binary on `config`; returns it once a send to
/// `/v1/send` is answered, with the time that took.
pub fn start_smsbridge(config: &std::path::Path, addr: SocketAddr) -> (Child, Duration) {
    start_smsbridge_logging(config, addr, "warn")
}

/// [`start_smsbridge`], logging at `level` (to nowhere).
#[expect(clippy::zombie_processes, reason = "the caller kills and waits for the child it is given")]
pub fn start_smsbridge_logging(config: &std::path::Path, addr: SocketAddr, level: &str) -> (Child, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary())
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", &addr.to_string()])
        .env("SMSBRIDGE_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Ok(200) = probe(addr) {
            return (child, started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("smsbridge did not start");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// POSTs one send over a plain socket and returns the status.
pub fn probe(addr: SocketAddr) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = "phone=%2B447400123456&message=hi";
    write!(
        s,
        "POST /v1/send HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0))
}
pub mod smaps;
pub mod twilio;

/// A child process killed when dropped, a panicking bench included.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of `pids` so far, from /proc.
pub fn cpu(pids: &[u32]) -> Duration {
    let secs: f64 = pids
        .iter()
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
            // utime and stime, in USER_HZ (100 on Linux).
            (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
        })
        .sum();
    Duration::from_secs_f64(secs)
}

/// A Kannel config in `dir` with bearerbox, one `smsc` group (`smsc`'s
/// lines) and smsbox's `sendsms` on `sendsms` for user `bench`, logging at
/// `log_level`; its path.
pub fn kannel_config(dir: &std::path::Path, smsc: &str, sendsms: u16, log_level: u8) -> std::path::PathBuf {
    let d = dir.display();
    let text = format!(
        "group = core\nadmin-port = {admin}\nadmin-password = bench\nsmsbox-port = {boxes}\nlog-level = {log_level}\n\
         log-file = \"{d}/bearerbox.log\"\nbox-allow-ip = \"127.0.0.1\"\n\n\
         group = smsc\n{smsc}\n\
         group = smsbox\nbearerbox-host = 127.0.0.1\nsendsms-port = {sendsms}\nlog-level = {log_level}\n\
         log-file = \"{d}/smsbox.log\"\n\n\
         group = sendsms-user\nusername = bench\npassword = bench\n",
        admin = free_addr().port(),
        boxes = free_addr().port(),
    );
    let file = dir.join("kannel.conf");
    std::fs::write(&file, text).unwrap();
    file
}
