//! `[[provider]]`: an instance of an adapter, its settings, the hosts it may
//! reach, and its sandbox's limits.

use super::*;
use crate::egress::{Allowlist, Scheme};

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
    /// The binds to an SMSC, for an adapter that speaks SMPP.
    pub smpp: Option<SmppBinds>,
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
    pub(super) smpp: Option<RawSmpp>,
}

impl Provider {
    /// Checks one `[[provider]]`; `defined` are the ones before it.
    pub(super) fn from_raw(raw: Spanned<RawProvider>, defined: &[Provider], src: Source) -> Result<Provider> {
        let span = raw.span();
        let p = raw.into_inner();
        let name = p.name.get_ref().to_string();
        if !safe_name(&name) {
            bail!(src.refuse(
                p.name.span(),
                "provider.name",
                format!("provider `name` must be 1 to 64 letters, digits, `-`, `_` or `.`, not {name:?}")
            ));
        }
        if defined.iter().any(|q| q.name == name) {
            bail!(src.refuse(p.name.span(), "provider.name", format!("provider `{name}` is defined twice")));
        }
        if !(1..=i64::from(MAX_IN_FLIGHT)).contains(&p.max_in_flight) {
            let got = p.max_in_flight;
            bail!(src.refuse(
                span.clone(),
                "provider.max_in_flight",
                format!(
                    "provider `{name}`: `max_in_flight` must be 1 to {MAX_IN_FLIGHT} (rate × provider latency; got {got})"
                )
            ));
        }
        let what = || src.place(span.clone(), "provider", format!("provider `{name}`"));
        let timeout = duration_ms("timeout_ms", p.timeout_ms, what)?;
        let cpu = duration_ms("cpu_ms", p.cpu_ms, what)?;
        let circuit_cooldown = duration_ms("circuit_cooldown_ms", p.circuit_cooldown_ms, what)?;
        let most = MAX_MEMORY_BYTES >> 20;
        let memory_mb = within("memory_mb", p.memory_mb, 1..=most, "MiB", what)?;
        let max_response_bytes = within("max_response_bytes", p.max_response_bytes, 1..=16 << 20, "bytes", what)?;
        let circuit_failures = within("circuit_failures", p.circuit_failures, 1..=10_000, "failures", what)?;
        let smpp = p.smpp.map(|raw| SmppBinds::from_raw(raw, what)).transpose()?;
        let mut allow_hosts = p.allow_hosts;
        if let Some(binds) = &smpp {
            // The operator named the SMSC: it is allowed unless an
            // allowlist says otherwise, which must then name it.
            let url = url::Url::parse(&binds.url)?;
            let (host, port) = (url.host_str().unwrap_or_default(), url.port().unwrap_or_default());
            let rule = format!("{}://{host}:{port}", url.scheme());
            match &allow_hosts {
                None => allow_hosts = Some(vec![rule]),
                Some(hosts) => {
                    let scheme = if url.scheme() == "smpps" { Scheme::Smpps } else { Scheme::Smpp };
                    if !Allowlist::parse(hosts).is_ok_and(|a| a.permits_stream(scheme, host, port)) {
                        bail!(
                            what().refuse("allow_hosts", format!("`allow_hosts` does not allow `smpp.url` ({rule})"))
                        );
                    }
                }
            }
        }
        let mut settings = BTreeMap::new();
        for (key, value) in &p.config {
            let what = || {
                src.place(value.span(), &format!("provider.config.{key}"), format!("provider `{name}`: `config.{key}`"))
            };
            settings.insert(key.clone(), resolve(value, what)?);
        }
        Ok(Provider {
            name,
            adapter: p.adapter,
            sandbox: SandboxLimits {
                allow_hosts,
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
            smpp,
        })
    }
}
