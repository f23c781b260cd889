//! The adapter sandbox: one wasmtime engine, each adapter compiled once, and
//! every send in a fresh store with a memory cap, a CPU budget and a
//! wall-clock deadline.
//!
//! An adapter gets WASI clocks and random, the `http`, `config` and `log`
//! imports bound to its provider instance, and — only for an instance with a
//! `data_dir` — that one directory. No environment, no sockets, no stdio.

use crate::config::{SandboxLimits, Setting};
use crate::outbound::{Exchange, HostRule, Interceptor, Outbound};
use crate::outcome::{Callback, Failure, Outgoing, Receipt, ReceiptRefusal};
use crate::phone;
use crate::wit::host::{ConfigHost, HttpHost, LogHost, LogLevel, ReceiptsIndices, SenderIndices, TypesHost, World};
use crate::wit::{AdapterInfo, HttpError, HttpRequest, HttpResponse};
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// Pool slots for a runtime made without a config (tools, tests).
const DEFAULT_POOL_SLOTS: u32 = 1024;
/// Bounds on the pool: each slot reserves address space, not memory.
const MIN_POOL_SLOTS: u32 = 64;
pub const MAX_POOL_SLOTS: u32 = 12_000;
/// Slots beyond the providers' limits, for `info()` on adapter loads.
const POOL_HEADROOM: u32 = 32;
pub use crate::config::MAX_MEMORY_BYTES;
/// Pool slots one send's component may take: enough for a Rust, JavaScript
/// (jco) or Python (componentize-py) adapter.
const MAX_CORE_INSTANCES_PER_SEND: u32 = 32;
const MAX_MEMORIES_PER_SEND: u32 = 4;
const MAX_TABLES_PER_SEND: u32 = 16;
/// How often the engine's epoch advances: the granularity of CPU budgets.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Budgets for `info()`, which must answer at once.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);
const INFO_CPU: Duration = Duration::from_millis(500);
/// How long a provider's status callback waits for a sandbox slot before it
/// is answered 503 with `Retry-After`.
pub const CALLBACK_SLOT_WAIT: Duration = Duration::from_secs(2);
/// Time past a send's deadline for the adapter to turn a timed-out HTTP call
/// into its own error before the sandbox stops it.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);
/// Guest stderr kept per send, to explain a panic.
const STDERR_CAPTURE: usize = 4096;

/// The process-wide engine and linker, and a cache of compiled components.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
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

/// The exports smsbridge calls, found in `pre`; `receipts` is optional.
fn exports_of(pre: &InstancePre<Sandbox>) -> wasmtime::Result<(SenderIndices, Option<ReceiptsIndices>)> {
    Ok((SenderIndices::new(pre)?, ReceiptsIndices::new(pre).ok()))
}

/// Calls `info()` through `sender`.
fn call_info(
    sender: SenderIndices,
) -> impl for<'a> FnOnce(&'a Instance, &'a mut Store<Sandbox>) -> CallFuture<'a, AdapterInfo> + Send {
    move |instance, store| {
        Box::pin(async move {
            let guest = sender.load(&mut *store, instance)?;
            guest.call_info(store).await
        })
    }
}

type CallFuture<'a, R> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Cranelift compiled it, taking this long.
    Now(Duration),
    /// Found compiled in this process.
    Memory,
    /// Found compiled in the cache folder.
    Disk,
}

/// What `Runtime::inspect` found; `problem` is `None` when the host can
/// load the file.
#[derive(Debug, Default)]
pub struct Inspection {
    pub sha256: String,
    pub size: usize,
    pub kind: &'static str,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub info: Option<AdapterInfo>,
    pub problem: Option<String>,
}

/// What one provider instance's sandbox is made of.
pub struct SandboxSpec {
    /// The provider instance's name, for logs.
    pub name: String,
    pub settings: BTreeMap<String, Setting>,
    pub limits: SandboxLimits,
    /// Sees each admitted request before it leaves.
    pub interceptor: Option<Arc<dyn Interceptor>>,
}

/// Everything one provider instance's sends need: its settings, its egress
/// policy and its limits.
pub struct ProviderContext {
    pub name: String,
    settings: BTreeMap<String, String>,
    /// Values never to show: from the environment or declared secret.
    secrets: Vec<String>,
    outbound: Outbound,
    limits: SandboxLimits,
}

