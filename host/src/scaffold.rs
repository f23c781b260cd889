//! `smsbridge adapter new`: a standalone adapter crate on the SDK, ready to
//! build, inspect, test against its fixtures and deploy.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The files of a new adapter, as (path in the crate, template).
const TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/adapter/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../templates/adapter/lib.rs")),
    ("README.md", include_str!("../templates/adapter/README.md")),
    ("fixtures/accepted.toml", include_str!("../templates/adapter/fixtures/accepted.toml")),
    ("fixtures/invalid-number.toml", include_str!("../templates/adapter/fixtures/invalid-number.toml")),
    (".gitignore", include_str!("../templates/adapter/gitignore")),
];

/// What `adapter new` was asked for.
pub struct Scaffold {
    /// Crate and adapter name: lowercase letters, digits and `-`.
    pub name: String,
    /// The provider's display name; defaults to `name`.
    pub provider: Option<String>,
    /// The provider's API host; defaults to `api.example.com`.
    pub host: Option<String>,
    /// The SDK crate's folder; defaults to the one this binary was built from.
    pub sdk: Option<PathBuf>,
}

/// The SDK next to the sources this binary was built from, when it is still there.
pub fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/sdk");
    sdk.join("Cargo.toml").exists().then(|| sdk.canonicalize().ok()).flatten()
}

/// Checks `name` as an adapter name; the reason when it is not one.
pub fn check_name(name: &str) -> Result<(), String> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() || name.len() > 64 || !first_ok || !rest_ok || name.ends_with('-') {
        return Err(format!(
            "`{name}` is not an adapter name: use 1-64 lowercase letters, digits and `-`, starting with a letter"
        ));
    }
    Ok(())
}

/// Writes the crate into `dir` (which must not exist yet, or be empty) and
/// returns the files written.
pub fn create(spec: &Scaffold, dir: &Path) -> Result<Vec<PathBuf>> {
    check_name(&spec.name).map_err(anyhow::Error::msg)?;
    let sdk = match &spec.sdk {
        Some(sdk) => sdk.canonicalize().with_context(|| format!("--sdk {}", sdk.display()))?,
        None => default_sdk().context(
            "cannot find the smsbridge SDK this binary was built with; pass --sdk PATH (the `adapters/sdk` \
             folder of an smsbridge checkout)",
        )?,
    };
    if !sdk.join("Cargo.toml").exists() {
        bail!("--sdk {}: no Cargo.toml there; point it at the `adapters/sdk` folder", sdk.display());
    }
    if dir.exists() && dir.read_dir().with_context(|| dir.display().to_string())?.next().is_some() {
        bail!("{} already exists and is not empty; pick another --dir or name", dir.display());
    }

    let host = spec.host.clone().unwrap_or_else(|| "api.example.com".into());
    if host.is_empty() || host.contains(['/', ':', ' ', '"', '\\']) {
        bail!("--host `{host}`: give a bare host name such as api.example.com");
    }
    let provider = spec.provider.clone().unwrap_or_else(|| spec.name.clone());
    let env = format!("{}_API_KEY", spec.name.to_uppercase().replace('-', "_"));
    let wasm = format!("{}.wasm", spec.name.replace('-', "_"));
    let fill = |text: &str| {
        text.replace("{{name}}", &spec.name)
            .replace("{{provider}}", &provider.replace(['"', '\\'], "'"))
            .replace("{{host}}", &host)
            .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
            .replace("{{env}}", &env)
            .replace("{{wasm}}", &wasm)
    };

    let mut written = Vec::new();
    for (path, template) in TEMPLATE {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).with_context(|| path.display().to_string())?;
        std::fs::write(&path, fill(template)).with_context(|| path.display().to_string())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_joined_by_dashes() {
        for good in ["acme", "acme-sms", "sms2go", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Acme", "2go", "acme_sms", "acme-", "a b", "../x", &"a".repeat(65)] {
            let why = check_name(bad).unwrap_err();
            assert!(why.contains("not an adapter name"), "{bad}: {why}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_an_existing_folder_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Scaffold {
            name: "acme-sms".into(),
            provider: Some("Acme \"SMS\"".into()),
            host: Some("api.acme.test".into()),
            sdk: None,
        };
        let files = create(&spec, &dir.path().join("acme-sms")).unwrap();
        assert_eq!(files.len(), TEMPLATE.len());
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(!text.contains("{{"), "{} keeps a placeholder", file.display());
        }
        let manifest = std::fs::read_to_string(dir.path().join("acme-sms/Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"acme-sms\""));
        assert!(manifest.contains("smsbridge adapter for Acme 'SMS'"));
        let readme = std::fs::read_to_string(dir.path().join("acme-sms/README.md")).unwrap();
        assert!(readme.contains("release/acme_sms.wasm") && readme.contains("ACME_SMS_API_KEY"));

        let again = create(&spec, &dir.path().join("acme-sms")).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let bad_host = Scaffold { host: Some("https://api.acme.test".into()), ..spec };
        assert!(create(&bad_host, &dir.path().join("other")).unwrap_err().to_string().contains("bare host"));
    }
}
