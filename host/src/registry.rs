//! The set of loaded adapters, by name: the bundled ones, then any `.wasm`
//! in the adapters folder, which adds to them or replaces one of the same
//! name. Lookups hand out an `Arc`, so a send keeps the adapter it started
//! with while the entry is swapped.

use crate::artifacts::BUNDLED;
use crate::runtime::{Adapter, Runtime};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct Registry {
    adapters: RwLock<BTreeMap<String, Arc<Adapter>>>,
}

impl Registry {
    /// Loads every bundled adapter and every `.wasm` file in `dir`. A file
    /// that fails to load is reported and skipped; a bundled adapter that
    /// fails is a build defect and an error.
    pub async fn load(runtime: &Runtime, dir: Option<&Path>) -> Result<(Registry, Vec<anyhow::Error>)> {
        let registry = Registry::default();
        for (name, bytes) in BUNDLED {
            let adapter = runtime.load(bytes, &format!("bundled adapter `{name}`")).await?;
            registry.insert(name, adapter);
        }
        let mut errors = Vec::new();
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .with_context(|| format!("cannot list adapters folder {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            for path in files {
                match Self::load_file(runtime, &path).await {
                    Ok((name, adapter)) => registry.insert(&name, adapter),
                    Err(e) => errors.push(e),
                }
            }
        }
        Ok((registry, errors))
    }

    /// Loads one `.wasm` file; the adapter's name is the file's stem.
    pub async fn load_file(runtime: &Runtime, path: &Path) -> Result<(String, Adapter)> {
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let adapter = runtime.load(&bytes, &path.display().to_string()).await?;
        Ok((name, adapter))
    }

    pub fn insert(&self, name: &str, adapter: Adapter) {
        self.adapters
            .write()
            .unwrap()
            .insert(name.to_string(), Arc::new(adapter));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Adapter>> {
        self.adapters.read().unwrap().get(name).cloned()
    }

    pub fn list(&self) -> Vec<(String, Arc<Adapter>)> {
        self.adapters
            .read()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