impl ProviderContext {
    /// Binds `provider` to its adapter's `info` (secret keys, default hosts).
    pub fn new(provider: SandboxSpec, info: &AdapterInfo) -> Result<ProviderContext> {
        let limits = provider.limits;
        let hosts = limits.allow_hosts.clone().unwrap_or_else(|| info.default_hosts.clone());
        let rules = hosts
            .iter()
            .map(|h| HostRule::parse(h))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("provider `{}`", provider.name))?;
        if limits.memory_bytes > MAX_MEMORY_BYTES {
            bail!("provider `{}`: `memory_mb` may be at most {}", provider.name, MAX_MEMORY_BYTES >> 20);
        }
        let secret_keys: Vec<&str> = info.config_keys.iter().filter(|k| k.secret).map(|k| k.name.as_str()).collect();
        let secrets = provider
            .settings
            .iter()
            .filter(|(k, s)| s.from_env || secret_keys.contains(&k.as_str()))
            .map(|(_, s)| s.value.clone())
            .filter(|v| v.len() >= 4)
            .collect();
        if let Some(dir) = &limits.data_dir {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("provider `{}`: cannot create data_dir {}", provider.name, dir.display()))?;
            // The messages the adapter writes there go where the folder is.
            crate::trust::own_folder(dir, "data_dir").with_context(|| format!("provider `{}`", provider.name))?;
        }
        Ok(ProviderContext {
            name: provider.name.clone(),
            settings: provider.settings.iter().map(|(k, s)| (k.clone(), s.value.clone())).collect(),
            secrets,
            outbound: Outbound::new(rules, limits.max_response_bytes, provider.interceptor)?,
            limits,
        })
    }

    /// A context with no settings and no egress, for `info()`.
    fn inspection() -> ProviderContext {
        ProviderContext {
            name: "<inspect>".into(),
            settings: BTreeMap::new(),
            secrets: Vec::new(),
            outbound: Outbound::new(Vec::new(), 0, None).expect("an empty client builds"),
            limits: SandboxLimits {
                allow_hosts: Some(Vec::new()),
                timeout: INFO_TIMEOUT,
                cpu: INFO_CPU,
                memory_bytes: 64 << 20,
                max_response_bytes: 0,
                data_dir: None,
            },
        }
    }

    /// `text` with this instance's secrets replaced and numbers masked: for
    /// anything an adapter says that reaches a log or a caller.
    pub fn scrub(&self, text: &str) -> String {
        phone::mask_in(&self.hide_secrets(text))
    }

    /// `text` with this instance's secrets replaced, numbers left alone: for
    /// ids and status words, which may well contain digit runs.
    fn hide_secrets(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    fn scrub_failure(&self, failure: Failure) -> Failure {
        failure.map_text(|t| self.scrub(t))
    }
}

/// One call's store data: the sandbox a send (or `info()`, or a callback)
/// runs in.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    provider: Arc<ProviderContext>,
    deadline: Instant,
    started: Instant,
    /// Time spent waiting in host calls, which the CPU budget does not count.
    in_host: Duration,
    memory_cap: MemoryCap,
    /// The message being sent, if this call sends one.
    message_id: Option<String>,
    /// Its codes (digit runs), kept out of what the adapter logs.
    codes: Vec<String>,
    /// Its requests that may have reached the provider, unanswered.
    in_doubt: Arc<AtomicU32>,
}

/// What one call is about: the message it sends, if any, and that
/// message's codes.
#[derive(Default)]
struct Call {
    message_id: Option<String>,
    codes: Vec<String>,
    in_doubt: Arc<AtomicU32>,
}

impl Sandbox {
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
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
struct MemoryCap {
    limit: usize,
    used: usize,
}

impl MemoryCap {
    fn new(limit: usize) -> MemoryCap {
        MemoryCap { limit, used: 0 }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl TypesHost for Sandbox {}

impl HttpHost for Sandbox {
    async fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let entered = Instant::now();
        // Parsed only for a log line that is written.
        let origin = LazyOrigin(req.url.clone());
        let exchange = Exchange {
            provider: &self.provider.name,
            message_id: self.message_id.as_deref(),
            in_doubt: Some(&self.in_doubt),
        };
        let result = self.provider.outbound.send(req, self.deadline, exchange).await;
        self.in_host += entered.elapsed();
        match &result {
            Err(HttpError::Denied(why)) => {
                tracing::warn!(provider = %self.provider.name, %origin, "outbound call refused: {}", self.provider.scrub(why))
            }
            Err(e) => {
                tracing::debug!(provider = %self.provider.name, %origin, "outbound call failed: {e:?}")
            }
            Ok(r) => {
                tracing::debug!(provider = %self.provider.name, %origin, status = r.status, "outbound call")
            }
        }
        result
    }
}

/// A URL's origin, worked out when displayed.
struct LazyOrigin(String);

impl std::fmt::Display for LazyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Outbound::origin(&self.0))
    }
}

