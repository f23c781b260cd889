//! A real PostgreSQL server for the shared-state tests: initialised in a
//! temporary folder and started on a loopback port, as the `postgres` user
//! when run as root (PostgreSQL refuses root), stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Extra server options (`-c name=value …`).
    options: String,
}

/// The folder of the newest installed server's programs.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("PostgreSQL is installed (.ci/run installs it)")
        .map(|e| e.unwrap().path())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").join("bin")
}

/// Runs `program` as the server's owner.
fn as_owner(program: &Path) -> Command {
    let root = is_root();
    let mut cmd = if root { Command::new("runuser") } else { Command::new(program) };
    if root {
        cmd.args(["-u", "postgres", "--"]).arg(program);
    }
    cmd
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Postgres {
    /// Initialises and starts a server; its superuser is `postgres`, with
    /// trust authentication on loopback.
    pub fn start() -> Postgres {
        Self::start_with(|_| String::new())
    }

    /// A server that also accepts TLS, with a certificate for 127.0.0.1
    /// signed by itself; the path of that certificate, the CA to trust.
    pub fn start_tls() -> (Postgres, PathBuf) {
        let mut ca = PathBuf::new();
        let server = Self::start_with(|dir| {
            let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
            let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::write(&cert, pair.cert.pem()).unwrap();
            std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            ca = cert.clone();
            format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display())
        });
        (server, ca)
    }

    /// Initialises and starts a server with the options `prepare` returns,
    /// given the server's folder before it is handed to its owner.
    fn start_with(prepare: impl FnOnce(&Path) -> String) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let options = prepare(dir.path());
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let out = as_owner(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Postgres { port, dir, bin, options };
        server.start_again();
        server
    }

    /// Starts the server again after [`Postgres::stop`], on the same port
    /// and data.
    pub fn start_again(&self) {
        let dir = self.dir.path();
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-o")
            .arg(format!("-p {} -h 127.0.0.1 -k {}{}", self.port, dir.display(), self.options))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "PostgreSQL listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql`, through `psql`.
    pub fn execute(&self, sql: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The one number `sql` answers, through `psql`.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// The server's data folder: tables, WAL.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_dump` of `schema`'s data, as an operator's backup holds it.
    pub fn dump(&self, schema: &str) -> String {
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "--data-only", "-n", schema])
            .arg("postgres")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Forces the WAL written so far out to its files.
    pub fn checkpoint(&self) {
        self.execute("CHECKPOINT");
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
