//! The workspace passes clippy and rustdoc with warnings as errors. Why a
//! test: both catch what review misses (a lint on an `unwrap` in a library,
//! a broken intra-doc link in a module doc that says why), and a check that
//! only runs by hand is one that drifts. Its own test binary, so that the
//! build it starts does not share the two cores with timing-sensitive tests
//! of another binary (cargo runs test binaries one after the other), and its
//! own target directory, so that it never waits on the lock of the build
//! that runs it. clippy is part of every rustup toolchain but the minimal
//! profile; `.ci/run` adds it there.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo ARGS` at the workspace root, into `target/lints`.
fn cargo(args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = root().join("target").join("lints");
    let mut command = Command::new(cargo);
    command.args(args).current_dir(root()).env("CARGO_TARGET_DIR", target);
    // Set by `cargo test` for the test binary; the nested build must not
    // take them for its own.
    for var in ["RUSTFLAGS", "RUSTDOCFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_ENCODED_RUSTDOCFLAGS"] {
        command.env_remove(var);
    }
    command.output().unwrap_or_else(|e| panic!("run `cargo {}`: {e}", args.join(" ")))
}

fn missing(stderr: &str) -> bool {
    stderr.contains("is not installed") || stderr.contains("no such command")
}

#[test]
fn clippy_and_rustdoc_find_nothing() {
    // One test, the two in a row: both build the dependencies' metadata
    // into the same directory, and the second reuses what the first built.
    let clippy = cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    let stderr = String::from_utf8_lossy(&clippy.stderr);
    assert!(!missing(&stderr), "clippy is missing (`rustup component add clippy`; .ci/run installs it): {stderr}");
    assert!(clippy.status.success(), "`cargo clippy --workspace --all-targets -- -D warnings` fails:\n{stderr}");

    // `--config` appends to `.cargo/config.toml`'s `rustdocflags` (whose
    // cfg the agent's docs need), where `RUSTDOCFLAGS` would replace them.
    let deny = "build.rustdocflags=[\"-D\", \"warnings\"]";
    let doc = cargo(&["doc", "--workspace", "--no-deps", "--locked", "--config", deny]);
    let stderr = String::from_utf8_lossy(&doc.stderr);
    assert!(doc.status.success(), "`cargo doc --workspace --no-deps --config '{deny}'` warns:\n{stderr}");
}