impl ConfigHost for Sandbox {
    fn get(&mut self, key: String) -> Option<String> {
        self.provider.settings.get(&key).cloned()
    }
}

impl LogHost for Sandbox {
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

impl Runtime {
    /// A runtime with the default pool.
    pub fn new() -> Result<Arc<Runtime>> {
        Self::with_slots(DEFAULT_POOL_SLOTS)
    }

    /// A runtime whose pool holds `sends_in_flight` sends (the sum of the
    /// providers' `max_in_flight`) and the loads beside them.
    pub fn for_sends(sends_in_flight: u32) -> Result<Arc<Runtime>> {
        Self::with_slots(sends_in_flight.saturating_add(POOL_HEADROOM).clamp(MIN_POOL_SLOTS, MAX_POOL_SLOTS))
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
        let (engine, pooled) = match Engine::new(&engine_config(Some(slots))) {
            Ok(engine) => (engine, true),
            Err(e) => {
                // e.g. a virtual address space limit too small for the pool.
                tracing::warn!("pooling allocator unavailable ({e}); instantiating on demand");
                (Engine::new(&engine_config(None)).map_err(|e| anyhow!("{e}"))?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e}"))?;
        World::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s).map_err(|e| anyhow!("{e}"))?;

        let weak = engine.weak();
        std::thread::Builder::new().name("smsbridge-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;

        Ok(Arc::new(Runtime {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            permits: Semaphore::new(slots as usize),
            slots,
            pooled,
            inspection: Arc::new(ProviderContext::inspection()),
        }))
    }

    /// Compiles (or finds compiled) `bytes`, links it against the `adapter`
    /// world and asks its `info()`. `source` names it in errors.
    pub async fn load(&self, bytes: &[u8], source: &str, cache_dir: Option<&Path>) -> Result<Adapter> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let (component, compiled) = self.compile(bytes, digest, source, cache_dir).await?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{source} does not fit the smsbridge:adapter world: {e:#}"))?;
        let (sender, receipts) =
            exports_of(&pre).map_err(|e| anyhow!("{source} does not export smsbridge:adapter/sender: {e:#}"))?;
        let info = self
            .run(&pre, &self.inspection, Call::default(), call_info(sender.clone()))
            .await
            .map_err(|f| anyhow!("{source}: info() failed: {f}"))?;
        Ok(Adapter {
            info,
            sha256: hex::encode(digest),
            source: source.into(),
            compiled,
            loaded_at: std::time::SystemTime::now(),
            served: Default::default(),
            pre,
            sender,
            receipts,
        })
    }

    /// The compiled component for `bytes`: from memory, from `cache_dir`, or
    /// compiled now (off the async threads) and written to `cache_dir`.
    ///
    /// Cache files are named by the component's SHA-256 and the engine's
    /// compatibility hash, so a changed file or a new wasmtime never hits a
    /// stale entry. They are read into memory, never mapped, so rewriting one
    /// cannot change code under a live instance.
    async fn compile(
        &self,
        bytes: &[u8],
        digest: [u8; 32],
        source: &str,
        cache_dir: Option<&Path>,
    ) -> Result<(Component, Compiled)> {
        if let Some(c) = self.compiled.lock().unwrap().get(&digest).cloned() {
            return Ok((c, Compiled::Memory));
        }
        let cache = match cache_dir.map(CacheKey::for_dir).transpose() {
            Ok(key) => key.zip(cache_dir),
            Err(e) => {
                tracing::warn!("compiled-code cache off: {e:#}");
                None
            }
        };
        let cache_file = cache
            .as_ref()
            .map(|(key, dir)| (key, dir.join(format!("{}-{:016x}.cwasm", hex::encode(digest), self.engine_hash()))));
        if let Some((key, file)) = &cache_file
            && let Ok(stored) = std::fs::read(file)
        {
            match key.open(&stored) {
                // SAFETY: the bytes are the ones this host wrote: their MAC
                // verifies under a key kept outside the cache folder. The
                // engine checks its own version and settings on top.
                Some(code) => match unsafe { Component::deserialize(&self.engine, code) } {
                    Ok(c) => {
                        self.compiled.lock().unwrap().insert(digest, c.clone());
                        return Ok((c, Compiled::Disk));
                    }
                    Err(e) => tracing::warn!("ignoring compiled cache {}: {e}", file.display()),
                },
                None => tracing::warn!("compiled cache {} does not verify; compiling again", file.display()),
            }
        }
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await?
            .map_err(|e| anyhow!("{source} is not a loadable WebAssembly component: {e:#}"))?;
        let took = started.elapsed();
        if let Some((key, file)) = &cache_file
            && let Err(e) = write_cache(&component, key, file)
        {
            tracing::warn!("cannot write compiled cache {}: {e:#}", file.display());
        }
        self.compiled.lock().unwrap().insert(digest, component.clone());
        Ok((component, Compiled::Now(took)))
    }

    fn engine_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        h.finish()
    }

    /// What a `.wasm` file is, for `smsbridge adapter inspect`: its kind, its
    /// imports and exports, and whether this host can load it (and if so,
    /// its `info()`), each failure explained.
    pub async fn inspect(&self, bytes: &[u8]) -> Inspection {
        let mut report =
            Inspection { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len(), ..Default::default() };
        report.kind = match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => "WebAssembly component",
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                report.problem = Some(
                    "a core WebAssembly module, not a component: build the adapter for `--target wasm32-wasip2` \
                     (or wrap a module with `wasm-tools component new`)"
                        .into(),
                );
                return Inspection { kind: "core WebAssembly module", ..report };
            }
            _ => {
                report.problem = Some("not WebAssembly at all (no `\\0asm` header)".into());
                return Inspection { kind: "unknown", ..report };
            }
        };
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let component = match tokio::task::spawn_blocking(move || Component::new(&engine, &owned)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                report.problem = Some(format!("does not compile: {e:#}"));
                return report;
            }
            Err(e) => {
                report.problem = Some(format!("compilation stopped: {e}"));
                return report;
            }
        };
        let ty = component.component_type();
        report.imports = ty.imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        report.exports = ty.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let pre = match self.linker.instantiate_pre(&component) {
            Ok(pre) => pre,
            Err(e) => {
                report.problem = Some(format!(
                    "its imports do not fit the smsbridge:adapter world (adapters may import only \
                     smsbridge:adapter/{{http,config,log}} and WASI 0.2): {e:#}"
                ));
                return report;
            }
        };
        let sender = match exports_of(&pre) {
            Ok((sender, _)) => sender,
            Err(e) => {
                report.problem = Some(format!(
                    "it does not export smsbridge:adapter/sender@0.1 (is it built for another world?): {e:#}"
                ));
                return report;
            }
        };
        match self.run(&pre, &self.inspection, Call::default(), call_info(sender)).await {
            Ok(info) => report.info = Some(info),
            Err(f) => report.problem = Some(format!("info() failed: {f}")),
        }
        report
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

