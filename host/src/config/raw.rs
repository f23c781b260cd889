//! The config file as written (spans kept, so every error can name its
//! line), and the converters that turn each section into its typed,
//! checked form: one concept each, one place where settings are resolved.

use super::*;
use std::ops::RangeInclusive;
use toml::Spanned;

/// The text being parsed and its name, for error locations.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub name: &'a str,
}

impl Source<'_> {
    /// `file:line` of the start of `span`.
    pub fn at(&self, span: std::ops::Range<usize>) -> String {
        format!("{}:{}", self.name, line_of(self.text, span.start))
    }
}

/// 1-based line number of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<Spanned<Server>>,
    pub(super) admin: Option<Spanned<RawAdmin>>,
    pub(super) log: Option<Log>,
    #[serde(default)]
    pub(super) adapters: Adapters,
    #[serde(default, rename = "provider")]
    pub(super) providers: Vec<Spanned<RawProvider>>,
    #[serde(default, rename = "route")]
    pub(super) routes: Vec<Spanned<RawRoute>>,
    pub(super) record: Option<RawRecord>,
    pub(super) state: Option<Spanned<RawState>>,
    pub(super) auth: Option<RawAuthKeys>,
}

/// `[state]`: the PostgreSQL database that instances share.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Spanned<RawSetting>,
    #[serde(default)]
    pub(super) on_failure: Option<Spanned<String>>,
    pub(super) ca: Option<PathBuf>,
    #[serde(default = "defaults::state_pool")]
    pub(super) pool: usize,
    #[serde(default = "defaults::state_timeout_ms")]
    pub(super) timeout_ms: u64,
    #[serde(default = "defaults::lease_ms")]
    pub(super) lease_ms: u64,
}

/// `[auth]`: keys of caller authentication that outlive one request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthKeys {
    pub(super) digest_key: Option<Spanned<RawSetting>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    pub(super) path: Option<PathBuf>,
    #[serde(default = "defaults::retention_days")]
    pub(super) retention_days: u64,
    pub(super) number_key: Option<Spanned<RawSetting>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) name: Spanned<String>,
    pub(super) adapter: String,
    pub(super) allow_hosts: Option<Vec<String>>,
    #[serde(default = "defaults::timeout_ms")]
    pub(super) timeout_ms: u64,
    #[serde(default = "defaults::cpu_ms")]
    pub(super) cpu_ms: u64,
    #[serde(default = "defaults::memory_mb")]
    pub(super) memory_mb: usize,
    #[serde(default = "defaults::max_response_bytes")]
    pub(super) max_response_bytes: usize,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) sender: Option<String>,
    #[serde(default)]
    pub(super) config: BTreeMap<String, Spanned<RawSetting>>,
    #[serde(default = "defaults::circuit_failures")]
    pub(super) circuit_failures: u32,
    #[serde(default = "defaults::circuit_cooldown_ms")]
    pub(super) circuit_cooldown_ms: u64,
    /// Signed, so that a negative value is refused naming the key.
    #[serde(default = "defaults::max_in_flight")]
    pub(super) max_in_flight: i64,
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

/// The longest JWT lifetime (`exp - iat`) accepted unless a route says.
const JWT_MAX_LIFETIME_S: u64 = 600;

