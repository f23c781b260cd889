//! The cost of a queued message's durability: one `enqueue` into the message
//! record, which syncs fully (`synchronous = FULL`) so that a 202 survives
//! a power failure, against the same insert synced as WAL's default
//! (`synchronous = NORMAL`), in one run.
//!
//! `cargo bench -p smsbridge --bench record`

use smsbridge::record::{Queue, SqliteRecord};
use std::time::{Duration, Instant};

const MESSAGES: usize = 2000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let record = SqliteRecord::open(&dir.path().join("full.db"), Some("bench-number-key")).unwrap();
    let full: Vec<Duration> = (0..MESSAGES)
        .map(|i| {
            let started = Instant::now();
            let id = format!("m{i}");
            rt.block_on(record.enqueue(
                &id,
                "/v1/send",
                "+447400123456",
                "Your code is 123456",
                Duration::from_secs(600),
            ))
            .unwrap();
            started.elapsed()
        })
        .collect();

    let db = rusqlite::Connection::open(dir.path().join("normal.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE queue (id TEXT PRIMARY KEY, route TEXT, to_e164 TEXT, body TEXT, expires_ms INTEGER, next_ms INTEGER);",
    )
    .unwrap();
    let normal: Vec<Duration> = (0..MESSAGES)
        .map(|i| {
            let started = Instant::now();
            db.execute(
                "INSERT INTO queue VALUES (?1, '/v1/send', '+447400123456', 'Your code is 123456', 0, 0)",
                [format!("m{i}")],
            )
            .unwrap();
            started.elapsed()
        })
        .collect();

    let (full, normal) = (median(full), median(normal));
    println!("| enqueue, {MESSAGES} messages | median |");
    println!("| --- | --- |");
    println!("| synchronous = NORMAL (WAL default) | {:.1} µs |", normal.as_secs_f64() * 1e6);
    println!("| synchronous = FULL (smsbridge) | {:.1} µs |", full.as_secs_f64() * 1e6);
    println!("\nFULL / NORMAL: {:.1}×", full.as_secs_f64() / normal.as_secs_f64());
}
