//! What a send uses — routes, provider settings, the adapter version of each
//! provider — as one immutable [`Routing`] snapshot, and [`LiveRouting`], which
//! swaps it whole when the config or an adapter changes. A send in flight
//! keeps the snapshot it started with; every later send gets the new one.

use crate::config::{Config, Provider};
use crate::egress::Interceptor;
use crate::registry::{Change, Registry};
use crate::runtime::{Adapter, ProviderContext, SandboxSpec};
use crate::smpp::Sessions;
use crate::telemetry;
use anyhow::{Result, anyhow};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The config, and each provider bound to its adapter's current version.
pub struct Routing {
    pub config: Config,
    providers: HashMap<String, Result<Bound, String>>,
}

/// A provider instance ready to send: its settings, its sandbox, and the
/// adapter version it sends through.
pub struct Bound {
    pub config: Provider,
    pub ctx: Arc<ProviderContext>,
    pub adapter: Arc<Adapter>,
}

impl Routing {
    /// Binds every provider of `config` to its adapter in `registry`. With
    /// `strict`, a missing adapter or setting is an error; without, that
    /// provider is left unbound with the reason.
    fn bind(
        config: Config,
        registry: &Registry,
        strict: bool,
        interceptor: Option<&Arc<dyn Interceptor>>,
        sessions: &Sessions,
    ) -> Result<Routing> {
        let mut providers = HashMap::new();
        for p in &config.providers {
            let bound = match registry.get(&p.adapter) {
                None => {
                    let known: Vec<String> = registry.list().into_iter().map(|(n, _)| n).collect();
                    Err(format!(
                        "{}: provider `{}`: adapter `{}` is not bundled and not in the adapters folder (known: {})",
                        config.source,
                        p.name,
                        p.adapter,
                        known.join(", ")
                    ))
                }
                Some(adapter) => {
                    let keys = &adapter.info.config_keys;
                    let missing = keys.iter().find(|k| k.required && !p.settings.contains_key(&k.name));
                    let empty =
                        keys.iter().find(|k| k.secret && p.settings.get(&k.name).is_some_and(|s| s.value.is_empty()));
                    match (missing, empty) {
                        (Some(key), _) => Err(format!(
                            "{}: provider `{}`: adapter `{}` requires `config.{}` ({})",
                            config.source, p.name, p.adapter, key.name, key.description
                        )),
                        (None, Some(key)) => Err(format!(
                            "{}: provider `{}`: secret `config.{}` is empty",
                            config.source, p.name, key.name
                        )),
                        (None, None) => {
                            let smpp = p.smpp.as_ref().map(|binds| sessions.session(&p.name, binds));
                            let spec = sandbox_spec(p, interceptor.cloned(), smpp);
                            let ctx = ProviderContext::new(spec, &adapter.info)?;
                            Ok(Bound { config: p.clone(), ctx: Arc::new(ctx), adapter })
                        }
                    }
                }
            };
            match bound {
                Err(why) if strict => return Err(anyhow!(why)),
                Err(why) => {
                    tracing::error!("{why}");
                    providers.insert(p.name.clone(), Err(why));
                }
                Ok(b) => {
                    providers.insert(p.name.clone(), Ok(b));
                }
            }
        }
        let smpp: Vec<&str> = config.providers.iter().filter(|p| p.smpp.is_some()).map(|p| p.name.as_str()).collect();
        sessions.keep_only(&smpp);
        Ok(Routing { config, providers })
    }

    /// Provider `name` as bound in this snapshot, or why it is not.
    pub fn bound(&self, name: &str) -> Result<&Bound, String> {
        match self.providers.get(name) {
            Some(Ok(bound)) => Ok(bound),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("provider `{name}` is not configured")),
        }
    }

    /// The adapter version provider `name` sends through in this snapshot.
    pub fn adapter_of(&self, name: &str) -> Option<Arc<Adapter>> {
        self.bound(name).ok().map(|b| b.adapter.clone())
    }

    /// Routes none of whose providers is bound to a loaded adapter.
    pub fn unserved_routes(&self) -> Vec<String> {
        self.config
            .routes
            .iter()
            .filter(|r| !r.providers.iter().any(|p| self.bound(p).is_ok()))
            .map(|r| r.path.clone())
            .collect()
    }
}

/// The providers of `config` that take an adapter's default hosts as their
/// allowlist, by adapter name.
pub fn followers(config: &Config) -> impl Fn(&str) -> Vec<String> + Send + Sync + '_ {
    move |adapter| {
        config
            .providers
            .iter()
            .filter(|p| p.adapter == adapter && p.sandbox.allow_hosts.is_none())
            .map(|p| p.name.clone())
            .collect()
    }
}

/// The sandbox a provider's sends run in, as its config sets it.
pub fn sandbox_spec(
    p: &Provider,
    interceptor: Option<Arc<dyn Interceptor>>,
    smpp: Option<Arc<crate::smpp::Session>>,
) -> SandboxSpec {
    let settings = p.settings.clone();
    SandboxSpec { name: p.name.clone(), settings, limits: p.sandbox.clone(), interceptor, responder: None, smpp }
}

