//! The `config` import: an adapter reads its own provider instance's
//! settings, and nothing else.

use super::provider::ProviderContext;
use super::sandbox::Sandbox;
use super::wit::host::{ConfigHost, config_import};
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

pub(super) struct ConfigContext {
    provider: Arc<ProviderContext>,
}

impl ConfigContext {
    pub(super) fn new(provider: Arc<ProviderContext>) -> ConfigContext {
        ConfigContext { provider }
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> Result<()> {
    config_import::add_to_linker::<Sandbox, HasSelf<ConfigContext>>(linker, |s| &mut s.config).map_err(super::error)
}

impl ConfigHost for ConfigContext {
    fn get(&mut self, key: String) -> Option<String> {
        self.provider.settings.get(&key).cloned()
    }
}
