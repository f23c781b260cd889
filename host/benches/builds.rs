//! Memory across hot reloads: 200 distinct builds of one adapter renamed
//! into the adapters folder in turn (each the outbox adapter with a custom
//! section of its own, so each is compiled anew), and the resident memory
//! of the release binary after each tenth. A host that kept every build's
//! machine code grows by each one; one that keeps only the builds in use
//! stays flat after the first few.
//!
//! `cargo bench -p smsbridge --bench builds`; `SMSBRIDGE_BIN=…` runs
//! another build of the binary.

mod common;

use common::{KillOnDrop, free_addr, rss_mib, start_smsbridge};
use smsbridge::artifacts::OUTBOX_WASM;
use std::time::{Duration, Instant};

const BUILDS: usize = 200;

/// The outbox adapter with custom section `n` appended: the same adapter,
/// another build.
fn build(n: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(OUTBOX_WASM).unwrap();
    let payload = n.to_le_bytes();
    // Section id 0 (custom), size, name length, name, payload.
    bytes.extend_from_slice(&[0, (2 + payload.len()) as u8, 1, b'n']);
    bytes.extend_from_slice(&payload);
    bytes
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let adapters = dir.path().join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    let file = adapters.join("swap.wasm");
    std::fs::write(&file, build(0)).unwrap();
    let admin = free_addr();
    let config = common::write_config(
        dir.path(),
        &format!(
            "[admin]\nlisten = \"{admin}\"\n[adapters]\ndir = \"{d}/adapters\"\n\
             [[provider]]\nname = \"swap\"\nadapter = \"swap\"\ndata_dir = \"{d}/box\"\n\
             [[route]]\npath = \"/v1/send\"\nproviders = [\"swap\"]\n{}",
            common::QUIET,
            d = dir.path().display()
        ),
    );
    let bridge = KillOnDrop(start_smsbridge(&config, free_addr()).0);
    let pid = bridge.0.id();
    let started_rss = rss_mib(pid);
    let mut samples = Vec::new();
    for n in 1..=BUILDS {
        let bytes = build(n);
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let tmp = adapters.join(".swap.wasm.part");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let written = Instant::now();
        while !serving(admin, &sha) {
            assert!(written.elapsed() < Duration::from_secs(30), "build {n} never served");
            std::thread::sleep(Duration::from_millis(5));
        }
        if n % 10 == 0 || n == 1 {
            samples.push((n, rss_mib(pid)));
        }
    }
    drop(bridge);
    println!("| builds reloaded | resident memory |");
    println!("| ---: | ---: |");
    println!("| 0 | {started_rss:.1} MiB |");
    for (n, rss) in &samples {
        println!("| {n} | {rss:.1} MiB |");
    }
    let at = |k: usize| samples.iter().find(|(n, _)| *n == k).unwrap().1;
    println!("\ngrowth from build 20 to build {BUILDS}: {:+.1} MiB", at(BUILDS) - at(20));
}

/// Whether the admin API shows `sha` serving as `swap`.
fn serving(admin: std::net::SocketAddr, sha: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(admin) else { return false };
    let req = format!("GET /admin/adapters HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains(sha)
}
