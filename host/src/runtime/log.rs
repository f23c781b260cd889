//! The `log` import: what an adapter says reaches smsbridge's log under
//! its provider's name, with secrets, numbers and the message's codes taken
//! out, and cut to 1 KiB.

use super::provider::ProviderContext;
use super::sandbox::Sandbox;
use super::wit::host::{LogHost, LogLevel, log_import};
use crate::phone;
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

pub(super) struct LogContext {
    provider: Arc<ProviderContext>,
    /// The message's codes (digit runs), kept out of what the adapter logs.
    codes: Vec<String>,
}

impl LogContext {
    pub(super) fn new(provider: Arc<ProviderContext>, codes: Vec<String>) -> LogContext {
        LogContext { provider, codes }
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> Result<()> {
    log_import::add_to_linker::<Sandbox, HasSelf<LogContext>>(linker, |s| &mut s.log).map_err(super::error)
}

impl LogHost for LogContext {
    fn write(&mut self, level: LogLevel, msg: String) {
        let msg = phone::redact(&self.provider.scrub(&msg), &self.codes);
        let msg: String = msg.chars().take(1024).collect();
        let provider = &self.provider.name;
        match level {
            LogLevel::Debug => tracing::debug!(%provider, "adapter: {msg}"),
            LogLevel::Info => tracing::info!(%provider, "adapter: {msg}"),
            LogLevel::Warn => tracing::warn!(%provider, "adapter: {msg}"),
            LogLevel::Error => tracing::error!(%provider, "adapter: {msg}"),
        }
    }
}
