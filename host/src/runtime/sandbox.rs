//! One call's sandbox: a fresh store with WASI (clocks, random, and a
//! provider's `data_dir` if it has one), each import's context, a memory
//! cap over all of the component's memories, a CPU budget counted by the
//! engine's epoch (time in host calls excluded), and a wall-clock deadline;
//! and the runner that takes a pool slot, instantiates and calls.

use super::provider::ProviderContext;
use super::{CallFuture, Runtime, config, http, log, smpp};
use crate::outcome::Failure;
use anyhow::{Result, anyhow};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};
use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// Time past a send's deadline for the adapter to turn a timed-out HTTP call
/// into its own error before the sandbox stops it.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);
/// Guest stderr kept per send, to explain a panic.
const STDERR_CAPTURE: usize = 4096;

/// One call's store data: the sandbox a send (or `info()`, or a callback)
/// runs in.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    provider: Arc<ProviderContext>,
    started: Instant,
    memory_cap: MemoryCap,
    pub(super) http: http::HttpContext,
    pub(super) config: config::ConfigContext,
    pub(super) log: log::LogContext,
    pub(super) smpp: smpp::SmppContext,
}

/// What one call is about: the message it sends, if any, and that
/// message's codes.
#[derive(Default)]
pub(super) struct Call {
    pub message_id: Option<String>,
    pub codes: Vec<String>,
    /// Its requests that may have reached the provider, unanswered.
    pub in_doubt: Arc<AtomicU32>,
}

impl Sandbox {
    /// Time the guest ran: wall time less the time spent in host calls.
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.http.in_host + self.smpp.in_host)
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The memory cap, as a distinct error so a send can say what happened.
#[derive(Debug)]
struct MemoryExceeded(usize);
impl std::fmt::Display for MemoryExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "adapter exceeded its memory limit of {} MiB", self.0 >> 20)
    }
}
impl std::error::Error for MemoryExceeded {}

#[derive(Debug)]
struct CpuExceeded(Duration);
impl std::fmt::Display for CpuExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "adapter exceeded its CPU budget of {} ms", self.0.as_millis())
    }
}
impl std::error::Error for CpuExceeded {}

/// Caps the sum of a store's linear memories, however many the component
/// has; tables and instances are bounded by the pool.
pub(super) struct MemoryCap {
    limit: usize,
    used: usize,
}