    /// Runs `call` on a fresh instance in a fresh store, within `provider`'s
    /// limits; `about` says which message it sends, if any. A failure of the
    /// adapter in the sandbox comes back as `Failure::Fault`, one to set the
    /// sandbox up as `Failure::Host`.
    async fn run<R: Send + 'static>(
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
    async fn run_in<R: Send + 'static>(
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
        let work = async {
            let instance = pre.instantiate_async(&mut store).await?;
            call(&instance, &mut store).await
        };
        let outcome = tokio::time::timeout(provider.limits.timeout + DEADLINE_GRACE, work).await;
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
            deadline: now + provider.limits.timeout,
            started: now,
            in_host: Duration::ZERO,
            memory_cap: MemoryCap::new(provider.limits.memory_bytes),
            message_id: about.message_id,
            codes: about.codes,
            in_doubt: about.in_doubt,
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

/// The engine's settings; `pool` is the number of pool slots, `None` to
/// instantiate on demand.
fn engine_config(pool: Option<u32>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    if let Some(n) = pool {
        // Each memory slot reserves what one memory may grow to, not the
        // default 4 GiB: the largest pool then fits the address space.
        config.memory_reservation(MAX_MEMORY_BYTES as u64);
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            // One send takes at most this many slots, never others' share.
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_SEND)
            .max_memories_per_component(MAX_MEMORIES_PER_SEND)
            .max_tables_per_component(MAX_TABLES_PER_SEND)
            .max_memory_size(MAX_MEMORY_BYTES)
            // Reset a used slot by rewriting its dirty pages rather than
            // unmapping them: madvise's TLB shootdowns and the page faults
            // after it cost more than the copy (see BENCHMARKS.md).
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Writes `component`'s machine code, sealed with `key`, to `file` whole or
/// not at all.
fn write_cache(component: &Component, key: &CacheKey, file: &Path) -> Result<()> {
    let code = key.seal(&component.serialize().map_err(|e| anyhow!("{e}"))?);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, code)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

/// Authenticates compiled-code cache files: whoever can write the cache
/// folder cannot make the host run code it did not compile. The key is the
/// file `<cache_dir>.key` beside the folder (not in it), made once, mode 0600.
struct CacheKey([u8; 32]);

impl CacheKey {
    fn for_dir(dir: &Path) -> Result<CacheKey> {
        let key = crate::keyfile::load_or_create(&crate::keyfile::beside(dir), || None)?;
        let key =
            key.try_into().map_err(|_| anyhow!("{}: not a 32-byte key", crate::keyfile::beside(dir).display()))?;
        Ok(CacheKey(key))
    }

    fn tag(&self, code: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(code);
        mac.finalize().into_bytes().into()
    }

    /// The tag, then the code.
    fn seal(&self, code: &[u8]) -> Vec<u8> {
        let mut sealed = self.tag(code).to_vec();
        sealed.extend_from_slice(code);
        sealed
    }

    /// The code of `sealed`, if its tag verifies.
    fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        use subtle::ConstantTimeEq;
        let (tag, code) = sealed.split_at_checked(32)?;
        bool::from(self.tag(code).ct_eq(tag)).then_some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_opens_only_as_sealed_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let key = CacheKey::for_dir(&cache).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("cache.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(CacheKey::for_dir(&cache).unwrap().0, key.0, "the key is made once");
        let sealed = key.seal(b"machine code");
        assert_eq!(key.open(&sealed), Some(&b"machine code"[..]));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&tampered), None);
        assert_eq!(key.open(b"short"), None);
        let other = CacheKey::for_dir(&dir.path().join("other")).unwrap();
        assert_eq!(other.open(&sealed), None);
    }

