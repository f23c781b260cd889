//! One send, from a route and the caller's two fields to a provider's answer:
//! normalise the number, count segments, and try the route's providers in
//! order, moving on only after a transient failure. Shared by the HTTP
//! server and `smsbridge send`.
//!
//! What a send uses — routes, provider settings, the adapter version of each
//! provider — is one immutable [`Routing`] snapshot, swapped whole when the
//! config or an adapter changes. A send in flight keeps the snapshot it
//! started with; every later send gets the new one.

use crate::config::{Config, Route};
use crate::phone::{self, PhoneError};
use crate::registry::{Change, Registry};
use crate::runtime::{Adapter, Failure, Message, ProviderContext, Runtime, SendError};
use crate::telemetry;
use anyhow::{Result, anyhow};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Longest message accepted: ten concatenated GSM-7 parts.
pub const MAX_MESSAGE_CHARS: usize = 1530;

pub struct Gateway {
    pub runtime: Arc<Runtime>,
    pub registry: Registry,
    routing: ArcSwap<Routing>,
    /// Serialises rebuilding the snapshot, so no change is lost to a race.
    rebuild: tokio::sync::Mutex<()>,
    /// Digest nonces, which outlive config reloads.
    pub nonces: crate::auth::Nonces,
}

/// The config and each provider bound to its adapter's current version.
pub struct Routing {
    pub config: Config,
    providers: HashMap<String, Result<Bound, String>>,
}

struct Bound {
    ctx: Arc<ProviderContext>,
    adapter: Arc<Adapter>,
}

/// A message a provider accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub to: String,
    pub provider: String,
    pub provider_id: String,
    pub segments: u32,
}

/// Why a message was not sent.
#[derive(Debug, Clone)]
pub enum Refusal {
    Phone(PhoneError),
    Message(String),
    /// The last provider tried, and what went wrong there.
    Provider {
        provider: String,
        failure: Failure,
    },
}

impl Gateway {
    /// Loads the adapters and binds each provider instance to its adapter,
    /// checking that the adapter exists and has its required settings.
    pub async fn new(config: Config, runtime: Arc<Runtime>) -> Result<Gateway> {
        let registry =
            Registry::load(runtime.clone(), config.adapters.dir.as_deref(), config.adapters.cache_dir.as_deref())
                .await?;
        for (name, e) in registry.errors() {
            tracing::error!(adapter = %name, "adapter not loaded: {}", e.message);
        }
        let routing = Routing::bind(config, &registry, true)?;
        Ok(Gateway {
            runtime,
            registry,
            routing: ArcSwap::from_pointee(routing),
            rebuild: Default::default(),
            nonces: Default::default(),
        })
    }

    /// The snapshot a send should use.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// Replaces the config if it binds; otherwise the old one keeps serving.
    pub async fn apply_config(&self, config: Config) -> Result<()> {
        let _guard = self.rebuild.lock().await;
        let old = self.routing();
        if config.server.listen != old.config.server.listen
            || config.admin.as_ref().map(|a| a.listen) != old.config.admin.as_ref().map(|a| a.listen)
            || config.adapters.dir != old.config.adapters.dir
        {
            tracing::warn!("listen addresses and adapters.dir change only on restart");
        }
        let level = config.log.level.clone();
        let routing = Routing::bind(config, &self.registry, true)?;
        self.routing.store(Arc::new(routing));
        telemetry::set_log_level(&level);
        tracing::info!("config reloaded");
        Ok(())
    }

