//! The config file: TOML in, typed and validated config out.
//!
//! Every error names the file, the line and the key. Secrets written as
//! `{ env = "NAME" }` are read from the environment here and nowhere else.
//! This module checks the file's own consistency; whether an adapter exists
//! and accepts its settings is checked when adapters load.

/// The most linear memory any provider instance may be given.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

pub mod audit;
mod raw;

use anyhow::{Context, Result, anyhow, bail};
pub use raw::MIN_SECRET_CHARS;
use raw::{RawConfig, Source, line_of};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default: routes `/v1/send` to the `outbox` adapter.
/// The most sends one provider may have in flight; the sandbox pool is
/// sized from the providers' limits, up to `runtime::MAX_POOL_SLOTS`.
pub const MAX_IN_FLIGHT: u32 = 10_000;

pub const DEFAULT: &str = include_str!("../../../config/smsbridge.toml");

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from, for messages: a path or "embedded default".
    pub source: String,
    /// The file, when there is one to reload.
    pub path: Option<PathBuf>,
    pub server: Server,
    pub admin: Option<Admin>,
    pub log: Log,
    pub adapters: Adapters,
    pub providers: Vec<Provider>,
    pub routes: Vec<Route>,
    /// The durable message record; none keeps no record.
    pub record: Option<RecordConfig>,
    /// The PostgreSQL database several instances share: limits, repeats,
    /// the record and the queue. None keeps them embedded.
    pub state: Option<StateConfig>,
    /// Signs Digest nonces; instances behind one load balancer share it.
    /// Without it, a random key per process.
    pub digest_key: Option<Setting>,
}

/// `[record]`: where the message record lives and how long it keeps messages.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The embedded (SQLite) record; none when `[state]` keeps it.
    pub path: Option<PathBuf>,
    pub retention: Duration,
    /// Keys the number hashes; when absent, one is made and kept in the database.
    pub number_key: Option<Setting>,
}

/// The HMAC key of a Standard Webhooks secret: base64 after any `v1,` and
/// `whsec_`.
pub fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = secret.trim();
    let text = text.strip_prefix("v1,").unwrap_or(text);
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The HMAC key of a JWT secret: its bytes, or their base64 decoding.
pub fn jwt_key(secret: &str, base64: bool) -> Option<Vec<u8>> {
    use base64::Engine;
    if !base64 {
        return Some(secret.as_bytes().to_vec());
    }
    let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE];
    engines.iter().find_map(|e| e.decode(secret.trim()).ok())
}

/// `[state]`: the shared database.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `postgres://…`; may carry a password, so it is a secret.
    pub url: Setting,
    /// What a non-queued route does with its limits and repeats while the
    /// database cannot be reached.
    pub on_failure: OnStateFailure,
    /// PEM CA certificates the database's certificate must chain to;
    /// without it, the system's roots.
    pub ca: Option<PathBuf>,
    /// Connections per instance.
    pub pool: usize,
    /// Longest wait for one database operation, connecting included.
    pub timeout: Duration,
    /// How long a queued message claimed by an instance is its alone; an
    /// instance that dies gives it up when this runs out.
    pub lease: Duration,
}