impl MemoryCap {
    pub(super) fn new(limit: usize) -> MemoryCap {
        MemoryCap { limit, used: 0 }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let used = self.used.saturating_sub(current).saturating_add(desired);
        if used > self.limit {
            return Err(MemoryExceeded(self.limit).into());
        }
        self.used = used;
        Ok(true)
    }
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }
    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Runtime {
    /// Runs `call` on a fresh instance in a fresh store, within `provider`'s
    /// limits; `about` says which message it sends, if any. A failure of the
    /// adapter in the sandbox comes back as `Failure::Fault`, one to set the
    /// sandbox up as `Failure::Host`.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        pre: &InstancePre<Sandbox>,
        provider: &Arc<ProviderContext>,
        about: Call,
        call: impl for<'a> FnOnce(&'a Instance, &'a mut Store<Sandbox>) -> CallFuture<'a, R> + Send,
    ) -> Result<R, Failure> {
        let slot = self.permits.acquire().await.map_err(|_| Failure::Host("the runtime is shutting down".into()))?;
        self.run_in(slot, pre, provider, about, call).await
    }

    /// [`Runtime::run`] in a sandbox slot already taken.
    pub(super) async fn run_in<R: Send + 'static>(
        &self,
        _slot: tokio::sync::SemaphorePermit<'_>,
        pre: &InstancePre<Sandbox>,
        provider: &Arc<ProviderContext>,
        about: Call,
        call: impl for<'a> FnOnce(&'a Instance, &'a mut Store<Sandbox>) -> CallFuture<'a, R> + Send,
    ) -> Result<R, Failure> {
        // Descriptors, memory, a folder gone: this host's trouble, not the
        // provider's.
        let mut store =
            self.store(provider, about).map_err(|e| Failure::Host(format!("cannot set up the sandbox: {e:#}")))?;
        // Built in place: a named future moved into `timeout` took its room
        // twice in every send's future.
        let outcome = tokio::time::timeout(provider.limits.timeout + DEADLINE_GRACE, async {
            let instance = pre.instantiate_async(&mut store).await?;
            call(&instance, &mut store).await
        })
        .await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Failure::Fault(describe_fault(&e, &store))),
            Err(_) => {
                Err(Failure::Fault(format!("adapter did not finish within {} ms", provider.limits.timeout.as_millis())))
            }
        }
    }

    fn store(&self, provider: &Arc<ProviderContext>, about: Call) -> Result<Store<Sandbox>> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        if let Some(dir) = &provider.limits.data_dir {
            wasi.preopened_dir(dir, ".", FsPerms::ReadWrite)
                .map_err(|e| anyhow!("cannot open data_dir {}: {e}", dir.display()))?;
        }
        let now = Instant::now();
        let state = Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            stderr,
            provider: provider.clone(),
            started: now,
            memory_cap: MemoryCap::new(provider.limits.memory_bytes),
            http: http::HttpContext::new(
                provider.clone(),
                about.message_id.clone(),
                about.in_doubt.clone(),
                now + provider.limits.timeout,
            ),
            smpp: smpp::SmppContext::new(
                provider.clone(),
                about.message_id,
                about.in_doubt,
                now + provider.limits.timeout,
            ),
            config: config::ConfigContext::new(provider.clone()),
            log: log::LogContext::new(provider.clone(), about.codes),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory_cap);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|cx| {
            let state = cx.data();
            if state.guest_time() > state.provider.limits.cpu {
                return Err(CpuExceeded(state.provider.limits.cpu).into());
            }
            // Hand the thread back to tokio: a busy guest never starves the
            // server, and the wall-clock timeout can fire.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// A short, safe sentence for a sandbox failure.
fn describe_fault(e: &wasmtime::Error, store: &Store<Sandbox>) -> String {
    if let Some(m) = e.downcast_ref::<MemoryExceeded>() {
        return m.to_string();
    }
    if let Some(c) = e.downcast_ref::<CpuExceeded>() {
        return c.to_string();
    }
    // A Rust guest's panic says where and why on stderr; keep that.
    let stderr = store.data().stderr.contents();
    let said: Vec<&str> = std::str::from_utf8(&stderr)
        .unwrap_or("")
        .lines()
        .map(|l| {
            // `thread '<unnamed>' (1) panicked at …`: where and why is enough.
            let l = l.trim();
            l.find("panicked at").map_or(l, |at| &l[at..])
        })
        .filter(|l| !l.is_empty() && !l.starts_with("note: "))
        .collect();
    let said: String = said.join(" ").chars().take(300).collect();
    match e.downcast_ref::<Trap>() {
        Some(trap) if said.is_empty() => format!("adapter trapped: {trap}"),
        Some(trap) => format!("adapter trapped: {trap} ({said})"),
        None => format!("adapter failed: {}", e.to_string().lines().next().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Engine;

    /// Instantiates a core module with `memories` memories of one page each
    /// in a store capped at `limit` bytes, as a send's store is.
    fn instantiate(memories: usize, limit: usize) -> std::result::Result<(), String> {
        let engine = Engine::new(&super::super::engine::engine_config(None)).unwrap();
        let text = format!("(module {})", "(memory 1)".repeat(memories));
        let module = wasmtime::Module::new(&engine, wat::parse_str(text).unwrap()).unwrap();
        let mut store = Store::new(&engine, MemoryCap::new(limit));
        store.limiter(|cap| cap);
        wasmtime::Instance::new(&mut store, &module, &[]).map(drop).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn the_memory_cap_holds_for_the_sum_of_a_stores_memories() {
        let page = 64 << 10;
        assert_eq!(instantiate(2, 2 * page), Ok(()));
        let three = instantiate(3, 2 * page + page / 2).unwrap_err();
        assert!(three.contains("memory limit"), "each memory fits, their sum does not: {three}");
    }
}
