//! The adapter sandbox: one wasmtime engine, each adapter compiled once, and
//! every send in a fresh store with a memory cap, a CPU budget and a
//! wall-clock deadline.
//!
//! An adapter gets WASI clocks and random, the `http`, `config` and `log`
//! imports bound to its provider instance, and — only for an instance with a
//! `data_dir` — that one directory. No environment, no sockets, no stdio.
//!
//! `engine` builds the engine, its pool and the linker; `cache` keeps
//! compiled code; `sandbox` is one call's store and the runner; `provider`
//! is a provider instance's context; `inspect` explains a file. Each import
//! is a module of its own (`http`, `config`, `log`) holding its context, its
//! host functions and how it is linked.

mod cache;
mod config;
mod engine;
mod http;
mod inspect;
mod log;
mod provider;
mod sandbox;
mod smpp;
mod wit;

pub use crate::config::MAX_MEMORY_BYTES;
pub use cache::Compiled;
pub use engine::MAX_POOL_SLOTS;
pub use inspect::Inspection;
pub use provider::{ProviderContext, SandboxSpec};

use crate::outcome::AdapterInfo;
use crate::outcome::{Callback, Failure, Outgoing, Receipt, ReceiptRefusal};
use crate::phone;
use anyhow::{Result, anyhow};
use sandbox::{Call, Sandbox};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store};
use wit::host::{ReceiptsIndices, SenderIndices};

/// How long a provider's status callback waits for a sandbox slot before it
/// is answered 503 with `Retry-After`.
pub const CALLBACK_SLOT_WAIT: Duration = Duration::from_secs(2);

/// The process-wide engine and linker, and the compiled components.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache: cache::Cache,
    /// One per pool slot. The providers' bulkheads keep sends within it;
    /// this only guards the pool when a reload raised their sum past it.
    permits: Semaphore,
    slots: u32,
    /// Whether instances come from the pool (else they are made on demand).
    pooled: bool,
    /// The settings-less, egress-less context `info()` runs in; built once,
    /// as building an HTTP client costs milliseconds.
    inspection: Arc<ProviderContext>,
}

/// A loaded adapter: compiled, linked, and answering `info()`.
pub struct Adapter {
    pub info: AdapterInfo,
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// `bundled` or the file it was loaded from.
    pub source: String,
    /// How the machine code was had: compiled now, or from a cache.
    pub compiled: Compiled,
    pub loaded_at: std::time::SystemTime,
    /// Sends this version has run.
    pub served: std::sync::atomic::AtomicU64,
    pre: InstancePre<Sandbox>,
    sender: SenderIndices,
    /// Present when the adapter verifies delivery receipts.
    receipts: Option<ReceiptsIndices>,
}

impl Adapter {
    /// Whether this adapter exports `receipts`.
    pub fn verifies_receipts(&self) -> bool {
        self.receipts.is_some()
    }
}

/// A compiled component linked against the contract, with its `info()`.
struct Prepared {
    pre: InstancePre<Sandbox>,
    sender: SenderIndices,
    receipts: Option<ReceiptsIndices>,
    info: AdapterInfo,
}

/// Why a compiled component cannot serve as an adapter.
enum Unfit {
    Imports(anyhow::Error),
    Exports(anyhow::Error),
    Info(Failure),
}

type CallFuture<'a, R> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// A wasmtime error with its whole chain of causes.
fn error(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:#}")
}

/// Calls `info()` through `sender`.
fn call_info(
    sender: SenderIndices,
) -> impl for<'a> FnOnce(&'a Instance, &'a mut Store<Sandbox>) -> CallFuture<'a, AdapterInfo> + Send {
    move |instance, store| {
        Box::pin(async move {
            let guest = sender.load(&mut *store, instance)?;
            Ok(guest.call_info(store).await?.into())
        })
    }
}

impl Runtime {
    /// A runtime with the default pool.
    pub fn new() -> Result<Arc<Runtime>> {
        Self::with_slots(engine::DEFAULT_POOL_SLOTS)
    }

    /// A runtime whose pool holds `sends_in_flight` sends (the sum of the
    /// providers' `max_in_flight`) and the loads beside them.
    pub fn for_sends(sends_in_flight: u32) -> Result<Arc<Runtime>> {
        let slots = sends_in_flight.saturating_add(engine::POOL_HEADROOM);
        Self::with_slots(slots.clamp(engine::MIN_POOL_SLOTS, MAX_POOL_SLOTS))
    }

    /// Sandboxes that may run at once.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Whether the pool could be reserved (else instances are made on
    /// demand, which is slower).
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    fn with_slots(slots: u32) -> Result<Arc<Runtime>> {
        let (engine, pooled) = engine::engine(slots)?;
        Ok(Arc::new(Runtime {
            linker: engine::linker(&engine)?,
            engine,
            cache: cache::Cache::default(),
            permits: Semaphore::new(slots as usize),
            slots,
            pooled,
            inspection: Arc::new(ProviderContext::inspection()),
        }))
    }

