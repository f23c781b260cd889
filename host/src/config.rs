//! The config file: TOML in, typed and validated config out.
//!
//! Every error names the file, the line and the key. Secrets written as
//! `{ env = "NAME" }` are read from the environment here and nowhere else.
//! This module checks the file's own consistency; whether an adapter exists
//! and accepts its settings is checked when adapters load.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The embedded default: routes `/v1/send` to the `outbox` adapter.
pub const DEFAULT: &str = include_str!("../../config/smsbridge.toml");

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
}

/// `[record]`: where the message record lives and how long it keeps messages.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub path: PathBuf,
    pub retention: Duration,
    /// Keys the number hashes; when absent, one is made and kept in the database.
    pub number_key: Option<Setting>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// An HTTPS listener beside the HTTP one.
    pub tls: Option<Tls>,
    /// The URL providers reach smsbridge at (`https://sms.example.com`),
    /// behind any reverse proxy: callback signatures cover it.
    pub public_url: Option<String>,
    /// On SIGTERM, how long in-flight sends may take to finish.
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
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
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug`, or a `tracing` filter such as
    /// `smsbridge=debug`. A config reload applies it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

/// The admin listener: adapter listing and health, apart from callers.
#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Bearer token; required unless `listen` is a loopback address.
    pub token: Option<Setting>,
}

/// One adapter instance: an adapter plus its settings and sandbox limits.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub adapter: String,
    /// Hosts this instance may call; `None` means the adapter's default hosts.
    pub allow_hosts: Option<Vec<String>>,
    /// Wall-clock budget for one whole send, HTTP calls included.
    pub timeout: Duration,
    /// Budget of guest CPU time for one send, host calls excluded.
    pub cpu: Duration,
    /// Linear memory cap for one send's instance.
    pub memory_bytes: usize,
    pub max_response_bytes: usize,
    /// The one directory this instance may touch (a WASI preopen).
    pub data_dir: Option<PathBuf>,
    /// Default sender id / from number, unless the route gives one.
    pub sender: Option<String>,
    pub settings: BTreeMap<String, Setting>,
    /// Consecutive transient failures that open this provider's circuit.
    pub circuit_failures: u32,
    /// How long an open circuit skips the provider before one probe.
    pub circuit_cooldown: Duration,
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
    pub delivery: Delivery,
    pub limits: Limits,
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
    /// How long a repeated request (same number and message, or the same
    /// `Idempotency-Key`) gets the first answer instead of a second SMS.
    /// Zero turns it off.
    pub idempotency_window: Duration,
    /// Answer 202 once the message is durably queued; deliver in the
    /// background, across restarts, until `validity` has passed.
    pub queued: bool,
    pub validity: Duration,
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
}

/// The names of the caller's fields: every MFA product lets its admin choose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[serde(default = "defaults::phone_field")]
    pub phone: String,
    #[serde(default = "defaults::message_field")]
    pub message: String,
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

// The file as written. Spans let later checks point at a line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<Server>,
    admin: Option<Spanned<RawAdmin>>,
    log: Option<Log>,
    #[serde(default)]
    adapters: Adapters,
    #[serde(default, rename = "provider")]
    providers: Vec<Spanned<RawProvider>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
    record: Option<RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    path: PathBuf,
    #[serde(default = "defaults::retention_days")]
    retention_days: u64,
    number_key: Option<Spanned<RawSetting>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Spanned<String>,
    adapter: String,
    allow_hosts: Option<Vec<String>>,
    #[serde(default = "defaults::timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "defaults::cpu_ms")]
    cpu_ms: u64,
    #[serde(default = "defaults::memory_mb")]
    memory_mb: usize,
    #[serde(default = "defaults::max_response_bytes")]
    max_response_bytes: usize,
    data_dir: Option<PathBuf>,
    sender: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<RawSetting>>,
    #[serde(default = "defaults::circuit_failures")]
    circuit_failures: u32,
    #[serde(default = "defaults::circuit_cooldown_ms")]
    circuit_cooldown_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default = "defaults::admin_listen")]
    listen: SocketAddr,
    token: Option<Spanned<RawSetting>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSetting {
    Text(String),
    Integer(i64),
    Bool(bool),
    Env { env: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: Spanned<String>,
    #[serde(default = "defaults::methods")]
    methods: Vec<Method>,
    fields: Option<Fields>,
    providers: Spanned<Vec<Spanned<String>>>,
    default_country: Option<Spanned<String>>,
    sender: Option<String>,
    auth: Option<Spanned<RawAuth>>,
    #[serde(default)]
    allow_networks: Vec<Spanned<String>>,
    success_body: Option<String>,
    #[serde(default = "defaults::deadline_ms")]
    deadline_ms: u64,
    #[serde(default = "defaults::retries")]
    retries: u32,
    #[serde(default = "defaults::backoff_ms")]
    backoff_ms: u64,
    #[serde(default)]
    failover_on_permanent: bool,
    #[serde(default = "defaults::idempotency_window_s")]
    idempotency_window_s: u64,
    limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    queued: bool,
    #[serde(default = "defaults::validity_s")]
    validity_s: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    per_number: Option<Spanned<String>>,
    per_prefix: Option<Spanned<String>>,
    per_country: Option<Spanned<String>>,
    per_route: Option<Spanned<String>>,
    allow_countries: Option<Vec<Spanned<String>>>,
    deny_countries: Option<Vec<Spanned<String>>>,
    refuse_number_types: Option<Vec<phonenumber::Type>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawAuth {
    Basic { user: String, password: Spanned<RawSetting>, realm: Option<String> },
    Digest { user: String, password: Spanned<RawSetting>, realm: Option<String> },
    FormSecret { user_field: String, secret_field: String, user: String, secret: Spanned<RawSetting> },
    Bearer { token: Spanned<RawSetting> },
}

impl Config {
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
            anyhow::anyhow!("{source}{line}: {}", e.message())
        })?;
        let at = |span: std::ops::Range<usize>| format!("{source}:{}", line_of(text, span.start));

        let mut providers = Vec::new();
        for p in raw.providers {
            let span = p.span();
            let p = p.into_inner();
            let name = p.name.get_ref().trim().to_string();
            if name.is_empty() {
                bail!("{}: provider `name` must not be empty", at(p.name.span()));
            }
            if providers.iter().any(|q: &Provider| q.name == name) {
                bail!("{}: provider `{name}` is defined twice", at(p.name.span()));
            }
            for (key, limit) in [("timeout_ms", p.timeout_ms), ("cpu_ms", p.cpu_ms), ("memory_mb", p.memory_mb as u64)]
            {
                if limit == 0 {
                    bail!("{}: provider `{name}`: `{key}` must be greater than 0", at(span.clone()));
                }
            }
            let mut settings = BTreeMap::new();
            for (key, value) in p.config {
                let setting = match value.get_ref() {
                    RawSetting::Text(s) => Setting { value: s.clone(), from_env: false },
                    RawSetting::Integer(n) => Setting { value: n.to_string(), from_env: false },
                    RawSetting::Bool(b) => Setting { value: b.to_string(), from_env: false },
                    RawSetting::Env { env } => match std::env::var(env) {
                        Ok(v) => Setting { value: v, from_env: true },
                        Err(_) => bail!(
                            "{}: provider `{name}`: `config.{key}` reads environment variable `{env}`, which is not set",
                            at(value.span())
                        ),
                    },
                };
                settings.insert(key, setting);
            }
            providers.push(Provider {
                name,
                adapter: p.adapter,
                allow_hosts: p.allow_hosts,
                timeout: Duration::from_millis(p.timeout_ms),
                cpu: Duration::from_millis(p.cpu_ms),
                memory_bytes: p.memory_mb << 20,
                max_response_bytes: p.max_response_bytes,
                data_dir: p.data_dir,
                sender: p.sender,
                settings,
                circuit_failures: p.circuit_failures.max(1),
                circuit_cooldown: Duration::from_millis(p.circuit_cooldown_ms),
            });
        }

        let mut routes: Vec<Route> = Vec::new();
        for r in raw.routes {
            let r = r.into_inner();
            let path = r.path.get_ref().clone();
            if !path.starts_with('/') {
                bail!("{}: route path `{path}` must start with `/`", at(r.path.span()));
            }
            if routes.iter().any(|q| q.path == path) {
                bail!("{}: route `{path}` is defined twice", at(r.path.span()));
            }
            if r.providers.get_ref().is_empty() {
                bail!("{}: route `{path}`: `providers` must name at least one provider", at(r.providers.span()));
            }
            for name in r.providers.get_ref() {
                if !providers.iter().any(|p| &p.name == name.get_ref()) {
                    bail!("{}: route `{path}`: provider `{}` is not defined", at(name.span()), name.get_ref());
                }
            }
            let default_country = match &r.default_country {
                None => None,
                Some(c) => Some(c.get_ref().to_uppercase().parse::<phonenumber::country::Id>().map_err(|_| {
                    anyhow::anyhow!(
                        "{}: route `{path}`: `default_country` `{}` is not an ISO 3166 country code such as GB or US",
                        at(c.span()),
                        c.get_ref()
                    )
                })?),
            };
            let auth = match &r.auth {
                None => None,
                Some(a) => {
                    let what =
                        |key: &str, s: &Spanned<RawSetting>| format!("{}: route `{path}`: auth `{key}`", at(s.span()));
                    Some(match a.get_ref() {
                        RawAuth::Basic { user, password, realm } => CallerAuth::Basic {
                            user: user.clone(),
                            password: resolve(password, || what("password", password))?,
                            realm: realm.clone().unwrap_or_else(|| "smsbridge".into()),
                        },
                        RawAuth::Digest { user, password, realm } => CallerAuth::Digest {
                            user: user.clone(),
                            password: resolve(password, || what("password", password))?,
                            realm: realm.clone().unwrap_or_else(|| "smsbridge".into()),
                        },
                        RawAuth::FormSecret { user_field, secret_field, user, secret } => CallerAuth::FormSecret {
                            user_field: user_field.clone(),
                            secret_field: secret_field.clone(),
                            user: user.clone(),
                            secret: resolve(secret, || what("secret", secret))?,
                        },
                        RawAuth::Bearer { token } => {
                            CallerAuth::Bearer { token: resolve(token, || what("token", token))? }
                        }
                    })
                }
            };
            let mut allow_networks = Vec::new();
            for net in &r.allow_networks {
                let text = net.get_ref();
                // A bare address is a network of one.
                let parsed =
                    text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                allow_networks.push(parsed.map_err(|_| {
                    anyhow::anyhow!(
                        "{}: route `{path}`: `allow_networks` entry `{text}` is not an address or CIDR network",
                        at(net.span())
                    )
                })?);
            }
            if r.methods.is_empty() {
                bail!("{}: route `{path}`: `methods` must not be empty", at(r.path.span()));
            }
            if r.deadline_ms == 0 {
                bail!("{}: route `{path}`: `deadline_ms` must be greater than 0", at(r.path.span()));
            }
            let limits_span = r.limits.as_ref().map(|l| l.span()).unwrap_or(r.path.span());
            let raw_limits = r.limits.map(Spanned::into_inner).unwrap_or_default();
            let rate = |key: &str, value: &Option<Spanned<String>>, default: &str| -> Result<Option<Rate>> {
                let (text, span) = match value {
                    Some(v) => (v.get_ref().as_str(), v.span()),
                    None => (default, limits_span.clone()),
                };
                parse_rate(text).map_err(|why| anyhow::anyhow!("{}: route `{path}`: limits `{key}` {why}", at(span)))
            };
            let country_list = |key: &str, list: &Vec<Spanned<String>>| -> Result<Vec<phonenumber::country::Id>> {
                list.iter()
                    .map(|c| {
                        c.get_ref().to_uppercase().parse().map_err(|_| {
                            anyhow::anyhow!(
                                "{}: route `{path}`: limits `{key}`: `{}` is not an ISO 3166 country code such as GB",
                                at(c.span()),
                                c.get_ref()
                            )
                        })
                    })
                    .collect()
            };
            let countries = match (&raw_limits.allow_countries, &raw_limits.deny_countries) {
                (Some(_), Some(_)) => bail!(
                    "{}: route `{path}`: limits: set `allow_countries` or `deny_countries`, not both",
                    at(limits_span.clone())
                ),
                (Some(allow), None) => Countries::Allow(country_list("allow_countries", allow)?),
                (None, Some(deny)) => Countries::Deny(country_list("deny_countries", deny)?),
                (None, None) => Countries::Any,
            };
            let limits = Limits {
                per_number: rate("per_number", &raw_limits.per_number, defaults::per_number())?,
                per_prefix: rate("per_prefix", &raw_limits.per_prefix, defaults::per_prefix())?,
                per_country: rate("per_country", &raw_limits.per_country, defaults::per_country())?,
                per_route: rate("per_route", &raw_limits.per_route, defaults::per_route())?,
                countries,
                refuse_number_types: raw_limits.refuse_number_types.unwrap_or_else(defaults::refuse_number_types),
            };
            let delivery = Delivery {
                deadline: Duration::from_millis(r.deadline_ms),
                retries: r.retries,
                backoff: Duration::from_millis(r.backoff_ms),
                failover_on_permanent: r.failover_on_permanent,
                idempotency_window: Duration::from_secs(r.idempotency_window_s),
                queued: r.queued,
                validity: Duration::from_secs(r.validity_s.max(1)),
            };
            if r.queued && raw.record.is_none() {
                bail!(
                    "{}: route `{path}`: `queued = true` keeps messages in the message record: add a [record] section",
                    at(r.path.span())
                );
            }
            routes.push(Route {
                path,
                methods: r.methods,
                fields: r
                    .fields
                    .unwrap_or(Fields { phone: defaults::phone_field(), message: defaults::message_field() }),
                providers: r.providers.into_inner().into_iter().map(Spanned::into_inner).collect(),
                default_country,
                sender: r.sender,
                auth,
                allow_networks,
                success_body: r.success_body,
                delivery,
                limits,
            });
        }

        let admin = match raw.admin {
            None => None,
            Some(a) => {
                let span = a.span();
                let a = a.into_inner();
                let token = match &a.token {
                    Some(t) => Some(resolve(t, || format!("{}: admin `token`", at(t.span())))?),
                    None => None,
                };
                if token.is_none() && !a.listen.ip().is_loopback() {
                    bail!("{}: admin listens on {}, which is not loopback: set `token`", at(span), a.listen);
                }
                Some(Admin { listen: a.listen, token })
            }
        };

        let record = match raw.record {
            None => None,
            Some(r) => Some(RecordConfig {
                path: r.path,
                retention: Duration::from_secs(r.retention_days.max(1) * 86_400),
                number_key: match &r.number_key {
                    Some(k) => Some(resolve(k, || format!("{}: record `number_key`", at(k.span())))?),
                    None => None,
                },
            }),
        };
        Ok(Config {
            source: source.into(),
            path: None,
            admin,
            log: raw.log.unwrap_or(Log { level: defaults::log_level() }),
            server: raw.server.unwrap_or(Server {
                listen: defaults::listen(),
                max_body_bytes: defaults::max_body_bytes(),
                tls: None,
                public_url: None,
                shutdown_grace_ms: defaults::shutdown_grace_ms(),
            }),
            adapters: raw.adapters,
            providers,
            routes,
            record,
        })
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path == path)
    }
}

/// A setting's value; `what` names it in the error for an unset variable.
fn resolve(value: &Spanned<RawSetting>, what: impl Fn() -> String) -> Result<Setting> {
    Ok(match value.get_ref() {
        RawSetting::Text(s) => Setting { value: s.clone(), from_env: false },
        RawSetting::Integer(n) => Setting { value: n.to_string(), from_env: false },
        RawSetting::Bool(b) => Setting { value: b.to_string(), from_env: false },
        RawSetting::Env { env } => match std::env::var(env) {
            Ok(v) => Setting { value: v, from_env: true },
            Err(_) => bail!("{} reads environment variable `{env}`, which is not set", what()),
        },
    })
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
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
        let c = Config::parse("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t\"\n", "gw.toml").unwrap();
        assert_eq!(c.admin.unwrap().token.unwrap().value, "t");
        assert_eq!(Config::parse("[admin]\n", "gw.toml").unwrap().admin.unwrap().listen.to_string(), "127.0.0.1:8081");
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
}

/// `5/10m`: at most 5 per 10 minutes; `off`: no limit.
fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let shape = || format!("`{text}` is not a rate: write COUNT/WINDOW such as 5/10m, or off");
    let (count, window) = text.split_once('/').ok_or_else(shape)?;
    let limit: u32 = count.trim().parse().map_err(|_| shape())?;
    let window = humantime::parse_duration(window.trim()).map_err(|_| shape())?;
    if limit == 0 || window.is_zero() {
        return Err(format!("`{text}`: count and window must be greater than 0 (use off for no limit)"));
    }
    Ok(Some(Rate { limit, window }))
}
