//! The other binaries the bench runs: the `taskscope` CLI (for `stack`) and
//! `taskscope-bench-lean` (for `plain-lean` and `lean`), found next to this
//! executable.
//!
//! Why build them here: a bench that silently times a missing or stale
//! binary measures the wrong code. When the bench runs through cargo (which
//! sets `CARGO`), it asks cargo to build each one; cargo rebuilds only what
//! changed, so this is cheap when nothing did. Each is built alone with `-p`,
//! which also matters for `taskscope-bench-lean`: built together with the
//! rest of the workspace, cargo would unify tokio's features and give it
//! tokio's `tracing` feature, the very thing its baseline must not have.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A binary of this workspace the bench runs.
pub struct Sibling {
    /// The executable's file name.
    pub name: &'static str,
    /// The cargo package that builds it.
    pub package: &'static str,
    /// The bench's option that names it instead.
    pub option: &'static str,
}

pub const TASKSCOPE: Sibling = Sibling { name: "taskscope", package: "taskscope", option: "--taskscope" };

pub const LEAN: Sibling =
    Sibling { name: "taskscope-bench-lean", package: "taskscope-bench-lean", option: "--lean-bin" };

impl Sibling {
    /// `explicit` if given, else the binary next to this one, (re)built first
    /// when this bench was started by cargo. The error says how to get it.
    pub fn find(&self, explicit: Option<&Path>) -> Result<PathBuf, String> {
        if let Some(path) = explicit {
            return if path.is_file() {
                Ok(path.to_path_buf())
            } else {
                Err(format!("no {} at {}", self.name, path.display()))
            };
        }
        let exe = std::env::current_exe().map_err(|e| format!("find own binary: {e}"))?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        let path = dir.join(self.name);
        if let Some(cargo) = std::env::var_os("CARGO") {
            self.build(&cargo, dir.ends_with("release"), &path);
        }
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "no {} at {}: build it with `cargo build --release -p {}` or pass {} PATH",
                self.name,
                path.display(),
                self.package,
                self.option
            ))
        }
    }

    /// `cargo build -p PACKAGE`, reporting a failure on stderr; an older
    /// binary, if there is one, is then used as it is.
    fn build(&self, cargo: &std::ffi::OsStr, release: bool, path: &Path) {
        let mut build = Command::new(cargo);
        build.args(["build", "-p", self.package]);
        if release {
            build.arg("--release");
        }
        // Not quiet: a stale binary can take minutes to rebuild.
        eprintln!("taskscope-bench: cargo build{} -p {}", if release { " --release" } else { "" }, self.package);
        let failure = match build.status() {
            Ok(status) if status.success() => return,
            Ok(status) => format!("failed ({status})"),
            Err(e) => format!("could not start: {e}"),
        };
        let then = if path.is_file() {
            "using the existing binary, which may be stale"
        } else {
            "and there is no older binary"
        };
        eprintln!("taskscope-bench: `cargo build -p {}` {failure}; {then}", self.package);
    }
}
