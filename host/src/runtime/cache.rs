//! Compiled components: each adapter build is compiled once per process,
//! and its machine code kept in a cache folder across restarts, sealed
//! with a key outside that folder.

use anyhow::{Result, anyhow};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Cranelift compiled it, taking this long.
    Now(Duration),
    /// Found compiled in this process.
    Memory,
    /// Found compiled in the cache folder.
    Disk,
}

/// The components compiled in this process, by the SHA-256 of their bytes.
#[derive(Default)]
pub(super) struct Cache {
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

impl Cache {
    /// The compiled component for `bytes`: from memory, from `cache_dir`, or
    /// compiled now (off the async threads) and written to `cache_dir`.
    ///
    /// Cache files are named by the component's SHA-256 and the engine's
    /// compatibility hash, so a changed file or a new wasmtime never hits a
    /// stale entry. They are read into memory, never mapped, so rewriting one
    /// cannot change code under a live instance.
    pub(super) async fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: [u8; 32],
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
            .map(|(key, dir)| (key, dir.join(format!("{}-{:016x}.cwasm", hex::encode(digest), engine_hash(engine)))));
        if let Some((key, file)) = &cache_file
            && let Ok(stored) = std::fs::read(file)
        {
            match key.open(&stored) {
                // SAFETY: the bytes are the ones this host wrote: their MAC
                // verifies under a key kept outside the cache folder. The
                // engine checks its own version and settings on top.
                Some(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(c) => {
                        self.compiled.lock().unwrap().insert(digest, c.clone());
                        return Ok((c, Compiled::Disk));
                    }
                    Err(e) => tracing::warn!("ignoring compiled cache {}: {e}", file.display()),
                },
                None => tracing::warn!("compiled cache {} does not verify; compiling again", file.display()),
            }
        }
        let started = Instant::now();
        let component = compile_now(engine, bytes).await?;
        let took = started.elapsed();
        if let Some((key, file)) = &cache_file
            && let Err(e) = write_cache(&component, key, file)
        {
            tracing::warn!("cannot write compiled cache {}: {e:#}", file.display());
        }
        self.compiled.lock().unwrap().insert(digest, component.clone());
        Ok((component, Compiled::Now(took)))
    }

    /// Forgets the builds no adapter in `in_use` (hex SHA-256s) is: a
    /// hot-reloaded build no provider runs any more is not kept for the
    /// life of the process.
    pub(super) fn retain(&self, in_use: &[String]) {
        self.compiled.lock().unwrap().retain(|digest, _| in_use.iter().any(|d| *d == hex::encode(digest)));
    }

    pub(super) fn len(&self) -> usize {
        self.compiled.lock().unwrap().len()
    }
}

/// Compiles `bytes` on the blocking pool: Cranelift takes seconds.
pub(super) async fn compile_now(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    let (engine, owned) = (engine.clone(), bytes.to_vec());
    tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
        .await
        .map_err(|e| anyhow!("compilation stopped: {e}"))?
        .map_err(|e| anyhow!("{e:?}"))
}

fn engine_hash(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// Writes `component`'s machine code, sealed with `key`, to `file` whole or
/// not at all.
fn write_cache(component: &Component, key: &CacheKey, file: &Path) -> Result<()> {
    let code = key.seal(&component.serialize().map_err(super::error)?);
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
}
