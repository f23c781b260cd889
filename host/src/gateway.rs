//! One send, from a route and the caller's two fields to a provider's answer:
//! normalise the number, count segments, and try the route's providers in
//! order, moving on only after a transient failure. Shared by the HTTP
//! server and `smsbridge send`.

use crate::config::{Config, Route};
use crate::phone::{self, PhoneError};
use crate::registry::Registry;
use crate::runtime::{Failure, Message, ProviderContext, Runtime, SendError};
use anyhow::{Result, anyhow};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Longest message accepted: ten concatenated GSM-7 parts.
pub const MAX_MESSAGE_CHARS: usize = 1530;

pub struct Gateway {
    pub config: Config,
    pub runtime: Arc<Runtime>,
    pub registry: Registry,
    providers: HashMap<String, Arc<ProviderContext>>,
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
        let (registry, errors) = Registry::load(&runtime, config.adapters.dir.as_deref()).await?;
        for e in errors {
            tracing::error!("adapter not loaded: {e:#}");
        }
        let mut providers = HashMap::new();
        for p in &config.providers {
            let adapter = registry.get(&p.adapter).ok_or_else(|| {
                let known: Vec<String> = registry.list().into_iter().map(|(n, _)| n).collect();
                anyhow!(
                    "{}: provider `{}`: adapter `{}` is not bundled and not in the adapters folder (known: {})",
                    config.source,
                    p.name,
                    p.adapter,
                    known.join(", ")
                )
            })?;
            for key in adapter.info.config_keys.iter().filter(|k| k.required) {
                if !p.settings.contains_key(&key.name) {
                    return Err(anyhow!(
                        "{}: provider `{}`: adapter `{}` requires `config.{}` ({})",
                        config.source,
                        p.name,
                        p.adapter,
                        key.name,
                        key.description
                    ));
                }
            }
            providers.insert(p.name.clone(), Arc::new(ProviderContext::new(p, &adapter.info)?));
        }
        Ok(Gateway {
            config,
            runtime,
            registry,
            providers,
        })
    }

    /// Sends `body` to `phone` through `route`'s providers.
    pub async fn send(&self, route: &Route, phone: &str, body: &str) -> Result<Sent, Refusal> {
        let to = phone::normalise(phone, route.default_country).map_err(Refusal::Phone)?;
        if body.trim().is_empty() {
            return Err(Refusal::Message("is empty".into()));
        }
        if body.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Refusal::Message(format!(
                "is longer than {MAX_MESSAGE_CHARS} characters"
            )));
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let segments = smsbridge_segments::count(body).count;
        let mut last = None;
        for name in &route.providers {
            let started = Instant::now();
            let result = self.send_via(name, route, &id, &to, body).await;
            let ms = started.elapsed().as_millis() as u64;
            let masked = phone::mask(&to);
            match result {
                Ok(provider_id) => {
                    tracing::info!(%id, route = %route.path, provider = %name, to = %masked, segments, ms, "sent");
                    return Ok(Sent {
                        id,
                        to,
                        provider: name.clone(),
                        provider_id,
                        segments,
                    });
                }
                Err(failure) => {
                    tracing::warn!(%id, route = %route.path, provider = %name, to = %masked, ms, "not sent: {failure}");
                    let transient = is_transient(&failure);
                    last = Some(Refusal::Provider {
                        provider: name.clone(),
                        failure,
                    });
                    if !transient {
                        break;
                    }
                }
            }
        }
        Err(last.expect("a route names at least one provider"))
    }

    async fn send_via(&self, provider: &str, route: &Route, id: &str, to: &str, body: &str) -> Result<String, Failure> {
        let ctx = &self.providers[provider];
        let adapter_name = &self
            .config
            .provider(provider)
            .expect("routes name defined providers")
            .adapter;
        let sender = route
            .sender
            .clone()
            .or_else(|| self.config.provider(provider).and_then(|p| p.sender.clone()));
        let adapter = self
            .registry
            .get(adapter_name)
            .ok_or_else(|| Failure::Fault(format!("adapter `{adapter_name}` is not loaded")))?;
        let msg = Message {
            id: id.into(),
            to: to.into(),
            body: body.into(),
            sender,
            params: Vec::new(),
        };
        self.runtime.send(&adapter, ctx, msg).await.map(|a| a.provider_id)
    }
}

/// Failures worth trying the next provider for.
fn is_transient(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Fault(_) | Failure::Adapter(SendError::Unavailable(_) | SendError::RateLimited(_))
    )
}
