//! A provider instance as its sends see it: its settings, the values never
//! to show, its egress gate and its sandbox limits.

use crate::config::{MAX_MEMORY_BYTES, SandboxLimits, Setting};
use crate::egress::{Allowlist, Interceptor};
use crate::outbound::{Outbound, Responder};
use crate::outcome::AdapterInfo;
use crate::outcome::Failure;
use crate::phone;
use crate::smpp::Session;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Budgets for `info()`, which must answer at once.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);
const INFO_CPU: Duration = Duration::from_millis(500);

/// What one provider instance's sandbox is made of.
pub struct SandboxSpec {
    /// The provider instance's name, for logs.
    pub name: String,
    pub settings: BTreeMap<String, Setting>,
    pub limits: SandboxLimits,
    /// Sees each admitted exchange before it leaves.
    pub interceptor: Option<Arc<dyn Interceptor>>,
    /// Answers HTTP requests in place of the network (fixtures, benches).
    pub responder: Option<Arc<dyn Responder>>,
    /// The binds to this instance's SMSC, when it speaks SMPP.
    pub smpp: Option<Arc<Session>>,
}

/// Everything one provider instance's sends need: its settings, its egress
/// policy and its limits.
pub struct ProviderContext {
    pub name: String,
    pub(super) settings: BTreeMap<String, String>,
    /// Values never to show: from the environment or declared secret.
    secrets: Vec<String>,
    pub(super) outbound: Outbound,
    pub(super) limits: SandboxLimits,
    pub(super) smpp: Option<Arc<Session>>,
    /// Sees each SMPP submit before it leaves, as `outbound` does requests.
    pub(super) interceptor: Option<Arc<dyn Interceptor>>,
}

impl ProviderContext {
    /// Binds `provider` to its adapter's `info` (secret keys, default hosts).
    pub fn new(provider: SandboxSpec, info: &AdapterInfo) -> Result<ProviderContext> {
        let limits = provider.limits;
        let hosts = limits.allow_hosts.clone().unwrap_or_else(|| info.default_hosts.clone());
        let allowlist = Allowlist::parse(&hosts).with_context(|| format!("provider `{}`", provider.name))?;
        if limits.memory_bytes > MAX_MEMORY_BYTES {
            bail!("provider `{}`: `memory_mb` may be at most {}", provider.name, MAX_MEMORY_BYTES >> 20);
        }
        let secret_keys: Vec<&str> = info.config_keys.iter().filter(|k| k.secret).map(|k| k.name.as_str()).collect();
        let secrets = provider
            .settings
            .iter()
            .filter(|(k, s)| s.from_env || secret_keys.contains(&k.as_str()))
            .map(|(_, s)| s.value.clone())
            .filter(|v| v.len() >= 4)
            .collect();
        if let Some(dir) = &limits.data_dir {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("provider `{}`: cannot create data_dir {}", provider.name, dir.display()))?;
            // The messages the adapter writes there go where the folder is.
            crate::trust::own_folder(dir, "data_dir").with_context(|| format!("provider `{}`", provider.name))?;
        }
        Ok(ProviderContext {
            name: provider.name.clone(),
            settings: provider.settings.iter().map(|(k, s)| (k.clone(), s.value.clone())).collect(),
            secrets,
            outbound: Outbound::new(
                allowlist,
                limits.max_response_bytes,
                provider.interceptor.clone(),
                provider.responder,
            ),
            limits,
            smpp: provider.smpp,
            interceptor: provider.interceptor,
        })
    }

    /// A context with no settings and no egress, for `info()`.
    pub(super) fn inspection() -> ProviderContext {
        ProviderContext {
            name: "<inspect>".into(),
            settings: BTreeMap::new(),
            secrets: Vec::new(),
            outbound: Outbound::new(Allowlist::default(), 0, None, None),
            limits: SandboxLimits {
                allow_hosts: Some(Vec::new()),
                timeout: INFO_TIMEOUT,
                cpu: INFO_CPU,
                memory_bytes: 64 << 20,
                max_response_bytes: 0,
                data_dir: None,
            },
            smpp: None,
            interceptor: None,
        }
    }

    /// `text` with this instance's secrets replaced and numbers masked: for
    /// anything an adapter says that reaches a log or a caller.
    pub fn scrub(&self, text: &str) -> String {
        phone::mask_in(&self.hide_secrets(text))
    }

    /// `text` with this instance's secrets replaced, numbers left alone: for
    /// ids and status words, which may well contain digit runs.
    pub(super) fn hide_secrets(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    pub(super) fn scrub_failure(&self, failure: Failure) -> Failure {
        failure.map_text(|t| self.scrub(t))
    }
}
