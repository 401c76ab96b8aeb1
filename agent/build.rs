//! Records the tokio version this build resolved, for `ProcessInfo.tokio_version`.
//!
//! Cargo tells a build script nothing about its dependencies' versions, and
//! running `cargo metadata` here would be slow, so this reads the nearest
//! `Cargo.lock` above the crate (the workspace's, when building in one). A
//! build from a registry copy has no lock file above it and says "unknown".

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let version = lock_file()
        .and_then(|lock| {
            println!("cargo::rerun-if-changed={}", lock.display());
            let text = std::fs::read_to_string(&lock).ok()?;
            tokio_version(&text)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=TASKSCOPE_TOKIO_VERSION={version}");
}

fn lock_file() -> Option<PathBuf> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    manifest_dir.ancestors().map(|dir| dir.join("Cargo.lock")).find(|lock| Path::is_file(lock))
}

/// The highest version of the `tokio` package in a `Cargo.lock`.
fn tokio_version(lock: &str) -> Option<String> {
    lock.split("[[package]]")
        .filter(|package| package.lines().any(|line| line.trim() == "name = \"tokio\""))
        .filter_map(|package| {
            let line = package.lines().find(|line| line.trim_start().starts_with("version = "))?;
            Some(line.split('"').nth(1)?.to_owned())
        })
        .max_by_key(|version| version.split('.').map(|n| n.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>())
}
