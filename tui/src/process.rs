//! What the operating system says about a local process, for error messages.
//!
//! When an agent cannot be reached, the precise reason depends on the process
//! behind it: gone (then a socket left behind is stale), alive without an
//! agent, or owned by another user. These probes never fail; an unknown
//! answer is `None` and the message falls back to a more general wording.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use taskscope_proto::discovery::{liveness, Liveness};

/// The short process name (`/proc/<pid>/comm`), when readable.
pub fn name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    (!comm.is_empty()).then(|| crate::output::shown(comm).into_owned())
}

/// The user owning the process, when known.
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The user owning a file (the agent's socket), when it exists.
pub fn file_uid(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

/// `process 1234 (name)`, or `process 1234` when the name is unknown.
pub fn describe(pid: u32, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("process {pid} ({name})"),
        _ => format!("process {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_named() {
        let me = std::process::id();
        assert_eq!(liveness(me), Liveness::Alive);
        assert!(name(me).is_some());
        assert_eq!(uid(me), Some(taskscope_proto::discovery::effective_uid()));
    }

    #[test]
    fn describe_with_and_without_name() {
        assert_eq!(describe(7, Some("sleep")), "process 7 (sleep)");
        assert_eq!(describe(7, None), "process 7");
    }
}