/// `[admin.tls]`: `[server.tls]` without `listen`, which is the admin's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdminTls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    self_signed: Option<super::SelfSigned>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSetting {
    Text(String),
    Integer(i64),
    Bool(bool),
    Env { env: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: Spanned<String>,
    #[serde(default = "defaults::methods")]
    pub(super) methods: Vec<Method>,
    pub(super) fields: Option<Fields>,
    pub(super) providers: Spanned<Vec<Spanned<String>>>,
    pub(super) default_country: Option<Spanned<String>>,
    pub(super) sender: Option<String>,
    pub(super) auth: Option<Spanned<RawAuth>>,
    #[serde(default)]
    pub(super) allow_networks: Vec<Spanned<String>>,
    pub(super) success_body: Option<String>,
    pub(super) template: Option<String>,
    pub(super) answer: Option<Answer>,
    /// A product whose request and answer shapes the route takes.
    pub(super) caller: Option<Spanned<String>>,
    /// Digits without `+` are an international number (Supabase drops the `+`).
    pub(super) international_numbers: Option<bool>,
    pub(super) deadline_ms: Option<u64>,
    #[serde(default = "defaults::retries")]
    pub(super) retries: u32,
    #[serde(default = "defaults::backoff_ms")]
    pub(super) backoff_ms: u64,
    #[serde(default)]
    pub(super) failover_on_permanent: bool,
    #[serde(default)]
    pub(super) failover_on_unknown: bool,
    #[serde(default)]
    pub(super) on_unknown: OnUnknown,
    pub(super) idempotency_window_s: Option<u64>,
    pub(super) limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub(super) queued: bool,
    #[serde(default = "defaults::validity_s")]
    pub(super) validity_s: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) per_number: Option<Spanned<String>>,
    pub(super) per_prefix: Option<Spanned<String>>,
    pub(super) per_country: Option<Spanned<String>>,
    pub(super) per_route: Option<Spanned<String>>,
    pub(super) allow_countries: Option<Vec<Spanned<String>>>,
    pub(super) deny_countries: Option<Vec<Spanned<String>>>,
    pub(super) refuse_number_types: Option<Vec<phonenumber::Type>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawAuth {
    Basic {
        user: String,
        password: Spanned<RawSetting>,
        realm: Option<String>,
    },
    Digest {
        user: String,
        password: Spanned<RawSetting>,
        realm: Option<String>,
    },
    FormSecret {
        user_field: String,
        secret_field: String,
        user: String,
        secret: Spanned<RawSetting>,
    },
    Bearer {
        token: Spanned<RawSetting>,
    },
    Header {
        name: String,
        value: Spanned<RawSetting>,
    },
    Webhook {
        secret: Spanned<RawSetting>,
        tolerance_s: Option<u64>,
    },
    Jwt {
        secret: Spanned<RawSetting>,
        secret_base64: Option<bool>,
        audience: String,
        subject: Option<String>,
        issuer: Option<String>,
        max_lifetime_s: Option<u64>,
    },
}

/// The longest duration any setting may name: an OTP is long useless by
/// then, and a larger one could overflow the clock's arithmetic.
const MAX_DURATION_MS: u64 = 30 * 86_400_000;

/// Checks that `key` (in milliseconds) is greater than 0 and at most
/// [`MAX_DURATION_MS`]; `what` names where it is.
pub(super) fn duration_ms(key: &str, ms: u64, what: impl Fn() -> String) -> Result<Duration> {
    if ms == 0 || ms > MAX_DURATION_MS {
        bail!("{}: `{key}` must be between 1 and {MAX_DURATION_MS} (30 days), not {ms}", what());
    }
    Ok(Duration::from_millis(ms))
}

/// Checks that `key` is within `range`, counted in `unit`; `what` names
/// where it is. Nothing is raised, lowered or wrapped in silence.
pub(super) fn within<T>(
    key: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
    what: impl Fn() -> String,
) -> Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if !range.contains(&value) {
        bail!("{}: `{key}` must be between {} and {} {unit}, not {value}", what(), range.start(), range.end());
    }
    Ok(value)
}

/// A duration set in seconds, bounded as [`duration_ms`] is and refused in
/// its own unit.
pub(super) fn duration_s(key: &str, s: u64, what: impl Fn() -> String) -> Result<Duration> {
    let max = MAX_DURATION_MS / 1000;
    Ok(Duration::from_secs(within(key, s, 1..=max, "seconds (30 days)", what)?))
}

/// Whether `name` may name a provider: it is written into logs, metrics
/// labels and the queue's records, so nothing there can be confused by it.
fn safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The fewest characters a secret of smsbridge's own may have: caller
/// passwords, form secrets and bearer tokens, the admin token, and keys.
pub const MIN_SECRET_CHARS: usize = 12;

/// A secret of smsbridge's own, resolved and long enough; `what` names it.
pub(super) fn secret(value: &Spanned<RawSetting>, what: impl Fn() -> String) -> Result<Setting> {
    let setting = resolve(value, &what)?;
    let chars = setting.value.chars().count();
    if chars == 0 {
        bail!("{} is empty", what());
    }
    if chars < MIN_SECRET_CHARS {
        bail!("{} is {chars} characters long; a secret needs at least {MIN_SECRET_CHARS}", what());
    }
    Ok(setting)
}