/// See [`StateConfig::on_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStateFailure {
    /// Refuse the send (503): no limit can be checked, no repeat found.
    Closed,
    /// Send unchecked: logins keep working, the limits and repeats do not.
    Open,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// An HTTPS listener beside the HTTP one.
    pub tls: Option<Tls>,
    /// The URL providers reach smsbridge at (`https://sms.example.com`),
    /// behind any reverse proxy: callback signatures cover it.
    pub public_url: Option<String>,
    /// On SIGTERM, how long in-flight sends may take to finish.
    pub shutdown_grace_ms: u64,
    /// A request's whole header must arrive within this, on a new
    /// connection and between kept-alive requests (slow-loris callers).
    pub header_read_timeout_ms: u64,
    /// A connection that moves no byte for this long, with no request in
    /// flight, is closed.
    pub idle_timeout_ms: u64,
    /// A request's whole body must arrive within this.
    pub body_read_timeout_ms: u64,
    /// Open connections per listener; past it, new ones wait to be accepted.
    /// Lowered at start to what the open-file limit leaves room for.
    pub max_connections: usize,
    /// A connection this old finishes its requests and is closed.
    pub max_connection_age_ms: u64,
    /// HTTP/2 with prior knowledge on the plain listener; off, it speaks
    /// HTTP/1 only (HTTPS offers HTTP/2 by ALPN either way).
    pub h2c: bool,
    /// Host names callers reach this listener by; when set, a request for
    /// any other (loopback addresses aside) is refused: DNS rebinding.
    pub hosts: Vec<String>,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            listen: defaults::listen(),
            max_body_bytes: defaults::max_body_bytes(),
            tls: None,
            public_url: None,
            shutdown_grace_ms: defaults::shutdown_grace_ms(),
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 10_000,
            max_connections: 4096,
            max_connection_age_ms: 600_000,
            h2c: false,
            hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// When neither file exists, generate a self-signed pair there.
    pub self_signed: Option<SelfSigned>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfSigned {
    /// DNS names and IP addresses the certificate is for.
    #[serde(default = "defaults::tls_names")]
    pub names: Vec<String>,
    /// Lifetime in days.
    #[serde(default = "defaults::tls_days")]
    pub days: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapters {
    /// Folder of `.wasm` files that add to or replace the bundled adapters.
    pub dir: Option<PathBuf>,
    /// Folder for compiled adapter code, so restarts skip compilation.
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug`, or a `tracing` filter such as
    /// `smsbridge=debug`. A config reload applies it.
    pub level: String,
}

impl Default for Log {
    fn default() -> Log {
        Log { level: defaults::log_level() }
    }
}

/// The admin listener: adapter listing and health, apart from callers.
#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Bearer token; required unless `listen` is a loopback address.
    pub token: Option<Setting>,
    /// Host names the admin listener answers to besides loopback addresses
    /// and `localhost`: a page whose name was rebound to us gets nothing.
    pub hosts: Vec<String>,
    /// `[admin.tls]`: the admin listener speaks HTTPS only, so the token and
    /// the console's cookie never cross a network in clear.
    pub tls: Option<Tls>,
}

/// One adapter instance: an adapter plus its settings and sandbox limits.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub adapter: String,
    pub sandbox: SandboxLimits,
    /// Default sender id / from number, unless the route gives one.
    pub sender: Option<String>,
    pub settings: BTreeMap<String, Setting>,
    /// Consecutive transient failures that open this provider's circuit.
    pub circuit_failures: u32,
    /// How long an open circuit skips the provider before one probe.
    pub circuit_cooldown: Duration,
    /// Sends (and status callbacks) this provider may have in flight at
    /// once: its bulkhead. Size it as rate × provider latency.
    pub max_in_flight: u32,
}

/// What one provider instance's sends may reach and use.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Hosts this instance may call; `None` means the adapter's default hosts.
    pub allow_hosts: Option<Vec<String>>,
    /// Wall-clock budget for one whole send, HTTP calls included.
    pub timeout: Duration,
    /// Budget of guest CPU time for one send, host calls excluded.
    pub cpu: Duration,
    /// Cap on the sum of one send's linear memories.
    pub memory_bytes: usize,
    pub max_response_bytes: usize,
    /// The one directory this instance may touch (a WASI preopen).
    pub data_dir: Option<PathBuf>,
}

/// A provider setting. Values read from the environment are secrets; so are
/// values of keys the adapter declares secret (see `runtime`).
#[derive(Clone)]
pub struct Setting {
    pub value: String,
    pub from_env: bool,
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Setting(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub methods: Vec<Method>,
    pub fields: Fields,
    /// Provider names, in the order they are tried.
    pub providers: Vec<String>,
    pub default_country: Option<phonenumber::country::Id>,
    /// Sender id / from number for this route, overriding the provider's.
    pub sender: Option<String>,
    /// How callers prove who they are; `None` leaves the route open.
    pub auth: Option<CallerAuth>,
    /// Caller networks allowed; empty allows any.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// A text answer on success instead of JSON, e.g. `RESULT:OK {id}`.
    pub success_body: Option<String>,
    /// The text built from `fields.code` when the caller sends only a
    /// code: `Your code is {code}`.
    pub template: Option<String>,
    /// The shape of the answers.
    pub answer: Answer,
    /// Digits without `+` are read as an international number.
    pub international_numbers: bool,
    pub delivery: Delivery,
    pub limits: Limits,
}

/// The shape of a route's answers: smsbridge's own, or the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    #[default]
    Json,
    /// Okta's telephony inline hook: `commands` with a status, or an `error`.
    Okta,
    /// Supabase's Send SMS hook: `{}`, or `{"error": {"http_code", "message"}}`.
    Supabase,
}

/// How hard a route tries: retries, failover and their deadline.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The whole send, every attempt and wait included.
    pub deadline: Duration,
    /// Extra attempts at one provider after a transient failure.
    pub retries: u32,
    /// First wait before a retry; doubled each time, with full jitter.
    pub backoff: Duration,
    /// Also try the next provider after `rejected` or `invalid-recipient`.
    pub failover_on_permanent: bool,
    /// Also try the next provider after one that may have the message (its
    /// answer did not come): at least once across providers, not at most.
    pub failover_on_unknown: bool,
    /// What the caller hears when a provider may have the message but did
    /// not confirm it.
    pub on_unknown: OnUnknown,
    /// How long a repeated request (same number and message, or the same
    /// `Idempotency-Key`) gets the first answer instead of a second SMS.
    /// Zero turns it off.
    pub idempotency_window: Duration,
    /// Answer 202 once the message is durably queued; deliver in the
    /// background, across restarts, until `validity` has passed.
    pub queued: bool,
    pub validity: Duration,
}

/// The answer for a message a provider may have, unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknown {
    /// 200 `pending`, marked `unconfirmed`: the user waits for the SMS
    /// rather than asking for another one that may arrive as well.
    #[default]
    Pending,
    /// 503 `unconfirmed`: the MFA server decides.
    Failed,
}

/// Limits against SMS pumping (toll fraud).
#[derive(Debug, Clone)]
pub struct Limits {
    pub per_number: Option<Rate>,
    /// Per number without its last 4 digits: a run through a number range.
    pub per_prefix: Option<Rate>,
    pub per_country: Option<Rate>,
    pub per_route: Option<Rate>,
    pub countries: Countries,
    /// Number types refused (libphonenumber's: `premium_rate`, `unknown`, …).
    pub refuse_number_types: Vec<phonenumber::Type>,
}

/// At most `limit` sends per `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Countries {
    Any,
    Allow(Vec<phonenumber::country::Id>),
    Deny(Vec<phonenumber::country::Id>),
}

/// Caller authentication for a route.
#[derive(Debug, Clone)]
pub enum CallerAuth {
    Basic {
        user: String,
        password: Setting,
        realm: String,
    },
    Digest {
        user: String,
        password: Setting,
        realm: String,
    },
    /// Credentials in the request's fields (RSA AM cannot send Basic).
    FormSecret {
        user_field: String,
        secret_field: String,
        user: String,
        secret: Setting,
    },
    Bearer {
        token: Setting,
    },
    /// A header the caller sends with a secret value (Okta's `authScheme`,
    /// Keycloak, PingOne): `name` in lower case.
    Header {
        name: String,
        value: Setting,
    },
    /// Standard Webhooks signatures (Supabase): HMAC-SHA256 of
    /// `id.timestamp.body` under `key`, the timestamp within `tolerance`.
    /// A `webhook-id` answered before is refused (see the route's repeats).
    Webhook {
        /// As the caller shows it (`v1,whsec_<base64>`); checked at load.
        secret: Setting,
        tolerance: Duration,
    },
    /// A bearer JWT signed with HS256 under `secret` (Auth0): the algorithm
    /// pinned, `exp` required, `aud` and (when set) `sub` checked.
    Jwt {
        secret: Setting,
        /// The secret is base64 (Auth0's `secret_base64_encoded`).
        base64: bool,
        audience: String,
        subject: Option<String>,
        /// `iss` must be this, when set.
        issuer: Option<String>,
        /// The longest `exp - iat` accepted: a token is good for one
        /// request, and a captured one for no longer than this.
        max_lifetime: Duration,
    },
}

/// The names of the caller's fields: every MFA product lets its admin choose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    pub phone: String,
    pub message: String,
    /// The field with the one-time code alone, for callers that send no
    /// text (the route's `template` makes it).
    pub code: Option<String>,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields { phone: defaults::phone_field(), message: defaults::message_field(), code: None }
    }
}