    /// Instantiates a core module with `memories` memories of one page each
    /// in a store capped at `limit` bytes, as a send's store is.
    fn instantiate(memories: usize, limit: usize) -> std::result::Result<(), String> {
        let engine = Engine::new(&engine_config(None)).unwrap();
        let text = format!("(module {})", "(memory 1)".repeat(memories));
        let module = wasmtime::Module::new(&engine, wat::parse_str(text).unwrap()).unwrap();
        let mut store = Store::new(&engine, MemoryCap::new(limit));
        store.limiter(|cap| cap);
        wasmtime::Instance::new(&mut store, &module, &[]).map(drop).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn the_pool_is_sized_from_the_providers_limits_and_reserves_at_its_largest() {
        assert_eq!(Runtime::for_sends(1).unwrap().slots(), MIN_POOL_SLOTS);
        let runtime = Runtime::for_sends(1000).unwrap();
        assert_eq!(runtime.slots(), 1000 + POOL_HEADROOM);
        assert!(runtime.pooled());
        let largest = Runtime::for_sends(u32::MAX).unwrap();
        assert_eq!(largest.slots(), MAX_POOL_SLOTS);
        assert!(largest.pooled(), "the largest pool fits the address space");
    }

    #[test]
    fn the_memory_cap_holds_for_the_sum_of_a_stores_memories() {
        let page = 64 << 10;
        assert_eq!(instantiate(2, 2 * page), Ok(()));
        let three = instantiate(3, 2 * page + page / 2).unwrap_err();
        assert!(three.contains("memory limit"), "each memory fits, their sum does not: {three}");
    }
}
