//! The workspace is formatted as `rustfmt.toml` says: `cargo fmt --all
//! --check` finds nothing to change. Why a test: a change that leaves code
//! unformatted fails where every change is checked, instead of surfacing as
//! noise in the next change's diff. rustfmt is part of every rustup toolchain
//! but the minimal profile; `.ci/run` adds it there.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_workspace_is_rustfmt_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output =
        Command::new(cargo).args(["fmt", "--all", "--check"]).current_dir(&root).output().expect("run `cargo fmt`");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("is not installed") && !stderr.contains("no such command"),
        "rustfmt is missing (`rustup component add rustfmt`; .ci/run installs it): {stderr}"
    );
    assert!(
        output.status.success(),
        "`cargo fmt --all --check` wants changes; run `cargo fmt --all`:\n{}{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
}
