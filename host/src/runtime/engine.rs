//! The process-wide engine: its settings, the instance pool sized from the
//! providers' limits, the epoch ticker that CPU budgets count by, and the
//! linker, which every import adds itself to.

use super::sandbox::Sandbox;
use super::{config, http, log, smpp};
use crate::config::MAX_MEMORY_BYTES;
use anyhow::Result;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Pool slots for a runtime made without a config (tools, tests).
pub(super) const DEFAULT_POOL_SLOTS: u32 = 1024;
/// Bounds on the pool: each slot reserves address space, not memory.
pub(super) const MIN_POOL_SLOTS: u32 = 64;
pub const MAX_POOL_SLOTS: u32 = 12_000;
/// Slots beyond the providers' limits, for `info()` on adapter loads.
pub(super) const POOL_HEADROOM: u32 = 32;
/// Pool slots one send's component may take: enough for a Rust, JavaScript
/// (jco) or Python (componentize-py) adapter.
const MAX_CORE_INSTANCES_PER_SEND: u32 = 32;
const MAX_MEMORIES_PER_SEND: u32 = 4;
const MAX_TABLES_PER_SEND: u32 = 16;
/// How often the engine's epoch advances: the granularity of CPU budgets.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// An engine with a pool of `slots`, or, when the pool cannot be reserved,
/// one that instantiates on demand (and says so: false).
pub(super) fn engine(slots: u32) -> Result<(Engine, bool)> {
    let engine = match Engine::new(&engine_config(Some(slots))) {
        Ok(engine) => (engine, true),
        Err(e) => {
            // e.g. a virtual address space limit too small for the pool.
            tracing::warn!("pooling allocator unavailable ({e}); instantiating on demand");
            (Engine::new(&engine_config(None)).map_err(super::error)?, false)
        }
    };
    let weak = engine.0.weak();
    std::thread::Builder::new().name("smsbridge-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    Ok(engine)
}

/// WASI 0.2, then each of the contract's imports: adding an import is one
/// module and one line here.
pub(super) fn linker(engine: &Engine) -> Result<Linker<Sandbox>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(super::error)?;
    http::add_to_linker(&mut linker)?;
    config::add_to_linker(&mut linker)?;
    log::add_to_linker(&mut linker)?;
    smpp::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The engine's settings; `pool` is the number of pool slots, `None` to
/// instantiate on demand.
pub(super) fn engine_config(pool: Option<u32>) -> wasmtime::Config {
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
