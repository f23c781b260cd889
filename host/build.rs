//! Compiles the adapter crates in `../adapters` to `wasm32-wasip2` components,
//! so `cargo build` and `cargo test` need no extra step and no `.wasm` file is
//! ever committed. Generates `$OUT_DIR/adapters.rs`:
//! - `BUNDLED`: every product adapter's bytes, shipped inside the binary;
//! - one `<NAME>_WASM` path constant per adapter, test-only ones included,
//!   so tests name a built component instead of a path.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates that are not adapters.
const NOT_ADAPTERS: &[&str] = &["sdk", "receipts", "segments"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest_dir.parent().unwrap().join("adapters");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-changed={}", manifest_dir.parent().unwrap().join("wit").display());
    let (product, testing) = adapter_crates(&guests);
    // The guest crates only: `adapters/examples` holds node_modules and
    // Python caches, which must not rebuild the host.
    for path in ["Cargo.toml", "Cargo.lock", "testing"].into_iter().chain(NOT_ADAPTERS.iter().copied()) {
        println!("cargo:rerun-if-changed={}", guests.join(path).display());
    }
    for name in &product {
        println!("cargo:rerun-if-changed={}", guests.join(name).display());
    }
    // One target dir for every host profile: the guests are always built in
    // release, so a debug and a release host share the same artifacts.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.parent().unwrap().join("target"))
        .join("adapters");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for name in product.iter().chain(&testing) {
        cmd.arg("-p").arg(name);
    }
    // The host's own flags (coverage, sanitizers, profiles) are not the guests'.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_ENCODED_")
            || key.starts_with("CARGO_BUILD_")
            || key == "RUSTFLAGS"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CARGO_TARGET_DIR"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().expect("failed to run cargo to build the adapters");
    assert!(
        status.success(),
        "building the adapters failed; is the target installed? `rustup target add wasm32-wasip2`"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut src = String::new();
    src.push_str("/// Adapters built from `adapters/`, shipped inside the binary.\n");
    src.push_str("pub const BUNDLED: &[(&str, &[u8])] = &[\n");
    for name in &product {
        let path = wasm_path(&wasm_dir, name);
        writeln!(src, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    src.push_str("];\n");
    for name in product.iter().chain(&testing) {
        let path = wasm_path(&wasm_dir, name);
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(src, "/// The built `{name}` component.").unwrap();
        writeln!(src, "pub const {constant}_WASM: &str = {:?};", path.display().to_string()).unwrap();
    }
    std::fs::write(out_dir.join("adapters.rs"), src).unwrap();
}

/// The built component of crate `name`: a library's file name has `_` for
/// `-`, a binary's keeps the package name.
fn wasm_path(dir: &Path, name: &str) -> PathBuf {
    let library = dir.join(format!("{}.wasm", name.replace('-', "_")));
    let binary = dir.join(format!("{name}.wasm"));
    let path = if library.exists() { library } else { binary };
    assert!(path.exists(), "the adapter build produced no {}", path.display());
    path
}

/// Product adapter crates (one folder each under `adapters/`) and test-only
/// ones (under `adapters/testing/`), by package name, sorted.
fn adapter_crates(guests: &Path) -> (Vec<String>, Vec<String>) {
    let list = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("Cargo.toml").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !NOT_ADAPTERS.contains(&n.as_str()))
            .collect();
        names.sort();
        names
    };
    (list(guests), list(&guests.join("testing")))
}
