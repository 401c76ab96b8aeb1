//! The example programs, started for a test: the example binaries belong to
//! another package, so cargo does not build them for this one's tests. The
//! first test to need them runs `cargo build -p taskscope-examples --bins`
//! into the same target directory and profile (a no-op under `cargo test
//! --workspace`, which already built them).

#![allow(dead_code)] // each test binary uses what it needs

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{socket_in, wait_for};

/// Directory of the binaries being tested (`target/debug`).
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskscope")).parent().expect("bin dir").to_path_buf()
}

/// Builds the examples once per test binary; the error is kept for every test.
pub fn examples_built() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = bin_dir();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "taskscope-examples", "--bins", "--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .map_err(|e| format!("cannot run cargo to build the examples: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("building the examples failed: {status}"))
        }
    })
}

/// Builds the examples (see [`examples_built`]), failing the test when that fails.
pub fn need_examples() {
    if let Err(e) = examples_built() {
        panic!("{e}");
    }
}

/// A running example, killed on drop.
pub struct Example {
    pub child: Child,
    pub socket: PathBuf,
}

impl Example {
    /// Starts `name args...` with `TASKSCOPE_DIR=dir` and waits for its socket.
    pub fn start(dir: &std::path::Path, name: &str, args: &[&str]) -> Example {
        Example::start_with(dir, name, args, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with(dir: &std::path::Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Example {
        need_examples();
        let child = Command::new(bin_dir().join(name))
            .args(args)
            // The default on this tokio: its own task dump, which harms the
            // program it dumps, is not taken; only the safe capture runs.
            .env_remove("TASKSCOPE_TOKIO_DUMPS")
            .envs(env.iter().copied())
            .env("TASKSCOPE_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let socket = socket_in(dir, child.id());
        assert!(wait_for(&socket, Duration::from_secs(20)), "{name} never created {}", socket.display());
        Example { child, socket }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Kills it now (a test of what follows a target's exit).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        self.kill();
    }
}
