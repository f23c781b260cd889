//! Keys that smsbridge makes once and keeps in a file of their own, mode
//! 0600, apart from what they protect: the compiled-code cache's MAC key
//! beside the cache folder, the number-hash key beside the message record.

use anyhow::{Context, Result, anyhow};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `path` with `.key` added to its file name: `var/cache` → `var/cache.key`.
pub fn beside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// The 32-byte key in `path`, made there first if the file does not exist:
/// from `initial` when it gives one (a key moved from elsewhere), else at
/// random.
pub fn load_or_create(path: &Path, initial: impl FnOnce() -> Option<Vec<u8>>) -> Result<Vec<u8>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let key = match initial() {
                Some(key) => key,
                None => {
                    let mut key = vec![0u8; 32];
                    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for {}: {e}", path.display()))?;
                    key
                }
            };
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A key another user planted or can read is no secret.
            crate::trust::private_file(path, "key file")?;
            let key = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if key.len() < 16 {
                return Err(anyhow!("{} holds {} bytes, not a key", path.display(), key.len()));
            }
            Ok(key)
        }
        Err(e) => Err(anyhow!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = beside(&dir.path().join("var/messages.db"));
        assert!(path.ends_with("var/messages.db.key"));
        let key = load_or_create(&path, || None).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path, || Some(vec![7; 32])).unwrap(), key, "made once");
        let moved = beside(&dir.path().join("other"));
        assert_eq!(load_or_create(&moved, || Some(vec![7; 32])).unwrap(), vec![7; 32]);
    }

    #[test]
    fn a_key_file_others_can_read_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("cache.key");
        std::fs::write(&planted, [9u8; 32]).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&planted, || None).unwrap_err().to_string();
        assert!(err.contains("may be read by other users"), "{err}");
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&planted, &link).unwrap();
        assert!(load_or_create(&link, || None).is_err());
    }
}
