//! Shared by the end-to-end tests: a real smsbridge server on a loopback
//! port, built from a config text, with adapters compiled once per test
//! binary.

use smsbridge::config::Config;
use smsbridge::gateway::Gateway;
use smsbridge::runtime::Runtime;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use smsbridge::artifacts;

/// A `[[route]]` at `path` through `providers`, with the limits against SMS
/// pumping, repeated-request answers and retries off, so that each send a
/// test makes is sent once, as it is; `extra` adds TOML lines to it.
pub fn quiet_route(path: &str, providers: &[&str], extra: &str) -> String {
    let providers: Vec<String> = providers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "\n[[route]]\npath = \"{path}\"\nproviders = [{}]\nidempotency_window_s = 0\nretries = 0\n\
         limits = {{ per_number = \"off\", per_prefix = \"off\", per_country = \"off\", per_route = \"off\" }}\n{extra}",
        providers.join(", ")
    )
}

/// One runtime per test binary, so each component is compiled once.
pub fn runtime() -> Arc<Runtime> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("smsbridge=debug").try_init();
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the runtime starts")).clone()
}

/// A running smsbridge — callers' and admin listeners, file watch — and the
/// scratch folder its config points into.
pub struct Bridge {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub gateway: Arc<Gateway>,
    _watch: smsbridge::watch::Watch,
}

impl Bridge {
    /// Starts smsbridge with `config`, in which `{dir}` stands for a fresh
    /// scratch folder.
    pub async fn start(config: &str) -> Bridge {
        Self::start_with(config, |_| {}).await
    }

    /// Like [`Bridge::start`], after `prepare` has filled the scratch folder.
    pub async fn start_with(config: &str, prepare: impl FnOnce(&Path)) -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let text = config.replace("{dir}", dir.path().to_str().unwrap());
        let config = Config::parse(&text, "test.toml").expect("test config is valid");
        Self::launch(config, runtime(), dir).await
    }

    /// Starts smsbridge from the config file `smsbridge.toml` that it writes
    /// into the scratch folder (`{dir}` in it is replaced), after `prepare`,
    /// so edits to that file reload it.
    pub async fn start_from_file(config: &str, prepare: impl FnOnce(&Path)) -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let file = dir.path().join("smsbridge.toml");
        std::fs::write(&file, config.replace("{dir}", dir.path().to_str().unwrap())).unwrap();
        let config = Config::load(&file).expect("test config is valid");
        Self::launch(config, runtime(), dir).await
    }

    /// Starts smsbridge on `config` with `runtime`, in `dir`.
    pub async fn launch(config: Config, runtime: Arc<Runtime>, dir: tempfile::TempDir) -> Bridge {
        let gateway = Arc::new(Gateway::new(config, runtime).await.expect("gateway starts"));
        gateway.start_queue();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(smsbridge::server::serve(gateway.clone(), listener, std::future::pending()));
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let router = smsbridge::admin::router(gateway.clone());
        tokio::spawn(async move { axum::serve(admin, router).await });
        let watch = smsbridge::watch::start(gateway.clone()).expect("the watch starts");
        Bridge { addr, admin_addr, dir, client: reqwest::Client::new(), gateway, _watch: watch }
    }

    /// GETs an admin endpoint and parses its JSON.
    pub async fn admin(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.client.get(format!("http://{}{path}", self.admin_addr)).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a form body exactly as given (not re-encoded).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<String>) -> Answer {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .await
            .unwrap();
        Answer::read(resp).await
    }

    pub async fn get(&self, path_and_query: &str) -> Answer {
        Answer::read(self.client.get(self.url(path_and_query)).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> Answer {
        Answer::read(self.client.post(self.url(path)).json(&body).send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        Answer::read(self.client.post(self.url(path)).form(fields).send().await.unwrap()).await
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The outbox lines written under `{dir}/rel`, parsed.
    pub fn outbox(&self, rel: &str) -> Vec<serde_json::Value> {
        read_outbox(&self.path(rel).join("outbox.jsonl"))
    }
}

pub fn read_outbox(file: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(file) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).expect("each outbox line is JSON")).collect(),
        Err(_) => Vec::new(),
    }
}

/// `(provider, outcome)` pairs, as [`Answer::attempts`] gives them.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, o)| (p.to_string(), o.to_string())).collect()
}

/// An HTTP answer: status, raw body and the body as JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    async fn read(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, text, json, headers }
    }

    /// Asserts a failure answer: `status`, error code `code`, and a body
    /// without the success word.
    pub fn assert_failed(&self, status: u16, code: &str) -> &Answer {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json["error"], code, "{self:?}");
        assert_eq!(self.json["status"], "failed", "{self:?}");
        assert!(!self.text.contains("pending"), "a failure body must not contain the success word: {}", self.text);
        self
    }

    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }

    /// `(provider, outcome)` of every attempt the answer lists.
    pub fn attempts(&self) -> Vec<(String, String)> {
        self.json["attempts"]
            .as_array()
            .unwrap_or_else(|| panic!("no attempts: {self:?}"))
            .iter()
            .map(|t| (t["provider"].as_str().unwrap().to_string(), t["outcome"].as_str().unwrap().to_string()))
            .collect()
    }
}

/// What `script` prints, run by the Python that scripts/test sets up in
/// `target/venv` with independent libraries (tests/requirements.txt).
pub fn python(script: &str, args: &[&str]) -> String {
    // Test binaries are in target/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let python = target.join("venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; scripts/test installs it", python.display()));
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
