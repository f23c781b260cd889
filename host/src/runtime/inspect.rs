//! `smsbridge adapter inspect`: what a `.wasm` file is, and whether this
//! host can load it, each failure explained.

use super::{Prepared, Runtime, Unfit, cache};
use crate::outcome::AdapterInfo;
use sha2::{Digest, Sha256};

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

impl Runtime {
    /// What a `.wasm` file is: its kind, its imports and exports, and whether
    /// this host can load it (and if so, its `info()`).
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
        let component = match cache::compile_now(&self.engine, bytes).await {
            Ok(c) => c,
            Err(e) => {
                report.problem = Some(format!("does not compile: {e:#}"));
                return report;
            }
        };
        let ty = component.component_type();
        report.imports = ty.imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        report.exports = ty.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        match self.prepare(&component).await {
            Ok(Prepared { info, .. }) => report.info = Some(info),
            Err(Unfit::Imports(e)) => {
                report.problem = Some(format!(
                    "its imports do not fit the smsbridge:adapter world (adapters may import only \
                     smsbridge:adapter/{{http,config,log}} and WASI 0.2): {e:#}"
                ))
            }
            Err(Unfit::Exports(e)) => {
                report.problem = Some(format!(
                    "it does not export smsbridge:adapter/sender@0.1 (is it built for another world?): {e:#}"
                ))
            }
            Err(Unfit::Info(f)) => report.problem = Some(format!("info() failed: {f}")),
        }
        report
    }
}