/// The current snapshot, and the reloads that replace it.
pub struct LiveRouting {
    current: ArcSwap<Routing>,
    registry: Arc<Registry>,
    /// Serialises rebuilding the snapshot, so no change is lost to a race.
    rebuild: tokio::sync::Mutex<()>,
    /// Installed on every provider's outbound client.
    interceptor: Option<Arc<dyn Interceptor>>,
    /// The SMPP binds, kept across reloads.
    pub sessions: Arc<Sessions>,
    /// Whether a queue runs (the record opened at start): a config that
    /// queues a route without one is refused.
    queue: bool,
    /// Where the admin listener was bound at start: a reload that would
    /// leave it off loopback without a token is refused, as a start is.
    admin_bound: std::sync::OnceLock<std::net::SocketAddr>,
}

impl LiveRouting {
    /// Binds `config` strictly: a provider without its adapter or a required
    /// setting is an error. `queue` is the queue's marker, when a queue runs.
    pub fn new(
        config: Config,
        registry: Arc<Registry>,
        queue: Option<Arc<dyn Interceptor>>,
        sessions: Arc<Sessions>,
    ) -> Result<LiveRouting> {
        let routing = Routing::bind(config, &registry, true, queue.as_ref(), &sessions)?;
        Ok(LiveRouting {
            sessions,
            current: ArcSwap::from_pointee(routing),
            registry,
            rebuild: Default::default(),
            admin_bound: Default::default(),
            queue: queue.is_some(),
            interceptor: queue,
        })
    }

    /// The snapshot a send should use.
    pub fn current(&self) -> Arc<Routing> {
        self.current.load_full()
    }

    /// Replaces the config if it binds; otherwise the old one keeps serving.
    pub async fn apply_config(&self, config: Config) -> Result<()> {
        let _guard = self.rebuild.lock().await;
        let old = self.current();
        if config.server.listen != old.config.server.listen
            || config.admin.as_ref().map(|a| a.listen) != old.config.admin.as_ref().map(|a| a.listen)
            || config.adapters.dir != old.config.adapters.dir
        {
            tracing::warn!("listen addresses and adapters.dir change only on restart");
        }
        if let Some(bound) = self.admin_bound.get().filter(|a| !a.ip().is_loopback())
            && config.admin.as_ref().and_then(|a| a.token.as_ref()).is_none()
        {
            anyhow::bail!(
                "the admin listener is on {bound}, which is not loopback: the new config must keep [admin] `token`"
            );
        }
        if !self.queue
            && let Some(route) = config.routes.iter().find(|r| r.delivery.queued)
        {
            anyhow::bail!(
                "route `{}` is queued, but smsbridge started without [record]: a queue takes a restart",
                route.path
            );
        }
        if config.record.as_ref().map(|r| &r.path) != old.config.record.as_ref().map(|r| &r.path) {
            tracing::warn!("[record] changes only on restart");
        }
        let state =
            |c: &Config| c.state.as_ref().map(|s| (s.url.value.clone(), s.ca.clone(), s.pool, s.timeout, s.lease));
        if state(&config) != state(&old.config) {
            tracing::warn!("[state] changes only on restart, except on_failure, which applies now");
        }
        let (wanted, slots) = (config.sends_in_flight(), self.registry.runtime().slots());
        if wanted > slots {
            tracing::warn!(
                "the providers' max_in_flight add up to {wanted}, but the sandbox pool, sized at start, has {slots} slots: \
                 sends beyond it wait for a slot; restart to size the pool anew"
            );
        }
        let level = config.log.level.clone();
        let routing = Routing::bind(config, &self.registry, true, self.interceptor.as_ref(), &self.sessions)?;
        self.current.store(Arc::new(routing));
        telemetry::set_log_level(&level);
        tracing::info!("config reloaded");
        Ok(())
    }

    /// Notes where the admin listener is bound.
    pub fn admin_bound(&self, addr: std::net::SocketAddr) {
        let _ = self.admin_bound.set(addr);
    }

    /// Re-reads the config file, keeping the old config if the new one fails.
    pub async fn reload_config(&self) {
        let Some(path) = self.current().config.path.clone() else {
            tracing::warn!("running on the embedded default: there is no config file to reload");
            return;
        };
        let result = match Config::load(&path) {
            Ok(config) => self.apply_config(config).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!("config not reloaded; the old config keeps serving: {e:#}");
        }
    }

    /// Loads, replaces or unloads the adapter of one file in the adapters
    /// folder, then rebinds the providers that use it.
    pub async fn reload_adapter(&self, path: &Path) -> Change {
        let config = self.current().config.clone();
        let change = self.registry.reload(path, &followers(&config)).await;
        if let Change::Loaded(_) | Change::Unloaded(_) = change {
            let _guard = self.rebuild.lock().await;
            let config = self.current().config.clone();
            // Lenient: a provider whose adapter is gone answers 503 naming it.
            match Routing::bind(config, &self.registry, false, self.interceptor.as_ref(), &self.sessions) {
                Ok(routing) => self.current.store(Arc::new(routing)),
                Err(e) => tracing::error!("providers not rebound: {e:#}"),
            }
        }
        change
    }
}