    /// Links `component` against the contract and asks its `info()`: the
    /// one path both loading and inspecting take.
    async fn prepare(&self, component: &Component) -> Result<Prepared, Unfit> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| Unfit::Imports(error(e)))?;
        let sender = SenderIndices::new(&pre).map_err(|e| Unfit::Exports(error(e)))?;
        let receipts = ReceiptsIndices::new(&pre).ok();
        let info =
            self.run(&pre, &self.inspection, Call::default(), call_info(sender.clone())).await.map_err(Unfit::Info)?;
        Ok(Prepared { pre, sender, receipts, info })
    }

    /// Compiles (or finds compiled) `bytes`, links it against the `adapter`
    /// world and asks its `info()`. `source` names it in errors.
    pub async fn load(&self, bytes: &[u8], source: &str, cache_dir: Option<&Path>) -> Result<Adapter> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let (component, compiled) = self
            .cache
            .compile(&self.engine, bytes, digest, cache_dir)
            .await
            .map_err(|e| anyhow!("{source} is not a loadable WebAssembly component: {e:#}"))?;
        let prepared = self.prepare(&component).await.map_err(|unfit| match unfit {
            Unfit::Imports(e) => anyhow!("{source} does not fit the smsbridge:adapter world: {e:#}"),
            Unfit::Exports(e) => anyhow!("{source} does not export smsbridge:adapter/sender: {e:#}"),
            Unfit::Info(f) => anyhow!("{source}: info() failed: {f}"),
        })?;
        Ok(Adapter {
            info: prepared.info,
            sha256: hex::encode(digest),
            source: source.into(),
            compiled,
            loaded_at: std::time::SystemTime::now(),
            served: Default::default(),
            pre: prepared.pre,
            sender: prepared.sender,
            receipts: prepared.receipts,
        })
    }

    /// Forgets the compiled code of every build but those `in_use` (hex
    /// SHA-256s): a build replaced by a hot reload is not kept for the life
    /// of the process.
    pub fn keep_only(&self, in_use: &[String]) {
        self.cache.retain(in_use);
    }

    /// Builds whose compiled code this process keeps.
    pub fn compiled_builds(&self) -> usize {
        self.cache.len()
    }

    /// Asks a loaded adapter's `info()` again, in a fresh sandbox.
    pub async fn info(&self, adapter: &Adapter) -> Result<AdapterInfo> {
        self.run(&adapter.pre, &self.inspection, Call::default(), call_info(adapter.sender.clone()))
            .await
            .map_err(|f| anyhow!("info() failed: {f}"))
    }

    /// Sends `msg` through `adapter` with `provider`'s settings and limits;
    /// the provider's id for the message, or why there is none.
    ///
    /// `in_doubt` counts the requests that may have reached the provider
    /// without an answer: a send that fails with one of those may have been
    /// sent all the same, and says so (`Failure::MaybeSent`). The caller
    /// keeps the counter, to judge a send it gives up on.
    pub async fn send(
        &self,
        adapter: &Adapter,
        provider: &Arc<ProviderContext>,
        msg: Outgoing,
        in_doubt: Arc<AtomicU32>,
    ) -> Result<String, Failure> {
        let sender = adapter.sender.clone();
        let call = Call { message_id: Some(msg.id.clone()), codes: phone::digit_runs(&msg.body), in_doubt };
        let doubt = call.in_doubt.clone();
        let codes = call.codes.clone();
        let msg = msg.into();
        let result = self
            .run(&adapter.pre, provider, call, move |instance, store| {
                Box::pin(async move {
                    let guest = sender.load(&mut *store, instance)?;
                    guest.call_send(store, &msg).await
                })
            })
            .await;
        // What the adapter says may reach a caller: no secret, number or code.
        let scrub = |f: Failure| provider.scrub_failure(f).map_text(|t| phone::redact(t, &codes));
        let failure = match result {
            Ok(Ok(accepted)) => return Ok(provider.hide_secrets(&accepted.provider_id)),
            Ok(Err(e)) => scrub(e.into()),
            Err(f) => scrub(f),
        };
        Err(if !failure.is_permanent_answer() && doubt.load(Ordering::SeqCst) > 0 {
            Failure::MaybeSent(format!("{failure}; the provider may have the message"))
        } else {
            failure
        })
    }

    /// Has `adapter` verify and read a provider's status callback, with
    /// `provider`'s settings.
    pub async fn verify(
        &self,
        adapter: &Adapter,
        provider: &Arc<ProviderContext>,
        callback: Callback,
    ) -> Result<Vec<Receipt>, ReceiptRefusal> {
        let receipts = adapter.receipts.clone().ok_or(ReceiptRefusal::Unknown)?;
        let callback = callback.into();
        // A provider retries a callback; a caller waiting for its OTP does not.
        let Ok(slot) = tokio::time::timeout(CALLBACK_SLOT_WAIT, self.permits.acquire()).await else {
            return Err(ReceiptRefusal::Busy);
        };
        let slot = slot.map_err(|_| ReceiptRefusal::Failed("runtime is shutting down".into()))?;
        let result = self
            .run_in(slot, &adapter.pre, provider, Call::default(), move |instance, store| {
                Box::pin(async move {
                    let guest = receipts.load(&mut *store, instance)?;
                    guest.call_verify(store, &callback).await
                })
            })
            .await;
        match result {
            Ok(Ok(updates)) => Ok(updates.into_iter().map(Receipt::from).collect()),
            Ok(Err(e)) => Err(e.into()),
            Err(f) => Err(ReceiptRefusal::Failed(provider.scrub_failure(f).to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_from_the_providers_limits_and_reserves_at_its_largest() {
        assert_eq!(Runtime::for_sends(1).unwrap().slots(), engine::MIN_POOL_SLOTS);
        let runtime = Runtime::for_sends(1000).unwrap();
        assert_eq!(runtime.slots(), 1000 + engine::POOL_HEADROOM);
        assert!(runtime.pooled());
        let largest = Runtime::for_sends(u32::MAX).unwrap();
        assert_eq!(largest.slots(), MAX_POOL_SLOTS);
        assert!(largest.pooled(), "the largest pool fits the address space");
    }
}