/// A setting's value, from the file or the environment; `what` names it in
/// the error for an unset variable. The one place settings are resolved.
pub(super) fn resolve(value: &Spanned<RawSetting>, what: impl Fn() -> String) -> Result<Setting> {
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

impl Provider {
    /// Checks one `[[provider]]`; `defined` are the ones before it.
    pub(super) fn from_raw(raw: Spanned<RawProvider>, defined: &[Provider], src: Source) -> Result<Provider> {
        let span = raw.span();
        let p = raw.into_inner();
        let name = p.name.get_ref().to_string();
        if !safe_name(&name) {
            bail!(
                "{}: provider `name` must be 1 to 64 letters, digits, `-`, `_` or `.`, not {name:?}",
                src.at(p.name.span())
            );
        }
        if defined.iter().any(|q| q.name == name) {
            bail!("{}: provider `{name}` is defined twice", src.at(p.name.span()));
        }
        if !(1..=i64::from(MAX_IN_FLIGHT)).contains(&p.max_in_flight) {
            bail!(
                "{}: provider `{name}`: `max_in_flight` must be 1 to {MAX_IN_FLIGHT} (rate × provider latency; got {})",
                src.at(span.clone()),
                p.max_in_flight
            );
        }
        let what = || format!("{}: provider `{name}`", src.at(span.clone()));
        let timeout = duration_ms("timeout_ms", p.timeout_ms, what)?;
        let cpu = duration_ms("cpu_ms", p.cpu_ms, what)?;
        let circuit_cooldown = duration_ms("circuit_cooldown_ms", p.circuit_cooldown_ms, what)?;
        let most = MAX_MEMORY_BYTES >> 20;
        let memory_mb = within("memory_mb", p.memory_mb, 1..=most, "MiB", what)?;
        let max_response_bytes = within("max_response_bytes", p.max_response_bytes, 1..=16 << 20, "bytes", what)?;
        let circuit_failures = within("circuit_failures", p.circuit_failures, 1..=10_000, "failures", what)?;
        let mut settings = BTreeMap::new();
        for (key, value) in &p.config {
            let what = || format!("{}: provider `{name}`: `config.{key}`", src.at(value.span()));
            settings.insert(key.clone(), resolve(value, what)?);
        }
        Ok(Provider {
            name,
            adapter: p.adapter,
            sandbox: SandboxLimits {
                allow_hosts: p.allow_hosts,
                timeout,
                cpu,
                memory_bytes: memory_mb << 20,
                max_response_bytes,
                data_dir: p.data_dir,
            },
            sender: p.sender,
            settings,
            circuit_failures,
            circuit_cooldown,
            max_in_flight: p.max_in_flight as u32,
        })
    }
}

impl Route {
    /// Checks one `[[route]]` against the providers and the routes before it.
    pub(super) fn from_raw(
        mut r: RawRoute,
        providers: &[Provider],
        defined: &[Route],
        has_record: bool,
        src: Source,
    ) -> Result<Route> {
        if let Some(caller) = r.caller.take() {
            preset(&mut r, caller.get_ref()).map_err(|e| anyhow!("{}: route: {e}", src.at(caller.span())))?;
        }
        let deadline_ms = r.deadline_ms.unwrap_or_else(defaults::deadline_ms);
        let idempotency_window_s = r.idempotency_window_s.unwrap_or_else(defaults::idempotency_window_s);
        let path = r.path.get_ref().clone();
        let at_path = || src.at(r.path.span());
        if !path.starts_with('/') {
            bail!("{}: route path `{path}` must start with `/`", at_path());
        }
        if defined.iter().any(|q| q.path == path) {
            bail!("{}: route `{path}` is defined twice", at_path());
        }
        if r.providers.get_ref().is_empty() {
            bail!("{}: route `{path}`: `providers` must name at least one provider", src.at(r.providers.span()));
        }
        for name in r.providers.get_ref() {
            if !providers.iter().any(|p| &p.name == name.get_ref()) {
                bail!("{}: route `{path}`: provider `{}` is not defined", src.at(name.span()), name.get_ref());
            }
        }
        let default_country = match &r.default_country {
            None => None,
            Some(c) => Some(c.get_ref().to_uppercase().parse::<phonenumber::country::Id>().map_err(|_| {
                anyhow!(
                    "{}: route `{path}`: `default_country` `{}` is not an ISO 3166 country code such as GB or US",
                    src.at(c.span()),
                    c.get_ref()
                )
            })?),
        };
        let auth = match &r.auth {
            None => None,
            Some(a) => Some(CallerAuth::from_raw(a.get_ref(), &path, src)?),
        };
        let mut allow_networks = Vec::new();
        for net in &r.allow_networks {
            let text = net.get_ref();
            // A bare address is a network of one.
            let parsed =
                text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            allow_networks.push(parsed.map_err(|_| {
                anyhow!(
                    "{}: route `{path}`: `allow_networks` entry `{text}` is not an address or CIDR network",
                    src.at(net.span())
                )
            })?);
        }
        if r.methods.is_empty() {
            bail!("{}: route `{path}`: `methods` must not be empty", at_path());
        }
        let what = || format!("{}: route `{path}`", at_path());
        let deadline = duration_ms("deadline_ms", deadline_ms, what)?;
        let backoff = duration_ms("backoff_ms", r.backoff_ms, what)?;
        // 0 keeps no answers: every request is a new send.
        let idempotency_window = Duration::from_secs(within(
            "idempotency_window_s",
            idempotency_window_s,
            0..=MAX_DURATION_MS / 1000,
            "seconds (30 days)",
            what,
        )?);
        let validity = duration_s("validity_s", r.validity_s, what)?;
        let retries = within("retries", r.retries, 0..=100, "retries", what)?;
        let limits_span = r.limits.as_ref().map(|l| l.span()).unwrap_or(r.path.span());
        let limits = Limits::from_raw(r.limits.map(Spanned::into_inner).unwrap_or_default(), &path, limits_span, src)?;
        if let Some(CallerAuth::Webhook { tolerance, .. }) = &auth
            && idempotency_window_s < tolerance.as_secs()
        {
            bail!(
                "{}: route `{path}`: `idempotency_window_s` ({idempotency_window_s}) must be at least the webhook \
                 `tolerance_s` ({}): a replayed webhook-id is caught by the repeats",
                at_path(),
                tolerance.as_secs()
            );
        }
        let fields = r.fields.unwrap_or_default();
        match (&fields.code, &r.template) {
            (Some(_), None) => bail!(
                "{}: route `{path}`: `fields.code` needs a `template` for the text, such as \"Your code is {{code}}\"",
                at_path()
            ),
            (_, Some(t)) if !t.contains("{code}") => {
                bail!("{}: route `{path}`: `template` must contain {{code}}", at_path())
            }
            (None, Some(_)) => {
                bail!("{}: route `{path}`: `template` needs `fields.code`, the field the code is in", at_path())
            }
            _ => {}
        }
        if r.queued && !has_record {
            bail!(
                "{}: route `{path}`: `queued = true` keeps messages in the message record: add a [record] section",
                at_path()
            );
        }
        Ok(Route {
            methods: r.methods,
            fields,
            template: r.template,
            answer: r.answer.unwrap_or_default(),
            international_numbers: r.international_numbers.unwrap_or(false),
            providers: r.providers.into_inner().into_iter().map(Spanned::into_inner).collect(),
            default_country,
            sender: r.sender,
            auth,
            allow_networks,
            success_body: r.success_body,
            delivery: Delivery {
                deadline,
                retries,
                backoff: if r.backoff_ms == 0 { Duration::ZERO } else { backoff },
                failover_on_permanent: r.failover_on_permanent,
                failover_on_unknown: r.failover_on_unknown,
                on_unknown: r.on_unknown,
                // Zero turns repeated-request answers off.
                idempotency_window: if idempotency_window_s == 0 { Duration::ZERO } else { idempotency_window },
                queued: r.queued,
                validity,
            },
            limits,
            path,
        })
    }
}

impl Limits {
    /// Checks a route's `limits`; `span` locates it (or the route) in errors.
    pub(super) fn from_raw(raw: RawLimits, path: &str, span: std::ops::Range<usize>, src: Source) -> Result<Limits> {
        let rate = |key: &str, value: &Option<Spanned<String>>, default: &str| -> Result<Option<Rate>> {
            let (text, span) = match value {
                Some(v) => (v.get_ref().as_str(), v.span()),
                None => (default, span.clone()),
            };
            parse_rate(text).map_err(|why| anyhow!("{}: route `{path}`: limits `{key}` {why}", src.at(span)))
        };
        let country_list = |key: &str, list: &Vec<Spanned<String>>| -> Result<Vec<phonenumber::country::Id>> {
            list.iter()
                .map(|c| {
                    c.get_ref().to_uppercase().parse().map_err(|_| {
                        anyhow!(
                            "{}: route `{path}`: limits `{key}`: `{}` is not an ISO 3166 country code such as GB",
                            src.at(c.span()),
                            c.get_ref()
                        )
                    })
                })
                .collect()
        };
        let countries = match (&raw.allow_countries, &raw.deny_countries) {
            (Some(_), Some(_)) => bail!(
                "{}: route `{path}`: limits: set `allow_countries` or `deny_countries`, not both",
                src.at(span.clone())
            ),
            (Some(allow), None) => Countries::Allow(country_list("allow_countries", allow)?),
            (None, Some(deny)) => Countries::Deny(country_list("deny_countries", deny)?),
            (None, None) => Countries::Any,
        };
        Ok(Limits {
            per_number: rate("per_number", &raw.per_number, defaults::per_number())?,
            per_prefix: rate("per_prefix", &raw.per_prefix, defaults::per_prefix())?,
            per_country: rate("per_country", &raw.per_country, defaults::per_country())?,
            per_route: rate("per_route", &raw.per_route, defaults::per_route())?,
            countries,
            refuse_number_types: raw.refuse_number_types.unwrap_or_else(defaults::refuse_number_types),
        })
    }
}

impl CallerAuth {
    /// Resolves a route's `auth` and its secret.
    pub(super) fn from_raw(raw: &RawAuth, path: &str, src: Source) -> Result<CallerAuth> {
        let secret = |key: &str, s: &Spanned<RawSetting>| {
            secret(s, || format!("{}: route `{path}`: auth `{key}`", src.at(s.span())))
        };
        let realm = |r: &Option<String>| r.clone().unwrap_or_else(|| "smsbridge".into());
        Ok(match raw {
            RawAuth::Basic { user, password, realm: r } => {
                CallerAuth::Basic { user: user.clone(), password: secret("password", password)?, realm: realm(r) }
            }
            RawAuth::Digest { user, password, realm: r } => {
                CallerAuth::Digest { user: user.clone(), password: secret("password", password)?, realm: realm(r) }
            }
            RawAuth::FormSecret { user_field, secret_field, user, secret: s } => CallerAuth::FormSecret {
                user_field: user_field.clone(),
                secret_field: secret_field.clone(),
                user: user.clone(),
                secret: secret("secret", s)?,
            },
            RawAuth::Bearer { token } => CallerAuth::Bearer { token: secret("token", token)? },
            RawAuth::Header { name, value } => {
                let Ok(name) = axum::http::HeaderName::from_bytes(name.as_bytes()) else {
                    bail!("{}: route `{path}`: auth header `name` {name:?} is not a header name", src.at(value.span()));
                };
                CallerAuth::Header { name: name.as_str().to_string(), value: secret("value", value)? }
            }
            RawAuth::Jwt { secret: s, secret_base64, audience, subject, issuer, max_lifetime_s } => {
                let setting = secret("secret", s)?;
                let base64 = secret_base64.unwrap_or(false);
                if base64 && jwt_key(&setting.value, true).is_none() {
                    bail!("{}: route `{path}`: auth `secret` is not base64 (`secret_base64 = true`)", src.at(s.span()));
                }
                if audience.trim().is_empty() {
                    bail!("{}: route `{path}`: auth `audience` is empty", src.at(s.span()));
                }
                let lifetime = max_lifetime_s.unwrap_or(JWT_MAX_LIFETIME_S);
                if lifetime == 0 || lifetime > 86_400 {
                    bail!(
                        "{}: route `{path}`: auth `max_lifetime_s` must be between 1 and 86400 seconds, not {lifetime}",
                        src.at(s.span())
                    );
                }
                CallerAuth::Jwt {
                    secret: setting,
                    base64,
                    audience: audience.clone(),
                    subject: subject.clone(),
                    issuer: issuer.clone(),
                    max_lifetime: Duration::from_secs(lifetime),
                }
            }
            RawAuth::Webhook { secret: s, tolerance_s } => {
                let setting = secret("secret", s)?;
                let at = || format!("{}: route `{path}`: auth `secret`", src.at(s.span()));
                let Some(key) = webhook_key(&setting.value) else {
                    bail!("{}: write it as v1,whsec_<base64>, as the caller shows it", at());
                };
                if key.len() < 16 {
                    bail!("{}: the key is {} bytes; a webhook secret needs at least 16", at(), key.len());
                }
                let tolerance = tolerance_s.unwrap_or(300);
                if !(1..=3600).contains(&tolerance) {
                    bail!(
                        "{}: route `{path}`: auth `tolerance_s` must be 1 to 3600 (got {tolerance})",
                        src.at(s.span())
                    );
                }
                CallerAuth::Webhook { secret: setting, tolerance: Duration::from_secs(tolerance) }
            }
        })
    }
}

impl Admin {
    pub(super) fn from_raw(raw: Spanned<RawAdmin>, src: Source) -> Result<Admin> {
        let span = raw.span();
        let a = raw.into_inner();
        let token = match &a.token {
            Some(t) => Some(secret(t, || format!("{}: admin `token`", src.at(t.span())))?),
            None => None,
        };
        if token.is_none() && !a.listen.ip().is_loopback() {
            bail!("{}: admin listens on {}, which is not loopback: set `token`", src.at(span), a.listen);
        }
        let tls = a.tls.map(|t| super::Tls { listen: a.listen, cert: t.cert, key: t.key, self_signed: t.self_signed });
        Ok(Admin { listen: a.listen, token, hosts: a.hosts, tls })
    }
}

impl Server {
    /// Checks `[server]`'s limits.
    pub(super) fn check(&self, src: Source, span: std::ops::Range<usize>) -> Result<()> {
        let what = || format!("{}: [server]", src.at(span.clone()));
        duration_ms("shutdown_grace_ms", self.shutdown_grace_ms, what)?;
        duration_ms("header_read_timeout_ms", self.header_read_timeout_ms, what)?;
        duration_ms("idle_timeout_ms", self.idle_timeout_ms, what)?;
        duration_ms("body_read_timeout_ms", self.body_read_timeout_ms, what)?;
        duration_ms("max_connection_age_ms", self.max_connection_age_ms, what)?;
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            bail!("{}: `max_connections` must be between 1 and 1000000, not {}", what(), self.max_connections);
        }
        Ok(())
    }
}

