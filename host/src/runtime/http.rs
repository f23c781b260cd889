//! The `http` import: an adapter's requests, made by the host through the
//! provider's egress gate (`outbound`), with the time they take kept out of
//! the adapter's CPU budget.

use super::provider::ProviderContext;
use super::sandbox::Sandbox;
use super::wit::host::{HttpError, HttpHost, HttpRequest, HttpResponse, http_import};
use crate::egress::Exchange;
use crate::outbound::{self, Outbound};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// One call's view of the import.
pub(super) struct HttpContext {
    provider: Arc<ProviderContext>,
    /// The message being sent, if this call sends one.
    message_id: Option<String>,
    /// Its requests that may have reached the provider, unanswered.
    in_doubt: Arc<AtomicU32>,
    deadline: Instant,
    /// Time spent waiting in host calls, which the CPU budget does not count.
    pub(super) in_host: Duration,
}

impl HttpContext {
    pub(super) fn new(
        provider: Arc<ProviderContext>,
        message_id: Option<String>,
        in_doubt: Arc<AtomicU32>,
        deadline: Instant,
    ) -> HttpContext {
        HttpContext { provider, message_id, in_doubt, deadline, in_host: Duration::ZERO }
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> Result<()> {
    http_import::add_to_linker::<Sandbox, HasSelf<HttpContext>>(linker, |s| &mut s.http).map_err(super::error)
}

impl HttpHost for HttpContext {
    async fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let entered = Instant::now();
        // Parsed only for a log line that is written.
        let origin = LazyOrigin(req.url.clone());
        let exchange = Exchange {
            provider: &self.provider.name,
            message_id: self.message_id.as_deref(),
            in_doubt: Some(&self.in_doubt),
        };
        let result = self.provider.outbound.send(req.into(), self.deadline, exchange).await;
        self.in_host += entered.elapsed();
        let provider = &self.provider.name;
        match &result {
            Err(outbound::Error::Denied(why)) => {
                tracing::warn!(%provider, %origin, "outbound call refused: {}", self.provider.scrub(why))
            }
            Err(e) => tracing::debug!(%provider, %origin, "outbound call failed: {e:?}"),
            Ok(r) => tracing::debug!(%provider, %origin, status = r.status, "outbound call"),
        }
        result.map(Into::into).map_err(Into::into)
    }
}

/// A URL's origin, worked out when displayed.
struct LazyOrigin(String);

impl std::fmt::Display for LazyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Outbound::origin(&self.0))
    }
}
