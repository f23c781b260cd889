//! Watches the adapters folder and the config file, and hands each change
//! to the gateway off the request path.
//!
//! Events are debounced, so a file written in several steps is read once it
//! has been quiet; a file caught half-written fails validation, keeps the old
//! version serving, and loads on the event its last write brings.

use crate::gateway::Gateway;
use crate::registry::is_adapter_file;
use anyhow::{Context, Result};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer, notify::RecommendedWatcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last event before a file is read.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Keeps the watch running while it lives.
pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Starts watching what `gateway`'s config names: its adapters folder (if
/// it exists) and its config file (if it came from one).
pub fn start(gateway: Arc<Gateway>) -> Result<Watch> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let tx_rescan = tx.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
        Ok(events) => {
            let _ = tx.send(events.into_iter().map(|e| e.path).collect());
        }
        Err(e) => tracing::warn!("file watch error: {e}"),
    })
    .context("cannot start the file watcher")?;

    let adapters_dir = gateway.registry.dir().filter(|d| d.is_dir()).map(canonical);
    if let Some(dir) = &adapters_dir {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        tracing::info!("watching {} for adapters", dir.display());
    }
    let config_file = gateway.routing().config.path.clone().map(|p| canonical(&p));
    if let Some(file) = &config_file {
        // Watch the folder: editors replace the file rather than write it.
        let parent = file.parent().unwrap_or(Path::new("."));
        debouncer
            .watcher()
            .watch(parent, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", parent.display()))?;
    }

    // A file dropped in between the first load and the watch starting
    // brings no event: look once now. Unchanged files cost a hash.
    if let Some(dir) = &adapters_dir {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_adapter_file(p)).collect())
            .unwrap_or_default();
        let _ = tx_rescan.send(files);
    }

    tokio::spawn(async move {
        while let Some(mut paths) = rx.recv().await {
            paths.sort();
            paths.dedup();
            for path in paths {
                tracing::debug!("file event: {}", path.display());
                if config_file.as_ref() == Some(&path) {
                    gateway.reload_config().await;
                } else if adapters_dir.as_deref() == path.parent() && is_adapter_file(&path) {
                    gateway.reload_adapter(&path).await;
                }
            }
        }
    });
    Ok(Watch { _debouncer: debouncer })
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