/// `[auth] digest_key`, checked as a secret.
pub(super) fn digest_key(raw: Option<&RawAuthKeys>, src: Source) -> Result<Option<Setting>> {
    match raw.and_then(|a| a.digest_key.as_ref()) {
        None => Ok(None),
        Some(k) => Ok(Some(secret(k, || format!("{}: auth `digest_key`", src.at(k.span())))?)),
    }
}

impl RecordConfig {
    /// `[record]`; with `[state]`, the record is in the shared database and
    /// `[record]` only tunes it.
    pub(super) fn from_raw(r: Option<RawRecord>, shared: bool, src: Source) -> Result<Option<RecordConfig>> {
        let r = match r {
            Some(r) => r,
            None if shared => RawRecord { path: None, retention_days: defaults::retention_days(), number_key: None },
            None => return Ok(None),
        };
        let number_key = match &r.number_key {
            Some(k) => Some(secret(k, || format!("{}: record `number_key`", src.at(k.span())))?),
            None => None,
        };
        match (&r.path, shared) {
            (Some(_), true) => bail!(
                "{}: [record] `path` is the embedded record; with [state] the record is in PostgreSQL: remove `path`",
                src.name
            ),
            (None, false) => bail!("{}: [record] needs `path`, the SQLite file of the message record", src.name),
            (None, true) if number_key.is_none() => bail!(
                "{}: with [state], set [record] `number_key` (the same on every instance): the record finds \
                 messages by a keyed hash of the number, and every instance must compute the same one",
                src.name
            ),
            _ => {}
        }
        Ok(Some(RecordConfig {
            path: r.path,
            retention: Duration::from_secs(
                within("retention_days", r.retention_days, 1..=36_500, "days", || format!("{}: [record]", src.name))?
                    * 86_400,
            ),
            number_key,
        }))
    }
}

