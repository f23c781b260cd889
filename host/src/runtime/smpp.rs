//! The `smpp` import: an adapter's `submit_sm`, sent by the host through the
//! provider instance's binds (`crate::smpp::Session`), past the same egress
//! interceptor and in-doubt accounting as `http`.

use super::provider::ProviderContext;
use super::sandbox::Sandbox;
use super::wit::host::{SmppError as WitError, SmppHost, SmppSubmit, SmppSubmitted, smpp_import};
use crate::egress::Exchange;
use crate::smpp::SmppError;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// One call's view of the import.
pub(super) struct SmppContext {
    provider: Arc<ProviderContext>,
    message_id: Option<String>,
    in_doubt: Arc<AtomicU32>,
    deadline: Instant,
    /// Time spent waiting on the SMSC, which the CPU budget does not count.
    pub(super) in_host: Duration,
}

impl SmppContext {
    pub(super) fn new(
        provider: Arc<ProviderContext>,
        message_id: Option<String>,
        in_doubt: Arc<AtomicU32>,
        deadline: Instant,
    ) -> SmppContext {
        SmppContext { provider, message_id, in_doubt, deadline, in_host: Duration::ZERO }
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> Result<()> {
    smpp_import::add_to_linker::<Sandbox, HasSelf<SmppContext>>(linker, |s| &mut s.smpp).map_err(super::error)
}

impl SmppHost for SmppContext {
    async fn submit(&mut self, req: SmppSubmit) -> Result<SmppSubmitted, WitError> {
        let entered = Instant::now();
        let provider = &self.provider.name;
        let Some(session) = &self.provider.smpp else {
            let why = format!("provider `{provider}` has no [provider.smpp] binds");
            tracing::warn!(%provider, "SMPP submit refused: {why}");
            return Err(SmppError::Denied(why).into());
        };
        let Some(message_id) = self.message_id.as_deref() else {
            return Err(SmppError::Denied("SMPP submits belong to a send".into()).into());
        };
        let exchange = Exchange { provider, message_id: Some(message_id), in_doubt: Some(&self.in_doubt) };
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let interceptor = self.provider.interceptor.as_deref();
        let result = session.submit(&req.into(), deadline, exchange, interceptor).await;
        self.in_host += entered.elapsed();
        match &result {
            Ok(s) => tracing::debug!(%provider, parts = s.parts, "submit_sm taken"),
            Err(e) => tracing::debug!(%provider, "submit_sm: {e:?}"),
        }
        result.map(Into::into).map_err(Into::into)
    }
}
