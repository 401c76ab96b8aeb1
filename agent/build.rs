//! Records what this build knows of its tokio:
//!
//! - the version, for `ProcessInfo.tokio_version`. Cargo tells a build
//!   script nothing about its dependencies' versions, and running `cargo
//!   metadata` here would be slow, so this reads the nearest `Cargo.lock`
//!   above the build's output directory (the program's own workspace, with
//!   the default target directory), else above the crate. "unknown" when
//!   neither has one.
//! - the taskdump fixes it carries: a tokio patched with `patches/tokio`
//!   announces them to the crates that depend on it (`links = "tokio"`,
//!   metadata `taskdump_fixes`), which cargo hands to this script as
//!   `DEP_TOKIO_TASKDUMP_FIXES`. The agent takes tokio's own task dump by
//!   default only when they are all there (see `src/dump/policy.rs`).

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
    println!("cargo::rerun-if-env-changed=DEP_TOKIO_TASKDUMP_FIXES");
    let fixes = std::env::var("DEP_TOKIO_TASKDUMP_FIXES").unwrap_or_default();
    let fixes: String = fixes.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | '-')).collect();
    println!("cargo::rustc-env=TASKSCOPE_TOKIO_FIXES={fixes}");
}

fn lock_file() -> Option<PathBuf> {
    let above = |var: &str| {
        let dir = PathBuf::from(std::env::var_os(var)?);
        dir.ancestors().map(|dir| dir.join("Cargo.lock")).find(|lock| Path::is_file(lock))
    };
    above("OUT_DIR").or_else(|| above("CARGO_MANIFEST_DIR"))
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