impl StateConfig {
    pub(super) fn from_raw(raw: Spanned<RawState>, src: Source) -> Result<StateConfig> {
        let at = src.at(raw.span());
        let s = raw.into_inner();
        let url = resolve(&s.url, || format!("{}: state `url`", src.at(s.url.span())))?;
        if !(url.value.starts_with("postgres://") || url.value.starts_with("postgresql://")) {
            // Never the URL itself: it may hold a password.
            bail!("{}: state `url` must start with postgres:// (or postgresql://)", src.at(s.url.span()));
        }
        if let Err(e) = url.value.parse::<tokio_postgres::Config>() {
            bail!("{}: state `url` is not a PostgreSQL URL: {e}", src.at(s.url.span()));
        }
        let on_failure = match s.on_failure.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("closed", _)) => OnStateFailure::Closed,
            Some(("open", _)) => OnStateFailure::Open,
            Some((other, span)) => {
                bail!("{}: state `on_failure` must be \"closed\" or \"open\" (got \"{other}\")", src.at(span))
            }
        };
        if !(1..=1000).contains(&s.pool) {
            bail!("{at}: state `pool` must be 1 to 1000 (got {})", s.pool);
        }
        if !(100..=60_000).contains(&s.timeout_ms) {
            bail!("{at}: state `timeout_ms` must be 100 to 60000 (got {})", s.timeout_ms);
        }
        if !(1_000..=600_000).contains(&s.lease_ms) {
            bail!("{at}: state `lease_ms` must be 1000 to 600000 (got {})", s.lease_ms);
        }
        Ok(StateConfig {
            url,
            on_failure,
            ca: s.ca,
            pool: s.pool,
            timeout: Duration::from_millis(s.timeout_ms),
            lease: Duration::from_millis(s.lease_ms),
        })
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

