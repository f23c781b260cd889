//! The set of loaded adapters, by name: the bundled ones, then any `.wasm`
//! in the adapters folder, which adds to them or replaces one of the same
//! name. Lookups hand out an `Arc`, so a send keeps the version it started
//! with while the entry is swapped. A file that fails to load leaves the
//! version before it serving, and its error is kept for the admin view.

use crate::artifacts::BUNDLED;
use crate::runtime::{Adapter, Compiled, Runtime};
use anyhow::{Context, Result};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    live: BTreeMap<String, Arc<Adapter>>,
    /// What a deleted file falls back to.
    bundled: BTreeMap<String, Arc<Adapter>>,
    /// The last load failure per name, until a load of that name succeeds.
    errors: BTreeMap<String, LoadError>,
}

#[derive(Debug, Clone)]
pub struct LoadError {
    pub message: String,
    pub at: SystemTime,
}

/// What a reload of one file did.
#[derive(Debug)]
pub enum Change {
    Loaded(String),
    Unchanged(String),
    Unloaded(String),
    Failed(String),
}

impl Registry {
    /// The runtime the adapters are loaded in.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Loads every bundled adapter and every `.wasm` file in `dir`. A file
    /// that fails to load is recorded and skipped; a bundled adapter that
    /// fails is a build defect and an error.
    pub async fn load(
        runtime: Arc<Runtime>,
        dir: Option<&Path>,
        cache_dir: Option<&Path>,
        followers: &Followers<'_>,
    ) -> Result<Registry> {
        let registry = Registry {
            runtime,
            dir: dir.map(Path::to_path_buf),
            cache_dir: cache_dir.map(Path::to_path_buf),
            inner: Default::default(),
        };
        // Compiled side by side: a cold start compiles every bundled adapter.
        let loads = BUNDLED.iter().map(|(_, bytes)| registry.runtime.load(bytes, "bundled", cache_dir));
        let loaded = futures_util::future::join_all(loads).await;
        for ((name, _), adapter) in BUNDLED.iter().zip(loaded) {
            let adapter = Arc::new(adapter?);
            log_loaded(name, &adapter);
            let mut inner = registry.inner.write().unwrap();
            inner.bundled.insert(name.to_string(), adapter.clone());
            inner.live.insert(name.to_string(), adapter);
        }
        if let Some(dir) = dir.filter(|d| d.exists()) {
            // Whoever can write here chooses the code that sees every OTP.
            let real = std::fs::canonicalize(dir).with_context(|| format!("adapters folder {}", dir.display()))?;
            crate::trust::own_folder(&real, "adapters folder")?;
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .with_context(|| format!("cannot list adapters folder {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_adapter_file(p))
                .collect();
            files.sort();
            for path in files {
                registry.reload(&path, followers).await;
            }
        }
        Ok(registry)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Loads, replaces or unloads the adapter of file `path`, as the file
    /// now is. The old version keeps serving unless the new one loads, and
    /// unless it would widen egress: a version that declares a host the one
    /// serving now does not, while a provider (named by `followers`) takes
    /// the adapter's default hosts as its allowlist, is refused.
    pub async fn reload(&self, path: &Path, followers: &Followers<'_>) -> Change {
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.unload(&name),
            Err(e) => return self.failed(&name, format!("cannot read {}: {e}", path.display())),
        };
        let current = self.get(&name);
        if current
            .as_ref()
            .is_some_and(|a| a.source != "bundled" && a.sha256 == hex::encode(sha2::Sha256::digest(&bytes)))
        {
            // The file is back to what serves: an earlier failure is moot.
            self.inner.write().unwrap().errors.remove(&name);
            return Change::Unchanged(name);
        }
        match self.runtime.load(&bytes, &path.display().to_string(), self.cache_dir.as_deref()).await {
            Ok(adapter) => {
                if let Some(why) = widens_egress(&name, current.as_deref(), &adapter, followers) {
                    return self.failed(&name, why);
                }
                let adapter = Arc::new(adapter);
                log_loaded(&name, &adapter);
                let mut inner = self.inner.write().unwrap();
                inner.errors.remove(&name);
                inner.live.insert(name.clone(), adapter);
                self.forget_replaced(&inner);
                crate::telemetry::reload(&name, "loaded");
                Change::Loaded(name)
            }
            Err(e) => self.failed(&name, format!("{e:#}")),
        }
    }

    fn failed(&self, name: &str, message: String) -> Change {
        tracing::error!(adapter = name, "adapter not loaded; the version before it keeps serving: {message}");
        crate::telemetry::reload(name, "failed");
        let error = LoadError { message: message.clone(), at: SystemTime::now() };
        self.inner.write().unwrap().errors.insert(name.into(), error);
        Change::Failed(message)
    }

    /// A deleted file: its name falls back to the bundled adapter, if any.
    fn unload(&self, name: &str) -> Change {
        let mut inner = self.inner.write().unwrap();
        inner.errors.remove(name);
        crate::telemetry::reload(name, "unloaded");
        match inner.bundled.get(name).cloned() {
            Some(bundled) => {
                tracing::info!(adapter = name, "adapter file removed; the bundled version serves again");
                inner.live.insert(name.into(), bundled);
            }
            None => {
                if inner.live.remove(name).is_some() {
                    tracing::warn!(adapter = name, "adapter file removed; adapter unloaded");
                }
            }
        }
        self.forget_replaced(&inner);
        Change::Unloaded(name.into())
    }

    /// Drops the compiled code of builds no name serves any more; sends
    /// still running on one keep it until they finish.
    fn forget_replaced(&self, inner: &Inner) {
        let in_use: Vec<String> = inner.live.values().chain(inner.bundled.values()).map(|a| a.sha256.clone()).collect();
        self.runtime.keep_only(&in_use);
    }

    pub fn get(&self, name: &str) -> Option<Arc<Adapter>> {
        self.inner.read().unwrap().live.get(name).cloned()
    }

    pub fn list(&self) -> Vec<(String, Arc<Adapter>)> {
        self.inner.read().unwrap().live.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn errors(&self) -> BTreeMap<String, LoadError> {
        self.inner.read().unwrap().errors.clone()
    }
}

/// For an adapter name, the providers whose allowlist is that adapter's
/// default hosts (they set no `allow_hosts`).
pub type Followers<'a> = dyn Fn(&str) -> Vec<String> + Send + Sync + 'a;

/// Why `new` may not replace `current`: hosts it declares that `current`
/// does not, while providers follow its defaults.
fn widens_egress(name: &str, current: Option<&Adapter>, new: &Adapter, followers: &Followers<'_>) -> Option<String> {
    let current = current?;
    let added: Vec<&str> =
        new.info.default_hosts.iter().filter(|h| !current.info.default_hosts.contains(h)).map(String::as_str).collect();
    let providers = followers(name);
    if added.is_empty() || providers.is_empty() {
        return None;
    }
    Some(format!(
        "version {} declares hosts that version {} does not ({}): refused, as provider(s) {} would be allowed to \
         reach them; list every host they may reach in their `allow_hosts` to accept it",
        new.info.version,
        current.info.version,
        added.join(", "),
        providers.join(", ")
    ))
}

/// `.wasm` files only: editors' and copiers' temporary names are ignored.
pub fn is_adapter_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "wasm")
        && !path.file_name().unwrap_or_default().to_string_lossy().starts_with('.')
}

fn log_loaded(name: &str, adapter: &Adapter) {
    let how = match adapter.compiled {
        Compiled::Now(took) => format!("compiled in {} ms", took.as_millis()),
        Compiled::Memory => "already compiled".into(),
        Compiled::Disk => "from the compiled-code cache".into(),
    };
    tracing::info!(
        adapter = name,
        version = %adapter.info.version,
        source = %adapter.source,
        sha256 = %&adapter.sha256[..12],
        "adapter loaded ({how})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` with a custom section appended: the same adapter, another build.
    fn build(bytes: &[u8], n: u8) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out.extend_from_slice(&[0, 3, 2, b'v', n]);
        out
    }

    #[tokio::test]
    async fn a_replaced_build_leaves_no_compiled_code_behind() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new().unwrap();
        let registry = Registry::load(runtime.clone(), Some(dir.path()), None, &|_| Vec::new()).await.unwrap();
        let bundled = runtime.compiled_builds();
        let outbox = BUNDLED.iter().find(|(name, _)| *name == "outbox").unwrap().1;
        let file = dir.path().join("outbox.wasm");
        for n in 0..4 {
            std::fs::write(&file, build(outbox, n)).unwrap();
            assert!(matches!(registry.reload(&file, &|_| Vec::new()).await, Change::Loaded(_)));
            assert_eq!(
                runtime.compiled_builds(),
                bundled + 1,
                "only the build serving now is kept, beside the bundled"
            );
        }
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(registry.reload(&file, &|_| Vec::new()).await, Change::Unloaded(_)));
        assert_eq!(runtime.compiled_builds(), bundled);
    }
}
