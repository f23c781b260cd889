//! Three instances sharing PostgreSQL against one with embedded state.
//!
//! `cargo bench -p smsbridge --bench shared`
//!
//! A PostgreSQL server of its own (as the shared-state tests start one), a
//! mock Twilio in this process answering at once, and a route with every
//! limit and repeated-request answers on, so each send makes its state
//! calls. The same closed loop of callers drives, in turn: one instance with
//! embedded state (in-memory limits, SQLite record), one instance on
//! PostgreSQL, and three instances on PostgreSQL with the callers spread
//! over them. Median of three runs each, alternating.

mod common;
#[path = "../tests/common/pg.rs"]
#[allow(dead_code)]
mod pg;

use common::twilio::{self, Load, Run, closed_loop_over, median};
use common::{KillOnDrop, free_addr, ms, start_smsbridge};
use std::time::Duration;

const RUNS: usize = 3;
const LOAD: Load = Load { clients: 64, messages: 60_000, longest: Duration::from_secs(10) };
/// Every limit on, none reached: distinct numbers, wide prefix, country
/// and route limits.
const ROUTE: &str = "limits = { per_number = \"5/10m\", per_prefix = \"1000000/10m\", per_country = \"10000000/10m\", per_route = \"10000000/10m\" }\n";

fn config(dir: &std::path::Path, mock: std::net::SocketAddr, state: &str) -> std::path::PathBuf {
    common::write_config(
        dir,
        &format!(
            "[adapters]\ncache_dir = \"{d}/cache\"\n{state}\n{provider}\n[[route]]\npath = \"/v1/send\"\nproviders = [\"twilio\"]\n{ROUTE}",
            d = dir.display(),
            provider = twilio::provider("twilio", mock, ""),
        ),
    )
}

/// CPU time used so far by process `pid`, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: utime and stime are fields 14
    // and 15, counted from 1.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// CPU time used so far by every PostgreSQL process.
fn postgres_cpu_s() -> f64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_s)
        .sum()
}

/// One run's figures and the CPU time per message of smsbridge and of
/// PostgreSQL.
#[derive(Clone, Copy)]
struct Measured {
    run: Run,
    smsbridge_us: f64,
    postgres_us: f64,
}

fn row(name: &str, runs: &[Measured], base: f64) -> String {
    let rps = median(runs.iter().map(|r| r.run.rps).collect());
    let p50 = median(runs.iter().map(|r| r.run.p50).collect());
    let p99 = median(runs.iter().map(|r| r.run.p99).collect());
    let errors: usize = runs.iter().map(|r| r.run.errors).sum();
    let bridge = median(runs.iter().map(|r| r.smsbridge_us).collect());
    let pg = median(runs.iter().map(|r| r.postgres_us).collect());
    format!(
        "| {name} | {rps:.0} | {:.2}× | {} | {} | {bridge:.0} µs | {pg:.0} µs | {errors} |",
        rps / base,
        ms(p50),
        ms(p99)
    )
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = pg::Postgres::start();
    let (mock, _provider) = twilio::mock_twilio(0).await;
    let shared = format!("[state]\nurl = \"{}\"\n[record]\nnumber_key = \"bench-number-key-0001\"\n", server.url());
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let embedded = format!("[record]\npath = \"{}/messages.db\"\n", dirs[0].path().display());
    let start = |i: usize, state: &str| {
        let file = config(dirs[i].path(), mock, state);
        let addr = free_addr();
        // Started twice: the figures are of a start from a warm compiled-code cache.
        drop(KillOnDrop(start_smsbridge(&file, addr).0));
        (KillOnDrop(start_smsbridge(&file, addr).0), format!("http://{addr}/v1/send"))
    };
    let one = start(0, &embedded);
    let three: Vec<_> = (1..4).map(|i| start(i, &shared)).collect();
    let setups: [(&str, Vec<&(KillOnDrop, String)>); 3] = [
        ("1 instance, embedded state", vec![&one]),
        ("1 instance, PostgreSQL", vec![&three[0]]),
        ("3 instances, PostgreSQL", three.iter().collect()),
    ];

    let client = twilio::client(LOAD.clients);
    let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); setups.len()];
    for round in 0..=RUNS {
        for (i, (name, instances)) in setups.iter().enumerate() {
            let urls: Vec<&str> = instances.iter().map(|(_, url)| url.as_str()).collect();
            let pids: Vec<u32> = instances.iter().map(|(child, _)| child.0.id()).collect();
            eprintln!("{name}, round {round}");
            let before = (pids.iter().map(|p| cpu_s(*p)).sum::<f64>(), postgres_cpu_s());
            let run = closed_loop_over(&client, &urls, LOAD, &pids).await;
            let after = (pids.iter().map(|p| cpu_s(*p)).sum::<f64>(), postgres_cpu_s());
            let sent = (run.rps * run.elapsed.as_secs_f64()).max(1.0);
            let per = |cpu: f64| cpu / sent * 1e6;
            // Round 0 warms every setup up.
            if round > 0 {
                runs[i].push(Measured {
                    run,
                    smsbridge_us: per(after.0 - before.0),
                    postgres_us: per(after.1 - before.1),
                });
            }
        }
    }
    let base = median(runs[0].iter().map(|r| r.run.rps).collect());
    println!("{} callers, closed loop, provider answering at once; median of {RUNS} runs", LOAD.clients);
    println!();
    println!(
        "| setup | msg/s | vs embedded | p50 | p99 | smsbridge CPU per message | PostgreSQL CPU per message | errors |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for ((name, _), runs) in setups.iter().zip(&runs) {
        println!("{}", row(name, runs, base));
    }
}