/// The request and answer shapes of a product that calls smsbridge, filled
/// in where the route leaves them out: every one can be overridden.
fn preset(r: &mut RawRoute, caller: &str) -> Result<(), String> {
    let fields = |phone: &str, message: &str, code: &str| Fields {
        phone: phone.into(),
        message: message.into(),
        code: Some(code.into()),
    };
    match caller {
        "okta" => {
            r.fields.get_or_insert_with(|| {
                fields(
                    "data.messageProfile.phoneNumber",
                    "data.messageProfile.msgTemplate",
                    "data.messageProfile.otpCode",
                )
            });
            r.template.get_or_insert_with(|| "Your verification code is {code}".into());
            r.answer.get_or_insert(Answer::Okta);
            // Okta falls back to its own providers after 3 s.
            r.deadline_ms.get_or_insert(2500);
        }
        "supabase" => {
            r.fields.get_or_insert_with(|| fields("user.phone", "sms.message", "sms.otp"));
            r.template.get_or_insert_with(|| "Your code is {code}".into());
            r.answer.get_or_insert(Answer::Supabase);
            r.international_numbers.get_or_insert(true);
            // Supabase gives up after 5 s.
            r.deadline_ms.get_or_insert(4000);
            // A replayed webhook-id is refused for as long as a signature is valid.
            r.idempotency_window_s.get_or_insert(300);
        }
        "auth0" => {
            r.fields.get_or_insert_with(|| Fields { phone: "recipient".into(), message: "body".into(), code: None });
        }
        "authentik" => {
            // `Body` is the code alone, `Message` the whole text.
            r.fields.get_or_insert_with(|| fields("To", "Message", "Body"));
            r.template.get_or_insert_with(|| "Your code is {code}".into());
        }
        other => {
            return Err(format!("`caller` `{other}` is not a known product (okta, supabase, auth0, authentik)"));
        }
    }
    Ok(())
}