mod defaults {
    use super::*;
    pub fn listen() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }
    pub fn max_body_bytes() -> usize {
        64 * 1024
    }
    pub fn phone_field() -> String {
        "phone".into()
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn shutdown_grace_ms() -> u64 {
        10_000
    }
    pub fn tls_names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }
    pub fn tls_days() -> u32 {
        3650
    }
    pub fn state_pool() -> usize {
        16
    }
    pub fn state_timeout_ms() -> u64 {
        2_000
    }
    pub fn lease_ms() -> u64 {
        30_000
    }
    pub fn admin_listen() -> SocketAddr {
        "127.0.0.1:8081".parse().unwrap()
    }
    pub fn message_field() -> String {
        "message".into()
    }
    pub fn methods() -> Vec<super::Method> {
        vec![super::Method::Get, super::Method::Post]
    }
    pub fn timeout_ms() -> u64 {
        10_000
    }
    pub fn cpu_ms() -> u64 {
        // Guest time is wall time outside host calls, so a loaded machine's
        // scheduling delays count: leave headroom over the ~1 ms a send needs.
        1000
    }
    pub fn validity_s() -> u64 {
        // An OTP older than this is useless to its user.
        600
    }
    pub fn retention_days() -> u64 {
        30
    }
    pub fn deadline_ms() -> u64 {
        10_000
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn backoff_ms() -> u64 {
        200
    }
    pub fn idempotency_window_s() -> u64 {
        // Long enough for a caller's own retries after a timeout; short
        // enough that a user's "send again" a minute later sends again.
        60
    }
    pub fn circuit_failures() -> u32 {
        5
    }
    pub fn circuit_cooldown_ms() -> u64 {
        30_000
    }
    /// Room for 2,000 messages a second to a provider answering in 300 ms,
    /// with headroom.
    pub fn max_in_flight() -> i64 {
        1000
    }
    pub fn per_number() -> &'static str {
        "5/10m"
    }
    pub fn per_prefix() -> &'static str {
        "20/10m"
    }
    pub fn per_country() -> &'static str {
        "1000/10m"
    }
    pub fn per_route() -> &'static str {
        "10000/10m"
    }
    pub fn refuse_number_types() -> Vec<phonenumber::Type> {
        use phonenumber::Type::*;
        vec![PremiumRate, SharedCost, Unknown]
    }
    pub fn memory_mb() -> usize {
        32
    }
    pub fn max_response_bytes() -> usize {
        256 * 1024
    }
}