    /// Re-reads the config file, keeping the old config if the new one fails.
    pub async fn reload_config(&self) {
        let Some(path) = self.routing().config.path.clone() else {
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
        let change = self.registry.reload(path).await;
        if let Change::Loaded(_) | Change::Unloaded(_) = change {
            let _guard = self.rebuild.lock().await;
            let config = self.routing().config.clone();
            // Lenient: a provider whose adapter is gone answers 503 naming it.
            match Routing::bind(config, &self.registry, false) {
                Ok(routing) => self.routing.store(Arc::new(routing)),
                Err(e) => tracing::error!("providers not rebound: {e:#}"),
            }
        }
        change
    }

    /// Sends `body` to `phone` through `route`, a route of `routing`.
    pub async fn send(&self, routing: &Routing, route: &Route, phone: &str, body: &str) -> Result<Sent, Refusal> {
        let to = phone::normalise(phone, route.default_country).map_err(Refusal::Phone)?;
        if body.trim().is_empty() {
            return Err(Refusal::Message("is empty".into()));
        }
        if body.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Refusal::Message(format!("is longer than {MAX_MESSAGE_CHARS} characters")));
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let segments = smsbridge_segments::count(body).count;
        let masked = phone::mask(&to);
        let route_started = Instant::now();
        let mut last = None;
        for name in &route.providers {
            let started = Instant::now();
            let result = self.send_via(routing, name, route, &id, &to, body).await;
            let took = started.elapsed();
            let ms = took.as_millis() as u64;
            let outcome = outcome(&result);
            telemetry::attempt(name, outcome, took);
            match result {
                Ok(provider_id) => {
                    tracing::info!(%id, route = %route.path, provider = %name, to = %masked, outcome, segments, ms, "sent");
                    telemetry::send(&route.path, name, outcome, route_started.elapsed());
                    return Ok(Sent { id, to, provider: name.clone(), provider_id, segments });
                }
                Err(failure) => {
                    tracing::warn!(%id, route = %route.path, provider = %name, to = %masked, outcome, ms, "not sent: {failure}");
                    let transient = is_transient(&failure);
                    last = Some((name, outcome, Refusal::Provider { provider: name.clone(), failure }));
                    if !transient {
                        break;
                    }
                }
            }
        }
        let (provider, outcome, refusal) = last.expect("a route names at least one provider");
        telemetry::send(&route.path, provider, outcome, route_started.elapsed());
        Err(refusal)
    }

    async fn send_via(
        &self,
        routing: &Routing,
        provider: &str,
        route: &Route,
        id: &str,
        to: &str,
        body: &str,
    ) -> Result<String, Failure> {
        let bound = routing.providers[provider].as_ref().map_err(|why| Failure::Fault(why.clone()))?;
        let sender = route.sender.clone().or_else(|| routing.config.provider(provider).and_then(|p| p.sender.clone()));
        let msg = Message { id: id.into(), to: to.into(), body: body.into(), sender, params: Vec::new() };
        bound.adapter.served.fetch_add(1, Ordering::Relaxed);
        self.runtime.send(&bound.adapter, &bound.ctx, msg).await.map(|a| a.provider_id)
    }
}

impl Routing {
    /// Binds every provider of `config` to its adapter in `registry`. With
    /// `strict`, a missing adapter or setting is an error; without, that
    /// provider is left unbound with the reason.
    fn bind(config: Config, registry: &Registry, strict: bool) -> Result<Routing> {
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
                    match adapter.info.config_keys.iter().find(|k| k.required && !p.settings.contains_key(&k.name)) {
                        Some(key) => Err(format!(
                            "{}: provider `{}`: adapter `{}` requires `config.{}` ({})",
                            config.source, p.name, p.adapter, key.name, key.description
                        )),
                        None => Ok(Bound { ctx: Arc::new(ProviderContext::new(p, &adapter.info)?), adapter }),
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
        Ok(Routing { config, providers })
    }

    /// The adapter version provider `name` sends through in this snapshot.
    pub fn adapter_of(&self, name: &str) -> Option<Arc<Adapter>> {
        self.providers.get(name)?.as_ref().ok().map(|b| b.adapter.clone())
    }

    /// Routes none of whose providers is bound to a loaded adapter.
    pub fn unserved_routes(&self) -> Vec<String> {
        self.config
            .routes
            .iter()
            .filter(|r| !r.providers.iter().any(|p| self.providers.get(p).is_some_and(|b| b.is_ok())))
            .map(|r| r.path.clone())
            .collect()
    }
}

/// The outcome word of one attempt, for logs and metrics.
fn outcome(result: &Result<String, Failure>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(Failure::Fault(_)) => "fault",
        Err(Failure::Adapter(e)) => match e {
            SendError::InvalidRecipient(_) => "invalid_recipient",
            SendError::Rejected(_) => "rejected",
            SendError::Unauthorized(_) => "unauthorized",
            SendError::RateLimited(_) => "rate_limited",
            SendError::Unavailable(_) => "unavailable",
            SendError::Misconfigured(_) => "misconfigured",
        },
    }
}

/// Failures worth trying the next provider for.
fn is_transient(failure: &Failure) -> bool {
    matches!(failure, Failure::Fault(_) | Failure::Adapter(SendError::Unavailable(_) | SendError::RateLimited(_)))
}
