//! `[server]`, `[admin]`, `[log]` and `[adapters]`: where smsbridge listens
//! and how, and where it finds its adapters.

use super::*;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default = "defaults::admin_listen")]
    pub(super) listen: SocketAddr,
    pub(super) token: Option<Spanned<RawSetting>>,
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    pub(super) tls: Option<RawAdminTls>,
}

/// `[admin.tls]`: `[server.tls]` without `listen`, which is the admin's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdminTls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    self_signed: Option<super::SelfSigned>,
}

impl Admin {
    pub(super) fn from_raw(raw: Spanned<RawAdmin>, src: Source) -> Result<Admin> {
        let span = raw.span();
        let a = raw.into_inner();
        let token = match &a.token {
            Some(t) => Some(secret(t, || src.place(t.span(), "admin.token", "admin `token`"))?),
            None => None,
        };
        if token.is_none() && !a.listen.ip().is_loopback() {
            let why = format!("admin listens on {}, which is not loopback: set `token`", a.listen);
            bail!(src.refuse(span, "admin.listen", why));
        }
        let tls = a.tls.map(|t| super::Tls { listen: a.listen, cert: t.cert, key: t.key, self_signed: t.self_signed });
        Ok(Admin { listen: a.listen, token, hosts: a.hosts, tls })
    }
}

impl Server {
    /// Checks `[server]`'s limits.
    pub(super) fn check(&self, src: Source, span: std::ops::Range<usize>) -> Result<()> {
        let what = || src.place(span.clone(), "server", "[server]");
        duration_ms("shutdown_grace_ms", self.shutdown_grace_ms, what)?;
        duration_ms("header_read_timeout_ms", self.header_read_timeout_ms, what)?;
        duration_ms("idle_timeout_ms", self.idle_timeout_ms, what)?;
        duration_ms("body_read_timeout_ms", self.body_read_timeout_ms, what)?;
        duration_ms("max_connection_age_ms", self.max_connection_age_ms, what)?;
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            let why = format!("`max_connections` must be between 1 and 1000000, not {}", self.max_connections);
            bail!(what().refuse("max_connections", why));
        }
        Ok(())
    }
}
