//! What smsbridge finds on disk is trusted only when nobody else could have
//! put it there: a key file another user can read or replace, a provider's
//! folder that is a link to somewhere else, or an adapters folder anyone can
//! write to would hand that user the OTPs.

use anyhow::{Result, bail};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `path` is a regular file (not a link), owned by this process's user,
/// and neither its group nor others may read or write it.
pub fn private_file(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        bail!("{what} {} is not a regular file (a symbolic link is refused)", path.display());
    }
    if meta.uid() != me() {
        bail!("{what} {} belongs to uid {}, not to this user (uid {})", path.display(), meta.uid(), me());
    }
    if meta.mode() & 0o077 != 0 {
        bail!("{what} {} may be read by other users (mode {:o}): chmod 600 it", path.display(), meta.mode() & 0o777);
    }
    Ok(())
}

/// `path` is a folder itself (not a link to one), owned by this user or
/// root, and not writable by its group or others.
pub fn own_folder(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        bail!("{what} {} is a symbolic link; name the folder itself", path.display());
    }
    if !meta.is_dir() {
        bail!("{what} {} is not a folder", path.display());
    }
    if meta.uid() != me() && meta.uid() != 0 {
        bail!("{what} {} belongs to uid {}, not to this user (uid {}) or root", path.display(), meta.uid(), me());
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{what} {} may be written by other users (mode {:o}): chmod go-w it",
            path.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shared_files_links_and_folders_others_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(&key, [1u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(private_file(&key, "key file").unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        private_file(&key, "key file").unwrap();
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(private_file(&link, "key file").is_err());

        let folder = dir.path().join("adapters");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        own_folder(&folder, "adapters folder").unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(own_folder(&folder, "adapters folder").unwrap_err().to_string().contains("written by other users"));
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let planted = dir.path().join("outbox");
        std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        assert!(own_folder(&planted, "data_dir").unwrap_err().to_string().contains("symbolic link"));
    }
}