impl Config {
    /// Sandbox slots the configured providers may use at once.
    pub fn sends_in_flight(&self) -> u32 {
        self.providers.iter().map(|p| p.max_in_flight).fold(0, u32::saturating_add)
    }

    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The embedded default config.
    pub fn embedded() -> Config {
        Self::parse(DEFAULT, "embedded default").expect("the embedded default config is valid")
    }

    /// Parses and checks `text`; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
            anyhow!("{source}{line}: {}", e.message())
        })?;
        let src = Source { text, name: source };
        let mut providers = Vec::new();
        for p in raw.providers {
            let provider = Provider::from_raw(p, &providers, src)?;
            providers.push(provider);
        }
        let mut routes = Vec::new();
        let has_record = raw.record.is_some() || raw.state.is_some();
        for r in raw.routes {
            let route = Route::from_raw(r.into_inner(), &providers, &routes, has_record, src)?;
            routes.push(route);
        }
        Ok(Config {
            source: source.into(),
            path: None,
            admin: raw.admin.map(|a| Admin::from_raw(a, src)).transpose()?,
            log: raw.log.unwrap_or_default(),
            server: match raw.server {
                None => Server::default(),
                Some(server) => {
                    server.get_ref().check(src, server.span())?;
                    server.into_inner()
                }
            },
            adapters: raw.adapters,
            providers,
            routes,
            record: RecordConfig::from_raw(raw.record, raw.state.is_some(), src)?,
            state: raw.state.map(|s| StateConfig::from_raw(s, src)).transpose()?,
            digest_key: raw::digest_key(raw.auth.as_ref(), src)?,
        })
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_routes_to_outbox() {
        let c = Config::embedded();
        let route = c.route("/v1/send").unwrap();
        assert_eq!(route.providers, ["outbox"]);
        assert_eq!(c.provider("outbox").unwrap().adapter, "outbox");
    }

    #[test]
    fn max_in_flight_defaults_to_1000_and_must_be_1_to_10000() {
        let provider = |extra: &str| format!("[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n{extra}\n");
        let config = Config::parse(&provider(""), "gw.toml").unwrap();
        assert_eq!(config.providers[0].max_in_flight, 1000);
        let two = format!("{}{}", provider("max_in_flight = 7"), provider("").replace("\"a\"", "\"b\""));
        assert_eq!(Config::parse(&two, "gw.toml").unwrap().sends_in_flight(), 1007);
        for bad in ["0", "10001", "-1"] {
            let err = Config::parse(&provider(&format!("max_in_flight = {bad}")), "gw.toml").unwrap_err().to_string();
            assert!(err.starts_with("gw.toml:1: provider `a`: `max_in_flight` must be 1 to 10000"), "{err}");
            assert!(err.contains(&format!("got {bad}")), "{err}");
        }
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n\n[[route]]\npath = \"/x\"\nproviders = [\"a\", \"nope\"]\n";
        let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
        assert_eq!(err, "gw.toml:7: route `/x`: provider `nope` is not defined");

        let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 1\n", "gw.toml").unwrap_err();
        assert!(err.to_string().starts_with("gw.toml:3: unknown field `listen_typo`"), "{err}");

        let text =
            "[[provider]]\nname = \"a\"\nadapter = \"x\"\nconfig = { token = { env = \"SMSBRIDGE_SURELY_UNSET\" } }\n";
        let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "gw.toml:4: provider `a`: `config.token` reads environment variable `SMSBRIDGE_SURELY_UNSET`, which is not set"
        );

        let text = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\ndefault_country = \"Britain\"\n";
        let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
        assert!(err.starts_with("gw.toml:7: route `/x`: `default_country` `Britain`"), "{err}");
    }

    #[test]
    fn admin_off_loopback_needs_a_token() {
        let err = Config::parse("[admin]\nlisten = \"0.0.0.0:8081\"\n", "gw.toml").unwrap_err().to_string();
        assert_eq!(err, "gw.toml:1: admin listens on 0.0.0.0:8081, which is not loopback: set `token`");
        let c = Config::parse("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t0k-9f2c41d8a7\"\n", "gw.toml").unwrap();
        assert_eq!(c.admin.unwrap().token.unwrap().value, "t0k-9f2c41d8a7");
        assert_eq!(Config::parse("[admin]\n", "gw.toml").unwrap().admin.unwrap().listen.to_string(), "127.0.0.1:8081");
    }

    #[test]
    fn empty_and_short_secrets_are_refused_with_their_key() {
        let route = |auth: &str| {
            format!(
                "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\nauth = {auth}\n"
            )
        };
        let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
        assert_eq!(err(&route("{ bearer = { token = \"\" } }")), "gw.toml:7: route `/x`: auth `token` is empty");
        assert_eq!(
            err(&route("{ basic = { user = \"u\", password = \"short\" } }")),
            "gw.toml:7: route `/x`: auth `password` is 5 characters long; a secret needs at least 12"
        );
        assert!(
            err(&route(
                "{ form_secret = { user_field = \"u\", secret_field = \"s\", user = \"VA1\", secret = \"abc\" } }"
            ))
            .contains("auth `secret` is 3 characters long")
        );
        // SAFETY: no other test reads this variable.
        unsafe { std::env::set_var("SMSBRIDGE_TEST_EMPTY_TOKEN", "") };
        assert_eq!(
            err("[admin]\ntoken = { env = \"SMSBRIDGE_TEST_EMPTY_TOKEN\" }\n"),
            "gw.toml:2: admin `token` is empty"
        );
        assert!(err("[auth]\ndigest_key = \"k\"\n").contains("auth `digest_key` is 1 characters long"));
        assert!(err("[record]\npath = \"m.db\"\nnumber_key = \"\"\n").contains("record `number_key` is empty"));
        assert!(Config::parse(&route("{ bearer = { token = \"twelve-chars\" } }"), "gw.toml").is_ok());
    }

    #[test]
    fn durations_are_bounded() {
        let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
        assert!(
            err("[[provider]]\nname = \"a\"\nadapter = \"x\"\ntimeout_ms = 18446744073709551615\n")
                .contains("`timeout_ms` must be between 1 and 2592000000")
        );
        assert!(err("[server]\nheader_read_timeout_ms = 0\n").contains("[server]: `header_read_timeout_ms` must be"));
        assert!(err("[server]\nmax_connections = 0\n").contains("`max_connections` must be between 1"));
        let route = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\n";
        assert!(err(&format!("{route}validity_s = 99999999999\n")).contains("`validity_s` must be between"));
    }

    #[test]
    fn no_value_is_coerced_in_silence_and_each_is_refused_in_its_own_unit() {
        let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
        let provider = |extra: &str| format!("[[provider]]\nname = \"a\"\nadapter = \"x\"\n{extra}\n");
        let route = |extra: &str| format!("{}[[route]]\npath = \"/x\"\nproviders = [\"a\"]\n{extra}\n", provider(""));
        let cases = [
            (provider("memory_mb = 17592186044416"), "`memory_mb` must be between 1 and 256 MiB, not 17592186044416"),
            (provider("max_response_bytes = 0"), "`max_response_bytes` must be between 1 and 16777216 bytes, not 0"),
            (provider("circuit_failures = 0"), "`circuit_failures` must be between 1 and 10000 failures, not 0"),
            (provider("circuit_cooldown_ms = 0"), "`circuit_cooldown_ms` must be between 1 and 2592000000"),
            (route("validity_s = 0"), "`validity_s` must be between 1 and 2592000 seconds (30 days), not 0"),
            (
                route("validity_s = 2592001"),
                "`validity_s` must be between 1 and 2592000 seconds (30 days), not 2592001",
            ),
            (route("idempotency_window_s = 2592001"), "`idempotency_window_s` must be between 0 and 2592000 seconds"),
            (route("retries = 4000000000"), "`retries` must be between 0 and 100 retries, not 4000000000"),
            (route("backoff_ms = 0"), "`backoff_ms` must be between 1 and 2592000000"),
            (
                "[record]\npath = \"m.db\"\nretention_days = 0\n".to_string(),
                "`retention_days` must be between 1 and 36500 days, not 0",
            ),
        ];
        for (text, expected) in cases {
            let e = err(&text);
            assert!(e.contains(expected), "{text}: {e}");
        }
        // 0 is documented as off, and means off.
        let off = Config::parse(&route("idempotency_window_s = 0"), "gw.toml").unwrap();
        assert_eq!(off.routes[0].delivery.idempotency_window, Duration::ZERO);
    }

    #[test]
    fn provider_names_are_of_a_safe_alphabet() {
        let err = |name: &str| {
            let text = format!("[[provider]]\nname = \"{name}\"\nadapter = \"x\"\n");
            Config::parse(&text, "gw.toml").err().map(|e| e.to_string())
        };
        for bad in ["x,y", "a b", "é", "a/b", "", &"a".repeat(65)] {
            let e = err(bad).unwrap_or_else(|| panic!("`{bad}` taken as a provider name"));
            assert!(e.contains("gw.toml:2: provider `name`"), "{e}");
        }
        for good in ["twilio", "Twilio-EU_2", "sms.example"] {
            assert_eq!(err(good), None, "{good}");
        }
    }

    #[test]
    fn settings_take_text_numbers_and_environment() {
        // SAFETY: no other test reads this variable.
        unsafe { std::env::set_var("SMSBRIDGE_TEST_TOKEN", "s3cret") };
        let text = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[provider.config]\nsid = \"AC1\"\nvalidity = 600\ntoken = { env = \"SMSBRIDGE_TEST_TOKEN\" }\n";
        let c = Config::parse(text, "t").unwrap();
        let s = &c.provider("a").unwrap().settings;
        assert_eq!(s["sid"].value, "AC1");
        assert_eq!(s["validity"].value, "600");
        assert!(s["token"].from_env && s["token"].value == "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn state_errors_name_the_key_and_never_echo_the_url() {
        let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
        let key = "[record]\nnumber_key = \"number-key-123456\"\n";
        let ok = Config::parse(&format!("{key}[state]\nurl = \"postgres://sb@db/sb\"\n"), "gw.toml").unwrap();
        let state = ok.state.unwrap();
        assert_eq!((state.on_failure, state.pool, state.lease), (OnStateFailure::Closed, 16, Duration::from_secs(30)));
        assert_eq!(ok.record.unwrap().path, None);
        let e = err("[state]\nurl = \"postgres://sb@db/sb\"\n");
        assert!(e.contains("set [record] `number_key`"), "{e}");
        let e =
            err("[record]\npath = \"m.db\"\nnumber_key = \"number-key-123456\"\n[state]\nurl = \"postgres://db/sb\"\n");
        assert!(e.contains("remove `path`"), "{e}");
        let e = err(&format!("{key}[state]\nurl = \"mysql://u:hunter2-secret@db/sb\"\n"));
        assert!(e.contains("gw.toml:4: state `url` must start with postgres://") && !e.contains("hunter2"), "{e}");
        let e = err(&format!("{key}[state]\nurl = \"postgres://u:hunter2-secret@db/sb?sslmode=sometimes\"\n"));
        assert!(e.contains("state `url` is not a PostgreSQL URL") && !e.contains("hunter2"), "{e}");
        let e = err(&format!("{key}[state]\nurl = \"postgres://db/sb\"\non_failure = \"maybe\"\n"));
        assert!(e.contains("gw.toml:5: state `on_failure` must be \"closed\" or \"open\""), "{e}");
        let e = err(&format!("{key}[state]\nurl = \"postgres://db/sb\"\nlease_ms = 10\n"));
        assert!(e.contains("state `lease_ms` must be 1000 to 600000 (got 10)"), "{e}");
        let e = err("[record]\nretention_days = 3\n");
        assert!(e.contains("[record] needs `path`"), "{e}");
        // A queued route needs a record, which [state] provides.
        let queued = "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/q\"\nproviders = [\"a\"]\nqueued = true\n";
        Config::parse(&format!("{key}[state]\nurl = \"postgres://db/sb\"\n{queued}"), "gw.toml").unwrap();
    }

    #[test]
    fn presets_fill_what_a_route_leaves_out_and_yield_to_what_it_sets() {
        let base = "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/o\"\nproviders = [\"a\"]\n";
        let route = |extra: &str| Config::parse(&format!("{base}{extra}"), "gw.toml").map(|mut c| c.routes.remove(0));
        let okta = route("caller = \"okta\"\n").unwrap();
        assert_eq!(okta.fields.phone, "data.messageProfile.phoneNumber");
        assert_eq!(okta.fields.code.as_deref(), Some("data.messageProfile.otpCode"));
        assert_eq!((okta.answer, okta.delivery.deadline), (Answer::Okta, Duration::from_millis(2500)));
        let own = route("caller = \"okta\"\ndeadline_ms = 2000\ntemplate = \"Code: {code}\"\n").unwrap();
        assert_eq!(
            (own.delivery.deadline, own.template.as_deref()),
            (Duration::from_millis(2000), Some("Code: {code}"))
        );
        let supabase = route("caller = \"supabase\"\n").unwrap();
        assert!(supabase.international_numbers);
        assert_eq!(
            (supabase.answer, supabase.delivery.idempotency_window),
            (Answer::Supabase, Duration::from_secs(300))
        );
        let err = |extra: &str| route(extra).unwrap_err().to_string();
        assert!(err("caller = \"nokia\"\n").contains("gw.toml:7: route: `caller` `nokia` is not a known product"));
        assert!(err("fields = { code = \"otp\" }\n").contains("`fields.code` needs a `template`"));
        assert!(err("fields = { code = \"otp\" }\ntemplate = \"Hi\"\n").contains("`template` must contain {code}"));
        let webhook = "auth = { webhook = { secret = \"v1,whsec_c21zYnJpZGdlLXN1cGFiYXNlLWhvb2stc2VjcmV0\" } }\n";
        assert!(err(webhook).contains("`idempotency_window_s` (60) must be at least the webhook `tolerance_s` (300)"));
        assert!(route(&format!("caller = \"supabase\"\n{webhook}")).is_ok());
        let bad = "auth = { webhook = { secret = \"v1,whsec_not base64!!\" } }\nidempotency_window_s = 300\n";
        assert!(err(bad).contains("write it as v1,whsec_<base64>"));
        let jwt = "auth = { jwt = { secret = \"auth0-secret-0123456789\", audience = \"\" } }\n";
        assert!(err(jwt).contains("auth `audience` is empty"));
    }
}
