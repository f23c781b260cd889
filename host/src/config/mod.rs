//! The config file: TOML in, typed and validated config out.
//!
//! Every error names the file, the line and the key. Secrets written as
//! `{ env = "NAME" }` are read from the environment here and nowhere else.
//! This module checks the file's own consistency; whether an adapter exists
//! and accepts its settings is checked when adapters load.

/// The most linear memory any provider instance may be given.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

pub mod audit;
mod callers;
mod defaults;
mod limits;
mod listeners;
mod provider;
mod route;
mod smpp;
mod storage;
mod values;

pub use callers::*;
pub use limits::*;
pub use listeners::*;
pub use provider::*;
pub use route::*;
pub use smpp::*;
pub use storage::*;
use values::*;
pub use values::{ConfigError, MIN_SECRET_CHARS, Setting};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The most sends one provider may have in flight; the sandbox pool is
/// sized from the providers' limits, up to `runtime::MAX_POOL_SLOTS`.
pub const MAX_IN_FLIGHT: u32 = 10_000;

/// The embedded default: routes `/v1/send` to the `outbox` adapter.
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

/// The file as written: each section keeps its span, so that every error
/// can name its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<Spanned<Server>>,
    admin: Option<Spanned<RawAdmin>>,
    log: Option<Log>,
    #[serde(default)]
    adapters: Adapters,
    #[serde(default, rename = "provider")]
    providers: Vec<Spanned<RawProvider>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
    record: Option<RawRecord>,
    state: Option<Spanned<RawState>>,
    auth: Option<RawAuthKeys>,
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
            // The TOML reader names no key, only where it stopped.
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().to_string();
            anyhow!(ConfigError { file: source.to_string(), line, key: String::new(), message })
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
            digest_key: digest_key(raw.auth.as_ref(), src)?,
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
mod tests;
