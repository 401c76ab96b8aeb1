//! Where an agent listens, so that a tool can find it from the PID alone.
//!
//! Each process with an agent owns one Unix socket named `<pid>.sock` in a
//! per-user directory (mode 0700; the socket itself is 0600):
//!
//! 1. `$TASKSCOPE_DIR` when set (tests and unusual setups);
//! 2. else `$XDG_RUNTIME_DIR/taskscope` when `XDG_RUNTIME_DIR` is set;
//! 3. else `<temp dir>/taskscope-<uid>`.
//!
//! Agent and tools compute the directory with the same function, so they agree
//! as long as they run with the same environment and user.

use std::path::{Path, PathBuf};

/// The per-user directory holding one socket per inspected process.
pub fn socket_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(crate::env::DIR.name).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("taskscope");
    }
    std::env::temp_dir().join(format!("taskscope-{}", effective_uid()))
}

/// The socket of process `pid` in [`socket_dir`].
pub fn socket_path(pid: u32) -> PathBuf {
    socket_dir().join(format!("{pid}.sock"))
}

/// The PID a socket file in [`socket_dir`] belongs to, from its name.
pub fn pid_of_socket(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".sock")?.parse().ok()
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
